"""What role ui_service promises on a converged host: the UI answers on loopback as its own
user, its files have the owners and modes it states, its unit is hardened (exposure at most
2.0), the UI's Ansible reaches a game host inside that sandbox with its own key, and a job
the running service takes from its queue starts a real server there."""

from __future__ import annotations

import base64
import json
import os
import re
import shlex
import socket
import subprocess
import time
from pathlib import Path

import a2s
import pytest

UNIT = "left4me-ui.service"
UNIT_FILE = f"/usr/local/lib/systemd/system/{UNIT}"
USER = GROUP = "left4me-ui"
INSTALL = "/opt/left4me-ui"
STATE = "/var/lib/left4me-ui"
CONFIG = "/etc/left4me-ui"
PORT = 8501
VENV_PYTHON = f"{INSTALL}/venv/bin/python"
HEALTH = (f"python3 -c \"import urllib.request; print(urllib.request.urlopen("
          f"'http://127.0.0.1:{PORT}/_stcore/health', timeout=5).read().decode())\"")
# Lines of the unit that describe how it runs rather than its sandbox: a probe run "as the
# UI" takes every other [Service] line of the installed unit.
NOT_SANDBOX = ("Type", "ExecStart", "Restart", "RestartSec", "RestartSteps",
               "RestartMaxDelaySec", "OOMPolicy", "TimeoutStopSec", "SocketBindAllow",
               "SocketBindDeny")


def wait_healthy(host, limit: float = 90) -> None:
    started = time.monotonic()
    while True:
        answer = host.run(HEALTH)
        if answer.rc == 0 and answer.stdout.strip() == "ok":
            return
        assert time.monotonic() - started < limit, f"no health answer: {answer.stderr[-500:]}"
        time.sleep(1)


def main_pid(host) -> int:
    return int(host.check_output(f"systemctl show -p MainPID --value {UNIT}"))


def as_the_ui(host, command: str, timeout: int = 300, stdin: str | None = None):
    """Run COMMAND as a transient unit with the installed UI unit's user, environment and
    sandbox (every [Service] line but how it starts and restarts): what a job of the UI meets."""
    unit = host.file(UNIT_FILE).content_string
    service = unit.split("[Service]", 1)[1].split("\n[", 1)[0]
    properties = [line for line in service.splitlines()
                  if re.match(r"^[A-Za-z]+=", line) and line.split("=", 1)[0] not in NOT_SANDBOX]
    assert any(p.startswith("MemoryDenyWriteExecute=") for p in properties)
    args = " ".join(f"-p {shlex.quote(p)}" for p in properties)
    feed = f"printf '%s\\n' {shlex.quote(stdin)} | " if stdin is not None else ""
    return host.run(
        f"{feed}timeout {timeout} systemd-run --quiet --wait --pipe --collect {args} {command}")


# --- the service answers -----------------------------------------------------------------


def test_ui_is_enabled_active_and_healthy(host):
    service = host.service(UNIT)
    assert service.is_enabled
    wait_healthy(host)
    assert service.is_running


def test_ui_answers_on_loopback_only(host, booted):
    wait_healthy(host)
    # From this machine, at the host's address: nothing listens there.
    with pytest.raises(OSError):
        socket.create_connection((booted.address, PORT), timeout=3).close()


def test_ui_runs_as_its_own_system_user(host):
    status = host.file(f"/proc/{main_pid(host)}/status").content_string
    uid = re.search(r"^Uid:\s+(\d+)", status, re.MULTILINE).group(1)
    assert host.user(USER).uid == int(uid)
    assert host.user(USER).shell == "/usr/sbin/nologin"
    assert host.user(USER).home == STATE


# --- files, owners, modes ------------------------------------------------------------------


@pytest.mark.parametrize(("path", "owner", "group", "mode"), [
    (INSTALL, "root", GROUP, 0o750),
    (f"{INSTALL}/src", "root", GROUP, 0o750),
    (f"{INSTALL}/src/inventory/hosts.yml", "root", GROUP, 0o640),
    (f"{INSTALL}/src/ui/app.py", "root", GROUP, 0o640),
    (STATE, USER, GROUP, 0o700),
    (CONFIG, "root", GROUP, 0o750),
    (f"{CONFIG}/environment", "root", GROUP, 0o640),
    (f"{CONFIG}/secret_key", USER, GROUP, 0o600),
    (f"{CONFIG}/ssh", USER, GROUP, 0o700),
    (f"{CONFIG}/ssh/id_ansible", USER, GROUP, 0o600),
    (f"{CONFIG}/ssh/known_hosts", USER, GROUP, 0o600),
    (UNIT_FILE, "root", "root", 0o644),
])
def test_file_owner_and_mode(host, path, owner, group, mode):
    file = host.file(path)
    assert file.exists, path
    assert (file.user, file.group, file.mode) == (owner, group, mode), path


