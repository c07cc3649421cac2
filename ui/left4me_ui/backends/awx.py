"""The AWX / Automation Platform job backend: the same jobs, run by a controller's API.

Shaped after the API's documentation (awx/api/templates/api/*.md) and awxkit:
* launch: POST /api/v2/job_templates/{id}/launch/ with `extra_vars` and `limit`; AWX answers
  with the job's id and `ignored_fields`, what the template does not prompt for. An ignored
  limit would run the playbook on the whole inventory, so anything ignored cancels the job;
* follow: GET /api/v2/jobs/{id}/ for the status, and /api/v2/jobs/{id}/job_events/ ordered
  by `counter`, paged by `next`, until the job is final and `event_processing_finished`
  (AWX stores events after the playbook ends). Job events carry ansible-runner's own event
  shape, so they go to the same callbacks as a local run;
* cancel: POST /api/v2/jobs/{id}/cancel/: 202, or 405 when the job can no longer be
  cancelled (it finished): then the job's real outcome is recorded.

Secrets: AWX keeps a job's extra_vars in its database and shows them in the API, except the
answers to survey questions of type `password`, which it stores encrypted and shows as
`$encrypted$`. A secret variable is therefore only sent when the template's survey asks for
it as a password question; otherwise the job is refused before anything is launched.

The token is read from its file for each request and goes only into the Authorization
header; redirects are not followed (urllib would carry that header to wherever they point).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from left4me_ui.core import Core
from left4me_ui.jobs import CANCELLED, FAILED, SUCCEEDED, Job, Outcome
from left4me_ui.runner import EventSink
from left4me_ui.settings import Settings, read_private_file

API = "/api/v2/"
PAGE_SIZE = 200  # AWX's MAX_PAGE_SIZE
FINAL = ("successful", "failed", "error", "canceled")
# After the job is final, how long to wait for AWX to finish storing its events.
EVENTS_GRACE_SECONDS = 60
# Consecutive failed polls before the UI gives up following a job (it may still run in AWX).
MAX_POLL_ERRORS = 5
TIMEOUT_SECONDS = 30


class AwxError(RuntimeError):
    """An AWX request failed; the message says what to fix and never holds the token."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def read_token(path: Path) -> str:
    """The API token from a file only its owner can read (like the UI secret)."""
    token = read_private_file(path, "the AWX token file", AwxError).decode().strip()
    if not token or any(c.isspace() for c in token):
        raise AwxError(f"the AWX token file {path} must hold one token on one line")
    return token


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001, ANN201
        raise AwxError(f"AWX answered {code} redirecting to {newurl}: set LEFT4ME_UI_AWX_URL"
                       " to the address the API answers on", code)


