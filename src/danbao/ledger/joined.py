"""A write joined to the next ledger transaction of the current context.

A layer above the domain sometimes must commit a row of its own atomically with whatever the
domain's next transaction does, without the domain knowing: the HTTP API records an
Idempotency-Key in the same commit as the trade step or payment the request made, so a
crash can never leave the effect without its key (which a retry would then do again).

`joining(join)` sets a `Join` for the current context: an asyncio task, or a worker thread
that copied the request's context. The first `Ledger.transaction` submitted from that context
runs `join.before(txn)`, the work, and `join.after(txn, result)` as one work: one savepoint,
refused or committed together. The join is then spent, and later transactions from the same
context run alone. `committed` tells the joining layer whether that transaction committed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from danbao.ledger.transaction import LedgerTransaction

T = TypeVar("T")


class Join:
    """Override `before` and `after`; both may run more than once (a group's works are run
    again after a sibling's refusal), so they decide everything from what they read."""

    spent = False
    committed = False

    def before(self, txn: LedgerTransaction) -> None:
        pass

    def after(self, txn: LedgerTransaction, result: Any) -> None:
        pass


_pending: ContextVar[Join | None] = ContextVar("danbao_ledger_join", default=None)


@contextmanager
def joining(join: Join) -> Iterator[Join]:
    token = _pending.set(join)
    try:
        yield join
    finally:
        _pending.reset(token)


def attach(work: Callable[[LedgerTransaction], T]) -> tuple[Callable[[LedgerTransaction], T], Join | None]:
    """`work` with the current context's join around it, if it has one not yet spent (it
    is spent now); the caller marks the join `committed` once the transaction commits."""
    join = _pending.get()
    if join is None or join.spent:
        return work, None
    join.spent = True

    def joined(txn: LedgerTransaction) -> T:
        join.before(txn)
        result = work(txn)
        join.after(txn, result)
        return result

    return joined, join
