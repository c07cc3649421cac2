# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Tests for module_utils/_workshop.py against the fake Steam Web API (real HTTP on loopback)."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import sys
import urllib.request

import pytest

try:
    from ansible_collections.left4me.l4d2.plugins.module_utils import _steamcmd as steamcmd_utils
    from ansible_collections.left4me.l4d2.plugins.module_utils import _workshop as workshop
except ImportError:  # plain pytest from the repo root: make the collection importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[7]))
    from ansible_collections.left4me.l4d2.plugins.module_utils import _steamcmd as steamcmd_utils
    from ansible_collections.left4me.l4d2.plugins.module_utils import _workshop as workshop


GEN = 1_000_000_000  # generated items are GEN+1 ... GEN+N
OUTER, INNER = "3000000001", "3000000002"


def ids(*numbers: int) -> list[str]:
    return [str(GEN + n) for n in numbers]


class Admin:
    """The stand-in's admin endpoint: faults, catalogue edits, counters."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def post(self, action: str, **payload: object) -> dict:
        request = urllib.request.Request(
            f"{self.base_url}/_standin/{action}", data=json.dumps(payload).encode(),
            method="POST", headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)

    def stats(self) -> dict[str, int]:
        with urllib.request.urlopen(f"{self.base_url}/_standin/stats", timeout=10) as response:
            return json.load(response)["requests"]


@pytest.fixture
def steam(start_webapi):
    server = start_webapi("--generate", "150")
    return Admin(server.base_url)


@pytest.fixture
def state(tmp_path: pathlib.Path) -> pathlib.Path:
    for sub in ("overlays", "workshop_cache"):
        (tmp_path / "state" / sub).mkdir(parents=True)
    return tmp_path / "state"


class TruncatingApi(workshop.SteamApi):
    """Arms the stand-in's truncation once item details are in, so only downloads are cut."""

    def __init__(self, steam: Admin, count: int) -> None:
        super().__init__(steam.base_url, retry_delay=0.01)
        self.steam, self.count = steam, count

    def published_file_details(self, ids):
        answer = super().published_file_details(ids)
        self.steam.post("truncate", count=self.count)
        return answer


def sync(steam: Admin, state: pathlib.Path, overlay="maps", items=(), collections=(), api=None,
         **kw):
    api = api or workshop.SteamApi(steam.base_url, retry_delay=0.01)
    return workshop.sync_overlay(overlay, items, collections, api=api, state_dir=str(state),
                                 retry_delay=0.01, **kw)


def addons(state: pathlib.Path, overlay="maps") -> pathlib.Path:
    return state / "overlays" / overlay / "left4dead2" / "addons"


def cache_files(state: pathlib.Path) -> list[str]:
    return sorted(p.name for p in (state / "workshop_cache").iterdir())


# --- pure helpers ---------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["", "Maps", "-maps", "a/b", "..", "x" * 65, "a b", None])
def test_overlay_id_is_validated(bad):
    with pytest.raises(workshop.WorkshopError, match="invalid overlay id"):
        workshop.overlay_paths(bad)


@pytest.mark.parametrize("bad", ["0", "-1", "12a", "1.5", "", "../1"])
def test_item_ids_are_validated(bad):
    with pytest.raises(workshop.WorkshopError, match="not a Workshop id"):
        workshop.validate_item_ids([bad], "items")


def test_item_ids_are_deduplicated_in_order():
    assert workshop.validate_item_ids([3, "1", " 3", 2], "items") == ["3", "1", "2"]


def test_chunks_of_at_most_100():
    assert [len(c) for c in workshop.chunks([str(n) for n in range(250)])] == [100, 100, 50]


def test_api_url_must_be_http():
    with pytest.raises(workshop.WorkshopError, match="http"):
        workshop.SteamApi("file:///etc/passwd")


# --- against the stand-in -------------------------------------------------------------


