"""site.yml through ansible-runner's transmit | worker | process, the pipeline AWX runs.

AWX's controller transmits a job (the project, inventory and settings, zipped into a stream),
an execution node runs `ansible-runner worker` on that stream, and the controller processes
the events the worker streams back. Receptor only carries the bytes; here pipes do.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from engine_support import PROJECT, Converged, write_inventory

# What of a checkout a project run needs: its ansible.cfg (collections_path = collections),
# the playbooks, the collection in place, and the stand-ins the demo settings deploy.
PROJECT_CONTENT = ("ansible.cfg", "playbooks", "collections", "standins")
CHECKOUT_LEFTOVERS = shutil.ignore_patterns("output", "__pycache__", ".pytest_cache", "*.pyc")


def project_checkout(destination: Path) -> Path:
    destination.mkdir(parents=True)
    for entry in PROJECT_CONTENT:
        source = PROJECT / entry
        if source.is_dir():
            shutil.copytree(source, destination / entry, ignore=CHECKOUT_LEFTOVERS)
        else:
            shutil.copy2(source, destination / entry)
    return destination


def runner_environment() -> dict[str, str]:
    """The worker's environment as on an execution node: no ANSIBLE_* of this session."""
    return {name: value for name, value in os.environ.items()
            if not name.startswith("ANSIBLE_")}


def job_events(artifacts: Path) -> list[dict]:
    return [json.loads(path.read_text()) for path in sorted((artifacts / "job_events").iterdir())]


@pytest.mark.testhost
def test_transmit_worker_process_runs_site_yml_and_changes_nothing(
        converged_from_artifact: Converged, tmp_path: Path) -> None:
    first = converged_from_artifact.result
    assert first.returncode == 0, "the shared host did not converge: " + first.stdout[-2000:]

    job = tmp_path / "job"
    project_checkout(job / "project")
    write_inventory(job / "inventory", converged_from_artifact.host)
    (job / "env").mkdir()
    # ansible-runner turns host-key checking off unless told otherwise; AWX sets it too.
    (job / "env/envvars").write_text(yaml.safe_dump({"ANSIBLE_HOST_KEY_CHECKING": "True"}))

    env = runner_environment()
    transmit = subprocess.Popen(
        ["ansible-runner", "transmit", str(job), "-p", "playbooks/site.yml", "--ident", "noop"],
        stdout=subprocess.PIPE, env=env)
    worker = subprocess.Popen(
        ["ansible-runner", "worker", "--private-data-dir", str(tmp_path / "execution-node")],
        stdin=transmit.stdout, stdout=subprocess.PIPE, env=env)
    transmit.stdout.close()  # the worker alone holds the stream now
    processed = subprocess.run(
        ["ansible-runner", "process", str(job), "--ident", "noop"],
        stdin=worker.stdout, capture_output=True, text=True, env=env, timeout=900)
    worker.stdout.close()
    assert processed.returncode == 0, processed.stderr
    assert transmit.wait(timeout=60) == 0
    assert worker.wait(timeout=60) == 0

    artifacts = job / "artifacts/noop"
    status = (artifacts / "status").read_text()
    stdout = (artifacts / "stdout").read_text()
    assert (status, (artifacts / "rc").read_text()) == ("successful", "0"), stdout[-4000:]
    events = job_events(artifacts)
    stats = next(event["event_data"] for event in events if event["event"] == "playbook_on_stats")
    host_name = converged_from_artifact.host.name
    assert stats["ok"].get(host_name, 0) > 0
    assert stats["changed"] == {}, stdout[-4000:]
    assert stats["failures"] == {} and stats["dark"] == {}
    # The run happened on the worker, and the controller got every task's events back.
    assert any(event["event"] == "runner_on_ok" for event in events)