class AwxClient:
    """JSON over HTTP(S) to one controller, Bearer token from a file."""

    def __init__(self, url: str, token_file: Path, timeout: float = TIMEOUT_SECONDS) -> None:
        self.url = url.rstrip("/")
        self.token_file = token_file
        self.timeout = timeout
        self._opener = urllib.request.build_opener(_NoRedirects())

    def absolute(self, path: str) -> str:
        """An API path, or a `next` link AWX gave, as a URL on this controller only."""
        url = urllib.parse.urljoin(self.url + "/", path)
        if urllib.parse.urlsplit(url)[:2] != urllib.parse.urlsplit(self.url)[:2]:
            raise AwxError(f"AWX pointed to another site ({url}); not following it")
        return url

    def request(self, method: str, path: str, body: dict | None = None) -> dict:
        headers = {"Authorization": f"Bearer {read_token(self.token_file)}",
                   "Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        url = self.absolute(path)
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raise AwxError(_http_error_message(method, url, exc), exc.code) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise AwxError(f"AWX at {self.url} did not answer: {reason}") from None
        if not raw:
            return {}
        try:
            return json.loads(raw)
        except ValueError:
            raise AwxError(f"AWX answered {method} {url} with something that is not JSON"
                           ) from None


def _http_error_message(method: str, url: str, exc: urllib.error.HTTPError) -> str:
    try:
        answer = json.loads(exc.read() or b"{}")
    except ValueError:
        answer = {}
    detail = answer.get("detail") if isinstance(answer, dict) else None
    said = f": {detail or answer}" if (detail or answer) else ""
    if exc.code == 401:
        return (f"AWX refused the token (401{said}); check that LEFT4ME_UI_AWX_TOKEN_FILE holds"
                " a valid, unexpired OAuth2 token")
    if exc.code == 403:
        return (f"AWX denied {method} {url} (403{said}); the token's user needs execute"
                " permission on the job template")
    return f"AWX answered {method} {url} with {exc.code}{said}"

@dataclass(frozen=True)
class Template:
    id: int
    name: str
    survey_passwords: frozenset[str]  # variables AWX stores encrypted ($encrypted$)


class AwxBackend:
    """jobs.JobBackend over the AWX API (LEFT4ME_UI_JOB_BACKEND=awx)."""

    def __init__(self, config: Settings, sleep: Callable[[float], None] = time.sleep) -> None:
        if not config.awx_url or config.awx_token_file is None:
            raise AwxError("the awx job backend needs LEFT4ME_UI_AWX_URL and"
                           " LEFT4ME_UI_AWX_TOKEN_FILE")
        self.client = AwxClient(config.awx_url, config.awx_token_file)
        self.templates = dict(config.awx_templates)
        self.poll_seconds = config.awx_poll_seconds
        self.sleep = sleep

    # --- the template ----------------------------------------------------------------------

    def template(self, playbook: str) -> Template:
        configured = self.templates.get(playbook)
        if configured is None:
            raise AwxError(f"no AWX job template is set for {playbook}: add {playbook}=TEMPLATE"
                           " to LEFT4ME_UI_AWX_TEMPLATES")
        if configured.isdigit():
            found = self.client.request("GET", f"{API}job_templates/{configured}/")
        else:
            query = urllib.parse.urlencode({"name": configured})
            page = self.client.request("GET", f"{API}job_templates/?{query}")
            if page.get("count") != 1:
                raise AwxError(f"AWX has {page.get('count', 0)} job templates named"
                               f" {configured!r} visible to this token; it needs exactly one")
            found = page["results"][0]
        passwords: frozenset[str] = frozenset()
        if found.get("survey_enabled"):
            spec = self.client.request("GET", f"{API}job_templates/{found['id']}/survey_spec/")
            passwords = frozenset(question["variable"] for question in spec.get("spec") or []
                                  if question.get("type") == "password")
        return Template(int(found["id"]), str(found.get("name", configured)), passwords)

    # --- one job ---------------------------------------------------------------------------

    def execute(self, core: Core, job: Job, secrets: dict, sink: EventSink) -> Outcome:
        template = self.template(job.playbook)
        in_clear = sorted(set(secrets) - template.survey_passwords)
        if in_clear:
            raise AwxError(
                f"AWX would store {', '.join(in_clear)} in clear in the job's extra_vars:"
                f" add a survey question of type password for it to job template"
                f" '{template.name}' (nothing was launched)")
        launched = self.client.request("POST", f"{API}job_templates/{template.id}/launch/",
                                       {"extra_vars": {**job.extravars, **secrets},
                                        "limit": job.host})
        awx_job = int(launched["job"])
        sink.event({"event": "awx_job_launched", "stdout":
                    f"AWX job {awx_job} launched from template '{template.name}':"
                    f" {self.client.url}/#/jobs/playbook/{awx_job}/output"})
        ignored = launched.get("ignored_fields") or {}
        if ignored:
            self._cancel(awx_job, sink)
            raise AwxError(
                f"AWX ignored {', '.join(sorted(ignored))} at launch (the template does not"
                f" prompt for it), so the job could have run elsewhere; AWX job {awx_job} was"
                f" cancelled. Turn on ask_limit_on_launch and ask_variables_on_launch on"
                f" '{template.name}'")
        status = self._follow(awx_job, sink)
        state = {"successful": SUCCEEDED, "canceled": CANCELLED}.get(status["status"], FAILED)
        explanation = str(status.get("job_explanation") or "").strip()
        return Outcome(state, 0 if state == SUCCEEDED else None,
                       f"AWX job {awx_job} ended {status['status']}"
                       + (f": {explanation}" if explanation else "; see the log"))

    def _follow(self, awx_job: int, sink: EventSink) -> dict:
        """Poll the job and its new events until it is final and its events are stored."""
        last_counter, errors, cancel_sent, final_since = 0, 0, False, None
        while True:
            try:
                if not cancel_sent and sink.cancel():
                    self._cancel(awx_job, sink)
                    cancel_sent = True  # after it went through: a failed POST is retried
                status = self.client.request("GET", f"{API}jobs/{awx_job}/")
                last_counter = self._events(awx_job, last_counter, sink)
                errors = 0
            except AwxError as exc:
                if exc.status == 401 or errors + 1 >= MAX_POLL_ERRORS:
                    raise AwxError(f"lost track of AWX job {awx_job}, which may still be"
                                   f" running there: {exc}", exc.status) from None
                errors += 1
                self.sleep(self.poll_seconds)
                continue
            if status.get("status") in FINAL:
                final_since = final_since or time.monotonic()
                if (status.get("event_processing_finished", True)
                        or time.monotonic() - final_since > EVENTS_GRACE_SECONDS):
                    # One more read: events stored between the two requests above, and
                    # any after a gap that will never fill.
                    self._events(awx_job, last_counter, sink, final=True)
                    return status
            self.sleep(self.poll_seconds)

    def _events(self, awx_job: int, after: int, sink: EventSink, final: bool = False) -> int:
        """Feed events with counter > after to the sink, page by page; the last counter fed.

        AWX stores events as its callback receiver gets to them, not strictly in order: while
        the job's events are still being stored, stop at a gap in `counter` and ask again
        from there next time, so a late event is never skipped.
        """
        query = urllib.parse.urlencode({"order_by": "counter", "counter__gt": after,
                                        "page_size": PAGE_SIZE})
        path: str | None = f"{API}jobs/{awx_job}/job_events/?{query}"
        while path:
            page = self.client.request("GET", path)
            for event in page.get("results") or []:
                counter = int(event.get("counter") or 0)
                if counter <= after:
                    continue  # a page boundary moved under us: seen already
                if counter != after + 1 and not final:
                    return after
                after = counter
                sink.event(event)
            path = page.get("next")
        return after

    def _cancel(self, awx_job: int, sink: EventSink) -> None:
        try:
            self.client.request("POST", f"{API}jobs/{awx_job}/cancel/", {})
        except AwxError as exc:
            if exc.status != 405:
                raise
            sink.event({"event": "awx_cancel_refused", "stdout":
                        f"AWX job {awx_job} can no longer be cancelled (405): it has finished;"
                        " its outcome stands"})
        else:
            sink.event({"event": "awx_cancel_requested",
                        "stdout": f"asked AWX to cancel job {awx_job}"})

