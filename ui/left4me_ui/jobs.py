"""Jobs: every change on a host is a playbook run, queued in the database.

The queue and its worker: enqueue, claim, run, cancel, prune, and the callbacks a run
feeds (shaped after AWX's RunnerCallback):
* the event handler stores a compact row per event and returns False (runner writes no
  per-event files); the status handler stores nothing (its first call carries the env);
* the cancel callback reads `cancel_requested` (at most every 0.5 s).

Worker threads live in the UI process, not in a page script: closing a browser stops
nothing. Jobs on one host run one after another; a UI restart marks jobs it finds
running as interrupted and removes the private directories a killed process left.

The run itself is a JobBackend's: backends.local.LocalRunner (ansible-runner in this
process, the default) or backends.awx.AwxBackend, which launches an AWX / Automation
Platform job template and follows its job events; both feed the same callbacks, so pages
see the same progress, log and outcome.

Job kinds, their finish hooks and secret providers, and the backends are what the
composition root (boot.py) declares; the engine finds them on the core (`core.wiring`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import yaml

from left4me_ui import audit, authz
from left4me_ui.authz import Actor, NotFound
from left4me_ui.core import Core
from left4me_ui.runner import EventSink

QUEUED, RUNNING = "queued", "running"
SUCCEEDED, FAILED, CANCELLED, INTERRUPTED = "succeeded", "failed", "cancelled", "interrupted"
FINISHED = (SUCCEEDED, FAILED, CANCELLED, INTERRUPTED)
# Events that close one task on one host: the progress bar counts these.
TASK_RESULTS = ("runner_on_ok", "runner_on_failed", "runner_on_skipped", "runner_on_unreachable")
MAX_EVENT_TEXT = 8000
_ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")
_HOST_KEY_SIGNS = ("Host key verification failed", "REMOTE HOST IDENTIFICATION HAS CHANGED",
                   "host key for", "No ED25519 host key is known", "No RSA host key is known")


@dataclass(frozen=True)
class Job:
    id: int
    kind: str
    actor_id: int | None
    actor_name: str
    host: str
    server_id: int | None
    target: str
    playbook: str
    extravars: dict
    secrets_from: str | None
    state: str
    rc: int | None
    error: str | None
    expected_tasks: int
    done_tasks: int
    cancel_requested: bool
    log_pruned: bool
    blueprint_revision: int | None
    created_at: float
    started_at: float | None
    finished_at: float | None

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    @property
    def progress(self) -> float:
        """0..1 for st.progress: finished jobs are full, running ones tasks done / expected."""
        if self.state == SUCCEEDED:
            return 1.0
        return min(1.0, self.done_tasks / max(1, self.expected_tasks))

    @property
    def tasks_text(self) -> str:
        """"3 of 7 tasks"; a run that did more than expected (a step per download, say) says
        how many it did, never "13 of 7"."""
        if self.done_tasks > self.expected_tasks:
            return f"{self.done_tasks} tasks"
        return f"{self.done_tasks} of {self.expected_tasks} tasks"


@dataclass(frozen=True)
class JobEvent:
    seq: int
    event: str
    host: str | None
    task: str | None
    text: str
    at: float


def _job(row: sqlite3.Row) -> Job:
    values = dict(row)
    values["extravars"] = json.loads(values["extravars"])
    values["cancel_requested"] = bool(values["cancel_requested"])
    values["log_pruned"] = bool(values["log_pruned"])
    return Job(**values)


# --- enqueue, read, cancel (called by domain actions and pages) ------------------------------


def expected_tasks(conn: sqlite3.Connection, kind: str, playbook_path: Path,
                   alike: dict[str, object] | None = None, first: int | None = None) -> int:
    """Tasks the run will report: as many as the last success of this kind and playbook
    whose extravars hold the same values at the keys of `alike` (overlay.yml builds files
    and scripts, which report different counts); with none, `first`, else counted."""
    where, values = "", []
    for key, value in (alike or {}).items():  # keys are the caller's names, never typed
        where += " AND json_extract(extravars, ?) IS ?"
        values += [f"$.{key}", value]
    row = conn.execute("SELECT done_tasks FROM jobs WHERE kind = ? AND playbook = ? AND"
                       f" state = ? AND done_tasks > 0{where} ORDER BY id DESC LIMIT 1",
                       (kind, playbook_path.name, SUCCEEDED, *values)).fetchone()
    if row is not None:
        return int(row["done_tasks"])
    if first is not None:
        return first
    try:
        plays = yaml.safe_load(playbook_path.read_text()) or []
    except (OSError, yaml.YAMLError):
        return 1
    count = sum((1 if play.get("gather_facts", True) else 0)
                + sum(len(play.get(key) or []) for key in ("pre_tasks", "tasks", "post_tasks"))
                for play in plays if isinstance(play, dict))
    return max(1, count)


def enqueue(conn: sqlite3.Connection, core: Core, actor: Actor, *, kind: str, host: str,
            target: str, playbook: str, extravars: dict, server_id: int | None = None,
            secrets_from: str | None = None, blueprint_revision: int | None = None,
            alike: tuple[str, ...] = (), first_tasks: int | None = None) -> int:
    """Queue a run in the caller's transaction (with its audit row); returns the job id.

    Its progress bar expects as many tasks as the last success of the same kind and
    playbook alike at the extravars keys `alike`; with none yet, `first_tasks` or counted.

    extravars are stored and shown: never put a secret in them (use secrets_from).
    A kind boot.py declares runs only its own playbooks, with only its own variables.
    """
    declared = core.wiring.kinds.get(kind)
    if declared is not None and playbook not in declared.playbooks:
        raise ValueError(f"a {kind!r} job runs {' or '.join(declared.playbooks)}, not {playbook}")
    undeclared = sorted(set(extravars) - declared.variables) if declared is not None else []
    if undeclared:
        raise ValueError(f"a {kind!r} job takes {', '.join(sorted(declared.variables))};"
                         f" not {', '.join(undeclared)}")
    now = core.clock()
    cursor = conn.execute(
        "INSERT INTO jobs (kind, actor_id, actor_name, host, server_id, target, playbook,"
        " extravars, secrets_from, expected_tasks, blueprint_revision, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (kind, actor.user_id, actor.name, host, server_id, target, playbook,
         json.dumps(extravars), secrets_from,
         expected_tasks(conn, kind, core.settings.playbooks_dir / playbook,
                        {key: extravars.get(key) for key in alike}, first_tasks),
         blueprint_revision, now))
    job_id = int(cursor.lastrowid)
    audit.record(conn, now, actor.name, kind, target, "queued", f"job {job_id}")
    if core.worker is not None:
        # After the caller's commit: a worker woken now waits on the write lock until then.
        core.worker.wake()
    return job_id


def _visible(conn: sqlite3.Connection, actor: Actor, row: sqlite3.Row | None) -> Job:
    if row is None:
        raise NotFound("no such job")
    owner = None
    if row["server_id"] is not None:
        server = conn.execute("SELECT owner_id FROM servers WHERE id = ?",
                              (row["server_id"],)).fetchone()
        owner = None if server is None else server["owner_id"]
    if not authz.may_see_job(actor, row["actor_id"], owner):
        raise NotFound("no such job")
    return _job(row)


def get(core: Core, actor: Actor, job_id: int) -> Job:
    with core.db.connect() as conn:
        me = authz.current(conn, actor)
        return _visible(conn, me, conn.execute("SELECT * FROM jobs WHERE id = ?",
                                               (job_id,)).fetchone())


def events(core: Core, actor: Actor, job_id: int, after_seq: int = 0, limit: int = 1000
           ) -> list[JobEvent]:
    """The job's log lines after `after_seq` (pages poll with the last seq they drew)."""
    with core.db.connect() as conn:
        me = authz.current(conn, actor)
        _visible(conn, me, conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone())
        rows = conn.execute("SELECT seq, event, host, task, text, at FROM job_events WHERE"
                            " job_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                            (job_id, after_seq, limit)).fetchall()
        return [JobEvent(**dict(r)) for r in rows]


def history(core: Core, actor: Actor, *, server_id: int | None = None, limit: int = 200
            ) -> list[Job]:
    """Newest first: one server's jobs, or every job the actor may see (admins: all)."""
    with core.db.connect() as conn:
        me = authz.current(conn, actor)
        if server_id is not None:
            server = conn.execute("SELECT owner_id FROM servers WHERE id = ?",
                                  (server_id,)).fetchone()
            if server is None or not authz.may_view(me, server["owner_id"]):
                raise NotFound("no such server")
            rows = conn.execute("SELECT * FROM jobs WHERE server_id = ? ORDER BY id DESC"
                                " LIMIT ?", (server_id, limit))
        elif me.is_admin:
            rows = conn.execute("SELECT * FROM jobs ORDER BY id DESC LIMIT ?", (limit,))
        else:
            rows = conn.execute(
                "SELECT * FROM jobs WHERE actor_id = ? OR server_id IN (SELECT id FROM servers"
                " WHERE owner_id = ?) ORDER BY id DESC LIMIT ?",
                (me.user_id, me.user_id, limit))
        return [_job(r) for r in rows.fetchall()]


def cancel(core: Core, actor: Actor, job_id: int) -> Job:
    """A queued job is cancelled at once; a running one at runner's next check (~1 s)."""
    with core.db.connect() as conn:
        me = authz.current(conn, actor)
        job = _visible(conn, me, conn.execute("SELECT * FROM jobs WHERE id = ?",
                                              (job_id,)).fetchone())
        if job.state == QUEUED:
            _finish(conn, core, job, CANCELLED, None, "cancelled before it started")
        elif job.state == RUNNING:
            conn.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ?", (job_id,))
        audit.record(conn, core.clock(), me.name, "cancel job", f"job {job_id}",
                     "ok" if not job.finished else "nothing to cancel")
        return _job(conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone())


# --- the engine ----------------------------------------------------------------------------


def mark_interrupted(core: Core) -> int:
    """At start-up: jobs a previous process left running did not finish; say so. Their
    private directories (extravars with RCON passwords, runner's artifacts with the whole
    environment) are removed, and so is anything else in jobs_dir no running job owns:
    a killed process never ran its finished callback."""
    with core.db.connect() as conn:
        rows = conn.execute("SELECT * FROM jobs WHERE state = ?", (RUNNING,)).fetchall()
        for row in rows:
            _finish(conn, core, _job(row), INTERRUPTED, None,
                    "the UI stopped while this job ran; the host may be half-changed:"
                    " run the action again")
            shutil.rmtree(core.settings.jobs_dir / str(row["id"]), ignore_errors=True)
        running = {str(r["id"]) for r in conn.execute("SELECT id FROM jobs WHERE state = ?",
                                                      (RUNNING,))}
    _sweep_private_dirs(core.settings.jobs_dir, keep=running)
    return len(rows)


def _sweep_private_dirs(jobs_dir: Path, keep: set[str]) -> None:
    """Remove every entry of jobs_dir but those named in keep (never following a link)."""
    try:
        found = list(os.scandir(jobs_dir))
    except FileNotFoundError:
        return
    for entry in found:
        if entry.name in keep:
            continue
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)


