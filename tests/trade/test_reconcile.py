"""The reconciliation of trades with escrow catches books that disagree, each way they can:
a trade whose escrow movements are not what it says it holds, escrow moved for something
that is no open trade, and many mismatches reported with their exact count."""

from __future__ import annotations

import importlib

from sqlalchemy import text

from danbao.ledger import NewTransfer, Result
from danbao.store.schema import trades as trades_table
from danbao.trade import accounts as acc
from danbao.trade.reconcile import MISMATCHES_REPORTED_MAX, reconcile
from tests.memory import peak_bytes
from tests.trade.helpers import CUR, PRICE, open_market

reconcile_module = importlib.import_module("danbao.trade.reconcile")


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


def test_trades_are_read_in_pages_none_skipped_or_counted_twice(ledger, clock, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(reconcile_module, "TRADES_PER_PAGE", 2)
    m = open_market(ledger, clock)
    paid = [m.new_trade(amount=100 + i).id for i in range(5)]  # two full pages and one short
    for trade_id in paid:
        m.trades.pay(trade_id, m.buyer)
    with ledger.db.engine.begin() as conn:  # behind the trade engine's back: every trade is off by one
        conn.execute(text("UPDATE trades SET paid = paid + 1"))
    report = reconcile(ledger.db)
    assert report.trades_checked == 5
    assert sorted(v for v in report.violations if v.startswith("trade ")) == sorted(
        f"trade {trade_id}: escrow moved {100 + i}, the trade says it holds {101 + i}" for i, trade_id in enumerate(paid)
    )
    assert report.escrow_by_currency == {CUR: sum(100 + i for i in range(5))}


def test_reconciling_more_trades_takes_no_more_memory(ledger, clock, monkeypatch):  # type: ignore[no-untyped-def]
    """Trades are read a page at a time with the escrow moved under their ids, so seven
    times the trades take no more memory (holding every trade's row took 130-190 bytes
    a trade)."""
    monkeypatch.setattr(reconcile_module, "TRADES_PER_PAGE", 100)
    m = open_market(ledger, clock)
    template = m.new_trade().id
    columns = [c.name for c in trades_table.c]

    def copies(first: int, count: int) -> None:
        """`count` more trades like the template, made by SQL: created, nothing paid."""
        made = ", ".join(f"t.id || '-' || CAST(n.i AS {'TEXT' if ledger.db.dialect == 'sqlite' else 'VARCHAR'})" if c == "id" else f"t.{c}" for c in columns)
        with ledger.db.engine.begin() as conn:
            conn.execute(text(
                f"INSERT INTO trades ({', '.join(columns)}) "
                f"WITH RECURSIVE n(i) AS (SELECT {first} UNION ALL SELECT i + 1 FROM n WHERE i < {first + count - 1}) "
                f"SELECT {made} FROM trades t, n WHERE t.id = :template"
            ), {"template": template})

    def peak() -> int:
        report, held = peak_bytes(lambda: reconcile(ledger.db))
        assert report.ok, report.violations
        return held

    copies(0, 500)
    reconcile(ledger.db)  # first-use caches are not the reconciliation's
    before = peak()
    copies(500, 3000)
    after = peak()
    assert reconcile(ledger.db).trades_checked == 3501
    assert after - before < 150_000, (before, after)  # 3,000 trades' rows held were 400-580 KB


def test_escrow_moved_in_and_out_again_under_another_ref_nets_to_nothing(ledger, clock):  # type: ignore[no-untyped-def]
    m = open_market(ledger, clock)
    m.trades.pay(m.new_trade().id, m.buyer)
    wallet, escrow = acc.owned(m.buyer, "wallet", CUR), acc.platform("escrow", CUR)
    there_and_back = [
        NewTransfer("in", wallet, escrow, 500, CUR, ref="t_roundtrip"),
        NewTransfer("out", escrow, wallet, 500, CUR, ref="t_roundtrip"),
    ]
    assert all(r.result is Result.ok for r in ledger.create_transfers(there_and_back))
    assert reconcile(ledger.db).ok


def test_escrow_moved_under_a_direct_trades_id_is_a_violation(ledger, clock):  # type: ignore[no-untyped-def]
    """A direct trade's money goes from wallet to wallet: it is no escrow trade, so escrow
    moved under its id is moved for no open trade."""
    m = open_market(ledger, clock)
    m.trades.pay(m.new_trade().id, m.buyer)
    m.trades.parties.deposit(m.seller, m.trades.config.deposit_minimum, CUR)
    direct = m.new_trade("direct").id
    moved = NewTransfer("stray", acc.owned(m.buyer, "wallet", CUR), acc.platform("escrow", CUR), 300, CUR, ref=direct)
    assert ledger.create_transfers([moved])[0].result is Result.ok
    assert reconcile(ledger.db).violations == [
        f"escrow moved 300 for {direct!r}, which is no open trade",
        f"{CUR}: escrow holds {PRICE + 300}, open trades hold {PRICE}",
    ]


def test_a_trade_that_says_it_holds_money_no_escrow_move_brought_is_a_violation(ledger, clock):  # type: ignore[no-untyped-def]
    m = open_market(ledger, clock)
    m.trades.pay(m.new_trade().id, m.buyer)
    unpaid = m.new_trade().id
    with ledger.db.engine.begin() as conn:  # behind the trade engine's back
        conn.execute(text("UPDATE trades SET paid = 7 WHERE id = :id"), {"id": unpaid})
    assert reconcile(ledger.db).violations == [
        f"trade {unpaid}: escrow moved 0, the trade says it holds 7",
        f"{CUR}: escrow holds {PRICE}, open trades hold {PRICE + 7}",
    ]
