"""What every page shares: the process's domain core, who is signed in, and safe drawing.

Rules live in the domain package (left4me_ui); this module only finds the core, turns the
session cookie into an Actor on every rerun and shows domain errors. It is imported by the
ASGI server (ui/asgi.py: login routes, lifespan) and by the app and its pages.
"""

from __future__ import annotations

import string
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

import streamlit as st

from left4me_ui import (
    accounts,
    audit,
    authz,
    boot,
    core,
    refusal,
    settings,
)
from left4me_ui.authz import Actor

# __Host-: the browser keeps it only when it is Secure, for path / and this host alone (no
# Domain=), so no sibling subdomain or plain-http page can set or overwrite it.
SESSION_COOKIE = "__Host-left4me_session"
# AppTest cannot send cookies: tests put a real session token here instead (still checked
# against the sessions table like a cookie). No widget uses this key, so a browser cannot.
TEST_TOKEN_KEY = "_left4me_session_token"

# Refusals the domain explains in words a person can act on (shown, never a traceback).
DomainError = refusal.REFUSED

_core: core.Core | None = None
_core_lock = threading.Lock()


def domain(start_worker: bool = False) -> core.Core:
    """The process's one Core. The server's lifespan boots it with the worker; a bare
    `streamlit run ui/app.py` or AppTest gets one without (jobs then wait in the queue)."""
    global _core
    with _core_lock:
        if _core is None:
            _core = boot.boot(settings.from_environment(), start_worker=start_worker)
        return _core


def bootstrap_note() -> str:
    """Where the generated admin password is, while that file exists (it goes when the
    admin first changes the password)."""
    path = domain().settings.generated_admin_password_file
    if path.exists():
        return (f"First start: the admin password is in {path}, a file only the user the UI"
                " runs as (and root) can read. Change the password after logging in; the"
                " file is deleted then.")
    return ""


def log_in(name: str, password: str, client: str) -> str:
    return accounts.login(domain(), name, password, client).token


def log_out(token: str) -> None:
    accounts.logout(domain(), token)


def actor_for_token(token: str) -> Actor | None:
    return accounts.validate_session(domain(), token)


def signed_in() -> Actor | None:
    """The Actor behind this browser's session, checked against the sessions table now."""
    token = session_token()
    return actor_for_token(token) if token else None


def session_token() -> str | None:
    cookie = st.context.cookies.get(SESSION_COOKIE)
    # Under AppTest the client (and so its cookies) is a mock: only a string is a cookie.
    if isinstance(cookie, str) and cookie:
        return cookie
    return st.session_state.get(TEST_TOKEN_KEY)


def require_actor() -> Actor:
    """The signed-in Actor, or stop the page: every page and fragment starts here."""
    actor = signed_in()
    if actor is None:
        st.warning("You are not logged in (or your session has ended). Reload the page "
                   "to log in again.", icon=":material/lock:")
        st.stop()
    return actor


_MARKDOWN_SPECIALS = str.maketrans({c: "\\" + c for c in string.punctuation})


def plain(text: object) -> str:
    """Text safe inside a Streamlit markdown context (labels, alerts): every ASCII
    punctuation mark is backslash-escaped, so no link, image, HTML or directive survives."""
    return str(text).translate(_MARKDOWN_SPECIALS).replace("\n", " ")


def audit_entries(actor: Actor, limit: int) -> list[audit.AuditEntry]:
    # TEMPORARY adapter until the domain has list_audit(core, actor, limit) (asked for in
    # notes/ui-pages-requests.md): the admin check is the domain's own authz.require_admin.
    with domain().db.connect() as conn:
        authz.require_admin(conn, actor)
        return audit.entries(conn, limit)


T = TypeVar("T")
REFUSED = object()


def attempt(action: Callable[[], T]) -> T | object:
    """Run a domain action; on a refusal show it as an error (plain text), return REFUSED."""
    try:
        return action()
    except DomainError as refused:
        st.error(plain(refused), icon=":material/block:")
        return REFUSED


