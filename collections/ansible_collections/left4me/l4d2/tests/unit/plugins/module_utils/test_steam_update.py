# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The update check's pure parts: the install read, steamcmd's app_info_print output and the
Web API's UpToDateCheck answers in the shapes operators have captured, and the verdict."""

from __future__ import annotations

import json
import pathlib
import sys

import pytest

try:
    from ansible_collections.left4me.l4d2.plugins.module_utils import _steam_update as su
except ImportError:  # plain pytest from the repo root: make the collection importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[7]))
    from ansible_collections.left4me.l4d2.plugins.module_utils import _steam_update as su

# steamcmd's console before the record (as in steam-for-linux#11562's capture: the
# bootstrapper, an IPC timing note glued into "Loading Steam API", the login).
NOISE = (
    "Redirecting stderr to '/home/left4me/Steam/logs/stderr.txt'\n"
    "Logging directory: '/home/left4me/Steam/logs'\n"
    "[  0%] Checking for available updates...\n"
    "[----] Verifying installation...\n"
    "UpdateUI: skip show logoSteam Console Client (c) Valve Corporation - version 1733269577\n"
    "-- type 'quit' to exit --\n"
    "Loading Steam API...IPC function call IClientUtils::GetSteamRealm took too long: 52 msec\n"
    "OK\n\n"
    "Connecting anonymously to Steam Public...OK\n"
    "Waiting for client config...OK\n"
    "Waiting for user info...OK\n"
)
RECORD = """AppID : 222860, change number : 26812345/0, last change : Thu Nov 21 17:02:44 2024
"222860"
{
\t"common"
\t{
\t\t"name"\t\t"Left 4 Dead 2 Dedicated Server"
\t\t"type"\t\t"Tool"
\t\t"oslist"\t\t"windows,macos,linux"
\t\t"gameid"\t\t"222860"
\t}
\t"config"
\t{
\t\t"installdir"\t\t"Left 4 Dead 2 Dedicated Server"
\t}
\t"depots"
\t{
\t\t"222861"
\t\t{
\t\t\t"name"\t\t"Left 4 Dead 2 Dedicated Server Content"
\t\t\t"manifests"
\t\t\t{
\t\t\t\t"public"
\t\t\t\t{
\t\t\t\t\t"gid"\t\t"7301958123456789012"
\t\t\t\t\t"size"\t\t"9123456789"
\t\t\t\t\t"download"\t\t"4012345678"
\t\t\t\t}
\t\t\t}
\t\t}
\t\t"branches"
\t\t{
\t\t\t"public"
\t\t\t{
\t\t\t\t"buildid"\t\t"16140413"
\t\t\t\t"timeupdated"\t\t"1732208564"
\t\t\t}
\t\t\t"previous"
\t\t\t{
\t\t\t\t"buildid"\t\t"16140400"
\t\t\t\t"description"\t\t"The previous build"
\t\t\t\t"pwdrequired"\t\t"1"
\t\t\t\t"timeupdated"\t\t"1731000000"
\t\t\t}
\t\t}
\t}
}
"""
REQUESTING = "No app info for AppID 222860 found, requesting...\n"
EMPTY = ("AppID : 222860, change number : 0/0, last change : Wed Dec 31 19:00:00 1969\n"
         '"222860"\n{\n}\n')
UNLOAD = "Unloading Steam API...OK\n"


def installed(build=16140412, complete=True, patch="2.2.4.412"):
    return su.Installed(buildid=build, complete=complete, patch_version=patch)


# --- the install ------------------------------------------------------------------------


def test_read_installed_takes_the_manifest_build_and_steam_infs_patch_version(tmp_path):
    (tmp_path / "steamapps").mkdir()
    (tmp_path / "steamapps" / "appmanifest_222860.acf").write_text(
        '"AppState"\n{\n\t"appid"\t\t"222860"\n\t"StateFlags"\t\t"4"\n'
        '\t"buildid"\t\t"16140412"\n}\n')
    (tmp_path / "left4dead2").mkdir()
    (tmp_path / "left4dead2" / "steam.inf").write_text(
        "ClientVersion=2.2.4.412\r\nPatchVersion=2.2.4.412\r\nProductName=left4dead2\r\n"
        "appID=550\r\n")
    assert su.read_installed(str(tmp_path)) == installed()


def test_read_installed_without_an_install(tmp_path):
    assert su.read_installed(str(tmp_path)) == su.Installed(None, False, None)


# --- steamcmd's app_info_print -------------------------------------------------------------


def test_the_public_branch_build_is_read_past_the_noise_and_other_branches():
    offer = su.parse_app_info(NOISE + RECORD + UNLOAD)
    assert (offer.build, offer.time_updated, offer.problem) == (16140413, 1732208564, None)


def test_a_first_print_that_only_requests_is_followed_by_the_second_one():
    assert su.parse_app_info(NOISE + REQUESTING + RECORD + UNLOAD).build == 16140413


def test_carriage_returns_and_progress_redraws_do_not_hide_the_record():
    assert su.parse_app_info(NOISE + RECORD.replace("\n", "\r\n")).build == 16140413


@pytest.mark.parametrize(("output", "words"), [
    (NOISE + REQUESTING + REQUESTING + UNLOAD, "only requested it"),
    (NOISE + EMPTY + EMPTY + UNLOAD, "empty record"),
    (NOISE + RECORD.replace('"public"\n\t\t\t{\n\t\t\t\t"buildid"',
                            '"other"\n\t\t\t{\n\t\t\t\t"buildid"'),
     "no build for branch 'public'"),
    (NOISE + UNLOAD, "printed no app info"),
    ("", "printed no app info"),
])
def test_no_usable_record_says_why(output, words):
    offer = su.parse_app_info(output)
    assert offer.build is None and words in offer.problem


