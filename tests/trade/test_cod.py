"""Cash on delivery: the courier collects at the door, remits, and only then is the seller paid."""

from __future__ import annotations

import pytest

from danbao.ledger import NewTransfer, Result
from danbao.trade import TradeConfig, TradeError, run_due, share_of
from danbao.trade import accounts as acc
from tests.trade.helpers import CUR, FUNDS, PRICE, Market, assert_books_balance, open_market


def shipped_cod(m: Market, amount: int = PRICE):  # type: ignore[no-untyped-def]
    return m.trades.ship(m.new_trade("cod", amount).id, m.seller, courier_id=m.courier)


def test_cash_is_collected_remitted_and_then_the_seller_is_paid(market: Market) -> None:
    m = market
    t = shipped_cod(m)
    assert t.status == "shipped" and t.courier_id == m.courier
    t = m.trades.collect(t.id, m.courier, method="cash")
    assert t.status == "collected" and t.paid == PRICE
    assert m.owned(m.courier, "cash") == -PRICE  # the courier owes the platform the cash
    assert m.platform("escrow") == PRICE and m.wallet(m.seller) == FUNDS
    t = m.trades.remit(t.id, m.courier)
    assert t.status == "remitted" and m.owned(m.courier, "cash") == 0
    assert m.wallet(m.seller) == FUNDS  # not yet: settlement follows remittance
    assert run_due(m.trades).trades_advanced == 1
    t = m.trades.get(t.id, m.seller)
    assert t.status == "settled"
    assert m.wallet(m.seller) == FUNDS + PRICE - share_of(PRICE, 200)
    assert m.wallet(m.buyer) == FUNDS  # paid in cash at the door, not from the wallet


def test_a_cod_order_has_no_pay_window_and_waits_for_the_seller_to_ship(market: Market) -> None:
    # The buyer pays at the door: no pay deadline closes the order while it waits to ship.
    t = market.new_trade("cod", PRICE)
    assert (t.pay_by, t.due_at, t.due_action) == (None, None, None)
    market.days(60)
    assert run_due(market.trades).trades_advanced == 0
    t = market.trades.ship(t.id, market.seller, courier_id=market.courier)
    assert t.status == "shipped"


def test_an_operator_may_settle_a_remitted_trade(market: Market) -> None:
    t = market.trades.remit(market.trades.collect(shipped_cod(market).id, market.courier, method="cash").id, market.courier)
    assert market.trades.settle(t.id, market.operator).status == "settled"
    assert run_due(market.trades).trades_advanced == 0


def test_a_card_payment_reaches_the_platform_without_remittance(market: Market) -> None:
    t = market.trades.collect(shipped_cod(market).id, market.courier, method="card")
    assert t.status == "remitted" and t.collect_method == "card"
    assert market.owned(market.courier, "cash") == 0
    assert market.trades.settle(t.id, market.operator).status == "settled"


def test_collect_needs_cash_or_card(market: Market) -> None:
    t = shipped_cod(market)
    with pytest.raises(TradeError) as e:
        market.trades.collect(t.id, market.courier, method="iou")
    assert e.value.code == "collect_method_invalid"


def test_a_cod_trade_ships_only_with_a_courier(market: Market) -> None:
    t = market.new_trade("cod")
    with pytest.raises(TradeError) as e:
        market.trades.ship(t.id, market.seller)
    assert e.value.code == "courier_required"
    with pytest.raises(TradeError) as e:
        market.trades.ship(t.id, market.seller, courier_id=market.buyer)
    assert (e.value.code, e.value.field) == ("role_invalid", "courier_id")
    with pytest.raises(TradeError) as e:
        market.trades.ship(t.id, market.seller, courier_id="nobody")
    assert e.value.code == "party_not_found"


def test_a_courier_cannot_carry_more_than_its_cash_limit(market: Market) -> None:
    m = market  # the courier's limit is 5 x PRICE
    first = shipped_cod(m, 3 * PRICE)
    m.trades.collect(first.id, m.courier, method="cash")
    shipped_cod(m, PRICE)
    with pytest.raises(TradeError) as e:
        shipped_cod(m, PRICE + 1)
    assert e.value.code == "courier_cash_limit"
    assert shipped_cod(m, PRICE).status == "shipped"  # up to the limit exactly
    m.trades.remit(first.id, m.courier)
    assert shipped_cod(m, 3 * PRICE).status == "shipped"


