"""The UI's core: settings, database, secret-derived keys, clock, inventory and the job
kinds, in one object.

The composition root (`boot.py`) builds it: `boot.boot()` once per process, tests
`boot.open_core(settings, clock=...)`. Every domain function takes it first. The core holds
what boot declares (job kinds with their finish hooks and secret providers, overlay
builders, job backends) and imports none of the modules that declare them.
"""

from __future__ import annotations

import base64
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from left4me_ui import settings as settings_module
from left4me_ui.db import Database
from left4me_ui.inventory import Inventory
from left4me_ui.runner import load_inventory


class Crypto:
    """Encrypts what must be recovered later (RCON passwords) with a key from the UI secret."""

    def __init__(self, secret: bytes) -> None:
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                   info=b"left4me-ui rcon passwords").derive(secret)
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def encrypt(self, text: str) -> str:
        return self._fernet.encrypt(text.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise settings_module.SecretError(
                "a stored RCON password cannot be decrypted: the UI secret changed since it"
                " was stored"
            ) from None


# What boot.py plugs in. The job and overlay arguments are jobs.Job and overlays.Overlay,
# named Any here: the core sits below the modules that define them.
# (conn, core, job, state) -> None, in the transaction that finishes a job of the kind.
FinishHook = Callable[[sqlite3.Connection, "Core", Any, str], None]
# (core, job) -> the secret extravars of a run (never stored with it).
SecretProvider = Callable[["Core", Any], dict]
# (conn, core, actor, overlay, host) -> the id of the job queued to build the overlay there.
Builder = Callable[[sqlite3.Connection, "Core", Any, Any, str], int]
# settings -> a jobs.JobBackend.
BackendFactory = Callable[[settings_module.Settings], Any]


@dataclass(frozen=True)
class JobKind:
    """One kind of job: the playbooks its jobs run, the variables they take (the playbooks'
    inputs: a job carrying another is refused when queued), the hook run when one finishes,
    the secret providers its jobs may name (`secrets_from`), and for a build, the builder that
    queues one per overlay kind."""

    name: str
    playbooks: tuple[str, ...]
    variables: frozenset[str] = frozenset()
    finish: FinishHook | None = None
    secrets: dict[str, SecretProvider] = field(default_factory=dict)
    builders: dict[str, Builder] = field(default_factory=dict)


@dataclass(frozen=True)
class Wiring:
    """The job kinds and backends, looked up by name (a job row stores its kind's name)."""

    kinds: dict[str, JobKind]
    backends: dict[str, BackendFactory]
    secret_providers: dict[str, SecretProvider]
    builders: dict[str, Builder]

    @classmethod
    def of(cls, kinds: tuple[JobKind, ...], backends: dict[str, BackendFactory]) -> Wiring:
        return cls({kind.name: kind for kind in kinds}, dict(backends),
                   {name: provider for kind in kinds for name, provider in kind.secrets.items()},
                   {name: builder for kind in kinds for name, builder in kind.builders.items()})


@dataclass
class Core:
    settings: settings_module.Settings
    db: Database
    crypto: Crypto
    wiring: Wiring
    clock: Callable[[], float] = time.time
    inventory_loader: Callable[[Path], Inventory] = load_inventory
    _inventory: tuple[float, Inventory] | None = field(default=None, repr=False)
    worker: object | None = field(default=None, repr=False)  # jobs.Worker once started
    poller: object | None = field(default=None, repr=False)  # observe.Poller once started
    health_check: object | None = field(default=None, repr=False)  # health.HealthCheck

    @classmethod
    def open(cls, config: settings_module.Settings, *, wiring: Wiring,
             clock: Callable[[], float] = time.time,
             inventory_loader: Callable[[Path], Inventory] = load_inventory) -> Core:
        """Check the secret (fail closed), create/migrate the database; start nothing.
        (boot.open_core passes the wiring boot declares.)"""
        secret = settings_module.load_secret(config.secret_file)
        config.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        database = Database(config.db_path)
        database.create()
        return cls(config, database, Crypto(secret), wiring, clock, inventory_loader)

    def inventory(self, max_age: float = 30.0) -> Inventory:
        """The inventory, re-read at most every max_age seconds (ansible-inventory is slow)."""
        now = time.monotonic()
        if self._inventory is None or now - self._inventory[0] > max_age:
            self._inventory = (now, self.inventory_loader(self.settings.inventory))
        return self._inventory[1]

