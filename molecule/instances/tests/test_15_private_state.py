"""What two game servers no longer share, and what of the host a server no longer sees:
each has its own /dev/shm, and /run and /var/lib are empty inside it (looked at from inside
each server's own mount namespace, as the runtime user its code runs as)."""

from __future__ import annotations

import shlex

import pytest
from conftest import INSTANCES, a2s_name, main_pid

PROBE = "/dev/shm/l4m-shared-probe"


def in_server(srv, name: str, command: str):
    """Run `command` where the server's code runs: its mount namespace, the runtime user."""
    pid = main_pid(srv, name)
    return srv.run(f"nsenter -t {pid} -m setpriv --reuid=left4me --regid=left4me"
                   f" --clear-groups sh -c {shlex.quote(command)}")


def test_a_file_one_server_leaves_in_dev_shm_is_not_seen_by_another_or_the_host(srv, booted):
    written = in_server(srv, "coop1", f"echo from-coop1 > {PROBE} && cat {PROBE}")
    assert written.rc == 0 and written.stdout.strip() == "from-coop1", written.stderr  # usable
    try:
        assert in_server(srv, "versus1", f"test -e {PROBE}").rc == 1
        assert not srv.file(PROBE).exists  # not the host's /dev/shm either
        # ...and what the host (or a build) leaves there does not reach a server.
        srv.check_output(f"echo from-host > {PROBE}")
        assert in_server(srv, "versus1", f"test -e {PROBE}").rc == 1
    finally:
        srv.run(f"rm -f {PROBE}")
        in_server(srv, "coop1", f"rm -f {PROBE}")
    for name, (port, hostname) in INSTANCES.items():
        assert a2s_name(booted.address, port, timeout=3) == hostname, name


@pytest.mark.parametrize("path", [
    "/run/systemd/journal/socket",  # journald's socket (the server's output needs none)
    "/run/systemd/private",  # systemd's own
    "/run/dbus/system_bus_socket",  # D-Bus
    "/var/lib/systemd",  # other services' state
    "/var/lib/dpkg",
    "/var/lib/apt",
])
def test_run_and_var_lib_of_the_host_are_masked(srv, path):
    assert srv.file(path).exists, f"the host has {path}: the probe means something"
    for name in sorted(INSTANCES):
        assert in_server(srv, name, f"test -e {path}").rc == 1, f"{name} sees {path}"


def test_the_masked_run_is_empty_and_read_only(srv):
    listing = in_server(srv, "coop1", "ls -A /run /var/lib")
    assert listing.rc == 0, listing.stderr
    shown = {line for line in listing.stdout.splitlines() if line and not line.endswith(":")}
    # Mount points systemd made for what it binds back (the state dir, resolved's files).
    assert shown <= {"left4me", "systemd", "user"}, listing.stdout
    assert in_server(srv, "coop1", "touch /run/x").rc != 0