def claim(core: Core) -> Job | None:
    """The oldest queued job whose host has no running job, now marked running."""
    with core.db.connect() as conn:
        row = conn.execute(
            "SELECT * FROM jobs WHERE state = ? AND host NOT IN (SELECT host FROM jobs WHERE"
            " state = ?) ORDER BY id LIMIT 1", (QUEUED, RUNNING)).fetchone()
        if row is None:
            return None
        conn.execute("UPDATE jobs SET state = ?, started_at = ? WHERE id = ?",
                     (RUNNING, core.clock(), row["id"]))
        return _job(conn.execute("SELECT * FROM jobs WHERE id = ?", (row["id"],)).fetchone())


def _finish(conn: sqlite3.Connection, core: Core, job: Job, state: str, rc: int | None,
            error: str | None) -> None:
    conn.execute("UPDATE jobs SET state = ?, rc = ?, error = ?, finished_at = ? WHERE id = ?",
                 (state, rc, error, core.clock(), job.id))
    declared = core.wiring.kinds.get(job.kind)
    if declared is not None and declared.finish is not None:
        declared.finish(conn, core, job, state)
    audit.record(conn, core.clock(), job.actor_name, job.kind, job.target, state,
                 f"job {job.id}" + (f": {error}" if error else ""))


def _waiting_output(name: str, res: dict) -> str:
    """What a task that waits by retrying (`until`) printed at this check, e.g. the lines a
    build script wrote since the last one (playbooks/tasks/overlay-script.yml), so the log
    follows a long wait as it goes. ansible's default callback only shows them with -vv; a
    failed last check shows its whole result anyway."""
    if name not in ("runner_retry", "runner_on_ok") or not res.get("attempts") \
            or res.get("_ansible_no_log"):
        return ""
    lines = res.get("stdout_lines")
    if not isinstance(lines, list):
        return ""
    return _ANSI_RE.sub("", "\n".join(str(line) for line in lines)).strip("\n")


