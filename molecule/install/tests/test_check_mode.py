"""A converged host is left alone: a check-mode run of site.yml reports no change, and it
names the kernel settings this host cannot apply instead of failing on them."""

import os
import re
import subprocess

import pytest


@pytest.fixture(scope="module")
def check_run(host):
    name = host.backend.get_hostname()
    run = subprocess.run(
        ["ansible-playbook", "--check", "--diff", "-i", os.environ["MOLECULE_INVENTORY_FILE"],
         "--limit", name, "playbooks/site.yml"],
        cwd=os.environ["MOLECULE_PROJECT_DIRECTORY"], capture_output=True, text=True,
        check=False, env={**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"},
    )
    return name, run


def test_check_mode_on_converged_host_reports_no_change(check_run):
    name, run = check_run
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    recap = re.search(rf"^{re.escape(name)}\s+:.*$", run.stdout, re.MULTILINE)
    assert recap, run.stdout[-3000:]
    assert "changed=0" in recap.group(0) and "failed=0" in recap.group(0), recap.group(0)


def test_unenforceable_ptrace_scope_is_reported_by_name(host, check_run):
    _, run = check_run
    live = host.file("/proc/sys/kernel/yama/ptrace_scope")
    if live.exists and live.content_string.strip() == "2":
        assert "NOT ENFORCED kernel.yama.ptrace_scope" not in run.stdout
        return
    # The report is one YAML message, possibly wrapped: compare without line breaks.
    output = " ".join(run.stdout.split())
    assert "NOT ENFORCED kernel.yama.ptrace_scope=2" in output, run.stdout[-3000:]
