"""The game unit's half of the VM lane: the unit as the role renders it, attacked from inside.

A tenant controls what runs as its server: an overlay may replace `srcds_run`. Each probe
here is such an overlay, stacked on an instance of `left4me-server@.service` rendered by
ansible's template module from the role's template with the role's defaults, with the
drop-in srcds_instance writes (SocketBindAllow= for the instance's ports) and the env file
it writes, mounted by the real `left4me-mount` helper and started by the VM's systemd.
The probe's `srcds_run` is the attack: a memory hog, a fork bomb, a busy loop, binds to
ports the instance does not own, connects to loopback and private addresses.

Where the rendered template sets no value for a property the tenant model needs (issue 17:
branches adding them are in flight), or one a 1 GiB VM cannot exceed, a probe drop-in sets
the issue's value, and the test output says which (`PROVENANCE`).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from ansible_collections.left4me.l4d2.plugins.module_utils import _instance, _layout

REPO = Path(__file__).resolve().parents[2]
COLLECTION = REPO / "collections/ansible_collections/left4me/l4d2"
ROLE = COLLECTION / "roles/game_instances"
HELPER_DIR = "/usr/local/libexec/left4me"
UNIT_DIR = "/usr/local/lib/systemd/system"
LAYOUT = _layout.HostLayout()

# What the tenant model needs of every game unit (issue 17), with the value probed when the
# rendered template sets none. IPAddressDeny: loopback, link-local (cloud metadata),
# multicast, RFC 1918, CGNAT and IPv6 ULA; the public internet stays reachable.
INTENT = {
    "MemoryMax": "64M",
    "TasksMax": "16",
    "CPUQuota": "20%",
    "IPAddressDeny": "localhost link-local multicast 10.0.0.0/8 172.16.0.0/12 "
                     "192.168.0.0/16 100.64.0.0/10 fc00::/7",
}
# The largest values the VM (1 GiB, 2 vCPUs, emulated) can show biting within seconds.
MAX_PROBED_MEMORY = 256 << 20
MAX_PROBED_TASKS = 256

# The probe listener (outside the unit, as root) answers on these; the unit must reach only
# the public stand-in. Addresses sit on a dummy interface inside the VM, which has no NIC.
LISTEN_PORT = 8080
# Not loopback: the unit's filter lets it through by design (the host's root reaches every
# server's RCON and A2S over it); the runtime user's new connections to the host's own
# addresses are refused by the nftables table of left4me-firewall.service, which the VM
# does not converge (proven on booted hosts: molecule/instances, tests/hostile).
REFUSED_TARGETS = ("10.0.0.1", "172.16.0.1", "192.168.0.1",
                   "169.254.169.254", "100.64.0.1", "fc00::1")
PUBLIC_TARGET = "203.0.113.10"  # documentation range, standing in for the internet
GAME_PORT = 27015  # the instance's own port: bindable; any other port: refused
OTHER_PORT = 27099

# The stand-in srcds (standins/srcds: the sockets srcds opens and its CPU-speed lookup, with
# their sources) under the same unit: a server and two neighbours, ports side by side, all
# running at once, each must start and answer A2S. "a" finds no CPU speed by measuring
# (SRCDS_SIM_TSC_UNSTABLE): only the env file's CPU_MHZ saves it from the /proc/cpuinfo
# that ProcSubset=pid hides. Two must fail the way real srcds does: "nocpu" without CPU_MHZ,
# "noclient" started as left4me did before (no +clientport: srcds binds 27005, then port 0).
STANDIN_LAYER = "standin-srcds"
SRCDS_SERVERS = {"vm-srcds-a": 27015, "vm-srcds-b": 27017, "vm-srcds-c": 27019}
SRCDS_FAILURES = {"vm-srcds-nocpu": 27041, "vm-srcds-noclient": 27043}
SIM_CPU_MHZ = 2400  # what srcds_instance would read on the host (its host_cpu_mhz)


def render_unit() -> str:
    """left4me-server@.service as the role installs it, with the role's defaults."""
    with tempfile.TemporaryDirectory(prefix="left4me-vm-unit-") as scratch:
        dest = Path(scratch) / "left4me-server@.service"
        result = subprocess.run(
            ["ansible", "localhost", "-i", "localhost,", "-c", "local",
             "-e", f"ansible_python_interpreter={sys.executable}",
             "-e", f"@{ROLE / 'defaults/main.yml'}",
             "-m", "ansible.builtin.template",
             "-a", f"src={ROLE / 'templates/left4me-server@.service.j2'} dest={dest}"],
            cwd=REPO, capture_output=True, text=True, check=False, timeout=120,
            env={**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
                 "ANSIBLE_NOCOLOR": "1",
                 "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"})
        if result.returncode != 0:
            raise RuntimeError(f"rendering the game unit failed:\n{result.stdout}{result.stderr}")
        return dest.read_text()