def test_first_build_downloads_links_and_indexes(steam, state):
    result = sync(steam, state, items=ids(1, 2, 3))
    assert result.changed and not result.failed
    assert [i.status for i in result.items] == ["downloaded"] * 3
    links = sorted(p.name for p in addons(state).iterdir())
    assert links == [f"{i}.vpk" for i in ids(1, 2, 3)]
    for name in links:
        target = addons(state) / name
        assert target.is_symlink() and target.resolve().parent == state / "workshop_cache"
        assert target.read_bytes()[:4] == bytes.fromhex("3412aa55")  # VPK signature
    assert result.bytes_fetched == sum(i.file_size for i in result.items)
    assert all(i.seconds >= 0 for i in result.items)
    index = json.loads((state / "workshop_cache" / "index.json").read_text())
    assert sorted(index["items"]) == ids(1, 2, 3)
    log = (state / "workshop_cache" / "fetch.log").read_text()
    assert log.count("downloaded") == 3 and "[3/3]" in log


def test_150_items_take_two_detail_requests(steam, state):
    result = sync(steam, state, items=ids(*range(1, 151)), workers=8)
    assert not result.failed
    assert steam.stats()["GetPublishedFileDetails"] == 2
    assert steam.stats()["download"] == 150
    assert len(list(addons(state).iterdir())) == 150


def test_refresh_of_100_cached_items_is_one_call_and_no_download(steam, state):
    wanted = ids(*range(1, 101))
    assert not sync(steam, state, items=wanted, workers=8).failed
    steam.post("reset")
    again = sync(steam, state, items=wanted)
    assert not again.changed
    assert {i.status for i in again.items} == {"cached"}
    assert steam.stats() == {"GetPublishedFileDetails": 1}
    assert again.bytes_fetched == 0


def test_nested_collections_are_expanded_once(steam, state):
    # OUTER holds items 1..75 and INNER (76..150); make INNER contain OUTER: a cycle.
    steam.post("collection", publishedfileid=INNER, children=[*ids(*range(76, 151)), OUTER])
    result = sync(steam, state, collections=[OUTER], items=ids(1))
    assert not result.failed
    assert sorted(result.collections) == [OUTER, INNER]
    assert len(result.items) == 150
    assert steam.stats()["GetCollectionDetails"] == 2  # one per nesting level, cycle ended


def test_updated_item_is_downloaded_again(steam, state):
    sync(steam, state, items=ids(1, 2))
    before = (state / "workshop_cache" / f"{GEN + 1}.vpk").read_bytes()
    steam.post("update", publishedfileid=GEN + 1)
    steam.post("reset")
    result = sync(steam, state, items=ids(1, 2))
    assert result.changed
    assert [i.status for i in result.items] == ["downloaded", "cached"]
    assert steam.stats()["download"] == 1
    assert (state / "workshop_cache" / f"{GEN + 1}.vpk").read_bytes() != before


def test_cut_off_download_is_retried(steam, state):
    result = sync(steam, state, items=ids(1), api=TruncatingApi(steam, 1))
    assert not result.failed and result.items[0].status == "downloaded"


def test_cut_off_download_leaves_no_partial_file_and_no_links(steam, state):
    api = TruncatingApi(steam, 10)
    result = sync(steam, state, items=ids(1, 2), workers=1, attempts=2, api=api)
    assert result.failed
    assert "download cut off" in result.msg or "connection closed" in result.msg
    assert not addons(state).exists(), "no overlay an instance could mount"
    assert not [n for n in cache_files(state) if n.endswith((".part", ".vpk"))]


def test_failed_refresh_keeps_the_previous_overlay(steam, state):
    sync(steam, state, items=ids(1))
    steam.post("update", publishedfileid=GEN + 1)
    steam.post("fail", count=50, status=503)
    with pytest.raises(workshop.WorkshopError, match="503"):
        sync(steam, state, items=ids(1, 2), attempts=2)
    steam.post("fail", count=0)
    result = sync(steam, state, items=ids(1, 2), attempts=2, api=TruncatingApi(steam, 10))
    assert result.failed
    assert [p.name for p in addons(state).iterdir()] == [f"{GEN + 1}.vpk"]
    assert (addons(state) / f"{GEN + 1}.vpk").stat().st_size > 0  # old copy still served


