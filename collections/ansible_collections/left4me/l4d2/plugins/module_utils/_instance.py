# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# Shipped to hosts verbatim: standard library only (tests/collection/test_host_libraries.py).
"""Game server instances: their settings, the files that describe them, and the plan.

An instance ``NAME`` on a host is described by files the ``srcds_instance``
module writes and the ``left4me-server@.service`` template reads:

* ``{config_dir}/instances/NAME.env`` (root:left4me 0640): ``LEFT4ME_LOWERDIRS``
  (the complete layer list, first wins: the instance's config layer, its
  overlays, then the installation LAST; the mount helper appends nothing),
  ``LEFT4ME_PORT``, ``LEFT4ME_IP``, ``LEFT4ME_MAP``, ``LEFT4ME_MAXPLAYERS``,
  ``LEFT4ME_TICKRATE``, ``LEFT4ME_ARGS`` and any extra environment. No secrets.
* ``{state_dir}/overlays/.instance-NAME/left4dead2/cfg/left4me/instance.cfg``
  (root:left4me 0640, dirs 0750): the instance's own config layer, first of
  its layers, so no overlay can replace its files. ``instance.cfg`` holds
  ``rcon_password`` (its only copy) and sets ``servercfgfile`` to
  ``left4me/mapload.cfg``; the unit runs it with ``+exec``, so the password
  never appears in argv or in the unit. ``mapload.cfg`` is what srcds runs at
  every map load: ``hostname``, then ``server.cfg`` (an overlay's wins over the
  hostname), then ``instance.cfg`` again, so the password left4me set stays the
  server's (see docs/trust.md for what can still change it).
* ``{systemd_dir}/left4me-server@NAME.service.d/50-left4me-instance.conf``:
  ``SocketBindAllow=`` for the instance's ports, ``AllowedCPUs=`` and the
  server's resource limits (``MemoryMax=``, ``MemorySwapMax=``, ``TasksMax=``,
  ``CPUQuota=``, ``CPUWeight=``), which systemd cannot take from an environment
  file. The env file carries ``LEFT4ME_UPPER_DIR_MAX``, the most the upper dir
  may hold, which the mount helper checks before every start.
* ``{state_dir}/runtime/NAME/{upper,work,merged}`` (see ``_mount``).

Before a server starts, :func:`missing_steam_links` checks the runtime user's
``~/.steam/sdk32|sdk64/steamclient.so``; when a start fails or a server does not
answer, :func:`failure_reason` picks the reason out of the unit's journal (the
mount helper's refusal, or the server's last words), with secrets masked.

Everything here is standard library only and free of side effects except the
``apply_*``/``write_*`` functions, so it can be tested without a host.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import re
import shutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

from ansible_collections.left4me.l4d2.plugins.module_utils._common import (
    SIZE_UNITS,
    Left4meError,
    parse_size,
    read_text,
    write_atomic,
)
from ansible_collections.left4me.l4d2.plugins.module_utils._journal import (
    entry_message,
    mask_secrets,
)
from ansible_collections.left4me.l4d2.plugins.module_utils._layout import (
    INSTANCE_CFG,
    MAPLOAD_CFG,
    UNIT_TEMPLATE,
    HostLayout,
    instance_paths,
    validate_instance_name,
)
from ansible_collections.left4me.l4d2.plugins.module_utils._mount import (
    DEFAULT_UPPER_DIR_MAX,
    GAME_WRITABLE_LAYER_MODE,
    LOWERDIRS_KEY,
    MAX_LAYERS,
    UPPER_DIR_MAX_KEY,
    DirSpec,
    MountError,
    check_lowerdir_paths,
    parse_env,
    validate_lowerdirs,
)

MANAGED_HEADER = "Managed by left4me.l4d2.srcds_instance; local edits are overwritten."

PORT_KEY = "LEFT4ME_PORT"
CLIENT_PORT_KEY = "LEFT4ME_CLIENT_PORT"
# Where srcds's tier0 looks for the CPU's speed when CPU_MHZ is unset (the unit hides the second).
SYSFS_MAX_FREQ = "/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq"
PROC_CPUINFO = "/proc/cpuinfo"
MIN_PORT, MAX_PORT = 1024, 65535
DEFAULTS = {
    "ip": "0.0.0.0",
    "map": "c1m1_hotel",
    "maxplayers": 8,
    "tickrate": 30,
}
# One server's share of the host (the drop-in's cgroup limits, the upper dir's cap): enough
# for a full L4D2 server with SourceMod and custom campaigns (srcds_linux is a 32-bit
# process, a few hundred MiB in use, never above 4 GiB), small enough that one tenant's
# runaway server cannot take the host. Role game_instances repeats them in
# game_instances_limits (a test keeps both copies equal).
LIMIT_DEFAULTS = {
    "memory_max": "2G",
    "memory_swap_max": "0",
    "tasks_max": 256,
    "cpu_quota": 100,
    "cpu_weight": 100,
    "upper_dir_max": DEFAULT_UPPER_DIR_MAX,
}
LIMIT_KEYS = tuple(LIMIT_DEFAULTS)
MIN_MEMORY_MAX = 256 << 20  # srcds with a map loaded needs about this much to start
MIN_UPPER_DIR_MAX = 64 << 20  # logs and the server's own small files
MIN_TASKS_MAX, MAX_TASKS_MAX = 32, 65536  # srcds runs some 20 threads; steamclient more
MAX_CPU_QUOTA = 100 * 1024  # percent of one CPU: 1024 CPUs

_MAP_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
_ARG_RE = re.compile(r"[^\s\"'\\`$;]+")
_ENV_KEY_RE = re.compile(r"[A-Z_][A-Z0-9_]{0,63}")
_CFG_VALUE_FORBIDDEN = ('"', "\n", "\r", ";", "\x00")
_ENV_VALUE_FORBIDDEN = ('"', "'", "\\", "`", "$", "\n", "\r", "\x00")
_CPU_LIST_RE = re.compile(r"\d+(-\d+)?(,\d+(-\d+)?)*")
_PLAIN_ENV_VALUE_RE = re.compile(r"[A-Za-z0-9_./:@+,=%-]*")


class InstanceError(Left4meError):
    """Bad instance settings or a host state we refuse; the message says what to do."""


# --- settings ----------------------------------------------------------------


def size_text(size: int) -> str:
    """Bytes as systemd and people write them: the largest unit that divides exactly."""
    for suffix in ("T", "G", "M", "K"):
        if size and size % SIZE_UNITS[suffix] == 0:
            return f"{size // SIZE_UNITS[suffix]}{suffix}"
    return str(size)


@dataclass(frozen=True)
class Limits:
    """One server's resource limits, validated (sizes in bytes)."""

    memory_max: int = parse_size(LIMIT_DEFAULTS["memory_max"], "memory_max")
    memory_swap_max: int = parse_size(LIMIT_DEFAULTS["memory_swap_max"], "memory_swap_max")
    tasks_max: int = LIMIT_DEFAULTS["tasks_max"]
    cpu_quota: int = LIMIT_DEFAULTS["cpu_quota"]  # percent of one CPU
    cpu_weight: int = LIMIT_DEFAULTS["cpu_weight"]
    upper_dir_max: int = parse_size(LIMIT_DEFAULTS["upper_dir_max"], "upper_dir_max")


