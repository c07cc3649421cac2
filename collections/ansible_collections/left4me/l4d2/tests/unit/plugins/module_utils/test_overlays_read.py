# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The overlays role's read (roles/overlays/files/left4me-overlays-read.py), run as the role
runs it (python3 -I -c TEXT), against overlays files_overlay wrote.

The role skips files_overlay for an overlay only when every line it expects is in this
output, so these tests pin the lines and what must never be in them."""

from __future__ import annotations

import grp
import hashlib
import json
import os
import pathlib
import pwd
import subprocess
import sys

import pytest

try:
    from ansible_collections.left4me.l4d2.plugins.module_utils import _files_overlay as fo
except ImportError:  # plain pytest from the repo root: make the collection importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[7]))
    from ansible_collections.left4me.l4d2.plugins.module_utils import _files_overlay as fo

COLLECTION = pathlib.Path(__file__).resolve().parents[4]
READ = (COLLECTION / "roles" / "overlays" / "files" / "left4me-overlays-read.py").read_text()
ME = (os.getuid(), os.getgid())
USER, GROUP = pwd.getpwuid(ME[0]).pw_name, grp.getgrgid(ME[1]).gr_name
CFG = "left4dead2/cfg/server.cfg"
MOTD = "left4dead2/motd.txt"
FILES = [{"dest": CFG, "content": 'hostname "x"\n', "mode": "0640"},
         {"dest": MOTD, "content": "hi\n"}]


def read(overlays: pathlib.Path, wanted: dict, absent: list | None = None) -> list[str]:
    run = subprocess.run([sys.executable, "-I", "-c", READ, str(overlays), json.dumps(wanted),
                          json.dumps(absent or [])],
                         capture_output=True, text=True, check=True, timeout=30)
    return run.stdout.splitlines()


def expected(root: pathlib.Path, entry: dict) -> list[str]:
    """The lines the role looks for before it skips files_overlay for this file."""
    path = f"{root}/{entry['dest']}"
    sha1 = hashlib.sha1(entry["content"].encode()).hexdigest()
    return [f"{path}|regular file|{USER}|{GROUP}|{entry.get('mode', '0644')}", f"{sha1}  {path}"]


@pytest.fixture
def overlays(tmp_path: pathlib.Path) -> pathlib.Path:
    overlays = tmp_path / "overlays"
    overlays.mkdir()
    fo.apply_files_plan(fo.plan_files(str(overlays / "conf"), FILES, ME))
    return overlays


def test_a_converged_overlay_reports_every_line_the_role_expects(overlays):
    lines = read(overlays, {"conf": [CFG, MOTD]})
    root = overlays / "conf"
    assert f"{root}|directory" in lines
    for entry in FILES:
        assert set(expected(root, entry)) <= set(lines), entry["dest"]
    assert sorted(x for x in lines if x.startswith("listed|")) == [
        f"listed|conf|{CFG}", f"listed|conf|{MOTD}"]
    # and files_overlay agrees that nothing is left to do
    assert not fo.plan_files(str(root), FILES, ME).changed


def test_a_changed_file_or_mode_no_longer_matches(overlays):
    root = overlays / "conf"
    (root / CFG).write_text('hostname "changed on the host"\n')
    os.chmod(root / MOTD, 0o600)
    lines = read(overlays, {"conf": [CFG, MOTD]})
    assert expected(root, FILES[0])[1] not in lines
    assert expected(root, FILES[1])[0] not in lines


def test_no_symlink_is_followed_in_the_path_or_at_the_file(overlays, tmp_path):
    root = overlays / "conf"
    outside = tmp_path / "outside" / "cfg"
    outside.mkdir(parents=True)
    (outside / "server.cfg").write_text('hostname "x"\n')  # what the role would want there
    (root / "left4dead2" / "cfg" / "server.cfg").unlink()
    (root / "left4dead2" / "cfg").rmdir()
    (root / "left4dead2" / "cfg").symlink_to(outside)
    (root / MOTD).unlink()
    (root / MOTD).symlink_to(outside / "server.cfg")
    lines = read(overlays, {"conf": [CFG, MOTD]})
    digest = hashlib.sha1(b'hostname "x"\n').hexdigest()
    assert not [x for x in lines if digest in x or str(outside) in x]
    assert not [x for x in lines if x.startswith(f"{root}/")], lines
    # so the role calls files_overlay, which refuses the link by name
    with pytest.raises(fo.FilesOverlayError, match="symlink"):
        fo.plan_files(str(root), FILES, ME)


def test_a_dest_leaving_the_overlay_is_not_read(overlays, tmp_path):
    (tmp_path / "secret").write_text("s\n")
    lines = read(overlays, {"conf": ["../../secret", "/etc/passwd"]})
    assert lines == [f"{overlays / 'conf'}|directory", f"listed|conf|{CFG}", f"listed|conf|{MOTD}"]


def test_a_missing_overlay_reports_nothing_and_an_absent_one_still_there_is_named(overlays):
    assert read(overlays, {"gone": [CFG]}, absent=["conf", "never-built"]) == ["present|conf"]


def test_a_manifest_listing_more_is_reported_as_it_is(overlays):
    root = overlays / "conf"
    (root / fo.MANIFEST_NAME).write_text(json.dumps({"version": 1,
                                                     "files": [CFG, MOTD, "old.txt"]}))
    lines = read(overlays, {"conf": [CFG, MOTD]})
    assert "listed|conf|old.txt" in lines
