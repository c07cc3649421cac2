"""The fast read path on a host converged with site.yml: the console, the log and the poll
over one kept SSH connection to left4me-read, the fallback to Ansible runs giving the same
answers, and its faults (a killed master, a changed host key, a passed deadline) said.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
from domain_helpers import processes_seen

from left4me_ui import accounts, blueprints, boot, host_reads, jobs, live, observe, servers
from left4me_ui import settings as settings_module
from left4me_ui.runner import load_inventory, ssh_control_dir
from testhosts import host

pytestmark = pytest.mark.testhost
ENTRY = "/usr/local/libexec/left4me/left4me-read"


@pytest.fixture(scope="module")
def world(booted_host: host.TestHost, demo_inventory: Path,
          tmp_path_factory: pytest.TempPathFactory):
    """A Core on the demo world's host (fast reads on, the default), an owner and one
    running server of hers; deleted at the end (its port is free again for others)."""
    state = tmp_path_factory.mktemp("fast-reads")
    settings_module.write_new_secret(state / "secret")
    core = boot.open_core(settings_module.Settings(
        state_dir=state / "ui", secret_file=state / "secret", inventory=demo_inventory))
    with core.db.connect() as conn:
        accounts._insert_user(conn, core.clock(), "carol",
                              accounts.hash_password("fast reads password"), "user")
    carol = accounts.login(core, "carol", "fast reads password", client="test").actor
    recipe = blueprints.create(core, carol, "fast", ["demo-config"],
                               blueprints.BlueprintSettings(hostname="Carol fast reads"))
    server_id, _job = servers.create(core, carol, "carol1", booted_host.name, recipe.id)
    _run_jobs(core)
    yield core, carol, server_id, booted_host
    servers.delete(core, carol, server_id, "carol1")
    _run_jobs(core)


def _run_jobs(core) -> None:
    while (job := jobs.run_next(core)) is not None:
        assert job.state == jobs.SUCCEEDED, job.error


@pytest.fixture
def no_ansible(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reads that must take the fast path: an Ansible run fails the test."""
    def refuse(*_args, **_kwargs):
        raise AssertionError("an Ansible run where the fast path was expected")
    monkeypatch.setattr(host_reads, "run_module", refuse)


def _master_pid(core, booted) -> int | None:
    target = host_reads.target_of(core, booted.name)
    check = subprocess.run(
        host_reads.ssh_argv(target, ssh_control_dir(core.settings.state_dir), remote=(),
                            options=("-O", "check")), capture_output=True, text=True,
        check=False)
    found = re.search(r"pid=(\d+)", check.stderr)
    return int(found.group(1)) if found else None


def test_the_console_and_the_log_answer_over_the_fast_path(world, no_ansible):
    core, carol, server_id, booted = world
    assert host_reads.fast(core, booted.name)
    answer = live.run_console(core, carol, server_id, "status")
    assert answer.fast and "hostname: Carol fast reads" in answer.output, answer
    assert 0 < answer.seconds < answer.round_trip
    page = live.read_log(core, carol, server_id)
    live.run_console(core, carol, server_id, "say fast-path-marker")
    following = live.read_log(core, carol, server_id, cursor=page.cursor)
    assert any("Console: fast-path-marker" in line for line in following.lines), following
    assert following.cursor and following.cursor != page.cursor
    # The poll: one info request for every instance of the host.
    observe.poll_host(core, booted.name)
    assert observe.latest(core, carol)[server_id].state == "running"


def test_a_host_without_the_entry_point_or_the_setting_off_falls_back_alike(world,
                                                                            monkeypatch):
    core, carol, server_id, booted = world
    fast = live.run_console(core, carol, server_id, "hostname")
    monkeypatch.setattr(core, "settings", replace(core.settings, fast_reads=False))
    off = live.run_console(core, carol, server_id, "hostname")
    assert not off.fast and off.output == fast.output
    monkeypatch.setattr(core, "settings", replace(core.settings, fast_reads=True))
    monkeypatch.setattr(host_reads, "_fallback_until", {})
    booted.nsenter("mv", ENTRY, f"{ENTRY}.away")
    try:
        missing = live.run_console(core, carol, server_id, "hostname")
    finally:
        booted.nsenter("mv", f"{ENTRY}.away", ENTRY)
    assert not missing.fast and missing.output == fast.output
    assert not host_reads.fast(core, booted.name)  # remembered: no second try for a while


