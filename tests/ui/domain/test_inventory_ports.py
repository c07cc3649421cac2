"""The inventory's own servers take every port srcds binds: the game port and the client port
(srcds_instance gives port + 1 when the inventory names none), so the UI allocates neither."""

from __future__ import annotations

from left4me_ui.inventory import Inventory


def test_an_inventory_server_without_client_port_takes_the_next_port():
    inventory = Inventory({"h1": {"game_instances_list": [
        {"name": "coop1", "port": 27015},
        {"name": "versus1", "port": 27025, "client_port": 27030},
    ]}})
    declared = {d.name: d.ports for d in inventory.declared_instances("h1")}
    assert declared == {"coop1": (27015, 27016), "versus1": (27025, 27030)}
