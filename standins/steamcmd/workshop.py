"""workshop_download_item: the item's VPK under steamapps/workshop, plus appworkshop_550.acf."""

from __future__ import annotations

import time
from pathlib import Path

from standins import vdftext, vpk

WORKSHOP_APP_ID = 550


def item_dir(root: Path, item_id: int) -> Path:
    return root / "steamapps" / "workshop" / "content" / str(WORKSHOP_APP_ID) / str(item_id)


def download_item(root: Path, item_id: int) -> tuple[Path, int]:
    """Write revision 1 of the item (same bytes the fake Web API serves); returns dir and size."""
    directory = item_dir(root, item_id)
    size = vpk.default_item_size(item_id)
    target = directory / f"{item_id}.vpk"
    if not (target.is_file() and target.stat().st_size == size):
        vpk.write_vpk(target, vpk.item_seed(item_id, 1), size)
    _write_state(root)
    return directory, size


def _write_state(root: Path) -> None:
    """Rebuild the workshop state file from what is on disk (steamcmd keeps it in step)."""
    content = root / "steamapps" / "workshop" / "content" / str(WORKSHOP_APP_ID)
    items: dict[str, vdftext.VdfValue] = {}
    total = 0
    for directory in sorted(p for p in content.iterdir() if p.is_dir() and p.name.isdigit()):
        size = sum(f.stat().st_size for f in directory.iterdir() if f.is_file())
        total += size
        stamp = str(int(directory.stat().st_mtime))
        items[directory.name] = {"size": str(size), "timeupdated": stamp, "manifest": stamp}
    state: dict[str, vdftext.VdfValue] = {
        "appid": str(WORKSHOP_APP_ID),
        "SizeOnDisk": str(total),
        "NeedsUpdate": "0",
        "NeedsDownload": "0",
        "TimeLastUpdated": str(int(time.time())),
        "WorkshopItemsInstalled": items,
    }
    path = root / "steamapps" / "workshop" / f"appworkshop_{WORKSHOP_APP_ID}.acf"
    path.write_text(vdftext.dumps("AppWorkshop", state))
