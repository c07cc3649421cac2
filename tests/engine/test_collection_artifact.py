"""The collection works as a released artifact, not only in place in this checkout."""

from __future__ import annotations

import json
import subprocess

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
