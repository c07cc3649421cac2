"""The UI's SSH control sockets get a directory whose socket paths fit a Unix socket."""

from __future__ import annotations

import os
import socket

import pytest

from left4me_ui.runner import ssh_control_dir


def socket_fits(directory) -> bool:
    """Bind a socket as ssh names its control socket: DIR/<10-char hash>.<16 random>."""
    path = os.path.join(directory, "b8a3eb816a.tIYRmJx84k5MjyJJ")
    with socket.socket(socket.AF_UNIX) as probe:
        try:
            probe.bind(path)
        except OSError:
            return False
    os.unlink(path)
    return True


def test_a_short_state_dir_keeps_its_sockets_inside(tmp_path):
    directory = ssh_control_dir(tmp_path)
    assert directory == tmp_path / "ssh-control"
    assert oct(directory.stat().st_mode & 0o777) == "0o700" and socket_fits(directory)


def test_a_state_dir_too_long_for_a_socket_gets_a_private_short_one(tmp_path):
    deep = tmp_path / ("a-very-long-test-directory-name-" * 3)
    (deep / "ssh-control").mkdir(parents=True)
    assert not socket_fits(deep / "ssh-control")  # what ssh said: "too long for Unix domain socket"
    directory = ssh_control_dir(deep)
    assert directory != deep / "ssh-control" and socket_fits(directory)
    assert oct(directory.stat().st_mode & 0o777) == "0o700"
    assert ssh_control_dir(deep) == directory  # the same one each time: connections reused


def test_a_short_dir_someone_else_could_read_is_refused(tmp_path):
    deep = tmp_path / ("a-very-long-test-directory-name-" * 3)
    deep.mkdir()
    directory = ssh_control_dir(deep)
    directory.chmod(0o755)
    with pytest.raises(RuntimeError, match="not a private directory"):
        ssh_control_dir(deep)
    directory.chmod(0o700)
