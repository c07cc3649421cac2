"""The Ansible port: every ansible-runner call of the UI goes through here.

Playbook jobs (run_playbook, for backends.local), module runs (run_module: console, logs,
status, Workshop reads), reachability (check_reachability) and the inventory
(load_inventory). One environment (runner_envvars), one way variables reach a run
(write_vars: a 0600 file, tagged !unsafe) and one event collector for ad-hoc runs
(HostResults). This is the only module that imports ansible_runner: tests fake Ansible
here, and backends.awx is the one place where a job runs elsewhere.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import ansible_runner
import yaml

from left4me_ui.inventory import Inventory
from left4me_ui.settings import PROJECT_DIR


class UnsafeVarsDumper(yaml.SafeDumper):
    """YAML with every string value that could hold a template tagged !unsafe. ansible
    renders a template it finds in a variable's value, and the values of a job or a module
    run come from people (an overlay file's text, a server name, a console command), so
    `{{ lookup('pipe', ...) }}` in one would run on this machine. Tagged, it stays text.
    (AWX marks launch-time extra_vars unsafe itself: ALLOW_JINJA_IN_EXTRA_VARS.)"""


def _unsafe_text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    # Every Jinja delimiter starts with '{'. Only such strings are tagged: ansible resolves
    # an !unsafe scalar's type from its text, quotes or not ("0644" would become a number),
    # and no number, boolean or null is written with a '{'.
    if "{" in value:
        return dumper.represent_scalar("!unsafe", value, style='"')
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style='"')


def _plain_keys(dumper: yaml.SafeDumper, value: dict) -> yaml.MappingNode:
    """Keys stay plain strings (variable names); only values are tagged."""
    return yaml.MappingNode("tag:yaml.org,2002:map", [
        (yaml.ScalarNode("tag:yaml.org,2002:str", str(key), style='"'),
         dumper.represent_data(item)) for key, item in value.items()])


UnsafeVarsDumper.add_representer(str, _unsafe_text)
UnsafeVarsDumper.add_representer(dict, _plain_keys)


def runner_envvars() -> dict[str, str]:
    """Environment of every ansible-runner call: this project's config, host keys checked."""
    # ansible-runner finds ansible-playbook & co. through the run's PATH: put the ones
    # installed beside this interpreter (the project's virtualenv) first, even when it is not
    # activated. Only the run's environment changes: this process's is shared by threads.
    venv_bin = str(Path(sys.executable).parent)
    # ansible-runner sets ANSIBLE_HOST_KEY_CHECKING=False unless the caller sets it, which
    # would let a changed (or spoofed) host key through despite ansible.cfg.
    return {"ANSIBLE_CONFIG": str(PROJECT_DIR / "ansible.cfg"),
            "ANSIBLE_HOST_KEY_CHECKING": "True",
            "PATH": venv_bin + os.pathsep + os.environ.get("PATH", "")}


# ssh binds a control socket at DIR/<10-char hash>.<16 random chars>, and a Unix socket's
# path holds at most 107 bytes: a directory longer than this cannot hold one.
CONTROL_DIR_MAX = 107 - len("/0123456789.0123456789abcdef")


def ssh_control_dir(state_dir: Path) -> Path:
    """The UI's private directory for SSH control sockets: STATE_DIR/ssh-control, or, when
    that path is too long for a socket, a directory in the temp dir named after it."""
    directory = state_dir / "ssh-control"
    if len(os.fsencode(directory)) > CONTROL_DIR_MAX:
        digest = hashlib.sha256(os.fsencode(state_dir)).hexdigest()[:16]
        directory = Path(tempfile.gettempdir()) / f"left4me-ssh-{digest}"
    directory.mkdir(mode=0o700, exist_ok=True)
    found = directory.lstat()
    # In a shared temp dir someone else could have made it first: use only our own, private.
    if not stat.S_ISDIR(found.st_mode) or found.st_uid != os.geteuid() \
            or found.st_mode & 0o077:
        raise RuntimeError(f"{directory} is not a private directory of this user (mode 0700):"
                           " remove it, or run the UI with a shorter LEFT4ME_UI_STATE_DIR")
    return directory


def write_vars(path: Path, values: dict) -> None:
    """A run's variables as a new 0600 YAML file (never an existing one), every value that
    could hold a template tagged !unsafe."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        yaml.dump(values, handle, Dumper=UnsafeVarsDumper, allow_unicode=True)


@dataclass(frozen=True)
class ModuleRun:
    ok: bool
    message: str  # why it failed ("" when ok)
    result: dict = field(default_factory=dict)  # the module's return values


FAILED_EVENTS = ("runner_on_failed", "runner_on_unreachable")


class HostResults:
    """The event collector of ad-hoc runs: each host's task result, as a ModuleRun.

    Keeps nothing else: its handler returns False, so runner writes no per-event files."""

    def __init__(self) -> None:
        self.by_host: dict[str, ModuleRun] = {}
        self.last: ModuleRun | None = None

    def event(self, event: dict) -> bool:
        data = event.get("event_data") or {}
        res = data.get("res") or {}
        kind = event.get("event")
        if kind == "runner_on_ok":
            found = ModuleRun(True, "", res)
        elif kind in FAILED_EVENTS:
            found = ModuleRun(False, str(res.get("msg") or res.get("stderr") or "failed").strip(),
                              res)
        else:
            return False
        self.last = found
        if data.get("host") is not None:
            self.by_host[data["host"]] = found
        return False


def _ignore_status(_status: dict, runner_config: object = None) -> None:
    """Stores nothing: the 'starting' status carries the whole environment."""


def _never_cancel() -> bool:
    # Always passed: without one, runner installs signal handlers (main thread only).
    return False


def _run_adhoc(inventory: Path, pattern: str, module: str, module_args: str | None, *,
               cmdline: str, envvars: dict[str, str], variables: dict | None = None,
               timeout: int | None = None) -> tuple[HostResults, str]:
    """One `ansible PATTERN -m MODULE` run in a private (0700) temp directory: each host's
    result and runner's status (successful, failed, timeout...)."""
    results = HostResults()
    with tempfile.TemporaryDirectory(prefix="left4me-ui-module-") as private_data_dir:
        if variables is not None:
            (Path(private_data_dir) / "env").mkdir()
            write_vars(Path(private_data_dir) / "env" / "extravars", variables)
        runner = ansible_runner.run(
            private_data_dir=private_data_dir, inventory=str(inventory), host_pattern=pattern,
            module=module, module_args=module_args, cmdline=cmdline, envvars=envvars,
            quiet=True, timeout=timeout, event_handler=results.event,
            status_handler=_ignore_status, cancel_callback=_never_cancel)
    return results, runner.status


MODULE_ARGS_VAR = "left4me_module_args"


def _named_args(args: dict, host_args: dict[str, str] | None) -> str:
    """The module's arguments as JSON (which -a accepts, so no quoting can split them) that
    only name variables: the values themselves, and the hosts' own expressions."""
    return json.dumps({
        **{key: f"{{{{ {MODULE_ARGS_VAR}[{key!r}] }}}}" for key in args},
        **{key: f"{{{{ {expression} }}}}" for key, expression in (host_args or {}).items()}})


def run_module(core, host: str, module: str, args: dict, timeout: int, *,
               host_args: dict[str, str] | None = None, check: bool = False) -> ModuleRun:
    """One ad-hoc module run on one inventory host (become), as `ansible HOST -b -m ...`.

    The values go to ansible as variables in the run's private (0700) directory, tagged
    !unsafe so nothing in them is rendered (ansible renders templates in ad-hoc module
    arguments, and a value may be a console command someone typed); the arguments only
    name those variables. `timeout` bounds the whole run, SSH included. `host_args` maps
    further arguments to expressions of the host's own variables (written here, never by
    a person: e.g. "overlays_workshop_api_url | default('...')"), which ansible renders, a
    vaulted one too. `check`: the module's check mode (a read).
    """
    # ansible-runner points SSH's control sockets into each run's temporary directory, so
    # every read would pay a new SSH login; a directory of the UI's own (0700) lets reads
    # that follow each other (a console session, a followed log) reuse one connection.
    control_dir = ssh_control_dir(core.settings.state_dir)
    results, status = _run_adhoc(
        core.settings.inventory, host, module, _named_args(args, host_args),
        cmdline="--become --check" if check else "--become",
        envvars={**runner_envvars(), "ANSIBLE_SSH_CONTROL_PATH_DIR": str(control_dir)},
        variables={MODULE_ARGS_VAR: args}, timeout=timeout)
    if results.last is not None:
        return results.last
    if status == "timeout":
        return ModuleRun(False, f"no answer from {host} within {timeout} s")
    if status == "successful":  # ansible matched no host: nothing ran
        return ModuleRun(False, f"{host} is not a host of the inventory")
    return ModuleRun(False, f"{module} did not run on {host} (runner {status})")


@dataclass(frozen=True)
class Reachability:
    host: str
    reachable: bool
    detail: str


def check_reachability(inventory: Path, timeout: int = 10) -> list[Reachability]:
    """Log in to every host (SSH, become) with ansible.builtin.ping and report who answered."""
    results, _status = _run_adhoc(inventory, "all", "ansible.builtin.ping", None,
                                  cmdline=f"--become --timeout {timeout}",
                                  envvars=runner_envvars())
    answers = {host: Reachability(host, run.ok, "answered" if run.ok else run.message)
               for host, run in results.by_host.items()}
    return [answers.get(h, Reachability(h, False, "no answer"))
            for h in inventory_hosts(inventory)]


def inventory_hosts(inventory: Path) -> list[str]:
    """Every host the inventory names, sorted."""
    return load_inventory(inventory).hosts


def load_inventory(path: Path) -> Inventory:
    """Every host of the inventory with its variables (ansible-inventory --list)."""
    out, err = ansible_runner.get_inventory(
        action="list", inventories=[str(path)], response_format="json",
        envvars=runner_envvars(), quiet=True,
    )
    listing = out if isinstance(out, dict) else json.loads(out or "{}")
    if not listing:
        raise RuntimeError(f"could not read inventory {path}: {err}")
    return Inventory(dict(listing.get("_meta", {}).get("hostvars", {})))


class EventSink(Protocol):
    """Where a playbook run's events go (jobs' callbacks): ansible-runner's event shape."""

    def event(self, data: dict) -> bool: ...

    def status(self, data: dict, runner_config: object = None) -> None: ...

    def cancel(self) -> bool: ...


@dataclass(frozen=True)
class PlaybookRun:
    status: str  # runner's: successful, failed, canceled, timeout...
    rc: int | None


def run_playbook(private_dir: Path, playbooks_dir: Path, playbook: str, inventory: Path,
                 host: str, sink: EventSink, finished: Callable[[], None]) -> PlaybookRun:
    """`ansible-playbook PLAYBOOK --limit HOST` with private_dir as runner's private data
    directory (its env/extravars written by the caller, with write_vars); every event to
    `sink`, which may cancel between steps; `finished` runs as soon as ansible ends."""
    result = ansible_runner.run(
        private_data_dir=str(private_dir),
        project_dir=str(playbooks_dir),
        playbook=str(playbooks_dir / playbook),
        inventory=str(inventory),
        limit=host,
        envvars=runner_envvars(),
        suppress_env_files=True,
        quiet=True,
        ident="run",
        event_handler=sink.event,
        status_handler=sink.status,
        cancel_callback=sink.cancel,
        finished_callback=lambda _runner: finished(),
    )
    return PlaybookRun(result.status, result.rc)
