"""Workshop overlays: a user's list of Steam Workshop items and collections, resolved and
built on a host by the collection's `left4me.l4d2.workshop_overlay` module.

The overlay row is `rows.py`'s (owner, revision, delete; builds: `on_hosts.py`); this
module keeps its definition (the `overlays.definition` column, JSON: `items`, `collections`,
and the last `resolved` answer) and turns what people paste (ids, steamcommunity.com links,
steam:// links) into Workshop ids, refusing anything else by line before anything is stored.

The UI machine never talks to Steam: a resolve is the module in check mode on a host the
actor may use (the host's own `overlays_workshop_api_url` and key, as its builds use), and
a build is a `playbooks/workshop_overlay.yml` job on that host.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from left4me_ui import audit, authz, disk_share, jobs
from left4me_ui.authz import Actor
from left4me_ui.core import Core
from left4me_ui.overlays.fd_tree import OverlayError
from left4me_ui.overlays.rows import KIND_BUILD, Overlay, load, require_kind
from left4me_ui.runner import run_module
from left4me_ui.validation import size_text

KIND = "workshop"
BUILD_PLAYBOOK = "workshop_overlay.yml"
# What playbooks/workshop_overlay.yml reads (enqueue_build sends them).
BUILD_VARIABLES = frozenset({"left4me_overlay_id", "left4me_overlay_incarnation",
                             "left4me_overlay_revision", "left4me_overlay_items",
                             "left4me_overlay_collections", "left4me_overlay_max_size"})
MODULE = "left4me.l4d2.workshop_overlay"
MAX_IDS = 1000  # items and collections together; a collection may hold many more items
RESOLVE_TIMEOUT = 180  # seconds for one resolve (SSH, the module, Steam's answers)
EXAMPLE_LINK = "https://steamcommunity.com/sharedfiles/filedetails/?id=123456789"

_ID = re.compile(r"[1-9][0-9]{0,19}")  # the collection's rule (module_utils/_workshop.py)
_LINK_HOSTS = ("steamcommunity.com", "www.steamcommunity.com")
_LINK_PATHS = ("/sharedfiles/filedetails", "/workshop/filedetails")
_STEAM_LINK = re.compile(r"steam://url/CommunityFilePage/([1-9][0-9]{0,19})/?", re.IGNORECASE)

# What the module needs from the host's own variables (the role overlays' names and
# defaults), rendered by ansible on the host's variables, never from what a person typed.
HOST_ARGS = {
    "state_dir": "game_host_state_dir | default('/var/lib/left4me')",
    "owner": "overlays_user | default(game_host_user | default('left4me'))",
    "group": "overlays_group | default(game_host_group | default('left4me'))",
    "api_url": "overlays_workshop_api_url | default('https://api.steampowered.com')",
    "api_key": "overlays_workshop_api_key | default('')",
    "steamcmd_dir": "overlays_steamcmd_dir | default(game_host_state_dir"
                    " | default('/var/lib/left4me') ~ '/steam')",
}


@dataclass(frozen=True)
class Definition:
    items: tuple[str, ...] = ()
    collections: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.items and not self.collections


@dataclass(frozen=True)
class Item:
    """One Workshop item as the Web API described it (through a host)."""

    publishedfileid: str
    title: str
    file_size: int  # bytes
    time_updated: int  # Unix time of the item's last update on the Workshop
    status: str  # cached | would_download | error (what a build would do with it)
    error: str = ""


@dataclass(frozen=True)
class Resolved:
    """The last resolve: on which host, when, for which revision, what it found."""

    host: str
    at: float
    revision: int
    items: tuple[Item, ...]
    collections: tuple[str, ...]  # the collections expanded, nested ones included


# --- what people paste -----------------------------------------------------------------------


def parse_ref(text: str) -> str | None:
    """The Workshop id in one id or link, else None. Links: steamcommunity.com's
    /sharedfiles/filedetails/?id=N and /workshop/filedetails/?id=N (items and collections
    share them), with or without the scheme, and the client's steam://url/CommunityFilePage/N."""
    text = text.strip()
    if _ID.fullmatch(text):
        return text
    steam = _STEAM_LINK.fullmatch(text)
    if steam:
        return steam.group(1)
    if "://" not in text and text.lower().startswith(_LINK_HOSTS):
        text = f"https://{text}"
    try:
        link = urlsplit(text)
    except ValueError:
        return None
    if link.scheme.lower() not in ("http", "https") or (link.hostname or "") not in _LINK_HOSTS \
            or link.path.rstrip("/").lower() not in _LINK_PATHS:
        return None
    ids = parse_qs(link.query).get("id", [])
    if len(ids) == 1 and _ID.fullmatch(ids[0]):
        return ids[0]
    return None


