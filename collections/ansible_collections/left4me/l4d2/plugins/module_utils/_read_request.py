# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# Shipped to hosts verbatim: standard library only (tests/collection/test_host_libraries.py).
"""One read request as the host's ``left4me-read`` entry point takes it, stdlib only.

The entry point (role game_instances: ``/usr/local/libexec/left4me/left4me-read``, run as
root through a sudoers rule that allows exactly ``/usr/bin/python3 -I`` and it) reads one
JSON object on stdin::

    {"verb": "info", "instance": "coop1", "args": {"players": true}}
    {"verb": "rcon", "instance": "coop1", "args": {"command": "status"}}
    {"verb": "logs", "instance": "coop1", "args": {"cursor": "s=...", "lines": 100}}
    {"verb": "logs", "instance": "coop1", "args": {"follow": true}}

The request is the first line of stdin (JSON has no raw newline in it). ``follow`` (the
entry point's own, as ``follow_seconds``: no module has them) makes the logs verb a stream:
its page, then a line per batch of new entries as they arrive, until the caller closes
stdin or stdout, or ``follow_seconds`` pass (``_journal_follow``).

``info`` without an instance reports every instance on the host. The arguments are those of
the srcds_info, rcon and server_logs modules (``_reads.ARGUMENTS``), type checked strictly;
the paths are the defaults, never the caller's. The answer is the module's result as JSON
(``failed`` and ``msg`` when refused or failed), and the RCON password never in it. Exit
status 0 answered, 1 the read was refused or failed as the module's would, 2 the request
itself was refused (nothing was read or changed).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass

from ansible_collections.left4me.l4d2.plugins.module_utils._common import (
    DEFAULT_CONFIG_DIR,
    DEFAULT_STATE_DIR,
)
from ansible_collections.left4me.l4d2.plugins.module_utils._reads import (
    ARGUMENTS,
    ReadError,
    Runner,
    log_secrets,
    plan_rcon,
    read_info,
    read_logs,
    send_rcon,
)

MAX_REQUEST_BYTES = 64 * 1024
PROG = "left4me-read"
NEEDS_ROOT = f"{PROG} needs root to read the journal, mounts and RCON passwords: run it with sudo"
KEYS = ("verb", "instance", "args")
MASK = "********"  # what Ansible shows for a no_log value
# The entry point's own arguments, beside the module's: the logs verb's follow stream.
FOLLOW_SECONDS_MAX = 86400  # a day: the longest one stream may live; the reader resumes
STREAMS = {"logs": dict(follow=dict(type="bool", default=False),
                        follow_seconds=dict(type="int", default=3600))}

# The JSON types each argument type takes (bool is an int to Python: never taken for one).
_TYPES = {"bool": (bool,), "int": (int,), "float": (int, float), "str": (str,), "dict": (dict,)}


class RequestError(ValueError):
    """A request refused before anything is read or changed."""


@dataclass(frozen=True)
class Request:
    verb: str
    instance: str | None
    args: dict


def _argument(verb: str, key: str, value: object, spec: dict) -> object:
    kind = spec["type"]
    wrong_bool = isinstance(value, bool) and kind != "bool"
    if wrong_bool or not isinstance(value, _TYPES[kind]):
        raise RequestError(f"{verb}: argument {key} must be of type {kind}")
    if kind == "dict" and not all(isinstance(k, str) and isinstance(v, str)
                                  for k, v in value.items()):
        raise RequestError(f"{verb}: argument {key} must map names to strings")
    return float(value) if kind == "float" else value


def arguments(verb: str, given: object) -> dict:
    """``given`` checked against the verb's argument spec, defaults filled in."""
    if not isinstance(given, dict):
        raise RequestError("args must be a JSON object")
    specs = {**ARGUMENTS[verb], **STREAMS.get(verb, {})}
    unknown = sorted(set(given) - set(specs))
    if unknown:
        raise RequestError(f"{verb}: unsupported arguments: {', '.join(unknown)};"
                           f" supported: {', '.join(specs)}")
    checked = {}
    for key, spec in specs.items():
        if key in given and given[key] is not None:
            checked[key] = _argument(verb, key, given[key], spec)
        elif spec.get("required"):
            raise RequestError(f"{verb}: missing required argument: {key}")
        else:
            checked[key] = spec.get("default")
    if not 1 <= checked.get("follow_seconds", 1) <= FOLLOW_SECONDS_MAX:
        raise RequestError(f"{verb}: follow_seconds must be between 1 and {FOLLOW_SECONDS_MAX}")
    return checked


