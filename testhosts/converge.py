"""Run site.yml against a molecule scenario's hosts from inside its verify step."""

from __future__ import annotations

import os
import shlex
import tempfile

import ansible_runner

# PLAY RECAP's counter names, and the key ansible-runner's stats keep each under.
RECAP_COUNTERS = {"ok": "ok", "changed": "changed", "unreachable": "dark",
                  "failed": "failures", "skipped": "skipped", "rescued": "rescued",
                  "ignored": "ignored"}


def run_site(host_name: str, *options: str) -> dict[str, int]:
    """ansible-playbook site.yml on one host of the scenario; returns its recap counters."""
    project = os.environ["MOLECULE_PROJECT_DIRECTORY"]
    with tempfile.TemporaryDirectory(prefix="left4me-site-") as private:
        run = ansible_runner.run(
            private_data_dir=private, project_dir=project,
            playbook=os.path.join(project, "playbooks", "site.yml"),
            inventory=os.environ["MOLECULE_INVENTORY_FILE"], limit=host_name,
            cmdline=shlex.join(options), quiet=True,
            # molecule forces colour for its own output; the tail below is read by people
            envvars={"ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1"},
        )
        # Both live in the private dir's artifacts: read them before it goes.
        output = run.stdout.read()[-6000:]
        stats = run.stats
    assert run.rc == 0, output
    assert stats and host_name in stats["processed"], output
    return {counter: stats[key].get(host_name, 0) for counter, key in RECAP_COUNTERS.items()}


def assert_check_mode_changes_nothing(host_name: str) -> None:
    counters = run_site(host_name, "--check", "--diff")
    assert counters["changed"] == 0 and counters["failed"] == 0, counters
