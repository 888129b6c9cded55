"""`danbao.ledger.joined`: an outer layer's write commits in the same work as the next ledger
transaction its context submits, or not at all, and only that one transaction carries it."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from danbao.errors import DanbaoError
from danbao.ledger import Ledger, NewTransfer, Result, audit
from danbao.ledger.joined import Join, joining
from danbao.ledger.transaction import LedgerTransaction
from tests.ledger.helpers import fund, open_accounts


class Refused(DanbaoError):
    code = "refused"


class Fee(Join):
    """Charges a fee from a to c after the work, and records what the work returned."""

    def __init__(self, transfer_id: str, *, refuse_before: bool = False):
        self.transfer_id = transfer_id
        self.refuse_before = refuse_before
        self.seen: list[Any] = []

    def before(self, txn: LedgerTransaction) -> None:
        if self.refuse_before:
            raise Refused("the join refuses before the work runs")

    def after(self, txn: LedgerTransaction, result: Any) -> None:
        self.seen.append(result)
        [r] = txn.create_transfers([NewTransfer(self.transfer_id, "a", "c", 1, "USD")])
        assert r.result is Result.ok


def pays(transfer_id: str, *, refuse: bool = False):  # type: ignore[no-untyped-def]
    def work(txn: LedgerTransaction) -> str:
        [r] = txn.create_transfers([NewTransfer(transfer_id, "a", "b", 10, "USD")])
        assert r.result is Result.ok
        if refuse:
            raise Refused("the work changes its mind")
        return transfer_id

    return work


@pytest.fixture
def funded(ledger: Ledger) -> Ledger:
    open_accounts(ledger, "a", "b", "c")
    fund(ledger, "a", 1_000)
    return ledger


def test_the_join_commits_with_the_work_and_sees_its_result(funded: Ledger) -> None:
    fee = Fee("fee-1")
    with joining(fee):
        assert funded.transaction(pays("t1")) == "t1"
    assert fee.committed and fee.seen[-1] == "t1"
    assert funded.transfer("t1") is not None and funded.transfer("fee-1") is not None
    assert audit(funded.db).ok


def test_a_refused_work_takes_the_join_with_it(funded: Ledger) -> None:
    fee = Fee("fee-1")
    with joining(fee), pytest.raises(Refused):
        funded.transaction(pays("t1", refuse=True))
    assert not fee.committed
    assert funded.transfer("t1") is None and funded.transfer("fee-1") is None
    assert funded.account("a").balance == 1_000  # type: ignore[union-attr]


def test_a_join_that_refuses_stops_the_work(funded: Ledger) -> None:
    fee = Fee("fee-1", refuse_before=True)
    with joining(fee), pytest.raises(Refused):
        funded.transaction(pays("t1"))
    assert not fee.committed and funded.transfer("t1") is None


def test_only_the_first_transaction_of_the_context_carries_the_join(funded: Ledger) -> None:
    fee = Fee("fee-1")
    with joining(fee):
        funded.transaction(pays("t1"))
        funded.transaction(pays("t2"))
    assert fee.seen == ["t1"]
    assert funded.account("c").balance == 1  # type: ignore[union-attr]
    funded.transaction(pays("t3"))  # outside the context: no join at all
    assert funded.account("c").balance == 1  # type: ignore[union-attr]


def test_a_join_no_transaction_took_ends_with_its_block(funded: Ledger) -> None:
    fee = Fee("fee-1")
    with joining(fee):
        pass  # refused before any transaction, say
    funded.transaction(pays("t1"))
    assert fee.seen == [] and not fee.committed
    assert funded.transfer("fee-1") is None


def test_another_thread_does_not_carry_this_contexts_join(funded: Ledger) -> None:
    fee = Fee("fee-1")
    with joining(fee):
        elsewhere = threading.Thread(target=funded.transaction, args=(pays("t-other"),))
        elsewhere.start()
        elsewhere.join()
        assert not fee.spent
        funded.transaction(pays("t1"))
    assert fee.seen == ["t1"]


def test_asyncio_tasks_carry_their_own_joins_into_a_shared_group(funded: Ledger) -> None:
    fees = [Fee(f"fee-{i}") for i in range(8)]

    async def one(i: int) -> str:
        with joining(fees[i]):
            return await funded.transaction_async(pays(f"t{i}", refuse=i % 4 == 0))

    async def main() -> list[object]:
        return await asyncio.gather(*(one(i) for i in range(8)), return_exceptions=True)

    outcomes = asyncio.run(main())
    for i, (outcome, fee) in enumerate(zip(outcomes, fees)):
        refused = i % 4 == 0
        assert isinstance(outcome, Refused) if refused else outcome == f"t{i}"
        assert fee.committed is not refused
        assert (funded.transfer(f"fee-{i}") is None) is refused
    assert funded.account("c").balance == 6  # type: ignore[union-attr]
    assert audit(funded.db).ok
