# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Who manages an instance (the inventory, or another manager such as the UI), and which
of that manager's records owns it (its claim).

Servers an operator declares in ``game_instances_list`` and servers the UI makes live
side by side on one host. Each instance's manager is recorded on the host, beside its env
file, in ``{config_dir}/instances/NAME.manager`` (root 0644, no secret): a comment line,
the claim line ``claim TOKEN`` when the call gave one, and the manager's name last.
``srcds_instance`` writes it whenever it configures an instance and refuses to touch an
instance another manager recorded, so a ``site.yml`` run never changes a UI server and the
UI never changes an inventory one. The ``game_instances`` role prunes only instances
recorded as ``inventory``.

One manager name can stand for many owners: every left4me UI is ``ui``. The claim tells
them apart: the UI passes ``ui:<its instance id>/<server id>`` and a call whose claim
differs from the recorded one is refused, naming the owner, so a user of one UI cannot
take over a server made by another UI, by AWX or before its UI lost its database by
naming a server the same.

Instances without a claim: an instance with no record at all (made before managers were
recorded) is taken by the first call that configures it when that call gives no claim
(``site.yml``). An instance recorded with no claim (a ``ui`` instance made before claims
were recorded), or with no record, is refused to a call that gives a claim unless the call
also says ``adopt``: only the UI whose database has the server and ran it on this host
says so (its reconcile, its start/stop/restart/delete of a server it deployed before); a
create never does. A call that gives no claim is refused for a claimed instance.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence

from ansible_collections.left4me.l4d2.plugins.module_utils._common import read_text
from ansible_collections.left4me.l4d2.plugins.module_utils._instance import (
    InstanceError,
    InstancePlan,
    ManagedFile,
    file_change,
)
from ansible_collections.left4me.l4d2.plugins.module_utils._layout import HostLayout

DEFAULT_MANAGER = "inventory"
_MANAGER_RE = re.compile(r"[a-z][a-z0-9_-]{0,31}")
# MANAGER:ID[/ID]: who inside a manager owns the instance (ui:<ui instance id>/<server id>).
_CLAIM_RE = re.compile(r"[a-z][a-z0-9_-]{0,31}:[A-Za-z0-9_.-]{1,64}(/[A-Za-z0-9_.-]{1,64})?")
_CLAIM_PREFIX = "claim "
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


def validate_claim(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _CLAIM_RE.fullmatch(value):
        raise InstanceError(
            f"claim {value!r} must look like MANAGER:ID or MANAGER:ID/ID (letters, digits,"
            " '_', '.' or '-'), e.g. ui:<the UI's instance id>/<server id>"
        )
    return value


def render_manager(name: str, manager: str, claim: str | None = None) -> str:
    owner = f" for {claim}" if claim else ""
    lines = [
        f"# left4me: instance {name} is managed by {manager}{owner}; srcds_instance refuses"
        " calls made for another manager or claim, and site.yml prunes only inventory"
        " instances.",
    ]
    if claim:
        lines.append(_CLAIM_PREFIX + claim)
    lines.append(manager)
    return "\n".join(lines) + "\n"


def _record_lines(text: str | None) -> list[str]:
    if text is None:
        return []
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]


def parse_manager(text: str | None) -> str | None:
    """The recorded manager (the last line that is neither a comment nor the claim), or None."""
    lines = [ln for ln in _record_lines(text) if not ln.startswith(_CLAIM_PREFIX)]
    return lines[-1] if lines else None


def parse_claim(text: str | None) -> str | None:
    """The recorded claim (``claim TOKEN``), or None for a record made without one."""
    claims = [ln[len(_CLAIM_PREFIX):].strip() for ln in _record_lines(text)
              if ln.startswith(_CLAIM_PREFIX)]
    return claims[-1] if claims else None


def refusal(name: str, recorded: str, wanted: str, path: str) -> str:
    owner = KNOWN_MANAGERS.get(recorded, recorded)
    return (
        f"instance {name!r} is managed by {recorded} ({owner}; recorded in {path}), not by"
        f" {wanted}: leave it to its manager, or pick another name. Nothing was changed"
    )


def claim_refusal(name: str, recorded: str | None, wanted: str | None, path: str) -> str:
    if wanted is None:
        return (
            f"instance {name!r} is owned by {recorded} (recorded in {path}); this call gives no"
            f" claim: pass claim={recorded} if you act for that owner. Nothing was changed"
        )
    if recorded is None:
        return (
            f"instance {name!r} on this host has no owner recorded (made before owners were"
            f" recorded, or by hand; {path}), so {wanted} may not take it over by naming a"
            " server the same: pick another name. The UI whose database has this server"
            " claims it with Reconcile host (playbooks/reconcile.yml). Nothing was changed"
        )
    return (
        f"instance {name!r} is owned by {recorded} (recorded in {path}), not by {wanted}:"
        " another UI, AWX or an earlier database of this UI made it. Pick another name."
        " Nothing was changed"
    )


def check_claim(name: str, recorded: str | None, wanted: str | None, adopt: bool,
                exists: bool, path: str) -> None:
    """Refuse a call whose claim does not match the instance's owner (see the module doc)."""
    if recorded == wanted:
        return
    if wanted is None or recorded is not None:
        raise InstanceError(claim_refusal(name, recorded, wanted, path))
    # A claim for an instance without one: new, or adopted by the UI that has it.
    if exists and not adopt:
        raise InstanceError(claim_refusal(name, None, wanted, path))


def note_managers(plans: Sequence[InstancePlan], layout: HostLayout, manager: str,
                  claims: Mapping[str, tuple[str | None, bool]] | None = None) -> None:
    """Refuse instances another manager or owner recorded; record ``manager`` (and the
    call's claim) for configured ones.

    ``claims`` maps an instance name to (claim, adopt) as the call gave them. The record
    joins the plan's files (so it is reported, diffed and written like them) after the plan
    decided whether the server restarts: a new record never restarts one.
    """
    manager = validate_manager(manager)
    claims = claims or {}
    for plan in plans:
        claim, adopt = claims.get(plan.name, (None, False))
        claim = validate_claim(claim)
        path = layout.manager_file(plan.name)
        text = read_text(path)
        recorded = parse_manager(text)
        if recorded is not None and recorded != manager:
            raise InstanceError(refusal(plan.name, recorded, manager, path))
        exists = text is not None or os.path.exists(layout.env_file(plan.name))
        check_claim(plan.name, parse_claim(text), claim, adopt, exists, path)
        plan.manager = recorded
        if plan.spec is not None:
            plan.manager = manager
            plan.files.append(file_change(
                ManagedFile(path, render_manager(plan.name, manager, claim), 0, 0, 0o644)))
