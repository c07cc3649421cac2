"""The read modules ad hoc on a host converged with the demo world (tests/conftest.py), as an
operator runs them: `ansible HOST -b -m left4me.l4d2.srcds_info | rcon | server_logs`.

The demo runs coop1 (27015, password demo-coop-rcon) and versus1 (27025) on the simulated
srcds. Tests that break a server (stop it by hand, crash it until systemd gives up, change
its password) use versus1 and bring it back before they end.
"""

from __future__ import annotations

import base64
import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from testhosts import host, image

pytestmark = pytest.mark.testhost

PROJECT = Path(__file__).resolve().parents[2]
COOP_PASSWORD = "demo-coop-rcon"
VERSUS_UNIT = "left4me-server@versus1.service"


@pytest.fixture(scope="module")
def demo(request: pytest.FixtureRequest) -> tuple[host.TestHost, Path]:
    """The session's converged demo host; LEFT4ME_READS_HOST=NAME:INVENTORY_DIR reuses a host
    an earlier session converged (a converge costs minutes; for iterating on these tests)."""
    reuse = os.environ.get("LEFT4ME_READS_HOST")
    if reuse:
        name, inventory = reuse.split(":", 1)
        return host.load(name), Path(inventory)
    return request.getfixturevalue("booted_host"), request.getfixturevalue("demo_inventory")


def adhoc(demo, module: str, args: str = "", *extra: str) -> tuple[dict, str]:
    """Run one module ad hoc with become; its result and the whole stdout (to grep secrets)."""
    booted, inventory = demo
    argv = ["ansible", booted.name, "-i", str(inventory), "-b", "-m", f"left4me.l4d2.{module}"]
    if args:
        argv += ["-a", args]
    run = subprocess.run(
        [*argv, *extra], cwd=PROJECT, capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "ANSIBLE_CONFIG": str(PROJECT / "ansible.cfg"),
             "ANSIBLE_CALLBACK_RESULT_FORMAT": "json",
             "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"})
    # The ad-hoc callback prints `HOST | SUCCESS|CHANGED|FAILED! => {json}`; the status is
    # only in the marker.
    marker = re.search(rf"^{re.escape(booted.name)} \| ([A-Z!]+) => ", run.stdout, re.M)
    assert marker, run.stdout + run.stderr
    result, _end = json.JSONDecoder().raw_decode(run.stdout[marker.end():].lstrip())
    result["failed"] = marker.group(1) != "SUCCESS" and marker.group(1) != "CHANGED"
    return result, run.stdout + run.stderr


def by_name(result: dict) -> dict[str, dict]:
    return {item["name"]: item for item in result["instances"]}


def wait_for(predicate, timeout: float = 60, step: float = 0.5):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)


def versus_back(booted: host.TestHost, verb: str = "start") -> None:
    """versus1 started (or restarted) as srcds_instance starts it: its start counter reset
    first, so the tests' own restarts never meet the unit's crash-loop limit (5 in 60 s)."""
    booted.nsenter("systemctl", "reset-failed", VERSUS_UNIT, check=False)
    booted.nsenter("systemctl", verb, VERSUS_UNIT)


def test_srcds_info_reports_both_demo_servers_running_and_answering(demo):
    result, _ = adhoc(demo, "srcds_info")
    assert result["changed"] is False
    servers = by_name(result)
    assert sorted(servers) == ["coop1", "versus1"]
    coop = servers["coop1"]
    assert (coop["state"], coop["running"], coop["mounted"], coop["enabled"]) == (
        "running", True, True, True)
    assert coop["a2s"] == {"name": "left4me demo coop", "map": "c1m1_hotel", "players": 0,
                           "max_players": 8}
    assert servers["versus1"]["a2s"]["map"] == "c5m1_waterfront"
    for server in servers.values():
        # Either systemd accounts it, or the result says it does not (the test host's
        # container has no memory controller delegated).
        assert (server["memory_bytes"] is None) == ("memory" in server["not_accounted"])
        assert (server["cpu_seconds"] is None) == ("cpu" in server["not_accounted"])
        assert server["journal"] == []


def test_srcds_info_in_check_mode_reads_the_same(demo):
    result, _ = adhoc(demo, "srcds_info", "names=coop1", "--check")
    assert result["changed"] is False
    assert [s["state"] for s in result["instances"]] == ["running"]


