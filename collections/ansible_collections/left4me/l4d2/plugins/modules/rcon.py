#!/usr/bin/python
# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: rcon
short_description: Run one console command on a left4me game server over RCON, from the host itself
version_added: 0.1.0
description:
  - Sends one command to one instance's srcds over Source RCON on the host itself and returns
    its output, assembled from however many packets srcds sends it in (an empty
    C(SERVERDATA_RESPONSE_VALUE) follows the command; output is read until srcds echoes it).
  - The RCON password is read on the host, as root, from the instance's own config layer
    (the C(instance.cfg) M(left4me.l4d2.srcds_instance) writes, which srcds runs again after
    C(server.cfg) at every map load), never from the mounted tree a tenant controls and
    never through a link; it never crosses the network or reaches the controller.
  - One login per call, never retried (srcds bans an address at its 6th refused login
    within 30 s or its 11th in all, and the ban mutes its A2S answers too). When the
    server refuses it, something in the server changed its password (a plugin, a
    command); restarting the server restores the one left4me set.
  - A refusal is remembered on the host (C(/run/left4me/rcon-refused/NAME), root 0600,
    holding the unit's InvocationID), and until the server's unit starts again this module
    and M(left4me.l4d2.srcds_info) send nothing to it and say why, so repeated console
    commands or polls never get the host banned from its own server.
  - RCON connects to 127.0.0.1 (or the address the server binds, when it binds one).
  - The whole exchange (connect, login, output) has one deadline, O(timeout).
  - Errors say what happened; the server is not running, nothing listens on its port, the
    password was refused, the address is banned after too many wrong passwords, or no
    complete answer came in time.
  - A command with a line break or NUL is refused before anything is sent (srcds would run
    the text after a line break as a second command).
  - This module is not read-only. A console command may change anything (C(changelevel),
    C(kick), C(quit), cvars), so a command sent is reported as changed, like
    M(ansible.builtin.command); use C(changed_when) for commands that only read.
author:
  - left4me developers (@left4me)
options:
  command:
    description:
      - One console command, for example V(status) or V(changelevel c2m1_highway).
      - One line, no NUL, at most 4000 bytes.
    type: str
    required: true
  timeout:
    description: Seconds the whole exchange may take.
    type: float
    default: 30.0
extends_documentation_fragment:
  - left4me.l4d2.common.state_dir
  - left4me.l4d2.common.config_dir
  - left4me.l4d2.common.instance_name
attributes:
  check_mode:
    description:
      - Checks the command, the instance, that its unit runs and that a password is
        configured, and sends nothing. Reports changed as a real run would.
    support: full
  diff_mode:
    description: A console command has no file to compare.
    support: none
notes:
  - Needs root (ad hoc, C(ansible -b)) to read the password.
seealso:
  - module: left4me.l4d2.srcds_info
  - module: left4me.l4d2.server_logs
"""

EXAMPLES = r"""
- name: Who is on coop1
  left4me.l4d2.rcon:
    name: coop1
    command: status
  register: status
  changed_when: false

- name: Change the map
  left4me.l4d2.rcon:
    name: coop1
    command: changelevel c2m1_highway
"""

RETURN = r"""
output:
  description: What srcds printed for the command, all packets joined.
  returned: success
  type: str
  sample: "hostname: left4me demo coop\nmap     : c1m1_hotel\n..."
stdout_lines:
  description: O(command)'s output, one item a line.
  returned: success
  type: list
  elements: str
seconds:
  description: How long the exchange took (connect, login, command).
  returned: success
  type: float
  sample: 0.042
address:
  description: Where RCON was sent.
  returned: always
  type: str
  sample: 127.0.0.1:27015
"""

from functools import partial  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.left4me.l4d2.plugins.module_utils._reads import (  # noqa: E402
    ReadError,
    argument_spec,
    plan_rcon,
    send_rcon,
)
from ansible_collections.left4me.l4d2.plugins.module_utils._systemd import (  # noqa: E402
    run_in_c,
)

NEEDS_ROOT = (
    "rcon needs root to read the server's RCON password: run with become (-b on the ansible"
    " command line, become: true in a play)"
)


def main():
    module = AnsibleModule(
        argument_spec=argument_spec("rcon"),
        supports_check_mode=True,
    )
    params = module.params
    try:
        plan = plan_rcon(partial(run_in_c, module),
                         params["name"], params["command"], params["timeout"],
                         params["state_dir"], params["config_dir"], NEEDS_ROOT)
    except ReadError as exc:
        module.fail_json(msg=str(exc), **exc.fields)
    module.no_log_values.add(plan.password)
    if module.check_mode:
        module.exit_json(changed=True, address=plan.target.where,
                         msg="check mode: command not sent")
    try:
        result = send_rcon(plan, params["command"], params["timeout"])
    except ReadError as exc:
        module.fail_json(msg=str(exc), **exc.fields)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
