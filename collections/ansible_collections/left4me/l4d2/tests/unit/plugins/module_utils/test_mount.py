# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Tests for module_utils/_mount.py and the left4me-mount helper.

The pure helpers are tested everywhere. The mount tests make real kernel
overlayfs mounts and are skipped unless we are root and overlayfs works; their
state dirs live under /var/tmp because user xattrs need a disk filesystem.
"""

from __future__ import annotations

import contextlib
import errno
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

try:
    from ansible_collections.left4me.l4d2.plugins.module_utils import _mount as mount_lib
except ImportError:  # plain pytest from the repo root: make the collection importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[7]))
    from ansible_collections.left4me.l4d2.plugins.module_utils import _mount as mount_lib
from ansible_collections.left4me.l4d2.plugins.module_utils import _layout as layout_lib

MountError = mount_lib.MountError
COLLECTION = pathlib.Path(__file__).resolve().parents[4]
HELPER = COLLECTION / "roles" / "game_host" / "files" / "left4me-mount.py"
RUNTIME_USER = "nobody"


# --- fixtures ----------------------------------------------------------------


def unmount_below(base: str) -> None:
    """Unmount every mount at or below ``base``, deepest first."""
    with open("/proc/self/mountinfo", encoding="utf-8") as fh:
        points = [e.mount_point for e in mount_lib.parse_mountinfo(fh.read())]
    for point in sorted((p for p in points if p.startswith(base)), key=len, reverse=True):
        with contextlib.suppress(OSError):
            mount_lib.unmount_overlayfs(point)


@pytest.fixture
def state_dir():
    """A state dir with installation/, overlays/{a,b,c}/, workshop_cache/ and outside/."""
    base = tempfile.mkdtemp(prefix="left4me-test-", dir="/var/tmp")
    root = pathlib.Path(base, "state")
    for sub in ("installation", "overlays/a", "overlays/b", "overlays/c", "workshop_cache"):
        (root / sub).mkdir(parents=True)
    pathlib.Path(base, "outside").mkdir()
    os.chmod(base, 0o755)
    try:
        yield root
    finally:
        unmount_below(base)
        shutil.rmtree(base)


def overlay_works() -> str | None:
    if os.geteuid() != 0:
        return "real mounts need root"
    try:
        with open("/proc/filesystems", encoding="utf-8") as fh:
            if "overlay" not in fh.read():
                return "overlayfs is not available"
    except OSError as exc:
        return f"cannot read /proc/filesystems: {exc}"
    try:
        mount_lib.resolve_owner(RUNTIME_USER)
    except MountError:
        return f"user {RUNTIME_USER} missing"
    return None


needs_mount = pytest.mark.skipif(overlay_works() is not None, reason=str(overlay_works()))


def layers(root: pathlib.Path, *names: str) -> list[str]:
    return [str(root / "overlays" / n) for n in names] + [str(root / "installation")]


def mount(root: pathlib.Path, name: str, lowerdirs: list[str], **kwargs) -> mount_lib.MountPlan:
    plan = mount_lib.plan_mount(
        name, lowerdirs, state_dir=str(root), owner=RUNTIME_USER, ns_pid=os.getpid(), **kwargs
    )
    mount_lib.apply_mount_plan(plan)
    return plan


def current(root: pathlib.Path, name: str) -> mount_lib.MountState:
    return mount_lib.read_mount_state(str(root / "runtime" / name / "merged"), os.getpid())


# --- lowerdir validation -------------------------------------------------------


def roots_of(root: pathlib.Path) -> list[str]:
    return layout_lib.allowed_roots(str(root))


def test_lowerdirs_keep_order_and_resolve_symlinks_inside_roots(state_dir):
    (state_dir / "overlays" / "link-to-b").symlink_to(state_dir / "overlays" / "b")
    given = [
        str(state_dir / "overlays" / "a"),
        str(state_dir / "overlays" / "link-to-b") + "/",
        str(state_dir / "workshop_cache"),
        str(state_dir / "installation"),
    ]
    assert mount_lib.validate_lowerdirs(given, roots_of(state_dir)) == [
        str(state_dir / "overlays" / "a"),
        str(state_dir / "overlays" / "b"),
        str(state_dir / "workshop_cache"),
        str(state_dir / "installation"),
    ]


def make_bad_lowerdirs(root: pathlib.Path, case: str) -> list[str]:
    inst = str(root / "installation")
    outside = root.parent / "outside"
    if case == "escape-symlink":
        (root / "overlays" / "evil").symlink_to(outside)
        return [str(root / "overlays" / "evil"), inst]
    if case == "prefix-trick":
        (root / "overlays-evil").mkdir()
        return [str(root / "overlays-evil"), inst]
    if case == "file":
        (root / "overlays" / "f").write_text("x")
        return [str(root / "overlays" / "f"), inst]
    if case == "symlink-duplicate":
        (root / "overlays" / "again").symlink_to(root / "installation")
        return [inst, str(root / "overlays" / "again")]
    if case == "too-long":
        deep = root / "overlays" / ("d" * 120) / ("e" * 120)
        deep.mkdir(parents=True)
        return [str(deep), inst]
    return {
        "empty": [],
        "relative": ["overlays/a", inst],
        "dotdot": [str(root / "overlays" / ".." / "overlays" / "a"), inst],
        "dotdot-escape": [str(root / "overlays" / ".." / ".." / "outside"), inst],
        "colon": [str(root / "overlays" / "a:b"), inst],
        "comma": [str(root / "overlays" / "a,b"), inst],
        "backslash": [str(root / "overlays" / "a\\b"), inst],
        "newline": [str(root / "overlays" / "a\nb"), inst],
        "missing": [str(root / "overlays" / "nope"), inst],
        "outside": [str(outside), inst],
        "root-dir": ["/", inst],
        "duplicate": [inst, inst],
        "not-a-string": [None, inst],
    }[case]


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("empty", "at least one lowerdir"),
        ("relative", "not an absolute path"),
        ("dotdot", r"'\.\.' component"),
        ("dotdot-escape", r"'\.\.' component"),
        ("colon", "contains ':'"),
        ("comma", "contains ','"),
        ("backslash", r"contains '\\\\'"),
        ("newline", r"contains '\\n'"),
        ("missing", "does not exist"),
        ("file", "not a directory"),
        ("outside", "outside the allowed roots"),
        ("root-dir", "outside the allowed roots"),
        ("escape-symlink", r"evil \(-> .*/outside\) is outside the allowed roots"),
        ("prefix-trick", "outside the allowed roots"),
        ("duplicate", "duplicates lowerdir #1"),
        ("symlink-duplicate", "duplicates lowerdir #1"),
        ("too-long", "at most 255"),
        ("not-a-string", "non-empty path string"),
    ],
)
def test_bad_lowerdirs_are_refused(state_dir, case, message):
    lowerdirs = make_bad_lowerdirs(state_dir, case)
    with pytest.raises(MountError, match=message):
        mount_lib.validate_lowerdirs(lowerdirs, roots_of(state_dir))


def test_lowerdirs_must_be_a_list(state_dir):
    with pytest.raises(MountError, match="list of paths"):
        mount_lib.validate_lowerdirs(str(state_dir / "installation"), roots_of(state_dir))


def test_empty_allowlist_accepts_nothing(state_dir):
    with pytest.raises(MountError, match="allowed_roots is empty"):
        mount_lib.validate_lowerdirs([str(state_dir / "installation")], [])


def test_custom_allowlist(state_dir):
    outside = str(state_dir.parent / "outside")
    assert mount_lib.validate_lowerdirs([outside], [outside]) == [outside]
    with pytest.raises(MountError, match="outside the allowed roots"):
        mount_lib.validate_lowerdirs([str(state_dir / "installation")], [outside])


def make_layers(root: pathlib.Path, count: int, stem: str = "l") -> list[str]:
    made = []
    for index in range(count):
        path = root / "overlays" / f"{stem}{index:03d}"
        path.mkdir()
        made.append(str(path))
    return made


@pytest.mark.parametrize(("count", "ok"), [(1, True), (499, True), (500, True), (501, False)])
def test_layer_limit(state_dir, count, ok):
    lowerdirs = make_layers(state_dir, count)
    if ok:
        assert len(mount_lib.validate_lowerdirs(lowerdirs, roots_of(state_dir))) == count
    else:
        with pytest.raises(MountError, match="501 lower layers given.*at most 500"):
            mount_lib.validate_lowerdirs(lowerdirs, roots_of(state_dir))


# --- env file --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A=1\n", {"A": "1"}),
        ("A=/x:/y\nB=2", {"A": "/x:/y", "B": "2"}),
        ('A="/x y:/z"\n', {"A": "/x y:/z"}),
        ("A='it''s'\n", {"A": "its"}),
        ("A='a \"b\"'\n", {"A": 'a "b"'}),
        ("export A=1\n", {"A": "1"}),
        ("# comment\n\n   \nA=1 # trailing\n", {"A": "1"}),
        ("A=1\nA=2\n", {"A": "2"}),
        ("A=\nB=''\n", {"A": "", "B": ""}),
        ("  _K9=v  \n", {"_K9": "v"}),
        ("", {}),
    ],
)
def test_parse_env(text, expected):
    assert mount_lib.parse_env(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("JUSTAWORD\n", r"env:1: expected KEY=value"),
        ("A=1\n9A=2\n", r"env:2: expected KEY=value"),
        ("A-B=1\n", "expected KEY=value"),
        ("=1\n", "expected KEY=value"),
        ('A="open\n', "cannot parse value of A"),
        ("A=two words\n", "unquoted spaces"),
    ],
)
def test_parse_env_errors(text, message):
    with pytest.raises(MountError, match=message):
        mount_lib.parse_env(text, "env")


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"LEFT4ME_LOWERDIRS": "/a"}, ["/a"]),
        ({"LEFT4ME_LOWERDIRS": "/a:/b:/c", "OTHER": "x"}, ["/a", "/b", "/c"]),
    ],
)
def test_lowerdirs_from_env(env, expected):
    assert mount_lib.lowerdirs_from_env(env) == expected


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "does not set LEFT4ME_LOWERDIRS"),
        ({"LEFT4ME_LOWERDIRS": ""}, "does not set LEFT4ME_LOWERDIRS"),
        ({"LEFT4ME_LOWERDIRS": "/a::/b"}, "empty entry"),
        ({"LEFT4ME_LOWERDIRS": "/a:"}, "empty entry"),
    ],
)
def test_lowerdirs_from_env_errors(env, message):
    with pytest.raises(MountError, match=message):
        mount_lib.lowerdirs_from_env(env)


def test_read_env_file(tmp_path):
    path = tmp_path / "coop1.env"
    path.write_text('# managed\nLEFT4ME_LOWERDIRS="/a:/b"\n')
    assert mount_lib.read_env_file(str(path)) == {"LEFT4ME_LOWERDIRS": "/a:/b"}
    with pytest.raises(MountError, match=r"nope.env does not exist; create it"):
        mount_lib.read_env_file(str(tmp_path / "nope.env"))


# --- mountinfo -----------------------------------------------------------------------

ROOT_LINE = "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard"
# As kernel 6.18 shows a mount built with fsconfig(lowerdir+).
PLUS_LINE = (
    "48 27 0:40 / /s/runtime/t1/merged rw,nosuid,nodev,relatime - overlay left4me-t1"
    " rw,lowerdir+=/s/overlays/a,lowerdir+=/s/overlays/b,lowerdir+=/s/installation,"
    "upperdir=/s/runtime/t1/upper,workdir=/s/runtime/t1/work,uuid=on"
)
LEGACY_LINE = (
    "49 27 0:41 / /s/runtime/t2/merged rw,relatime shared:5 - overlay overlay"
    " rw,lowerdir=/s/overlays/a:/s/installation,upperdir=/s/runtime/t2/upper,"
    "workdir=/s/runtime/t2/work"
)
ESCAPED_LINE = (
    r"50 27 0:42 / /s\040x/runtime/t3/merged rw - overlay none"
    r" rw,lowerdir+=/s\040x/installation,upperdir=/s\040x/runtime/t3/upper,"
    r"workdir=/s\040x/runtime/t3/work"
)
TMPFS_LINE = "51 27 0:43 / /s/runtime/t4/merged rw - tmpfs tmpfs rw,size=4k"
SAMPLE = "\n".join([ROOT_LINE, PLUS_LINE, LEGACY_LINE, ESCAPED_LINE, TMPFS_LINE]) + "\n"


def test_parse_mountinfo_fields():
    entries = mount_lib.parse_mountinfo(SAMPLE)
    assert [e.mount_id for e in entries] == [27, 48, 49, 50, 51]
    plus = entries[1]
    assert plus.parent_id == 27
    assert plus.mount_point == "/s/runtime/t1/merged"
    assert plus.fstype == "overlay"
    assert plus.source == "left4me-t1"
    assert "nosuid" in plus.mount_options
    assert entries[3].mount_point == "/s x/runtime/t3/merged"


@pytest.mark.parametrize(
    ("merged", "expected"),
    [
        (
            "/s/runtime/t1/merged",
            mount_lib.MountState(
                True,
                "overlay",
                ["/s/overlays/a", "/s/overlays/b", "/s/installation"],
                "/s/runtime/t1/upper",
                "/s/runtime/t1/work",
            ),
        ),
        (
            "/s/runtime/t2/merged",
            mount_lib.MountState(
                True,
                "overlay",
                ["/s/overlays/a", "/s/installation"],
                "/s/runtime/t2/upper",
                "/s/runtime/t2/work",
            ),
        ),
        (
            "/s x/runtime/t3/merged",
            mount_lib.MountState(
                True,
                "overlay",
                ["/s x/installation"],
                "/s x/runtime/t3/upper",
                "/s x/runtime/t3/work",
            ),
        ),
        ("/s/runtime/t4/merged", mount_lib.MountState(True, "tmpfs")),
        ("/s/runtime/none/merged", mount_lib.MountState(False)),
    ],
)
def test_mount_state(merged, expected):
    assert mount_lib.mount_state(merged, SAMPLE) == expected


def test_mount_state_uses_topmost_of_stacked_mounts():
    stacked = SAMPLE + TMPFS_LINE.replace("t4", "t1").replace("51 27", "52 48") + "\n"
    state = mount_lib.mount_state("/s/runtime/t1/merged", stacked)
    assert state == mount_lib.MountState(True, "tmpfs")


def test_parse_mountinfo_rejects_garbage():
    with pytest.raises(MountError, match="unexpected mountinfo line"):
        mount_lib.parse_mountinfo("this is not mountinfo\n")


def test_legacy_mount_data():
    assert mount_lib.legacy_mount_data(["/a", "/b"], "/u", "/w") == (
        "lowerdir=/a:/b,upperdir=/u,workdir=/w"
    )


def test_we_share_our_own_mount_namespace():
    assert mount_lib.in_mount_namespace_of(os.getpid())
    assert mount_lib.enter_mount_namespace(os.getpid()) is False


# --- fuse-overlayfs leftovers ---------------------------------------------------------


def set_fuse_xattr(path: pathlib.Path) -> None:
    try:
        os.setxattr(path, "user.fuseoverlayfs.origin", b"x", follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EPERM):
            pytest.skip(f"user xattrs unsupported on {path}: {exc.strerror}")
        raise


@pytest.mark.parametrize("where", ["top", "nested-file", "nested-dir"])
def test_fuse_taint_is_found(state_dir, where):
    upper = state_dir / "upper"
    (upper / "left4dead2" / "cfg").mkdir(parents=True)
    (upper / "left4dead2" / "cfg" / "server.cfg").write_text("x")
    target = {
        "top": upper,
        "nested-file": upper / "left4dead2" / "cfg" / "server.cfg",
        "nested-dir": upper / "left4dead2" / "cfg",
    }[where]
    set_fuse_xattr(target)
    assert mount_lib.find_fuse_taint(str(upper)) == (str(target), "user.fuseoverlayfs.origin")
    with pytest.raises(MountError, match=rf"{target} has xattr.*mv {upper} {upper}.fuse-old"):
        mount_lib.check_upper_not_fuse_tainted(str(upper))


def test_fuse_taint_ignores_clean_trees_and_symlink_targets(state_dir):
    upper = state_dir / "upper"
    upper.mkdir()
    tainted = state_dir.parent / "outside" / "tainted"
    tainted.write_text("x")
    set_fuse_xattr(tainted)
    (upper / "link").symlink_to(tainted)
    (upper / "dirlink").symlink_to(tainted.parent)
    os.setxattr(upper, "user.left4me.note", b"fine")
    assert mount_lib.find_fuse_taint(str(upper)) is None
    assert mount_lib.find_fuse_taint(str(state_dir / "missing")) is None
    mount_lib.check_upper_not_fuse_tainted(str(upper))


def test_fuse_taint_check_never_follows_a_link_swapped_in_for_a_directory(state_dir,
                                                                          monkeypatch):
    """The game writes the upper dir: a directory it swaps for a link between the listing
    and the descent (simulated by a listing that calls the link a directory) is skipped,
    never followed to a tainted tree outside."""
    upper = state_dir / "upper"
    upper.mkdir()
    outside = state_dir.parent / "outside"
    (outside / "deep").mkdir()
    set_fuse_xattr(outside / "deep")
    (upper / "dirlink").symlink_to(outside)
    real_scandir = os.scandir

    class Lying:
        def __init__(self, entry):
            self.entry, self.name, self.path = entry, entry.name, entry.path

        def is_dir(self, follow_symlinks=True):
            return self.name == "dirlink" or self.entry.is_dir(follow_symlinks=follow_symlinks)

    class Listing:
        def __init__(self, *args):
            self.inner = real_scandir(*args)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.inner.close()

        def __iter__(self):
            return (Lying(entry) for entry in self.inner)

    monkeypatch.setattr(os, "scandir", Listing)
    assert mount_lib.find_fuse_taint(str(upper)) is None


# --- directories -----------------------------------------------------------------------


def test_capped_instance_dir_specs_leave_upper_and_work_to_its_filesystem(state_dir):
    paths = layout_lib.instance_paths("t1", str(state_dir))
    specs = mount_lib.instance_dir_specs(paths, 65534, 65534)
    assert [(s.path, s.uid, s.mode) for s in specs] == [
        (str(state_dir / "runtime"), 0, 0o755),
        (paths.root, 0, 0o755),
        (paths.writes, 0, 0o755),
        (paths.merged, 65534, 0o755),
    ]
    assert [(s.path, s.uid, s.mode) for s in mount_lib.writes_dir_specs(paths, 65534, 65534)] == [
        (paths.upper, 65534, 0o755), (paths.work, 0, 0o700)]


def test_instance_dir_specs_and_changes(state_dir):
    os.makedirs(state_dir / "runtime" / "t1" / "upper")  # an instance from before the cap
    paths = layout_lib.instance_paths("t1", str(state_dir))
    specs = mount_lib.instance_dir_specs(paths, 65534, 65534)
    assert [(s.path, s.uid, s.mode, s.create_only) for s in specs] == [
        (str(state_dir / "runtime"), 0, 0o755, True),
        (paths.root, 0, 0o755, False),
        (paths.upper, 65534, 0o755, False),
        (paths.work, 0, 0o700, False),
        (paths.merged, 65534, 0o755, False),
    ]
    assert mount_lib.dir_changes(specs) == [
        f"chown 65534:65534 {paths.upper}", f"create {paths.work}", f"create {paths.merged}"]
    created = mount_lib.ensure_dirs(specs)
    assert created == [paths.work, paths.merged]
    assert mount_lib.dir_changes(specs) == []
    os.chmod(paths.work, 0o755)
    os.chown(paths.upper, 0, 0)
    assert mount_lib.dir_changes(specs) == [
        f"chown 65534:65534 {paths.upper}",
        f"chmod 0700 {paths.work}",
    ]
    mount_lib.ensure_dirs(specs)
    assert mount_lib.dir_changes(specs) == []
    mount_lib.remove_created_dirs(created)
    assert [p.name for p in (state_dir / "runtime" / "t1").iterdir()] == ["upper"]


def test_dir_in_the_way_is_refused(state_dir):
    os.makedirs(state_dir / "runtime" / "t1")
    (state_dir / "runtime" / "t1" / "upper").write_text("not a dir")
    paths = layout_lib.instance_paths("t1", str(state_dir))
    with pytest.raises(MountError, match="exists but is not a directory"):
        mount_lib.dir_changes(mount_lib.instance_dir_specs(paths, 0, 0))


def test_unknown_owner_is_refused():
    with pytest.raises(MountError, match="runtime user 'no-such-user-l4m' does not exist"):
        mount_lib.resolve_owner("no-such-user-l4m")


# --- real mounts ---------------------------------------------------------------------------


@needs_mount
def test_three_layers_first_wins_and_writes_land_in_upper(state_dir):
    files = {
        "a": {"motd.txt": "from a"},
        "b": {"motd.txt": "from b", "only_b.txt": "b"},
        "installation": {"motd.txt": "base", "only_b.txt": "base", "gameinfo.txt": "game"},
    }
    for layer, content in files.items():
        layer_dir = state_dir / ("installation" if layer == "installation" else f"overlays/{layer}")
        for name, text in content.items():
            (layer_dir / name).write_text(text)
    plan = mount(state_dir, "t1", layers(state_dir, "a", "b"))
    assert plan.action == "mount"
    merged = pathlib.Path(plan.paths.merged)
    assert (merged / "motd.txt").read_text() == "from a"
    assert (merged / "only_b.txt").read_text() == "b"
    assert (merged / "gameinfo.txt").read_text() == "game"

    (merged / "new.txt").write_text("written")
    (merged / "gameinfo.txt").write_text("changed")
    upper = pathlib.Path(plan.paths.upper)
    assert (upper / "new.txt").read_text() == "written"
    assert (upper / "gameinfo.txt").read_text() == "changed"
    assert (state_dir / "installation" / "gameinfo.txt").read_text() == "game"
    assert not (state_dir / "overlays" / "a" / "new.txt").exists()

    nobody = mount_lib.resolve_owner(RUNTIME_USER)
    for path, owner, mode in [
        (plan.paths.upper, nobody, 0o755),
        (plan.paths.work, (0, 0), 0o700),
        (plan.paths.root, (0, 0), 0o755),
    ]:
        st = os.stat(path)
        assert ((st.st_uid, st.st_gid), st.st_mode & 0o7777) == (owner, mode), path
    with open("/proc/self/mountinfo", encoding="utf-8") as fh:
        entry = [e for e in mount_lib.parse_mountinfo(fh.read()) if e.mount_point == str(merged)]
    assert entry[0].source == "left4me-t1"
    assert {"nosuid", "nodev"} <= set(entry[0].mount_options)


@needs_mount
@pytest.mark.parametrize("count", [200, mount_lib.MAX_LAYERS])
def test_many_long_layers_use_lowerdir_plus(state_dir, count):
    """200 layers, and the kernel's maximum, far over any single option string."""
    stem = "a-layer-name-long-enough-to-blow-every-option-string-limit-"
    lowerdirs = make_layers(state_dir, count - 1, stem) + [str(state_dir / "installation")]
    assert len(":".join(lowerdirs)) > 4096
    (pathlib.Path(lowerdirs[-2]) / "deepest.txt").write_text("last overlay")
    (pathlib.Path(lowerdirs[0]) / "top.txt").write_text("first overlay")
    (pathlib.Path(lowerdirs[-2]) / "top.txt").write_text("hidden")
    plan = mount(state_dir, "many", lowerdirs)
    assert len(plan.lowerdirs) == count
    merged = pathlib.Path(plan.paths.merged)
    assert (merged / "deepest.txt").read_text() == "last overlay"
    assert (merged / "top.txt").read_text() == "first overlay"
    assert current(state_dir, "many").lowerdirs == lowerdirs


