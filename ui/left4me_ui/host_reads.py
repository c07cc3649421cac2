"""The fast read path: one JSON request to a host's `left4me-read` over one kept SSH connection.

Changes stay Ansible jobs; reads (a server's `info`, a console command, its journal) go to
the entry point role game_instances installs on each host, run as root through a sudoers
rule that allows exactly `sudo -n /usr/bin/python3 -I /usr/local/libexec/left4me/left4me-read`.
It answers what the srcds_info, rcon and server_logs modules would, from the same code.

The SSH connection is the one the UI's Ansible runs use for the host: the same address,
port, user, key and ssh arguments from the inventory (host keys checked, never asked:
BatchMode), and the same control socket (runner.ssh_control_dir, named as ansible's ssh
plugin names it), so a console session, a followed log and the poller share one login; a
lost master is opened again by the next request. Where there is no direct SSH (the AWX
backend), the operator turned it off (LEFT4ME_UI_FAST_READS=off) or the host lacks the
entry point (remembered for FALLBACK_SECONDS), `read` runs the module through
runner.run_module as before. Nothing secret is in argv: the request goes on stdin, and the
RCON password never leaves the host.
"""

from __future__ import annotations

import configparser
import hashlib
import json
import shlex
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from left4me_ui.core import Core
from left4me_ui.runner import ModuleRun, run_module, ssh_control_dir
from left4me_ui.settings import PROJECT_DIR

ENTRY_POINT = ("sudo", "-n", "/usr/bin/python3", "-I", "/usr/local/libexec/left4me/left4me-read")
MODULES = {"info": "left4me.l4d2.srcds_info", "rcon": "left4me.l4d2.rcon",
           "logs": "left4me.l4d2.server_logs"}
ANSIBLE_SSH_ARGS = "-C -o ControlMaster=auto -o ControlPersist=60s"  # ansible's default
AUTHENTICATIONS = "gssapi-with-mic,gssapi-keyex,hostbased,publickey"  # ansible's, no password
CONNECT_TIMEOUT = 10  # ansible's default `timeout`
FALLBACK_SECONDS = 600.0  # how long a host without the entry point is read the slow way
SSH_FAILED = 255


class ReadFailed(Exception):
    """The request got no answer: the message says why (safe to show)."""


class Unavailable(Exception):
    """The host has no usable entry point (missing, or no sudoers rule): use Ansible."""


@dataclass(frozen=True)
class SshTarget:
    """How the UI's Ansible runs reach an inventory host over SSH."""

    host: str  # the inventory's name
    address: str
    port: int | None
    user: str | None
    key_file: str | None
    ssh_args: tuple[str, ...]  # ansible.cfg's ssh_args, then the host's common/extra args


def ansible_ssh_args(config: Path = PROJECT_DIR / "ansible.cfg") -> str:
    """ansible.cfg's [ssh_connection] ssh_args, else ansible's default."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(config)
    return parser.get("ssh_connection", "ssh_args", fallback=ANSIBLE_SSH_ARGS)


def ssh_target(host: str, hostvars: dict, ssh_args: str = ANSIBLE_SSH_ARGS) -> SshTarget:
    """The host's connection from its inventory variables; Unavailable when a value is a
    template (ansible-inventory does not render them: only an Ansible run knows it)."""
    names = ("ansible_host", "ansible_port", "ansible_user", "ansible_ssh_private_key_file",
             "ansible_ssh_common_args", "ansible_ssh_extra_args")
    found = {name: hostvars.get(name) for name in names}
    if any("{{" in str(value) for value in found.values() if value is not None):
        raise Unavailable(f"{host}'s connection is templated in the inventory")
    port = found["ansible_port"]
    return SshTarget(
        host, str(found["ansible_host"] or host), int(port) if port is not None else None,
        found["ansible_user"], found["ansible_ssh_private_key_file"],
        tuple(shlex.split(ssh_args) + shlex.split(found["ansible_ssh_common_args"] or "")
              + shlex.split(found["ansible_ssh_extra_args"] or "")))


def control_path(target: SshTarget, directory: Path) -> Path:
    """The control socket ansible's ssh plugin uses for the same address, port and user."""
    digest = hashlib.sha1(f"{target.address}-{target.port}-{target.user}".encode()).hexdigest()
    return directory / digest[:10]


