"""The server's own HTTP routes, as a browser meets them: the real `streamlit run ui/asgi.py`.

First start prints where the generated admin password is; without a live session every
page sends the browser to /login; /login sets an HttpOnly, SameSite=Strict cookie; /logout
ends the session on the server, so the old cookie opens nothing.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest

from left4me_ui import accounts, boot, overlays, settings

PROJECT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    def __init__(self, port: int, state: Path, log: Path, secret: Path) -> None:
        self.port, self.state, self.log, self.secret = port, state, log, secret

    def request(self, method: str, path: str, body: dict | None = None,
                headers: dict | None = None) -> http.client.HTTPResponse:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        encoded = urlencode(body) if body is not None else None
        all_headers = {"Host": f"127.0.0.1:{self.port}", **(headers or {})}
        if encoded is not None:
            all_headers["Content-Type"] = "application/x-www-form-urlencoded"
        connection.request(method, path, body=encoded, headers=all_headers)
        response = connection.getresponse()
        response.text = response.read().decode()
        return response


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("login-routes")
    secret = root / "secret"
    settings.write_new_secret(secret)
    port = _free_port()
    log_path = root / "ui.log"
    log = open(log_path, "w")  # noqa: SIM115 (open for the server's whole life)
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "ui/asgi.py", "--server.address",
         "127.0.0.1", "--server.port", str(port), "--server.headless", "true",
         "--browser.gatherUsageStats", "false"], cwd=PROJECT, stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "LEFT4ME_UI_STATE_DIR": str(root / "state"),
             "LEFT4ME_UI_SECRET_FILE": str(secret),
             "LEFT4ME_INVENTORY": str(PROJECT / "inventories/demo"),
             "LEFT4ME_UI_OVERLAY_MAX_FILE_BYTES": str(2**20),
             "LEFT4ME_UI_OVERLAY_MAX_TOTAL_BYTES": str(2 * 2**20),
             # as the ui_service role's environment sets it without a named proxy
             "FORWARDED_ALLOW_IPS": ""})
    running = Server(port, root / "state", log_path, secret)
    try:
        for _ in range(200):
            try:
                if running.request("GET", "/_stcore/health").text == "ok":
                    break
            except OSError:
                time.sleep(0.3)
        else:
            pytest.fail(f"the UI did not start: {log_path.read_text()[-3000:]}")
        yield running
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def admin_password(server: Server) -> str:
    return (server.state / "bootstrap-admin-password").read_text().strip()


def session_cookie(response: http.client.HTTPResponse) -> str:
    cookie = response.getheader("set-cookie")
    assert cookie is not None and cookie.startswith("__Host-left4me_session=")
    return cookie.split(";")[0]


def log_in(server: Server) -> str:
    response = server.request("POST", "/login", {"name": "admin",
                                                  "password": admin_password(server)})
    assert response.status == 303 and response.getheader("location") == "/"
    return session_cookie(response)


def test_first_start_writes_the_admin_password_0600_and_prints_where(server):
    password_file = server.state / "bootstrap-admin-password"
    assert password_file.stat().st_mode & 0o777 == 0o600
    assert str(password_file) in server.log.read_text()
    # and the login page says so too, without the password itself, and whose file it is
    page = server.request("GET", "/login").text
    assert str(password_file) in page and admin_password(server) not in page
    assert "only the user the UI runs as" in page and "root only" not in page


def test_without_a_session_every_page_sends_the_browser_to_login(server):
    for path in ("/", "/servers", "/users"):
        response = server.request("GET", path)
        assert (response.status, response.getheader("location")) == (303, "/login"), path
    page = server.request("GET", "/login")
    assert page.status == 200 and '<form method="post" action="/login">' in page.text
    assert "frame-ancestors 'none'" in page.getheader("content-security-policy")


def test_login_sets_an_httponly_samesite_strict_cookie_that_opens_the_app(server):
    response = server.request("POST", "/login", {"name": "admin",
                                                  "password": admin_password(server)})
    attributes = response.getheader("set-cookie").lower()
    assert "httponly" in attributes and "samesite=strict" in attributes
    # __Host-: Secure, path /, no Domain (even on the demo's plain http://127.0.0.1)
    assert attributes.startswith("__host-left4me_session=")
    assert "; secure" in attributes and "path=/" in attributes and "domain=" not in attributes
    opened = server.request("GET", "/", headers={"Cookie": session_cookie(response)})
    assert opened.status == 200 and "<noscript>" in opened.text  # Streamlit's page


def test_a_wrong_password_is_refused_on_the_form(server):
    response = server.request("POST", "/login", {"name": "admin", "password": "not it"})
    assert response.status == 401
    assert "wrong user name or password" in response.text
    assert response.getheader("set-cookie") is None


def test_a_login_posted_from_another_site_is_refused(server):
    response = server.request("POST", "/login", {"name": "admin",
                                                  "password": admin_password(server)},
                              headers={"Origin": "http://evil.example"})
    assert response.status == 403 and response.getheader("set-cookie") is None


def test_a_forwarded_for_header_from_a_local_peer_is_not_believed(server):
    # Without a named proxy, a local process (a game server's code, say) cannot choose the
    # address the throttle counts and the audit shows.
    for forged in ("6.6.6.1", "6.6.6.2"):
        refused = server.request("POST", "/login", {"name": "admin", "password": "not it"},
                                 headers={"X-Forwarded-For": forged})
        assert refused.status == 401
    with sqlite3.connect(server.state / "left4me-ui.sqlite3") as db:
        keys = {key for (key,) in db.execute(
            "SELECT key FROM login_failures WHERE kind = 'client'")}
        details = [d for (d,) in db.execute(
            "SELECT detail FROM audit WHERE action = 'login' ORDER BY id DESC LIMIT 2")]
    assert keys == {"127.0.0.1"} and details == ["from 127.0.0.1"] * 2


def test_user_text_on_the_login_form_is_escaped(server):
    response = server.request("POST", "/login", {"name": "<script>x</script>",
                                                  "password": "nope"})
    assert "<script>x" not in response.text and "&lt;script&gt;x" in response.text


def test_logout_ends_the_session_on_the_server(server):
    cookie = log_in(server)
    response = server.request("POST", "/logout", headers={"Cookie": cookie})
    assert (response.status, response.getheader("location")) == (303, "/login")
    forgotten = response.getheader("set-cookie")
    assert forgotten.startswith('__Host-left4me_session=""') and "; Secure" in forgotten
    # the old cookie, replayed, opens nothing: the session is gone, not just the cookie
    again = server.request("GET", "/", headers={"Cookie": cookie})
    assert (again.status, again.getheader("location")) == (303, "/login")


# --- Streamlit's own endpoints: a session, uploads and metrics need a login ------------------


def _xsrf_pair() -> tuple[str, str]:
    """A double-submit XSRF token any client can make itself (cookie, header)."""
    from streamlit.web.server.starlette.starlette_app_utils import generate_xsrf_token_string

    token = generate_xsrf_token_string()
    return f"_streamlit_xsrf={token}", token


def _open_stream(server: Server, cookie: str = ""):
    from websockets.sync.client import connect

    xsrf_cookie, xsrf = _xsrf_pair()
    headers = {"Cookie": "; ".join(filter(None, (xsrf_cookie, cookie)))}
    return connect(f"ws://127.0.0.1:{server.port}/_stcore/stream", open_timeout=10,
                   additional_headers=headers, subprotocols=["streamlit", xsrf])


@contextlib.contextmanager
def _streamlit_session(server: Server, cookie: str) -> Iterator[str]:
    """A Streamlit session opened the way the browser does, live while the block runs: its
    id (an upload's URL names it)."""
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    with _open_stream(server, cookie) as stream:
        hello = BackMsg()
        hello.rerun_script.query_string = ""
        hello.rerun_script.page_script_hash = ""
        stream.send(hello.SerializeToString())
        for _ in range(200):
            message = ForwardMsg()
            message.ParseFromString(stream.recv(timeout=20))
            if message.WhichOneof("type") == "new_session":
                yield message.new_session.initialize.session_id
                return
        raise AssertionError("no new_session message from Streamlit")


def _upload(server: Server, session_id: str, cookie: str = "", size: int = 2**20
            ) -> http.client.HTTPResponse:
    xsrf_cookie, xsrf = _xsrf_pair()
    boundary = "left4me-test-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\";"
            f" filename=\"big.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            ).encode() + b"\0" * size + f"\r\n--{boundary}--\r\n".encode()
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    connection.request("PUT", f"/_stcore/upload_file/{session_id}/file-1", body=body, headers={
        "Host": f"127.0.0.1:{server.port}", "X-Xsrftoken": xsrf,
        "Cookie": "; ".join(filter(None, (xsrf_cookie, cookie))),
        "Content-Type": f"multipart/form-data; boundary={boundary}"})
    response = connection.getresponse()
    response.text = response.read().decode()
    return response


def test_without_a_login_the_websocket_is_refused_before_any_session(server):
    from websockets.exceptions import InvalidStatus

    with pytest.raises(InvalidStatus) as refused:
        _open_stream(server)
    assert refused.value.response.status_code == 403
    # an ended session's cookie is no better than none
    cookie = log_in(server)
    server.request("POST", "/logout", headers={"Cookie": cookie})
    with pytest.raises(InvalidStatus):
        _open_stream(server, cookie)


def test_an_upload_needs_a_login_even_with_a_live_streamlit_session_id(server):
    cookie = log_in(server)
    # a real session, opened by a logged-in browser; the same upload without the login cookie
    with _streamlit_session(server, cookie) as session_id:
        refused = _upload(server, session_id)
        assert refused.status == 403 and "Log in" in refused.text
        accepted = _upload(server, session_id, cookie)
        assert accepted.status == 204, accepted.text


def test_streamlit_takes_no_upload_larger_than_the_overlay_limit(server):
    # The fixture's overlays take 1 MiB files and 2 MiB in all (Streamlit's own limit: 200 MB).
    cookie = log_in(server)
    with _streamlit_session(server, cookie) as session_id:
        assert _upload(server, session_id, cookie, size=2 * 2**20 - 4096).status == 204
        assert _upload(server, session_id, cookie, size=3 * 2**20).status == 413


def test_metrics_and_other_core_endpoints_need_a_login_health_does_not(server):
    for path in ("/_stcore/metrics", "/_stcore/host-config", "/_stcore/script-health-check"):
        response = server.request("GET", path)
        assert response.status == 403 and "Log in" in response.text, path
    assert server.request("GET", "/_stcore/metrics",
                          headers={"Cookie": log_in(server)}).status == 200
    assert server.request("GET", "/_stcore/health").text == "ok"


def test_a_logged_in_browser_runs_the_app_through_the_guarded_endpoints(server, browser):
    from tests.ui.browser_helpers import log_in as browser_log_in

    url = f"http://127.0.0.1:{server.port}"
    page = browser_log_in(browser, url, "admin", admin_password(server))
    page.get_by_role("link", name="Jobs").click()
    page.get_by_role("heading", name="Jobs").wait_for()
    # an upload from the page: its PUT carries the session cookie, so it gets through
    core = boot.open_core(settings.Settings(state_dir=server.state, secret_file=server.secret,
                                            inventory=PROJECT / "inventories/demo"))
    admin = accounts.login(core, "admin", admin_password(server), "test").actor
    overlays.create(core, admin, "browser-upload")
    page.get_by_role("link", name="Overlays").click()
    page.get_by_role("tab", name="Upload").click()
    page.locator(".st-key-upload_files input[type=file]").set_input_files(files=[{
        "name": "motd.txt", "mimeType": "text/plain", "buffer": b"welcome\n"}])
    page.locator('[data-testid="stFileChipName"]').filter(has_text="motd.txt").wait_for()
    page.get_by_role("button", name="Upload into the overlay", exact=True).click()
    for _ in range(100):
        if any(e.path == "motd.txt" for e in overlays.tree(core, admin, "browser-upload")):
            break
        time.sleep(0.3)
    assert overlays.read_bytes(core, admin, "browser-upload", "motd.txt") == b"welcome\n"
    page.context.close()


# Last in this module: it changes the admin's password (the tests above read the file).
def test_the_login_page_stops_pointing_at_the_file_once_the_admin_changed_the_password(
        server):
    password_file = server.state / "bootstrap-admin-password"
    core = boot.open_core(settings.Settings(state_dir=server.state, secret_file=server.secret,
                                            inventory=PROJECT / "inventories/demo"))
    admin = accounts.login(core, "admin", admin_password(server), "test").actor
    accounts.change_password(core, admin, admin_password(server), "the admin's own one", None)
    assert not password_file.exists()
    page = server.request("GET", "/login").text
    assert "First start" not in page and str(password_file) not in page
