# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# Shipped to hosts verbatim: standard library only (tests/collection/test_host_libraries.py).
"""Workshop overlays: resolve Steam Workshop items, cache their .vpk files, link them.

A workshop overlay is ``{state_dir}/overlays/{id}/`` holding one symlink per item,
``left4dead2/addons/{publishedfileid}.vpk``, pointing at the item's file in the
shared cache ``{state_dir}/workshop_cache/{publishedfileid}.vpk``. Names are the
numeric item ids, not the uploader's file names: ids are unique, stable across
updates and safe as paths, while two uploaders may pick the same file name.

One run (``sync_overlay``):

1. expands collections (nested ones too, each fetched once, so cycles end) with
   ``ISteamRemoteStorage/GetCollectionDetails/v1`` and reads the items with
   ``GetPublishedFileDetails/v1``, both in batches of at most 100 ids per POST;
2. sorts out items Steam will not serve: removed (result 9), banned, made for
   another app than Left 4 Dead 2 (550), or without a file;
3. downloads what the cache lacks or holds in an older version (``time_updated``
   or ``file_size`` differ from the cache index ``workshop_cache/index.json``)
   with a few threads, each through a temp file in the cache dir renamed into
   place after its size checked out, so no partial file is ever visible. The
   first bytes must carry the VPK signature before anything is written: items
   hosted on SteamPipe (UGC v2) have no ``file_url``, or one that serves the
   preview image; those are fetched in one batched ``steamcmd
   +workshop_download_item 550 ID`` run (as the runtime user) and moved from
   steamcmd's content dir into the cache the same way (temp file, rename);
4. only when every download succeeded, and every item is usable unless
   ``fail_on_item_error`` is off, points the overlay's links at the cache and
   removes the links it made earlier for items no longer wanted. Files and links
   it did not make (anything not pointing into the cache) are left alone.

A failed run leaves the overlay as the previous run left it: an instance never
mounts a half-built overlay. A refresh of cached, unchanged items makes one
details request per 100 items (plus one per collection nesting level) and
downloads nothing. Progress lines go to ``workshop_cache/fetch.log`` (and to
any ``progress`` callback), because an Ansible module cannot stream output.

This file is standard library only. The ``workshop_overlay`` module imports it and
the overlays role copies it to ``/usr/local/libexec/left4me/left4me_workshop.py``
for the daily ``left4me-workshop-refresh`` service.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import http.client
import json
import os
import re
import shutil
import stat
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TypeVar

try:
    from ansible_collections.left4me.l4d2.plugins.module_utils import _common, _layout
except ImportError:  # the host's copies, beside left4me_workshop.py (role overlays)
    import left4me_common as _common  # type: ignore[no-redef]
    import left4me_layout as _layout  # type: ignore[no-redef]

DEFAULT_API_URL = "https://api.steampowered.com"
L4D2_APP_ID = 550
BATCH_SIZE = 100  # GetPublishedFileDetails/GetCollectionDetails take at most 100 ids
DETAILS_PATH = "/ISteamRemoteStorage/GetPublishedFileDetails/v1/"
COLLECTION_PATH = "/ISteamRemoteStorage/GetCollectionDetails/v1/"
INDEX_NAME = "index.json"
LOG_NAME = "fetch.log"
LOCK_NAME = ".lock"
# The most one overlay's items may hold together (Steam's file_size, summed at resolve
# time): the cache is shared by every tenant on the host. A big custom campaign is ~1 GiB.
DEFAULT_MAX_SIZE = "10G"
RESULT_OK = 1
RESULT_FILE_NOT_FOUND = 9
FILETYPE_COLLECTION = 2
CHUNK = 256 * 1024
USER_AGENT = "left4me-workshop/0.1"
# Every VPK (v1 and v2) starts with the signature 0x55AA1234, little-endian.
VPK_MAGIC = b"\x34\x12\xaa\x55"
STEAMCMD_STAGING = ".steamcmd"  # steamcmd's force_install_dir, inside the cache
# steamcmd's verdicts on workshop_download_item; it does not stop (nor always exit non-zero)
# after a failed item, so each item's line is what counts.
_STEAMCMD_OK_RE = re.compile(r'Success\. Downloaded item (\d+) to "([^"]*)" \((\d+) bytes\)')
_STEAMCMD_FAILED_RE = re.compile(r"ERROR! Download item (\d+) failed \(([^)]*)\)")
_STEAMCMD_TIMEOUT_RE = re.compile(r"ERROR! Timeout downloading item (\d+)")

# Plain urllib, not ansible.module_utils.urls: this file also runs outside Ansible, as the
# refresh service's library. The default opener honours https_proxy and verifies TLS.
OPENER = urllib.request.build_opener()

_ITEM_ID_RE = re.compile(r"[1-9][0-9]{0,19}")
T = TypeVar("T")


class WorkshopError(_common.Left4meError):
    """Bad input, an API failure or a host state we refuse; the message says what to do."""


# --- validation -----------------------------------------------------------------------


def validate_item_ids(ids: Iterable[object], what: str) -> list[str]:
    """Workshop ids as canonical decimal strings, duplicates dropped, order kept."""
    seen: dict[str, None] = {}
    for raw in ids:
        text = str(raw).strip()
        if not _ITEM_ID_RE.fullmatch(text):
            raise WorkshopError(f"{what}: {raw!r} is not a Workshop id (a positive number)")
        seen.setdefault(text, None)
    return list(seen)


def chunks(values: Sequence[str], size: int = BATCH_SIZE) -> list[list[str]]:
    return [list(values[start:start + size]) for start in range(0, len(values), size)]


# --- Web API client -------------------------------------------------------------------


class SteamApi:
    """POSTs form-encoded requests to the Steam Web API with a bounded retry.

    Connection errors, timeouts, cut-off bodies, HTTP 429 and 5xx, and HTTP 200 answers
    that are not the endpoint's JSON (an empty body, ``{"response":{}}``: Steam under load
    answers so, and so do requests it will not serve) are retried up to ``attempts`` times
    in total, waiting ``retry_delay`` seconds, doubled each time, and no retry starts after
    ``deadline`` seconds. Other HTTP errors fail at once. ``calls`` counts requests sent,
    retries included.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_API_URL,
        api_key: str | None = None,
        timeout: float = 30.0,
        attempts: int = 3,
        retry_delay: float = 1.0,
        deadline: float = 120.0,
    ) -> None:
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise WorkshopError(f"api_url {base_url!r} must be an http:// or https:// URL")
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key or None
        self.timeout = timeout
        self.attempts = max(1, attempts)
        self.retry_delay = retry_delay
        self.deadline = deadline
        self.calls = 0

    def post(self, path: str, form: dict[str, str], key: str) -> list[dict[str, object]]:
        """The ``key`` list of the endpoint's ``response`` (entries that are objects)."""
        if self.api_key:
            form = {"key": self.api_key, **form}
        body = urllib.parse.urlencode(form).encode()
        url = self.base_url + path
        name = path.strip("/").split("/")[1]
        started = time.monotonic()
        tries = 0

        def once() -> list[dict[str, object]]:
            nonlocal tries
            self.calls += 1
            tries += 1
            request = urllib.request.Request(
                url,
                data=body,
                method="POST",
                headers={
                    "Content-Type": "application/x-www-form-urlencoded",
                    "User-Agent": USER_AGENT,
                },
            )
            with OPENER.open(request, timeout=self.timeout) as response:
                return answer_entries(response.read(), key)

        try:
            return with_retries(once, f"Steam Web API {name}", self.attempts, self.retry_delay,
                                deadline=started + self.deadline)
        except WorkshopError as exc:
            if isinstance(exc.__cause__, BadAnswer):
                raise WorkshopError(bad_answer_message(
                    name, exc.__cause__, tries, time.monotonic() - started,
                    bool(self.api_key))) from exc.__cause__
            raise

    def collection_details(self, ids: Sequence[str]) -> list[dict[str, object]]:
        form = {"collectioncount": str(len(ids))}
        form.update({f"publishedfileids[{i}]": value for i, value in enumerate(ids)})
        return self.post(COLLECTION_PATH, form, "collectiondetails")

    def published_file_details(self, ids: Sequence[str]) -> list[dict[str, object]]:
        form = {"itemcount": str(len(ids))}
        form.update({f"publishedfileids[{i}]": value for i, value in enumerate(ids)})
        return self.post(DETAILS_PATH, form, "publishedfiledetails")


