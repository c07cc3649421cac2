# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Tests for module_utils/_steamcmd.py: VDF, manifests, scripts, output classes, links."""

from __future__ import annotations

import os
import pathlib
import sys
import time

import pytest

try:
    from ansible_collections.left4me.l4d2.plugins.module_utils import _steamcmd as steamcmd
except ImportError:  # plain pytest from the repo root: make the collection importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[7]))
    from ansible_collections.left4me.l4d2.plugins.module_utils import _steamcmd as steamcmd

# A manifest as steamcmd writes it for the dedicated server (values from a real host),
# written with spaces here; Steam writes tabs, restored below.
MANIFEST = r'''"AppState"
{
    "appid"        "222860"
    "Universe"        "1"
    "LauncherPath"        "C:\\Program Files (x86)\\Steam\\steam.exe"
    "name"        "Left 4 Dead 2 Dedicated Server"
    "StateFlags"        "4"
    "installdir"        "Left 4 Dead 2 Dedicated Server"
    "LastUpdated"        "1716584667"
    "SizeOnDisk"        "11203871457"
    "buildid"        "14389133"
    "LastOwner"        "0"
    "InstalledDepots"
    {
        "222861"
        {
            "manifest"        "5294133052541428574"
            "size"        "11124306113"
        }
        "222863"
        {
            "manifest"        "1960133486524786911"
            "size"        "79565344"
        }
    }
    "UserConfig"
    {
    }
}
'''.replace("    ", "\t")


# --- VDF -----------------------------------------------------------------------


def test_parse_vdf_reads_a_real_manifest():
    data = steamcmd.parse_vdf(MANIFEST)
    app = data["AppState"]
    assert app["buildid"] == "14389133"
    assert app["LauncherPath"] == "C:\\Program Files (x86)\\Steam\\steam.exe"
    assert app["InstalledDepots"]["222863"]["size"] == "79565344"
    assert app["UserConfig"] == {}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('"a" "1"', {"a": "1"}),
        ("a 1 b 2", {"a": "1", "b": "2"}),  # unquoted tokens
        ('"a" "x\\"y\\\\z\\n"', {"a": 'x"y\\z\n'}),  # escapes
        ('"a" { "b" "1" } // trailing comment', {"a": {"b": "1"}}),
        ('"a" "1" [$WIN32]\n"a" "2"', {"a": "2"}),  # conditional ignored, last value wins
        ('"s"{"t"{"u""v"}}', {"s": {"t": {"u": "v"}}}),  # no whitespace at all
        ('"a"  ""', {"a": ""}),
    ],
)
def test_parse_vdf_syntax(text, expected):
    assert steamcmd.parse_vdf(text) == expected


@pytest.mark.parametrize(
    "text", ['"a" {', '"a" }', '"a"', "{", '"a" { "b" }', '"a" "unterminated'],
)
def test_parse_vdf_rejects_broken_text(text):
    with pytest.raises(steamcmd.SteamcmdError):
        steamcmd.parse_vdf(text)


def test_app_state_from_manifest():
    state = steamcmd.app_state_from_manifest(MANIFEST)
    assert state == steamcmd.AppState(14389133, 4, ("222861", "222863"))
    assert state.complete


@pytest.mark.parametrize(
    ("flags", "complete"), [("4", True), ("6", False), ("1026", False), ("2", False)],
)
def test_only_state_flags_4_is_a_complete_install(flags, complete):
    text = MANIFEST.replace('"StateFlags"\t\t"4"', f'"StateFlags"\t\t"{flags}"')
    assert steamcmd.app_state_from_manifest(text).complete is complete


def test_keys_are_case_insensitive():
    state = steamcmd.app_state_from_manifest('"appstate" { "BuildID" "7" "stateflags" "4" }')
    assert state.buildid == 7 and state.complete


def test_read_app_state_missing_or_truncated_manifest_means_not_installed(tmp_path):
    assert steamcmd.read_app_state(str(tmp_path)) == steamcmd.AppState()
    path = pathlib.Path(steamcmd.manifest_path(str(tmp_path)))
    path.parent.mkdir()
    path.write_text(MANIFEST[:200])
    assert not steamcmd.read_app_state(str(tmp_path)).complete
    path.write_text(MANIFEST)
    assert steamcmd.read_app_state(str(tmp_path)).buildid == 14389133


# --- scripts -------------------------------------------------------------------


def test_anonymous_script_forces_install_dir_before_login():
    script = steamcmd.install_script("/srv/l4d2", validate=True).splitlines()
    assert script == [
        "@ShutdownOnFailedCommand 1",
        "@NoPromptForPassword 1",
        "force_install_dir /srv/l4d2",
        "login anonymous",
        "app_update 222860 validate",
        "quit",
    ]


