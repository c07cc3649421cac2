# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Runs the workshop_overlay module in-process against the fake Steam Web API."""

from __future__ import annotations

import json
import os
import pathlib
import pwd
import sys
import urllib.request

import pytest

try:
    from ansible_collections.left4me.l4d2.plugins.modules import workshop_overlay
except ImportError:  # plain pytest from the repo root: make the collection importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[7]))
    from ansible_collections.left4me.l4d2.plugins.modules import workshop_overlay

from ansible.module_utils import _internal as module_internal
from ansible.module_utils.testing import patch_module_args

ME = pwd.getpwuid(os.getuid()).pw_name


@pytest.fixture(autouse=True)
def as_on_a_target(monkeypatch):
    """A module runs on a target: once other tests in this process imported Ansible's
    controller code, module warnings would go to the controller's display, not the result."""
    monkeypatch.setattr(module_internal, "is_controller", False)


def run(capsys, **args) -> dict:
    with patch_module_args(args), pytest.raises(SystemExit):
        workshop_overlay.main()
    return json.loads(capsys.readouterr().out)


@pytest.fixture
def setup(start_webapi, tmp_path):
    for sub in ("overlays", "workshop_cache"):
        (tmp_path / sub).mkdir()
    api = start_webapi("--generate", "4")
    return dict(id="maps", state_dir=str(tmp_path), owner=ME, api_url=api.base_url,
                collections=["3000000001"], retry_delay=0.01)


def test_build_rerun_check_mode_and_diff(capsys, setup, tmp_path):
    first = run(capsys, _ansible_diff=True, **setup)
    assert first["changed"] and first["downloaded"] == 4 and first["bytes_fetched"] > 0
    assert first["collections"] == ["3000000001", "3000000002"]
    assert first["diff"]["before"] == "" and first["diff"]["after"].count(".vpk") == 4
    second = run(capsys, **setup)
    assert not second["changed"] and second["downloaded"] == 0 and second["api_calls"] == 3
    predicted = run(capsys, _ansible_check_mode=True, **{**setup, "items": ["1000000001"],
                                                         "collections": []})
    assert predicted["changed"] and len(predicted["links_removed"]) == 3
    assert len(os.listdir(tmp_path / "overlays" / "maps" / "left4dead2" / "addons")) == 4


def test_unusable_item_fails_with_per_item_results(capsys, setup):
    result = run(capsys, **{**setup, "items": ["1000000099"], "collections": []})
    assert result["failed"] and not result["changed"]
    assert "item 1000000099" in result["msg"] and "result 9" in result["msg"]
    assert result["items"][0]["status"] == "error"


def test_unusable_item_is_a_warning_when_allowed(capsys, setup):
    result = run(capsys, **{**setup, "items": ["1000000099"], "fail_on_item_error": False})
    assert result["changed"] and not result.get("failed")
    assert "item 1000000099: removed" in json.dumps(result["warnings"])


def admin(setup, action: str, **payload) -> None:
    request = urllib.request.Request(f"{setup['api_url']}/_standin/{action}",
                                     data=json.dumps(payload).encode())
    urllib.request.urlopen(request, timeout=10).close()


def test_a_plain_item_listed_as_a_collection_is_built_with_a_warning(capsys, setup):
    admin(setup, "plain_item", result=1)
    result = run(capsys, **{**setup, "collections": ["1000000002"]})
    assert result["changed"] and not result.get("failed")
    assert result["links_set"] == ["1000000002.vpk"]
    assert "Steam says 1000000002 is an item" in json.dumps(result["warnings"])


def test_an_empty_answer_fails_naming_its_causes_and_changes_nothing(capsys, setup, tmp_path):
    admin(setup, "malformed", count=10, body="empty_response")
    result = run(capsys, **{**setup, "fail_on_item_error": False})
    assert result["failed"] and not result.get("changed")
    assert "Steam under load" in result["msg"] and "Nothing was changed" in result["msg"]
    assert not (tmp_path / "overlays" / "maps").exists()


def test_steampipe_item_is_fetched_with_steamcmd_from_state_dir_steam(capsys, setup, tmp_path,
                                                                      bootstrap_steamcmd):
    steampipe = json.dumps({"publishedfileid": 1000000003, "hosting": "steampipe"}).encode()
    request = urllib.request.Request(f"{setup['api_url']}/_standin/item", data=steampipe)
    urllib.request.urlopen(request, timeout=10).close()
    args = {**setup, "items": ["1000000003"], "collections": []}
    missing = run(capsys, **args)
    assert missing["failed"] and f"{tmp_path}/steam/steamcmd.sh is missing" in missing["msg"]
    bootstrap_steamcmd(tmp_path / "steam")
    (tmp_path / "steam" / "standin-control.json").write_text(
        json.dumps({"webapi": setup["api_url"]}))
    predicted = run(capsys, _ansible_check_mode=True, **args)
    assert predicted["changed"] and predicted["items"][0]["source"] == "steamcmd"
    assert predicted["items"][0]["status"] == "would_download"
    assert not (tmp_path / "workshop_cache" / ".steamcmd").exists()
    built = run(capsys, **args)
    assert built["changed"] and built["items"][0]["status"] == "downloaded"
    assert built["items"][0]["source"] == "steamcmd" and built["bytes_fetched"] > 0
    cached = tmp_path / "workshop_cache" / "1000000003.vpk"
    assert cached.read_bytes()[:4] == b"\x34\x12\xaa\x55"
    assert not run(capsys, **args)["changed"]