class _Run:
    """The EventSink of one job's run (either backend's), writing to the job's rows."""

    def __init__(self, core: Core, job: Job) -> None:
        self.core, self.job = core, job
        self.seq = 0
        self.done = 0
        self.error: str | None = None
        self._cancel_checked = 0.0
        self._cancelled = False

    def event(self, data: dict) -> bool:
        name = data.get("event", "")
        event_data = data.get("event_data") or {}
        text = _ANSI_RE.sub("", str(data.get("stdout") or "")).strip()
        waited = _waiting_output(name, event_data.get("res") or {})
        if waited:
            text = f"{text}\n{waited}" if text else waited
        host = event_data.get("host")
        task = event_data.get("task")
        if name in TASK_RESULTS:
            self.done += 1
            self._note_failure(name, host, task, event_data.get("res") or {})
        if text or name in TASK_RESULTS:
            self.seq += 1
            with self.core.db.connect() as conn:
                conn.execute("INSERT INTO job_events (job_id, seq, event, host, task, text, at)"
                             " VALUES (?, ?, ?, ?, ?, ?, ?)",
                             (self.job.id, self.seq, name, host, task, text[:MAX_EVENT_TEXT],
                              self.core.clock()))
                conn.execute("UPDATE jobs SET done_tasks = ? WHERE id = ?",
                             (self.done, self.job.id))
        return False  # runner writes no per-event files

    def _note_failure(self, name: str, host: str | None, task: str | None, res: dict) -> None:
        if self.error is not None or name not in ("runner_on_failed", "runner_on_unreachable"):
            return
        if res.get("_ansible_no_log"):
            message = "the output is hidden because it may hold a secret (no_log)"
        else:
            message = str(res.get("msg") or res.get("stderr") or "").strip()
        if name == "runner_on_unreachable" and any(s in message for s in _HOST_KEY_SIGNS):
            self.error = (
                f"SSH host key check failed for {host}: the key it presented does not match"
                " the known_hosts entry (a reinstalled host, or someone in between). Verify"
                " the new key out of band and update known_hosts; nothing was changed."
                f" ssh said: {message}")
        elif name == "runner_on_unreachable":
            self.error = f"{host} is unreachable: {message}"
        else:
            self.error = f"task '{task}' failed on {host}: {message}"

    def status(self, data: dict, runner_config: object = None) -> None:
        """Stores nothing: the 'starting' status carries the whole environment."""

    def cancel(self) -> bool:
        if self._cancelled:
            return True
        now = time.monotonic()
        if now - self._cancel_checked >= 0.5:
            self._cancel_checked = now
            with self.core.db.connect() as conn:
                row = conn.execute("SELECT cancel_requested FROM jobs WHERE id = ?",
                                   (self.job.id,)).fetchone()
                self._cancelled = bool(row and row["cancel_requested"])
        return self._cancelled


