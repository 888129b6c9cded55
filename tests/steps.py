"""SQLite's virtual-machine steps, counted: how much work a read does, without a clock."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def counted_steps(connection: sqlite3.Connection) -> Iterator[list[int]]:
    """Count the steps `connection` takes inside the block, in hundreds, into the one-item
    list it yields."""
    counted = [0]

    def step() -> int:
        counted[0] += 1
        return 0  # go on

    connection.set_progress_handler(step, 100)
    try:
        yield counted
    finally:
        connection.set_progress_handler(None, 0)
