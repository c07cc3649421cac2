"""HTTP front of the fake Web API, with an admin endpoint to inject faults and read counters."""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import signal
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from standins import vpk
from standins.gamebuild import DEFAULT_BUILDID, patch_version
from standins.webapi import avatars
from standins.webapi.catalogue import (
    JPEG_HEADER,
    Catalogue,
    generate_catalogue,
    load_catalogue,
)

DETAILS_PATH = "/ISteamRemoteStorage/GetPublishedFileDetails/v1/"
COLLECTION_PATH = "/ISteamRemoteStorage/GetCollectionDetails/v1/"
PLAYERS_PATH = "/ISteamUser/GetPlayerSummaries/v2/"
# Steam routes with or without the trailing slash, and the old v0001 spelling too.
UP_TO_DATE_PATHS = {"/ISteamApps/UpToDateCheck/v1/", "/ISteamApps/UpToDateCheck/v1",
                    "/ISteamApps/UpToDateCheck/v0001/", "/ISteamApps/UpToDateCheck/v0001"}
UNKNOWN_APP_ERROR = "Couldn't get app info for the app specified."
OUT_OF_DATE_MESSAGE = "Your server is out of date, please upgrade"
_UGC_PATH = re.compile(r"^/ugc/(\d+)/(\d+)/[^/]+$")
_PREVIEW_PATH = re.compile(r"^/preview/(\d+)\.jpg$")
# Where GetPlayerSummaries points `avatar`, `avatarmedium` and `avatarfull` (Steam: its CDN).
_AVATAR_PATH = re.compile(r"^/avatars/([0-9a-f]{40})(_medium|_full)?\.jpg$")
# A Web API key as Valve issues it; anything else is refused like a revoked key.
_API_KEY = re.compile(r"^[0-9A-Fa-f]{32}$")
# What the fake steamcmd asks for (not a Steam URL): the item's content as
# workshop_download_item would get it from the Workshop depot, so both stand-ins share one
# catalogue.
# 200 answers of the JSON endpoints that are not their JSON. Steam has answered an empty body
# under load, and {"response":{}} for a request it would not serve (a rejected key among the
# reported causes); see standins/README.md.
MALFORMED_BODIES = {"empty": b"", "empty_response": b'{"response":{}}', "empty_object": b"{}"}
JSON_ENDPOINTS = {"GetPublishedFileDetails", "GetCollectionDetails", "GetPlayerSummaries",
                  "UpToDateCheck"}
_CONTENT_PATH = re.compile(r"^/_standin/content/(\d+)$")
PREVIEW_SIZE = 24 * 1024
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


@dataclass
class Faults:
    """Faults armed through /_standin/*, consumed by the next non-admin requests."""

    failures_left: int = 0
    failure_status: int = 503
    truncations_left: int = 0
    malformed_left: int = 0
    malformed_body: bytes = b""
    wrong_out_of_date_left: int = 0
    latency: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _take(self, counter: str) -> bool:
        """One of the faults still to come, used up: is it this request's turn?"""
        with self.lock:
            if getattr(self, counter) <= 0:
                return False
            setattr(self, counter, getattr(self, counter) - 1)
            return True

    def take_failure(self) -> int | None:
        return self.failure_status if self._take("failures_left") else None

    def take_malformed(self) -> bytes | None:
        return self.malformed_body if self._take("malformed_left") else None

    def take_truncation(self) -> bool:
        return self._take("truncations_left")

    def take_wrong_out_of_date(self) -> bool:
        return self._take("wrong_out_of_date_left")


@dataclass
class Stats:
    requests: Counter[str] = field(default_factory=Counter)
    bytes_served: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, endpoint: str) -> None:
        with self.lock:
            self.requests[endpoint] += 1

    def add_bytes(self, amount: int) -> None:
        with self.lock:
            self.bytes_served += amount

    def snapshot(self) -> dict[str, object]:
        with self.lock:
            return {"requests": dict(self.requests), "bytes_served": self.bytes_served}

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()
            self.bytes_served = 0


class StandinServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], catalogue: Catalogue, public_url: str | None):
        super().__init__(address, Handler)
        self.catalogue = catalogue
        # The version UpToDateCheck holds current, per app (the server's PatchVersion).
        self.app_versions = {550: patch_version(DEFAULT_BUILDID)}
        self.faults = Faults()
        self.stats = Stats()
        host, port = self.server_address[:2]
        self.base_url = public_url or f"http://{host}:{port}"


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """A single `bytes=` range as [start, end) or None when unsatisfiable."""
    match = _RANGE.match(header.strip())
    if not match or match.groups() == ("", ""):
        return None
    first, last = match.groups()
    if first == "":
        start, end = max(size - int(last), 0), size
    else:
        start = int(first)
        end = min(int(last) + 1, size) if last else size
    return (start, end) if start < end else None


