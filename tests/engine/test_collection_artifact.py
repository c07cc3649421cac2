"""The collection works as a released artifact, not only in place in this checkout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import a2s
import pytest
from engine_support import (
    BUILD_LEFTOVERS,
    Artifact,
    Converged,
    InstalledCollection,
)


def test_tarball_leaves_out_what_test_runs_leave_behind(collection_artifact: Artifact) -> None:
    shipped = set(collection_artifact.members)
    assert {"MANIFEST.json", "FILES.json", "plugins/modules/srcds_instance.py",
            "roles/game_host/tasks/main.yml"} <= shipped
    junk = [member for member in shipped
            if member in BUILD_LEFTOVERS or "__pycache__" in member
            or member.startswith(("tests/output", ".")) or "/." in member
            or member.endswith((".pyc", ".orig", ".tar.gz"))]
    assert junk == []


# Loaded with -p by the run below: names every file of the collection that Python imported.
WHERE_FROM_PLUGIN = """
import sys

def pytest_sessionfinish(session):
    loaded = sorted({getattr(module, "__file__", None) or "" for name, module in
                     list(sys.modules.items()) if name.startswith("ansible_collections.left4me")})
    print("\\nLEFT4ME-LOADED " + " ".join(path for path in loaded if path))
"""


def test_collection_unit_tests_pass_from_the_installed_tarball(
        collection_artifact: Artifact, tmp_path: Path) -> None:
    # Nothing points into this checkout: no PYTHONPATH to it, no ansible.cfg of it (whose
    # collections_path would make ansible-galaxy find the collection already installed), run
    # from elsewhere, so the tests find the collection (and lack the stand-ins) as a user would.
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("PYTHON", "ANSIBLE_"))}
    collections_path = tmp_path / "collections"
    subprocess.run([str(Path(sys.executable).with_name("ansible-galaxy")), "collection",
                    "install", "--offline", "-p", str(collections_path),
                    str(collection_artifact.tarball)],
                   check=True, capture_output=True, text=True, cwd=tmp_path, env=env)
    installed = collections_path / "ansible_collections/left4me/l4d2"
    assert (installed / "MANIFEST.json").is_file()
    (tmp_path / "where_from.py").write_text(WHERE_FROM_PLUGIN)
    env["PYTHONPATH"] = str(tmp_path)  # the plugin above, nothing else
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "where_from", "-p", "no:cacheprovider", "-q",
         "-ra", "--rootdir", str(installed), str(installed / "tests/unit"),
         # Its own temp dirs: pytest's shared numbered ones would rotate out this test's.
         "--basetemp", str(tmp_path / "basetemp")],
        capture_output=True, text=True, cwd=tmp_path, env=env, check=False, timeout=1800)
    output = run.stdout[-6000:] + run.stderr[-2000:]
    assert run.returncode == 0, output
    summary = run.stdout.rstrip().splitlines()[-1]
    assert " passed" in summary and "failed" not in summary and "error" not in summary, output
    # Tests that run Steam's stand-ins skip, saying why; the rest ran.
    assert "needs the left4me repository's stand-ins" in run.stdout, output
    loaded = next(line for line in run.stdout.splitlines()
                  if line.startswith("LEFT4ME-LOADED ")).split()[1:]
    assert any("/plugins/modules/" in path for path in loaded), loaded
    assert all(path.startswith(str(installed) + "/") for path in loaded), loaded


@pytest.mark.testhost
def test_installed_collection_is_the_one_ansible_uses(
        installed_collection: InstalledCollection) -> None:
    doc = subprocess.run(
        [str(installed_collection.ansible_bin / "ansible-doc"), "--json",
         "left4me.l4d2.srcds_instance"],
        capture_output=True, text=True, env=installed_collection.env(), check=True,
    )
    module = json.loads(doc.stdout)["left4me.l4d2.srcds_instance"]["doc"]
    assert module["filename"].startswith(str(installed_collection.collections_path) + "/")


@pytest.mark.testhost
def test_site_yml_from_installed_collection_starts_the_servers(
        converged_from_artifact: Converged) -> None:
    result = converged_from_artifact.result
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "failed=0" in result.stdout
    address = converged_from_artifact.host.address
    # The demo world's two servers answer A2S as a player's browser would ask them.
    names = {port: a2s.info((address, port), timeout=5).server_name for port in (27015, 27025)}
    assert names == {27015: "left4me demo coop", 27025: "left4me demo versus"}
