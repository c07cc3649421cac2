"""workshop_download_item: the item's VPK under steamapps/workshop, plus appworkshop_550.acf."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from pathlib import Path

from standins import vdftext, vpk

WORKSHOP_APP_ID = 550


def item_dir(root: Path, item_id: int) -> Path:
    return root / "steamapps" / "workshop" / "content" / str(WORKSHOP_APP_ID) / str(item_id)


class ItemFailed(Exception):
    """workshop_download_item's reason in parentheses: File Not Found, Access Denied, ..."""


def catalogue_url(steam_home: Path) -> str | None:
    """The fake Web API whose catalogue this steamcmd serves items from, if one is set.

    `STEAMCMD_SIM_WEBAPI`, else the key `webapi` of the control file (the same file the
    other settings come from, so a test steers a role's steamcmd by writing it).
    """
    if os.environ.get("STEAMCMD_SIM_WEBAPI"):
        return os.environ["STEAMCMD_SIM_WEBAPI"]
    explicit = os.environ.get("STEAMCMD_SIM_CONTROL")
    control = Path(explicit) if explicit else steam_home / "standin-control.json"
    try:
        return json.loads(control.read_text()).get("webapi") or None
    except (OSError, ValueError, AttributeError):
        return None


def download_from_catalogue(root: Path, item_id: int, base_url: str) -> tuple[Path, int]:
    """The item's current revision from the fake Web API's catalogue, as steamcmd lays it out.

    The content dir is replaced as a whole (steamcmd keeps only the current version).
    """
    url = f"{base_url.rstrip('/')}/_standin/content/{item_id}"
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            name = response.headers.get("X-Standin-Filename") or f"{item_id}.vpk"
            body = response.read()
    except urllib.error.HTTPError as exc:
        raise ItemFailed({404: "File Not Found", 403: "Access Denied"}.get(
            exc.code, "Failure")) from None
    except OSError:
        raise ItemFailed("No Connection") from None
    directory = item_dir(root, item_id)
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.iterdir():
        if old.is_file() and old.name != name:
            old.unlink()
    (directory / Path(name).name).write_bytes(body)
    _write_state(root)
    return directory, len(body)


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
