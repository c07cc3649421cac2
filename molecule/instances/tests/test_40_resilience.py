"""Servers come back on their own: after kill -9, after a host reboot; a broken one stops."""

from __future__ import annotations

import json
import time

from conftest import INSTANCES, PLATFORM, a2s_name, ansible, figure, main_pid, wait_for_a2s

from testhosts import host as testhosts

STATE = "/var/lib/left4me"


def test_killed_server_is_back_and_answering_within_10_s(srv, booted):
    port = INSTANCES["versus1"][0]
    victim = main_pid(srv, "versus1")
    srv.check_output(f"kill -9 {victim}")
    seconds = wait_for_a2s(booted.address, port, limit=10)
    figure(f"kill -9 of versus1's server: answering A2S again after {seconds:.1f} s")
    assert main_pid(srv, "versus1") not in (0, victim)


def test_server_crashing_at_start_stops_after_5_tries(srv):
    arguments = {"name": "crash1", "port": 27045, "overlays": ["demo-coop"],
                 "environment": {"SRCDS_SIM_CRASH_AT_START": "1"}, "wait_retries": 60}
    since = srv.check_output("date +%s")  # the journal keeps runs of an earlier crash1
    try:
        started = time.monotonic()
        run = ansible("ansible", PLATFORM, "-b", "-m", "left4me.l4d2.srcds_instance",
                      "-a", json.dumps(arguments))
        assert run.returncode != 0
        assert "did not answer A2S_INFO" in run.stdout and "the unit failed" in run.stdout
        assert "Segmentation fault" in run.stdout, "the journal tail shows why"
        unit = "left4me-server@crash1"
        assert srv.run(f"systemctl is-failed {unit}").stdout.strip() == "failed"
        # Each run of the server prints its banner once; systemd refuses the 6th start request.
        starts = int(srv.check_output(f"journalctl -u {unit} --since @{since} -o cat"
                                      " _TRANSPORT=stdout | grep -c 'Console initialized'"))
        figure(f"crash at start: unit failed after {starts} starts,"
               f" {time.monotonic() - started:.1f} s")
        assert starts == 5
        assert "Start request repeated too quickly" in srv.check_output(
            f"journalctl -u {unit} --since @{since} -o cat")
    finally:
        ansible("ansible", PLATFORM, "-b", "-m", "left4me.l4d2.srcds_instance",
                "-a", json.dumps({"name": "crash1", "state": "absent"}))
    assert not srv.file("/etc/left4me/instances/crash1.env").exists
    assert not srv.file(f"{STATE}/runtime/crash1").exists


def test_reboot_brings_every_instance_back_without_a_playbook(srv, booted):
    started = time.monotonic()
    testhosts.reboot(booted)
    for port, hostname in sorted(INSTANCES.values()):
        wait_for_a2s(booted.address, port, limit=30)
        assert a2s_name(booted.address, port) == hostname
    figure(f"reboot: every instance answering A2S {time.monotonic() - started:.1f} s after"
           " the reboot command")
    for name in INSTANCES:
        assert srv.check_output(f"findmnt -n -o FSTYPE {STATE}/runtime/{name}/merged") == "overlay"
        assert srv.check_output(f"systemctl is-active left4me-server@{name}") == "active"
    # The runtime user's network rules are back before the servers (left4me-firewall).
    assert "table inet left4me" in srv.check_output("nft list table inet left4me")
