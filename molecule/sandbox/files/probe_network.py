"""Give a booted test host the probe addresses, inside its own network namespace.

Usage: python molecule/sandbox/files/probe_network.py HOST (from the repository root).

A veth pair sbx0/sbx1 (this kernel has no dummy driver): sbx0 holds one address of every
range the build sandbox must not reach, and a public one playing the host's own public
address (OWN_PUBLIC). They are local addresses of the host, so a probe
that is not blocked connects to a listener inside the host and nothing ever leaves this
machine. sbx1 sits in a network namespace of its own inside the host (PUBLIC_NETNS) with
203.0.113.10 (TEST-NET-3), standing in for the public internet: not one of the host's own
addresses, which the sandbox refuses too (they are delivered over lo); testhosts/public_source.py
lays that namespace out. Runs through nsenter from here, which also works where root inside an
nspawn host lacks CAP_NET_ADMIN.
"""

from __future__ import annotations

import sys

from testhosts import host, public_source

PUBLIC = "203.0.113.10"
PUBLIC_NETNS = "sbxpub"
# 198.51.100.7 (TEST-NET-2) plays the host's own public address.
OWN_PUBLIC = "198.51.100.7"
ADDRESSES = ["10.0.0.1/32", "172.16.0.1/32", "192.168.0.1/32",
             "169.254.169.254/32", "100.64.0.1/32", "fc00::1/128", f"{OWN_PUBLIC}/32"]


def main(name: str) -> int:
    booted = host.load(name)
    public_source.add(booted, PUBLIC_NETNS, "sbx", PUBLIC, "10.0.0.1")
    for address in ADDRESSES:
        extra = ["nodad"] if ":" in address else []
        booted.nsenter("ip", "addr", "replace", address, "dev", "sbx0", *extra)
    print(booted.nsenter("ip", "-brief", "addr", "show", "sbx0").strip())
    print(booted.nsenter("ip", "-n", PUBLIC_NETNS, "-brief", "addr", "show", "sbx1").strip())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