class BadAnswer(Exception):
    """HTTP 200 whose body is not the endpoint's JSON; ``kind`` is empty, no_response,
    empty_response or not_json."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind


def answer_entries(raw: bytes, key: str) -> list[dict[str, object]]:
    """The ``response.<key>`` list of a Web API body; BadAnswer when it has none.

    A ``response`` without the list is not "nothing": Steam lists every id it was asked
    about (result 9 for an unknown one), so an answer that lists nothing is no answer.
    """
    if not raw.strip():
        raise BadAnswer("empty", "an empty body")
    try:
        payload = json.loads(raw)
    except ValueError as exc:
        raise BadAnswer("not_json", f"not JSON: {describe_head(raw)} ({exc})") from exc
    response = payload.get("response") if isinstance(payload, dict) else None
    if not isinstance(response, dict):
        raise BadAnswer("no_response", f"JSON without a response object: {raw[:60]!r}")
    entries = response.get(key)
    if not isinstance(entries, list):
        raise BadAnswer("empty_response", f"a response with no {key} list: {raw[:60]!r}")
    return [entry for entry in entries if isinstance(entry, dict)]


def bad_answer_message(name: str, exc: BadAnswer, tries: int, seconds: float,
                       keyed: bool) -> str:
    key_hint = ("a rejected api_key (check it, or leave api_key unset: these endpoints work"
                " without one)" if keyed else "a request Steam would not serve")
    causes = f"Steam under load (try again later) or {key_hint}"
    if exc.kind == "not_json":
        causes += ", or an api_url that is not the Steam Web API"
    return (f"Steam Web API {name} answered HTTP 200 with {exc} {tries} time(s) in"
            f" {seconds:.0f} s; likely causes: {causes}. Nothing was changed")


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, urllib.error.HTTPError):
        return exc.code == 429 or exc.code >= 500
    return isinstance(exc, (urllib.error.URLError, http.client.HTTPException, OSError,
                            TransientError, BadAnswer))


class TransientError(Exception):
    """A download that ended early or came back the wrong size: worth another try."""


class NotVpkError(Exception):
    """file_url answered something other than a VPK (a preview image, an HTML page)."""


def describe_head(head: bytes) -> str:
    """What a body that is not a VPK looks like, for the error message."""
    kinds = ((b"\xff\xd8\xff", "a JPEG image"), (b"\x89PNG", "a PNG image"),
             (b"GIF8", "a GIF image"), (b"PK\x03\x04", "a zip archive"),
             (b"<", "an HTML/XML page"))
    for prefix, kind in kinds:
        if head.lstrip()[:len(prefix)] == prefix:
            return kind
    return f"data starting {head[:8].hex(' ') or '(nothing)'}"


def is_vpk_head(head: bytes) -> bool:
    return head[:4] == VPK_MAGIC


def with_retries(action: Callable[[], T], what: str, attempts: int, delay: float,
                 deadline: float | None = None) -> T:
    """``action()``, retried on transient errors; no retry starts after ``deadline``
    (a ``time.monotonic()`` value)."""
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except Exception as exc:  # noqa: BLE001 - sorted into retryable or not just below
            if not _retryable(exc):
                if isinstance(exc, urllib.error.HTTPError):
                    raise WorkshopError(f"{what} failed: HTTP {exc.code} {exc.reason}") from exc
                raise
            pause = delay * 2 ** (attempt - 1)
            if attempt == attempts or (deadline is not None
                                       and time.monotonic() + pause > deadline):
                raise WorkshopError(
                    f"{what} failed after {attempt} attempts: {describe_error(exc)}"
                ) from exc
            time.sleep(pause)
    raise AssertionError("unreachable")


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return f"cannot connect ({exc.reason})"
    if isinstance(exc, http.client.IncompleteRead):
        return f"connection closed after {len(exc.partial)} bytes"
    return str(exc) or type(exc).__name__


# --- resolving items ------------------------------------------------------------------


@dataclass
class ItemResult:
    """What happened to one Workshop id (an item, or a collection that failed)."""

    publishedfileid: str
    status: str = "pending"  # cached | downloaded | would_download | error
    title: str = ""
    filename: str = ""
    file_size: int = 0
    time_updated: int = 0
    file_url: str = ""
    source: str = "http"  # http (file_url) | steamcmd (SteamPipe item, or file_url no VPK)
    error: str = ""
    bytes: int = 0
    seconds: float = 0.0
    note: str = ""  # why steamcmd was needed; that a "collection" is an item
    # Steam's answer listed nothing for this id (a collection that did not expand, an id
    # missing from the answer): the links it may have contributed are kept.
    unlisted: bool = False

    def report(self) -> dict[str, object]:
        data = asdict(self)
        data.pop("file_url")
        data.pop("unlisted")
        return data

    def add_note(self, text: str) -> None:
        self.note = f"{self.note}; {text}" if self.note else text


def resolve_collections(
    api: SteamApi, collection_ids: Sequence[str]
) -> tuple[list[str], dict[str, str], list[str], dict[str, object]]:
    """Expand collections into item ids.

    Returns the items in order, errors by id (collections Steam's answer did not list),
    the collections seen, and the ids answered as no collection with children, by the
    result Steam gave: result 9, or result 1 without children. Steam answers a plain item
    either way (the caller asks GetPublishedFileDetails which it is).

    Each level of nesting is one batch of requests; a collection already seen is not
    fetched again, so a collection that contains itself (directly or not) ends.
    """
    items: dict[str, None] = {}
    errors: dict[str, str] = {}
    seen: dict[str, None] = {}
    childless: dict[str, object] = {}
    pending = list(collection_ids)
    while pending:
        level = [cid for cid in dict.fromkeys(pending) if cid not in seen]
        pending = []
        for batch in chunks(level):
            seen.update(dict.fromkeys(batch))
            answers = {str(e.get("publishedfileid")): e for e in api.collection_details(batch)}
            for cid in batch:
                entry = answers.get(cid)
                if entry is None:
                    errors[cid] = (f"collection {cid} is missing from the Steam Web API"
                                   " answer")
                    continue
                children = entry.get("children") if entry.get("result") == RESULT_OK else None
                if not children or not isinstance(children, list):
                    childless[cid] = entry.get("result")
                    continue
                ordered = sorted((c for c in children if isinstance(c, dict)),
                                 key=lambda child: int(child.get("sortorder", 0)))
                for child in ordered:
                    child_id = str(child.get("publishedfileid", ""))
                    if not _ITEM_ID_RE.fullmatch(child_id):
                        continue
                    if int(child.get("filetype", 0)) == FILETYPE_COLLECTION:
                        pending.append(child_id)
                    else:
                        items.setdefault(child_id, None)
    return list(items), errors, list(seen), childless


def childless_collection(cid: str, result: object, item: ItemResult | None) -> str | None:
    """What a collection answered without children is, given its GetPublishedFileDetails.

    None when it is a usable item (the caller uses it as one); otherwise the error.
    """
    answered = ("result 1 without children" if result == RESULT_OK
                else f"result {result}")
    if item is not None and item.status != "error":
        return None
    problem = item.error.split(": ", 1)[-1] if item is not None else ""
    if "is a collection" in problem:  # creator_app_id 766: a real collection, now empty
        return (f"collection {cid} lists no items (Steam answered {answered}); its links"
                " are kept")
    if item is None or "removed" in problem or "missing" in problem:
        return f"collection {cid} was not found or was removed (Steam answered {answered})"
    return f"{cid} is an item, not a collection, and {problem}"


def item_problem(entry: dict[str, object] | None, app_id: int = L4D2_APP_ID) -> str | None:
    """Why Steam will not give us this item's file, or None when it will."""
    if entry is None:
        return "missing from the Steam Web API answer"
    result = entry.get("result")
    if result != RESULT_OK:
        if result == RESULT_FILE_NOT_FOUND:
            return "removed, private or never existed (Steam result 9, file not found)"
        return f"Steam answered result {result} instead of 1 (OK)"
    consumer = entry.get("consumer_app_id")
    if consumer != app_id:
        return (f"made for app {consumer}, not Left 4 Dead 2 ({app_id});"
                " check the id")
    if entry.get("banned"):
        reason = entry.get("ban_reason") or "no reason given"
        return f"banned by Steam ({reason})"
    if entry.get("creator_app_id") == 766:
        return "is a collection, not an item; list it under collections"
    # No file_url: the item is on SteamPipe (UGC v2), which only steamcmd downloads.
    url = str(entry.get("file_url") or "")
    if url and urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        return f"file_url {url!r} is not http(s)"
    try:
        if int(entry.get("file_size", 0)) <= 0:  # type: ignore[arg-type]
            return "has an empty file"
    except (TypeError, ValueError):
        return f"has a bad file_size {entry.get('file_size')!r}"
    return None


def describe_items(
    api: SteamApi, item_ids: Sequence[str], app_id: int = L4D2_APP_ID
) -> list[ItemResult]:
    """Details of every item, one request per 100 ids; unusable items carry an error."""
    results: list[ItemResult] = []
    for batch in chunks(item_ids):
        answers = {str(e.get("publishedfileid")): e for e in api.published_file_details(batch)}
        for item_id in batch:
            entry = answers.get(item_id)
            problem = item_problem(entry, app_id)
            result = ItemResult(item_id)
            if entry is not None:
                result.title = str(entry.get("title") or "")
                result.filename = str(entry.get("filename") or "")
            if problem or entry is None:
                result.status, result.error = "error", f"item {item_id}: {problem}"
                result.unlisted = entry is None
            else:
                result.file_size = int(entry["file_size"])  # type: ignore[call-overload]
                result.time_updated = int(entry.get("time_updated") or 0)  # type: ignore[call-overload]
                result.file_url = str(entry.get("file_url") or "")
                if not result.file_url:
                    result.source = "steamcmd"
                    result.note = "no file_url: hosted on SteamPipe"
            results.append(result)
    return results


# --- cache ----------------------------------------------------------------------------


def cache_file(cache_dir: str, item_id: str) -> str:
    return os.path.join(cache_dir, f"{item_id}.vpk")


def read_index(cache_dir: str) -> dict[str, dict[str, object]]:
    try:
        with open(os.path.join(cache_dir, INDEX_NAME), encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        return {}  # a damaged index only costs downloads; they rebuild it
    items = data.get("items") if isinstance(data, dict) else None
    return {str(k): v for k, v in items.items() if isinstance(v, dict)} if isinstance(
        items, dict) else {}


def is_cached(cache_dir: str, index: dict[str, dict[str, object]], item: ItemResult) -> bool:
    """The cache holds this version: same time_updated and size, and the file is there."""
    entry = index.get(item.publishedfileid)
    if not entry or entry.get("time_updated") != item.time_updated:
        return False
    if entry.get("file_size") != item.file_size:
        return False
    try:
        info = os.lstat(cache_file(cache_dir, item.publishedfileid))
    except FileNotFoundError:
        return False
    # A steamcmd download is the .vpk out of the item's content, whose size Steam does not
    # announce: the index records it.
    return stat.S_ISREG(info.st_mode) and info.st_size == entry.get("vpk_size", item.file_size)


def write_json_atomic(path: str, data: object, owner: tuple[int, int] | None) -> None:
    _common.write_atomic(path, json.dumps(data, indent=1, sort_keys=True) + "\n", 0o644, owner)


def _store_download(item: ItemResult, response, block: bytes, fd: int, temp: str, final: str,
                    owner: tuple[int, int] | None) -> None:
    """Write the response into ``temp``; rename it to ``final`` once the size is right."""
    received = 0
    with os.fdopen(fd, "wb") as out:
        while block:
            received += len(block)
            if received > item.file_size:
                raise TransientError(
                    f"received more than the {item.file_size} bytes Steam announced")
            out.write(block)
            block = response.read(CHUNK)
        out.flush()
        os.fsync(out.fileno())
    if received != item.file_size:
        raise TransientError(
            f"received {received} of {item.file_size} bytes (download cut off)")
    os.chmod(temp, 0o644)
    if owner:
        os.chown(temp, *owner)
    os.replace(temp, final)
    item.bytes += received


def download(
    item: ItemResult,
    cache_dir: str,
    owner: tuple[int, int] | None,
    timeout: float,
    attempts: int,
    retry_delay: float,
) -> None:
    """Fetch one item into the cache through a temp file in the same directory.

    The temp file lives in the cache dir, so the final rename never crosses a
    filesystem (EXDEV); the rename only happens once the size matches file_size.
    """
    started = time.monotonic()
    final = cache_file(cache_dir, item.publishedfileid)

    def once() -> bytes:
        request = urllib.request.Request(item.file_url, headers={"User-Agent": USER_AGENT})
        with OPENER.open(request, timeout=timeout) as response:
            block = response.read(CHUNK)
            # The signature decides before a byte reaches the cache: file_url of an item
            # moved to SteamPipe may serve its preview image, with a plausible size.
            if not is_vpk_head(block):
                raise NotVpkError(f"file_url served {describe_head(block)}, not a VPK")
            fd, temp = tempfile.mkstemp(dir=cache_dir, prefix=f".{item.publishedfileid}.",
                                        suffix=".part")
            try:
                _store_download(item, response, block, fd, temp, final, owner)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temp)
                raise
        return b""

    try:
        with_retries(once, f"download of item {item.publishedfileid}", attempts, retry_delay)
        item.status = "downloaded"
    except NotVpkError as exc:
        # Not an error yet: steamcmd may get the item from SteamPipe (sync_overlay decides).
        item.status, item.source, item.note = "would_download", "steamcmd", str(exc)
    except Exception as exc:  # noqa: BLE001 - every failure becomes this item's error
        item.status = "error"
        text = str(exc) if isinstance(exc, WorkshopError) else describe_error(exc)
        item.error = f"item {item.publishedfileid}: {text}; the cache keeps its previous copy"
    finally:
        item.seconds = round(time.monotonic() - started, 3)


# --- steamcmd, for items on SteamPipe -------------------------------------------------


RunCommand = Callable[[list[str], str, float], tuple["int | None", str]]


@dataclass
class Steamcmd:
    """How to run steamcmd as the runtime user: its directory and a runner.

    ``run(argv, cwd, timeout)`` returns (exit code or None on timeout, output). The
    workshop_overlay module (root) passes one that drops to the runtime user with
    ``_steamcmd.run_streaming``; the refresh service already runs as that user.
    """

    directory: str
    run: RunCommand
    timeout: float = 1800.0

    @property
    def script(self) -> str:
        return os.path.join(self.directory, "steamcmd.sh")

    def available(self) -> bool:
        return os.path.isfile(self.script)


def steamcmd_argv(steamcmd: Steamcmd, staging: str, item_ids: Sequence[str]) -> list[str]:
    """One steamcmd run for all items; anonymous login fetches L4D2 (550) Workshop content."""
    argv = [steamcmd.script, "+force_install_dir", staging, "+login", "anonymous"]
    for item_id in item_ids:
        argv += ["+workshop_download_item", str(L4D2_APP_ID), item_id]
    return argv + ["+quit"]


def parse_steamcmd_workshop(output: str) -> dict[str, tuple[bool, str]]:
    """Each item's verdict in steamcmd's output: (succeeded, detail)."""
    verdicts: dict[str, tuple[bool, str]] = {}
    for line in output.splitlines():
        line = line.rsplit("\r", 1)[-1]
        if match := _STEAMCMD_OK_RE.search(line):
            verdicts[match.group(1)] = (True, match.group(2))
        elif match := _STEAMCMD_FAILED_RE.search(line):
            verdicts[match.group(1)] = (False, f"steamcmd: download failed ({match.group(2)})")
        elif match := _STEAMCMD_TIMEOUT_RE.search(line):
            verdicts[match.group(1)] = (False, "steamcmd: timeout downloading the item")
    return verdicts


def steamcmd_item_parts(item_id: str) -> list[str]:
    """steamcmd's content dir of an item, relative to its force_install_dir."""
    return ["steamapps", "workshop", "content", str(L4D2_APP_ID), item_id]


def steamcmd_item_dir(staging: str, item_id: str) -> str:
    return os.path.join(staging, *steamcmd_item_parts(item_id))


_NOFOLLOW_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def open_dir_below(base: str, parts: Sequence[str]) -> int:
    """An fd of base/parts..., every component opened without following a symlink.

    The staging tree is the runtime user's while the module reading it is root: a link
    planted there must not make root copy (or delete) something outside it.
    """
    fd = os.open(base, _NOFOLLOW_DIR)
    try:
        for part in parts:
            child = os.open(part, _NOFOLLOW_DIR, dir_fd=fd)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def find_item_vpk(dir_fd: int, where: str) -> str:
    """The name of the one VPK in steamcmd's content dir of an item, by signature.

    Legacy items come down as ``<hcontent>_legacy.bin``, SteamPipe ones under the
    uploader's file name; either way the file must start with the VPK signature. Only
    regular files directly in the item's dir count (an L4D2 add-on is one .vpk).
    """
    found, others = [], []
    for name in sorted(os.listdir(dir_fd)):
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK,
                         dir_fd=dir_fd)
        except OSError:
            others.append((name, b"<"))  # a link or something unreadable: not ours to read
            continue
        with os.fdopen(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                continue
            head = fh.read(16)
        (found if is_vpk_head(head) else others).append((name, head))
    if len(found) == 1:
        return found[0][0]
    if not found:
        seen = ", ".join(f"{name} ({describe_head(head)})" for name, head in others)
        raise WorkshopError(f"steamcmd delivered no VPK in {where} (found {seen or 'nothing'});"
                            " this add-on cannot be mounted as it is")
    names = ", ".join(entry[0] for entry in found)
    raise WorkshopError(f"steamcmd delivered {len(found)} VPK files ({names}) in {where}; one"
                        " add-on must be one .vpk")


def adopt_vpk(dir_fd: int, name: str, item: ItemResult, cache_dir: str,
              owner: tuple[int, int] | None) -> int:
    """Copy steamcmd's VPK into the cache through a temp file and rename; returns its size.

    Copied, not renamed: steamcmd's dir may be on another filesystem (EXDEV), and the
    copy gets the cache's owner and mode like an HTTP download.
    """
    fd, temp = tempfile.mkstemp(dir=cache_dir, prefix=f".{item.publishedfileid}.",
                                suffix=".part")
    try:
        source = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
        with os.fdopen(fd, "wb") as out, os.fdopen(source, "rb") as src:
            shutil.copyfileobj(src, out, CHUNK)
            out.flush()
            os.fsync(out.fileno())
            size = out.tell()
        os.chmod(temp, 0o644)
        if owner:
            os.chown(temp, *owner)
        os.replace(temp, cache_file(cache_dir, item.publishedfileid))
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    return size


def remove_below(base: str, parts: Sequence[str]) -> None:
    """Remove steamcmd's copy of an item (the cache has it now, or it failed), no links followed."""
    try:
        parent = open_dir_below(base, parts[:-1])
    except OSError:
        return  # nothing there (or not a plain directory tree): nothing of ours to remove
    try:
        shutil.rmtree(parts[-1], dir_fd=parent, ignore_errors=True)
    finally:
        os.close(parent)


def make_staging(cache_dir: str, owner: tuple[int, int] | None) -> str:
    """steamcmd's force_install_dir: inside the cache, writable by the runtime user."""
    staging = os.path.join(cache_dir, STEAMCMD_STAGING)
    if not check_real_dir(staging):
        os.mkdir(staging, 0o755)
        if owner:
            os.chown(staging, *owner)
    return staging


def fetch_with_steamcmd(items: Sequence[ItemResult], cache_dir: str,
                        owner: tuple[int, int] | None, steamcmd: Steamcmd) -> None:
    """One steamcmd run for all the items; each one's VPK moves into the cache, or it errs."""
    started = time.monotonic()
    staging = make_staging(cache_dir, owner)
    ids = [item.publishedfileid for item in items]
    try:
        rc, output = steamcmd.run(steamcmd_argv(steamcmd, staging, ids), steamcmd.directory,
                                  steamcmd.timeout)
    except OSError as exc:
        rc, output = 1, f"could not run {steamcmd.script}: {exc}"
    verdicts = parse_steamcmd_workshop(output)
    seconds = round((time.monotonic() - started) / max(1, len(items)), 3)
    for item in items:
        item.seconds += seconds
        succeeded, detail = verdicts.get(item.publishedfileid, (False, ""))
        if not detail:
            last = [line for line in output.splitlines() if line.strip()][-1:] or ["no output"]
            why = "stopped at its deadline" if rc is None else f"exit {rc}"
            detail = f"steamcmd gave no result for it ({why}; last line: {last[0].strip()})"
        parts = steamcmd_item_parts(item.publishedfileid)
        try:
            if not succeeded:
                raise WorkshopError(detail)
            dir_fd = open_dir_below(staging, parts)
            try:
                name = find_item_vpk(dir_fd, steamcmd_item_dir(staging, item.publishedfileid))
                item.bytes = adopt_vpk(dir_fd, name, item, cache_dir, owner)
            finally:
                os.close(dir_fd)
            item.status = "downloaded"
        except (WorkshopError, OSError) as exc:
            item.status = "error"
            reason = f" ({item.note})" if item.note else ""
            item.error = (f"item {item.publishedfileid}: needs steamcmd{reason}; {exc};"
                          " the cache keeps its previous copy")
        finally:
            remove_below(staging, parts)


# --- overlay links --------------------------------------------------------------------


@dataclass
class OverlayPaths:
    overlays: str
    root: str
    game: str
    addons: str
    cache: str


def overlay_paths(overlay_id: str, state_dir: str = _common.DEFAULT_STATE_DIR) -> OverlayPaths:
    root = _layout.overlay_root(overlay_id, state_dir, WorkshopError)
    game = os.path.join(root, "left4dead2")
    return OverlayPaths(
        overlays=os.path.dirname(root),
        root=root,
        game=game,
        addons=os.path.join(game, "addons"),
        cache=os.path.join(os.path.normpath(state_dir), _layout.WORKSHOP_CACHE_DIR),
    )


def check_real_dir(path: str) -> bool:
    """True if ``path`` is a directory (not a symlink to one), False if it is missing."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise WorkshopError(f"{path} must be a real directory, not a symlink or a file;"
                            " move it away and run again")
    return True


@dataclass
class LinkPlan:
    create: dict[str, str] = field(default_factory=dict)  # link name -> target
    remove: list[str] = field(default_factory=list)
    before: list[str] = field(default_factory=list)  # names of our links before the run
    foreign: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.create or self.remove)


def plan_addon_links(paths: OverlayPaths, item_ids: Sequence[str]) -> LinkPlan:
    """Links to create or repoint and our stale links to remove; foreign entries stay.

    A link is ours when it points into the workshop cache. A wanted name taken by
    a foreign file is an error, because the game would load that file instead.
    """
    wanted = {f"{item_id}.vpk": cache_file(paths.cache, item_id) for item_id in item_ids}
    plan = LinkPlan()
    existing: dict[str, str | None] = {}
    if check_real_dir(paths.addons):
        for name in sorted(os.listdir(paths.addons)):
            full = os.path.join(paths.addons, name)
            existing[name] = os.readlink(full) if os.path.islink(full) else None
    for name, target in existing.items():
        ours = target is not None and os.path.dirname(target) == paths.cache
        if ours:
            plan.before.append(name)
            if name not in wanted:
                plan.remove.append(name)
        else:
            plan.foreign.append(name)
            if name in wanted:
                raise WorkshopError(
                    f"{os.path.join(paths.addons, name)} exists and is not a link into"
                    f" {paths.cache}; remove it so the Workshop item can take its place"
                )
    for name, target in wanted.items():
        if existing.get(name) != target:
            plan.create[name] = target
    return plan


def apply_addon_links(plan: LinkPlan, paths: OverlayPaths, owner: tuple[int, int] | None) -> None:
    for directory in (paths.root, paths.game, paths.addons):
        if not check_real_dir(directory):
            os.mkdir(directory, 0o755)
            os.chmod(directory, 0o755)
            if owner:
                os.chown(directory, *owner)
    for name, target in plan.create.items():
        _common.replace_symlink(os.path.join(paths.addons, name), target, owner)
    for name in plan.remove:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(paths.addons, name))


# --- one overlay, end to end ----------------------------------------------------------


@dataclass
class SyncResult:
    overlay_id: str
    path: str
    items: list[ItemResult]
    links: LinkPlan
    collections: list[str]
    changed: bool = False
    failed: bool = False
    msg: str = ""
    bytes_fetched: int = 0
    api_calls: int = 0
    notices: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[str]:
        return [item.error for item in self.items if item.status == "error"]

    @property
    def warnings(self) -> list[str]:
        """Item errors, notes that change what an id means, and kept links, for a person."""
        notes = [f"{item.publishedfileid}: {item.note}" for item in self.items
                 if item.status != "error" and "listed under collections" in item.note]
        return [*self.errors, *notes, *self.notices]


def cache_lock(cache_dir: str, owner: tuple[int, int] | None):
    """Serialise runs (Ansible and the refresh timer) that share the cache."""
    return _common.exclusive_lock(os.path.join(cache_dir, LOCK_NAME), 0o644, owner)


class ProgressLog:
    """Appends timestamped progress lines to fetch.log and passes them to a callback."""

    def __init__(self, path: str | None, owner: tuple[int, int] | None,
                 echo: Callable[[str], None] | None = None) -> None:
        self.path, self.owner, self.echo = path, owner, echo

    def __call__(self, line: str) -> None:
        stamped = f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {line}"
        if self.echo:
            self.echo(line)
        if not self.path:
            return
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW
                     | os.O_CLOEXEC, 0o644)
        try:
            if self.owner:
                os.fchown(fd, *self.owner)
            os.write(fd, (stamped + "\n").encode("utf-8", "replace"))
        finally:
            os.close(fd)


def _sync_inputs(overlay_id: str, items: Iterable[object], collections: Iterable[object],
                 state_dir: str) -> tuple[OverlayPaths, list[str], list[str]]:
    """Validated ids and the overlay's paths; the directories game_host makes must exist."""
    paths = overlay_paths(overlay_id, state_dir)
    item_ids = validate_item_ids(items, "items")
    collection_ids = validate_item_ids(collections, "collections")
    if not item_ids and not collection_ids:
        raise WorkshopError(f"overlay {overlay_id}: give at least one item or collection")
    for directory in (paths.overlays, paths.cache):
        if not check_real_dir(directory):
            raise WorkshopError(f"{directory} is missing; the game_host role creates it")
    check_real_dir(paths.root)
    check_real_dir(paths.game)
    return paths, item_ids, collection_ids


def _describe_wanted(api: SteamApi, item_ids: list[str],
                     collection_ids: list[str]) -> tuple[list[ItemResult], list[str]]:
    """One result per wanted item (collections expanded), plus failed collections.

    A "collection" Steam answers without children is looked up as an item in the same
    details request: a plain item is used as an item (with a note saying so), anything
    else is an error of that collection.
    """
    from_collections, collection_errors, seen, childless = resolve_collections(
        api, collection_ids)
    wanted = list(dict.fromkeys([*item_ids, *from_collections]))
    probed = [cid for cid in childless if cid not in wanted]
    described = describe_items(api, wanted + probed) if wanted or probed else []
    by_id = {item.publishedfileid: item for item in described}
    results = [by_id[item_id] for item_id in wanted]
    for cid, answer in childless.items():
        item = by_id.get(cid)
        error = childless_collection(cid, answer, item)
        if error is None and item is not None:
            item.add_note(f"listed under collections, but Steam says {cid} is an item, so it"
                          " is used as one (list it under items)")
            if cid in probed:
                results.append(item)
        elif error is not None:
            collection_errors[cid] = error
    for cid, error in collection_errors.items():
        results.append(ItemResult(cid, status="error", error=error, unlisted=True))
    return results, seen


def _refuse_steampipe_without_steamcmd(results: list[ItemResult], cache: str, index: dict,
                                       steamcmd: Steamcmd | None) -> None:
    steamcmd_ready = steamcmd is not None and steamcmd.available()
    for item in results:
        if (item.status != "error" and item.source == "steamcmd" and not steamcmd_ready
                and not is_cached(cache, index, item)):
            where = steamcmd.script if steamcmd else "steamcmd"
            item.status = "error"
            item.error = (f"item {item.publishedfileid}: {item.note}, which only steamcmd"
                          f" downloads, and {where} is missing (role game_host installs it)")


def _mark_cached(usable: list[ItemResult], cache: str, index: dict) -> list[ItemResult]:
    """Mark each item cached or would_download; returns those to download."""
    missing: list[ItemResult] = []
    for item in usable:
        if is_cached(cache, index, item):
            item.status = "cached"
        else:
            item.status = "would_download"
            missing.append(item)
    return missing


def _recorder(index: dict, log: ProgressLog, overlay_id: str,
              total: int) -> Callable[[ItemResult], None]:
    """Records each finished item in the cache index and the progress log, counting."""
    done = 0

    def record(item: ItemResult) -> None:
        nonlocal done
        done += 1
        if item.status == "downloaded":
            index[item.publishedfileid] = {
                "time_updated": item.time_updated,
                "file_size": item.file_size,
                "filename": item.filename,
                "title": item.title,
                "source": item.source,
            }
            if item.source == "steamcmd":
                index[item.publishedfileid]["vpk_size"] = item.bytes
            log(f"overlay={overlay_id} item={item.publishedfileid} downloaded"
                f" {item.bytes} bytes in {item.seconds:.2f} s via {item.source}"
                f" [{done}/{total}]")
        else:
            log(f"overlay={overlay_id} {item.error} [{done}/{total}]")

    return record


def _download_over_http(missing: list[ItemResult], cache: str, owner: tuple[int, int] | None,
                        record: Callable[[ItemResult], None], workers: int, timeout: float,
                        attempts: int, retry_delay: float) -> None:
    over_http = [item for item in missing if item.source == "http"]
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = {
            pool.submit(download, item, cache, owner, timeout, attempts, retry_delay):
            item for item in over_http
        }
        for future in concurrent.futures.as_completed(futures):
            item = futures[future]
            future.result()
            if item.status != "would_download":  # else steamcmd's turn, below
                record(item)


def _download_with_steamcmd(missing: list[ItemResult], cache: str,
                            owner: tuple[int, int] | None, steamcmd: Steamcmd | None,
                            record: Callable[[ItemResult], None], log: ProgressLog,
                            overlay_id: str) -> None:
    """The items HTTP could not fetch (SteamPipe), in one steamcmd run."""
    via_steamcmd = [item for item in missing if item.status == "would_download"]
    if not via_steamcmd:
        return
    log(f"overlay={overlay_id} fetching {len(via_steamcmd)} item(s) with steamcmd:"
        f" {' '.join(item.publishedfileid for item in via_steamcmd)}")
    if steamcmd is not None and steamcmd.available():
        fetch_with_steamcmd(via_steamcmd, cache, owner, steamcmd)
    else:
        for item in via_steamcmd:
            item.status = "error"
            item.error = (f"item {item.publishedfileid}: {item.note}; only steamcmd can"
                          " fetch it and steamcmd is missing (role game_host installs"
                          " it); the cache keeps its previous copy")
    for item in via_steamcmd:
        record(item)


def oversize_message(overlay_id: str, usable: Sequence[ItemResult], cap: int) -> str | None:
    """Why an overlay's items may not be fetched (their total is above ``cap``), or None."""
    total = sum(item.file_size for item in usable)
    if total <= cap:
        return None
    largest = sorted(usable, key=lambda item: item.file_size, reverse=True)[:3]
    named = ", ".join(f"{item.publishedfileid} ({_common.format_size(item.file_size)})"
                      for item in largest)
    total_text, cap_text = _common.format_size(total), _common.format_size(cap)
    return (f"overlay {overlay_id}: its {len(usable)} item(s) hold {total_text} in all,"
            f" above the cap of {cap_text} for one Workshop overlay (max_size);"
            f" nothing was downloaded or removed. The largest: {named}. Remove items, or"
            " split them over several overlays")


def unusable_message(overlay_id: str, errors: Sequence[str]) -> str:
    """Why a sync with fail_on_item_error refused to touch the overlay."""
    return (f"overlay {overlay_id}: {len(errors)} Workshop id(s) unusable, overlay left as it"
            f" was (set fail_on_item_error=false to build it without them): {'; '.join(errors)}")


def failed_downloads_message(overlay_id: str, errors: Sequence[str]) -> str:
    """Why a sync left the overlay's links as they were after downloading."""
    return (f"overlay {overlay_id}: {len(errors)} download(s) failed, overlay links left as"
            f" they were: {'; '.join(errors)}")


def _fetch_missing(missing: list[ItemResult], wanted: int, cache: str, index: dict,
                   log: ProgressLog, overlay_id: str, owner: tuple[int, int] | None,
                   steamcmd: Steamcmd | None, *, workers: int, timeout: float, attempts: int,
                   retry_delay: float) -> None:
    """Downloads the items the cache lacks (over HTTP, SteamPipe ones with steamcmd) and
    records them in the cache index; a failed download is marked on its item."""
    if missing:
        log(f"overlay={overlay_id} downloading {len(missing)} of {wanted} item(s)")
    record = _recorder(index, log, overlay_id, len(missing))
    _download_over_http(missing, cache, owner, record, workers, timeout, attempts, retry_delay)
    _download_with_steamcmd(missing, cache, owner, steamcmd, record, log, overlay_id)
    if missing:
        write_json_atomic(os.path.join(cache, INDEX_NAME), {"version": 1, "items": index}, owner)


def _failed(result: SyncResult, msg: str) -> SyncResult:
    result.failed = True
    result.msg = msg
    return result


def _keep_unanswered_links(result: SyncResult, usable: list[ItemResult]) -> None:
    """Steam listed nothing for some ids, or nothing usable at all (the user's list is never
    empty here): what the overlay holds is not known to be unwanted, so no link goes; the
    next run with a full answer removes stale ones."""
    unlisted = [item.publishedfileid for item in result.items if item.unlisted]
    if not (unlisted or not usable) or not result.links.remove:
        return
    why = (f"Steam's answer listed nothing for {', '.join(unlisted)}" if unlisted
           else "no id in Steam's answer is usable")
    result.notices.append(
        f"overlay {result.overlay_id}: {len(result.links.remove)} link(s) kept although not"
        f" in this answer, because {why}")
    result.links.remove = []


def sync_overlay(
    overlay_id: str,
    items: Iterable[object] = (),
    collections: Iterable[object] = (),
    *,
    api: SteamApi,
    state_dir: str = _common.DEFAULT_STATE_DIR,
    owner: tuple[int, int] | None = None,
    fail_on_item_error: bool = True,
    workers: int = 4,
    check_mode: bool = False,
    attempts: int = 3,
    retry_delay: float = 1.0,
    timeout: float = 60.0,
    echo: Callable[[str], None] | None = None,
    steamcmd: Steamcmd | None = None,
    max_total_bytes: int = _common.parse_size(DEFAULT_MAX_SIZE, "max_size"),
) -> SyncResult:
    """Bring one workshop overlay to the wanted items; see the module docstring.

    Items whose ``file_size`` add up to more than ``max_total_bytes`` fail the run before
    anything is downloaded or linked (in check mode too: that is the UI's Resolve).
    """
    paths, item_ids, collection_ids = _sync_inputs(overlay_id, items, collections, state_dir)
    results, seen = _describe_wanted(api, item_ids, collection_ids)
    result = SyncResult(overlay_id, paths.root, results, LinkPlan(), seen,
                        api_calls=api.calls)
    index = read_index(paths.cache)
    _refuse_steampipe_without_steamcmd(results, paths.cache, index, steamcmd)
    if result.errors and fail_on_item_error:
        return _failed(result, unusable_message(overlay_id, result.errors))

    usable = [item for item in results if item.status != "error"]
    too_big = oversize_message(overlay_id, usable, max_total_bytes)
    if too_big:
        return _failed(result, too_big)
    missing = _mark_cached(usable, paths.cache, index)
    result.links = plan_addon_links(paths, [item.publishedfileid for item in usable])
    _keep_unanswered_links(result, usable)
    result.changed = bool(missing) or result.links.changed or not os.path.isdir(paths.addons)
    if check_mode or not result.changed:
        return result

    log = ProgressLog(os.path.join(paths.cache, LOG_NAME), owner, echo)
    with cache_lock(paths.cache, owner):
        _fetch_missing(missing, len(usable), paths.cache, index, log, overlay_id, owner,
                       steamcmd, workers=workers, timeout=timeout, attempts=attempts,
                       retry_delay=retry_delay)
        result.bytes_fetched = sum(item.bytes for item in usable)
        result.api_calls = api.calls
        failed_downloads = [item.error for item in missing if item.status == "error"]
        if failed_downloads:
            _failed(result, failed_downloads_message(overlay_id, failed_downloads))
            log(f"overlay={overlay_id} not updated: {len(failed_downloads)} download(s) failed")
            return result
        apply_addon_links(result.links, paths, owner)
        log(f"overlay={overlay_id} linked {len(usable)} item(s):"
            f" {len(result.links.create)} link(s) set, {len(result.links.remove)} removed")
    return result
