"""The AWX job backend against a stand-in AWX API on 127.0.0.1 (fake_awx): what the UI shows.

Offline, these prove the requests have the API's documented shape and that the UI's job
row, progress and log come out as with a local run. What only a live AWX can prove is in
ui/left4me_ui/README.md (Jobs on AWX).
"""

from __future__ import annotations

import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from domain_helpers import with_settings
from fake_awx import TOKEN, FakeAwx, Scenario, playbook_events

from left4me_ui import blueprints, jobs, servers, settings
from left4me_ui.backends.awx import AwxBackend, AwxClient, AwxError
from left4me_ui.backends.local import LocalRunner
from left4me_ui.core import Core

CONFIGURE = Path(__file__).resolve().parents[3] / "awx/configure.yml"
SERVER_VARS = {"left4me_server_name": "coop2", "left4me_server_state": "started",
               "left4me_server_settings": {"port": 27035}}
RCON = "rcon-pa55word-9f3b"


def awx_core(core: Core, tmp_path: Path, fake: FakeAwx, token: str = TOKEN,
             template: str = "left4me UI server") -> Core:
    token_file = tmp_path / "awx-token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    return with_settings(core, job_backend="awx", awx_url=fake.url, awx_token_file=token_file,
                         awx_templates=(("server.yml", template),), awx_poll_seconds=0.01)


def enqueue(core: Core, actor, secrets_from: str | None = None) -> int:
    with core.db.connect() as conn:
        return jobs.enqueue(conn, core, actor, kind="server start", host="alpha",
                            target="alpha/coop2", playbook="server.yml",
                            extravars=SERVER_VARS, secrets_from=secrets_from)


def stored_bytes(core: Core) -> bytes:
    """Everything the UI keeps on disk: the database and its WAL."""
    return b"".join(path.read_bytes() for path in core.settings.state_dir.rglob("*")
                    if path.is_file() and path.name != "secret")