def load(read: Callable[[], T]) -> T:
    """A domain read the page cannot go on without: on a refusal, show it and stop the page."""
    result = attempt(read)
    if result is REFUSED:
        st.stop()
    return result


def act(action: Callable[[], object], done: str | None = None) -> None:
    """A domain change from a button or form. Done: rerun the page so it shows the new state,
    with the confirmation `done` (if any) above it. Refused: show why, change nothing."""
    if attempt(action) is not REFUSED:
        if done:
            flash(done)
        st.rerun()


def pick(label: str, options: dict[int, T], param: str, describe: Callable[[T], str],
         key: str | None = None) -> T:
    """Choose one of `options` (by id) in a selectbox that follows the URL's ?param=id, so a
    link opens that one and a reload keeps it; the first option otherwise. `key` names the
    widget (tests and two pickers on one page tell them apart by it)."""
    ids = list(options)
    wanted = st.query_params.get(param)
    default = int(wanted) if wanted and wanted.isdigit() and int(wanted) in options else ids[0]
    chosen = st.selectbox(label, ids, index=ids.index(default),
                          format_func=lambda i: describe(options[i]), key=key)
    st.query_params[param] = str(chosen)
    return options[chosen]


def when(timestamp: float | None) -> str:
    if timestamp is None:
        return ""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S")


# --- a job, live: progress bar and log, polled from the database -------------------------------

_LOG_LINES_SHOWN = 200


def job_panel(job_id: int, key: str) -> None:
    """A job's progress and log. While it runs, a fragment re-reads its rows every second
    (no thread, no Streamlit call from the worker); when it ends, the whole page reruns
    once so buttons and states catch up, and polling stops."""
    from left4me_ui import jobs

    actor = require_actor()
    job = attempt(lambda: jobs.get(domain(), actor, job_id))
    if job is REFUSED:
        return
    st.fragment(_job_view, run_every=None if job.finished else 1)(job_id, key, job.finished)


def _job_view(job_id: int, key: str, finished_when_drawn: bool) -> None:
    from left4me_ui import jobs

    actor = require_actor()
    core = domain()
    job = attempt(lambda: jobs.get(core, actor, job_id))
    if job is REFUSED:
        return
    if job.finished and not finished_when_drawn:
        st.rerun(scope="app")
    lines_key = f"_job_log_{job_id}"
    seen = st.session_state.setdefault(lines_key, {"seq": 0, "lines": []})
    for event in jobs.events(core, actor, job_id, after_seq=seen["seq"]):
        seen["seq"] = event.seq
        seen["lines"].extend(event.text.splitlines() or [""])
    st.progress(job.progress, text=f"Job {job.id} ({job.kind}): {job.state}, {job.tasks_text}")
    if job.error:
        st.text(f"Error: {job.error}")
    st.code("\n".join(seen["lines"][-_LOG_LINES_SHOWN:]) or "(no output yet)", language=None,
            height=260)
    if not job.finished and st.button("Cancel job", key=f"cancel_{key}_{job_id}",
                                      icon=":material/cancel:"):
        attempt(lambda: jobs.cancel(core, actor, job_id))


def job_rows(history) -> list[dict]:
    return [{"job": j.id, "kind": j.kind, "target": j.target, "by": j.actor_name,
             "state": j.state, "tasks": j.tasks_text,
             "queued (UTC)": when(j.created_at), "finished (UTC)": when(j.finished_at)}
            for j in history]


_FLASH_KEY = "_left4me_flash"


def flash(message: str) -> None:
    """A confirmation that survives the st.rerun() after an action (shown once, next run).
    It is shown as plain text: it often names what a person chose (a file name may be
    `[log in again](https://evil.example)`)."""
    st.session_state[_FLASH_KEY] = message


def show_flash() -> None:
    """The pending confirmation, in a slot the page always has: were it there on one run and
    gone on the next, every element below would move up one place, and Streamlit would draw
    the moved tabs afresh on their first tab, hiding what the next action showed in another
    (an upload refused on the Overlays page right after "Overlay created.")."""
    slot = st.empty()
    message = st.session_state.pop(_FLASH_KEY, None)
    if message:
        slot.success(plain(message), icon=":material/check:")
