"""The build sandbox refuses what a hostile build script would try.

Every probe is a build script run by left4me.l4d2.script_overlay itself (probes.yml), so it
runs in the transient unit built from the module's own property list. Each prints one
line, "RESULT allowed" or "RESULT blocked <why>", and exits 0; a probe that could not run
at all fails the test. Connect probes target listeners on addresses inside the test
host's own network namespace (files/probe_network.py): nothing leaves this machine.
"""

from __future__ import annotations

import textwrap

import pytest
from conftest import NOT_PROVEN, run_probes

PORT = 8080
PUBLIC = "203.0.113.10"
HOST_SHM_FILE = "/dev/shm/l4m-host-probe"
BUILD_SHM_FILE = "/dev/shm/l4m-build-probe"


def python_probe(body: str) -> str:
    """A probe script: BODY attempts the action; an OSError or a false result means blocked."""
    return "#!/usr/bin/python3\n" + textwrap.dedent("""\
        import ctypes, os, socket, subprocess, sys
        def attempt():
        {body}
        try:
            outcome = attempt()
        except (OSError, subprocess.CalledProcessError) as exc:
            print("RESULT blocked", type(exc).__name__, exc)
        else:
            print("RESULT allowed" if outcome is not False else "RESULT blocked (refused)")
        """).format(body=textwrap.indent(textwrap.dedent(body), "    "))


def connect(address: str) -> str:
    return python_probe(f"""\
        family = socket.AF_INET6 if ":" in {address!r} else socket.AF_INET
        with socket.socket(family) as s:
            s.settimeout(3)
            s.connect(({address!r}, {PORT}))
            s.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
            return s.recv(12).startswith(b"HTTP/")
        """)


def read(path: str) -> str:
    return python_probe(f"return print(open({path!r}).read()[:40])")


def write(path: str) -> str:
    return python_probe(f"open({path!r}, 'w').write('probe')")


def run(*argv: str) -> str:
    return python_probe(f"subprocess.run({list(argv)!r}, check=True, timeout=20)")


PTRACE = python_probe("""\
    child = os.fork()
    if child == 0:
        os.execv("/bin/sleep", ["sleep", "10"])
    libc = ctypes.CDLL(None, use_errno=True)
    PTRACE_ATTACH = 16
    ok = libc.ptrace(PTRACE_ATTACH, child, None, None) == 0
    err = ctypes.get_errno()
    os.kill(child, 9)
    if not ok:
        raise OSError(err, os.strerror(err))
    """)

SETUID = python_probe("os.setuid(0)")
SUID_BIT = python_probe("""\
    open("/overlay/suid", "w").close()
    os.chmod("/overlay/suid", 0o4755)
    return os.stat("/overlay/suid").st_mode & 0o4000 != 0
    """)


def blocked_probes(own_address: str) -> dict[str, str]:
    return {
        "read-state-db": read("/var/lib/left4me/state.db"),
        "read-instance-env": read("/etc/left4me/instances/coop1.env"),
        "read-other-overlay": read("/var/lib/left4me/overlays/cedapug/.cedapug-maps"),
        "write-srv": write("/srv/probe"),
        "write-etc": write("/etc/probe"),
        "write-usr": write("/usr/local/probe"),
        "write-home": write("/home/left4me/probe"),
        "write-overlays-dir": write("/var/lib/left4me/overlays/probe"),
        "connect-loopback": connect("127.0.0.1"),
        "connect-loopback6": connect("::1"),
        "connect-own-address": connect(own_address),
        # A public address of the host itself (prepare.yml): delivered over lo, where a
        # firewall's rules for the outside interface do not apply.
        "connect-own-public-address": connect("198.51.100.7"),
        "connect-10": connect("10.0.0.1"),
        "connect-172-16": connect("172.16.0.1"),
        "connect-192-168": connect("192.168.0.1"),
        "connect-metadata": connect("169.254.169.254"),
        "connect-cgnat": connect("100.64.0.1"),
        "connect-ula": connect("fc00::1"),
        "unshare-user": run("unshare", "-U", "true"),
        "mount": run("unshare", "-r", "-m", "mount", "-t", "tmpfs", "none", "/overlay"),
        "ptrace": PTRACE,
        "setuid-root": SETUID,
        "sudo": run("sudo", "-n", "true"),
        "suid-bit": SUID_BIT,
        # What another unit of the runtime uid left in the host's /dev/shm.
        "read-host-shm": read(HOST_SHM_FILE),
    }


@pytest.fixture(scope="module")
def results(booted, ssh):
    probes = [{"name": name, "content": content}
              for name, content in blocked_probes(booted.address).items()]
    probes.append({"name": "connect-public", "content": connect(PUBLIC)})
    probes.append({"name": "write-shm", "content": write(BUILD_SHM_FILE)})
    # As a game server or an earlier build of the same runtime uid would leave it.
    ssh.check_output(f"sudo -u left4me sh -c 'echo secret > {HOST_SHM_FILE}'")
    try:
        return run_probes(booted, probes)
    finally:
        ssh.run(f"rm -f {HOST_SHM_FILE}")


