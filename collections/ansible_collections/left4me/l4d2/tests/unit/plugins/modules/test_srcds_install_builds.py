# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""srcds_install with side_by_side, in-process against the fake steamcmd (as
test_srcds_install.py: needs root, steamcmd runs as nobody).

Which builds running servers use comes from PID 1's mountinfo; here a file the test
writes stands in for it (the lines a kernel overlay mount shows), so a test can say "a
server runs on build 1" without mounting.
"""

from __future__ import annotations

import fcntl
import os
import pathlib

import pytest
from ansible_collections.left4me.l4d2.plugins.module_utils import _builds as builds_lib
from ansible_collections.left4me.l4d2.plugins.module_utils._common import format_size
from ansible_collections.left4me.l4d2.plugins.modules import srcds_install
from test_srcds_install import (  # noqa: F401 pylint: disable=unused-import
    FIRST_BUILD,
    as_on_a_target,
    host,
    run_module,
)

# The fixtures above (host, as_on_a_target) are imported for pytest to find them.
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="steamcmd runs as another user")


@pytest.fixture
def mounts(host, monkeypatch):  # noqa: F811
    """`mounts(*lowerdirs)`: the overlay mounts PID 1 has, one per server's game layer."""
    path = host.base / "mountinfo"
    path.write_text("")
    monkeypatch.setattr(srcds_install, "mountinfo_path", lambda: str(path))

    def set_mounts(*layers: pathlib.Path) -> None:
        path.write_text("".join(
            f"{40 + i} 1 0:{50 + i} / /s/runtime/s{i}/merged rw,relatime shared:1 - overlay"
            f" left4me-s{i} rw,lowerdir+=/s/overlays/.instance-s{i},lowerdir+={layer},"
            f"upperdir=/s/runtime/s{i}/writes/upper,workdir=/s/runtime/s{i}/writes/work\n"
            for i, layer in enumerate(layers)))

    return set_mounts


def args(host, **extra) -> dict:  # noqa: F811
    return host.args(side_by_side=True, **extra)


def builds(host) -> pathlib.Path:  # noqa: F811
    return host.base / "builds"


def signature(path: pathlib.Path) -> dict:
    return builds_lib.tree_signature(str(path))


@pytest.fixture
def fresh(host):  # noqa: F811
    """No install yet (the Host fixture makes an empty installation/: a fresh host has none)."""
    host.install.rmdir()
    return host


def test_first_install_is_build_1_made_current_and_named_by_installation(fresh, mounts, capsys):
    result = run_module(capsys, **args(fresh))
    assert result["changed"] is True, result
    assert result["buildid"] == FIRST_BUILD
    assert result["build"] == str(builds(fresh) / "1")
    assert os.readlink(builds(fresh) / "current") == "1"
    assert os.readlink(fresh.install) == "builds/current"
    assert (fresh.install / "srcds_run").is_file()
    assert (builds(fresh) / "1").stat().st_uid == fresh.uid
    assert (builds(fresh) / "current").lstat().st_uid == 0
    again = run_module(capsys, **args(fresh))
    assert again["changed"] is False, again
    assert sorted(os.listdir(builds(fresh))) == [".lock", ".update.lock", "1", "current"]


def test_an_update_goes_beside_the_build_a_server_runs_and_leaves_it_untouched(
        fresh, mounts, capsys):
    run_module(capsys, **args(fresh))
    running = builds(fresh) / "1"
    mounts(running)  # a server runs on build 1
    before = signature(running)
    fresh.control(buildid=FIRST_BUILD + 1)
    update = run_module(capsys, **args(fresh))
    assert update["changed"] is True, update
    assert (update["buildid_before"], update["buildid"]) == (FIRST_BUILD, FIRST_BUILD + 1)
    assert (update["build_before"], update["build"]) == (str(running), str(builds(fresh) / "2"))
    assert os.readlink(builds(fresh) / "current") == "2"
    assert signature(running) == before, "the running server's build did not change"
    assert update["builds_removed"] == []
    assert update["disk"]["needed"] >= update["disk"]["copy"]
    steam_inf = (fresh.install / "left4dead2" / "steam.inf").read_text()
    assert f"SourceRevision={FIRST_BUILD + 1}" in steam_inf
    # The server restarts onto build 2: build 1 is used by no mount and goes.
    mounts(builds(fresh) / "2")
    converge = run_module(capsys, **args(fresh, update=False))
    assert converge["changed"] is True
    assert converge["builds_removed"] == [str(running)]
    assert not running.exists()
    assert run_module(capsys, **args(fresh, update=False))["changed"] is False


def test_an_update_that_finds_nothing_new_changes_nothing(fresh, mounts, capsys):
    run_module(capsys, **args(fresh))
    result = run_module(capsys, **args(fresh))
    assert result["changed"] is False, result
    assert result["update_checked"] is True
    assert "Success! App '222860' already up to date." in result["output_tail"]
    assert not (builds(fresh) / "2").exists()
    assert os.readlink(builds(fresh) / "current") == "1"


