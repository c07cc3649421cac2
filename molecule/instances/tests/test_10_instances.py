"""What site.yml's game_instances promise on a converged host, seen as a player or operator."""

from __future__ import annotations

import base64
import re
import subprocess

import pytest
from conftest import INSTANCES, a2s_name, figure, main_pid

from testhosts import host as testhosts

STATE = "/var/lib/left4me"
INSTALL = f"{STATE}/installation"
MAX_EXPOSURE = 1.1


@pytest.mark.parametrize("name", sorted(INSTANCES))
def test_instance_answers_a2s_with_its_overlays_hostname(booted, name):
    port, hostname = INSTANCES[name]
    assert a2s_name(booted.address, port, timeout=3) == hostname


@pytest.mark.parametrize("name", sorted(INSTANCES))
def test_unit_is_enabled_and_running_in_the_game_slice(srv, name):
    unit = f"left4me-server@{name}"
    assert srv.check_output(f"systemctl is-enabled {unit}") == "enabled"
    assert srv.check_output(f"systemctl is-active {unit}") == "active"
    assert srv.check_output(f"systemctl show -p Slice --value {unit}") == "l4d2-game.slice"
    assert srv.check_output(f"ps -o user= -p {main_pid(srv, name)}") == "left4me"


@pytest.mark.parametrize("name", sorted(INSTANCES))
def test_each_server_runs_with_its_limits_and_dies_first_in_an_oom(srv, name):
    unit = f"left4me-server@{name}"
    shown = srv.check_output(
        f"systemctl show {unit} -p MemoryMax -p MemorySwapMax -p TasksMax -p CPUQuotaPerSecUSec"
        " -p CPUWeight -p OOMScoreAdjust -p Nice")
    assert dict(line.split("=", 1) for line in shown.splitlines()) == {
        "MemoryMax": str(2 << 30), "MemorySwapMax": "0", "TasksMax": "256",
        "CPUQuotaPerSecUSec": "1s", "CPUWeight": "100", "OOMScoreAdjust": "500", "Nice": "0"}
    # What the kernel holds for the running server (not only what systemd was told): the
    # OOM killer picks it before sshd (0), and it runs at no priority above the host's.
    for pid in srv.check_output(f"systemctl show -p ControlGroup --value {unit}"
                                " | xargs -I{} cat /sys/fs/cgroup{}/cgroup.procs").split():
        assert srv.file(f"/proc/{pid}/oom_score_adj").content_string.strip() == "500"
        assert srv.check_output(f"ps -o ni= -p {pid}").strip() == "0"
    sshd = srv.check_output("systemctl show -p MainPID --value ssh")
    assert srv.file(f"/proc/{sshd}/oom_score_adj").content_string.strip() == "0"


@pytest.mark.parametrize("name", sorted(INSTANCES))
def test_overlay_stacks_config_layer_then_overlay_then_installation(srv, name):
    options = srv.check_output(f"findmnt -n -o OPTIONS {STATE}/runtime/{name}/merged")
    lowers = re.findall(r"lowerdir\+?=([^,]+)", options)
    own = "demo-coop" if name == "coop1" else "demo-versus"
    # The game layer is the build that was current when the server started (installation
    # -> builds/current -> N, resolved once at mount time: an update never reaches it).
    build = srv.check_output(f"readlink -f {INSTALL}")
    assert re.fullmatch(rf"{STATE}/builds/\d+", build), build
    assert lowers == [f"{STATE}/overlays/.instance-{name}", f"{STATE}/overlays/{own}",
                      f"{STATE}/overlays/demo-config", build], options


@pytest.mark.parametrize("name", sorted(INSTANCES))
def test_runtime_dirs_have_their_owners(srv, name):
    root = f"{STATE}/runtime/{name}"
    for sub, owner, mode in (("writes/upper", "left4me", 0o755), ("writes/work", "root", 0o700),
                             ("merged", "left4me", 0o755)):
        path = srv.file(f"{root}/{sub}")
        assert path.is_directory
        assert (path.user, path.mode) == (owner, mode), f"{sub}: {path.user} {oct(path.mode)}"
    image = srv.file(f"{root}/writes.img")
    assert (image.user, image.mode, image.size) == ("root", 0o600, 2 << 30)
    assert srv.check_output(f"findmnt -n -o FSTYPE {root}/writes") == "ext4"


@pytest.mark.parametrize("name", sorted(INSTANCES))
def test_env_file_is_private_and_holds_no_secret(srv, name):
    env = srv.file(f"/etc/left4me/instances/{name}.env")
    assert (env.user, env.group, env.mode) == ("root", "left4me", 0o640)
    port = INSTANCES[name][0]
    assert f"LEFT4ME_PORT={port}" in env.content_string
    assert "rcon" not in env.content_string.lower()


@pytest.mark.parametrize("name", sorted(INSTANCES))
def test_rcon_password_is_in_a_private_cfg_and_never_on_a_command_line(srv, name):
    cfg = srv.file(f"{STATE}/overlays/.instance-{name}/left4dead2/cfg/left4me/instance.cfg")
    assert (cfg.user, cfg.group, cfg.mode) == ("root", "left4me", 0o640)
    secret = f"demo-{name.rstrip('1')}-rcon"
    assert f'rcon_password "{secret}"' in cfg.content_string
    assert secret not in srv.check_output("ps -eo args")
    assert secret not in srv.check_output(f"systemctl cat left4me-server@{name}")
    unprivileged = srv.run(f"sudo -u nobody cat {cfg.path}")
    assert unprivileged.rc != 0


