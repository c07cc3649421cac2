"""Where the UI finds the project, its inventory, its state and its secret (environment only)."""

from __future__ import annotations

import os
import secrets
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[2]
PLAYBOOKS_DIR = PROJECT_DIR / "playbooks"
COLLECTIONS_DIR = PROJECT_DIR / "collections"

# The collection's module_utils are imported, not copied (one copy of each validation rule).
if str(COLLECTIONS_DIR) not in sys.path:
    sys.path.append(str(COLLECTIONS_DIR))

from ansible_collections.left4me.l4d2.plugins.module_utils._common import (  # noqa: E402
    parse_size,
)

MIN_SECRET_BYTES = 32


class SecretError(RuntimeError):
    """The UI's secret is missing or unsafe: the UI refuses to start (fail closed)."""


def _project_path(configured: str) -> Path:
    path = Path(configured)
    return path if path.is_absolute() else PROJECT_DIR / path


def inventory_path() -> Path:
    """The inventory whose hosts the UI shows and runs its one-server jobs (playbooks/server.yml)
    against: LEFT4ME_INVENTORY, else the demo world. Converging hosts (site.yml) is not the
    UI's: that stays with ansible-playbook or AWX."""
    return _project_path(os.environ.get("LEFT4ME_INVENTORY", "inventories/demo"))


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, got {raw!r}") from None
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")
    return value


