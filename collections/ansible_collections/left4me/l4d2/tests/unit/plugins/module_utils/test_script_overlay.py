# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Tests for module_utils/_script_overlay.py: what happens to leftovers, a failed build, the
swap and the previous tree, decided without a host."""

from __future__ import annotations

import pathlib
import sys

import pytest

try:
    from ansible_collections.left4me.l4d2.plugins.module_utils import _script_overlay as so
except ImportError:  # plain pytest from the repo root: make the collection importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[7]))
    from ansible_collections.left4me.l4d2.plugins.module_utils import _script_overlay as so

STALE = ["/s/overlays/.maps.build-1"]
RETIRED = ["/s/overlays/.maps.retired-1", "/s/overlays/.maps.retired-2"]


@pytest.mark.parametrize(("in_use", "removed"), [
    (False, STALE + RETIRED),
    (True, STALE),  # a mounted instance still reads a retired tree: keep it
])
def test_leftovers_to_remove(in_use, removed):
    assert so.leftovers_to_remove(STALE, RETIRED, in_use) == removed


@pytest.mark.parametrize(("rc", "result", "why"), [
    (0, "success", None),
    (0, "", None),
    (1, "exit-code", "exited with status 1"),
    (0, "exit-code", "exited with status 0"),
    (1, "timeout", "killed after RuntimeMaxSec=60s"),
    (137, "oom-kill", "killed by the out-of-memory killer (MemoryMax)"),
    (1, "signal", "killed by a signal"),
    (1, "core-dump", "ended with result core-dump (rc 1)"),
    (217, "", "never reported a result: systemd could not start the build unit (systemd-run"
              " rc 217; 217 is a bad user, 226 a namespace set-up failure; the output ends"
              " with the unit's journal)"),
])
def test_build_failure(rc, result, why):
    assert so.build_failure(rc, result, 60) == why


def test_a_failed_build_message_says_the_overlay_is_untouched():
    assert so.build_failure_message("maps", "/s/overlays/maps", "exited with status 1") == (
        "build script of overlay maps exited with status 1; the previous content of"
        " /s/overlays/maps is untouched")


@pytest.mark.parametrize(("exists", "before", "after", "changed"), [
    (False, "d0", "d0", True),  # a new overlay, even an empty one
    (True, "d0", "d0", False),
    (True, "d0", "d1", True),
])
def test_overlay_changed(exists, before, after, changed):
    assert so.overlay_changed(exists, before, after) is changed


@pytest.mark.parametrize(("exists", "in_use", "fate"), [
    (False, False, "none"),
    (True, False, "remove"),
    (True, True, "retire"),
])
def test_previous_tree_fate(exists, in_use, fate):
    assert so.previous_tree_fate(exists, in_use) == fate


def test_retired_path_is_hidden_beside_the_overlay():
    assert so.retired_path("/s/overlays", "maps", "ab12") == "/s/overlays/.maps.retired-ab12"


@pytest.mark.parametrize(("exists", "changed"), [(False, True), (True, False)])
def test_check_mode_predicts_a_change_only_for_a_new_overlay(exists, changed):
    assert so.check_mode_result("/s/overlays/maps", exists, "d0", 3) == dict(
        changed=changed, built=False, path="/s/overlays/maps", digest="d0", entries=3)


@pytest.mark.parametrize(("used", "cap", "why"), [
    (2 << 30, 2 << 30, None),
    (0, 2 << 30, None),
    ((2 << 30) + 4096, 2 << 30, "made a tree of more than 2.0 GiB (at least 2.0 GiB)"),
    (5 << 30, 2 << 30, "made a tree of more than 2.0 GiB (at least 5.0 GiB)"),
])
def test_oversize_failure(used, cap, why):
    found = so.oversize_failure(used, cap)
    assert (found is None) if why is None else found.startswith(why)