def test_items_above_max_size_are_refused_at_resolve_time_and_nothing_changes(steam, state):
    assert not sync(steam, state, items=ids(1)).failed
    before = cache_files(state), sorted(p.name for p in addons(state).iterdir())
    steam.post("reset")
    wanted = ids(1, 2, 3, 4)
    predicted = sync(steam, state, items=wanted, check_mode=True)
    sizes = {i.publishedfileid: i.file_size for i in predicted.items}
    total = sum(sizes.values())
    cap = total - 1
    for check_mode in (True, False):  # the UI's Resolve, then a build
        result = sync(steam, state, items=wanted, check_mode=check_mode, max_total_bytes=cap)
        assert result.failed and not result.changed
        size = workshop._common.format_size
        assert result.msg.startswith(
            f"overlay maps: its 4 item(s) hold {size(total)} in all, above the"
            f" cap of {size(cap)} for one Workshop overlay (max_size); nothing"
            " was downloaded or removed. The largest: ")
    assert steam.stats().get("download", 0) == 0
    assert (cache_files(state), sorted(p.name for p in addons(state).iterdir())) == before
    assert not sync(steam, state, items=wanted, max_total_bytes=total).failed


def test_oversize_message_names_the_largest_items():
    items = [workshop.ItemResult(str(n), file_size=n << 20) for n in (5, 700, 3, 2048)]
    assert workshop.oversize_message("maps", items, 3 << 30) is None
    assert workshop.oversize_message("maps", items, 1 << 30) == (
        "overlay maps: its 4 item(s) hold 2.7 GiB in all, above the cap of 1.0 GiB for one"
        " Workshop overlay (max_size); nothing was downloaded or removed. The largest: 2048"
        " (2.0 GiB), 700 (700.0 MiB), 5 (5.0 MiB). Remove items, or split them over several"
        " overlays")


def test_5xx_is_retried_with_a_bound(steam, state):
    steam.post("fail", count=2, status=502)
    result = sync(steam, state, items=ids(1), attempts=3)
    assert not result.failed
    steam.post("reset")
    steam.post("fail", count=5, status=503)
    with pytest.raises(workshop.WorkshopError, match="after 3 attempts: HTTP 503"):
        sync(steam, state, items=ids(1), attempts=3)
    assert steam.stats()["GetPublishedFileDetails"] == 3


def bad_items(steam: Admin) -> dict[str, str]:
    steam.post("item", publishedfileid=GEN + 2, removed=True)
    steam.post("item", publishedfileid=GEN + 3, banned=True, ban_reason="copyright")
    steam.post("item", publishedfileid=GEN + 4, consumer_app_id=440)
    return {str(GEN + 2): "result 9", str(GEN + 3): "banned by Steam (copyright)",
            str(GEN + 4): "made for app 440"}


def test_bad_items_fail_the_overlay_by_default(steam, state):
    expected = bad_items(steam)
    result = sync(steam, state, items=ids(1, 2, 3, 4))
    assert result.failed and not result.changed
    for item_id, text in expected.items():
        assert f"item {item_id}" in result.msg and text in result.msg
    assert not (state / "overlays" / "maps").exists()
    assert steam.stats().get("download", 0) == 0


def test_bad_items_are_skipped_when_allowed(steam, state):
    expected = bad_items(steam)
    result = sync(steam, state, items=ids(1, 2, 3, 4), fail_on_item_error=False)
    assert not result.failed and result.changed
    statuses = {i.publishedfileid: i.status for i in result.items}
    assert statuses == {str(GEN + 1): "downloaded", **dict.fromkeys(expected, "error")}
    assert len(result.errors) == 3
    assert [p.name for p in addons(state).iterdir()] == [f"{GEN + 1}.vpk"]


def test_unknown_collection_is_an_item_error(steam, state):
    result = sync(steam, state, collections=["3000000099"], items=ids(1))
    assert result.failed and "collection 3000000099 was not found" in result.msg


def linked(state: pathlib.Path) -> list[str]:
    return sorted(p.name for p in addons(state).iterdir())


@pytest.mark.parametrize("answer", [9, 1])
def test_a_plain_item_listed_as_a_collection_is_used_as_an_item(steam, state, answer):
    # Steam answers GetCollectionDetails on a plain item with result 9 on some days, with
    # result 1 and no children on others; the second once emptied the overlay silently.
    sync(steam, state, items=ids(5))
    steam.post("plain_item", result=answer)
    result = sync(steam, state, collections=ids(7))
    assert not result.failed and result.changed
    assert linked(state) == [f"{GEN + 7}.vpk"]
    assert [item.publishedfileid for item in result.items] == ids(7)
    assert any(f"{GEN + 7}: listed under collections, but Steam says" in warning
               and "list it under items" in warning for warning in result.warnings)


