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
            C(installation/), C(overlays/) or C(workshop_cache/) below O(state_dir)
            (after symlinks), at most 498 (the instance config layer and the installation
            make 500). The installation is added as the last layer; do not list it.
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

import os  # noqa: E402
import pwd  # noqa: E402
import time  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.left4me.l4d2.plugins.module_utils._common import (  # noqa: E402
    DEFAULT_CONFIG_DIR,
    DEFAULT_RUNTIME_USER,
    DEFAULT_STATE_DIR,
    read_text,
)
from ansible_collections.left4me.l4d2.plugins.module_utils._instance import (  # noqa: E402
    InstanceError,
    InstancePlan,
    cfg_secrets,
    check_ports_against_host,
    check_unique,
    config_layer_dir_specs,
    configured_instances,
    failure_reason,
    file_change,
    has_process_output,
    host_cpu_mhz,
    missing_steam_links,
    ports_from_env,
    removal_targets,
    remove_paths,
    steam_links_message,
    validate_spec,
    wanted_files,
    write_managed_file,
)
from ansible_collections.left4me.l4d2.plugins.module_utils._instance_units import (  # noqa: E402
    UNIT_PROPERTIES,
    await_answers,
    having,
    instance_diffs,
    instance_results,
    is_failed,
    is_serving,
    needs_daemon_reload,
    needs_reset,
    no_answer_message,
    probe_targets,
    start_failed,
    starting,
    unit_actions,
)
from ansible_collections.left4me.l4d2.plugins.module_utils._journal import (  # noqa: E402
    parse_json_lines,
)
from ansible_collections.left4me.l4d2.plugins.module_utils._layout import (  # noqa: E402
    HostLayout,
    instance_paths,
    server_unit_name,
    validate_instance_name,
)
from ansible_collections.left4me.l4d2.plugins.module_utils._manager import (  # noqa: E402
    DEFAULT_MANAGER,
    note_managers,
)
from ansible_collections.left4me.l4d2.plugins.module_utils._mount import (  # noqa: E402
    DirSpec,
    MountError,
    apply_mount_plan,
    cap_refusal,
    dir_changes,
    ensure_dirs,
    enter_mount_namespace,
    instance_dir_specs,
    plan_unmount,
    read_mount_state,
    resolve_owner,
)
from ansible_collections.left4me.l4d2.plugins.module_utils._systemd import (  # noqa: E402
    parse_show,
    run_in_c,
    show_argv,
    systemctl_argv,
)

