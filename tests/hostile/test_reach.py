"""What Mallory's running server code can reach (issue 17, defects 3 and 5's masking).

(c) Alice's files: her instance.cfg (RCON password), her overlays, her upper dir, the
    instances' env files; and what the tenants share: /dev/shm, the host's /run.
(d) Alice's processes: signals, ptrace, her unit's cgroup.
(e) Network: Alice's RCON (127.0.0.1 and the server address), the UI's port, sshd, cloud
    metadata (169.254.169.254) and a private-range (10.x) listener on the host's network.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from hostile_world import ALICE_SECRET, ALICE_SECRET_CFG, STATE, World, alice_instance_cfg

pytestmark = pytest.mark.testhost

READ_EVERYTHING = '''
import json, os
def attempt(path):
    try:
        if os.path.isdir(path):
            return "listed: " + ", ".join(sorted(os.listdir(path))[:20])
        with open(path, "rb") as f:
            return "read: " + f.read(4096).decode("utf-8", "replace")
    except OSError as error:
        return "refused: " + (error.strerror or type(error).__name__)
print(json.dumps({path: attempt(path) for path in TARGETS}))
'''


def _readable(answer: dict) -> dict[str, str]:
    assert answer["json"] is not None, answer
    return {path: got for path, got in answer["json"].items() if not got.startswith("refused")}


def test_c_mallorys_server_cannot_read_alices_files(world: World):
    targets = [
        alice_instance_cfg(),
        f"{STATE}/overlays/.instance-alice",
        f"{STATE}/overlays/alice-files/{ALICE_SECRET_CFG}",
        f"{STATE}/overlays/alice-maps/left4dead2/cfg/alice-build.cfg",
        f"{STATE}/overlays",
        f"{STATE}/runtime/alice/writes/upper",
        f"{STATE}/runtime/alice/writes.img",
        f"{STATE}/runtime/alice/merged/{ALICE_SECRET_CFG}",
        f"{STATE}/runtime/alice/merged/left4dead2/cfg/left4me/instance.cfg",
        "/etc/left4me/instances",
        "/etc/left4me/instances/alice.env",
    ]
    got = _readable(world.mallory_runs(READ_EVERYTHING, TARGETS=targets))
    # An empty masking directory is no leak; a listing with names or any file read is one.
    leaks = {path: seen for path, seen in got.items() if seen not in ("listed: ",)}
    password = world.host.nsenter("cat", alice_instance_cfg())
    assert not leaks, ("Mallory's server code read Alice's files: "
                       + "; ".join(f"{p} -> {s[:120]!r}" for p, s in leaks.items()))
    assert not any(ALICE_SECRET in s or password.strip() in s for s in got.values())
    world.assert_alice_unharmed("reading Alice's files")


def test_c_tenants_share_no_dev_shm_and_do_not_see_the_hosts_run(world: World):
    # What Alice's server (same runtime uid) would leave in /dev/shm, put there by root.
    world.host.nsenter("sh", "-c", "echo alice-shm-secret > /dev/shm/alice-shm"
                       " && chown left4me: /dev/shm/alice-shm && chmod 0600 /dev/shm/alice-shm")
    try:
        answer = world.mallory_runs('''
            import json, os
            seen = {}
            try:
                seen["read /dev/shm/alice-shm"] = open("/dev/shm/alice-shm").read().strip()
            except OSError as error:
                seen["read /dev/shm/alice-shm"] = "refused: " + error.strerror
            try:
                open("/dev/shm/mallory-was-here", "w").write("x")
                seen["write /dev/shm"] = "written"
            except OSError as error:
                seen["write /dev/shm"] = "refused: " + error.strerror
            seen["/run/dbus/system_bus_socket"] = os.path.exists("/run/dbus/system_bus_socket")
            seen["/run/systemd/journal"] = os.path.exists("/run/systemd/journal/socket")
            print(json.dumps(seen))
        ''')
        seen = answer["json"]
        host_shm = world.host.nsenter("ls", "-A", "/dev/shm").split()
        host_has_dbus = world.host.nsenter(
            "sh", "-c", "test -S /run/dbus/system_bus_socket && echo yes", check=False
        ).strip() == "yes"
        achieved = []
        if seen["read /dev/shm/alice-shm"] == "alice-shm-secret":
            achieved.append("read a file another tenant's server left in /dev/shm")
        if "mallory-was-here" in host_shm:
            achieved.append("left a file in the host's /dev/shm, shared with every tenant")
        if host_has_dbus and seen["/run/dbus/system_bus_socket"]:
            achieved.append("sees the host's /run (the D-Bus system socket)")
        assert not achieved, f"Mallory's server code {'; '.join(achieved)} ({seen})"
    finally:
        world.host.nsenter("rm", "-f", "/dev/shm/alice-shm", "/dev/shm/mallory-was-here")
    world.assert_alice_unharmed("/dev/shm and /run")


def _alice_pids(world: World) -> list[int]:
    group = world.unit_show("alice", "ControlGroup")
    return [int(p) for p in world.host.nsenter(
        "cat", f"/sys/fs/cgroup{group}/cgroup.procs").split()]


def test_d_mallorys_server_cannot_signal_or_trace_alices(world: World):
    pids = _alice_pids(world)
    group = world.unit_show("alice", "ControlGroup")
    assert pids, "Alice's server has no processes"
    answer = world.mallory_runs('''
        import ctypes, json, os, signal
        libc = ctypes.CDLL(None, use_errno=True)
        PTRACE_ATTACH, PTRACE_DETACH = 16, 17
        seen = {}
        for pid in PIDS:
            try:
                os.kill(pid, signal.SIGSTOP)
                seen[f"SIGSTOP {pid}"] = "delivered"
            except OSError as error:
                seen[f"SIGSTOP {pid}"] = "refused: " + error.strerror
            if libc.ptrace(PTRACE_ATTACH, pid, None, None) == 0:
                seen[f"ptrace {pid}"] = "attached"
                libc.ptrace(PTRACE_DETACH, pid, None, None)
            else:
                seen[f"ptrace {pid}"] = "refused: " + os.strerror(ctypes.get_errno())
        others = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    cmdline = open(f"/proc/{entry}/cmdline", "rb").read()
                except OSError:
                    continue
                if b"runtime/alice/" in cmdline:
                    others.append(entry)
        seen["Alice's processes in Mallory's /proc"] = others
        for name in ("cgroup.kill", "cgroup.freeze"):
            try:
                with open("/sys/fs/cgroup" + GROUP + "/" + name, "w") as f:
                    f.write("1")
                seen["write " + name] = "written"
            except OSError as error:
                seen["write " + name] = "refused: " + error.strerror
        print(json.dumps(seen))
    ''', PIDS=pids, GROUP=group)
    seen = answer["json"]
    assert seen is not None, answer
    states = {pid: world.host.nsenter("sh", "-c", f"awk '{{print $3}}' /proc/{pid}/stat"
                                      " 2>/dev/null || true").strip() for pid in pids}
    world.host.nsenter("kill", "-CONT", *map(str, pids), check=False)  # undo a landed SIGSTOP
    world.host.nsenter("sh", "-c", f"echo 0 > /sys/fs/cgroup{group}/cgroup.freeze", check=False)
    achieved = {k: v for k, v in seen.items()
                if v in ("delivered", "attached", "written") or (isinstance(v, list) and v)}
    stopped = {pid: s for pid, s in states.items() if s in ("T", "t")}
    assert not achieved and not stopped, (
        f"Mallory's server code reached Alice's processes: {achieved}; stopped: {stopped}")
    world.assert_alice_unharmed("signals and ptrace")


# One listener on the host's network for what is not there by default: cloud metadata
# (169.254.169.254:80), a private-range neighbour (10.77.0.1:80) and the UI (127.0.0.1:8501,
# as when it is co-located).
LISTENER = ("import socket, threading\n"
            "def serve(port):\n"
            "    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
            "    s.bind(('0.0.0.0', port)); s.listen(16)\n"
            "    while True:\n"
            "        c, _ = s.accept(); c.close()\n"
            "for p in (80, 8501):\n"
            "    threading.Thread(target=serve, args=(p,)).start()\n")


@pytest.fixture(scope="module")
def neighbours(world: World) -> Iterator[None]:
    run = world.host.nsenter
    # A dummy interface where the kernel has the driver; else a veth pair, both ends in the
    # host's namespace (a firecracker-style kernel ships veth, which nspawn needs, not dummy).
    run("ip", "link", "add", "hostile0", "type", "dummy", check=False)
    if not world.exists("/sys/class/net/hostile0"):
        run("ip", "link", "add", "hostile0", "type", "veth", "peer", "name", "hostile1")
        run("ip", "link", "set", "hostile1", "up")
    run("ip", "addr", "add", "10.77.0.1/32", "dev", "hostile0")
    run("ip", "addr", "add", "169.254.169.254/32", "dev", "hostile0")
    run("ip", "link", "set", "hostile0", "up")
    run("systemd-run", "--unit=hostile-neighbours", "python3", "-c", LISTENER)
    deadline = time.monotonic() + 60  # systemd-run returns before python has bound both
    while time.monotonic() < deadline:
        listening = run("ss", "-Hltn", "sport = :80 or sport = :8501", check=False)
        if ":80 " in listening and ":8501 " in listening:
            break
        time.sleep(0.3)
    try:
        yield
    finally:
        run("systemctl", "stop", "hostile-neighbours", check=False)
        run("ip", "link", "del", "hostile0", check=False)


CONNECT = '''
import json, socket, threading
seen = {}
def attempt(address, port):
    try:
        socket.create_connection((address, port), timeout=3).close()
        seen[f"{address}:{port}"] = "connected"
    except OSError as error:
        seen[f"{address}:{port}"] = "refused: " + (error.strerror or type(error).__name__)
threads = [threading.Thread(target=attempt, args=t) for t in TARGETS]
[t.start() for t in threads]
[t.join() for t in threads]
print(json.dumps(seen))
'''


def test_e_mallorys_server_reaches_no_private_service(world: World, neighbours):
    alice = world.server("alice")
    address = world.host.address
    targets = {
        f"127.0.0.1:{alice.port}": "Alice's RCON on loopback",
        f"{address}:{alice.port}": "Alice's RCON on the server address",
        "127.0.0.1:8501": "the UI's port",
        "127.0.0.1:22": "sshd on loopback",
        f"{address}:22": "sshd on the server address",
        "169.254.169.254:80": "cloud metadata",
        "10.77.0.1:80": "a private-range (10.x) neighbour",
    }
    pairs = [(t.rsplit(":", 1)[0], int(t.rsplit(":", 1)[1])) for t in targets]
    # The host's root reaches each of them: they are there to be refused.
    from_host = json.loads(world.host.nsenter(
        "python3", "-c", f"TARGETS = {pairs!r}\n{CONNECT}").strip().splitlines()[-1])
    missing = {t: r for t, r in from_host.items() if r != "connected"}
    assert not missing, f"probe broken: the host itself cannot reach {missing}"
    seen = world.mallory_runs(CONNECT, TARGETS=pairs)["json"]
    reached = [f"{targets[t]} ({t})" for t, r in seen.items() if r == "connected"]
    assert not reached, f"Mallory's server code connected to {', '.join(reached)}"
    world.assert_alice_unharmed("connecting to private services")