def _switch_env(name: str, default: bool) -> bool:
    raw = (os.environ.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw not in ("on", "off"):
        raise ValueError(f"{name} must be on or off, got {raw!r}")
    return raw == "on"


def _size_env(name: str, default: str) -> int:
    """Bytes from a size such as 40G (K, M, G, T: powers of 1024), as srcds_instance reads
    its limits."""
    raw = os.environ.get(name) or default
    try:
        value = parse_size(raw, name, ValueError)
    except ValueError:
        raise ValueError(f"{name} must be a size such as {default} (a whole number with an"
                         f" optional K, M, G or T suffix), got {raw!r}") from None
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {raw!r}")
    return value


@dataclass(frozen=True)
class Settings:
    """Everything the domain layer is configured with; tests build one directly."""

    state_dir: Path
    secret_file: Path
    inventory: Path
    playbooks_dir: Path = PLAYBOOKS_DIR
    bootstrap_admin: str = "admin"
    bootstrap_password_file: Path | None = None
    session_idle_seconds: int = 60 * 60 * 2
    session_max_seconds: int = 60 * 60 * 24 * 7
    job_retention_days: int = 30
    job_workers: int = 2
    port_range: tuple[int, int] = (27015, 27999)
    # Login throttle: this many failures inside the window locks the account / address.
    throttle_window_seconds: int = 15 * 60
    throttle_account_failures: int = 5
    throttle_client_failures: int = 20
    # Job backend: "local" (ansible-runner in this process) or "awx" (an AWX / Automation
    # Platform's API runs the job templates named in awx_templates, playbook -> name or id).
    job_backend: str = "local"
    awx_url: str | None = None
    awx_token_file: Path | None = None
    awx_templates: tuple[tuple[str, str], ...] = ()
    awx_poll_seconds: float = 2.0
    # How often the poller asks every host what its servers do (0: no poller).
    poll_seconds: int = 60
    # Health by A2S (left4me_ui.health): how often every host is probed (0: no check), how
    # long A2S may be silent while the unit is active before the server is down, the grace
    # after a start and after a map change (srcds is silent while it loads a map), and how
    # often an hour a down server whose owner chose "restart" is restarted before it is
    # left down. Probing every 15 s with 60 s of silence decides a hang within 75 s.
    health_seconds: int = 15
    health_down_after: int = 60
    health_start_grace: int = 120
    health_map_grace: int = 120
    health_restarts_per_hour: int = 3
    # Reads (console, log, poller) over one kept SSH connection to each host's left4me-read
    # (left4me_ui.host_reads); off: an Ansible run per read, as with the awx backend.
    fast_reads: bool = True
    # Files overlays: the most one file, one overlay (all its files) and its entries (files
    # and folders) may be; uploads and zip imports over a limit are refused, changing nothing.
    overlay_max_file_bytes: int = 64 * 1024 * 1024
    overlay_max_total_bytes: int = 512 * 1024 * 1024
    overlay_max_entries: int = 10_000
    # Each server's limits (srcds_instance's memory_max, tasks_max, cpu_quota in percent of one
    # CPU): the most a blueprint may ask for, and what a server gets when its blueprint asks
    # for nothing. The defaults are role game_instances' game_instances_limits.
    server_memory_max: str = "2G"
    server_tasks_max: int = 256
    server_cpu_quota: int = 100
    # Each user's share of a host's disk: the most the caps of everything they own may add
    # up to (each server's writes cap, each overlay's cap; left4me_ui.disk_share). Admins
    # are not bound.
    user_disk_max: int = 40 << 30
    # Steam profile names and avatars (GetPlayerSummaries) for the players the poller sees:
    # off without a key. The key is a secret: a 0600 file (read at each lookup) or the
    # variable; never logged, never in argv (left4me_ui.profiles).
    steam_api_key: str | None = field(default=None, repr=False)
    steam_api_key_file: Path | None = None
    steam_api_url: str = "https://api.steampowered.com"
    steam_profile_max_age_seconds: int = 24 * 3600

    @property
    def db_path(self) -> Path:
        return self.state_dir / "left4me-ui.sqlite3"

    @property
    def jobs_dir(self) -> Path:
        return self.state_dir / "jobs"

    @property
    def overlays_dir(self) -> Path:
        """Each user-owned overlay's tree, overlays/<id> (directories 0700)."""
        return self.state_dir / "overlays"

    @property
    def overlays_staging_dir(self) -> Path:
        """Zip imports are extracted here first (same file system: swapped in by rename)."""
        return self.state_dir / "overlays-staging"

    @property
    def generated_admin_password_file(self) -> Path:
        return self.state_dir / "bootstrap-admin-password"


JOB_BACKENDS = ("local", "awx")


def _awx_templates(raw: str) -> tuple[tuple[str, str], ...]:
    """'server.yml=left4me UI server,other.yml=12' -> ((playbook, template name or id), ...)."""
    pairs = []
    for item in filter(None, (part.strip() for part in raw.split(","))):
        playbook, sep, template = (text.strip() for text in item.partition("="))
        if not sep or not playbook or not template:
            raise ValueError("LEFT4ME_UI_AWX_TEMPLATES must be PLAYBOOK=TEMPLATE pairs separated"
                             f" by commas (the template's name or numeric id), got {item!r}")
        pairs.append((playbook, template))
    return tuple(pairs)


def _job_backend_settings() -> dict:
    backend = os.environ.get("LEFT4ME_UI_JOB_BACKEND", "local") or "local"
    if backend not in JOB_BACKENDS:
        raise ValueError(f"LEFT4ME_UI_JOB_BACKEND must be one of {', '.join(JOB_BACKENDS)},"
                         f" got {backend!r}")
    if backend == "local":
        return {}
    url = os.environ.get("LEFT4ME_UI_AWX_URL", "").rstrip("/")
    token = os.environ.get("LEFT4ME_UI_AWX_TOKEN_FILE", "")
    if not url.startswith(("https://", "http://")) or not token:
        raise ValueError("the awx job backend needs LEFT4ME_UI_AWX_URL (https://...) and"
                         " LEFT4ME_UI_AWX_TOKEN_FILE (a 0600 file holding an OAuth2 token)")
    return {"job_backend": backend, "awx_url": url, "awx_token_file": _project_path(token),
            "awx_templates": _awx_templates(os.environ.get("LEFT4ME_UI_AWX_TEMPLATES", "")),
            "awx_poll_seconds": float(_int_env("LEFT4ME_UI_AWX_POLL_SECONDS", 2))}


def from_environment() -> Settings:
    """Settings from LEFT4ME_UI_* variables (see ui/left4me_ui/README.md)."""
    state_dir = _project_path(os.environ.get("LEFT4ME_UI_STATE_DIR", ".state/ui"))
    secret = os.environ.get("LEFT4ME_UI_SECRET_FILE")
    bootstrap_file = os.environ.get("LEFT4ME_UI_BOOTSTRAP_PASSWORD_FILE")
    low, _, high = os.environ.get("LEFT4ME_UI_PORT_RANGE", "27015-27999").partition("-")
    return Settings(
        state_dir=state_dir,
        secret_file=_project_path(secret) if secret else state_dir / "secret",
        inventory=inventory_path(),
        bootstrap_admin=os.environ.get("LEFT4ME_UI_BOOTSTRAP_ADMIN", "admin"),
        bootstrap_password_file=_project_path(bootstrap_file) if bootstrap_file else None,
        session_idle_seconds=_int_env("LEFT4ME_UI_SESSION_IDLE_SECONDS", 2 * 3600),
        session_max_seconds=_int_env("LEFT4ME_UI_SESSION_MAX_SECONDS", 7 * 86400),
        job_retention_days=_int_env("LEFT4ME_UI_JOB_RETENTION_DAYS", 30),
        job_workers=_int_env("LEFT4ME_UI_JOB_WORKERS", 2),
        port_range=(int(low), int(high or low)),
        **_job_backend_settings(),
        poll_seconds=_int_env("LEFT4ME_UI_POLL_SECONDS", 60),
        fast_reads=_switch_env("LEFT4ME_UI_FAST_READS", True),
        health_seconds=_int_env("LEFT4ME_UI_HEALTH_SECONDS", 15),
        health_down_after=_int_env("LEFT4ME_UI_HEALTH_DOWN_AFTER", 60),
        health_start_grace=_int_env("LEFT4ME_UI_HEALTH_START_GRACE", 120),
        health_map_grace=_int_env("LEFT4ME_UI_HEALTH_MAP_GRACE", 120),
        health_restarts_per_hour=_int_env("LEFT4ME_UI_HEALTH_RESTARTS_PER_HOUR", 3),
        overlay_max_file_bytes=_int_env("LEFT4ME_UI_OVERLAY_MAX_FILE_BYTES", 64 * 1024 * 1024),
        overlay_max_total_bytes=_int_env("LEFT4ME_UI_OVERLAY_MAX_TOTAL_BYTES",
                                         512 * 1024 * 1024),
        overlay_max_entries=_int_env("LEFT4ME_UI_OVERLAY_MAX_ENTRIES", 10_000),
        server_memory_max=os.environ.get("LEFT4ME_UI_SERVER_MEMORY_MAX") or "2G",
        server_tasks_max=_int_env("LEFT4ME_UI_SERVER_TASKS_MAX", 256),
        server_cpu_quota=_int_env("LEFT4ME_UI_SERVER_CPU_QUOTA", 100),
        user_disk_max=_size_env("LEFT4ME_UI_USER_DISK_MAX", "40G"),
        **_steam_api_settings(),
    )


def _steam_api_settings() -> dict:
    url = (os.environ.get("LEFT4ME_UI_STEAM_API_URL") or "https://api.steampowered.com")
    if not url.startswith(("https://", "http://")):
        raise ValueError("LEFT4ME_UI_STEAM_API_URL must be an http(s) URL, got"
                         f" {url!r} (default https://api.steampowered.com)")
    key_file = os.environ.get("LEFT4ME_UI_STEAM_API_KEY_FILE")
    return {"steam_api_key": os.environ.get("LEFT4ME_UI_STEAM_API_KEY", "").strip() or None,
            "steam_api_key_file": _project_path(key_file) if key_file else None,
            "steam_api_url": url.rstrip("/"),
            "steam_profile_max_age_seconds": _int_env(
                "LEFT4ME_UI_STEAM_PROFILE_MAX_AGE_SECONDS", 24 * 3600)}


def read_private_file(path: Path, what: str, error: type[Exception], *, own: bool = False,
                      missing: str = "") -> bytes:
    """The bytes of a file only its owner may read (a secret, a token, a key), or `error`
    saying what to fix: it must exist (`missing` adds how to make one), be a regular file,
    belong to the user running the UI when `own`, and be mode 0600 or stricter."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise error(f"{what} {path} does not exist{missing}") from None
    if not stat.S_ISREG(info.st_mode):
        raise error(f"{what} {path} is not a regular file")
    if own and info.st_uid != os.geteuid():
        raise error(f"{what} {path} must belong to the user running the UI")
    if info.st_mode & 0o077:
        raise error(f"{what} {path} is mode {stat.S_IMODE(info.st_mode):04o}; other users"
                    f" could read it: chmod 0600 {path}")
    return path.read_bytes()


def load_secret(path: Path) -> bytes:
    """The UI's secret key material, or SecretError: no secret, no UI (fail closed).

    The file must exist, belong to the user running the UI, be readable by nobody else
    and hold at least MIN_SECRET_BYTES bytes. `python -m left4me_ui init-secret` writes one.
    """
    material = read_private_file(
        path, "the UI secret", SecretError, own=True,
        missing=f"; create it once with `python -m left4me_ui init-secret {path}` (or set"
                " LEFT4ME_UI_SECRET_FILE)").strip()
    if len(material) < MIN_SECRET_BYTES:
        raise SecretError(
            f"the UI secret {path} holds {len(material)} bytes; it needs at least"
            f" {MIN_SECRET_BYTES} random bytes"
        )
    return material


def write_new_secret(path: Path) -> bool:
    """Create a 0600 secret file with fresh random material; False if one exists already."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(48) + "\n")
    return True
