"""The servers list and the activity page show what the poller saw, as a person reads it."""

from __future__ import annotations

from left4me_ui import blueprints, observe, servers
from tests.ui.conftest import Person


def deployed_server(core, person: Person, name: str = "mine1") -> int:
    blueprint = blueprints.create(core, person.actor, f"bp-{name}", ["demo-config"],
                                  blueprints.BlueprintSettings(hostname="My coop"))
    server_id, _job = servers.create(core, person.actor, name, "alpha", blueprint.id)
    with core.db.connect() as conn:  # as if its create job had run
        conn.execute("UPDATE servers SET applied_revision = 1 WHERE id = ?", (server_id,))
    return server_id


def running(name: str, players: list[dict]) -> dict:
    return {"name": name, "state": "running", "running": True, "reason": "running",
            "a2s": {"players": len(players), "max_players": 8}, "memory_bytes": 200 << 20,
            "cpu_seconds": 3.0, "players": players}


def test_the_list_says_how_a_server_really_is(core, alice):
    deployed_server(core, alice, "mine1")
    deployed_server(core, alice, "mine2")
    observe.record(core, "alpha", [
        running("mine1", []),
        {"name": "mine2", "state": "crash_loop", "running": False,
         "reason": "crash loop: gave up after 5 starts within 60 s (killed by SIGKILL)"}])
    rows = {r["name"]: r["state"] for r in alice.app("servers").dataframe[0].value
            .to_dict("records")}
    assert rows == {"mine1": "running",
                    "mine2": "crash loop: gave up after 5 starts within 60 s (killed by SIGKILL)"}


def test_a_server_not_polled_yet_is_not_called_running(core, alice):
    deployed_server(core, alice)
    [row] = alice.app("servers").dataframe[0].value.to_dict("records")
    assert (row["state"], row["wanted"]) == ("not polled yet", "started")


def test_activity_shows_who_plays_with_ping_and_a_players_chart(core, alice):
    deployed_server(core, alice)
    veteran = {"name": "Veteran", "bot": False, "steam_id": "STEAM_1:1:41813649",
               "connected": "2:05", "connected_seconds": 125, "ping": 64}
    observe.record(core, "alpha", [running("mine1", [veteran, {"name": "Coach", "bot": True}])])
    app = alice.app("activity")
    assert not app.exception
    [playing] = app.dataframe[0].value.to_dict("records")
    assert playing == {"name": "Veteran", "ping (ms)": 64, "connected": "2:05"}
    assert "State: running, players 2/8" in "\n".join(t.value for t in app.text)
    assert len(app.get("vega_lite_chart")) == 2  # players and memory (one poll: no CPU yet)
