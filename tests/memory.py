"""How much memory a piece of work holds at its most, for tests that a reader's memory stays
bounded: Python's own allocations, counted by tracemalloc, so the figure does not depend
on what the process held before."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def peak_bytes(work: Callable[[], T]) -> tuple[T, int]:
    """What `work` returns, and the most bytes Python held for it while it ran."""
    tracemalloc.start()
    try:
        return work(), tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