def test_rcon_runs_status_from_the_host_and_the_password_stays_there(demo):
    result, stdout = adhoc(demo, "rcon", "name=coop1 command=status")
    assert result["changed"] is True  # a console command may change anything
    assert result["output"].startswith("hostname: left4me demo coop")
    assert result["stdout_lines"][-1] == "#end"
    assert result["address"] == "127.0.0.1:27015"
    assert COOP_PASSWORD not in stdout


def test_players_seated_on_the_server_are_listed_with_bots_marked(demo):
    added, _ = adhoc(demo, "rcon", "name=coop1 command='sim_addplayer Veteran 64 7507'")
    assert not added["failed"], added.get("msg")
    try:
        result, stdout = adhoc(demo, "srcds_info", "names=coop1 players=true")
        coop = result["instances"][0]
        assert coop["players_error"] is None and coop["status_problems"] == []
        humans = [p for p in coop["players"] if not p["bot"]]
        assert [(p["name"], p["ping"]) for p in humans] == [("Veteran", 64)]
        assert humans[0]["connected_seconds"] >= 7507
        assert humans[0]["steam_id"].startswith("STEAM_1:")
        assert len([p for p in coop["players"] if p["bot"]]) == 3  # the rest of the four
        assert coop["a2s"]["players"] == 1
        assert COOP_PASSWORD not in stdout
    finally:
        adhoc(demo, "rcon", "name=coop1 command='sim_removeplayer Veteran'")


@pytest.mark.parametrize("args, message", [
    ("name=nosuch command=status", "instance 'nosuch' is not configured on this host"),
    ('{"name": "coop1", "command": "status\\nquit"}', "contains a line feed"),
    ("name=../etc command=status", "invalid instance name"),
])
def test_rcon_bad_inputs_are_answered_clearly(demo, args, message):
    result, _ = adhoc(demo, "rcon", args)
    assert result["failed"] is True
    assert message in result["msg"]


def test_srcds_info_for_an_unknown_instance_says_which_exist(demo):
    result, _ = adhoc(demo, "srcds_info", "names=nosuch")
    assert result["failed"] is True
    assert "not configured on this host: nosuch" in result["msg"]
    assert "configured: coop1, versus1" in result["msg"]


def test_a_server_stopped_by_hand_is_reported_so_and_rcon_says_it_is_not_running(demo):
    booted, _ = demo
    booted.nsenter("systemctl", "stop", VERSUS_UNIT)
    try:
        result, _ = adhoc(demo, "srcds_info", "names=versus1")
        versus = result["instances"][0]
        assert (versus["state"], versus["running"], versus["a2s"]) == (
            "stopped_outside_left4me", False, None)
        assert versus["reason"].startswith("stopped outside left4me")
        assert versus["journal"], "the last journal lines of a stopped server"
        refused, _ = adhoc(demo, "rcon", "name=versus1 command=status")
        assert refused["failed"] is True
        assert "instance 'versus1' is not running (stopped outside left4me" in refused["msg"]
    finally:
        versus_back(booted)


def test_a_server_killed_until_systemd_gives_up_is_a_crash_loop(demo):
    booted, _ = demo

    def main_pid() -> int:
        return int(booted.nsenter("systemctl", "show", "-P", "MainPID", VERSUS_UNIT).strip())

    try:
        for _kill in range(8):  # StartLimitBurst=5 within 60 s
            state = booted.nsenter("systemctl", "show", "-P", "ActiveState", VERSUS_UNIT).strip()
            if state == "failed":
                break
            pid = wait_for(main_pid, timeout=20)
            booted.nsenter("systemctl", "kill", "--signal=SIGKILL", VERSUS_UNIT, check=False)
            wait_for(lambda pid=pid: main_pid() != pid, timeout=20)
        result, _ = adhoc(demo, "srcds_info", "names=versus1")
        versus = result["instances"][0]
        assert versus["state"] == "crash_loop", versus
        assert versus["reason"] == (
            "crash loop: gave up after 5 starts within 60 s (killed by SIGKILL)")
        assert versus["running"] is False
    finally:
        versus_back(booted)
    assert wait_for(lambda: by_name(adhoc(demo, "srcds_info")[0])["versus1"]["a2s"], 30)


