# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The ``srcds_instance`` plan: what each instance needs, decided before anything changes.

:func:`decide` turns the module's parameters into one :class:`InstancePlan` per
instance: its validated spec (``_instance``), the files and directories to write
(:func:`plan_files`), its port, address and secrets (:func:`plan_address`), who
manages it (``_manager``) and its unit actions (``_instance_units``). It reads the
host (the env files, the mount state, ``systemctl show``) and changes nothing there;
``_instance_apply`` carries the plan out. :data:`INSTANCE_OPTIONS` are the options
one instance takes, as the module's argument spec lists them.
"""

from __future__ import annotations

import os
import pwd

from ansible_collections.left4me.l4d2.plugins.module_utils._common import read_text
from ansible_collections.left4me.l4d2.plugins.module_utils._instance import (
    InstanceError,
    InstancePlan,
    cfg_secrets,
    check_ports_against_host,
    check_unique,
    config_layer_dir_specs,
    configured_instances,
    file_change,
    host_cpu_mhz,
    missing_steam_links,
    ports_from_env,
    removal_targets,
    steam_links_message,
    validate_spec,
    wanted_files,
)
from ansible_collections.left4me.l4d2.plugins.module_utils._instance_units import (
    is_failed,
    starting,
    unit_actions,
)
from ansible_collections.left4me.l4d2.plugins.module_utils._layout import (
    HostLayout,
    instance_paths,
    server_unit_name,
    validate_instance_name,
)
from ansible_collections.left4me.l4d2.plugins.module_utils._manager import note_managers
from ansible_collections.left4me.l4d2.plugins.module_utils._mount import (
    DirSpec,
    MountError,
    cap_refusal,
    dir_changes,
    enter_mount_namespace,
    instance_dir_specs,
    plan_unmount,
    read_mount_state,
    resolve_owner,
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
CONFIG_KEYS = ("port", "lowerdirs", "overlays")
NEEDS_ROOT = (
    "srcds_instance needs root: run with become (-b on the ansible command line,"
    " become: true in a play)"
)


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
