# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Runs the instance_mount module in-process against real overlay mounts.

Skipped unless we are root with kernel overlayfs; state dirs live under /var/tmp.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

import pytest

try:
    from ansible_collections.left4me.l4d2.plugins.module_utils import _mount as mount_lib
except ImportError:  # plain pytest from the repo root: make the collection importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[7]))
    from ansible_collections.left4me.l4d2.plugins.module_utils import _mount as mount_lib

from ansible.module_utils.testing import patch_module_args
from ansible_collections.left4me.l4d2.plugins.modules import instance_mount

# The directory holding ansible_collections/: where Ansible finds this collection.
COLLECTIONS_PATH = pathlib.Path(__file__).resolve().parents[7]
OWNER = "nobody"


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "real mounts need root"
    with open("/proc/filesystems", encoding="utf-8") as fh:
        if "overlay" not in fh.read():
            return "overlayfs is not available"
    return None


pytestmark = pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason()))


@pytest.fixture
def host():
    """A state dir (installation, overlays/a, overlays/b) and a config dir."""
    base = pathlib.Path(tempfile.mkdtemp(prefix="left4me-module-test-", dir="/var/tmp"))
    state = base / "state"
    for sub in ("installation", "overlays/a", "overlays/b", "workshop_cache"):
        (state / sub).mkdir(parents=True)
    (state / "overlays" / "a" / "motd.txt").write_text("a")
    (state / "installation" / "motd.txt").write_text("base")
    (base / "etc" / "instances").mkdir(parents=True)
    try:
        yield state, base / "etc"
    finally:
        with open("/proc/self/mountinfo", encoding="utf-8") as fh:
            points = [e.mount_point for e in mount_lib.parse_mountinfo(fh.read())]
        for point in sorted((p for p in points if p.startswith(str(base))), reverse=True):
            with contextlib.suppress(OSError):
                mount_lib.unmount_overlayfs(point)
        shutil.rmtree(base)


def run_module(capsys, **args) -> dict:
    with patch_module_args(args), pytest.raises(SystemExit):
        instance_mount.main()
    return json.loads(capsys.readouterr().out)


def args_for(state_dir: pathlib.Path, config: pathlib.Path, name: str = "coop1", **extra) -> dict:
    return dict(name=name, state_dir=str(state_dir), config_dir=str(config), owner=OWNER, **extra)


def layers(state: pathlib.Path, *names: str) -> list[str]:
    return [str(state / "overlays" / n) for n in names] + [str(state / "installation")]


def mounted_layers(state: pathlib.Path, name: str = "coop1") -> mount_lib.MountState:
    return mount_lib.read_mount_state(str(state / "runtime" / name / "merged"), os.getpid())


