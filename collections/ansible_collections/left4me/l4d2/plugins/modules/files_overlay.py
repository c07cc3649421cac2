#!/usr/bin/python
# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: files_overlay
short_description: Keep a left4me overlay holding exactly a declared set of text files
version_added: 0.1.0
description:
  - Writes each file of O(files) into C({state_dir}/overlays/{id}/) (a game root, so configs go
    to C(left4dead2/cfg/...)) with its mode and O(owner)/O(group), through a temp file renamed
    into place.
  - Keeps a manifest C(.left4me-files.json) in the overlay. Files the previous manifest listed
    that O(files) no longer has are deleted; files it never listed are left alone.
  - No write leaves the overlay. C(dest) must be relative without C(.), C(..) or empty
    components, and every existing directory on the way (the overlay directory included) must
    be a real directory, not a symlink. A symlink or directory where a file belongs is an error.
  - Everything is validated and planned before anything is written.
author:
  - left4me developers (@left4me)
options:
  files:
    description: The complete set of files the overlay holds.
    type: list
    elements: dict
    default: []
    suboptions:
      dest:
        description: Path relative to the overlay, e.g. C(left4dead2/cfg/server.cfg).
        type: str
        required: true
      content:
        description: The file's text (UTF-8). Render templates on the controller first.
        type: str
        required: true
      mode:
        description: Octal mode as a string; setuid, setgid and sticky bits are refused.
        type: str
        default: "0644"
  owner:
    description: User owning the files and the directories created.
    type: str
    default: root
  group:
    description: Group of the files and directories; defaults to the primary group of O(owner).
    type: str
  directory_mode:
    description: Mode of directories this module creates (existing ones are left as they are).
    type: str
    default: "0755"
extends_documentation_fragment:
  - left4me.l4d2.common.state_dir
  - left4me.l4d2.common.overlay_id
attributes:
  check_mode:
    description: Reports what would be written and deleted without touching anything.
    support: full
  diff_mode:
    description: Shows each created, changed and deleted file's text (up to 64 KiB).
    support: full
notes:
  - Text only; binary payloads belong in script-built overlays.
"""

EXAMPLES = r"""
- name: Server config and message of the day for the competitive overlay
  left4me.l4d2.files_overlay:
    id: competitive
    files:
      - dest: left4dead2/cfg/server.cfg
        content: "{{ lookup('ansible.builtin.template', 'server.cfg.j2') }}"
        mode: "0640"
      - dest: left4dead2/motd.txt
        content: "Welcome!\n"
    group: left4me
"""

RETURN = r"""
path:
  description: The overlay directory.
  returned: always
  type: str
  sample: /var/lib/left4me/overlays/competitive
written:
  description: Files created, changed or given new mode/owner (relative paths).
  returned: always
  type: list
  elements: str
  sample: [left4dead2/cfg/server.cfg]
removed:
  description: Files deleted because the manifest listed them and O(files) no longer does.
  returned: always
  type: list
  elements: str
  sample: [left4dead2/cfg/old.cfg]
unchanged:
  description: Files already as wanted.
  returned: always
  type: list
  elements: str
  sample: [left4dead2/motd.txt]
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.left4me.l4d2.plugins.module_utils._common import (  # noqa: E402
    DEFAULT_STATE_DIR,
    owner_ids,
)
from ansible_collections.left4me.l4d2.plugins.module_utils._files_overlay import (  # noqa: E402
    FilesOverlayError,
    apply_files_plan,
    parse_mode,
    plan_diff,
    plan_files,
)
from ansible_collections.left4me.l4d2.plugins.module_utils._layout import (  # noqa: E402
    overlay_root,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            id=dict(type="str", required=True),
            files=dict(
                type="list",
                elements="dict",
                default=[],
                options=dict(
                    dest=dict(type="str", required=True),
                    content=dict(type="str", required=True),
                    mode=dict(type="str", default="0644"),
                ),
            ),
            state_dir=dict(type="path", default=DEFAULT_STATE_DIR),
            owner=dict(type="str", default="root"),
            group=dict(type="str"),
            directory_mode=dict(type="str", default="0755"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    try:
        root = overlay_root(params["id"], params["state_dir"], FilesOverlayError)
        owner = owner_ids(params["owner"], params["group"], FilesOverlayError)
        plan = plan_files(root, params["files"], owner, parse_mode(params["directory_mode"]))
    except (FilesOverlayError, OSError) as exc:
        module.fail_json(msg=str(exc))

    result = dict(
        changed=plan.changed,
        path=root,
        written=[c.dest for c in plan.changes if c.action != "remove"],
        removed=[c.dest for c in plan.changes if c.action == "remove"],
        unchanged=plan.unchanged,
    )
    if module._diff:
        result["diff"] = plan_diff(plan)
    if plan.changed and not module.check_mode:
        try:
            apply_files_plan(plan)
        except (FilesOverlayError, OSError) as exc:
            module.fail_json(msg=f"{exc}; run again once fixed (the manifest still lists every"
                                 " file this run may have written)", path=root)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
