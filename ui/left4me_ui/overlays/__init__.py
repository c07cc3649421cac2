"""User-owned overlays: rows like blueprints, each of one kind, built on hosts.

| module | what it holds |
|---|---|
| `rows.py` | the overlay row: create, load, list, delete (retiring the id), its kind rule |
| `fd_tree.py` | a tree on disk walked one directory fd at a time (never following a link) |
| `kinds/files.py` | a files overlay's tree: read, write, move, remove, and its build |
| `archive.py` | a files overlay as a zip: export, import, upload files together |
| `kinds/workshop.py` | a Workshop overlay's ids, resolved and built on a host |
| `kinds/script.py` | a script overlay's build script and its last build |
| `on_hosts.py` | builds on hosts (by the builder boot.py declares per kind), what each host has |

The names below are what pages and other domain modules use (`overlays.create`, ...);
the kinds' own functions are reached through their modules (`kinds.workshop.set_ids`).
Modules inside this package import each other's modules, never these re-exports.
"""

from __future__ import annotations

from ansible_collections.left4me.l4d2.plugins.module_utils._common import ID_RULE

from left4me_ui.overlays.archive import export_zip, import_zip, upload_files
from left4me_ui.overlays.fd_tree import MAX_PATH_PARTS, Entry, OverlayError, Usage, size_text
from left4me_ui.overlays.kinds.files import (
    files_spec,
    make_folder,
    move,
    read_bytes,
    read_text,
    remove,
    tree,
    upload,
    usage,
    write_text,
)
from left4me_ui.overlays.on_hosts import (
    Build,
    build,
    build_finished,
    builds,
    built_revisions,
    ensure_built,
    revisions,
)
from left4me_ui.overlays.rows import (
    BUILD_PLAYBOOK,
    KIND_BUILD,
    KIND_REMOVE,
    KINDS,
    REMOVE_VARIABLES,
    Overlay,
    create,
    delete,
    get,
    list_for,
    load,
)

__all__ = [
    "BUILD_PLAYBOOK", "ID_RULE", "KINDS", "KIND_BUILD", "KIND_REMOVE", "MAX_PATH_PARTS",
    "REMOVE_VARIABLES",
    "Build", "Entry", "Overlay", "OverlayError", "Usage", "build", "build_finished",
    "builds", "built_revisions", "create", "delete", "ensure_built", "export_zip",
    "files_spec", "get", "import_zip", "list_for", "load", "make_folder", "move",
    "read_bytes", "read_text", "remove", "revisions", "size_text", "tree", "upload",
    "upload_files", "usage", "write_text",
]
