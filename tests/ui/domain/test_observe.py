"""The poll's record: a server's true state, what changed, player sessions, and who sees them.

`observe.record` gets what `left4me.l4d2.srcds_info` returns (its documented shape); the
real poll of a real host is in test_server_on_host.py.
"""

from __future__ import annotations

import pytest

from left4me_ui import blueprints, host_reads, observe, runner, servers
from left4me_ui.authz import NotFound


def deployed(core, owner, name: str = "alice1") -> int:
    blueprint = blueprints.create(core, owner, f"bp-{name}", ["demo-config"],
                                  blueprints.BlueprintSettings(hostname=name))
    server_id = servers.create(core, owner, name, "alpha", blueprint.id)[0]
    with core.db.connect() as conn:  # as if its create job had run
        conn.execute("UPDATE servers SET applied_revision = 1 WHERE id = ?", (server_id,))
    return server_id


def running(name: str = "alice1", players: list[dict] | None = None, count: int = 0) -> dict:
    return {"name": name, "state": "running", "running": True, "reason": "running",
            "a2s": {"name": name, "map": "c1m1_hotel", "players": count, "max_players": 8},
            "memory_bytes": 180 << 20, "cpu_seconds": 12.5, "players": players or []}


OOM = {"name": "alice1", "state": "oom_killed", "running": False,
       "reason": "killed: out of memory", "a2s": None, "memory_bytes": None,
       "cpu_seconds": None}
VETERAN = {"userid": 2, "slot": 1, "name": "Veteran", "bot": False,
           "steam_id": "STEAM_1:1:41813649", "connected": "2:05", "connected_seconds": 125,
           "ping": 64, "loss": 0}
BOT = {"userid": 4, "slot": None, "name": "Coach", "bot": True}


def test_a_killed_server_is_never_shown_running_and_the_change_is_recorded(core, alice, clock):
    server_id = deployed(core, alice)
    assert observe.record(core, "alpha", [running()]) == []
    assert observe.latest(core, alice)[server_id].reason == "running"
    clock.advance(60)
    changed = observe.record(core, "alpha", [OOM])
    assert [(c.before, c.after, c.reason) for c in changed] == [
        ("running", "oom_killed", "killed: out of memory")]
    now = observe.latest(core, alice)[server_id]
    assert (now.running, now.reason) == (False, "killed: out of memory")
    assert [c.after for c in observe.changes(core, alice, server_id)] == ["oom_killed"]


def test_a_server_gone_from_its_host_is_missing(core, alice):
    server_id = deployed(core, alice)
    observe.record(core, "alpha", [])
    assert observe.latest(core, alice)[server_id].state == "missing"


def test_an_old_observation_is_not_shown_as_now(core, alice, clock):
    server_id = deployed(core, alice)
    observe.record(core, "alpha", [running()])
    clock.advance(observe.STALE_POLLS * core.settings.poll_seconds + 1)
    assert server_id not in observe.latest(core, alice)


def test_player_sessions_open_track_ping_and_close(core, alice, clock):
    server_id = deployed(core, alice)
    observe.record(core, "alpha", [running(players=[VETERAN, BOT], count=2)])
    joined = clock.now - 125
    clock.advance(60)
    observe.record(core, "alpha", [running(players=[{**VETERAN, "ping": 90}, BOT], count=2)])
    [on_now] = observe.sessions(core, alice, server_id)
    assert (on_now.name, on_now.left_at, on_now.joined_at) == ("Veteran", None, joined)
    assert (on_now.ping_min, on_now.ping_max, on_now.ping_last) == (64, 90, 90)
    last_seen = clock.now
    clock.advance(60)
    observe.record(core, "alpha", [running(players=[BOT], count=1)])
    [gone] = observe.sessions(core, alice, server_id)
    assert gone.left_at == last_seen  # left at the last poll that saw them; bots never count


def pending(userid: int, name: str, seconds: int = 5) -> dict:
    """A `status` row of a player Steam has not validated yet (srcds prints STEAM_ID_PENDING)."""
    return {"userid": userid, "slot": userid - 1, "name": name, "bot": False,
            "steam_id": "STEAM_ID_PENDING", "connected": f"00:0{seconds}",
            "connected_seconds": seconds, "ping": 80, "loss": 0}


