"""Overlay rows: who owns each, which blueprints stack it, its revision and incarnation;
create, read and delete them, by the collection's id rule.

An overlay id is the directory name on every host (`{state_dir}/overlays/{id}`), so it
follows the collection's id rule (imported, not copied) and is unique across all users
and the inventory's own `overlays_list`. An id never comes back: deleting an overlay
retires its id, so a later overlay of that name cannot read the old one's build logs or
inherit its host directory and build records. Each overlay also has an incarnation (a
random token) that its build and remove jobs carry, so a job of an overlay that shared the
id before ids were retired is never taken for this one's, and a host directory marked by
another incarnation is refused.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from ansible_collections.left4me.l4d2.plugins.module_utils._common import validate_id

from left4me_ui import audit, authz, disk_share, jobs
from left4me_ui.authz import Actor, NotFound
from left4me_ui.blueprints import InUse
from left4me_ui.core import Core
from left4me_ui.overlays.fd_tree import OverlayError, opened_dir, remove_tree

KINDS = ("files", "workshop", "script")
BUILDABLE_KINDS = ("files", "workshop", "script")
# The jobs that put an overlay on a host and take it off again (on_hosts.py queues builds,
# each kind's module builds its own; delete below queues the removes).
BUILD_PLAYBOOK = "overlay.yml"
KIND_BUILD, KIND_REMOVE = "overlay build", "overlay remove"
# What playbooks/overlay.yml reads to remove an overlay (delete queues it).
REMOVE_VARIABLES = frozenset({"left4me_overlay_id", "left4me_overlay_incarnation",
                              "left4me_overlay_state"})
# The build's extravars that tell its task count: BUILD_PLAYBOOK builds files and scripts
# (absent: files), which report different counts (jobs.expected_tasks).
BUILD_ALIKE = ("left4me_overlay_kind",)


@dataclass(frozen=True)
class Overlay:
    id: str
    owner_id: int
    owner_name: str
    kind: str
    revision: int
    created_at: float
    updated_at: float
    used_by: tuple[str, ...] = ()  # names of the blueprints stacking it the viewer may see
    used_by_others: int = 0  # how many more stack it: other users' (their names are theirs)
    incarnation: str = ""  # random, this overlay's alone (build and remove jobs carry it)

    @property
    def in_use(self) -> bool:
        return bool(self.used_by) or self.used_by_others > 0

    def used_by_text(self, quoted: bool = True) -> str:
        """"'coop', 'versus' and 2 blueprints of other users", or "" when unused."""
        named = ", ".join(repr(name) if quoted else name for name in self.used_by)
        if self.used_by_others:
            others = self.used_by_others
            named = (f"{named} and " if named else "") + \
                f"{others} blueprint{'s' if others > 1 else ''} of other users"
        return named


def _used_by(conn: sqlite3.Connection, overlay_id: str) -> list[tuple[int, str]]:
    """(owner_id, name) of every blueprint stacking the overlay, whoever owns it."""
    rows = conn.execute("SELECT owner_id, name, overlays FROM blueprints ORDER BY name")
    return [(r["owner_id"], r["name"]) for r in rows if overlay_id in json.loads(r["overlays"])]


def from_row(conn: sqlite3.Connection, row: sqlite3.Row, viewer: Actor) -> Overlay:
    """The overlay as `viewer` sees it: other users' blueprints stacking it are counted,
    not named."""
    users = _used_by(conn, row["id"])
    named = tuple(name for owner, name in users if authz.may_view(viewer, owner))
    return Overlay(row["id"], row["owner_id"], row["owner_name"], row["kind"], row["revision"],
                   row["created_at"], row["updated_at"], named, len(users) - len(named),
                   row["incarnation"])


def of_this_incarnation(overlay_id: str, incarnation: str, created_at: float,
                        extravars: dict, queued_at: float) -> bool:
    """Whether a build or remove job (its extravars, when it was queued) is this overlay's,
    not one of an earlier overlay of the same id (ids were reused before they were retired:
    such a job carries no incarnation and was queued before this overlay was created)."""
    if extravars.get("left4me_overlay_id") != overlay_id:
        return False
    carried = extravars.get("left4me_overlay_incarnation")
    if carried is not None:
        return carried == incarnation
    return queued_at >= created_at


SELECT = ("SELECT overlays.*, users.name AS owner_name FROM overlays"
          " JOIN users ON users.id = overlays.owner_id")


def load(conn: sqlite3.Connection, actor: Actor, overlay_id: str) -> Overlay:
    """One overlay the (already checked) actor may manage, else NotFound."""
    row = conn.execute(f"{SELECT} WHERE overlays.id = ?", (overlay_id,)).fetchone()
    if row is None or not authz.may_view(actor, row["owner_id"]) \
            or not authz.may_manage(actor, row["owner_id"]):
        raise NotFound("no such overlay")
    return from_row(conn, row, actor)


def tree_dir(core: Core, overlay_id: str) -> Path:
    return core.settings.overlays_dir / validate_id(overlay_id, "overlay id", OverlayError)


def require_kind(overlay: Overlay, kind: str, shown: str | None = None) -> None:
    """Refuse an overlay of another kind than `kind` (named `shown` in the message)."""
    if overlay.kind != kind:
        raise OverlayError(f"overlay {overlay.id!r} is a {overlay.kind} overlay, not a"
                           f" {shown or kind} overlay")


def create(core: Core, actor: Actor, overlay_id: str, kind: str = "files") -> Overlay:
    """A new, empty overlay owned by the actor."""
    validate_id(overlay_id, "overlay id", OverlayError)
    if kind not in BUILDABLE_KINDS:
        raise OverlayError(f"overlay kind must be one of {', '.join(BUILDABLE_KINDS)}"
                           f" (for now), got {kind!r}")
    inventory = core.inventory()
    declared = [h for h in inventory.hosts if overlay_id in inventory.overlay_ids(h)]
    if declared:
        raise OverlayError(f"the inventory declares overlay {overlay_id!r} (on"
                           f" {', '.join(declared)}); pick another id")
    now = core.clock()
    with core.db.connect() as conn:
        me = authz.current(conn, actor)
        if conn.execute("SELECT 1 FROM retired_overlay_ids WHERE id = ?",
                        (overlay_id,)).fetchone() is not None:
            raise OverlayError(f"overlay id {overlay_id!r} belonged to an overlay that was"
                               " deleted; an id never comes back (its build logs and host"
                               " files were another overlay's), so pick another")
        disk_share.require_room(conn, core.settings, inventory, me, disk_share.Holding(
            f"{disk_share.KIND_WORDS[kind]} {overlay_id!r}", disk_share.overlay_cap(
                core.settings, kind)))
        try:
            conn.execute("INSERT INTO overlays (id, owner_id, kind, incarnation, created_at,"
                         " updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                         (overlay_id, me.user_id, kind, secrets.token_hex(8), now, now))
        except sqlite3.IntegrityError:
            raise OverlayError(f"overlay id {overlay_id!r} is taken; pick another") from None
        core.settings.overlays_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            os.mkdir(tree_dir(core, overlay_id), 0o700)
        except FileExistsError:
            raise OverlayError(f"a folder for overlay {overlay_id!r} is left in"
                               f" {core.settings.overlays_dir}; an admin must remove it"
                               " first") from None
        audit.record(conn, now, me.name, "create overlay", f"overlay {overlay_id}", "ok")
        return load(conn, me, overlay_id)


def get(core: Core, actor: Actor, overlay_id: str) -> Overlay:
    with core.db.connect() as conn:
        return load(conn, authz.current(conn, actor), overlay_id)


def list_for(core: Core, actor: Actor) -> list[Overlay]:
    """The actor's overlays (an admin sees everyone's)."""
    with core.db.connect() as conn:
        me = authz.current(conn, actor)
        rows = authz.visible_rows(conn, me, SELECT, "overlays.id", "overlays.owner_id")
        return [from_row(conn, r, me) for r in rows]


def delete(core: Core, actor: Actor, overlay_id: str) -> None:
    """Delete an overlay and its tree; InUse while any blueprint stacks it. Each host it
    was built on gets an "overlay remove" job (playbooks/overlay.yml, state absent)."""
    now = core.clock()
    with core.db.connect() as conn:
        me = authz.current(conn, actor)
        overlay = load(conn, me, overlay_id)
        if overlay.in_use:
            raise InUse(f"overlay {overlay_id!r} is used by blueprint {overlay.used_by_text()};"
                        " take it out of them first")
        for host in hosts_with(conn, overlay):
            # After any build queued there (jobs on a host run in order); the playbook
            # refuses while a server of the host still stacks the directory.
            jobs.enqueue(conn, core, me, kind=KIND_REMOVE, host=host,
                         target=f"{host}/overlay {overlay_id}", playbook=BUILD_PLAYBOOK,
                         extravars={"left4me_overlay_id": overlay_id,
                                    "left4me_overlay_incarnation": overlay.incarnation,
                                    "left4me_overlay_state": "absent"})
        conn.execute("DELETE FROM overlays WHERE id = ?", (overlay_id,))
        conn.execute("INSERT OR IGNORE INTO retired_overlay_ids (id, retired_at) VALUES (?, ?)",
                     (overlay_id, now))
        root = tree_dir(core, overlay_id)
        trash = None
        if root.exists() or root.is_symlink():
            core.settings.overlays_staging_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            trash = (core.settings.overlays_staging_dir
                     / f"deleted-{overlay_id}-{secrets.token_hex(4)}")
            os.rename(root, trash)  # gone at once; removed below, after the commit
        audit.record(conn, now, me.name, "delete overlay", f"overlay {overlay.id}", "ok")
    if trash is not None:
        with contextlib.suppress(OSError), opened_dir(trash.parent) as staging_fd:
            remove_tree(staging_fd, trash.name)


def builds_this(overlay: Overlay, extravars: dict, queued_at: float) -> bool:
    return of_this_incarnation(overlay.id, overlay.incarnation, overlay.created_at, extravars,
                               queued_at)


def hosts_with(conn: sqlite3.Connection, overlay: Overlay) -> list[str]:
    """Hosts the overlay was built on, or may be by a build queued or running now."""
    hosts = {r["host"] for r in conn.execute("SELECT host FROM overlay_builds WHERE"
                                             " overlay_id = ?", (overlay.id,))}
    for row in conn.execute("SELECT host, extravars, created_at FROM jobs WHERE kind = ? AND"
                            " state IN (?, ?)", (KIND_BUILD, jobs.QUEUED, jobs.RUNNING)):
        if builds_this(overlay, json.loads(row["extravars"]), row["created_at"]):
            hosts.add(row["host"])
    return sorted(hosts)

