"""The audit trail: who did what to what, when, and how it ended. Never pruned."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: float
    actor: str
    action: str
    target: str
    outcome: str
    detail: str


def record(conn: sqlite3.Connection, at: float, actor: str, action: str, target: str,
           outcome: str, detail: str = "") -> None:
    """Append one row; callers pass the connection of the change itself (same transaction)."""
    conn.execute(
        "INSERT INTO audit (at, actor, action, target, outcome, detail) VALUES (?,?,?,?,?,?)",
        (at, actor, action, target, outcome, detail),
    )


def entries(conn: sqlite3.Connection, limit: int = 500) -> list[AuditEntry]:
    rows = conn.execute("SELECT * FROM audit ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
    return [AuditEntry(**dict(r)) for r in rows]
