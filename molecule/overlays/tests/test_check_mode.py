"""A converged host is left alone: a check-mode run of site.yml reports no change."""

import os
import re
import subprocess


def changed_tasks(output: str) -> list[str]:
    """The task headers followed by a `changed:` line, to say what check mode would change."""
    found, task = [], ""
    for line in output.splitlines():
        if line.startswith("TASK ["):
            task = line
        elif line.startswith("changed:") and task not in found:
            found.append(task)
    return found


def test_check_mode_on_converged_host_reports_no_change(host):
    name = host.backend.get_hostname()
    project = os.environ["MOLECULE_PROJECT_DIRECTORY"]
    run = subprocess.run(
        ["ansible-playbook", "--check", "--diff", "-i", os.environ["MOLECULE_INVENTORY_FILE"],
         "--limit", name, "playbooks/site.yml"],
        cwd=project, capture_output=True, text=True, check=False,
        # molecule forces colour for its own output; the recap is parsed here
        env={**os.environ, "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1"},
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    recap = re.search(rf"^{re.escape(name)}\s+:.*$", run.stdout, re.MULTILINE)
    assert recap, run.stdout[-3000:]
    assert "changed=0" in recap.group(0) and "failed=0" in recap.group(0), (
        recap.group(0), changed_tasks(run.stdout))
