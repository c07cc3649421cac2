"""The README's quick start as a newcomer meets it: a fresh Debian machine, root, no sudo."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]


def quick_start_commands() -> list[str]:
    readme = (PROJECT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    return [line.split("#", 1)[0].strip() for line in block.splitlines() if line.strip()]


def test_quick_start_has_the_demo_and_the_test_command():
    assert [c.split()[0] for c in quick_start_commands()] == ["scripts/demo", "scripts/test"]


def test_quick_start_commands_resolve_in_a_shell_without_sudo(tmp_path):
    # A fresh Debian machine has no sudo: a PATH holding only coreutils and bash stands in.
    bare_bin = tmp_path / "bin"
    bare_bin.mkdir()
    for tool in ("bash", "env", "dirname"):
        os.symlink(shutil.which(tool), bare_bin / tool)
    for command in quick_start_commands():
        program = command.split()[0]
        found = subprocess.run(
            [str(bare_bin / "bash"), "-c", f"command -v {program}"], cwd=PROJECT,
            env={"PATH": str(bare_bin)}, capture_output=True, text=True, check=False)
        assert found.returncode == 0, f"{command!r}: {program} is not found without sudo"
        assert os.access(PROJECT / program, os.X_OK), f"{program} is not executable"
