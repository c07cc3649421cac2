# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Script-built overlays: the build sandbox, the staging tree and the atomic swap.

A user script populates ``{state_dir}/overlays/{id}/``. It runs as a transient
systemd service (``systemd-run --pipe --wait --collect --quiet``) in
``l4d2-build.slice``, as the unprivileged runtime user, in a sandbox whose
property list :func:`sandbox_properties` builds. The script sees its output
directory at ``/overlay``; that bind mount is a *staging* directory beside the
overlay, which replaces the overlay (``renameat2(RENAME_EXCHANGE)``) only when
the script succeeded and the tree differs. See ``docs/sandbox.md`` for why
each directive is there.

Layout of one build (``.`` prefixed names are never valid overlay ids)::

    {state_dir}/overlays/.{id}.lock            root 0600, flock held for the whole build
    {state_dir}/overlays/.{id}.build-{token}/  root 0700
        overlay/      runtime user 0755: bound read-write at /overlay
        script        runtime user 0500: bound read-only at /run/left4me-build/script
        resolv.conf   root 0644: bound read-only over /etc/resolv.conf
        environment   root 0600: read by systemd as root (EnvironmentFile=), never argv

How the build ended (``$SERVICE_RESULT``: success, exit-code, timeout,
oom-kill, signal) is printed by ``ExecStopPost=`` as the last output line,
tagged with the build's random token, which the script cannot see.

Standard library only: the ``script_overlay`` module imports it on the target.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import ipaddress
import json
import os
import re
import selectors
import shutil
import stat
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from ansible_collections.left4me.l4d2.plugins.module_utils._common import (
    DEFAULT_CONFIG_DIR,
    DEFAULT_STATE_DIR,
    Left4meError,
    exclusive_lock,
)
from ansible_collections.left4me.l4d2.plugins.module_utils._layout import (
    overlays_path,
    validate_overlay_id,
)
from ansible_collections.left4me.l4d2.plugins.module_utils._mount import (
    MountError,
    mount_state_from_options,
    parse_mountinfo,
)

BUILD_SLICE = "l4d2-build.slice"
OVERLAY_MOUNT = "/overlay"
SCRIPT_MOUNT = "/run/left4me-build/script"

# Egress the sandbox must never reach: anything on this host or a private
# network behind it. The public internet stays reachable. The unit gets
# IPAddressDeny=any plus IPAddressAllow= of the complement of these ranges
# (public_networks()), so the list fails closed. Never IPAddressAllow=any: an
# allow entry wins over a deny entry, so on systemd 257 it voided the deny list.
DENIED_NETWORKS: tuple[tuple[str, str], ...] = (
    ("0.0.0.0/8", "this network"),
    ("127.0.0.0/8", "IPv4 loopback"),
    ("::1/128", "IPv6 loopback"),
    ("169.254.0.0/16", "IPv4 link-local (cloud metadata at 169.254.169.254)"),
    ("fe80::/10", "IPv6 link-local"),
    ("224.0.0.0/4", "IPv4 multicast"),
    ("240.0.0.0/4", "IPv4 reserved and limited broadcast"),
    ("ff00::/8", "IPv6 multicast"),
    ("10.0.0.0/8", "RFC1918"),
    ("172.16.0.0/12", "RFC1918"),
    ("192.168.0.0/16", "RFC1918"),
    ("100.64.0.0/10", "CGNAT (RFC6598)"),
    ("fc00::/7", "IPv6 unique local (ULA)"),
    ("::ffff:0:0/96", "IPv4-mapped IPv6 (would smuggle the IPv4 ranges)"),
)

# Every public IPv6 unicast address lies in 2000::/3 (global unicast); ULA,
# link-local, multicast, loopback and IPv4-mapped addresses lie outside it.
PUBLIC_IPV6 = "2000::/3"

# Public resolvers for the sandbox's own resolv.conf: the host's resolver is
# usually on loopback or a private network, which the deny list blocks.
DEFAULT_RESOLVERS = ("1.1.1.1", "9.9.9.9", "2606:4700:4700::1111", "2620:fe::fe")

