"""A stand-in AWX API on 127.0.0.1 for the AWX job backend's tests.

It answers only what AWX's API documents (awx/api/templates/api/*.md, /api/v2/ objects)
and notes every request that strays from that shape in `violations`: the method and path,
`Authorization: Bearer <token>`, `Accept: application/json`, JSON bodies with the launch
endpoint's fields. Responses have AWX's shapes: list pages with `count`, `next` (a
relative link with `page=`), `results`; a launch answer with `job` and `ignored_fields`;
job events with `counter`, `event`, `event_data`, `stdout`, `failed`; a job with `status`,
`failed`, `job_explanation`, `event_processing_finished`; 401 / 405 with `detail`.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOKEN = "awx-oauth2-token-5c1f0e7d9b"
FINAL = ("successful", "failed", "error", "canceled")
# What POST /api/v2/job_templates/{id}/launch/ accepts (AWX's JobLaunchSerializer).
LAUNCH_FIELDS = {"extra_vars", "limit", "inventory", "credentials", "job_type", "job_tags",
                 "skip_tags", "verbosity", "diff_mode", "scm_branch", "execution_environment",
                 "labels", "forks", "job_slice_count", "timeout", "instance_groups"}


def event(counter: int, name: str, stdout: str = "", task: str | None = None,
          host: str | None = "alpha", res: dict | None = None) -> dict:
    """One job event as GET /api/v2/jobs/{id}/job_events/ lists it."""
    data: dict = {"playbook": "playbooks/server.yml", "play": "Converge one left4me game server"}
    if task is not None:
        data["task"] = task
    if name.startswith("runner_on_"):
        data.update(host=host, res=res or {})
    return {"id": 5000 + counter, "type": "job_event", "counter": counter, "event": name,
            "event_data": data, "stdout": stdout, "failed": name == "runner_on_failed",
            "changed": False, "host_name": host if name.startswith("runner_on_") else "",
            "task": task or "", "start_line": counter, "end_line": counter + 1}


def playbook_events(failed_msg: str | None = None) -> list[dict]:
    """A server.yml run on alpha: play, two tasks on the host, recap."""
    task = "Apply the server's settings and state"
    last = (event(6, "runner_on_failed", f"\x1b[0;31mfatal: [alpha]: FAILED! => {failed_msg}"
                  "\x1b[0m", task, res={"msg": failed_msg})
            if failed_msg else
            event(6, "runner_on_ok", "\x1b[0;33mchanged: [alpha]\x1b[0m", task))
    return [
        event(1, "playbook_on_start"),
        event(2, "playbook_on_play_start", "\r\nPLAY [Converge one left4me game server] ****"),
        event(3, "playbook_on_task_start", "\r\nTASK [Check the server] ****", "Check the server"),
        event(4, "runner_on_ok", "\x1b[0;32mok: [alpha]\x1b[0m", "Check the server"),
        event(5, "playbook_on_task_start", f"\r\nTASK [{task}] ****", task),
        last,
        event(7, "playbook_on_stats", "\r\nPLAY RECAP ****\r\nalpha : ok=2 changed=1"
              f" failed={1 if failed_msg else 0}"),
    ]


@dataclass
class Scenario:
    """One job template and how the job it launches goes."""

    template_name: str = "left4me UI server"
    template_id: int = 11
    ask_limit: bool = True
    ask_variables: bool = True
    survey: list[dict] = field(default_factory=list)
    # Status at each GET of the job (the last one repeats) and how many events are stored
    # by then: AWX stores events after the playbook ends, so a final status may come first.
    statuses: list[str] = field(default_factory=lambda: ["pending", "running", "successful",
                                                         "successful"])
    stored: list[int] = field(default_factory=lambda: [0, 5, 6, 7])
    events: list[dict] = field(default_factory=playbook_events)
    late: set[int] = field(default_factory=set)  # counters stored only at the last step
    explanation: str = ""
    hold_until_cancelled: bool = False  # stays "running" until POST cancel
    max_page_size: int = 3  # small, so every run pages


class FakeAwx:
    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.requests: list[tuple[str, str, dict, object]] = []
        self.violations: list[str] = []
        self.launched: dict | None = None  # the job as AWX would store it
        self.job_id = 42
        self.step = -1
        self.cancelled = False
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                fake.handle(self, "GET")

            def do_POST(self) -> None:  # noqa: N802
                fake.handle(self, "POST")

            def do_PUT(self) -> None:  # noqa: N802
                fake.handle(self, "PUT")

            def do_DELETE(self) -> None:  # noqa: N802
                fake.handle(self, "DELETE")

            def log_message(self, *args: object) -> None:
                """Quiet."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.lock = threading.Lock()

    def __enter__(self) -> FakeAwx:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    # --- the job's state -----------------------------------------------------------------

    def status(self) -> str:
        if self.cancelled:
            return "canceled"
        if self.scenario.hold_until_cancelled:
            return "running"
        return self.scenario.statuses[min(max(self.step, 0), len(self.scenario.statuses) - 1)]

    def stored_events(self) -> list[dict]:
        if self.cancelled or self.scenario.hold_until_cancelled:
            return self.scenario.events[:3]
        index = min(max(self.step, 0), len(self.scenario.stored) - 1)
        stored = self.scenario.events[:self.scenario.stored[index]]
        if index < len(self.scenario.stored) - 1:
            stored = [e for e in stored if e["counter"] not in self.scenario.late]
        return stored

    def passwords(self) -> set[str]:
        return {q["variable"] for q in self.scenario.survey if q["type"] == "password"}

    # --- requests ------------------------------------------------------------------------

    def paths(self, method: str) -> list[str]:
        return [path for m, path, _query, _body in self.requests if m == method]

    def handle(self, http: BaseHTTPRequestHandler, method: str) -> None:
        with self.lock:
            split = urllib.parse.urlsplit(http.path)
            query = dict(urllib.parse.parse_qsl(split.query))
            body: object = None
            length = int(http.headers.get("Content-Length") or 0)
            raw = http.rfile.read(length) if length else b""
            if method == "POST":
                if http.headers.get("Content-Type") != "application/json":
                    self.violations.append(f"POST {split.path} without a JSON Content-Type")
                try:
                    body = json.loads(raw or b"null")
                except ValueError:
                    self.violations.append(f"POST {split.path} body is not JSON")
                if not isinstance(body, dict):
                    self.violations.append(f"POST {split.path} body is not a JSON object")
                    body = {}
            self.requests.append((method, split.path, query, body))
            if http.headers.get("Accept") != "application/json":
                self.violations.append(f"{method} {split.path} without Accept: application/json")
            if http.headers.get("Authorization") != f"Bearer {TOKEN}":
                return self.reply(http, 401, {"detail": "Authentication credentials were"
                                                        " not provided."})
            status, answer = self.route(method, split.path, query, body)
            self.reply(http, status, answer)

    def reply(self, http: BaseHTTPRequestHandler, status: int, answer: dict | None) -> None:
        data = b"" if answer is None else json.dumps(answer).encode()
        http.send_response(status)
        http.send_header("Content-Type", "application/json")
        http.send_header("Content-Length", str(len(data)))
        http.end_headers()
        http.wfile.write(data)

    def template(self) -> dict:
        s = self.scenario
        return {"id": s.template_id, "type": "job_template", "name": s.template_name,
                "playbook": "playbooks/server.yml", "survey_enabled": bool(s.survey),
                "ask_limit_on_launch": s.ask_limit, "ask_variables_on_launch": s.ask_variables}

    def route(self, method: str, path: str, query: dict, body: object
              ) -> tuple[int, dict | None]:
        s = self.scenario
        t = rf"/api/v2/job_templates/{s.template_id}/"
        j = rf"/api/v2/jobs/{self.job_id}/"
        if method == "GET" and path == "/api/v2/job_templates/":
            found = [self.template()] if query.get("name") == s.template_name else []
            return 200, {"count": len(found), "next": None, "previous": None, "results": found}
        if method == "GET" and path == t:
            return 200, self.template()
        if method == "GET" and path == t + "survey_spec/":
            return 200, {"name": "", "description": "", "spec": s.survey}
        if method == "POST" and path == t + "launch/":
            return self.launch(body)
        if method == "GET" and path == j:
            self.step += 1
            status = self.status()
            final_step = self.step >= len(s.statuses) - 1
            return 200, {"id": self.job_id, "type": "job", "status": status,
                         "failed": status in ("failed", "error"),
                         "job_explanation": s.explanation if status in FINAL else "",
                         "event_processing_finished": status in FINAL and (
                             final_step or self.cancelled or s.hold_until_cancelled)}
        if method == "GET" and path == j + "job_events/":
            return self.events_page(path, query)
        if method == "POST" and path == j + "cancel/":
            if body != {}:
                self.violations.append(f"cancel with a body {body!r}")
            if self.status() in FINAL:
                return 405, {"detail": 'Method "POST" not allowed.'}
            self.cancelled = True
            return 202, None
        self.violations.append(f"undocumented request {method} {path}")
        return 404, {"detail": "Not found."}

    def launch(self, body: dict) -> tuple[int, dict]:
        s = self.scenario
        unknown = set(body) - LAUNCH_FIELDS
        if unknown:
            self.violations.append(f"launch with fields AWX does not take: {sorted(unknown)}")
        extra = body.get("extra_vars") or {}
        if not isinstance(extra, dict):
            self.violations.append("launch extra_vars is not an object")
            extra = {}
        asked = {q["variable"] for q in s.survey}
        missing = [q["variable"] for q in s.survey if q.get("required") and q["variable"]
                   not in extra]
        if missing:
            return 400, {"variables_needed_to_start": [f"'{v}' value missing" for v in missing]}
        ignored: dict = {}
        if "limit" in body and not s.ask_limit:
            ignored["limit"] = body["limit"]
        kept = {k: v for k, v in extra.items() if s.ask_variables or k in asked}
        if kept != extra:
            ignored["extra_vars"] = {k: v for k, v in extra.items() if k not in kept}
        # What AWX stores and shows for the job: survey password answers as $encrypted$.
        self.launched = {"extra_vars": {k: "$encrypted$" if k in self.passwords() else v
                                        for k, v in kept.items()},
                         "limit": body.get("limit") if s.ask_limit else "",
                         "survey_passwords": {k: "$encrypted$" for k in self.passwords()
                                              if k in kept}}
        return 201, {"job": self.job_id, "id": self.job_id, "type": "job", "status": "pending",
                     "ignored_fields": ignored}

    def events_page(self, path: str, query: dict) -> tuple[int, dict]:
        if query.get("order_by") != "counter":
            self.violations.append("job events not ordered by counter")
        after = int(query.get("counter__gt", 0))
        size = min(int(query.get("page_size", 25)), self.scenario.max_page_size)
        page = int(query.get("page", 1))
        matching = [e for e in self.stored_events() if e["counter"] > after]
        results = matching[(page - 1) * size:page * size]
        following = None
        if page * size < len(matching):
            following = path + "?" + urllib.parse.urlencode({**query, "page": page + 1})
        return 200, {"count": len(matching), "next": following,
                     "previous": None, "results": results}

