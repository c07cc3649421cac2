"""The servers list and the activity page show what the poller saw, as a person reads it."""

from __future__ import annotations

import dataclasses

from left4me_ui import blueprints, observe, profiles, servers
from tests.ui.conftest import Person
from tests.ui.steam_standin import serving, write_key


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


VETERAN = {"name": "Veteran", "bot": False, "steam_id": "STEAM_1:1:41813649",
           "connected": "2:05", "connected_seconds": 125, "ping": 64}
VETERAN64 = "76561198043893027"  # STEAM_1:1:41813649: account 2 x 41813649 + 1


def captions(app) -> str:
    return "\n".join(c.value for c in app.caption)


def test_without_a_key_the_status_names_show_and_how_to_get_steam_names(core, alice):
    deployed_server(core, alice)
    observe.record(core, "alpha", [running("mine1", [VETERAN])])
    app = alice.app("activity")
    [playing] = app.dataframe[0].value.to_dict("records")
    assert playing == {"name": "Veteran", "ping (ms)": 64, "connected": "2:05"}
    assert ("Steam profile names and avatars appear when the operator gives the UI a Steam"
            " Web API key (LEFT4ME_UI_STEAM_API_KEY_FILE" in captions(app))


def test_with_a_key_each_player_has_an_avatar_and_steam_name(core, alice, tmp_path):
    deployed_server(core, alice)
    with serving({VETERAN64: "vet_on_steam"}) as webapi:
        core.settings = dataclasses.replace(core.settings, steam_api_url=webapi.base_url,
                                            steam_api_key_file=write_key(tmp_path / "key"))
        observe.record(core, "alpha", [running("mine1", [VETERAN])])
        profiles.refresh(core)  # the poller's step after its round
        app = alice.app("activity")
        assert not app.exception
        [playing] = app.dataframe[0].value.to_dict("records")
        avatar = playing.pop("avatar")
        assert avatar.startswith(webapi.base_url + "/avatars/")
        assert playing == {"name": "Veteran", "Steam name": "vet_on_steam", "ping (ms)": 64,
                           "connected": "2:05"}
        assert "Steam" not in captions(app)  # lookups work: nothing to explain


def test_a_refused_key_shows_status_names_and_tells_admins_why(core, alice, admin, tmp_path):
    deployed_server(core, alice)
    with serving({VETERAN64: "vet_on_steam"}) as webapi:
        core.settings = dataclasses.replace(
            core.settings, steam_api_url=webapi.base_url,
            steam_api_key_file=write_key(tmp_path / "key", "revoked"))
        observe.record(core, "alpha", [running("mine1", [VETERAN])])
        profiles.refresh(core)
    app = alice.app("activity")
    [playing] = app.dataframe[0].value.to_dict("records")
    assert (playing["name"], playing["avatar"], playing["Steam name"]) == ("Veteran", None, None)
    assert ("Steam profiles could not be looked up (an admin sees why here). Names as the"
            " server's status shows them until a later poll succeeds." in captions(app))
    seen_by_admin = admin.app("activity")  # alice's server is the only one
    assert "Steam profiles could not be looked up: the Steam Web API refused the key" \
        " (HTTP 403)" in captions(seen_by_admin)
