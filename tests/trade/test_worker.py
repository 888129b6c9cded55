"""The worker: a trade whose due job fails is reported, and the other due trades go on."""

from __future__ import annotations

import pytest

from danbao.store.errors import StoreUnavailable
from danbao.trade import run_due, run_until_idle
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