def outcome(result: dict) -> str:
    assert result.get("rc") == 0, f"the probe itself failed: {result}"
    lines = [line for line in result["output"] if line.startswith("RESULT ")]
    assert lines, f"the probe printed no RESULT line: {result['output']}"
    return lines[-1]


@pytest.mark.parametrize("probe", sorted(blocked_probes("169.254.77.2")))
def test_probe_is_blocked(results, probe):
    line = outcome(results[probe])
    assert line.startswith("RESULT blocked"), f"{probe}: {line}"


def test_public_address_stays_reachable(results):
    assert outcome(results["connect-public"]) == "RESULT allowed"


def test_a_build_has_a_dev_shm_of_its_own(results, ssh):
    """Usable (POSIX shared memory works), but not the host's: nothing it leaves there
    reaches the host or the next build or server."""
    assert outcome(results["write-shm"]) == "RESULT allowed"
    assert not ssh.file(BUILD_SHM_FILE).exists


def test_probe_writes_outside_overlay_left_no_trace(ssh):
    leaked = ssh.run("ls -d /srv/probe /etc/probe /usr/local/probe /home/left4me/probe"
                     " /var/lib/left4me/overlays/probe 2>/dev/null")
    assert leaked.stdout.strip() == ""


# --- resource limits: only where the host enforces them -------------------------------

CGROUP_PROBES = {
    "TasksMax": {
        "tasks_max": 16,
        "content": python_probe("""\
            children = []
            for _ in range(64):
                children.append(subprocess.Popen(["sleep", "5"]))
            return True
            """),
    },
    "MemoryMax": {
        "memory_max": "64M",
        "content": python_probe("""\
            hog = [bytearray(16 << 20) for _ in range(32)]
            return len(hog) == 32
            """),
    },
    "CPUQuota": {
        "cpu_quota": "20%",
        "content": python_probe("""\
            import time
            start_wall, start_cpu = time.monotonic(), time.process_time()
            while time.monotonic() - start_wall < 5:
                pass
            share = (time.process_time() - start_cpu) / (time.monotonic() - start_wall)
            print("cpu share", round(share, 2))
            return share > 0.3
            """),
    },
}


@pytest.mark.parametrize("directive", sorted(CGROUP_PROBES))
def test_resource_limit_bites(booted, enforced, directive):
    finding = enforced[directive]
    if not finding.enforced:
        NOT_PROVEN[directive] = finding.evidence
        pytest.skip(f"{directive} NOT PROVEN on this host: {finding.evidence} (an nspawn "
                    "host gets no cgroup controllers; tests/sandbox/test_vm_limits.py proves "
                    "it in a qemu VM)")
    probe = {"name": f"limit-{directive.lower()}", **CGROUP_PROBES[directive]}
    result = run_probes(booted, [probe])[probe["name"]]
    if directive == "MemoryMax":
        assert result.get("service_result") == "oom-kill", result
    else:
        assert outcome(result).startswith("RESULT blocked"), result


# --- wall time and atomicity -----------------------------------------------------------


def test_failed_and_killed_builds_leave_the_previous_overlay_untouched(booted, ssh):
    good = "#!/bin/sh\nmkdir -p /overlay/cfg && echo v1 > /overlay/cfg/version.cfg\n"
    clobber = "rm -rf /overlay/* && echo broken > /overlay/partial"
    results = run_probes(booted, [
        {"name": "atomic-good", "overlay": "probe-atomic", "content": good},
        {"name": "atomic-timeout", "overlay": "probe-atomic", "runtime_max_sec": 3,
         "content": f"#!/bin/sh\n{clobber}\nsleep 60\n"},
        {"name": "atomic-fails", "overlay": "probe-atomic",
         "content": f"#!/bin/sh\n{clobber}\nexit 3\n"},
    ])
    assert results["atomic-good"]["rc"] == 0, results["atomic-good"]
    timeout = results["atomic-timeout"]
    assert timeout["rc"] != 0 and timeout["service_result"] == "timeout", timeout
    assert "RuntimeMaxSec=3" in timeout["msg"]
    failed = results["atomic-fails"]
    assert failed["rc"] == 3 and "exited with status 3" in failed["msg"], failed
    tree = ssh.run("cd /var/lib/left4me/overlays && find probe-atomic -printf '%p %m\\n'")
    assert sorted(tree.stdout.splitlines()) == [
        "probe-atomic 755", "probe-atomic/cfg 755", "probe-atomic/cfg/version.cfg 644"]
    leftovers = ssh.run("ls -a /var/lib/left4me/overlays").stdout.split()
    assert not [n for n in leftovers if ".build-" in n], f"staging left behind: {leftovers}"
    assert ssh.file("/var/lib/left4me/overlays/probe-atomic/cfg/version.cfg").content_string \
        == "v1\n"
