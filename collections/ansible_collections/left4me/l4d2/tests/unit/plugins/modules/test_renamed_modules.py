# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The 0.1.0 module names still run, through meta/runtime.yml's redirects, with a deprecation.

Runs the ``ansible`` command line ad hoc against localhost, as a user with an old playbook
would, with arguments the module itself refuses (so nothing on this host changes).
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

# The directory holding ansible_collections/ (this checkout, or where the tarball went).
COLLECTIONS_ROOT = pathlib.Path(__file__).resolve().parents[7]


def ansible_bin() -> str | None:
    beside_python = pathlib.Path(sys.executable).parent / "ansible"
    return str(beside_python) if beside_python.exists() else shutil.which("ansible")


def adhoc(tmp_path, module: str, args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS_ROOT), ANSIBLE_NOCOLOR="1",
               ANSIBLE_DEPRECATION_WARNINGS="1", ANSIBLE_LOCALHOST_WARNING="0",
               ANSIBLE_INVENTORY_UNPARSED_WARNING="0")
    return subprocess.run([ansible_bin(), "localhost", "-m", module, "-a", args, "--check"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
                          check=False)


@pytest.mark.skipif(ansible_bin() is None, reason="the ansible command line is not installed")
@pytest.mark.parametrize(("old", "new", "args", "refusal"), [
    ("workshop_fetch", "workshop_overlay",
     '{"id": "maps", "items": ["1000000001"], "owner": "no-such-user-l4m"}',
     "owner 'no-such-user-l4m' does not exist; create the runtime user first"),
    ("script_build", "script_overlay", '{"name": "../etc", "content": "true"}',
     "invalid overlay id"),
])
def test_old_module_name_runs_the_new_module_with_a_deprecation(tmp_path, old, new, args,
                                                                refusal):
    ran = adhoc(tmp_path, f"left4me.l4d2.{old}", args)
    said = " ".join((ran.stdout + ran.stderr).split())
    assert ran.returncode == 2, said  # the module ran and refused the arguments
    assert refusal in said
    assert (f"left4me.l4d2.{old} has been deprecated. Use left4me.l4d2.{new} instead"
            in said)
    assert "removed from collection 'left4me.l4d2' version 1.0.0" in said
