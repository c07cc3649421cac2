"""User-owned files overlays: who may touch them, paths that stay inside, links never
followed, limits, zip import (traversal, links, bombs) and export, in-use delete, revisions,
and the spec a build hands the collection's files_overlay module."""

from __future__ import annotations

import io
import json
import os
import stat
import struct
import zipfile
from pathlib import Path

import pytest
from ansible_collections.left4me.l4d2.plugins.module_utils import _files_overlay
from domain_helpers import with_settings

from left4me_ui import accounts, audit, blueprints, overlays, servers
from left4me_ui.authz import Forbidden, NotFound
from left4me_ui.core import Core
from left4me_ui.inventory import Inventory
from left4me_ui.overlays import OverlayError
from left4me_ui.validation import InstanceError

MiB = 1024 * 1024


@pytest.fixture
def core_inventory() -> Inventory:
    return Inventory({"alpha": {"overlays_list": [
        {"id": "demo-config", "kind": "files"},
        {"id": "demo-shared", "kind": "files", "users_may_stack": True}]}})


@pytest.fixture
def cfg(core, alice) -> str:
    """alice's overlay holding a server.cfg and an empty maps folder."""
    overlays.create(core, alice, "alice-cfg")
    overlays.write_text(core, alice, "alice-cfg", "left4dead2/cfg/server.cfg", "sv_cheats 0\n")
    overlays.make_folder(core, alice, "alice-cfg", "left4dead2/maps")
    return "alice-cfg"


def root(core: Core, overlay_id: str) -> Path:
    return core.settings.state_dir / "overlays" / overlay_id


def snapshot(top: Path) -> dict[str, object]:
    """What is on disk under top, links as where they point (never followed)."""
    found: dict[str, object] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            rel = str(path.relative_to(top))
            if path.is_symlink():
                found[rel] = ("link", os.readlink(path))
            elif path.is_dir():
                found[rel] = "dir"
            else:
                found[rel] = path.read_bytes()
    return found


def outside_state(tmp_path: Path) -> dict[str, object]:
    """Everything of the test's but the UI's state dir (where staging may appear)."""
    return {k: v for k, v in snapshot(tmp_path).items() if not k.startswith("state")}


def paths(core, actor, overlay_id) -> list[str]:
    return [e.path for e in overlays.tree(core, actor, overlay_id)]


def revision(core, actor, overlay_id) -> int:
    return overlays.get(core, actor, overlay_id).revision


# --- who may do what ---------------------------------------------------------------------------

ACTIONS = {
    "get": lambda c, a, o: overlays.get(c, a, o),
    "tree": lambda c, a, o: overlays.tree(c, a, o),
    "read": lambda c, a, o: overlays.read_text(c, a, o, "left4dead2/cfg/server.cfg"),
    "write": lambda c, a, o: overlays.write_text(c, a, o, "x.cfg", "x"),
    "upload": lambda c, a, o: overlays.upload(c, a, o, "x.bin", b"\0"),
    "folder": lambda c, a, o: overlays.make_folder(c, a, o, "new"),
    "move": lambda c, a, o: overlays.move(c, a, o, "left4dead2/maps", "maps2"),
    "remove": lambda c, a, o: overlays.remove(c, a, o, "left4dead2/maps"),
    "export": lambda c, a, o: overlays.export_zip(c, a, o),
    "import": lambda c, a, o: overlays.import_zip(c, a, o, make_zip({"y.cfg": b"y"})),
    "spec": lambda c, a, o: overlays.files_spec(c, a, o),
    "delete": lambda c, a, o: overlays.delete(c, a, o),
}


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("who", ["owner", "admin"])
def test_the_owner_and_admins_may_do_everything(core, alice, admin, cfg, who, action):
    ACTIONS[action](core, alice if who == "owner" else admin, cfg)


@pytest.mark.parametrize("action", ACTIONS)
def test_another_user_cannot_see_or_touch_it(core, bob, cfg, action):
    before = snapshot(root(core, cfg))
    with pytest.raises(NotFound, match="no such overlay"):
        ACTIONS[action](core, bob, cfg)
    assert snapshot(root(core, cfg)) == before


def test_lists_show_own_overlays_and_admins_see_all(core, alice, bob, admin, cfg):
    overlays.create(core, bob, "bob-maps")
    assert [o.id for o in overlays.list_for(core, alice)] == ["alice-cfg"]
    assert [o.id for o in overlays.list_for(core, bob)] == ["bob-maps"]
    listed = overlays.list_for(core, admin)
    assert [(o.id, o.owner_name, o.kind) for o in listed] == [
        ("alice-cfg", "alice", "files"), ("bob-maps", "bob", "files")]


