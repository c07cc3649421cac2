#!/usr/bin/python
# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: srcds_instance
short_description: Configure, start, stop and remove left4me game server instances
version_added: 0.1.0
description:
  - Manages left4me Left 4 Dead 2 server instances, each run by the template unit
    C(left4me-server@NAME.service) on a kernel overlayfs of its own.
  - One call handles one instance (O(name) and the per-instance options at the top level)
    or any number of them (O(instances)); a host with 20 instances costs one call, and
    C(systemctl) is run once per action for all of them.
  - Writes the instance env file C({config_dir}/instances/NAME.env) (root:left4me 0640, no
    secrets) with C(LEFT4ME_LOWERDIRS), the complete layer list, first wins, the
    installation last; C(LEFT4ME_PORT); and the srcds settings.
  - Writes the instance's config layer C({state_dir}/overlays/.instance-NAME/), the first of
    its layers (no overlay can replace its files). Its C(left4dead2/cfg/left4me/instance.cfg)
    (root:left4me 0640) holds O(instances[].rcon_password) and points C(servercfgfile) at
    C(left4me/mapload.cfg); the unit runs it with C(+exec), so the password is never on a
    command line. At every map load srcds runs C(mapload.cfg), which sets
    O(instances[].hostname), runs the overlays' C(server.cfg) (which wins over the
    hostname), then C(instance.cfg) again, so the RCON password is always the one set
    here, which M(left4me.l4d2.rcon) uses.
  - Writes the unit drop-in C({systemd_dir}/left4me-server@NAME.service.d/50-left4me-instance.conf)
    with C(SocketBindAllow=) for the instance's ports, C(AllowedCPUs=) and the server's
    resource limits (C(MemoryMax=), C(MemorySwapMax=), C(TasksMax=), C(CPUQuota=),
    C(CPUWeight=)); every server has them, from the per-instance options or their defaults.
  - Creates C({state_dir}/runtime/NAME/) with C(merged) (owned by O(owner), whose group may
    read the configuration) and C(writes), where the game unit's mount helper loop-mounts
    the server's writes filesystem, C(runtime/NAME/writes.img) (an ext4 image, root's 0600,
    sparse, so a new running server costs about 2 MiB of disk), which holds its C(upper) and C(work)
    dirs. An instance made before this, whose C(runtime/NAME/upper) is a plain directory,
    keeps it as it is.
  - Everything is validated before anything changes; bad arguments fail with a message and
    leave the host as it was. Ports must be unique among the given instances and among the
    other instances configured on the host.
  - Before starting a server, checks that the runtime user's C(~/.steam/sdk32/steamclient.so)
    and C(~/.steam/sdk64/steamclient.so) resolve (made by role C(left4me.l4d2.game_host));
    without them srcds runs LAN-only, which A2S_INFO cannot tell from a healthy server, so
    the module refuses to start it and names the missing link.
  - When a start fails (for example the mount helper refuses a tainted upper dir or a
    missing layer) or a server does not answer, the message carries the reason from the
    unit's journal for this start (the helper's own line, or the server's last output and
    how it ended), at most 8 lines, with RCON and server passwords masked.
author:
  - left4me developers (@left4me)
