# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Runs srcds_update_check in-process against the stand-ins: steamcmd (its app_info_print)
and the Web API (its UpToDateCheck). steamcmd runs as the user running the tests, whose
steamcmd home it is; the build Steam offers is steered through standin-control.json."""

from __future__ import annotations

import json
import os
import pathlib
import pwd
import sys
import urllib.request

import pytest

try:
    from ansible_collections.left4me.l4d2.plugins.modules import srcds_update_check
except ImportError:  # plain pytest from the repo root: make the collection importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[7]))
    from ansible_collections.left4me.l4d2.plugins.modules import srcds_update_check

from ansible.module_utils import _internal as module_internal
from ansible.module_utils.testing import patch_module_args

FIRST_BUILD = 16140412
ME = pwd.getpwuid(os.geteuid()).pw_name


@pytest.fixture(autouse=True)
def as_on_a_target(monkeypatch):
    monkeypatch.setattr(module_internal, "is_controller", False)
    monkeypatch.delenv("PYTHONPATH", raising=False)


@pytest.fixture
def state(tmp_path, bootstrap_steamcmd, standin_harness):
    """A state dir with the stand-in's steamcmd and build FIRST_BUILD installed by it."""
    steam, install = tmp_path / "steam", tmp_path / "installation"
    bootstrap_steamcmd(steam)
    passes = []
    for platform in ("windows", "linux"):
        passes += ["+@sSteamCmdForcePlatformType", platform, "+app_update", "222860", "validate"]
    run = standin_harness.run_standin(
        [str(steam / "steamcmd.sh"), "+force_install_dir", str(install), "+login", "anonymous",
         *passes, "+quit"], cwd=tmp_path, env={"PYTHONPATH": ""})
    assert run.returncode == 0, run.stdout
    return tmp_path


def control(state: pathlib.Path, **values) -> None:
    (state / "steam" / "standin-control.json").write_text(json.dumps(values))


def tree(root: pathlib.Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.lstat().st_mtime_ns, p.lstat().st_size) for p in root.rglob("*")}


def run_module(capsys, **args) -> dict:
    with patch_module_args(args), pytest.raises(SystemExit):
        srcds_update_check.main()
    return json.loads(capsys.readouterr().out)


def test_steamcmd_says_a_newer_offered_build_is_an_update_and_changes_nothing(state, capsys):
    control(state, buildid=FIRST_BUILD + 1)
    before = tree(state / "installation")
    result = run_module(capsys, state_dir=str(state), run_as=ME)
    assert result["changed"] is False and result["update_available"] is True, result
    assert (result["installed_build"], result["offered_build"]) == (FIRST_BUILD, FIRST_BUILD + 1)
    assert result["installed_version"] == "2.2.4.412" and result["offered_time"] > 0
    assert result["method"] == "steamcmd"
    assert "Steam offers build 16140413" in result["reason"]
    assert tree(state / "installation") == before, "nothing downloaded, nothing installed"


def test_steamcmd_up_to_date_and_in_check_mode(state, capsys):
    result = run_module(capsys, state_dir=str(state), run_as=ME, _ansible_check_mode=True)
    assert (result["changed"], result["update_available"]) == (False, False), result
    assert result["offered_build"] == FIRST_BUILD


def test_steamcmds_first_print_that_only_requests_is_answered_by_the_second(state, capsys):
    control(state, buildid=FIRST_BUILD + 1, fault="appinfo_requesting")
    result = run_module(capsys, state_dir=str(state), run_as=ME)
    # One print per run would have said only "requesting": unknown, not this verdict.
    assert result["update_available"] is True, result


def test_a_stale_appinfo_cache_older_than_the_install_is_unknown(state, capsys):
    control(state, buildid=FIRST_BUILD + 1)
    run_module(capsys, state_dir=str(state), run_as=ME)  # the cache now holds the newer build
    control(state, buildid=FIRST_BUILD - 1, fault="appinfo_stale")
    (state / "steam" / "appcache" / "appinfo.vdf").write_text(
        json.dumps({"222860": {"buildid": FIRST_BUILD - 1, "timeupdated": 1,
                               "change_number": 1}}))
    result = run_module(capsys, state_dir=str(state), run_as=ME)
    assert result["update_available"] is None
    assert "appcache/appinfo.vdf" in result["reason"] and "stale" in result["reason"]


def test_steamcmd_failures_are_unknown_with_the_reason(state, capsys):
    control(state, fault="self_update_offline")
    result = run_module(capsys, state_dir=str(state), run_as=ME)
    assert result["update_available"] is None
    assert result["reason"].startswith("steamcmd failed (self_update)")
    control(state, fault="appinfo_empty")
    result = run_module(capsys, state_dir=str(state), run_as=ME)
    assert result["update_available"] is None and "empty record" in result["reason"]


def test_web_api_out_of_date_then_up_to_date(state, capsys, start_webapi):
    api = start_webapi("--offered-buildid", str(FIRST_BUILD + 1))
    before = tree(state)
    result = run_module(capsys, state_dir=str(state), method="webapi", api_url=api.base_url)
    assert result["update_available"] is True, result
    assert (result["required_version"], result["installed_version"]) == (224413, "2.2.4.412")
    assert result["output_tail"] == [] and tree(state) == before, "steamcmd never ran"
    urllib.request.urlopen(urllib.request.Request(  # noqa: S310 - the local stand-in
        f"{api.base_url}/_standin/app", data=json.dumps({"appid": 550, "buildid": FIRST_BUILD})
        .encode(), method="POST"), timeout=5).read()
    current = run_module(capsys, state_dir=str(state), method="webapi", api_url=api.base_url)
    assert current["update_available"] is False, current


def test_web_api_wrong_answer_is_outvoted_and_a_dead_api_is_unknown(state, capsys, start_webapi):
    api = start_webapi()
    urllib.request.urlopen(urllib.request.Request(  # noqa: S310 - the local stand-in
        f"{api.base_url}/_standin/wrong_out_of_date", data=b'{"count": 1}', method="POST"),
        timeout=5).read()
    result = run_module(capsys, state_dir=str(state), method="webapi", api_url=api.base_url)
    assert result["update_available"] is False, result
    dead = run_module(capsys, state_dir=str(state), method="webapi", timeout=2,
                      api_url="http://127.0.0.1:9")
    assert dead["update_available"] is None and "did not answer" in dead["reason"]


def test_no_install_is_unknown_and_bad_input_is_refused(tmp_path, capsys):
    result = run_module(capsys, state_dir=str(tmp_path), run_as=ME)
    assert result["update_available"] is None and "no complete install" in result["reason"]
    refused = run_module(capsys, state_dir=str(tmp_path), method="webapi", api_url="file:///etc")
    assert refused["failed"] is True and "http or https" in refused["msg"]
