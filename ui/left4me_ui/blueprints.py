"""Blueprints: a user's named recipe (overlays, first wins, plus settings) servers link to."""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import asdict, dataclass, field

from left4me_ui import audit, authz
from left4me_ui.authz import Actor, NotFound
from left4me_ui.core import Core
from left4me_ui.inventory import Inventory
from left4me_ui.refusal import Refusal
from left4me_ui.settings import Settings
from left4me_ui.validation import (
    DEFAULTS,
    PLACEHOLDER_NAME,
    InstanceError,
    check_instance,
    cvar_args,
    parse_size,
    size_text,
)

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}")


class InUse(Refusal):
    """The blueprint still has linked servers."""


@dataclass(frozen=True)
class BlueprintSettings:
    hostname: str | None = None
    map: str = DEFAULTS["map"]
    maxplayers: int = DEFAULTS["maxplayers"]
    tickrate: int = DEFAULTS["tickrate"]
    cvars: dict[str, str] = field(default_factory=dict)
    # The server's limits, at most the admin's ceiling (Settings.server_*); None: the ceiling.
    memory_max: str | None = None
    tasks_max: int | None = None
    cpu_quota: int | None = None

    def module_args(self) -> dict:
        """The srcds_instance options these settings stand for (limits: those it sets)."""
        own = {key: getattr(self, key) for key in LIMIT_KEYS if getattr(self, key) is not None}
        return {"hostname": self.hostname, "map": self.map, "maxplayers": self.maxplayers,
                "tickrate": self.tickrate, "args": cvar_args(self.cvars), **own}


LIMIT_KEYS = ("memory_max", "tasks_max", "cpu_quota")


def ceiling(settings: Settings) -> dict:
    """The most an admin lets one server have: srcds_instance's memory_max, tasks_max,
    cpu_quota (LEFT4ME_UI_SERVER_MEMORY_MAX, _TASKS_MAX, _CPU_QUOTA)."""
    return {"memory_max": settings.server_memory_max, "tasks_max": settings.server_tasks_max,
            "cpu_quota": settings.server_cpu_quota}


def server_limits(config: BlueprintSettings, settings: Settings) -> dict:
    """What a server made from ``config`` runs with: its own limits, never above the
    ceiling (an admin may have lowered it since the blueprint was saved), else the ceiling."""
    most = ceiling(settings)
    own = {key: getattr(config, key) for key in LIMIT_KEYS}
    limits = {key: most[key] if own[key] is None else own[key] for key in LIMIT_KEYS}
    if parse_size(limits["memory_max"], "memory_max") > parse_size(most["memory_max"],
                                                                   "memory_max"):
        limits["memory_max"] = most["memory_max"]
    limits["tasks_max"] = min(int(limits["tasks_max"]), int(most["tasks_max"]))
    limits["cpu_quota"] = min(int(limits["cpu_quota"]), int(most["cpu_quota"]))
    return limits


@dataclass(frozen=True)
class Blueprint:
    id: int
    owner_id: int
    name: str
    overlays: tuple[str, ...]
    settings: BlueprintSettings
    revision: int
    updated_at: float
    linked_servers: tuple[str, ...] = ()  # "host/name" of the servers using it


