"""What the overlays role promises on a host: Workshop overlay, refresh timer, files overlays.

testinfra's ansible backend costs seconds per command, so each test reads what it needs in
one command: `look()` runs a small python3 script on the host that reports lstat results,
contents and digests of many paths at once.
"""

import json
import os
import re
import subprocess

import pytest

STATE = "/var/lib/left4me"
CACHE = f"{STATE}/workshop_cache"
MAPS = f"{STATE}/overlays/maps"
ADDONS = f"{MAPS}/left4dead2/addons"
CONF = f"{STATE}/overlays/molecule-config"
API = "http://203.0.113.20:8880"  # prepare.yml: its own namespace, off the host's addresses
ITEMS = [str(1_000_000_000 + n) for n in range(1, 7)]  # one item + collection (3) + nested (3)

LOOK = r"""
import grp, hashlib, json, os, pwd, stat, sys
out = {}
for path in sys.argv[1:]:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        out[path] = None
        continue
    entry = {"user": pwd.getpwuid(st.st_uid).pw_name, "group": grp.getgrgid(st.st_gid).gr_name,
             "mode": stat.S_IMODE(st.st_mode), "size": st.st_size,
             "type": "link" if stat.S_ISLNK(st.st_mode) else
                     "dir" if stat.S_ISDIR(st.st_mode) else "file"}
    if entry["type"] == "link":
        entry["target"] = os.readlink(path)
    elif entry["type"] == "dir":
        entry["entries"] = sorted(os.listdir(path))
    else:
        data = open(path, "rb").read()
        entry["sha256"] = hashlib.sha256(data).hexdigest()
        if len(data) < 4096:
            entry["text"] = data.decode("utf-8", "replace")
    out[path] = entry
print(json.dumps(out))
"""


def look(host, *paths):
    result = host.run("python3 -c %s " + " ".join(["%s"] * len(paths)), LOOK, *paths)
    assert result.rc == 0, result.stderr
    return json.loads(result.stdout)


def standin(host, method, path, payload=None):
    """Talk to the stand-in Web API from the host, as root (its python3, no curl needed)."""
    script = (
        "import json,sys,urllib.request as u;"
        "d=sys.argv[3].encode() if sys.argv[3] else None;"
        "r=u.Request(sys.argv[1]+sys.argv[2],data=d,method=sys.argv[4]);"
        "print(u.urlopen(r,timeout=10).read().decode())"
    )
    body = json.dumps(payload) if payload is not None else ""
    result = host.run("python3 -c %s %s %s %s %s", script, API, path, body, method)
    assert result.rc == 0, result.stderr
    return json.loads(result.stdout)


def test_items_are_cached_once_and_linked_owned_by_the_runtime_user(host):
    sizes = {str(i["publishedfileid"]): i["file_size"]
             for i in standin(host, "GET", "/_standin/catalogue")["items"]}
    paths = [MAPS, f"{MAPS}/left4dead2", ADDONS, CACHE]
    paths += [f"{CACHE}/{item}.vpk" for item in ITEMS] + [f"{ADDONS}/{item}.vpk" for item in ITEMS]
    seen = look(host, *paths)
    for item in ITEMS:
        cached, link = seen[f"{CACHE}/{item}.vpk"], seen[f"{ADDONS}/{item}.vpk"]
        assert cached and cached["type"] == "file", item
        assert (cached["user"], cached["group"], cached["mode"]) == ("left4me", "left4me", 0o644)
        assert cached["size"] == sizes[item]
        assert link and link["type"] == "link" and link["target"] == f"{CACHE}/{item}.vpk"
        assert link["user"] == "left4me"
    assert seen[ADDONS]["entries"] == sorted(f"{item}.vpk" for item in ITEMS)
    for path in (MAPS, f"{MAPS}/left4dead2", ADDONS):
        assert (seen[path]["user"], seen[path]["mode"]) == ("left4me", 0o755), path
    assert not [n for n in seen[CACHE]["entries"] if n.endswith(".part")]


def test_definition_is_recorded_for_the_refresh(host):
    recorded = "/etc/left4me/overlays/maps.workshop.json"
    seen = look(host, recorded, "/etc/left4me/overlays/demo-config.workshop.json")
    assert (seen[recorded]["user"], seen[recorded]["group"], seen[recorded]["mode"]) == (
        "root", "left4me", 0o640)
    definition = json.loads(seen[recorded]["text"])
    assert definition["items"] == ["1000000001"] and definition["collections"] == ["3000000001"]
    assert seen["/etc/left4me/overlays/demo-config.workshop.json"] is None  # files kind


