"""Booted systemd test hosts: a copy of the image run by systemd-nspawn, reached over SSH on a veth.

Each host NAME gets:
- its own root filesystem (a plain directory: an overlayfs root would break overlay
  mounts inside the host);
- a network namespace `l4m-NAME` with a veth pair: `vl4m-NAME` here, `host0` inside,
  addressed from 169.254.77.0/24 (a /30 each), an address range used only on these veths,
  and no default route: nothing a test host sends can leave this machine;
- the local apt repository (testhosts/image.py) bound read-only at /srv/left4me-apt, its
  only package source;
- a supervisor process that runs systemd-nspawn and starts it again after an in-host
  reboot (nspawn exits 133 then), as systemd-nspawn@.service would.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from testhosts import image, paths
from testhosts.log import say

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,9}$")  # veth names stop at 15 characters
NETWORK = ipaddress.ip_network("169.254.77.0/24")
MAX_HOSTS = NETWORK.num_addresses // 4
REBOOT_EXIT_CODE = 133
BOOT_TIMEOUT = 90.0

# Loop devices every host sees: the game host's mount helper backs each server's writes
# with an ext4 image it loop-mounts. A container's /dev is its own tmpfs, so it sees a loop
# device only if bound in, while LOOP_CTL_GET_FREE hands out the lowest free one of this
# machine's. Hosts run side by side and share them: enough for every server of a few hosts.
LOOP_DEVICES = 48
LOOP_MAJOR = 7
LOOP_CTL_ADD = 0x4C80

NSPAWN_ENV = {
    # Pure cgroup v2 inside: without it IPAddressDeny= never takes effect.
    "SYSTEMD_NSPAWN_UNIFIED_HIERARCHY": "1",
}


@dataclass(frozen=True)
class TestHost:
    name: str
    index: int
    address: str  # the host's own address, inside its namespace
    gateway: str  # our end of the veth
    user: str
    identity_file: str
    ssh_config: str

    @property
    def dir(self) -> Path:
        return paths.host_dir(self.name)

    @property
    def rootfs(self) -> Path:
        return self.dir / "rootfs"

    def init_pid(self) -> int:
        """PID (as seen here) of systemd inside the host; changes after a reboot."""
        return _init_pid(_read_pid(self.dir / "nspawn.pid"))

    def nsenter(self, *command: str, check: bool = True, timeout: float = 60) -> str:
        """Run a command inside the host as root, outside SSH (for the harness's own checks)."""
        result = subprocess.run(
            ["nsenter", "-t", str(self.init_pid()), "-m", "-u", "-i", "-n", "-p", *command],
            capture_output=True, text=True, timeout=timeout,
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed in {self.name}: {result.stderr}")
        return result.stdout


def unique_name(prefix: str) -> str:
    """A host name unique to this process (prefix + PID), so parallel test runs never collide."""
    return f"{prefix}{os.getpid() % 100000}"


def netns_name(name: str) -> str:
    return f"l4m-{name}"


def veth_name(name: str) -> str:
    return f"vl4m-{name}"


def load(name: str) -> TestHost:
    return TestHost(**json.loads((paths.host_dir(name) / "host.json").read_text()))


def names() -> list[str]:
    if not paths.hosts_dir().is_dir():
        return []
    return sorted(d.name for d in paths.hosts_dir().iterdir() if (d / "host.json").exists())


def create(name: str, index: int | None = None) -> TestHost:
    """Boot a fresh host NAME and return once it runs and answers SSH. Replaces a stale one."""
    if not NAME_PATTERN.match(name):
        raise ValueError(f"test host name {name!r} must match {NAME_PATTERN.pattern}")
    if name in names() or paths.host_dir(name).exists():
        destroy(name)
    started = time.monotonic()
    tarball = image.ensure_image()
    repo = image.ensure_repo()
    with _registry_lock():  # concurrent creates must not pick the same address slot
        host = _describe(name, _free_index() if index is None else index)
        host.dir.mkdir(parents=True)
        (host.dir / "host.json").write_text(json.dumps(asdict(host), indent=2))
        # Beside host.json, not in it: other checkouts' harness code reads host.json too.
        (host.dir / "apt-repo").write_text(str(repo))
    image.unpack(tarball, host.rootfs)
    unpacked = time.monotonic()
    _personalise(host)
    _make_network(host)
    with _registry_lock():
        _write_known_hosts()
    _start_supervisor(host)
    wait_until_booted(host)
    say(f"{name} is up at {host.address} (unpack {unpacked - started:.1f} s, "
        f"boot+ssh {time.monotonic() - unpacked:.1f} s)")
    return host


def wait_until_booted(host: TestHost, timeout: float = BOOT_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            state = host.nsenter("systemctl", "is-system-running", "--wait",
                                 check=False, timeout=timeout).strip()
        except (OSError, RuntimeError, subprocess.TimeoutExpired):
            state = "not started"
        if state in ("running", "degraded"):
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"{host.name} did not boot: system state {state!r}; "
                               f"see {host.dir / 'console.log'}")
        time.sleep(0.2)
    while not _port_open(host.address, 22):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{host.name} booted but SSH on {host.address}:22 never answered")
        time.sleep(0.2)


def reboot(host: TestHost, timeout: float = 60.0) -> None:
    """Reboot the host from inside, as an operator would (sudo systemctl reboot over SSH), and
    return once it runs and answers SSH again.

    The supervisor starts nspawn again (exit 133); a new init PID is how we know the old
    system is gone, so the boot wait cannot mistake the dying system for the new one.
    """
    pid_before = host.init_pid()
    subprocess.run(["ssh", "-F", host.ssh_config, host.name, "sudo systemctl reboot"],
                   capture_output=True, timeout=60, check=False)
    deadline = time.monotonic() + timeout
    while True:
        try:
            if host.init_pid() != pid_before:
                break
        except RuntimeError:
            pass  # between the old nspawn exiting and the new one starting
        if time.monotonic() > deadline:
            raise TimeoutError(f"{host.name} did not come back after reboot")
        time.sleep(0.2)
    wait_until_booted(host)


def destroy(name: str) -> None:
    """Power the host off and remove every trace: processes, namespace, veth, files."""
    hostdir = paths.host_dir(name)
    supervisor = _read_pid(hostdir / "supervisor.pid")
    if supervisor:
        _stop_process_group(supervisor)
    subprocess.run(["ip", "netns", "delete", netns_name(name)], capture_output=True)
    subprocess.run(["ip", "link", "delete", veth_name(name)], capture_output=True)
    for mountpoint in reversed(_mounts_under(hostdir)):
        subprocess.run(["umount", "--lazy", mountpoint], capture_output=True)
    _remove_cgroups(name)
    shutil.rmtree(hostdir, ignore_errors=True)
    with _registry_lock():
        _write_known_hosts()


def leftovers(name: str) -> list[str]:
    """What a destroyed host left behind; empty when teardown was clean."""
    found = []
    hostdir = str(paths.host_dir(name))
    for pid_dir in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (pid_dir / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if hostdir in cmdline or f"--machine={name} " in cmdline:
            found.append(f"process {pid_dir.name}: {cmdline.strip()}")
    found += [f"mount {m}" for m in _mounts_under(Path(hostdir))]
    if Path(f"/run/netns/{netns_name(name)}").exists():
        found.append(f"network namespace {netns_name(name)}")
    if Path(f"/sys/class/net/{veth_name(name)}").exists():
        found.append(f"veth {veth_name(name)}")
    if Path(hostdir).exists():
        found.append(f"directory {hostdir}")
    found += [f"cgroup {c}" for c in host_cgroups(name) if c.exists()]
    return found


# --- each host in a cgroup of its own ------------------------------------------------------
# With --keep-unit and no systemd on this side, systemd-nspawn runs the host's systemd in a
# "payload" cgroup below its own. Started from one cgroup, every host would get the same
# payload cgroup: one host's systemd stopping or killing left4me-server@versus1 would kill
# the other hosts' processes of that unit and remove the cgroup under their feet (seen as
# servers dying for no reason, "Supervising process ... which is not our child" and
# "Failed to spawn executor: No such file or directory" in the other hosts' journals). So
# the supervisor starts each nspawn in a cgroup named after its host, in every hierarchy
# nspawn reads its own cgroup from (the cgroup2 one, and a legacy name=systemd one if any).


def _cgroup_hierarchies() -> list[Path]:
    """This process's cgroup directory in each hierarchy nspawn uses (cgroup2, name=systemd)."""
    own = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        number, controllers, path = line.split(":", 2)
        if number == "0" or "name=systemd" in controllers.split(","):
            own["cgroup2" if number == "0" else "name=systemd"] = path
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        separator = fields.index("-")
        mountpoint, fstype, options = fields[4], fields[separator + 1], fields[separator + 3]
        if fstype == "cgroup2" and "cgroup2" in own:
            found.append(Path(mountpoint) / own["cgroup2"].lstrip("/"))
        elif fstype == "cgroup" and "name=systemd" in options.split(",") \
                and "name=systemd" in own:
            found.append(Path(mountpoint) / own["name=systemd"].lstrip("/"))
    return found


def host_cgroups(name: str) -> list[Path]:
    """The cgroups NAME's systemd-nspawn runs in (its payload cgroup is below them)."""
    return [hierarchy / f"left4me-testhost-{name}" for hierarchy in _cgroup_hierarchies()]


def _enter_cgroups(cgroups: list[Path]) -> None:
    """In the forked child, before exec: move this process into each of `cgroups`."""
    for cgroup in cgroups:
        (cgroup / "cgroup.procs").write_text("0\n")


def _remove_cgroups(name: str) -> None:
    """Remove NAME's cgroups, deepest first (the host's systemd may leave empty ones)."""
    for cgroup in host_cgroups(name):
        if not cgroup.exists():
            continue
        for directory, _dirs, _files in sorted(os.walk(cgroup), key=lambda w: -len(w[0])):
            with contextlib.suppress(OSError):  # still holds a process: leftovers() says so
                os.rmdir(directory)


def supervise(name: str) -> int:
    """Run systemd-nspawn for NAME until it powers off; start it again after a reboot."""
    host = load(name)
    stopping = False
    nspawn: subprocess.Popen[bytes] | None = None

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        if nspawn and nspawn.poll() is None:
            nspawn.terminate()  # systemd-nspawn powers the host off cleanly on SIGTERM

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    cgroups = host_cgroups(name)
    for cgroup in cgroups:
        cgroup.mkdir(exist_ok=True)
    with open(host.dir / "console.log", "ab") as console:
        while not stopping:
            nspawn = subprocess.Popen(_nspawn_command(host), stdin=subprocess.DEVNULL,
                                      stdout=console, stderr=console,
                                      env={**os.environ, **NSPAWN_ENV},
                                      preexec_fn=lambda: _enter_cgroups(cgroups))  # noqa: PLW1509
            (host.dir / "nspawn.pid").write_text(str(nspawn.pid))
            returncode = nspawn.wait()
            if returncode != REBOOT_EXIT_CODE:
                return 0 if stopping else returncode
    return 0


def ensure_loop_devices(count: int = LOOP_DEVICES) -> list[str]:
    """Make /dev/loop0..count-1 exist on this machine (LOOP_CTL_ADD; devtmpfs makes the
    nodes) and return their paths. An index that exists already is left alone."""
    found = []
    with open("/dev/loop-control", "rb") as control:
        for index in range(count):
            node = f"/dev/loop{index}"
            if not os.path.exists(node):
                with contextlib.suppress(FileExistsError):
                    fcntl.ioctl(control, LOOP_CTL_ADD, index)
                for _ in range(50):  # devtmpfs adds the node shortly after
                    if os.path.exists(node):
                        break
                    time.sleep(0.02)
                else:
                    os.mknod(node, 0o600 | 0o060000, os.makedev(LOOP_MAJOR, index))
            found.append(node)
    return found


def _nspawn_command(host: TestHost) -> list[str]:
    repo = (host.dir / "apt-repo").read_text().strip()
    loops = [f"--bind={node}" for node in ["/dev/loop-control", *ensure_loop_devices()]]
    return [
        "systemd-nspawn", "--quiet",
        "--register=no", "--keep-unit",  # there is no systemd or D-Bus on this side
        f"--machine={host.name}", f"--directory={host.rootfs}",
        f"--network-namespace-path=/run/netns/{netns_name(host.name)}",
        "--system-call-filter=bpf",  # lets systemd inside use BPF firewalling and SocketBind
        # root inside manages its own network namespace's nftables, as on a real host (role
        # game_instances loads the runtime user's rules); it cannot touch this machine's.
        "--capability=CAP_NET_ADMIN",
        f"--bind-ro={repo}:{image.REPO_MOUNT}",  # the host's only apt source
        *loops,  # each server's writes live on a loop-mounted ext4 image (role game_host)
        "--console=read-only", "--boot",
    ]


def _describe(name: str, index: int) -> TestHost:
    if not 0 <= index < MAX_HOSTS:
        raise ValueError(f"host index {index} is outside 0..{MAX_HOSTS - 1}")
    base = int(NETWORK.network_address) + 4 * index
    return TestHost(
        name=name, index=index,
        address=str(ipaddress.ip_address(base + 2)),
        gateway=str(ipaddress.ip_address(base + 1)),
        user=image.ADMIN_USER,
        identity_file=str(paths.admin_key()),
        ssh_config=str(paths.host_dir(name) / "ssh_config"),
    )


def _free_index() -> int:
    # Index 0 is kept for the demo host, whose address the demo inventory names.
    taken = {load(n).index for n in names()}
    for index in range(1, MAX_HOSTS):
        if index not in taken:
            return index
    raise RuntimeError(f"all {MAX_HOSTS - 1} test host slots are in use")


def _personalise(host: TestHost) -> None:
    root = host.rootfs
    (root / "etc/hostname").write_text(f"{host.name}\n")
    with open(root / "etc/hosts", "a") as hosts:
        hosts.write(f"127.0.1.1 {host.name}\n")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"root@{host.name}",
                    "-f", str(root / "etc/ssh/ssh_host_ed25519_key")], check=True)
    with _registry_lock():
        _ensure_admin_key()
    ssh_dir = root / "home" / image.ADMIN_USER / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    authorized = ssh_dir / "authorized_keys"
    authorized.write_text(paths.admin_key().with_suffix(".pub").read_text())
    authorized.chmod(0o600)
    uid, gid = _passwd_ids(root, image.ADMIN_USER)
    for path in (ssh_dir, authorized):
        os.chown(path, uid, gid)
    (host.dir / "ssh_config").write_text(
        f"Host {host.name} {host.address}\n"
        f"  HostName {host.address}\n"
        f"  User {host.user}\n"
        f"  IdentityFile {host.identity_file}\n"
        f"  IdentitiesOnly yes\n"
        f"  UserKnownHostsFile {paths.known_hosts()}\n"
        f"  StrictHostKeyChecking yes\n"
    )
    pubkey = (root / "etc/ssh/ssh_host_ed25519_key.pub").read_text().split()
    (host.dir / "host_key").write_text(f"{host.address} {pubkey[0]} {pubkey[1]}\n")


@contextlib.contextmanager
def _registry_lock() -> Iterator[None]:
    paths.state_dir().mkdir(parents=True, exist_ok=True)
    with open(paths.state_dir() / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _ensure_admin_key() -> None:
    key = paths.admin_key()
    if not key.exists():
        key.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "left4me-testhosts",
                        "-f", str(key)], check=True)


