"""Steam profile names and avatars: the SteamID conversion, and lookups against the stand-in
Web API (standins/webapi, started in this process on loopback: the real server, no mock)."""

from __future__ import annotations

import dataclasses
import time
import urllib.request

import pytest

from left4me_ui import blueprints, observe, profiles, servers, settings
from tests.ui.steam_standin import KEY, serving, summaries_calls, write_key

# The classic example account: STEAM_0:0:11101 = [U:1:22202] = 76561197960287930.
GABE64 = "76561197960287930"
VETERAN = {"name": "Veteran", "bot": False, "steam_id": "STEAM_1:1:41813649",
           "connected": "2:05", "connected_seconds": 125, "ping": 64}
VETERAN64 = str(76561197960265728 + 2 * 41813649 + 1)
NEWCOMER = {"name": "Newcomer", "bot": False, "steam_id": "[U:1:22202]",
            "connected": "1:05", "connected_seconds": 65, "ping": 80}


# --- the conversion ---------------------------------------------------------------------------


@pytest.mark.parametrize(("shown", "expected"), [
    ("STEAM_0:0:11101", GABE64),  # older engines print universe 0 for the public one
    ("STEAM_1:0:11101", GABE64),  # L4D2 prints universe 1
    ("[U:1:22202]", GABE64),
    ("STEAM_1:1:41813649", VETERAN64),  # account 2Z+Y
    (" STEAM_1:1:41813649 ", VETERAN64),
])
def test_status_ids_become_steamid64(shown, expected):
    assert profiles.steam_id64(shown) == expected


@pytest.mark.parametrize("shown", [
    "BOT", "STEAM_ID_LAN", "STEAM_ID_PENDING", "", "STEAM_1:2:5", "STEAM_2:0:11101",
    "[U:2:22202]", "[G:1:5]", "STEAM_1:0:0", "[U:1:0]", "[U:1:4294967296]", "76561197960287930",
])
def test_ids_without_a_public_profile_convert_to_none(shown):
    assert profiles.steam_id64(shown) is None


# --- lookups against the stand-in ---------------------------------------------------------------


@pytest.fixture
def webapi():
    with serving({VETERAN64: "vet_on_steam", GABE64: "Rabscuttle"}) as server:
        yield server


@pytest.fixture
def key_file(tmp_path):
    return write_key(tmp_path / "steam-api-key")


@pytest.fixture
def config(config, webapi, key_file):
    """The Core's settings with the stand-in's URL and a key file (the no-key test unsets it)."""
    return dataclasses.replace(config, steam_api_url=webapi.base_url,
                               steam_api_key_file=key_file)


calls = summaries_calls


def seen(core, owner, players: list[dict]) -> int:
    blueprint = blueprints.create(core, owner, "bp", ["demo-config"],
                                  blueprints.BlueprintSettings(hostname="x"))
    server_id = servers.create(core, owner, "alice1", "alpha", blueprint.id)[0]
    with core.db.connect() as conn:  # as if its create job had run
        conn.execute("UPDATE servers SET applied_revision = 1 WHERE id = ?", (server_id,))
    observe.record(core, "alpha", [{
        "name": "alice1", "state": "running", "running": True, "reason": "running",
        "a2s": {"players": len(players), "max_players": 8}, "players": players}])
    return server_id


def test_names_and_avatars_are_fetched_cached_and_not_asked_again_within_expiry(
        core, alice, clock, webapi):
    seen(core, alice, [VETERAN, NEWCOMER, {"name": "Coach", "bot": True}])
    lookup = profiles.refresh(core)
    assert (lookup.asked, lookup.answered, lookup.error) == (2, 2, None)
    found = profiles.for_steam_ids(core, ["STEAM_1:1:41813649", "[U:1:22202]", "BOT"])
    assert {shown: p.name for shown, p in found.items()} == {
        "STEAM_1:1:41813649": "vet_on_steam", "[U:1:22202]": "Rabscuttle"}
    with urllib.request.urlopen(found["[U:1:22202]"].avatar_url, timeout=10) as avatar:
        assert avatar.headers["Content-Type"] == "image/jpeg"  # the browser's image loads
    assert calls(webapi) == 1  # both in one call
    clock.advance(core.settings.poll_seconds)
    assert profiles.refresh(core) is None  # cached: the next poll asks nothing
    assert calls(webapi) == 1
    clock.advance(core.settings.steam_profile_max_age_seconds)
    observe.record(core, "alpha", [{"name": "alice1", "state": "running", "running": True,
                                    "reason": "running", "players": [VETERAN, NEWCOMER]}])
    assert profiles.refresh(core).answered == 2  # expired: asked again
    assert calls(webapi) == 2


