"""The reconciliation of trades with escrow catches books that disagree, each way they can:
a trade whose escrow movements are not what it says it holds, escrow moved for something
that is no open trade, and many mismatches reported with their exact count."""

from __future__ import annotations

from sqlalchemy import text

from danbao.ledger import NewTransfer, Result
from danbao.trade import accounts as acc
from danbao.trade.reconcile import MISMATCHES_REPORTED_MAX, reconcile
from tests.trade.helpers import CUR, PRICE, open_market


def test_paid_trades_reconcile_and_direct_ones_are_not_escrows(ledger, clock):  # type: ignore[no-untyped-def]
    m = open_market(ledger, clock)
    m.trades.parties.deposit(m.seller, m.trades.config.deposit_minimum, CUR)
    m.trades.pay(m.new_trade().id, m.buyer)
    m.trades.pay(m.new_trade("direct").id, m.buyer)
    report = reconcile(ledger.db)
    assert report.ok and report.trades_checked == 1 and report.escrow_by_currency == {CUR: PRICE}


def test_escrow_moved_for_no_open_trade_is_a_violation(ledger, clock):  # type: ignore[no-untyped-def]
    m = open_market(ledger, clock)
    m.trades.pay(m.new_trade().id, m.buyer)  # opens the escrow account
    # A movement the ledger rightly accepts, which no trade accounts for.
    moved = NewTransfer("ghost-1", acc.owned(m.buyer, "wallet", CUR), acc.platform("escrow", CUR), 500, CUR, code="trade.pay", ref="t_ghost")
    [result] = ledger.create_transfers([moved])
    assert result.result is Result.ok
    report = reconcile(ledger.db)
    assert report.violations == [
        "escrow moved 500 for 't_ghost', which is no open trade",
        f"{CUR}: escrow holds {PRICE + 500}, open trades hold {PRICE}",
    ]


def test_mismatches_past_the_bound_are_counted_not_each_named(ledger, clock):  # type: ignore[no-untyped-def]
    m = open_market(ledger, clock)
    extra = 3
    for _ in range(MISMATCHES_REPORTED_MAX + extra):
        m.trades.pay(m.new_trade(amount=100).id, m.buyer)
    with ledger.db.engine.begin() as conn:  # behind the trade engine's back
        conn.execute(text("UPDATE trades SET paid = paid + 1"))
    report = reconcile(ledger.db)
    named = [v for v in report.violations if v.startswith("trade ")]
    assert len(named) == MISMATCHES_REPORTED_MAX
    assert all(v.endswith("escrow moved 100, the trade says it holds 101") for v in named)
    assert report.violations[-1] == f"... {extra} more mismatches of trades and escrow"
    assert f"{CUR}: escrow holds {100 * (MISMATCHES_REPORTED_MAX + extra)}, open trades hold {101 * (MISMATCHES_REPORTED_MAX + extra)}" in report.violations


def test_escrow_moved_for_many_refs_that_are_no_trade_is_bounded_too(ledger, clock):  # type: ignore[no-untyped-def]
    m = open_market(ledger, clock)
    m.trades.pay(m.new_trade().id, m.buyer)
    extra = 2
    ghosts = [
        NewTransfer(f"ghost-{i}", acc.owned(m.buyer, "wallet", CUR), acc.platform("escrow", CUR), 1, CUR, code="trade.pay", ref=f"t_ghost{i:03d}")
        for i in range(MISMATCHES_REPORTED_MAX + extra)
    ]
    assert all(r.result is Result.ok for r in ledger.create_transfers(ghosts))
    report = reconcile(ledger.db)
    named = [v for v in report.violations if v.startswith("escrow moved 1 for")]
    assert len(named) == MISMATCHES_REPORTED_MAX
    assert report.violations[-1] == f"... {extra} more mismatches of trades and escrow"


def test_exactly_the_bound_of_mismatches_are_all_named_and_none_counted_beyond(ledger, clock):  # type: ignore[no-untyped-def]
    m = open_market(ledger, clock)
    for _ in range(MISMATCHES_REPORTED_MAX):
        m.trades.pay(m.new_trade(amount=100).id, m.buyer)
    with ledger.db.engine.begin() as conn:
        conn.execute(text("UPDATE trades SET paid = paid + 1"))
    report = reconcile(ledger.db)
    assert len([v for v in report.violations if v.startswith("trade ")]) == MISMATCHES_REPORTED_MAX
    assert not [v for v in report.violations if v.startswith("...")]


def test_escrow_taken_out_for_no_open_trade_is_a_violation_and_the_report_shows_what_escrow_holds(ledger, clock):  # type: ignore[no-untyped-def]
    m = open_market(ledger, clock)
    m.trades.pay(m.new_trade().id, m.buyer)
    taken = NewTransfer("ghost-out", acc.platform("escrow", CUR), acc.owned(m.buyer, "wallet", CUR), 500, CUR, code="trade.refund", ref="t_ghost")
    assert ledger.create_transfers([taken])[0].result is Result.ok
    report = reconcile(ledger.db)
    assert report.violations == [
        "escrow moved -500 for 't_ghost', which is no open trade",
        f"{CUR}: escrow holds {PRICE - 500}, open trades hold {PRICE}",
    ]
    assert report.escrow_by_currency == {CUR: PRICE - 500}


def test_escrow_held_in_a_currency_no_trade_uses_is_a_violation(ledger, clock):  # type: ignore[no-untyped-def]
    open_market(ledger, clock)
    escrow_usd, bank_usd = acc.platform("escrow", "USD"), acc.platform("bank", "USD")
    assert {r.result for r in ledger.create_accounts([acc.definition(escrow_usd), acc.definition(bank_usd)])} == {Result.ok}
    assert ledger.create_transfers([NewTransfer("stray", bank_usd, escrow_usd, 700, "USD", ref="t_stray")])[0].result is Result.ok
    report = reconcile(ledger.db)
    assert "USD: escrow holds 700, open trades hold 0" in report.violations
    assert report.escrow_by_currency == {"USD": 700}