def test_instance_disk_use_is_tiny_next_to_the_install(srv):
    install = int(srv.check_output(f"du -s --apparent-size --block-size=1 {INSTALL}/").split()[0])
    for name in sorted(INSTANCES):
        root = f"{STATE}/runtime/{name}"
        # The server's 2 GiB writes image is sparse: what it costs is what du says.
        used = int(srv.check_output(f"du -s --block-size=1 {root}/writes.img").split()[0])
        figure(f"disk: instance {name} writes image {used / 1024:.0f} KiB (2 GiB cap),"
               f" installation {install / 1024 / 1024:.1f} MiB (apparent)")
        assert used < 4 * 1024 * 1024


@pytest.mark.parametrize("name", sorted(INSTANCES))
def test_server_sees_only_its_own_files(srv, name):
    """The game's mount namespace: config and other instances are masked."""
    root = f"/proc/{main_pid(srv, name)}/root"
    assert srv.check_output(f"ls -A {root}/etc/left4me") == ""
    assert srv.check_output(f"ls -A {root}{STATE}/runtime") == name
    visible = set(srv.check_output(f"ls -A {root}{STATE}").split())
    # no installation/ or overlays/; the Workshop cache only read-only (add-on links end there)
    assert visible <= {"home", "runtime", "steam", "workshop_cache"}, visible
    if "workshop_cache" in visible:
        probe = srv.run(f"touch {root}{STATE}/workshop_cache/probe")
        assert probe.rc != 0 and "Read-only file system" in probe.stderr, probe.stderr
    assert "srcds_run" in srv.check_output(f"ls {root}{STATE}/runtime/{name}/merged")
    assert srv.run(f"ls {root}/home/left4me").rc != 0


@pytest.mark.parametrize("name", sorted(INSTANCES))
def test_security_exposure_is_at_most_1_1(srv, name):
    out = srv.check_output(f"systemd-analyze security left4me-server@{name}.service")
    score = float(re.search(r"Overall exposure level for \S+: ([0-9.]+)", out).group(1))
    figure(f"systemd-analyze security left4me-server@{name}.service: {score}")
    assert score <= MAX_EXPOSURE, out


def test_template_passes_systemd_analyze_verify(srv):
    # Its instance's srcds_run is on the running overlay, so nothing may be printed at all.
    result = srv.run("systemd-analyze verify --man=no left4me-server@coop1.service")
    assert result.rc == 0 and result.stdout + result.stderr == "", result.stderr


def test_ports_outside_the_instance_cannot_be_bound(srv):
    """SocketBindDeny=any plus the drop-in's SocketBindAllow=: probed inside the unit's cgroup."""
    cgroup = srv.check_output("systemctl show -p ControlGroup --value left4me-server@coop1")
    program = (
        "import socket, sys\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        "try:\n    s.bind(('0.0.0.0', int(sys.argv[1])))\n    print('bound')\n"
        "except OSError as e:\n    print(e.strerror)\n"
    )
    encoded = base64.b64encode(program.encode()).decode()
    srv.check_output(f"echo {encoded} | base64 -d > /run/l4m-bind-probe.py")

    def bind_in_unit(port: int) -> str:
        return srv.check_output(f"sh -c 'echo $$ > /sys/fs/cgroup{cgroup}/cgroup.procs &&"
                                f" exec python3 /run/l4m-bind-probe.py {port}'")

    assert bind_in_unit(27999) == "Operation not permitted"
    assert bind_in_unit(27015) == "Address already in use"  # allowed; the server holds it
    drop_in = srv.file("/etc/systemd/system/left4me-server@versus1.service.d/"
                       "50-left4me-instance.conf").content_string
    assert "SocketBindAllow=udp:27025" in drop_in and "SocketBindAllow=udp:27026" in drop_in
    assert "AllowedCPUs=1" in drop_in


def test_ip_filter_drops_players_outside_the_allowed_networks(srv, booted):
    """Game units take the public internet plus what the demo opens (169.254.77.0/24): a
    private source (10/8, not opened) gets no answer."""
    # A private address on the loopback of the host's own network namespace, added from here:
    # the probe never leaves that namespace.
    in_netns = ["ip", "netns", "exec", testhosts.netns_name(booted.name), "ip", "addr"]
    subprocess.run([*in_netns, "add", "10.77.7.7/32", "dev", "lo"], check=True)
    try:
        query = ("import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM);"
                 " s.settimeout(2); s.bind(('{src}', 0));"
                 " s.sendto(b'\\xff\\xff\\xff\\xffTSource Engine Query\\x00',"
                 f" ('{booted.address}', 27015));"
                 " print(s.recv(1400)[4:5])")
        allowed = srv.run(f"python3 -c \"{query.format(src=booted.address)}\"")
        assert allowed.stdout.strip() == "b'A'", allowed.stderr  # the challenge comes back
        blocked = srv.run(f"python3 -c \"{query.format(src='10.77.7.7')}\"")
        assert blocked.rc != 0 and "timed out" in blocked.stderr, blocked.stderr
    finally:
        subprocess.run([*in_netns, "del", "10.77.7.7/32", "dev", "lo"], check=False)


@pytest.mark.parametrize("name", sorted(INSTANCES))
def test_server_reaches_steamclient_through_its_home(srv, name):
    """~/.steam/sdk32|sdk64 (links into steamcmd) stay usable although /home is masked."""
    pid = main_pid(srv, name)
    home = next(v.split("=", 1)[1] for v in srv.check_output(
        f"tr '\\0' '\\n' < /proc/{pid}/environ").splitlines() if v.startswith("HOME="))
    assert home == f"{STATE}/home"
    for sdk in ("sdk32", "sdk64"):
        library = f"{home}/.steam/{sdk}/steamclient.so"
        # Inside the server's mount namespace, where the links' targets must resolve too.
        assert srv.run(f"nsenter -t {pid} -m test -r {library}").rc == 0, library
