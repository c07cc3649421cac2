"""Servers: validate -> authorize -> audit -> enqueue a playbooks/server.yml job -> job id.

A server lives on one inventory host, is live-linked to one blueprint of its owner, and
gets free ports and a generated RCON password (stored encrypted with the UI secret, sent
to the run only through the job's 0600 extravars file).
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass

from left4me_ui import audit, authz, blueprints, disk_share, jobs, overlays
from left4me_ui.authz import Actor, Forbidden, NotFound
from left4me_ui.core import Core
from left4me_ui.refusal import Refusal
from left4me_ui.settings import Settings
from left4me_ui.validation import InstanceError, check_instance, check_name

PLAYBOOK = "server.yml"
KIND_CREATE, KIND_START, KIND_STOP = "server create", "server start", "server stop"
KIND_RESTART, KIND_DELETE = "server restart", "server delete"
KINDS = (KIND_CREATE, KIND_START, KIND_STOP, KIND_RESTART, KIND_DELETE)
RCON_SECRET = "server_rcon"
# What playbooks/server.yml reads (server_vars builds them).
VARIABLES = frozenset({"left4me_server_name", "left4me_server_state", "left4me_server_settings",
                       "left4me_server_claim", "left4me_server_adopt"})


class NoFreePort(Refusal):
    """The host has no two free ports left in LEFT4ME_UI_PORT_RANGE."""


class InventoryManaged(Forbidden):
    """The server is the inventory's (site.yml manages it): the UI only shows it."""


@dataclass(frozen=True)
class DeclaredServer:
    """A server the inventory declares on a host (game_instances_list): read-only here."""

    host: str
    name: str
    ports: tuple[int, ...]
    connect_line: str


@dataclass(frozen=True)
class Server:
    id: int
    owner_id: int
    owner_name: str
    host: str
    name: str
    port: int
    client_port: int
    blueprint_id: int
    blueprint_name: str
    desired_state: str  # started | stopped
    deleting: bool
    deployed: bool  # a job has applied its configuration at least once
    # running with an older blueprint revision, or a user overlay it stacks changed since
    # (the restart builds it on the host first): "restart to apply"
    needs_restart: bool
    connect_line: str


# --- pure helpers -----------------------------------------------------------------------------


def allocate_ports(taken: Iterable[int], port_range: tuple[int, int]) -> tuple[int, int]:
    """The lowest free (port, client_port) pair, port + 1 as client port, in the range."""
    used = set(taken)
    low, high = port_range
    for port in range(low, high):
        if port not in used and port + 1 not in used:
            return port, port + 1
    raise NoFreePort(f"no two free ports left between {low} and {high} on this host;"
                     " delete a server or ask an admin to widen LEFT4ME_UI_PORT_RANGE")


def taken_ports(conn: sqlite3.Connection, core: Core, host: str) -> set[int]:
    """Ports of every instance on the host: the UI's and the inventory's own."""
    taken: set[int] = set()
    for row in conn.execute("SELECT port, client_port FROM servers WHERE host = ?", (host,)):
        taken.update((row["port"], row["client_port"]))
    for declared in core.inventory().declared_instances(host):
        taken.update(declared.ports)
    return taken


def connect_line(hostvars: dict, host: str, port: int) -> str:
    address = hostvars.get("left4me_public_address") or hostvars.get("ansible_host") or host
    return f"connect {address}:{port}"


# --- who owns a server on its host ----------------------------------------------------------
# Every UI is manager "ui" on a host; the claim ui:<this UI's id>/<server id>, recorded there
# by srcds_instance, tells one UI's servers from another's, from AWX's and from those of
# this UI's earlier database (a lost database means a new id). The host refuses a call whose
# claim differs, so naming a server like someone else's instance takes nothing over.
INSTANCE_ID_KEY = "instance_id"
# Phrases of srcds_instance's refusals for an instance that is not this server's: the host
# changed nothing, so a create refused this way leaves no server behind.
NOT_OURS = ("is owned by", "has no owner recorded", "is managed by")