DEFAULT_MEMORY_MAX = "2G"
DEFAULT_TASKS_MAX = 256
DEFAULT_CPU_QUOTA = "100%"
DEFAULT_RUNTIME_MAX_SEC = 3600

_ENV_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MEMORY_RE = re.compile(r"(?:[1-9][0-9]*[KMGT]?|infinity)")
_CPU_QUOTA_RE = re.compile(r"[1-9][0-9]{0,4}%")
_USER_RE = re.compile(r"[a-z_][a-z0-9_-]{0,31}")

RENAME_EXCHANGE = 2
AT_FDCWD = -100


class SandboxError(Left4meError):
    """Bad input or a host state we refuse; the message tells a person what to do."""


# --- input validation --------------------------------------------------------


def validate_user(name: object, what: str = "user") -> str:
    if not isinstance(name, str) or not _USER_RE.fullmatch(name):
        raise SandboxError(f"invalid {what} name {name!r}")
    return name


@dataclass(frozen=True)
class Limits:
    """cgroup and wall-time limits of one build."""

    memory_max: str = DEFAULT_MEMORY_MAX
    tasks_max: int = DEFAULT_TASKS_MAX
    cpu_quota: str = DEFAULT_CPU_QUOTA
    runtime_max_sec: int = DEFAULT_RUNTIME_MAX_SEC

    def __post_init__(self) -> None:
        if not isinstance(self.memory_max, str) or not _MEMORY_RE.fullmatch(self.memory_max):
            raise SandboxError(
                f"memory_max {self.memory_max!r} must be bytes with an optional K, M, G or T"
                " suffix (e.g. 2G), or 'infinity'"
            )
        if not isinstance(self.tasks_max, int) or not 1 <= self.tasks_max <= 1_000_000:
            raise SandboxError(f"tasks_max {self.tasks_max!r} must be an integer 1..1000000")
        if not isinstance(self.cpu_quota, str) or not _CPU_QUOTA_RE.fullmatch(self.cpu_quota):
            raise SandboxError(
                f"cpu_quota {self.cpu_quota!r} must be a percentage of one CPU, e.g. 100%"
            )
        if not isinstance(self.runtime_max_sec, int) or not 1 <= self.runtime_max_sec <= 86400:
            raise SandboxError(
                f"runtime_max_sec {self.runtime_max_sec!r} must be 1..86400 seconds"
            )


def validate_environment(environment: Mapping[str, object] | None) -> dict[str, str]:
    """Return the environment as str -> str; keys are shell-style names."""
    result: dict[str, str] = {}
    for key, value in (environment or {}).items():
        if not isinstance(key, str) or not _ENV_KEY_RE.fullmatch(key):
            raise SandboxError(
                f"environment key {key!r} must be a shell variable name ([A-Za-z_][A-Za-z0-9_]*)"
            )
        text = value if isinstance(value, str) else str(value)
        if "\0" in text:
            raise SandboxError(f"environment value of {key} contains a NUL byte")
        result[key] = text
    return result


def validate_resolvers(resolvers: Sequence[str]) -> list[str]:
    if not resolvers:
        raise SandboxError("give at least one public DNS resolver")
    checked = []
    for resolver in resolvers:
        try:
            address = ipaddress.ip_address(resolver)
        except ValueError as exc:
            raise SandboxError(f"resolver {resolver!r} is not an IP address") from exc
        if denied_network_of(address):
            raise SandboxError(
                f"resolver {resolver} is in {denied_network_of(address)}, which the sandbox"
                " cannot reach; give a public resolver"
            )
        checked.append(str(address))
    return checked


def denied_network_of(address: object) -> str | None:
    """The DENIED_NETWORKS entry covering ``address``, or None when it is reachable."""
    ip = ipaddress.ip_address(address)
    for network, _why in DENIED_NETWORKS:
        net = ipaddress.ip_network(network)
        if ip.version == net.version and ip in net:
            return network
    return None


