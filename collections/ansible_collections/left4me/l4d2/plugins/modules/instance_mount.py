#!/usr/bin/python
# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: instance_mount
short_description: Mount or unmount the kernel overlayfs of a left4me instance
version_added: 0.1.0
description:
  - Manages the overlay mount at C({state_dir}/runtime/{name}/merged) of one left4me
    game server instance. Its lower layers are the instance's overlays (first wins)
    followed by the shared game installation; C(upper) and C(work) hold the instance's
    own writes, on its writes filesystem (an ext4 image, C(runtime/{name}/writes.img),
    as large as the env file's C(LEFT4ME_UPPER_DIR_MAX), 2 GiB when unset), which is made,
    resized to a changed cap and loop-mounted at C(runtime/{name}/writes) first, and
    unmounted after the overlay. A write past the cap fails with ENOSPC; a smaller cap than
    the filesystem holds is refused, naming both sizes.
  - Every lower layer must be an existing directory under one of O(allowed_roots) after
    symlinks are resolved; at most 500 layers. The layers are handed to the kernel one by
    one (C(lowerdir+), kernel 6.8 or later), so their number and joined length are not
    limited by a mount option string; older kernels fall back to C(mount(2)), which takes
    at most one page of options.
  - The mount is made in the mount namespace of PID 1, so it is visible to systemd units.
  - An instance made before the writes filesystem keeps its plain C(runtime/{name}/upper)
    dir; with the layers from the env file, such an upper dir holding more than the env
    file's C(LEFT4ME_UPPER_DIR_MAX) bytes (C(srcds_instance)'s C(upper_dir_max)) is
    refused, counted without following any link in it.
  - An upper dir that carries C(user.fuseoverlayfs.*) extended attributes (left by
    fuse-overlayfs) is refused, because kernel overlayfs would resurrect files deleted there.
  - Creates C(runtime/{name}/) with C(upper) and C(merged) (mode 0755, owned by O(owner))
    and C(work) (mode 0700, root) when they are missing, and fixes their owner and mode.
  - Check mode and the result's RV(writes) say what would be done to the writes
    filesystem.
  - Everything is validated before anything is created; a failed mount removes the
    directories this run created, and a failed remount restores the previous layers.
author:
  - left4me developers (@left4me)
