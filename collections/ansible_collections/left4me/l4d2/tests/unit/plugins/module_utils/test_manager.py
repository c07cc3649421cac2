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


# --- claims: which UI (and which of its servers) owns an instance ---------------------------

UI_A = "ui:aaaa/7"
UI_B = "ui:bbbb/3"


def record(layout, name, manager="ui", claim=None):
    pathlib.Path(layout.manager_file(name)).write_text(mgr.render_manager(name, manager, claim))


def test_a_claim_is_recorded_with_the_manager(layout):
    plan = configured(layout)
    mgr.note_managers([plan], layout, "ui", {"coop1": (UI_A, False)})
    content = plan.files[-1].file.content
    assert mgr.parse_manager(content) == "ui" and mgr.parse_claim(content) == UI_A
    # A reader that knows only managers (the last line) still reads "ui".
    assert content.splitlines()[-1] == "ui"


@pytest.mark.parametrize("spec", [True, False])
def test_another_owners_instance_is_refused_naming_the_owner(layout, spec):
    record(layout, "coop1", claim=UI_A)
    plan = configured(layout) if spec else inst.InstancePlan("coop1", None, layout)
    with pytest.raises(inst.InstanceError) as refused:
        mgr.note_managers([plan], layout, "ui", {"coop1": (UI_B, True)})  # adopt is no help
    message = str(refused.value)
    assert f"'coop1' is owned by {UI_A}" in message and f"not by {UI_B}" in message
    assert "Nothing was changed" in message
    assert plan.files == []  # nothing recorded


def test_the_same_claim_again_changes_nothing(layout):
    record(layout, "coop1", claim=UI_A)
    plan = configured(layout)
    mgr.note_managers([plan], layout, "ui", {"coop1": (UI_A, False)})
    assert not plan.files[-1].changed


def test_a_call_without_a_claim_is_refused_for_a_claimed_instance(layout):
    record(layout, "coop1", claim=UI_A)
    with pytest.raises(inst.InstanceError, match=f"pass claim={UI_A}"):
        mgr.note_managers([inst.InstancePlan("coop1", None, layout)], layout, "ui")


@pytest.mark.parametrize("on_host", ["record", "env"])
def test_an_unclaimed_instance_is_not_taken_by_a_claim_without_adopt(layout, on_host):
    if on_host == "record":
        record(layout, "coop1")  # a ui record from before claims
    else:
        pathlib.Path(layout.env_file("coop1")).write_text("LEFT4ME_PORT=27015\n")
    with pytest.raises(inst.InstanceError, match="no owner recorded.*Reconcile host"):
        mgr.note_managers([configured(layout)], layout, "ui", {"coop1": (UI_B, False)})
    plan = configured(layout)
    mgr.note_managers([plan], layout, "ui", {"coop1": (UI_A, True)})  # its UI adopts it
    assert mgr.parse_claim(plan.files[-1].file.content) == UI_A and plan.files[-1].changed


def test_a_new_instance_takes_the_claim_without_adopt(layout):
    plan = configured(layout)
    mgr.note_managers([plan], layout, "ui", {"coop1": (UI_B, False)})
    assert mgr.parse_claim(plan.files[-1].file.content) == UI_B


def test_an_old_ui_record_still_works_without_claims(layout):
    record(layout, "coop1")
    plan = configured(layout)
    mgr.note_managers([plan], layout, "ui")
    assert not plan.files[-1].changed and plan.manager == "ui"


@pytest.mark.parametrize("bad", ["", "ui", "ui:", "ui:a b", "ui:a/b/c", "UI:a", "ui:a\nui"])
def test_a_bad_claim_is_refused(layout, bad):
    with pytest.raises(inst.InstanceError, match="claim .* must look like"):
        mgr.note_managers([configured(layout)], layout, "ui", {"coop1": (bad, False)})