STATE = "/var/lib/left4me"
VERSUS_PASSWORD = "demo-versus-rcon"
VERSUS_CFG = f"{STATE}/runtime/versus1/merged/left4dead2/cfg"
COOP_INSTANCE_CFG = f"{STATE}/overlays/.instance-coop1/left4dead2/cfg/left4me/instance.cfg"


def in_versus_cfg(booted: host.TestHost, script: str) -> None:
    """Change versus1's cfg dir as its tenant can (a script overlay ships links and any
    file; written here through the mounted tree, so overlayfs keeps it in the upper dir)."""
    booted.nsenter("sh", "-euc", f"cd {VERSUS_CFG} && {script}")


def write_versus_cfg(booted: host.TestHost, name: str, text: str) -> None:
    """A regular file NAME in versus1's cfg dir holding TEXT (replacing what was there)."""
    encoded = base64.b64encode(text.encode()).decode()
    in_versus_cfg(booted, f"rm -f {name} && echo {encoded} | base64 -d > {name}")


@pytest.fixture
def versus_server_cfg(demo):
    """versus1's server.cfg, put back (a regular file with the same text) afterwards, and
    versus1 restarted with it (its first map and name again)."""
    booted, _ = demo
    original = booted.nsenter("cat", f"{VERSUS_CFG}/server.cfg")
    yield booted
    write_versus_cfg(booted, "server.cfg", original)
    versus_back(booted, "restart")
    assert wait_for(lambda: by_name(adhoc(demo, "srcds_info")[0])["versus1"]["a2s"], 30)


@pytest.mark.parametrize("planted", ["victim link", "dev zero link", "fifo"])
def test_a_tenants_server_cfg_never_gives_root_another_password_nor_hangs_it(
        demo, versus_server_cfg, planted):
    """H1: versus1's tenant makes its server.cfg a link to coop1's instance.cfg (or to
    /dev/zero, or a FIFO). rcon and srcds_info log in to versus1 with versus1's OWN
    password, return promptly, and coop1's password appears nowhere."""
    booted = versus_server_cfg
    plant = {"victim link": f"rm server.cfg && ln -s {COOP_INSTANCE_CFG} server.cfg",
             "dev zero link": "rm server.cfg && ln -s /dev/zero server.cfg",
             "fifo": "rm server.cfg && mkfifo server.cfg"}[planted]
    in_versus_cfg(booted, plant)
    started = time.monotonic()
    result, stdout = adhoc(demo, "rcon", "name=versus1 command=status")
    assert not result["failed"], result.get("msg")
    assert result["output"].startswith("hostname: left4me demo versus")
    info, info_stdout = adhoc(demo, "srcds_info", "names=versus1 players=true")
    versus = info["instances"][0]
    assert versus["players_error"] is None and not versus["rcon_refused"]
    logs, logs_stdout = adhoc(demo, "server_logs", "name=versus1 lines=5")
    assert not logs["failed"], logs.get("msg")
    assert time.monotonic() - started < 120, "nothing waited on the FIFO or read /dev/zero"
    for shown in (stdout, info_stdout, logs_stdout):
        assert COOP_PASSWORD not in shown and VERSUS_PASSWORD not in shown


def test_a_password_a_tenants_server_cfg_sets_is_undone_at_every_map_load(
        demo, versus_server_cfg):
    """srcds runs servercfgfile (left4me/mapload.cfg) at map load: the overlay's server.cfg,
    then the instance's own instance.cfg again, so the server keeps left4me's password and
    its name is still the one server.cfg gives it."""
    booted = versus_server_cfg
    write_versus_cfg(booted, "server.cfg", 'hostname "tenant named"\nrcon_password "tenant-set"\n')
    changed, _ = adhoc(demo, "rcon", "name=versus1 command='changelevel c5m2_park'")
    assert not changed["failed"], changed.get("msg")
    result, _ = adhoc(demo, "rcon", "name=versus1 command=status")
    assert not result["failed"], f"versus1 took another password: {result.get('msg')}"
    assert "map     : c5m2_park" in result["output"]
    assert result["output"].startswith("hostname: tenant named")


