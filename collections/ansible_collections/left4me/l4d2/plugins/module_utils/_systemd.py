# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# Shipped to hosts verbatim: standard library only (tests/collection/test_host_libraries.py).
"""systemd as left4me asks it: commands run in the C locale, ``systemctl show`` and its
parse. Standard library only.

After community.general's ``_systemd.py`` and ``_cmd_runner.py``: the argv a module runs
is built here, the module runs it with :func:`run_in_c` (its own ``run_command``), and
the answer is parsed here, so every caller (srcds_instance, the reads in ``_reads`` and
the UI's status read, which runs the same argv over SSH) reads systemd the same way. Unit
names come from ``_layout`` (:func:`server_unit_name`).
"""

from __future__ import annotations

from collections.abc import Sequence

from ansible_collections.left4me.l4d2.plugins.module_utils._common import LANG_C


def run_in_c(module, argv: Sequence[str]) -> tuple[int, str, str]:
    """``argv`` run by an AnsibleModule in the C locale: systemd's words, not a
    translation, so what is parsed is what it said."""
    return module.run_command(list(argv), environ_update=LANG_C)


def systemctl_argv(verb: str, units: Sequence[str], *extra: str) -> list[str]:
    """``systemctl VERB [EXTRA...] UNIT...``."""
    return ["systemctl", verb, *extra, *units]


def show_argv(units: Sequence[str], properties: Sequence[str]) -> list[str]:
    """``systemctl show`` of ``properties`` for each of ``units`` (one call for all)."""
    return systemctl_argv("show", units, "--property=" + ",".join(properties))


def parse_show(text: str) -> dict[str, dict[str, str]]:
    """``systemctl show`` of several units (blocks split by a blank line), by ``Id``; a
    unit systemd does not know still has a block, with ``LoadState=not-found``."""
    units: dict[str, dict[str, str]] = {}
    for block in text.strip().split("\n\n"):
        props = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        if props.get("Id"):
            units[props["Id"]] = props
    return units
