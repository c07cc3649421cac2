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
import json, os
path = os.path.join(os.getcwd(), "fill.bin")  # the merged root is the server's own
written, stopped_by = 0, None
chunk = os.urandom(1 << 20) * 16
try:
    with open(path, "wb") as f:
        while written < LIMIT:
            f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
            written += len(chunk)
except OSError as error:
    stopped_by = error.strerror
print(json.dumps({"written": written, "stopped_by": stopped_by}))
'''
DISK_LIMIT = 5 << 29  # 2.5 GiB: past a server's upper-dir cap (2 GiB by default)


def test_h_a_disk_fill_past_the_cap_stops_her_server_at_the_next_check(world: World):
    """Mallory writes more than her upper dir's cap (2 GiB): the host's check
    (left4me-upper-check.timer, every 5 min; started here rather than waited for) stops her
    server, every restart is refused with both sizes, and Alice never notices."""
    upper = f"{STATE}/runtime/mallory/upper"
    try:
        answer = world.mallory_runs(DISK_FILL, timeout=600, LIMIT=DISK_LIMIT)
        assert (answer.get("json") or {}).get("written", 0) >= DISK_LIMIT, (
            f"probe broken: Mallory's server could not write past its cap: {answer}")
        world.host.nsenter("systemctl", "start", "left4me-upper-check.service")
        deadline = time.monotonic() + 180
        state = ""
        while time.monotonic() < deadline:
            state = world.unit_show("mallory", "ActiveState")
            if state == "failed":
                break
            time.sleep(1)
        journal = world.host.nsenter("journalctl", "--no-pager", "-n", "60", "-u",
                                     "left4me-server@mallory", check=False)
        assert state == "failed", (
            f"Mallory's server kept running ({state}) with {DISK_LIMIT >> 20} MiB in its upper"
            f" dir after the host's check:\n{journal}")
        assert "upper dir" in journal, f"her unit does not say why it stopped:\n{journal}"
        world.assert_alice_unharmed("a disk fill past the cap")
    finally:
        world.host.nsenter("rm", "-f", f"{STATE}/runtime/mallory/merged/fill.bin", check=False)
        if world.unit_show("mallory", "ActiveState") != "active":  # unmounted: the upper dir
            world.host.nsenter("rm", "-f", f"{upper}/fill.bin")
            world.host.nsenter("systemctl", "reset-failed", "left4me-server@mallory.service",
                               check=False)
            world.restart("mallory")


def test_h_a_disk_fill_is_stopped_while_it_writes():
    pytest.skip("NOT BUILT: no size-capped filesystem per instance yet, so a server's writes"
                " are not refused at its cap as they happen; the cap is checked at every start"
                " and every game_host_upper_check_interval (5 min), which a fast writer can"
                " outrun until then (issue 17, defect 4: left open)")
