"""`Ledger.transaction`: a domain service's rows and money commit together or not at all,
and concurrent works share commits without sharing each other's refusals."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from danbao.clock import ManualClock
from danbao.errors import DanbaoError, InvariantViolation
from danbao.ledger import Ledger, NewTransfer, Result, TransferFlags, audit
from danbao.ledger.group_commit import Failed
from danbao.ledger.model import PAGE_LIMIT_MAX, BatchTooLarge
from danbao.store import Database, upgrade
from danbao.store.errors import TransientStoreError
from danbao.store.raw import RowsOf
from tests.ledger.helpers import fund, open_accounts

WORKS = 16


class Refused(DanbaoError):
    code = "refused"


def run_as_one_group(ledger: Ledger, *works):  # type: ignore[no-untyped-def]
    """Run works as one group, as the group committer's writer does (pipelined on PostgreSQL)."""
    return ledger._commit_works(list(works))


def moves_then_refuses(transfer_id: str, amount: int):  # type: ignore[no-untyped-def]
    """A work that moves money from a to b and then changes its mind."""

    def work(txn):  # type: ignore[no-untyped-def]
        [r] = txn.create_transfers([NewTransfer(transfer_id, "a", "b", amount, "USD")])
        assert r.result is Result.ok
        raise Refused("changed its mind")

    return work


def moves(transfer_id: str, amount: int):  # type: ignore[no-untyped-def]
    """A work that moves money from a to b and returns the result code."""

    def work(txn):  # type: ignore[no-untyped-def]
        [r] = txn.create_transfers([NewTransfer(transfer_id, "a", "b", amount, "USD")])
        return r.result

    return work


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


def test_asyncio_callers_on_sqlite_commit_on_their_loop_and_never_block_it_on_another_writer(tmp_path, clock: ManualClock) -> None:
    db = Database(f"sqlite:///{tmp_path}/l.db")
    upgrade(db)
    with Ledger(db, clock) as ledger:
        open_accounts(ledger, "a", "b")
        fund(ledger, "a", 10_000)
        threads: list[int] = []

        def work(i: int):  # type: ignore[no-untyped-def]
            def inside(txn):  # type: ignore[no-untyped-def]
                threads.append(threading.get_ident())
                [r] = txn.create_transfers([NewTransfer(f"lw{i}", "a", "b", 10, "USD")])
                return r.result

            return inside

        async def first_alone_then_behind_another_writer(holder: sqlite3.Connection) -> tuple[object, object]:
            loop_thread = threading.get_ident()
            alone = await ledger.transaction_async(work(0))
            assert threads == [loop_thread]  # the writer was idle: committed on the loop
            holder.execute("BEGIN IMMEDIATE")  # another connection takes the write lock
            waiting = asyncio.ensure_future(ledger.transaction_async(work(1)))
            for _ in range(20):  # turns of the loop: it keeps running while the work waits
                await asyncio.sleep(0)
            assert not waiting.done()
            holder.execute("COMMIT")
            return alone, await waiting

        holder = sqlite3.connect(f"{tmp_path}/l.db", isolation_level=None)
        assert asyncio.run(first_alone_then_behind_another_writer(holder)) == (Result.ok, Result.ok)
        holder.close()
        assert threads[-1] != threads[0]  # the second went to the writer thread, which waited
        assert ledger.account("b").balance == 20  # type: ignore[union-attr]
        assert audit(db).ok
    db.dispose()


EVENT_ROWS = RowsOf(
    "trade_events",
    ("trade_id", "seq", "at", "actor", "action", "from_status", "to_status", "amount", "detail", "dispatched"),
    ("text", "integer", "bigint", "text", "text", "text", "text", "bigint", "text", "integer"),
)


def test_rows_appended_by_a_refused_work_are_never_written(ledger: Ledger) -> None:
    barrier = threading.Barrier(WORKS)

    def work(i: int) -> str:
        barrier.wait()

        def inside(txn):  # type: ignore[no-untyped-def]
            txn.append(EVENT_ROWS, (f"t{i}", 1, i, "actor", "create", "none", "created", None, None, 0))
            if i % 2:
                raise Refused("odd works refuse after appending")
            return "appended"

        try:
            return ledger.transaction(inside)
        except Refused:
            return "refused"

    with ThreadPoolExecutor(WORKS) as pool:
        list(pool.map(work, range(WORKS)))
    written = ledger.db.read_raw(lambda raw: raw.rows("SELECT trade_id FROM trade_events ORDER BY at"))
    assert [row[0] for row in written] == [f"t{i}" for i in range(0, WORKS, 2)]


