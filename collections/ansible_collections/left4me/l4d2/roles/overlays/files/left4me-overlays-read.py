# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The overlays role's read of its files overlays, run on the host as python3 -I -c TEXT.

Arguments: the overlays directory, a JSON object {overlay id: [dest, ...]} of the files
overlays and their files, and a JSON list of the ids marked absent. Prints, never following
a symlink (root must not follow a link inside an overlay):
  ROOT|directory                       an overlay directory that is a real directory
  PATH|regular file|OWNER|GROUP|MODE   a wanted file reached through real directories only
  SHA1  PATH                           its content's sha1 (sha1sum's format)
  listed|ID|DEST                       each path the overlay's manifest lists
  present|ID                           an overlay marked absent that still exists
The role compares these with what files_overlay would write and calls it only where the
host differs. Standard library only; a .py so that ruff and ansible-test sanity check it.
"""
from __future__ import annotations

import grp
import hashlib
import json
import os
import pwd
import stat
import sys

MANIFEST_NAME = ".left4me-files.json"


def lstat(path):
    try:
        return os.lstat(path)
    except OSError:
        return None


def is_dir(path):
    info = lstat(path)
    return info is not None and stat.S_ISDIR(info.st_mode)


def read_nofollow(path):
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as handle:
        return handle.read()


def name_of(lookup, number):
    try:
        return lookup(number)[0]
    except KeyError:
        return str(number)


def report_file(root, dest):
    parts = dest.split("/")
    if dest.startswith("/") or any(part in ("", ".", "..") for part in parts):
        return  # files_overlay refuses it, with its message
    path = root
    for part in parts[:-1]:
        path = os.path.join(path, part)
        if not is_dir(path):
            return
    path = os.path.join(root, dest)
    info = lstat(path)
    if info is None or not stat.S_ISREG(info.st_mode):
        return
    try:
        digest = hashlib.sha1(read_nofollow(path)).hexdigest()
    except OSError:
        return
    print("|".join([path, "regular file", name_of(pwd.getpwuid, info.st_uid),
                    name_of(grp.getgrgid, info.st_gid), f"{stat.S_IMODE(info.st_mode):04o}"]))
    print(f"{digest}  {path}")


def report_manifest(overlay_id, root):
    path = os.path.join(root, MANIFEST_NAME)
    info = lstat(path)
    if info is None or not stat.S_ISREG(info.st_mode):
        return
    try:
        listed = json.loads(read_nofollow(path)).get("files", [])
    except (OSError, ValueError, AttributeError):
        return
    for dest in listed if isinstance(listed, list) else []:
        if isinstance(dest, str) and "\n" not in dest:
            print(f"listed|{overlay_id}|{dest}")


def main(overlays, files_overlays, absent):
    if not is_dir(overlays):
        return
    for overlay_id, dests in files_overlays.items():
        root = os.path.join(overlays, overlay_id)
        if not is_dir(root):
            continue
        print(f"{root}|directory")
        for dest in dests:
            report_file(root, dest)
        report_manifest(overlay_id, root)
    for overlay_id in absent:
        if lstat(os.path.join(overlays, overlay_id)) is not None:
            print(f"present|{overlay_id}")


if __name__ == "__main__":
    main(sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3]))
