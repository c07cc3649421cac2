# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the script overlay module decides around one build (the sandbox is ``_sandbox``).

The module holds the overlay's lock, gathers facts (leftover directories, the
overlay's manifest before and after, whether a mount uses it), asks these pure
functions, and carries out their answer:

* :func:`leftovers_to_remove`: build directories of interrupted runs always go;
  retired trees only once no mount uses the overlay;
* :func:`build_failure`: whether the build failed and why (then the staging tree
  is dropped and the overlay is untouched);
* :func:`overlay_changed`: whether the staged tree replaces the overlay;
* :func:`previous_tree_fate`: after a swap, the previous tree is removed with the
  build directory, or kept as ``.{id}.retired-*`` while a mount still reads it.

Standard library only (these run on the managed host).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from ansible_collections.left4me.l4d2.plugins.module_utils._common import format_size
from ansible_collections.left4me.l4d2.plugins.module_utils._sandbox import describe_result

# Results of systemd's $SERVICE_RESULT that mean the script succeeded ("" when the
# unit reported none but systemd-run itself exited 0).
SUCCESS_RESULTS = ("success", "")
# The most one build may leave in its output tree (the module's max_size); the UI counts
# a script overlay at this in each user's disk share.
DEFAULT_MAX_SIZE = "2G"


def leftovers_to_remove(
    stale_builds: Sequence[str], retired: Sequence[str], in_use: bool
) -> list[str]:
    """Directories to delete before a build, with the lock held.

    ``stale_builds`` were left by interrupted runs; ``retired`` are previous
    trees kept for a mount that used the overlay, removable once ``in_use`` is false.
    """
    return [*stale_builds, *([] if in_use else retired)]


def build_failure(rc: int, service_result: str, runtime_max_sec: int) -> str | None:
    """Why the build failed, as the end of a sentence about the script; None if it did not."""
    if rc == 0 and service_result in SUCCESS_RESULTS:
        return None
    if not service_result:
        return (
            f"never reported a result: systemd could not start the build unit "
            f"(systemd-run rc {rc}; 217 is a bad user, 226 a namespace set-up "
            f"failure; the output ends with the unit's journal)"
        )
    return describe_result(service_result, rc, runtime_max_sec)


def oversize_failure(used: int, cap: int) -> str | None:
    """Why a staged tree of ``used`` bytes may not become the overlay; None within ``cap``.

    The end of a sentence about the script, as :func:`build_failure`'s.
    """
    if used <= cap:
        return None
    return (f"made a tree of more than {format_size(cap)} (at least {format_size(used)}),"
            " above the cap for a build's output (max_size); make the script keep less"
            " (delete archives after unpacking them), or raise max_size")


def build_failure_message(overlay_id: str, overlay: str, why: str) -> str:
    return (f"build script of overlay {overlay_id} {why}; the previous content of {overlay}"
            " is untouched")


def overlay_changed(overlay_exists: bool, before_digest: str, after_digest: str) -> bool:
    """The staged tree replaces the overlay when there is none or its content differs."""
    return not overlay_exists or before_digest != after_digest


def previous_tree_fate(previous_exists: bool, in_use: bool) -> str:
    """After a swap: ``none`` (there was no overlay), ``remove`` (with the build
    directory) or ``retire`` (kept beside the overlay: a mount still reads it)."""
    if not previous_exists:
        return "none"
    return "retire" if in_use else "remove"


def retired_path(overlays_dir: str, overlay_id: str, token: str) -> str:
    return os.path.join(overlays_dir, f".{overlay_id}.retired-{token}")


def check_mode_result(overlay: str, overlay_exists: bool, manifest_digest: str,
                      entries: int) -> dict:
    """Check mode runs nothing: only a new overlay is known to change."""
    return dict(changed=not overlay_exists, built=False, path=overlay, digest=manifest_digest,
                entries=entries)


def manifest_diff(overlay: str, before_text: str, after_text: str) -> dict:
    return dict(before_header=f"{overlay} (before)", before=before_text,
                after_header=f"{overlay} (after)", after=after_text)


def built_result(ran: Mapping, overlay: str, digest: str, entries: int, changed: bool) -> dict:
    return dict(ran, built=True, path=overlay, digest=digest, entries=entries, changed=changed)
