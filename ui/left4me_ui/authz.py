"""May this person do this? The one place that answers it; every domain action asks here.

The Actor a page passes in is only a claim: `current()` re-reads the account on every
action, so a crafted Actor (another id's role, a disabled account) gets nothing, and an
admin's decision (disable, demote) holds from the next click on.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass

from left4me_ui.refusal import Refusal

ADMIN, USER = "admin", "user"
DEFAULT_MAX_SERVERS = 3


class Forbidden(Refusal):
    """The actor may not do this; the message is safe to show."""


class NotFound(Refusal):
    """No such thing, or not one the actor may see (the two look the same on purpose)."""


@dataclass(frozen=True)
class Actor:
    user_id: int
    name: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN


def current(conn: sqlite3.Connection, actor: Actor | None) -> Actor:
    """The actor as the database knows them now: enabled, with their stored role."""
    if not isinstance(actor, Actor):
        raise Forbidden("sign in first")
    row = conn.execute("SELECT id, name, role, disabled FROM users WHERE id = ?",
                       (actor.user_id,)).fetchone()
    if row is None or row["disabled"]:
        raise Forbidden("this account is disabled or no longer exists")
    return Actor(row["id"], row["name"], row["role"])


def owner_actor(conn: sqlite3.Connection, owner_id: int) -> Actor:
    """The owner of a thing as an Actor with their stored role (what their servers and
    blueprints may use), whether or not they are signed in."""
    row = conn.execute("SELECT id, name, role FROM users WHERE id = ?", (owner_id,)).fetchone()
    if row is None:
        raise NotFound("the owner no longer exists")
    return Actor(row["id"], row["name"], row["role"])


def may_admin(actor: Actor) -> bool:
    return actor.is_admin


def may_view(actor: Actor, owner_id: int) -> bool:
    return actor.is_admin or actor.user_id == owner_id


def may_manage(actor: Actor, owner_id: int) -> bool:
    return actor.is_admin or actor.user_id == owner_id


def require_admin(conn: sqlite3.Connection, actor: Actor | None) -> Actor:
    checked = current(conn, actor)
    if not may_admin(checked):
        raise Forbidden("only an admin may do this")
    return checked


def require_owned(conn: sqlite3.Connection, actor: Actor | None, owner_id: int,
                  what: str) -> Actor:
    """The actor may manage a thing owned by owner_id; else NotFound (existence hidden)."""
    checked = current(conn, actor)
    if not may_manage(checked, owner_id):
        raise NotFound(f"no such {what}")
    return checked


def visible_server(conn: sqlite3.Connection, actor: Actor | None, server_id: int,
                   columns: str) -> tuple[Actor, sqlite3.Row]:
    """The actor as stored now and the server's row (``columns`` must include owner_id);
    NotFound, the same for a missing server as for another user's."""
    me = current(conn, actor)
    row = conn.execute(f"SELECT {columns} FROM servers WHERE id = ?", (server_id,)).fetchone()
    if row is None or not may_view(me, row["owner_id"]):
        raise NotFound("no such server")
    return me, row


def visible_owner_clause(actor: Actor, owner_column: str = "owner_id") -> tuple[str, tuple]:
    """SQL filter for lists: everything for an admin, own rows for a user."""
    return ("1=1", ()) if actor.is_admin else (f"{owner_column} = ?", (actor.user_id,))


def visible_rows(conn: sqlite3.Connection, actor: Actor, select: str, order_by: str,
                 owner_column: str = "owner_id") -> list[sqlite3.Row]:
    """The rows of `select` the actor may list (an admin: all), in `order_by` order."""
    where, params = visible_owner_clause(actor, owner_column)
    return conn.execute(f"{select} WHERE {where} ORDER BY {order_by}", params).fetchall()


# --- hosts and quotas (admin policy) ------------------------------------------------------


def _setting(conn: sqlite3.Connection, key: str) -> object:
    row = conn.execute("SELECT value FROM ui_settings WHERE key = ?", (key,)).fetchone()
    return None if row is None else json.loads(row["value"])


def _store_setting(conn: sqlite3.Connection, key: str, value: object) -> None:
    conn.execute("INSERT INTO ui_settings (key, value) VALUES (?, ?) ON CONFLICT(key)"
                 " DO UPDATE SET value = excluded.value", (key, json.dumps(value)))


def user_hosts_policy(conn: sqlite3.Connection) -> list[str] | None:
    """Hosts users may put servers on; None means every inventory host."""
    value = _setting(conn, "user_hosts")
    return None if value is None else list(value)


def set_user_hosts_policy(conn: sqlite3.Connection, admin: Actor,
                          hosts: Iterable[str] | None) -> None:
    require_admin(conn, admin)
    _store_setting(conn, "user_hosts", None if hosts is None else sorted(set(hosts)))


def allowed_hosts(conn: sqlite3.Connection, actor: Actor, inventory_hosts: Iterable[str]
                  ) -> list[str]:
    checked = current(conn, actor)
    hosts = sorted(inventory_hosts)
    policy = user_hosts_policy(conn)
    if checked.is_admin or policy is None:
        return hosts
    return [h for h in hosts if h in policy]


def require_host(conn: sqlite3.Connection, actor: Actor, host: str,
                 inventory_hosts: Iterable[str]) -> None:
    hosts = list(inventory_hosts)
    if host not in hosts:
        raise NotFound(f"no host {host!r} in the inventory")
    if host not in allowed_hosts(conn, actor, hosts):
        raise Forbidden(f"you may not put servers on host {host!r}; ask an admin")


def default_max_servers(conn: sqlite3.Connection) -> int:
    value = _setting(conn, "default_max_servers")
    return DEFAULT_MAX_SERVERS if value is None else int(value)


def set_default_max_servers(conn: sqlite3.Connection, admin: Actor, limit: int) -> None:
    require_admin(conn, admin)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise ValueError("the server limit must be a whole number, 0 or more")
    _store_setting(conn, "default_max_servers", limit)


def max_servers(conn: sqlite3.Connection, user_id: int) -> int | None:
    """How many servers this user may own; None: no limit (admins)."""
    row = conn.execute("SELECT role, max_servers FROM users WHERE id = ?", (user_id,)).fetchone()
    if row is None:
        return 0
    if row["role"] == ADMIN:
        return None
    return default_max_servers(conn) if row["max_servers"] is None else row["max_servers"]


def require_server_quota(conn: sqlite3.Connection, actor: Actor) -> None:
    limit = max_servers(conn, actor.user_id)
    if limit is None:
        return
    owned = conn.execute("SELECT count(*) FROM servers WHERE owner_id = ?",
                         (actor.user_id,)).fetchone()[0]
    if owned >= limit:
        raise Forbidden(f"you own {owned} servers, the most you may have is {limit};"
                        " delete one or ask an admin")


def may_see_job(actor: Actor, job_actor_id: int | None, server_owner_id: int | None) -> bool:
    return actor.is_admin or actor.user_id in (job_actor_id, server_owner_id)
