"""Accounts and sessions: argon2 hashes, throttled logins, server-side sessions.

* Login costs one argon2 verify whether or not the account exists (a dummy hash stands in),
  so its time does not tell which names exist.
* Failures are counted per account and per client (an address; an IPv6 /64). An attempt
  is recorded as a failure before its password is checked (and the record dropped when it
  succeeds), so concurrent guesses cannot slip past a limit. A client past its own limit
  waits for the window; an account past its limit refuses only clients with recent
  failures, so guessers cannot lock its owner out (no lockout button).
* A session token is 32 random bytes; only its SHA-256 is stored. A session ends after
  `session_idle_seconds` without use, `session_max_seconds` after login, at logout, when
  the password changes (the other sessions), or when an admin disables the account.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
import secrets
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from left4me_ui import audit, authz
from left4me_ui.authz import ADMIN, USER, Actor, Forbidden, NotFound
from left4me_ui.core import Core
from left4me_ui.refusal import Refusal

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024
_NAME_RE = re.compile(r"[a-z][a-z0-9_.-]{1,31}")

_hasher = PasswordHasher()
# Verified against when the account does not exist: the same argon2 parameters, so an
# unknown name costs what a known one does. Made from a random password nobody knows.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(32))


class LoginFailed(Refusal):
    """Wrong name or password, or a disabled account: one message for all of them."""

    def __init__(self) -> None:
        super().__init__("wrong user name or password")


class Throttled(Refusal):
    def __init__(self, retry_after: float) -> None:
        self.retry_after = max(1, int(retry_after + 0.999))
        super().__init__(f"too many failed logins; try again in {self.retry_after} s")


class InvalidInput(ValueError):
    """A name, password or role the UI refuses; the message says what to change."""


@dataclass(frozen=True)
class User:
    id: int
    name: str
    role: str
    disabled: bool
    max_servers: int | None
    created_at: float


@dataclass(frozen=True)
class Login:
    token: str  # goes into the HttpOnly cookie; the database only has its SHA-256
    actor: Actor


@dataclass(frozen=True)
class BootstrapAdmin:
    name: str
    password_file: Path | None  # where a generated password was written, else None


# --- hashing ------------------------------------------------------------------------


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def _verify(pw_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(pw_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def validate_name(name: object) -> str:
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise InvalidInput("a user name is 2 to 32 characters from a-z, 0-9, '_', '.' and '-',"
                           " starting with a letter")
    return name


def validate_password(password: object, name: str = "") -> str:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidInput(f"a password may have at most {MAX_PASSWORD_LENGTH} characters")
    if name and password.lower() == name.lower():
        raise InvalidInput("the password may not be the user name")
    return password


# --- login throttle ---------------------------------------------------------------------


def _recent_failures(conn: sqlite3.Connection, kind: str, key: str, since: float
                     ) -> list[float]:
    rows = conn.execute("SELECT at FROM login_failures WHERE kind = ? AND key = ? AND at > ?"
                        " ORDER BY at", (kind, key, since)).fetchall()
    return [r["at"] for r in rows]


def _client_key(client: str) -> str:
    """Whom the per-client limit counts: an IPv4 address, or an IPv6 /64 (one site's
    network: its addresses are free to rotate through)."""
    try:
        address = ipaddress.ip_address(client)
    except ValueError:
        return client
    if address.version == 6 and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def _reserve_attempt(core: Core, name: str, client: str) -> tuple[int, ...]:
    """Throttled, or this attempt recorded as a failure (its row ids) before the password is
    checked: check and record are one write transaction, so N concurrent guesses see each
    other and no more than the limit get a check."""
    config, now = core.settings, core.clock()
    window = config.throttle_window_seconds
    client_key, account_key = _client_key(client), _account_key(name)
    with core.db.connect() as conn:
        client_failures = _recent_failures(conn, "client", client_key, now - window)
        limit = config.throttle_client_failures
        if len(client_failures) >= limit:
            # Free again when the oldest failure that still counts leaves the window.
            raise Throttled(client_failures[-limit] + window - now)
        account_failures = _recent_failures(conn, "account", account_key, now - window)
        limit = config.throttle_account_failures
        if len(account_failures) >= limit and client_failures:
            # Someone is guessing this account. A client that failed recently waits until its
            # failures, or the account's, leave the window; one without (its owner at their
            # own machine) still gets its check: a guesser cannot lock the owner out.
            raise Throttled(min(client_failures[-1], account_failures[-limit]) + window - now)
        rows = [conn.execute("INSERT INTO login_failures (kind, key, at) VALUES (?, ?, ?)",
                             (kind, key, now)).lastrowid
                for kind, key in (("account", account_key), ("client", client_key))]
        conn.execute("DELETE FROM login_failures WHERE at < ?", (now - 2 * window,))
    return tuple(rows)


def _account_key(name: str) -> str:
    # Hashed: people type their password into the name field; it must not sit in clear.
    return hashlib.sha256(name.lower().encode()).hexdigest()


def _record_failure(core: Core, name: str, known: bool, client: str) -> None:
    """The audit's line for a failed login (its throttle rows are there already)."""
    with core.db.connect() as conn:
        # An unknown name is not recorded: it may be a password typed in the wrong field.
        shown = name if known else "(unknown name)"
        audit.record(conn, core.clock(), shown, "login", f"user {shown}", "failed",
                     f"from {client}")


