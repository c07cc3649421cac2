"""Attacks on the RCON password the host's root uses (issue 17, defects 1 and 2).

(a) Mallory's overlay ships left4dead2/cfg/server.cfg as a symlink: to Alice's instance.cfg
    (her RCON password), to /dev/zero, as a FIFO. The host's root reads that file when it
    runs Mallory's console and the UI's poller; neither may hand Alice's password to
    Mallory's port, read forever, or hang.
(b) Mallory's console hides `rcon_password` behind `;` or quotes: refused.
"""

from __future__ import annotations

import threading
import time

import pytest
from hostile_world import MAILBOX, STATE, Timed, World, alice_instance_cfg, link_script, within

from left4me_ui import live, observe, servers
from left4me_ui.overlays.kinds import script as overlay_script

pytestmark = pytest.mark.testhost

# Run by Mallory's server code: stop the real server and listen on her own game port (TCP,
# where RCON goes), answering every login with "welcome" and noting each password it got.
HONEYPOT = r'''
import socket, struct, sys, threading
port, out = int(sys.argv[1]), sys.argv[2]
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", port))
s.listen(8)
open(out + ".listening", "w").close()
def packet(i, k, body=b""):
    p = struct.pack("<ii", i, k) + body + b"\0\0"
    return struct.pack("<i", len(p)) + p
def serve(c):
    buf = b""
    with c:
        while True:
            data = c.recv(65536)
            if not data:
                return
            buf += data
            while len(buf) >= 4:
                n = struct.unpack("<i", buf[:4])[0]
                if len(buf) < 4 + n:
                    break
                p, buf = buf[4:4 + n], buf[4 + n:]
                i, k = struct.unpack("<ii", p[:8])
                body = p[8:-2].rstrip(b"\0")
                if k == 3:
                    with open(out, "a") as f:
                        f.write(body.decode("utf-8", "replace") + "\n")
                    c.sendall(packet(i, 0) + packet(i, 2))
                elif k == 2:
                    c.sendall(packet(i, 0, b"honeypot\n"))
                else:
                    c.sendall(packet(i, 0))
while True:
    conn, _ = s.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
'''

TAKE_THE_PORT = '''
import json, os, signal, subprocess, sys, time
open(os.path.join(BOX, "server-stopped"), "w").close()
os.kill(int(open(os.path.join(BOX, "server.pid")).read()), signal.SIGTERM)
time.sleep(1)
subprocess.Popen([sys.executable, "-c", HONEYPOT, str(PORT), os.path.join(BOX, "captured")],
                 start_new_session=True, stdout=subprocess.DEVNULL,
                 stderr=open(os.path.join(BOX, "honeypot.err"), "w"))
for _ in range(100):
    if os.path.exists(os.path.join(BOX, "captured.listening")):
        break
    time.sleep(0.1)
print(json.dumps({"listening": os.path.exists(os.path.join(BOX, "captured.listening"))}))
'''


def _use_link(world: World, how: str) -> None:
    """Mallory's `mallory-link` overlay ships server.cfg made by `how`; her linked server
    restarted onto it (the restart builds the changed overlay first, as the UI does)."""
    core, mallory = world.core, world.mallory
    overlay_script.save(core, mallory, "mallory-link", link_script(how))
    world.restart("mallory-link")
    shipped = world.host.nsenter("ls", "-l", f"{STATE}/runtime/mallory-link/merged/left4dead2"
                                 "/cfg/server.cfg", check=False)
    print(f"Mallory's server.cfg as the host sees it: {shipped.strip()}")


def _module_processes(world: World) -> list[tuple[int, int, str]]:
    """(pid, rss KiB, args) of the module runs Ansible started on the host (become shells'
    descendants), the processes the host's root runs for the console and the poller."""
    rows = []
    for line in world.host.nsenter("ps", "-eo", "pid=,ppid=,rss=,args=").splitlines():
        pid, ppid, rss, args = (line.split(None, 3) + [""])[:4]
        rows.append((int(pid), int(ppid), int(rss), args))
    roots = {pid for pid, _pp, _rss, args in rows if "BECOME-SUCCESS" in args
             or "AnsiballZ" in args}
    found, grew = set(roots), True
    while grew:
        grew = False
        for pid, ppid, _rss, _args in rows:
            if ppid in found and pid not in found:
                found.add(pid)
                grew = True
    return [(pid, rss, args) for pid, _pp, rss, args in rows if pid in found]


def _end_module_runs(world: World) -> None:
    for pid, _rss, args in _module_processes(world):
        if "python" in args:
            world.host.nsenter("kill", "-9", str(pid), check=False)


