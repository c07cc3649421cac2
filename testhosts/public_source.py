"""A stand-in for a source on the public internet, inside a test host but off its addresses.

Usage: python -m testhosts.public_source HOST NETNS LINK ADDRESS SOURCE (from the
repository root), e.g. `mol-ovl ovlpub ovl 203.0.113.20 192.0.2.20`.

The game host's firewall (and the build sandbox) refuse the runtime user every one of the
host's own addresses, so a stand-in listening on 127.0.0.1 or on an address of the host
plays a forbidden service, not the internet. Here the stand-in's ADDRESS (a documentation
address) sits in a network namespace of its own (NETNS, under /run/netns, for a unit's
NetworkNamespacePath=) at the far end of a veth pair (LINK0 in the host, LINK1 in NETNS);
the host reaches it through a route from SOURCE, an address the host gets on LINK0. Nothing
leaves this machine. Runs through nsenter from here, which also works where root inside an
nspawn host lacks CAP_NET_ADMIN.
"""

from __future__ import annotations

import sys

from testhosts.host import TestHost, load


def add(booted: TestHost, netns: str, link: str, address: str, source: str) -> None:
    """Put ADDRESS in its own namespace NETNS, reached from the host over LINK0 from SOURCE."""
    near, far = f"{link}0", f"{link}1"
    if netns not in booted.nsenter("ip", "netns", "list").split():
        booted.nsenter("ip", "netns", "add", netns)
    if near not in booted.nsenter("ip", "-brief", "link"):
        booted.nsenter("ip", "link", "add", near, "type", "veth", "peer", "name", far,
                       "netns", netns)
    booted.nsenter("ip", "link", "set", near, "up")
    booted.nsenter("ip", "addr", "replace", f"{source}/32", "dev", near)
    booted.nsenter("ip", "route", "replace", f"{address}/32", "dev", near, "src", source)
    inside = ["ip", "-n", netns]
    booted.nsenter(*inside, "link", "set", "lo", "up")
    booted.nsenter(*inside, "link", "set", far, "up")
    booted.nsenter(*inside, "addr", "replace", f"{address}/32", "dev", far)
    booted.nsenter(*inside, "route", "replace", "default", "dev", far)


def main(argv: list[str]) -> int:
    name, netns, link, address, source = argv
    booted = load(name)
    add(booted, netns, link, address, source)
    print(booted.nsenter("ip", "-n", netns, "-brief", "addr", "show", f"{link}1").strip())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
