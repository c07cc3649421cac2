"""Where the UI finds the project and which inventory it drives."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[2]


def inventory_path() -> Path:
    """The inventory the UI shows and converges: LEFT4ME_INVENTORY, else the demo world."""
    configured = os.environ.get("LEFT4ME_INVENTORY", "inventories/demo")
    path = Path(configured)
    return path if path.is_absolute() else PROJECT_DIR / path
