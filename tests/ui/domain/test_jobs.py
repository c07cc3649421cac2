"""The job engine with real ansible-runner runs (local connection): order, cancel, restart."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from domain_helpers import with_settings

from left4me_ui import boot, jobs
from left4me_ui.backends import local
from left4me_ui.core import Core
from left4me_ui.runner import load_inventory, write_vars

SLEEP_PLAYBOOK = """---
- name: Sleep a little on the target
  hosts: l4d2_hosts
  gather_facts: false
  tasks:
    - name: Sleep
      ansible.builtin.command: sleep {{ seconds | default(1) }}
      changed_when: false
    - name: Say done
      ansible.builtin.debug:
        msg: done on {{ inventory_hostname }}
"""


@pytest.fixture
def local_core(core: Core, tmp_path: Path) -> Core:
    """Two inventory hosts, both this machine over the local connection."""
    inventory = tmp_path / "local.yml"
    inventory.write_text(
        "l4d2_hosts:\n  hosts:\n"
        + "".join(f"    {name}:\n      ansible_connection: local\n"
                  f"      ansible_python_interpreter: {sys.executable}\n"
                  for name in ("host-a", "host-b")))
    playbooks = tmp_path / "playbooks"
    playbooks.mkdir()
    (playbooks / "sleep.yml").write_text(SLEEP_PLAYBOOK)
    with_settings(core, inventory=inventory, playbooks_dir=playbooks)
    core.inventory_loader = load_inventory
    return core


def _enqueue(core: Core, actor, host: str, seconds: float = 0) -> int:
    with core.db.connect() as conn:
        return jobs.enqueue(conn, core, actor, kind="test sleep", host=host,
                            target=f"{host} sleep", playbook="sleep.yml",
                            extravars={"seconds": seconds})


def _wait(core: Core, actor, job_ids: list[int], timeout: float = 90) -> list[jobs.Job]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [jobs.get(core, actor, j) for j in job_ids]
        if all(j.finished for j in found):
            return found
        time.sleep(0.2)
    raise AssertionError(f"jobs {job_ids} did not finish: {found}")


def test_a_run_records_progress_events_and_outcome(local_core, alice):
    job_id = _enqueue(local_core, alice, "host-a")
    assert jobs.get(local_core, alice, job_id).expected_tasks == 2  # counted from the playbook
    job = jobs.run_next(local_core)
    assert (job.id, job.state, job.rc, job.error) == (job_id, jobs.SUCCEEDED, 0, None)
    assert (job.done_tasks, job.progress) == (2, 1.0)
    log = jobs.events(local_core, alice, job_id)
    assert [e.seq for e in log] == list(range(1, len(log) + 1))
    assert any("done on host-a" in e.text for e in log)
    assert not any(e.host == "host-b" for e in log)  # limited to the job's host
    assert list(local_core.settings.jobs_dir.iterdir()) == []  # private dir removed
    # The next job of this kind expects as many tasks as this one reported.
    assert jobs.get(local_core, alice, _enqueue(local_core, alice, "host-a")).expected_tasks == 2


@pytest.mark.parametrize(("done", "expected", "shown"), [
    (0, 7, "0 of 7 tasks"), (7, 7, "7 of 7 tasks"),
    (13, 7, "13 tasks"),  # a step per download: more than a playbook's count foretold
])
def test_a_job_that_did_more_tasks_than_expected_says_how_many(done, expected, shown):
    job = jobs.Job(1, "overlay build", None, "alice", "alpha", None, "alpha/overlay x",
                   "workshop_overlay.yml", {}, None, jobs.RUNNING, None, None, expected, done,
                   False, False, None, 0.0, 0.0, None)
    assert job.tasks_text == shown


def test_jobs_on_one_host_run_one_after_the_other(local_core, alice):
    local_core.clock = time.time  # real start and finish times to compare
    first_a = _enqueue(local_core, alice, "host-a", 2)
    second_a = _enqueue(local_core, alice, "host-a", 0)
    only_b = _enqueue(local_core, alice, "host-b", 0)
    worker = jobs.Worker(local_core, threads=2)
    local_core.worker = worker
    worker.start()
    try:
        a1, a2, b = _wait(local_core, alice, [first_a, second_a, only_b])
    finally:
        worker.stop()
    assert {a1.state, a2.state, b.state} == {jobs.SUCCEEDED}
    assert a2.started_at >= a1.finished_at  # never at once on host-a
    assert b.started_at < a1.finished_at  # host-b did not wait for host-a


def test_cancel_a_running_job(local_core, alice):
    job_id = _enqueue(local_core, alice, "host-a", 60)
    worker = jobs.Worker(local_core, threads=1)
    worker.start()
    try:
        deadline = time.monotonic() + 60
        while jobs.get(local_core, alice, job_id).state != jobs.RUNNING:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        time.sleep(1)
        started = time.monotonic()
        jobs.cancel(local_core, alice, job_id)
        (job,) = _wait(local_core, alice, [job_id], timeout=30)
    finally:
        worker.stop()
    assert job.state == jobs.CANCELLED
    assert time.monotonic() - started < 20  # not the 60 s the task would take
    assert "run the action again" in job.error
    assert list(local_core.settings.jobs_dir.iterdir()) == []


def test_cancel_a_queued_job_and_who_may(local_core, alice, bob):
    job_id = _enqueue(local_core, alice, "host-a")
    with pytest.raises(jobs.NotFound):
        jobs.cancel(local_core, bob, job_id)
    assert jobs.cancel(local_core, alice, job_id).state == jobs.CANCELLED
    assert jobs.run_next(local_core) is None


def test_a_restart_marks_running_jobs_interrupted(local_core, alice, config, clock):
    job_id = _enqueue(local_core, alice, "host-a")
    assert jobs.claim(local_core).id == job_id  # running when the process "dies"
    restarted = boot.open_core(config, clock=clock)
    assert jobs.mark_interrupted(restarted) == 1
    job = jobs.get(restarted, alice, job_id)
    assert job.state == jobs.INTERRUPTED and "UI stopped" in job.error
    assert job.finished_at is not None


def test_a_restart_removes_the_private_dirs_a_killed_process_left(local_core, alice, config,
                                                                   clock):
    job_id = _enqueue(local_core, alice, "host-a")
    job = jobs.claim(local_core)  # running when the process is killed: no finished callback
    private = local.private_dir(local_core, job)
    write_vars(private / "env" / "extravars", {"rcon_password": "hunter2"})
    (private / "artifacts" / "run").mkdir(parents=True)
    (private / "artifacts" / "run" / "command").write_text("LEFT4ME_UI_STEAM_API_KEY=k")
    stray = local_core.settings.jobs_dir / "7"  # an older crash's, its job long finished
    (stray / "env").mkdir(parents=True)
    (stray / "env" / "extravars").write_text("rcon_password: older\n")
    restarted = boot.open_core(config, clock=clock)
    assert jobs.mark_interrupted(restarted) == 1
    assert jobs.get(restarted, alice, job_id).state == jobs.INTERRUPTED
    assert list(local_core.settings.jobs_dir.iterdir()) == []  # no password left on disk


def test_retention_prunes_old_logs_and_keeps_rows(local_core, alice, clock):
    job_id = _enqueue(local_core, alice, "host-a")
    job = jobs.claim(local_core)
    with local_core.db.connect() as conn:
        conn.execute("INSERT INTO job_events (job_id, seq, event, text, at) VALUES"
                     " (?, 1, 'verbose', 'a log line', ?)", (job_id, clock()))
        jobs._finish(conn, local_core, job, jobs.SUCCEEDED, 0, None)
    assert jobs.events(local_core, alice, job_id)
    clock.advance((local_core.settings.job_retention_days - 1) * 86400)
    assert jobs.prune(local_core) == 0
    clock.advance(2 * 86400)
    assert jobs.prune(local_core) == 1
    assert jobs.events(local_core, alice, job_id) == []
    job = jobs.get(local_core, alice, job_id)
    assert job.state == jobs.SUCCEEDED and job.log_pruned


ECHO_PLAYBOOK = """\
- name: Write what the job was given
  hosts: l4d2_hosts
  gather_facts: false
  tasks:
    - name: Write the value and the name as text
      ansible.builtin.copy:
        content: "{{ value }}|{{ names | join(',') }}|{{ mode }}"
        dest: "{{ out }}"
        mode: "0600"
