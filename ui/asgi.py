"""left4me UI server: `streamlit run ui/asgi.py` (scripts/demo does this).

Streamlit's `st.App` serves ui/app.py and, beside it, two plain HTTP routes: /login and
/logout. Only an HTTP response can set an HttpOnly cookie, so the session cookie is
born here; the app reads it from `st.context.cookies` and checks it against the sessions
table on every rerun. A middleware sends a browser without a live session to /login
before the app's page loads, and Streamlit's own endpoints (the websocket a session runs
on, uploads, metrics) answer only a browser with a live session. The lifespan builds the
domain (database, secret, bootstrap admin) and starts the job worker, so the worker lives
as long as the server.
"""

from __future__ import annotations

import html
import math
import sys
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit

import streamlit as st
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route
from streamlit import config as streamlit_config

# `streamlit run ui/asgi.py` imports this file by path; the frame and the domain sit beside it.
sys.path.insert(0, str(Path(__file__).resolve().parent))

import frame  # noqa: E402

from left4me_ui import settings  # noqa: E402

# Paths that never redirect to /login: Streamlit's own (assets, its core endpoints, which
# the middleware refuses by itself) and the login routes.
_OPEN_PREFIXES = ("/_stcore/", "/static/", "/component/", "/media/", "/login", "/logout",
                  "/favicon")
# Streamlit's core endpoints (/_stcore/: uploads, metrics, host config, script health...)
# answer only a live session; a load balancer's health probe needs none.
_CORE_PREFIX = "/_stcore/"
_PUBLIC_CORE_PATHS = ("/_stcore/health",)


def _limit_uploads(config: settings.Settings) -> None:
    """Streamlit holds every upload in memory, up to server.maxUploadSize (MiB, 200 by
    default) per file: cap it at the largest file any overlay uploader takes (a zip or a
    folder may be as large as the whole overlay), so no upload is larger than the UI uses."""
    largest = max(config.overlay_max_file_bytes, config.overlay_max_total_bytes)
    streamlit_config.set_option("server.maxUploadSize", math.ceil(largest / 2**20),
                                "ui/asgi.py (LEFT4ME_UI_OVERLAY_MAX_*)")


_limit_uploads(settings.from_environment())


def _set_session_cookie(response: Response, token: str) -> None:
    response.set_cookie(
        frame.SESSION_COOKIE, token, max_age=frame.domain().settings.session_max_seconds, path="/",
        # HttpOnly: no script in the page can read or steal it. SameSite=Strict: no other
        # site can make the browser send it (no cross-site request acts as the user).
        # Secure always, whatever a proxy's X-Forwarded-Proto says: the browser sends it over
        # https only, or to a loopback address (the demo's http://127.0.0.1: Chromium keeps
        # and sends a Secure cookie there, tests/ui/test_login_routes.py drives it).
        httponly=True, samesite="strict", secure=True,
    )


def _forget_session_cookie(response: Response) -> None:
    # With the attributes it was set with: a browser ignores a Set-Cookie that would
    # replace a __Host- cookie without Secure.
    response.delete_cookie(frame.SESSION_COOKIE, path="/", secure=True, httponly=True,
                           samesite="strict")