def validate_limits(raw: dict, where: str) -> Limits:
    """The limits given in ``raw`` (unset ones from :data:`LIMIT_DEFAULTS`), checked."""

    def given(key: str) -> object:
        return LIMIT_DEFAULTS[key] if raw.get(key) is None else raw[key]

    def size(key: str, low: int) -> int:
        value = parse_size(given(key), f"{where}: {key}", InstanceError)
        if value < low:
            raise InstanceError(
                f"{where}: {key} {given(key)!r} is below the {size_text(low)} a server needs"
            )
        return value

    return Limits(
        memory_max=size("memory_max", MIN_MEMORY_MAX),
        memory_swap_max=size("memory_swap_max", 0),
        tasks_max=_int_in(given("tasks_max"), MIN_TASKS_MAX, MAX_TASKS_MAX,
                          f"{where}: tasks_max"),
        cpu_quota=_int_in(str(given("cpu_quota")).rstrip("%"), 1, MAX_CPU_QUOTA,
                          f"{where}: cpu_quota (percent of one CPU)"),
        cpu_weight=_int_in(given("cpu_weight"), 1, 10000, f"{where}: cpu_weight"),
        upper_dir_max=size("upper_dir_max", MIN_UPPER_DIR_MAX),
    )


@dataclass(frozen=True)
class InstanceSpec:
    """The desired settings of one instance, validated."""

    name: str
    port: int
    layers: tuple[str, ...]  # above the installation, first wins; check_layers resolves
    ip: str = DEFAULTS["ip"]
    client_port: int | None = None  # parse_spec always sets one (port + 1 by default)
    hostname: str | None = None
    maxplayers: int = DEFAULTS["maxplayers"]
    map: str = DEFAULTS["map"]
    tickrate: int = DEFAULTS["tickrate"]
    args: tuple[str, ...] = ()
    rcon_password: str | None = None
    allowed_cpus: str | None = None
    environment: tuple[tuple[str, str], ...] = ()
    limits: Limits = field(default_factory=Limits)

    @property
    def ports(self) -> tuple[int, ...]:
        return (self.port,) if self.client_port is None else (self.port, self.client_port)


def _given(raw: dict, key: str) -> object:
    """The setting, or its default when unset (None); 0 and "" stay, to be refused."""
    return DEFAULTS[key] if raw.get(key) is None else raw[key]


def _where(name: object) -> str:
    return f"instance {name!r}" if isinstance(name, str) else "instance"


