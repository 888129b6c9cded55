"""`LedgerTransaction`: the ledger inside a caller's write transaction.

Domain works (a trade step, a key issued) share one database transaction with the ledger
writes they make (see `Ledger.transaction`). The transaction keeps its journal entries,
appended rows and account totals in memory and writes them once, at `flush`, for a whole
group of works; its own reads see them first. A work that refuses is rewound to its mark.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from danbao.errors import invariant
from danbao.ledger.engine import Plan, Totals
from danbao.ledger.model import (
    PAGE_LIMIT_MAX,
    Account,
    AccountResult,
    BatchTooLarge,
    NewAccount,
    NewTransfer,
    Transfer,
    TransferResult,
    checked_batch,
    plain_account_flags,
)
from danbao.ledger.results import Result
from danbao.ledger.rows import (
    ACCOUNT_COLUMNS,
    MARK_ROWS,
    TRANSFER_FIELDS,
    TRANSFER_ROWS,
    lock_head_later,
    move_head,
    write_totals,
)
from danbao.store.raw import Raw, RowsOf
from danbao.text import storable

if TYPE_CHECKING:
    from danbao.ledger.ledger import Ledger

# Rows a transaction may queue for append-only tables before it flushes them.
APPENDED_ROWS_MAX = 65_536

T = TypeVar("T")


class _Mark(NamedTuple):
    """Where a `LedgerTransaction` stood before a work, to rewind to if the work refuses."""

    head: tuple[int, str] | None  # None: not read yet, so still the head as locked
    entries: int
    appended: int
    unwritten: int
    changed: dict[str, Totals]
    created: dict[str, Totals]
    expired: bool  # a refused work's voiding of due holds is rolled back with it


class LedgerTransaction:
    """The ledger inside a caller's write transaction (see `Ledger.transaction`).

    It keeps its journal entries, appended rows and account totals in memory and writes
    them at `flush`, once for a whole group of works; its own reads see them first."""

    def __init__(self, ledger: Ledger, raw: Raw):
        self.raw = raw
        self._ledger = ledger
        # The head lock is asked for first and its answer read when a transfer needs it:
        # pipelined, the lock travels with the work's first read instead of a round trip
        # of its own (the server still takes it first).
        self._head_later = lock_head_later(raw)
        self._locked_head: tuple[int, str] | None = None  # the head as locked, once read
        self._head: tuple[int, str] | None = None  # the head after this transaction's entries
        # The head row is written once, at the end (`flush`), not after every batch.
        self._entries = 0
        self._appended: list[tuple[RowsOf, tuple[Any, ...]]] = []
        # Journal entries appended but not yet written, by id: the journal as this
        # transaction sees it is the table plus these.
        self._unwritten: dict[str, Transfer] = {}
        # Accounts' totals as this transaction left them, written at `flush`: a group's
        # works share one UPDATE, and an account they all touch is read once.
        self._changed: dict[str, Totals] = {}
        # Accounts this transaction created (zero totals), taught to the ledger's known
        # totals once it commits: a new account's first transfer need not read it.
        self._created: dict[str, Totals] = {}
        self._expired = False  # due holds are voided once per transaction
        self.now_ns = ledger.clock.now_ns()

    def run(self, work: Callable[[LedgerTransaction], T]) -> T:
        result = work(self)
        self.flush()
        return result

    def flush(self) -> None:
        """Write what the transaction has kept back (appended rows, journal entries, the
        changed accounts' totals) and move the journal head to the last entry."""
        if self._appended:
            by_table: dict[RowsOf, list[tuple[Any, ...]]] = {}
            for rows_of, row in self._appended:
                by_table.setdefault(rows_of, []).append(row)
            for rows_of, rows in by_table.items():
                self.raw.insert(rows_of, rows)
            self._appended = []
            self._unwritten = {}
        changed, self._changed = self._changed, {}
        created, self._created = self._created, {}
        if changed:
            write_totals(self.raw, changed)
        known = self._ledger.known
        if created and not self._entries:
            locked = self._current_head()  # nothing moved it: the head stays where it was locked
            self.raw.on_commit(lambda: known.learn(locked[1], locked, created))
        if self._entries:
            invariant(self._locked_head is not None and self._head is not None, "entries were planned on a read head")
            locked_hash, new_head = self._locked_head[1], self._head  # type: ignore[index]
            move_head(self.raw, locked_hash, new_head, self._entries)  # type: ignore[arg-type]
            self._locked_head, self._entries = new_head, 0
            learned = created | changed  # a created account the entries touched is in `changed`
            self.raw.on_commit(lambda: known.learn(locked_hash, new_head, learned))  # type: ignore[arg-type]

    def _current_head(self) -> tuple[int, str]:
        """The head the next entry chains to: the locked head (read now if it was not yet)
        until this transaction has entries of its own, or was rewound to before them."""
        if self._locked_head is None:
            self._locked_head = self._head_later()
        if self._head is None:
            self._head = self._locked_head
        return self._head

    def _locked_hash(self) -> str:
        """The head's hash as this transaction found it when it took the lock (or as its
        last `flush` left it): what the database held before the entries kept back."""
        self._current_head()
        return self._locked_head[1]  # type: ignore[index]

    def append(self, rows_of: RowsOf, row: tuple[Any, ...]) -> None:
        """Queue a row for an append-only table, written at `flush`: a group of works then
        pays for one INSERT per table rather than one per work. Nothing in the transaction
        may read such a row back before the transaction ends."""
        invariant(len(row) == len(rows_of.columns), f"a {rows_of.table} row has {len(rows_of.columns)} columns")
        invariant(len(self._appended) < APPENDED_ROWS_MAX, "a transaction appends a bounded number of rows")
        self._appended.append((rows_of, row))

    def _keep(self, plan: Plan) -> None:
        """Keep back a plan's journal entries and changed totals until `flush`."""
        for entry in plan.entries:
            self.append(TRANSFER_ROWS, entry)
            self._unwritten[entry.id] = Transfer(*entry[: len(TRANSFER_FIELDS)])
        for mark in plan.marks:
            self.append(MARK_ROWS, mark)
        self._changed.update(plan.accounts)

    def _mark(self) -> _Mark:
        # The totals are never changed in place (the engine gets copies): a shallow copy
        # of the dict is a snapshot.
        return _Mark(
            self._head, self._entries, len(self._appended), len(self._unwritten), dict(self._changed), dict(self._created), self._expired
        )

    def _rewind(self, mark: _Mark) -> None:
        """Forget everything since `mark`: the caller rolled the database back to it."""
        self._head, self._entries, self._changed, self._expired = mark.head, mark.entries, mark.changed, mark.expired
        self._created = mark.created
        del self._appended[mark.appended :]
        for entry_id in list(self._unwritten)[mark.unwritten :]:
            del self._unwritten[entry_id]

    def create_accounts(self, new: Sequence[NewAccount]) -> list[AccountResult]:
        new = plain_account_flags(new)
        results = self._ledger._create_accounts(self.raw, new, self.now_ns)
        for account, result in zip(new, results, strict=True):
            if result.result is Result.ok:
                self._created[account.id] = Totals(account.currency, account.flags, 0, 0, 0, 0)
        return results

    def create_transfers(self, transfers: Sequence[NewTransfer]) -> list[TransferResult]:
        transfers = checked_batch(transfers)
        if not transfers:
            return []
        plan = self._ledger._apply(self.raw, [transfers], self._current_head, expire=not self._expired, txn=self)
        self._expired = True
        self._head = (plan.head_timestamp, plan.head_hash)
        self._entries += len(plan.entries)
        return plan.results[0]

    def accounts(self, account_ids: Sequence[str]) -> dict[str, Account]:
        """Current accounts by id, as this transaction sees them (missing ids are absent)."""
        if len(account_ids) > PAGE_LIMIT_MAX:
            raise BatchTooLarge(f"at most {PAGE_LIMIT_MAX} accounts per lookup")
        rows = self.raw.select_where_in(f"SELECT {ACCOUNT_COLUMNS} FROM accounts", "id", sorted({i for i in account_ids if storable(i)}))
        found = {row[0]: Account(*row) for row in rows}
        for account_id, account in found.items():
            t = self._changed.get(account_id)
            if t is not None:
                found[account_id] = dataclasses.replace(
                    account,
                    debits_pending=t.debits_pending,
                    debits_posted=t.debits_posted,
                    credits_pending=t.credits_pending,
                    credits_posted=t.credits_posted,
                )
        return found
