"""What this process knows of account totals, and the journal head that knowledge is true at.

Every write of an account's totals happens under the journal head lock and moves the head
to a new hash (see `Ledger._apply`). So totals this process wrote in a transaction that
moved the head from H to H' are the database's totals for as long as the head stays H':
a writer that finds the head at H' when it takes the lock may plan on them instead of
reading them again. Any other head (another process or connection wrote in between, or
the database was restored) makes them worthless, and the writer reads from the database.
An account this process created under the lock at head H has zero totals for as long as
the head stays H, too: any change to its totals moves the head.

Only committed knowledge enters (`learn` runs from `Raw.on_commit`), and the engine gets
copies, since it changes the totals it plans on in place.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from collections.abc import Set as AbstractSet

from danbao.ledger.engine import Totals

# Accounts remembered at most; past it the knowledge restarts from the latest commit.
KNOWN_ACCOUNTS_MAX = 100_000

# The journal head: (timestamp, hash).
Head = tuple[int, str]


class KnownTotals:
    """Account totals as of one journal head, learned from this process's commits."""

    def __init__(self, limit: int = KNOWN_ACCOUNTS_MAX):
        self._limit = limit
        # Both change together, under the lock: commits from two threads (the writer and
        # an event loop) may report in either order.
        self._lock = threading.Lock()
        self._head: Head | None = None
        self._totals: dict[str, Totals] = {}

    def find(self, account_ids: Iterable[str]) -> tuple[str | None, dict[str, Totals]]:
        """(the head hash they are true at, copies of the totals known among `account_ids`)."""
        head, found = self._found(account_ids)
        return (None if head is None else head[1]), found

    def find_all(self, account_ids: AbstractSet[str]) -> tuple[Head, dict[str, Totals]] | None:
        """(the head they are true at, copies of the totals of every one of `account_ids`),
        or None if any of them is not known."""
        head, found = self._found(account_ids)
        return (head, found) if head is not None and len(found) == len(account_ids) else None

    def _found(self, account_ids: Iterable[str]) -> tuple[Head | None, dict[str, Totals]]:
        with self._lock:
            known = self._totals
            return self._head, {i: known[i].copy() for i in account_ids if i in known}

    def learn(self, locked_hash: str, new_head: Head, written: dict[str, Totals]) -> None:
        """A transaction that locked the head at `locked_hash` committed, moving it to
        `new_head` (or leaving it there) and writing `written` (objects nobody changes
        afterwards)."""
        with self._lock:
            if self._hash() != locked_hash or len(self._totals) + len(written) > self._limit:
                # Someone else's commit came between (or memory is full): what was known
                # is not known to hold at the new head.
                self._totals = {}
            self._totals.update(written)
            self._head = new_head

    def _hash(self) -> str | None:
        return None if self._head is None else self._head[1]

    def __len__(self) -> int:
        return len(self._totals)
