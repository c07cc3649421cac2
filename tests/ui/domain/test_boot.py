"""Process start-up: the secret command, the first admin, and the worker."""

from __future__ import annotations

import stat
import subprocess
import sys

import pytest

from left4me_ui import boot, jobs, overlays, reconcile, servers, settings
from left4me_ui.settings import PROJECT_DIR


def test_init_secret_writes_a_private_secret_once(tmp_path):
    path = tmp_path / "ui" / "secret"
    command = [sys.executable, "-m", "left4me_ui", "init-secret", str(path)]
    first = subprocess.run(command, cwd=PROJECT_DIR / "ui", capture_output=True, text=True,
                           check=True)
    assert "wrote a new UI secret" in first.stdout
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    material = path.read_bytes()
    assert len(settings.load_secret(path)) >= settings.MIN_SECRET_BYTES
    again = subprocess.run(command, cwd=PROJECT_DIR / "ui", capture_output=True, text=True,
                           check=True)
    assert "exists already" in again.stdout and path.read_bytes() == material


def test_boot_refuses_without_a_secret_and_then_prints_where_the_admin_password_is(
        config, capsys):
    config.secret_file.unlink()
    with pytest.raises(settings.SecretError):
        boot.boot(config, start_worker=False)
    settings.write_new_secret(config.secret_file)
    booted = boot.boot(config, start_worker=True)
    try:
        printed = capsys.readouterr().out
        assert str(config.generated_admin_password_file) in printed
        assert booted.worker is not None
    finally:
        booted.worker.stop()
    boot.boot(config, start_worker=False)  # a second start creates no second admin
    assert "created admin" not in capsys.readouterr().out


def test_every_job_kind_is_declared_once_in_the_composition_root():
    names = [kind.name for kind in boot.JOB_KINDS]
    assert len(names) == len(set(names))
    assert set(names) == {*servers.KINDS, overlays.KIND_BUILD, overlays.KIND_REMOVE,
                          reconcile.KIND_RECONCILE}
    wiring = boot.wiring()
    assert set(wiring.builders) == set(overlays.KINDS)  # every overlay kind builds
    assert set(wiring.secret_providers) == {servers.RCON_SECRET, reconcile.RCON_SECRETS}
    assert set(wiring.backends) == set(settings.JOB_BACKENDS)


def test_a_declared_kind_runs_only_its_own_playbooks(core, alice):
    with core.db.connect() as conn, pytest.raises(ValueError, match="runs server.yml"):
        jobs.enqueue(conn, core, alice, kind=servers.KIND_START, host="alpha",
                     target="alpha/x", playbook="reconcile.yml", extravars={})


def test_a_declared_kind_refuses_a_variable_its_playbook_does_not_take(core, alice):
    with core.db.connect() as conn, pytest.raises(ValueError, match="not left4me_typo"):
        jobs.enqueue(conn, core, alice, kind=servers.KIND_START, host="alpha", target="x",
                     playbook=servers.PLAYBOOK,
                     extravars={"left4me_server_name": "x", "left4me_typo": 1})
    assert jobs.history(core, alice) == []  # nothing queued
