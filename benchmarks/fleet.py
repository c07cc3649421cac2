"""Fleet-scale figures of left4me against their natural alternatives, measured in one run.

    sudo .venv/bin/python benchmarks/fleet.py [--section workshop|instances|converge|all]
        [--size 3G] [--repeat 3]

Each figure is a ratio of two measurements taken on this machine in this run, printed with
its goal, the core count and the date (README "Benchmarks" carries the last table):

  P1  disk used by one more instance / a full copy of the install            goal <= 0.001
  P2  time to add and start one instance / `cp -a` of the install            goal <= 0.05
  P3  idempotent site.yml, host with 20 instances / with 1 (changed=0 both)   goal <= 1.3
  P4  no-op site.yml on one host / a bare `ansible.builtin.ping` of it        goal <= 5
  P5  Workshop refresh of 100 cached items: API calls, downloads             goal 1 and 0
  P6  cold Workshop fetch of 20 items, stand-in latency on: parallel/serial  goal <= 0.35
  P7  idempotent site.yml on 4 hosts / on 1 of them (forks 10)                goal <= 1.8

`workshop` runs in this process against the fake Steam Web API (standins/webapi).
`instances` boots one test host, converges it with site.yml (the demo world's settings),
grows its game install into a dense one of realistic shape with the steamcmd stand-in's
size knobs (its content files are sparse; the benchmark then writes every byte, so the copy
it is compared with costs what a real install's copy costs), and measures there.
`converge` boots four test hosts, converges them with site.yml (the demo world's settings),
and times re-runs that have nothing to do: on one host against a ping of it (P4), with 20
instances against 1 (P3), and on all four hosts against one (P7). Each timing is the best
of --repeat runs (the machine's load varies while it runs), and every re-run must report
changed=0.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(PROJECT), str(PROJECT / "collections")]

from ansible_collections.left4me.l4d2.plugins.module_utils import _workshop  # noqa: E402

from testhosts import host  # noqa: E402


@dataclass(frozen=True)
class Figure:
    key: str
    what: str
    measured: str
    value: str
    goal: str
    met: bool


def say(message: str) -> None:
    print(f"  .. {message}", file=sys.stderr, flush=True)


# --- Workshop (P5, P6) -------------------------------------------------------------------


@contextmanager
def webapi(*args: str) -> Iterator[str]:
    """The fake Steam Web API on a free port; yields its base URL."""
    server = subprocess.Popen(
        [sys.executable, "-m", "standins.webapi", "--port", "0", *args],
        cwd=PROJECT, stdout=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()
        if "listening on" not in line:
            raise RuntimeError(f"the Web API stand-in did not start: {line!r}")
        yield line.rsplit(" ", 1)[1].strip()
    finally:
        server.terminate()
        server.wait(timeout=10)


def standin_admin(url: str, action: str, payload: str = "{}") -> bytes:
    if action == "stats":
        request = urllib.request.Request(f"{url}/_standin/stats")
    else:
        request = urllib.request.Request(f"{url}/_standin/{action}", data=payload.encode(),
                                         headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read()


def sync(url: str, state_dir: Path, items: list[str], workers: int) -> _workshop.SyncResult:
    for directory in ("overlays", "workshop_cache"):
        (state_dir / directory).mkdir(parents=True, exist_ok=True)
    result = _workshop.sync_overlay("bench", items, api=_workshop.SteamApi(url),
                                    state_dir=str(state_dir), workers=workers, retry_delay=0.1)
    if result.failed:
        raise RuntimeError(result.msg)
    return result


def workshop_figures() -> list[Figure]:
    figures = []
    items = [str(1000000001 + n) for n in range(100)]
    with webapi("--generate", "100") as url, tempfile.TemporaryDirectory() as state:
        say("P5: first fetch of 100 Workshop items, then a refresh")
        sync(url, Path(state), items, workers=4)
        standin_admin(url, "reset")
        refresh = sync(url, Path(state), items, workers=4)
        stats = json.loads(standin_admin(url, "stats"))["requests"]
        api_calls = sum(count for name, count in stats.items() if name != "download")
        downloads = stats.get("download", 0)
        figures.append(Figure(
            "P5", "Workshop refresh of 100 cached items", "API calls, downloads",
            f"{api_calls}, {downloads}", "1, 0",
            api_calls == 1 and downloads == 0 and not refresh.changed))

    latency = 0.25
    timings = {}
    for workers in (4, 1):
        with webapi("--generate", "20", "--latency", str(latency)) as url, \
                tempfile.TemporaryDirectory() as state:
            say(f"P6: cold fetch of 20 items, {latency} s latency per request, {workers} worker(s)")
            started = time.monotonic()
            sync(url, Path(state), items[:20], workers=workers)
            timings[workers] = time.monotonic() - started
    ratio = timings[4] / timings[1]
    figures.append(Figure(
        "P6", f"cold fetch of 20 items, {latency} s latency", "4 workers / 1 worker",
        f"{ratio:.2f} ({timings[4]:.1f} s / {timings[1]:.1f} s)", "<= 0.35", ratio <= 0.35))
    return figures


# --- Instances on a booted host (P1, P2) --------------------------------------------------

STATE_DIR = "/var/lib/left4me"
INSTALL = f"{STATE_DIR}/installation/"  # a link to the current build: the slash follows it
STEAMCMD = f"{STATE_DIR}/steam/steamcmd.sh"  # the stand-in, where game_host bootstraps it
# What a server instance owns on its host: its runtime dir (upper/work; merged is a mount,
# so du -x skips it), its env file and config layer, its unit drop-in.
FOOTPRINT_TREES = (STATE_DIR, "/etc/left4me", "/etc/systemd/system")

# Writes every byte of the stand-in's sparse content files (their first 4 KiB, which the
# stand-in's validate checks, are kept), so the install is dense like one from Steam.
DENSIFY = r"""
import os, sys
block = bytes((n * 7 + 13) % 251 + 1 for n in range(1 << 20))
for root, _dirs, files in os.walk(sys.argv[1]):
    for name in files:
        path = os.path.join(root, name)
        st = os.lstat(path)
        if not os.path.isfile(path) or os.path.islink(path) or st.st_blocks * 512 >= st.st_size:
            continue
        with open(path, "r+b") as out:
            out.seek(min(4096, st.st_size))
            left = st.st_size - out.tell()
            while left > 0:
                left -= out.write(block[:min(left, len(block))])
