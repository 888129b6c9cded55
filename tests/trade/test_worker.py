"""The worker: a trade whose due job fails is reported, and the other due trades go on."""

from __future__ import annotations

import pytest

from danbao.ledger import NewTransfer, Result, TransferFlags
from danbao.store.errors import StoreUnavailable
from danbao.trade import accounts, run_due, run_until_idle, worker
from tests.trade.helpers import Market, assert_books_balance


def _break_due_job(market: Market, trade_id: str) -> None:
    """Behind the engine's back: an escrow trade told to wait for a cod settlement, which
    the escrow table does not let the system take; and due before any other trade."""
    market.ledger.db.write_raw(lambda raw: raw.run("UPDATE trades SET due_action = 'settle', due_at = 1 WHERE id = ?", (trade_id,)))


def test_a_trade_whose_job_fails_is_reported_and_holds_up_no_other(market: Market) -> None:
    broken, fine = market.new_trade(), market.new_trade()
    _break_due_job(market, broken.id)
    market.days(30)  # past both pay windows

    run = run_due(market.trades)

    assert run.trades_advanced == 1
    assert run.failures == (f"{broken.id}: a system cannot settle an escrow trade",)
    assert market.trades.get(fine.id, market.buyer).status == "closed"
    assert market.trades.get(broken.id, market.buyer).status == "created"  # left as it was
    assert_books_balance(market)


def test_passes_end_while_a_job_keeps_failing_and_report_it_once(market: Market) -> None:
    broken = market.new_trade()
    _break_due_job(market, broken.id)
    market.days(30)

    run = run_until_idle(market.trades)

    assert run.trades_advanced == 0
    assert run.failures == (f"{broken.id}: a system cannot settle an escrow trade",)


def test_a_database_that_cannot_be_reached_fails_the_whole_pass(market: Market, monkeypatch: pytest.MonkeyPatch) -> None:
    market.new_trade()
    market.days(30)

    def unreachable(trade_id: str) -> None:
        raise StoreUnavailable("connection refused")

    monkeypatch.setattr(market.trades, "run_due_one", unreachable)
    with pytest.raises(StoreUnavailable):
        run_due(market.trades)


def test_a_pass_takes_at_most_its_bound_of_due_trades_whatever_the_caller_asks(market: Market, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker, "WORKER_TRADES_PER_RUN_MAX", 3)
    made = [market.new_trade().id for _ in range(5)]
    market.days(30)
    assert run_due(market.trades, limit=100).trades_advanced == 3
    assert run_until_idle(market.trades).trades_advanced == 2
    assert {market.trades.get(t, market.buyer).status for t in made} == {"closed"}


def test_the_failures_a_run_reports_are_bounded(market: Market, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker, "FAILURES_REPORTED_MAX", 2)
    for _ in range(3):
        _break_due_job(market, market.new_trade().id)
    market.days(30)
    assert len(run_due(market.trades).failures) == 2
    assert len(run_until_idle(market.trades).failures) == 2


def test_passes_go_on_while_holds_expire_even_when_no_trade_is_due(market: Market, monkeypatch: pytest.MonkeyPatch) -> None:
    from danbao.ledger import ledger as ledger_module

    monkeypatch.setattr(ledger_module, "EXPIRIES_PER_BATCH_MAX", 2)  # a pass voids two holds at most
    wallet, other = (accounts.owned(p, "wallet", "CNY") for p in (market.buyer, market.seller))
    holds = [NewTransfer(f"h{i}", wallet, other, 100, "CNY", flags=TransferFlags.pending, timeout_seconds=60) for i in range(5)]
    assert {r.result for r in market.ledger.create_transfers(holds)} == {Result.ok}
    market.days(1)
    run = run_until_idle(market.trades)
    assert (run.trades_advanced, run.holds_expired) == (0, 5)
    assert market.ledger.account(wallet).debits_pending == 0  # type: ignore[union-attr]



def test_a_pass_takes_no_more_due_trades_than_its_caller_asks(market: Market) -> None:
    made = [market.new_trade().id for _ in range(3)]
    market.days(30)
    assert run_due(market.trades, limit=2).trades_advanced == 2
    assert [market.trades.get(t, market.buyer).status for t in made].count("closed") == 2
    assert run_due(market.trades, limit=2).trades_advanced == 1


def test_a_job_another_worker_did_first_is_not_counted_again(market: Market, monkeypatch: pytest.MonkeyPatch) -> None:
    trade = market.new_trade()
    market.days(30)
    run_due_one = market.trades.run_due_one

    def after_another_worker(trade_id: str):  # type: ignore[no-untyped-def]
        assert run_due_one(trade_id) is not None  # the other worker, between the listing and this job
        return run_due_one(trade_id)

    monkeypatch.setattr(market.trades, "run_due_one", after_another_worker)
    run = run_due(market.trades)
    assert (run.trades_advanced, run.failures) == (0, ())
    assert market.trades.get(trade.id, market.buyer).status == "closed"


def test_passes_go_on_while_trades_advance_even_when_no_hold_expires(market: Market, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker, "WORKER_TRADES_PER_RUN_MAX", 2)
    made = [market.new_trade().id for _ in range(5)]
    market.days(30)
    run = run_until_idle(market.trades)
    assert (run.trades_advanced, run.holds_expired) == (5, 0)
    assert {market.trades.get(t, market.buyer).status for t in made} == {"closed"}


def test_passes_until_idle_are_bounded_by_the_caller(market: Market, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker, "WORKER_TRADES_PER_RUN_MAX", 1)
    for _ in range(4):
        market.new_trade()
    market.days(30)
    assert run_until_idle(market.trades, passes_max=2).trades_advanced == 2
    assert run_until_idle(market.trades).trades_advanced == 2