def unit_properties() -> dict[str, str]:
    """A server's [Service] properties as installed: the role's template, then the drop-in
    srcds_instance writes for an instance with the module's defaults (its limits)."""
    spec = _instance.InstanceSpec(name="defaults", port=GAME_PORT, layers=())
    return service_properties(render_unit() + "\n" + _instance.render_dropin(spec))


def service_properties(unit_text: str) -> dict[str, str]:
    """The [Service] section's assignments, the last of each name winning (as for these)."""
    found: dict[str, str] = {}
    section = ""
    for raw in unit_text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line:
            key, value = line.split("=", 1)
            found[key.strip()] = value.strip()
    return found


def _bytes(value: str) -> int | None:
    match = re.fullmatch(r"(\d+)([KMGT]?)", value)
    if not match:
        return None  # infinity, a percentage: nothing the VM can exceed reliably
    return int(match.group(1)) << (10 * " KMGT".index(match.group(2) or " "))


def _fits_the_vm(key: str, value: str) -> bool:
    if key == "MemoryMax":
        size = _bytes(value)
        return size is not None and size <= MAX_PROBED_MEMORY
    if key == "TasksMax":
        return value.isdigit() and int(value) <= MAX_PROBED_TASKS
    if key == "CPUQuota":
        return value.endswith("%") and value[:-1].isdigit() and int(value[:-1]) < 100
    return True


