"""The host's read entry point (left4me-read): the request it takes, what it refuses before
reading anything, and the entry point itself run standalone from the files the
game_instances role ships (python3 -I, a temp dir, no collection on the path)."""

from __future__ import annotations

import io
import json
import pathlib
import shutil
import subprocess
import sys

import pytest
import yaml

try:
    from ansible_collections.left4me.l4d2.plugins.module_utils import _rcon, _read_request, _reads
except ImportError:  # plain pytest from the repo root: make the collection importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[7]))
    from ansible_collections.left4me.l4d2.plugins.module_utils import _rcon, _read_request, _reads

COLLECTION = pathlib.Path(__file__).resolve().parents[4]
ROLE = COLLECTION / "roles" / "game_instances"


def parse(document) -> _read_request.Request:
    return _read_request.parse_request(json.dumps(document).encode())


def test_a_request_gets_the_modules_defaults():
    request = parse({"verb": "logs", "instance": "coop1", "args": {"lines": 5}})
    assert request == _read_request.Request(
        "logs", "coop1", {"lines": 5, "cursor": None, "max_bytes": 262144,
                          "follow": False, "follow_seconds": 3600})
    assert parse({"verb": "info"}).args == {
        "players": False, "journal_lines": 10, "a2s_timeout": 1.0, "rcon_timeout": 5.0,
        "rcon_refused": {}}
    assert parse({"verb": "rcon", "instance": "coop1", "args": {"command": "status",
                                                                "timeout": 2}}).args == {
        "command": "status", "timeout": 2.0}


@pytest.mark.parametrize("raw,message", [
    (b"{not json", "request is not JSON"),
    (b"\xff\xfe", "request is not JSON"),
    (b"[]", "must be a JSON object"),
    (b'{"verb": "reboot"}', "unknown verb 'reboot'"),
    (b'{"verb": "info", "state_dir": "/tmp"}', "unsupported request keys: state_dir"),
    (b'{"verb": "rcon", "args": {"command": "status"}}', "rcon needs an instance"),
    (b'{"verb": "logs", "instance": 7}', "instance must be a string"),
    (b'{"verb": "rcon", "instance": "coop1"}', "missing required argument: command"),
    (b'{"verb": "logs", "instance": "coop1", "args": {"config_dir": "/tmp"}}',
     "unsupported arguments: config_dir"),
    (b'{"verb": "logs", "instance": "coop1", "args": {"lines": "5"}}', "of type int"),
    (b'{"verb": "logs", "instance": "coop1", "args": {"lines": true}}', "of type int"),
    (b'{"verb": "info", "args": {"players": 1}}', "players must be of type bool"),
    (b'{"verb": "info", "args": {"rcon_refused": {"coop1": 1}}}', "map names to strings"),
    (b'{"verb": "info", "args": []}', "args must be a JSON object"),
    (b" " * (64 * 1024 + 1), "larger than 65536 bytes"),
    (b'{"verb": "logs", "instance": "coop1", "args": {"follow": 1}}',
     "follow must be of type bool"),
    (b'{"verb": "logs", "instance": "coop1", "args": {"follow_seconds": 0}}',
     "follow_seconds must be between 1 and 86400"),
    (b'{"verb": "rcon", "instance": "coop1", "args": {"command": "status", "follow": true}}',
     "unsupported arguments: follow"),
])
def test_a_bad_request_is_refused_by_what_is_wrong(raw, message):
    with pytest.raises(_read_request.RequestError, match=message):
        _read_request.parse_request(raw)


def never_run(argv):
    raise AssertionError(f"nothing may run for a refused request: {argv}")


@pytest.mark.parametrize("document,message", [
    ({"verb": "rcon", "instance": "../x", "args": {"command": "status"}}, "instance name"),
    ({"verb": "rcon", "instance": "coop1", "args": {"command": "say a\nquit"}}, "line break"),
    ({"verb": "logs", "instance": "Coop", "args": {}}, "instance name"),
    ({"verb": "logs", "instance": "coop1", "args": {"max_bytes": 10}}, "at least 1024"),
    ({"verb": "info", "args": {"journal_lines": -1}}, "journal_lines must be between"),
])
def test_the_modules_refusals_answer_with_their_messages_and_run_nothing(document, message):
    stdout = io.StringIO()
    status = _read_request.respond(io.BytesIO(json.dumps(document).encode()), stdout, never_run)
    answer = json.loads(stdout.getvalue())
    assert status == 1 and answer["failed"] and message in answer["msg"], answer


