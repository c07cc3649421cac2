# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Tests for module_utils/_manager.py: who manages an instance, recorded beside its env file;
a call for another manager is refused before anything changes, a new record never restarts."""

from __future__ import annotations

import pathlib
import sys

import pytest

try:
    from ansible_collections.left4me.l4d2.plugins.module_utils import _instance as inst
    from ansible_collections.left4me.l4d2.plugins.module_utils import _manager as mgr
except ImportError:  # plain pytest from the repo root: make the collection importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[7]))
    from ansible_collections.left4me.l4d2.plugins.module_utils import _instance as inst
    from ansible_collections.left4me.l4d2.plugins.module_utils import _manager as mgr


@pytest.fixture
def layout(tmp_path):
    state = tmp_path / "state"
    for sub in ("installation", "overlays/maps"):
        (state / sub).mkdir(parents=True)
    (tmp_path / "etc" / "instances").mkdir(parents=True)
    return inst.HostLayout(str(state), str(tmp_path / "etc"), str(tmp_path / "systemd"))


def configured(layout, name="coop1"):
    spec = inst.validate_spec({"name": name, "port": 27015}, layout)
    return inst.InstancePlan(name, spec, layout)


def test_a_configured_instance_gets_its_managers_record(layout):
    plan = configured(layout)
    mgr.note_managers([plan], layout, "ui")
    record = plan.files[-1]
    assert record.file.path == layout.manager_file("coop1")
    assert record.changed and not plan.config_changed  # recorded, never a restart for it
    assert mgr.parse_manager(record.file.content) == "ui" and plan.manager == "ui"
    assert (record.file.uid, record.file.mode) == (0, 0o644)


def test_the_same_manager_again_changes_nothing(layout):
    pathlib.Path(layout.manager_file("coop1")).write_text(mgr.render_manager("coop1", "ui"))
    plan = configured(layout)
    mgr.note_managers([plan], layout, "ui")
    assert not plan.files[-1].changed and plan.manager == "ui"


@pytest.mark.parametrize("spec", [True, False])
def test_another_managers_instance_is_refused(layout, spec):
    pathlib.Path(layout.manager_file("coop1")).write_text(
        mgr.render_manager("coop1", "inventory"))
    plan = configured(layout) if spec else inst.InstancePlan("coop1", None, layout)
    with pytest.raises(inst.InstanceError) as refused:
        mgr.note_managers([plan], layout, "ui")
    message = str(refused.value)
    assert "'coop1' is managed by inventory (playbooks/site.yml" in message
    assert "not by ui" in message and layout.manager_file("coop1") in message


def test_an_unrecorded_instance_is_taken_by_the_first_configuring_call(layout):
    named_only = inst.InstancePlan("old", None, layout)
    mgr.note_managers([named_only], layout, "ui")
    assert named_only.manager is None and named_only.files == []  # nothing recorded
    plan = configured(layout, "old")
    mgr.note_managers([plan], layout, "inventory")
    assert plan.manager == "inventory" and plan.files[-1].changed


@pytest.mark.parametrize("bad", ["", "UI", "ui;rm", "a" * 40, None])
def test_a_bad_manager_name_is_refused(layout, bad):
    with pytest.raises(inst.InstanceError, match="manager .* must be a short name"):
        mgr.note_managers([configured(layout)], layout, bad)


def test_the_record_is_removed_with_the_instance(layout):
    assert layout.manager_file("coop1") in inst.removal_targets(layout, "coop1",
                                                                layout.state_dir)


def test_comments_are_not_the_manager():
    assert mgr.parse_manager("# managed by inventory\nui\n") == "ui"
    assert mgr.parse_manager("# only a comment\n") is None
    assert mgr.parse_manager(None) is None