@needs_mount
def test_legacy_mount_is_understood_and_its_page_limit_enforced(state_dir):
    os.makedirs(state_dir / "runtime" / "old" / "upper")
    paths = layout_lib.instance_paths("old", str(state_dir))
    uid, gid = mount_lib.resolve_owner(RUNTIME_USER)
    mount_lib.ensure_dirs(mount_lib.instance_dir_specs(paths, uid, gid))
    lowerdirs = layers(state_dir, "a", "b")
    method = mount_lib.mount_overlayfs(lowerdirs, paths.upper, paths.work, paths.merged,
                                       legacy=True)
    assert method == "mount(2)"
    assert current(state_dir, "old").lowerdirs == lowerdirs
    again = mount_lib.plan_mount(
        "old", lowerdirs, state_dir=str(state_dir), owner=RUNTIME_USER, ns_pid=os.getpid()
    )
    assert (again.action, again.changed) == ("none", False)
    mount_lib.unmount_overlayfs(paths.merged)

    long_layers = make_layers(state_dir, 60, "x" * 80)
    with pytest.raises(MountError, match=r"lacks lowerdir\+.*over the \d+-byte limit"):
        mount_lib.mount_overlayfs(long_layers, paths.upper, paths.work, paths.merged, legacy=True)
    assert not current(state_dir, "old").mounted