def test_an_unknown_instance_is_named(tmp_path, monkeypatch):
    (tmp_path / "etc" / "instances").mkdir(parents=True)
    (tmp_path / "etc" / "instances" / "coop1.env").write_text("LEFT4ME_PORT=27015\n")
    monkeypatch.setattr("os.geteuid", lambda: 0)
    for verb, message in (("info", "not configured on this host: nope"),
                          ("rcon", "instance 'nope' is not configured on this host")):
        request = parse({"verb": verb, "instance": "nope", "args": {"command": "status"}
                         if verb == "rcon" else {}})
        with pytest.raises(_reads.ReadError, match=message):
            _read_request.answer(request, never_run, str(tmp_path / "state"),
                                 str(tmp_path / "etc"))


def test_rcon_answers_without_the_password(tmp_path, monkeypatch):
    plan = _reads.RconPlan("coop1", _rcon.Target(27015, "127.0.0.1", "127.0.0.1:27015"),
                           "run-1", "sekrit")
    monkeypatch.setattr(_read_request, "plan_rcon", lambda *_args: plan)
    monkeypatch.setattr(_rcon, "run_command",
                        lambda *_args: ('"rcon_password" = "sekrit"\nok', 0.01))
    answer = _read_request.answer(parse({"verb": "rcon", "instance": "coop1",
                                         "args": {"command": "rcon_password"}}), never_run)
    assert "sekrit" not in json.dumps(answer)
    assert answer["stdout_lines"] == ['"rcon_password" = "********"', "ok"]


# --- the entry point as the role installs it --------------------------------------------


def shipped(tmp_path: pathlib.Path) -> pathlib.Path:
    """A copy of what the role installs, laid out as on the host; the entry point's path."""
    role_vars = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())
    library = tmp_path / "read-library" / "ansible_collections" / "left4me" / "l4d2"
    library = library / "plugins" / "module_utils"
    library.mkdir(parents=True)
    for path in role_vars["__game_instances_read_modules"]:
        shutil.copy(COLLECTION / path, library / pathlib.Path(path).name)
    entry = tmp_path / "left4me-read"
    shutil.copy(ROLE / "files" / "left4me-read.py", entry)
    return entry


def run_entry(entry: pathlib.Path, stdin: bytes, *args: str) -> subprocess.CompletedProcess:
    """Run as the sudoers rule names it (python3 -I FILE), from another directory."""
    return subprocess.run(["python3", "-I", str(entry), *args], input=stdin,
                          capture_output=True, cwd=entry.parent.parent, timeout=60, check=False)


@pytest.mark.parametrize("stdin,message", [
    (b"{", "request is not JSON"),
    (b'{"verb": "shutdown"}', "unknown verb 'shutdown'"),
    (b"[" + b" " * (64 * 1024) + b"]", "larger than 65536 bytes"),
])
def test_the_shipped_entry_point_runs_standalone_and_refuses_bad_requests(
        tmp_path, stdin, message):
    done = run_entry(shipped(tmp_path), stdin)
    assert done.returncode == 2, done.stderr
    answer = json.loads(done.stdout)
    assert answer["failed"] and message in answer["msg"], answer
    assert done.stderr == b""


def test_the_shipped_entry_point_imports_everything_it_needs(tmp_path):
    """A request that gets past the parser imports every module the verbs need: a module
    missing from the role's list would be an ImportError here."""
    done = run_entry(shipped(tmp_path), b'{"verb": "logs", "instance": "coop1",'
                                        b' "args": {"max_bytes": 1}}')
    assert done.returncode == 1, done.stderr
    assert "max_bytes must be at least 1024" in json.loads(done.stdout)["msg"]


def test_the_entry_point_takes_no_arguments(tmp_path):
    done = run_entry(shipped(tmp_path), b'{"verb": "info"}', "--foo")
    assert done.returncode == 2 and b"takes no arguments" in done.stderr
