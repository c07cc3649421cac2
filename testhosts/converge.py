"""Run site.yml against a molecule scenario's hosts from inside its verify step."""

from __future__ import annotations

import os
import re
import subprocess


def run_site(host_name: str, *options: str) -> dict[str, int]:
    """ansible-playbook site.yml on one host of the scenario; returns its recap counters."""
    run = subprocess.run(
        ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], "--limit", host_name,
         *options, "playbooks/site.yml"],
        cwd=os.environ["MOLECULE_PROJECT_DIRECTORY"], capture_output=True, text=True,
        check=False,
        # molecule forces colour for its own output; the recap is parsed here
        env={**os.environ, "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1"},
    )
    output = run.stdout[-4000:] + run.stderr[-2000:]
    assert run.returncode == 0, output
    recap = re.search(rf"^{re.escape(host_name)}\s+:(.*)$", run.stdout, re.MULTILINE)
    assert recap, output
    return {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", recap.group(1))}


def assert_check_mode_changes_nothing(host_name: str) -> None:
    counters = run_site(host_name, "--check", "--diff")
    assert counters["changed"] == 0 and counters["failed"] == 0, counters