@pytest.fixture
def rcon_secret(core: Core, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setitem(core.wiring.secret_providers, "test rcon",
                        lambda _core, _job: {"left4me_server_rcon_password": RCON})
    return "test rcon"


def test_an_awx_run_shows_progress_and_log_to_done(core, tmp_path, alice):
    with FakeAwx(Scenario()) as fake:
        awx_core(core, tmp_path, fake)
        job_id = enqueue(core, alice)
        job = jobs.run_next(core)
    assert (job.id, job.state, job.rc, job.error) == (job_id, jobs.SUCCEEDED, 0, None)
    assert (job.done_tasks, job.progress) == (2, 1.0)
    log = jobs.events(core, alice, job_id)
    assert [e.seq for e in log] == list(range(1, len(log) + 1))
    texts = [e.text for e in log]
    assert texts[0] == f"AWX job 42 launched from template 'left4me UI server':" \
                       f" {fake.url}/#/jobs/playbook/42/output"
    # Every event arrived once, in order, colour codes gone, including the recap AWX stored
    # after it already said "successful" (event_processing_finished was still false).
    assert texts[1:] == ["PLAY [Converge one left4me game server] ****",
                         "TASK [Check the server] ****", "ok: [alpha]",
                         "TASK [Apply the server's settings and state] ****",
                         "changed: [alpha]",
                         "PLAY RECAP ****\r\nalpha : ok=2 changed=1 failed=0"]
    assert [e.host for e in log if e.event == "runner_on_ok"] == ["alpha", "alpha"]
    assert fake.violations == []
    launch = [body for method, path, _q, body in fake.requests if path.endswith("/launch/")]
    assert launch == [{"extra_vars": SERVER_VARS, "limit": "alpha"}]
    # The events came in pages (3 per page here) by following `next`.
    pages = [q for _m, path, q, _b in fake.requests if path.endswith("/job_events/")]
    assert any(q.get("page") == "2" for q in pages)


def test_an_event_awx_stores_late_is_not_skipped(core, tmp_path, alice):
    # Event 4 ("ok: [alpha]") is stored after 5 and 6: the log still has it, in order.
    with FakeAwx(Scenario(late={4})) as fake:
        awx_core(core, tmp_path, fake)
        job_id = enqueue(core, alice)
        job = jobs.run_next(core)
    assert (job.state, job.done_tasks) == (jobs.SUCCEEDED, 2)
    assert [e.text for e in jobs.events(core, alice, job_id)][2:5] == [
        "TASK [Check the server] ****", "ok: [alpha]",
        "TASK [Apply the server's settings and state] ****"]
    assert fake.violations == []


def test_a_failed_awx_job_shows_the_failed_task(core, tmp_path, alice):
    scenario = Scenario(statuses=["running", "failed"], stored=[3, 7],
                        events=playbook_events(failed_msg="port 27035 is taken"))
    with FakeAwx(scenario) as fake:
        awx_core(core, tmp_path, fake)
        enqueue(core, alice)
        job = jobs.run_next(core)
    assert job.state == jobs.FAILED
    assert job.error == ("task 'Apply the server's settings and state' failed on alpha:"
                         " port 27035 is taken")
    assert any("FAILED! => port 27035 is taken" in e.text for e in jobs.events(core, alice, job.id))
    assert fake.violations == []


def test_an_awx_error_without_a_failed_task_says_what_awx_said(core, tmp_path, alice):
    scenario = Scenario(statuses=["pending", "error"], stored=[0, 0],
                        explanation="Previous Task Failed: project update 7 failed")
    with FakeAwx(scenario) as fake:
        awx_core(core, tmp_path, fake)
        enqueue(core, alice)
        job = jobs.run_next(core)
    assert (job.state, job.rc) == (jobs.FAILED, None)
    assert job.error == "AWX job 42 ended error: Previous Task Failed: project update 7 failed"
    assert fake.violations == []


def test_a_refused_token_fails_clearly_and_leaks_nowhere(core, tmp_path, alice, capfd, caplog):
    wrong = "expired-token-00c0ffee"
    with FakeAwx(Scenario()) as fake:
        awx_core(core, tmp_path, fake, token=wrong)
        enqueue(core, alice)
        job = jobs.run_next(core)
    assert job.state == jobs.FAILED
    assert job.error == ("the job could not run: AWX refused the token (401: Authentication"
                         " credentials were not provided.); check that LEFT4ME_UI_AWX_TOKEN_FILE"
                         " holds a valid, unexpired OAuth2 token")
    assert fake.paths("POST") == []  # nothing launched
    assert fake.violations == []
    shown = (job.error + "".join(e.text for e in jobs.events(core, alice, job.id))
             + "".join(capfd.readouterr()) + caplog.text)
    assert wrong not in shown
    assert wrong.encode() not in stored_bytes(core)


def test_cancel_a_running_awx_job(core, tmp_path, alice):
    with FakeAwx(Scenario(hold_until_cancelled=True)) as fake:
        awx_core(core, tmp_path, fake)
        job_id = enqueue(core, alice)
        runner = threading.Thread(target=jobs.run_next, args=(core,), daemon=True)
        runner.start()
        deadline = time.monotonic() + 30
        while len(jobs.events(core, alice, job_id)) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert jobs.get(core, alice, job_id).state == jobs.RUNNING
        jobs.cancel(core, alice, job_id)
        runner.join(30)
    job = jobs.get(core, alice, job_id)
    assert job.state == jobs.CANCELLED
    assert job.error.startswith("cancelled:")
    assert fake.paths("POST")[-1] == "/api/v2/jobs/42/cancel/"
    assert "asked AWX to cancel job 42" in [e.text for e in jobs.events(core, alice, job_id)]
    assert fake.violations == []


def test_cancel_of_a_job_awx_already_finished_keeps_its_outcome(core, tmp_path, alice):
    with FakeAwx(Scenario(statuses=["successful"], stored=[7])) as fake:
        awx_core(core, tmp_path, fake)
        job_id = enqueue(core, alice)
        claimed = jobs.claim(core)
        jobs.cancel(core, alice, job_id)  # running: cancel_requested, seen by the backend
        job = jobs.run(core, claimed)
    assert "/api/v2/jobs/42/cancel/" in fake.paths("POST")  # AWX answered 405
    assert (job.state, job.progress) == (jobs.SUCCEEDED, 1.0)
    assert ("AWX job 42 can no longer be cancelled (405): it has finished; its outcome stands"
            in [e.text for e in jobs.events(core, alice, job_id)])
    assert fake.violations == []


def test_the_rcon_password_goes_only_to_a_survey_password_question(core, tmp_path, alice,
                                                                    rcon_secret):
    survey = [{"variable": "left4me_server_rcon_password", "type": "password",
               "question_name": "RCON password", "required": True}]
    with FakeAwx(Scenario(survey=survey)) as fake:
        awx_core(core, tmp_path, fake)
        job_id = enqueue(core, alice, secrets_from=rcon_secret)
        job = jobs.run_next(core)
    assert job.state == jobs.SUCCEEDED, job.error
    assert fake.launched["extra_vars"]["left4me_server_rcon_password"] == "$encrypted$"
    assert jobs.get(core, alice, job_id).extravars == SERVER_VARS
    assert RCON.encode() not in stored_bytes(core)
    assert fake.violations == []


def ui_template_scenario() -> Scenario:
    """The stand-in AWX holding the template awx/configure.yml registers for the UI."""
    loader = type("PlaybookLoader", (yaml.SafeLoader,), {})
    loader.add_constructor("!unsafe", lambda load, node: load.construct_scalar(node))
    tasks = yaml.load(CONFIGURE.read_text(), Loader=loader)[0]["tasks"]
    template = next(task["awx.awx.job_template"] for task in tasks
                    if task.get("awx.awx.job_template", {}).get("name") == "left4me UI server")
    return Scenario(template_name=template["name"], survey=template["survey_spec"]["spec"],
                    ask_limit=template["ask_limit_on_launch"],
                    ask_variables=template["ask_variables_on_launch"])


def test_a_ui_server_runs_on_the_template_configure_yml_registers(core, tmp_path, alice):
    with FakeAwx(ui_template_scenario()) as fake:
        awx_core(core, tmp_path, fake)
        blueprint = blueprints.create(core, alice, "coop", ["demo-config"],
                                      blueprints.BlueprintSettings(hostname="Coop"))
        server_id, job_id = servers.create(core, alice, "coop2", "alpha", blueprint.id)
        job = jobs.run_next(core)
    assert (job.id, job.state) == (job_id, jobs.SUCCEEDED), job.error
    password = servers.rcon_password(core, alice, server_id)
    launch = next(body for _m, path, _q, body in fake.requests if path.endswith("/launch/"))
    assert launch["extra_vars"]["left4me_server_rcon_password"] == password  # AWX got it
    assert launch["extra_vars"]["left4me_server_name"] == "coop2"
    # What AWX keeps: the server's settings as sent, the password only as $encrypted$.
    assert (fake.launched["extra_vars"]["left4me_server_settings"]
            == launch["extra_vars"]["left4me_server_settings"])
    assert fake.launched["extra_vars"]["left4me_server_rcon_password"] == "$encrypted$"
    assert fake.launched["limit"] == "alpha"
    assert password.encode() not in stored_bytes(core)
    assert fake.violations == []


def test_a_secret_awx_would_store_in_clear_is_never_sent(core, tmp_path, alice, rcon_secret):
    with FakeAwx(Scenario(survey=[])) as fake:
        awx_core(core, tmp_path, fake)
        enqueue(core, alice, secrets_from=rcon_secret)
        job = jobs.run_next(core)
    assert job.state == jobs.FAILED
    assert ("AWX would store left4me_server_rcon_password in clear in the job's extra_vars:"
            " add a survey question of type password for it to job template"
            " 'left4me UI server' (nothing was launched)") in job.error
    assert fake.paths("POST") == []
    assert fake.violations == []


def test_a_template_that_ignores_the_limit_is_cancelled_at_once(core, tmp_path, alice):
    with FakeAwx(Scenario(ask_limit=False)) as fake:
        awx_core(core, tmp_path, fake)
        enqueue(core, alice)
        job = jobs.run_next(core)
    assert job.state == jobs.FAILED
    assert "AWX ignored limit at launch" in job.error
    assert "ask_limit_on_launch" in job.error
    assert fake.paths("POST") == ["/api/v2/job_templates/11/launch/", "/api/v2/jobs/42/cancel/"]
    assert fake.violations == []


def test_a_template_by_id_and_a_missing_one(core, tmp_path, alice):
    with FakeAwx(Scenario()) as fake:
        awx_core(core, tmp_path, fake, template="11")
        enqueue(core, alice)
        assert jobs.run_next(core).state == jobs.SUCCEEDED
        assert "/api/v2/job_templates/11/" in fake.paths("GET")
        with_settings(core, awx_templates=(("server.yml", "left4me gone"),))
        enqueue(core, alice)
        job = jobs.run_next(core)
    assert job.state == jobs.FAILED
    assert "AWX has 0 job templates named 'left4me gone'" in job.error
    assert fake.violations == []


def test_the_token_file_must_be_private(core, tmp_path, alice):
    with FakeAwx(Scenario()) as fake:
        awx_core(core, tmp_path, fake)
        core.settings.awx_token_file.chmod(0o644)
        enqueue(core, alice)
        job = jobs.run_next(core)
    assert "is mode 0644; other users could read it: chmod 0600" in job.error
    assert fake.requests == []


def test_settings_choose_the_backend(core, monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.startswith("LEFT4ME_UI_"):
            monkeypatch.delenv(name)
    assert settings.from_environment().job_backend == "local"
    assert isinstance(jobs.backend_for(core), LocalRunner)  # the default Settings
    monkeypatch.setenv("LEFT4ME_UI_JOB_BACKEND", "awx")
    with pytest.raises(ValueError, match="LEFT4ME_UI_AWX_URL"):
        settings.from_environment()
    monkeypatch.setenv("LEFT4ME_UI_AWX_URL", "https://awx.example.net/")
    monkeypatch.setenv("LEFT4ME_UI_AWX_TOKEN_FILE", str(tmp_path / "token"))
    monkeypatch.setenv("LEFT4ME_UI_AWX_TEMPLATES", "server.yml=left4me UI server, x.yml=12")
    config = settings.from_environment()
    assert (config.job_backend, config.awx_url, config.awx_token_file) == (
        "awx", "https://awx.example.net", tmp_path / "token")
    assert config.awx_templates == (("server.yml", "left4me UI server"), ("x.yml", "12"))
    assert isinstance(AwxBackend(config), AwxBackend)
    monkeypatch.setenv("LEFT4ME_UI_AWX_TEMPLATES", "server.yml")
    with pytest.raises(ValueError, match="PLAYBOOK=TEMPLATE"):
        settings.from_environment()
    monkeypatch.setenv("LEFT4ME_UI_JOB_BACKEND", "tower")
    with pytest.raises(ValueError, match="one of local, awx"):
        settings.from_environment()


def test_the_token_never_follows_a_redirect_or_a_foreign_link(core, tmp_path, alice):
    reached: list[str] = []

    class Elsewhere(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            reached.append(self.headers.get("Authorization", ""))
            self.send_response(302 if self.server is redirector else 200)
            self.send_header("Location", f"http://127.0.0.1:{other.server_address[1]}/api/v2/")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            """Quiet."""

    redirector = ThreadingHTTPServer(("127.0.0.1", 0), Elsewhere)
    other = ThreadingHTTPServer(("127.0.0.1", 0), Elsewhere)
    for server in (redirector, other):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        fake = FakeAwx(Scenario())
        fake.url = f"http://127.0.0.1:{redirector.server_address[1]}"
        awx_core(core, tmp_path, fake)
        enqueue(core, alice)
        job = jobs.run_next(core)
    finally:
        for server in (redirector, other):
            server.shutdown()
            server.server_close()
        fake.server.server_close()
    assert job.state == jobs.FAILED
    assert "AWX answered 302 redirecting to" in job.error
    assert reached == [f"Bearer {TOKEN}"]  # the controller only, never the other site
    client = AwxClient("https://awx.example.net", tmp_path / "awx-token")
    with pytest.raises(AwxError, match="another site"):
        client.absolute("https://elsewhere.example.net/api/v2/jobs/42/job_events/?page=2")
    assert client.absolute("/api/v2/jobs/42/job_events/?page=2") == (
        "https://awx.example.net/api/v2/jobs/42/job_events/?page=2")
