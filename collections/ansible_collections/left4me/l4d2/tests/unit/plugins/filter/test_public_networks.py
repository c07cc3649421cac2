# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Tests for the public_networks filter: a game unit's IPAddressAllow= list."""

from __future__ import annotations

import ipaddress
import pathlib
import sys

import pytest
from ansible.errors import AnsibleFilterError

try:
    from ansible_collections.left4me.l4d2.plugins.filter import public_networks as plugin
except ImportError:  # plain pytest from the repo root: make the collection importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[7]))
    from ansible_collections.left4me.l4d2.plugins.filter import public_networks as plugin

public_networks = plugin.FilterModule().filters()["public_networks"]


def covered(address: str, networks: list[str]) -> bool:
    ip = ipaddress.ip_address(address)
    return any(ip in n for n in map(ipaddress.ip_network, networks) if n.version == ip.version)


def test_players_anywhere_public_but_not_private_link_local_or_metadata():
    allow = public_networks([])
    assert "any" not in allow and "0.0.0.0/0" not in allow and "::/0" not in allow
    for address in ("203.0.113.10", "1.1.1.1", "2606:4700:4700::1111"):
        assert covered(address, allow), address
    for address in ("127.0.0.1", "10.1.2.3", "192.168.1.1", "172.16.0.1", "169.254.169.254",
                    "100.64.0.1", "fc00::1", "fe80::1", "224.0.0.1"):
        assert not covered(address, allow), address


def test_opened_networks_follow_normalised_and_once():
    allow = public_networks(["169.254.77.0/24", "10.0.0.53", "169.254.77.0/24", "fe80::1%eth0"])
    assert allow[-3:] == ["169.254.77.0/24", "10.0.0.53/32", "fe80::1/128"]
    assert covered("169.254.77.1", allow) and covered("10.0.0.53", allow)
    assert not covered("10.0.0.54", allow)


@pytest.mark.parametrize("bad", ["localhost", "any", "10.0.0.0/33", "", "not-an-ip"])
def test_a_bad_network_is_refused_by_name(bad):
    with pytest.raises(AnsibleFilterError, match="is not an IP address or network"):
        public_networks([bad])


def test_the_input_must_be_a_list():
    with pytest.raises(AnsibleFilterError, match="takes a list"):
        public_networks("10.0.0.0/8")
