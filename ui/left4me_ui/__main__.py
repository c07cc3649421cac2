"""Operator commands: `python -m left4me_ui init-secret [PATH]` writes the UI secret once."""

from __future__ import annotations

import sys
from pathlib import Path

from left4me_ui import settings


def main(argv: list[str]) -> int:
    if len(argv) < 1 or argv[0] != "init-secret" or len(argv) > 2:
        print("usage: python -m left4me_ui init-secret [PATH]", file=sys.stderr)
        return 2
    path = Path(argv[1]) if len(argv) == 2 else settings.from_environment().secret_file
    if settings.write_new_secret(path):
        print(f"wrote a new UI secret to {path} (mode 0600)")
    else:
        print(f"{path} exists already; left as it is")
    settings.load_secret(path)  # and it is usable
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