def ui_instance_id(conn: sqlite3.Connection) -> str:
    """This UI's own id: made once, kept in its database (never beside it, so a new database
    after a loss is a new UI to the hosts)."""
    conn.execute("INSERT OR IGNORE INTO ui_settings (key, value) VALUES (?, ?)",
                 (INSTANCE_ID_KEY, json.dumps(secrets.token_hex(8))))
    return json.loads(conn.execute("SELECT value FROM ui_settings WHERE key = ?",
                                   (INSTANCE_ID_KEY,)).fetchone()["value"])


def claim_of(conn: sqlite3.Connection, row: sqlite3.Row) -> dict:
    """The claim of a server's instance, and whether the host may give this UI an instance
    recorded without one (a ui instance from before claims): only for a server this UI
    already ran there (a job for it succeeded), never for a new one, so a create never
    takes over an instance the database did not know."""
    return {"claim": f"ui:{ui_instance_id(conn)}/{row['id']}",
            "adopt": row["applied_revision"] is not None}


def server_vars(row: sqlite3.Row, blueprint: blueprints.Blueprint, state: str,
                owner: dict, settings: Settings) -> dict:
    """playbooks/server.yml's variables (no secret: the RCON password goes separately);
    ``owner`` is claim_of(row); the limits are the blueprint's within the admin's ceiling in
    ``settings``."""
    claimed = {"left4me_server_claim": owner["claim"], "left4me_server_adopt": owner["adopt"]}
    if state == "absent":
        return {"left4me_server_name": row["name"], "left4me_server_state": "absent",
                **claimed}
    return {"left4me_server_name": row["name"], "left4me_server_state": state, **claimed,
            "left4me_server_settings": {
                "port": row["port"], "client_port": row["client_port"],
                "overlays": list(blueprint.overlays), **blueprint.settings.module_args(),
                **blueprints.server_limits(blueprint.settings, settings)}}


# --- reads ---------------------------------------------------------------------------------------


def _view(conn: sqlite3.Connection, core: Core, row: sqlite3.Row) -> Server:
    blueprint = conn.execute("SELECT name, revision, overlays FROM blueprints WHERE id = ?",
                             (row["blueprint_id"],)).fetchone()
    owner = conn.execute("SELECT name FROM users WHERE id = ?", (row["owner_id"],)).fetchone()
    deployed = row["applied_revision"] is not None
    try:
        hostvars = core.inventory().hostvars.get(row["host"], {})
    except RuntimeError:
        hostvars = {}
    return Server(
        row["id"], row["owner_id"], owner["name"], row["host"], row["name"], row["port"],
        row["client_port"], row["blueprint_id"], blueprint["name"], row["desired_state"],
        bool(row["deleting"]), deployed,
        deployed and row["desired_state"] == "started"
        and (row["applied_revision"] != blueprint["revision"]
             or json.loads(row["applied_overlays"]) != overlays.revisions(
                 conn, json.loads(blueprint["overlays"]))),
        connect_line(hostvars, row["host"], row["port"]))


def _load(conn: sqlite3.Connection, actor: Actor, server_id: int) -> sqlite3.Row:
    row = conn.execute("SELECT * FROM servers WHERE id = ?", (server_id,)).fetchone()
    if row is None or not authz.may_view(actor, row["owner_id"]):
        raise NotFound("no such server")
    return row


def get(core: Core, actor: Actor, server_id: int) -> Server:
    with core.db.connect() as conn:
        return _view(conn, core, _load(conn, authz.current(conn, actor), server_id))


def list_for(core: Core, actor: Actor) -> list[Server]:
    """The actor's servers (an admin sees everyone's)."""
    with core.db.connect() as conn:
        rows = authz.visible_rows(conn, authz.current(conn, actor), "SELECT * FROM servers",
                                  "host, name")
        return [_view(conn, core, r) for r in rows]


def declared_for(core: Core, actor: Actor) -> list[DeclaredServer]:
    """Servers the inventory runs (site.yml's game_instances_list), for admins to see
    beside the UI's; nothing for users (they see only what they own)."""
    with core.db.connect() as conn:
        me = authz.current(conn, actor)
    if not me.is_admin:
        return []
    inventory = core.inventory()
    return [DeclaredServer(host, d.name, d.ports,
                           connect_line(inventory.hostvars.get(host, {}), host, d.ports[0])
                           if d.ports else "")
            for host in inventory.hosts for d in inventory.declared_instances(host)]