def public_networks(excluded: Iterable[str] = ()) -> list[str]:
    """The complement of DENIED_NETWORKS: IPv4 minus every denied range, and 2000::/3.

    ``excluded`` (addresses or networks) is cut out as well: the host's own public
    addresses, which a connection reaches over ``lo`` (so no interface-based firewall
    rule of the host applies to it).
    """
    allowed = {4: [ipaddress.ip_network("0.0.0.0/0")], 6: [ipaddress.ip_network(PUBLIC_IPV6)]}
    denied_texts = [text for text, _why in DENIED_NETWORKS] + list(excluded)
    for text in denied_texts:
        denied = ipaddress.ip_network(text, strict=False)
        kept = []
        for network in allowed[denied.version]:
            if denied.subnet_of(network):
                kept.extend(network.address_exclude(denied))
            elif not network.subnet_of(denied):
                kept.append(network)
        allowed[denied.version] = kept
    return [str(n) for v in (4, 6) for n in ipaddress.collapse_addresses(allowed[v])]


def own_addresses(ip_json: str) -> list[str]:
    """The host's own addresses from ``ip -j address show``, as /32 and /128 networks."""
    try:
        links = json.loads(ip_json)
        found = {str(ipaddress.ip_network(info["local"].split("%")[0]))
                 for link in links for info in link.get("addr_info", ())
                 if "local" in info}
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise SandboxError(
            f"cannot read the host's addresses from `ip -j address show`: {exc}") from None
    return sorted(found)


# --- paths --------------------------------------------------------------------


@dataclass(frozen=True)
class BuildPaths:
    overlays: str
    overlay: str
    lock: str
    build_dir: str
    staging: str
    script: str
    resolv_conf: str
    environment: str
    live_log: str
    token: str


def build_paths(overlay_id: str, state_dir: str = DEFAULT_STATE_DIR,
                token: str = "0") -> BuildPaths:
    validate_overlay_id(overlay_id, SandboxError)
    overlays = overlays_path(state_dir, SandboxError)
    if not re.fullmatch(r"[A-Za-z0-9]{1,32}", token):
        raise SandboxError(f"invalid build token {token!r}")
    build_dir = os.path.join(overlays, f".{overlay_id}.build-{token}")
    return BuildPaths(
        overlays=overlays,
        overlay=os.path.join(overlays, overlay_id),
        lock=os.path.join(overlays, f".{overlay_id}.lock"),
        build_dir=build_dir,
        staging=os.path.join(build_dir, "overlay"),
        script=os.path.join(build_dir, "script"),
        resolv_conf=os.path.join(build_dir, "resolv.conf"),
        environment=os.path.join(build_dir, "environment"),
        live_log=os.path.join(overlays, f".{overlay_id}.log"),
        token=token,
    )


def build_unit_name(overlay_id: str) -> str:
    """One unit name per overlay: systemd refuses a second concurrent build of it."""
    return f"left4me-build-{validate_overlay_id(overlay_id, SandboxError)}.service"


# --- the sandbox --------------------------------------------------------------


def sandbox_properties(paths: BuildPaths, user: str, group: str, limits: Limits,
                       masked_paths: Sequence[str] = (DEFAULT_CONFIG_DIR,),
                       state_dir: str = DEFAULT_STATE_DIR,
                       slice_name: str = BUILD_SLICE,
                       with_environment: bool = False,
                       host_addresses: Sequence[str] = ()) -> list[tuple[str, str]]:
    """The unit properties of a build, as (name, value) pairs in systemd-run order.

    ``docs/sandbox.md`` explains each one. The same list feeds ``systemd-run -p``
    (:func:`systemd_run_argv`) and a unit file for ``systemd-analyze security``
    (:func:`render_unit`), so what is scored is what runs. ``host_addresses`` (the
    host's own, :func:`own_addresses`) are left out of the allow list.
    """
    validate_user(user)
    validate_user(group, "group")
    masks = _mask_list(state_dir, masked_paths)
    props: list[tuple[str, str]] = [
        ("Description", f"left4me overlay build {os.path.basename(paths.overlay)}"),
        ("Slice", slice_name),
        ("User", user),
        ("Group", group),
        *IDENTITY_PROPERTIES,
        # File system: everything read-only, only the staging dir writable at /overlay
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("TemporaryFileSystem", " ".join(masks)),
        # PrivateDevices binds the host's /dev/shm, shared by every build and server of the
        # runtime uid: an empty one of its own instead
        ("TemporaryFileSystem", PRIVATE_SHM),
        ("BindPaths", f"{paths.staging}:{OVERLAY_MOUNT}"),
        ("BindReadOnlyPaths", f"{paths.script}:{SCRIPT_MOUNT}"),
        ("BindReadOnlyPaths", f"{paths.resolv_conf}:/etc/resolv.conf"),
        ("UMask", "0022"),
        *KERNEL_PROPERTIES,
        # Network: public internet only
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("IPAddressDeny", "any"),
        ("IPAddressAllow", " ".join(public_networks(host_addresses))),
        # Resources and wall time
        ("MemoryMax", limits.memory_max),
        ("MemorySwapMax", "0"),
        ("TasksMax", str(limits.tasks_max)),
        ("CPUQuota", limits.cpu_quota),
        ("RuntimeMaxSec", str(limits.runtime_max_sec)),
        # How the build ended (timeout, oom-kill, signal...): a last output line the
        # script cannot forge, because it does not know the token
        ("ExecStopPost", f"/bin/sh -c 'echo {result_marker(paths.token)} $$SERVICE_RESULT'"),
    ]
    if with_environment:
        props.append(("EnvironmentFile", paths.environment))
    return props