def test_a_password_changed_inside_the_server_says_restart_and_a_restart_restores_it(demo):
    """Something in the server changes its password (here a cfg the tenant ships, run with
    exec, which the console allows): one refused login, a message that says what to do, and
    the poll stops asking; a restart brings left4me's password back."""
    booted, _ = demo
    write_versus_cfg(booted, "changed.cfg", 'rcon_password "changed-behind"\n')
    try:
        changed, _ = adhoc(demo, "rcon", "name=versus1 command='exec changed'")
        assert not changed["failed"], changed.get("msg")
        result, _ = adhoc(demo, "rcon", "name=versus1 command=status")
        assert result["failed"] is True
        assert result["msg"] == (
            "instance 'versus1': the server's RCON password is not the one left4me set"
            " (something in the server changed it): restart the server to restore its RCON"
            " password")
        info, _ = adhoc(demo, "srcds_info", "names=versus1 players=true")
        versus = info["instances"][0]
        assert versus["rcon_refused"] is True and versus["invocation"]
        again, _ = adhoc(demo, "srcds_info", json.dumps(
            {"names": ["versus1"], "players": True,
             "rcon_refused": {"versus1": versus["invocation"]}}))
        assert again["instances"][0]["players_error"].startswith("not asked again")
    finally:
        in_versus_cfg(booted, "rm -f changed.cfg")
        versus_back(booted, "restart")
    assert wait_for(lambda: by_name(adhoc(demo, "srcds_info")[0])["versus1"]["a2s"], 30)
    restored, _ = adhoc(demo, "rcon", "name=versus1 command=status")
    assert not restored["failed"], restored.get("msg")


@pytest.mark.parametrize("command", ["rcon_password x", "status;rcon_password x",
                                     '"rcon_password" x', "status; quit"])
def test_the_console_refuses_what_would_cut_left4me_off_in_any_part(demo, command):
    result, _ = adhoc(demo, "rcon", json.dumps({"name": "versus1", "command": command}))
    assert result["failed"] is True and "is refused" in result["msg"]
    status, _ = adhoc(demo, "rcon", "name=versus1 command=status")
    assert not status["failed"], "nothing was sent: the password is still left4me's"


def test_server_logs_tail_then_follow_a_line_written_to_the_console(demo):
    tail, _ = adhoc(demo, "server_logs", "name=coop1 lines=5")
    assert tail["changed"] is False
    assert 1 <= len(tail["entries"]) <= 5 and tail["cursor"]
    said, _ = adhoc(demo, "rcon", "name=coop1 command='say hello-from-the-log-test'")
    assert not said["failed"], said.get("msg")

    def newer():
        page, stdout = adhoc(demo, "server_logs", f"name=coop1 cursor={tail['cursor']}")
        return page if any("hello-from-the-log-test" in m for m in page["lines"]) else None

    page = wait_for(newer, timeout=20, step=1)
    assert page, "the console line reached the journal and the follow page"
    assert page["cursor"] != tail["cursor"]
    assert COOP_PASSWORD not in json.dumps(page)  # the rcon line is logged, masked
    again, _ = adhoc(demo, "server_logs", f"name=coop1 cursor={page['cursor']}")
    assert not any("hello-from-the-log-test" in m for m in again["lines"])
    assert again["cursor"] is not None


@pytest.mark.parametrize("args, message", [
    ("name=nosuch", "instance 'nosuch' is not configured on this host"),
    ("name=coop1 cursor=--since=today", "cursor must be a journal cursor"),
    ("name=coop1 lines=0", "lines must be between 1 and 5000"),
])
def test_server_logs_bad_inputs_are_answered_clearly(demo, args, message):
    result, _ = adhoc(demo, "server_logs", args)
    assert result["failed"] is True
    assert message in result["msg"]


# --- the fast read path: left4me-read over SSH, through its sudoers rule -------------------

READ_COMMAND = ["sudo", "-n", "/usr/bin/python3", "-I", "/usr/local/libexec/left4me/left4me-read"]
READER = "l4d2reader"  # a user with the role's rule and no other sudo


def fast_read(demo, request: dict | bytes, *command: str) -> tuple[int, dict | None, str]:
    """One request over SSH as the inventory's user (the UI's path): status, answer, stderr."""
    booted, _inventory = demo
    stdin = request if isinstance(request, bytes) else json.dumps(request).encode()
    run = subprocess.run(["ssh", "-F", booted.ssh_config, booted.name,
                          " ".join(command or READ_COMMAND)],
                         input=stdin, capture_output=True, timeout=60, check=False)
    answer = json.loads(run.stdout) if run.stdout.strip() else None
    return run.returncode, answer, run.stderr.decode()