def test_a_row_of_the_wrong_width_is_refused_before_anything_is_written(ledger: Ledger) -> None:
    with pytest.raises(InvariantViolation):
        ledger.transaction(lambda txn: txn.append(EVENT_ROWS, ("t1", 1)))
    assert ledger.db.read_raw(lambda raw: raw.rows("SELECT COUNT(*) FROM trade_events")) == [(0,)]


def test_a_transaction_sees_its_own_journal_entries_before_they_are_written(ledger: Ledger) -> None:
    open_accounts(ledger, "a", "b")
    fund(ledger, "a", 1_000)

    def inside(txn):  # type: ignore[no-untyped-def]
        first = txn.create_transfers([NewTransfer("t1", "a", "b", 100, "USD")])
        again = txn.create_transfers([NewTransfer("t1", "a", "b", 100, "USD")])
        hold = txn.create_transfers([NewTransfer("h1", "a", "b", 300, "USD", flags=int(TransferFlags.pending))])
        post = txn.create_transfers([NewTransfer("p1", flags=int(TransferFlags.post_pending), pending_id="h1", amount=200)])
        return [r.result for r in first + again + hold + post]

    assert ledger.transaction(inside) == [Result.ok, Result.exists, Result.ok, Result.ok]
    assert ledger.account("b").balance == 300  # type: ignore[union-attr]
    assert [t.id for t in ledger.transfers_of("b").items] == ["t1", "h1", "p1"]
    assert audit(ledger.db).ok


def test_a_refused_work_in_a_group_leaves_its_transfer_ids_free_for_the_next(ledger: Ledger) -> None:
    open_accounts(ledger, "a", "b")
    fund(ledger, "a", 1_000)

    outcomes = run_as_one_group(ledger, moves_then_refuses("same", 100), moves("same", 250))
    assert isinstance(outcomes[0], Failed) and isinstance(outcomes[0].error, Refused)
    assert outcomes[1] is Result.ok
    assert ledger.transfer("same").amount == 250  # type: ignore[union-attr]
    assert ledger.account("b").balance == 250  # type: ignore[union-attr]
    assert audit(ledger.db).ok


def test_a_transaction_sees_the_balances_it_changed_before_they_are_written(ledger: Ledger) -> None:
    open_accounts(ledger, "a", "b")
    fund(ledger, "a", 100)

    def inside(txn):  # type: ignore[no-untyped-def]
        [first] = txn.create_transfers([NewTransfer("t1", "a", "b", 70, "USD")])
        seen = txn.accounts(["a", "b"])
        [second] = txn.create_transfers([NewTransfer("t2", "a", "b", 50, "USD")])
        return first.result, seen["a"].balance, seen["b"].balance, second.result

    first, a_seen, b_seen, second = ledger.transaction(inside)
    assert (first, a_seen, b_seen) == (Result.ok, 30, 70)
    assert second is Result.insufficient_funds  # counted against the unwritten 70
    assert (ledger.account("a").balance, ledger.account("b").balance) == (30, 70)  # type: ignore[union-attr]
    assert audit(ledger.db).ok


def test_a_refused_work_in_a_group_leaves_no_trace_in_the_balances_the_next_one_sees(ledger: Ledger) -> None:
    open_accounts(ledger, "a", "b")
    fund(ledger, "a", 100)

    spends = moves("s", 90)
    outcomes = run_as_one_group(ledger, moves_then_refuses("r", 80), spends, spends)
    assert isinstance(outcomes[0], Failed)
    assert outcomes[1:] == [Result.ok, Result.exists]
    assert (ledger.account("a").balance, ledger.account("b").balance) == (10, 90)  # type: ignore[union-attr]
    assert audit(ledger.db).ok


def _a_hold_fallen_due(ledger: Ledger, clock: ManualClock) -> None:
    """a (funded with 1,000) holds 300 for b, due a second ago."""
    open_accounts(ledger, "a", "b")
    fund(ledger, "a", 1_000)
    [held] = ledger.create_transfers([NewTransfer("h", "a", "b", 300, "USD", flags=int(TransferFlags.pending), timeout_seconds=1)])
    assert held.result is Result.ok
    clock.advance(2)