def require_ui_managed(core: Core, host: str, name: str) -> None:
    """Refuse an action on a server the inventory declares on that host: site.yml manages
    it (and srcds_instance, told manager=ui, would refuse it on the host as well)."""
    if name in {d.name for d in core.inventory().declared_instances(host)}:
        raise InventoryManaged(
            f"{name} on {host} is declared by the inventory (game_instances_list): site.yml"
            " manages it and the UI only shows it. Change it in the inventory and run"
            " playbooks/site.yml")


def hosts_for(core: Core, actor: Actor) -> list[str]:
    """Hosts the actor may create servers on (the admin's policy over the inventory)."""
    inventory_hosts = core.inventory().hosts
    with core.db.connect() as conn:
        return authz.allowed_hosts(conn, actor, inventory_hosts)


# --- actions --------------------------------------------------------------------------------------


def create(core: Core, actor: Actor, name: str, host: str, blueprint_id: int) -> tuple[int, int]:
    """A new server on `host` from a blueprint, started by a job: (server id, job id)."""
    check_name(name)
    inventory = core.inventory()
    rcon_password = secrets.token_urlsafe(24)  # URL-safe: no quote or ';' for the cfg file
    with core.db.connect() as conn:
        me = authz.current(conn, actor)
        authz.require_host(conn, me, host, inventory.hosts)
        authz.require_server_quota(conn, me)
        disk_share.require_room(conn, core.settings, inventory, me, disk_share.Holding(
            f"server {host}/{name}", disk_share.server_cap(inventory, host)))
        blueprint = blueprints.load(conn, me, blueprint_id)
        if blueprint.owner_id != me.user_id:
            raise Forbidden("a server uses one of its owner's own blueprints")
        blueprints.check_overlay_access(conn, me, list(blueprint.overlays))
        blueprints.check_inventory_overlays(conn, inventory, me, list(blueprint.overlays))
        declared = {d.name for d in inventory.declared_instances(host)}
        taken_names = {r["name"] for r in conn.execute("SELECT name FROM servers WHERE host = ?",
                                                       (host,))}
        if name in declared or name in taken_names:
            raise InstanceError(f"a server named {name!r} exists on {host} already;"
                                " pick another name")
        port, client_port = allocate_ports(taken_ports(conn, core, host),
                                           core.settings.port_range)
        check_instance({"name": name, "port": port, "client_port": client_port,
                        "overlays": list(blueprint.overlays), "rcon_password": rcon_password,
                        **blueprint.settings.module_args()})
        cursor = conn.execute(
            "INSERT INTO servers (owner_id, host, name, port, client_port, blueprint_id,"
            " rcon_encrypted, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (me.user_id, host, name, port, client_port, blueprint.id,
             core.crypto.encrypt(rcon_password), core.clock()))
        server_id = int(cursor.lastrowid)
        row = conn.execute("SELECT * FROM servers WHERE id = ?", (server_id,)).fetchone()
        audit.record(conn, core.clock(), me.name, "create server", f"{host}/{name}", "ok",
                     f"ports {port}/{client_port}, blueprint {blueprint.name}")
        overlays.ensure_built(conn, core, me, host, list(blueprint.overlays))
        job_id = _enqueue(conn, core, me, row, blueprint, KIND_CREATE, "started")
        return server_id, job_id


def _enqueue(conn: sqlite3.Connection, core: Core, me: Actor, row: sqlite3.Row,
             blueprint: blueprints.Blueprint, kind: str, state: str) -> int:
    return jobs.enqueue(conn, core, me, kind=kind, host=row["host"],
                        target=f"{row['host']}/{row['name']}", playbook=PLAYBOOK,
                        extravars=server_vars(row, blueprint, state, claim_of(conn, row),
                                              core.settings),
                        server_id=row["id"],
                        secrets_from=None if state == "absent" else RCON_SECRET,
                        blueprint_revision=blueprint.revision)


def _act(core: Core, actor: Actor, server_id: int, kind: str, state: str) -> int:
    with core.db.connect() as conn:
        me = authz.current(conn, actor)
        row = _load(conn, me, server_id)
        require_ui_managed(core, row["host"], row["name"])
        if row["deleting"]:
            raise InstanceError(f"server {row['name']} is being deleted")
        owner = authz.owner_actor(conn, row["owner_id"])
        blueprint = blueprints.load(conn, owner, row["blueprint_id"])
        # The owner's overlays as they are now, on this host before the server job.
        blueprints.check_overlay_access(conn, owner, list(blueprint.overlays))
        # A blueprint stacked before the operator's offer changed is checked again here.
        blueprints.check_inventory_overlays(conn, core.inventory(), owner,
                                            list(blueprint.overlays))
        overlays.ensure_built(conn, core, me, row["host"], list(blueprint.overlays))
        return _enqueue(conn, core, me, row, blueprint, kind, state)