def test_a_killed_master_is_opened_again_by_the_next_request(world, no_ansible):
    core, carol, server_id, booted = world
    live.run_console(core, carol, server_id, "status")
    outcome: list[object] = []
    asking = threading.Thread(target=lambda: outcome.append(
        _attempt(lambda: live.run_console(core, carol, server_id, "status"))))
    asking.start()
    time.sleep(0.05)
    pid = _master_pid(core, booted)
    assert pid, "no master after a request"
    os.kill(pid, signal.SIGKILL)  # mid-command, or just before it
    asking.join(timeout=40)
    assert not asking.is_alive() and outcome, "the request hung past its deadline"
    if isinstance(outcome[0], Exception):  # said, not hung
        assert isinstance(outcome[0], live.ConsoleError), outcome[0]
    answer = live.run_console(core, carol, server_id, "status")
    assert answer.fast and "hostname: Carol fast reads" in answer.output
    assert _master_pid(core, booted) not in (None, pid)


def _attempt(call):
    try:
        return call()
    except Exception as exc:  # noqa: BLE001 - the test inspects it
        return exc


def test_a_changed_host_key_is_refused_and_said(world, tmp_path):
    core, _carol, _server_id, booted = world
    target = host_reads.target_of(core, booted.name)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                    str(tmp_path / "other")], check=True)
    kind, key = (tmp_path / "other.pub").read_text().split()[:2]
    (tmp_path / "known_hosts").write_text(f"{target.address} {kind} {key}\n")
    spoofed = replace(target, ssh_args=(
        "-o", f"UserKnownHostsFile={tmp_path / 'known_hosts'}", *target.ssh_args))
    control = tmp_path / "control"
    control.mkdir(mode=0o700)
    with pytest.raises(host_reads.ReadFailed, match="host key is not the one known"):
        host_reads.ask(spoofed, control, "info", None, {}, 30)


def test_a_deadline_is_honoured(world):
    core, _carol, _server_id, booted = world
    target = host_reads.target_of(core, booted.name)
    started = time.monotonic()
    with pytest.raises(host_reads.ReadFailed, match=f"no answer from {booted.name} within"):
        host_reads.ask(target, ssh_control_dir(core.settings.state_dir), "info", None,
                       {"players": True}, 0.05)
    assert time.monotonic() - started < 2


def test_the_inventory_gives_the_connection_ansible_uses(world):
    core, _carol, _server_id, booted = world
    target = host_reads.target_of(core, booted.name)
    assert target.address == booted.address and target.user == booted.user
    assert load_inventory(core.settings.inventory).hostvars[booted.name]


def test_the_fast_path_keeps_the_rcon_password_out_of_every_trace(world):
    """The password stays on the host: not in any process's argv or environment on either
    side (the controller's /proc shows the host's processes too), not in an answer, the
    database or the host's journal (sudo logs the command line it allowed)."""
    core, carol, server_id, booted = world
    secret = servers.rcon_password(core, carol, server_id).encode()
    with processes_seen(0.01) as seen:
        answers = [live.run_console(core, carol, server_id, command).output
                   for command in ("status", "hostname")]
        answers.append("\n".join(live.read_log(core, carol, server_id).lines))
        observe.poll_host(core, booted.name)
    fast_path = [p for p in seen if b"left4me-read" in p or p.startswith(b"ssh\0")]
    assert fast_path, "the watcher saw no read"
    assert not [p for p in fast_path if secret in p], "password in a process list entry"
    assert secret.decode() not in "\n".join(answers)
    with core.db.connect() as conn:
        assert secret.decode() not in "\n".join(conn.iterdump())
    assert secret.decode() not in booted.nsenter("journalctl", "--no-pager", "-q",
                                                 "_COMM=sudo", "--since", "-10min")
