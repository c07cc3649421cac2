"""Reconcile a host: re-create every server the UI made there, from the database.

The database is the source of truth for what the UI made. After a host was wiped and
converged again with site.yml (which knows nothing of the UI's servers), one admin action
queues one playbooks/reconcile.yml job for the host: every UI server on it is configured
with its blueprint as it is now (overlays, settings, its ports and RCON password) and
started or stopped as its owner last wanted. On a host that lost nothing the same job
changes nothing, except that a running server whose blueprint changed is restarted (as
"restart to apply" would). The users' overlays those servers stack are built there
first (one "overlay build" job each, queued before it). RCON passwords reach the run only
through the job's 0600 extravars file, as for a single server's job.
"""

from __future__ import annotations

import json
import sqlite3

from left4me_ui import authz, blueprints, jobs, overlays, servers
from left4me_ui.authz import Actor
from left4me_ui.core import Core
from left4me_ui.settings import Settings

PLAYBOOK = "reconcile.yml"
KIND_RECONCILE = "host reconcile"
RCON_SECRETS = "host_rcon"
# UI bookkeeping beside the playbook's variables (the playbook ignores it): which blueprint
# revision each server gets, so "restart to apply" clears once the job succeeded.
REVISIONS_VAR = "left4me_ui_revisions"
# What a reconcile job carries (reconcile_vars builds them): playbooks/reconcile.yml's inputs,
# and the blueprint revisions its finish hook records.
VARIABLES = frozenset({"left4me_servers", "left4me_servers_stopped", REVISIONS_VAR})


def reconcile_vars(rows: list[sqlite3.Row], linked: dict[int, blueprints.Blueprint],
                   owners: dict[int, dict], settings: Settings) -> dict:
    """playbooks/reconcile.yml's variables for these servers (no secret); ``owners`` holds
    servers.claim_of for each row id (a server this UI ran there claims its instance); the
    limits are each blueprint's within the admin's ceiling in ``settings``."""
    wanted = []
    for row in rows:
        server = servers.server_vars(row, linked[row["blueprint_id"]], "started",
                                     owners[row["id"]], settings)
        wanted.append({"name": server["left4me_server_name"], **owners[row["id"]],
                       **server["left4me_server_settings"]})
    return {
        "left4me_servers": wanted,
        "left4me_servers_stopped": [r["name"] for r in rows if r["desired_state"] == "stopped"],
        REVISIONS_VAR: {r["name"]: linked[r["blueprint_id"]].revision for r in rows},
    }


def reconcile_host(core: Core, admin: Actor, host: str) -> int:
    """Queue the job that re-creates the UI's servers on `host` (admins); returns its id."""
    inventory_hosts = core.inventory().hosts
    with core.db.connect() as conn:
        me = authz.require_admin(conn, admin)
        if host not in inventory_hosts:
            raise authz.NotFound(f"no host {host!r} in the inventory")
        rows = conn.execute("SELECT * FROM servers WHERE host = ? AND deleting = 0 ORDER BY"
                            " name", (host,)).fetchall()
        linked = {}
        for row in rows:
            servers.require_ui_managed(core, host, row["name"])
            linked[row["blueprint_id"]] = blueprints.load(
                conn, authz.Actor(row["owner_id"], "", authz.USER), row["blueprint_id"])
        # A wiped host lost the users' overlays too: build every one stacked here again
        # (a build changes nothing where the files are there already), before the servers.
        stacked = sorted({o for b in linked.values() for o in b.overlays})
        overlays.ensure_built(conn, core, me, host, stacked, force=True)
        return jobs.enqueue(conn, core, me, kind=KIND_RECONCILE, host=host, target=host,
                            playbook=PLAYBOOK,
                            extravars=reconcile_vars(rows, linked, {
                                r["id"]: servers.claim_of(conn, r) for r in rows},
                                core.settings),
                            secrets_from=RCON_SECRETS)


def rcon_secrets(core: Core, job: jobs.Job) -> dict:
    """The secret provider RCON_SECRETS: every reconciled server's RCON password."""
    names = [s["name"] for s in job.extravars.get("left4me_servers", [])]
    with core.db.connect() as conn:
        rows = {r["name"]: r["rcon_encrypted"] for r in conn.execute(
            "SELECT name, rcon_encrypted FROM servers WHERE host = ?", (job.host,))}
    missing = [n for n in names if n not in rows]
    if missing:
        raise authz.NotFound(f"servers deleted since the job was queued: {', '.join(missing)};"
                             " reconcile the host again")
    return {"left4me_servers_rcon": {
        name: {"rcon_password": core.crypto.decrypt(rows[name])} for name in names}}


def finished(conn: sqlite3.Connection, core: Core, job: jobs.Job, state: str) -> None:
    """A reconcile's finish hook: each server records the revision it now runs."""
    if state != jobs.SUCCEEDED:
        return
    stacked = {s["name"]: s.get("overlays", []) for s in job.extravars.get("left4me_servers", [])}
    for name, revision in job.extravars.get(REVISIONS_VAR, {}).items():
        applied = overlays.built_revisions(conn, job.host, stacked.get(name, []))
        conn.execute("UPDATE servers SET applied_revision = ?, applied_overlays = ? WHERE"
                     " host = ? AND name = ?", (revision, json.dumps(applied), job.host, name))