def test_left4me_read_answers_info_for_every_instance_in_one_request(demo):
    status, answer, stderr = fast_read(demo, {"verb": "info"})
    assert status == 0, stderr
    assert {i["name"]: i["state"] for i in answer["instances"]} == {
        "coop1": "running", "versus1": "running"}
    status, answer, _ = fast_read(demo, {"verb": "info", "instance": "coop1",
                                         "args": {"players": True}})
    assert [i["name"] for i in answer["instances"]] == ["coop1"]
    assert answer["instances"][0]["players_error"] is None


def test_left4me_read_runs_rcon_status_and_never_shows_the_password(demo):
    status, answer, stderr = fast_read(demo, {"verb": "rcon", "instance": "coop1",
                                              "args": {"command": "status"}})
    assert status == 0, stderr
    assert answer["output"].startswith("hostname: left4me demo coop")
    assert answer["address"] == "127.0.0.1:27015"
    assert COOP_PASSWORD not in json.dumps(answer) + stderr


def test_left4me_read_follows_the_journal_after_a_cursor(demo):
    _status, tail, _ = fast_read(demo, {"verb": "logs", "instance": "coop1",
                                        "args": {"lines": 3}})
    assert tail["cursor"]
    fast_read(demo, {"verb": "rcon", "instance": "coop1",
                     "args": {"command": "say hello-over-the-fast-path"}})

    def newer():
        _status, page, _ = fast_read(demo, {"verb": "logs", "instance": "coop1",
                                            "args": {"cursor": tail["cursor"]}})
        return page if any("hello-over-the-fast-path" in m for m in page["lines"]) else None

    assert wait_for(newer, timeout=20, step=1)


