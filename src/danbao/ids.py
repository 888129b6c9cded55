"""Identifiers the platform mints: short, unguessable, and repeatable when seeded (the demo)."""

from __future__ import annotations

import random
import secrets
import threading

ID_RANDOM_BYTES = 8


class Ids:
    """`new("t")` -> "t_5f0c2a9e1b7d3c44". Seeded, it repeats the same sequence."""

    def __init__(self, seed: int | None = None):
        self._random = random.Random(seed) if seed is not None else None
        self._lock = threading.Lock()

    def new(self, prefix: str) -> str:
        if self._random is None:
            return f"{prefix}_{secrets.token_hex(ID_RANDOM_BYTES)}"
        with self._lock:
            return f"{prefix}_{self._random.getrandbits(8 * ID_RANDOM_BYTES):016x}"