class _Watchdog:
    """Watches the module processes' memory while an attack call runs; kills one that grows
    past `kill_at` MiB (this machine's memory is the test host's) and remembers the peak."""

    def __init__(self, world: World, kill_at: int = 512) -> None:
        self.world, self.kill_at, self.peak_mib = world, kill_at, 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self.stop.is_set():
            for pid, rss, _args in _module_processes(self.world):
                self.peak_mib = max(self.peak_mib, rss // 1024)
                if rss // 1024 > self.kill_at:
                    self.world.host.nsenter("kill", "-9", str(pid), check=False)
            time.sleep(0.1)

    def __enter__(self) -> _Watchdog:
        self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop.set()
        self.thread.join(10)


def _console_and_poll(world: World, seconds: float) -> dict[str, object]:
    """Mallory's console (`status`) and the UI's poller, each given `seconds`, under the
    watchdog: how long each took, how it ended, the peak memory of the host's root runs."""
    server_id = world.servers["mallory-link"]
    seen: dict[str, object] = {}
    with _Watchdog(world) as watchdog:
        console = within(seconds, lambda: live.run_console(world.core, world.mallory,
                                                           server_id, "status"),
                         lambda: _end_module_runs(world))
        poll = within(seconds, world.poll, lambda: _end_module_runs(world))
    seen["console"], seen["poll"], seen["peak_mib"] = console, poll, watchdog.peak_mib
    return seen


def _ended(call: Timed) -> str:
    how = "returned" if call.finished else "was still running and was ended by the test"
    return f"{how} after {call.seconds:.1f} s"


def test_a_server_cfg_link_to_alices_instance_cfg_never_sends_her_password_to_mallory(
        world: World):
    _use_link(world, f'ln -s {alice_instance_cfg()} "$CFG"')
    server = world.server("mallory-link")
    box = f"{STATE}/runtime/mallory-link/merged/{MAILBOX}"
    took = world.mallory_runs(TAKE_THE_PORT, server="mallory-link", BOX=box,
                              HONEYPOT=HONEYPOT, PORT=server.port)
    assert took["json"] == {"listening": True}, took
    try:
        asked = {}
        try:
            asked["console"] = live.run_console(world.core, world.mallory, server.id,
                                                "status", deadline=10).output
        except live.ConsoleError as error:
            asked["console"] = f"ConsoleError: {error}"
        try:
            world.poll()
            asked["poll"] = "ok"
        except RuntimeError as error:
            asked["poll"] = f"RuntimeError: {error}"
        captured = world.host.nsenter("sh", "-c", f"cat {box}/captured 2>/dev/null || true")
        alice_password = servers.rcon_password(world.core, world.alice, world.servers["alice"])
        assert alice_password not in captured.split(), (
            "the host's root read Mallory's server.cfg link to Alice's instance.cfg and logged"
            " in to Mallory's port with ALICE's RCON password (Mallory's server code caught"
            f" it: {captured.split()!r}); console said {asked['console']!r}, poll"
            f" {asked['poll']!r}")
    finally:
        world.restart("mallory-link")
    world.assert_alice_unharmed("a server.cfg link to Alice's instance.cfg")


@pytest.mark.parametrize("how, what", [
    ('ln -s /dev/zero "$CFG"', "a server.cfg link to /dev/zero"),
    ('mkfifo "$CFG"', "a server.cfg FIFO"),
], ids=["dev-zero", "fifo"])
def test_a_server_cfg_that_never_ends_leaves_the_console_and_poller_prompt(world: World, how,
                                                                           what):
    _use_link(world, how)
    seen = _console_and_poll(world, seconds=30)
    console, poll = seen["console"], seen["poll"]
    took = (f"console {_ended(console)}, poll {_ended(poll)}, peak memory of the host's root"
            f" module runs {seen['peak_mib']} MiB")
    assert console.finished and poll.finished, (
        f"with {what} in Mallory's overlay, the host's root blocks reading it: {took}")
    assert seen["peak_mib"] < 256, (
        f"with {what} in Mallory's overlay, the host's root reads it without a bound: {took}")
    assert poll.error is None, f"the poll failed for every server on the host: {poll.error}"
    world.assert_alice_unharmed(what)
    observed = observe.latest(world.core, world.alice)[world.servers["alice"]]
    assert observed.running, f"after {what}, the poll no longer sees Alice's server: {observed}"


VARIANTS = ["status;rcon_password mallory-chose-this", 'status; "rcon_password" x',
            "echo hi;RCON_PASSWORD x"]


def test_b_console_refuses_rcon_password_behind_a_semicolon_or_quotes(world: World):
    server_id = world.servers["mallory"]
    ran = []
    try:
        for command in VARIANTS:
            try:
                live.run_console(world.core, world.mallory, server_id, command, deadline=10)
            except live.ConsoleError as error:
                if "rcon_password" not in str(error).lower():
                    ran.append(f"{command!r} (reached the server: {error})")
            else:
                ran.append(repr(command))
        try:
            live.run_console(world.core, world.mallory, server_id, "status", deadline=10)
            after = "the console still works"
        except live.ConsoleError as error:
            after = f"the console and the poller are locked out of her server: {error}"
        assert not ran, (f"Mallory's console sent {', '.join(ran)} to her server, which"
                         f" changes its RCON password; {after}")
    finally:
        if ran:
            world.restart("mallory")
    world.assert_alice_unharmed("rcon_password behind ';' in Mallory's console")
