# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The public internet as CIDRs (the complement of the sandbox's denied ranges), plus ranges
an operator opens: the IPAddressAllow= of a unit that has IPAddressDeny=any."""

from __future__ import annotations

import ipaddress

from ansible.errors import AnsibleFilterError
from ansible_collections.left4me.l4d2.plugins.module_utils._sandbox import (
    public_networks as _public_networks,
)


def public_networks(opened):
    """Every public range, then each of ``opened`` (validated, in order, no repeats)."""
    if not isinstance(opened, (list, tuple)):
        raise AnsibleFilterError("public_networks takes a list of networks to open, e.g. []")
    result = _public_networks()
    for entry in opened:
        text = str(entry).strip()
        try:
            network = str(ipaddress.ip_network(text.split("%", maxsplit=1)[0], strict=False))
        except ValueError:
            raise AnsibleFilterError(
                f"{entry!r} is not an IP address or network (CIDR such as 10.0.0.0/8 or"
                " 192.0.2.1)") from None
        if network not in result:
            result.append(network)
    return result


class FilterModule:
    def filters(self):
        return {"public_networks": public_networks}
