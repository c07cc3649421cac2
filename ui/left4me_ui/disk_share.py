"""Each user's share of a host's disk: the sum of the caps of everything they own.

Every disk a tenant can grow is capped where it is stored: a server's writes by the
filesystem its image holds (`upper_dir_max`), a script overlay's build output (the
script_overlay module's `max_size`), a Workshop overlay's items at resolve time (the
workshop_overlay module's `max_size`), a files overlay by LEFT4ME_UI_OVERLAY_MAX_TOTAL_BYTES.
So the sum of those caps over what one user owns bounds what that user can occupy on any
host (an overlay is counted once, wherever it is built: the sum bounds each host alone).
`Settings.user_disk_max` (LEFT4ME_UI_USER_DISK_MAX) bounds that sum; a create that would
pass it is refused in the transaction that would have made it, so nothing is stored or
queued. Admins are the operator and are not bound (their use is still shown).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from ansible_collections.left4me.l4d2.plugins.module_utils._common import format_size
from ansible_collections.left4me.l4d2.plugins.module_utils._instance import LIMIT_DEFAULTS
from ansible_collections.left4me.l4d2.plugins.module_utils._script_overlay import (
    DEFAULT_MAX_SIZE as SCRIPT_MAX_SIZE,
)
from ansible_collections.left4me.l4d2.plugins.module_utils._workshop import (
    DEFAULT_MAX_SIZE as WORKSHOP_MAX_SIZE,
)

from left4me_ui import authz
from left4me_ui.authz import Actor
from left4me_ui.core import Core
from left4me_ui.inventory import Inventory
from left4me_ui.refusal import Refusal
from left4me_ui.settings import Settings
from left4me_ui.validation import parse_size

# How many of the largest holdings a refusal names (what to remove first).
NAMED_IN_REFUSAL = 5
KIND_WORDS = {"files": "files overlay", "workshop": "Workshop overlay",
              "script": "script overlay"}


class OverShare(Refusal):
    """A create that would take its owner's holdings past their disk share."""


@dataclass(frozen=True)
class Holding:
    """One thing a user owns and the most disk it may take."""

    what: str  # "server alpha/coop1", "Workshop overlay 'maps'"
    cap: int
    overlay_id: str | None = None


@dataclass(frozen=True)
class Share:
    holdings: tuple[Holding, ...]
    limit: int
    bound: bool  # False for an admin: the operator is not held to a share

    @property
    def used(self) -> int:
        return sum(h.cap for h in self.holdings)

    @property
    def remaining(self) -> int:
        return max(self.limit - self.used, 0)

    @property
    def text(self) -> str:
        """One line for a page's caption."""
        counted = f"the caps of what you own add up to {format_size(self.used)}"
        if not self.bound:
            return (f"Disk: {counted} (an admin is not held to the"
                    f" {format_size(self.limit)} share users get)")
        return (f"Disk: {counted} of your {format_size(self.limit)} share"
                f" ({format_size(self.remaining)} left)")


def server_cap(inventory: Inventory, host: str) -> int:
    """The writes cap a UI server on `host` gets: playbooks/server.yml takes the host's
    game_instances_limits.upper_dir_max (the UI's jobs send none), else srcds_instance's
    default. A value the UI cannot read (a template) counts as that default."""
    default = parse_size(LIMIT_DEFAULTS["upper_dir_max"], "upper_dir_max")
    limits = inventory.hostvars.get(host, {}).get("game_instances_limits")
    if not isinstance(limits, dict) or limits.get("upper_dir_max") is None:
        return default
    try:
        return parse_size(limits["upper_dir_max"], "upper_dir_max", ValueError)
    except ValueError:
        return default


def overlay_cap(settings: Settings, kind: str) -> int:
    """The most one overlay of `kind` may hold on a host."""
    if kind == "workshop":
        return parse_size(WORKSHOP_MAX_SIZE, "max_size")
    if kind == "script":
        return parse_size(SCRIPT_MAX_SIZE, "max_size")
    return settings.overlay_max_total_bytes


def of_owner(conn: sqlite3.Connection, settings: Settings, inventory: Inventory,
             owner: Actor) -> Share:
    """Everything `owner` holds, each at its cap."""
    holdings = [Holding(f"server {r['host']}/{r['name']}", server_cap(inventory, r["host"]))
                for r in conn.execute("SELECT host, name FROM servers WHERE owner_id = ?"
                                      " ORDER BY host, name", (owner.user_id,))]
    holdings += [Holding(f"{KIND_WORDS.get(r['kind'], r['kind'])} {r['id']!r}",
                         overlay_cap(settings, r["kind"]), r["id"])
                 for r in conn.execute("SELECT id, kind FROM overlays WHERE owner_id = ?"
                                       " ORDER BY id", (owner.user_id,))]
    return Share(tuple(holdings), settings.user_disk_max, not owner.is_admin)


def require_room(conn: sqlite3.Connection, settings: Settings, inventory: Inventory,
                 owner: Actor, adding: Holding) -> None:
    """Refuse (OverShare) adding `adding` when it would take `owner` past their share."""
    share = of_owner(conn, settings, inventory, owner)
    if not share.bound or share.used + adding.cap <= share.limit:
        return
    largest = sorted(share.holdings, key=lambda h: -h.cap)[:NAMED_IN_REFUSAL]
    named = ", ".join(f"{h.what} ({format_size(h.cap)})" for h in largest)
    more = len(share.holdings) - len(largest)
    raise OverShare(
        f"{adding.what} may take {format_size(adding.cap)} of disk, and the caps of what"
        f" you own would then add up to"
        f" {format_size(share.used + adding.cap)}, past your"
        f" {format_size(share.limit)} share (you use {format_size(share.used)}:"
        f" {named or 'nothing yet'}{f' and {more} more' if more > 0 else ''}); delete a"
        " server or an overlay you no longer need, or ask an admin to raise your share"
        " (LEFT4ME_UI_USER_DISK_MAX); nothing was created")


def workshop_max_size(conn: sqlite3.Connection, settings: Settings, inventory: Inventory,
                      owner: Actor, overlay_id: str, *, refuse: bool = True) -> int:
    """The max_size a build of the owner's Workshop overlay `overlay_id` passes the host:
    the per-overlay cap, or what the owner's share leaves beside everything else they own
    when that is less (the share was lowered, a host's upper_dir_max raised). When nothing
    is left: OverShare, so no build is queued; or, without `refuse` (an admin's reconcile
    or build, which must not stop at one user's overlay), 1 byte, which the host refuses
    for that overlay alone before downloading."""
    cap = overlay_cap(settings, "workshop")
    share = of_owner(conn, settings, inventory, owner)
    if not share.bound:
        return cap
    others = sum(h.cap for h in share.holdings if h.overlay_id != overlay_id)
    room = settings.user_disk_max - others
    if room <= 0 and not refuse:
        return 1
    if room <= 0:
        raise OverShare(
            f"Workshop overlay {overlay_id!r} has no room left to build: the caps of the rest"
            f" of what you own add up to {format_size(others)}, your whole"
            f" {format_size(share.limit)} share; delete a server or an overlay you no longer"
            " need, or ask an admin to raise your share (LEFT4ME_UI_USER_DISK_MAX); nothing"
            " was queued")
    return min(cap, room)


def for_actor(core: Core, actor: Actor) -> Share:
    """The signed-in user's own share and use (what the pages' captions show)."""
    with core.db.connect() as conn:
        me = authz.current(conn, actor)
        return of_owner(conn, core.settings, core.inventory(), me)