def test_refresh_timer_is_enabled_and_scheduled(host):
    shown = host.run("systemctl show -p UnitFileState -p ActiveState -p Persistent"
                     " -p NextElapseUSecRealtime left4me-workshop-refresh.timer").stdout
    props = dict(line.split("=", 1) for line in shown.splitlines() if "=" in line)
    assert props["UnitFileState"] == "enabled" and props["ActiveState"] == "active"
    assert props["Persistent"] == "yes"
    assert props["NextElapseUSecRealtime"].strip(), "the timer has no next elapse"


def run_refresh(host):
    standin(host, "POST", "/_standin/reset", {})
    run = host.run("systemctl start --wait left4me-workshop-refresh.service"
                   " && systemctl show -P Result left4me-workshop-refresh.service")
    assert run.rc == 0, host.run("journalctl -u left4me-workshop-refresh -n 30").stdout
    assert run.stdout.strip() == "success"
    return standin(host, "GET", "/_standin/stats")["requests"]


def test_refresh_of_unchanged_items_downloads_nothing(host):
    stats = run_refresh(host)
    # maps: 6 items in one details request, the collection and its nested one: one request
    # each; pipe: one details request, no steamcmd run.
    assert stats == {"GetPublishedFileDetails": 2, "GetCollectionDetails": 2}


def test_refresh_downloads_an_updated_item_as_the_runtime_user(host):
    updated = f"{CACHE}/{ITEMS[2]}.vpk"
    before = look(host, updated)[updated]["sha256"]
    standin(host, "POST", "/_standin/update", {"publishedfileid": int(ITEMS[2])})
    assert run_refresh(host).get("download") == 1
    seen = look(host, updated, f"{CACHE}/fetch.log")
    assert seen[updated]["sha256"] != before
    assert (seen[updated]["user"], seen[updated]["mode"]) == ("left4me", 0o644)  # the service's
    assert f"item={ITEMS[2]} downloaded" in host.run(f"tail -n 5 {CACHE}/fetch.log").stdout


PIPE = f"{STATE}/overlays/pipe/left4dead2/addons"
PIPE_ITEMS = ["1000000007", "1000000008"]  # no file_url; file_url serving the preview image
STAGING = f"{CACHE}/.steamcmd"
VPK_SIGNATURE = "3412aa55"


def test_steampipe_items_came_through_steamcmd_as_the_runtime_user(host):
    workshop_state = f"{STAGING}/steamapps/workshop/appworkshop_550.acf"
    content = f"{STAGING}/steamapps/workshop/content/550"
    paths = [f"{CACHE}/{i}.vpk" for i in PIPE_ITEMS] + [f"{PIPE}/{i}.vpk" for i in PIPE_ITEMS]
    seen = look(host, STAGING, workshop_state, content, *paths)
    for item in PIPE_ITEMS:
        cached = seen[f"{CACHE}/{item}.vpk"]
        assert (cached["user"], cached["mode"]) == ("left4me", 0o644), item
        assert seen[f"{PIPE}/{item}.vpk"]["target"] == f"{CACHE}/{item}.vpk"
        head = host.run(f"head -c 4 {CACHE}/{item}.vpk | od -An -tx1 | tr -d ' \n'").stdout
        assert head == VPK_SIGNATURE, item
    # steamcmd wrote its state as left4me (run as the runtime user, not root); its copies of
    # the items are gone once the cache has them.
    assert seen[workshop_state]["user"] == "left4me"
    assert seen[content]["entries"] == []
    index = json.loads(host.file(f"{CACHE}/index.json").content_string)["items"]
    assert {index[i]["source"] for i in PIPE_ITEMS} == {"steamcmd"}


def test_refresh_fetches_an_updated_steampipe_item_with_steamcmd(host):
    updated = f"{CACHE}/{PIPE_ITEMS[0]}.vpk"
    before = look(host, updated)[updated]["sha256"]
    standin(host, "POST", "/_standin/update", {"publishedfileid": int(PIPE_ITEMS[0])})
    stats = run_refresh(host)
    assert stats.get("steamcmd") == 1 and "download" not in stats
    seen = look(host, updated)[updated]
    assert seen["sha256"] != before and seen["user"] == "left4me"
    log = host.run(f"tail -n 20 {CACHE}/fetch.log").stdout
    assert f"item={PIPE_ITEMS[0]} downloaded" in log and "via steamcmd" in log