def test_platform_pass_script_installs_windows_then_linux_with_validate():
    script = steamcmd.install_script("/srv/l4d2", platform_pass=True).splitlines()
    assert script[4:8] == [
        "@sSteamCmdForcePlatformType windows",
        "app_update 222860",
        "@sSteamCmdForcePlatformType linux",
        "app_update 222860 validate",
    ]


def test_account_script_carries_the_password_in_the_file():
    script = steamcmd.install_script("/srv/l4d2", "bob", "s3cret!")
    assert "login bob s3cret!\n" in script


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(steam_user="bob"), "steam_password is required"),
        (dict(steam_user="bob", steam_password="two words"), "steam_password must be"),
        (dict(steam_user="bob", steam_password='a"b'), "steam_password must be"),
        (dict(steam_user="bob", steam_password="a\nquit"), "steam_password must be"),
        (dict(steam_user="bob smith", steam_password="x"), "steam_user must be"),
    ],
)
def test_script_refuses_what_a_script_line_cannot_carry(kwargs, message):
    with pytest.raises(steamcmd.SteamcmdError, match=message):
        steamcmd.install_script("/srv/l4d2", **kwargs)


def test_script_refuses_install_dir_with_spaces():
    with pytest.raises(steamcmd.SteamcmdError, match="install_dir"):
        steamcmd.install_script("/srv/my game")


# --- output classification -----------------------------------------------------

SUCCESS_FRESH = """Redirecting stderr to '/home/left4me/Steam/logs/stderr.txt'
Loading Steam API...OK
Connecting anonymously to Steam Public...OK
Waiting for client config...OK
Waiting for user info...OK
 Update state (0x61) downloading, progress: 99.94 (11119806543 / 11126255001)
Success! App '222860' fully installed.
Unloading Steam API...OK
"""


@pytest.mark.parametrize(
    "output",
    [SUCCESS_FRESH, "Connecting anonymously to Steam Public...OK\n"
                    "Success! App '222860' already up to date.\n"],
)
def test_success_is_no_failure(output):
    assert steamcmd.classify_output(output, 0) is None


# Failure texts as real steamcmd prints them (collected from operators' reports).
FAILURES = [
    ("Error! App '222860' state is 0x202 after update job.", 8, "disk_full"),
    (" Update state (0x61) downloading, progress: 12.01 (1336094562 / 11126255001)\n"
     "Error! App '222860' state is 0x202 after update job.", 8, "disk_full"),
    ("ERROR! Failed to install app '222860' (No subscription)", 8, "no_subscription"),
    ("ERROR! Failed to install app '222860' (Invalid platform)", 8, "invalid_platform"),
    ("Logging in user 'bob' [U:1:123456] to Steam Public...FAILED (Invalid Password)", 5,
     "login_failed"),
    ("Logging in user 'bob' to Steam Public...\nFAILED login with result code Invalid Password",
     5, "login_failed"),
    ("Logging in user 'bob' to Steam Public...FAILED (Rate Limit Exceeded)", 5, "login_failed"),
    ("This account is protected by a Steam Guard mobile authenticator.\n"
     "Logging in user 'bob' [U:1:1] to Steam Public...FAILED (Two-factor code mismatch)", 5,
     "steam_guard"),
    ("Logging in user 'bob' to Steam Public...FAILED (Account Logon Denied)", 5, "steam_guard"),
    ("FAILED login with result code Invalid Login Auth Code", 5, "steam_guard"),
    ("ERROR! Failed to install app '222860' (Disk write failure)", 8, "disk_write"),
    ("ERROR! Failed to request AppInfo update, not online or not logged in to Steam.", 8,
     "offline"),
    ("ERROR! Failed to install app '222860' (No Connection)", 8, "offline"),
    ("Error! App '222860' state is 0x10E after update job.", 8, "unknown"),
    ("Segmentation fault (core dumped)", 139, "unknown"),
    ("Connecting anonymously to Steam Public...OK", 1, "unknown"),  # console had started
    ("ERROR! Failed to install app '222860' (Missing configuration)", 8,
     "missing_configuration"),
    ("ERROR! Failed to install app '222860' (Missing file permissions)", 8, "disk_write"),
    ("ERROR! Timed out waiting for AppInfo update.", 1, "appinfo_timeout"),
]


# Update-state codes seen in the wild, in both spellings steamcmd has used.
@pytest.mark.parametrize(
    ("code", "kind"),
    [("0x402", "network"), ("0x602", "network"), ("0x202", "disk_full"),
     ("0x212", "disk_full"), ("0x606", "disk_write"), ("0x626", "content"),
     ("0x6A6", "content"), ("0x6a6", "content")],
)
@pytest.mark.parametrize("template", ["Error! App '222860' state is {} after update job.",
                                      "Error! State is {} after update job."])
