"""The Hosts page lists the inventory's hosts and tells reachable from unreachable."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from left4me_ui import runner


@pytest.fixture
def inventory(booted_host, host_inventory, tmp_path: Path) -> Path:
    """The booted host, plus one whose SSH port is closed (on loopback: nothing leaves)."""
    path = tmp_path / "hosts.yml"
    path.write_text(host_inventory(booted_host, more_hosts=(
        "    closed-port:\n      ansible_host: 127.0.0.1\n      ansible_port: 1\n")))
    return path


def test_reachability_tells_the_booted_host_from_a_closed_port(booted_host, inventory):
    by_host = {r.host: r for r in runner.check_reachability(inventory)}
    assert set(by_host) == {booted_host.name, "closed-port"}
    assert by_host[booted_host.name].reachable
    assert not by_host["closed-port"].reachable
    assert "refused" in by_host["closed-port"].detail.lower()


def test_hosts_page_shows_an_admin_each_host_and_its_state(booted_host, inventory, core,
                                                          admin):
    core.settings = replace(core.settings, inventory=inventory)  # LEFT4ME_INVENTORY's
    page = admin.app("hosts")
    assert not page.exception
    assert page.title[0].value == "Hosts"
    table = page.dataframe[0].value
    states = dict(zip(table["host"], table["reachable"], strict=True))
    assert states == {booted_host.name: "yes", "closed-port": "no"}
    assert page.text[-1].value == "1 of 2 hosts reachable."