@needs_mount
def test_mount_is_idempotent_and_layer_changes_need_remount(state_dir):
    first = mount(state_dir, "t1", layers(state_dir, "a"))
    assert first.changed
    again = mount_lib.plan_mount(
        "t1",
        layers(state_dir, "a"),
        state_dir=str(state_dir),
        owner=RUNTIME_USER,
        ns_pid=os.getpid(),
    )
    assert (again.action, again.dir_changes, again.changed) == ("none", [], False)
    mount_lib.apply_mount_plan(again)

    with pytest.raises(MountError, match="mounted with different layers.*pass remount"):
        mount(state_dir, "t1", layers(state_dir, "b"))
    assert current(state_dir, "t1").lowerdirs == layers(state_dir, "a")

    plan = mount(state_dir, "t1", layers(state_dir, "c", "b"), remount=True)
    assert plan.action == "remount"
    assert current(state_dir, "t1").lowerdirs == layers(state_dir, "c", "b")


@needs_mount
def test_failed_remount_restores_previous_layers(state_dir):
    mount(state_dir, "t1", layers(state_dir, "a"))
    plan = mount_lib.plan_mount(
        "t1",
        layers(state_dir, "b"),
        state_dir=str(state_dir),
        owner=RUNTIME_USER,
        remount=True,
        ns_pid=os.getpid(),
    )
    (state_dir / "overlays" / "b").rmdir()  # vanishes between plan and mount
    with pytest.raises(OSError, match=r"fsconfig lowerdir\+=.*overlays/b"):
        mount_lib.apply_mount_plan(plan)
    assert current(state_dir, "t1").lowerdirs == layers(state_dir, "a")


