"""The collection's changelog, kept with antsibull-changelog as collections on Galaxy keep it.

Each change adds a fragment to changelogs/fragments/; a release folds them into
changelogs/changelog.yaml and CHANGELOG.rst (the collection README says how). ansible-test
sanity's `changelog` test lints with the antsibull-changelog ansible-test pins; this runs the
one requirements.txt pins, and checks CHANGELOG.rst is what changelog.yaml generates.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
COLLECTION = PROJECT / "collections" / "ansible_collections" / "left4me" / "l4d2"


def antsibull_changelog(*args: str) -> subprocess.CompletedProcess:
    tool = shutil.which("antsibull-changelog", path=str(Path(sys.executable).parent)) \
        or shutil.which("antsibull-changelog")
    assert tool, "antsibull-changelog is missing: pip install -r requirements.txt"
    return subprocess.run([tool, *args], cwd=COLLECTION, capture_output=True, text=True,
                          check=False, timeout=120)


def test_the_changelog_and_its_fragments_pass_lint():
    lint = antsibull_changelog("lint")
    assert lint.returncode == 0 and lint.stdout == "", lint.stdout + lint.stderr


def test_changelog_rst_is_generated_from_changelog_yaml(tmp_path):
    generated = tmp_path / "CHANGELOG.rst"
    run = antsibull_changelog("generate", "--output", str(generated))
    assert run.returncode == 0, run.stdout + run.stderr
    assert (COLLECTION / "CHANGELOG.rst").read_text() == generated.read_text(), (
        "CHANGELOG.rst was edited by hand or not regenerated: run `antsibull-changelog generate`"
        " in the collection")