# Identity and privileges: no capabilities, no way to gain any, no uid of the host's.
IDENTITY_PROPERTIES = (
    ("NoNewPrivileges", "yes"),
    ("CapabilityBoundingSet", ""),
    ("PrivateUsers", "yes"),
    ("RestrictSUIDSGID", "yes"),
)

# Kernel, processes and IPC: nothing of the host's to see, tune or share.
KERNEL_PROPERTIES = (
    ("ProtectKernelTunables", "yes"),
    ("ProtectKernelModules", "yes"),
    ("ProtectKernelLogs", "yes"),
    ("ProtectControlGroups", "yes"),
    ("ProtectClock", "yes"),
    ("ProtectHostname", "yes"),
    ("ProtectProc", "invisible"),
    ("ProcSubset", "pid"),
    ("PrivateIPC", "yes"),
    ("RemoveIPC", "yes"),
    ("RestrictNamespaces", "yes"),
    ("RestrictRealtime", "yes"),
    ("LockPersonality", "yes"),
    ("MemoryDenyWriteExecute", "yes"),
    ("SystemCallArchitectures", "native"),
    ("SystemCallFilter", "@system-service"),
    ("SystemCallFilter", "~@privileged @resources"),
    ("SystemCallErrorNumber", "EPERM"),
)


# An empty, private /dev/shm (POSIX shared memory still works), gone with the unit.
PRIVATE_SHM = "/dev/shm:mode=1777,nosuid,nodev,noexec"


def _mask_list(state_dir: str, masked_paths: Sequence[str]) -> list[str]:
    # /var/lib holds the state database and other services' data; /run holds
    # sockets of host daemons. ProtectSystem=strict only makes them read-only.
    masks = ["/var/lib", "/run", os.path.normpath(state_dir)]
    for path in masked_paths:
        if not isinstance(path, str) or not os.path.isabs(path) or any(c in path for c in " :\n"):
            raise SandboxError(f"masked path {path!r} must be absolute, without spaces or ':'")
        masks.append(os.path.normpath(path))
    unique: list[str] = []
    for path in masks:
        if path not in unique and not any(_within(path, kept) for kept in unique):
            unique.append(path)
    return unique


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def exec_command() -> list[str]:
    """ExecStart of a build: run the script by its #! line, or with /bin/sh without one."""
    # sh's exec falls back to interpreting the file itself when execve() says ENOEXEC.
    return ["/bin/sh", "-c", f"exec {SCRIPT_MOUNT}"]


def systemd_run_argv(properties: Iterable[tuple[str, str]], unit: str) -> list[str]:
    argv = ["systemd-run", "--pipe", "--wait", "--collect", "--quiet", f"--unit={unit}"]
    for name, value in properties:
        argv.append(f"--property={name}={value}")
    argv.append("--")
    argv.extend(exec_command())
    return argv


