"""What a booted test host actually enforces, probed rather than assumed.

systemd-nspawn hosts share this machine's kernel but get no cgroup controllers
delegated, so resource limits are configured yet never bite there. Tests use this
report to say, by name, which directives they cannot prove on a host.
"""

from __future__ import annotations

from dataclasses import dataclass

from testhosts.host import TestHost

CAP_SYS_RESOURCE = 24

# Directive -> cgroup v2 controller it needs in the host's root cgroup.
CONTROLLER_OF = {
    "MemoryMax": "memory",
    "TasksMax": "pids",
    "CPUWeight": "cpu",
    "CPUQuota": "cpu",
    "IOWeight": "io",
    "AllowedCPUs": "cpuset",
}

CONNECT_TO_SSH = (
    "import socket; socket.create_connection(('127.0.0.1', 22), timeout=2).close()"
)
BIND_A_PORT = (
    "import socket; s = socket.socket(); "
    "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('127.0.0.1', 47999))"
)


@dataclass(frozen=True)
class Finding:
    directive: str
    enforced: bool
    evidence: str


def probe(host: TestHost) -> list[Finding]:
    findings = _cgroup_findings(host)
    findings.append(_oom_score_finding(host))
    findings.append(_sandboxed_python_refused(
        host, "IPAddressDeny", "IPAddressDeny=any", CONNECT_TO_SSH, "connect to 127.0.0.1:22"))
    findings.append(_sandboxed_python_refused(
        host, "SocketBindDeny", "SocketBindDeny=any", BIND_A_PORT, "bind 127.0.0.1:47999"))
    return findings


def _cgroup_findings(host: TestHost) -> list[Finding]:
    available = set(host.nsenter("cat", "/sys/fs/cgroup/cgroup.controllers").split())
    shown = " ".join(sorted(available)) or "none"
    return [
        Finding(directive, controller in available,
                f"cgroup controller '{controller}' {'is' if controller in available else 'is not'}"
                f" available in the host (available: {shown})")
        for directive, controller in CONTROLLER_OF.items()
    ]


def _oom_score_finding(host: TestHost) -> Finding:
    status = host.nsenter("cat", "/proc/1/status")
    cap_eff = next(line.split()[1] for line in status.splitlines() if line.startswith("CapEff:"))
    has_it = bool(int(cap_eff, 16) >> CAP_SYS_RESOURCE & 1)
    return Finding("OOMScoreAdjust (negative)", has_it,
                   f"CAP_SYS_RESOURCE {'held' if has_it else 'missing'} in the host's PID 1")


def _sandboxed_python_refused(host: TestHost, directive: str, setting: str,
                              program: str, action: str) -> Finding:
    if not _unit_succeeds(host, "", program):
        return Finding(directive, False, f"probe broken: a plain unit could not {action} either")
    refused = not _unit_succeeds(host, f"-p {setting}", program)
    return Finding(directive, refused,
                   f"a unit with {setting} tried to {action}: "
                   f"{'refused' if refused else 'allowed'}")


def _unit_succeeds(host: TestHost, properties: str, program: str) -> bool:
    status = host.nsenter(
        "sh", "-c",
        f"systemd-run --quiet --wait --pipe {properties} python3 -c \"{program}\" "
        f">/dev/null 2>&1; echo $?",
    )
    return status.strip() == "0"
