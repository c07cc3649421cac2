"""The UI's composition root: builds the core and declares every job kind once.

After Flask's `create_app()`: nothing registers itself by being imported. A job row names
its kind, and the kind below says which playbooks it runs with which variables, which
secret providers its jobs may name, what runs when one finishes and, for overlay builds,
which builder queues one of each overlay kind. A new job kind is one more `JobKind` here;
a new overlay kind one more builder; a new job backend one more entry in BACKENDS. Modules
below this one (the domain, the core, the job engine) never import it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from left4me_ui import accounts, health, jobs, observe, overlays, reconcile, servers
from left4me_ui import settings as settings_module
from left4me_ui.backends.awx import AwxBackend
from left4me_ui.backends.local import LocalRunner
from left4me_ui.core import Core, JobKind, Wiring
from left4me_ui.inventory import Inventory
from left4me_ui.overlays.kinds import files, script, workshop
from left4me_ui.runner import load_inventory

JOB_KINDS: tuple[JobKind, ...] = (
    # playbooks/server.yml on one server: create, start, stop, restart, delete.
    *(JobKind(kind, (servers.PLAYBOOK,), servers.VARIABLES, finish=servers.finished,
              secrets={servers.RCON_SECRET: servers.rcon_secret}) for kind in servers.KINDS),
    # One user overlay built on a host (files and script: overlay.yml; Workshop:
    # workshop_overlay.yml), or removed from it.
    JobKind(overlays.KIND_BUILD, (overlays.BUILD_PLAYBOOK, workshop.BUILD_PLAYBOOK),
            files.BUILD_VARIABLES | script.BUILD_VARIABLES | workshop.BUILD_VARIABLES,
            finish=overlays.build_finished,
            builders={"files": files.enqueue_build,
                      "workshop": workshop.enqueue_build,
                      "script": script.enqueue_build}),
    JobKind(overlays.KIND_REMOVE, (overlays.BUILD_PLAYBOOK,), overlays.REMOVE_VARIABLES),
    # playbooks/reconcile.yml: every UI server on a rebuilt host, again.
    JobKind(reconcile.KIND_RECONCILE, (reconcile.PLAYBOOK,), reconcile.VARIABLES,
            finish=reconcile.finished,
            secrets={reconcile.RCON_SECRETS: reconcile.rcon_secrets}),
)

# LEFT4ME_UI_JOB_BACKEND -> the backend that runs a claimed job.
BACKENDS: dict[str, Callable[[settings_module.Settings], jobs.JobBackend]] = {
    "local": lambda _settings: LocalRunner(),
    "awx": AwxBackend,
}


def wiring() -> Wiring:
    return Wiring.of(JOB_KINDS, BACKENDS)


def open_core(config: settings_module.Settings, *,
              clock: Callable[[], float] = time.time,
              inventory_loader: Callable[[Path], Inventory] = load_inventory) -> Core:
    """The core with every job kind wired; opens (and migrates) the database, starts nothing."""
    return Core.open(config, wiring=wiring(), clock=clock, inventory_loader=inventory_loader)


def boot(config: settings_module.Settings | None = None, *, start_worker: bool = True) -> Core:
    """What the UI process does once at start: open, bootstrap the admin, start the worker
    and the poller.

    Raises SecretError without a usable secret. Prints where a generated admin password is.
    """
    core = open_core(config or settings_module.from_environment())
    created = accounts.ensure_bootstrap_admin(core)
    if created is not None and created.password_file is not None:
        print(f"left4me UI: created admin {created.name!r}; its password is in"
              f" {created.password_file} (mode 0600). Change it after the first login; the"
              " file is deleted then.",
              flush=True)
    jobs.mark_interrupted(core)
    if start_worker:
        core.worker = jobs.Worker(core)
        core.worker.start()
        if core.settings.poll_seconds > 0:
            core.poller = observe.Poller(core, core.settings.poll_seconds)
            core.poller.start()
        if core.settings.health_seconds > 0:
            core.health_check = health.HealthCheck(core, core.settings.health_seconds)
            core.health_check.start()
    return core
