#!/usr/bin/python
# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: srcds_info
short_description: Report every left4me game server instance on a host, with why it is not running
version_added: 0.1.0
description:
  - Reads, in one call per host, every instance configured by M(left4me.l4d2.srcds_instance)
    (each C({config_dir}/instances/NAME.env)) and reports for each where it stands.
  - The state comes from systemd's own properties (C(systemctl show)) and, for a server
    that is not running, its unit's last journal lines. It is one of V(running),
    V(starting), V(restarting) (after a crash, before C(Restart=) runs it again),
    V(stopping), V(stopped) (stopped by left4me, which disables the unit),
    V(stopped_outside_left4me) (inactive while still enabled, so stopped by hand or the
    server quit), V(oom_killed), V(crash_loop) (systemd gave up after C(StartLimitBurst)
    starts), V(failed_at_start) (the overlay mount or another step before the server
    failed), V(failed), or V(not_installed). A server that is not running is never
    reported as running.
  - Reports the restart count (C(NRestarts)), memory (C(MemoryCurrent)) and CPU time
    (C(CPUUsageNSec)) from systemd's accounting; a host that does not account them
    (no cgroup controller, as in containers) gets V(null) and the name in C(not_accounted).
  - Reports whether the instance's overlay is mounted (in PID 1's mount namespace) and,
    for running servers, their A2S_INFO answer (name, map, players/max), all queried at
    once from the host itself.
  - With O(players=true), asks each running server for RCON C(status) on 127.0.0.1 with
    the password from its configuration and returns its players (bots marked). A row
    that does not parse is listed in C(status_problems), never fatal.
  - Never changes anything.
author:
  - left4me developers (@left4me)
options:
  names:
    description:
      - Only these instances. Each must be configured on the host.
      - Default is every configured instance.
    type: list
    elements: str
  players:
    description: Also list each running server's players from RCON C(status).
    type: bool
    default: false
  journal_lines:
    description:
      - How many of the unit's last journal lines to return for a server that is not
        running (0 for none).
    type: int
    default: 10
  a2s_timeout:
    description: Seconds to wait for A2S_INFO answers (all servers are asked at once).
    type: float
    default: 1.0
  rcon_timeout:
    description: Seconds one server's RCON C(status) may take, with O(players=true).
    type: float
    default: 5.0
  rcon_refused:
    description:
      - Servers that refused RCON before, as instance name -> the C(invocation) they
        refused in (what an earlier call returned). With O(players=true) they are not asked
        again until their unit starts anew (srcds bans an address at its 6th refused login
        within 30 s or its 11th in all, RCON and A2S both); C(rcon_refused) stays true for
        them.
      - The host remembers a refusal too (C(/run/left4me/rcon-refused/NAME), the unit's
        InvocationID, written by this module and M(left4me.l4d2.rcon) at the first refused
        login), so a server that refused one of them is asked by neither until it restarts.
        That record is the only thing this module writes, and it changes nothing of the
        server's.
    type: dict
    default: {}
extends_documentation_fragment:
  - left4me.l4d2.common.state_dir
  - left4me.l4d2.common.config_dir
  - left4me.l4d2.attributes.read_only
notes:
  - Needs root (ad hoc, C(ansible -b)) to read the journal, the mount table of PID 1 and
    the RCON password.
  - A2S and RCON go to 127.0.0.1 for a server bound to every address, else to the address
    it binds; a unit whose C(IPAddressAllow=) list leaves out C(localhost) does not answer
    them.
seealso:
  - module: left4me.l4d2.srcds_instance
  - module: left4me.l4d2.rcon
  - module: left4me.l4d2.server_logs
"""

EXAMPLES = r"""
- name: Where every server on the host stands
  left4me.l4d2.srcds_info:
  register: servers

- name: Who plays on coop1
  left4me.l4d2.srcds_info:
    names: [coop1]
    players: true
  register: coop1

- name: Say which servers are down and why
  ansible.builtin.debug:
    msg: "{{ item.name }}: {{ item.reason }}"
  loop: "{{ servers.instances | rejectattr('running') }}"
  loop_control:
    label: "{{ item.name }}"