def _int_in(value: object, low: int, high: int, what: str) -> int:
    if isinstance(value, bool):
        raise InstanceError(f"{what} must be a whole number, got {value!r}")
    try:
        number = int(str(value).strip())
    except ValueError:
        raise InstanceError(f"{what} must be a whole number, got {value!r}") from None
    if not low <= number <= high:
        raise InstanceError(f"{what} must be between {low} and {high}, got {number}")
    return number


def validate_port(value: object, what: str) -> int:
    return _int_in(value, MIN_PORT, MAX_PORT, what)


def _cfg_text(value: object, what: str, max_len: int = 255) -> str:
    if not isinstance(value, str) or not value:
        raise InstanceError(f"{what} must be a non-empty string")
    bad = [c for c in _CFG_VALUE_FORBIDDEN if c in value]
    if bad:
        raise InstanceError(
            f"{what} contains {', '.join(repr(c) for c in bad)}; srcds cfg values cannot carry"
            " double quotes, semicolons or line breaks"
        )
    if len(value.encode()) > max_len:
        raise InstanceError(f"{what} is longer than {max_len} bytes")
    return value


def _validate_args(args: object, where: str) -> tuple[str, ...]:
    if args is None:
        return ()
    if isinstance(args, str) or not isinstance(args, Sequence):
        raise InstanceError(f"{where}: args must be a list of strings")
    checked = []
    for arg in args:
        if not isinstance(arg, str) or not _ARG_RE.fullmatch(arg):
            raise InstanceError(
                f"{where}: argument {arg!r} must be one word without spaces, quotes,"
                " backslashes, '$', '`' or ';' (give '+sv_lan' and '1' as two items)"
            )
        if arg.lstrip("+-").lower() in ("rcon_password", "sv_password"):
            raise InstanceError(
                f"{where}: pass {arg.lstrip('+-')} through rcon_password (it goes into a cfg"
                " file), never on the command line where every local user can read it"
            )
        checked.append(arg)
    return tuple(checked)


def _validate_environment(env: object, where: str) -> tuple[tuple[str, str], ...]:
    if env is None:
        return ()
    if not isinstance(env, dict):
        raise InstanceError(f"{where}: environment must be a dict of NAME: value")
    checked = []
    for key, value in sorted(env.items()):
        if not isinstance(key, str) or not _ENV_KEY_RE.fullmatch(key):
            raise InstanceError(f"{where}: environment name {key!r} must match [A-Z_][A-Z0-9_]*")
        if key.startswith("LEFT4ME_"):
            raise InstanceError(f"{where}: environment name {key} is reserved for left4me")
        text = str(value).lower() if isinstance(value, bool) else str(value)
        bad = [c for c in _ENV_VALUE_FORBIDDEN if c in text]
        if bad:
            raise InstanceError(
                f"{where}: environment {key} contains {', '.join(repr(c) for c in bad)}"
            )
        checked.append((key, text))
    return tuple(checked)


def _validate_ip(value: object, where: str) -> str:
    try:
        return str(ipaddress.ip_address(str(value)))
    except ValueError:
        raise InstanceError(f"{where}: ip {value!r} is not an IP address") from None


def layer_paths(raw: dict, layout: HostLayout, where: str) -> list[str]:
    """The instance's layers above the installation, as paths (from lowerdirs or overlays)."""
    lowerdirs, overlays = raw.get("lowerdirs"), raw.get("overlays")
    if lowerdirs is not None and overlays is not None:
        raise InstanceError(f"{where}: give lowerdirs or overlays, not both")
    if overlays is not None:
        if isinstance(overlays, str) or not isinstance(overlays, Sequence):
            raise InstanceError(f"{where}: overlays must be a list of overlay ids")
        paths = []
        for overlay_id in overlays:
            text = str(overlay_id)
            if not text or "/" in text or text in (".", "..") or text.startswith("."):
                raise InstanceError(f"{where}: overlay id {overlay_id!r} is not a directory name")
            paths.append(os.path.join(layout.overlays_dir, text))
        return paths
    if lowerdirs is None:
        return []
    if isinstance(lowerdirs, str) or not isinstance(lowerdirs, Sequence):
        raise InstanceError(f"{where}: lowerdirs must be a list of paths")
    return list(lowerdirs)


def _parsed_layers(raw: dict, layout: HostLayout, where: str) -> list[str]:
    """The instance's layers as given, the installation not among them; the layer count
    within the kernel's limit and every path one an overlayfs option can carry."""
    layers = layer_paths(raw, layout, where)
    _refuse_installation(layers, layout, where, os.path.normpath)
    total = len(layers) + 2  # the instance's config layer on top, the installation last
    if total > MAX_LAYERS:
        raise InstanceError(
            f"{where}: {len(layers)} layers plus the instance config layer and the installation"
            f" make {total}; the kernel allows at most {MAX_LAYERS} lower layers per overlay"
        )
    try:
        check_lowerdir_paths([*layers, layout.installation])
    except MountError as exc:
        raise InstanceError(f"{where}: {exc}") from None
    return layers


