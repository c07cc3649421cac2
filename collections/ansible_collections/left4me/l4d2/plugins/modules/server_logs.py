#!/usr/bin/python
# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: server_logs
short_description: Read a left4me game server's journal, the last lines or those after a cursor
version_added: 0.1.0
description:
  - Reads the journal of one instance's unit C(left4me-server@NAME.service) (the server's
    console output and what systemd said about it) with C(journalctl -o json).
  - Without O(cursor), returns the last O(lines) entries. With O(cursor) (the C(cursor) a
    previous call returned), returns at most O(lines) entries that came after it, oldest
    first, and C(more) when further entries are waiting; calling again with the returned
    C(cursor) follows the log without skipping or repeating a line.
  - Bounded in size, each message at most 2000 characters and the page at most O(max_bytes)
    of messages (a tail keeps its newest lines, a follow stops early and sets C(more)).
    RCON and server passwords in messages are masked.
  - Never changes anything.
author:
  - left4me developers (@left4me)
options:
  lines:
    description: How many entries at most, 1 to 5000.
    type: int
    default: 100
  cursor:
    description: Return the entries after this cursor (from a previous call's C(cursor)).
    type: str
  max_bytes:
    description:
      - Upper bound of the messages returned, in bytes (roughly; at least one entry is
        returned).
    type: int
    default: 262144
extends_documentation_fragment:
  - left4me.l4d2.common.state_dir
  - left4me.l4d2.common.config_dir
  - left4me.l4d2.common.instance_name
  - left4me.l4d2.attributes.read_only
notes:
  - Needs root (ad hoc, C(ansible -b)) to read the system journal.
  - An instance that is no longer configured can still be read while its journal is kept.
seealso:
  - module: left4me.l4d2.srcds_info
"""

EXAMPLES = r"""
- name: The last 50 lines of coop1's log
  left4me.l4d2.server_logs:
    name: coop1
    lines: 50
  register: log

- name: What was logged since
  left4me.l4d2.server_logs:
    name: coop1
    cursor: "{{ log.cursor }}"
  register: newer
"""

RETURN = r"""
entries:
  description: The entries, oldest first.
  returned: always
  type: list
  elements: dict
  contains:
    time:
      description: When it was logged (UTC, ISO 8601, microseconds).
      type: str
      sample: "2026-11-27T16:40:12.345678Z"
    identifier:
      description: Who logged it (C(systemd), the server's program name, C(left4me-mount)).
      type: str
      sample: srcds_run
    pid:
      description: Process id that logged it.
      type: str
    priority:
      description: syslog priority (0 emergency ... 7 debug).
      type: int
      sample: 6
    message:
      description: The line, secrets masked, bounded to 2000 characters.
      type: str
      sample: "Map c1m1_hotel loaded (0 players stay connected)"
    cursor:
      description: This entry's journal cursor.
      type: str
lines:
  description: The entries as text lines, C(TIME IDENTIFIER) then the message.
  returned: always
  type: list
  elements: str
cursor:
  description:
    - Pass it as O(cursor) to read what comes after this page. The given cursor when
      nothing new came; V(null) when the journal holds nothing for the unit yet.
  returned: always
  type: str
more:
  description: With O(cursor), whether more entries were waiting than this page holds.
  returned: always
  type: bool
truncated_lines:
  description: How many messages were cut to 2000 characters.
  returned: always
  type: int
unit:
  description: The unit whose journal was read.
  returned: always
  type: str
  sample: left4me-server@coop1.service
"""

from functools import partial  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.left4me.l4d2.plugins.module_utils._reads import (  # noqa: E402
    ReadError,
    argument_spec,
    read_logs,
)
from ansible_collections.left4me.l4d2.plugins.module_utils._systemd import (  # noqa: E402
    run_in_c,
)

NEEDS_ROOT = (
    "server_logs needs root to read the system journal: run with become (-b on the ansible"
    " command line, become: true in a play)"
)


def main():
    module = AnsibleModule(
        argument_spec=argument_spec("logs"),
        supports_check_mode=True,
    )
    params = module.params
    try:
        result = read_logs(partial(run_in_c, module),
                           params["name"], params, params["state_dir"], params["config_dir"],
                           NEEDS_ROOT)
    except ReadError as exc:
        module.fail_json(msg=str(exc), **exc.fields)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