@needs_mount
def test_failed_first_mount_removes_the_dirs_it_created(state_dir):
    plan = mount_lib.plan_mount(
        "t1",
        layers(state_dir, "a"),
        state_dir=str(state_dir),
        owner=RUNTIME_USER,
        ns_pid=os.getpid(),
    )
    (state_dir / "overlays" / "a").rmdir()
    with pytest.raises(OSError):
        mount_lib.apply_mount_plan(plan)
    assert not (state_dir / "runtime").exists()


@needs_mount
def test_fuse_tainted_upper_is_refused_before_mounting(state_dir):
    upper = state_dir / "runtime" / "t1" / "upper"
    (upper / "addons").mkdir(parents=True)
    (upper / "addons" / "map.vpk").write_text("x")
    set_fuse_xattr(upper / "addons" / "map.vpk")
    with pytest.raises(MountError, match=r"addons/map.vpk has xattr user\.fuseoverlayfs"):
        mount(state_dir, "t1", layers(state_dir, "a"))
    assert not current(state_dir, "t1").mounted
    assert not (state_dir / "runtime" / "t1" / "merged").exists()


def test_upper_dir_over_its_cap_is_refused_before_mounting(state_dir):
    upper = state_dir / "runtime" / "t1" / "upper"
    (upper / "logs").mkdir(parents=True)
    (upper / "logs" / "console.log").write_bytes(b"x" * (3 << 20))
    (upper / "link").symlink_to(state_dir / "installation")  # counted as a link, not followed
    with pytest.raises(MountError, match=(
            rf"upper dir {upper} holds more than 2\.0 MiB \(at least 3\.\d MiB\), the cap for"
            r" this server \(upper_dir_max\).*Delete files in it, or raise upper_dir_max")):
        mount_lib.plan_mount("t1", layers(state_dir, "a"), state_dir=str(state_dir),
                             owner=RUNTIME_USER, ns_pid=os.getpid(), upper_dir_max=2 << 20)
    plan = mount_lib.plan_mount("t1", layers(state_dir, "a"), state_dir=str(state_dir),
                                owner=RUNTIME_USER, ns_pid=os.getpid(), upper_dir_max=4 << 20)
    assert plan.action == "mount"


