"""Jobs against a real booted host over SSH: host keys are checked, secrets stay secret."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from domain_helpers import processes_seen, with_settings

from left4me_ui import blueprints, jobs, servers
from left4me_ui.backends import local
from left4me_ui.core import Core
from left4me_ui.runner import load_inventory

pytestmark = pytest.mark.testhost


@pytest.fixture
def host_core(core: Core, booted_host, host_inventory, tmp_path: Path) -> Core:
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(host_inventory(booted_host))
    with_settings(core, inventory=inventory)
    core.inventory_loader = load_inventory
    return core


def test_a_changed_host_key_fails_the_job_with_a_clear_message(core, booted_host, alice,
                                                               host_inventory, tmp_path,
                                                               monkeypatch):
    # ssh checks the host key when it connects, not when it rides a master connection an
    # earlier run to this host left open (ControlPersist): this job connects afresh.
    monkeypatch.setenv("ANSIBLE_SSH_CONTROL_PATH_DIR", str(tmp_path / "cp"))
    # A known_hosts that holds some other key for the host's address: as after a reinstall,
    # or with someone in between.
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)],
                   check=True)
    known_hosts = tmp_path / "known_hosts"
    kind, key = other.with_suffix(".pub").read_text().split()[:2]
    known_hosts.write_text(f"{booted_host.address} {kind} {key}\n")
    ssh_config = tmp_path / "ssh_config"
    ssh_config.write_text(Path(booted_host.ssh_config).read_text().replace(
        f"UserKnownHostsFile {Path(booted_host.ssh_config).parent.parent.parent}/known_hosts",
        f"UserKnownHostsFile {known_hosts}"))
    assert str(known_hosts) in ssh_config.read_text()
    playbooks = tmp_path / "playbooks"
    playbooks.mkdir()
    (playbooks / "ping.yml").write_text(
        "- name: Ping\n  hosts: l4d2_hosts\n  gather_facts: false\n  tasks:\n"
        "    - name: Ping\n      ansible.builtin.ping:\n")
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(host_inventory(booted_host, ssh_config=str(ssh_config)))
    with_settings(core, inventory=inventory, playbooks_dir=playbooks)
    with core.db.connect() as conn:
        job_id = jobs.enqueue(conn, core, alice, kind="ping", host=booted_host.name,
                              target=booted_host.name, playbook="ping.yml", extravars={})
    job = jobs.run_next(core)
    assert job.id == job_id and job.state == jobs.FAILED
    assert job.error.startswith(f"SSH host key check failed for {booted_host.name}")
    assert "known_hosts" in job.error


def test_a_server_job_keeps_the_rcon_password_out_of_every_trace(host_core, booted_host,
                                                                 alice, tmp_path,
                                                                 monkeypatch):
    blueprint = blueprints.create(host_core, alice, "coop", [],
                                  blueprints.BlueprintSettings(hostname="secret test"))
    server_id, job_id = servers.create(host_core, alice, "secret1", booted_host.name,
                                       blueprint.id)
    password = servers.rcon_password(host_core, alice, server_id)

    copies = tmp_path / "private-dir-copies"
    monkeypatch.setattr(local, "inspect_private_dir",
                        lambda path: shutil.copytree(path, copies / str(len(list(
                            copies.glob("*")) if copies.exists() else []))))
    with processes_seen() as seen_processes:
        job = jobs.run_next(host_core)

    assert job.id == job_id
    log = jobs.events(host_core, alice, job_id)
    # The module ran on the host with the password (this host is not converged, so it
    # refuses; the refusal path is where secrets tend to leak).
    assert any(e.task == "Apply the server's settings and state" for e in log), log
    assert job.state == jobs.FAILED and job.error, job
    assert any(b"ansible-playbook" in p for p in seen_processes)  # the watcher saw the run
    secret = password.encode()
    assert not [p for p in seen_processes if secret in p], "password in a process list entry"
    artifacts = [f for f in copies.rglob("*") if f.is_file()]
    assert any(f.name == "extravars" for f in artifacts)  # the copy was taken
    leaking = [f for f in artifacts if secret in f.read_bytes() and f.name != "extravars"]
    assert leaking == []
    assert (stat_mode := (copies / "0" / "env" / "extravars").stat().st_mode & 0o777) == 0o600, \
        oct(stat_mode)
    assert list(host_core.settings.jobs_dir.iterdir()) == []  # removed after the run
    assert password not in "\n".join(e.text for e in log) + job.error
    with host_core.db.connect() as conn:
        assert password not in "\n".join(conn.iterdump())
    for suffix in ("", "-wal"):
        db_file = host_core.settings.db_path.with_name(host_core.settings.db_path.name + suffix)
        if db_file.exists():
            assert secret not in db_file.read_bytes()