# --- login, sessions ----------------------------------------------------------------------


def login(core: Core, name: str, password: str, client: str) -> Login:
    """Check a name and password; a new session, or LoginFailed / Throttled."""
    name = str(name).strip()
    reserved = _reserve_attempt(core, name, client)
    with core.db.connect() as conn:
        row = conn.execute("SELECT id, name, role, pw_hash, disabled FROM users WHERE name = ?",
                           (name,)).fetchone()
    # One argon2 verify on every path, outside the write lock (it takes ~50 ms).
    password_ok = _verify(row["pw_hash"] if row is not None else _DUMMY_HASH, str(password))
    if row is None or row["disabled"] or not password_ok:
        _record_failure(core, name, row is not None, client)
        raise LoginFailed()
    now = core.clock()
    token = secrets.token_urlsafe(32)
    with core.db.connect() as conn:
        conn.execute("INSERT INTO sessions (user_id, token_sha256, created_at, last_seen_at,"
                     " client) VALUES (?, ?, ?, ?, ?)",
                     (row["id"], token_digest(token), now, now, client))
        # Only this attempt's own record goes: the owner logging in does not hand the
        # account's guessers a fresh allowance (their failures leave with the window).
        conn.execute("DELETE FROM login_failures WHERE id IN (?, ?)", reserved)
        audit.record(conn, now, row["name"], "login", f"user {row['name']}", "ok",
                     f"from {client}")
    if _hasher.check_needs_rehash(row["pw_hash"]):
        _store_hash(core, row["id"], hash_password(str(password)), touch=False)
    return Login(token, Actor(row["id"], row["name"], row["role"]))


SESSION_TOUCH_SECONDS = 60  # how stale a session's last_seen_at may be before it is rewritten


def validate_session(core: Core, token: str | None) -> Actor | None:
    """The signed-in actor for a session token (from the cookie), or None; refreshes it."""
    if not token:
        return None
    now, config = core.clock(), core.settings
    with core.db.connect(write=False) as conn:
        row = conn.execute(
            "SELECT s.id, s.created_at, s.last_seen_at, u.id AS user_id, u.name, u.role,"
            " u.disabled FROM sessions s JOIN users u ON u.id = s.user_id"
            " WHERE s.token_sha256 = ?", (token_digest(token),)).fetchone()
    if row is None:
        return None
    expired = (now - row["last_seen_at"] >= config.session_idle_seconds
               or now - row["created_at"] >= config.session_max_seconds)
    if expired or row["disabled"]:
        with core.db.connect() as conn:
            conn.execute("DELETE FROM sessions WHERE id = ?", (row["id"],))
        return None
    # A page reruns every second or faster (the log panel, the status): writing last_seen
    # each time made every look a writer. The idle limit is hours; a minute's grain is enough.
    if now - row["last_seen_at"] >= SESSION_TOUCH_SECONDS:
        with core.db.connect() as conn:
            conn.execute("UPDATE sessions SET last_seen_at = ? WHERE id = ?", (now, row["id"]))
    return Actor(row["user_id"], row["name"], row["role"])


def logout(core: Core, token: str | None) -> None:
    """End this session on the server (the cookie alone is then worth nothing)."""
    if not token:
        return
    with core.db.connect() as conn:
        row = conn.execute("SELECT u.name FROM sessions s JOIN users u ON u.id = s.user_id"
                           " WHERE s.token_sha256 = ?", (token_digest(token),)).fetchone()
        conn.execute("DELETE FROM sessions WHERE token_sha256 = ?", (token_digest(token),))
        if row is not None:
            audit.record(conn, core.clock(), row["name"], "logout", f"user {row['name']}", "ok")


def session_count(core: Core, user_id: int) -> int:
    with core.db.connect() as conn:
        return conn.execute("SELECT count(*) FROM sessions WHERE user_id = ?",
                            (user_id,)).fetchone()[0]