@pytest.mark.parametrize(
    ("env", "expected"),
    [({}, 2 << 30), ({"LEFT4ME_UPPER_DIR_MAX": "1073741824"}, 1 << 30),
     ({"LEFT4ME_UPPER_DIR_MAX": "512M"}, 512 << 20)],
)
def test_upper_dir_max_from_env(env, expected):
    assert mount_lib.upper_dir_max_from_env(env) == expected


def test_upper_dir_max_from_env_refuses_garbage():
    with pytest.raises(MountError, match="x.env: LEFT4ME_UPPER_DIR_MAX 'lots' must be a size"):
        mount_lib.upper_dir_max_from_env({"LEFT4ME_UPPER_DIR_MAX": "lots"}, "x.env")


@needs_mount
def test_something_else_on_merged_is_refused(state_dir):
    merged = state_dir / "runtime" / "t1" / "merged"
    merged.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4k", "tmpfs", str(merged)], check=True)
    with pytest.raises(MountError, match="has a tmpfs mount on it"):
        mount(state_dir, "t1", layers(state_dir, "a"))


@needs_mount
def test_unmount_twice_is_fine(state_dir):
    mount(state_dir, "t1", layers(state_dir, "a"))
    plan = mount_lib.plan_unmount("t1", state_dir=str(state_dir), ns_pid=os.getpid())
    assert plan.changed
    assert mount_lib.apply_mount_plan(plan) == "unmounted"
    again = mount_lib.plan_unmount("t1", state_dir=str(state_dir), ns_pid=os.getpid())
    assert not again.changed
    assert mount_lib.apply_mount_plan(again) == "none"
    assert mount_lib.unmount_overlayfs(again.paths.merged) is False
    gone = mount_lib.plan_unmount("never", state_dir=str(state_dir), ns_pid=os.getpid())
    assert not gone.changed
    assert mount_lib.unmount_overlayfs(gone.paths.merged) is False


@needs_mount
def test_busy_unmount_names_the_holder(state_dir):
    plan = mount(state_dir, "t1", layers(state_dir, "a"))
    with open(os.path.join(plan.paths.merged, "held.txt"), "w") as held:
        with pytest.raises(OSError, match=rf"target busy, held by: pid {os.getpid()} ") as exc:
            mount_lib.unmount_overlayfs(plan.paths.merged)
        assert exc.value.errno == errno.EBUSY
        assert current(state_dir, "t1").mounted
        held.write("x")
    assert mount_lib.unmount_overlayfs(plan.paths.merged) is True


