"""Simulated players: who is connected, and a seeded join/leave schedule."""

from __future__ import annotations

import random
import re
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


# The survivor team always has four characters; whichever no human plays is a bot. Which four
# depends on the campaign: the L4D1 cast in The Sacrifice (c7), the ported L4D1 campaigns
# (c8-c12) and The Last Stand (c14); the L4D2 cast everywhere else, custom maps included.
L4D2_SURVIVORS = ("Nick", "Rochelle", "Coach", "Ellis")
L4D1_SURVIVORS = ("Bill", "Zoey", "Louis", "Francis")
_L4D1_CAST_CAMPAIGNS = frozenset({7, 8, 9, 10, 11, 12, 14})


def survivor_cast(map_name: str) -> tuple[str, ...]:
    match = re.match(r"c(\d+)m\d+_", map_name)
    if match and int(match.group(1)) in _L4D1_CAST_CAMPAIGNS:
        return L4D1_SURVIVORS
    return L4D2_SURVIVORS


@dataclass
class Player:
    """A connected client: a (simulated) human, or a survivor bot (`bot`, no SteamID/address)."""

    userid: int
    name: str
    account_id: int
    address: str
    ping: int
    joined_at: float = field(default_factory=time.monotonic)
    score: int = 0
    loss: int = 0
    slot: int = 0  # 1-based client slot (entity index), as `status` prints it
    character: str | None = None  # the survivor this client plays, if any
    bot: bool = False
    # Steam has not yet validated this client's ticket: `status` prints STEAM_ID_PENDING in
    # the uniqueid column (several such players look alike but for userid and name).
    pending: bool = False

    @property
    def steam2_id(self) -> str:
        if self.bot:
            return "BOT"
        if self.pending:
            return "STEAM_ID_PENDING"
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
