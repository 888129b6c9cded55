"""The injected clock. Every deadline in danbao reads one of these, never `time.time()`.

Times are integer nanoseconds since the Unix epoch, the unit of ledger timestamps.
Tests use `ManualClock` and move time forward instead of sleeping.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

NS_PER_SECOND = 1_000_000_000


class Clock(Protocol):
    def now_ns(self) -> int: ...


class SystemClock:
    def now_ns(self) -> int:
        return time.time_ns()


class ManualClock:
    """A clock that moves only when told to; safe to read from many threads."""

    def __init__(self, start_ns: int = 1_700_000_000 * NS_PER_SECOND):
        self._now_ns = start_ns
        self._lock = threading.Lock()

    def now_ns(self) -> int:
        with self._lock:
            return self._now_ns

    def advance(self, seconds: float = 0, *, ns: int = 0) -> int:
        step = int(seconds * NS_PER_SECOND) + ns
        if step < 0:
            raise ValueError("a clock never moves backwards")
        with self._lock:
            self._now_ns += step
            return self._now_ns