options:
  state:
    description:
      - V(mounted) mounts the overlay (a no-op when it is mounted with the same layers).
      - V(unmounted) unmounts it; an overlay that is not mounted is fine.
    type: str
    choices: [mounted, unmounted]
    default: mounted
  lowerdirs:
    description:
      - Lower layers, first wins, normally ending with the shared installation.
      - When omitted, they are read from the instance env file
        C({config_dir}/instances/{name}.env), key C(LEFT4ME_LOWERDIRS), colon-separated,
        first wins. That file has one shell-style C(KEY=value) per line; blank lines and
        C(#) comments are ignored, C(export) is accepted and values may be quoted.
      - Paths must be absolute, without C(..), C(:), C(,), backslashes or newlines, and at
        most 255 bytes once symlinks are resolved.
    type: list
    elements: path
  allowed_roots:
    description:
      - Directories the lower layers must lie under.
      - Defaults to C(installation), C(overlays) and C(workshop_cache) under O(state_dir).
    type: list
    elements: path
  remount:
    description:
      - When the overlay is mounted with different layers, unmount it and mount the new
        ones. Without it that case fails, because a running server would lose its files.
    type: bool
    default: false
extends_documentation_fragment:
  - left4me.l4d2.common.state_dir
  - left4me.l4d2.common.config_dir
  - left4me.l4d2.common.owner
  - left4me.l4d2.common.instance_name
attributes:
  check_mode:
    description: Predicts changes without mounting or creating anything.
    support: full
  diff_mode:
    description: Shows the mount state and lower layers before and after.
    support: full
notes:
  - Needs root (CAP_SYS_ADMIN) on the target and Linux with overlayfs.
seealso:
  - name: overlayfs documentation
    description: Kernel documentation of overlayfs, including C(lowerdir+).
    link: https://docs.kernel.org/filesystems/overlayfs.html
"""

EXAMPLES = r"""
- name: Mount the overlay of instance coop1 from its env file
  left4me.l4d2.instance_mount:
    name: coop1

- name: Mount instance versus2 with explicit layers
  left4me.l4d2.instance_mount:
    name: versus2
    lowerdirs:
      - /var/lib/left4me/overlays/competitive
      - /var/lib/left4me/overlays/maps
      - /var/lib/left4me/installation

- name: Switch a stopped instance to new layers
  left4me.l4d2.instance_mount:
    name: versus2
    lowerdirs:
      - /var/lib/left4me/overlays/tickrate
      - /var/lib/left4me/installation
    remount: true

- name: Unmount the overlay of a deleted instance
  left4me.l4d2.instance_mount:
    name: coop1
    state: unmounted
"""

RETURN = r"""
merged:
  description: Mount point of the instance overlay.
  returned: always
  type: str
  sample: /var/lib/left4me/runtime/coop1/merged
lowerdirs:
  description:
    - Lower layers mounted after this run (resolved paths, first wins).
    - Empty when the overlay is unmounted.
  returned: always
  type: list
  elements: str
  sample: [/var/lib/left4me/overlays/maps, /var/lib/left4me/installation]
mounted:
  description: Whether the overlay is mounted after this run (predicted in check mode).
  returned: always
  type: bool
  sample: true
writes:
  description:
    - What this run did (or, in check mode, would do) to the instance's writes filesystem,
      one line a step; empty when nothing, or for an instance with a plain upper dir.
  returned: always
  type: list
  elements: str
  sample: [create /var/lib/left4me/runtime/coop1/writes.img (2.0 GiB, sparse),
           mount /var/lib/left4me/runtime/coop1/writes.img on /var/lib/left4me/runtime/coop1/writes]
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.left4me.l4d2.plugins.module_utils._common import (  # noqa: E402
    DEFAULT_CONFIG_DIR,
    DEFAULT_RUNTIME_USER,
    DEFAULT_STATE_DIR,
)
from ansible_collections.left4me.l4d2.plugins.module_utils._layout import (  # noqa: E402
    env_file_path,
)
from ansible_collections.left4me.l4d2.plugins.module_utils._mount import (  # noqa: E402
    MountError,
    apply_mount_plan,
    builds_lock,
    enter_mount_namespace,
    lowerdirs_from_env,
    plan_mount,
    plan_unmount,
    read_env_file,
    upper_dir_max_from_env,
)


def make_plan(params):
    if params["state"] == "unmounted":
        return plan_unmount(params["name"], state_dir=params["state_dir"])
    lowerdirs, upper_dir_max = params["lowerdirs"], None
    if lowerdirs is None:
        path = env_file_path(params["name"], params["config_dir"], MountError)
        env = read_env_file(path)
        lowerdirs = lowerdirs_from_env(env, path)
        upper_dir_max = upper_dir_max_from_env(env, path)
    return plan_mount(
        params["name"],
        lowerdirs,
        state_dir=params["state_dir"],
        allowed_roots=params["allowed_roots"],
        owner=params["owner"],
        remount=params["remount"],
        upper_dir_max=upper_dir_max,
    )


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            state=dict(type="str", default="mounted", choices=["mounted", "unmounted"]),
            lowerdirs=dict(type="list", elements="path"),
            state_dir=dict(type="path", default=DEFAULT_STATE_DIR),
            config_dir=dict(type="path", default=DEFAULT_CONFIG_DIR),
            allowed_roots=dict(type="list", elements="path"),
            owner=dict(type="str", default=DEFAULT_RUNTIME_USER),
            remount=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    try:
        # Plan and act where the mount must land: the host's (PID 1's) namespace; the game
        # layer is resolved and mounted under the builds lock (an update waits meanwhile).
        enter_mount_namespace()
        with builds_lock(module.params["state_dir"]):
            plan = make_plan(module.params)
            result = describe(plan, module._diff)
            if plan.changed and not module.check_mode:
                apply_mount_plan(plan)
    except (MountError, OSError) as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)


def describe(plan, diff: bool) -> dict:
    before = {"mounted": plan.before.mounted, "lowerdirs": plan.before.lowerdirs}
    if plan.state == "mounted":
        after = {"mounted": True, "lowerdirs": plan.lowerdirs}
    else:
        after = {"mounted": False, "lowerdirs": []}
    result = dict(
        changed=plan.changed,
        merged=plan.paths.merged,
        lowerdirs=after["lowerdirs"],
        mounted=after["mounted"],
        writes=plan.describe_writes(),
    )
    if diff:
        result["diff"] = dict(before=before, after=after)
    return result


if __name__ == "__main__":
    main()
