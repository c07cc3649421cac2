"""The fake steamcmd through its bootstrapped steamcmd.sh, as the role will call it."""

from __future__ import annotations

import json
import struct

import a2s
import pytest
import vdf
from standin_harness import (
    LOOPBACK,
    StandinProcess,
    free_port,
    run_standin,
    standin_env,
    wait_until_answering,
)

APP = "222860"


@pytest.fixture
def steamcmd_home(tmp_path):
    home = tmp_path / "steamcmd"
    result = run_standin(["python3", "-m", "standins.steamcmd", "bootstrap", str(home)], tmp_path)
    assert result.returncode == 0, result.stdout
    return home


def steamcmd(home, *args, env=None):
    # Only python3 and the bootstrapped dir: no PYTHONPATH from the repo leaks into the run.
    environment = {"PYTHONPATH": "", **(env or {})}
    return run_standin([str(home / "steamcmd.sh"), *args], home.parent, environment)


def control(home, **values):
    (home / "standin-control.json").write_text(json.dumps(values))


def full_install(home, target, *extra):
    return steamcmd(
        home, "+force_install_dir", str(target), "+login", "anonymous",
        "+@sSteamCmdForcePlatformType", "windows", "+app_update", APP, "validate",
        "+@sSteamCmdForcePlatformType", "linux", "+app_update", APP, *extra, "validate", "+quit",
    )  # fmt: skip


def mtimes(root):
    return {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def test_bootstrap_lays_out_steamcmd_home_idempotently(steamcmd_home, tmp_path):
    for name in (
        "steamcmd.sh",
        "linux32/steamcmd",
        "linux32/steamclient.so",
        "linux64/steamclient.so",
    ):
        assert (steamcmd_home / name).is_file()
    assert (steamcmd_home / "linux64/steamclient.so").read_bytes()[:5] == b"\x7fELF\x02"
    before = mtimes(steamcmd_home)
    again = run_standin(
        ["python3", "-m", "standins.steamcmd", "bootstrap", str(steamcmd_home)], tmp_path
    )
    assert again.returncode == 0 and mtimes(steamcmd_home) == before


def test_anonymous_linux_only_install_fails_with_invalid_platform(steamcmd_home, tmp_path):
    result = steamcmd(
        steamcmd_home, "+force_install_dir", str(tmp_path / "srv"), "+login", "anonymous",
        "+app_update", APP, "validate", "+quit",
    )  # fmt: skip
    assert result.returncode == 8
    assert "ERROR! Failed to install app '222860' (Invalid platform)" in result.stdout


def test_windows_pass_then_linux_pass_installs_a_runnable_server(steamcmd_home, tmp_path):
    target = tmp_path / "srv"
    result = full_install(steamcmd_home, target)
    assert result.returncode == 0, result.stdout
    assert result.stdout.count("Success! App '222860' fully installed.") == 2
    manifest = vdf.loads((target / "steamapps" / "appmanifest_222860.acf").read_text())
    assert manifest["AppState"]["appid"] == APP and manifest["AppState"]["buildid"].isdigit()
    for name in ("srcds_run", "srcds_linux", "left4dead2/steam.inf", "bin/standins/srcds/game.py"):
        assert (target / name).exists(), name
    assert not (target / "left4dead2/cfg/server.cfg").exists()  # like a fresh real install
    port = free_port()
    argv = [
        str(target / "srcds_run"),
        "-game",
        "left4dead2",
        "-port",
        str(port),
        "+map",
        "c1m1_hotel",
    ]
    process = StandinProcess(argv, tmp_path, standin_env({"PYTHONPATH": ""}))
    try:
        wait_until_answering((LOOPBACK, port), process)
        assert a2s.info((LOOPBACK, port), timeout=2).version.startswith("2.2.4.")
    finally:
        assert process.stop() == 0


def test_rerun_same_build_changes_nothing(steamcmd_home, tmp_path):
    target = tmp_path / "srv"
    assert full_install(steamcmd_home, target).returncode == 0
    before = mtimes(target)
    plain = steamcmd(
        steamcmd_home, "+force_install_dir", str(target), "+login", "anonymous",
        "+app_update", APP, "+quit",
    )  # fmt: skip
    assert "Success! App '222860' already up to date." in plain.stdout
    assert full_install(steamcmd_home, target).returncode == 0  # validate, same build
    assert mtimes(target) == before


def test_validate_repairs_damaged_files(steamcmd_home, tmp_path):
    target = tmp_path / "srv"
    full_install(steamcmd_home, target)
    damaged = target / "left4dead2" / "pak01_003.vpk"
    original = damaged.read_bytes()
    damaged.write_bytes(b"corrupt")
    assert full_install(steamcmd_home, target).returncode == 0
    assert damaged.read_bytes() == original


def test_new_build_updates_manifest_and_some_files(steamcmd_home, tmp_path):
    target = tmp_path / "srv"
    control(steamcmd_home, buildid=100)
    full_install(steamcmd_home, target)
    before = mtimes(target)
    control(steamcmd_home, buildid=101)
    result = steamcmd(
        steamcmd_home, "+force_install_dir", str(target), "+login", "anonymous",
        "+app_update", APP, "+quit",
    )  # fmt: skip
    assert result.returncode == 0 and "fully installed" in result.stdout
    manifest = vdf.loads((target / "steamapps" / "appmanifest_222860.acf").read_text())
    assert manifest["AppState"]["buildid"] == "101"
    assert "PatchVersion=2.2.4.101" in (target / "left4dead2" / "steam.inf").read_text()
    changed = {p for p, stamp in mtimes(target).items() if before.get(p) != stamp}
    paks = {p.name for p in changed if p.name.startswith("pak01_0")}
    assert 0 < len(paks) < 24  # a patch touches a few content files, not all


def test_large_install_is_sparse(steamcmd_home, tmp_path):
    target = tmp_path / "srv"
    control(steamcmd_home, files=3000, size="3G")
    assert full_install(steamcmd_home, target).returncode == 0
    files = [p for p in target.rglob("*") if p.is_file()]
    assert len(files) > 3000
    apparent = sum(p.stat().st_size for p in files)
    on_disk = sum(p.stat().st_blocks * 512 for p in files)
    assert apparent >= 3 * 1024**3 and on_disk < apparent / 50


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("disk_full", "Error! App '222860' state is 0x202 after update job."),
        ("timeout", "Error! App '222860' state is 0x6 after update job."),
    ],
)
def test_update_job_failures(steamcmd_home, tmp_path, fault, message):
    result = steamcmd(
        steamcmd_home, "+force_install_dir", str(tmp_path / "srv"), "+login", "anonymous",
        "+@sSteamCmdForcePlatformType", "windows", "+app_update", APP, "+quit",
        env={"STEAMCMD_SIM_FAULT": fault},
    )  # fmt: skip
    assert result.returncode == 8 and message in result.stdout
    assert not (tmp_path / "srv" / "steamapps" / "appmanifest_222860.acf").exists()