def test_the_check_logs_in_anonymously_refreshes_and_prints_twice():
    argv = su.check_argv("/var/lib/left4me/steam/steamcmd.sh")
    assert argv[1:] == ["+login", "anonymous", "+app_info_update", "1", "+app_info_print",
                        "222860", "+app_info_print", "222860", "+quit"]


# --- the Web API's UpToDateCheck -------------------------------------------------------------


def answer(**response) -> bytes:
    return json.dumps({"response": response}).encode()


def test_up_to_date_url():
    assert su.up_to_date_url("http://127.0.0.1:8880/", "2.2.4.412") == (
        "http://127.0.0.1:8880/ISteamApps/UpToDateCheck/v1/?appid=550&version=2.2.4.412")


def test_up_to_date_and_out_of_date_answers():
    current = su.parse_up_to_date(200, answer(success=True, up_to_date=True,
                                              version_is_listable=True))
    assert (current.up_to_date, current.problem) == (True, None)
    old = su.parse_up_to_date(200, answer(
        success=True, up_to_date=False, version_is_listable=False, required_version=224413,
        message="Your server is out of date, please upgrade"))
    assert (old.up_to_date, old.required_version) == (False, 224413)


@pytest.mark.parametrize(("status", "body", "words"), [
    (200, answer(success=False, error="Couldn't get app info for the app specified."),
     "Steam cannot check app 550: Couldn't get app info"),
    (503, b"<html>Service Unavailable</html>", "HTTP 503"),
    (400, b"<html>Bad Request</html>", "HTTP 400"),
    (200, b"", "without UpToDateCheck's fields (an empty body)"),
    (200, b'{"response":{}}', "without UpToDateCheck's fields"),
    (200, b"{}", "without UpToDateCheck's fields"),
    (200, answer(success=True, up_to_date=False), "no usable up_to_date/required_version"),
    (None, b"[Errno 111] Connection refused", "did not answer: [Errno 111]"),
])
def test_web_api_answers_that_decide_nothing(status, body, words):
    offer = su.parse_up_to_date(status, body)
    assert offer.up_to_date is None and words in offer.problem


def test_an_answer_counts_once_two_agree():
    wrong = su.Offer(up_to_date=False, required_version=224412)
    right = su.Offer(up_to_date=True)
    answers = iter([wrong, right, right])
    assert su.ask_until_agreed(lambda: next(answers)) == right
    answers = iter([right, right, wrong])
    asked = []
    assert su.ask_until_agreed(lambda: asked.append(1) or next(answers)) == right
    assert len(asked) == 2, "two agreeing answers end the asking"


def test_disagreeing_or_failing_answers_are_unknown():
    answers = iter([su.Offer(up_to_date=True), su.Offer(problem="the Web API answered HTTP 503"),
                    su.Offer(up_to_date=False, required_version=1)])
    assert "disagreed" in su.ask_until_agreed(lambda: next(answers)).problem
    failing = su.Offer(problem="the Web API answered HTTP 503")
    assert su.ask_until_agreed(lambda: failing) == failing


# --- the verdict -------------------------------------------------------------------------------


def test_a_newer_offered_build_is_an_update():
    verdict = su.decide(installed(), su.Offer(build=16140413, time_updated=5), "steamcmd")
    assert verdict["update_available"] is True
    assert (verdict["installed_build"], verdict["offered_build"]) == (16140412, 16140413)
    assert verdict["reason"] == ("update available: Steam offers build 16140413 on branch"
                                 " 'public'; 16140412 is installed")


def test_the_installed_build_offered_is_up_to_date():
    verdict = su.decide(installed(), su.Offer(build=16140412), "steamcmd")
    assert verdict["update_available"] is False and "up to date" in verdict["reason"]


def test_an_older_offered_build_is_unknown_not_an_update():
    verdict = su.decide(installed(), su.Offer(build=16140400), "steamcmd",
                        steamcmd_dir="/var/lib/left4me/steam")
    assert verdict["update_available"] is None
    assert "/var/lib/left4me/steam/appcache/appinfo.vdf" in verdict["reason"]


def test_web_api_verdicts():
    old = su.decide(installed(), su.Offer(up_to_date=False, required_version=224413), "webapi")
    assert old["update_available"] is True and old["required_version"] == 224413
    assert "requires version 224413; 2.2.4.412 is installed" in old["reason"]
    current = su.decide(installed(), su.Offer(up_to_date=True), "webapi")
    assert current["update_available"] is False and "2.2.4.412" in current["reason"]


def test_no_install_or_no_answer_is_unknown_with_the_reason():
    none = su.decide(su.Installed(None, False, None), su.Offer(), "steamcmd",
                     install_dir="/var/lib/left4me/installation")
    assert none["update_available"] is None
    assert "no complete install in /var/lib/left4me/installation" in none["reason"]
    failed = su.decide(installed(), su.Offer(problem="the Web API answered HTTP 503"), "webapi")
    assert (failed["update_available"], failed["reason"]) == (None, "the Web API answered HTTP 503")


def test_the_web_api_needs_a_patch_version():
    assert "no PatchVersion" in su.installed_problem(installed(patch=None), "webapi")
    assert su.installed_problem(installed(patch=None), "steamcmd") is None
