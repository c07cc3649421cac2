"""Health by A2S: the pure decision (grace after a start and after a map change, down after
N s of silence, restarts at most K an hour), and its record, action and reads.

`health.record` gets what `left4me.l4d2.srcds_info` returns (its documented shape); a real
host with a hung and a slowly loading stand-in is in test_health_on_host.py.
"""

from __future__ import annotations

import time
from itertools import pairwise

import pytest
from domain_helpers import finish_job, with_settings
from test_observe import deployed, running

from left4me_ui import health, host_reads, jobs, runner
from left4me_ui.authz import NotFound
from left4me_ui.health import (
    DOWN,
    HEALTHY,
    LOADING_MAP,
    NOT_RUNNING,
    STARTING,
    UNANSWERED,
    Policy,
    Probe,
    Watch,
    assess,
    restart_allowed,
)

POLICY = Policy(down_after=60, start_grace=120, map_grace=120, restarts_per_hour=3)


def probes(watch: Watch, *steps: tuple[float, bool], invocation: str = "run1",
           asked: float | None = None, map_name: str = "c1m1_hotel",
           policy: Policy = POLICY) -> tuple[Watch, list[str]]:
    """Feed probes (at, answered) of an active unit; the states decided, in order."""
    states = []
    for at, answered in steps:
        watch, verdict = assess(watch, Probe(at, True, invocation, answered,
                                             map_name if answered else "", asked), policy)
        states.append(verdict.state)
    return watch, states


def test_a_server_silent_since_its_start_is_starting_through_the_grace_then_down():
    _, states = probes(Watch(), *((t, False) for t in range(0, 136, 15)))
    # 0..105: inside the 120 s grace; 120: past it and silent 120 s >= 60: down.
    assert states == [STARTING] * 8 + [DOWN] * 2


def test_a_server_answering_inside_its_grace_is_healthy():
    _, states = probes(Watch(), (0, False), (15, True))
    assert states == [STARTING, HEALTHY]


def test_down_only_after_down_after_seconds_of_silence_counted_from_the_first_silent_probe():
    watch, _ = probes(Watch(), (0, True), (130, True))  # past the start grace, answering
    _, states = probes(watch, (145, False), (160, False), (175, False), (190, False),
                       (205, False))
    # silent since 145: 0, 15, 30, 45 s: not yet; 60 s at 205: down.
    assert states == [UNANSWERED] * 4 + [DOWN]


def test_one_missed_probe_is_never_down_however_far_apart_the_probes_are():
    watch, _ = probes(Watch(), (0, True), (130, True))
    _, states = probes(watch, (400, False), (401, True))
    assert states == [UNANSWERED, HEALTHY]


def test_a_map_change_asked_for_gives_its_grace_then_silence_is_down():
    watch, _ = probes(Watch(), (0, True), (130, True))
    # changelevel at 140 (the console); silent from 145 on.
    _, states = probes(watch, (145, False), (205, False), (250, False), (260, False),
                       asked=140)
    # 205 is 60 s silent but inside the grace (until 260); at 260 the grace is over.
    assert states == [LOADING_MAP, LOADING_MAP, LOADING_MAP, DOWN]


def test_a_slow_map_load_inside_its_grace_ends_healthy():
    watch, _ = probes(Watch(), (0, True), (130, True))
    watch, states = probes(watch, (145, False), (205, False), (235, False), asked=140)
    _, after = probes(watch, (250, True), asked=140, map_name="c2m1_highway")
    assert states + after == [LOADING_MAP] * 3 + [HEALTHY]


def test_a_map_change_asked_for_before_this_run_gives_no_grace():
    watch, _ = probes(Watch(), (0, True), (130, True), asked=-50)
    _, states = probes(watch, (145, False), (205, False), asked=-50)
    assert states == [UNANSWERED, DOWN]


def test_a_new_run_of_the_unit_starts_a_new_grace():
    watch, _ = probes(Watch(), (0, True), (130, True), (145, False), (205, False))
    _, states = probes(watch, (220, False), (300, False), invocation="run2")
    assert states == [STARTING, STARTING]


def test_a_stopped_unit_is_not_running_and_forgets_the_watch():
    watch, _ = probes(Watch(), (0, True), (130, False))
    watch, verdict = assess(watch, Probe(140, False, "", False), POLICY)
    assert (watch, verdict.state) == (Watch(), NOT_RUNNING)


def test_restart_at_most_k_times_an_hour_then_left_down():
    assert restart_allowed("restart", 0, POLICY) == (True, "")
    assert restart_allowed("restart", 2, POLICY) == (True, "")
    allowed, why = restart_allowed("restart", 3, POLICY)
    assert not allowed and why == "left down: restarted 3 of 3 times this hour already"
    assert restart_allowed("none", 0, POLICY)[0] is False


