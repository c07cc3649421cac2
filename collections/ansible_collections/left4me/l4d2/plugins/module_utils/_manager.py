# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Who manages an instance: the inventory (site.yml) or another manager, such as the UI.

Servers an operator declares in ``game_instances_list`` and servers the UI makes live
side by side on one host. Each instance's manager is recorded on the host, beside its env
file, in ``{config_dir}/instances/NAME.manager`` (root 0644, no secret): a comment line
and the manager's name. ``srcds_instance`` writes it whenever it configures an instance
and refuses to touch an instance another manager recorded, so a ``site.yml`` run never
changes a UI server and the UI never changes an inventory one. The ``game_instances``
role prunes only instances recorded as ``inventory``. An instance without a record (made
before managers were recorded) is never pruned; the first call that configures it
records its manager.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ansible_collections.left4me.l4d2.plugins.module_utils._common import read_text
from ansible_collections.left4me.l4d2.plugins.module_utils._instance import (
    HostLayout,
    InstanceError,
    InstancePlan,
    ManagedFile,
    file_change,
)

DEFAULT_MANAGER = "inventory"
_MANAGER_RE = re.compile(r"[a-z][a-z0-9_-]{0,31}")
# What each manager is, for the refusal message.
KNOWN_MANAGERS = {
    "inventory": "playbooks/site.yml (game_instances_list)",
    "ui": "the left4me UI (its playbooks/server.yml jobs)",
}


def validate_manager(value: object) -> str:
    if not isinstance(value, str) or not _MANAGER_RE.fullmatch(value):
        raise InstanceError(
            f"manager {value!r} must be a short name of lower case letters, digits, '_' or '-'"
            f" (inventory for site.yml, ui for the left4me UI)"
        )
    return value


def render_manager(name: str, manager: str) -> str:
    return (
        f"# left4me: instance {name} is managed by {manager}; srcds_instance refuses calls"
        " made for another manager, and site.yml prunes only inventory instances.\n"
        f"{manager}\n"
    )


def parse_manager(text: str | None) -> str | None:
    """The recorded manager (the last line that is not a comment), or None."""
    if text is None:
        return None
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    return lines[-1] if lines else None


def refusal(name: str, recorded: str, wanted: str, path: str) -> str:
    owner = KNOWN_MANAGERS.get(recorded, recorded)
    return (
        f"instance {name!r} is managed by {recorded} ({owner}; recorded in {path}), not by"
        f" {wanted}: leave it to its manager, or pick another name. Nothing was changed"
    )


def note_managers(plans: Sequence[InstancePlan], layout: HostLayout, manager: str) -> None:
    """Refuse instances another manager recorded; record ``manager`` for configured ones.

    The record joins the plan's files (so it is reported, diffed and written like them)
    after the plan decided whether the server restarts: a new record never restarts one.
    """
    manager = validate_manager(manager)
    for plan in plans:
        path = layout.manager_file(plan.name)
        recorded = parse_manager(read_text(path))
        if recorded is not None and recorded != manager:
            raise InstanceError(refusal(plan.name, recorded, manager, path))
        plan.manager = recorded
        if plan.spec is not None:
            plan.manager = manager
            plan.files.append(
                file_change(ManagedFile(path, render_manager(plan.name, manager), 0, 0, 0o644))
            )
