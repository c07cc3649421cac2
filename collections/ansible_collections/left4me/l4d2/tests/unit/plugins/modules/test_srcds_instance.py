# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Runs the srcds_instance module in-process: bad arguments fail before anything is looked up
on the host or written (the start/stop paths need systemd: molecule/instances covers them)."""

from __future__ import annotations

import json
import pathlib
import sys

import pytest

try:
    from ansible_collections.left4me.l4d2.plugins.modules import srcds_instance
except ImportError:  # plain pytest from the repo root: make the collection importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[7]))
    from ansible_collections.left4me.l4d2.plugins.modules import srcds_instance

from ansible.module_utils.testing import patch_module_args


@pytest.fixture
def dirs(tmp_path):
    state = tmp_path / "state"
    for sub in ("installation", "overlays/maps", "runtime"):
        (state / sub).mkdir(parents=True)
    (tmp_path / "etc" / "instances").mkdir(parents=True)
    (tmp_path / "etc" / "instances" / "old.env").write_text("LEFT4ME_PORT=27020\n")
    (tmp_path / "systemd").mkdir()
    return {"state_dir": str(state), "config_dir": str(tmp_path / "etc"),
            "systemd_dir": str(tmp_path / "systemd"), "owner": "no-such-user-here"}


def listing(root: pathlib.Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def run(capsys, **args) -> dict:
    with patch_module_args(args), pytest.raises(SystemExit):
        srcds_instance.main()
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"name": "Bad!", "port": 27015}, "invalid instance name 'Bad!'"),
        ({"name": "a", "port": 80}, "between 1024 and 65535, got 80"),
        ({"name": "a", "port": 27020}, "already configured for instance 'old'"),
        ({"instances": [{"name": "a", "port": 27015}, {"name": "b", "port": 27015}]},
         "port 27015 is used by both instance 'a' and 'b'"),
        ({"instances": [{"name": "a", "port": 27015}, {"name": "a", "port": 27016}]},
         "instance 'a' is listed twice"),
        ({"name": "a", "port": 27015, "lowerdirs": ["/etc"]}, "outside the allowed roots"),
        ({"name": "a", "port": 27015, "overlays": ["maps"] * 499}, "make 501"),
        ({"name": "ghost"}, "instance 'ghost' is not configured on this host"),
        ({"name": "a", "state": "absent", "port": 27015}, "state=absent takes only the name"),
        ({"instances": [{"name": "a", "port": 27015}], "port": 27016},
         "port apply to a single instance"),
        ({"name": "a", "port": 27015}, "runtime user 'no-such-user-here' does not exist"),
    ],
)
def test_bad_arguments_fail_and_write_nothing(capsys, dirs, tmp_path, args, message):
    before = listing(tmp_path)
    result = run(capsys, _ansible_check_mode=False, **dirs, **args)
    assert result["failed"] and message in result["msg"], result["msg"]
    assert listing(tmp_path) == before


def test_name_and_instances_are_mutually_exclusive(capsys, dirs):
    result = run(capsys, name="a", instances=[{"name": "b"}], **dirs)
    assert result["failed"] and "mutually exclusive" in result["msg"]


def test_rcon_password_never_reaches_the_output(capsys, dirs):
    result = run(capsys, name="a", port=80, rcon_password="hunter2-secret", **dirs)
    assert "hunter2-secret" not in json.dumps(result)


@pytest.mark.parametrize(
    ("props", "running"),
    [
        ({"ActiveState": "active", "SubState": "running"}, True),
        ({"ActiveState": "activating", "SubState": "start-pre"}, True),
        ({"ActiveState": "activating", "SubState": "auto-restart"}, False),
        ({"ActiveState": "failed", "SubState": "failed"}, False),
        ({"ActiveState": "inactive", "SubState": "dead"}, False),
    ],
)
def test_running_means_serving_or_about_to(props, running):
    assert srcds_instance.is_running(props) is running
