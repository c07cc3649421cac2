# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Tests for module_utils/_instance_plan.py: what the srcds_instance plan decides before
anything changes (the module itself runs in tests/unit/plugins/modules/test_srcds_instance.py)."""

from __future__ import annotations

import pathlib
import sys

try:
    from ansible_collections.left4me.l4d2.plugins.module_utils import _instance as inst
    from ansible_collections.left4me.l4d2.plugins.module_utils import _instance_plan as plans
except ImportError:  # plain pytest from the repo root: make the collection importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[7]))
    from ansible_collections.left4me.l4d2.plugins.module_utils import _instance as inst
    from ansible_collections.left4me.l4d2.plugins.module_utils import _instance_plan as plans


def plan(name="coop1", actions=("restart",)):
    p = inst.InstancePlan(name, None, inst.HostLayout())
    p.actions = list(actions)
    return p


def test_missing_sdk32_link_refuses_the_start(tmp_path, monkeypatch):
    home = tmp_path / "home"
    (home / ".steam" / "sdk64").mkdir(parents=True)
    (tmp_path / "linux64.so").write_bytes(b"\x7fELF")
    (home / ".steam" / "sdk64" / "steamclient.so").symlink_to(tmp_path / "linux64.so")
    monkeypatch.setattr(plans.pwd, "getpwnam",
                        lambda _user: type("Entry", (), {"pw_dir": str(home)}))
    message = plans.check_steam_links([plan(), plan("idle", actions=())], "left4me")
    assert message.startswith(f"not starting coop1: {home}/.steam/sdk32/steamclient.so is"
                              " missing.")
    assert plans.check_steam_links([plan("idle", actions=())], "left4me") is None


def test_one_instance_by_name_takes_every_instance_option():
    params = {"instances": None, "name": "coop1",
              **{key: None for key in plans.INSTANCE_OPTIONS}, "port": 27015}
    (raw,) = plans.raw_instances(params)
    assert raw["name"] == "coop1" and raw["port"] == 27015
    assert set(raw) == {"name", *plans.INSTANCE_OPTIONS}
