"""Hosts (admins): the inventory the UI drives and whether Ansible reaches each host now."""

from __future__ import annotations

from left4me_ui import authz, runner
from left4me_ui.authz import Actor, Forbidden
from left4me_ui.core import Core
from left4me_ui.runner import Reachability
from left4me_ui.settings import PROJECT_DIR


def _require_admin(core: Core, actor: Actor) -> None:
    with core.db.connect() as conn:
        if not authz.may_admin(authz.current(conn, actor)):
            raise Forbidden("only admins see the hosts")


def inventory_shown(core: Core, actor: Actor) -> str:
    """The settings' inventory (LEFT4ME_INVENTORY), relative to the project when inside it."""
    _require_admin(core, actor)
    inventory = core.settings.inventory
    if inventory.is_relative_to(PROJECT_DIR):
        return str(inventory.relative_to(PROJECT_DIR))
    return str(inventory)


def reachability(core: Core, actor: Actor) -> list[Reachability]:
    """Each host of that inventory and whether an ansible.builtin.ping reached it."""
    _require_admin(core, actor)
    return runner.check_reachability(core.settings.inventory)
