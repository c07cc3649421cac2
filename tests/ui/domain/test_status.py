"""Reading systemd's answer for several servers at once; who may ask."""

from __future__ import annotations

import pytest

from left4me_ui import blueprints, servers, status
from left4me_ui.authz import NotFound
from left4me_ui.inventory import Inventory

SHOWN = """Id=left4me-server@a1.service
ActiveState=active
SubState=running
Result=success

Id=left4me-server@b2.service
ActiveState=failed
SubState=failed
Result=oom-kill
"""


def test_systemctl_show_blocks_become_states():
    states = status.parse_systemctl_show(SHOWN)
    assert states["left4me-server@a1.service"].text == "active (running)"
    assert states["left4me-server@b2.service"].text == "failed (failed), last result oom-kill"


def test_other_users_cannot_probe_a_server(core, alice, bob):
    blueprint = blueprints.create(core, alice, "coop", [], blueprints.BlueprintSettings())
    server_id, _ = servers.create(core, alice, "alice1", "alpha", blueprint.id)
    with pytest.raises(NotFound):
        status.a2s_info(core, bob, server_id)
    assert status.systemd_states(core, bob, "alpha") == {}  # nothing of bob's there
    # Nobody answers (on loopback: probes never leave this machine): None, not an error.
    core._inventory = None
    core.inventory_loader = lambda _path: Inventory({"alpha": {"ansible_host": "127.0.0.1"}})
    assert status.a2s_info(core, alice, server_id, timeout=0.2) is None