def probed_properties(template: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(what the probe drop-in must set, where each probed value comes from)."""
    dropin, provenance = {}, {}
    for key, intent in INTENT.items():
        value = template.get(key, "")
        if value and _fits_the_vm(key, value):
            provenance[key] = f"{value} (the unit: template and drop-in)"
        elif value:
            dropin[key] = intent
            provenance[key] = (f"{intent} (the unit's {value} is beyond the VM; probed"
                                 " lower)")
        else:
            dropin[key] = intent
            provenance[key] = f"{intent} (issue 17's intent: the unit sets none)"
    return dropin, provenance


def _python(body: str) -> str:
    return ("#!/usr/bin/python3 -u\nimport errno, os, socket, subprocess, sys, time\n"
            + textwrap.dedent(body))


def probe_scripts(values: dict[str, str]) -> dict[str, str]:
    """Instance name -> the tenant's srcds_run. Each prints RESULT lines to the journal."""
    memory = _bytes(values["MemoryMax"]) or 0
    tasks = int(values["TasksMax"])
    quota = int(values["CPUQuota"].rstrip("%")) / 100
    targets = [*REFUSED_TARGETS, PUBLIC_TARGET]
    return {
        # Touch the limit plus 128 MiB: the unit must end in an OOM kill, not here.
        "vm-memory": _python(f"""\
            hog = []
            while len(hog) * (16 << 20) < {memory} + (128 << 20):
                hog.append(bytearray(16 << 20))
            print("RESULT allowed", len(hog) * 16, "MiB")
            """),
        # Spawn 16 more processes than TasksMax allows (the unit's sh and python count too).
        "vm-tasks": _python(f"""\
            children = []
            try:
                for _ in range({tasks} + 16):
                    children.append(subprocess.Popen(["sleep", "30"]))
                print("RESULT allowed", len(children))
            except OSError as exc:
                print("RESULT blocked after", len(children), "processes:", exc)
            for child in children:
                child.kill()
            """),
        # A busy loop: its CPU share must stay near the quota.
        "vm-cpu": _python(f"""\
            wall, cpu = time.monotonic(), time.process_time()
            while time.monotonic() - wall < 6:
                pass
            share = (time.process_time() - cpu) / (time.monotonic() - wall)
            print("RESULT", "allowed" if share > {quota} + 0.15 else "blocked",
                  "cpu share", round(share, 2))
            """),
        # Binds (own port vs another) and connects (loopback, private, metadata vs public).
        "vm-network": _python(f"""\
            for kind, port in (("udp", {GAME_PORT}), ("tcp", {GAME_PORT}),
                               ("udp", {OTHER_PORT}), ("tcp", {OTHER_PORT})):
                sock = socket.socket(socket.AF_INET,
                                     socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM)
                try:
                    sock.bind(("0.0.0.0", port))
                    print("RESULT bind", kind, port, "allowed")
                except OSError as exc:
                    print("RESULT bind", kind, port, "refused", errno.errorcode.get(exc.errno))
                sock.close()
            for address in {targets!r}:
                family = socket.AF_INET6 if ":" in address else socket.AF_INET
                sock = socket.socket(family, socket.SOCK_STREAM)
                sock.settimeout(3)
                try:
                    sock.connect((address, {LISTEN_PORT}))
                    print("RESULT connect", address, "allowed")
                except OSError as exc:
                    print("RESULT connect", address, "refused", exc)
                sock.close()
            """),
    }


LISTENER = f"""\
import socket, threading
def serve(family, address):
    sock = socket.socket(family, socket.SOCK_STREAM)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((address, {LISTEN_PORT}))
    sock.listen(16)
    while True:
        sock.accept()[0].close()
threading.Thread(target=serve, args=(socket.AF_INET6, "::"), daemon=True).start()
serve(socket.AF_INET, "0.0.0.0")
"""

# Runs in the VM as root after the common setup (the left4me user exists). Lays the host
# out as the roles do, starts each probe instance and waits for it to end, then prints its
# result, its effective limits and its RESULT lines, one console line each.
RUN_SH = f"""\
set -u
g=/run/probe/game
modprobe dummy && ip link add l4m0 type dummy && ip link set l4m0 up
for address in 10.0.0.1/32 172.16.0.1/32 192.168.0.1/32 169.254.169.254/32 100.64.0.1/32 \
    {PUBLIC_TARGET}/32; do
  ip address add "$address" dev l4m0
done
ip -6 address add fc00::1/128 dev l4m0 nodad
python3 $g/listener.py &
install -d -o left4me -g left4me -m 0755 /var/lib/left4me /var/lib/left4me/overlays \
  /var/lib/left4me/installation
install -d -m 0755 /etc/left4me/instances {HELPER_DIR} {UNIT_DIR}
install -m 0755 $g/left4me-mount {HELPER_DIR}/left4me-mount
install -m 0644 $g/left4me_mount.py $g/left4me_common.py $g/left4me_layout.py {HELPER_DIR}/
install -m 0644 $g/left4me-server@.service {UNIT_DIR}/
install -D -m 0644 $g/60-vm-probe.conf \
  /etc/systemd/system/left4me-server@.service.d/60-vm-probe.conf
for dir in $g/instances/*/; do
  name=$(basename "$dir")
  install -D -m 0755 "$dir/srcds_run" /var/lib/left4me/overlays/probe-$name/srcds_run
  install -D -m 0644 "$dir/instance.cfg" \
    /var/lib/left4me/overlays/.instance-$name/left4dead2/cfg/left4me/instance.cfg
  install -m 0644 "$dir/env" /etc/left4me/instances/$name.env
  install -D -m 0644 "$dir/dropin.conf" \
    /etc/systemd/system/left4me-server@$name.service.d/{_layout.DROPIN_NAME}
done
systemctl daemon-reload
for dir in $g/instances/*/; do
  name=$(basename "$dir")
  unit=left4me-server@$name.service
  # The instance's dirs, as srcds_instance makes them (the unit's BindPaths= needs merged/
  # before its ExecStartPre mounts the overlay there); then start and wait for the end.
  r=/var/lib/left4me/runtime/$name
  install -d -m 0755 /var/lib/left4me/runtime "$r"
  install -d -m 0700 "$r/work"
  install -d -o left4me -g left4me -m 0755 "$r/upper" "$r/merged"
  # An emulated guest on a loaded machine is slow: a fork bomb probe has outlasted 180 s (seen).
  timeout 420 systemctl start --wait "$unit"
  show=$(systemctl show -p Result -p ExecMainStatus -p MemoryMax -p TasksMax \
    -p CPUQuotaPerSecUSec -p IPAddressDeny -p SocketBindDeny -p SocketBindAllow "$unit" \
    | tr '\\n' ' ')
  printf 'GAME-UNIT %s %s\\n' "$name" "$show"
  journalctl -q -o cat -u "$unit" | tail -n 40 | sed "s/^/GAME-LINE $name /"
done
sh $g/srcds.sh
"""


A2S_PROBE = """\
import socket, subprocess, sys, time
deadline = time.monotonic() + float(sys.argv[1])
waiting = {int(port): name for name, port in (arg.split("=") for arg in sys.argv[2:])}
while waiting and time.monotonic() < deadline:
    for port, name in list(waiting.items()):
        state = subprocess.run(["systemctl", "is-active", f"left4me-server@{name}.service"],
                               capture_output=True, text=True).stdout.strip()
        if state in ("failed", "inactive"):  # it will never answer: say so now
            print("SRCDS-A2S", name, port, "silent, unit", state)
            del waiting[port]
            continue
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.settimeout(2)
        request = b"\\xff\\xff\\xff\\xffTSource Engine Query\\x00"
        try:
            sock.sendto(request, ("127.0.0.1", port))
            answer = sock.recv(1400)
            if answer[4:5] == b"A":  # S2C_CHALLENGE: ask again with it
                sock.sendto(request + answer[5:9], ("127.0.0.1", port))
                answer = sock.recv(1400)
            if answer[4:5] == b"I":
                print("SRCDS-A2S", name, port, "answered", answer[6:].split(b"\\0")[1].decode())
                del waiting[port]
        except OSError:
            pass
        sock.close()
    time.sleep(2)
for port, name in waiting.items():
    print("SRCDS-A2S", name, port, "silent")
"""

SRCDS_RUN_SH = f"""\
set -u
g=/run/probe/game
cp -r $g/standin /var/lib/left4me/overlays/{STANDIN_LAYER}
chmod -R a+rX /var/lib/left4me/overlays/{STANDIN_LAYER}
chmod 0755 /var/lib/left4me/overlays/{STANDIN_LAYER}/srcds_run
for dir in $g/srcds/*/; do
  name=$(basename "$dir")
  install -D -m 0644 "$dir/instance.cfg" \\
    /var/lib/left4me/overlays/.instance-$name/left4dead2/cfg/left4me/instance.cfg
  install -m 0644 "$dir/env" /etc/left4me/instances/$name.env
  install -D -m 0644 "$dir/dropin.conf" \\
    /etc/systemd/system/left4me-server@$name.service.d/{_layout.DROPIN_NAME}
  r=/var/lib/left4me/runtime/$name
  install -d -m 0755 "$r"
  install -d -m 0700 "$r/work"
  install -d -o left4me -g left4me -m 0755 "$r/upper" "$r/merged"
done
systemctl daemon-reload
# All at once: neighbours bind side by side while each starts.
for dir in $g/srcds/*/; do
  systemctl start --no-block "left4me-server@$(basename "$dir").service"
done
python3 $g/a2s_probe.py 600 {" ".join(f"{n}={p}" for n, p in SRCDS_SERVERS.items())}
for dir in $g/srcds/*/; do
  name=$(basename "$dir")
  unit=left4me-server@$name.service
  printf 'SRCDS-UNIT %s %s\\n' "$name" "$(systemctl show -p ActiveState -p Result \\
    -p ExecMainStatus "$unit" | tr '\\n' ' ')"
  journalctl -q -o cat -u "$unit" | tail -n 40 | sed "s/^/SRCDS-LINE $name /"
  systemctl stop --no-block "$unit"
done
"""


def srcds_files() -> dict[str, str | bytes]:
    """The stand-in srcds as an overlay (its install tree's srcds_run and bin/standins), and
    each stand-in instance's env file, drop-in and cfg as srcds_instance renders them."""
    from standins.steamcmd.install import SRCDS_RUN

    files: dict[str, str | bytes] = {"game/standin/srcds_run": SRCDS_RUN,
                                     "game/a2s_probe.py": A2S_PROBE,
                                     "game/standin/left4dead2/cfg/.keep": ""}
    standins = REPO / "standins"
    for source in [standins / "__init__.py", standins / "vpk.py",
                   *sorted((standins / "srcds").glob("*.py"))]:
        files[f"game/standin/bin/standins/{source.relative_to(standins)}"] = source.read_bytes()
    layer = (os.path.join(LAYOUT.overlays_dir, STANDIN_LAYER),)
    for name, port in {**SRCDS_SERVERS, **SRCDS_FAILURES}.items():
        environment = {} if name == "vm-srcds-b" else {"SRCDS_SIM_TSC_UNSTABLE": "1"}
        spec = _instance.InstanceSpec(name=name, port=port, client_port=port + 1,
                                      layers=layer, environment=tuple(environment.items()))
        env = _instance.render_env(spec, LAYOUT, None if name.endswith("nocpu") else SIM_CPU_MHZ)
        if name.endswith("noclient"):
            env = env.replace(f"+clientport {port + 1} ", "")
        files[f"game/srcds/{name}/env"] = env
        files[f"game/srcds/{name}/dropin.conf"] = _instance.render_dropin(spec)
        files[f"game/srcds/{name}/instance.cfg"] = _instance.render_instance_cfg(spec)
    return files


def vm_files() -> tuple[dict[str, str | bytes], dict[str, str]]:
    """The probe disk's game/ tree, and where each probed property's value came from."""
    unit = render_unit()
    template = unit_properties()
    dropin, provenance = probed_properties(template)
    values = {key: template.get(key) if key not in dropin else dropin[key] for key in INTENT}
    provenance["SocketBindDeny"] = f"{template.get('SocketBindDeny', 'none')} (the template)"
    provenance["SocketBindAllow"] = "the instance's ports (srcds_instance's drop-in)"
    lines = ["[Service]", "# One run per probe: a restart would repeat the attack.", "Restart=no",
             "# An emulated CPU on a loaded host: the Python mount helper, under the unit's",
             "# CPUQuota, outlasted the unit's 90 s start timeout (seen); time is not probed.",
             "TimeoutStartSec=15min", "TimeoutStopSec=15min"]
    lines += [f"{key}={value}" for key, value in dropin.items()]
    files: dict[str, str | bytes] = {
        "game/left4me-server@.service": unit,
        "game/60-vm-probe.conf": "\n".join(lines) + "\n",
        "game/listener.py": LISTENER,
        "game/left4me-mount": (COLLECTION / "roles/game_host/files/left4me-mount.py").read_bytes(),
        "game/left4me_mount.py": (COLLECTION / "plugins/module_utils/_mount.py").read_bytes(),
        "game/left4me_common.py": (COLLECTION / "plugins/module_utils/_common.py").read_bytes(),
        "game/left4me_layout.py": (COLLECTION / "plugins/module_utils/_layout.py").read_bytes(),
    }
    files.update(srcds_files())
    files["game/srcds.sh"] = SRCDS_RUN_SH
    for name, script in probe_scripts(values).items():
        spec = _instance.InstanceSpec(
            name=name, port=GAME_PORT,
            layers=(os.path.join(LAYOUT.overlays_dir, f"probe-{name}"),))
        files[f"game/instances/{name}/srcds_run"] = script
        files[f"game/instances/{name}/env"] = _instance.render_env(spec, LAYOUT)
        files[f"game/instances/{name}/dropin.conf"] = _instance.render_dropin(spec)
        files[f"game/instances/{name}/instance.cfg"] = _instance.render_instance_cfg(spec)
    return files, provenance


def parse_console(console: str) -> dict[str, dict]:
    """Instance name -> {"unit": systemctl show properties, "lines": its RESULT lines}."""
    found: dict[str, dict] = {}
    for line in console.splitlines():
        if line.startswith("SRCDS-A2S "):
            _marker, name, _port, rest = line.split(" ", 3)
            found.setdefault(name, {"lines": []})["a2s"] = rest
        elif line.startswith("SRCDS-UNIT "):
            _marker, name, rest = (line.split(" ", 2) + [""])[:3]
            found.setdefault(name, {"lines": []})["unit"] = _show_pairs(rest)
        elif line.startswith("SRCDS-LINE "):
            _marker, name, rest = line.split(" ", 2)
            found.setdefault(name, {"lines": []})["lines"].append(rest)
        elif line.startswith("GAME-UNIT "):
            _marker, name, rest = (line.split(" ", 2) + [""])[:3]
            found.setdefault(name, {"lines": []})["unit"] = _show_pairs(rest)
        elif line.startswith("GAME-LINE "):
            _marker, name, rest = line.split(" ", 2)
            found.setdefault(name, {"lines": []})["lines"].append(rest)
    return found


def _show_pairs(text: str) -> dict[str, str]:
    """`systemctl show` output flattened onto one line: KEY=value pairs, values may hold
    spaces (IPAddressDeny, SocketBindAllow), keys are CamelCase words before '='."""
    pairs = re.findall(r"([A-Z][A-Za-z]+)=(.*?)(?= [A-Z][A-Za-z]+=|\s*$)", text)
    return dict(pairs)
