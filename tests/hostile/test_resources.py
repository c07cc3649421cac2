"""Mallory's server takes what the host has (issue 17, defect 4): tasks, memory, disk.

A booted nspawn host gets no cgroup controllers (testhosts/enforcement.py probes it), so
MemoryMax= and TasksMax= are configured there but cannot bite: these tests assert the
configuration everywhere, and run the fork bomb and the memory hog only where the host
enforces them. The disk cap needs no cgroup controller, so it is proven here.
"""

from __future__ import annotations

import time

import pytest
from hostile_world import STATE, World

from testhosts import enforcement

pytestmark = pytest.mark.testhost

VM_LANE = ("the VM lane (tests/sandbox/test_vm_limits.py: a qemu guest with its own kernel"
           " and cgroup controllers runs the game unit as installed and the build sandbox)")


def _limits(world: World) -> dict[str, str]:
    return {prop: world.unit_show("mallory", prop) for prop in (
        "MemoryMax", "TasksMax", "CPUQuotaPerSecUSec", "CPUWeight", "OOMScoreAdjust")}


def test_h_a_game_unit_has_memory_task_and_cpu_limits(world: World):
    limits = _limits(world)
    unbounded = [p for p in ("MemoryMax", "TasksMax") if limits[p] in ("infinity", "")]
    # systemd's DefaultTasksMax= (15 % of the kernel's pid_max) applies to every unit: a
    # per-server limit is below it.
    default_tasks = world.host.nsenter("systemctl", "show", "-P", "DefaultTasksMax").strip()
    if "TasksMax" not in unbounded and limits["TasksMax"] == default_tasks:
        unbounded.append(f"tasks (TasksMax is systemd's default for every unit, {default_tasks})")
    if limits["CPUQuotaPerSecUSec"] == "infinity" and limits["CPUWeight"] in ("", "[not set]"):
        unbounded.append("CPU (neither CPUQuota= nor CPUWeight=)")
    assert not unbounded, (f"Mallory's server may take all the host's {', '.join(unbounded)}:"
                           f" {limits}")
    assert int(limits["OOMScoreAdjust"]) >= 0, (
        f"the OOM killer takes system services (sshd) before Mallory's server: {limits}")


def _enforced(world: World, directive: str) -> enforcement.Finding:
    (finding,) = [f for f in enforcement.probe(world.host) if f.directive == directive]
    return finding


FORK_BOMB = '''
import json, os, time
children = []
for _ in range(5000):
    try:
        pid = os.fork()
    except OSError as error:
        print(json.dumps({"forked": len(children), "stopped_by": error.strerror}))
        break
    if pid == 0:
        time.sleep(30)
        os._exit(0)
    children.append(pid)
else:
    print(json.dumps({"forked": len(children), "stopped_by": None}))
for pid in children:
    os.kill(pid, 9)
'''

MEMORY_HOG = '''
import json
hog = []
for mib in range(1, 16 * 1024):
    hog.append(bytearray(1 << 20))
    if mib % 256 == 0:
        print(mib, flush=True)
print(json.dumps({"allocated_mib": len(hog)}))
'''


def test_h_a_fork_bomb_stops_at_the_task_limit(world: World):
    finding = _enforced(world, "TasksMax")
    if not finding.enforced:
        pytest.skip(f"TasksMax cannot bite on this host ({finding.evidence}); proven in {VM_LANE}")
    answer = world.mallory_runs(FORK_BOMB)
    assert answer["json"] and answer["json"]["stopped_by"], (
        f"Mallory's server forked without a limit: {answer}")
    world.assert_alice_unharmed("a fork bomb")


def test_h_a_memory_hog_is_killed_at_the_memory_limit(world: World):
    finding = _enforced(world, "MemoryMax")
    if not finding.enforced:
        pytest.skip(f"MemoryMax cannot bite on this host ({finding.evidence}); proven in"
                    f" {VM_LANE}")
    answer = world.mallory_runs(MEMORY_HOG)
    assert answer["json"] is None, f"Mallory's server took memory without a limit: {answer}"
    world.assert_alice_unharmed("a memory hog")


DISK_FILL = '''
import json, os, time
here = os.getcwd()  # the merged root is the server's own
reserve = os.path.join(here, "reserve.bin")  # freed at the end, so the agent can answer
with open(reserve, "wb") as f:
    f.write(b"r" * (4 << 20))
path = os.path.join(here, "fill.bin")
written, stopped_by, started = 0, None, time.monotonic()
chunk = os.urandom(1 << 20) * 16
try:
    with open(path, "wb") as f:
        while written < LIMIT:
            written += f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
except OSError as error:
    stopped_by = error.strerror
took = time.monotonic() - started
vfs = os.statvfs(here)
os.unlink(reserve)
print(json.dumps({"written": written, "stopped_by": stopped_by, "seconds": took,
                  "her_filesystem": vfs.f_blocks * vfs.f_frsize}))
'''
CAP = 2 << 30  # a server's upper_dir_max by default
DISK_LIMIT = 3 * CAP  # what she tries to write: far past her cap


def _host_free(world: World) -> int:
    """Bytes free on the host's disk under its state dir (where the images live)."""
    blocks, size = world.host.nsenter("stat", "-f", "-c", "%a %S", STATE).split()
    return int(blocks) * int(size)


def test_h_a_disk_fill_is_refused_as_she_writes(world: World):
    """Mallory's server writes three times its cap (upper_dir_max, 2 GiB by default): her
    write fails with "No space left on device" once her writes filesystem is full, while she
    writes, not at a later check; the host's disk gives her at most the cap (her image),
    her server keeps running with its own full disk, and Alice never notices."""
    image = f"{STATE}/runtime/mallory/writes.img"
    restarts = world.unit_show("mallory", "NRestarts")
    free_before = _host_free(world)
    try:
        answer = world.mallory_runs(DISK_FILL, timeout=600, LIMIT=DISK_LIMIT)
        got = answer.get("json") or {}
        assert got.get("stopped_by") == "No space left on device", (
            f"Mallory's server wrote past its cap without being refused: {answer}")
        assert got["written"] <= CAP, f"she wrote more than her cap: {got}"
        assert got["her_filesystem"] <= CAP, f"her filesystem is larger than her cap: {got}"
        taken = free_before - _host_free(world)
        held = int(world.host.nsenter("stat", "-c", "%b %B", image).split()[0]) * 512
        assert held <= CAP + (8 << 20), f"her image holds {held} bytes, past her cap"
        # Other tests on this machine write too: what she took is her cap, not her 6 GiB.
        assert taken <= CAP + (512 << 20), (
            f"the host's disk lost {taken >> 20} MiB while Mallory wrote"
            f" {got['written'] >> 20} MiB under a {CAP >> 20} MiB cap")
        assert world.unit_show("mallory", "ActiveState") == "active"
        assert world.unit_show("mallory", "NRestarts") == restarts
        world.assert_alice_unharmed("a disk fill past the cap")
    finally:
        world.host.nsenter("rm", "-f", f"{STATE}/runtime/mallory/merged/fill.bin", check=False)
    # The image gives the host back what she deleted (mounted with discard: ext4 discards
    # the freed blocks after its journal's commit, which sync forces, and the loop device
    # punches them out of the image a few seconds later).
    held, deadline = CAP, time.monotonic() + 60
    while held >= 256 << 20 and time.monotonic() < deadline:
        world.host.nsenter("sync")
        held = int(world.host.nsenter("stat", "-c", "%b", image).split()[0]) * 512
        time.sleep(1)
    assert held < 256 << 20, f"her image still holds {held >> 20} MiB after she deleted the fill"
