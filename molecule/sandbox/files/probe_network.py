"""Give a booted test host the probe addresses, inside its own network namespace.

Usage: python molecule/sandbox/files/probe_network.py HOST (from the repository root).

A veth pair sbx0/sbx1 (this kernel has no dummy driver) holds one address of every range
the build sandbox must not reach, plus 203.0.113.10 (TEST-NET-3) standing in for the public
internet. They are local addresses of the host, so a probe that is not blocked connects to
a listener inside the host and nothing ever leaves this machine. Runs through nsenter from
here because root inside an nspawn host lacks CAP_NET_ADMIN.
"""

from __future__ import annotations

import sys

from testhosts import host

PUBLIC = "203.0.113.10"
ADDRESSES = [f"{PUBLIC}/32", "10.0.0.1/32", "172.16.0.1/32", "192.168.0.1/32",
             "169.254.169.254/32", "100.64.0.1/32", "fc00::1/128"]


def main(name: str) -> int:
    booted = host.load(name)
    if "sbx0" not in booted.nsenter("ip", "-brief", "link"):
        booted.nsenter("ip", "link", "add", "sbx0", "type", "veth", "peer", "name", "sbx1")
    for link in ("sbx0", "sbx1"):
        booted.nsenter("ip", "link", "set", link, "up")
    for address in ADDRESSES:
        extra = ["nodad"] if ":" in address else []
        booted.nsenter("ip", "addr", "replace", address, "dev", "sbx0", *extra)
    print(booted.nsenter("ip", "-brief", "addr", "show", "sbx0").strip())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
