# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The builds layout's decisions: what is current, what a mount uses, what goes."""

from __future__ import annotations

import os

import pytest
from ansible_collections.left4me.l4d2.plugins.module_utils import _builds as builds_lib

S = builds_lib.Builds("/s")


def overlay_line(mount_id: int, options: str) -> str:
    return (f"{mount_id} 1 0:{mount_id} / /s/runtime/x{mount_id}/merged rw,relatime shared:1"
            f" - overlay left4me-x{mount_id} rw,{options},upperdir=/u,workdir=/w\n")


def test_mounts_name_the_builds_they_were_made_over():
    text = (overlay_line(40, "lowerdir+=/s/overlays/a,lowerdir+=/s/builds/3")
            + overlay_line(41, "lowerdir=/s/overlays/b:/s/builds/5")  # mount(2), kernel < 6.8
            + "42 1 8:1 / /s/builds ro - ext4 /dev/sda1 rw\n"  # not an overlay
            + overlay_line(43, "lowerdir+=/s/builds/current-ish,lowerdir+=/elsewhere/7"))
    assert builds_lib.builds_in_use(text, S) == ({"3", "5"}, False)


def test_a_mount_from_before_builds_names_the_plain_installation():
    text = overlay_line(40, "lowerdir+=/s/overlays/a,lowerdir+=/s/installation")
    assert builds_lib.builds_in_use(text, S) == (set(), True)


def test_build_numbers_count_up_from_the_highest():
    assert builds_lib.next_build_name([]) == "1"
    assert builds_lib.next_build_name(["2", "10", "9"]) == "11"


def layout(names=(), current=None, flat=False, linked=False):
    return builds_lib.Layout(names=list(names), current=current, flat=flat,
                             installation_linked=linked)


def test_neither_the_current_build_nor_one_a_mount_uses_is_removed():
    assert builds_lib.removals(layout(["1", "2", "3", "4"], current="4"), {"2"}) == ["1", "3"]
    assert builds_lib.removals(layout(["1"], current="1"), set()) == []


@pytest.mark.parametrize(
    ("found", "flat_used", "migrates", "removes", "links"),
    [
        (layout(flat=True), False, True, False, False),  # unused plain install: renamed
        (layout(flat=True), True, False, False, False),  # in use, no build yet: left alone
        (layout(["1"], current="1", flat=True), True, False, False, False),  # still in use
        (layout(["1"], current="1", flat=True), False, False, True, False),  # unused: goes
        (layout(["1"], current="1"), False, False, False, True),  # link missing: made
        (layout(["1"], current="1", linked=True), False, False, False, False),  # settled
        (layout(), False, False, False, False),  # nothing installed yet
    ],
)
def test_a_plain_installation_moves_to_builds_only_when_no_mount_uses_it(
        found, flat_used, migrates, removes, links):
    assert builds_lib.migrates_flat(found, flat_used) is migrates
    assert builds_lib.removes_flat(found, flat_used) is removes
    assert builds_lib.links_installation(found) is links


def test_disk_refusal_states_what_the_update_needs_and_what_is_free():
    assert builds_lib.disk_refusal(10 << 30, 6 << 30, 2 << 30, "/s/builds", False) is None
    said = builds_lib.disk_refusal(7 << 30, 6 << 30, 2 << 30, "/s/builds", False)
    assert "needs 8.0 GiB" in said and "7.0 GiB is free" in said
    assert "takes 6.0 GiB (this filesystem has no reflinks)" in said
    assert "nothing was changed" in said
    shared = builds_lib.disk_refusal(1 << 30, 0, 2 << 30, "/s/builds", True)
    assert "shares blocks" in shared


def make_tree(root, files):
    for relative, body in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body)


def test_layout_reads_builds_current_and_a_plain_installation(tmp_path):
    builds = builds_lib.Builds(str(tmp_path))
    (tmp_path / "installation").mkdir()
    (tmp_path / "builds" / "2").mkdir(parents=True)
    (tmp_path / "builds" / "10").mkdir()
    (tmp_path / "builds" / ".removing-1").mkdir()
    (tmp_path / "builds" / "notes").mkdir()
    (tmp_path / "builds" / "current").symlink_to("10")
    found = builds_lib.read_layout(builds)
    assert (found.names, found.current, found.flat) == (["2", "10"], "10", True)
    assert found.leftovers == [".removing-1"]
    os.rename(tmp_path / "installation", tmp_path / "old")
    builds_lib.link_installation(builds)
    assert builds_lib.read_layout(builds).installation_linked is True
    assert (tmp_path / "installation").resolve() == tmp_path / "builds" / "10"


def test_a_current_link_to_anything_but_a_build_is_refused(tmp_path):
    (tmp_path / "builds").mkdir()
    (tmp_path / "builds" / "current").symlink_to("/etc")
    with pytest.raises(builds_lib.BuildsError, match="not at a build"):
        builds_lib.read_layout(builds_lib.Builds(str(tmp_path)))


def test_making_a_build_current_replaces_the_link_by_a_rename(tmp_path):
    builds = builds_lib.Builds(str(tmp_path))
    for name in ("1", "2"):
        (tmp_path / "builds" / name).mkdir(parents=True)
    builds_lib.make_current(builds, "1")
    inode = os.lstat(tmp_path / "builds" / "current").st_ino
    builds_lib.make_current(builds, "2")
    assert os.readlink(tmp_path / "builds" / "current") == "2"
    assert os.lstat(tmp_path / "builds" / "current").st_ino != inode
    assert sorted(os.listdir(tmp_path / "builds")) == ["1", "2", "current"]


def test_a_tree_signature_sees_changed_game_files_but_not_steam_bookkeeping(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    make_tree(a, {"srcds_run": "x", "left4dead2/steam.inf": "1", "steamapps/m.acf": "1"})
    os.system(f"cp -a {a} {b}")  # noqa: S605 - the module copies with cp -a too
    assert builds_lib.tree_signature(str(a)) == builds_lib.tree_signature(str(b))
    (b / "steamapps" / "m.acf").write_text("22")
    assert builds_lib.tree_signature(str(a)) == builds_lib.tree_signature(str(b))
    (b / "left4dead2" / "steam.inf").write_text("22")
    assert builds_lib.tree_signature(str(a)) != builds_lib.tree_signature(str(b))


def test_retiring_a_build_renames_it_away_and_deleting_never_follows_a_link(tmp_path):
    builds = builds_lib.Builds(str(tmp_path))
    outside = tmp_path / "outside"
    make_tree(outside, {"keep": "me"})
    make_tree(tmp_path / "builds" / "1", {"srcds_run": "x"})
    (tmp_path / "builds" / "1" / "link").symlink_to(outside)
    (tmp_path / "builds" / "1.execstack.json").write_text("{}")
    doomed = builds_lib.retire_build(builds, "1")
    assert doomed == str(tmp_path / "builds" / ".removing-1")
    assert not (tmp_path / "builds" / "1.execstack.json").exists()
    builds_lib.delete_retired([doomed])
    assert os.listdir(tmp_path / "builds") == []
    assert (outside / "keep").read_text() == "me"