def test_players_still_pending_are_tracked_apart_and_keep_their_session(core, alice, clock):
    """Two connections still being validated look alike but for userid (and name): each is
    its own session; once Steam validates one, its session goes on under its SteamID."""
    server_id = deployed(core, alice)
    observe.record(core, "alpha", [running(players=[pending(5, "Joiner"),
                                                    pending(6, "Joiner")], count=2)])
    assert len([s for s in observe.sessions(core, alice, server_id) if s.left_at is None]) == 2
    joined = clock.now - 5
    clock.advance(60)
    validated = {**pending(5, "Joiner", 65), "steam_id": "STEAM_1:0:1234"}
    observe.record(core, "alpha", [running(players=[validated, pending(6, "Joiner", 65)],
                                           count=2)])
    sessions = observe.sessions(core, alice, server_id)
    assert len(sessions) == 2 and all(s.left_at is None for s in sessions)
    assert sorted(s.steam_id for s in sessions) == ["STEAM_1:0:1234", "STEAM_ID_PENDING"]
    assert {s.joined_at for s in sessions} == {joined}
    clock.advance(60)
    observe.record(core, "alpha", [running(players=[validated], count=1)])
    still = [s for s in observe.sessions(core, alice, server_id) if s.left_at is None]
    assert [s.steam_id for s in still] == ["STEAM_1:0:1234"]


def test_charts_read_the_last_day_and_old_rows_are_pruned(core, alice, clock):
    server_id = deployed(core, alice)
    observe.record(core, "alpha", [running(count=1)])
    clock.advance(observe.KEEP_SECONDS + 1)
    observe.record(core, "alpha", [running(count=3)])
    assert [o.players for o in observe.history(core, alice, server_id)] == [3]
    with core.db.connect() as conn:
        assert conn.execute("SELECT COUNT(*) FROM observations").fetchone()[0] == 1


@pytest.mark.parametrize("read", [observe.history, observe.changes, observe.sessions])
def test_another_user_reads_nothing_of_alices_server(core, alice, bob, read):
    server_id = deployed(core, alice)
    observe.record(core, "alpha", [running()])
    with pytest.raises(NotFound):
        read(core, bob, server_id)
    assert server_id not in observe.latest(core, bob)


def test_cpu_share_between_polls_skips_a_restarted_counter():
    def seen(at, cpu):
        return observe.Observation(at, "running", True, "running", 0, 8, None, cpu)
    polls = [seen(0, 10.0), seen(60, 40.0), seen(120, 1.0), seen(180, None), seen(240, 7.0)]
    assert observe.cpu_percent(polls) == [(60, 50.0)]


def test_a_server_that_refused_rcon_is_not_asked_again_until_it_restarts(core, alice,
                                                                         monkeypatch):
    """srcds bans 127.0.0.1 after repeated wrong passwords: the poller remembers a refusal
    per server and passes it back, and the servers list says why and what to do."""
    server_id = deployed(core, alice)
    asked: list[dict] = []
    answers = [{**running(), "rcon_refused": True, "invocation": "run-1",
                "players_error": "the server's RCON password is not the one left4me set"},
               {**running(), "rcon_refused": True, "invocation": "run-1"},
               {**running(), "rcon_refused": False, "invocation": "run-2"}]

    def run_module(_core, _host, module, args, timeout):
        assert module == "left4me.l4d2.srcds_info"
        asked.append(args)
        return runner.ModuleRun(True, "", {"instances": [answers[len(asked) - 1]]})

    monkeypatch.setattr(host_reads, "run_module", run_module)
    refused: dict[str, str] = {}
    observe.poll_host(core, "alpha", refused)
    assert asked[0]["rcon_refused"] == {}
    reason = observe.latest(core, alice)[server_id].reason
    assert reason.startswith("running; RCON refused") and "restart the server" in reason
    observe.poll_host(core, "alpha", refused)
    assert asked[1]["rcon_refused"] == {"alice1": "run-1"}
    observe.poll_host(core, "alpha", refused)  # restarted: asked, and it answered
    assert refused == {} and observe.latest(core, alice)[server_id].reason == "running"