@pytest.fixture
def shrinking_collection(steam, state):
    """A collection whose items are linked, then emptied by its author (result 1, no items)."""
    steam.post("collection", publishedfileid=3000000050, children=[GEN + 1, GEN + 2])
    assert not sync(steam, state, collections=["3000000050"]).failed
    steam.post("collection", publishedfileid=3000000050, children=[])
    return [f"{GEN + 1}.vpk", f"{GEN + 2}.vpk"]


@pytest.mark.parametrize("fail_on_item_error", [True, False])
def test_a_collection_that_lists_nothing_never_empties_the_overlay(steam, state,
                                                                   shrinking_collection,
                                                                   fail_on_item_error):
    result = sync(steam, state, collections=["3000000050"],
                  fail_on_item_error=fail_on_item_error)
    error = "collection 3000000050 lists no items (Steam answered result 1 without children)"
    if fail_on_item_error:
        assert result.failed and error in result.msg
    else:
        assert not result.failed and not result.changed and result.links.remove == []
        assert any(error in warning for warning in result.warnings)
        assert any("2 link(s) kept" in warning for warning in result.warnings)
    assert linked(state) == shrinking_collection


def test_no_usable_id_at_all_keeps_the_links_when_errors_are_allowed(steam, state):
    sync(steam, state, items=ids(1, 2))
    bad_items(steam)
    result = sync(steam, state, items=ids(2, 3), fail_on_item_error=False)
    assert not result.failed and not result.changed
    assert linked(state) == [f"{GEN + 1}.vpk", f"{GEN + 2}.vpk"]
    assert any("no id in Steam's answer is usable" in warning for warning in result.warnings)


def test_a_collection_that_lists_nothing_keeps_its_links_beside_usable_items(
        steam, state, shrinking_collection):
    result = sync(steam, state, items=ids(3), collections=["3000000050"],
                  fail_on_item_error=False)
    assert not result.failed and result.changed
    assert result.links.remove == []
    assert linked(state) == sorted([*shrinking_collection, f"{GEN + 3}.vpk"])
    assert any("2 link(s) kept" in warning and "3000000050" in warning
               for warning in result.warnings)


MALFORMED = {"empty": "an empty body", "empty_response": "a response with no",
             "empty_object": "JSON without a response object"}


@pytest.mark.parametrize("body", sorted(MALFORMED))
def test_a_200_that_is_not_the_answer_is_retried(steam, state, body):
    steam.post("malformed", count=2, body=body)
    result = sync(steam, state, items=ids(1), attempts=3)
    assert not result.failed and linked(state) == [f"{GEN + 1}.vpk"]
    assert steam.stats()["GetPublishedFileDetails"] == 3


@pytest.mark.parametrize("fail_on_item_error", [True, False])
@pytest.mark.parametrize("body", sorted(MALFORMED))
def test_a_200_that_stays_no_answer_names_its_causes_and_changes_nothing(
        steam, state, body, fail_on_item_error):
    sync(steam, state, items=ids(1, 2))
    steam.post("reset")
    steam.post("malformed", count=10, body=body)
    api = workshop.SteamApi(steam.base_url, api_key="0" * 32, retry_delay=0.01)
    with pytest.raises(workshop.WorkshopError) as raised:
        sync(steam, state, items=ids(1, 2), api=api, fail_on_item_error=fail_on_item_error)
    message = str(raised.value)
    assert MALFORMED[body] in message and "3 time(s)" in message
    assert "Steam under load" in message and "rejected api_key" in message
    assert "Nothing was changed" in message and "api_url" not in message
    assert linked(state) == [f"{GEN + 1}.vpk", f"{GEN + 2}.vpk"]
    assert steam.stats() == {"GetPublishedFileDetails": 3}


def test_no_retry_starts_after_the_deadline(steam, state):
    steam.post("malformed", count=10, body="empty")
    api = workshop.SteamApi(steam.base_url, retry_delay=0.01, deadline=0)
    with pytest.raises(workshop.WorkshopError, match="1 time"):
        sync(steam, state, items=ids(1), api=api)
    assert steam.stats()["GetPublishedFileDetails"] == 1