def _write_known_hosts() -> None:
    if not paths.state_dir().exists():
        return
    lines = [(paths.host_dir(n) / "host_key").read_text() for n in names()
             if (paths.host_dir(n) / "host_key").exists()]
    paths.known_hosts().write_text("".join(lines))


def _passwd_ids(root: Path, user: str) -> tuple[int, int]:
    for line in (root / "etc/passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == user:
            return int(fields[2]), int(fields[3])
    raise LookupError(f"user {user} is not in the image")


def _make_network(host: TestHost) -> None:
    netns, veth = netns_name(host.name), veth_name(host.name)
    for command in (
        ["ip", "netns", "add", netns],
        ["ip", "link", "add", veth, "type", "veth", "peer", "name", "host0", "netns", netns],
        ["ip", "addr", "add", f"{host.gateway}/30", "dev", veth],
        ["ip", "link", "set", veth, "up"],
        ["ip", "-n", netns, "addr", "add", f"{host.address}/30", "dev", "host0"],
        ["ip", "-n", netns, "link", "set", "host0", "up"],
        ["ip", "-n", netns, "link", "set", "lo", "up"],
    ):
        subprocess.run(command, check=True, capture_output=True)


def _start_supervisor(host: TestHost) -> None:
    package_parent = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(package_parent)}
    supervisor = subprocess.Popen(
        [sys.executable, "-m", "testhosts", "supervise", host.name],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=open(host.dir / "supervisor.log", "ab"),  # noqa: SIM115 - handed to the child
        start_new_session=True, env=env,
    )
    (host.dir / "supervisor.pid").write_text(str(supervisor.pid))
    deadline = time.monotonic() + 10
    while not (host.dir / "nspawn.pid").exists():
        if supervisor.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"systemd-nspawn for {host.name} did not start; "
                               f"see {host.dir / 'supervisor.log'}")
        time.sleep(0.05)


def _init_pid(nspawn_pid: int | None) -> int:
    if nspawn_pid is None:
        raise RuntimeError("the host is not running")
    for status_file in Path("/proc").glob("[0-9]*/status"):
        try:
            status = dict(line.split(":\t", 1) for line in status_file.read_text().splitlines()
                          if ":\t" in line)
        except OSError:
            continue
        innermost_pid = status.get("NSpid", "").split()[-1:]
        if int(status.get("PPid", "0")) == nspawn_pid and innermost_pid == ["1"]:
            return int(status["Pid"])
    raise RuntimeError("systemd has not started inside the host yet")


def _stop_process_group(leader: int, timeout: float = 20) -> None:
    try:
        os.kill(leader, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(leader):
            break
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(leader, signal.SIGKILL)  # anything left of the supervisor's session
    while _alive(leader) and time.monotonic() < deadline + 5:
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return None


def _mounts_under(directory: Path) -> list[str]:
    prefix = str(directory).rstrip("/") + "/"
    with open("/proc/self/mountinfo") as mountinfo:
        points = [line.split()[4] for line in mountinfo]
    return [p for p in points if p.startswith(prefix) or p == prefix.rstrip("/")]


def _port_open(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=1):
            return True
    except OSError:
        return False