def parse_request(raw: bytes) -> Request:
    """One request from stdin's bytes; RequestError for anything else."""
    if len(raw) > MAX_REQUEST_BYTES:
        raise RequestError(f"request is larger than {MAX_REQUEST_BYTES} bytes")
    try:
        document = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise RequestError(f"request is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise RequestError("request must be a JSON object with verb, instance and args")
    unknown = sorted(set(document) - set(KEYS))
    if unknown:
        raise RequestError(f"unsupported request keys: {', '.join(unknown)}")
    verb, instance = document.get("verb"), document.get("instance")
    if verb not in ARGUMENTS:
        raise RequestError(f"unknown verb {verb!r}: one of {', '.join(ARGUMENTS)}")
    if instance is None and verb != "info":
        raise RequestError(f"{verb} needs an instance")
    if instance is not None and not isinstance(instance, str):
        raise RequestError("instance must be a string")
    return Request(verb, instance, arguments(verb, document.get("args", {})))


def answer(request: Request, run: Runner, state_dir: str = DEFAULT_STATE_DIR,
           config_dir: str = DEFAULT_CONFIG_DIR) -> dict:
    """What the verb's module would return; ReadError with its message when it fails."""
    args = request.args
    if request.verb == "info":
        names = None if request.instance is None else [request.instance]
        return dict(changed=False, instances=read_info(run, names, args, state_dir,
                                                       config_dir, NEEDS_ROOT))
    if request.verb == "logs":
        page_args = {key: value for key, value in args.items() if key not in STREAMS["logs"]}
        return read_logs(run, request.instance, page_args, state_dir, config_dir, NEEDS_ROOT)
    plan = plan_rcon(run, request.instance, args["command"], args["timeout"], state_dir,
                     config_dir, NEEDS_ROOT)
    result = send_rcon(plan, args["command"], args["timeout"])
    result["output"] = result["output"].replace(plan.password, MASK)
    result["stdout_lines"] = result["output"].splitlines()
    return result


def respond(stdin: io.BufferedIOBase, stdout: io.TextIOBase, run: Runner,
            state_dir: str = DEFAULT_STATE_DIR) -> int:
    """Read one request, write one JSON answer (a followed log: then its new entries as
    they come); the exit status (1 when refused or failed)."""
    request = None
    try:
        request = parse_request(stdin.readline(MAX_REQUEST_BYTES + 1))
        result = answer(request, run, state_dir)
        status = 0
    except RequestError as exc:
        result, status = dict(failed=True, msg=f"{PROG}: {exc}"), 2
    except ReadError as exc:
        result, status = dict(failed=True, msg=str(exc), **exc.fields), 1
    except OSError as exc:  # a command or file the host lacks: said, not a traceback
        result, status = dict(failed=True, msg=f"{PROG}: {exc}"), 1
    stdout.write(json.dumps(result) + "\n")
    if status == 0 and request.args.get("follow"):
        # Imported only for a stream: the other requests start without it.
        from ansible_collections.left4me.l4d2.plugins.module_utils._journal_follow import (
            stream,
        )

        stdout.flush()
        return stream(result["unit"], result["cursor"], log_secrets(request.instance, state_dir),
                      request.args["follow_seconds"], stdin.fileno(), stdout)
    return status