"""


def test_a_template_someone_typed_is_passed_as_text_never_run(local_core, alice, tmp_path):
    """A job's values come from people (a blueprint's server name, an overlay file): a
    Jinja template in one reaches the playbook as the text typed, and runs nothing here."""
    (local_core.settings.playbooks_dir / "echo.yml").write_text(ECHO_PLAYBOOK)
    out, witness = tmp_path / "written.txt", tmp_path / "pwned"
    typed = f"{{{{ lookup('pipe', 'touch {witness}') }}}}{{{{ 6 * 7 }}}}"
    with local_core.db.connect() as conn:
        job_id = jobs.enqueue(conn, local_core, alice, kind="test echo", host="host-a",
                              target="host-a echo", playbook="echo.yml",
                              extravars={"value": typed, "names": ["{% raw %}x", "plain"],
                                         "mode": "0644", "out": str(out)})
    job = jobs.run_next(local_core)
    assert job.id == job_id and job.state == jobs.SUCCEEDED, job.error
    assert out.read_text() == f"{typed}|{{% raw %}}x,plain|0644"
    assert not witness.exists(), "the typed lookup ran on the UI's machine"


WAIT_PLAYBOOK = """---
- name: Wait by retrying, printing at each check
  hosts: l4d2_hosts
  gather_facts: false
  tasks:
    - name: Check on the counter
      ansible.builtin.shell: |
        n=$(( $(cat {{ counter }} 2>/dev/null || echo 0) + 1 )); echo "$n" > {{ counter }}
        echo "check $n"
      register: check
      changed_when: false
      until: check.stdout == 'check 3'
      retries: 5
      delay: 0
      no_log: "{{ hide | default(false) }}"
"""


@pytest.mark.parametrize("hide", [False, True], ids=["shown", "no_log"])
def test_a_retried_task_shows_what_each_check_printed(local_core, alice, tmp_path, hide):
    (local_core.settings.playbooks_dir / "wait.yml").write_text(WAIT_PLAYBOOK)
    with local_core.db.connect() as conn:
        job_id = jobs.enqueue(conn, local_core, alice, kind="test wait", host="host-a",
                              target="host-a wait", playbook="wait.yml",
                              extravars={"counter": str(tmp_path / "counter"), "hide": hide})
    job = jobs.run_next(local_core)
    assert job.state == jobs.SUCCEEDED
    checks = [e for e in jobs.events(local_core, alice, job_id)
              if e.task == "Check on the counter" and e.event != "playbook_on_task_start"]
    printed = [[line for line in e.text.splitlines() if line.startswith("check ")]
               for e in checks]
    if hide:
        assert printed == [[], [], []]  # the retries and the result, nothing of the output
    else:
        assert [e.event for e in checks] == ["runner_retry", "runner_retry", "runner_on_ok"]
        assert printed == [["check 1"], ["check 2"], ["check 3"]]