"""

RETURN = r"""
instances:
  description: One entry per instance, sorted by name.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Instance name.
      type: str
      sample: coop1
    unit:
      description: The systemd unit.
      type: str
      sample: left4me-server@coop1.service
    port:
      description: Game port from the env file.
      type: int
      sample: 27015
    ip:
      description: Address the server binds.
      type: str
      sample: 0.0.0.0
    state:
      description: Where the server stands (see the description).
      type: str
      sample: crash_loop
    running:
      description: Whether the server process is running.
      type: bool
    reason:
      description: The state in a sentence a person reads.
      type: str
      sample: "crash loop: gave up after 5 starts within 60 s (killed by SIGSEGV)"
    active_state:
      description: systemd's C(ActiveState).
      type: str
      sample: failed
    sub_state:
      description: systemd's C(SubState).
      type: str
      sample: failed
    result:
      description: systemd's C(Result) of the last run.
      type: str
      sample: start-limit-hit
    enabled:
      description: Whether the unit is enabled (left4me enables the servers it runs).
      type: bool
    restarts:
      description: How often systemd restarted the server since it was last started (C(NRestarts)).
      type: int
      sample: 0
    memory_bytes:
      description: Memory the unit uses (C(MemoryCurrent)); V(null) when not accounted.
      type: int
      sample: 183500800
    cpu_seconds:
      description: CPU time the unit used (C(CPUUsageNSec)); V(null) when not accounted.
      type: float
      sample: 12.5
    not_accounted:
      description: What this host does not account (V(memory), V(cpu)).
      type: list
      elements: str
      sample: [memory]
    mounted:
      description: Whether the instance's overlay is mounted on O(state_dir)C(/runtime/NAME/merged).
      type: bool
    merged:
      description: The instance's overlay mount point.
      type: str
      sample: /var/lib/left4me/runtime/coop1/merged
    journal:
      description: The unit's last journal lines when it is not running (passwords masked).
      type: list
      elements: str
    a2s:
      description: The A2S_INFO answer of a running server (V(null) without one).
      type: dict
      sample: {name: "left4me demo coop", map: c1m1_hotel, players: 1, max_players: 8}
    a2s_error:
      description: Why a running server gave no A2S answer.
      type: str
    players:
      description: Players from RCON C(status) (humans and bots), with O(players=true).
      type: list
      elements: dict
      sample:
        - {userid: 2, slot: 1, name: Veteran, bot: false, steam_id: "STEAM_1:1:41813649",
           connected: "2:05:07", connected_seconds: 7507, ping: 64, loss: 0, state: active,
           rate: 30000, address: "127.0.0.4:27005"}
        - {userid: 4, slot: null, name: Coach, bot: true, state: active}
    players_error:
      description: Why the players could not be read (RCON refused, timed out ...).
      type: str
    invocation:
      description: systemd's C(InvocationID) of the unit's current run (new at every start).
      type: str
    rcon_refused:
      description:
        - Whether the server refused left4me's RCON password in this run (something in the
          server changed it; a restart restores it). Pass it back in O(rcon_refused).
      type: bool
    status_problems:
      description: Rows of C(status) that did not parse, with their line numbers.
      type: list
      elements: str
"""

from functools import partial  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.left4me.l4d2.plugins.module_utils._reads import (  # noqa: E402
    ReadError,
    argument_spec,
    read_info,
)
from ansible_collections.left4me.l4d2.plugins.module_utils._systemd import (  # noqa: E402
    run_in_c,
)

NEEDS_ROOT = (
    "srcds_info needs root to read the journal, PID 1's mounts and the RCON password: run"
    " with become (-b on the ansible command line, become: true in a play)"
)


def main():
    module = AnsibleModule(
        argument_spec=argument_spec("info"),
        supports_check_mode=True,
    )
    params = module.params
    try:
        instances = read_info(partial(run_in_c, module),
                              params["names"], params, params["state_dir"],
                              params["config_dir"], NEEDS_ROOT)
    except ReadError as exc:
        module.fail_json(msg=str(exc), **exc.fields)
    module.exit_json(changed=False, instances=instances)


if __name__ == "__main__":
    main()
