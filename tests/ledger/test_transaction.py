"""`Ledger.transaction`: a domain service's rows and money commit together or not at all,
and concurrent works share commits without sharing each other's refusals."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from danbao.errors import DanbaoError, InvariantViolation
from danbao.ledger import Ledger, NewTransfer, Result, audit
from tests.ledger.helpers import fund, open_accounts

WORKS = 16


class Refused(DanbaoError):
    code = "refused"


def test_a_refused_work_moves_no_money_and_the_others_commit(ledger: Ledger) -> None:
    open_accounts(ledger, "a", "b")
    fund(ledger, "a", 10_000)
    barrier = threading.Barrier(WORKS)

    def work(i: int) -> str:
        barrier.wait()

        def inside(txn):  # type: ignore[no-untyped-def]
            [r] = txn.create_transfers([NewTransfer(f"w{i}", "a", "b", 10, "USD")])
            assert r.result is Result.ok
            if i % 2:
                raise Refused("odd works change their mind after moving money")
            return f"done {i}"

        try:
            return ledger.transaction(inside)
        except Refused:
            return "refused"

    with ThreadPoolExecutor(WORKS) as pool:
        outcomes = list(pool.map(work, range(WORKS)))
    assert outcomes == [f"done {i}" if i % 2 == 0 else "refused" for i in range(WORKS)]
    assert ledger.account("b").balance == 10 * WORKS // 2  # type: ignore[union-attr]
    for i in range(WORKS):
        assert (ledger.transfer(f"w{i}") is None) == bool(i % 2)
    report = audit(ledger.db)
    assert report.ok, report.violations


def test_a_work_that_starts_another_transaction_is_a_programming_error(ledger: Ledger) -> None:
    with pytest.raises(InvariantViolation):
        ledger.transaction(lambda txn: ledger.transaction(lambda inner: None))
    assert ledger.transaction(lambda txn: "still serving") == "still serving"


def test_asyncio_callers_each_get_their_own_outcome(ledger: Ledger) -> None:
    open_accounts(ledger, "a", "b")
    fund(ledger, "a", 10_000)

    def work(i: int):  # type: ignore[no-untyped-def]
        def inside(txn):  # type: ignore[no-untyped-def]
            [r] = txn.create_transfers([NewTransfer(f"aw{i}", "a", "b", 10, "USD")])
            assert r.result is Result.ok
            if i % 3 == 0:
                raise Refused(f"work {i} refuses")
            return i

        return inside

    async def main() -> list[object]:
        return await asyncio.gather(*(ledger.transaction_async(work(i)) for i in range(WORKS)), return_exceptions=True)

    outcomes = asyncio.run(main())
    for i, outcome in enumerate(outcomes):
        if i % 3 == 0:
            assert isinstance(outcome, Refused) and str(outcome) == f"work {i} refuses"
        else:
            assert outcome == i
    assert ledger.account("b").balance == 10 * sum(1 for i in range(WORKS) if i % 3)  # type: ignore[union-attr]
    # The loop that waited is gone; the writer still serves everyone else.
    assert ledger.transaction(lambda txn: "still serving") == "still serving"
    assert audit(ledger.db).ok