def render_unit(properties: Iterable[tuple[str, str]],
                command: Sequence[str] | None = None) -> str:
    """A service unit file with the same properties, e.g. for systemd-analyze."""
    unit_keys = {"Description"}
    unit_lines = ["[Unit]"]
    service_lines = ["[Service]", "Type=exec"]
    for name, value in properties:
        (unit_lines if name in unit_keys else service_lines).append(f"{name}={value}")
    argv = list(command) if command is not None else exec_command()
    service_lines.append("ExecStart=" + " ".join(_quote_exec_arg(a) for a in argv))
    return "\n".join(unit_lines + [""] + service_lines) + "\n"


def _quote_exec_arg(arg: str) -> str:
    if arg and not any(c in arg for c in " \t\"'\\;$"):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"').replace("$", "$$") + '"'


# --- files handed to the sandbox ---------------------------------------------


def resolv_conf_text(resolvers: Sequence[str]) -> str:
    lines = ["# left4me build sandbox: public resolvers only (private ranges are blocked)"]
    lines += [f"nameserver {r}" for r in resolvers]
    lines.append("options edns0 timeout:2 attempts:2")
    return "\n".join(lines) + "\n"


def environment_file_text(environment: Mapping[str, str]) -> str:
    """systemd EnvironmentFile= syntax: double-quoted values, \\ " $ ` escaped."""
    lines = []
    for key, value in sorted(environment.items()):
        quoted = "".join("\\" + c if c in '\\"$`' else c for c in value)
        lines.append(f'{key}="{quoted}"')
    return "\n".join(lines) + ("\n" if lines else "")


def result_marker(token: str) -> str:
    return f"left4me-build-result:{token}"


def split_result(output: str, token: str) -> tuple[str, str]:
    """(output without the marker line, $SERVICE_RESULT or '' when the unit never ran)."""
    marker = result_marker(token) + " "
    kept, service_result = [], ""
    for line in output.splitlines(keepends=True):
        if line.startswith(marker):
            service_result = line[len(marker):].strip()
        else:
            kept.append(line)
    return "".join(kept), service_result


# The most build output a result or failure message ever carries: a script's output
# is its own (it may print whatever it read), and Ansible shows and logs results.
OUTPUT_MAX_LINES = 64
OUTPUT_MAX_BYTES = 8192
# How much of the raw output is kept while the build runs (the rest is dropped as it
# comes, so a script printing gigabytes costs no memory): the tail shown plus the
# result marker line, with room to spare.
OUTPUT_KEEP_BYTES = 64 * 1024


def validate_output_lines(max_lines: object) -> int:
    if isinstance(max_lines, bool) or not isinstance(max_lines, int) \
            or not 0 <= max_lines <= OUTPUT_MAX_LINES:
        raise SandboxError(
            f"output_lines {max_lines!r} must be 0..{OUTPUT_MAX_LINES}: results carry at most"
            f" the last {OUTPUT_MAX_LINES} lines ({OUTPUT_MAX_BYTES} bytes) of build output"
        )
    return max_lines


def keep_tail(buffer: bytes, keep: int = OUTPUT_KEEP_BYTES) -> bytes:
    """The last ``keep`` bytes of what a build printed so far."""
    return buffer[-keep:] if len(buffer) > keep else buffer


# The live log: a build's output written to a root-only file on the host as it comes, so
# a playbook can show it while the build runs (the result only comes at the end). Bounded
# like the tail: a script printing gigabytes must not fill the state file system.
LIVE_LOG_MAX_BYTES = 1024 * 1024
# A "line" without a newline longer than this is written in pieces, so a reader that
# waits for whole lines is not kept waiting by a progress bar drawn with \r.
LIVE_LINE_MAX_BYTES = 4096
LIVE_LOG_FULL_NOTE = (b"... (the live log stops at %d bytes; the build goes on and its last"
                      b" lines come with its result)\n" % LIVE_LOG_MAX_BYTES)