def _refuse_installation(layers: Sequence[object], layout: HostLayout, where: str,
                         resolve: Callable[[str], str]) -> None:
    installation = resolve(layout.installation)
    if any(isinstance(p, str) and resolve(p) == installation for p in layers):
        raise InstanceError(
            f"{where}: lowerdirs must not list the installation {layout.installation};"
            " it is always the last layer"
        )


def check_layers(spec: InstanceSpec, layout: HostLayout) -> InstanceSpec:
    """The host's half of :func:`validate_spec`: every layer an existing directory under
    the allowed roots, neither the installation nor the instance's own config layer;
    returns the spec with its layers resolved."""
    where = _where(spec.name)
    _refuse_installation(spec.layers, layout, where, os.path.realpath)
    try:
        resolved = validate_lowerdirs([*spec.layers, layout.installation],
                                      layout.allowed_roots())
    except MountError as exc:
        raise InstanceError(f"{where}: {exc}") from None
    own_layer = os.path.realpath(layout.config_layer(spec.name))
    if own_layer in resolved:
        raise InstanceError(f"{where}: {own_layer} is the instance's own config layer")
    return replace(spec, layers=tuple(resolved[:-1]))


def parse_spec(raw: dict, layout: HostLayout | None = None) -> InstanceSpec:
    """Check one instance's settings by the rules alone, reading nothing on the host; the
    spec's layers are paths as given (overlay ids under ``layout``, by default the default
    one), not yet resolved."""
    name = raw.get("name")
    validate_instance_name(name, InstanceError)
    where = _where(name)
    if raw.get("port") is None:
        raise InstanceError(f"{where}: port is required")
    port = validate_port(raw["port"], f"{where}: port")
    client_port = raw.get("client_port")
    if client_port is None:
        # srcds binds a client UDP port at every start (27005 unless told): without one of
        # its own the instance binds a port its unit refuses, or a neighbour's, and quits.
        if port == MAX_PORT:
            raise InstanceError(f"{where}: port {port} leaves no next port: give client_port")
        client_port = port + 1
    client_port = validate_port(client_port, f"{where}: client_port")
    if client_port == port:
        raise InstanceError(f"{where}: client_port must differ from port {port}")
    layers = _parsed_layers(raw, layout or HostLayout(), where)
    map_name = str(_given(raw, "map"))
    if not _MAP_RE.fullmatch(map_name):
        raise InstanceError(f"{where}: map {map_name!r} is not a map name")
    hostname = raw.get("hostname")
    rcon_password = raw.get("rcon_password")
    allowed_cpus = raw.get("allowed_cpus")
    if allowed_cpus is not None:
        allowed_cpus = str(allowed_cpus).replace(" ", "")
        if not _CPU_LIST_RE.fullmatch(allowed_cpus):
            raise InstanceError(
                f"{where}: allowed_cpus {raw.get('allowed_cpus')!r} must be a CPU list like"
                " '1-3' or '1,3'"
            )
    return InstanceSpec(
        name=name,
        port=port,
        client_port=client_port,
        layers=tuple(layers),
        ip=_validate_ip(_given(raw, "ip"), where),
        hostname=None if hostname is None else _cfg_text(hostname, f"{where}: hostname"),
        maxplayers=_int_in(_given(raw, "maxplayers"), 1, 64, f"{where}: maxplayers"),
        map=map_name,
        tickrate=_int_in(_given(raw, "tickrate"), 10, 128, f"{where}: tickrate"),
        args=_validate_args(raw.get("args"), where),
        rcon_password=None
        if rcon_password is None
        else _cfg_text(rcon_password, f"{where}: rcon_password", 128),
        allowed_cpus=allowed_cpus,
        environment=_validate_environment(raw.get("environment"), where),
        limits=validate_limits(raw, where),
    )


def validate_spec(raw: dict, layout: HostLayout) -> InstanceSpec:
    """Check one instance's settings (as the module receives them) against the rules and
    the host's layers: :func:`parse_spec`, then :func:`check_layers`."""
    return check_layers(parse_spec(raw, layout), layout)


def check_unique(specs: Sequence[InstanceSpec]) -> None:
    """Names appear once; no port is used twice among the given instances."""
    seen_names: set[str] = set()
    owners: dict[int, str] = {}
    for spec in specs:
        if spec.name in seen_names:
            raise InstanceError(f"instance {spec.name!r} is listed twice")
        seen_names.add(spec.name)
        for port in spec.ports:
            if port in owners:
                raise InstanceError(
                    f"port {port} is used by both instance {owners[port]!r} and {spec.name!r};"
                    " every instance needs its own ports"
                )
            owners[port] = spec.name