def start(core: Core, actor: Actor, server_id: int) -> int:
    """Start (applying the blueprint as it is now); returns the job id."""
    return _act(core, actor, server_id, KIND_START, "started")


def stop(core: Core, actor: Actor, server_id: int) -> int:
    return _act(core, actor, server_id, KIND_STOP, "stopped")


def restart(core: Core, actor: Actor, server_id: int) -> int:
    """Restart with the blueprint as it is now ("restart to apply")."""
    return _act(core, actor, server_id, KIND_RESTART, "restarted")


def delete(core: Core, actor: Actor, server_id: int, confirm_name: str) -> int:
    """Remove the server from its host; the row goes when the job succeeds."""
    with core.db.connect() as conn:
        me = authz.current(conn, actor)
        row = _load(conn, me, server_id)
        require_ui_managed(core, row["host"], row["name"])
        if confirm_name != row["name"]:
            raise InstanceError(f"type the server's name, {row['name']}, to confirm")
        conn.execute("UPDATE servers SET deleting = 1 WHERE id = ?", (server_id,))
        blueprint = blueprints.load(conn, authz.Actor(row["owner_id"], "", authz.USER),
                                    row["blueprint_id"])
        return _enqueue(conn, core, me, row, blueprint, KIND_DELETE, "absent")


# --- job plumbing ---------------------------------------------------------------------------------


def rcon_secret(core: Core, job: jobs.Job) -> dict:
    """The secret provider RCON_SECRET: the server's RCON password, for its job's run."""
    with core.db.connect() as conn:
        row = conn.execute("SELECT rcon_encrypted FROM servers WHERE id = ?",
                           (job.server_id,)).fetchone()
    if row is None:
        raise NotFound("the server of this job no longer exists")
    return {"left4me_server_rcon_password": core.crypto.decrypt(row["rcon_encrypted"])}


def rcon_password(core: Core, actor: Actor, server_id: int) -> str:
    """The RCON password, for the server's owner (or an admin) to use from the UI."""
    with core.db.connect() as conn:
        row = _load(conn, authz.current(conn, actor), server_id)
    return core.crypto.decrypt(row["rcon_encrypted"])


def _refused_as_not_ours(conn: sqlite3.Connection, job: jobs.Job) -> bool:
    error = conn.execute("SELECT error FROM jobs WHERE id = ?", (job.id,)).fetchone()["error"]
    return any(phrase in (error or "") for phrase in NOT_OURS)


def finished(conn: sqlite3.Connection, core: Core, job: jobs.Job, state: str) -> None:
    """The server kinds' finish hook: the server row follows what its job did."""
    if job.server_id is None:
        return
    if job.kind == KIND_CREATE and state == jobs.FAILED and _refused_as_not_ours(conn, job):
        # The host has an instance of that name that is not this server's and changed
        # nothing: the name was never ours, so no server of it is kept (or reconciled).
        conn.execute("DELETE FROM servers WHERE id = ? AND applied_revision IS NULL",
                     (job.server_id,))
        return
    if job.kind == KIND_DELETE:
        if state == jobs.SUCCEEDED:
            conn.execute("DELETE FROM servers WHERE id = ?", (job.server_id,))
        else:
            conn.execute("UPDATE servers SET deleting = 0 WHERE id = ?", (job.server_id,))
        return
    if state != jobs.SUCCEEDED:
        return
    desired = "stopped" if job.kind == KIND_STOP else "started"
    stacked = job.extravars.get("left4me_server_settings", {}).get("overlays", [])
    applied = overlays.built_revisions(conn, job.host, stacked)  # what the host had
    conn.execute("UPDATE servers SET desired_state = ?, applied_revision = ?,"
                 " applied_overlays = ? WHERE id = ?",
                 (desired, job.blueprint_revision, json.dumps(applied), job.server_id))