def test_refresh_service_is_configured_confined(host):
    # Configuration only; that it runs as the runtime user is shown by the refresh test above
    # (the file it rewrote is left4me's).
    props = host.run(
        "systemctl show -p User -p ProtectSystem -p NoNewPrivileges -p CapabilityBoundingSet"
        " -p PrivateUsers left4me-workshop-refresh.service").stdout
    assert "User=left4me" in props and "PrivateUsers=yes" in props
    assert "ProtectSystem=strict" in props and "NoNewPrivileges=yes" in props
    assert re.search(r"^CapabilityBoundingSet=$", props, re.MULTILINE)
    units = "/usr/local/lib/systemd/system/left4me-workshop-refresh"
    verified = host.run(f"systemd-analyze verify {units}.service {units}.timer")
    assert verified.rc == 0 and not verified.stderr.strip(), verified.stderr


FILES = {
    # path: (content, mode)
    f"{CONF}/left4dead2/cfg/server.cfg": ('sv_tags "left4me,molecule"\nexec left4me-pack\n', 0o640),
    f"{CONF}/left4dead2/cfg/left4me-pack.cfg": (
        "// Rendered on the controller for mol-ovl.\n"
        'sv_consistency 0\nsm_cvar mp_gamemode "coop"\n',
        0o644),
    f"{CONF}/left4dead2/motd.txt": ("molecule motd\n", 0o644),
}


def test_files_overlay_contents_owner_mode_and_manifest(host):
    manifest = f"{CONF}/.left4me-files.json"
    seen = look(host, manifest, *FILES)
    for path, (content, mode) in FILES.items():
        assert seen[path]["type"] == "file", path
        assert seen[path]["text"] == content, path
        assert (seen[path]["user"], seen[path]["group"], seen[path]["mode"]) == (
            "root", "left4me", mode), path
    listed = json.loads(seen[manifest]["text"])["files"]
    assert listed == sorted(p.removeprefix(CONF + "/") for p in FILES)


def converge_overlays(extra_vars=None, playbook="overlays-only.yml"):
    """Converge only the overlays role (what the re-converge is about), as site.yml would."""
    scenario = os.environ["MOLECULE_SCENARIO_DIRECTORY"]
    command = ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"],
               f"{scenario}/{playbook}"]
    if extra_vars:
        command += ["-e", json.dumps(extra_vars)]
    run = subprocess.run(command, cwd=os.environ["MOLECULE_PROJECT_DIRECTORY"],
                         capture_output=True, text=True, check=False,
                         env={**os.environ, "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1"})
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run.stdout


@pytest.fixture
def foreign_cfg(host):
    path = f"{CONF}/left4dead2/cfg/operator.cfg"
    host.run(f"echo keep > {path}")
    yield path
    host.run(f"rm -f {path}")


def test_dropped_file_and_overlay_are_let_go_foreign_file_kept(host, foreign_cfg):
    without_pack_and_motd = {
        "overlays_list": [
            {"id": "demo-config", "kind": "files",
             "files": [{"dest": "left4dead2/motd.txt",
                        "content": "Welcome to a left4me demo server.\n"}]},
            {"id": "molecule-config", "kind": "files",
             "files": [{"dest": "left4dead2/cfg/server.cfg",
                        "content": 'sv_tags "left4me,molecule"\nexec left4me-pack\n',
                        "mode": "0640"}]},
        ]  # and the Workshop overlay "maps" left out: no longer refreshed, directory kept
    }
    motd, pack = f"{CONF}/left4dead2/motd.txt", f"{CONF}/left4dead2/cfg/left4me-pack.cfg"
    server_cfg = f"{CONF}/left4dead2/cfg/server.cfg"
    definition = "/etc/left4me/overlays/maps.workshop.json"
    try:
        converge_overlays(without_pack_and_motd)
        seen = look(host, motd, pack, server_cfg, foreign_cfg, definition, ADDONS)
        assert seen[motd] is None and seen[pack] is None
        assert seen[server_cfg]["type"] == "file"
        assert seen[foreign_cfg]["text"] == "keep\n"
        assert seen[definition] is None, "a dropped Workshop overlay is no longer refreshed"
        assert len(seen[ADDONS]["entries"]) == len(ITEMS), "its directory stays (may be in use)"
    finally:
        converge_overlays()
    seen = look(host, motd, definition)
    assert seen[motd]["text"] == "molecule motd\n" and seen[definition] is not None


def test_role_applied_by_two_plays_of_one_run_converges_unchanged(host):
    # The second play must see the files of its own run only: a fact carried over from the
    # first play used to list every file twice and fail files_overlay ("listed twice").
    output = converge_overlays(playbook="overlays-twice.yml")
    recap = re.search(r"^mol-ovl\s*:.*$", output, re.MULTILINE)
    assert recap and re.search(r"\bfailed=0\b", recap.group(0)), output[-3000:]
    assert re.search(r"\bchanged=0\b", recap.group(0)), output[-3000:]
    seen = look(host, *FILES)
    for path, (content, _mode) in FILES.items():
        assert seen[path]["text"] == content, path