def test_a_disabled_account_gets_nothing(core, alice, admin, cfg):
    accounts.set_disabled(core, admin, alice.user_id, True)
    with pytest.raises(Forbidden, match="disabled"):
        overlays.tree(core, alice, cfg)


# --- creating --------------------------------------------------------------------------------


def test_a_new_overlay_is_an_empty_private_folder(core, alice):
    overlay = overlays.create(core, alice, "mine")
    assert (overlay.id, overlay.owner_id, overlay.kind, overlay.revision) == \
        ("mine", alice.user_id, "files", 1)
    assert overlays.tree(core, alice, "mine") == []
    assert stat.S_IMODE(root(core, "mine").stat().st_mode) == 0o700
    assert stat.S_IMODE(root(core, "mine").parent.stat().st_mode) == 0o700


@pytest.mark.parametrize("bad", ["Caps", "-lead", "a/b", "..", "", "x" * 65, "has space"])
def test_an_id_off_the_collections_rule_is_refused(core, alice, bad):
    with pytest.raises(OverlayError, match="invalid overlay id .*1-64 characters"):
        overlays.create(core, alice, bad)
    assert overlays.list_for(core, alice) == []


def test_an_id_is_unique_across_users_and_the_inventory(core, alice, bob, cfg):
    with pytest.raises(OverlayError, match="overlay id 'alice-cfg' is taken"):
        overlays.create(core, bob, "alice-cfg")
    with pytest.raises(OverlayError, match="inventory declares overlay 'demo-config' .*alpha"):
        overlays.create(core, bob, "demo-config")
    with pytest.raises(OverlayError, match="kind must be one of files"):
        overlays.create(core, bob, "ws", kind="maps")
    assert overlays.list_for(core, bob) == []


# --- paths stay inside ---------------------------------------------------------------------------

ESCAPES = [
    ("/etc/passwd", "is absolute"),
    ("../outside.cfg", "'..' component"),
    ("left4dead2/../../outside.cfg", "'..' component"),
    ("./server.cfg", "'.' or '..' component"),
    ("left4dead2//server.cfg", "empty"),
    ("left4dead2/", "empty"),
    ("left4dead2\\..\\x.cfg", "backslash"),
    ("bad\0name", "NUL"),
    ("two\nlines", "line break"),
    ("", "give the (path|source|destination) inside"),
    (".left4me-files.json", "manifest"),
    ("a/" * 32 + "f.cfg", "is 33 levels deep; a path in an overlay has at most 32"),
    ("a/" * 1200 + "f.cfg", "is 1201 levels deep"),
    ("/".join(["n" * 250] * 5), "is 1254 bytes long; a path in an overlay is at most 1024"
                                " bytes"),
]


@pytest.mark.parametrize(("path", "message"), ESCAPES)
def test_every_path_escape_is_refused_and_nothing_changes(core, alice, cfg, tmp_path, path,
                                                          message):
    before, outside = snapshot(root(core, cfg)), outside_state(tmp_path)
    rev = revision(core, alice, cfg)
    for attempt in (lambda: overlays.write_text(core, alice, cfg, path, "x"),
                    lambda: overlays.upload(core, alice, cfg, path, b"x"),
                    lambda: overlays.make_folder(core, alice, cfg, path),
                    lambda: overlays.read_text(core, alice, cfg, path),
                    lambda: overlays.remove(core, alice, cfg, path),
                    lambda: overlays.move(core, alice, cfg, path, "moved"),
                    lambda: overlays.move(core, alice, cfg, "left4dead2/maps", path)):
        with pytest.raises(OverlayError, match=message):
            attempt()
    assert snapshot(root(core, cfg)) == before
    assert outside_state(tmp_path) == outside
    assert revision(core, alice, cfg) == rev


@pytest.fixture
def planted(core, cfg, tmp_path):
    """Links someone planted in the tree, pointing at a folder and a file outside it."""
    outside_dir = tmp_path / "outside"
    outside_dir.mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_text("do not touch\n")
    os.symlink(outside_dir, root(core, cfg) / "left4dead2" / "addons")
    os.symlink(secret, root(core, cfg) / "left4dead2" / "motd.txt")
    return outside_dir, secret


