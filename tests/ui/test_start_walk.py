"""A server's Start, walked from the page to the ansible-runner call, read from the real call
stacks: the files a newcomer follows (issue 22's budget: at most 6, each entered once)."""

from __future__ import annotations

import traceback
from pathlib import Path

from left4me_ui import jobs, runner, servers
from tests.ui.conftest import UI
from tests.ui.test_pages import make_blueprint


class Reached(Exception):
    """ansible_runner.run was called: the walk ends there."""


def walk(stack: list[traceback.FrameSummary], start: str) -> list[str]:
    """The ui/ files of a stack from the first under `start` down, each run of one file
    named once."""
    files: list[str] = []
    for frame in stack:
        path = Path(frame.filename)
        if UI not in path.parents:
            continue  # Streamlit, the standard library, this test
        name = path.relative_to(UI).as_posix()
        if not files and not name.startswith(start):
            continue  # ui/app.py routing to the page, before the page runs
        if not files or files[-1] != name:
            files.append(name)
    return files


def test_start_crosses_six_files_each_once(core, alice, monkeypatch):
    server_id, _ = servers.create(core, alice.actor, "coop2", "alpha",
                                  make_blueprint(core, alice).id)
    with core.db.connect() as conn:  # the create job ran; only Start's job is left queued
        conn.execute("UPDATE jobs SET state = ? WHERE server_id = ?", (jobs.SUCCEEDED, server_id))

    stacks: list[list[traceback.FrameSummary]] = []
    enqueue = jobs.enqueue

    def recording_enqueue(*args, **kwargs):
        stacks.append(traceback.extract_stack())
        return enqueue(*args, **kwargs)

    def recording_run(**_kwargs):
        stacks.append(traceback.extract_stack())
        raise Reached

    monkeypatch.setattr(jobs, "enqueue", recording_enqueue)
    monkeypatch.setattr(runner.ansible_runner, "run", recording_run)
    app = alice.app("servers")
    next(b for b in app.button if b.label == "Start").click().run()
    assert not app.exception
    job = jobs.run_next(core)  # what the worker thread does with the queued job

    assert job is not None and job.kind == servers.KIND_START
    # The page's click queues the job (its stack ends where jobs.enqueue is called) ...
    request = walk(stacks[0], "pages/")
    assert request == ["pages/servers.py", "frame.py", "left4me_ui/servers.py"]
    # ... and the worker, in jobs.py where enqueue left it, runs it through the backend.
    worker = walk(stacks[1], "left4me_ui/jobs.py")
    assert worker == ["left4me_ui/jobs.py", "left4me_ui/backends/local.py",
                      "left4me_ui/runner.py"]
    files = request + worker
    assert len(files) <= 6 and len(set(files)) == len(files), files
