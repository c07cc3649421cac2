"""What site.yml promises on a host: the runtime user and its directory tree."""

import pytest

STATE = "/var/lib/left4me"
CONFIG = "/etc/left4me"

TREE = [
    # path, owner, group, mode
    (STATE, "root", "left4me", 0o750),
    (f"{STATE}/builds", "root", "root", 0o755),
    (f"{STATE}/overlays", "left4me", "left4me", 0o755),
    (f"{STATE}/workshop_cache", "left4me", "left4me", 0o755),
    (f"{STATE}/runtime", "root", "root", 0o755),
    (f"{STATE}/steam", "left4me", "left4me", 0o755),
    (CONFIG, "root", "left4me", 0o750),
    (f"{CONFIG}/instances", "root", "left4me", 0o750),
]


def test_runtime_user_is_unprivileged_and_cannot_log_in(host):
    user = host.user("left4me")
    assert user.exists
    assert user.group == "left4me"
    assert user.shell == "/usr/sbin/nologin"
    assert 0 < user.uid < 1000, "a system account"
    assert user.password in ("!", "*", "!*")


@pytest.mark.parametrize(("path", "owner", "group", "mode"), TREE)
def test_directory_tree_has_owner_and_mode(host, path, owner, group, mode):
    directory = host.file(path)
    assert directory.is_directory
    assert (directory.user, directory.group) == (owner, group)
    assert directory.mode == mode, f"{path} is {oct(directory.mode)}"


def test_runtime_user_cannot_write_the_config_tree(host):
    probe = host.run("sudo -u left4me touch /etc/left4me/instances/probe")
    assert probe.rc != 0
    assert "Permission denied" in probe.stderr