def parse_ids(text: str | Sequence[str], what: str) -> list[str]:
    """Workshop ids from one id or link per line (blank lines skipped, duplicates dropped,
    order kept); the first line that is neither is refused by number."""
    lines = text.splitlines() if isinstance(text, str) else list(text)
    found: dict[str, None] = {}
    for number, line in enumerate(lines, start=1):
        if not isinstance(line, str):
            raise OverlayError(f"{what}: line {number} is not text")
        if not line.strip():
            continue
        workshop_id = parse_ref(line)
        if workshop_id is None:
            shown = line.strip() if len(line.strip()) <= 80 else line.strip()[:77] + "..."
            raise OverlayError(
                f"{what}, line {number}: {shown!r} is not a Workshop id or link; give the"
                f" number (e.g. 123456789) or the item's page, e.g. {EXAMPLE_LINK}."
                " Nothing was saved")
        found.setdefault(workshop_id, None)
    return list(found)


# --- the definition --------------------------------------------------------------------------


def _stored(conn: sqlite3.Connection, overlay_id: str) -> dict:
    row = conn.execute("SELECT definition FROM overlays WHERE id = ?", (overlay_id,)).fetchone()
    try:
        stored = json.loads(row["definition"]) if row is not None else {}
    except ValueError:
        stored = {}
    return stored if isinstance(stored, dict) else {}


def _definition(stored: dict) -> Definition:
    return Definition(tuple(stored.get("items") or ()), tuple(stored.get("collections") or ()))


def _load(conn: sqlite3.Connection, actor: Actor, overlay_id: str) -> tuple[Actor, Overlay]:
    """The actor as the database knows them and their Workshop overlay (authz: rows.load)."""
    me = authz.current(conn, actor)
    overlay = load(conn, me, overlay_id)
    require_kind(overlay, KIND, "Workshop")
    return me, overlay


def definition(core: Core, actor: Actor, overlay_id: str) -> Definition:
    with core.db.connect() as conn:
        _me, overlay = _load(conn, actor, overlay_id)
        return _definition(_stored(conn, overlay.id))


def set_ids(core: Core, actor: Actor, overlay_id: str, items: str | Sequence[str],
            collections: str | Sequence[str]) -> Definition:
    """Store the overlay's items and collections (ids or links, one a line). Bad input is
    refused by line and nothing is stored; a change bumps the revision (servers stacking it
    show "restart to apply" once it is built) and forgets the last resolve."""
    wanted = Definition(tuple(parse_ids(items, "Items")),
                        tuple(parse_ids(collections, "Collections")))
    if len(wanted.items) + len(wanted.collections) > MAX_IDS:
        raise OverlayError(f"{len(wanted.items) + len(wanted.collections)} ids; a Workshop"
                           f" overlay lists at most {MAX_IDS} (a collection counts as one)."
                           " Nothing was saved")
    now = core.clock()
    with core.db.connect() as conn:
        me, overlay = _load(conn, actor, overlay_id)
        if _definition(_stored(conn, overlay.id)) == wanted:
            return wanted  # the same list again: no new revision, nothing to rebuild
        conn.execute("UPDATE overlays SET definition = ?, revision = revision + 1,"
                     " updated_at = ? WHERE id = ?",
                     (json.dumps({"items": list(wanted.items),
                                  "collections": list(wanted.collections)}), now, overlay.id))
        audit.record(conn, now, me.name, "set workshop ids",
                     f"overlay {overlay.id}: {len(wanted.items)} item(s),"
                     f" {len(wanted.collections)} collection(s)", "ok")
    return wanted


# --- resolve: the Web API's answer, through a host -------------------------------------------


def _item(raw: dict) -> Item:
    def number(key: str) -> int:
        try:
            return int(raw.get(key) or 0)
        except (TypeError, ValueError):
            return 0
    return Item(str(raw.get("publishedfileid", "")), str(raw.get("title") or ""),
                number("file_size"), number("time_updated"), str(raw.get("status") or ""),
                str(raw.get("error") or ""))


