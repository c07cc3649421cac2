# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""left4me-mount: mount or unmount one left4me instance's overlayfs (runs as root).

    /usr/bin/python3 -I left4me-mount mount NAME  [--state-dir DIR] [--config-dir DIR]
                                                  [--owner USER]
    /usr/bin/python3 -I left4me-mount umount NAME [--state-dir DIR]
    /usr/bin/python3 -I left4me-mount check       [--state-dir DIR] [--config-dir DIR]

Callers name the interpreter (the unit's ExecStartPre=+/ExecStopPost=+ lines and
any sudoers rule), so neither PATH nor a shebang decides what runs as root, and
-I keeps PYTHON* variables and the user site out.

``mount`` reads LEFT4ME_LOWERDIRS from {config_dir}/instances/NAME.env, takes the
installation layer from {state_dir}/builds/current (the build current at this start; a
running server keeps the one it was mounted with), accepts only layers under
{state_dir}/installation, builds, overlays and workshop_cache, and mounts
{state_dir}/runtime/NAME/merged in PID 1's mount namespace. The server's upper and work
dirs live on its writes filesystem: an ext4 image, runtime/NAME/writes.img, as large as
LEFT4ME_UPPER_DIR_MAX (2 GiB when unset), made at the first mount, grown or shrunk to a
changed cap (a shrink below what it holds is refused), and loop-mounted at
runtime/NAME/writes first, so a write past the cap fails with ENOSPC as it happens. An
instance whose runtime/NAME/upper is a plain directory (made before) keeps it, and its
start is refused while it holds more than the cap. A mount with other layers is replaced
(the game unit calls this in ExecStartPre, when its server is not running). ``umount``
unmounts the overlay, then the writes filesystem (its loop device goes with it). Both
exit 0 when there is nothing to do, otherwise print one line on stderr and exit 1.
``check`` (run by left4me-upper-check.timer) kills every running server with a plain
upper dir that holds more than its cap, printing why: the unit fails, and its restart is
refused by ``mount`` with the same reason until the upper dir is smaller.

The logic lives in left4me_mount.py (and left4me_layout.py, left4me_common.py) next to
this file. Through sudo (SUDO_UID set) the path and owner options are refused, so a
sudoers rule can only ever pick a verb and an instance name.
"""

import argparse
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import left4me_common as common  # noqa: E402
import left4me_layout as layout  # noqa: E402
import left4me_mount as mount_lib  # noqa: E402

PROG = "left4me-mount"


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(1, f"{PROG}: {message}\n")


def parse_args(argv):
    parser = _Parser(prog=PROG, description="Mount or unmount a left4me instance overlay.")
    parser.add_argument("verb", choices=["mount", "umount", "check"])
    parser.add_argument("name", nargs="?", default="")
    parser.add_argument("--state-dir", default=None)
    parser.add_argument("--config-dir", default=None)
    parser.add_argument("--owner", default=None)
    return parser.parse_args(argv)


def check(state_dir, config_dir):
    """Kill each running server whose plain upper dir is over its cap (systemd then fails
    it); a capped server's filesystem refuses its writes itself."""
    for name, why in mount_lib.uppers_over_cap(config_dir, state_dir):
        sys.stderr.write(f"{PROG}: check {name}: {' '.join(why.split())}; killing the server\n")
        # Only the main process: systemd then stops the rest and runs ExecStopPost (the
        # unmount), which a kill of the whole unit would catch starting and kill as well.
        subprocess.run(["/usr/bin/systemctl", "kill", "--kill-whom=main", "--signal=SIGKILL",
                        layout.server_unit_name(name, mount_lib.MountError)], check=False)


def run(args):
    overrides = [o for o in ("state_dir", "config_dir", "owner") if getattr(args, o) is not None]
    if overrides and "SUDO_UID" in os.environ:
        raise mount_lib.MountError("--state-dir, --config-dir and --owner are refused under sudo")
    state_dir = args.state_dir or common.DEFAULT_STATE_DIR
    if args.verb == "check":
        if args.name or "SUDO_UID" in os.environ:
            raise mount_lib.MountError("check takes no instance name and is root's alone")
        check(state_dir, args.config_dir or common.DEFAULT_CONFIG_DIR)
        return
    name = layout.validate_instance_name(args.name, mount_lib.MountError)
    mount_lib.enter_mount_namespace()
    if args.verb == "umount":
        plan = mount_lib.plan_unmount(name, state_dir=state_dir)
        if plan.changed:
            mount_lib.apply_mount_plan(plan)
        return
    env_path = layout.env_file_path(name, args.config_dir or common.DEFAULT_CONFIG_DIR)
    env = mount_lib.read_env_file(env_path)
    # The game layer is resolved (builds/current) and mounted under the builds lock, so
    # an update cannot remove the build between the two.
    with mount_lib.builds_lock(state_dir):
        plan = mount_lib.plan_mount(
            name,
            mount_lib.lowerdirs_from_env(env, env_path),
            state_dir=state_dir,
            owner=args.owner or common.DEFAULT_RUNTIME_USER,
            remount=True,
            upper_dir_max=mount_lib.upper_dir_max_from_env(env, env_path),
        )
        if plan.changed:
            mount_lib.apply_mount_plan(plan)


def main(argv=None):
    # Never pin a directory (e.g. a unit's WorkingDirectory in merged/) while unmounting.
    os.chdir("/")
    os.umask(0o022)
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        run(args)
    except (mount_lib.MountError, OSError) as exc:
        message = " ".join(str(exc).split())
        sys.stderr.write(f"{PROG}: {args.verb} {args.name}: {message}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
