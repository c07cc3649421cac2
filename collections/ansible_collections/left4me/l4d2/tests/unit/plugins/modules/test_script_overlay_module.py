# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Runs the script_overlay module in-process for what needs no systemd: input checks and check mode.

Real builds (systemd-run in a booted host) are covered by molecule/sandbox and
tests/sandbox/test_vm_limits.py.
"""

from __future__ import annotations

import json
import os
import pathlib
import pwd
import sys
import time

import pytest

try:
    from ansible_collections.left4me.l4d2.plugins.modules import script_overlay
except ImportError:  # plain pytest from the repo root: make the collection importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[7]))
    from ansible_collections.left4me.l4d2.plugins.modules import script_overlay

from ansible.module_utils.testing import patch_module_args

USER = pwd.getpwuid(os.getuid()).pw_name
SCRIPT = "#!/bin/sh\necho built > /overlay/x\n"


def run_module(capsys, **args) -> dict:
    with patch_module_args(args), pytest.raises(SystemExit):
        script_overlay.main()
    return json.loads(capsys.readouterr().out)


@pytest.fixture
def state_dir(tmp_path) -> pathlib.Path:
    (tmp_path / "overlays").mkdir()
    return tmp_path


def tree(path: pathlib.Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def test_check_mode_on_a_new_overlay_predicts_a_change_and_runs_nothing(state_dir, capsys):
    result = run_module(capsys, _ansible_check_mode=True, name="maps", content=SCRIPT,
                        state_dir=str(state_dir), user=USER)
    assert result["changed"] is True and result["built"] is False
    assert result["path"] == str(state_dir / "overlays" / "maps")
    assert tree(state_dir) == ["overlays"], "nothing created, no lock, no staging"


def test_check_mode_on_an_existing_overlay_reports_no_change(state_dir, capsys):
    (state_dir / "overlays" / "maps").mkdir()
    (state_dir / "overlays" / "maps" / "x").write_text("old\n")
    result = run_module(capsys, _ansible_check_mode=True, name="maps", content=SCRIPT,
                        state_dir=str(state_dir), user=USER)
    assert result["changed"] is False and result["built"] is False
    assert result["entries"] == 1
    assert (state_dir / "overlays" / "maps" / "x").read_text() == "old\n"


@pytest.mark.parametrize(("args", "message"), [
    ({"name": "../etc"}, "invalid overlay id"),
    ({"memory_max": "lots"}, "memory_max"),
    ({"cpu_quota": "200"}, "cpu_quota"),
    ({"runtime_max_sec": 0}, "runtime_max_sec"),
    ({"max_size": "lots"}, "max_size 'lots' must be a size"),
    ({"resolvers": ["10.0.0.53"]}, "10.0.0.0/8"),
    ({"environment": {"NOT-A-NAME": "x"}}, "shell variable name"),
    ({"user": "no-such-user-l4m"}, "does not exist"),
    ({"slice": "system"}, "slice"),
    ({"content": "  \n"}, "empty"),
])
def test_bad_input_fails_and_changes_nothing(state_dir, capsys, args, message):
    before = tree(state_dir)
    params = {"name": "maps", "content": SCRIPT, "state_dir": str(state_dir), "user": USER,
              **args}
    result = run_module(capsys, **params)
    assert result["failed"] is True and message in result["msg"], result
    assert tree(state_dir) == before


def test_missing_script_file_fails(state_dir, capsys):
    result = run_module(capsys, name="maps", script=str(state_dir / "nope.sh"),
                        state_dir=str(state_dir), user=USER)
    assert result["failed"] is True and "cannot read the build script" in result["msg"]


def test_missing_overlays_dir_names_the_fix(tmp_path, capsys):
    result = run_module(capsys, name="maps", content=SCRIPT, state_dir=str(tmp_path), user=USER)
    assert result["failed"] is True and "converge the game host first" in result["msg"]


def test_environment_values_never_reach_the_result(state_dir, capsys):
    result = run_module(capsys, _ansible_check_mode=True, name="maps", content=SCRIPT,
                        state_dir=str(state_dir), user=USER,
                        environment={"TOKEN": "s3cr3t-token-value"})
    assert "s3cr3t-token-value" not in json.dumps(result)


@pytest.mark.skipif(os.getuid() != 0 or not os.path.exists("/etc/shadow"),
                    reason="needs root and an /etc/shadow")
def test_script_etc_shadow_is_refused_and_nothing_of_it_shown(state_dir, capsys):
    """The module runs as root; the script is read as the runtime user, who may not."""
    result = run_module(capsys, _ansible_check_mode=True, name="maps", script="/etc/shadow",
                        state_dir=str(state_dir), user="nobody")
    assert result["failed"] is True
    assert result["msg"].startswith("cannot read the build script /etc/shadow as the runtime"
                                    " user")
    assert "Permission denied" in result["msg"]
    with open("/etc/shadow", encoding="utf-8") as shadow:
        first_user = shadow.readline().split(":")[0]
    assert f"{first_user}:" not in json.dumps(result)
    assert tree(state_dir) == ["overlays"]


def test_output_lines_above_64_are_refused(state_dir, capsys):
    result = run_module(capsys, name="maps", content=SCRIPT, state_dir=str(state_dir),
                        user=USER, output_lines=1000)
    assert result["failed"] is True and "output_lines 1000 must be 0..64" in result["msg"]


def test_systemd_run_output_is_kept_as_a_bounded_tail():
    ran = script_overlay.run_keeping_tail(
        ["sh", "-c", "head -c 20000000 /dev/zero | tr '\\0' x; echo; echo the-end"], 60)
    assert ran is not None
    rc, tail = ran
    assert rc == 0 and tail.endswith(b"the-end\n")
    assert len(tail) <= 65536


def test_systemd_run_that_outlives_its_time_is_killed():
    started = time.monotonic()
    assert script_overlay.run_keeping_tail(["sleep", "30"], 0.5) is None
    assert time.monotonic() - started < 5


# --- staging, swap and retire around a build, with the sandbox run faked ----------------


class Failed(Exception):
    pass


class FakeModule:
    def __init__(self, params, diff=False):
        self.params = params
        self._diff = diff
        self.warnings: list[str] = []

    def warn(self, text):
        self.warnings.append(text)

    def fail_json(self, **result):
        raise Failed(result)


def params_for(state_dir, **args):
    params = {key: spec.get("default") for key, spec in script_overlay.ARGUMENT_SPEC.items()}
    return {**params, "name": "maps", "content": SCRIPT, "state_dir": str(state_dir),
            "user": USER, **args}


def fake_build(monkeypatch, writes: dict[str, str], rc=0, service_result="success",
               oversize=0):
    """systemd-run stand-in: the 'script' writes ``writes`` into the staging tree."""

    def run_build(module, paths, properties, limits, max_size):
        staging = pathlib.Path(paths.staging)
        for name in list(os.listdir(staging)):
            (staging / name).unlink()
        for name, text in writes.items():
            (staging / name).write_text(text)
        return dict(rc=rc, service_result=service_result, output=[], oversize=oversize)

    monkeypatch.setattr(script_overlay, "run_build", run_build)


def build_once(state_dir, monkeypatch, in_use=False, diff=False, **args):
    monkeypatch.setattr(script_overlay, "_overlay_in_use", lambda _overlay: in_use)
    module = FakeModule(params_for(state_dir, **args), diff=diff)
    return module, script_overlay.build(module, script_overlay.Build(module.params))


def test_a_build_swaps_in_its_tree_and_leaves_no_build_dir(state_dir, monkeypatch):
    fake_build(monkeypatch, {"x": "new\n"})
    _module, result = build_once(state_dir, monkeypatch, diff=True)
    assert result["changed"] and result["entries"] == 1 and "retired" not in result
    assert (state_dir / "overlays" / "maps" / "x").read_text() == "new\n"
    assert tree(state_dir / "overlays") == [".maps.lock", "maps", "maps/x"]
    assert "maps" in result["diff"]["after_header"] and "x" in result["diff"]["after"]
    again = build_once(state_dir, monkeypatch)[1]
    assert not again["changed"] and again["digest"] == result["digest"]


def test_a_failed_build_keeps_the_previous_tree(state_dir, monkeypatch):
    (state_dir / "overlays" / "maps").mkdir()
    (state_dir / "overlays" / "maps" / "x").write_text("old\n")
    fake_build(monkeypatch, {"x": "half-written"}, rc=1, service_result="exit-code")
    with pytest.raises(Failed) as failed:
        build_once(state_dir, monkeypatch)
    assert failed.value.args[0]["msg"] == (
        f"build script of overlay maps exited with status 1; the previous content of"
        f" {state_dir}/overlays/maps is untouched")
    assert (state_dir / "overlays" / "maps" / "x").read_text() == "old\n"
    assert tree(state_dir / "overlays") == [".maps.lock", "maps", "maps/x"]


def test_a_build_bigger_than_max_size_is_refused_and_the_previous_tree_stays(
        state_dir, monkeypatch):
    (state_dir / "overlays" / "maps").mkdir()
    (state_dir / "overlays" / "maps" / "x").write_text("old\n")
    fake_build(monkeypatch, {"x": "new\n", "map.vpk": "v" * (3 << 20)})
    with pytest.raises(Failed) as failed:
        build_once(state_dir, monkeypatch, max_size="2M")
    assert failed.value.args[0]["msg"] == (
        "build script of overlay maps made a tree of more than 2.0 MiB (at least 3.0 MiB),"
        " above the cap for a build's output (max_size); make the script keep less (delete"
        " archives after unpacking them), or raise max_size; the previous content of"
        f" {state_dir}/overlays/maps is untouched")
    assert (state_dir / "overlays" / "maps" / "x").read_text() == "old\n"
    assert tree(state_dir / "overlays") == [".maps.lock", "maps", "maps/x"]
    _module, result = build_once(state_dir, monkeypatch, max_size="4M")
    assert result["changed"]
    assert (state_dir / "overlays" / "maps" / "x").read_text() == "new\n"


def test_a_build_killed_for_growing_past_max_size_says_so(state_dir, monkeypatch):
    (state_dir / "overlays" / "maps").mkdir()
    (state_dir / "overlays" / "maps" / "x").write_text("old\n")
    fake_build(monkeypatch, {"x": "half"}, rc=1, service_result="signal", oversize=5 << 20)
    with pytest.raises(Failed) as failed:
        build_once(state_dir, monkeypatch, max_size="2M")
    assert failed.value.args[0]["msg"].startswith(
        "build script of overlay maps made a tree of more than 2.0 MiB (at least 5.0 MiB)")
    assert (state_dir / "overlays" / "maps" / "x").read_text() == "old\n"


def test_the_size_watch_kills_the_build_once_its_tree_is_past_max_size(tmp_path,
                                                                       monkeypatch):
    killed = []
    monkeypatch.setattr(script_overlay, "run_command",
                        lambda argv: killed.append(argv) or (0, "", ""))
    staging = tmp_path / "staging"
    staging.mkdir()
    paths = type("Paths", (), {"staging": str(staging)})()
    over: dict = {}
    watch = script_overlay.size_watch(paths, "left4me-build-maps.service", 1 << 20, over)
    (staging / "small").write_bytes(b"x" * 1000)
    (staging / "link").symlink_to("/usr")  # never followed
    watch()
    assert (killed, over) == ([], {})
    (staging / "big").write_bytes(b"x" * (2 << 20))
    watch()
    watch()
    assert killed == [["systemctl", "kill", "--signal=SIGKILL", "left4me-build-maps.service"]]
    assert over["used"] > 1 << 20


def test_run_keeping_tail_ticks_while_the_command_runs():
    ticks = []
    ran = script_overlay.run_keeping_tail(["sh", "-c", "sleep 0.5; echo done"], 10,
                                          on_tick=lambda: ticks.append(1), tick=0.05)
    assert ran == (0, b"done\n")
    assert len(ticks) >= 3


def test_a_tree_in_use_is_retired_then_removed_once_unused(state_dir, monkeypatch):
    (state_dir / "overlays" / "maps").mkdir()
    (state_dir / "overlays" / "maps" / "x").write_text("old\n")
    fake_build(monkeypatch, {"x": "new\n"})
    module, result = build_once(state_dir, monkeypatch, in_use=True)
    kept = pathlib.Path(result["retired"])
    assert kept.parent == state_dir / "overlays" and kept.name.startswith(".maps.retired-")
    assert (kept / "x").read_text() == "old\n", "the mounted instance's tree stays"
    assert "still uses the previous tree of overlay maps" in module.warnings[0]
    fake_build(monkeypatch, {"x": "newer\n"})
    build_once(state_dir, monkeypatch, in_use=True)
    assert kept.exists(), "still in use: not removed"
    (state_dir / "overlays" / ".maps.build-0ld").mkdir()
    fake_build(monkeypatch, {"x": "newest\n"})
    build_once(state_dir, monkeypatch, in_use=False)
    assert tree(state_dir / "overlays") == [".maps.lock", "maps", "maps/x"], (
        "retired trees and interrupted builds are gone once no mount uses the overlay")


def test_systemd_run_output_reaches_the_live_log_while_it_runs(tmp_path):
    seen: list[tuple[float, bytes]] = []
    started = time.monotonic()
    ran = script_overlay.run_keeping_tail(
        ["sh", "-c", "echo first; sleep 1; echo second"], 30,
        on_output=lambda chunk: seen.append((time.monotonic() - started, chunk)))
    assert ran == (0, b"first\nsecond\n")
    assert seen[0][1] == b"first\n" and seen[0][0] < 0.9  # before the script ended
