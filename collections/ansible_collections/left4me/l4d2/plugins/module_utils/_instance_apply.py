# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Carrying out the ``srcds_instance`` plan (see ``_instance_plan``).

Files first (:func:`write_configuration`), then the units: enable and start or
restart, with a wait until every started server answers A2S_INFO
(:func:`start_and_wait`), or disable, stop, unmount and remove
(:func:`stop_and_remove`). ``systemd`` is the module's ``Systemd`` (systemctl and
journalctl); every failure ends the module through ``module.fail_json``, naming the
unit and, from its journal, why it did not start.
"""

from __future__ import annotations

import time

from ansible_collections.left4me.l4d2.plugins.module_utils._instance import (
    InstancePlan,
    removal_targets,
    remove_paths,
    write_managed_file,
)
from ansible_collections.left4me.l4d2.plugins.module_utils._instance_units import (
    await_answers,
    having,
    instance_results,
    is_serving,
    needs_daemon_reload,
    needs_reset,
    no_answer_message,
    probe_targets,
    start_failed,
    starting,
)
from ansible_collections.left4me.l4d2.plugins.module_utils._layout import (
    HostLayout,
    instance_paths,
    server_unit_name,
)
from ansible_collections.left4me.l4d2.plugins.module_utils._mount import (
    MountError,
    apply_mount_plan,
    ensure_dirs,
    plan_unmount,
)


def apply_plan(module, systemd, plans: list[InstancePlan], states, params: dict,
               layout: HostLayout, result: dict) -> None:
    """Write the files, then bring every unit to the wanted state."""
    write_configuration(module, systemd, plans, states, result)
    if params["state"] in ("started", "restarted"):
        start_and_wait(module, systemd, plans, params)
    elif params["state"] in ("stopped", "absent"):
        stop_and_remove(module, systemd, plans, layout, params["state"], result)


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
