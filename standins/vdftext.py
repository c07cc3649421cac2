"""Minimal writer for Valve's text KeyValues (VDF) format, as used by steamapps/*.acf."""

from __future__ import annotations

from collections.abc import Mapping

VdfValue = str | int | Mapping[str, "VdfValue"]


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _render(name: str, value: VdfValue, depth: int) -> list[str]:
    indent = "\t" * depth
    if isinstance(value, Mapping):
        lines = [f"{indent}{_quote(name)}", f"{indent}{{"]
        for key, child in value.items():
            lines.extend(_render(key, child, depth + 1))
        lines.append(f"{indent}}}")
        return lines
    return [f"{indent}{_quote(name)}\t\t{_quote(str(value))}"]


def dumps(name: str, value: Mapping[str, VdfValue]) -> str:
    """Serialise one top-level section the way Steam writes it (tabs, quoted keys)."""
    return "\n".join(_render(name, value, 0)) + "\n"


def read_value(text: str, key: str) -> str | None:
    """Return the first `"key" "value"` pair's value; enough to read a manifest's buildid."""
    needle = _quote(key)
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.lower().startswith(needle.lower()):
            rest = stripped[len(needle) :].strip()
            if rest.startswith('"') and rest.endswith('"') and len(rest) >= 2:
                return rest[1:-1]
    return None