@dataclass(frozen=True)
class Outcome:
    """How a backend's run ended: a job state, ansible's rc if known, and a one-line reason
    shown when the run failed without a failed task saying why."""

    state: str
    rc: int | None
    summary: str


class JobBackend(Protocol):
    """Runs one claimed job to its end: `job.playbook` on `job.host` with `job.extravars` and
    `secrets` (never stored). Feeds every event, in ansible-runner's shape (`event`,
    `event_data` with `host`, `task`, `res`, and `stdout`), to `sink.event`; asks
    `sink.cancel()` between steps and stops the run when it says so."""

    def execute(self, core: Core, job: Job, secrets: dict, sink: EventSink) -> Outcome: ...


def backend_for(core: Core) -> JobBackend:
    """The backend the settings choose (LEFT4ME_UI_JOB_BACKEND) among boot.py's."""
    return core.wiring.backends[core.settings.job_backend](core.settings)


def run(core: Core, job: Job) -> Job:
    """Run a claimed job to its end and record the outcome; returns the finished job."""
    run_state = _Run(core, job)
    state, rc = FAILED, None
    try:
        secrets = {}
        if job.secrets_from is not None:
            secrets = core.wiring.secret_providers[job.secrets_from](core, job)
        outcome = backend_for(core).execute(core, job, secrets, run_state)
        state, rc = outcome.state, outcome.rc
        if state == FAILED and run_state.error is None:
            run_state.error = outcome.summary
        if state == CANCELLED:
            run_state.error = ("cancelled: ansible stopped between steps; the module validates"
                               " before it changes anything, so run the action again to"
                               " converge the server")
    except Exception as exc:  # the job row must end, whatever broke
        run_state.error = f"the job could not run: {exc}"
    with core.db.connect() as conn:
        conn.execute("UPDATE jobs SET done_tasks = ? WHERE id = ?", (run_state.done, job.id))
        _finish(conn, core, job, state, rc, None if state == SUCCEEDED else run_state.error)
        return _job(conn.execute("SELECT * FROM jobs WHERE id = ?", (job.id,)).fetchone())