def _store_hash(core: Core, user_id: int, pw_hash: str, touch: bool = True) -> None:
    with core.db.connect() as conn:
        if touch:
            conn.execute("UPDATE users SET pw_hash = ?, password_changed_at = ? WHERE id = ?",
                         (pw_hash, core.clock(), user_id))
        else:
            conn.execute("UPDATE users SET pw_hash = ? WHERE id = ?", (pw_hash, user_id))


def change_password(core: Core, actor: Actor, current_password: str, new_password: str,
                    keep_token: str | None) -> None:
    """The actor changes their own password; every other session of theirs ends."""
    with core.db.connect() as conn:
        me = authz.current(conn, actor)
        stored = conn.execute("SELECT pw_hash FROM users WHERE id = ?",
                              (me.user_id,)).fetchone()["pw_hash"]
    if not _verify(stored, str(current_password)):
        with core.db.connect() as conn:
            audit.record(conn, core.clock(), me.name, "change password", f"user {me.name}",
                         "refused", "wrong current password")
        raise Forbidden("the current password is wrong")
    validate_password(new_password, me.name)
    new_hash = hash_password(new_password)
    with core.db.connect() as conn:
        conn.execute("UPDATE users SET pw_hash = ?, password_changed_at = ? WHERE id = ?",
                     (new_hash, core.clock(), me.user_id))
        conn.execute("DELETE FROM sessions WHERE user_id = ? AND token_sha256 != ?",
                     (me.user_id, token_digest(keep_token or "")))
        audit.record(conn, core.clock(), me.name, "change password", f"user {me.name}", "ok",
                     "other sessions ended")
    _retire_generated_password(core, me.name)


# --- users (admin) ----------------------------------------------------------------------------


def _user(row: sqlite3.Row) -> User:
    return User(row["id"], row["name"], row["role"], bool(row["disabled"]), row["max_servers"],
                row["created_at"])


def _insert_user(conn: sqlite3.Connection, now: float, name: str, pw_hash: str, role: str
                 ) -> int:
    try:
        cursor = conn.execute("INSERT INTO users (name, pw_hash, role, created_at,"
                              " password_changed_at) VALUES (?, ?, ?, ?, ?)",
                              (name, pw_hash, role, now, now))
    except sqlite3.IntegrityError:
        raise InvalidInput(f"a user named {name!r} exists already") from None
    return int(cursor.lastrowid)


def create_user(core: Core, admin: Actor, name: str, password: str, role: str = USER) -> User:
    validate_name(name)
    validate_password(password, name)
    if role not in (ADMIN, USER):
        raise InvalidInput("role must be 'admin' or 'user'")
    pw_hash = hash_password(password)
    with core.db.connect() as conn:
        checked = authz.require_admin(conn, admin)
        user_id = _insert_user(conn, core.clock(), name, pw_hash, role)
        audit.record(conn, core.clock(), checked.name, "create user", f"user {name}", "ok",
                     f"role {role}")
        return _user(conn.execute("SELECT * FROM users WHERE id = ?", (user_id,)).fetchone())


def list_users(core: Core, admin: Actor) -> list[User]:
    with core.db.connect() as conn:
        authz.require_admin(conn, admin)
        return [_user(r) for r in conn.execute("SELECT * FROM users ORDER BY name")]


def get_user(core: Core, actor: Actor, user_id: int) -> User:
    with core.db.connect() as conn:
        checked = authz.current(conn, actor)
        if not checked.is_admin and checked.user_id != user_id:
            raise NotFound("no such user")
        row = conn.execute("SELECT * FROM users WHERE id = ?", (user_id,)).fetchone()
        if row is None:
            raise NotFound("no such user")
        return _user(row)


def _admin_changes_other(conn: sqlite3.Connection, admin: Actor, user_id: int
                         ) -> tuple[Actor, sqlite3.Row]:
    checked = authz.require_admin(conn, admin)
    row = conn.execute("SELECT * FROM users WHERE id = ?", (user_id,)).fetchone()
    if row is None:
        raise NotFound("no such user")
    if row["id"] == checked.user_id:
        raise Forbidden("an admin cannot disable, demote or reset themselves here;"
                        " use the account page, or another admin")
    return checked, row


def set_disabled(core: Core, admin: Actor, user_id: int, disabled: bool) -> None:
    """Disable (every session ends at once; their servers keep running) or enable a user."""
    with core.db.connect() as conn:
        checked, row = _admin_changes_other(conn, admin, user_id)
        conn.execute("UPDATE users SET disabled = ? WHERE id = ?", (int(disabled), user_id))
        if disabled:
            conn.execute("DELETE FROM sessions WHERE user_id = ?", (user_id,))
        audit.record(conn, core.clock(), checked.name, "disable user" if disabled
                     else "enable user", f"user {row['name']}", "ok")