def _resolved(stored: dict, revision: int) -> Resolved | None:
    found = stored.get("resolved")
    if not isinstance(found, dict) or found.get("revision") != revision:
        return None  # the ids changed since: that answer was about another list
    return Resolved(found["host"], found["at"], found["revision"],
                    tuple(_item(i) for i in found.get("items") or ()),
                    tuple(found.get("collections") or ()))


def last_resolved(core: Core, actor: Actor, overlay_id: str) -> Resolved | None:
    """The last resolve of the overlay's current ids, if any."""
    with core.db.connect() as conn:
        _me, overlay = _load(conn, actor, overlay_id)
        return _resolved(_stored(conn, overlay.id), overlay.revision)


def resolve(core: Core, actor: Actor, overlay_id: str, host: str) -> Resolved:
    """Ask the Steam Web API, through `host` (one the actor may use), about the overlay's
    items and collections: each item's title, size, last update, and whether a build would
    download it or finds it cached; an unusable id (removed, banned, another game, a
    collection listed as an item) carries its error. Nothing is downloaded or linked."""
    inventory_hosts = core.inventory().hosts
    with core.db.connect() as conn:
        me, overlay = _load(conn, actor, overlay_id)
        authz.require_host(conn, me, host, inventory_hosts)
        wanted = _definition(_stored(conn, overlay.id))
    if wanted.empty:
        raise OverlayError(f"overlay {overlay_id!r} lists no item or collection yet; save"
                           " some first")
    run = run_module(core, host, MODULE, {
        "id": overlay.id, "items": list(wanted.items), "collections": list(wanted.collections),
        "fail_on_item_error": False},  # every item's answer, errors included
        RESOLVE_TIMEOUT, host_args=HOST_ARGS, check=True)
    if not run.ok:
        raise OverlayError(f"could not resolve overlay {overlay_id!r} on {host}: {run.message}")
    answer = {"host": host, "at": core.clock(), "revision": overlay.revision,
              "items": [_item(i).__dict__ for i in run.result.get("items") or ()],
              "collections": [str(c) for c in run.result.get("collections") or ()]}
    with core.db.connect() as conn:
        stored = _stored(conn, overlay.id)
        current = conn.execute("SELECT revision FROM overlays WHERE id = ?",
                               (overlay.id,)).fetchone()
        if current is not None and current["revision"] == overlay.revision:
            conn.execute("UPDATE overlays SET definition = ? WHERE id = ?",  # a read: no bump
                         (json.dumps({**stored, "resolved": answer}), overlay.id))
    return _resolved({"resolved": answer}, overlay.revision)


# --- build: playbooks/workshop_overlay.yml on a host -----------------------------------------


def enqueue_build(conn: sqlite3.Connection, core: Core, me: Actor, overlay: Overlay,
                  host: str) -> int:
    """Queue one build of the overlay as it is now (overlays.build and ensure_built call
    this for a Workshop overlay, in their transaction). Its job is an "overlay build" like
    a files overlay's, so the revision it puts on the host is recorded the same way."""
    require_kind(overlay, KIND, "Workshop")
    wanted = _definition(_stored(conn, overlay.id))
    if wanted.empty:
        raise OverlayError(f"Workshop overlay {overlay.id!r} lists no item or collection;"
                           " add some before building it")
    # The host refuses, before downloading, items past what the owner's share leaves.
    max_size = disk_share.workshop_max_size(conn, core.settings, core.inventory(),
                                            authz.owner_actor(conn, overlay.owner_id),
                                            overlay.id, refuse=not me.is_admin)
    return jobs.enqueue(conn, core, me, kind=KIND_BUILD, host=host,
                        target=f"{host}/overlay {overlay.id} r{overlay.revision}",
                        playbook=BUILD_PLAYBOOK, extravars={
                            "left4me_overlay_id": overlay.id,
                            "left4me_overlay_incarnation": overlay.incarnation,
                            "left4me_overlay_revision": overlay.revision,
                            "left4me_overlay_items": list(wanted.items),
                            "left4me_overlay_collections": list(wanted.collections),
                            "left4me_overlay_max_size": size_text(max_size)})
