"""Refusals share one base in the domain, and the Hosts page's reads are the admins'."""

from __future__ import annotations

import pytest

from left4me_ui import (
    accounts,
    authz,
    blueprints,
    hosts,
    live,
    overlays,
    refusal,
    runner,
    servers,
)
from left4me_ui.validation import InstanceError


@pytest.mark.parametrize("refused", [
    authz.Forbidden, authz.NotFound, accounts.LoginFailed, accounts.Throttled, blueprints.InUse,
    live.ConsoleError, overlays.OverlayError, servers.NoFreePort])
def test_each_refusal_of_the_domain_is_a_refusal(refused):
    assert issubclass(refused, refusal.Refusal)


@pytest.mark.parametrize("shown", [refusal.Refusal, InstanceError, ValueError,
                                   accounts.InvalidInput])
def test_what_pages_show_as_it_is(shown):
    assert issubclass(shown, refusal.REFUSED)


def test_only_admins_see_the_hosts(core, alice, admin, monkeypatch):
    asked = []
    monkeypatch.setattr(runner, "check_reachability",
                        lambda inventory: asked.append(inventory) or [])
    with pytest.raises(authz.Forbidden):
        hosts.reachability(core, alice)
    with pytest.raises(authz.Forbidden):
        hosts.inventory_shown(core, alice)
    assert asked == []  # no host was asked for her
    assert hosts.reachability(core, admin) == []
    assert len(asked) == 1
    assert hosts.inventory_shown(core, admin)
