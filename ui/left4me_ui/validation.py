"""Server settings checked by the collection's own rules (module_utils/_instance.py).

srcds_instance validates against directories on the host (overlay ids must be
directories there). The UI runs the very same `validate_spec` against a throw-away layout
holding one empty directory per overlay id, so every rule (names, ports, map, tick rate,
players, hostname, args, layer count) has one copy, the module's.
"""

from __future__ import annotations

import os
import re
import tempfile

from ansible_collections.left4me.l4d2.plugins.module_utils._common import parse_size
from ansible_collections.left4me.l4d2.plugins.module_utils._instance import (
    DEFAULTS,
    InstanceError,
    InstanceSpec,
    layer_paths,
    size_text,
    validate_spec,
)
from ansible_collections.left4me.l4d2.plugins.module_utils._layout import (
    HostLayout,
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
    where_name = raw.get("name")
    with tempfile.TemporaryDirectory(prefix="left4me-ui-validate-") as scratch:
        layout = HostLayout(state_dir=os.path.join(scratch, "state"),
                            config_dir=os.path.join(scratch, "etc"),
                            systemd_dir=os.path.join(scratch, "systemd"))
        os.makedirs(layout.installation)
        try:
            check_name(where_name)
            for path in layer_paths(raw, layout, f"instance {where_name!r}"):
                # Ids are checked by layer_paths; paths outside the layout are refused later.
                if os.path.dirname(path) == layout.overlays_dir:
                    os.makedirs(path, exist_ok=True)
            return validate_spec(raw, layout)
        except InstanceError as exc:
            message = str(exc).replace(scratch, "")
            raise InstanceError(message.replace(f"instance {PLACEHOLDER_NAME!r}: ", "")) from None