class LiveLog:
    """Passes a build's output to ``write`` in whole lines, at most ``max_bytes`` in all.

    Each call of ``write`` gets whole lines only (ending in a newline), so a reader
    polling the file never shows half a line; NUL bytes are dropped (readers are shell
    scripts). Lines starting with ``hidden_prefix`` (the result marker, which carries the
    build's token) are not written. :meth:`close` writes a last unfinished line.
    """

    def __init__(self, write, hidden_prefix: bytes = b"", max_bytes: int = LIVE_LOG_MAX_BYTES,
                 line_max: int = LIVE_LINE_MAX_BYTES) -> None:
        self._write = write
        self._hidden = hidden_prefix
        self._max_bytes = max_bytes
        self._line_max = line_max
        self._pending = b""
        self.written = 0
        self.full = False

    def feed(self, chunk: bytes) -> None:
        data = self._pending + chunk.replace(b"\0", b"")
        cut = data.rfind(b"\n") + 1
        lines, self._pending = [data[:cut]], data[cut:]
        while len(self._pending) > self._line_max:
            lines.append(self._pending[:self._line_max] + b"\n")
            self._pending = self._pending[self._line_max:]
        self._emit(b"".join(lines))

    def close(self) -> None:
        if self._pending:
            self._emit(self._pending + b"\n")
            self._pending = b""

    def _emit(self, data: bytes) -> None:
        if self._hidden and self._hidden in data:
            data = b"".join(line for line in data.splitlines(keepends=True)
                            if not line.startswith(self._hidden))
        if not data or self.full:
            return
        room = self._max_bytes - len(LIVE_LOG_FULL_NOTE) - self.written  # the note fits
        if len(data) > room:
            data = data[:data.rfind(b"\n", 0, max(room, 0)) + 1] + LIVE_LOG_FULL_NOTE
            self.full = True
        self._write(data)
        self.written += len(data)