@needs_mount
def test_mount_from_a_private_namespace_lands_in_the_target_namespace(state_dir):
    """What the helper does from a sandboxed unit: setns, then mount."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare(1) missing")
    module_dir = pathlib.Path(mount_lib.__file__).parent
    script = (
        "import os, sys\n"
        f"sys.path.insert(0, {str(module_dir)!r})\n"
        # the collection, for the _common module it imports
        f"sys.path.insert(0, {str(module_dir.parents[4])!r})\n"
        "import _mount as o\n"
        f"assert not o.in_mount_namespace_of({os.getpid()})\n"
        f"assert o.enter_mount_namespace({os.getpid()}) is True\n"
        f"plan = o.plan_mount('t1', {layers(state_dir, 'a')!r}, state_dir={str(state_dir)!r},"
        f" owner={RUNTIME_USER!r}, ns_pid={os.getpid()})\n"
        "print(o.apply_mount_plan(plan))\n"
    )
    result = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "lowerdir+"
    assert current(state_dir, "t1").lowerdirs == layers(state_dir, "a")


# --- the left4me-mount helper ---------------------------------------------------------------


@pytest.fixture
def helper(tmp_path):
    """The helper installed as the role does: next to left4me_mount.py."""
    libexec = tmp_path / "libexec"
    libexec.mkdir()
    shutil.copy2(HELPER, libexec / "left4me-mount")
    shutil.copy2(mount_lib.__file__, libexec / "left4me_mount.py")
    for library in ("_common.py", "_layout.py"):
        shutil.copy2(pathlib.Path(mount_lib.__file__).with_name(library),
                     libexec / f"left4me{library[:-3]}.py")
    return libexec / "left4me-mount"


def run_helper(helper, *args, env=None):
    """Run the helper the way the game unit does: /usr/bin/python3 -I HELPER ..."""
    python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
    return subprocess.run(
        [python, "-I", str(helper), *args],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        cwd="/tmp",
    )


def write_env(config: pathlib.Path, name: str, lowerdirs: list[str]) -> None:
    (config / "instances").mkdir(parents=True, exist_ok=True)
    (config / "instances" / f"{name}.env").write_text(
        f'# managed by left4me\nLEFT4ME_LOWERDIRS="{":".join(lowerdirs)}"\n'
    )


@needs_mount
def test_helper_mounts_and_unmounts_idempotently(state_dir, helper):
    config = state_dir.parent / "etc"
    write_env(config, "coop1", layers(state_dir, "a", "b"))
    opts = ["--state-dir", str(state_dir), "--config-dir", str(config)]
    for _attempt in range(2):
        result = run_helper(helper, "mount", "coop1", *opts, "--owner", RUNTIME_USER)
        assert (result.returncode, result.stderr) == (0, "")
        assert current(state_dir, "coop1").lowerdirs == layers(state_dir, "a", "b")

    write_env(config, "coop1", layers(state_dir, "c"))  # changed while the server was stopped
    result = run_helper(helper, "mount", "coop1", *opts, "--owner", RUNTIME_USER)
    assert (result.returncode, result.stderr) == (0, "")
    assert current(state_dir, "coop1").lowerdirs == layers(state_dir, "c")

    for _attempt in range(2):
        result = run_helper(helper, "umount", "coop1", "--state-dir", str(state_dir))
        assert (result.returncode, result.stderr) == (0, "")
        assert not current(state_dir, "coop1").mounted


@needs_mount
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["mount", "Bad/Name"], "invalid instance name 'Bad/Name'"),
        (["umount", "x.y"], "invalid instance name"),
        (["remount", "coop1"], "invalid choice: 'remount'"),
        (["mount"], "invalid instance name ''"),
        (["check", "coop1"], "check takes no instance name and is root's alone"),
        (["mount", "coop1", "--lowerdir", "/"], "unrecognized arguments"),
        (["mount", "missing"], "missing.env does not exist"),
        (["mount", "outside"], "outside the allowed roots"),
        (["mount", "empty"], "does not set LEFT4ME_LOWERDIRS"),
    ],
)
def test_helper_errors_are_one_line_and_exit_1(state_dir, helper, args, message):
    config = state_dir.parent / "etc"
    write_env(config, "outside", [str(state_dir.parent / "outside")])
    (config / "instances" / "empty.env").write_text("OTHER=1\n")
    opts = ["--state-dir", str(state_dir), "--config-dir", str(config), "--owner", RUNTIME_USER]
    result = run_helper(helper, *args, *opts)
    assert result.returncode == 1
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith("left4me-mount: ")
    assert message in result.stderr
    assert not (state_dir / "runtime").exists()


@needs_mount
def test_helper_refuses_to_mount_an_upper_dir_over_the_env_files_cap(state_dir, helper):
    config = state_dir.parent / "etc"
    write_env(config, "coop1", layers(state_dir, "a"))
    env_file = config / "instances" / "coop1.env"
    env_file.write_text(env_file.read_text() + "LEFT4ME_UPPER_DIR_MAX=1048576\n")
    upper = state_dir / "runtime" / "coop1" / "upper"
    upper.mkdir(parents=True)
    (upper / "spray.dat").write_bytes(b"x" * (2 << 20))
    opts = ["--state-dir", str(state_dir), "--config-dir", str(config), "--owner", RUNTIME_USER]
    result = run_helper(helper, "mount", "coop1", *opts)
    assert result.returncode == 1
    assert result.stderr.startswith(
        f"left4me-mount: mount coop1: upper dir {upper} holds more than 1.0 MiB")
    assert not current(state_dir, "coop1").mounted
    (upper / "spray.dat").unlink()
    result = run_helper(helper, "mount", "coop1", *opts)
    assert (result.returncode, result.stderr) == (0, "")
    assert current(state_dir, "coop1").mounted
    # A start that finds the overlay still mounted is refused all the same.
    (upper / "spray.dat").write_bytes(b"x" * (2 << 20))
    result = run_helper(helper, "mount", "coop1", *opts)
    assert result.returncode == 1 and "holds more than 1.0 MiB" in result.stderr


@needs_mount
def test_check_names_each_mounted_server_whose_upper_dir_is_over_its_cap(state_dir, helper):
    config = state_dir.parent / "etc"
    for name, cap in (("full1", 1 << 20), ("roomy1", 8 << 20), ("idle1", 1 << 20)):
        write_env(config, name, layers(state_dir, "a"))
        env_file = config / "instances" / f"{name}.env"
        env_file.write_text(env_file.read_text() + f"LEFT4ME_UPPER_DIR_MAX={cap}\n")
        (state_dir / "runtime" / name / "upper").mkdir(parents=True)
        (state_dir / "runtime" / name / "upper" / "spray.dat").write_bytes(b"x" * (2 << 20))
    (config / "instances" / "broken.env").write_text("not an env file\n")
    for name in ("full1", "roomy1"):  # idle1 is over its cap too, but not running
        mount(state_dir, name, layers(state_dir, "a"))
    over = mount_lib.uppers_over_cap(str(config), str(state_dir), ns_pid=os.getpid())
    assert [name for name, _why in over] == ["full1"]
    assert over[0][1].startswith(
        f"upper dir {state_dir}/runtime/full1/upper holds more than 1.0 MiB (at least 2.0 MiB)")
    # The helper says so in one line per server (the timer's journal), and exits 0.
    result = run_helper(helper, "check", "--state-dir", str(state_dir), "--config-dir",
                        str(config))
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines()[0].startswith(
        f"left4me-mount: check full1: upper dir {state_dir}/runtime/full1/upper holds more"
        " than 1.0 MiB")
    assert result.stderr.splitlines()[0].endswith("; killing the server")


@needs_mount
def test_helper_refuses_path_overrides_under_sudo(state_dir, helper):
    env = dict(os.environ, SUDO_UID="1000")
    result = run_helper(helper, "umount", "coop1", "--state-dir", str(state_dir), env=env)
    assert result.returncode == 1
    assert "refused under sudo" in result.stderr


# --- the writes filesystem: a server's cap, refused as it writes ---------------------------


def loop_mounts_work() -> str | None:
    missing = overlay_works()
    if missing:
        return missing
    if not os.path.exists("/dev/loop-control"):
        return "no /dev/loop-control: loop devices are not available here"
    for tool in (mount_lib.MKFS_EXT4[0], mount_lib.RESIZE2FS, mount_lib.E2FSCK[0]):
        if not os.access(tool, os.X_OK):
            return f"{tool} missing (e2fsprogs)"
    return None


needs_loop = pytest.mark.skipif(loop_mounts_work() is not None, reason=str(loop_mounts_work()))


def loops_backed_by(image: str) -> list[str]:
    """The loop devices whose backing file is ``image`` (sysfs; no losetup needed)."""
    found = []
    for backing in pathlib.Path("/sys/block").glob("loop*/loop/backing_file"):
        if backing.read_text().strip() == image:
            found.append(backing.parent.parent.name)
    return found


def env_with_cap(config: pathlib.Path, name: str, lowerdirs: list[str], cap: str) -> None:
    write_env(config, name, lowerdirs)
    env_file = config / "instances" / f"{name}.env"
    env_file.write_text(env_file.read_text() + f"LEFT4ME_UPPER_DIR_MAX={cap}\n")


def fill(path: pathlib.Path, most: int) -> tuple[int, str | None]:
    """Write up to ``most`` bytes to ``path``; (bytes written, the error that stopped it)."""
    written, chunk = 0, b"\xa5" * (1 << 20)
    try:
        with open(path, "wb") as out:
            while written < most:
                written += out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
    except OSError as exc:
        return written, exc.strerror
    return written, None


def test_ext4_superblock_usage_and_refusals():
    superblock = bytearray(1024)
    struct_pack = __import__("struct").pack_into
    struct_pack("<III", superblock, 0x4, 1000, 0, 250)  # blocks, reserved, free
    struct_pack("<I", superblock, 0x18, 2)  # 1024 << 2: 4 KiB blocks
    struct_pack("<H", superblock, 0x38, 0xEF53)
    assert mount_lib.ext4_usage(bytes(superblock)) == (1000 * 4096, 750 * 4096)
    with pytest.raises(MountError, match="holds no ext4 filesystem; move it aside"):
        mount_lib.ext4_usage(bytes(1024), "/x/writes.img")
    assert mount_lib.writes_size((64 << 20) + 123) == 64 << 20
    assert mount_lib.shrink_refusal(10 << 20, 64 << 20, "img") is None
    assert mount_lib.shrink_refusal(100 << 20, 64 << 20, "img") == (
        "the server's writes (img) take 100.0 MiB, more than the new upper_dir_max 64.0 MiB: a"
        " cap is never shrunk below what is used. Keep upper_dir_max at 100.0 MiB or more, or"
        " delete files the server wrote first")


@needs_mount
def test_check_mode_plan_of_a_new_server_changes_nothing(state_dir):
    plan = mount_lib.plan_mount("t1", layers(state_dir, "a"), state_dir=str(state_dir),
                                owner=RUNTIME_USER, ns_pid=os.getpid(), upper_dir_max=64 << 20)
    assert plan.changed
    assert plan.describe_writes() == [
        f"create {plan.paths.image} (64.0 MiB, sparse)",
        f"mount {plan.paths.image} on {plan.paths.writes}"]
    assert not (state_dir / "runtime").exists()


@needs_loop
def test_a_server_writing_past_its_cap_gets_enospc_and_the_host_keeps_its_disk(state_dir, helper):
    config = state_dir.parent / "etc"
    env_with_cap(config, "coop1", layers(state_dir, "a"), "64M")
    opts = ["--state-dir", str(state_dir), "--config-dir", str(config), "--owner", RUNTIME_USER]
    result = run_helper(helper, "mount", "coop1", *opts)
    assert (result.returncode, result.stderr) == (0, "")
    paths = layout_lib.instance_paths("coop1", str(state_dir))
    image = os.stat(paths.image)
    assert (image.st_uid, image.st_mode & 0o7777, image.st_size) == (0, 0o600, 64 << 20)
    assert image.st_blocks * 512 < 2 << 20, "a new server's image is not sparse"
    upper = os.stat(paths.upper)
    assert (upper.st_uid, upper.st_mode & 0o777) == (mount_lib.resolve_owner(RUNTIME_USER)[0],
                                                     0o755)

    written, stopped_by = fill(pathlib.Path(paths.merged) / "fill.bin", 256 << 20)
    assert stopped_by == "No space left on device"
    assert written <= 64 << 20
    assert os.stat(paths.image).st_blocks * 512 <= (64 << 20) + (1 << 20)
    (pathlib.Path(paths.merged) / "fill.bin").unlink()  # mounted with discard: given back
    for _attempt in range(60):  # ext4 discards after its journal commits (sync forces it),
        os.sync()  # and the loop device punches the blocks out of the image soon after
        if os.stat(paths.image).st_blocks * 512 < 4 << 20:
            break
        time.sleep(0.5)
    assert os.stat(paths.image).st_blocks * 512 < 4 << 20
    # the cap is the filesystem's: the periodic count leaves this server to it
    assert mount_lib.uppers_over_cap(str(config), str(state_dir), ns_pid=os.getpid()) == []

    for _attempt in range(2):
        result = run_helper(helper, "umount", "coop1", "--state-dir", str(state_dir))
        assert (result.returncode, result.stderr) == (0, "")
    assert not current(state_dir, "coop1").mounted
    assert not mount_lib.read_mount_state(paths.writes, os.getpid()).mounted
    assert loops_backed_by(paths.image) == [], "the loop device was not released"


@needs_loop
def test_a_cap_grows_keeps_the_files_and_never_shrinks_below_use(state_dir, helper):
    config = state_dir.parent / "etc"
    opts = ["--state-dir", str(state_dir), "--config-dir", str(config), "--owner", RUNTIME_USER]
    paths = layout_lib.instance_paths("coop1", str(state_dir))

    def start(cap):
        env_with_cap(config, "coop1", layers(state_dir, "a"), cap)
        return run_helper(helper, "mount", "coop1", *opts)

    def stop():
        assert run_helper(helper, "umount", "coop1", "--state-dir", str(state_dir)).returncode == 0

    assert start("64M").returncode == 0
    kept = pathlib.Path(paths.merged) / "kept.bin"
    assert fill(kept, 40 << 20) == (40 << 20, None)
    stop()

    assert (start("128M").returncode, os.stat(paths.image).st_size) == (0, 128 << 20)
    assert kept.stat().st_size == 40 << 20
    assert mount_lib.statvfs_usage(paths.writes)[0] > 100 << 20
    same = mount_lib.plan_mount("coop1", layers(state_dir, "a"), state_dir=str(state_dir),
                                owner=RUNTIME_USER, ns_pid=os.getpid(), upper_dir_max=128 << 20)
    assert (same.changed, same.writes_steps) == (False, [])
    stop()

    refused = start("32M")
    assert refused.returncode == 1
    # what it holds counts the filesystem's own metadata too, so a little over 40 MiB
    assert re.search(r"writes \(\S+writes.img\) take [45]\d\.\d MiB, more than the new"
                     r" upper_dir_max 32.0 MiB", refused.stderr), refused.stderr
    assert os.stat(paths.image).st_size == 128 << 20
    assert not mount_lib.read_mount_state(paths.writes, os.getpid()).mounted

    assert start("80M").returncode == 0  # a shrink that fits
    assert (os.stat(paths.image).st_size, kept.stat().st_size) == (80 << 20, 40 << 20)
    stop()


@needs_loop
def test_a_server_with_a_plain_upper_dir_keeps_its_files_and_its_counted_cap(state_dir, helper):
    config = state_dir.parent / "etc"
    env_with_cap(config, "old1", layers(state_dir, "a"), "64M")
    upper = state_dir / "runtime" / "old1" / "upper"
    upper.mkdir(parents=True)
    (upper / "server.log").write_text("from before")
    opts = ["--state-dir", str(state_dir), "--config-dir", str(config), "--owner", RUNTIME_USER]
    assert run_helper(helper, "mount", "old1", *opts).returncode == 0
    merged = state_dir / "runtime" / "old1" / "merged"
    assert (merged / "server.log").read_text() == "from before"
    assert not (state_dir / "runtime" / "old1" / "writes.img").exists()
    assert current(state_dir, "old1").upperdir == str(upper)


@needs_loop
def test_a_converge_is_refused_a_cap_below_what_the_image_holds(state_dir):
    """srcds_instance asks this before writing a smaller cap, the server running or not."""
    paths = layout_lib.instance_paths("t1", str(state_dir))
    assert mount_lib.cap_refusal(paths, 64 << 20) is None  # no image yet: nothing to shrink
    os.makedirs(paths.writes)
    mount_lib.create_image(paths.image, 128 << 20)
    mount_lib.mount_writes(paths.image, paths.writes)
    try:
        assert fill(pathlib.Path(paths.writes) / "kept.bin", 40 << 20) == (40 << 20, None)
        running = mount_lib.cap_refusal(paths, 32 << 20)
        assert running and f"writes ({paths.writes}) take" in running
    finally:
        mount_lib.unmount_overlayfs(paths.writes)
    size, used = mount_lib.read_image_usage(paths.image)
    assert size == 128 << 20 and 40 << 20 < used < 56 << 20
    assert mount_lib.cap_refusal(paths, 256 << 20) is None
    assert mount_lib.cap_refusal(paths, 64 << 20) is None  # still fits
    stopped = mount_lib.cap_refusal(paths, 32 << 20)
    assert stopped and f"writes ({paths.image}) take" in stopped
    assert "more than the new upper_dir_max 32.0 MiB" in stopped


def test_copies_of_the_layer_dirs_in_an_upper_dir_get_the_game_writable_mode(tmp_path):
    """A copy-up made while the config layer's dirs were root 0750 keeps that mode in the
    upper dir, where it wins: the next mount brings it to 1770. Links are never followed,
    and a directory the game made itself (its own owner) is left alone."""
    upper = tmp_path / "upper"
    cfg = upper / "left4dead2" / "cfg"
    cfg.mkdir(parents=True)
    os.chmod(upper / "left4dead2", 0o750)
    os.chmod(cfg, 0o750)
    uid = os.getuid()
    fixed = mount_lib.open_copied_up_layer_dirs(str(upper), layer_uid=uid)
    assert fixed == [str(upper / "left4dead2"), str(cfg)]
    assert oct((upper / "left4dead2").stat().st_mode & 0o7777) == "0o1770"
    assert oct(cfg.stat().st_mode & 0o7777) == "0o1770"
    assert mount_lib.open_copied_up_layer_dirs(str(upper), layer_uid=uid) == []  # idempotent
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o750)
    os.chmod(elsewhere, 0o750)
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "left4dead2").symlink_to(elsewhere)
    assert mount_lib.open_copied_up_layer_dirs(str(linked), layer_uid=uid) == []
    assert oct(elsewhere.stat().st_mode & 0o7777) == "0o750"
    assert mount_lib.open_copied_up_layer_dirs(str(tmp_path / "missing")) == []
