"""Helpers of the domain tests: a hand-moved clock, a fixed inventory, quick users."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from argon2 import PasswordHasher

from left4me_ui import accounts, jobs, servers
from left4me_ui.authz import Actor
from left4me_ui.core import Core
from left4me_ui.inventory import Inventory

PASSWORD = "correct horse battery"


class Clock:
    """A clock tests move by hand (sessions, throttle, retention)."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


FAKE_INVENTORY = Inventory({
    "alpha": {"ansible_host": "192.0.2.10", "game_instances_list": [
        {"name": "coop1", "port": 27015},
        {"name": "versus1", "port": 27025, "client_port": 27026},
    ]},
    "beta": {"ansible_host": "192.0.2.11"},
})


class RecordingHasher(PasswordHasher):
    """argon2 with cheap parameters (these tests check logic, not cost), noting each verify."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=1024, parallelism=1)
        self.verified: list[str] = []

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:  # noqa: A002
        self.verified.append(hash if isinstance(hash, str) else hash.decode())
        return super().verify(hash, password)


def make_user(core: Core, name: str, role: str = "user") -> Actor:
    """A user straight into the table (no admin needed), as an Actor."""
    with core.db.connect() as conn:
        user_id = accounts._insert_user(conn, core.clock(), name,
                                        accounts.hash_password(PASSWORD), role)
    return Actor(user_id, name, role)


def with_settings(core: Core, **changes: object) -> Core:
    core.settings = replace(core.settings, **changes)
    return core


def finish_job(core: Core, job_id: int, state: str = jobs.SUCCEEDED,
               done_tasks: int | None = None) -> jobs.Job:
    """End the next queued job (it must be job_id) through the engine's own finishing step,
    as if it had run (`done_tasks`: how many task results it reported)."""
    job = jobs.claim(core)
    assert job is not None and job.id == job_id, (job, job_id)
    with core.db.connect() as conn:
        if done_tasks is not None:
            conn.execute("UPDATE jobs SET done_tasks = ? WHERE id = ?", (done_tasks, job_id))
        jobs._finish(conn, core, job, state, 0 if state == jobs.SUCCEEDED else 2, None)
    return job


def ui_id(core: Core) -> str:
    """This UI's own id, the first half of the claims it records on hosts."""
    with core.db.connect() as conn:
        return servers.ui_instance_id(conn)


@contextlib.contextmanager
def processes_seen(interval: float = 0.05) -> Iterator[list[bytes]]:
    """Every process's argv and environment (/proc: the test hosts' processes too), read
    every `interval` seconds while the block runs: for a search for a secret."""
    seen: list[bytes] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            for pid in filter(str.isdigit, os.listdir("/proc")):
                for part in ("cmdline", "environ"):
                    with contextlib.suppress(OSError):  # gone meanwhile
                        seen.append(Path(f"/proc/{pid}/{part}").read_bytes())
            done.wait(interval)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        yield seen
    finally:
        done.set()
        watcher.join()