def open_live_log(path: str) -> int:
    """The live log, emptied for a new build: root-only (it shows what the script printed,
    which may be a secret it read), never following a link planted in its place."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o600)
    os.fchown(fd, 0, 0)
    os.fchmod(fd, 0o600)
    return fd


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def run_keeping_tail(argv: list[str], timeout: float, on_output=None, on_tick=None,
                     tick: float = 10.0) -> tuple[int, bytes] | None:
    """(rc, the tail of its output) of ``argv`` (systemd-run), or None when it outlived
    ``timeout``.

    Only the last bytes of the output are kept while it runs (keep_tail): a build
    may print without limit, the module's memory and results may not grow with it.
    ``on_output`` gets each chunk as it comes (the live log); ``on_tick`` is called
    every ``tick`` seconds while it runs (the staged tree's size watch).
    """
    deadline = time.monotonic() + timeout
    next_tick = time.monotonic() + tick
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT,
                            env={**os.environ, "LANG": "C", "LC_ALL": "C"})
    tail = b""
    with proc, selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        while True:
            now = time.monotonic()
            remaining = deadline - now
            if remaining <= 0:
                proc.kill()
                return None
            if on_tick is not None and now >= next_tick:
                on_tick()
                next_tick = now + tick
            if not selector.select(min(remaining, tick) if on_tick else remaining):
                continue
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break
            tail = keep_tail(tail + chunk)
            if on_output is not None:
                on_output(chunk)
        try:
            return proc.wait(max(deadline - time.monotonic(), 1)), tail
        except subprocess.TimeoutExpired:
            proc.kill()
            return None


def output_tail(text: str, max_lines: int) -> list[str]:
    """At most the last ``max_lines`` lines (never above OUTPUT_MAX_LINES), together at
    most OUTPUT_MAX_BYTES bytes; a line cut short starts with "...".
    """
    lines = text.splitlines()[-min(max_lines, OUTPUT_MAX_LINES):] if max_lines > 0 else []
    kept: list[str] = []
    budget = OUTPUT_MAX_BYTES
    for line in reversed(lines):
        size = len(line.encode("utf-8", "surrogateescape")) + 1
        if size > budget:
            if budget > 4:
                tail = line.encode("utf-8", "surrogateescape")[-(budget - 4):]
                kept.append("..." + tail.decode("utf-8", "replace"))
            break
        kept.append(line)
        budget -= size
    return kept[::-1]


# --- reading the user's script ------------------------------------------------

MAX_SCRIPT_BYTES = 1024 * 1024


def _read_in_child(path: str, max_bytes: int) -> tuple[bool, bytes]:
    """(True, content) or (False, why): runs in the forked child, after it dropped root."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return False, b"not a regular file"
            chunks, size = [], 0
            while size <= max_bytes:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
        finally:
            os.close(fd)
    except OSError as exc:
        return False, (exc.strerror or type(exc).__name__).encode()
    if size > max_bytes:
        return False, f"larger than {max_bytes} bytes".encode()
    return True, b"".join(chunks)


def read_script_as(path: str, uid: int, gid: int, groups: Sequence[int],
                   max_bytes: int = MAX_SCRIPT_BYTES) -> str:
    """The script at ``path``, read with the runtime user's rights (never root's).

    The module runs as root: opening ``path`` itself would hand any root-only file
    (``/etc/shadow``) to the sandbox, and the shell's errors would print its lines.
    A forked child drops to the user's uid, gid and groups and reads it instead; it
    sends back one status byte and the content, or why it could not.
    """
    if not isinstance(path, str) or not os.path.isabs(path):
        raise SandboxError(f"script {path!r} must be an absolute path on the managed host")
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns, never runs anything of the parent's
        status = 1
        try:
            os.close(reader)
            os.setgroups(list(groups))
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
            ok, data = _read_in_child(path, max_bytes)
            message = (b"\0" if ok else b"\1") + data
            while message:
                message = message[os.write(writer, message):]
            status = 0
        finally:
            os._exit(status)
    os.close(writer)
    received = []
    with os.fdopen(reader, "rb") as pipe:
        for chunk in iter(lambda: pipe.read(65536), b""):
            received.append(chunk)
    _pid, wait_status = os.waitpid(pid, 0)
    answer = b"".join(received)
    if os.waitstatus_to_exitcode(wait_status) != 0 or not answer:
        raise SandboxError(f"cannot read the build script {path}: the reading process"
                           " could not switch to the runtime user")
    if answer[:1] != b"\0":
        why = answer[1:].decode("utf-8", "replace")[:200]
        raise SandboxError(
            f"cannot read the build script {path} as the runtime user (uid {uid}): {why};"
            " the script must be a file that user may read (build scripts never get root's"
            " rights)"
        )
    return answer[1:].decode("utf-8", "surrogateescape")


# --- the tree -----------------------------------------------------------------


def tree_manifest(root: str) -> dict[str, str]:
    """relative path -> description (type, mode, content hash or link target).

    Never follows symlinks and never opens anything but regular files, so a
    hostile tree (FIFOs, links to /etc/shadow) cannot block or leak through it.
    """
    manifest: dict[str, str] = {}
    if not os.path.isdir(root):
        return manifest
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            st = os.lstat(full)
            mode = f"{stat.S_IMODE(st.st_mode):04o}"
            if stat.S_ISLNK(st.st_mode):
                manifest[rel] = f"link {os.readlink(full)}"
            elif stat.S_ISDIR(st.st_mode):
                manifest[rel] = f"dir {mode}"
            elif stat.S_ISREG(st.st_mode):
                manifest[rel] = f"file {mode} {_file_sha256(full)}"
            else:
                manifest[rel] = f"special {stat.S_IFMT(st.st_mode):o} {mode}"
    return manifest


def _file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def manifest_digest(manifest: Mapping[str, str]) -> str:
    digest = hashlib.sha256()
    for rel in sorted(manifest):
        digest.update(f"{rel}\0{manifest[rel]}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def manifest_text(manifest: Mapping[str, str], max_lines: int = 500) -> str:
    """A readable listing for --diff, short hashes, capped."""
    lines = []
    for rel in sorted(manifest)[:max_lines]:
        kind, *rest = manifest[rel].split(" ")
        if kind == "file":
            rest[-1] = rest[-1][:12]
        lines.append(f"{rel}  {kind} {' '.join(rest)}")
    if len(manifest) > max_lines:
        lines.append(f"... and {len(manifest) - max_lines} more entries")
    return "\n".join(lines) + ("\n" if lines else "")


def world_readable_mode(mode: int, is_dir: bool) -> int:
    """o+r for files, o+rx for directories; other bits kept."""
    return mode | (0o005 if is_dir else 0o004)


def make_world_readable(root: str) -> int:
    """Apply world_readable_mode below ``root`` (symlinks untouched); count of changes.

    Called after the sandbox has ended: no process of the build is left to swap
    an entry for a symlink between lstat() and chmod().
    """
    changed = _chmod_readable(root)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            changed += _chmod_readable(os.path.join(dirpath, name))
    return changed


def _chmod_readable(path: str) -> int:
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        return 0
    mode = stat.S_IMODE(st.st_mode)
    wanted = world_readable_mode(mode, stat.S_ISDIR(st.st_mode))
    if wanted == mode:
        return 0
    os.chmod(path, wanted)
    return 1


# --- the swap -----------------------------------------------------------------


def exchange(first: str, second: str) -> None:
    """Atomically swap two paths on one file system (renameat2 RENAME_EXCHANGE)."""
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = libc.renameat2
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                          ctypes.c_uint]
    if renameat2(AT_FDCWD, os.fsencode(first), AT_FDCWD, os.fsencode(second),
                 RENAME_EXCHANGE) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"renameat2(RENAME_EXCHANGE) failed: {os.strerror(err)}", first)