def test_secret_key_is_long_and_random(host):
    secret = host.file(f"{CONFIG}/secret_key").content_string.strip()
    assert len(secret) >= 32 and secret.isalnum()


def test_nothing_of_the_ui_is_world_readable(host):
    # The venv holds public packages only; the install dir (0750) keeps others out of it.
    found = host.check_output(
        f"find {STATE} {CONFIG} {INSTALL} -path {INSTALL}/venv -prune -o -perm /o=rwx -print")
    assert found == ""


# --- the sandbox -----------------------------------------------------------------------


def test_unit_exposure_is_at_most_2(host):
    report = host.check_output(f"systemd-analyze security --no-pager {UNIT}")
    score = float(re.search(rf"Overall exposure level for {re.escape(UNIT)}: ([0-9.]+)",
                            report).group(1))
    print(f"systemd-analyze security {UNIT}: {score}")
    assert score <= 2.0, report


@pytest.mark.parametrize(("prop", "value"), [
    ("User", USER),
    ("MemoryDenyWriteExecute", "yes"),
    ("ProtectSystem", "strict"),
    ("ProtectHome", "yes"),
    ("NoNewPrivileges", "yes"),
    ("PrivateTmp", "yes"),
    ("CapabilityBoundingSet", ""),
    ("UMask", "0077"),
    ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
])
def test_running_unit_has_sandbox_property(host, prop, value):
    assert host.check_output(f"systemctl show -p {prop} --value {UNIT}") == value


@pytest.mark.parametrize(("prop", "value"), [
    ("MemoryMax", str(2 * 1024**3)),
    ("TasksMax", "1024"),
    ("OOMPolicy", "continue"),
    ("Restart", "always"),
    ("RestartMaxDelayUSec", "1min"),
    ("StartLimitIntervalUSec", "0"),
])
def test_running_unit_is_capped_and_always_comes_back(host, prop, value):
    assert host.check_output(f"systemctl show -p {prop} --value {UNIT}") == value


def test_python_data_stack_runs_where_memory_cannot_be_writable_and_executable(host):
    # Streamlit turns every table into Arrow: pyarrow and pandas must load and work there.
    code = ("import pyarrow, pandas, streamlit, ansible_runner;"
            "t = pyarrow.Table.from_pandas(pandas.DataFrame({'host': ['a', 'b']}));"
            "print(t.num_rows)")
    run = as_the_ui(host, f"{VENV_PYTHON} -c {shlex.quote(code)}")
    assert (run.rc, run.stdout.strip()) == (0, "2"), run.stderr[-2000:]


def test_writable_executable_memory_is_refused_there(host):
    code = ("import mmap\n"
            "try:\n"
            "    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)\n"
            "except PermissionError:\n"
            "    print('refused')\n")
    run = as_the_ui(host, f"{VENV_PYTHON} -c {shlex.quote(code)}")
    assert run.stdout.strip() == "refused", run.stdout + run.stderr


# --- reaching a game host --------------------------------------------------------------


def test_ui_reaches_its_game_host_with_its_own_key(host):
    """The UI's Ansible, as the UI's user inside its sandbox, logs in to the game host of its
    inventory (this same host) over SSH with the installed key, host key checked, and becomes
    root there."""
    run = as_the_ui(host, f"{INSTALL}/venv/bin/ansible -i {INSTALL}/src/inventory l4d2_hosts"
                          " -m ansible.builtin.command -a whoami --become")
    assert run.rc == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert re.search(r"\| CHANGED \| rc=0 >>\s*root", run.stdout), run.stdout


def test_unknown_host_key_is_refused(host):
    # 127.0.0.1 is this same host, but its key was given for the host's address only.
    run = as_the_ui(host, f"{INSTALL}/venv/bin/ansible all -i 127.0.0.1, -u ansible"
                          " -m ansible.builtin.ping")
    assert run.rc != 0
    assert "Host key verification failed" in run.stdout + run.stderr, run.stdout + run.stderr


