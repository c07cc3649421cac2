# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Runs the srcds_install module in-process against the fake steamcmd (repo standins/).

steamcmd runs as ``nobody`` (the module drops privileges like on a host), so these
tests need root; the steamcmd home and install live under /var/tmp where nobody can
reach them. The steamcmd home is nobody's, as the role bootstraps it as the runtime user
(steamcmd exits 7 in a home of another user). Faults and builds are steered through
``standin-control.json``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pathlib
import pwd
import shutil
import sys
import tempfile

import pytest

try:
    from ansible_collections.left4me.l4d2.plugins.module_utils import _steamcmd as steamcmd
except ImportError:  # plain pytest from the repo root: make the collection importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[7]))
    from ansible_collections.left4me.l4d2.plugins.module_utils import _steamcmd as steamcmd

from ansible.module_utils import _internal as module_internal
from ansible.module_utils.testing import patch_module_args
from ansible_collections.left4me.l4d2.plugins.modules import srcds_install
from elftools.elf.elffile import ELFFile

RUNTIME_USER = "nobody"
FIRST_BUILD = 16140412


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "steamcmd runs as another user: needs root"
    return None


pytestmark = pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason()))


@pytest.fixture(autouse=True)
def as_on_a_target(monkeypatch):
    """A module runs on a target: once other tests in this process imported Ansible's
    controller code, module warnings would go to the controller's display, not the result."""
    monkeypatch.setattr(module_internal, "is_controller", False)


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
def host(monkeypatch, bootstrap_steamcmd):
    base = pathlib.Path(tempfile.mkdtemp(prefix="left4me-install-test-", dir="/var/tmp"))
    base.chmod(0o755)
    bootstrap_steamcmd(base / "steam")
    made = Host(base)
    for path in (made.install, made.home):
        path.mkdir()
        os.chown(path, made.uid, made.gid)
    for path in [made.steam, *made.steam.rglob("*")]:
        os.lchown(path, made.uid, made.gid)
    monkeypatch.setattr(srcds_install, "PLATFORM_PASS_PAUSE", 0.0)
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


def test_stalled_download_is_a_network_failure(host, capsys):
    run_module(capsys, **host.args())
    host.control(buildid=FIRST_BUILD + 1, fault="timeout")
    result = run_module(capsys, **host.args())
    assert result["error_kind"] == "network" and "0x602" in result["msg"]
    assert "could not reach Steam's content servers" in result["msg"]
    assert "DNS" in result["msg"] and "re-run" in result["msg"]
    assert installed_build(host) == FIRST_BUILD, "a failed update keeps the installed build"


@pytest.mark.parametrize(
    ("control", "kind", "words"),
    [({"update_state": "0x402"}, "network", "DNS"),
     ({"update_state": "0x212"}, "disk_full", "Free space"),
     ({"update_state": "0x606"}, "disk_write", "chown -R nobody:"),
     ({"update_state": "0x6A6"}, "content", "validate: true"),
     ({"update_state": "0x626"}, "content", "steamapps/downloading"),
     ({"fault": "appinfo_timeout"}, "appinfo_timeout", "Timed out waiting for AppInfo"),
     ({"fault": "self_update_offline"}, "self_update", "could not update itself")],
)
def test_update_failures_say_what_to_do(host, capsys, control, kind, words):
    run_module(capsys, **host.args())
    host.control(buildid=FIRST_BUILD + 1, **control)
    result = run_module(capsys, **host.args())
    assert result["failed"] is True and result["error_kind"] == kind, result["msg"]
    assert words in result["msg"]
    assert "unknown" not in result["msg"]
    assert installed_build(host) == FIRST_BUILD


def test_steamcmd_home_of_another_user_is_named(host, capsys):
    for path in [host.steam, *host.steam.rglob("*")]:
        os.lchown(path, 0, 0)
    result = run_module(capsys, **host.args())
    assert result["failed"] is True and result["error_kind"] == "steamcmd_dir_owner"
    assert result["rc"] == 7
    assert f"chown -R nobody: {host.steam}" in result["msg"]
    assert installed_build(host) is None


def test_missing_configuration_also_triggers_the_platform_pass(host, capsys):
    host.control(platform_refusal="Missing configuration")
    log = host.base / "install.log"
    result = run_module(capsys, **host.args(log_path=str(log)))
    assert "ERROR! Failed to install app '222860' (Missing configuration)" in log.read_text()
    assert "(Invalid platform)" not in log.read_text()
    assert result["changed"] is True and result["platform_pass"] is True
    assert result["platform_pass_attempts"] == 1
    assert installed_build(host) == FIRST_BUILD


def test_cold_cache_retries_the_platform_pass(host, capsys):
    host.control(cold_cache=2)  # the Linux run and the first platform pass are refused
    result = run_module(capsys, **host.args())
    assert result["changed"] is True and result["platform_pass_attempts"] == 2
    assert installed_build(host) == FIRST_BUILD


def test_cold_cache_retries_are_bounded(host, capsys):
    host.control(cold_cache=50)
    result = run_module(capsys, **host.args())
    assert result["failed"] is True and result["error_kind"] == "missing_configuration"
    assert "after 3 Windows-then-Linux platform pass(es)" in result["msg"]
    refusals = host.steam / "appcache" / "standin-cold-cache-refusals"
    assert refusals.read_text() == "4", "one Linux run, then three platform passes"


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


