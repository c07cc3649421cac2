"""A server's share of its host, chosen per blueprint within the admin's ceiling.

Each server job carries srcds_instance's memory_max, tasks_max and cpu_quota: the
blueprint's own values, never above the ceiling (LEFT4ME_UI_SERVER_*), or the ceiling.
"""

from __future__ import annotations

import dataclasses

import pytest

from left4me_ui import blueprints, jobs, reconcile, servers, settings
from left4me_ui.validation import InstanceError


def job_limits(core, actor, job_id) -> dict:
    sent = jobs.get(core, actor, job_id).extravars["left4me_server_settings"]
    return {key: sent[key] for key in ("memory_max", "tasks_max", "cpu_quota")}


def test_a_blueprint_that_asks_for_nothing_gets_the_ceiling(core, alice):
    blueprint = blueprints.create(core, alice, "coop", [], blueprints.BlueprintSettings())
    _server, job_id = servers.create(core, alice, "alice1", "alpha", blueprint.id)
    assert job_limits(core, alice, job_id) == {"memory_max": "2G", "tasks_max": 256,
                                               "cpu_quota": 100}


def test_a_blueprints_own_limits_reach_the_server_job_normalised(core, alice):
    blueprint = blueprints.create(core, alice, "small", [], blueprints.BlueprintSettings(
        memory_max="1024M", tasks_max=128, cpu_quota=50))
    assert (blueprint.settings.memory_max, blueprint.settings.tasks_max,
            blueprint.settings.cpu_quota) == ("1G", 128, 50)
    _server, job_id = servers.create(core, alice, "alice1", "alpha", blueprint.id)
    assert job_limits(core, alice, job_id) == {"memory_max": "1G", "tasks_max": 128,
                                               "cpu_quota": 50}


@pytest.mark.parametrize(("asked", "message"), [
    ({"memory_max": "3G"}, "memory_max 3G is above the 2G an admin allows for one server"
                           r" \(LEFT4ME_UI_SERVER_MEMORY_MAX\)"),
    ({"tasks_max": 4096}, "tasks_max 4096 is above the 256 an admin allows"),
    ({"cpu_quota": 400}, "cpu_quota 400% is above the 100% an admin allows"),
    ({"memory_max": "lots"}, "memory_max 'lots' must be a size"),
    ({"memory_max": "64M"}, "memory_max '64M' is below the 256M a server needs"),
])
def test_a_blueprint_above_the_ceiling_is_refused_and_nothing_saved(core, alice, asked,
                                                                     message):
    with pytest.raises(InstanceError, match=message):
        blueprints.create(core, alice, "greedy", [], blueprints.BlueprintSettings(**asked))
    assert blueprints.list_for(core, alice) == []
    small = blueprints.create(core, alice, "small", [], blueprints.BlueprintSettings())
    with pytest.raises(InstanceError, match=message):
        blueprints.update(core, alice, small.id, config=blueprints.BlueprintSettings(**asked))
    assert blueprints.get(core, alice, small.id).revision == small.revision


def test_a_lowered_ceiling_caps_blueprints_saved_before(core, alice, admin, monkeypatch):
    blueprint = blueprints.create(core, alice, "big", [], blueprints.BlueprintSettings(
        memory_max="2G", tasks_max=256, cpu_quota=100))
    server_id, _job = servers.create(core, alice, "alice1", "alpha", blueprint.id)
    lowered = dataclasses.replace(core.settings, server_memory_max="1G", server_tasks_max=64,
                                  server_cpu_quota=50)
    monkeypatch.setattr(core, "settings", lowered)
    job_id = servers.restart(core, alice, server_id)
    assert job_limits(core, alice, job_id) == {"memory_max": "1G", "tasks_max": 64,
                                               "cpu_quota": 50}
    wanted = jobs.get(core, admin, reconcile.reconcile_host(core, admin, "alpha"))
    assert {key: wanted.extravars["left4me_servers"][0][key]
            for key in ("memory_max", "tasks_max", "cpu_quota")} == {
        "memory_max": "1G", "tasks_max": 64, "cpu_quota": 50}


def test_the_ceiling_comes_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("LEFT4ME_UI_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("LEFT4ME_UI_SERVER_MEMORY_MAX", "4G")
    monkeypatch.setenv("LEFT4ME_UI_SERVER_TASKS_MAX", "512")
    monkeypatch.setenv("LEFT4ME_UI_SERVER_CPU_QUOTA", "200")
    loaded = settings.from_environment()
    assert blueprints.ceiling(loaded) == {"memory_max": "4G", "tasks_max": 512,
                                          "cpu_quota": 200}
