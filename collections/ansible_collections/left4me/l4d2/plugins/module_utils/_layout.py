# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# Shipped to hosts verbatim: standard library only (tests/collection/test_host_libraries.py).
"""The host's vocabulary: where left4me keeps things, what its units are called, and which
names it takes. Each path, unit name and name rule is defined here once.

Below ``state_dir`` (default ``/var/lib/left4me``):

* ``installation``: the shared game install, every instance's last layer as its env file
  names it. The game itself lives in ``builds/N/`` (side by side, one per update) and
  ``installation`` is a root-owned link to ``builds/current``, itself a root-owned link to
  the current build; a host from before builds keeps a plain ``installation/`` until no
  mount uses it. Each mount resolves the layer once, at mount time
  (:func:`game_layer_source`), so a running server keeps the build it was mounted with;
* ``overlays/ID/``: one directory per overlay (Workshop, files, script), and
  ``overlays/.instance-NAME/``, an instance's own config layer, first of its layers,
  holding ``left4dead2/cfg/left4me/instance.cfg`` (its RCON password);
* ``workshop_cache/``: Workshop downloads, shared by every overlay;
* ``runtime/NAME/``: an instance's mount (``merged``) and its writes (``upper``, ``work``,
  in the image ``writes.img`` mounted at ``writes``, or plain dirs from before the cap).

Below ``config_dir`` (default ``/etc/left4me``): ``instances/NAME.env`` and
``instances/NAME.manager``. Each instance is the unit ``left4me-server@NAME.service``, with
the drop-in ``{systemd_dir}/left4me-server@NAME.service.d/50-left4me-instance.conf``.

An instance name and an overlay id follow the id rule (``_common.ID_PATTERN``). Each
check takes the caller's error class, so callers keep catching what they caught.

Standard library only: modules import it on the target, and the roles copy it as
``left4me_layout.py`` beside ``left4me_common.py`` for the root-run helpers.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

try:
    from ansible_collections.left4me.l4d2.plugins.module_utils import _common
except ImportError:  # the host's copy, beside left4me_common.py (roles game_host, overlays)
    import left4me_common as _common  # type: ignore[no-redef]

INSTALLATION_DIR = "installation"
BUILDS_DIR = "builds"
CURRENT_BUILD = "current"  # the link in builds/ naming the current build
OVERLAYS_DIR = "overlays"
WORKSHOP_CACHE_DIR = "workshop_cache"
RUNTIME_DIR = "runtime"
# The roots below state_dir an instance's layers may come from.
ALLOWED_ROOT_NAMES = (INSTALLATION_DIR, BUILDS_DIR, OVERLAYS_DIR, WORKSHOP_CACHE_DIR)
INSTANCES_DIR = "instances"  # below config_dir
SYSTEMD_DIR = "/etc/systemd/system"

CONFIG_LAYER_PREFIX = ".instance-"
CFG_DIR = "left4dead2/cfg"  # the game's cfg directory, relative to a layer
INSTANCE_CFG = "left4me/instance.cfg"  # relative to left4dead2/cfg, as +exec takes it
# The cfg srcds runs at every map load (servercfgfile, set by INSTANCE_CFG) instead of server.cfg.
MAPLOAD_CFG = "left4me/mapload.cfg"
INSTANCE_CFG_IN_LAYER = f"{CFG_DIR}/{INSTANCE_CFG}"

SERVER_UNIT_PREFIX = "left4me-server@"
UNIT_TEMPLATE = f"{SERVER_UNIT_PREFIX}.service"
DROPIN_NAME = "50-left4me-instance.conf"


# --- names -------------------------------------------------------------------------


def validate_instance_name(name: object, error: type[Exception] = _common.Left4meError) -> str:
    """Return ``name`` if it is a valid instance name, else raise ``error``."""
    return _common.validate_id(name, "instance name", error)


def validate_overlay_id(overlay_id: object,
                        error: type[Exception] = _common.Left4meError) -> str:
    """Return ``overlay_id`` if it is a valid overlay id, else raise ``error``."""
    return _common.validate_id(overlay_id, "overlay id", error)


def server_unit_name(name: str, error: type[Exception] = _common.Left4meError) -> str:
    """The instance's unit, ``left4me-server@NAME.service``."""
    return f"{SERVER_UNIT_PREFIX}{validate_instance_name(name, error)}.service"


# --- paths -------------------------------------------------------------------------


def state_path(state_dir: str, error: type[Exception] = _common.Left4meError) -> str:
    """``state_dir`` normalised; ``error`` unless it is absolute."""
    if not os.path.isabs(state_dir):
        raise error(f"state_dir must be an absolute path, got {state_dir!r}")
    return os.path.normpath(state_dir)


def overlays_path(state_dir: str = _common.DEFAULT_STATE_DIR,
                  error: type[Exception] = _common.Left4meError) -> str:
    """``{state_dir}/overlays``, where every overlay and config layer lives."""
    return os.path.join(state_path(state_dir, error), OVERLAYS_DIR)


def overlay_root(overlay_id: str, state_dir: str = _common.DEFAULT_STATE_DIR,
                 error: type[Exception] = _common.Left4meError) -> str:
    """``{state_dir}/overlays/{id}``, the overlay's game root."""
    validate_overlay_id(overlay_id, error)
    return os.path.join(overlays_path(state_dir, error), overlay_id)