def set_role(core: Core, admin: Actor, user_id: int, role: str) -> None:
    if role not in (ADMIN, USER):
        raise InvalidInput("role must be 'admin' or 'user'")
    with core.db.connect() as conn:
        checked, row = _admin_changes_other(conn, admin, user_id)
        conn.execute("UPDATE users SET role = ? WHERE id = ?", (role, user_id))
        audit.record(conn, core.clock(), checked.name, "set role", f"user {row['name']}", "ok",
                     f"role {role}")


def set_max_servers(core: Core, admin: Actor, user_id: int, limit: int | None) -> None:
    """A user's own server limit; None: the default (authz.default_max_servers)."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                              or limit < 0):
        raise InvalidInput("the server limit must be a whole number, 0 or more")
    with core.db.connect() as conn:
        checked = authz.require_admin(conn, admin)
        row = conn.execute("SELECT name FROM users WHERE id = ?", (user_id,)).fetchone()
        if row is None:
            raise NotFound("no such user")
        conn.execute("UPDATE users SET max_servers = ? WHERE id = ?", (limit, user_id))
        audit.record(conn, core.clock(), checked.name, "set server limit",
                     f"user {row['name']}", "ok", f"limit {limit}")


def reset_password(core: Core, admin: Actor, user_id: int, new_password: str) -> None:
    """An admin sets another user's password; all that user's sessions end."""
    with core.db.connect() as conn:
        _, row = _admin_changes_other(conn, admin, user_id)
    validate_password(new_password, row["name"])
    new_hash = hash_password(new_password)
    with core.db.connect() as conn:
        checked, row = _admin_changes_other(conn, admin, user_id)
        conn.execute("UPDATE users SET pw_hash = ?, password_changed_at = ? WHERE id = ?",
                     (new_hash, core.clock(), user_id))
        conn.execute("DELETE FROM sessions WHERE user_id = ?", (user_id,))
        audit.record(conn, core.clock(), checked.name, "reset password",
                     f"user {row['name']}", "ok", "sessions ended")
    _retire_generated_password(core, row["name"])


# --- first start ------------------------------------------------------------------------


def ensure_bootstrap_admin(core: Core) -> BootstrapAdmin | None:
    """With no users yet, create the admin; None when users exist.

    Its password comes from LEFT4ME_UI_BOOTSTRAP_PASSWORD_FILE (settings) or the variable
    LEFT4ME_UI_BOOTSTRAP_PASSWORD (removed from this process's environment once read, so no
    child process inherits it), else it is generated and written to a 0600 file of the UI's
    user. That file lives until the admin's password first changes; a new one replaces an old
    one left from a lost database, so a database reset never revives an old password.
    """
    with core.db.connect() as conn:
        if conn.execute("SELECT count(*) FROM users").fetchone()[0]:
            os.environ.pop("LEFT4ME_UI_BOOTSTRAP_PASSWORD", None)
            changed = conn.execute(
                "SELECT 1 FROM users WHERE name = ? AND password_changed_at > created_at",
                (core.settings.bootstrap_admin,)).fetchone()
            if changed:  # changed by a UI that did not remove the file yet
                core.settings.generated_admin_password_file.unlink(missing_ok=True)
            return None
    config = core.settings
    name = validate_name(config.bootstrap_admin)
    written: Path | None = None
    from_env = os.environ.pop("LEFT4ME_UI_BOOTSTRAP_PASSWORD", None)
    if config.bootstrap_password_file is not None:
        password = config.bootstrap_password_file.read_text().strip()
    elif from_env:
        password = from_env
    else:
        written = config.generated_admin_password_file
        password = secrets.token_urlsafe(18)
    validate_password(password, name)
    pw_hash = hash_password(password)
    with core.db.connect() as conn:
        if conn.execute("SELECT count(*) FROM users").fetchone()[0]:
            return None  # another process won the race (and wrote its own file)
        _insert_user(conn, core.clock(), name, pw_hash, ADMIN)
        audit.record(conn, core.clock(), "left4me-ui", "create user", f"user {name}", "ok",
                     "bootstrap admin")
        if written is not None:
            # Inside the write transaction: the file always holds the password of the admin
            # this transaction creates (a failed write rolls the admin back).
            _write_password_file(written, password)
    return BootstrapAdmin(name, written)


def _write_password_file(path: Path, password: str) -> None:
    """A 0600 file with the password, replacing any old one atomically."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # 0600
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(password + "\n")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _retire_generated_password(core: Core, name: str) -> None:
    """The bootstrap admin's password changed: the generated file is stale, and the login
    page stops pointing at it."""
    if name.lower() == core.settings.bootstrap_admin.lower():
        core.settings.generated_admin_password_file.unlink(missing_ok=True)