def test_update_state_codes_are_classified(code, kind, template):
    output = " Update state (0x61) downloading, progress: 12.01 (1 / 2)\n" + template.format(code)
    failure = steamcmd.classify_output("Loading Steam API...OK\n" + output, 8)
    assert failure.kind == kind and code in failure.detail


# The bootstrapper's quiet exits: it updates steamcmd before the console ("Loading Steam
# API") starts, and prints no error line when that fails.
BOOTSTRAP = ("Redirecting stderr to '/var/lib/left4me/steam/logs/stderr.txt'\n"
             "ILocalize::AddFile() failed to load file \"public/steambootstrapper_english.txt\".\n"
             "[  0%] Checking for available update...\n")


@pytest.mark.parametrize(
    ("output", "rc", "kind"),
    [(BOOTSTRAP, 1, "self_update"),
     (BOOTSTRAP + "[----] !!! Fatal Error: Steamcmd needs to be online to update.  Please"
      " confirm your network connection and try again.\n", 1, "self_update"),
     (BOOTSTRAP + "[----] Download complete.\n", 7, "steamcmd_dir_owner"),
     ("", 1, "self_update")],
)
def test_bootstrapper_exits_are_named(output, rc, kind):
    assert steamcmd.classify_output(output, rc).kind == kind


@pytest.mark.parametrize(("output", "rc", "kind"), FAILURES)
def test_classify_real_failure_texts(output, rc, kind):
    failure = steamcmd.classify_output("Loading Steam API...OK\n" + output + "\n", rc)
    assert failure is not None and failure.kind == kind, failure


def test_unknown_failure_keeps_the_update_state_code():
    failure = steamcmd.classify_output("Error! App '222860' state is 0x10E after update job.", 8)
    assert failure.kind == "unknown" and "0x10e" in failure.detail.lower()


def test_exit_0_without_success_line_is_a_failure():
    assert steamcmd.classify_output("Loading Steam API...OK\nUnloading Steam API...OK\n", 0)


def test_success_line_with_error_exit_is_a_failure():
    failure = steamcmd.classify_output(SUCCESS_FRESH, 8)
    assert failure is not None and failure.kind == "unknown"


def test_stopped_at_deadline_is_run_timeout():
    failure = steamcmd.classify_output(" Update state (0x61) downloading, progress: 1.00", None)
    assert failure.kind == "run_timeout"


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        ("disk_full", "disk space"),
        ("no_subscription", "steam_user=anonymous"),
        ("steam_guard", "Steam Guard"),
        ("login_failed", "steam_password"),
        ("invalid_platform", "platform pass"),
        ("network", "DNS"),
        ("appinfo_timeout", "re-run"),
        ("content", "validate: true"),
        ("disk_write", "chown -R left4me: /srv/l4d2"),
        ("self_update", "update itself"),
        ("steamcmd_dir_owner", "chown -R left4me: /opt/steam"),
        ("missing_configuration", "3 Windows-then-Linux"),
        ("run_timeout", "Raise timeout"),
        ("offline", "outbound"),
        ("unknown", "/opt/steam/logs"),
    ],
)
def test_failure_message_says_what_to_do(kind, words):
    message = steamcmd.failure_message(steamcmd.Failure(kind, "the line"), user="bob",
                                       install_dir="/srv/l4d2", steamcmd_dir="/opt/steam",
                                       timeout=60, run_as="left4me", attempts=3)
    assert words.lower() in message.lower()
    assert message.endswith(f"[{kind}: the line]")


# --- links ---------------------------------------------------------------------


def test_plan_links_points_sdk_dirs_into_steamcmd():
    assert steamcmd.plan_steamclient_links("/home/u", "/opt/steam") == [
        steamcmd.Link("/home/u/.steam/sdk32/steamclient.so", "/opt/steam/linux32/steamclient.so"),
        steamcmd.Link("/home/u/.steam/sdk64/steamclient.so", "/opt/steam/linux64/steamclient.so"),
    ]


def test_apply_links_creates_repairs_and_then_leaves_alone(tmp_path):
    links = steamcmd.plan_steamclient_links(str(tmp_path), "/opt/steam")
    uid, gid = os.getuid(), os.getgid()
    assert steamcmd.apply_steamclient_links(links, uid, gid) == links
    assert os.readlink(tmp_path / ".steam/sdk64/steamclient.so") == (
        "/opt/steam/linux64/steamclient.so")
    assert steamcmd.apply_steamclient_links(links, uid, gid) == []
    wrong = tmp_path / ".steam/sdk32/steamclient.so"
    wrong.unlink()
    wrong.write_text("a copied file")
    assert steamcmd.apply_steamclient_links(links, uid, gid) == [links[0]]
    assert all(steamcmd.link_is_correct(link) for link in links)