"""


def ansible_env() -> dict[str, str]:
    """This checkout's ansible.cfg, and the venv's ansible-* commands first on PATH (the
    script may be started as .venv/bin/python without the venv activated)."""
    return {**os.environ, "ANSIBLE_CONFIG": str(PROJECT / "ansible.cfg"),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}


def write_inventory(directory: Path, *targets: host.TestHost) -> Path:
    """An inventory of the booted hosts in group l4d2_hosts, with the demo world's settings."""
    (directory / "group_vars").symlink_to(PROJECT / "inventories/demo/group_vars")
    lines = ["l4d2_hosts:", "  hosts:"]
    for target in targets:
        lines += [f"    {target.name}:", f"      ansible_host: {target.address}",
                  f"      ansible_user: {target.user}",
                  f"      ansible_ssh_private_key_file: {target.identity_file}",
                  f"      ansible_ssh_common_args: -F {target.ssh_config}"]
    (directory / "hosts.yml").write_text("\n".join(lines) + "\n")
    return directory


def timed(action: Callable[[], object]) -> float:
    started = time.monotonic()
    action()
    return time.monotonic() - started


def disk_used(target: host.TestHost, *paths: str) -> int:
    """Bytes allocated (not apparent size) under paths, not crossing into mounts."""
    out = target.nsenter("du", "-sxc", "--block-size=1", *paths, timeout=600)
    return int(out.strip().splitlines()[-1].split()[0])