def test_a_refused_work_that_voided_due_holds_leaves_the_voiding_to_the_next_work(ledger: Ledger, clock: ManualClock) -> None:
    _a_hold_fallen_due(ledger, clock)

    outcomes = run_as_one_group(ledger, moves_then_refuses("r", 10), moves("s", 10))
    assert isinstance(outcomes[0], Failed)
    assert outcomes[1] is Result.ok
    # The refused work's voiding was rolled back with it, so the next work voids the hold.
    assert ledger.holds("a").items == []
    assert [h.pending_id for h in ledger.holds("a", state="expired").items] == ["h"]
    assert ledger.account("a").balance == 1_000 - 10  # type: ignore[union-attr]
    assert audit(ledger.db).ok


def test_a_refused_work_that_voided_due_holds_teaches_nothing_about_when_holds_fall_due(ledger: Ledger, clock: ManualClock) -> None:
    """A plan that voids the due holds learns that no other can fall due for a while, and
    later batches skip the lookup until then. A refused work's voiding is rolled back, so
    what it learned is not true: the hold is still pending, and the next batch voids it."""
    _a_hold_fallen_due(ledger, clock)

    outcomes = run_as_one_group(ledger, moves_then_refuses("r", 10), lambda txn: "moves nothing")
    assert isinstance(outcomes[0], Failed)
    assert outcomes[1] == "moves nothing"
    assert [h.pending_id for h in ledger.holds("a").items] == ["h"]

    [r] = ledger.create_transfers([NewTransfer("s", "a", "b", 10, "USD")])  # the same moment
    assert r.result is Result.ok
    assert [h.pending_id for h in ledger.holds("a", state="expired").items] == ["h"]
    assert ledger.account("a").debits_pending == 0  # type: ignore[union-attr]
    assert audit(ledger.db).ok


def test_a_refused_works_queued_writes_are_rolled_back_with_it_and_the_others_land(ledger: Ledger) -> None:
    """Pipelined, a work's checked writes wait for the commit to be sent; a refusal after
    them still takes them back, and the rest of the group's are applied and checked."""
    open_accounts(ledger, "a", "b")

    def renames(account_id: str, kind: str, *, then_refuses: bool):  # type: ignore[no-untyped-def]
        def work(txn):  # type: ignore[no-untyped-def]
            txn.raw.expect("UPDATE accounts SET kind = ? WHERE id = ?", (kind, account_id), 1, "the account exists")
            if then_refuses:
                raise Refused("changed its mind after writing")
            return account_id

        return work

    outcomes = run_as_one_group(ledger, renames("a", "merchant", then_refuses=True), renames("b", "merchant", then_refuses=False))
    assert isinstance(outcomes[0], Failed) and isinstance(outcomes[0].error, Refused)
    assert outcomes[1] == "b"
    assert (ledger.account("a").kind, ledger.account("b").kind) == ("wallet", "merchant")  # type: ignore[union-attr]


def test_a_write_that_breaks_its_check_never_commits_and_what_reports_success_lands(ledger: Ledger) -> None:
    """Checked at once (SQLite) the breaking work fails alone; checked before the commit
    (PostgreSQL, pipelined) it fails its whole group. Either way it is reported, and
    nothing that did not report success is written."""
    open_accounts(ledger, "a", "b")
    fund(ledger, "a", 100)

    def renames_a_missing_account(txn):  # type: ignore[no-untyped-def]
        txn.raw.expect("UPDATE accounts SET kind = 'merchant' WHERE id = ?", ("nobody",), 1, "the account exists")

    group = (moves("t1", 10), renames_a_missing_account)
    if ledger.db.dialect == "postgresql":
        with pytest.raises(InvariantViolation, match="the account exists"):
            run_as_one_group(ledger, *group)
        assert ledger.transfer("t1") is None
    else:
        outcomes = run_as_one_group(ledger, *group)
        assert outcomes[0] is Result.ok and ledger.transfer("t1") is not None
        assert isinstance(outcomes[1], Failed) and isinstance(outcomes[1].error, InvariantViolation)
    assert ledger.account("nobody") is None
    assert audit(ledger.db).ok