def check(name: str, overlays: list[str], config: BlueprintSettings,
          settings: Settings | None = None) -> BlueprintSettings:
    """Validate a blueprint with the srcds_instance rules, its limits within the admin's
    ceiling (``settings``); returns normalised settings."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise InstanceError("a blueprint name is 1 to 64 letters, digits, spaces, '_', '.'"
                            " or '-'")
    if isinstance(overlays, str):
        raise InstanceError("overlays must be a list of overlay ids")
    spec = check_instance({"name": PLACEHOLDER_NAME, "port": 27015, "overlays": list(overlays),
                           **config.module_args()})
    if settings is not None:
        _check_ceiling(config, spec.limits, settings)
    return BlueprintSettings(
        spec.hostname, spec.map, spec.maxplayers, spec.tickrate,
        {str(k): str(v) for k, v in config.cvars.items()},
        memory_max=None if config.memory_max is None else size_text(spec.limits.memory_max),
        tasks_max=None if config.tasks_max is None else spec.limits.tasks_max,
        cpu_quota=None if config.cpu_quota is None else spec.limits.cpu_quota)


def _check_ceiling(config: BlueprintSettings, limits, settings: Settings) -> None:
    most = ceiling(settings)
    asked = {"memory_max": (limits.memory_max, parse_size(most["memory_max"], "memory_max")),
             "tasks_max": (limits.tasks_max, int(most["tasks_max"])),
             "cpu_quota": (limits.cpu_quota, int(most["cpu_quota"]))}
    shown = {"memory_max": size_text, "tasks_max": str, "cpu_quota": lambda n: f"{n}%"}
    for key, (value, highest) in asked.items():
        if getattr(config, key) is not None and value > highest:
            raise InstanceError(
                f"{key} {shown[key](value)} is above the {shown[key](highest)} an admin allows"
                f" for one server (LEFT4ME_UI_SERVER_{key.upper()}); ask for at most that")


def check_overlay_access(conn: sqlite3.Connection, actor: Actor, overlays: list[str]) -> None:
    """A users' overlay may be stacked only by someone who may view it: its owner or an
    admin; a deleted overlay's id by nobody (what a host may still have under it was that
    overlay's). The inventory's are checked by check_inventory_overlays; other ids the UI
    does not know are left to the host to check."""
    for overlay_id in overlays:
        row = conn.execute("SELECT owner_id FROM overlays WHERE id = ?",
                           (overlay_id,)).fetchone()
        if row is not None and not authz.may_view(actor, row["owner_id"]):
            raise InstanceError(f"overlay {overlay_id!r} is another user's; stack your own"
                                " overlays or the inventory's")
        if row is None and conn.execute("SELECT 1 FROM retired_overlay_ids WHERE id = ?",
                                        (overlay_id,)).fetchone() is not None:
            raise InstanceError(f"overlay {overlay_id!r} was deleted; take it out of the"
                                " blueprint")


def inventory_overlays_for(inventory: Inventory, actor: Actor) -> list[str]:
    """The inventory's overlays the actor may stack: an admin any, a user those the
    operator marks `users_may_stack: true` in overlays_list."""
    ids = set()
    for host in inventory.hosts:
        ids.update(inventory.overlay_ids(host) if actor.is_admin
                   else inventory.offered_overlay_ids(host))
    return sorted(ids)


def check_inventory_overlays(conn: sqlite3.Connection, inventory: Inventory, owner: Actor,
                             overlays: list[str]) -> None:
    """The blueprint's owner may stack each of the inventory's overlays among `overlays`
    (users' own overlays are check_overlay_access's)."""
    allowed = set(inventory_overlays_for(inventory, owner))
    for overlay_id in overlays:
        declared = any(overlay_id in inventory.overlay_ids(h) for h in inventory.hosts)
        if not declared or overlay_id in allowed:
            continue
        if conn.execute("SELECT 1 FROM overlays WHERE id = ?", (overlay_id,)).fetchone():
            continue  # a user's (made before the inventory declared the id)
        raise InstanceError(f"overlay {overlay_id!r} is the operator's (the inventory's) and"
                            " not offered to users; stack your own overlays or the ones"
                            " offered (an admin offers one with users_may_stack: true in"
                            " overlays_list)")


def _from_row(conn: sqlite3.Connection, row: sqlite3.Row) -> Blueprint:
    raw = json.loads(row["settings"])
    linked = conn.execute("SELECT host, name FROM servers WHERE blueprint_id = ? ORDER BY"
                          " host, name", (row["id"],)).fetchall()
    return Blueprint(row["id"], row["owner_id"], row["name"], tuple(json.loads(row["overlays"])),
                     BlueprintSettings(**raw), row["revision"], row["updated_at"],
                     tuple(f"{r['host']}/{r['name']}" for r in linked))


def load(conn: sqlite3.Connection, actor: Actor, blueprint_id: int) -> Blueprint:
    """Read one blueprint the (already checked) actor may manage, else NotFound."""
    row = conn.execute("SELECT * FROM blueprints WHERE id = ?", (blueprint_id,)).fetchone()
    if row is None or not authz.may_manage(actor, row["owner_id"]):
        raise NotFound("no such blueprint")
    return _from_row(conn, row)


def create(core: Core, actor: Actor, name: str, overlays: list[str],
           config: BlueprintSettings) -> Blueprint:
    normalised = check(name, overlays, config, core.settings)
    now = core.clock()
    inventory = core.inventory()
    with core.db.connect() as conn:
        me = authz.current(conn, actor)
        check_overlay_access(conn, me, list(overlays))
        check_inventory_overlays(conn, inventory, me, list(overlays))
        try:
            cursor = conn.execute(
                "INSERT INTO blueprints (owner_id, name, overlays, settings, created_at,"
                " updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                (me.user_id, name, json.dumps(list(overlays)), json.dumps(asdict(normalised)),
                 now, now))
        except sqlite3.IntegrityError:
            raise InstanceError(f"you have a blueprint named {name!r} already") from None
        audit.record(conn, now, me.name, "create blueprint", f"blueprint {name}", "ok")
        return load(conn, me, int(cursor.lastrowid))


def update(core: Core, actor: Actor, blueprint_id: int, *, name: str | None = None,
           overlays: list[str] | None = None, config: BlueprintSettings | None = None
           ) -> Blueprint:
    """Change a blueprint; linked running servers show "restart to apply" until restarted."""
    now = core.clock()
    inventory = core.inventory()
    with core.db.connect() as conn:
        me = authz.current(conn, actor)
        before = load(conn, me, blueprint_id)
        new_name = before.name if name is None else name
        new_overlays = list(before.overlays if overlays is None else overlays)
        normalised = check(new_name, new_overlays, before.settings if config is None else config,
                           core.settings)
        owner = authz.owner_actor(conn, before.owner_id)
        check_overlay_access(conn, owner, new_overlays)
        if overlays is not None:  # a new list: every inventory overlay in it must be offered
            check_inventory_overlays(conn, inventory, owner, new_overlays)
        try:
            conn.execute("UPDATE blueprints SET name = ?, overlays = ?, settings = ?,"
                         " revision = revision + 1, updated_at = ? WHERE id = ?",
                         (new_name, json.dumps(new_overlays), json.dumps(asdict(normalised)),
                          now, blueprint_id))
        except sqlite3.IntegrityError:
            raise InstanceError(f"you have a blueprint named {new_name!r} already") from None
        audit.record(conn, now, me.name, "update blueprint", f"blueprint {new_name}", "ok")
        return load(conn, me, blueprint_id)


def delete(core: Core, actor: Actor, blueprint_id: int) -> None:
    with core.db.connect() as conn:
        me = authz.current(conn, actor)
        blueprint = load(conn, me, blueprint_id)
        if blueprint.linked_servers:
            audit.record(conn, core.clock(), me.name, "delete blueprint",
                         f"blueprint {blueprint.name}", "refused", "servers linked")
            raise InUse(f"blueprint {blueprint.name!r} is used by"
                        f" {', '.join(blueprint.linked_servers)}; link them to another"
                        " blueprint or delete them first")
        conn.execute("DELETE FROM blueprints WHERE id = ?", (blueprint_id,))
        audit.record(conn, core.clock(), me.name, "delete blueprint",
                     f"blueprint {blueprint.name}", "ok")


def get(core: Core, actor: Actor, blueprint_id: int) -> Blueprint:
    with core.db.connect() as conn:
        return load(conn, authz.current(conn, actor), blueprint_id)


def list_for(core: Core, actor: Actor) -> list[Blueprint]:
    """The actor's blueprints (an admin sees everyone's)."""
    with core.db.connect() as conn:
        rows = authz.visible_rows(conn, authz.current(conn, actor), "SELECT * FROM blueprints",
                                  "name")
        return [_from_row(conn, r) for r in rows]
