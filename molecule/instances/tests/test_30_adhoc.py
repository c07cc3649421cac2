"""The module ad hoc, as an operator types it: bad arguments change nothing; restart works."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import INSTANCES, PLATFORM, a2s_name, ansible, figure, main_pid

STATE = "/var/lib/left4me"
# Everything the module could touch, listed with owner, mode and size.
LISTING = (f"find /etc/left4me {STATE}/runtime {STATE}/overlays /etc/systemd/system"
           " -printf '%p %u %g %m %s\\n' | sort; systemctl list-units --all --plain"
           " --no-legend 'left4me-server@*'")
LAYERS_501 = [f"{STATE}/overlays/demo-coop"] * 501

BAD_ARGUMENTS = [
    ({"name": "Bad!", "port": 27040}, "invalid instance name 'Bad!'"),
    ({"name": "-x", "state": "absent"}, "invalid instance name '-x'"),
    ({"name": "low", "port": 80}, "port must be between 1024 and 65535, got 80"),
    ({"name": "high", "port": 70000}, "port must be between 1024 and 65535, got 70000"),
    ({"name": "dup", "port": 27015}, "port 27015 is already configured for instance 'coop1'"),
    ({"instances": [{"name": "x1", "port": 27050}, {"name": "x2", "port": 27050}]},
     "port 27050 is used by both instance 'x1' and 'x2'"),
    ({"name": "outside", "port": 27060, "lowerdirs": ["/etc"]},
     "lowerdir #1 /etc is outside the allowed roots"),
    ({"name": "sneaky", "port": 27060, "lowerdirs": [f"{STATE}/overlays/../../../etc"]},
     "contains a '..' component"),
    ({"name": "deep", "port": 27060, "lowerdirs": LAYERS_501},
     "501 layers plus the instance config layer and the installation make 503"),
    ({"name": "ghost", "state": "started"}, "instance 'ghost' is not configured on this host"),
    ({"name": "argv", "port": 27060, "args": ["+rcon_password", "x"]},
     "pass rcon_password through rcon_password"),
    ({"name": "greedy", "port": 27060, "memory_max": "lots"},
     "instance 'greedy': memory_max 'lots' must be a size"),
    ({"name": "forky", "port": 27060, "tasks_max": 1},
     "instance 'forky': tasks_max must be between 32 and 65536, got 1"),
]


def adhoc(arguments: dict):
    return ansible("ansible", PLATFORM, "-b", "-m", "left4me.l4d2.srcds_instance",
                   "-a", json.dumps(arguments))


@pytest.fixture(scope="module")
def bad_runs(srv):
    """Every bad call, run side by side (each is a whole ansible start-up), with the host's
    listing before and after them all."""
    before = srv.check_output(LISTING)
    with ThreadPoolExecutor(max_workers=4) as pool:
        runs = list(pool.map(adhoc, [arguments for arguments, _message in BAD_ARGUMENTS]))
    return before, runs, srv.check_output(LISTING)


@pytest.mark.parametrize("case", range(len(BAD_ARGUMENTS)),
                         ids=[message[:40] for _args, message in BAD_ARGUMENTS])
def test_bad_arguments_fail_with_a_clear_message(bad_runs, case):
    run = bad_runs[1][case]
    message = BAD_ARGUMENTS[case][1]
    assert run.returncode != 0
    assert "FAILED" in run.stdout and message in run.stdout, run.stdout[-2000:]


def test_bad_arguments_change_nothing_on_the_host(bad_runs):
    before, _runs, after = bad_runs
    assert after == before


def test_restarted_ad_hoc_restarts_and_waits_for_a2s(srv, booted):
    before = main_pid(srv, "coop1")
    run = adhoc({"name": "coop1", "state": "restarted"})
    assert run.returncode == 0 and "CHANGED" in run.stdout, run.stdout[-2000:]
    assert main_pid(srv, "coop1") != before
    port, hostname = INSTANCES["coop1"]
    assert a2s_name(booted.address, port, timeout=3) == hostname


def test_started_ad_hoc_on_a_running_instance_changes_nothing():
    run = adhoc({"name": "versus1", "state": "started"})
    assert run.returncode == 0 and "SUCCESS" in run.stdout, run.stdout[-2000:]


def test_absent_of_a_missing_instance_is_fine():
    run = adhoc({"name": "never-there", "state": "absent"})
    assert run.returncode == 0 and "SUCCESS" in run.stdout, run.stdout[-2000:]


def test_stopped_disables_stops_and_unmounts_then_started_brings_it_back(srv, booted):
    port, hostname = INSTANCES["versus1"]
    run = adhoc({"name": "versus1", "state": "stopped"})
    assert run.returncode == 0 and "CHANGED" in run.stdout, run.stdout[-2000:]
    assert srv.run("systemctl is-enabled left4me-server@versus1").stdout.strip() == "disabled"
    assert srv.run("systemctl is-active left4me-server@versus1").stdout.strip() == "inactive"
    assert srv.run(f"findmnt {STATE}/runtime/versus1/merged").rc != 0, "still mounted"
    with pytest.raises((TimeoutError, OSError)):
        a2s_name(booted.address, port, timeout=1)
    run = adhoc({"name": "versus1", "state": "started"})
    assert run.returncode == 0 and "CHANGED" in run.stdout, run.stdout[-2000:]
    assert a2s_name(booted.address, port, timeout=3) == hostname


def test_twenty_instances_cost_one_call(srv):
    """A host's worth of instances configured, then removed, each in a single module call."""
    names = [f"bulk{i:02d}" for i in range(20)]
    # Two ports apart: each instance's client port is port + 1 by default.
    wanted = [{"name": n, "port": 28000 + 2 * i, "overlays": ["demo-config"]}
              for i, n in enumerate(names)]
    started = time.monotonic()
    run = adhoc({"state": "present", "instances": wanted})
    seconds = time.monotonic() - started
    try:
        assert run.returncode == 0 and "CHANGED" in run.stdout, run.stdout[-2000:]
        result = json.loads(run.stdout.split("=>", 1)[1])
        assert [i["name"] for i in result["instances"]] == names
        listed = srv.check_output("ls /etc/left4me/instances").split()
        assert {f"{n}.env" for n in names} <= set(listed)
        figure(f"20 instances configured in one srcds_instance call: {seconds:.1f} s")
        again = adhoc({"state": "present", "instances": wanted})
        assert again.returncode == 0 and "SUCCESS" in again.stdout, "a re-run changes nothing"
    finally:
        gone = adhoc({"state": "absent", "instances": [{"name": n} for n in names]})
    assert gone.returncode == 0 and "CHANGED" in gone.stdout, gone.stdout[-2000:]
    assert not any(n.startswith("bulk") for n in srv.check_output(
        "ls /etc/left4me/instances").split())
