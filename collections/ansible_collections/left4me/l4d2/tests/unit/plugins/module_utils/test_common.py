# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Tests for module_utils/_common.py: ids, owners, reads, atomic writes, symlink swaps,
locks."""

from __future__ import annotations

import grp
import os
import pathlib
import pwd
import shutil
import sys

import pytest

try:
    from ansible_collections.left4me.l4d2.plugins.module_utils import _common as common
except ImportError:  # plain pytest from the repo root: make the collection importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[7]))
    from ansible_collections.left4me.l4d2.plugins.module_utils import _common as common


class OwnError(Exception):
    pass


ME = pwd.getpwuid(os.getuid()).pw_name
MY_GROUP = grp.getgrgid(os.getgid()).gr_name
RULE = "use 1-64 characters from a-z, 0-9, '_' and '-', starting with a letter or digit"


# --- ids ---------------------------------------------------------------------------------


@pytest.mark.parametrize("good", ["a", "0", "comp-1", "maps_2", "a" * 64, "9-_"])
def test_validate_id_returns_a_good_id(good):
    assert common.validate_id(good, "overlay id") == good


@pytest.mark.parametrize(
    "bad", ["", "-a", "_a", "A", "a.b", "a/b", "a b", "a" * 65, ".hidden", "a\n", None, 7]
)
def test_validate_id_raises_the_callers_error_naming_the_thing(bad):
    with pytest.raises(OwnError) as exc:
        common.validate_id(bad, "instance name", OwnError)
    assert str(exc.value) == f"invalid instance name {bad!r}: {RULE}"


def test_validate_id_defaults_to_the_project_error():
    with pytest.raises(common.Left4meError, match="invalid overlay id 'A'"):
        common.validate_id("A", "overlay id")


# --- owners ------------------------------------------------------------------------------


def test_owner_ids_of_an_owner_alone_take_its_primary_group():
    assert common.owner_ids(ME) == (os.getuid(), pwd.getpwuid(os.getuid()).pw_gid)


def test_owner_ids_with_a_group_take_that_group():
    assert common.owner_ids(ME, MY_GROUP) == (os.getuid(), os.getgid())


def test_owner_ids_name_a_missing_owner_in_the_callers_words():
    with pytest.raises(OwnError) as exc:
        common.owner_ids("no-such-user-l4m", None, OwnError, "runtime user {name!r} is missing")
    assert str(exc.value) == "runtime user 'no-such-user-l4m' is missing"


def test_owner_ids_name_a_missing_group():
    with pytest.raises(OwnError) as exc:
        common.owner_ids(ME, "no-such-group-l4m", OwnError)
    assert str(exc.value) == "group 'no-such-group-l4m' does not exist"


def test_user_account_is_the_passwd_entry():
    assert common.user_account(ME).pw_dir == pwd.getpwnam(ME).pw_dir
    with pytest.raises(common.Left4meError, match="user 'no-such-user-l4m' does not exist"):
        common.user_account("no-such-user-l4m")


# --- atomic writes -----------------------------------------------------------------------


def test_write_atomic_writes_text_and_bytes_with_mode_and_owner(tmp_path):
    text, data = tmp_path / "a.cfg", tmp_path / "b.bin"
    common.write_atomic(str(text), "hostname ü\n", 0o640, (os.getuid(), os.getgid()))
    common.write_atomic(str(data), b"\x00\x01", 0o600)
    assert text.read_text(encoding="utf-8") == "hostname ü\n"
    assert data.read_bytes() == b"\x00\x01"
    assert (text.stat().st_mode & 0o7777, data.stat().st_mode & 0o7777) == (0o640, 0o600)
    assert (text.stat().st_uid, text.stat().st_gid) == (os.getuid(), os.getgid())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.cfg", "b.bin"]


def test_write_atomic_replaces_a_file_and_never_follows_a_symlink(tmp_path):
    outside = tmp_path / "outside"
    outside.write_text("keep\n")
    link = tmp_path / "link"
    link.symlink_to(outside)
    common.write_atomic(str(link), "new\n", 0o644)
    assert outside.read_text() == "keep\n"
    assert not link.is_symlink() and link.read_text() == "new\n"


def test_write_atomic_leaves_the_old_file_and_no_temp_when_it_fails(tmp_path):
    target = tmp_path / "f"
    target.write_text("old\n")
    with pytest.raises(TypeError):
        common.write_atomic(str(target), 12, 0o644)  # type: ignore[arg-type]
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["f"]


# --- symlink swaps -----------------------------------------------------------------------


def test_read_text_reads_what_is_there_and_none_where_nothing_is(tmp_path):
    cfg = tmp_path / "server.cfg"
    cfg.write_bytes(b'rcon_password "s\xffcret"\n')  # a byte that is not UTF-8: no crash
    assert common.read_text(str(cfg)) == 'rcon_password "s\ufffdcret"\n'
    assert common.read_text(str(tmp_path / "missing.cfg")) is None
    assert common.read_text(str(cfg / "below-a-file.cfg")) is None


def test_replace_symlink_creates_and_repoints_leaving_no_temp(tmp_path):
    link = tmp_path / "steamclient.so"
    common.replace_symlink(str(link), "/opt/a", (os.getuid(), os.getgid()))
    assert os.readlink(link) == "/opt/a"
    common.replace_symlink(str(link), "/opt/b")
    assert os.readlink(link) == "/opt/b"
    assert [p.name for p in tmp_path.iterdir()] == ["steamclient.so"]


def test_replace_symlink_replaces_a_temp_link_a_killed_run_left(tmp_path):
    link = tmp_path / "1.vpk"
    (tmp_path / f".1.vpk.tmp-{os.getpid()}").symlink_to("/stale")
    common.replace_symlink(str(link), "/cache/1.vpk")
    assert os.readlink(link) == "/cache/1.vpk"
    assert [p.name for p in tmp_path.iterdir()] == ["1.vpk"]


# --- locks -------------------------------------------------------------------------------


def test_exclusive_lock_creates_the_file_with_its_mode(tmp_path):
    lock = tmp_path / ".lock"
    with common.exclusive_lock(str(lock), 0o640, (os.getuid(), os.getgid())):
        assert lock.stat().st_mode & 0o7777 == 0o640


def test_exclusive_lock_raises_busy_at_once_while_held_and_frees_on_exit(tmp_path):
    lock = str(tmp_path / ".lock")
    busy = OwnError("another run holds it")
    with common.exclusive_lock(lock):
        held = common.exclusive_lock(lock, busy=busy)
        with pytest.raises(OwnError, match="another run holds it"):
            held.__enter__()
    with common.exclusive_lock(lock, busy=busy):
        pass


def test_exclusive_lock_refuses_a_symlink(tmp_path):
    (tmp_path / "target").write_text("")
    (tmp_path / ".lock").symlink_to(tmp_path / "target")
    with pytest.raises(OSError), common.exclusive_lock(str(tmp_path / ".lock")):
        pass


def test_exclusive_lock_propagates_errors_of_the_block_unchanged(tmp_path):
    lock = str(tmp_path / ".lock")
    with pytest.raises(KeyError), common.exclusive_lock(lock, busy=OwnError("busy")):
        raise KeyError("from the block")


# --- errors ------------------------------------------------------------------------------


def test_project_errors_share_one_base_and_an_instance_error_is_no_mount_error():
    from ansible_collections.left4me.l4d2.plugins.module_utils import (
        _files_overlay,
        _instance,
        _mount,
        _sandbox,
        _workshop,
    )

    errors = (_mount.MountError, _instance.InstanceError, _files_overlay.FilesOverlayError,
              _sandbox.SandboxError, _workshop.WorkshopError)
    assert all(issubclass(error, common.Left4meError) for error in errors)
    assert not issubclass(_instance.InstanceError, _mount.MountError)


# --- reads beneath a tenant's tree -----------------------------------------------------

CFG_PATH = "left4dead2/cfg/server.cfg"


def _tree(tmp_path: pathlib.Path) -> pathlib.Path:
    merged = tmp_path / "merged"
    (merged / "left4dead2" / "cfg").mkdir(parents=True)
    return merged


def test_read_beneath_reads_a_regular_file_and_none_where_nothing_is(tmp_path):
    merged = _tree(tmp_path)
    (merged / CFG_PATH).write_bytes(b'hostname "h\xffllo"\n')
    assert common.read_beneath(str(merged), CFG_PATH) == 'hostname "h\ufffdllo"\n'
    assert common.read_beneath(str(merged), "left4dead2/cfg/missing.cfg") is None
    assert common.read_beneath(str(merged), "left4dead2/nothing/server.cfg") is None
    assert common.read_beneath(str(merged / CFG_PATH), "below-a-file.cfg") is None
    assert common.read_beneath(str(merged), CFG_PATH + "/below-a-file") is None
    assert common.read_beneath(str(tmp_path / "absent"), CFG_PATH) is None


@pytest.mark.parametrize("component", ["left4dead2", "left4dead2/cfg", CFG_PATH])
def test_read_beneath_refuses_a_link_at_every_component(tmp_path, component):
    """A tenant's link to another instance's secret is never followed, whichever part it is."""
    merged = _tree(tmp_path)
    victim = tmp_path / "victim"
    (victim / "left4dead2" / "cfg").mkdir(parents=True)
    (victim / CFG_PATH).write_text('rcon_password "VICTIM"\n')
    link = merged / component
    if link.is_dir():
        shutil.rmtree(link)
    link.symlink_to(victim / component)
    with pytest.raises(common.UnsafeFileError, match="a symbolic link") as caught:
        common.read_beneath(str(merged), CFG_PATH)
    assert "VICTIM" not in str(caught.value)


def test_read_beneath_returns_at_once_for_a_fifo(tmp_path):
    merged = _tree(tmp_path)
    os.mkfifo(merged / CFG_PATH)  # nobody writes: a blocking open would wait forever
    with pytest.raises(common.UnsafeFileError, match="is a FIFO: not read"):
        common.read_beneath(str(merged), CFG_PATH)


def test_read_beneath_refuses_dev_zero_as_a_link_and_as_the_tree_itself(tmp_path):
    merged = _tree(tmp_path)
    (merged / CFG_PATH).symlink_to("/dev/zero")
    with pytest.raises(common.UnsafeFileError, match="a symbolic link"):
        common.read_beneath(str(merged), CFG_PATH)
    # the device reached without a link (a root that is /dev): refused by fstat, unread
    with pytest.raises(common.UnsafeFileError, match="a character device"):
        common.read_beneath("/dev", "zero")


def test_read_beneath_caps_the_size(tmp_path):
    merged = _tree(tmp_path)
    (merged / CFG_PATH).write_bytes(b"x" * 100)
    assert common.read_beneath(str(merged), CFG_PATH, limit=100) == "x" * 100
    with pytest.raises(common.UnsafeFileError, match="larger than 99 bytes"):
        common.read_beneath(str(merged), CFG_PATH, limit=99)


@pytest.mark.parametrize("path", ["/etc/passwd", "../victim/x.cfg", "a/../b", "a//b", ""])
def test_read_beneath_refuses_a_path_that_is_not_plain_relative(tmp_path, path):
    with pytest.raises(common.UnsafeFileError, match="not a plain relative path"):
        common.read_beneath(str(tmp_path), path)


# --- sizes ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [("2G", 2 << 30), ("512M", 512 << 20), ("64K", 64 << 10), ("1T", 1 << 40), ("0", 0),
     (" 7 ", 7), (4096, 4096)],
)
def test_parse_size(value, expected):
    assert common.parse_size(value, "memory_max") == expected


@pytest.mark.parametrize("value", ["2GB", "2g", "-1", "1.5G", "", "infinity", None, True, "G"])
def test_parse_size_refuses_what_is_not_a_size(value):
    with pytest.raises(OwnError, match=rf"memory_max {value!r} must be a size: .* e\.g\. 2G"):
        common.parse_size(value, "memory_max", OwnError)


def test_format_size():
    assert [common.format_size(n) for n in (7, 3 << 29, 2 << 30, 1536)] == [
        "7 bytes", "1.5 GiB", "2.0 GiB", "1.5 KiB"]


def test_tree_usage_counts_allocated_blocks_each_inode_once(tmp_path):
    tree = tmp_path / "upper"
    (tree / "a" / "b").mkdir(parents=True)
    (tree / "a" / "b" / "data").write_bytes(b"x" * (1 << 20))
    os.link(tree / "a" / "b" / "data", tree / "hardlink")  # the same blocks, counted once
    with open(tree / "sparse", "wb") as fh:  # 1 GiB long, nothing allocated
        fh.truncate(1 << 30)
    used = common.tree_usage(str(tree))
    assert 1 << 20 <= used < (1 << 20) + 64 * 4096
    assert common.tree_usage(str(tmp_path / "missing")) == 0


def test_tree_usage_never_follows_a_link(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "big").write_bytes(b"x" * (4 << 20))
    tree = tmp_path / "upper"
    tree.mkdir()
    (tree / "dir-link").symlink_to(outside)
    (tree / "file-link").symlink_to(outside / "big")
    (tree / "dev-link").symlink_to("/dev/zero")
    assert common.tree_usage(str(tree)) < 64 * 1024


def test_tree_usage_stops_once_past_the_cap(tmp_path):
    tree = tmp_path / "upper"
    tree.mkdir()
    for index in range(50):
        (tree / f"f{index}").write_bytes(b"x" * 65536)
    full = common.tree_usage(str(tree))
    partial = common.tree_usage(str(tree), stop_above=100_000)
    assert 100_000 < partial < full


def test_a_directory_swapped_for_a_link_is_not_entered(tmp_path):
    outside = tmp_path / "outside"
    (outside / "deep").mkdir(parents=True)
    (outside / "deep" / "big").write_bytes(b"x" * (1 << 20))
    tree = tmp_path / "upper"
    (tree / "real").mkdir(parents=True)
    (tree / "a").symlink_to(outside)  # as if a listed directory became a link mid-walk
    root_fd = os.open(tree, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert common._open_dir_beneath(root_fd, ("a", "deep")) is None
        assert common._open_dir_beneath(root_fd, ("missing",)) is None
        fd = common._open_dir_beneath(root_fd, ("real",))
        assert fd is not None
        os.close(fd)
    finally:
        os.close(root_fd)
    assert common.tree_usage(str(tree / "a")) <= 4096  # a link as the root: itself only
