"""Simulated players: who is connected, and a seeded join/leave schedule."""

from __future__ import annotations

import random
import time
import zlib
from dataclasses import dataclass, field

_NAMES = [
    "Ellis",
    "Nick",
    "Rochelle",
    "Coach",
    "Zoey",
    "Francis",
    "Louis",
    "Bill",
    "Keith",
    "Dave",
    "Virgil",
    "Whitaker",
    "Sniper",
    "Medkit",
    "Tank",
    "Witch",
    "Boomer",
    "Hunter",
    "Jockey",
    "Charger",
    "Spitter",
    "Smoker",
]


@dataclass
class Player:
    userid: int
    name: str
    account_id: int
    address: str
    ping: int
    joined_at: float = field(default_factory=time.monotonic)
    score: int = 0
    loss: int = 0

    @property
    def steam2_id(self) -> str:
        # STEAM_1:Y:Z where account id = 2*Z + Y (universe 1 = public, as L4D2 prints it).
        return f"STEAM_1:{self.account_id % 2}:{self.account_id // 2}"

    @property
    def connected_seconds(self) -> float:
        return time.monotonic() - self.joined_at


def account_id_for(name: str) -> int:
    """Stable per name, so a player tracker sees the same SteamID when a name rejoins."""
    return 10_000_000 + zlib.crc32(name.encode()) % 90_000_000


@dataclass
class Schedule:
    """How often simulated players join and how long they stay (seconds)."""

    mean_join_interval: float
    min_stay: float
    max_stay: float
    max_players: int


SCHEDULES = {
    "mild": Schedule(mean_join_interval=45.0, min_stay=60.0, max_stay=600.0, max_players=4),
    "busy": Schedule(mean_join_interval=5.0, min_stay=10.0, max_stay=120.0, max_players=8),
}


def parse_schedule(spec: str) -> Schedule | None:
    """`off`, `mild`, `busy`, or `join=S,stay=MIN-MAX,max=N` for a custom pace."""
    spec = spec.strip().lower()
    if spec in {"", "off", "0", "none"}:
        return None
    if spec in SCHEDULES:
        return SCHEDULES[spec]
    values = dict(part.split("=", 1) for part in spec.split(",") if "=" in part)
    low, _, high = values.get("stay", "60-600").partition("-")
    return Schedule(
        mean_join_interval=float(values.get("join", "45")),
        min_stay=float(low),
        max_stay=float(high or low),
        max_players=int(values.get("max", "4")),
    )


def random_name(rng: random.Random, taken: set[str]) -> str:
    for _ in range(100):
        name = f"{rng.choice(_NAMES)}{rng.randint(1, 999)}"
        if name not in taken:
            return name
    return f"Survivor{rng.randint(1000, 9999)}"