def builds_path(state_dir: str = _common.DEFAULT_STATE_DIR,
                error: type[Exception] = _common.Left4meError) -> str:
    """``{state_dir}/builds``, the game builds side by side (root's)."""
    return os.path.join(state_path(state_dir, error), BUILDS_DIR)


def game_layer_source(layer: str, state_dir: str = _common.DEFAULT_STATE_DIR) -> str:
    """The path a mount takes ``layer`` from: ``builds/current`` for the installation once
    builds exist (a plain ``installation/`` still in use by a running server is then an old
    build), any other layer as given."""
    installation = os.path.join(os.path.normpath(state_dir), INSTALLATION_DIR)
    current = os.path.join(os.path.normpath(state_dir), BUILDS_DIR, CURRENT_BUILD)
    if os.path.normpath(layer) == installation and os.path.lexists(current):
        return current
    return layer


def allowed_roots(state_dir: str = _common.DEFAULT_STATE_DIR) -> list[str]:
    """The directories an instance's layers may lie in (:data:`ALLOWED_ROOT_NAMES`)."""
    return [os.path.join(os.path.normpath(state_dir), sub) for sub in ALLOWED_ROOT_NAMES]


def env_file_path(name: str, config_dir: str = _common.DEFAULT_CONFIG_DIR,
                  error: type[Exception] = _common.Left4meError) -> str:
    """``{config_dir}/instances/NAME.env``, the instance's settings the unit reads."""
    validate_instance_name(name, error)
    return os.path.join(config_dir, INSTANCES_DIR, f"{name}.env")


_ENV_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def parse_env(text: str, source: str = "env file",
              error: type[Exception] = _common.Left4meError) -> dict[str, str]:
    """Parse an env file's shell-style ``KEY=value`` lines (quotes allowed, ``#``
    comments); ``error`` names the line that does not parse."""
    import shlex  # here: only a console command's and the mount's reads of an env file need it

    env: dict[str, str] = {}
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, sep, value = line.partition("=")
        if not sep or not _ENV_KEY_RE.fullmatch(key):
            raise error(f"{source}:{lineno}: expected KEY=value, got {raw!r}")
        try:
            words = shlex.split(value, comments=True)
        except ValueError as exc:
            raise error(f"{source}:{lineno}: cannot parse value of {key}: {exc}") from None
        if len(words) > 1:
            raise error(f"{source}:{lineno}: value of {key} has unquoted spaces; quote it")
        env[key] = words[0] if words else ""
    return env


@dataclass(frozen=True)
class InstancePaths:
    root: str
    upper: str
    work: str
    merged: str
    image: str  # the writes filesystem's image file (capped instances)
    writes: str  # where that image is mounted, holding upper/ and work/
    capped: bool  # False: a plain upper dir from before, counted rather than capped


def instance_paths(name: str, state_dir: str = _common.DEFAULT_STATE_DIR,
                   error: type[Exception] = _common.Left4meError) -> InstancePaths:
    """The instance's paths; its writes are capped unless ``runtime/NAME/upper`` already
    exists (a plain upper dir made before the cap was a filesystem, kept as it is)."""
    validate_instance_name(name, error)
    root = os.path.join(state_path(state_dir, error), RUNTIME_DIR, name)
    writes = os.path.join(root, "writes")
    capped = not os.path.lexists(os.path.join(root, "upper"))
    base = writes if capped else root
    return InstancePaths(
        root=root,
        upper=os.path.join(base, "upper"),
        work=os.path.join(base, "work"),
        merged=os.path.join(root, "merged"),
        image=os.path.join(root, "writes.img"),
        writes=writes,
        capped=capped,
    )


@dataclass(frozen=True)
class HostLayout:
    """Where one host keeps left4me's files (its ``state_dir``, ``config_dir`` and units)."""

    state_dir: str = _common.DEFAULT_STATE_DIR
    config_dir: str = _common.DEFAULT_CONFIG_DIR
    systemd_dir: str = SYSTEMD_DIR

    @property
    def installation(self) -> str:
        return os.path.join(self.state_dir, INSTALLATION_DIR)

    @property
    def builds_dir(self) -> str:
        return os.path.join(self.state_dir, BUILDS_DIR)

    @property
    def overlays_dir(self) -> str:
        return os.path.join(self.state_dir, OVERLAYS_DIR)

    @property
    def instances_dir(self) -> str:
        return os.path.join(self.config_dir, INSTANCES_DIR)

    def env_file(self, name: str) -> str:
        return env_file_path(name, self.config_dir)

    def manager_file(self, name: str) -> str:
        """Who manages the instance (see _manager): beside its env file."""
        return os.path.join(self.instances_dir, validate_instance_name(name) + ".manager")

    def config_layer(self, name: str) -> str:
        return os.path.join(self.overlays_dir, CONFIG_LAYER_PREFIX + validate_instance_name(name))

    def instance_cfg(self, name: str) -> str:
        return os.path.join(self.config_layer(name), INSTANCE_CFG_IN_LAYER)

    def mapload_cfg(self, name: str) -> str:
        return os.path.join(self.config_layer(name), CFG_DIR, MAPLOAD_CFG)

    def dropin_dir(self, name: str) -> str:
        return os.path.join(self.systemd_dir, server_unit_name(name) + ".d")

    def dropin_file(self, name: str) -> str:
        return os.path.join(self.dropin_dir(name), DROPIN_NAME)

    def allowed_roots(self) -> list[str]:
        return allowed_roots(self.state_dir)