def test_no_subscription_for_other_apps_and_non_owners(steamcmd_home, tmp_path):
    other = steamcmd(steamcmd_home, "+login", "anonymous", "+app_update", "740", "+quit")
    assert other.returncode == 8
    assert "ERROR! Failed to install app '740' (No subscription)" in other.stdout
    args = ["+force_install_dir", str(tmp_path / "srv"), "+login", "bob", "pw", "+app_update", APP]
    stranger = steamcmd(steamcmd_home, *args, "+quit")
    assert stranger.returncode == 8 and "(No subscription)" in stranger.stdout
    owner = steamcmd(steamcmd_home, *args, "+quit", env={"STEAMCMD_SIM_OWNERS": "bob"})
    assert owner.returncode == 0 and "fully installed" in owner.stdout  # owners get linux


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("invalid_password", "FAILED (Invalid Password)"),
        ("two_factor", "FAILED (Two-factor code mismatch)"),
    ],
)
def test_login_failures(steamcmd_home, fault, message):
    control(steamcmd_home, fault=fault)
    result = steamcmd(steamcmd_home, "+login", "alice", "hunter2", "+app_update", APP, "+quit")
    assert result.returncode == 5 and message in result.stdout
    assert "app_update" not in result.stdout and "Success" not in result.stdout


def test_workshop_download_and_timeout(steamcmd_home, tmp_path):
    target = tmp_path / "srv"
    ok = steamcmd(
        steamcmd_home, "+force_install_dir", str(target), "+login", "anonymous",
        "+workshop_download_item", "550", "123456789", "+quit",
    )  # fmt: skip
    assert ok.returncode == 0 and "Success. Downloaded item 123456789" in ok.stdout
    item = target / "steamapps/workshop/content/550/123456789/123456789.vpk"
    assert struct.unpack("<II", item.read_bytes()[:8]) == (0x55AA1234, 1)
    state = vdf.loads((target / "steamapps/workshop/appworkshop_550.acf").read_text())
    assert "123456789" in state["AppWorkshop"]["WorkshopItemsInstalled"]
    control(steamcmd_home, fault="workshop_timeout")
    failed = steamcmd(
        steamcmd_home, "+force_install_dir", str(target), "+login", "anonymous",
        "+workshop_download_item", "550", "42", "+quit",
    )  # fmt: skip
    assert failed.returncode == 10 and "ERROR! Timeout downloading item 42" in failed.stdout