def test_left4me_read_follow_streams_a_said_line_and_ends_when_stdin_closes(demo):
    booted, _inventory = demo
    unit = "journalctl --unit=left4me-server@coop1.service"
    stream = subprocess.Popen(["ssh", "-F", booted.ssh_config, booted.name, " ".join(READ_COMMAND)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    said: queue.Queue[dict] = queue.Queue()
    threading.Thread(target=lambda: [said.put(json.loads(line)) for line in stream.stdout],
                     daemon=True).start()
    stream.stdin.write(json.dumps({"verb": "logs", "instance": "coop1",
                                   "args": {"lines": 1, "follow": True}}).encode() + b"\n")
    stream.stdin.flush()
    page = said.get(timeout=30)
    assert len(page["lines"]) == 1 and page["cursor"], page
    marker = f"followed-{os.getpid()}"
    fast_read(demo, {"verb": "rcon", "instance": "coop1", "args": {"command": f"say {marker}"}})
    seen: list[dict] = []
    while not any(f"Console: {marker}" in line for m in seen for line in m["lines"]):
        seen.append(said.get(timeout=10))  # each batch as it comes, after the page's cursor
    assert [m for m in seen if m.get("failed")] == [] and seen[0]["cursor"] != page["cursor"]
    assert COOP_PASSWORD not in json.dumps(seen)
    assert len(booted.nsenter("pgrep", "-af", unit, check=False).splitlines()) == 1
    stream.stdin.close()  # the reader is gone: the stream ends, journalctl with it
    assert stream.wait(timeout=10) == 0, stream.stderr.read()
    assert wait_for(lambda: booted.nsenter("pgrep", "-af", unit, check=False) == "", 10, 0.2)


@pytest.mark.parametrize("request_bytes, status, message", [
    (b"{", 2, "request is not JSON"),
    (b'{"verb": "restart", "instance": "coop1"}', 2, "unknown verb 'restart'"),
    (b'{"verb": "info", "args": {"state_dir": "/tmp"}}', 2, "unsupported arguments: state_dir"),
    (b" " * (64 * 1024 + 1), 2, "larger than 65536 bytes"),
    (b'{"verb": "rcon", "instance": "nosuch", "args": {"command": "status"}}', 1,
     "instance 'nosuch' is not configured on this host"),
    (b'{"verb": "rcon", "instance": "coop1", "args": {"command": "status; quit"}}', 1,
     "is refused"),
])
def test_left4me_read_refuses_what_its_module_refuses(demo, request_bytes, status, message):
    got, answer, stderr = fast_read(demo, request_bytes)
    assert got == status, stderr
    assert answer["failed"] and message in answer["msg"]


def in_host(booted: host.TestHost, *command: str, user: str = "root",
            stdin: str = "") -> subprocess.CompletedProcess:
    """A command inside the host as ``user`` (outside SSH), fed ``stdin``."""
    return subprocess.run(["nsenter", "-t", str(booted.init_pid()), "-m", "-u", "-i", "-n", "-p",
                           "runuser", "-u", user, "--", *command],
                          input=stdin, capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture(scope="module")
def reader(demo):
    """A user whose only sudo is the role's rule, as installed (the user name swapped)."""
    booted, _inventory = demo
    rule = booted.nsenter("cat", "/etc/sudoers.d/left4me-read")
    assert f"\n{image.ADMIN_USER} ALL=(root) NOPASSWD: " in rule
    booted.nsenter("useradd", "--create-home", READER)
    # the rule's own line, for READER (the alias and its Defaults stay in the role's file)
    swapped = "".join(line.replace(image.ADMIN_USER, READER, 1) + "\n"
                      for line in rule.splitlines() if line.startswith(f"{image.ADMIN_USER} ALL="))
    installed = in_host(booted, "sh", "-c", "cat > /etc/sudoers.d/left4me-read-test && chmod 0440"
                        " /etc/sudoers.d/left4me-read-test && visudo -c", stdin=swapped)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    yield booted
    booted.nsenter("rm", "-f", "/etc/sudoers.d/left4me-read-test")
    booted.nsenter("userdel", "--remove", READER, check=False)


def test_sudo_lists_only_the_read_command_for_its_user(reader):
    listed = reader.nsenter("sudo", "-l", "-U", READER)
    allowed = [line.strip() for line in listed.splitlines() if "NOPASSWD" in line]
    assert allowed == ["(root) NOPASSWD: /usr/bin/python3 -I"
                       " /usr/local/libexec/left4me/left4me-read"], listed


def test_the_read_user_answers_through_sudo(reader):
    done = in_host(reader, *READ_COMMAND, user=READER,
                     stdin='{"verb": "rcon", "instance": "coop1", "args": {"command": "status"}}')
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["output"].startswith("hostname: left4me demo coop")


def test_sudo_logs_each_read_and_opens_no_session_for_it(reader):
    """The rule drops the PAM session (its cost, on every read) and keeps sudo's own log
    line: who ran the read command as root, when."""
    done = in_host(reader, *READ_COMMAND, user=READER, stdin='{"verb": "info"}')
    assert done.returncode == 0, done.stderr

    def logged():
        lines = reader.nsenter("journalctl", "-t", "sudo", "-n", "200", "-o", "cat").splitlines()
        return [line for line in lines if READER in line] or None

    lines = wait_for(logged, timeout=20, step=0.5)
    assert any(f"{READER} : " in line and f"COMMAND={' '.join(READ_COMMAND[2:])}" in line
               for line in lines), lines
    assert not [line for line in lines if "session opened" in line], lines


@pytest.mark.parametrize("command", [
    [*READ_COMMAND, "--foo"],                                       # an argument
    ["sudo", "-n", "/usr/bin/python3", "/usr/local/libexec/left4me/left4me-read"],  # no -I
    ["sudo", "-n", "/usr/bin/python3", "-I", "-c", "import os; os.system('id')"],
    ["sudo", "-n", "PYTHONINSPECT=1", *READ_COMMAND[2:]],           # environment
    ["sudo", "-n", "-E", *READ_COMMAND[2:]],                        # the caller's environment
    ["sudo", "-n", "-u", "left4me", *READ_COMMAND[2:]],             # another target user
    ["sudo", "-n", "/bin/sh"],
])
def test_the_read_user_can_run_nothing_else_through_sudo(reader, command):
    done = in_host(reader, *command, user=READER, stdin='{"verb": "info"}')
    assert done.returncode != 0 and done.stdout == "", (done.stdout, done.stderr)
    assert "sudo" in done.stderr
