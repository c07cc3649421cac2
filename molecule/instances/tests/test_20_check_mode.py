"""A converged host is left alone: a check-mode run of site.yml reports no change."""

from __future__ import annotations

import re

from conftest import PLATFORM, ansible


def changed_tasks(output: str) -> list[str]:
    task, changed = "", []
    for line in output.splitlines():
        if line.startswith(("TASK [", "RUNNING HANDLER [")):
            task = line
        elif line.startswith("changed:"):
            changed.append(f"{task} {line}")
    return changed


def test_check_mode_on_converged_host_reports_no_change():
    run = ansible("ansible-playbook", "--check", "--diff", "--limit", PLATFORM,
                  "playbooks/site.yml")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    recap = re.search(rf"^{re.escape(PLATFORM)}\s+:.*$", run.stdout, re.MULTILINE)
    assert recap, run.stdout[-3000:]
    assert "changed=0" in recap.group(0) and "failed=0" in recap.group(0), (
        recap.group(0), changed_tasks(run.stdout))