def tree(path: pathlib.Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def test_mount_then_again_is_not_changed(host, capsys):
    state, config = host
    args = args_for(state, config, lowerdirs=layers(state, "a"))
    first = run_module(capsys, **args)
    assert first["changed"] is True
    assert first["mounted"] is True
    assert first["lowerdirs"] == layers(state, "a")
    assert first["merged"] == str(state / "runtime" / "coop1" / "merged")
    assert (state / "runtime" / "coop1" / "merged" / "motd.txt").read_text() == "a"

    second = run_module(capsys, **args)
    assert second["changed"] is False
    assert second["lowerdirs"] == layers(state, "a")


def test_check_mode_predicts_and_changes_nothing(host, capsys):
    state, config = host
    before = tree(state)
    args = args_for(state, config, lowerdirs=layers(state, "a"))
    result = run_module(capsys, _ansible_check_mode=True, _ansible_diff=True, **args)
    assert result["changed"] is True
    assert result["mounted"] is True
    assert result["diff"] == {
        "before": {"mounted": False, "lowerdirs": []},
        "after": {"mounted": True, "lowerdirs": layers(state, "a")},
    }
    image = f"{state}/runtime/coop1/writes.img"
    assert result["writes"] == [f"create {image} (2.0 GiB, sparse)",
                                f"mount {image} on {state}/runtime/coop1/writes"]
    assert tree(state) == before
    assert not mounted_layers(state).mounted

    run_module(capsys, **args)
    check_again = run_module(capsys, _ansible_check_mode=True, **args)
    assert (check_again["changed"], check_again["writes"]) == (False, [])

    other = {**args, "lowerdirs": layers(state, "b", "a"), "remount": True}
    predicted = run_module(capsys, _ansible_check_mode=True, _ansible_diff=True, **other)
    assert predicted["changed"] is True
    assert predicted["diff"]["before"]["lowerdirs"] == layers(state, "a")
    assert predicted["diff"]["after"]["lowerdirs"] == layers(state, "b", "a")
    assert mounted_layers(state).lowerdirs == layers(state, "a")

    unmount_check = run_module(
        capsys, _ansible_check_mode=True, **args_for(state, config, state="unmounted")
    )
    assert (unmount_check["changed"], unmount_check["mounted"]) == (True, False)
    assert unmount_check["writes"] == [f"unmount {state}/runtime/coop1/writes"]
    assert mounted_layers(state).mounted


def test_lowerdirs_come_from_the_env_file(host, capsys):
    state, config = host
    (config / "instances" / "coop1.env").write_text(
        f"# managed\nLEFT4ME_LOWERDIRS='{':'.join(layers(state, 'b', 'a'))}'\nOTHER=1\n"
    )
    result = run_module(capsys, **args_for(state, config))
    assert result["changed"] is True
    assert mounted_layers(state).lowerdirs == layers(state, "b", "a")


def test_different_layers_fail_unless_remount(host, capsys):
    state, config = host
    run_module(capsys, **args_for(state, config, lowerdirs=layers(state, "a")))
    refused = run_module(capsys, **args_for(state, config, lowerdirs=layers(state, "b")))
    assert refused["failed"] is True
    assert "mounted with different layers" in refused["msg"]
    assert mounted_layers(state).lowerdirs == layers(state, "a")

    switched = run_module(
        capsys, **args_for(state, config, lowerdirs=layers(state, "b"), remount=True)
    )
    assert switched["changed"] is True
    assert mounted_layers(state).lowerdirs == layers(state, "b")


def test_unmount_then_again_is_not_changed(host, capsys):
    state, config = host
    run_module(capsys, **args_for(state, config, lowerdirs=layers(state, "a")))
    first = run_module(capsys, **args_for(state, config, state="unmounted"))
    assert (first["changed"], first["mounted"], first["lowerdirs"]) == (True, False, [])
    assert not mounted_layers(state).mounted
    second = run_module(capsys, **args_for(state, config, state="unmounted"))
    assert second["changed"] is False
    never = run_module(capsys, **args_for(state, config, name="never", state="unmounted"))
    assert never["changed"] is False


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"name": "Coop/1"}, "invalid instance name 'Coop/1'"),
        ({"lowerdirs": ["/etc"]}, "outside the allowed roots"),
        ({"lowerdirs": ["relative/dir"]}, "not an absolute path"),
        ({"lowerdirs": []}, "at least one lowerdir"),
        ({"lowerdirs": "many"}, "501 lower layers given"),
        ({"lowerdirs": "dup"}, "duplicates lowerdir #1"),
        ({"lowerdirs": "missing"}, "does not exist or is not a directory"),
        ({}, "coop1.env does not exist"),
        (
            {"owner": "no-such-user-l4m", "lowerdirs": "a"},
            "runtime user 'no-such-user-l4m' does not exist",
        ),
        ({"allowed_roots": ["/nonexistent-root"], "lowerdirs": "a"}, "outside the allowed"),
    ],
)
def test_bad_args_fail_and_create_nothing(host, capsys, extra, message):
    state, config = host
    special = {
        "many": [str(state / "installation")] * 501,
        "dup": layers(state, "a", "a"),
        "missing": layers(state, "gone"),
        "a": layers(state, "a"),
    }
    if isinstance(extra.get("lowerdirs"), str):
        extra = dict(extra, lowerdirs=special[extra["lowerdirs"]])
    args = args_for(state, config)
    args.update(extra)
    before = tree(state)
    result = run_module(capsys, **args)
    assert result["failed"] is True
    assert message in result["msg"]
    assert tree(state) == before


def test_fuse_tainted_upper_fails_with_a_fix(host, capsys):
    state, config = host
    upper = state / "runtime" / "coop1" / "upper"
    upper.mkdir(parents=True)
    (upper / "old.cfg").write_text("x")
    try:
        os.setxattr(upper / "old.cfg", "user.fuseoverlayfs.origin", b"x")
    except OSError as exc:
        pytest.skip(f"user xattrs unsupported under /var/tmp: {exc.strerror}")
    result = run_module(capsys, **args_for(state, config, lowerdirs=layers(state, "a")))
    assert result["failed"] is True
    assert "old.cfg has xattr user.fuseoverlayfs.origin" in result["msg"]
    assert f"mv {upper} {upper}.fuse-old" in result["msg"]
    assert not mounted_layers(state).mounted


def test_adhoc_run_through_ansible(host):
    """The FQCN resolves from the collections path this collection sits in, and the module
    ships its util (a checkout's ansible.cfg names the same path)."""
    state, config = host
    ansible = pathlib.Path(sys.executable).with_name("ansible")
    if not ansible.exists():
        pytest.skip(f"{ansible} not installed")
    args = (
        f"name=adhoc state_dir={state} config_dir={config} owner={OWNER}"
        f" lowerdirs={','.join(layers(state, 'a'))}"
    )
    command = [
        str(ansible), "localhost", "-i", "localhost,", "-c", "local",
        "-e", f"ansible_python_interpreter={sys.executable}",
        "-m", "left4me.l4d2.instance_mount", "-a", args,
    ]  # fmt: skip
    results = []
    for _attempt in range(2):
        proc = subprocess.run(command, cwd=state, capture_output=True, text=True, check=False,
                              env={**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS_PATH)})
        assert proc.returncode == 0, proc.stdout + proc.stderr
        results.append(proc.stdout)
    assert "localhost | CHANGED" in results[0]
    assert "localhost | SUCCESS" in results[1]
    assert mounted_layers(state, "adhoc").lowerdirs == layers(state, "a")
