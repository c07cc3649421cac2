"""Process start-up: the secret command, the first admin, and the worker."""

from __future__ import annotations

import stat
import subprocess
import sys

import pytest

from left4me_ui import core as ui_core
from left4me_ui import settings
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
        ui_core.boot(config, start_worker=False)
    settings.write_new_secret(config.secret_file)
    booted = ui_core.boot(config, start_worker=True)
    try:
        printed = capsys.readouterr().out
        assert str(config.generated_admin_password_file) in printed
        assert booted.worker is not None
    finally:
        booted.worker.stop()
    ui_core.boot(config, start_worker=False)  # a second start creates no second admin
    assert "created admin" not in capsys.readouterr().out
