"""The UI's core: settings, database, secret-derived keys, clock and inventory, in one object.

Pages get it from `core.boot()` (once per process: Streamlit's `st.cache_resource`), tests
build one with `Core.open(settings, clock=...)`. Every domain function takes it first.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from left4me_ui import settings as settings_module
from left4me_ui.db import Database
from left4me_ui.inventory import Inventory, load_inventory


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


@dataclass
class Core:
    settings: settings_module.Settings
    db: Database
    crypto: Crypto
    clock: Callable[[], float] = time.time
    inventory_loader: Callable[[Path], Inventory] = load_inventory
    _inventory: tuple[float, Inventory] | None = field(default=None, repr=False)
    worker: object | None = field(default=None, repr=False)  # jobs.Worker once started
    poller: object | None = field(default=None, repr=False)  # observe.Poller once started

    @classmethod
    def open(cls, config: settings_module.Settings, *,
             clock: Callable[[], float] = time.time,
             inventory_loader: Callable[[Path], Inventory] = load_inventory) -> Core:
        """Check the secret (fail closed), create/migrate the database; start nothing."""
        secret = settings_module.load_secret(config.secret_file)
        config.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        database = Database(config.db_path)
        database.create()
        return cls(config, database, Crypto(secret), clock, inventory_loader)

    def inventory(self, max_age: float = 30.0) -> Inventory:
        """The inventory, re-read at most every max_age seconds (ansible-inventory is slow)."""
        now = time.monotonic()
        if self._inventory is None or now - self._inventory[0] > max_age:
            self._inventory = (now, self.inventory_loader(self.settings.inventory))
        return self._inventory[1]


def boot(config: settings_module.Settings | None = None, *, start_worker: bool = True) -> Core:
    """What the UI process does once at start: open, bootstrap the admin, start the worker.

    Raises SecretError without a usable secret. Prints where a generated admin password is.
    """
    from left4me_ui import accounts, jobs, observe  # here: they import this module

    core = Core.open(config or settings_module.from_environment())
    created = accounts.ensure_bootstrap_admin(core)
    if created is not None and created.password_file is not None:
        print(f"left4me UI: created admin {created.name!r}; its password is in"
              f" {created.password_file} (mode 0600). Change it after the first login; the"
              " file is deleted then.",
              flush=True)
    jobs.mark_interrupted(core)
    if start_worker:
        core.worker = jobs.Worker(core)
        core.worker.start()
        if core.settings.poll_seconds > 0:
            core.poller = observe.Poller(core, core.settings.poll_seconds)
            core.poller.start()
    return core
