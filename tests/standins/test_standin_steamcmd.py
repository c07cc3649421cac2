"""The fake steamcmd through its bootstrapped steamcmd.sh, as the role will call it."""

from __future__ import annotations

import io
import json
import os
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

import a2s
import pytest
import vdf
from elftools.elf.elffile import ELFFile
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
        ("timeout", "Error! App '222860' state is 0x602 after update job."),
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


def linux_only(home, target, env=None):
    return steamcmd(
        home, "+force_install_dir", str(target), "+login", "anonymous",
        "+app_update", APP, "validate", "+quit", env=env,
    )  # fmt: skip


@pytest.mark.parametrize("code", ["0x402", "0x202", "0x212", "0x606", "0x626", "0x6a6"])
def test_update_state_knob_fails_the_download_with_that_code(steamcmd_home, tmp_path, code):
    control(steamcmd_home, update_state=code)
    result = full_install(steamcmd_home, tmp_path / "srv")
    assert result.returncode == 8
    assert f"Error! App '222860' state is {code} after update job." in result.stdout
    assert " Update state (0x61) downloading" in result.stdout  # it fails mid-download


def test_appinfo_timeout_exits_1(steamcmd_home, tmp_path):
    control(steamcmd_home, fault="appinfo_timeout")
    result = full_install(steamcmd_home, tmp_path / "srv")
    assert result.returncode == 1
    assert "ERROR! Timed out waiting for AppInfo update." in result.stdout
    assert "Update state" not in result.stdout


def test_self_update_offline_exits_1_before_the_console(steamcmd_home, tmp_path):
    control(steamcmd_home, fault="self_update_offline")
    result = full_install(steamcmd_home, tmp_path / "srv")
    assert result.returncode == 1
    assert "Fatal Error: Steamcmd needs to be online to update." in result.stdout
    assert "Loading Steam API" not in result.stdout and not (tmp_path / "srv").exists()