def _same_origin(request: Request) -> bool:
    """A form post from this UI's own page, not from another site (login CSRF)."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        # Browsers send Origin on every POST; curl and tests may not, and they cannot be
        # driven by another site, so a missing Origin is accepted.
        return origin is None
    return urlsplit(origin).netloc == request.headers.get("host")


def _login_page(message: str = "", name: str = "", status: int = 200) -> HTMLResponse:
    note = frame.bootstrap_note()
    body = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>left4me: log in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body {{ font-family: system-ui, sans-serif; background: #f4f5f7; margin: 0; }}
 main {{ max-width: 22rem; margin: 12vh auto; background: #fff; padding: 2rem;
        border-radius: .5rem; box-shadow: 0 1px 4px #0002; }}
 h1 {{ font-size: 1.4rem; margin-top: 0; }}
 label {{ display: block; margin: .8rem 0 .2rem; }}
 input {{ width: 100%; box-sizing: border-box; padding: .5rem; font-size: 1rem; }}
 button {{ margin-top: 1.2rem; width: 100%; padding: .6rem; font-size: 1rem;
          background: #ff4b4b; color: #fff; border: 0; border-radius: .3rem; }}
 .error {{ color: #b00020; }}  .note {{ color: #555; font-size: .85rem; }}
</style></head>
<body><main>
<h1>left4me</h1>
<p class="error" role="alert">{html.escape(message)}</p>
<form method="post" action="/login">
 <label for="name">User name</label>
 <input id="name" name="name" autocomplete="username" required value="{html.escape(name)}">
 <label for="password">Password</label>
 <input id="password" name="password" type="password" autocomplete="current-password"
  required>
 <button type="submit">Log in</button>
</form>
<p class="note">{html.escape(note)}</p>
</main></body></html>"""
    # The login page is never cached and never framed by another site.
    return HTMLResponse(body, status_code=status, headers={
        "Cache-Control": "no-store", "X-Frame-Options": "DENY",
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                                   "form-action 'self'; frame-ancestors 'none'",
    })


async def login(request: Request) -> Response:
    token = request.cookies.get(frame.SESSION_COOKIE)
    if request.method == "GET":
        if token and await run_in_threadpool(frame.actor_for_token, token):
            return RedirectResponse("/", status_code=303)
        return _login_page()
    if not _same_origin(request):
        return _login_page("This form was sent from another site; log in here.", status=403)
    form = await request.form()
    name, password = str(form.get("name", "")), str(form.get("password", ""))
    client = request.client.host if request.client else ""
    try:
        # Password hashing is slow on purpose: keep it off the event loop.
        token = await run_in_threadpool(frame.log_in, name, password, client)
    except frame.DomainError as refused:
        return _login_page(str(refused), name=name, status=401)
    response = RedirectResponse("/", status_code=303)
    _set_session_cookie(response, token)
    return response


async def logout(request: Request) -> Response:
    token = request.cookies.get(frame.SESSION_COOKIE)
    if token:
        await run_in_threadpool(frame.log_out, token)
    response = RedirectResponse("/login", status_code=303)
    _forget_session_cookie(response)
    return response


async def _live_session(scope) -> bool:
    token = HTTPConnection(scope).cookies.get(frame.SESSION_COOKIE)
    return bool(token) and await run_in_threadpool(frame.actor_for_token, token) is not None


class LoginRequired:
    """Without a live session: a page sends the browser to /login first; the websocket a
    Streamlit session runs on is closed (1008, policy violation) before it opens, and the
    core endpoints (uploads, metrics) answer 403. So nobody who has not logged in gets a
    Streamlit session, holds uploads in the UI's memory or reads its metrics."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "websocket":
            if not await _live_session(scope):
                # Before the handshake completes: the server answers it with HTTP 403.
                await send({"type": "websocket.close", "code": 1008})
                return
        elif scope["type"] == "http":
            path = scope["path"]
            if path.startswith(_CORE_PREFIX) and path not in _PUBLIC_CORE_PATHS:
                if not await _live_session(scope):
                    await PlainTextResponse("Log in first.", status_code=403)(scope, receive,
                                                                              send)
                    return
            elif scope["method"] == "GET" and not path.startswith(_OPEN_PREFIXES) and (
                    "." not in path.rsplit("/", 1)[-1]) and not await _live_session(scope):
                response = RedirectResponse("/login", status_code=303)
                if HTTPConnection(scope).cookies.get(frame.SESSION_COOKIE):
                    _forget_session_cookie(response)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


@asynccontextmanager
async def lifespan(_app):
    # Boots the core once for the process (bootstrap admin: its password file is printed)
    # and starts the job worker, which then lives exactly as long as the server.
    core = frame.domain(start_worker=True)
    try:
        yield
    finally:
        if core.worker is not None:
            core.worker.stop()


app = st.App(
    "app.py",
    routes=[Route("/login", login, methods=["GET", "POST"]),
            Route("/logout", logout, methods=["POST"])],
    middleware=[Middleware(LoginRequired)],
    lifespan=lifespan,
)