@pytest.mark.parametrize("conflict_on_run", [1, 2], ids=["in the group's pass", "in the pass one work at a time"])
def test_a_conflict_in_one_work_retries_its_whole_group_and_each_work_lands_once(ledger: Ledger, conflict_on_run: int) -> None:
    """A transient conflict is the database's, not the work's: the group runs again from
    the start (a refusal, by contrast, rolls back its own work only)."""
    open_accounts(ledger, "a", "b")
    fund(ledger, "a", 1_000)
    runs = {"second": 0}

    def second(txn):  # type: ignore[no-untyped-def]
        runs["second"] += 1
        if runs["second"] == conflict_on_run:
            raise TransientStoreError("a serialization failure, as the database reports one")
        return moves("t2", 20)(txn)

    outcomes = run_as_one_group(ledger, moves("t1", 10), second, moves_then_refuses("t3", 30))
    assert outcomes[:2] == [Result.ok, Result.ok]
    assert isinstance(outcomes[2], Failed) and isinstance(outcomes[2].error, Refused)
    assert runs["second"] > conflict_on_run, "the group ran again after the conflict"
    assert ledger.account("b").balance == 30  # type: ignore[union-attr]
    assert ledger.transfer("t1") is not None and ledger.transfer("t2") is not None and ledger.transfer("t3") is None
    report = audit(ledger.db)
    assert report.ok, report.violations


def test_a_work_may_flush_midway_and_go_on_in_the_same_transaction(ledger: Ledger) -> None:
    open_accounts(ledger, "a", "b")
    fund(ledger, "a", 100, source="bank")

    def work(txn):  # type: ignore[no-untyped-def]
        assert [r.result for r in txn.create_transfers([NewTransfer("m1", "a", "b", 10, "USD")])] == [Result.ok]
        txn.flush()  # written and the head moved: what follows chains to it
        assert [r.result for r in txn.create_transfers([NewTransfer("m2", "a", "b", 20, "USD")])] == [Result.ok]
        return "done"

    assert ledger.transaction(work) == "done"
    assert (ledger.account("a").balance, ledger.account("b").balance) == (70, 30)
    assert audit(ledger.db).ok


def test_holds_fallen_due_are_voided_once_however_many_batches_a_transaction_makes(ledger: Ledger, clock: ManualClock) -> None:
    _a_hold_fallen_due(ledger, clock)

    def work(txn):  # type: ignore[no-untyped-def]
        for transfer_id in ("m1", "m2", "m3"):
            assert [r.result for r in txn.create_transfers([NewTransfer(transfer_id, "a", "b", 10, "USD")])] == [Result.ok]

    ledger.transaction(work)
    assert [h.pending_id for h in ledger.holds("a", state="expired").items] == ["h"]
    a = ledger.account("a")
    assert (a.debits_pending, a.debits_posted, a.balance) == (0, 30, 1_000 - 30)  # type: ignore[union-attr]
    assert audit(ledger.db).ok


def test_a_transaction_sees_the_holds_it_placed_in_the_totals_it_reads(ledger: Ledger) -> None:
    open_accounts(ledger, "a", "b")
    fund(ledger, "a", 100)

    def inside(txn):  # type: ignore[no-untyped-def]
        assert txn.create_transfers([NewTransfer("h1", "a", "b", 40, "USD", flags=int(TransferFlags.pending))])[0].result is Result.ok
        seen = txn.accounts(["a", "b"])
        return (seen["a"].debits_pending, seen["a"].available, seen["b"].credits_pending)

    assert ledger.transaction(inside) == (40, 60, 40)


def test_a_transaction_reads_up_to_a_page_of_accounts_at_once_and_skips_ids_no_backend_stores(ledger: Ledger) -> None:
    open_accounts(ledger, "a")
    at_most = ["a", *(f"missing-{i}" for i in range(PAGE_LIMIT_MAX - 2)), "nul\x00id"]
    assert len(at_most) == PAGE_LIMIT_MAX
    assert list(ledger.transaction(lambda txn: txn.accounts(at_most))) == ["a"]
    with pytest.raises(BatchTooLarge):
        ledger.transaction(lambda txn: txn.accounts([*at_most, "one-more"]))


def test_the_rows_a_transaction_queues_are_bounded(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    from danbao.ledger import transaction

    monkeypatch.setattr(transaction, "APPENDED_ROWS_MAX", 2)

    def queues(count: int):  # type: ignore[no-untyped-def]
        def work(txn):  # type: ignore[no-untyped-def]
            for i in range(count):
                txn.append(EVENT_ROWS, (f"t{i}", 1, i, "actor", "create", "none", "created", None, None, 0))

        return work

    ledger.transaction(queues(2))
    with pytest.raises(InvariantViolation, match="bounded number of rows"):
        ledger.transaction(queues(3))
    assert ledger.db.read_raw(lambda raw: raw.rows("SELECT COUNT(*) FROM trade_events")) == [(2,)]