def test_home_of_another_user_exits_7_quietly(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("running the stand-in as another user needs root")
    base = Path(tempfile.mkdtemp(prefix="left4me-standin-", dir="/var/tmp"))
    try:
        base.chmod(0o755)
        home = base / "steamcmd"
        assert run_standin(["python3", "-m", "standins.steamcmd", "bootstrap", str(home)],
                           tmp_path).returncode == 0  # root's, run by nobody below
        result = subprocess.run(
            [str(home / "steamcmd.sh"), "+login", "anonymous", "+quit"], cwd=base,
            env=standin_env({"PYTHONPATH": ""}), user="nobody", capture_output=True,
            text=True, check=False, timeout=60,
        )  # fmt: skip
        assert result.returncode == 7, result.stdout + result.stderr
        assert "Loading Steam API" not in result.stdout and "ERROR" not in result.stdout
        shutil.chown(home, "nobody")
        for path in home.rglob("*"):
            shutil.chown(path, "nobody")
        owned = subprocess.run(
            [str(home / "steamcmd.sh"), "+login", "anonymous", "+quit"], cwd=base,
            env=standin_env({"PYTHONPATH": ""}), user="nobody", capture_output=True,
            text=True, check=False, timeout=60,
        )  # fmt: skip
        assert owned.returncode == 0, owned.stdout + owned.stderr
    finally:
        shutil.rmtree(base)


def test_first_linux_install_may_be_refused_as_missing_configuration(steamcmd_home, tmp_path):
    control(steamcmd_home, platform_refusal="Missing configuration")
    refused = linux_only(steamcmd_home, tmp_path / "srv")
    assert refused.returncode == 8
    assert "ERROR! Failed to install app '222860' (Missing configuration)" in refused.stdout
    assert full_install(steamcmd_home, tmp_path / "srv").returncode == 0


def test_cold_cache_refuses_the_first_requests_of_a_new_home(steamcmd_home, tmp_path):
    control(steamcmd_home, cold_cache=2)
    for _ in range(2):
        cold = full_install(steamcmd_home, tmp_path / "srv")
        assert cold.returncode == 8
        assert "ERROR! Failed to install app '222860' (Missing configuration)" in cold.stdout
        assert "Update state" not in cold.stdout  # refused before any download
    assert full_install(steamcmd_home, tmp_path / "srv").returncode == 0


def stack_flags(path):
    """PT_GNU_STACK flags as pyelftools reads them (None: no such header)."""
    elf = ELFFile(io.BytesIO(path.read_bytes()))
    flags = [seg["p_flags"] for seg in elf.iter_segments() if seg["p_type"] == "PT_GNU_STACK"]
    return elf, (flags[0] if flags else None)


def test_libraries_are_shared_objects_with_a_non_executable_stack(steamcmd_home, tmp_path):
    target = tmp_path / "srv"
    assert full_install(steamcmd_home, target).returncode == 0
    for name in ("bin/engine_srv.so", "bin/dedicated_srv.so", "left4dead2/bin/server_srv.so"):
        elf, flags = stack_flags(target / name)
        assert (elf.elfclass, elf["e_type"], elf["e_machine"]) == (32, "ET_DYN", "EM_386")
        assert flags == 6, f"{name}: RW, no PF_X"


def test_execstack_knob_plants_libraries_that_request_an_executable_stack(steamcmd_home,
                                                                          tmp_path):
    target = tmp_path / "srv"
    control(steamcmd_home, execstack="bin/engine_srv.so,bin/linux64/standin_probe.so")
    assert full_install(steamcmd_home, target).returncode == 0
    engine, flags = stack_flags(target / "bin/engine_srv.so")
    assert engine.elfclass == 32 and flags == 7  # RWE, as `ld -z execstack` leaves it
    probe, flags = stack_flags(target / "bin/linux64/standin_probe.so")
    assert (probe.elfclass, probe["e_machine"], flags) == (64, "EM_X86_64", 7)
    assert stack_flags(target / "bin/dedicated_srv.so")[1] == 6
    # Someone clears the flag by hand; validate puts Valve's bytes back, a plain update not.
    engine_path = target / "bin/engine_srv.so"
    shipped = engine_path.read_bytes()
    offset = engine["e_phoff"] + 2 * engine["e_phentsize"] + 24  # 3rd header's p_flags
    engine_path.write_bytes(shipped[:offset] + struct.pack("<I", 6) + shipped[offset + 4:])
    assert stack_flags(engine_path)[1] == 6
    plain = steamcmd(steamcmd_home, "+force_install_dir", str(target), "+login", "anonymous",
                     "+app_update", APP, "+quit")
    assert "already up to date" in plain.stdout and stack_flags(engine_path)[1] == 6
    assert full_install(steamcmd_home, target).returncode == 0  # validate
    assert engine_path.read_bytes() == shipped


# --- app_info_update / app_info_print: what Steam offers, without downloading ---------------


def offered_build(output: str) -> str | None:
    """The public branch's buildid in app_info_print's output, read the way LinuxGSM does."""
    if '"branches"' not in output:
        return None
    branches = output[output.index('"branches"'):]
    public = branches[branches.index('"public"'):]
    return public.split('"buildid"', 1)[1].split('"')[1]


def info_print(home, *before, env=None):
    return steamcmd(home, "+login", "anonymous", *before, "+app_info_print", APP, "+quit",
                    env=env)


def test_app_info_print_shows_the_offered_build_and_installs_nothing(steamcmd_home, tmp_path):
    control(steamcmd_home, buildid=16140500)
    result = info_print(steamcmd_home, "+app_info_update", "1")
    assert result.returncode == 0, result.stdout
    lines = result.stdout.splitlines()
    header = next(line for line in lines if line.startswith("AppID : 222860"))
    assert "change number :" in header and "last change :" in header
    body = result.stdout[result.stdout.index(f'"{APP}"\n{{'):].split("Unloading")[0]
    public = vdf.loads(body)[APP]["depots"]["branches"]["public"]
    assert public["buildid"] == "16140500" and int(public["timeupdated"]) > 0
    assert offered_build(result.stdout) == "16140500"
    assert not (steamcmd_home / "steamapps").exists(), "nothing downloaded or installed"


def test_app_info_print_without_a_cache_asks_first_and_prints_on_the_second_call(steamcmd_home):
    first = info_print(steamcmd_home)
    assert "No app info for AppID 222860 found, requesting..." in first.stdout
    assert offered_build(first.stdout) is None and first.returncode == 0
    second = info_print(steamcmd_home)
    assert offered_build(second.stdout) == "16140412"


def test_app_info_print_shows_the_cached_build_until_app_info_update(steamcmd_home):
    info_print(steamcmd_home, "+app_info_update", "1")
    control(steamcmd_home, buildid=16140413)  # Steam now offers a newer build
    assert offered_build(info_print(steamcmd_home).stdout) == "16140412", "stale: no update"
    updated = info_print(steamcmd_home, "+app_info_update", "1")
    assert offered_build(updated.stdout) == "16140413"


def test_appinfo_faults(steamcmd_home):
    info_print(steamcmd_home, "+app_info_update", "1")
    control(steamcmd_home, buildid=16140413, fault="appinfo_stale")
    stale = info_print(steamcmd_home, "+app_info_update", "1")
    assert offered_build(stale.stdout) == "16140412", "app_info_update 1 kept the old info"
    (steamcmd_home / "appcache" / "appinfo.vdf").unlink()  # LinuxGSM's fix
    assert offered_build(info_print(steamcmd_home, "+app_info_update", "1").stdout) == "16140413"
    control(steamcmd_home, fault="appinfo_requesting")
    once = info_print(steamcmd_home, "+app_info_update", "1")
    assert "found, requesting..." in once.stdout and offered_build(once.stdout) is None
    twice = steamcmd(steamcmd_home, "+login", "anonymous", "+app_info_update", "1",
                     "+app_info_print", APP, "+app_info_print", APP, "+quit")
    assert offered_build(twice.stdout) == "16140412"
    control(steamcmd_home, fault="appinfo_empty")
    empty = info_print(steamcmd_home, "+app_info_update", "1")
    assert "change number : 0/0" in empty.stdout and f'"{APP}"\n{{\n}}' in empty.stdout


def test_app_update_refreshes_the_appinfo_cache(steamcmd_home, tmp_path):
    assert full_install(steamcmd_home, tmp_path / "srv").returncode == 0
    assert offered_build(info_print(steamcmd_home).stdout) == "16140412"
