"""A Workshop overlay through the domain layer on a host converged with site.yml, against the
stand-in Steam Web API (standins/webapi, served from this machine on the host's veth): the
ids pasted as a link and a collection, resolved through the host (each item's title), built
by a playbooks/workshop_overlay.yml job (each download in its log, the items linked on the
host), and deleted (an overlay.yml remove job takes the directory away)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from domain_helpers import with_settings

from left4me_ui import jobs, overlays
from left4me_ui.core import Core
from left4me_ui.overlays.kinds import workshop
from left4me_ui.runner import load_inventory
from testhosts import host
from tests.ui import steam_standin

pytestmark = pytest.mark.testhost

PROJECT = Path(__file__).resolve().parents[3]
ITEMS = [f"100000000{n}" for n in range(1, 5)]  # the stand-in's --generate 4


@pytest.fixture(scope="module")
def webapi(booted_host: host.TestHost) -> Iterator[str]:
    """The stand-in on our end of the host's veth: 4 items, collection 3000000001 (items 1-2
    and collection 3000000002: items 3-4), 0.3 s per request."""
    with steam_standin.process("--bind", booted_host.gateway, "--port", "0", "--generate", "4",
                               "--latency", "0.3") as url:
        yield url


@pytest.fixture
def host_core(core: Core, booted_host: host.TestHost, demo_inventory: Path, webapi: str,
              tmp_path: Path) -> Core:
    """The demo world's converged host, its Web API the stand-in (a host variable, as an
    operator sets overlays_workshop_api_url)."""
    inventory = tmp_path / "inventory"
    (inventory / "host_vars").mkdir(parents=True)
    (inventory / "hosts.yml").write_text((demo_inventory / "hosts.yml").read_text())
    (inventory / "group_vars").symlink_to(PROJECT / "inventories/demo/group_vars")
    (inventory / "host_vars" / f"{booted_host.name}.yml").write_text(
        f"overlays_workshop_api_url: {webapi}\n")
    with_settings(core, inventory=inventory)
    core.inventory_loader = load_inventory
    return core


def _run(core: Core, actor, job_id: int) -> tuple[jobs.Job, str]:
    job = jobs.run_next(core)
    assert job.id == job_id
    log = "\n".join(e.text for e in jobs.events(core, actor, job_id))
    assert job.state == jobs.SUCCEEDED, f"{job.error}\n{log[-3000:]}"
    return job, log


def test_a_workshop_overlay_is_resolved_built_and_removed_on_the_host(host_core, booted_host,
                                                                     alice):
    name = booted_host.name
    overlays.create(host_core, alice, "alice-ws", kind="workshop")
    workshop.set_ids(host_core, alice, "alice-ws",
                     "https://steamcommunity.com/sharedfiles/filedetails/?id=1000000004",
                     "3000000001")

    found = workshop.resolve(host_core, alice, "alice-ws", name)
    assert [(i.publishedfileid, i.title, i.error) for i in found.items] == [
        (item, f"Stand-in add-on {item}", "") for item in ["1000000004", *ITEMS[:3]]]
    assert all(i.file_size > 0 and i.time_updated > 0 for i in found.items)
    assert found.collections == ("3000000001", "3000000002")

    _job, log = _run(host_core, alice, overlays.build(host_core, alice, "alice-ws", name))
    for item in ITEMS:  # each item's title in the closing list, downloaded or from the cache
        assert f"{item} Stand-in add-on {item} (" in log, log[-3000:]
    downloads = [line for line in log.splitlines()
                 if " downloaded " in line and "via http" in line]
    assert len(downloads) == sum(i.status == "would_download" for i in found.items), log[-3000:]
    addons = "/var/lib/left4me/overlays/alice-ws/left4dead2/addons"
    assert sorted(booted_host.nsenter("ls", addons).split()) == [f"{i}.vpk" for i in ITEMS]
    sizes = {i.publishedfileid: i.file_size for i in found.items}
    for item in ITEMS:  # each a link into the cache, to a file of the size Steam announced
        target = booted_host.nsenter("readlink", "-e", f"{addons}/{item}.vpk").strip()
        assert target == f"/var/lib/left4me/workshop_cache/{item}.vpk"
        assert int(booted_host.nsenter("stat", "-c", "%s", target)) == sizes[item]
    assert [(b.host, b.current) for b in overlays.builds(host_core, alice, "alice-ws")] == [
        (name, True)]

    overlays.delete(host_core, alice, "alice-ws")
    (remove,) = [j for j in jobs.history(host_core, alice) if j.kind == "overlay remove"]
    _run(host_core, alice, remove.id)
    assert "alice-ws" not in booted_host.nsenter("ls", "/var/lib/left4me/overlays").split()
