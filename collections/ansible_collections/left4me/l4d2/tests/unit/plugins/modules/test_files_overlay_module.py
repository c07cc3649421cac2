# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Runs the files_overlay module in-process: apply, re-run unchanged, check mode, diff."""

from __future__ import annotations

import json
import os
import pathlib
import pwd
import sys

import pytest

try:
    from ansible_collections.left4me.l4d2.plugins.modules import files_overlay
except ImportError:  # plain pytest from the repo root: make the collection importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[7]))
    from ansible_collections.left4me.l4d2.plugins.modules import files_overlay

from ansible.module_utils.testing import patch_module_args

ME = pwd.getpwuid(os.getuid()).pw_name
CFG = "left4dead2/cfg/server.cfg"


def run(capsys, **args) -> dict:
    with patch_module_args(args), pytest.raises(SystemExit):
        files_overlay.main()
    return json.loads(capsys.readouterr().out)


@pytest.fixture
def state(tmp_path):
    (tmp_path / "overlays").mkdir()
    return tmp_path


def test_apply_rerun_and_check_mode(capsys, state):
    files = [{"dest": CFG, "content": "hostname a\n", "mode": "0640"}]
    common = dict(id="conf", state_dir=str(state), owner=ME)
    first = run(capsys, files=files, _ansible_diff=True, **common)
    assert first["changed"] and first["written"] == [CFG]
    assert first["diff"][0]["after"] == "hostname a\n"
    assert not run(capsys, files=files, **common)["changed"]
    changed = [{"dest": CFG, "content": "hostname b\n", "mode": "0640"}]
    predicted = run(capsys, files=changed, _ansible_check_mode=True, **common)
    assert predicted["changed"]
    assert (state / "overlays" / "conf" / CFG).read_text() == "hostname a\n"
    removed = run(capsys, files=[], **common)
    assert removed["removed"] == [CFG] and not (state / "overlays" / "conf" / CFG).exists()


def test_bad_dest_fails_and_changes_nothing(capsys, state):
    result = run(capsys, id="conf", state_dir=str(state), owner=ME,
                 files=[{"dest": "left4dead2/ok.cfg", "content": "x"},
                        {"dest": "../escape.cfg", "content": "x"}])
    assert result["failed"] and "'..'" in result["msg"]
    assert not (state / "overlays" / "conf").exists()