options:
  name:
    description:
      - Name of a single instance, 1 to 64 characters from C(a-z), C(0-9), C(_) and C(-),
        starting with a letter or digit. The per-instance options below then apply to it.
      - With only a name (no O(port), O(lowerdirs) or O(overlays)), the instance's
        configuration on the host is used as it is; it must exist unless O(state=absent).
      - Mutually exclusive with O(instances).
    type: str
  instances:
    description:
      - Several instances, each a dict of the per-instance options (O(name) required).
      - Mutually exclusive with O(name).
    type: list
    elements: dict
    suboptions:
      name:
        description: Instance name (see O(name)).
        type: str
        required: true
      port: &port
        description:
          - Game port (UDP, and TCP for RCON), 1024 to 65535, unique on the host.
          - Required when the instance is configured by this call.
        type: int
      client_port: &client_port
        description:
          - Client port srcds binds besides its game port (C(+clientport)), unique on the host.
          - Every srcds binds one (27005 unless told), and the unit lets it bind only its own
            ports, so an instance always gets one; C(port) + 1 when unset.
        type: int
      lowerdirs: &lowerdirs
        description:
          - Layers above the shared installation, first wins. Each must lie under
            C(installation/), C(builds/), C(overlays/) or C(workshop_cache/) below
            O(state_dir) (after symlinks), at most 498 (the instance config layer and the
            installation make 500). The installation is added as the last layer (each start
            mounts the build current then); do not list it.
          - Mutually exclusive with O(instances[].overlays).
        type: list
        elements: path
      overlays: &overlays
        description:
          - Overlay ids, first wins; each stands for C({state_dir}/overlays/ID).
          - Mutually exclusive with O(instances[].lowerdirs).
        type: list
        elements: str
      ip: &ip
        description: Address srcds binds (C(+ip)). Defaults to V(0.0.0.0), every interface.
        type: str
      hostname: &hostname
        description: Server name, set at every map load before the overlays' server.cfg (which
          wins where it sets one).
        type: str
      maxplayers: &maxplayers
        description: Player slots (C(+maxplayers)), 1 to 64. Defaults to V(8).
        type: int
      map: &map
        description: Map loaded at start (C(+map)). Defaults to V(c1m1_hotel).
        type: str
      tickrate: &tickrate
        description: Server tick rate (C(-tickrate)), 10 to 128. Defaults to V(30).
        type: int
      args: &args
        description:
          - Extra srcds arguments, one word per item (C(['+sv_lan', '1'])). No spaces,
            quotes, C($), C(`), C(;) or backslashes; never C(rcon_password).
        type: list
        elements: str
      rcon_password: &rcon_password
        description:
          - RCON password, written to the instance cfg (mode 0640), never to argv, the unit,
            the env file, logs or diffs. No double quotes, semicolons or line breaks.
          - Unset means no C(rcon_password) line, so srcds refuses every RCON login unless an
            overlay's cfg sets one, and M(left4me.l4d2.rcon) never uses an overlay's.
        type: str
      allowed_cpus: &allowed_cpus
        description: CPU list for C(AllowedCPUs=), for example V(1-3) (leave core 0 to the host).
        type: str
      environment: &environment
        description:
          - Extra environment for the server process (C(NAME=value) in the env file). Names
            match C([A-Z_][A-Z0-9_]*) and may not start with C(LEFT4ME_).
        type: dict
      claim: &claim
        description:
          - Which of O(manager)'s records owns the instance, recorded beside the manager
            (C(claim TOKEN) in C(NAME.manager)) when the instance is configured. The left4me
            UI passes C(ui:<its instance id>/<server id>); C(MANAGER:ID) or
            C(MANAGER:ID/ID), letters, digits, C(_), C(.) and C(-).
          - The call fails, changing nothing, when the instance's recorded claim differs
            (another UI, AWX or an earlier database of the same UI made it), when the
            instance is claimed and the call gives no claim, or when the instance exists
            without a claim (made before claims were recorded) and O(instances[].adopt) is
            not set. The message names the owner.
        type: str
      adopt: &adopt
        description:
          - With O(instances[].claim), take an existing instance that has no claim yet
            (recorded before claims were, or with no record at all). Only the manager
            that knows the instance is its own may say so (the UI's reconcile and its
            actions on a server it ran on this host before); a UI create never does.
        type: bool
      memory_max: &memory_max
        description:
          - The most memory the server may use (C(MemoryMax=) in the drop-in), a size with an
            optional V(K), V(M), V(G) or V(T) suffix (powers of 1024), at least V(256M).
            Past it the kernel's OOM killer ends this server alone, never sshd or another
            server. Defaults to V(2G), as C(game_instances_limits) of role
            C(left4me.l4d2.game_instances).
        type: str
      memory_swap_max: &memory_swap_max
        description:
          - Swap the server may use (C(MemorySwapMax=)), a size as for
            O(instances[].memory_max). Defaults to V(0), since a server in swap lags for its
            players, and swap would let it pass O(instances[].memory_max).
        type: str
      tasks_max: &tasks_max
        description:
          - Processes and threads the server may have (C(TasksMax=)), 32 to 65536; a fork
            bomb stops there. Defaults to V(256) (srcds runs some 20 threads).
        type: int
      cpu_quota: &cpu_quota
        description:
          - CPU time the server may use, in percent of one CPU (C(CPUQuota=)), 1 to 102400.
            Defaults to V(100), one core (srcds's game loop runs on one).
        type: int
      cpu_weight: &cpu_weight
        description:
          - The server's CPU share against the other servers when the CPU is contended
            (C(CPUWeight=)), 1 to 10000. Defaults to V(100), an equal share.
        type: int
      upper_dir_max: &upper_dir_max
        description:
          - The most the server's upper dir (everything it writes, such as logs, downloads,
            changed files) may hold, a size as for O(instances[].memory_max), at least V(64M).
            It is the size of the server's writes filesystem (an ext4 image the mount helper
            makes at the first start); a write past it fails with "No space left on device"
            as it happens, and the host's disk never holds more. A changed cap applies at
            the server's next start (a restart when O(restart_on_change)), grown with
            C(resize2fs); a cap below what the server's writes already take is refused,
            naming both sizes, and nothing changes. Defaults to V(2G).
          - An instance made before the cap was a filesystem (a plain C(runtime/NAME/upper)
            directory) keeps its upper dir, counted instead; its start is refused while it
            holds more, and C(left4me-upper-check.timer) stops it within
            C(game_host_upper_check_interval) after it writes past the cap.
        type: str
  port: *port
  client_port: *client_port
  lowerdirs: *lowerdirs
  overlays: *overlays
  ip: *ip
  hostname: *hostname
  maxplayers: *maxplayers
  map: *map
  tickrate: *tickrate
  args: *args
  rcon_password: *rcon_password
  allowed_cpus: *allowed_cpus
  environment: *environment
  claim: *claim
  adopt: *adopt
  memory_max: *memory_max
  memory_swap_max: *memory_swap_max
  tasks_max: *tasks_max
  cpu_quota: *cpu_quota
  cpu_weight: *cpu_weight
  upper_dir_max: *upper_dir_max
  state:
    description:
      - V(present) writes the configuration and directories; a running server keeps
        running with its old settings until its next start.
      - V(started) also enables and starts the unit (C(systemctl enable --now)), restarts a
        running server whose own configuration changed in this call, and waits until every
        server it started answers A2S_INFO.
      - V(stopped) disables and stops the unit (C(systemctl disable --now)) and unmounts the
        overlay.
      - V(restarted) enables the unit, restarts it and waits for A2S_INFO; always changed.
      - Before it restarts a running unit or starts a failed one, the module clears the
        unit's failed state and start counter (C(systemctl reset-failed)), so requested
        restarts never count toward the crash-loop cap (5 starts in 60 s) that stops a
        crashing server.
      - V(absent) disables and stops the unit, unmounts the overlay and the writes
        filesystem and removes the env file, drop-in, config layer, the writes image
        C(runtime/NAME/writes.img) and the runtime directories. A missing instance is fine.
    type: str
    choices: [present, started, stopped, restarted, absent]
    default: started
  restart_on_change:
    description: With O(state=started), restart a running server whose configuration changed.
    type: bool
    default: true
  wait:
    description: Wait for started or restarted servers to answer A2S_INFO.
    type: bool
    default: true
  wait_retries:
    description:
      - How many rounds of A2S_INFO queries to send before giving up. Every round queries all
        started servers at once, so the wait lasts at most O(wait_retries) x O(wait_timeout)
        seconds however many servers started.
    type: int
    default: 60
  wait_timeout:
    description: Seconds one round of A2S_INFO queries waits for answers.
    type: float
    default: 1.0
  probe_address:
    description:
      - Address to send A2S_INFO to. Defaults to the instance's O(instances[].ip) or, when
        that is V(0.0.0.0), the host's first global IPv4 address (as players reach it).
    type: str
  systemd_dir:
    description: Directory for the per-instance unit drop-ins.
    type: path
    default: /etc/systemd/system
  manager:
    description:
      - Who manages the instances of this call, recorded on the host in
        C({config_dir}/instances/NAME.manager) whenever an instance is configured.
      - V(inventory) (playbooks/site.yml, role C(left4me.l4d2.game_instances)) or V(ui)
        (the left4me UI's C(playbooks/server.yml)); any short lower-case name works.
      - The call fails, changing nothing, when an instance it names is recorded with another
        manager, so C(site.yml) never changes or removes a UI server and the UI never an
        inventory one. An instance with no record (configured before managers were
        recorded) is taken over by the first call that configures it and gives no
        O(claim); see O(claim) for one owner among many of the same manager.
    type: str
    default: inventory
extends_documentation_fragment:
  - left4me.l4d2.common.state_dir
  - left4me.l4d2.common.config_dir
  - left4me.l4d2.common.owner
attributes:
  check_mode:
    description: Reports what would change without writing, starting or stopping anything.
    support: full
  diff_mode:
    description: Shows the env file, instance cfg (password masked) and drop-in changes.
    support: full
notes:
  - Needs root (ad hoc, C(ansible -b)); without it the module fails and says to run it
    with become. Needs systemd, the
    C(left4me-server@.service) template (role C(left4me.l4d2.game_instances)) and the
    C(left4me-mount) helper (role C(left4me.l4d2.game_host)).
seealso:
  - module: left4me.l4d2.instance_mount
"""

EXAMPLES = r"""
- name: Run two servers on one host, in one call
  left4me.l4d2.srcds_instance:
    state: started
    instances:
      - name: coop1
        port: 27015
        overlays: [competitive, maps]
        rcon_password: "{{ vault_coop1_rcon }}"
      - name: versus1
        port: 27016
        lowerdirs: [/var/lib/left4me/overlays/tickrate]
        tickrate: 100
        allowed_cpus: "1-3"
        memory_max: 3G
        tasks_max: 512

- name: Restart one server
  left4me.l4d2.srcds_instance:
    name: coop1
    state: restarted

- name: Stop a server (it stays stopped after a reboot)
  left4me.l4d2.srcds_instance:
    name: versus1
    state: stopped

- name: Remove a server
  left4me.l4d2.srcds_instance:
    name: versus1
    state: absent
"""

RETURN = r"""
instances:
  description: One entry per instance handled, in the order given.
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
    changed:
      description: Whether this instance changed (or would, in check mode).
      type: bool
    actions:
      description: Unit actions taken (C(enable), C(start), C(restart), C(disable), C(stop),
        C(unmount), C(remove)).
      type: list
      elements: str
      sample: [enable, start]
    port:
      description: Game port (absent instances show the one they had, if any).
      type: int
      sample: 27015
    manager:
      description: Who manages the instance (see O(manager)); null when the host has no
        record of it and this call configured nothing.
      type: str
      sample: inventory
    env_file:
      description: Path of the instance env file.
      type: str
      sample: /etc/left4me/instances/coop1.env
    a2s:
      description: What the server answered to A2S_INFO, when this run waited for it.
      type: dict
      returned: when a server was started and O(wait=true)
      sample: {name: "Coop #1", map: c1m1_hotel, players: 0, max_players: 8, seconds: 1.4}
"""

import time  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.left4me.l4d2.plugins.module_utils._common import (  # noqa: E402
    DEFAULT_CONFIG_DIR,
    DEFAULT_RUNTIME_USER,
    DEFAULT_STATE_DIR,
)
from ansible_collections.left4me.l4d2.plugins.module_utils._instance import (  # noqa: E402
    InstancePlan,
    failure_reason,
    has_process_output,
)
from ansible_collections.left4me.l4d2.plugins.module_utils._instance_apply import (  # noqa: E402
    apply_plan,
)
from ansible_collections.left4me.l4d2.plugins.module_utils._instance_plan import (  # noqa: E402
    INSTANCE_OPTIONS,
    decide,
    refuse_bad_call,
)
from ansible_collections.left4me.l4d2.plugins.module_utils._instance_units import (  # noqa: E402
    UNIT_PROPERTIES,
    instance_diffs,
    instance_results,
)
from ansible_collections.left4me.l4d2.plugins.module_utils._journal import (  # noqa: E402
    parse_json_lines,
)
from ansible_collections.left4me.l4d2.plugins.module_utils._layout import (  # noqa: E402
    HostLayout,
    server_unit_name,
)
from ansible_collections.left4me.l4d2.plugins.module_utils._manager import (  # noqa: E402
    DEFAULT_MANAGER,
)
from ansible_collections.left4me.l4d2.plugins.module_utils._systemd import (  # noqa: E402
    parse_show,
    run_in_c,
    show_argv,
    systemctl_argv,
)

ARGUMENT_SPEC = dict(
    name=dict(type="str"),
    instances=dict(
        type="list",
        elements="dict",
        options=dict(name=dict(type="str", required=True), **INSTANCE_OPTIONS),
    ),
    state=dict(
        type="str",
        default="started",
        choices=["present", "started", "stopped", "restarted", "absent"],
    ),
    restart_on_change=dict(type="bool", default=True),
    wait=dict(type="bool", default=True),
    wait_retries=dict(type="int", default=60),
    wait_timeout=dict(type="float", default=1.0),
    probe_address=dict(type="str"),
    state_dir=dict(type="path", default=DEFAULT_STATE_DIR),
    config_dir=dict(type="path", default=DEFAULT_CONFIG_DIR),
    systemd_dir=dict(type="path", default="/etc/systemd/system"),
    owner=dict(type="str", default=DEFAULT_RUNTIME_USER),
    manager=dict(type="str", default=DEFAULT_MANAGER),
    **INSTANCE_OPTIONS,
)
# Journal entries read to explain a failed start (the reason itself is bounded further).
JOURNAL_ENTRIES = 300
JOURNAL_READS = 3


class Systemd:
    """The host's systemctl and journalctl, run with LANG=C; every failure ends the module."""

    def __init__(self, module: AnsibleModule) -> None:
        self.module = module

    def run(self, argv: list[str], check: bool = True) -> tuple[int, str, str]:
        rc, out, err = run_in_c(self.module, argv)
        if check and rc != 0:
            self.module.fail_json(
                msg=f"{' '.join(argv)} failed (rc {rc}): {err.strip() or out.strip()}",
                rc=rc,
            )
        return rc, out, err

    def systemctl(self, verb: str, units: list[str], *extra: str) -> None:
        if units:
            self.run(systemctl_argv(verb, units, *extra))

    def unit_states(self, units: list[str]) -> dict[str, dict[str, str]]:
        if not units:
            return {}
        _rc, out, _err = self.run(show_argv(units, UNIT_PROPERTIES))
        states = parse_show(out)
        return {unit: states.get(unit, {}) for unit in units}

    def failure_reason(self, plan: InstancePlan, since: float) -> str:
        """Why the unit's runs since ``since`` failed, from its journal (bounded, masked)."""
        unit = server_unit_name(plan.name)
        # journald reads the processes' output streams on its own time: ask it to catch
        # up, and look again briefly when only systemd's own lines are there yet.
        self.run(["journalctl", "--sync"], check=False)
        for attempt in range(JOURNAL_READS):
            rc, out, _err = self.run(
                ["journalctl", "-u", unit, f"--since=@{since:.6f}", "-n", str(JOURNAL_ENTRIES),
                 "--no-pager", "-o", "json"],
                check=False,
            )
            entries = parse_json_lines(out) if rc == 0 else []
            if has_process_output(entries, plan.invocation_before) or attempt + 1 == JOURNAL_READS:
                break
            time.sleep(0.5)
        reason = failure_reason(entries, plan.invocation_before, plan.secrets)
        return reason or f"nothing in its journal; see journalctl -u {unit}"

    def first_global_ipv4(self) -> str:
        """The host's first global IPv4 address (as players reach it), else loopback."""
        rc, out, _err = self.run(["ip", "-4", "-o", "addr", "show", "scope", "global"], False)
        for line in out.splitlines() if rc == 0 else []:
            fields = line.split()
            if "inet" in fields:
                return fields[fields.index("inet") + 1].split("/")[0]
        return "127.0.0.1"


def main():
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        mutually_exclusive=[("name", "instances")],
        required_one_of=[("name", "instances")],
        supports_check_mode=True,
    )
    params = module.params
    refuse_bad_call(module, params)
    layout = HostLayout(params["state_dir"], params["config_dir"], params["systemd_dir"])
    systemd = Systemd(module)
    plans, states, removed = decide(module, systemd, params, layout)

    result = dict(changed=any(p.changed for p in plans), instances=instance_results(plans))
    if module._diff:
        result["diff"] = instance_diffs(plans, removed)
    if module.check_mode:
        module.exit_json(**result)

    apply_plan(module, systemd, plans, states, params, layout, result)
    result["instances"] = instance_results(plans)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
