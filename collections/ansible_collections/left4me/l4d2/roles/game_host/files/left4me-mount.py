# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""left4me-mount: mount or unmount one left4me instance's overlay (runs as root).

    /usr/bin/python3 -I left4me-mount mount NAME  [--state-dir DIR] [--config-dir DIR]
                                                  [--owner USER]
    /usr/bin/python3 -I left4me-mount umount NAME [--state-dir DIR]

Callers name the interpreter (the unit's ExecStartPre=+/ExecStopPost=+ lines and
any sudoers rule), so neither PATH nor a shebang decides what runs as root, and
-I keeps PYTHON* variables and the user site out.

``mount`` reads LEFT4ME_LOWERDIRS from {config_dir}/instances/NAME.env, accepts
only layers under {state_dir}/installation, overlays and workshop_cache, and
mounts {state_dir}/runtime/NAME/merged in PID 1's mount namespace. A mount with
other layers is replaced (the game unit calls this in ExecStartPre, when its
server is not running). ``umount`` unmounts it. Both exit 0 when there is
nothing to do, otherwise print one line on stderr and exit 1.

The logic lives in left4me_overlay.py next to this file. Through sudo
(SUDO_UID set) the path and owner options are refused, so a sudoers rule can
only ever pick a verb and an instance name.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import left4me_overlay as overlay  # noqa: E402

PROG = "left4me-mount"


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(1, f"{PROG}: {message}\n")


def parse_args(argv):
    parser = _Parser(prog=PROG, description="Mount or unmount a left4me instance overlay.")
    parser.add_argument("verb", choices=["mount", "umount"])
    parser.add_argument("name")
    parser.add_argument("--state-dir", default=None)
    parser.add_argument("--config-dir", default=None)
    parser.add_argument("--owner", default=None)
    return parser.parse_args(argv)


def run(args):
    name = overlay.validate_instance_name(args.name)
    overrides = [o for o in ("state_dir", "config_dir", "owner") if getattr(args, o) is not None]
    if overrides and "SUDO_UID" in os.environ:
        raise overlay.OverlayError("--state-dir, --config-dir and --owner are refused under sudo")
    state_dir = args.state_dir or overlay.DEFAULT_STATE_DIR
    overlay.enter_mount_namespace()
    if args.verb == "umount":
        plan = overlay.plan_unmount(name, state_dir=state_dir)
    else:
        env_path = overlay.env_file_path(name, args.config_dir or overlay.DEFAULT_CONFIG_DIR)
        plan = overlay.plan_mount(
            name,
            overlay.lowerdirs_from_env(overlay.read_env_file(env_path), env_path),
            state_dir=state_dir,
            owner=args.owner or overlay.DEFAULT_OWNER,
            remount=True,
        )
    if plan.changed:
        overlay.apply_plan(plan)


def main(argv=None):
    # Never pin a directory (e.g. a unit's WorkingDirectory in merged/) while unmounting.
    os.chdir("/")
    os.umask(0o022)
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        run(args)
    except (overlay.OverlayError, OSError) as exc:
        message = " ".join(str(exc).split())
        sys.stderr.write(f"{PROG}: {args.verb} {args.name}: {message}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
