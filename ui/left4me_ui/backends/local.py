"""The default job backend: ansible-runner in this process (LEFT4ME_UI_JOB_BACKEND=local).

* secrets reach the run as a 0600 extravars file in a 0700 per-job directory
  (STATE_DIR/jobs/ID), never as env, argv or an `extravars=` dict (runner puts that on
  the command line); the directory is removed as soon as ansible ends, and again after
  the run (jobs.mark_interrupted removes those a killed process left);
* the run's environment is runner.runner_envvars (host keys checked).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from left4me_ui.core import Core
from left4me_ui.jobs import CANCELLED, FAILED, SUCCEEDED, Job, Outcome
from left4me_ui.runner import EventSink, run_playbook, write_vars


def private_dir(core: Core, job: Job) -> Path:
    """The job's runner directory, new and empty (0700), with its env/ (0700)."""
    jobs_dir = core.settings.jobs_dir
    jobs_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(jobs_dir, 0o700)
    path = jobs_dir / str(job.id)
    shutil.rmtree(path, ignore_errors=True)
    (path / "env").mkdir(parents=True, mode=0o700)
    os.chmod(path, 0o700)
    return path


# Test hook: called with the private directory just before it is removed.
inspect_private_dir: Callable[[Path], None] | None = None


def remove_private_dir(path: Path) -> None:
    if inspect_private_dir is not None and path.exists():
        inspect_private_dir(path)
    shutil.rmtree(path, ignore_errors=True)


class LocalRunner:
    """jobs.JobBackend: ansible-runner in this process, secrets in a 0600 file."""

    def execute(self, core: Core, job: Job, secrets: dict, sink: EventSink) -> Outcome:
        directory = private_dir(core, job)
        try:
            write_vars(directory / "env" / "extravars", {**job.extravars, **secrets})
            result = run_playbook(directory, core.settings.playbooks_dir, job.playbook,
                                  core.settings.inventory, job.host, sink,
                                  finished=lambda: remove_private_dir(directory))
        finally:
            remove_private_dir(directory)
        state = {"successful": SUCCEEDED, "canceled": CANCELLED}.get(result.status, FAILED)
        return Outcome(state, result.rc,
                       f"ansible-playbook ended with {result.status} (rc {result.rc}); see the log")