@pytest.mark.parametrize(("fault", "kind"), [("timeout", "network"), ("disk_full", "disk_full")])
def test_a_failed_update_keeps_the_current_build_current_and_untouched(
        fresh, mounts, capsys, fault, kind):
    run_module(capsys, **args(fresh))
    before = signature(builds(fresh) / "1")
    fresh.control(buildid=FIRST_BUILD + 1, fault=fault)
    result = run_module(capsys, **args(fresh))
    assert result["failed"] is True and result["error_kind"] == kind, result
    assert result["msg"].endswith(
        f"(side by side: the new build {builds(fresh) / '2'} is removed; the current build"
        f" {builds(fresh) / '1'} stays current and unchanged)")
    assert os.readlink(builds(fresh) / "current") == "1"
    assert signature(builds(fresh) / "1") == before
    assert sorted(p for p in os.listdir(builds(fresh)) if not p.startswith(".")) == [
        "1", "current"], "nothing half done is left"


def test_an_update_without_the_disk_it_needs_is_refused_before_it_starts(
        fresh, mounts, capsys):
    run_module(capsys, **args(fresh))
    fresh.control(buildid=FIRST_BUILD + 1)
    result = run_module(capsys, **args(fresh, update_headroom="900T"))
    assert result["failed"] is True and result["error_kind"] == "disk_full", result
    assert "not enough disk for an update" in result["msg"]
    assert f"update_headroom {format_size(900 << 40)}" in result["msg"]
    assert "nothing was changed" in result["msg"]
    assert result["output_tail"] == [], "steamcmd never ran"
    assert not (builds(fresh) / "2").exists()


def test_a_second_update_while_one_runs_is_refused(fresh, mounts, capsys):
    run_module(capsys, **args(fresh))
    fd = os.open(builds(fresh) / ".update.lock", os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        fresh.control(buildid=FIRST_BUILD + 1)
        result = run_module(capsys, **args(fresh))
        (builds(fresh) / "2").mkdir()  # what the running update is building
        check = run_module(capsys, _ansible_check_mode=True, **args(fresh, update=False))
    finally:
        os.close(fd)
    assert result["failed"] is True and result["error_kind"] == "busy", result
    assert "another srcds_install is installing or updating" in result["msg"]
    # A converge's check step leaves the builds to the running update (no removal predicted).
    assert check["changed"] is False and check["builds_removed"] == [], check
    assert "an update is running" in str(check.get("warnings"))
    assert os.readlink(builds(fresh) / "current") == "1"
    assert (builds(fresh) / "2").is_dir(), "check mode removed nothing"


def test_a_plain_install_no_server_uses_becomes_build_1_without_a_download(
        host, mounts, capsys):  # noqa: F811
    run_module(capsys, **host.args())  # a host from before builds
    inode = (host.install / "srcds_run").stat().st_ino
    check = run_module(capsys, _ansible_check_mode=True, **args(host, update=False))
    assert check["changed"] is True
    assert host.install.is_dir() and not host.install.is_symlink()
    result = run_module(capsys, **args(host, update=False))
    assert result["changed"] is True and result["output_tail"] == []
    assert os.readlink(host.install) == "builds/current"
    assert os.readlink(builds(host) / "current") == "1"
    assert (builds(host) / "1" / "srcds_run").stat().st_ino == inode, "moved, not copied"


def test_a_plain_install_a_server_uses_stays_until_no_server_does(host, mounts, capsys):  # noqa: F811
    run_module(capsys, **host.args())
    mounts(host.install)  # a server mounted the plain installation before builds
    before = signature(host.install)
    assert run_module(capsys, **args(host, update=False))["changed"] is False
    host.control(buildid=FIRST_BUILD + 1)
    update = run_module(capsys, **args(host))
    assert update["changed"] is True, update
    assert os.readlink(builds(host) / "current") == "1"
    assert host.install.is_dir() and not host.install.is_symlink()
    assert signature(host.install) == before, "the running server's files did not change"
    mounts(builds(host) / "1")
    converge = run_module(capsys, **args(host, update=False))
    assert converge["builds_removed"] == [str(host.install)]
    assert os.readlink(host.install) == "builds/current"
    assert f"SourceRevision={FIRST_BUILD + 1}" in (
        host.install / "left4dead2" / "steam.inf").read_text()


def test_check_mode_predicts_the_removal_of_an_unused_build(fresh, mounts, capsys):
    run_module(capsys, **args(fresh))
    mounts(builds(fresh) / "1")
    fresh.control(buildid=FIRST_BUILD + 1)
    run_module(capsys, **args(fresh))
    mounts()
    check = run_module(capsys, _ansible_check_mode=True, **args(fresh, update=False))
    assert check["changed"] is True
    assert check["builds_removed"] == [str(builds(fresh) / "1")]
    assert (builds(fresh) / "1").is_dir()


def test_validate_of_an_intact_build_is_not_changed_and_leaves_no_copy(fresh, mounts, capsys):
    run_module(capsys, **args(fresh))
    result = run_module(capsys, **args(fresh, validate=True))
    assert result["changed"] is False, result
    assert sorted(p for p in os.listdir(builds(fresh)) if not p.startswith(".")) == [
        "1", "current"]
