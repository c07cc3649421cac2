"""Progress lines on stderr, so stdout stays machine-readable."""

import sys


def say(message: str) -> None:
    print(f"[testhosts] {message}", file=sys.stderr, flush=True)
