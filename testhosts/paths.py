"""Where the harness keeps its state: outside the work tree, so every clone shares the cache."""

from __future__ import annotations

import os
from pathlib import Path


def state_dir() -> Path:
    return Path(os.environ.get("LEFT4ME_TESTHOSTS_DIR", "/var/lib/left4me-testhosts"))


def cache_dir() -> Path:
    return Path(os.environ.get("LEFT4ME_TESTHOSTS_CACHE", "/var/cache/left4me-testhosts"))


def hosts_dir() -> Path:
    return state_dir() / "hosts"


def host_dir(name: str) -> Path:
    return hosts_dir() / name


def admin_key() -> Path:
    """The private key Ansible and testinfra log in with (user `ansible`, sudo)."""
    return state_dir() / "id_ed25519"


def known_hosts() -> Path:
    """Host keys of every live test host, so SSH checks them as it would in production."""
    return state_dir() / "known_hosts"
