"""The UI's unit and environment as the ui_service role renders them with its defaults.

What an operator relies on: the unit caps the UI's memory and tasks, comes back after any
crash without ever giving up for good, explains every directive, and the UI believes a
forwarded client address only from the proxy the operator named.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]
ROLE = PROJECT / "collections/ansible_collections/left4me/l4d2/roles/ui_service"


# Ansible's templating runs in a child process: in this one it would leave controller
# state behind that changes how later in-process module tests report their warnings.
RENDER = """
import json, sys
from pathlib import Path
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template
role, template, overrides, project = json.loads(sys.stdin.read())
variables = {"ansible_managed": "Ansible managed", "playbook_dir": project + "/playbooks"}
for source in ("defaults/main.yml", "vars/main.yml"):
    for name, value in yaml.safe_load((Path(role) / source).read_text()).items():
        variables[name] = trust_as_template(value) if isinstance(value, str) else value
variables.update(overrides)
templar = Templar(loader=DataLoader(), variables=variables)
print(templar.template(trust_as_template((Path(role) / "templates" / template).read_text())),
      end="")
"""


def render(template: str, **overrides: object) -> str:
    """A template of role ui_service with its defaults and vars, and ``overrides``."""
    done = subprocess.run([sys.executable, "-c", RENDER], cwd=PROJECT, capture_output=True,
                          text=True, check=True, timeout=120,
                          input=json.dumps([str(ROLE), template, overrides, str(PROJECT)]))
    return done.stdout


def directives(unit: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in unit.splitlines():
        if re.match(r"^[A-Za-z_]+=", line):
            name, value = line.split("=", 1)
            found.setdefault(name, []).append(value)
    return found


def test_the_unit_caps_memory_and_tasks():
    unit = directives(render("left4me-ui.service.j2"))
    assert unit["MemoryMax"] == ["2G"] and unit["TasksMax"] == ["1024"]
    # a job's ansible-playbook killed for memory does not take the UI down with it
    assert unit["OOMPolicy"] == ["continue"]
    tuned = directives(render("left4me-ui.service.j2", ui_service_memory_max="3G",
                              ui_service_tasks_max=300))
    assert tuned["MemoryMax"] == ["3G"] and tuned["TasksMax"] == ["300"]


def test_restarts_back_off_and_never_stop_for_good():
    unit = directives(render("left4me-ui.service.j2"))
    assert unit["Restart"] == ["always"]
    # no start limit: repeated kills (an attacker's, say) cannot leave the UI down
    assert unit["StartLimitIntervalSec"] == ["0"] and "StartLimitBurst" not in unit
    assert unit["RestartSec"] == ["2"] and unit["RestartMaxDelaySec"] == ["60s"]
    assert int(unit["RestartSteps"][0]) > 1


def test_every_directive_says_why():
    lines = render("left4me-ui.service.j2").splitlines()
    for number, line in enumerate(lines):
        if not re.match(r"^[A-Za-z]+=", line):
            continue
        block_start = number
        while block_start > 0 and re.match(r"^[A-Za-z]+=", lines[block_start - 1]):
            block_start -= 1
        assert block_start > 0 and lines[block_start - 1].startswith("#"), line


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_knows_every_directive(tmp_path):
    unit = render("left4me-ui.service.j2", ui_service_exec_start="/bin/true",
                  ui_service_user="root", ui_service_group="root")
    path = tmp_path / "left4me-ui.service"
    path.write_text(unit)
    verify = subprocess.run(["systemd-analyze", "verify", "--man=no", str(path)],
                            capture_output=True, text=True)
    version = int(re.match(r"systemd (\d+)", subprocess.run(
        ["systemd-analyze", "--version"], capture_output=True, text=True).stdout).group(1))
    # The hosts run systemd 257; these came with 254 (an older systemd ignores them).
    newer = {"RestartSteps", "RestartMaxDelaySec"} if version < 254 else set()
    unknown = [line for line in verify.stderr.splitlines()
               if ("Unknown key" in line or "Failed to parse" in line)
               and not any(f"'{key}'" in line for key in newer)]
    assert not unknown, verify.stderr


def test_no_proxy_is_trusted_unless_the_operator_names_it():
    environment = directives(render("environment.j2"))
    # uvicorn's own default believes X-Forwarded-For from any local process
    assert environment["FORWARDED_ALLOW_IPS"] == [""]
    named = directives(render("environment.j2", ui_service_trusted_proxies="127.0.0.1"))
    assert named["FORWARDED_ALLOW_IPS"] == ["127.0.0.1"]


def test_no_traceback_reaches_a_browser_of_the_service():
    assert directives(render("environment.j2"))["STREAMLIT_CLIENT_SHOW_ERROR_DETAILS"] == ["none"]