def swap_into_place(staging: str, overlay: str, retired: str) -> None:
    """Make ``staging`` the overlay; the previous overlay (if any) ends at ``retired``.

    Readers see the old tree or the new one, never a mix or nothing.
    """
    if not os.path.lexists(overlay):
        os.rename(staging, overlay)
        return
    try:
        exchange(staging, overlay)
        os.rename(staging, retired)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOSYS):
            raise
        # File systems without RENAME_EXCHANGE: two renames, a short window without it.
        os.rename(overlay, retired)
        os.rename(staging, overlay)


def remove_tree(path: str) -> None:
    if os.path.lexists(path):
        shutil.rmtree(path)


def overlay_lock(lock_path: str):
    """Hold an exclusive lock for one overlay's build; fail at once if another holds it."""
    busy = SandboxError(f"another build of this overlay is running (lock {lock_path}); wait for it")
    return exclusive_lock(lock_path, 0o600, busy=busy)


def stale_build_dirs(overlays_dir: str, overlay_id: str) -> list[str]:
    """Build dirs of this overlay left by an interrupted run (call with the lock held)."""
    prefix = f".{validate_overlay_id(overlay_id, SandboxError)}.build-"
    try:
        names = os.listdir(overlays_dir)
    except FileNotFoundError:
        return []
    return sorted(os.path.join(overlays_dir, n) for n in names if n.startswith(prefix))


def retired_dirs(overlays_dir: str, overlay_id: str) -> list[str]:
    """Previous trees kept because a mounted instance still used them."""
    prefix = f".{validate_overlay_id(overlay_id, SandboxError)}.retired-"
    try:
        names = os.listdir(overlays_dir)
    except FileNotFoundError:
        return []
    return sorted(os.path.join(overlays_dir, n) for n in names if n.startswith(prefix))


def mounts_using(overlay: str, mountinfo_text: str) -> list[str]:
    """Mount points of overlayfs mounts that have ``overlay`` as a lower layer.

    Such a mount keeps the directory it resolved at mount time, so after a swap
    a running server still reads the previous tree: it must not be deleted.
    """
    try:
        entries = parse_mountinfo(mountinfo_text)
    except MountError as exc:
        raise SandboxError(str(exc)) from exc
    wanted = {os.path.normpath(overlay), os.path.realpath(overlay)}
    return [
        entry.mount_point for entry in entries
        if entry.fstype == "overlay"
        and wanted & set(mount_state_from_options(entry.super_options).lowerdirs)
    ]


def describe_result(service_result: str, rc: int, runtime_max_sec: int) -> str:
    """A sentence for a failed build from systemd's $SERVICE_RESULT and the exit code."""
    if service_result == "timeout":
        return f"killed after RuntimeMaxSec={runtime_max_sec}s"
    if service_result == "oom-kill":
        return "killed by the out-of-memory killer (MemoryMax)"
    if service_result == "signal":
        return "killed by a signal"
    if service_result in ("exit-code", "success", ""):
        return f"exited with status {rc}"
    return f"ended with result {service_result} (rc {rc})"
