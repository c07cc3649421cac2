"""What a build may take in and give back: its script is read with the runtime user's rights
(root's would hand /etc/shadow to the sandbox and echo it in the errors), and its output comes
back as a bounded tail, never all of it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import PROJECT, run_probes

OVERLAYS = "/var/lib/left4me/overlays"
SCRIPTS = "/usr/local/share/left4me-molecule"


def script_overlay(booted, arguments: dict) -> subprocess.CompletedProcess[str]:
    """The module ad hoc with become, as an operator would run it."""
    return subprocess.run(
        [str(Path(sys.executable).parent / "ansible"), "-i",
         os.environ["MOLECULE_INVENTORY_FILE"], booted.name, "-b",
         "-m", "left4me.l4d2.script_overlay", "-a", json.dumps(arguments)],
        cwd=PROJECT, capture_output=True, text=True, check=False, timeout=300,
        env={**os.environ, "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1"},
    )


def test_script_etc_shadow_is_refused_and_none_of_it_shown(booted, ssh):
    first_entry = ssh.check_output("head -n 1 /etc/shadow").split(":")[0]
    run = script_overlay(booted, {"name": "probe-shadow", "script": "/etc/shadow"})
    assert run.returncode != 0
    assert "cannot read the build script /etc/shadow as the runtime user" in run.stdout, \
        run.stdout[-2000:]
    assert "Permission denied" in run.stdout
    assert f"{first_entry}:" not in run.stdout + run.stderr
    assert not ssh.file(f"{OVERLAYS}/probe-shadow").exists


def test_a_script_file_the_runtime_user_may_read_builds(booted, ssh):
    ssh.check_output(f"install -d -m 0755 {SCRIPTS} && printf '%s\\n' '#!/bin/sh'"
                     f" 'mkdir -p /overlay/cfg && echo from-file > /overlay/cfg/source.cfg'"
                     f" > {SCRIPTS}/build.sh && chmod 0644 {SCRIPTS}/build.sh")
    try:
        run = script_overlay(booted, {"name": "probe-file", "script": f"{SCRIPTS}/build.sh"})
        assert run.returncode == 0 and "CHANGED" in run.stdout, run.stdout[-2000:]
        assert ssh.file(f"{OVERLAYS}/probe-file/cfg/source.cfg").content_string == \
            "from-file\n"
    finally:
        ssh.run(f"rm -rf {SCRIPTS} {OVERLAYS}/probe-file")


LOUD = "#!/bin/sh\ni=0\nwhile [ $i -lt 5000 ]; do printf 'line %05d %0400d\\n' $i 0;" \
       " i=$((i+1)); done\n"


def test_build_output_comes_back_as_a_bounded_tail(booted):
    results = run_probes(booted, [
        {"name": "loud-ok", "content": LOUD},
        {"name": "loud-fails", "content": LOUD + "exit 3\n"},
    ])
    for name, result in results.items():
        output = result["output"]
        assert 0 < len(output) <= 50, f"{name}: {len(output)} lines"
        assert sum(len(line.encode()) + 1 for line in output) <= 8192, name
        assert output[-1].startswith("line 04999 "), f"{name}: the newest lines are kept"
    assert results["loud-fails"]["rc"] == 3
    assert "exited with status 3" in results["loud-fails"]["msg"]
