"""Command line: build the image, create/destroy/list hosts, probe enforcement."""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict

from testhosts import enforcement, host, image


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testhosts", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser(
        "image", help="build (or reuse) the cached root filesystem and its apt repository")
    build.add_argument("--rebuild", action="store_true", help="build both even if cached")
    create = commands.add_parser("create", help="boot hosts; prints their JSON descriptions")
    create.add_argument("names", nargs="+")
    create.add_argument("--index", type=int, help="address slot (0 is the demo host's)")
    destroy = commands.add_parser("destroy", help="power hosts off and remove every trace")
    destroy.add_argument("names", nargs="*")
    destroy.add_argument("--all", action="store_true")
    commands.add_parser("list", help="print the live hosts as JSON")
    probe = commands.add_parser("probe", help="report what a host enforces")
    probe.add_argument("name")
    commands.add_parser("vm-image", help="build (or reuse) the qemu VM image (testhosts/vm.py)")
    supervise = commands.add_parser("supervise", help=argparse.SUPPRESS)
    supervise.add_argument("name")
    args = parser.parse_args(argv)

    if args.command == "image":
        started = time.monotonic()
        print(image.ensure_image(rebuild=args.rebuild))
        print(image.ensure_repo(rebuild=args.rebuild))
        print(f"{time.monotonic() - started:.1f} s", file=sys.stderr)
    elif args.command == "create":
        if args.index is not None and len(args.names) != 1:
            parser.error("--index names one slot, so give one host name with it")
        booted = [host.create(name, args.index) for name in args.names]
        print(json.dumps([asdict(h) for h in booted], indent=2))
    elif args.command == "destroy":
        for name in host.names() if args.all else args.names:
            host.destroy(name)
    elif args.command == "list":
        print(json.dumps([asdict(host.load(n)) for n in host.names()], indent=2))
    elif args.command == "probe":
        findings = enforcement.probe(host.load(args.name))
        print(json.dumps([asdict(f) for f in findings], indent=2))
    elif args.command == "vm-image":
        from testhosts import vm  # only this command needs the VM code

        print(vm.ensure_vm_image())
    elif args.command == "supervise":
        return host.supervise(args.name)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (ValueError, RuntimeError, TimeoutError, LookupError) as error:
        print(f"testhosts: error: {error}", file=sys.stderr)
        sys.exit(1)
