# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Runs the srcds_install module in-process against the fake steamcmd (repo standins/).

steamcmd runs as ``nobody`` (the module drops privileges like on a host), so these
tests need root; the steamcmd home and install live under /var/tmp where nobody can
reach them. Faults and builds are steered through ``standin-control.json``.
"""

from __future__ import annotations

import json
import os
import pathlib
import pwd
import shutil
import subprocess
import sys
import tempfile

import pytest

try:
    from ansible_collections.left4me.l4d2.plugins.module_utils import _steamcmd as steamcmd
except ImportError:  # plain pytest from the repo root: make the collection importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[7]))
    from ansible_collections.left4me.l4d2.plugins.module_utils import _steamcmd as steamcmd

from ansible.module_utils.testing import patch_module_args
from ansible_collections.left4me.l4d2.plugins.modules import srcds_install

REPO = pathlib.Path(__file__).resolve().parents[8]
RUNTIME_USER = "nobody"
FIRST_BUILD = 16140412


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "steamcmd runs as another user: needs root"
    if not (REPO / "standins" / "steamcmd").is_dir():
        return f"the fake steamcmd is not at {REPO / 'standins'}"
    return None


pytestmark = pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason()))


class Host:
    """A steamcmd home (root-owned, like the role's bootstrap), an install dir and a home."""

    def __init__(self, base: pathlib.Path):
        self.base = base
        self.steam = base / "steam"
        self.install = base / "installation"
        self.home = base / "home"
        account = pwd.getpwnam(RUNTIME_USER)
        self.uid, self.gid = account.pw_uid, account.pw_gid
        self.account = pwd.struct_passwd((account.pw_name, "x", self.uid, self.gid, "",
                                          str(self.home), "/usr/sbin/nologin"))

    def control(self, **values) -> None:
        (self.steam / "standin-control.json").write_text(json.dumps(values))

    def args(self, **extra) -> dict:
        return dict(install_dir=str(self.install), steamcmd_dir=str(self.steam),
                    run_as=RUNTIME_USER, **extra)

    def tree(self) -> dict[str, int]:
        return {str(p): p.lstat().st_mtime_ns for p in self.base.rglob("*")}


@pytest.fixture
def host(monkeypatch):
    base = pathlib.Path(tempfile.mkdtemp(prefix="left4me-install-test-", dir="/var/tmp"))
    base.chmod(0o755)
    result = subprocess.run([sys.executable, "-m", "standins.steamcmd", "bootstrap",
                             str(base / "steam")], cwd=REPO, capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stderr
    made = Host(base)
    for path in (made.install, made.home):
        path.mkdir()
        os.chown(path, made.uid, made.gid)
    # The runtime user's home is ours, not nobody's /nonexistent.
    real_getpwnam = pwd.getpwnam
    monkeypatch.setattr(srcds_install.pwd, "getpwnam",
                        lambda name: made.account if name == RUNTIME_USER else real_getpwnam(name))
    monkeypatch.delenv("PYTHONPATH", raising=False)
    try:
        yield made
    finally:
        shutil.rmtree(base)


def run_module(capsys, **args) -> dict:
    with patch_module_args(args), pytest.raises(SystemExit):
        srcds_install.main()
    return json.loads(capsys.readouterr().out)


def installed_build(host: Host) -> int | None:
    return steamcmd.read_app_state(str(host.install)).buildid


def test_first_install_needs_platform_pass_and_is_changed(host, capsys):
    result = run_module(capsys, **host.args())
    assert result["changed"] is True, result
    assert result["platform_pass"] is True
    assert (host.install / "srcds.exe").is_file(), "the Windows pass ran first"
    assert (result["buildid_before"], result["buildid"]) == (None, FIRST_BUILD)
    assert result["installed"] is True and result["update_checked"] is True
    assert any("Success! App '222860'" in line for line in result["output_tail"])
    # The install is the runtime user's, runnable, and srcds finds Steam's client libraries.
    assert (host.install / "srcds_run").stat().st_uid == host.uid
    assert os.access(host.install / "srcds_linux", os.X_OK)
    for sdk, arch in (("sdk32", "linux32"), ("sdk64", "linux64")):
        link = host.home / ".steam" / sdk / "steamclient.so"
        assert os.readlink(link) == str(host.steam / arch / "steamclient.so")
        assert link.resolve().is_file()
        assert link.lstat().st_uid == host.uid
    assert (host.home / ".steam").stat().st_uid == host.uid


def test_second_run_is_not_changed(host, capsys):
    run_module(capsys, **host.args())
    again = run_module(capsys, **host.args())
    assert again["changed"] is False, again
    assert again["platform_pass"] is False, "the Linux pass alone works after the first install"
    assert again["buildid"] == again["buildid_before"] == FIRST_BUILD
    assert "Success! App '222860' already up to date." in again["output_tail"]


def test_validate_of_an_intact_install_is_not_changed(host, capsys):
    run_module(capsys, **host.args())
    again = run_module(capsys, **host.args(validate=True))
    assert again["changed"] is False, again


def test_build_bump_is_changed(host, capsys):
    run_module(capsys, **host.args())
    host.control(buildid=FIRST_BUILD + 1)
    update = run_module(capsys, _ansible_diff=True, **host.args())
    assert update["changed"] is True
    assert (update["buildid_before"], update["buildid"]) == (FIRST_BUILD, FIRST_BUILD + 1)
    assert update["diff"]["before"]["buildid"] == FIRST_BUILD
    assert update["diff"]["after"]["buildid"] == FIRST_BUILD + 1
    steam_inf = (host.install / "left4dead2" / "steam.inf").read_text()
    assert f"SourceRevision={FIRST_BUILD + 1}" in steam_inf


def test_update_false_leaves_a_complete_install_alone(host, capsys):
    run_module(capsys, **host.args())
    host.control(buildid=FIRST_BUILD + 1)
    result = run_module(capsys, **host.args(update=False))
    assert result["changed"] is False and result["update_checked"] is False
    assert result["output_tail"] == []
    assert installed_build(host) == FIRST_BUILD


def test_disk_full_fails_clearly_and_installs_nothing(host, capsys):
    host.control(fault="disk_full")
    result = run_module(capsys, **host.args())
    assert result["failed"] is True
    assert result["error_kind"] == "disk_full"
    assert "not enough disk space" in result["msg"] and str(host.install) in result["msg"]
    assert any("0x202" in line for line in result["output_tail"])
    assert installed_build(host) is None
    assert not (host.home / ".steam").exists()


def test_steam_timeout_is_its_own_kind(host, capsys):
    run_module(capsys, **host.args())
    host.control(buildid=FIRST_BUILD + 1, fault="timeout")
    result = run_module(capsys, **host.args())
    assert result["error_kind"] == "timeout" and "0x6" in result["msg"]
    assert installed_build(host) == FIRST_BUILD, "a failed update keeps the installed build"


def test_run_timeout_stops_steamcmd(host, capsys):
    host.control(delay=30)
    result = run_module(capsys, **host.args(timeout=2))
    assert result["failed"] is True and result["error_kind"] == "run_timeout"
    assert "within 2 s" in result["msg"]


def test_account_login_installs_linux_directly_and_keeps_the_password_out(host, capsys):
    host.control(owners="bob")
    result = run_module(capsys, **host.args(steam_user="bob", steam_password="hunter2x"))
    assert result["changed"] is True and result["platform_pass"] is False
    assert "hunter2x" not in json.dumps(result)
    assert not list(pathlib.Path(tempfile.gettempdir()).glob("left4me-steamcmd-*/install.txt"))


@pytest.mark.parametrize(
    ("control", "kind"),
    [({"owners": "bob", "fault": "invalid_password"}, "login_failed"),
     ({"owners": "bob", "fault": "two_factor"}, "steam_guard"),
     ({"owners": "alice"}, "no_subscription")],
)
def test_account_failures_are_classified(host, capsys, control, kind):
    host.control(**control)
    result = run_module(capsys, **host.args(steam_user="bob", steam_password="hunter2x"))
    assert result["failed"] is True and result["error_kind"] == kind, result["msg"]
    assert "hunter2x" not in json.dumps(result)


def test_check_mode_on_a_fresh_host_predicts_and_touches_nothing(host, capsys):
    before = host.tree()
    result = run_module(capsys, _ansible_check_mode=True, **host.args())
    assert result["changed"] is True
    assert result["update_checked"] is False and result["output_tail"] == []
    assert host.tree() == before


def test_check_mode_on_an_installed_host_is_not_changed(host, capsys):
    run_module(capsys, **host.args())
    before = host.tree()
    result = run_module(capsys, _ansible_check_mode=True, **host.args())
    assert result["changed"] is False and result["buildid"] == FIRST_BUILD
    assert host.tree() == before


def test_check_mode_sees_a_broken_link(host, capsys):
    run_module(capsys, **host.args())
    link = host.home / ".steam" / "sdk64" / "steamclient.so"
    link.unlink()
    link.symlink_to("/nowhere/steamclient.so")
    assert run_module(capsys, _ansible_check_mode=True, **host.args())["changed"] is True
    repaired = run_module(capsys, **host.args())
    assert repaired["changed"] is True
    assert os.readlink(link) == str(host.steam / "linux64" / "steamclient.so")


def test_log_path_collects_the_output(host, capsys):
    log = host.base / "install.log"
    run_module(capsys, **host.args(log_path=str(log)))
    assert "Success! App '222860' fully installed." in log.read_text()
    assert log.stat().st_uid == host.uid


@pytest.mark.parametrize(
    ("args", "words"),
    [(dict(run_as="no-such-user-l4m"), "does not exist"),
     (dict(steam_user="bob"), "steam_password is required"),
     (dict(timeout=0), "timeout must be")],
)
def test_bad_input_changes_nothing(host, capsys, args, words):
    before = host.tree()
    result = run_module(capsys, **{**host.args(), **args})
    assert result["failed"] is True and words in result["msg"]
    assert result["error_kind"] == "bad_input"
    assert host.tree() == before


def test_install_dir_of_another_owner_is_refused(host, capsys):
    os.chown(host.install, 0, 0)
    result = run_module(capsys, **host.args())
    assert result["failed"] is True and "chown it to nobody" in result["msg"]


def test_missing_steamcmd_is_reported(host, capsys):
    (host.steam / "steamcmd.sh").unlink()
    result = run_module(capsys, **host.args())
    assert result["failed"] is True and "steamcmd.sh is missing" in result["msg"]