def ssh_argv(target: SshTarget, control_dir: Path, remote: tuple[str, ...] = ENTRY_POINT,
             options: tuple[str, ...] = ()) -> list[str]:
    """ssh as ansible's ssh plugin runs it for the host (BatchMode: a host key is checked,
    never asked), running `remote` on it over the kept connection (`options`: ssh's own,
    e.g. `-O check` asks the master). Paths are quoted as ansible quotes them (ssh splits
    an option's value at spaces otherwise)."""
    argv = ["ssh", "-o", "BatchMode=yes", *target.ssh_args]
    if target.port is not None:
        argv += ["-o", f"Port={target.port}"]
    if target.key_file:
        argv += ["-o", f'IdentityFile="{target.key_file}"']
    argv += ["-o", "KbdInteractiveAuthentication=no", "-o", "PasswordAuthentication=no",
             "-o", f"PreferredAuthentications={AUTHENTICATIONS}"]
    if target.user:
        argv += ["-o", f'User="{target.user}"']
    argv += ["-o", f"ConnectTimeout={CONNECT_TIMEOUT}",
             "-o", f'ControlPath="{control_path(target, control_dir)}"',
             *options, "--", target.address, *remote]
    return argv


def ssh_failure(host: str, stderr: str) -> str:
    """What ssh's complaint (exit 255) means, for a person."""
    if "IDENTIFICATION HAS CHANGED" in stderr or "Host key verification failed" in stderr:
        return (f"{host}'s SSH host key is not the one known for it (changed, or never"
                " recorded): refused; check the host, then update known_hosts")
    lines = [line for line in stderr.strip().splitlines() if not line.startswith("Warning:")]
    return f"{host} is unreachable over SSH: {lines[-1] if lines else 'ssh failed'}"


def parse_answer(host: str, returncode: int, stdout: str, stderr: str) -> ModuleRun:
    """The entry point's answer: ok (exit 0) or the module's / the request's refusal (1, 2);
    ReadFailed when SSH failed, Unavailable when something else answered (no entry point,
    no sudoers rule)."""
    try:
        result = json.loads(stdout)
    except ValueError:
        result = None
    if not isinstance(result, dict):
        if returncode == SSH_FAILED:
            raise ReadFailed(ssh_failure(host, stderr))
        raise Unavailable(f"{host} has no usable left4me-read (exit {returncode}):"
                          f" {stderr.strip()[-300:]}")
    if returncode == 0:
        return ModuleRun(True, "", result)
    return ModuleRun(False, str(result.get("msg") or f"left4me-read exited {returncode}"),
                     result)


def exchange(argv: list[str], request: bytes, host: str, deadline: float
             ) -> subprocess.CompletedProcess:
    """Run ssh with the request on stdin; ReadFailed past the deadline (ssh is killed)."""
    try:
        return subprocess.run(argv, input=request, capture_output=True, timeout=deadline,
                              check=False)
    except subprocess.TimeoutExpired:
        raise ReadFailed(f"no answer from {host} within {deadline:g} s") from None


def ask(target: SshTarget, control_dir: Path, verb: str, instance: str | None, args: dict,
        deadline: float) -> ModuleRun:
    """One request to the host's entry point over the kept connection."""
    request = json.dumps({"verb": verb, "instance": instance, "args": args}).encode()
    done = exchange(ssh_argv(target, control_dir), request, target.host, deadline)
    return parse_answer(target.host, done.returncode,
                        done.stdout.decode("utf-8", "replace"),
                        done.stderr.decode("utf-8", "replace"))


_fallback_until: dict[SshTarget, float] = {}
_fallback_lock = threading.Lock()


def target_of(core: Core, host: str) -> SshTarget | None:
    """The host's connection when the fast path may be used for it, else None."""
    if not core.settings.fast_reads or core.settings.job_backend != "local":
        return None
    hostvars = core.inventory().hostvars.get(host)
    if hostvars is None:
        return None
    try:
        target = ssh_target(host, hostvars, ansible_ssh_args())
    except Unavailable:
        return None
    with _fallback_lock:
        if _fallback_until.get(target, 0.0) > time.monotonic():
            return None
    return target


def fast(core: Core, host: str) -> bool:
    """Whether reads on `host` take the fast path now (the console says so when not)."""
    return target_of(core, host) is not None


def _module_args(verb: str, instance: str | None, args: dict) -> dict:
    return args if instance is None else {"name": instance, **args}


def read(core: Core, host: str, verb: str, instance: str | None, args: dict,
         deadline: float) -> ModuleRun:
    """One read (`info`, `rcon`, `logs`) on the host: the fast path when it may be used,
    else (or when the host lacks the entry point) the module through runner.run_module.
    A refusal, an unreachable host or a passed deadline is a failed ModuleRun saying so."""
    target = target_of(core, host)
    if target is not None:
        try:
            return ask(target, ssh_control_dir(core.settings.state_dir), verb, instance,
                       args, deadline)
        except ReadFailed as exc:
            return ModuleRun(False, str(exc))
        except Unavailable:
            with _fallback_lock:
                _fallback_until[target] = time.monotonic() + FALLBACK_SECONDS
    return run_module(core, host, MODULES[verb], _module_args(verb, instance, args),
                      timeout=int(deadline))
