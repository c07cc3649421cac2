"""What a game server's own code can reach on the network, tried from inside coop1's unit.

A tenant's server runs native code (script overlays, SourceMod extensions). From inside a
server it must reach the public internet only: not another server's RCON, not the host's
services on loopback or on its own address, not a private network, link-local or the cloud
metadata address. RCON itself answers the host's root only (the rcon module), not the
internet and not other local users. The probes run a process in the unit's own cgroup (its
BPF IP filter) as the runtime user (the firewall's uid rules), i.e. where the server's code
runs. Every address probed is inside the host's own network namespace: nothing leaves the
machine.
"""

from __future__ import annotations

import base64
import json
import socket

import pytest
from conftest import PLATFORM, ansible

STATE = "/var/lib/left4me"
OTHER_RCON = 27025  # versus1's game port: its RCON listens on TCP there
PROBE = "/run/l4m-net-probe.py"
PROBE_PROGRAM = """\
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
try:
    socket.create_connection((host, port), timeout=3).close()
    print("connected")
except OSError as e:
    print(e.strerror or str(e))
"""
# One address of each range a server must not reach, on a veth pair inside the host's
# network namespace (this kernel has no dummy driver), with a listener behind them.
PRIVATE_ADDRESSES = ["10.77.0.1", "192.168.77.1", "172.16.77.1", "169.254.169.254",
                     "100.64.77.1", "fc00::77"]
LISTENER_PORT = 47010
LISTENER = (
    "import socket, time\n"
    "s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)\n"
    "s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)\n"
    "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    f"s.bind(('::', {LISTENER_PORT})); s.listen(64)\n"
    "while True:\n    s.accept()[0].close()\n"
)


@pytest.fixture(scope="module")
def probe(srv):
    encoded = base64.b64encode(PROBE_PROGRAM.encode()).decode()
    srv.check_output(f"echo {encoded} | base64 -d > {PROBE} && chmod 0644 {PROBE}")
    cgroup = srv.check_output("systemctl show -p ControlGroup --value left4me-server@coop1")

    def connect(host: str, port: int, *, as_user: str = "left4me", in_unit: bool = True) -> str:
        join = f"echo $$ > /sys/fs/cgroup{cgroup}/cgroup.procs && " if in_unit else ""
        group = "nogroup" if as_user == "nobody" else as_user
        become = ("" if as_user == "root" else
                  f"setpriv --reuid={as_user} --regid={group} --clear-groups ")
        return srv.check_output(f"sh -c '{join}exec {become}python3 {PROBE} {host} {port}'")

    return connect


@pytest.fixture(scope="module")
def private_listeners(booted, srv):
    """The private, link-local and metadata addresses on this host, a listener behind them."""
    if "l4mnet0" not in booted.nsenter("ip", "-brief", "link"):
        booted.nsenter("ip", "link", "add", "l4mnet0", "type", "veth", "peer", "name", "l4mnet1")
    for link in ("l4mnet0", "l4mnet1"):
        booted.nsenter("ip", "link", "set", link, "up")
    for address in PRIVATE_ADDRESSES:
        prefix = "/128" if ":" in address else "/32"
        extra = ["nodad"] if ":" in address else []
        booted.nsenter("ip", "addr", "replace", address + prefix, "dev", "l4mnet0", *extra)
    encoded = base64.b64encode(LISTENER.encode()).decode()
    srv.check_output("systemd-run --unit=l4m-net-listener --quiet python3 -c"
                     f" \"$(echo {encoded} | base64 -d)\"")
    yield PRIVATE_ADDRESSES
    srv.run("systemctl stop l4m-net-listener")
    booted.nsenter("ip", "link", "del", "l4mnet0", check=False)


@pytest.mark.parametrize("where", ["127.0.0.1", "the host's address"])
def test_a_server_cannot_reach_another_servers_rcon(probe, booted, where):
    host = booted.address if where != "127.0.0.1" else where
    assert probe(host, OTHER_RCON) == "Connection refused"


def test_a_server_cannot_reach_the_hosts_sshd(probe, booted):
    # sshd answers the host's root on loopback (the control), never the server's code.
    assert probe("127.0.0.1", 22, as_user="root", in_unit=False) == "connected"
    assert probe("127.0.0.1", 22) == "Connection refused"
    assert probe(booted.address, 22) == "Connection refused"


@pytest.mark.parametrize("address", PRIVATE_ADDRESSES)
def test_a_server_cannot_reach_private_link_local_or_metadata(probe, private_listeners, address):
    assert probe(address, LISTENER_PORT, as_user="root", in_unit=False) == "connected"
    # The server's code: refused.
    assert probe(address, LISTENER_PORT) != "connected"
    # The unit's own IP filter holds too, for a process that is not the runtime user: its
    # BPF program drops the packets (the connect times out).
    assert probe(address, LISTENER_PORT, as_user="root") in ("timed out",
                                                              "Operation not permitted")


def test_rcon_is_not_reachable_from_outside_the_host(booted):
    """This machine plays the internet (and holds the demo's players' address)."""
    with pytest.raises(TimeoutError):
        socket.create_connection((booted.address, 27015), timeout=3).close()


def test_rcon_is_not_reachable_from_another_local_user(probe):
    assert probe("127.0.0.1", 27015, as_user="nobody", in_unit=False) == "timed out"


def test_the_hosts_root_still_runs_rcon_status():
    result = ansible("ansible", PLATFORM, "-b", "-m", "left4me.l4d2.rcon",
                     "-a", json.dumps({"name": "coop1", "command": "status"}))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "hostname" in result.stdout and "left4me demo coop" in result.stdout, result.stdout


def test_the_firewall_is_loaded_at_boot_and_before_servers(srv):
    assert srv.check_output("systemctl is-enabled left4me-firewall") == "enabled"
    assert srv.check_output("systemctl is-active left4me-firewall") == "active"
    assert "left4me-firewall.service" in srv.check_output(
        "systemctl show -p After --value left4me-server@coop1")
