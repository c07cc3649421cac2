"""The module ad hoc, as an operator types it: bad arguments change nothing; restart works."""

from __future__ import annotations

import json

import pytest
from conftest import INSTANCES, PLATFORM, a2s_name, ansible, main_pid

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
]


def adhoc(arguments: dict, *extra: str):
    return ansible("ansible", PLATFORM, "-b", "-m", "left4me.l4d2.srcds_instance",
                   "-a", json.dumps(arguments), *extra)


@pytest.mark.parametrize(("arguments", "message"), BAD_ARGUMENTS,
                         ids=[message[:40] for _args, message in BAD_ARGUMENTS])
def test_bad_arguments_fail_clearly_and_change_nothing(srv, arguments, message):
    before = srv.check_output(LISTING)
    run = adhoc(arguments)
    assert run.returncode != 0
    assert "FAILED" in run.stdout and message in run.stdout, run.stdout[-2000:]
    assert srv.check_output(LISTING) == before


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