def test_a_new_courier_carries_up_to_its_limit_and_not_a_unit_more(market: Market) -> None:
    # No cash account yet: it carries nothing, not some default.
    m = market
    with pytest.raises(TradeError) as e:
        shipped_cod(m, 5 * PRICE + 1)
    assert e.value.code == "courier_cash_limit"
    assert shipped_cod(m, 5 * PRICE).status == "shipped"


def test_a_couriers_cash_limit_counts_one_currency_at_a_time(market: Market) -> None:
    m = market  # the courier's limit is 5 x PRICE, in each currency
    shipped_cod(m, 4 * PRICE)
    dollars = m.trades.ship(m.new_trade("cod", 2 * PRICE, currency="USD").id, m.seller, courier_id=m.courier)
    assert dollars.status == "shipped"
    with pytest.raises(TradeError) as e:
        shipped_cod(m, 2 * PRICE)
    assert e.value.code == "courier_cash_limit"


def test_a_late_remittance_is_flagged_on_the_courier_once(market: Market) -> None:
    t = market.trades.collect(shipped_cod(market).id, market.courier, method="cash")
    assert t.remit_by == t.updated_at + 24 * 3600 * 10**9  # a day to remit, to the nanosecond
    market.clock.advance(ns=t.remit_by - market.clock.now_ns() - 1)
    run_due(market.trades)
    assert market.trades.parties.get(market.courier).late_remittances == 0
    market.clock.advance(ns=1)
    assert run_due(market.trades).trades_advanced == 1
    assert run_due(market.trades).trades_advanced == 0
    assert market.trades.parties.get(market.courier).late_remittances == 1
    t = market.trades.get(t.id, market.courier)
    assert t.remit_late == 1 and t.status == "collected"
    assert market.trades.remit(t.id, market.courier).status == "remitted"


def test_refused_at_the_door_the_goods_go_back_and_the_seller_pays_the_return(market: Market) -> None:
    t = market.trades.refuse(shipped_cod(market).id, market.courier)
    assert t.status == "refused"
    t = market.trades.return_goods(t.id, market.courier)
    assert t.status == "returned"
    assert market.wallet(market.seller) == FUNDS - 1_000 and market.platform("fees") == 1_000
    assert market.wallet(market.buyer) == FUNDS


def test_the_return_fee_payer_is_configurable(ledger, clock) -> None:  # type: ignore[no-untyped-def]
    m = open_market(ledger, clock, TradeConfig(return_fee_payer="buyer", return_fee=700))
    t = m.trades.refuse(shipped_cod(m).id, m.courier)
    m.trades.return_goods(t.id, m.courier)
    assert m.wallet(m.buyer) == FUNDS - 700 and m.wallet(m.seller) == FUNDS
    assert_books_balance(m)


def test_the_platforms_and_the_couriers_accounts_refuse_what_no_trade_step_would_ask(market: Market) -> None:
    # The trade engine computes every move out of escrow, fees and a courier's cash from
    # the trade; the accounts' flags are the ledger's second line under it, whoever moves.
    m = market
    t = m.trades.collect(shipped_cod(m).id, m.courier, method="cash")
    escrow, cash = acc.platform("escrow", CUR), acc.owned(m.courier, "cash", CUR)
    results = m.ledger.create_transfers([
        NewTransfer("x-escrow", escrow, acc.owned(m.seller, "wallet", CUR), PRICE + 1, CUR),
        NewTransfer("x-cash", acc.platform("bank", CUR), cash, PRICE + 1, CUR),  # more than the courier owes
    ])
    assert [r.result for r in results] == [Result.insufficient_funds, Result.exceeds_debits]
    m.trades.remit(t.id, m.courier)
    run_due(m.trades)
    fee = share_of(PRICE, 200)
    assert m.platform("fees") == fee
    [r] = m.ledger.create_transfers([NewTransfer("x-fees", acc.platform("fees", CUR), acc.platform("bank", CUR), fee + 1, CUR)])
    assert r.result is Result.insufficient_funds
    assert_books_balance(m)