def test_a_planted_symlink_is_refused_never_followed(core, alice, cfg, planted):
    outside_dir, secret = planted
    rev = revision(core, alice, cfg)
    refusals = [
        (lambda: overlays.write_text(core, alice, cfg, "left4dead2/addons/x.vpk", "x"),
         "left4dead2/addons is a symbolic link"),
        (lambda: overlays.upload(core, alice, cfg, "left4dead2/addons/x.vpk", b"x"),
         "left4dead2/addons is a symbolic link"),
        (lambda: overlays.make_folder(core, alice, cfg, "left4dead2/addons/sub"),
         "left4dead2/addons is a symbolic link"),
        (lambda: overlays.write_text(core, alice, cfg, "left4dead2/motd.txt", "pwned"),
         "never writes through one"),
        (lambda: overlays.read_text(core, alice, cfg, "left4dead2/motd.txt"),
         "never follows one"),
        (lambda: overlays.move(core, alice, cfg, "left4dead2/motd.txt", "motd.txt"),
         "symbolic link; delete it"),
        (lambda: overlays.export_zip(core, alice, cfg), "cannot export .*left4dead2/addons"),
        (lambda: overlays.files_spec(core, alice, cfg), "cannot build .*left4dead2/addons"),
        (lambda: overlays.import_zip(core, alice, cfg, make_zip({"a.cfg": b"a"})),
         "cannot import .*symbolic link"),
    ]
    for attempt, message in refusals:
        with pytest.raises(OverlayError, match=message):
            attempt()
    assert list(outside_dir.iterdir()) == []
    assert secret.read_text() == "do not touch\n"
    assert revision(core, alice, cfg) == rev
    links = [(e.path, e.is_symlink) for e in overlays.tree(core, alice, cfg) if e.is_symlink]
    assert links == [("left4dead2/addons", True), ("left4dead2/motd.txt", True)]


def test_deleting_a_planted_link_removes_the_link_only(core, alice, cfg, planted):
    outside_dir, secret = planted
    (outside_dir / "keep.txt").write_text("keep")
    overlays.remove(core, alice, cfg, "left4dead2/addons")
    overlays.remove(core, alice, cfg, "left4dead2/motd.txt")
    assert (outside_dir / "keep.txt").read_text() == "keep"
    assert secret.read_text() == "do not touch\n"
    assert overlays.export_zip(core, alice, cfg)  # clean again


def test_a_path_32_levels_deep_is_fine_and_a_move_cannot_make_one_deeper(core, alice, cfg):
    deepest = "/".join(["d"] * 31) + "/f.cfg"
    overlays.write_text(core, alice, cfg, deepest, "x")
    overlays.make_folder(core, alice, cfg, "up/there")
    before, rev = snapshot(root(core, cfg)), revision(core, alice, cfg)
    with pytest.raises(OverlayError, match="moving d to up/there/d makes up/there/d/d/.*/d,"
                                           " which is 33 levels deep; a path in an overlay"
                                           " has at most 32"):
        overlays.move(core, alice, cfg, "d", "up/there/d")
    assert snapshot(root(core, cfg)) == before and revision(core, alice, cfg) == rev
    assert any(e.path == deepest for e in overlays.tree(core, alice, cfg))


