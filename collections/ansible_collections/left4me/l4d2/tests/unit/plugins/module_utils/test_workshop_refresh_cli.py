# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The left4me-workshop-refresh command, installed as the role installs it, run for real."""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess
import sys
import urllib.request

import pytest

COLLECTION = pathlib.Path(__file__).resolve().parents[4]


@pytest.fixture
def host(tmp_path, start_webapi):
    """libexec/ with the command and its library, a config dir and a state dir."""
    libexec = tmp_path / "libexec"
    libexec.mkdir()
    for library in ("_common", "_layout"):
        shutil.copy(COLLECTION / "plugins" / "module_utils" / f"{library}.py",
                    libexec / f"left4me{library}.py")
    shutil.copy(COLLECTION / "plugins" / "module_utils" / "_workshop.py",
                libexec / "left4me_workshop.py")
    shutil.copy(COLLECTION / "plugins" / "module_utils" / "_steamcmd.py",
                libexec / "left4me_steamcmd.py")
    shutil.copy(COLLECTION / "roles" / "overlays" / "files" / "left4me-workshop-refresh.py",
                libexec / "left4me-workshop-refresh")
    for sub in ("etc/overlays", "state/overlays", "state/workshop_cache"):
        (tmp_path / sub).mkdir(parents=True)
    api = start_webapi("--generate", "4")
    return tmp_path, api.base_url


def record(base: pathlib.Path, url: str, overlay: str, **definition) -> None:
    definition = {"id": overlay, "api_url": url, **definition}
    (base / "etc" / "overlays" / f"{overlay}.workshop.json").write_text(json.dumps(definition))


def refresh(base: pathlib.Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-I", str(base / "libexec" / "left4me-workshop-refresh"),
         "--config-dir", str(base / "etc"), "--state-dir", str(base / "state")],
        capture_output=True, text=True, timeout=60, check=False)


def stats(url: str) -> dict:
    with urllib.request.urlopen(f"{url}/_standin/stats", timeout=10) as response:
        return json.load(response)["requests"]


def test_refreshes_every_recorded_overlay_then_downloads_nothing(host):
    base, url = host
    record(base, url, "maps", collections=["3000000001"])
    record(base, url, "one", items=["1000000001"])
    first = refresh(base)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "overlay maps: 4 downloaded" in first.stdout
    assert "overlay one: 1 cached" in first.stdout  # maps already fetched it: shared cache
    assert len(list((base / "state/overlays/maps/left4dead2/addons").iterdir())) == 4
    urllib.request.urlopen(urllib.request.Request(f"{url}/_standin/reset", data=b"{}"))
    second = refresh(base)
    assert second.returncode == 0 and "unchanged" in second.stdout
    assert "download" not in stats(url)


def test_one_failing_overlay_does_not_stop_the_others(host):
    base, url = host
    record(base, url, "bad", items=["1000000099"])
    record(base, url, "good", items=["1000000002"])
    run = refresh(base)
    assert run.returncode == 1
    assert "FAILED overlay bad" in run.stdout and "item 1000000099" in run.stdout
    assert (base / "state/overlays/good/left4dead2/addons/1000000002.vpk").exists()


def test_nothing_recorded_is_fine(host):
    base = host[0]
    run = refresh(base)
    assert run.returncode == 0 and "nothing to do" in run.stdout


@pytest.mark.parametrize("broken", ["{not json", "[1, 2]", '{"id": "other", "items": ["1"]}'])
def test_a_malformed_definition_fails_only_its_overlay_named(host, broken):
    base, url = host
    record(base, url, "aaa", items=["1000000001"])
    (base / "etc" / "overlays" / "broken.workshop.json").write_text(broken)
    record(base, url, "zzz", items=["1000000002"])
    run = refresh(base)
    assert run.returncode == 1
    assert "Traceback" not in run.stderr, run.stderr
    assert "FAILED overlay broken:" in run.stdout
    # the overlays sorted before and after the broken file were both refreshed
    for overlay, item in (("aaa", "1000000001"), ("zzz", "1000000002")):
        assert (base / f"state/overlays/{overlay}/left4dead2/addons/{item}.vpk").exists()
    assert run.stdout.rstrip().endswith("1 of 3 overlay(s) failed: broken")


def test_every_failed_overlay_is_named_at_the_end(host):
    base, url = host
    record(base, url, "bad", items=["1000000099"])
    (base / "etc" / "overlays" / "worse.workshop.json").write_text("")
    record(base, url, "good", items=["1000000002"])
    run = refresh(base)
    assert run.returncode == 1
    assert run.stdout.rstrip().endswith("2 of 3 overlay(s) failed: bad, worse")


def test_steampipe_item_is_refreshed_with_steamcmd(host, bootstrap_steamcmd):
    base, url = host
    steampipe = json.dumps({"publishedfileid": 1000000003, "hosting": "steampipe"}).encode()
    urllib.request.urlopen(urllib.request.Request(f"{url}/_standin/item", data=steampipe))
    steam = base / "state" / "steam"
    bootstrap_steamcmd(steam)
    (steam / "standin-control.json").write_text(json.dumps({"webapi": url}))
    record(base, url, "pipe", items=["1000000003"])
    run = refresh(base)  # --steamcmd-dir defaults to STATE/steam
    assert run.returncode == 0, run.stdout + run.stderr
    assert "item=1000000003 downloaded" in run.stdout and "via steamcmd" in run.stdout
    cached = base / "state" / "workshop_cache" / "1000000003.vpk"
    assert cached.read_bytes()[:4] == b"\x34\x12\xaa\x55"
    assert stats(url)["steamcmd"] == 1