def instance_figures(size: str, files: int) -> list[Figure]:
    name = host.unique_name("fb")
    target = host.create(name)
    try:
        with tempfile.TemporaryDirectory() as inventory_dir:
            inventory = write_inventory(Path(inventory_dir), target)
            say("converging site.yml on the booted host (the demo world's settings)")
            subprocess.run(["ansible-playbook", "-i", str(inventory), "playbooks/site.yml"],
                           cwd=PROJECT, env=ansible_env(), check=True, capture_output=True)
            say(f"growing the install to {size} in {files} files, then writing every byte")
            target.nsenter(
                "runuser", "-u", "left4me", "--", "env", f"STEAMCMD_SIM_SIZE={size}",
                f"STEAMCMD_SIM_FILES={files}", STEAMCMD, "+force_install_dir", INSTALL,
                "+login", "anonymous", "+app_update", "222860", "validate", "+quit",
                timeout=1800)
            target.nsenter("python3", "-c", DENSIFY, INSTALL, timeout=3600)
            install_bytes = disk_used(target, INSTALL)
            file_count = int(target.nsenter("sh", "-c", f"find {INSTALL} -type f | wc -l"))
            say(f"install: {install_bytes / 2**30:.2f} GiB allocated, {file_count} files")

            copy = f"{STATE_DIR}/bench-copy"
            target.nsenter("sync")
            copy_seconds = timed(lambda: target.nsenter("cp", "-a", INSTALL, copy, timeout=3600))
            copy_bytes = disk_used(target, copy)
            target.nsenter("rm", "-rf", copy, timeout=600)
            target.nsenter("sync")

            before = disk_used(target, *FOOTPRINT_TREES)
            module_args = ('{"name": "bench1", "port": 27045, "state": "started",'
                           ' "rcon_password": "bench-rcon"}')
            adhoc = ["ansible", "-i", str(inventory), target.name, "-b",
                     "-m", "left4me.l4d2.srcds_instance", "-a", module_args]
            add_seconds = timed(lambda: subprocess.run(
                adhoc, cwd=PROJECT, env=ansible_env(), check=True, capture_output=True))
            # The same call again changes nothing: Ansible's own fixed cost of one call.
            noop_seconds = timed(lambda: subprocess.run(
                adhoc, cwd=PROJECT, env=ansible_env(), check=True, capture_output=True))
            instance_bytes = disk_used(target, *FOOTPRINT_TREES) - before
    finally:
        host.destroy(name)

    p1 = instance_bytes / copy_bytes
    p2 = add_seconds / copy_seconds
    shape = f"{install_bytes / 2**30:.1f} GiB, {file_count} files"
    return [
        Figure("P1", f"disk of one more instance ({shape})", "instance / cp -a copy",
               f"{p1:.6f} ({instance_bytes / 1024:.0f} KiB / {copy_bytes / 2**30:.2f} GiB)",
               "<= 0.001", p1 <= 0.001),
        Figure("P2", "add and start one instance (ad-hoc srcds_instance, A2S answering)",
               "instance / cp -a copy",
               f"{p2:.3f} ({add_seconds:.1f} s / {copy_seconds:.1f} s;"
               f" a no-op call of the module costs {noop_seconds:.1f} s)",
               "<= 0.05", p2 <= 0.05),
    ]


# --- Converges (P3, P4, P7) -----------------------------------------------------------------

RECAP = re.compile(r"^(?P<host>\S+)\s*:\s*ok=\d+\s+changed=(?P<changed>\d+)\s+unreachable=0"
                   r"\s+failed=0", re.M)


def instances_file(directory: Path, count: int) -> Path:
    """Extra vars: COUNT servers on the host (the demo's two pruned), each on its own ports."""
    servers = [{"name": f"bench{n}", "port": 27100 + 2 * n, "overlays": ["demo-config"],
                "rcon_password": f"bench-rcon-{n}"} for n in range(count)]
    path = directory / f"instances-{count}.json"
    path.write_text(json.dumps({"game_instances_list": servers, "game_instances_prune": True}))
    return path


def site(inventory: Path, *options: str, expect_no_change: bool = False) -> float:
    """Seconds one site.yml run takes; with expect_no_change, fails unless changed=0."""
    command = ["ansible-playbook", "-i", str(inventory), *options, "playbooks/site.yml"]
    started = time.monotonic()
    run = subprocess.run(command, cwd=PROJECT, env=ansible_env(), capture_output=True, text=True)
    seconds = time.monotonic() - started
    recap = RECAP.findall(run.stdout)
    if run.returncode != 0 or not recap:
        raise RuntimeError(f"site.yml failed ({' '.join(options)}):\n{run.stdout[-4000:]}")
    if expect_no_change and any(changed != "0" for _, changed in recap):
        task, changed_tasks = "", []
        for line in run.stdout.splitlines():
            if line.startswith(("TASK [", "RUNNING HANDLER [")):
                task = line.rstrip(" *")
            elif line.startswith("changed:"):
                changed_tasks.append(f"{task} {line}")
        raise RuntimeError(f"site.yml was not idempotent ({' '.join(options)}): {recap}\n"
                           + "\n".join(changed_tasks))
    return seconds