def test_stale_links_go_foreign_files_stay(steam, state):
    sync(steam, state, items=ids(1, 2, 3))
    foreign_file = addons(state) / "my_map.vpk"
    foreign_file.write_bytes(b"mine")
    foreign_link = addons(state) / "elsewhere.vpk"
    foreign_link.symlink_to("/dev/null")
    result = sync(steam, state, items=ids(1, 3))
    assert result.changed and result.links.remove == [f"{GEN + 2}.vpk"]
    names = sorted(p.name for p in addons(state).iterdir())
    assert names == sorted([f"{GEN + 1}.vpk", f"{GEN + 3}.vpk", "my_map.vpk", "elsewhere.vpk"])
    assert (state / "workshop_cache" / f"{GEN + 2}.vpk").exists(), "cache is shared"


def test_foreign_file_in_an_items_place_is_refused(steam, state):
    addons(state).mkdir(parents=True)
    (addons(state) / f"{GEN + 1}.vpk").write_bytes(b"mine")
    with pytest.raises(workshop.WorkshopError, match="is not a link into"):
        sync(steam, state, items=ids(1))
    assert steam.stats().get("download", 0) == 0


def test_symlinked_overlay_dir_is_refused(steam, state, tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (state / "overlays" / "maps").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(workshop.WorkshopError, match="must be a real directory"):
        sync(steam, state, items=ids(1))


def test_rerun_is_unchanged_and_check_mode_changes_nothing(steam, state):
    sync(steam, state, items=ids(1, 2))
    assert not sync(steam, state, items=ids(1, 2)).changed
    snapshot = sorted(os.listdir(addons(state))), cache_files(state)
    steam.post("reset")
    predicted = sync(steam, state, items=ids(2, 3), check_mode=True)
    assert predicted.changed
    assert [i.status for i in predicted.items] == ["cached", "would_download"]
    new_link = f"{GEN + 3}.vpk"
    assert predicted.links.create == {new_link: str(state / "workshop_cache" / new_link)}
    assert predicted.links.remove == [f"{GEN + 1}.vpk"]
    assert (sorted(os.listdir(addons(state))), cache_files(state)) == snapshot
    assert "download" not in steam.stats()


def test_damaged_index_only_costs_downloads(steam, state):
    sync(steam, state, items=ids(1))
    (state / "workshop_cache" / "index.json").write_text("{not json")
    result = sync(steam, state, items=ids(1))
    assert not result.failed and result.items[0].status == "downloaded"


# --- items on SteamPipe: VPK signature first, then steamcmd ----------------------------


@pytest.fixture
def steamcmd_home(steam, bootstrap_steamcmd, tmp_path: pathlib.Path) -> pathlib.Path:
    """A bootstrapped fake steamcmd that serves items from the fake Web API's catalogue."""
    home = tmp_path / "steam"
    bootstrap_steamcmd(home)
    (home / "standin-control.json").write_text(json.dumps({"webapi": steam.base_url}))
    return home


def steamcmd_for(home: pathlib.Path, calls: list | None = None) -> workshop.Steamcmd:
    """The refresh service's way to run it: _steamcmd.run_streaming as this user."""

    def run(argv, cwd, timeout):
        if calls is not None:
            calls.append(argv)
        env = {k: v for k, v in os.environ.items() if not k.startswith("STEAMCMD_SIM")}
        result = steamcmd_utils.run_streaming(argv, env=env, cwd=cwd, timeout=timeout)
        return result.rc, result.output

    return workshop.Steamcmd(str(home), run, timeout=60)


def vpk_signature(path: pathlib.Path) -> bytes:
    return path.read_bytes()[:4]


def test_steampipe_and_preview_url_items_come_through_steamcmd(steam, state, steamcmd_home):
    steam.post("item", publishedfileid=GEN + 1, hosting="steampipe")
    steam.post("item", publishedfileid=GEN + 2, hosting="preview")
    calls: list = []
    result = sync(steam, state, items=ids(1, 2, 3), steamcmd=steamcmd_for(steamcmd_home, calls))
    assert not result.failed, result.msg
    sources = {i.publishedfileid: (i.status, i.source) for i in result.items}
    assert sources == {str(GEN + 1): ("downloaded", "steamcmd"),
                       str(GEN + 2): ("downloaded", "steamcmd"),
                       str(GEN + 3): ("downloaded", "http")}
    assert "JPEG image" in result.items[1].note
    assert len(calls) == 1, "one batched steamcmd run for both items"
    assert calls[0].count("+workshop_download_item") == 2
    for n in (1, 2, 3):
        cached = state / "workshop_cache" / f"{GEN + n}.vpk"
        assert vpk_signature(cached) == workshop.VPK_MAGIC
        assert os.readlink(addons(state) / f"{GEN + n}.vpk") == str(cached)
    # steamcmd's own copies are gone; only the cache holds the files
    content = state / "workshop_cache" / ".steamcmd" / "steamapps" / "workshop" / "content"
    assert not list((content / "550").iterdir())
    index = json.loads((state / "workshop_cache" / "index.json").read_text())["items"]
    assert index[str(GEN + 1)]["source"] == "steamcmd"
    # a refresh of the same versions runs no steamcmd and downloads nothing
    calls.clear()
    again = sync(steam, state, items=ids(1, 2, 3), steamcmd=steamcmd_for(steamcmd_home, calls))
    assert not again.changed and calls == []
    assert {i.status for i in again.items} == {"cached"}


def test_preview_image_is_never_cached_and_named_without_steamcmd(steam, state):
    steam.post("item", publishedfileid=GEN + 1, hosting="preview")
    result = sync(steam, state, items=ids(1, 2))
    assert result.failed
    assert "file_url served a JPEG image, not a VPK" in result.msg
    assert "steamcmd" in result.msg and "cut off" not in result.msg
    assert cache_files(state) == [".lock", f"{GEN + 2}.vpk", "fetch.log", "index.json"]
    assert not (state / "overlays" / "maps").exists(), "links unchanged after a failure"
    assert steam.stats()["preview"] == 1, "a wrong body is not retried"


def test_steampipe_item_without_steamcmd_is_an_item_error_before_any_download(steam, state,
                                                                              tmp_path):
    steam.post("item", publishedfileid=GEN + 1, hosting="steampipe")
    missing = workshop.Steamcmd(str(tmp_path / "nowhere"), lambda *a: (0, ""))
    result = sync(steam, state, items=ids(1, 2), steamcmd=missing)
    assert result.failed and not result.changed
    assert f"item {GEN + 1}: no file_url: hosted on SteamPipe" in result.msg
    assert f"{tmp_path}/nowhere/steamcmd.sh is missing" in result.msg
    assert steam.stats().get("download", 0) == 0
    skipped = sync(steam, state, items=ids(1, 2), steamcmd=missing, fail_on_item_error=False)
    assert [p.name for p in addons(state).iterdir()] == [f"{GEN + 2}.vpk"]
    assert len(skipped.errors) == 1


def test_steamcmd_failure_is_per_item_and_leaves_the_overlay(steam, state, steamcmd_home):
    first = sync(steam, state, items=ids(2))
    assert not first.failed
    steam.post("item", publishedfileid=GEN + 1, hosting="steampipe")
    control = steamcmd_home / "standin-control.json"
    control.write_text(json.dumps({"webapi": steam.base_url, "fault": "workshop_timeout"}))
    result = sync(steam, state, items=ids(1, 2), steamcmd=steamcmd_for(steamcmd_home))
    assert result.failed
    assert f"item {GEN + 1}: needs steamcmd" in result.msg and "timeout" in result.msg
    assert not (state / "workshop_cache" / f"{GEN + 1}.vpk").exists()
    assert [p.name for p in addons(state).iterdir()] == [f"{GEN + 2}.vpk"]
    # the item is removed from the Workshop between the details and steamcmd's download
    control.write_text(json.dumps({"webapi": steam.base_url}))

    class RemovedMeanwhile(workshop.SteamApi):
        def published_file_details(self, ids):
            answer = super().published_file_details(ids)
            steam.post("item", publishedfileid=GEN + 1, removed=True)
            return answer

    gone = sync(steam, state, items=ids(1, 2), steamcmd=steamcmd_for(steamcmd_home),
                api=RemovedMeanwhile(steam.base_url, retry_delay=0.01))
    assert gone.failed and "download failed (File Not Found)" in gone.msg


def test_check_mode_predicts_steamcmd_items_without_running_it(steam, state, steamcmd_home):
    steam.post("item", publishedfileid=GEN + 1, hosting="steampipe")
    calls: list = []
    predicted = sync(steam, state, items=ids(1), steamcmd=steamcmd_for(steamcmd_home, calls),
                     check_mode=True)
    assert predicted.changed and calls == []
    assert [(i.status, i.source) for i in predicted.items] == [("would_download", "steamcmd")]
    assert cache_files(state) == []


STEAMCMD_OUTPUT = """\
Connecting anonymously to Steam Public...OK
Downloading item 111 ...\r
Success. Downloaded item 111 to "/x/steamapps/workshop/content/550/111" (4096 bytes)
Downloading item 222 ...
ERROR! Download item 222 failed (Access Denied).
ERROR! Timeout downloading item 333
"""


def test_steamcmd_output_gives_each_items_verdict():
    assert workshop.parse_steamcmd_workshop(STEAMCMD_OUTPUT) == {
        "111": (True, "/x/steamapps/workshop/content/550/111"),
        "222": (False, "steamcmd: download failed (Access Denied)"),
        "333": (False, "steamcmd: timeout downloading the item"),
    }


def find_vpk(directory: pathlib.Path) -> str:
    fd = workshop.open_dir_below(str(directory), [])
    try:
        return workshop.find_item_vpk(fd, str(directory))
    finally:
        os.close(fd)


def test_the_items_vpk_is_found_by_signature_not_name(tmp_path):
    item = tmp_path / "item"
    item.mkdir()
    (item / "5000_legacy.bin").write_bytes(workshop.VPK_MAGIC + b"\x01\x00\x00\x00rest")
    (item / "preview.jpg").write_bytes(b"\xff\xd8\xff\xe0JFIF")
    assert find_vpk(item) == "5000_legacy.bin"
    (item / "5000_legacy.bin").write_bytes(b"PK\x03\x04zipped")
    with pytest.raises(workshop.WorkshopError, match=r"no VPK .*5000_legacy.bin \(a zip archive\)"):
        find_vpk(item)


def test_links_planted_in_steamcmds_tree_are_not_followed(steam, state, tmp_path):
    # The staging tree belongs to the runtime user; the module reading it runs as root.
    secret = tmp_path / "root-only.vpk"
    secret.write_bytes(workshop.VPK_MAGIC + b"secret")
    staging = workshop.make_staging(str(state / "workshop_cache"), None)
    item_dir = pathlib.Path(workshop.steamcmd_item_dir(staging, str(GEN + 1)))
    item_dir.mkdir(parents=True)
    (item_dir / "x.vpk").symlink_to(secret)
    with pytest.raises(workshop.WorkshopError, match="no VPK"):
        find_vpk(item_dir)
    elsewhere = tmp_path / "elsewhere" / str(GEN + 1)
    elsewhere.mkdir(parents=True)
    (elsewhere / "keep.vpk").write_bytes(workshop.VPK_MAGIC)
    content = item_dir.parent
    shutil.rmtree(content)
    content.symlink_to(elsewhere.parent)
    parts = workshop.steamcmd_item_parts(str(GEN + 1))
    with pytest.raises(OSError):
        workshop.open_dir_below(staging, parts)
    workshop.remove_below(staging, parts)
    assert (elsewhere / "keep.vpk").exists(), "removal never follows a link out of staging"


@pytest.mark.parametrize("errors, message", [
    (["123: not found"], "overlay maps: 1 Workshop id(s) unusable, overlay left as it was (set"
     " fail_on_item_error=false to build it without them): 123: not found"),
    (["1: banned", "2: not a l4d2 item"], "overlay maps: 2 Workshop id(s) unusable, overlay"
     " left as it was (set fail_on_item_error=false to build it without them): 1: banned;"
     " 2: not a l4d2 item"),
])
def test_unusable_ids_say_how_to_build_without_them(errors, message):
    assert workshop.unusable_message("maps", errors) == message


@pytest.mark.parametrize("errors, message", [
    (["123: HTTP 503"], "overlay maps: 1 download(s) failed, overlay links left as they were:"
     " 123: HTTP 503"),
    (["1: timed out", "2: size mismatch"], "overlay maps: 2 download(s) failed, overlay links"
     " left as they were: 1: timed out; 2: size mismatch"),
])
def test_failed_downloads_say_the_links_were_left_alone(errors, message):
    assert workshop.failed_downloads_message("maps", errors) == message
