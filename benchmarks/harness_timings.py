"""Print how long the test-host world takes: image, boot, converge, idempotent re-run.

    sudo .venv/bin/python benchmarks/harness_timings.py [--cold]

--cold rebuilds the debootstrap image first (about a minute and a half).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from testhosts import host, image  # noqa: E402


def timed(label: str, action, results: list[tuple[str, float]]):
    started = time.monotonic()
    value = action()
    results.append((label, time.monotonic() - started))
    return value


def converge(target: host.TestHost) -> None:
    """site.yml on the host with the demo world's settings (its group_vars)."""
    with tempfile.TemporaryDirectory() as inventory:
        (Path(inventory) / "group_vars").symlink_to(PROJECT / "inventories/demo/group_vars")
        (Path(inventory) / "hosts.yml").write_text(
            f"l4d2_hosts:\n  hosts:\n    {target.name}:\n      ansible_host: {target.address}\n"
            f"      ansible_user: {target.user}\n"
            f"      ansible_ssh_private_key_file: {target.identity_file}\n"
            f"      ansible_ssh_common_args: -F {target.ssh_config}\n"
        )
        subprocess.run(["ansible-playbook", "-i", inventory, "playbooks/site.yml"],
                       cwd=PROJECT, check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cold", action="store_true", help="rebuild the image first")
    args = parser.parse_args()
    results: list[tuple[str, float]] = []
    timed("image (" + ("cold build" if args.cold else "cached") + ")",
          lambda: image.ensure_image(rebuild=args.cold), results)
    timed("apt repository (" + ("cold download" if args.cold else "cached") + ")",
          lambda: image.ensure_repo(rebuild=args.cold), results)
    name = host.unique_name("bench")
    try:
        target = timed("create host (unpack + boot + ssh)", lambda: host.create(name), results)
        timed("converge site.yml", lambda: converge(target), results)
        timed("re-run site.yml (idempotent)", lambda: converge(target), results)
    finally:
        timed("destroy host", lambda: host.destroy(name), results)
    for label, seconds in results:
        print(f"{label:<36} {seconds:7.1f} s")


if __name__ == "__main__":
    main()