def best(repeat: int, action: Callable[[], float]) -> float:
    return min(action() for _ in range(repeat))


def converge_figures(repeat: int) -> list[Figure]:
    names = [host.unique_name(f"fc{n}") for n in range(4)]
    try:
        targets = [host.create(name) for name in names]
        with tempfile.TemporaryDirectory() as work:
            work_dir = Path(work)
            inventory = work_dir / "inventory"
            inventory.mkdir()
            write_inventory(inventory, *targets)
            first = targets[0].name

            say("converging site.yml on 4 fresh hosts at once (the demo world's settings)")
            cold_four = site(inventory)
            say(f"  {cold_four:.0f} s; timing re-runs that have nothing to do")
            four = best(repeat, lambda: site(inventory, expect_no_change=True))
            one = best(repeat, lambda: site(inventory, "--limit", first, expect_no_change=True))
            ping_command = ["ansible", "-i", str(inventory), first, "-m", "ansible.builtin.ping"]
            ping = best(repeat, lambda: timed(lambda: subprocess.run(
                ping_command, cwd=PROJECT, env=ansible_env(), check=True, capture_output=True)))

            timings = {}
            for count in (1, 20):
                extra = f"@{instances_file(work_dir, count)}"
                say(f"P3: {count} instance(s) on {first}")
                site(inventory, "--limit", first, "-e", extra)
                timings[count] = best(repeat, lambda extra=extra: site(
                    inventory, "--limit", first, "-e", extra, expect_no_change=True))
    finally:
        for name in names:
            host.destroy(name)

    p3 = timings[20] / timings[1]
    p4 = one / ping
    p7 = four / one
    return [
        Figure("P3", "idempotent site.yml, 20 instances / 1 instance (changed=0 both)",
               "20 / 1", f"{p3:.2f} ({timings[20]:.1f} s / {timings[1]:.1f} s)",
               "<= 1.3", p3 <= 1.3),
        Figure("P4", "no-op site.yml on one host (demo world) / ansible.builtin.ping of it",
               "site.yml / ping", f"{p4:.1f} ({one:.1f} s / {ping:.1f} s)", "<= 5", p4 <= 5),
        Figure("P7", f"no-op site.yml on 4 hosts / on 1 of them (forks 10, {os.cpu_count()} cores)",
               "4 hosts / 1 host",
               f"{p7:.2f} ({four:.1f} s / {one:.1f} s; first converge of 4: {cold_four:.0f} s)",
               "<= 1.8", p7 <= 1.8),
    ]


def print_table(figures: list[Figure]) -> None:
    today = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    # Every figure is a ratio of two timings under the same load; say what that load was.
    print(f"left4me fleet benchmarks, {os.cpu_count()} cores, {today}, load average {load}")
    print()
    print("| figure | what | ratio of | measured | goal | met |")
    print("|---|---|---|---|---|---|")
    for figure in figures:
        print(f"| {figure.key} | {figure.what} | {figure.measured} | {figure.value} |"
              f" {figure.goal} | {'yes' if figure.met else 'NO'} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--section", choices=("workshop", "instances", "converge", "all"),
                        default="all")
    parser.add_argument("--repeat", type=int, default=3,
                        help="re-runs per converge timing; the best counts (default 3)")
    parser.add_argument("--size", default="3G", help="install size for P1/P2 (default 3G)")
    parser.add_argument("--files", type=int, default=3000, help="install files (default 3000)")
    args = parser.parse_args()
    figures: list[Figure] = []
    if args.section in ("instances", "all"):
        if os.geteuid() != 0:
            parser.error("the instances section boots a test host: run it as root")
        figures += instance_figures(args.size, args.files)
    if args.section in ("converge", "all"):
        if os.geteuid() != 0:
            parser.error("the converge section boots test hosts: run it as root")
        figures += converge_figures(args.repeat)
    if args.section in ("workshop", "all"):
        figures += workshop_figures()
    print_table(sorted(figures, key=lambda figure: figure.key))


if __name__ == "__main__":
    main()