def _steamcmd_home(root):
    """steamcmd's own libraries, as its tarball lays them out."""
    for arch in ("linux32", "linux64"):
        (root / "steam" / arch).mkdir(parents=True)
        (root / "steam" / arch / "steamclient.so").write_bytes(b"\x7fELF steamcmd's own")
    return str(root / "steam")


@pytest.mark.parametrize("sdk_points_to", ["steamcmd", "steam_client"])
def test_apply_links_replaces_an_sdk_dir_link_and_never_writes_through_it(tmp_path,
                                                                          sdk_points_to):
    # steam.sh links ~/.steam/sdk32 to the client's linux32 (steam-for-linux#2232, #3696);
    # hand fixes and LinuxGSM-era homes link it to steamcmd's own linux32.
    steam = _steamcmd_home(tmp_path)
    home = tmp_path / "home"
    (home / ".steam").mkdir(parents=True)
    client = tmp_path / "client-linux32"
    client.mkdir()
    (client / "steamclient.so").write_bytes(b"\x7fELF the client's")
    linked = f"{steam}/linux32" if sdk_points_to == "steamcmd" else str(client)
    os.symlink(linked, home / ".steam/sdk32")
    links = steamcmd.plan_steamclient_links(str(home), steam)
    assert steamcmd.sdk_dir_link(links[0]) == linked
    assert not steamcmd.link_is_correct(links[0])
    uid, gid = os.getuid(), os.getgid()
    assert steamcmd.apply_steamclient_links(links, uid, gid) == links
    assert (tmp_path / "steam/linux32/steamclient.so").read_bytes() == b"\x7fELF steamcmd's own"
    assert (client / "steamclient.so").read_bytes() == b"\x7fELF the client's"
    assert not os.path.islink(home / ".steam/sdk32")
    assert os.readlink(home / ".steam/sdk32/steamclient.so") == f"{steam}/linux32/steamclient.so"
    assert all(steamcmd.link_is_correct(link) for link in links)
    assert steamcmd.apply_steamclient_links(links, uid, gid) == []


def test_apply_links_refuses_a_steam_dir_link_and_changes_nothing(tmp_path):
    steam = _steamcmd_home(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(f"{steam}/linux32", elsewhere / "sdk32")
    os.symlink(elsewhere, home / ".steam")
    links = steamcmd.plan_steamclient_links(str(home), steam)
    with pytest.raises(steamcmd.LinkLayoutError, match=r"\.steam is a link to .*re-run"):
        steamcmd.apply_steamclient_links(links, os.getuid(), os.getgid())
    assert os.readlink(elsewhere / "sdk32") == f"{steam}/linux32"
    assert (tmp_path / "steam/linux32/steamclient.so").read_bytes() == b"\x7fELF steamcmd's own"


def test_target_problem_names_a_self_link_left_by_an_earlier_run(tmp_path):
    steam = _steamcmd_home(tmp_path)
    links = steamcmd.plan_steamclient_links(str(tmp_path / "home"), steam)
    assert steamcmd.target_problem(links[0]) is None
    damaged = tmp_path / "steam/linux32/steamclient.so"
    damaged.unlink()
    os.symlink(damaged, damaged)
    problem = steamcmd.target_problem(links[0])
    assert "link to itself" in problem and "steamcmd.sh" in problem and "site.yml" in problem
    (tmp_path / "steam/linux64/steamclient.so").unlink()
    assert "missing" in steamcmd.target_problem(links[1])


# --- running -------------------------------------------------------------------


def test_run_streaming_keeps_tail_and_log(tmp_path):
    log = tmp_path / "log"
    script = "for i in $(seq 1 60); do echo line $i; done; printf 'a\\rb\\n'; exit 3"
    result = steamcmd.run_streaming(["sh", "-c", script], env={"PATH": os.environ["PATH"]},
                                    cwd=str(tmp_path), timeout=30, log_path=str(log))
    assert result.rc == 3 and not result.timed_out
    assert len(result.tail) == 40 and result.tail[-1] == "b"
    assert log.read_text().startswith("line 1\n")


def test_run_streaming_stops_the_whole_group_at_the_deadline(tmp_path):
    marker = tmp_path / "survived"
    script = f"(sleep 3; touch {marker}) & echo started; sleep 30"
    result = steamcmd.run_streaming(["sh", "-c", script], env={"PATH": os.environ["PATH"]},
                                    cwd=str(tmp_path), timeout=1)
    assert result.timed_out and result.rc is None
    assert result.tail == ["started"]
    time.sleep(3.5)
    assert not marker.exists(), "a child outlived the stopped run"