def test_describe_says_since_when_for_how_long_and_the_last_answer():
    show = lambda at: f"{at:.0f}"  # noqa: E731
    watch, _ = probes(Watch(), (0, True), (130, True))
    watch, verdict = assess(watch, Probe(145, True, "run1", False), POLICY)
    assert verdict.state == UNANSWERED
    assert health.describe(verdict, watch, show) == (
        "not answering A2S since 145 (last answer 130)")
    watch, verdict = assess(watch, Probe(220, True, "run1", False), POLICY)
    assert health.describe(verdict, watch, show) == (
        "down since 145: A2S silent for 75 s while the unit is active; last answer 130")


# --- the record, the action and the reads ------------------------------------------------------


def silent(name: str = "alice1", invocation: str = "run1") -> dict:
    return {**running(name), "a2s": None, "a2s_error": "timed out", "invocation": invocation}


def answering(name: str = "alice1", invocation: str = "run1", map_name: str = "c1m1_hotel"
              ) -> dict:
    seen = running(name)
    return {**seen, "a2s": {**seen["a2s"], "map": map_name}, "invocation": invocation}


def settled(core, owner, name: str = "alice1") -> int:
    """A deployed server whose create job (and any build before it) has run."""
    server_id = deployed(core, owner, name)
    with core.db.connect() as conn:
        conn.execute("UPDATE jobs SET state = 'succeeded' WHERE state IN ('queued', 'running')")
    return server_id


