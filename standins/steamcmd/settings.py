"""What the fake steamcmd should do this run: env vars, overridden by an optional control file."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from standins.gamebuild import DEFAULT_BUILDID

_SIZE_SUFFIXES = {"k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
KNOWN_FAULTS = frozenset(
    {"disk_full", "timeout", "workshop_timeout", "invalid_password", "two_factor",
     "appinfo_timeout", "self_update_offline", "appinfo_requesting", "appinfo_stale",
     "appinfo_empty"}
)
# How the anonymous licence refuses a first Linux-only install of 222860 (both seen).
PLATFORM_REFUSALS = ("Invalid platform", "Missing configuration")


def parse_size(text: str | int) -> int:
    """`4096`, `64M`, `2G` → bytes."""
    if isinstance(text, int):
        return text
    text = text.strip().lower().removesuffix("b")
    if text and text[-1] in _SIZE_SUFFIXES:
        return int(float(text[:-1]) * _SIZE_SUFFIXES[text[-1]])
    return int(text)


@dataclass
class SimSettings:
    buildid: int = DEFAULT_BUILDID
    content_files: int = 24
    content_bytes: int = 4 * 1024**2
    faults: set[str] = field(default_factory=set)
    owners: set[str] = field(default_factory=set)  # accounts that own L4D2 (may install linux)
    delay: float = 0.0  # seconds spent "downloading", for timing-sensitive tests
    update_state: int | None = None  # fail every download with this update state code
    platform_refusal: str = PLATFORM_REFUSALS[0]
    cold_cache: int = 0  # app_update requests refused (Missing configuration) on a new home
    execstack: set[str] = field(default_factory=set)  # libraries requesting an exec stack

    @property
    def steam_home(self) -> Path:
        return Path(os.environ.get("STEAMCMD_SIM_HOME", Path.cwd()))


def _split_list(value: str | list[str]) -> set[str]:
    items = value if isinstance(value, list) else value.split(",")
    return {item.strip() for item in items if item.strip()}


def _apply(settings: SimSettings, values: dict[str, object]) -> None:
    if "buildid" in values:
        settings.buildid = int(str(values["buildid"]))
    if "files" in values:
        settings.content_files = max(1, int(str(values["files"])))
    if "size" in values:
        settings.content_bytes = parse_size(values["size"])  # type: ignore[arg-type]
    if "fault" in values:
        settings.faults = _split_list(values["fault"])  # type: ignore[arg-type]
    if "owners" in values:
        settings.owners = _split_list(values["owners"])  # type: ignore[arg-type]
    if "delay" in values:
        settings.delay = float(str(values["delay"]))
    if values.get("update_state"):
        settings.update_state = int(str(values["update_state"]), 16)
    if "platform_refusal" in values:
        refusal = str(values["platform_refusal"])
        if refusal not in PLATFORM_REFUSALS:
            raise ValueError(f"platform_refusal must be one of {PLATFORM_REFUSALS}")
        settings.platform_refusal = refusal
    if "cold_cache" in values:
        settings.cold_cache = int(str(values["cold_cache"]))
    if "execstack" in values:
        settings.execstack = _split_list(values["execstack"])  # type: ignore[arg-type]


def _from_environment() -> dict[str, object]:
    names = ("buildid", "files", "size", "fault", "owners", "delay", "update_state",
             "platform_refusal", "cold_cache", "execstack")
    values: dict[str, object] = {}
    for name in names:
        env_value = os.environ.get(f"STEAMCMD_SIM_{name.upper()}")
        if env_value is not None:
            values[name] = env_value
    return values


def control_file_path(settings: SimSettings) -> Path:
    explicit = os.environ.get("STEAMCMD_SIM_CONTROL")
    return Path(explicit) if explicit else settings.steam_home / "standin-control.json"


def load_settings() -> SimSettings:
    """Defaults < STEAMCMD_SIM_* env < control file (tests edit it between runs)."""
    settings = SimSettings()
    _apply(settings, _from_environment())
    path = control_file_path(settings)
    if path.is_file():
        _apply(settings, json.loads(path.read_text()))
    return settings