class Handler(BaseHTTPRequestHandler):
    server: StandinServer
    server_version = "Stand-in Steam Web API"
    protocol_version = "HTTP/1.1"
    # Set per request by _admit: only Steam endpoints suffer injected faults, never /_standin/.
    _faultable = False

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        sys.stdout.write(f"{self.address_string()} {format % args}\n")
        sys.stdout.flush()

    # ----- plumbing ----------------------------------------------------------------------
    def _send(self, status: int, body: bytes, content_type: str, extra=None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        truncate = self._faultable and status < 300 and len(body) > 1
        if truncate and self.server.faults.take_truncation():
            # Promise the whole body, deliver half, hang up: what a dropped CDN link looks like.
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.close_connection = True
            return
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, payload: object, status: int = 200) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json; charset=UTF-8")

    def _error(self, status: int, text: str) -> None:
        body = f"<html><head><title>{text}</title></head><body><h1>{text}</h1></body></html>"
        self._send(status, body.encode(), "text/html; charset=UTF-8")

    def _form(self) -> dict[str, str]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode("utf-8", "replace") if length else ""
        return {key: values[0] for key, values in parse_qs(raw).items()}

    def _admit(self, endpoint: str) -> bool:
        """Count, delay and maybe fail a request; False when a fault already answered it."""
        self._faultable = True
        self.server.stats.count(endpoint)
        if self.server.faults.latency:
            time.sleep(self.server.faults.latency)
        status = self.server.faults.take_failure()
        if status is not None:
            self._error(status, "Service Unavailable" if status == 503 else "Server Error")
            return False
        if endpoint in JSON_ENDPOINTS:
            body = self.server.faults.take_malformed()
            if body is not None:  # a 200 that is not the answer (Steam under load, a bad key)
                self._send(200, body, "application/json; charset=UTF-8")
                return False
        return True

    # ----- routing -----------------------------------------------------------------------
    def do_POST(self) -> None:
        self._faultable = False
        path = urlsplit(self.path).path
        if path.startswith("/_standin/"):
            self._admin_post(path.removeprefix("/_standin/"))
        elif path == DETAILS_PATH:
            form = self._form()
            if self._admit("GetPublishedFileDetails"):
                self._published_file_details(form)
        elif path == COLLECTION_PATH:
            form = self._form()
            if self._admit("GetCollectionDetails"):
                self._collection_details(form)
        else:
            self._error(404, "Not Found")

    def do_GET(self) -> None:
        self._faultable = False
        url = urlsplit(self.path)
        if url.path == "/_standin/stats":
            self._json(self.server.stats.snapshot())
        elif url.path == "/_standin/catalogue":
            self._json(self.server.catalogue.dump())
        elif _CONTENT_PATH.match(url.path):
            self._content(int(_CONTENT_PATH.match(url.path).group(1)))  # type: ignore[union-attr]
        elif _PREVIEW_PATH.match(url.path):
            if self._admit("preview"):
                self._preview(int(_PREVIEW_PATH.match(url.path).group(1)))  # type: ignore[union-attr]
        elif _AVATAR_PATH.match(url.path):
            if self._admit("avatar"):
                self._avatar(*_AVATAR_PATH.match(url.path).groups())  # type: ignore[union-attr]
        elif url.path in UP_TO_DATE_PATHS:
            if self._admit("UpToDateCheck"):
                self._up_to_date_check({k: v[0] for k, v in parse_qs(url.query).items()})
        elif url.path == PLAYERS_PATH:
            if self._admit("GetPlayerSummaries"):
                self._player_summaries({k: v[0] for k, v in parse_qs(url.query).items()})
        elif _UGC_PATH.match(url.path):
            if self._admit("download"):
                self._download(_UGC_PATH.match(url.path))  # type: ignore[arg-type]
        elif url.path in (DETAILS_PATH, COLLECTION_PATH):
            self._error(405, "Method Not Allowed")
        else:
            self._error(404, "Not Found")

    do_HEAD = do_GET

    # ----- Steam endpoints ---------------------------------------------------------------
    def _ids(self, form: dict[str, str], count_key: str) -> list[int] | None:
        try:
            count = int(form[count_key])
            return [int(form[f"publishedfileids[{index}]"]) for index in range(count)]
        except (KeyError, ValueError):
            return None

    def _published_file_details(self, form: dict[str, str]) -> None:
        ids = self._ids(form, "itemcount")
        if ids is None:
            self._error(400, "Bad Request")
            return
        catalogue, base = self.server.catalogue, self.server.base_url
        details = [catalogue.details(item_id, base) for item_id in ids]
        response = {"result": 1, "resultcount": len(details), "publishedfiledetails": details}
        self._json({"response": response})

    def _collection_details(self, form: dict[str, str]) -> None:
        ids = self._ids(form, "collectioncount")
        if ids is None:
            self._error(400, "Bad Request")
            return
        details = [self.server.catalogue.collection_details(item_id) for item_id in ids]
        response = {"result": 1, "resultcount": len(details), "collectiondetails": details}
        self._json({"response": response})

    def _player_summaries(self, query: dict[str, str]) -> None:
        if not _API_KEY.match(query.get("key", "")):
            # Steam answers a missing, malformed or revoked key with an HTML 403.
            self._error(403, "Forbidden")
            return
        steamids = [s for s in query.get("steamids", "").split(",") if s.isdigit()][:100]
        players = [self._player(steamid) for steamid in steamids]
        self._json({"response": {"players": players}})

    def _up_to_date_check(self, query: dict[str, str]) -> None:
        """Is `version` (a server's PatchVersion, dotted) the app's current one? Steam
        compares the digits without the dots and answers `required_version` that way."""
        missing = [name for name in ("appid", "version") if name not in query]
        if missing or not query["appid"].isdigit():
            self._error(400, "Bad Request")
            return
        current = self.server.app_versions.get(int(query["appid"]))
        if current is None:
            self._json({"response": {"success": False, "error": UNKNOWN_APP_ERROR}})
            return
        required = int(current.replace(".", ""))
        digits = query["version"].replace(".", "")
        given = int(digits) if digits.isdigit() else 0
        current_enough = given >= required
        if current_enough and self.server.faults.take_wrong_out_of_date():
            current_enough = False  # "can sometimes return out of date incorrectly"
        if current_enough:
            answer = {"success": True, "up_to_date": True, "version_is_listable": True}
        else:
            answer = {"success": True, "up_to_date": False, "version_is_listable": False,
                      "required_version": required, "message": OUT_OF_DATE_MESSAGE}
        self._json({"response": answer})

    def _player(self, steamid: str) -> dict[str, object]:
        name = self.server.catalogue.player_names.get(steamid, f"Player{steamid[-4:]}")
        avatar_hash = hashlib.sha1(steamid.encode()).hexdigest()  # stable across runs
        avatar = f"{self.server.base_url}/avatars/{avatar_hash}"
        return {
            "steamid": steamid,
            "communityvisibilitystate": 3,
            "profilestate": 1,
            "personaname": name,
            "profileurl": f"https://steamcommunity.com/profiles/{steamid}/",
            "avatar": f"{avatar}.jpg",
            "avatarmedium": f"{avatar}_medium.jpg",
            "avatarfull": f"{avatar}_full.jpg",
            "avatarhash": avatar_hash,
            "personastate": 0,
        }

    def _avatar(self, avatar_hash: str, suffix: str | None) -> None:
        body = avatars.avatar(avatar_hash, suffix or "")
        if body is None:
            self._error(404, "Not Found")
            return
        self.server.stats.add_bytes(len(body))
        self._send(200, body, "image/jpeg", {"Cache-Control": "max-age=86400"})

    def _download(self, match: re.Match[str]) -> None:
        item = self.server.catalogue.item(int(match.group(1)))
        revision = int(match.group(2))
        if item is None or item.removed or not 1 <= revision <= item.revision:
            self._error(404, "Not Found")
            return
        seed, size = vpk.item_seed(item.publishedfileid, revision), item.file_size
        headers = {"Accept-Ranges": "bytes", "ETag": f'"{seed}"'}
        start, end, status = 0, size, 200
        if self.headers.get("Range"):
            wanted = _parse_range(self.headers["Range"], size)
            if wanted is None:
                self._send(416, b"", "text/plain", {"Content-Range": f"bytes */{size}"})
                return
            start, end, status = *wanted, 206
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        body = b"".join(vpk.vpk_bytes(seed, size, start, end))
        self.server.stats.add_bytes(len(body))
        self._send(status, body, "application/octet-stream", headers)

    def _preview(self, item_id: int) -> None:
        item = self.server.catalogue.item(item_id)
        if item is None or item.removed:
            self._error(404, "Not Found")
            return
        body = JPEG_HEADER + bytes(PREVIEW_SIZE - len(JPEG_HEADER))
        self.server.stats.add_bytes(len(body))
        self._send(200, body, "image/jpeg")

    def _content(self, item_id: int) -> None:
        """The current revision for the fake steamcmd; the status says why it cannot have it."""
        self.server.stats.count("steamcmd")
        item = self.server.catalogue.item(item_id)
        if item is None or item.removed:
            self._error(404, "Not Found")  # steamcmd: (File Not Found)
            return
        if item.banned or item.consumer_app_id != 550:
            self._error(403, "Forbidden")  # steamcmd: (Access Denied)
            return
        body = b"".join(vpk.vpk_bytes(item.content_seed, item.file_size))
        self.server.stats.add_bytes(len(body))
        self._send(200, body, "application/octet-stream",
                   {"X-Standin-Filename": item.content_name,
                    "X-Standin-Time-Updated": str(item.time_updated)})

    # ----- admin -------------------------------------------------------------------------
    def _admin_post(self, action: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        payload = json.loads(self.rfile.read(length) or b"{}") if length else {}
        server = self.server
        faults = server.faults
        with faults.lock:
            if action == "fail":
                faults.failures_left = int(payload.get("count", 1))
                faults.failure_status = int(payload.get("status", 503))
            elif action == "truncate":
                faults.truncations_left = int(payload.get("count", 1))
            elif action == "latency":
                faults.latency = float(payload.get("seconds", 0))
            elif action == "malformed":
                body = payload.get("body", "empty")
                if body not in MALFORMED_BODIES:
                    self._json({"ok": False, "error": f"body must be one of"
                                f" {sorted(MALFORMED_BODIES)}"}, status=400)
                    return
                faults.malformed_left = int(payload.get("count", 1))
                faults.malformed_body = MALFORMED_BODIES[body]
            elif action == "wrong_out_of_date":
                faults.wrong_out_of_date_left = int(payload.get("count", 1))
            elif action == "plain_item":
                result = int(payload.get("result", 9))
                if result not in (1, 9):
                    self._json({"ok": False, "error": "result must be 1 or 9"}, status=400)
                    return
                server.catalogue.plain_item_result = result
        result: object = {"ok": True}
        if action == "item":
            try:
                result = {"ok": True, "item": vars(server.catalogue.upsert_item(payload))}
            except (TypeError, ValueError) as exc:
                self._json({"ok": False, "error": str(exc)}, status=400)
                return
        elif action == "collection":
            result = {"ok": True, "collection": vars(server.catalogue.upsert_collection(payload))}
        elif action == "update":
            bumped = server.catalogue.bump(int(payload["publishedfileid"]))
            result = {"ok": bumped is not None}
        elif action == "app":
            try:
                version = _app_version(payload)
            except (KeyError, TypeError, ValueError) as exc:
                self._json({"ok": False, "error": f"give appid and buildid or patch_version"
                            f" (N.N.N.N): {exc}"}, status=400)
                return
            server.app_versions[int(payload["appid"])] = version
            result = {"ok": True, "appid": int(payload["appid"]), "patch_version": version}
        elif action == "reset":
            server.stats.reset()
        elif action not in {"fail", "truncate", "latency", "malformed", "plain_item",
                            "wrong_out_of_date"}:
            self._error(404, "Not Found")
            return
        self._json(result)


def _app_version(payload: dict) -> str:
    """The PatchVersion an app's servers must run: given, or the one a build carries."""
    int(payload["appid"])
    if "patch_version" in payload:
        version = str(payload["patch_version"])
        if not re.fullmatch(r"\d+(\.\d+){3}", version):
            raise ValueError(f"patch_version {version!r}")
        return version
    return patch_version(int(payload["buildid"]))


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python3 -m standins.webapi", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed)")
    parser.add_argument("--bind", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--items-file", type=Path, help="JSON catalogue (see README)")
    parser.add_argument("--generate", type=int, default=0, help="generate N items")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added per request")
    parser.add_argument("--public-url", help="base of file_url (default http://BIND:PORT)")
    parser.add_argument("--offered-buildid", type=int, default=DEFAULT_BUILDID,
                        help="build whose PatchVersion UpToDateCheck holds current for app 550")
    return parser.parse_args(argv)


def build_catalogue(options: argparse.Namespace) -> Catalogue:
    catalogue = load_catalogue(options.items_file) if options.items_file else Catalogue()
    if options.generate:
        generated = generate_catalogue(options.generate)
        catalogue.items.update(generated.items)
        catalogue.collections.update(generated.collections)
    return catalogue


def main(argv: list[str]) -> int:
    options = parse_arguments(argv)
    server = StandinServer(
        (options.bind, options.port), build_catalogue(options), options.public_url
    )
    server.faults.latency = options.latency
    server.app_versions[550] = patch_version(options.offered_buildid)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2})
    thread.start()
    print(f"Stand-in Steam Web API listening on {server.base_url}", flush=True)
    stop.wait()
    server.shutdown()  # from this thread: shutdown() blocks until serve_forever returns
    thread.join()
    server.server_close()
    print("Stand-in Steam Web API stopped", flush=True)
    return 0
