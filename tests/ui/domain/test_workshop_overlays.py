"""Workshop overlays: what people paste becomes Workshop ids (or is refused by line, nothing
stored), only the owner (or an admin) reads, changes, resolves or builds one, a build is a
playbooks/workshop_overlay.yml job, and that playbook and the resolve run for real over the
local connection against the stand-in Steam Web API (standins/webapi)."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from domain_helpers import finish_job, with_settings

from left4me_ui import blueprints, jobs, overlays, servers
from left4me_ui.authz import Forbidden, NotFound
from left4me_ui.core import Core
from left4me_ui.overlays import OverlayError
from left4me_ui.overlays.kinds import workshop
from left4me_ui.runner import load_inventory
from tests.ui import steam_standin


@pytest.fixture
def maps(core, alice) -> str:
    overlays.create(core, alice, "alice-maps", kind="workshop")
    return "alice-maps"


# --- what people paste -----------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("123456789", "123456789"),
    ("  123456789  ", "123456789"),
    ("https://steamcommunity.com/sharedfiles/filedetails/?id=123456789", "123456789"),
    ("https://steamcommunity.com/sharedfiles/filedetails/?id=123456789&searchtext=tank",
     "123456789"),
    ("http://steamcommunity.com/sharedfiles/filedetails?id=123456789#comments", "123456789"),
    ("https://steamcommunity.com/workshop/filedetails/?id=987654321", "987654321"),
    ("https://www.steamcommunity.com/sharedfiles/filedetails/?id=5", "5"),
    ("steamcommunity.com/sharedfiles/filedetails/?id=42", "42"),
    ("steam://url/CommunityFilePage/123456789", "123456789"),
])
def test_ids_and_links_give_the_workshop_id(text, expected):
    assert workshop.parse_ref(text) == expected


@pytest.mark.parametrize("text", [
    "0", "-5", "12ab", "1e9", "123456789012345678901",  # not a positive id of at most 20 digits
    "https://evil.example/sharedfiles/filedetails/?id=1",  # another site
    "https://steamcommunity.com.evil.example/sharedfiles/filedetails/?id=1",
    "https://steamcommunity.com/id/somebody",  # a profile, not an item
    "https://steamcommunity.com/sharedfiles/filedetails/?id=1&id=2",  # which one?
    "https://steamcommunity.com/sharedfiles/filedetails/?id=abc",
    "ftp://steamcommunity.com/sharedfiles/filedetails/?id=1",
    "file:///etc/passwd",
])
def test_anything_else_is_not_an_id(text):
    assert workshop.parse_ref(text) is None


def test_ids_are_stored_in_order_without_duplicates_and_bump_the_revision(core, alice, maps):
    before = overlays.get(core, alice, maps).revision
    stored = workshop.set_ids(
        core, alice, maps,
        "1000000002\n\nhttps://steamcommunity.com/sharedfiles/filedetails/?id=1000000001\n"
        "1000000002\n", "3000000001")
    assert stored == workshop.Definition(("1000000002", "1000000001"), ("3000000001",))
    assert workshop.definition(core, alice, maps) == stored
    assert overlays.get(core, alice, maps).revision == before + 1
    # The same list again is no change: no new revision, so nothing to rebuild or restart.
    workshop.set_ids(core, alice, maps, ["1000000002", "1000000001"], ["3000000001"])
    assert overlays.get(core, alice, maps).revision == before + 1


def test_a_bad_line_is_refused_by_number_and_nothing_is_stored(core, alice, maps):
    workshop.set_ids(core, alice, maps, "1000000001", "")
    revision = overlays.get(core, alice, maps).revision
    with pytest.raises(OverlayError) as refused:
        workshop.set_ids(core, alice, maps, "1000000002\nhttps://example.com/mod.vpk\n", "")
    assert str(refused.value).startswith(
        "Items, line 2: 'https://example.com/mod.vpk' is not a Workshop id or link; give the"
        " number (e.g. 123456789) or the item's page, e.g."
        " https://steamcommunity.com/sharedfiles/filedetails/?id=123456789")
    with pytest.raises(OverlayError, match="Collections, line 1: 'my collection'"):
        workshop.set_ids(core, alice, maps, "1000000002", "my collection")
    with pytest.raises(OverlayError, match="at most 1000"):
        workshop.set_ids(core, alice, maps, [str(n) for n in range(1, 1002)], "")
    assert workshop.definition(core, alice, maps) == workshop.Definition(("1000000001",), ())
    assert overlays.get(core, alice, maps).revision == revision


def test_only_the_owner_or_an_admin_reads_changes_resolves_or_builds_it(core, alice, bob,
                                                                        admin, maps):
    workshop.set_ids(core, alice, maps, "1000000001", "")
    for attempt in (lambda: workshop.definition(core, bob, maps),
                    lambda: workshop.set_ids(core, bob, maps, "1000000002", ""),
                    lambda: workshop.last_resolved(core, bob, maps),
                    lambda: workshop.resolve(core, bob, maps, "alpha"),
                    lambda: overlays.build(core, bob, maps, "alpha")):
        with pytest.raises(NotFound):
            attempt()
    assert workshop.definition(core, alice, maps).items == ("1000000001",)
    assert jobs.history(core, admin) == []
    # An admin may; the owner only on hosts the policy lets them use.
    workshop.set_ids(core, admin, maps, "1000000002", "")
    assert workshop.definition(core, alice, maps).items == ("1000000002",)
    with core.db.connect() as conn:
        from left4me_ui import authz
        authz.set_user_hosts_policy(conn, authz.current(conn, admin), ["beta"])
    with pytest.raises(Forbidden):
        overlays.build(core, alice, maps, "alpha")
    with pytest.raises(Forbidden):
        workshop.resolve(core, alice, maps, "alpha")


def test_files_and_workshop_actions_stay_with_their_kind(core, alice, maps):
    overlays.create(core, alice, "alice-cfg")
    with pytest.raises(OverlayError, match="is a files overlay, not a Workshop overlay"):
        workshop.set_ids(core, alice, "alice-cfg", "1", "")
    with pytest.raises(OverlayError, match="is a workshop overlay, not a files overlay"):
        overlays.write_text(core, alice, maps, "left4dead2/cfg/x.cfg", "x")


def test_a_build_is_a_workshop_playbook_job_with_the_ids(core, alice, maps):
    with pytest.raises(OverlayError, match="lists no item or collection"):
        overlays.build(core, alice, maps, "alpha")
    workshop.set_ids(core, alice, maps, "1000000001", "3000000001")
    job = jobs.get(core, alice, overlays.build(core, alice, maps, "alpha"))
    assert (job.kind, job.host, job.playbook) == ("overlay build", "alpha",
                                                  "workshop_overlay.yml")
    assert job.extravars == {"left4me_overlay_id": "alice-maps", "left4me_overlay_revision": 2,
                             "left4me_overlay_incarnation":
                                 overlays.get(core, alice, maps).incarnation,
                             "left4me_overlay_items": ["1000000001"],
                             "left4me_overlay_collections": ["3000000001"],
                             # the per-overlay cap: her disk share has room for all of it
                             "left4me_overlay_max_size": "10G"}


def test_a_server_stacking_it_builds_it_first(core, alice, admin, maps):
    workshop.set_ids(core, alice, maps, "1000000001", "")
    blueprint = blueprints.create(core, alice, "maps", [maps], blueprints.BlueprintSettings())
    _server, server_job = servers.create(core, alice, "alice1", "alpha", blueprint.id)
    queued = sorted((j.id, j.playbook) for j in jobs.history(core, admin) if not j.finished)
    assert queued == [(server_job - 1, "workshop_overlay.yml"), (server_job, "server.yml")]


# --- for real: the module on this machine, against the stand-in Web API ----------------------


@pytest.fixture
def webapi() -> Iterator[str]:
    """The stand-in Steam Web API: 4 items (1000000001-4), collection 3000000001 (items 1-2
    and collection 3000000002, items 3-4); 0.4 s per request, so downloads take a while."""
    with steam_standin.process("--port", "0", "--generate", "4", "--latency", "0.4") as url:
        yield url


@pytest.fixture
def local_core(core: Core, tmp_path: Path, webapi: str) -> Core:
    """host-a is this machine (local connection) with its left4me state dir in tmp_path and
    the stand-in as its Web API (overlays_workshop_api_url, as the demo hosts would set it)."""
    inventory = tmp_path / "local.yml"
    inventory.write_text(
        "l4d2_hosts:\n  hosts:\n    host-a:\n      ansible_connection: local\n"
        "      ansible_become: false\n"
        f"      ansible_python_interpreter: {sys.executable}\n"
        f"      game_host_state_dir: {tmp_path / 'host'}\n"
        "      game_host_user: root\n      game_host_group: root\n"
        f"      overlays_workshop_api_url: {webapi}\n")
    for directory in ("overlays", "workshop_cache"):  # as the game_host role leaves them
        (tmp_path / "host" / directory).mkdir(parents=True)
    with_settings(core, inventory=inventory)
    core.inventory_loader = load_inventory
    return core


def test_resolve_shows_each_item_through_the_host(local_core, alice, tmp_path):
    overlays.create(local_core, alice, "maps", kind="workshop")
    workshop.set_ids(local_core, alice, "maps", "1000000004\n3000000002", "3000000001")
    assert workshop.last_resolved(local_core, alice, "maps") is None
    found = workshop.resolve(local_core, alice, "maps", "host-a")
    assert [(i.publishedfileid, i.title, i.status, i.error) for i in found.items] == [
        ("1000000004", "Stand-in add-on 1000000004", "would_download", ""),
        ("3000000002", "Stand-in collection 3000000002", "error",
         "item 3000000002: is a collection, not an item; list it"
         " under collections"),
        ("1000000001", "Stand-in add-on 1000000001", "would_download", ""),
        ("1000000002", "Stand-in add-on 1000000002", "would_download", ""),
        ("1000000003", "Stand-in add-on 1000000003", "would_download", ""),
    ]
    assert all(i.file_size > 0 and i.time_updated > 1_500_000_000
               for i in found.items if not i.error)
    assert found.collections == ("3000000001", "3000000002")
    assert workshop.last_resolved(local_core, alice, "maps") == found
    assert not any((tmp_path / "host" / "workshop_cache").glob("*.vpk"))  # a read only
    # New ids: that answer is about another list.
    workshop.set_ids(local_core, alice, "maps", "1000000004", "")
    assert workshop.last_resolved(local_core, alice, "maps") is None


def test_the_build_shows_each_download_as_it_finishes_and_links_the_items(local_core, alice,
                                                                          tmp_path):
    overlays.create(local_core, alice, "maps", kind="workshop")
    workshop.set_ids(local_core, alice, "maps", "", "3000000001")
    job_id = overlays.build(local_core, alice, "maps", "host-a")
    seen: list[tuple[bool, str]] = []  # (job finished when read, text)
    runner = threading.Thread(target=jobs.run_next, args=(local_core,))
    runner.start()  # as a worker thread runs it; this one reads the log as a page does
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            lines = jobs.events(local_core, alice, job_id, after_seq=len(seen))
            job = jobs.get(local_core, alice, job_id)  # read after: were they there before?
            seen.extend((job.finished, e.text) for e in lines)
            if job.finished:
                break
            time.sleep(0.2)
    finally:
        runner.join(timeout=60)
    log = "\n".join(text for _ended, text in seen)
    assert job.state == jobs.SUCCEEDED, f"{job.error}\n{log[-3000:]}"
    addons = tmp_path / "host" / "overlays" / "maps" / "left4dead2" / "addons"
    assert sorted(p.name for p in addons.iterdir()) == [
        f"100000000{n}.vpk" for n in range(1, 5)]
    assert all(p.resolve().parent == tmp_path / "host" / "workshop_cache"
               for p in addons.iterdir())
    # One line per download, each in the log before the job ended (not a summary at the end).
    downloads = [(ended, text) for ended, text in seen if " downloaded " in text and "/4]" in text]
    assert len(downloads) == 4, log
    assert not any(ended for ended, _text in downloads), log
    assert "Stand-in add-on 1000000003 (" in log  # the closing list of items, titles named
    assert [(b.host, b.revision) for b in overlays.builds(local_core, alice, "maps")] == [
        ("host-a", 2)]


def test_the_host_refuses_items_past_what_the_owner_s_share_leaves_before_downloading(
        local_core, alice, tmp_path):
    overlays.create(local_core, alice, "maps", kind="workshop")
    workshop.set_ids(local_core, alice, "maps", "1000000001", "")
    with_settings(local_core, user_disk_max=1024)  # an admin lowered her share to 1 KiB
    job_id = overlays.build(local_core, alice, "maps", "host-a")
    assert jobs.get(local_core, alice, job_id).extravars["left4me_overlay_max_size"] == "1K"
    failed = jobs.run_next(local_core)
    assert (failed.id, failed.state) == (job_id, jobs.FAILED)
    assert "above the cap of 1.0 KiB for one Workshop overlay (max_size)" in failed.error
    assert not any((tmp_path / "host" / "workshop_cache").glob("*.vpk"))
    assert overlays.builds(local_core, alice, "maps") == []


def test_a_host_directory_of_another_workshop_overlay_of_the_same_id_is_never_built_into(
        local_core, alice, tmp_path):
    overlays.create(local_core, alice, "maps", kind="workshop")
    workshop.set_ids(local_core, alice, "maps", "1000000001", "")
    overlays_dir = tmp_path / "host" / "overlays"
    mark = overlays_dir / ".maps.incarnation"
    overlays.build(local_core, alice, "maps", "host-a")
    assert jobs.run_next(local_core).state == jobs.SUCCEEDED
    assert mark.read_text() == f"{overlays.get(local_core, alice, 'maps').incarnation}\n"
    # The directory now belongs to an overlay of the same id that another UI made (or this
    # UI before its database was lost).
    mark.write_text("0123456789abcdef\n")
    addons = overlays_dir / "maps" / "left4dead2" / "addons"
    theirs = sorted(p.name for p in addons.iterdir())
    workshop.set_ids(local_core, alice, "maps", "1000000001\n1000000002", "")
    overlays.build(local_core, alice, "maps", "host-a")
    refused = jobs.run_next(local_core)
    assert refused.state == jobs.FAILED
    assert "overlay maps on this host belongs to another overlay of the same id" in \
        refused.error and "Nothing was changed" in refused.error
    assert sorted(p.name for p in addons.iterdir()) == theirs == ["1000000001.vpk"]
    assert not (tmp_path / "host" / "workshop_cache" / "1000000002.vpk").exists()
    assert mark.read_text() == "0123456789abcdef\n"
    assert [(b.host, b.revision) for b in overlays.builds(local_core, alice, "maps")] == [
        ("host-a", 2)]  # the refused build recorded nothing


def test_the_playbook_refuses_bad_input_before_touching_the_host(local_core, alice, tmp_path):
    # A crafted job (the UI never queues one): refused on the controller, nothing changed.
    with local_core.db.connect() as conn:
        bad = jobs.enqueue(conn, local_core, alice, kind="overlay build", host="host-a",
                           target="bad", playbook="workshop_overlay.yml", extravars={
                               "left4me_overlay_id": "../etc", "left4me_overlay_revision": 9,
                               "left4me_overlay_items": ["1; rm -rf /"],
                               "left4me_overlay_collections": "3000000001",
                               "left4me_overlay_max_size": "10 GB"})
    failed = jobs.run_next(local_core)
    assert (failed.id, failed.state) == (bad, jobs.FAILED)
    assert "left4me_overlay_id must be 1 to 64 of a-z" in failed.error
    assert 'left4me_overlay_items[0]: "1; rm -rf /" is not a Workshop id' in failed.error
    assert "left4me_overlay_collections must be a list of Workshop ids" in failed.error
    assert 'left4me_overlay_max_size must be a size such as 6G' in failed.error
    assert "nothing was changed" in failed.error
    assert list((tmp_path / "host" / "overlays").iterdir()) == []
    assert list((tmp_path / "host" / "workshop_cache").iterdir()) == []


def test_a_workshop_build_expects_its_own_playbook_s_tasks_not_a_files_build_s(core, alice,
                                                                              maps):
    # Both are "overlay build" jobs; the progress bar must not take a files build's count.
    overlays.create(core, alice, "alice-cfg")
    overlays.write_text(core, alice, "alice-cfg", "motd.txt", "hi\n")
    finish_job(core, overlays.build(core, alice, "alice-cfg", "alpha"), done_tasks=5)
    workshop.set_ids(core, alice, maps, "1000000001", "")
    queued = jobs.get(core, alice, overlays.build(core, alice, maps, "alpha"))
    assert queued.expected_tasks == 11  # workshop_overlay.yml's tasks, counted
    assert jobs.get(core, alice, overlays.build(core, alice, "alice-cfg", "alpha")
                    ).expected_tasks == 5  # the last files build's
