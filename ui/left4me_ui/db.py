"""The UI's SQLite database: WAL, foreign keys, a busy timeout, and numbered migrations.

One connection per call site (`with db.connect() as conn:` commits or rolls back); the
database file is created 0600 before SQLite opens it, and SQLite gives its -wal and -shm
sidecars the same mode and owner, so a sandboxed uid can read none of them.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

MIGRATIONS: list[str] = [
    # 1: accounts, sessions, throttle, blueprints, servers, jobs, audit.
    """
    CREATE TABLE users (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE COLLATE NOCASE,
        pw_hash TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('admin', 'user')),
        disabled INTEGER NOT NULL DEFAULT 0,
        max_servers INTEGER,
        created_at REAL NOT NULL,
        password_changed_at REAL NOT NULL
    );
    CREATE TABLE sessions (
        id INTEGER PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        token_sha256 TEXT NOT NULL UNIQUE,
        created_at REAL NOT NULL,
        last_seen_at REAL NOT NULL,
        client TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE login_failures (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('account', 'client')),
        key TEXT NOT NULL,
        at REAL NOT NULL
    );
    CREATE INDEX login_failures_key ON login_failures(kind, key, at);
    CREATE TABLE ui_settings (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE blueprints (
        id INTEGER PRIMARY KEY,
        owner_id INTEGER NOT NULL REFERENCES users(id) ON DELETE RESTRICT,
        name TEXT NOT NULL,
        overlays TEXT NOT NULL,
        settings TEXT NOT NULL,
        revision INTEGER NOT NULL DEFAULT 1,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        UNIQUE (owner_id, name)
    );
    CREATE TABLE servers (
        id INTEGER PRIMARY KEY,
        owner_id INTEGER NOT NULL REFERENCES users(id) ON DELETE RESTRICT,
        host TEXT NOT NULL,
        name TEXT NOT NULL,
        port INTEGER NOT NULL,
        client_port INTEGER NOT NULL,
        blueprint_id INTEGER NOT NULL REFERENCES blueprints(id) ON DELETE RESTRICT,
        rcon_encrypted TEXT NOT NULL,
        desired_state TEXT NOT NULL DEFAULT 'started',
        applied_revision INTEGER,
        deleting INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL,
        UNIQUE (host, name),
        UNIQUE (host, port),
        UNIQUE (host, client_port)
    );
    CREATE TABLE jobs (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        actor_id INTEGER REFERENCES users(id) ON DELETE SET NULL,
        actor_name TEXT NOT NULL,
        host TEXT NOT NULL,
        server_id INTEGER REFERENCES servers(id) ON DELETE SET NULL,
        target TEXT NOT NULL,
        playbook TEXT NOT NULL,
        extravars TEXT NOT NULL,
        secrets_from TEXT,
        state TEXT NOT NULL DEFAULT 'queued' CHECK (state IN
            ('queued', 'running', 'succeeded', 'failed', 'cancelled', 'interrupted')),
        rc INTEGER,
        error TEXT,
        expected_tasks INTEGER NOT NULL DEFAULT 1,
        done_tasks INTEGER NOT NULL DEFAULT 0,
        cancel_requested INTEGER NOT NULL DEFAULT 0,
        log_pruned INTEGER NOT NULL DEFAULT 0,
        blueprint_revision INTEGER,
        created_at REAL NOT NULL,
        started_at REAL,
        finished_at REAL
    );
    CREATE INDEX jobs_state ON jobs(state, host);
    CREATE INDEX jobs_server ON jobs(server_id);
    CREATE TABLE job_events (
        id INTEGER PRIMARY KEY,
        job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        event TEXT NOT NULL,
        host TEXT,
        task TEXT,
        text TEXT NOT NULL,
        at REAL NOT NULL
    );
    CREATE INDEX job_events_job ON job_events(job_id, seq);
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        at REAL NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        outcome TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT ''
    );
    """,
    # 2: each server's console commands (who, what, when, how it ended; never the output).
    """
    CREATE TABLE console_history (
        id INTEGER PRIMARY KEY,
        server_id INTEGER NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
        user_id INTEGER REFERENCES users(id) ON DELETE SET NULL,
        at REAL NOT NULL,
        command TEXT NOT NULL,
        outcome TEXT NOT NULL
    );
    CREATE INDEX console_history_server ON console_history(server_id, id);
    """,
    # 3: what the poller sees: observations (charts, true state), changes, player sessions.
    """
    CREATE TABLE observations (
        id INTEGER PRIMARY KEY,
        server_id INTEGER NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
        at REAL NOT NULL,
        state TEXT NOT NULL,
        running INTEGER NOT NULL,
        reason TEXT NOT NULL,
        players INTEGER,
        max_players INTEGER,
        memory_bytes INTEGER,
        cpu_seconds REAL
    );
    CREATE INDEX observations_server ON observations(server_id, id);
    CREATE INDEX observations_at ON observations(at);
    CREATE TABLE server_changes (
        id INTEGER PRIMARY KEY,
        server_id INTEGER NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
        at REAL NOT NULL,
        before TEXT NOT NULL,
        after TEXT NOT NULL,
        reason TEXT NOT NULL
    );
    CREATE TABLE player_sessions (
        id INTEGER PRIMARY KEY,
        server_id INTEGER NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
        player_key TEXT NOT NULL,
        name TEXT NOT NULL,
        steam_id TEXT NOT NULL,
        joined_at REAL NOT NULL,
        left_at REAL,
        last_seen REAL NOT NULL,
        ping_min INTEGER,
        ping_max INTEGER,
        ping_last INTEGER,
        connected TEXT NOT NULL
    );
    CREATE INDEX player_sessions_server ON player_sessions(server_id, left_at);
    """,
    # 4: user-owned overlays; the id is the directory name on every host (so unique overall),
    # the tree of a files overlay lives under the UI's state dir (overlays/<id>).
    """
    CREATE TABLE overlays (
        id TEXT PRIMARY KEY,
        owner_id INTEGER NOT NULL REFERENCES users(id) ON DELETE RESTRICT,
        kind TEXT NOT NULL CHECK (kind IN ('files', 'workshop', 'script')),
        definition TEXT NOT NULL DEFAULT '{}',
        revision INTEGER NOT NULL DEFAULT 1,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE INDEX overlays_owner ON overlays(owner_id);
    """,
    # 5: which revision of each user overlay a host has (the last successful build there),
    # and which of those a server's last job applied (a newer build: "restart to apply").
    """
    CREATE TABLE overlay_builds (
        overlay_id TEXT NOT NULL REFERENCES overlays(id) ON DELETE CASCADE,
        host TEXT NOT NULL,
        revision INTEGER NOT NULL,
        built_at REAL NOT NULL,
        job_id INTEGER REFERENCES jobs(id) ON DELETE SET NULL,
        PRIMARY KEY (overlay_id, host)
    );
    ALTER TABLE servers ADD COLUMN applied_overlays TEXT NOT NULL DEFAULT '{}';
    """,
    # 6: Steam profiles (GetPlayerSummaries) of the players seen, each fetched at a time and
    # re-asked after steam_profile_max_age_seconds; and each lookup's outcome (why it failed).
    """
    CREATE TABLE steam_profiles (
        steam_id64 TEXT PRIMARY KEY,
        persona_name TEXT NOT NULL,
        avatar_url TEXT NOT NULL,
        profile_url TEXT NOT NULL,
        fetched_at REAL NOT NULL
    );
    CREATE TABLE steam_profile_lookups (
        id INTEGER PRIMARY KEY,
        at REAL NOT NULL,
        asked INTEGER NOT NULL,
        answered INTEGER NOT NULL,
        error TEXT
    );
    """,
    # 7: an overlay id never comes back. A deleted overlay's id is retired (so the next
    # owner of a name never reads the old one's build logs or inherits its host directory
    # and build records); ids deleted before this migration are retired from their jobs and
    # audit rows. Each overlay gets an incarnation, a random token its build and remove jobs
    # carry (and the host's directory is marked with), telling it from any other overlay of
    # the same id (one of another UI, or from before a database was lost).
    """
    ALTER TABLE overlays ADD COLUMN incarnation TEXT NOT NULL DEFAULT '';
    UPDATE overlays SET incarnation = lower(hex(randomblob(8)));
    CREATE TABLE retired_overlay_ids (
        id TEXT PRIMARY KEY,
        retired_at REAL NOT NULL
    );
    INSERT OR IGNORE INTO retired_overlay_ids (id, retired_at)
        SELECT json_extract(extravars, '$.left4me_overlay_id'), MAX(created_at) FROM jobs
        WHERE kind IN ('overlay build', 'overlay remove') AND json_valid(extravars)
            AND json_type(extravars, '$.left4me_overlay_id') = 'text'
            AND json_extract(extravars, '$.left4me_overlay_id') NOT IN (SELECT id FROM overlays)
        GROUP BY 1;
    INSERT OR IGNORE INTO retired_overlay_ids (id, retired_at)
        SELECT substr(target, 9), MAX(at) FROM audit
        WHERE action = 'delete overlay' AND target LIKE 'overlay %'
            AND substr(target, 9) NOT IN (SELECT id FROM overlays)
        GROUP BY 1;
    """,
    # 8: health by A2S (left4me_ui.health): each server's action for when it is down (its
    # owner's choice), what the check carries from one probe to the next, and every change
    # of a server's health with its evidence and what was done (append-only; `notify` marks
    # the decisions the alert work hands to the owner).
    """
    ALTER TABLE servers ADD COLUMN health_action TEXT NOT NULL DEFAULT 'none'
        CHECK (health_action IN ('none', 'restart'));
    CREATE TABLE health_watch (
        server_id INTEGER PRIMARY KEY REFERENCES servers(id) ON DELETE CASCADE,
        invocation TEXT NOT NULL,
        started_at REAL,
        last_answer_at REAL,
        last_map TEXT NOT NULL,
        silent_since REAL,
        map_change_at REAL,
        state TEXT NOT NULL,
        text TEXT NOT NULL,
        checked_at REAL NOT NULL
    );
    CREATE TABLE health_decisions (
        id INTEGER PRIMARY KEY,
        server_id INTEGER NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
        at REAL NOT NULL,
        state TEXT NOT NULL,
        since REAL,
        text TEXT NOT NULL,
        evidence TEXT NOT NULL,
        action TEXT NOT NULL,
        job_id INTEGER REFERENCES jobs(id) ON DELETE SET NULL,
        notify INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX health_decisions_server ON health_decisions(server_id, id);
    CREATE INDEX health_decisions_notify ON health_decisions(notify, id);
    """,
]


class Database:
    """A SQLite file and how to open it; cheap to share between threads (it holds no handle)."""

    def __init__(self, path: Path, busy_timeout_ms: int = 10_000) -> None:
        self.path = path
        self.busy_timeout_ms = busy_timeout_ms

    def create(self) -> None:
        """Create the file 0600 in a 0700 directory (if needed) and apply every migration."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)
        os.chmod(self.path, 0o600)  # an older, looser file is tightened too
        conn = sqlite3.connect(self.path)
        try:
            conn.execute("PRAGMA journal_mode=WAL")  # persistent; not allowed in a transaction
        finally:
            conn.close()
        self.migrate()

    @contextlib.contextmanager
    def connect(self, *, write: bool = True) -> Iterator[sqlite3.Connection]:
        """A connection in a transaction: committed on success, rolled back on error.

        ``write=False`` is for reads only: a deferred transaction, which under WAL waits for
        no writer and holds no lock a writer waits for (every page rerun checks its session;
        as writers, ten open pages queued behind each other and a running job's writes).
        """
        conn = sqlite3.connect(self.path, timeout=self.busy_timeout_ms / 1000,
                               isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_ms)}")
        # WAL's recommended level: no fsync per commit, still never a corrupt database.
        conn.execute("PRAGMA synchronous=NORMAL")
        if not write:
            conn.execute("PRAGMA query_only=ON")  # a write slipped into a read fails loudly
        try:
            # IMMEDIATE: take the write lock up front, so read-then-write steps (port
            # allocation, job claiming) never interleave with another writer.
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        finally:
            conn.close()

    def migrate(self) -> int:
        """Apply migrations newer than the file's user_version; return the version."""
        with self.connect() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in _statements(script):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version={number}")
            return len(MIGRATIONS)


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]
