"""ansible-runner adapter: inventory reads and ad-hoc runs, with no Streamlit in sight."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

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


@dataclass(frozen=True)
class Reachability:
    host: str
    reachable: bool
    detail: str


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


@dataclass(frozen=True)
class ModuleRun:
    ok: bool
    message: str  # why it failed ("" when ok)
    result: dict = field(default_factory=dict)  # the module's return values


MODULE_ARGS_VAR = "left4me_module_args"


def run_module(core, host: str, module: str, args: dict, timeout: int, *,
               host_args: dict[str, str] | None = None, check: bool = False) -> ModuleRun:
    """One ad-hoc module run on one inventory host (become), as `ansible HOST -b -m ...`.

    The values go to ansible as variables in the run's private (0700) directory, tagged
    !unsafe so nothing in them is rendered; the arguments (JSON, which -a accepts, so no
    quoting can split them) only name those variables. `timeout` bounds the whole run, SSH
    included. `host_args` maps further arguments to expressions of the host's own variables
    (written here, never by a person: e.g. "overlays_workshop_api_url | default('...')"),
    which ansible renders, a vaulted one too. `check`: the module's check mode (a read).
    """
    found: dict[str, ModuleRun] = {}
    # ansible-runner points SSH's control sockets into each run's temporary directory, so
    # every read would pay a new SSH login; a directory of the UI's own (0700) lets reads
    # that follow each other (a console session, a followed log) reuse one connection.
    control_dir = ssh_control_dir(core.settings.state_dir)
    envvars = {**runner_envvars(), "ANSIBLE_SSH_CONTROL_PATH_DIR": str(control_dir)}

    def collect(event: dict) -> bool:
        data = event.get("event_data") or {}
        res = data.get("res") or {}
        kind = event.get("event")
        if kind == "runner_on_ok":
            found["run"] = ModuleRun(True, "", res)
        elif kind in ("runner_on_failed", "runner_on_unreachable"):
            message = str(res.get("msg") or res.get("stderr") or "failed").strip()
            found["run"] = ModuleRun(False, message, res)
        return False  # nothing of the events is kept on disk beyond the run

    with tempfile.TemporaryDirectory(prefix="left4me-ui-module-") as private_data_dir:
        # ansible renders templates in ad-hoc module arguments: the values (a console command
        # someone typed) go in as variables tagged !unsafe, and the arguments only name them.
        (Path(private_data_dir) / "env").mkdir()
        with open(Path(private_data_dir) / "env" / "extravars", "w") as handle:
            yaml.dump({MODULE_ARGS_VAR: args}, handle, Dumper=UnsafeVarsDumper,
                      allow_unicode=True)
        runner = ansible_runner.run(
            private_data_dir=private_data_dir, inventory=str(core.settings.inventory),
            host_pattern=host, module=module,
            module_args=json.dumps({
                **{key: f"{{{{ {MODULE_ARGS_VAR}[{key!r}] }}}}" for key in args},
                **{key: f"{{{{ {expression} }}}}" for key, expression in
                   (host_args or {}).items()}}),
            cmdline="--become --check" if check else "--become", envvars=envvars,
            quiet=True, timeout=timeout,
            event_handler=collect,
            status_handler=lambda _status, runner_config=None: None,
        )
    if "run" in found:
        return found["run"]
    if runner.status == "timeout":
        return ModuleRun(False, f"no answer from {host} within {timeout} s")
    if runner.status == "successful":  # ansible matched no host: nothing ran
        return ModuleRun(False, f"{host} is not a host of the inventory")
    return ModuleRun(False, f"{module} did not run on {host} (runner {runner.status})")


def inventory_hosts(inventory: Path) -> list[str]:
    """Every host the inventory names, sorted."""
    return load_inventory(inventory).hosts


def check_reachability(inventory: Path, timeout: int = 10) -> list[Reachability]:
    """Log in to every host (SSH, become) with ansible.builtin.ping and report who answered."""
    results: dict[str, Reachability] = {}
    with tempfile.TemporaryDirectory(prefix="left4me-ui-") as private_data_dir:
        ansible_runner.run(
            private_data_dir=private_data_dir, inventory=str(inventory), host_pattern="all",
            module="ansible.builtin.ping", cmdline=f"--become --timeout {timeout}",
            envvars=runner_envvars(), quiet=True,
            event_handler=lambda event: _record(event, results) or True,
        )
    hosts = inventory_hosts(inventory)
    return [results.get(h, Reachability(h, False, "no answer")) for h in hosts]


def _record(event: dict, results: dict[str, Reachability]) -> None:
    data = event.get("event_data", {})
    host = data.get("host")
    outcome = {
        "runner_on_ok": True,
        "runner_on_unreachable": False,
        "runner_on_failed": False,
    }.get(event.get("event", ""))
    if host is None or outcome is None:
        return
    result = data.get("res", {})
    detail = "answered" if outcome else str(result.get("msg", "failed")).strip()
    results[host] = Reachability(host, outcome, detail)


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
