"""The fake Steam Web API, queried with curl like any HTTP client would."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest
import yaml
from standin_harness import REPO_ROOT as REPO
from standin_harness import run_standin

from standins.vpk import VPK_HEADER

ITEM = 1_000_000_001
DETAILS = "/ISteamRemoteStorage/GetPublishedFileDetails/v1/"
COLLECTIONS = "/ISteamRemoteStorage/GetCollectionDetails/v1/"


def curl(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["curl", "--silent", "--max-time", "10", *args],
        capture_output=True,
        check=False,
        timeout=20,
    )


def curl_status(*args: str) -> tuple[int, bytes]:
    result = curl("--write-out", "\n%{http_code}", *args)
    body, _, status = result.stdout.rpartition(b"\n")
    return int(status), body


def post_form(api, path: str, fields: dict[str, object]) -> dict:
    form = [arg for key, value in fields.items() for arg in ("--data-urlencode", f"{key}={value}")]
    result = curl("--fail", *form, api.base_url + path)
    assert result.returncode == 0, result
    return json.loads(result.stdout)["response"]


def details(api, *ids: int) -> list[dict]:
    fields = {"itemcount": len(ids)} | {f"publishedfileids[{i}]": v for i, v in enumerate(ids)}
    return post_form(api, DETAILS, fields)["publishedfiledetails"]


def admin(api, action: str, payload: dict | None = None) -> dict:
    body = json.dumps(payload or {})
    result = curl("--fail", "-H", "Content-Type: application/json", "--data", body,
                  f"{api.base_url}/_standin/{action}")  # fmt: skip
    assert result.returncode == 0, result
    return json.loads(result.stdout)


def stats(api) -> dict:
    return json.loads(curl("--fail", f"{api.base_url}/_standin/stats").stdout)["requests"]


@pytest.fixture
def api(start_webapi):
    return start_webapi("--generate", "6")


def test_published_file_details_shape(api):
    response = post_form(api, DETAILS, {"itemcount": 1, "publishedfileids[0]": ITEM})
    assert (response["result"], response["resultcount"]) == (1, 1)
    item = response["publishedfiledetails"][0]
    for key in (
        "creator", "creator_app_id", "filename", "hcontent_file", "preview_url", "title",
        "description", "time_created", "time_updated", "visibility", "banned", "ban_reason",
        "subscriptions", "favorited", "lifetime_subscriptions", "lifetime_favorited", "views",
    ):  # fmt: skip
        assert key in item, key
    assert (item["publishedfileid"], item["result"], item["consumer_app_id"]) == (str(ITEM), 1, 550)
    assert item["file_url"].startswith(api.base_url) and item["tags"][0]["tag"]


def test_download_matches_details_and_supports_ranges(api):
    item = details(api, ITEM)[0]
    whole = curl("--fail", item["file_url"]).stdout
    assert len(whole) == item["file_size"] and whole.startswith(VPK_HEADER)
    ranged = curl("--include", "--range", "100-199", item["file_url"]).stdout
    head, _, body = ranged.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 206")
    assert f"Content-Range: bytes 100-199/{item['file_size']}".encode() in head
    assert body == whole[100:200]
    status, _ = curl_status("--range", f"{item['file_size'] + 5}-", item["file_url"])
    assert status == 416


def test_nested_collection(api):
    response = post_form(
        api, COLLECTIONS, {"collectioncount": 1, "publishedfileids[0]": 3_000_000_001}
    )
    outer = response["collectiondetails"][0]
    assert outer["result"] == 1
    filetypes = {child["publishedfileid"]: child["filetype"] for child in outer["children"]}
    assert filetypes["3000000002"] == 2 and filetypes[str(ITEM)] == 0
    assert [c["sortorder"] for c in outer["children"]] == list(range(1, len(outer["children"]) + 1))
    inner = post_form(
        api, COLLECTIONS, {"collectioncount": 1, "publishedfileids[0]": 3_000_000_002}
    )
    assert {c["filetype"] for c in inner["collectiondetails"][0]["children"]} == {0}


def test_removed_banned_and_foreign_items(api):
    admin(api, "item", {"publishedfileid": ITEM + 1, "removed": True})
    admin(api, "item", {"publishedfileid": ITEM + 2, "banned": True, "ban_reason": "stolen"})
    admin(api, "item", {"publishedfileid": ITEM + 3, "consumer_app_id": 730})
    removed, banned, foreign, unknown = details(api, ITEM + 1, ITEM + 2, ITEM + 3, 42)
    assert removed == {"publishedfileid": str(ITEM + 1), "result": 9}
    assert (banned["banned"], banned["ban_reason"]) == (1, "stolen")
    assert foreign["consumer_app_id"] == 730
    assert unknown["result"] == 9


def test_item_update_bumps_time_and_content(api):
    before = details(api, ITEM)[0]
    assert admin(api, "update", {"publishedfileid": ITEM})["ok"]
    after = details(api, ITEM)[0]
    assert after["time_updated"] > before["time_updated"]
    assert after["file_url"] != before["file_url"]
    assert after["hcontent_file"] != before["hcontent_file"]
    assert curl("--fail", after["file_url"]).stdout != curl("--fail", before["file_url"]).stdout


def test_server_errors_for_next_requests(api):
    admin(api, "fail", {"count": 2, "status": 502})
    fields = "itemcount=1&publishedfileids[0]=1000000001"
    assert curl_status("--data", fields, api.base_url + DETAILS)[0] == 502
    assert curl_status("--data", fields, api.base_url + DETAILS)[0] == 502
    assert curl_status("--data", fields, api.base_url + DETAILS)[0] == 200


def test_truncated_body(api):
    url = details(api, ITEM)[0]["file_url"]
    admin(api, "truncate", {"count": 1})
    truncated = curl(url)
    assert truncated.returncode == 18  # curl: "transfer closed with outstanding read data"
    assert curl("--fail", url).returncode == 0


def collection(api, collection_id: int) -> dict:
    fields = {"collectioncount": 1, "publishedfileids[0]": collection_id}
    return post_form(api, COLLECTIONS, fields)["collectiondetails"][0]


def test_a_plain_item_asked_for_as_a_collection_answers_either_way(api):
    # Real Steam: result 9 (a GMod tool tells collections by result != 9, find_string id
    # 39245182494) on some days, result 1 without children (a client's fixture of the real
    # answer, id 70586501443) on others.
    assert collection(api, ITEM) == {"publishedfileid": str(ITEM), "result": 9}
    assert admin(api, "plain_item", {"result": 1}) == {"ok": True}
    assert collection(api, ITEM) == {"publishedfileid": str(ITEM), "result": 1}
    assert collection(api, 3_000_000_099)["result"] == 9, "an unknown id stays 9"
    assert collection(api, 3_000_000_002)["children"], "a real collection keeps its children"
    assert curl_status("-H", "Content-Type: application/json", "--data", '{"result": 2}',
                       f"{api.base_url}/_standin/plain_item")[0] == 400


@pytest.mark.parametrize(("body", "sent"), [("empty", b""),
                                            ("empty_response", b'{"response":{}}'),
                                            ("empty_object", b"{}")])
def test_a_200_that_is_not_the_answer(api, body, sent):
    # Steam has answered HTTP 200 with an empty body (syntaxerrors/Steam#124, #133) and JSON
    # without its lists (syntaxerrors/Steam#82); clients blame load or the key
    # (Tidwell/nodeSteam#33: "your API key is most likely wrong", it was "Too Many Requests").
    admin(api, "malformed", {"count": 2, "body": body})
    fields = "itemcount=1&publishedfileids[0]=1000000001"
    for path in (DETAILS, COLLECTIONS):
        form = fields if path == DETAILS else "collectioncount=1&publishedfileids[0]=3000000001"
        assert curl_status("--data", form, api.base_url + path) == (200, sent)
    assert curl_status("--data", fields, api.base_url + DETAILS)[1].startswith(b'{"response"')
    assert stats(api) == {"GetPublishedFileDetails": 2, "GetCollectionDetails": 1}
    assert curl_status("-H", "Content-Type: application/json", "--data", '{"body": "x"}',
                       f"{api.base_url}/_standin/malformed")[0] == 400


def test_stats_count_each_endpoint(api):
    details(api, ITEM, ITEM + 1)
    assert stats(api) == {"GetPublishedFileDetails": 1}  # exactly one API call, no downloads
    curl("--fail", details(api, ITEM)[0]["file_url"])
    assert stats(api) == {"GetPublishedFileDetails": 2, "download": 1}
    admin(api, "reset")
    assert stats(api) == {}


API_KEY = "0123456789ABCDEF0123456789ABCDEF"  # the shape of a key Valve issues


def test_player_summaries(api):
    ids = "76561197960287930,76561197960287931"
    result = curl("--fail", "--get", "--data", f"key={API_KEY}", "--data", f"steamids={ids}",
                  api.base_url + "/ISteamUser/GetPlayerSummaries/v2/")  # fmt: skip
    players = json.loads(result.stdout)["response"]["players"]
    assert [p["steamid"] for p in players] == ids.split(",")
    for key in ("personaname", "avatar", "avatarmedium", "avatarfull", "profileurl"):
        assert players[0][key]
    status, _ = curl_status(api.base_url + f"/ISteamUser/GetPlayerSummaries/v2/?steamids={ids}")
    assert status == 403


def test_player_summaries_refuse_a_malformed_key(api):
    url = api.base_url + "/ISteamUser/GetPlayerSummaries/v2/?key=TESTKEY&steamids=76561197960287930"
    status, body = curl_status(url)
    assert status == 403 and b"Forbidden" in body


def test_avatars_are_jpegs_a_browser_can_draw_in_steams_sizes(api):
    from PIL import Image  # Streamlit's dependency; decodes as a browser would

    url = api.base_url + "/ISteamUser/GetPlayerSummaries/v2/"
    result = curl("--fail", "--get", "--data", f"key={API_KEY}", "--data",
                  "steamids=76561197960287930", url)  # fmt: skip
    [player] = json.loads(result.stdout)["response"]["players"]
    for field, size in (("avatar", 32), ("avatarmedium", 64), ("avatarfull", 184)):
        fetched = curl("--fail", "--write-out", "%{content_type}", "--output", "-",
                       player[field])  # fmt: skip
        body = fetched.stdout.removesuffix(b"image/jpeg")
        assert body != fetched.stdout, fetched.stdout[-40:]  # served as image/jpeg
        image = Image.open(io.BytesIO(body))
        image.load()
        assert (image.format, image.size) == ("JPEG", (size, size))
    assert stats(api)["avatar"] == 3


def test_items_file_and_latency(start_webapi, tmp_path):
    catalogue = {
        "items": [{"publishedfileid": 555, "title": "Custom", "file_size": 70000}],
        "collections": [{"publishedfileid": 777, "children": [555]}],
        "players": {"76561197960287930": "Ellis"},
    }
    path = tmp_path / "items.json"
    path.write_text(json.dumps(catalogue))
    api = start_webapi("--items-file", str(path), "--latency", "0.3")
    result = curl("--fail", "--write-out", "%{time_total}", "--data",
                  "itemcount=1&publishedfileids[0]=555", api.base_url + DETAILS)  # fmt: skip
    body, elapsed = result.stdout[:-8], float(result.stdout[-8:])
    item = json.loads(body)["response"]["publishedfiledetails"][0]
    assert (item["title"], item["file_size"]) == ("Custom", 70000)
    assert elapsed >= 0.3


def test_stops_cleanly_on_sigterm(api):
    assert api.process.stop() == 0
    assert "stopped" in api.process.output


# --- items on SteamPipe, and the fake steamcmd serving the same catalogue --------------

PIPE, PREVIEW = 1_000_000_002, 1_000_000_003


def test_steampipe_item_has_no_file_url_and_preview_item_serves_a_jpeg(api):
    admin(api, "item", {"publishedfileid": PIPE, "hosting": "steampipe"})
    admin(api, "item", {"publishedfileid": PREVIEW, "hosting": "preview"})
    pipe, preview, legacy = details(api, PIPE, PREVIEW, ITEM)
    assert pipe["result"] == 1 and pipe["file_url"] == "" and pipe["filename"] == ""
    assert pipe["file_size"] > 0 and pipe["hcontent_file"].isdigit()
    assert preview["file_url"] == preview["preview_url"]
    status, body = curl_status(preview["file_url"])
    assert status == 200 and body[:3] == b"\xff\xd8\xff" and b"JFIF" in body[:16]
    assert len(body) != preview["file_size"]
    assert legacy["file_url"].endswith(f"/ugc/{ITEM}/1/{ITEM}.vpk")
    assert stats(api)["preview"] == 1


def test_unknown_hosting_is_refused(api):
    status, _ = curl_status("-H", "Content-Type: application/json", "--data",
                            json.dumps({"publishedfileid": PIPE, "hosting": "ftp"}),
                            f"{api.base_url}/_standin/item")
    assert status >= 400


def steamcmd(tmp_path, api, *commands: str, fault: str = ""):
    env = {"STEAMCMD_SIM_HOME": str(tmp_path), "STEAMCMD_SIM_WEBAPI": api.base_url}
    if fault:
        env["STEAMCMD_SIM_FAULT"] = fault
    return run_standin(["python3", "-m", "standins.steamcmd", "+force_install_dir",
                        str(tmp_path / "dl"), "+login", "anonymous", *commands, "+quit"],
                       cwd=REPO, env=env)


def test_steamcmd_downloads_the_catalogues_current_revision(tmp_path, api):
    admin(api, "item", {"publishedfileid": PIPE, "hosting": "steampipe"})
    admin(api, "update", {"publishedfileid": PIPE})
    run = steamcmd(tmp_path, api, "+workshop_download_item", "550", str(PIPE),
                   "+workshop_download_item", "550", str(ITEM))
    assert run.returncode == 0, run.stdout
    content = tmp_path / "dl" / "steamapps" / "workshop" / "content" / "550"
    assert f'Success. Downloaded item {PIPE} to "{content / str(PIPE)}"' in run.stdout
    pipe_files = list((content / str(PIPE)).iterdir())
    assert [p.name for p in pipe_files] == [f"{PIPE}.vpk"]
    # the same bytes the Web API serves for revision 2
    status, served = curl_status(f"{api.base_url}/ugc/{PIPE}/2/{PIPE}.vpk")
    assert status == 200 and pipe_files[0].read_bytes() == served
    legacy_files = [p.name for p in (content / str(ITEM)).iterdir()]
    assert len(legacy_files) == 1 and legacy_files[0].endswith("_legacy.bin")
    assert (content / str(ITEM) / legacy_files[0]).read_bytes()[:len(VPK_HEADER)] == VPK_HEADER
    assert (tmp_path / "dl" / "steamapps" / "workshop" / "appworkshop_550.acf").is_file()
    assert stats(api)["steamcmd"] == 2


@pytest.mark.parametrize(("change", "reason"), [
    ({"removed": True}, "File Not Found"),
    ({"banned": True}, "Access Denied"),
])
def test_steamcmd_download_failures(tmp_path, api, change, reason):
    admin(api, "item", {"publishedfileid": PIPE, **change})
    run = steamcmd(tmp_path, api, "+workshop_download_item", "550", str(PIPE))
    assert f"ERROR! Download item {PIPE} failed ({reason})." in run.stdout
    assert run.returncode != 0


def test_steamcmd_without_its_web_api(tmp_path, api):
    api.process.stop()
    run = steamcmd(tmp_path, api, "+workshop_download_item", "550", str(PIPE))
    assert f"ERROR! Download item {PIPE} failed (No Connection)." in run.stdout


def test_the_overlays_scenario_copies_every_module_of_the_stand_in():
    """molecule/overlays runs the stand-in on its host from the files its prepare copies: a
    module added here and missing there fails only on that host (ImportError, no port)."""
    import yaml

    prepare = yaml.safe_load((REPO / "molecule/overlays/prepare.yml").read_text())
    copied = {item for task in prepare[0]["tasks"] if "ansible.builtin.copy" in task
              for item in task.get("loop", [])}
    package = {str(p.relative_to(REPO)) for p in (REPO / "standins/webapi").glob("*.py")}
    assert package - copied == set()


# --- ISteamApps/UpToDateCheck: is a server's PatchVersion the current one? ---------------

UP_TO_DATE = "/ISteamApps/UpToDateCheck/v1/"


def up_to_date(api, query: str) -> tuple[int, dict | bytes]:
    status, body = curl_status(f"{api.base_url}{UP_TO_DATE}?{query}")
    return status, (json.loads(body)["response"] if status == 200 else body)


def test_up_to_date_check_answers_as_steam_for_the_offered_build(api):
    # The default offered build is the fake steamcmd's default, 16140412: PatchVersion 2.2.4.412.
    assert up_to_date(api, "appid=550&version=2.2.4.412") == (
        200, {"success": True, "up_to_date": True, "version_is_listable": True})
    admin(api, "app", {"appid": 550, "buildid": 16140413})
    assert up_to_date(api, "appid=550&version=2.2.4.412") == (200, {
        "success": True, "up_to_date": False, "version_is_listable": False,
        "required_version": 224413, "message": "Your server is out of date, please upgrade"})
    assert up_to_date(api, "appid=550&version=2.2.4.413")[1]["up_to_date"] is True


def test_up_to_date_check_refuses_an_unknown_app_in_the_body_and_a_missing_field_by_status(api):
    assert up_to_date(api, "appid=1&version=1") == (
        200, {"success": False, "error": "Couldn't get app info for the app specified."})
    assert up_to_date(api, "appid=550")[0] == 400
    assert up_to_date(api, "version=2.2.4.412")[0] == 400
    status, body = curl_status("--data", '{"appid": 550}', f"{api.base_url}/_standin/app")
    assert status == 400 and b"give appid" in body


def test_up_to_date_check_faults(api):
    admin(api, "wrong_out_of_date", {"count": 1})
    wrong = up_to_date(api, "appid=550&version=2.2.4.412")[1]
    assert wrong["up_to_date"] is False and wrong["required_version"] == 224412
    assert up_to_date(api, "appid=550&version=2.2.4.412")[1]["up_to_date"] is True
    admin(api, "fail", {"count": 1, "status": 503})
    assert up_to_date(api, "appid=550&version=2.2.4.412")[0] == 503
    admin(api, "malformed", {"count": 1, "body": "empty_response"})
    assert up_to_date(api, "appid=550&version=2.2.4.412") == (200, {})
    assert stats(api)["UpToDateCheck"] == 4


def test_offered_build_on_the_command_line(start_webapi):
    api = start_webapi("--offered-buildid", "16140499")
    assert up_to_date(api, "appid=550&version=2.2.4.412")[1]["required_version"] == 224499


def test_the_files_molecule_copies_to_a_host_are_all_the_web_api_imports(tmp_path):
    # molecule/overlays runs the stand-in on its test host from a copy of a listed set of
    # files; an import outside that list (the Web API took steamcmd's build id once) broke
    # the scenario after minutes, as a timeout waiting for the port.
    project = REPO
    prepare = yaml.safe_load((project / "molecule/overlays/prepare.yml").read_text())
    copies = [task for play in prepare for task in play.get("tasks", [])
              if str(task.get("name", "")).startswith("Copy the fake Web API")]
    assert len(copies) == 1, "molecule/overlays/prepare.yml: the copy task was renamed"
    for relative in copies[0]["loop"]:
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_bytes((project / relative).read_bytes())
    run = subprocess.run([sys.executable, "-I", "-c",
                          f"import sys; sys.path.insert(0, {str(tmp_path)!r});"
                          " import standins.webapi.server"],
                         capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
