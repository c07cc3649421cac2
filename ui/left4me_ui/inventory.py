"""The Ansible inventory as the UI needs it: hosts, and what each already declares."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class DeclaredInstance:
    """An instance the inventory itself runs on a host (game_instances_list)."""

    name: str
    ports: tuple[int, ...]


@dataclass(frozen=True)
class Inventory:
    hostvars: dict[str, dict] = field(default_factory=dict)

    @property
    def hosts(self) -> list[str]:
        return sorted(self.hostvars)

    def declared_instances(self, host: str) -> list[DeclaredInstance]:
        """game_instances_list of the host: their names and ports are taken for the UI."""
        found = []
        for item in self.hostvars.get(host, {}).get("game_instances_list") or []:
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                continue
            port, client_port = (_as_port(item.get(key)) for key in ("port", "client_port"))
            if port and not client_port:
                client_port = port + 1  # srcds_instance's default: srcds binds one at start
            ports = (port, client_port)
            found.append(DeclaredInstance(item["name"], tuple(p for p in ports if p)))
        return found

    def overlay_ids(self, host: str) -> list[str]:
        """Overlays the host builds (overlays_list): admins' blueprints may stack any."""
        return [i["id"] for i in self._overlays(host)]

    def offered_overlay_ids(self, host: str) -> list[str]:
        """Those of the host's overlays the operator offers to UI users (`users_may_stack:
        true` in overlays_list): a user's server runs the user's code, which reads every
        file of every overlay it stacks, so none is offered unless marked."""
        return [i["id"] for i in self._overlays(host) if i.get("users_may_stack") is True]

    def _overlays(self, host: str) -> list[dict]:
        items = self.hostvars.get(host, {}).get("overlays_list") or []
        return [i for i in items if isinstance(i, dict) and isinstance(i.get("id"), str)]


def _as_port(value: object) -> int | None:
    # ansible-inventory does not template: "{{ ... }}" ports are unknown here (the module
    # still refuses a clash on the host itself).
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None
