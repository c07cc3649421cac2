# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Tests for module_utils/_files_overlay.py on real directories."""

from __future__ import annotations

import json
import os
import pathlib
import sys

import pytest

try:
    from ansible_collections.left4me.l4d2.plugins.module_utils import _files_overlay as fo
except ImportError:  # plain pytest from the repo root: make the collection importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[7]))
    from ansible_collections.left4me.l4d2.plugins.module_utils import _files_overlay as fo

ME = (os.getuid(), os.getgid())
CFG = "left4dead2/cfg/server.cfg"
MOTD = "left4dead2/motd.txt"


@pytest.fixture
def root(tmp_path: pathlib.Path) -> pathlib.Path:
    (tmp_path / "overlays").mkdir()
    return tmp_path / "overlays" / "conf"


def converge(root: pathlib.Path, files: list[dict]) -> fo.FilesPlan:
    plan = fo.plan_files(str(root), files, ME)
    fo.apply_files_plan(plan)
    return plan


@pytest.mark.parametrize("dest", ["/etc/passwd", "../x", "a/../../x", "a//b", "./a", "a/.",
                                  "", "a/..", ".left4me-files.json", "a\nb"])
def test_dest_cannot_leave_the_overlay(dest):
    with pytest.raises(fo.FilesOverlayError):
        fo.validate_dest(dest)


@pytest.mark.parametrize(("mode", "value"), [("0644", 0o644), ("640", 0o640), ("0600", 0o600)])
def test_modes_parse(mode, value):
    assert fo.parse_mode(mode) == value


@pytest.mark.parametrize("mode", ["4755", "rw-r--r--", "0o644", "999", "02755"])
def test_bad_or_special_modes_are_refused(mode):
    with pytest.raises(fo.FilesOverlayError):
        fo.parse_mode(mode)


def test_file_and_directory_clash_is_refused(root):
    with pytest.raises(fo.FilesOverlayError, match="needs it as a directory"):
        fo.plan_files(str(root), [{"dest": "a", "content": ""}, {"dest": "a/b", "content": ""}],
                      ME)


def test_first_run_writes_files_modes_and_manifest(root):
    plan = converge(root, [{"dest": CFG, "content": "hostname x\n", "mode": "0640"},
                           {"dest": MOTD, "content": "hi\n"}])
    assert plan.changed
    assert (root / CFG).read_text() == "hostname x\n"
    assert (root / CFG).stat().st_mode & 0o7777 == 0o640
    assert (root / MOTD).stat().st_mode & 0o7777 == 0o644
    manifest = json.loads((root / fo.MANIFEST_NAME).read_text())
    assert manifest["files"] == sorted([CFG, MOTD])
    again = fo.plan_files(str(root), [{"dest": CFG, "content": "hostname x\n", "mode": "0640"},
                                      {"dest": MOTD, "content": "hi\n"}], ME)
    assert not again.changed and sorted(again.unchanged) == sorted([CFG, MOTD])


def test_content_and_mode_changes_are_planned(root):
    converge(root, [{"dest": CFG, "content": "a\n"}, {"dest": MOTD, "content": "m\n"}])
    plan = fo.plan_files(str(root), [{"dest": CFG, "content": "b\n"},
                                     {"dest": MOTD, "content": "m\n", "mode": "0600"}], ME)
    assert [(c.dest, c.action) for c in plan.changes] == [(CFG, "update"), (MOTD, "attributes")]
    diff = fo.plan_diff(plan)
    assert diff[0]["before"] == "a\n" and diff[0]["after"] == "b\n"


def test_dropped_files_are_removed_foreign_files_stay(root):
    converge(root, [{"dest": CFG, "content": "a\n"}, {"dest": MOTD, "content": "m\n"}])
    (root / "left4dead2" / "cfg" / "mine.cfg").write_text("mine")
    plan = converge(root, [{"dest": CFG, "content": "a\n"}])
    assert [(c.dest, c.action) for c in plan.changes] == [(MOTD, "remove")]
    assert not (root / MOTD).exists()
    assert (root / "left4dead2" / "cfg" / "mine.cfg").exists()
    assert json.loads((root / fo.MANIFEST_NAME).read_text())["files"] == [CFG]
    assert not fo.plan_files(str(root), [{"dest": CFG, "content": "a\n"}], ME).changed


def test_symlinked_parent_is_refused_and_nothing_written(root, tmp_path):
    converge(root, [{"dest": MOTD, "content": "m\n"}])
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "left4dead2" / "cfg").symlink_to(outside)
    with pytest.raises(fo.FilesOverlayError, match="is a symlink"):
        fo.plan_files(str(root), [{"dest": CFG, "content": "x"}], ME)
    assert list(outside.iterdir()) == []


def test_symlinked_overlay_root_is_refused(root, tmp_path):
    (tmp_path / "outside").mkdir()
    root.symlink_to(tmp_path / "outside")
    with pytest.raises(fo.FilesOverlayError, match="is a symlink"):
        fo.plan_files(str(root), [{"dest": "a.cfg", "content": "x"}], ME)


def test_symlink_in_a_files_place_is_refused(root, tmp_path):
    converge(root, [{"dest": MOTD, "content": "m\n"}])
    os.unlink(root / MOTD)
    (root / MOTD).symlink_to(tmp_path / "target")
    with pytest.raises(fo.FilesOverlayError, match="is a symlink"):
        fo.plan_files(str(root), [{"dest": MOTD, "content": "m\n"}], ME)
    assert not (tmp_path / "target").exists()


def test_removal_never_goes_through_a_symlinked_dir(root, tmp_path):
    converge(root, [{"dest": CFG, "content": "a\n"}])
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "server.cfg").write_text("precious")
    os.unlink(root / CFG)
    os.rmdir(root / "left4dead2" / "cfg")
    (root / "left4dead2" / "cfg").symlink_to(outside)
    converge(root, [])
    assert (outside / "server.cfg").read_text() == "precious"


def test_tampered_manifest_cannot_delete_outside(root, tmp_path):
    converge(root, [{"dest": MOTD, "content": "m\n"}])
    victim = tmp_path / "victim"
    victim.write_text("keep")
    (root / fo.MANIFEST_NAME).write_text(json.dumps({"files": ["../../victim", str(victim)]}))
    converge(root, [{"dest": MOTD, "content": "m\n"}])
    assert victim.read_text() == "keep"
