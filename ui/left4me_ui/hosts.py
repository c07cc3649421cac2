"""Hosts (admins): the inventory the UI drives and whether Ansible reaches each host now."""

from __future__ import annotations

from left4me_ui import authz, runner, settings
from left4me_ui.authz import Actor, Forbidden
from left4me_ui.core import Core


def _require_admin(core: Core, actor: Actor) -> None:
    with core.db.connect() as conn:
        if not authz.may_admin(authz.current(conn, actor)):
            raise Forbidden("only admins see the hosts")


def inventory_shown(core: Core, actor: Actor) -> str:
    """The inventory as LEFT4ME_INVENTORY names it, relative to the project when inside it."""
    _require_admin(core, actor)
    inventory = settings.inventory_path()
    if inventory.is_relative_to(settings.PROJECT_DIR):
        return str(inventory.relative_to(settings.PROJECT_DIR))
    return str(inventory)


def reachability(core: Core, actor: Actor) -> list[runner.Reachability]:
    """Each host of that inventory and whether an ansible.builtin.ping reached it."""
    _require_admin(core, actor)
    return runner.check_reachability(settings.inventory_path())