def run_next(core: Core) -> Job | None:
    """Claim and run one job in this thread (tests; the Worker does this in a loop)."""
    job = claim(core)
    return None if job is None else run(core, job)


def prune(core: Core) -> int:
    """Drop the logs of jobs that finished more than job_retention_days ago; rows stay."""
    cutoff = core.clock() - core.settings.job_retention_days * 86400
    with core.db.connect() as conn:
        old = [r["id"] for r in conn.execute(
            "SELECT id FROM jobs WHERE finished_at IS NOT NULL AND finished_at < ? AND"
            " log_pruned = 0", (cutoff,))]
        for job_id in old:
            conn.execute("DELETE FROM job_events WHERE job_id = ?", (job_id,))
            conn.execute("UPDATE jobs SET log_pruned = 1 WHERE id = ?", (job_id,))
        return len(old)


class Worker:
    """N threads taking queued jobs, one per host at a time; started once per process."""

    def __init__(self, core: Core, threads: int | None = None, prune_every: float = 3600
                 ) -> None:
        self.core = core
        self.count = threads or core.settings.job_workers
        self.prune_every = prune_every
        self._stop = threading.Event()
        self._wake = threading.Condition()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for index in range(self.count):
            thread = threading.Thread(target=self._loop, args=(index,), daemon=True,
                                      name=f"left4me-job-worker-{index}")
            thread.start()
            self._threads.append(thread)

    def wake(self) -> None:
        with self._wake:
            self._wake.notify_all()

    def stop(self, timeout: float = 30) -> None:
        self._stop.set()
        self.wake()
        for thread in self._threads:
            thread.join(timeout)

    def _loop(self, index: int) -> None:
        last_prune = 0.0
        while not self._stop.is_set():
            if index == 0 and time.monotonic() - last_prune > self.prune_every:
                last_prune = time.monotonic()
                with contextlib.suppress(sqlite3.Error):
                    prune(self.core)
            try:
                job = claim(self.core)
            except sqlite3.Error:
                job = None
            if job is not None:
                run(self.core, job)
                self.wake()  # a job on this host may be waiting for this one
                continue
            with self._wake:
                self._wake.wait(timeout=1.0)
