"""A fleet of four hosts from one inventory: every server answers, a change stays on its host."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from pathlib import Path

import a2s
import pytest

sys.path.insert(0, os.environ["MOLECULE_PROJECT_DIRECTORY"])  # the testhosts package

from testhosts import host as testhosts  # noqa: E402

PROJECT = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"])
# What the scenario's inventory gives each host: region list (group_vars) + host's own
# (host_vars); port -> the hostname its server.cfg overlay sets.
SERVERS = {
    "mol-fl-eu1": {27015: "left4me demo coop", 27035: "left4me demo versus"},
    "mol-fl-eu2": {27015: "left4me demo coop"},
    "mol-fl-us1": {27025: "left4me demo versus"},
    "mol-fl-us2": {27025: "left4me demo versus"},
}
CHANGED_HOST = "mol-fl-eu1"
RECAP = re.compile(r"^(?P<host>\S+)\s*:\s*ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)"
                   r"\s+unreachable=(?P<unreachable>\d+)\s+failed=(?P<failed>\d+)", re.M)


def answering(address: str, ports) -> dict[int, str]:
    names = {}
    for port in ports:
        with contextlib.suppress(TimeoutError, OSError):  # silent: not serving
            names[port] = a2s.info((address, port), timeout=3).server_name
    return names


def main_pids(name: str) -> dict[str, str]:
    """Each server's MainPID: a restarted server gets a new one."""
    booted = testhosts.load(name)
    out = booted.nsenter("systemctl", "show", "--property=Id,MainPID", "left4me-server@*")
    blocks = [dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
              for block in out.strip().split("\n\n")]
    return {block["Id"]: block["MainPID"] for block in blocks}


@pytest.mark.parametrize("name", sorted(SERVERS))
def test_10_every_server_of_every_host_answers_a2s(name: str) -> None:
    address = testhosts.load(name).address
    assert answering(address, SERVERS[name]) == SERVERS[name]


def test_20_dropping_a_server_touches_only_its_host() -> None:
    before = {name: main_pids(name) for name in SERVERS}
    run = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"),
         "-i", os.environ["MOLECULE_INVENTORY_FILE"], "playbooks/site.yml",
         "-e", "fleet_drop_extra=true"],
        # molecule forces colour on for ansible; the recap is parsed, so turn it off again.
        env={**os.environ, "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1"},
        cwd=PROJECT, capture_output=True, text=True, timeout=1800)
    assert run.returncode == 0, run.stdout[-3000:]
    recap = {match["host"]: match for match in RECAP.finditer(run.stdout)}
    assert sorted(recap) == sorted(SERVERS), run.stdout[-3000:]
    assert int(recap[CHANGED_HOST]["changed"]) > 0
    assert {name: int(recap[name]["changed"]) for name in SERVERS if name != CHANGED_HOST} == \
        {name: 0 for name in SERVERS if name != CHANGED_HOST}, run.stdout[-3000:]

    after = {name: main_pids(name) for name in SERVERS}
    for name in SERVERS:
        address = testhosts.load(name).address
        kept = {port: hostname for port, hostname in SERVERS[name].items() if port != 27035}
        assert answering(address, SERVERS[name]) == kept, name
        wanted = {unit: pid for unit, pid in before[name].items()
                  if unit != "left4me-server@tourney1.service"}
        # The servers that stay were not restarted, on this host or any other.
        assert {unit: after[name].get(unit) for unit in wanted} == wanted, name