INSTANCE_OPTIONS = dict(
    port=dict(type="int"),
    client_port=dict(type="int"),
    lowerdirs=dict(type="list", elements="path"),
    overlays=dict(type="list", elements="str"),
    ip=dict(type="str"),
    hostname=dict(type="str"),
    maxplayers=dict(type="int"),
    map=dict(type="str"),
    tickrate=dict(type="int"),
    args=dict(type="list", elements="str"),
    rcon_password=dict(type="str", no_log=True),
    allowed_cpus=dict(type="str"),
    environment=dict(type="dict"),
    claim=dict(type="str"),
    adopt=dict(type="bool"),
    memory_max=dict(type="str"),
    memory_swap_max=dict(type="str"),
    tasks_max=dict(type="int"),
    cpu_quota=dict(type="int"),
    cpu_weight=dict(type="int"),
    upper_dir_max=dict(type="str"),
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
CONFIG_KEYS = ("port", "lowerdirs", "overlays")
# Journal entries read to explain a failed start (the reason itself is bounded further).
JOURNAL_ENTRIES = 300
JOURNAL_READS = 3
NEEDS_ROOT = (
    "srcds_instance needs root: run with become (-b on the ansible command line,"
    " become: true in a play)"
)


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


# --- facts and the plan ----------------------------------------------------------------


def raw_instances(params: dict) -> list[dict]:
    if params["instances"] is not None:
        return [dict(item) for item in params["instances"]]
    raw = {key: params[key] for key in INSTANCE_OPTIONS}
    raw["name"] = params["name"]
    return [raw]


def has_config(raw: dict) -> bool:
    return any(raw.get(key) is not None for key in CONFIG_KEYS)


def plan_files(plan: InstancePlan, layout: HostLayout, uid: int, gid: int,
               cpu_mhz: int | None = None) -> None:
    """What one configured instance's files and directories need."""
    name = plan.name
    plan.files = [file_change(f) for f in wanted_files(plan.spec, layout, gid, cpu_mhz)]
    plan.config_changed = any(f.content_changed for f in plan.files)
    layer_dirs = config_layer_dir_specs(layout, name, gid)
    paths = instance_paths(name, layout.state_dir)
    refusal = cap_refusal(paths, plan.spec.limits.upper_dir_max)
    if refusal:
        raise InstanceError(f"instance {name!r}: {refusal}")
    runtime = instance_dir_specs(paths, uid, gid)
    mounted = read_mount_state(paths.merged).mounted
    dropin = DirSpec(layout.dropin_dir(name), 0, 0, 0o755)
    plan.dirs = [*layer_dirs, dropin, *runtime]
    plan.dir_changes = dir_changes(plan.dirs, [paths.merged] if mounted else [])


def plan_all(params: dict, layout: HostLayout) -> list[InstancePlan]:
    """Validate every instance and decide what to write; nothing changes on the host."""
    state = params["state"]
    raws = raw_instances(params)
    for raw in raws:
        validate_instance_name(raw.get("name"), InstanceError)
    names = [raw["name"] for raw in raws]
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise InstanceError(f"instance {dupes[0]!r} is listed twice")
    on_host = configured_instances(layout)
    plans = []
    specs = []
    for raw in raws:
        name = raw["name"]
        if state == "absent" or not has_config(raw):
            if state == "absent" and has_config(raw):
                raise InstanceError(f"instance {name!r}: state=absent takes only the name")
            if state != "absent" and name not in on_host:
                raise InstanceError(
                    f"instance {name!r} is not configured on this host"
                    f" ({layout.env_file(name)} is missing): give port and lowerdirs or overlays"
                )
            plans.append(InstancePlan(name, None, layout))
            continue
        spec = validate_spec(raw, layout)
        specs.append(spec)
        plans.append(InstancePlan(name, spec, layout))
    check_unique(specs)
    others = {n: env for n, env in on_host.items() if n not in names}
    check_ports_against_host(specs, others)
    # Only valid arguments get this far: the runtime user is looked up after them.
    uid, gid = resolve_owner(params["owner"])
    cpu_mhz = host_cpu_mhz()  # the server cannot read it (ProcSubset=pid): its env file says
    for plan in plans:
        if plan.spec is not None:
            plan_files(plan, layout, uid, gid, cpu_mhz)
    for plan in plans:
        plan_address(plan, on_host.get(plan.name, {}), state)
    return plans


def plan_address(plan: InstancePlan, env: dict[str, str], state: str) -> None:
    """Port, address and secrets of one instance: from its arguments, else from the host."""
    spec = plan.spec
    plan.port = spec.port if spec else next(iter(ports_from_env(env)), None)
    plan.ip = spec.ip if spec else env.get("LEFT4ME_IP")
    if spec is not None and spec.rcon_password:
        plan.secrets = [spec.rcon_password]
    elif state != "absent":
        plan.secrets = cfg_secrets(read_text(plan.layout.instance_cfg(plan.name)))


def existing_removal_targets(plan: InstancePlan) -> list[str]:
    layout = plan.layout
    return [p for p in removal_targets(layout, plan.name, layout.state_dir) if os.path.lexists(p)]


def decide_unit_actions(plans, states, state, restart_on_change) -> dict[str, list[str]]:
    """Gather each unit's facts, let :func:`unit_actions` decide; returns, per instance,
    the existing paths ``absent`` removes (what the diff shows)."""
    removed = {}
    for plan in plans:
        props = states[server_unit_name(plan.name)]
        plan.failed_before = is_failed(props)
        plan.invocation_before = props.get("InvocationID", "")
        mounted = state in ("stopped", "absent") and (
            plan_unmount(plan.name, state_dir=plan.layout.state_dir).action == "unmount"
        )
        removed[plan.name] = existing_removal_targets(plan) if state == "absent" else []
        plan.actions = unit_actions(
            state,
            props,
            config_changed=plan.config_changed,
            restart_on_change=restart_on_change,
            mounted=mounted,
            leftovers=bool(removed[plan.name]),
        )
    return removed


def check_steam_links(plans: list[InstancePlan], owner: str) -> str | None:
    """Why the servers about to start would run LAN-only, or None when they can start."""
    names = [p.name for p in starting(plans)]
    if not names:
        return None
    problems = missing_steam_links(pwd.getpwnam(owner).pw_dir)
    return steam_links_message(problems, names) if problems else None


# --- acting on the plan -------------------------------------------------------------------


def apply_files(plan: InstancePlan) -> None:
    ensure_dirs(plan.dirs, [instance_paths(plan.name, plan.layout.state_dir).merged])
    for change in plan.files:
        if change.changed:
            write_managed_file(change.file)


def start_units(module, systemd, plans, verb: str, since: float, started_us: int) -> None:
    """systemctl start|restart; when it fails, say why each unit failed, from its journal.

    ``since`` (wall clock) bounds the journal read; ``started_us`` (CLOCK_MONOTONIC, as
    systemd stamps a server process's start) tells a server that ran from one that did not.
    """
    chosen = [p for p in plans if verb in p.actions]
    if not chosen:
        return
    units = [server_unit_name(p.name) for p in chosen]
    rc, out, err = systemd.run(["systemctl", verb, *units], check=False)
    if rc == 0:
        return
    states = systemd.unit_states(units)
    said = (err.strip() or out.strip()).splitlines()
    failed = [p for p in chosen
              if start_failed(states[server_unit_name(p.name)], started_us)]
    if not failed and any(not is_serving(states[u]) for u in units):
        # systemd is bringing them up again itself; the A2S wait has the last word.
        module.warn(f"systemctl {verb} reported {said[0] if said else 'a failure'}; systemd"
                    " is starting the unit again (Restart=on-failure)")
        return
    failed = failed or chosen
    reasons = "; ".join(
        f"{server_unit_name(p.name)} did not start: {systemd.failure_reason(p, since)}"
        for p in failed
    )
    module.fail_json(
        msg=f"{reasons} (systemctl {verb} rc {rc}: {said[0] if said else 'no output'})",
        rc=rc,
        changed=True,
        instances=instance_results(plans),
    )


def wait_for_answers(module, systemd, plans, params, since: float) -> None:
    """Wait until every started server answers A2S_INFO; fail naming each that did not."""
    targets = probe_targets(plans, params["probe_address"], systemd.first_global_ipv4)
    by_name = {plan.name: plan for plan in plans}

    def unit_states(names: list[str]) -> dict[str, dict[str, str]]:
        states = systemd.unit_states([server_unit_name(n) for n in names])
        return {n: states[server_unit_name(n)] for n in names}

    answers, failures = await_answers(
        targets, params["wait_retries"], params["wait_timeout"], unit_states
    )
    for name, info in answers.items():
        by_name[name].a2s = info
    if failures:
        reasons = {n: systemd.failure_reason(by_name[n], since) for n in sorted(failures)}
        module.fail_json(
            msg=no_answer_message(failures, targets, reasons),
            changed=True,
            instances=instance_results(plans),
        )


def write_configuration(module, systemd, plans, states, result) -> None:
    """Files first, then make systemd see them and forget failures of units about to start."""
    try:
        for plan in plans:
            if plan.spec is not None:
                apply_files(plan)
    except (MountError, OSError) as exc:
        module.fail_json(msg=f"writing the instance configuration failed: {exc}", **result)
    if needs_daemon_reload(plans, states):
        systemd.run(["systemctl", "daemon-reload"])
    systemd.systemctl(
        "reset-failed",
        [server_unit_name(p.name) for p in plans
         if needs_reset(states[server_unit_name(p.name)], p.actions)],
    )


def start_and_wait(module, systemd, plans, params) -> None:
    since = time.time()  # the journal from here on explains a failed start
    started_us = time.monotonic_ns() // 1000  # a server process stamped after this ran
    systemd.systemctl("enable", having(plans, "enable"))
    start_units(module, systemd, plans, "start", since, started_us)
    start_units(module, systemd, plans, "restart", since, started_us)
    waiting = starting(plans)
    if params["wait"] and waiting:
        wait_for_answers(module, systemd, waiting, params, since)


def stop_and_remove(module, systemd, plans, layout, state, result) -> None:
    systemd.systemctl("disable", sorted(set(having(plans, "disable") + having(plans, "stop"))),
                      "--now")
    try:
        for plan in plans:
            mount = plan_unmount(plan.name, state_dir=layout.state_dir)
            if mount.action == "unmount":
                apply_mount_plan(mount)
            if "remove" in plan.actions:
                remove_paths(removal_targets(layout, plan.name, layout.state_dir))
    except (MountError, OSError) as exc:
        module.fail_json(msg=str(exc), **result)
    if state == "absent" and having(plans, "remove"):
        systemd.run(["systemctl", "daemon-reload"])


# --- the module ---------------------------------------------------------------------------


def refuse_bad_call(module, params) -> None:
    """What fails before anything on the host is read."""
    if os.geteuid() != 0:
        # The env files, the unit drop-ins and the mounts are root's; without this the
        # first of them read fails with a bare "[Errno 13] Permission denied".
        module.fail_json(msg=NEEDS_ROOT)
    if params["instances"] is not None:
        given = [k for k in INSTANCE_OPTIONS if params[k] is not None]
        if given:
            module.fail_json(
                msg=f"{', '.join(given)} apply to a single instance (name=...); with instances,"
                " set them inside each instance"
            )
    if params["wait_retries"] < 1 or params["wait_timeout"] <= 0:
        module.fail_json(msg="wait_retries must be at least 1 and wait_timeout above 0")


def decide(module, systemd, params, layout):
    """Every plan with its unit actions, the unit states and the paths ``absent`` removes."""
    try:
        # Mount state and unmounts belong to the host's (PID 1's) mount namespace.
        enter_mount_namespace()
        plans = plan_all(params, layout)
        claims = {raw["name"]: (raw.get("claim"), bool(raw.get("adopt")))
                  for raw in raw_instances(params)}
        # Another manager's or owner's instance: refuse.
        note_managers(plans, layout, params["manager"], claims)
        states = systemd.unit_states([server_unit_name(p.name) for p in plans])
        removed = decide_unit_actions(plans, states, params["state"], params["restart_on_change"])
        lan_only = check_steam_links(plans, params["owner"])
    except (InstanceError, MountError, OSError) as exc:
        module.fail_json(msg=str(exc))
    if lan_only:
        module.fail_json(msg=lan_only)
    return plans, states, removed


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

    write_configuration(module, systemd, plans, states, result)
    if params["state"] in ("started", "restarted"):
        start_and_wait(module, systemd, plans, params)
    elif params["state"] in ("stopped", "absent"):
        stop_and_remove(module, systemd, plans, layout, params["state"], result)
    result["instances"] = instance_results(plans)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