def test_a_tree_made_deeper_before_the_limit_is_shown_refused_and_deletable(core, alice, cfg):
    # 1,200 levels (made before the limit, or by hand): every page of the overlay raised
    # RecursionError, a traceback instead of the tree.
    folder = os.open(root(core, cfg), os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(1200):
            os.mkdir("a", dir_fd=folder)
            below = os.open("a", os.O_RDONLY | os.O_DIRECTORY, dir_fd=folder)
            os.close(folder)
            folder = below
        os.close(os.open("f.cfg", os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=folder))
    finally:
        os.close(folder)
    deepest_shown = "/".join(["a"] * 32)
    entries = {e.path: e for e in overlays.tree(core, alice, cfg)}
    assert entries[deepest_shown].too_deep and entries[deepest_shown].refused
    assert not any(p.startswith(deepest_shown + "/") for p in entries)
    with pytest.raises(OverlayError, match="cannot build the overlay: a/a/.* holds folders more"
                                           " than 32 levels deep; delete it first"):
        overlays.files_spec(core, alice, cfg)
    overlays.remove(core, alice, cfg, "a")
    assert [e.path for e in overlays.tree(core, alice, cfg) if e.path.startswith("a")] == []
    overlays.write_text(core, alice, cfg, "a/f.cfg", "fine again")
    assert overlays.files_spec(core, alice, cfg)


# --- limits --------------------------------------------------------------------------------


@pytest.fixture
def small(core):
    return with_settings(core, overlay_max_file_bytes=1000, overlay_max_total_bytes=2500,
                         overlay_max_entries=6)


def test_an_upload_over_a_limit_is_refused_and_nothing_changes(small, alice, cfg):
    core = small
    before, rev = snapshot(root(core, cfg)), revision(core, alice, cfg)
    with pytest.raises(OverlayError, match="big.bin is 1001 bytes; the most one file may be is"
                                           " 1000 bytes"):
        overlays.upload(core, alice, cfg, "big.bin", b"x" * 1001)
    with pytest.raises(OverlayError, match="big.bin is 1001 bytes"):
        overlays.upload(core, alice, cfg, "big.bin", io.BytesIO(b"x" * 5000))
    overlays.upload(core, alice, cfg, "a.bin", b"a" * 1000)
    overlays.upload(core, alice, cfg, "b.bin", b"b" * 1000)
    with pytest.raises(OverlayError, match="c.bin would make the overlay 2.6 KiB; the most it may"
                                           " hold is 2.4 KiB"):
        overlays.upload(core, alice, cfg, "c.bin", b"c" * 600)
    overlays.upload(core, alice, cfg, "b.bin", b"b" * 500)  # replacing gives bytes back
    with pytest.raises(OverlayError, match="would make the overlay 8 files and folders; the"
                                           " most it may hold is 6"):
        overlays.make_folder(core, alice, cfg, "deep/er")
    assert "deep" not in snapshot(root(core, cfg))
    assert set(snapshot(root(core, cfg))) == set(before) | {"a.bin", "b.bin"}
    assert revision(core, alice, cfg) == rev + 3


def test_a_folder_upload_keeps_its_paths_below_the_chosen_folder(core, alice, cfg):
    # As a browser sends a folder "cfg": each file's path starts with the folder's name.
    rev = revision(core, alice, cfg)
    written = overlays.upload_files(core, alice, cfg, [
        ("cfg/server.cfg", b"hostname pack\n"), ("cfg/maps/c1.cfg", b"mp_gamemode coop\n")],
        into="left4dead2/")
    assert written == 2
    tree = snapshot(root(core, cfg))
    assert tree["left4dead2/cfg/server.cfg"] == b"hostname pack\n"  # replaced
    assert tree["left4dead2/cfg/maps/c1.cfg"] == b"mp_gamemode coop\n"
    assert tree["left4dead2/maps"] == "dir"  # what the upload did not name stays
    assert revision(core, alice, cfg) == rev + 1  # one change, however many files


@pytest.mark.parametrize(("files", "into", "message"), [
    ([("pack/ok.cfg", b"ok"), ("pack/../../escaped.cfg", b"x")], "",
     "uploaded file 'pack/../../escaped.cfg' has an empty, '.' or '..' component"),
    ([("pack/ok.cfg", b"ok")], "../up", "folder '../up' has an empty, '.' or '..' component"),
    ([("pack/ok.cfg", b"ok"), ("pack/big.bin", b"x" * 1001)], "",
     "uploaded file 'pack/big.bin' is 1001 bytes; the most one file may be is 1000 bytes"),
    ([(f"pack/{n}.bin", b"x" * 900) for n in "abc"], "",
     "the upload's files add up to more than the 2.4 KiB an overlay may hold"
     " .at uploaded file 'pack/c.bin'"),
    ([(f"pack/{n}.cfg", b"x") for n in "abcdef"], "",
     "the upload holds 6 entries|the overlay would hold 11 files and folders"),
    ([("pack/ok.cfg", b"ok"), ("pack/ok.cfg", b"again")], "",
     "uploaded file 'pack/ok.cfg' is in the upload twice"),
    ([("left4dead2/cfg/server.cfg/inside.cfg", b"x")], "",
     "left4dead2/cfg/server.cfg/inside.cfg"),
])
def test_a_refused_file_in_an_upload_stores_none_of_it(small, alice, cfg, files, into,
                                                       message):
    core = small
    before, rev = snapshot(root(core, cfg)), revision(core, alice, cfg)
    with pytest.raises(OverlayError, match=message):
        overlays.upload_files(core, alice, cfg, files, into)
    assert snapshot(root(core, cfg)) == before
    assert revision(core, alice, cfg) == rev


def test_another_user_cannot_upload_into_an_overlay(core, alice, bob, cfg):
    with pytest.raises((Forbidden, NotFound)):
        overlays.upload_files(core, bob, cfg, [("x.cfg", b"x")])
    assert "x.cfg" not in snapshot(root(core, cfg))


def test_a_full_disk_is_said_and_leaves_the_file_as_it_was(core, alice, cfg, monkeypatch):
    def no_space(*_args, **_kwargs):
        raise OSError(28, "No space left on device")

    rev, before = revision(core, alice, cfg), snapshot(root(core, cfg))
    monkeypatch.setattr(os, "rename", no_space)
    with pytest.raises(OverlayError, match="could not be changed: No space left on device"
                                           " .left4dead2/cfg/server.cfg."):
        overlays.write_text(core, alice, cfg, "left4dead2/cfg/server.cfg", "new\n")
    monkeypatch.undo()
    assert overlays.read_text(core, alice, cfg, "left4dead2/cfg/server.cfg") == "sv_cheats 0\n"
    assert snapshot(root(core, cfg)) == before  # no temp file left either
    assert revision(core, alice, cfg) == rev


def test_a_file_cannot_replace_a_folder_or_be_written_below_a_file(core, alice, cfg):
    with pytest.raises(OverlayError, match="left4dead2/maps is a folder"):
        overlays.write_text(core, alice, cfg, "left4dead2/maps", "x")
    with pytest.raises(OverlayError, match="left4dead2/cfg/server.cfg is a file, not a folder"):
        overlays.write_text(core, alice, cfg, "left4dead2/cfg/server.cfg/x", "x")


# --- edit, rename, move, delete ------------------------------------------------------------------


def test_text_is_edited_and_read_back(core, alice, cfg):
    overlays.write_text(core, alice, cfg, "left4dead2/cfg/server.cfg", "hostname \"héllo\"\n")
    assert overlays.read_text(core, alice, cfg, "left4dead2/cfg/server.cfg") == \
        "hostname \"héllo\"\n"
    overlays.upload(core, alice, cfg, "left4dead2/addons/x.vpk", b"\xff\xfe\0")
    with pytest.raises(OverlayError, match="x.vpk is not UTF-8 text; download it instead"):
        overlays.read_text(core, alice, cfg, "left4dead2/addons/x.vpk")
    assert overlays.read_bytes(core, alice, cfg, "left4dead2/addons/x.vpk") == b"\xff\xfe\0"
    on_disk = root(core, cfg) / "left4dead2" / "addons"
    assert stat.S_IMODE(on_disk.stat().st_mode) == 0o700
    assert stat.S_IMODE((on_disk / "x.vpk").stat().st_mode) == 0o600


def test_rename_move_and_delete(core, alice, cfg):
    overlays.move(core, alice, cfg, "left4dead2/cfg/server.cfg", "left4dead2/cfg/coop.cfg")
    overlays.move(core, alice, cfg, "left4dead2/cfg", "left4dead2/configs/all")
    assert paths(core, alice, cfg) == ["left4dead2", "left4dead2/configs", "left4dead2/configs/all",
                                       "left4dead2/configs/all/coop.cfg", "left4dead2/maps"]
    with pytest.raises(OverlayError, match="cannot move left4dead2/configs into itself"):
        overlays.move(core, alice, cfg, "left4dead2/configs", "left4dead2/configs/all/x")
    with pytest.raises(OverlayError, match="left4dead2/maps exists already"):
        overlays.move(core, alice, cfg, "left4dead2/configs", "left4dead2/maps")
    with pytest.raises(OverlayError, match="nothing.cfg does not exist"):
        overlays.move(core, alice, cfg, "nothing.cfg", "x.cfg")
    with pytest.raises(OverlayError, match="left4dead2/maps exists already"):
        overlays.make_folder(core, alice, cfg, "left4dead2/maps")
    overlays.remove(core, alice, cfg, "left4dead2/configs")
    overlays.remove(core, alice, cfg, "left4dead2/maps")
    assert paths(core, alice, cfg) == ["left4dead2"]
    with pytest.raises(OverlayError, match="left4dead2/maps does not exist"):
        overlays.remove(core, alice, cfg, "left4dead2/maps")


def test_every_change_bumps_the_revision_and_is_audited(core, alice, cfg):
    start = revision(core, alice, cfg)  # create 1, write 2, folder 3
    assert start == 3
    overlays.tree(core, alice, cfg)
    overlays.read_text(core, alice, cfg, "left4dead2/cfg/server.cfg")
    overlays.export_zip(core, alice, cfg)
    overlays.files_spec(core, alice, cfg)
    assert revision(core, alice, cfg) == start  # reading changes nothing
    overlays.write_text(core, alice, cfg, "a.cfg", "a")
    overlays.upload(core, alice, cfg, "b.bin", b"b")
    overlays.make_folder(core, alice, cfg, "c")
    overlays.move(core, alice, cfg, "a.cfg", "c/a.cfg")
    overlays.remove(core, alice, cfg, "b.bin")
    overlays.import_zip(core, alice, cfg, make_zip({"d.cfg": b"d"}))
    assert revision(core, alice, cfg) == start + 6
    with core.db.connect() as conn:
        actions = [(e.actor, e.action, e.target) for e in audit.entries(conn)][:6]
    assert actions == [
        ("alice", "import overlay zip", "overlay alice-cfg: merge"),
        ("alice", "delete overlay path", "overlay alice-cfg: b.bin"),
        ("alice", "move overlay path", "overlay alice-cfg: a.cfg -> c/a.cfg"),
        ("alice", "make overlay folder", "overlay alice-cfg: c"),
        ("alice", "upload overlay file", "overlay alice-cfg: b.bin"),
        ("alice", "write overlay file", "overlay alice-cfg: a.cfg"),
    ]


# --- delete the overlay -----------------------------------------------------------------------


def test_an_overlay_a_blueprint_uses_cannot_be_deleted(core, alice, bob, admin, cfg):
    bp = blueprints.create(core, alice, "coop", ["alice-cfg"], blueprints.BlueprintSettings())
    other = blueprints.create(core, admin, "admins", ["alice-cfg"],
                              blueprints.BlueprintSettings())  # an admin may stack any
    before = snapshot(root(core, cfg))
    with pytest.raises(blueprints.InUse, match="'alice-cfg' is used by blueprint 'coop' and 1"
                                               " blueprint of other users; take it out"):
        overlays.delete(core, alice, cfg)
    with pytest.raises(blueprints.InUse, match="used by blueprint 'admins', 'coop'"):
        overlays.delete(core, admin, cfg)
    # The owner sees her own blueprint by name and the admin's only counted.
    mine = overlays.get(core, alice, cfg)
    assert (mine.used_by, mine.used_by_others) == (("coop",), 1)
    assert [(o.used_by, o.used_by_others) for o in overlays.list_for(core, alice)] == \
        [(("coop",), 1)]
    assert overlays.get(core, admin, cfg).used_by == ("admins", "coop")
    assert snapshot(root(core, cfg)) == before
    blueprints.update(core, alice, bp.id, overlays=[])
    blueprints.delete(core, admin, other.id)
    overlays.delete(core, alice, cfg)
    assert not root(core, cfg).exists()
    assert overlays.list_for(core, alice) == []
    with pytest.raises(NotFound):
        overlays.get(core, alice, cfg)
    # The id never comes back, not even to its owner: its build logs and host files were
    # the deleted overlay's.
    with pytest.raises(OverlayError, match="overlay id 'alice-cfg' belonged to an overlay that"
                                           " was deleted; an id never comes back"):
        overlays.create(core, alice, cfg)
    assert overlays.list_for(core, alice) == []


# --- zip -------------------------------------------------------------------------------------


def make_zip(files: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def symlink_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("ok.cfg", b"fine")
        link = zipfile.ZipInfo("left4dead2/cfg/autoexec.cfg")
        link.create_system = 3
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/shadow")
    return buffer.getvalue()


def lying_zip(real_size: int = 20 * MiB, claimed: int = 1000) -> bytes:
    """A highly compressible entry whose local and central headers claim it is small."""
    data = bytearray(make_zip({"ok.cfg": b"fine", "bomb.bin": b"\0" * real_size}))
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = 0
        while (at := data.find(signature, at)) != -1:
            name_len = struct.unpack_from("<H", data, at + (26 if offset == 22 else 28))[0]
            start = at + (30 if offset == 22 else 46)
            if data[start:start + name_len] == b"bomb.bin":
                struct.pack_into("<I", data, at + offset, claimed)
            at += 4
    return bytes(data)


def many_entries(n: int) -> bytes:
    return make_zip({f"f{i}.cfg": b"x" for i in range(n)})


ZIP_REFUSALS = [
    ("traversal", lambda: make_zip({"ok.cfg": b"ok", "../evil.cfg": b"x"}),
     "zip entry '../evil.cfg' has an empty, '.' or '..' component"),
    ("nested traversal", lambda: make_zip({"a/../../evil.cfg": b"x"}),
     "zip entry 'a/../../evil.cfg' has an empty"),
    ("absolute", lambda: make_zip({"ok.cfg": b"ok", "/etc/evil.cfg": b"x"}),
     "zip entry '/etc/evil.cfg' is absolute"),
    ("backslash", lambda: make_zip({"..\\evil.cfg": b"x"}), "contains a backslash"),
    ("symlink", symlink_zip,
     "zip entry 'left4dead2/cfg/autoexec.cfg' is a symbolic link; links are refused"),
    ("ratio bomb", lambda: make_zip({"ok.cfg": b"ok", "zeros.bin": b"\0" * (20 * MiB)}),
     "zip entry 'zeros.bin' expands [0-9]+-fold .20.0 MiB.; refused as a zip bomb"),
    ("lying header", lying_zip,
     "zip entry 'bomb.bin' is damaged or lies about its size .*Bad CRC-32"),
    ("not a zip", lambda: b"PK not really", "not a zip archive"),
    ("deep", lambda: make_zip({"ok.cfg": b"ok", "a/" * 1200 + "f.cfg": b"x"}),
     "zip entry 'a/a/.*f.cfg' is 1201 levels deep"),
    ("long", lambda: make_zip({"ok.cfg": b"ok", "/".join(["n" * 250] * 5): b"x"}),
     "zip entry 'n.*' is 1254 bytes long; a path in an overlay is at most 1024 bytes"),
]


@pytest.mark.parametrize(("archive", "message"), [r[1:] for r in ZIP_REFUSALS],
                         ids=[r[0] for r in ZIP_REFUSALS])
def test_a_bad_zip_is_refused_by_entry_and_the_tree_is_unchanged(core, alice, cfg, tmp_path,
                                                                 archive, message):
    before, outside = snapshot(root(core, cfg)), outside_state(tmp_path)
    rev = revision(core, alice, cfg)
    for replace in (False, True):
        with pytest.raises(OverlayError, match=message):
            overlays.import_zip(core, alice, cfg, archive(), replace=replace)
    assert snapshot(root(core, cfg)) == before
    assert outside_state(tmp_path) == outside
    assert revision(core, alice, cfg) == rev
    staging = core.settings.overlays_staging_dir
    assert not staging.exists() or list(staging.iterdir()) == []


def test_zip_limits_on_size_count_and_total(small, alice, cfg):
    core = small
    before = snapshot(root(core, cfg))
    cases = [
        (make_zip({"ok.cfg": b"ok", "big.bin": os.urandom(1001)}),
         "zip entry 'big.bin' is 1001 bytes; the most one file may be is 1000 bytes"),
        (many_entries(7), "the zip holds 7 entries; the most an overlay may hold is 6"),
        (many_entries(4), "the overlay would hold 9 files and folders; the most it may hold"
                          " is 6"),
        (make_zip({f"{n}.bin": os.urandom(900) for n in "abc"}),
         "add up to more than the 2.4 KiB an overlay may hold .at zip entry 'c.bin'"),
        (make_zip({"a.bin": os.urandom(900), "b.bin": os.urandom(900)}),
         "zip entry 'b.bin' would make the overlay more than 2.4 KiB, the most it may hold"),
    ]
    overlays.upload(core, alice, cfg, "filler.bin", os.urandom(700))
    before = snapshot(root(core, cfg))
    for archive, message in cases:
        with pytest.raises(OverlayError, match=message):
            overlays.import_zip(core, alice, cfg, archive)
    assert snapshot(root(core, cfg)) == before


def test_an_entry_longer_than_its_header_is_cut_off_by_counting(core, alice, cfg,
                                                               monkeypatch):
    """A zip reader that does not stop at the declared size (CPython's does) still cannot
    write more than the header declared: bytes are counted as they are written."""
    real_open = zipfile.ZipFile.open

    def endless(self, info, mode="r", *args, **kwargs):
        if mode == "r" and getattr(info, "filename", info) == "bomb.bin":
            return io.BytesIO(b"\0" * (3 * MiB))
        return real_open(self, info, mode, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "open", endless)
    before = snapshot(root(core, cfg))
    with pytest.raises(OverlayError, match="zip entry 'bomb.bin' holds more than its header"
                                           " declares"):
        overlays.import_zip(core, alice, cfg, make_zip({"bomb.bin": b"\0" * 1000}))
    assert snapshot(root(core, cfg)) == before


def test_export_then_import_round_trips_the_tree(core, alice, cfg):
    overlays.upload(core, alice, cfg, "left4dead2/addons/map.vpk", os.urandom(5000))
    exported = overlays.export_zip(core, alice, cfg)
    overlays.create(core, alice, "copy")
    assert overlays.import_zip(core, alice, "copy", exported) == 2
    assert snapshot(root(core, "copy")) == snapshot(root(core, cfg))
    assert "left4dead2/maps" in paths(core, alice, "copy")  # the empty folder too
    with zipfile.ZipFile(io.BytesIO(exported)) as archive:
        assert sorted(archive.namelist()) == [
            "left4dead2/", "left4dead2/addons/", "left4dead2/addons/map.vpk", "left4dead2/cfg/",
            "left4dead2/cfg/server.cfg", "left4dead2/maps/"]


def test_import_merges_or_replaces(core, alice, cfg):
    overlays.import_zip(core, alice, cfg, make_zip({"left4dead2/cfg/server.cfg": b"new\n",
                                                    "left4dead2/motd.txt": b"hi\n"}))
    assert overlays.read_text(core, alice, cfg, "left4dead2/cfg/server.cfg") == "new\n"
    assert "left4dead2/maps" in paths(core, alice, cfg)  # kept
    with pytest.raises(OverlayError, match="zip entry 'left4dead2/maps' is a file but the"
                                           " overlay has a folder there"):
        overlays.import_zip(core, alice, cfg, make_zip({"left4dead2/maps": b"x"}))
    overlays.import_zip(core, alice, cfg, make_zip({"only.cfg": b"only"}), replace=True)
    assert paths(core, alice, cfg) == ["only.cfg"]
    assert stat.S_IMODE(root(core, cfg).stat().st_mode) == 0o700


# --- what a build hands the collection ---------------------------------------------------------


def test_files_spec_is_what_the_files_overlay_module_takes(core, alice, cfg, tmp_path):
    overlays.write_text(core, alice, cfg, "left4dead2/motd.txt", "Welcome!\n")
    spec = overlays.files_spec(core, alice, cfg)
    assert spec == [
        {"dest": "left4dead2/cfg/server.cfg", "content": "sv_cheats 0\n", "mode": "0644"},
        {"dest": "left4dead2/motd.txt", "content": "Welcome!\n", "mode": "0644"},
    ]
    # The collection's own planner takes it as is and writes the same files on a "host".
    host_overlays = tmp_path / "host" / "overlays"
    host_overlays.mkdir(parents=True)
    plan = _files_overlay.plan_files(str(host_overlays / cfg), spec,
                                     (os.getuid(), os.getgid()))
    _files_overlay.apply_files_plan(plan)
    written = snapshot(host_overlays / cfg)
    assert written["left4dead2/cfg/server.cfg"] == b"sv_cheats 0\n"
    assert written["left4dead2/motd.txt"] == b"Welcome!\n"


def test_files_spec_refuses_a_binary_file_by_name(core, alice, cfg):
    overlays.upload(core, alice, cfg, "left4dead2/addons/map.vpk", b"\x00\xff")
    with pytest.raises(OverlayError, match="left4dead2/addons/map.vpk is not UTF-8 text; a files"
                                           " overlay holds text only"):
        overlays.files_spec(core, alice, cfg)


def test_limits_come_from_the_environment(monkeypatch):
    from left4me_ui import settings

    defaults = settings.from_environment()
    assert (defaults.overlay_max_file_bytes, defaults.overlay_max_total_bytes,
            defaults.overlay_max_entries) == (64 * MiB, 512 * MiB, 10_000)
    monkeypatch.setenv("LEFT4ME_UI_OVERLAY_MAX_FILE_BYTES", "1000")
    monkeypatch.setenv("LEFT4ME_UI_OVERLAY_MAX_TOTAL_BYTES", "5000")
    monkeypatch.setenv("LEFT4ME_UI_OVERLAY_MAX_ENTRIES", "7")
    configured = settings.from_environment()
    assert (configured.overlay_max_file_bytes, configured.overlay_max_total_bytes,
            configured.overlay_max_entries) == (1000, 5000, 7)
    monkeypatch.setenv("LEFT4ME_UI_OVERLAY_MAX_ENTRIES", "lots")
    with pytest.raises(ValueError, match="LEFT4ME_UI_OVERLAY_MAX_ENTRIES must be a whole number"):
        settings.from_environment()


# --- which overlays a blueprint may stack ----------------------------------------------------


def test_users_stack_only_the_inventory_overlays_the_operator_offers(core, alice, admin):
    settings = blueprints.BlueprintSettings()
    # demo-config could hold the operator's secrets (a GSLT, an rcon_password): not marked.
    with pytest.raises(InstanceError, match="overlay 'demo-config' is the operator's .the"
                                            " inventory's. and not offered to users"):
        blueprints.create(core, alice, "coop", ["demo-shared", "demo-config"], settings)
    assert blueprints.list_for(core, alice) == []
    mine = blueprints.create(core, alice, "coop", ["demo-shared"], settings)
    with pytest.raises(InstanceError, match="'demo-config' is the operator's"):
        blueprints.update(core, admin, mine.id, overlays=["demo-config"])  # alice's blueprint
    assert blueprints.get(core, alice, mine.id).overlays == ("demo-shared",)
    blueprints.update(core, alice, mine.id, name="renamed")  # overlays unchanged: no check
    assert blueprints.create(core, admin, "ops", ["demo-config"], settings).overlays == (
        "demo-config",)
    inventory = core.inventory()
    assert blueprints.inventory_overlays_for(inventory, alice) == ["demo-shared"]
    assert blueprints.inventory_overlays_for(inventory, admin) == ["demo-config", "demo-shared"]


def test_a_blueprint_stacked_before_the_offer_changed_makes_no_server_from_it(core, alice):
    """A blueprint that stacked an inventory overlay before the operator stopped offering it
    (or before offers existed) starts no server with it: the check runs again there."""
    mine = blueprints.create(core, alice, "coop", ["demo-shared"], blueprints.BlueprintSettings())
    with core.db.connect() as conn:  # as an older UI stored it, unchecked
        conn.execute("UPDATE blueprints SET overlays = ? WHERE id = ?",
                     (json.dumps(["demo-config"]), mine.id))
    with pytest.raises(InstanceError, match="'demo-config' is the operator's"):
        servers.create(core, alice, "coop1", "alpha", mine.id)
    assert servers.list_for(core, alice) == []


def test_a_deleted_overlays_id_cannot_be_stacked(core, alice, cfg):
    overlays.delete(core, alice, cfg)
    with pytest.raises(InstanceError, match="overlay 'alice-cfg' was deleted; take it out"):
        blueprints.create(core, alice, "coop", [cfg], blueprints.BlueprintSettings())
