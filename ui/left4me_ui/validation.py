"""Server settings checked by the collection's own rules (module_utils/_instance.py).

srcds_instance checks an instance in two halves: `parse_spec`, the rules alone (names,
ports, map, tick rate, players, hostname, args, layer count and paths), and
`check_layers`, its layers against the host's directories. The UI runs the first half,
the very function the module runs, so every rule has one copy, the module's; the host
check waits for the host.
"""

from __future__ import annotations

import re

from ansible_collections.left4me.l4d2.plugins.module_utils._common import parse_size
from ansible_collections.left4me.l4d2.plugins.module_utils._instance import (
    DEFAULTS,
    InstanceError,
    InstanceSpec,
    parse_spec,
    size_text,
)
from ansible_collections.left4me.l4d2.plugins.module_utils._layout import (
    validate_instance_name,
)

__all__ = ["DEFAULTS", "InstanceError", "cvar_args", "check_instance", "check_name",
           "parse_size", "size_text"]

_CVAR_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
PLACEHOLDER_NAME = "blueprint"


def check_name(name: object) -> str:
    """A server name as srcds_instance takes it, or InstanceError."""
    return validate_instance_name(name, InstanceError)


def cvar_args(cvars: dict[str, str]) -> list[str]:
    """Extra cvars as srcds arguments: {"sv_gametypes": "coop"} -> ["+sv_gametypes", "coop"]."""
    args: list[str] = []
    for name, value in cvars.items():
        if not isinstance(name, str) or not _CVAR_RE.fullmatch(name):
            raise InstanceError(f"cvar name {name!r} must be letters, digits and '_'")
        args += [f"+{name}", str(value)]
    return args


def check_instance(raw: dict) -> InstanceSpec:
    """Validate one instance's settings exactly as srcds_instance would (but for the host)."""
    try:
        return parse_spec(raw)
    except InstanceError as exc:
        raise InstanceError(str(exc).replace(f"instance {PLACEHOLDER_NAME!r}: ", "")) from None