def test_state_the_ui_wrote_is_its_own(host):
    """Runs above wrote Ansible's temp files and SSH control sockets into the state dir."""
    assert host.check_output(f"find {STATE} -mindepth 1 | head -1"), "nothing written"
    assert host.check_output(f"find {STATE} ! -user {USER} -print") == ""
    assert host.check_output(f"find {STATE} -mindepth 1 -perm /g=rwx,o=rwx -print") == ""


# --- database and sessions (the UI's domain package) -----------------------------------

PROBE = "/usr/local/lib/left4me-ui-test-probe.py"


@pytest.fixture(scope="module")
def domain_login(host):
    """Signed in once through the installed UI's own code, as the UI, before any restart."""
    if not host.file(f"{INSTALL}/src/ui/left4me_ui/core.py").exists:
        pytest.skip("the installed UI has no domain package (ui/left4me_ui/core.py) yet:"
                    " its database and sessions cannot be checked")
    probe = (Path(__file__).parent / "ui_domain_probe.py").read_text()
    encoded = base64.b64encode(probe.encode()).decode()
    host.run_expect([0], f"echo {encoded} | base64 -d > {PROBE} && chmod 0644 {PROBE}")
    run = as_the_ui(host, f"{VENV_PYTHON} {PROBE} login")
    assert run.rc == 0, run.stdout[-2000:] + run.stderr[-2000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_database_and_its_wal_sidecars_are_the_services_alone(host, domain_login):
    uid = host.user(USER).uid
    assert domain_login["files"] == {name: [uid, 0o600] for name in ("db", "-wal", "-shm")}


def test_a_job_the_service_runs_starts_a_server_on_its_game_host(host, booted, domain_login):
    """A server made through the installed UI's domain is a queued job; the probe starts no
    worker, so the running service's own worker takes it, runs playbooks/server.yml over
    SSH inside its sandbox, and the server answers A2S at this host's address."""
    run = as_the_ui(host, f"{VENV_PYTHON} {PROBE} server {booted.name}", timeout=600)
    assert run.rc == 0, run.stdout[-2000:] + run.stderr[-2000:]
    job = json.loads(run.stdout.strip().splitlines()[-1])
    assert job["state"] == "succeeded", f"{job['error']}\n{job['log']}"
    assert "Apply the server's settings and state" in job["log"]
    answer = a2s.info((booted.address, job["port"]), timeout=5.0)
    assert answer.server_name == job["hostname"]


# --- restarts ---------------------------------------------------------------------------


def test_restart_keeps_secret_and_state(host):
    wait_healthy(host)
    before_pid = main_pid(host)
    secret = host.file(f"{CONFIG}/secret_key").sha256sum
    state = host.check_output(f"find {STATE} -type f -exec sha256sum {{}} + | sort")
    host.run_expect([0], f"systemctl restart {UNIT}")
    wait_healthy(host)
    assert main_pid(host) != before_pid
    assert host.file(f"{CONFIG}/secret_key").sha256sum == secret
    after = host.check_output(f"find {STATE} -type f -exec sha256sum {{}} + | sort")
    # The database may change while the UI runs; every other state file stays as it was.
    kept = {line for line in state.splitlines() if ".sqlite3" not in line}
    assert kept <= set(after.splitlines())


def test_restart_keeps_sessions(host, domain_login):
    host.run_expect([0], f"systemctl restart {UNIT}")
    wait_healthy(host)
    run = as_the_ui(host, f"{VENV_PYTHON} {PROBE} check", stdin=domain_login["token"])
    assert run.rc == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert json.loads(run.stdout.strip().splitlines()[-1]) == {"valid": True}


# --- a converged host is left alone ------------------------------------------------------


def test_check_mode_on_converged_host_reports_no_change(booted):
    run = subprocess.run(
        ["ansible-playbook", "--check", "--diff", "-i", os.environ["MOLECULE_INVENTORY_FILE"],
         "--limit", booted.name, "playbooks/ui.yml"],
        cwd=os.environ["MOLECULE_PROJECT_DIRECTORY"], capture_output=True, text=True,
        check=False, env={**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"},
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    recap = re.search(rf"^{re.escape(booted.name)}\s+:.*$", run.stdout, re.MULTILINE)
    assert recap, run.stdout[-3000:]
    assert "changed=0" in recap.group(0) and "failed=0" in recap.group(0), recap.group(0)