def ports_from_env(env: dict[str, str]) -> list[int]:
    ports = []
    for key in (PORT_KEY, CLIENT_PORT_KEY):
        with contextlib.suppress(ValueError):
            if env.get(key):
                ports.append(int(env[key]))
    return ports


def check_ports_against_host(
    specs: Sequence[InstanceSpec], others: dict[str, dict[str, str]]
) -> None:
    """No port of ``specs`` is configured for another instance already on the host.

    ``others`` maps the names of instances on the host (their env files) that
    this call does not manage to their parsed env.
    """
    taken = {port: other for other, env in sorted(others.items()) for port in ports_from_env(env)}
    for spec in specs:
        for port in spec.ports:
            if port in taken:
                raise InstanceError(
                    f"instance {spec.name!r}: port {port} is already configured for instance"
                    f" {taken[port]!r} on this host ({taken[port]}.env); pick another port or"
                    " remove that instance"
                )


# --- file contents -------------------------------------------------------------


def _env_value(value: str) -> str:
    if _PLAIN_ENV_VALUE_RE.fullmatch(value) and value:
        return value
    return f'"{value}"'  # validated: no quotes, backslashes, '$' or '`' inside


def lowerdirs_of(spec: InstanceSpec, layout: HostLayout) -> list[str]:
    """The env file's layers: the installation by its name, never the build it resolves to
    now (the mount resolves it at each start; a new build changes no env file)."""
    return [layout.config_layer(spec.name), *spec.layers, layout.installation]


def mhz_from_cpuinfo(text: str) -> int | None:
    """The first ``cpu MHz`` line of /proc/cpuinfo, as Valve's tier0 reads it."""
    for line in text.splitlines():
        if "cpu MHz" in line and ":" in line:
            try:
                return int(float(line.split(":", 1)[1].split()[0])) or None
            except (ValueError, IndexError):
                continue
    return None