def test_a_bad_key_keeps_status_names_and_records_why(core, alice, clock, webapi, key_file):
    key_file.write_text("not-a-steam-key\n")
    seen(core, alice, [VETERAN])
    lookup = profiles.refresh(core)
    assert "refused the key (HTTP 403)" in lookup.error
    assert "not-a-steam-key" not in lookup.error
    assert profiles.last_lookup(core).error == lookup.error
    assert profiles.for_steam_ids(core, ["STEAM_1:1:41813649"]) == {}  # status names shown
    clock.advance(core.settings.poll_seconds)
    assert profiles.refresh(core) is None  # no hammering with a refused key
    assert calls(webapi) == 1
    key_file.write_text(KEY + "\n")  # the operator fixes it; a later poll recovers
    clock.advance(profiles.RETRY_AFTER_FAILURE_SECONDS)
    assert profiles.refresh(core).error is None
    assert profiles.for_steam_ids(core, ["STEAM_1:1:41813649"])["STEAM_1:1:41813649"].name \
        == "vet_on_steam"


def test_steam_down_changes_no_cached_profile(core, alice, clock, webapi):
    seen(core, alice, [VETERAN])
    profiles.refresh(core)
    clock.advance(core.settings.steam_profile_max_age_seconds + 1)
    observe.record(core, "alpha", [{"name": "alice1", "state": "running", "running": True,
                                    "reason": "running", "players": [VETERAN]}])
    webapi.faults.failures_left, webapi.faults.failure_status = 1, 503
    assert "HTTP 503" in profiles.refresh(core).error
    # The expired profile is still shown: better an old name than none.
    assert profiles.for_steam_ids(core, ["STEAM_1:1:41813649"])["STEAM_1:1:41813649"].name \
        == "vet_on_steam"


def test_an_unreachable_api_is_recorded(core, alice, config):
    core.settings = dataclasses.replace(config, steam_api_url="http://127.0.0.1:9")
    seen(core, alice, [VETERAN])
    assert "did not answer" in profiles.refresh(core).error


def test_without_a_key_nothing_is_asked(core, alice, webapi, config):
    core.settings = dataclasses.replace(config, steam_api_key_file=None)
    seen(core, alice, [VETERAN])
    assert profiles.refresh(core) is None
    assert calls(webapi) == 0
    assert profiles.for_steam_ids(core, ["STEAM_1:1:41813649"]) == {}


def test_a_world_of_players_is_asked_100_at_a_time(core, alice, webapi):
    crowd = [{**VETERAN, "name": f"p{n}", "steam_id": f"STEAM_1:0:{1000 + n}"}
             for n in range(150)]
    seen(core, alice, crowd)
    assert profiles.refresh(core).answered == 150
    assert calls(webapi) == 2


def test_the_poller_looks_profiles_up_after_its_round(core, alice, webapi, monkeypatch):
    seen(core, alice, [VETERAN])
    # the hosts' poll is tested elsewhere
    monkeypatch.setattr(observe, "poll_host", lambda _core, _host, _refused=None: [])
    poller = observe.Poller(core, 0.05)
    poller.start()
    try:
        deadline = time.monotonic() + 10
        while not (found := profiles.for_steam_ids(core, ["STEAM_1:1:41813649"])):
            assert time.monotonic() < deadline, poller.last_errors
            time.sleep(0.05)
    finally:
        poller.stop()
    assert found["STEAM_1:1:41813649"].name == "vet_on_steam"
    assert calls(webapi) == 1  # later rounds find it cached
    assert poller.last_errors == {}


# --- settings ----------------------------------------------------------------------------------


def test_the_key_comes_from_the_environment_and_is_never_in_a_repr(monkeypatch, tmp_path):
    monkeypatch.setenv("LEFT4ME_UI_STEAM_API_KEY", KEY)
    monkeypatch.setenv("LEFT4ME_UI_STEAM_API_URL", "http://127.0.0.1:8880/")
    configured = settings.from_environment()
    assert profiles.configured(configured) and profiles.read_key(configured) == KEY
    assert configured.steam_api_url == "http://127.0.0.1:8880"
    assert KEY not in repr(configured)
    monkeypatch.delenv("LEFT4ME_UI_STEAM_API_KEY")
    monkeypatch.delenv("LEFT4ME_UI_STEAM_API_URL")
    defaults = settings.from_environment()
    assert not profiles.configured(defaults)
    assert defaults.steam_api_url == "https://api.steampowered.com"
    monkeypatch.setenv("LEFT4ME_UI_STEAM_API_URL", "ftp://example.net")
    with pytest.raises(ValueError, match="LEFT4ME_UI_STEAM_API_URL must be an http"):
        settings.from_environment()


def test_a_key_file_others_can_read_is_refused_with_the_fix(monkeypatch, key_file):
    monkeypatch.setenv("LEFT4ME_UI_STEAM_API_KEY_FILE", str(key_file))
    key_file.chmod(0o644)
    with pytest.raises(profiles.ProfileError, match=f"chmod 0600 {key_file}"):
        profiles.read_key(settings.from_environment())