def test_an_sdk_dir_linked_into_steamcmd_is_replaced_and_steamcmds_library_kept(host, capsys):
    # The hand fix for "Failed to load steamclient.so": ~/.steam/sdk32 -> steamcmd's linux32.
    run_module(capsys, **host.args())
    sdk32 = host.home / ".steam" / "sdk32"
    shutil.rmtree(sdk32)
    sdk32.symlink_to(host.steam / "linux32")
    library = host.steam / "linux32" / "steamclient.so"
    original = library.read_bytes()
    checked = run_module(capsys, _ansible_check_mode=True, **host.args())
    assert checked["changed"] is True and sdk32.is_symlink()
    assert f"{sdk32} is a link to {host.steam}/linux32" in json.dumps(checked["warnings"])
    repaired = run_module(capsys, **host.args())
    assert repaired["changed"] is True and not repaired.get("failed")
    assert not library.is_symlink() and library.read_bytes() == original
    assert sdk32.is_dir() and not sdk32.is_symlink()
    assert os.readlink(sdk32 / "steamclient.so") == str(library)
    assert run_module(capsys, **host.args())["changed"] is False


def test_a_self_linked_steamcmd_library_is_named_with_the_way_back(host, capsys):
    run_module(capsys, **host.args())
    library = host.steam / "linux32" / "steamclient.so"
    library.unlink()
    library.symlink_to(library)
    result = run_module(capsys, **host.args())
    assert result["failed"] and result["error_kind"] == "unknown"
    assert "is a link to itself" in result["msg"] and "site.yml" in result["msg"]


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


# --- libraries that request an executable stack ------------------------------------------

ENGINE = "bin/engine_srv.so"


def stack_flags(path: pathlib.Path) -> int | None:
    """PT_GNU_STACK p_flags as pyelftools reads them."""
    elf = ELFFile(io.BytesIO(path.read_bytes()))
    flags = [seg["p_flags"] for seg in elf.iter_segments() if seg["p_type"] == "PT_GNU_STACK"]
    return flags[0] if flags else None


def record_of(host: Host) -> dict:
    return json.loads(pathlib.Path(f"{host.install}.execstack.json").read_text())["files"]


def test_install_clears_a_requested_executable_stack_and_records_it(host, capsys):
    host.control(execstack=ENGINE)
    engine = host.install / ENGINE
    result = run_module(capsys, **host.args())
    assert result["changed"] is True
    assert result["execstack_cleared"] == [ENGINE] == result["execstack_recorded"]
    assert stack_flags(engine) == 6, "RW: PF_X cleared, nothing else"
    assert stack_flags(host.install / "bin/dedicated_srv.so") == 6
    info = engine.stat()
    assert (info.st_uid, info.st_mode & 0o777) == (host.uid, 0o755), "owner and mode kept"
    digest = hashlib.sha256(engine.read_bytes()).hexdigest()
    assert record_of(host) == {ENGINE: {"sha256": digest}}
    assert not list(engine.parent.glob("*.left4me-tmp")), "no temporary file left behind"

    again = run_module(capsys, **host.args())
    assert again["changed"] is False and again["execstack_cleared"] == []
    assert again["execstack_recorded"] == [ENGINE]


def test_validate_restores_the_flag_and_the_next_run_clears_it_again(host, capsys):
    host.control(execstack=ENGINE)
    run_module(capsys, **host.args())
    repaired = run_module(capsys, **host.args(validate=True))
    assert repaired["changed"] is True and repaired["execstack_cleared"] == [ENGINE]
    assert stack_flags(host.install / ENGINE) == 6
    assert run_module(capsys, **host.args(validate=True))["changed"] is True  # each validate
    assert run_module(capsys, **host.args())["changed"] is False


def test_an_update_that_ships_the_flag_is_cleared(host, capsys):
    run_module(capsys, **host.args())
    host.control(buildid=FIRST_BUILD + 1, execstack=ENGINE)
    update = run_module(capsys, **host.args())
    assert update["execstack_cleared"] == [ENGINE] and stack_flags(host.install / ENGINE) == 6
    host.control(buildid=FIRST_BUILD + 2)  # Valve ships a fixed build: the record empties
    fixed = run_module(capsys, **host.args())
    assert fixed["execstack_cleared"] == [] and fixed["execstack_recorded"] == []
    assert record_of(host) == {}


def test_check_mode_names_what_it_would_clear_and_touches_nothing(host, capsys):
    host.control(execstack=ENGINE)
    run_module(capsys, **host.args(clear_execstack=False))
    assert stack_flags(host.install / ENGINE) == 7, "left as shipped when asked to"
    before = host.tree()
    check = run_module(capsys, _ansible_check_mode=True, _ansible_diff=True, **host.args())
    assert check["changed"] is True and check["execstack_cleared"] == [ENGINE]
    assert check["diff"]["before"]["execstack_requested"] == [ENGINE]
    assert host.tree() == before and stack_flags(host.install / ENGINE) == 7


def test_no_record_without_a_library_to_clear(host, capsys):
    run_module(capsys, **host.args())
    assert not pathlib.Path(f"{host.install}.execstack.json").exists()
    assert run_module(capsys, **host.args())["changed"] is False
    run_module(capsys, **host.args())
    assert run_module(capsys, _ansible_check_mode=True, **host.args())["changed"] is False