def host_cpu_mhz(max_freq_path: str = SYSFS_MAX_FREQ, cpuinfo_path: str = PROC_CPUINFO
                 ) -> int | None:
    """The host's CPU speed for srcds's ``CPU_MHZ``: the frequency driver's maximum (kHz)
    where there is one (stable while the clock scales), else /proc/cpuinfo's ``cpu MHz``
    (a VM's TSC rate, constant). None when neither says."""
    for path, parse in ((max_freq_path, lambda text: int(text.strip() or 0) // 1000),
                        (cpuinfo_path, mhz_from_cpuinfo)):
        try:
            with open(path, encoding="ascii", errors="replace") as handle:
                found = parse(handle.read(1 << 20))
        except (OSError, ValueError):
            continue
        if found:
            return found
    return None


def render_env(spec: InstanceSpec, layout: HostLayout, cpu_mhz: int | None = None) -> str:
    """The unit's EnvironmentFile. ``cpu_mhz``: the host's, for srcds's tier0, which reads
    ``CPU_MHZ`` before it measures or reads /proc/cpuinfo (hidden by ``ProcSubset=pid``:
    where its measurement does not settle, srcds ends with "Unable to determine CPU
    Frequency"). An operator's own ``CPU_MHZ`` in ``environment`` wins."""
    # +clientport: the cvar srcds reads (-clientport is no srcds option). -nohltv: no
    # SourceTV socket (27020 by default), which the unit's SocketBindDeny= would refuse.
    args = ["+clientport", str(spec.client_port)] if spec.client_port is not None else []
    args += ["-nohltv", *spec.args]
    lines = [
        f"# {MANAGED_HEADER}",
        f"# Instance {spec.name}; read by {UNIT_TEMPLATE} and left4me-mount. No secrets here.",
        f"{LOWERDIRS_KEY}={':'.join(lowerdirs_of(spec, layout))}",
        f"{PORT_KEY}={spec.port}",
    ]
    if spec.client_port is not None:
        lines.append(f"{CLIENT_PORT_KEY}={spec.client_port}")
    lines += [
        f"LEFT4ME_IP={spec.ip}",
        f"LEFT4ME_MAP={spec.map}",
        f"LEFT4ME_MAXPLAYERS={spec.maxplayers}",
        f"LEFT4ME_TICKRATE={spec.tickrate}",
        f"LEFT4ME_ARGS={_env_value(' '.join(args))}",
        f"{UPPER_DIR_MAX_KEY}={spec.limits.upper_dir_max}",
    ]
    if cpu_mhz and "CPU_MHZ" not in dict(spec.environment):
        lines.append(f"CPU_MHZ={cpu_mhz}")
    lines += [f"{key}={_env_value(value)}" for key, value in spec.environment]
    return "\n".join(lines) + "\n"


def render_instance_cfg(spec: InstanceSpec, *, mask_secrets: bool = False) -> str:
    """What left4me keeps in force: the RCON password and the map-load cfg.

    The unit runs it with ``+exec`` at start-up and :data:`MAPLOAD_CFG` runs it again
    after ``server.cfg`` at every map load, so no overlay's cfg keeps another password.
    """
    lines = [
        f"// {MANAGED_HEADER}",
        f"// Instance {spec.name}: run with +exec {INSTANCE_CFG} at start-up and by",
        f"// {MAPLOAD_CFG} after server.cfg at every map load: what it sets stays in force.",
    ]
    if spec.rcon_password is not None:
        shown = "********" if mask_secrets else spec.rcon_password
        lines.append(f'rcon_password "{shown}"')
    lines.append(f'servercfgfile "{MAPLOAD_CFG}"')
    return "\n".join(lines) + "\n"


def render_mapload_cfg(spec: InstanceSpec) -> str:
    """The cfg srcds runs at every map load: the instance's defaults, the overlays'
    ``server.cfg`` (which wins over the defaults), then :data:`INSTANCE_CFG` again."""
    lines = [
        f"// {MANAGED_HEADER}",
        f"// Instance {spec.name}: srcds runs this at every map load (servercfgfile).",
    ]
    if spec.hostname is not None:
        lines.append(f'hostname "{spec.hostname}"')
    lines += ["exec server.cfg", f"exec {INSTANCE_CFG}"]
    return "\n".join(lines) + "\n"


def render_dropin(spec: InstanceSpec) -> str:
    lines = [
        f"# {MANAGED_HEADER}",
        "[Service]",
        "# Only this instance's ports may be bound (the template denies every other bind).",
    ]
    for port in spec.ports:
        lines.append(f"SocketBindAllow=udp:{port}")
    lines.append(f"SocketBindAllow=tcp:{spec.port}")  # RCON shares the game port
    if spec.allowed_cpus is not None:
        lines.append("# Confine the server to these cores (leave core 0 to the host).")
        lines.append(f"AllowedCPUs={spec.allowed_cpus}")
    lines += render_limits(spec.limits)
    return "\n".join(lines) + "\n"


def render_limits(limits: Limits) -> list[str]:
    """The drop-in's resource lines, each with why: one tenant's server cannot take the host."""
    return [
        "# Past this the kernel's OOM killer ends this server alone (systemd: oom-kill),",
        "# not sshd, journald or another tenant's server.",
        f"MemoryMax={size_text(limits.memory_max)}",
        "# No escape from MemoryMax into swap, where a server would lag and slow the disk.",
        f"MemorySwapMax={size_text(limits.memory_swap_max)}",
        "# A fork or thread bomb stops at this many tasks instead of the host's pid space.",
        f"TasksMax={limits.tasks_max}",
        "# At most this much CPU time (100% = one core; srcds runs its game loop on one).",
        f"CPUQuota={limits.cpu_quota}%",
        "# Its share against other servers when the CPU is contended (instead of Nice=).",
        f"CPUWeight={limits.cpu_weight}",
    ]


# --- what is on the host ----------------------------------------------------------


def configured_instances(layout: HostLayout) -> dict[str, dict[str, str]]:
    """Instances with an env file on the host, name -> parsed env."""
    found: dict[str, dict[str, str]] = {}
    try:
        entries = sorted(os.listdir(layout.instances_dir))
    except FileNotFoundError:
        return found
    for entry in entries:
        if not entry.endswith(".env"):
            continue
        name = entry[: -len(".env")]
        try:
            validate_instance_name(name, InstanceError)
        except InstanceError:
            continue
        path = os.path.join(layout.instances_dir, entry)
        text = read_text(path)
        if text is None:
            continue
        try:
            found[name] = parse_env(text, path)
        except MountError:
            found[name] = {}
    return found


# --- managed files ---------------------------------------------------------------


@dataclass(frozen=True)
class ManagedFile:
    path: str
    content: str | None  # None: the file must not exist
    uid: int
    gid: int
    mode: int
    diff_content: str | None = None  # what --diff shows (secrets masked)


@dataclass
class FileChange:
    file: ManagedFile
    before: str | None
    content_changed: bool
    attrs_changed: bool

    @property
    def changed(self) -> bool:
        return self.content_changed or self.attrs_changed


def file_change(wanted: ManagedFile) -> FileChange:
    before = read_text(wanted.path)
    if wanted.content is None:
        return FileChange(wanted, before, before is not None, False)
    attrs_changed = False
    if before is not None:
        st = os.lstat(wanted.path)
        attrs_changed = (st.st_uid, st.st_gid, st.st_mode & 0o7777) != (
            wanted.uid,
            wanted.gid,
            wanted.mode,
        )
    return FileChange(wanted, before, before != wanted.content, attrs_changed)


def write_managed_file(wanted: ManagedFile) -> None:
    """Write the file atomically, or remove it when it must not exist."""
    if wanted.content is None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(wanted.path)
        return
    write_atomic(wanted.path, wanted.content, wanted.mode, (wanted.uid, wanted.gid))


# --- the plan ------------------------------------------------------------------------


@dataclass
class InstancePlan:
    name: str
    spec: InstanceSpec | None  # None: keep the configuration on the host as it is
    layout: HostLayout
    files: list[FileChange] = field(default_factory=list)
    dirs: list = field(default_factory=list)  # _mount.DirSpec entries to ensure
    dir_changes: list[str] = field(default_factory=list)
    port: int | None = None
    ip: str | None = None
    failed_before: bool = False
    invocation_before: str = ""  # the unit's run before this call (a restart ends it)
    secrets: list[str] = field(default_factory=list)  # masked in anything shown
    a2s: dict | None = None
    # config: the instance's own settings differ from what the host has.
    config_changed: bool = False
    actions: list[str] = field(default_factory=list)  # start | restart | stop | remove ...
    manager: str | None = None  # who manages it on the host (see _manager)

    @property
    def changed(self) -> bool:
        return (
            bool(self.actions)
            or self.config_changed
            or bool(self.dir_changes)
            or any(f.changed for f in self.files)
        )


def wanted_files(spec: InstanceSpec, layout: HostLayout, gid: int,
                 cpu_mhz: int | None = None) -> list[ManagedFile]:
    """The env file, the config layer's cfg and the unit drop-in of one instance."""
    return [
        ManagedFile(layout.env_file(spec.name), render_env(spec, layout, cpu_mhz), 0, gid,
                    0o640),
        ManagedFile(
            layout.instance_cfg(spec.name),
            render_instance_cfg(spec),
            0,
            gid,
            0o640,
            diff_content=render_instance_cfg(spec, mask_secrets=True),
        ),
        ManagedFile(layout.mapload_cfg(spec.name), render_mapload_cfg(spec), 0, gid, 0o640),
        ManagedFile(layout.dropin_file(spec.name), render_dropin(spec), 0, 0, 0o644),
    ]


def config_layer_dirs(layout: HostLayout, name: str) -> list[str]:
    """The config layer's directories, outermost first (modes: config_layer_dir_specs)."""
    top = layout.config_layer(name)
    cfg = os.path.dirname(layout.instance_cfg(name))
    dirs = [top]
    current = top
    for part in os.path.relpath(cfg, top).split(os.sep):
        current = os.path.join(current, part)
        dirs.append(current)
    return dirs


# The config layer is the instance's first layer, so its directories are the ones the game
# sees at left4dead2/ and left4dead2/cfg/ (overlayfs shows the topmost layer's owner and
# mode, and a copy-up into the upper dir keeps them). srcds writes there: `writeid`/`writeip`
# create cfg/banned_user.cfg and cfg/banned_ip.cfg, `log on` makes left4dead2/logs/, plugins
# their own files; root's 0750 refused all of it ("Couldn't open cfg/banned_user.cfg"). So
# those two are group-writable for the runtime user's group, with the sticky bit: the game
# may add entries but never rename or remove root's (cfg/left4me/, which stays 0750 with its
# 0640 files, so the game reads its own password and cannot replace it).
PRIVATE_LAYER_MODE = 0o750
GAME_WRITABLE_LAYER_DIRS = ("left4dead2", "left4dead2/cfg")


def config_layer_dir_specs(layout: HostLayout, name: str, gid: int) -> list[DirSpec]:
    """The config layer's directories with their owner (root:``gid``) and mode."""
    top = layout.config_layer(name)
    writable = {os.path.join(top, d) for d in GAME_WRITABLE_LAYER_DIRS}
    return [DirSpec(d, 0, gid, GAME_WRITABLE_LAYER_MODE if d in writable else PRIVATE_LAYER_MODE)
            for d in config_layer_dirs(layout, name)]


def removal_targets(layout: HostLayout, name: str, state_dir: str) -> list[str]:
    """What ``absent`` deletes, if present (the overlay must be unmounted first)."""
    paths = instance_paths(name, state_dir)
    return [
        layout.env_file(name),
        layout.manager_file(name),
        layout.dropin_dir(name),
        layout.config_layer(name),
        paths.image,  # the server's writes filesystem (named: it is what holds its disk)
        paths.root,
    ]


def remove_paths(paths: Iterable[str]) -> None:
    for path in paths:
        if os.path.islink(path) or os.path.isfile(path):
            os.unlink(path)
        elif os.path.isdir(path):
            shutil.rmtree(path)


# --- before a start: the Steam client links -----------------------------------------

STEAM_SDK_DIRS = ("sdk32", "sdk64")


def steam_link_paths(home: str) -> list[str]:
    """The links srcds loads Steam through (made by srcds_install, role game_host)."""
    return [os.path.join(home, ".steam", sdk, "steamclient.so") for sdk in STEAM_SDK_DIRS]


def missing_steam_links(home: str) -> list[str]:
    """What is wrong with ``~/.steam/sdk32|sdk64/steamclient.so``; empty when both resolve.

    Without them srcds cannot initialise Steam and runs LAN-only: it still answers
    A2S on its port, so the wait after a start cannot tell; this check can.
    """
    problems = []
    for path in steam_link_paths(home):
        if os.path.exists(path):  # follows the link: its target must be there too
            continue
        if os.path.islink(path) and _is_link_loop(path):
            problems.append(
                f"{path} leads to {os.path.realpath(path)}, a link to itself: steamcmd's own"
                " library was replaced by a link (a ~/.steam/sdkNN that linked into steamcmd's"
                " directory was written through; srcds_install now replaces such a link)")
        elif os.path.islink(path):
            problems.append(f"{path} points to {os.readlink(path)}, which does not exist")
        else:
            problems.append(f"{path} is missing")
    return problems


def _is_link_loop(path: str) -> bool:
    try:
        os.stat(path)
    except OSError as exc:
        return exc.errno == errno.ELOOP
    return False


def steam_links_message(problems: Sequence[str], names: Sequence[str]) -> str:
    return (
        f"not starting {', '.join(sorted(names))}: {'; '.join(problems)}. Without these links"
        " srcds cannot initialise Steam and runs LAN-only, invisible to the master server and"
        " lobby joins. Re-run playbooks/site.yml (role left4me.l4d2.game_host: its"
        " srcds_install links them into steamcmd's linux32/linux64)"
    )


# --- after a failed start: the reason, from the unit's journal ------------------------

MOUNT_HELPER_PREFIX = "left4me-mount:"
REASON_MAX_LINES = 8
REASON_LINE_CHARS = 300
REASON_MAX_CHARS = 1500
_CFG_SECRET_RE = re.compile(
    r"^\s*(?:rcon_password|sv_password)\s+\"?([^\"\r\n;]*)\"?", re.I | re.M
)
# What systemd itself says about a failed run (its other lines are progress noise).
_SYSTEMD_REASON_RE = re.compile(
    r"(Main|Control) process exited|Failed with result|Start request repeated too quickly"
    r"|Failed to |status=\d+/|Failed at step"
)


def cfg_secrets(cfg_text: str | None) -> list[str]:
    """Password values set in a cfg file (to mask them wherever they might be echoed)."""
    if not cfg_text:
        return []
    return [value for value in _CFG_SECRET_RE.findall(cfg_text) if value]


def entry_invocation(entry: dict) -> str:
    """The unit run an entry belongs to: its processes' output and systemd's lines on it."""
    return str(entry.get("_SYSTEMD_INVOCATION_ID") or entry.get("INVOCATION_ID") or "")


def _from_systemd(entry: dict) -> bool:
    return entry.get("_PID") == "1" or entry.get("SYSLOG_IDENTIFIER") == "systemd"


def has_process_output(entries: Sequence[dict], previous_invocation: str = "") -> bool:
    """Whether the unit's processes (not systemd) logged anything after the previous run."""
    return any(
        not _from_systemd(e) and entry_message(e).strip()
        and not (previous_invocation and entry_invocation(e) == previous_invocation)
        for e in entries
    )


def failure_reason(
    entries: Sequence[dict], previous_invocation: str = "", secrets: Iterable[str] = ()
) -> str:
    """Why a unit's run failed, from its journal entries since the start was asked for.

    ``previous_invocation`` is the run that was active before (a restart stops it:
    its last lines are not the reason). The mount helper's own refusal wins (a
    tainted upper dir, a missing layer: the server never ran); otherwise the last
    run's output and what systemd said about its end. Bounded, secrets masked.
    """
    secrets = list(secrets)
    current = [
        e for e in entries
        if not (previous_invocation and entry_invocation(e) == previous_invocation)
    ]
    helper = [entry_message(e) for e in current
              if entry_message(e).startswith(MOUNT_HELPER_PREFIX)]
    if helper:
        mounts = [line for line in helper if line.startswith(MOUNT_HELPER_PREFIX + " mount ")]
        return _bounded([(mounts or helper)[-1]], secrets)
    runs = [entry_invocation(e) for e in current if entry_invocation(e)]
    last_run = runs[-1] if runs else ""
    lines = []
    for entry in current:
        run = entry_invocation(entry)
        message = entry_message(entry).strip()
        if not message:
            continue
        if _from_systemd(entry):
            if _SYSTEMD_REASON_RE.search(message) and run in ("", last_run):
                lines.append(message)
        elif run == last_run:
            lines.append(message)
    return _bounded(lines[-REASON_MAX_LINES:], secrets)


def _bounded(lines: Sequence[str], secrets: Sequence[str]) -> str:
    shown = []
    for line in lines:
        line = mask_secrets(" ".join(line.split()), secrets)
        if len(line) > REASON_LINE_CHARS:
            line = line[: REASON_LINE_CHARS - 3] + "..."
        shown.append(line)
    text = " | ".join(shown)
    return text if len(text) <= REASON_MAX_CHARS else "..." + text[-(REASON_MAX_CHARS - 3):]
