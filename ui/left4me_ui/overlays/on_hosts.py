"""Overlays on hosts: queue a build (by the builder boot.py declares for the overlay's
kind), know which revision each host has, build what a server job needs first, and end the
jobs waiting on a build that failed.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass

from left4me_ui import authz, jobs
from left4me_ui.authz import Actor
from left4me_ui.core import Core
from left4me_ui.overlays.rows import (
    KIND_BUILD,
    SELECT,
    Overlay,
    builds_this,
    from_row,
    load,
    of_this_incarnation,
)


@dataclass(frozen=True)
class Build:
    """What the last successful build put on a host."""

    host: str
    revision: int
    built_at: float
    current: bool  # the host has the overlay's latest revision


def _enqueue_build(conn: sqlite3.Connection, core: Core, me: Actor, overlay: Overlay,
                   host: str) -> int:
    """Queue one build of the overlay as it is now (read under the caller's transaction,
    which every change also takes, so the files and the revision agree), by the builder
    boot.py declares for its kind."""
    return core.wiring.builders[overlay.kind](conn, core, me, overlay, host)


def build(core: Core, actor: Actor, overlay_id: str, host: str) -> int:
    """Queue a build of the overlay on `host` (one the actor may use); returns the job id.
    When it succeeds the host has this revision; servers stacking it take it at their next
    (re)start."""
    inventory_hosts = core.inventory().hosts
    with core.db.connect() as conn:
        me = authz.current(conn, actor)
        overlay = load(conn, me, overlay_id)
        authz.require_host(conn, me, host, inventory_hosts)
        return _enqueue_build(conn, core, me, overlay, host)


def _built(conn: sqlite3.Connection, host: str, overlay_id: str) -> int | None:
    row = conn.execute("SELECT revision FROM overlay_builds WHERE overlay_id = ? AND host = ?",
                       (overlay_id, host)).fetchone()
    return None if row is None else int(row["revision"])


def built_revisions(conn: sqlite3.Connection, host: str, overlay_ids: list[str]
                    ) -> dict[str, int]:
    """{id: revision on host} for those of the ids the UI built there (users' overlays)."""
    found = {}
    for overlay_id in overlay_ids:
        revision = _built(conn, host, overlay_id)
        if revision is not None:
            found[overlay_id] = revision
    return found


def revisions(conn: sqlite3.Connection, overlay_ids: list[str]) -> dict[str, int]:
    """{id: latest revision} for those of the ids that are users' overlays."""
    found = {}
    for overlay_id in overlay_ids:
        row = conn.execute("SELECT revision FROM overlays WHERE id = ?",
                           (overlay_id,)).fetchone()
        if row is not None:
            found[overlay_id] = int(row["revision"])
    return found


def ensure_built(conn: sqlite3.Connection, core: Core, me: Actor, host: str,
                 overlay_ids: list[str], *, force: bool = False) -> list[int]:
    """Before a server job on `host`: queue a build of each users' overlay among the ids
    that the host has at an older revision (or not at all; every one with `force`), unless
    a build of that revision is queued or running there already. Jobs on one host run in
    order, so the builds run before the server job queued next. Returns the job ids."""
    queued = []
    for overlay_id in overlay_ids:
        row = conn.execute(f"{SELECT} WHERE overlays.id = ?", (overlay_id,)).fetchone()
        if row is None:
            continue  # the inventory's (site.yml builds those)
        overlay = from_row(conn, row, me)
        built = _built(conn, host, overlay_id)
        if not force and built is not None and built >= overlay.revision:
            continue
        pending = conn.execute(
            "SELECT extravars, created_at FROM jobs WHERE kind = ? AND host = ? AND state IN"
            " (?, ?)", (KIND_BUILD, host, jobs.QUEUED, jobs.RUNNING)).fetchall()
        if any(builds_this(overlay, json.loads(p["extravars"]), p["created_at"])
               and json.loads(p["extravars"]).get("left4me_overlay_revision") == overlay.revision
               for p in pending):
            continue
        queued.append(_enqueue_build(conn, core, me, overlay, host))
    return queued


def builds(core: Core, actor: Actor, overlay_id: str) -> list[Build]:
    """Where the overlay was built and at which revision (out of date: not `current`)."""
    with core.db.connect() as conn:
        overlay = load(conn, authz.current(conn, actor), overlay_id)
        rows = conn.execute("SELECT host, revision, built_at FROM overlay_builds WHERE"
                            " overlay_id = ? ORDER BY host", (overlay_id,)).fetchall()
        return [Build(r["host"], r["revision"], r["built_at"], r["revision"] >= overlay.revision)
                for r in rows]


def _stacked_by(job: jobs.Job) -> set[str]:
    """The overlays a queued job would stack: a server job's, or any of a reconcile's."""
    settings = job.extravars.get("left4me_server_settings") or {}
    stacked = set(settings.get("overlays") or [])
    for server in job.extravars.get("left4me_servers") or []:
        stacked.update(server.get("overlays") or [])
    return stacked


def _fail_jobs_waiting_on(conn: sqlite3.Connection, core: Core, build: jobs.Job,
                          state: str) -> None:
    """A build that did not succeed ends the jobs queued behind it on that host that stack
    the overlay: they would start a server on old files or none, so they do not run."""
    overlay_id = build.extravars.get("left4me_overlay_id")
    rows = conn.execute("SELECT * FROM jobs WHERE host = ? AND state = ? AND id > ? ORDER BY id",
                        (build.host, jobs.QUEUED, build.id)).fetchall()
    for row in rows:
        waiting = jobs._job(row)
        if overlay_id not in _stacked_by(waiting):
            continue
        jobs._finish(conn, core, waiting, jobs.FAILED, None,
                     f"not run: overlay {overlay_id!r} did not build on {build.host} (job"
                     f" {build.id} {state}); fix the overlay, then run this again")


def build_finished(conn: sqlite3.Connection, core: Core, job: jobs.Job, state: str) -> None:
    """A successful build records the revision it put on the host; any other outcome ends
    the server jobs waiting on it."""
    if state != jobs.SUCCEEDED:
        _fail_jobs_waiting_on(conn, core, job, state)
        return
    overlay_id = job.extravars.get("left4me_overlay_id")
    row = conn.execute("SELECT incarnation, created_at FROM overlays WHERE id = ?",
                       (overlay_id,)).fetchone()
    if row is None or not of_this_incarnation(overlay_id, row["incarnation"], row["created_at"],
                                              job.extravars, job.created_at):
        return  # deleted meanwhile (its remove job follows on this host), or another's
    conn.execute(
        "INSERT INTO overlay_builds (overlay_id, host, revision, built_at, job_id)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (overlay_id, host) DO UPDATE SET"
        " revision = excluded.revision, built_at = excluded.built_at, job_id = excluded.job_id",
        (overlay_id, job.host, job.extravars["left4me_overlay_revision"], core.clock(), job.id))