def hang(core, clock, name: str = "alice1", *, seconds: int = 60) -> list[health.Decision]:
    """Answering past the start grace, then silent for `seconds` in 15 s probes."""
    found = []
    found += health.record(core, "alpha", [answering(name)])
    clock.advance(130)
    found += health.record(core, "alpha", [answering(name)])
    for _ in range(seconds // 15 + 1):
        clock.advance(15)
        found += health.record(core, "alpha", [silent(name)])
    return found


@pytest.fixture
def hc(core):
    return with_settings(core, health_down_after=60, health_start_grace=120,
                         health_map_grace=120, health_restarts_per_hour=3)


def test_a_hung_server_is_decided_down_with_its_evidence_and_no_action_by_default(
        hc, alice, clock):
    server_id = settled(hc, alice)
    decided = hang(hc, clock)
    assert [d.state for d in decided] == [HEALTHY, UNANSWERED, DOWN]
    down = decided[-1]
    assert down.action == "no action (the server's health action is none)"
    assert down.job_id is None and down.notify
    assert down.evidence["watch"]["last_answer_at"] == down.evidence["watch"]["silent_since"] - 15
    assert down.evidence["verdict"]["silent_for"] == 60
    shown = health.for_server(hc, alice, server_id)
    assert shown.state == DOWN and shown.text.startswith("down since ")
    with hc.db.connect() as conn:
        assert conn.execute("SELECT COUNT(*) FROM jobs WHERE state = 'queued'").fetchone()[0] == 0
        assert conn.execute(
            "SELECT outcome FROM audit WHERE action = 'health decision'").fetchone()[0] == "down"


def test_a_down_server_whose_owner_chose_restart_is_restarted_as_a_job_of_the_owner(
        hc, alice, clock):
    server_id = settled(hc, alice)
    health.set_action(hc, alice, server_id, "restart")
    down = hang(hc, clock)[-1]
    assert down.job_id is not None
    assert down.action == (f"restarted (job {down.job_id}) on behalf of alice: 1 of 3 this hour")
    job = jobs.get(hc, alice, down.job_id)
    assert (job.kind, job.actor_name, job.server_id) == ("server restart", "alice", server_id)
    assert health.for_server(hc, alice, server_id).restarts_this_hour == 1


def test_restarts_stop_after_k_an_hour_and_the_server_is_left_down(hc, alice, clock):
    server_id = settled(hc, alice)
    health.set_action(hc, alice, server_id, "restart")
    actions = []
    for run in range(4):
        found = []
        found += health.record(hc, "alpha", [answering(invocation=f"run{run}")])
        clock.advance(130)
        for _ in range(5):
            clock.advance(15)
            found += health.record(hc, "alpha", [silent(invocation=f"run{run}")])
        down = [d for d in found if d.state == DOWN][-1]
        actions.append(down.action)
        if down.job_id is not None:
            finish_job(hc, down.job_id)
    assert [a.split(" (")[0] for a in actions[:3]] == ["restarted"] * 3
    assert actions[3] == "left down: restarted 3 of 3 times this hour already"
    clock.advance(health.HOUR)
    found = health.record(hc, "alpha", [answering(invocation="run9")])
    clock.advance(130)
    for _ in range(5):
        clock.advance(15)
        found += health.record(hc, "alpha", [silent(invocation="run9")])
    assert [d for d in found if d.state == DOWN][-1].action.startswith("restarted")


def test_no_decision_while_a_job_acts_on_the_server(hc, alice, clock):
    server_id = settled(hc, alice)
    health.set_action(hc, alice, server_id, "restart")
    hang(hc, clock)  # restarted: its job is queued
    clock.advance(300)
    assert health.record(hc, "alpha", [silent()]) == []


def test_a_map_change_run_in_the_console_gives_the_grace(hc, alice, clock):
    server_id = settled(hc, alice)
    health.record(hc, "alpha", [answering()])
    clock.advance(130)
    health.record(hc, "alpha", [answering()])
    with hc.db.connect() as conn:  # as live.run_command records it
        conn.execute("INSERT INTO console_history (server_id, user_id, at, command, outcome)"
                     " VALUES (?, ?, ?, 'changelevel c2m1_highway', 'ok')",
                     (server_id, alice.user_id, hc.clock()))
    states = []
    for _ in range(6):
        clock.advance(15)
        states += [d.state for d in health.record(hc, "alpha", [silent()])]
    clock.advance(15)
    states += [d.state for d in health.record(hc, "alpha",
                                              [answering(map_name="c2m1_highway")])]
    assert states == [LOADING_MAP, HEALTHY]


def test_back_after_down_is_news_too_and_the_alert_hook_hands_out_both(hc, alice, clock):
    settled(hc, alice)
    hang(hc, clock)
    clock.advance(15)
    health.record(hc, "alpha", [answering()])
    news = health.notifications(hc)
    assert [d.state for d in news] == [DOWN, HEALTHY]
    assert health.notifications(hc, after_id=news[-1].id) == []


def test_the_health_action_is_the_owners_and_checked(hc, alice, bob, admin):
    server_id = settled(hc, alice)
    with pytest.raises(ValueError, match="none, restart"):
        health.set_action(hc, alice, server_id, "reboot")
    with pytest.raises(NotFound):
        health.set_action(hc, bob, server_id, "restart")
    assert health.for_server(hc, alice, server_id).action == "none"
    health.set_action(hc, admin, server_id, "restart")
    assert health.for_server(hc, alice, server_id).action == "restart"
    with pytest.raises(NotFound):
        health.for_server(hc, bob, server_id)


def test_a_disabled_owner_is_not_restarted_for(hc, alice, admin, clock):
    server_id = settled(hc, alice)
    health.set_action(hc, alice, server_id, "restart")
    with hc.db.connect() as conn:
        conn.execute("UPDATE users SET disabled = 1 WHERE id = ?", (alice.user_id,))
    down = hang(hc, clock)[-1]
    assert down.job_id is None and down.action.startswith("not restarted: ")
    assert health.for_server(hc, admin, server_id).state == DOWN


def test_the_check_reads_every_host_once_and_a_host_that_fails_is_named(
        hc, alice, clock, monkeypatch):
    settled(hc, alice)
    reads = []

    def read(core, host, verb, instance, args, timeout):
        reads.append((host, verb, args))
        if host == "alpha":
            return runner.ModuleRun(True, "", {"instances": [answering()]})
        return runner.ModuleRun(False, "ssh: connection refused", {})

    monkeypatch.setattr(host_reads, "read", read)
    monkeypatch.setattr(health, "hosts_to_check", lambda core: ["alpha", "beta"])
    check = health.HealthCheck(hc, 15)
    assert [d.state for d in check.check_all()] == [HEALTHY]
    assert sorted(host for host, _verb, _args in reads) == ["alpha", "beta"]
    assert all(verb == "info" and not args.get("players") for _h, verb, args in reads)
    assert check.last_errors == {"beta": "srcds_info on beta: ssh: connection refused"}


def test_the_check_runs_rounds_on_a_fixed_cadence(hc, monkeypatch):
    """A round's own time is not added to the spacing (a hang is decided within one
    interval plus down_after, plus one read)."""
    started = []

    def slow_round(self):
        started.append(time.monotonic())
        time.sleep(0.1)
        if len(started) == 4:
            self._stop.set()
        return []

    monkeypatch.setattr(health.HealthCheck, "check_all", slow_round)
    check = health.HealthCheck(hc, 0.2)
    check.start()
    check._thread.join(5)
    spacing = [b - a for a, b in pairwise(started)]
    # 0.2 s apart; were the round's 0.1 s added, 0.3 s.
    assert len(started) == 4 and all(0.17 < gap < 0.27 for gap in spacing), spacing
