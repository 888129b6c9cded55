"""Escrow (guaranteed trade): the platform holds the buyer's money until receipt is confirmed."""

from __future__ import annotations

import pytest

from danbao.trade import TradeError, run_due, share_of
from tests.trade.helpers import FUNDS, PRICE, Market

FEE = share_of(PRICE, 200)


def paid_trade(m: Market, amount: int = PRICE):  # type: ignore[no-untyped-def]
    t = m.new_trade(amount=amount)
    return m.trades.pay(t.id, m.buyer)


def shipped_trade(m: Market, amount: int = PRICE):  # type: ignore[no-untyped-def]
    return m.trades.ship(paid_trade(m, amount).id, m.seller)


def test_money_waits_in_escrow_until_the_buyer_confirms(market: Market) -> None:
    t = market.new_trade()
    assert t.status == "created" and market.platform("escrow") == 0
    t = market.trades.pay(t.id, market.buyer)
    assert t.status == "paid"
    assert market.wallet(market.buyer) == FUNDS - PRICE
    assert market.platform("escrow") == PRICE
    t = market.trades.ship(t.id, market.seller)
    assert t.status == "shipped" and market.wallet(market.seller) == FUNDS
    t = market.trades.confirm(t.id, market.buyer)
    assert t.status == "completed"
    assert market.platform("escrow") == 0
    assert market.wallet(market.seller) == FUNDS + PRICE - FEE
    assert market.platform("fees") == FEE
    assert (t.released, t.fee, t.refunded) == (PRICE, FEE, 0)
    actions = [e.action for e in market.trades.events(t.id, market.buyer)]
    assert actions == ["create", "pay", "ship", "confirm"]


@pytest.mark.parametrize("amount", [1, 49, 50, 51, 149, 150, 9_999, 123_457])
def test_the_fee_is_rounded_half_up_and_seller_plus_fee_is_the_price(market: Market, amount: int) -> None:
    t = market.trades.confirm(shipped_trade(market, amount).id, market.buyer)
    assert t.fee == (amount * 200 + 5_000) // 10_000
    assert market.wallet(market.seller) - FUNDS + market.platform("fees") == amount


def test_an_unpaid_trade_closes_after_the_pay_window(market: Market) -> None:
    t = market.new_trade()
    market.clock.advance(29 * 60)
    assert run_due(market.trades).trades_advanced == 0
    market.clock.advance(60)
    assert run_due(market.trades).trades_advanced == 1
    assert market.trades.get(t.id, market.buyer).status == "closed"
    with pytest.raises(TradeError) as e:
        market.trades.pay(t.id, market.buyer)
    assert e.value.code == "trade_state_invalid"


def test_either_side_may_cancel_before_payment(market: Market) -> None:
    assert market.trades.cancel(market.new_trade().id, market.buyer).status == "closed"
    assert market.trades.cancel(market.new_trade().id, market.seller).status == "closed"


def test_before_shipping_the_buyer_gets_everything_back_at_once(market: Market) -> None:
    t = market.trades.refund(paid_trade(market).id, market.buyer)
    assert t.status == "refunded" and t.refunded == PRICE
    assert market.wallet(market.buyer) == FUNDS and market.platform("escrow") == 0


def test_the_buyer_may_cancel_only_after_the_ship_window(market: Market) -> None:
    t = paid_trade(market)
    market.days(2.9)
    with pytest.raises(TradeError) as e:
        market.trades.cancel(t.id, market.buyer)
    assert e.value.code == "ship_window_open"
    market.days(0.2)
    t = market.trades.cancel(t.id, market.buyer)
    assert t.status == "refunded" and market.wallet(market.buyer) == FUNDS


def test_the_seller_may_cancel_a_paid_trade_it_cannot_ship(market: Market) -> None:
    t = market.trades.cancel(paid_trade(market).id, market.seller)
    assert t.status == "refunded" and market.wallet(market.buyer) == FUNDS


def test_a_shipped_trade_confirms_itself_after_ten_days(market: Market) -> None:
    t = shipped_trade(market)
    market.days(9.99)
    run_due(market.trades)
    assert market.trades.get(t.id, market.buyer).status == "shipped"
    market.days(0.02)
    assert run_due(market.trades).trades_advanced == 1
    t = market.trades.get(t.id, market.buyer)
    assert t.status == "completed" and market.wallet(market.seller) == FUNDS + PRICE - FEE
    assert [e.actor for e in market.trades.events(t.id, market.seller)][-1] == "system"


def test_the_buyer_may_extend_the_confirm_window_once(market: Market) -> None:
    t = market.trades.extend(shipped_trade(market).id, market.buyer)
    with pytest.raises(TradeError) as e:
        market.trades.extend(t.id, market.buyer)
    assert e.value.code == "extension_used"
    market.days(12.9)
    run_due(market.trades)
    assert market.trades.get(t.id, market.buyer).status == "shipped"
    market.days(0.2)
    run_due(market.trades)
    assert market.trades.get(t.id, market.buyer).status == "completed"


def test_a_partial_refund_the_seller_agrees_to_leaves_the_rest_to_confirm(market: Market) -> None:
    t = market.trades.request_refund(shipped_trade(market).id, market.buyer, 3_000)
    assert t.status == "refund_requested" and t.refund_requested == 3_000
    t = market.trades.agree_refund(t.id, market.seller)
    assert t.status == "shipped" and t.refunded == 3_000
    assert t.refund_requested is None and t.respond_by is None  # answered: nothing is asked any more
    assert market.wallet(market.buyer) == FUNDS - PRICE + 3_000
    t = market.trades.confirm(t.id, market.buyer)
    rest = PRICE - 3_000
    assert t.released == rest and t.fee == share_of(rest, 200)
    # Its event says how much the confirmation released.
    assert market.trades.events(t.id, market.seller)[-1].detail == f'{{"released":{rest}}}'
    assert market.wallet(market.seller) == FUNDS + rest - share_of(rest, 200)


def test_a_refund_of_all_but_one_minor_unit_leaves_that_unit_to_confirm(market: Market) -> None:
    t = market.trades.request_refund(shipped_trade(market).id, market.buyer, PRICE - 1)
    t = market.trades.agree_refund(t.id, market.seller)
    assert (t.status, t.refunded, t.open_in_escrow) == ("shipped", PRICE - 1, 1)
    t = market.trades.confirm(t.id, market.buyer)
    assert (t.status, t.released, t.open_in_escrow) == ("completed", 1, 0)


def test_a_full_refund_after_shipping_ends_the_trade(market: Market) -> None:
    t = market.trades.request_refund(shipped_trade(market).id, market.buyer, PRICE)
    t = market.trades.agree_refund(t.id, market.seller)
    assert t.status == "refunded" and market.wallet(market.buyer) == FUNDS


def test_the_sellers_silence_is_agreement(market: Market) -> None:
    t = market.trades.request_refund(shipped_trade(market).id, market.buyer, 2_500)
    assert t.respond_by == t.updated_at + 5 * 24 * 3600 * 10**9  # five days to answer, to the nanosecond
    market.clock.advance(ns=t.respond_by - market.clock.now_ns() - 1)
    run_due(market.trades)
    assert market.trades.get(t.id, market.buyer).status == "refund_requested"
    market.clock.advance(ns=1)
    run_due(market.trades)
    t = market.trades.get(t.id, market.buyer)
    assert t.status == "shipped" and t.refunded == 2_500
    assert t.refund_requested is None and t.respond_by is None


def test_the_confirm_clock_stops_while_a_refund_or_dispute_is_open(market: Market) -> None:
    t = shipped_trade(market)
    market.days(8)  # two days of the window left
    t = market.trades.request_refund(t.id, market.buyer, 1_000)
    market.days(1)
    t = market.trades.refuse_refund(t.id, market.seller)  # the clock runs again: 2 days left
    t = market.trades.dispute(t.id, market.buyer)
    market.days(30)  # a long dispute: the clock is stopped
    run_due(market.trades)
    assert market.trades.get(t.id, market.buyer).status == "disputed"
    t = market.trades.arbitrate(t.id, market.arbiter, "refund_partial", amount=1_000)
    assert t.status == "completed" and t.refunded == 1_000 and t.released == PRICE - 1_000


def test_a_refused_refund_resumes_the_clock_where_it_stopped(market: Market) -> None:
    t = shipped_trade(market)
    market.days(8)
    t = market.trades.request_refund(t.id, market.buyer, 1_000)
    market.days(4)
    t = market.trades.refuse_refund(t.id, market.seller)
    assert t.respond_by is None and t.refund_requested == 1_000  # answered; what was asked stays on record
    market.days(1.9)
    run_due(market.trades)
    assert market.trades.get(t.id, market.buyer).status == "refund_refused"
    market.days(0.2)
    run_due(market.trades)
    assert market.trades.get(t.id, market.buyer).status == "completed"


def test_a_buyer_refused_a_refund_may_ask_again_for_what_is_still_held(market: Market) -> None:
    t = market.trades.request_refund(shipped_trade(market).id, market.buyer, PRICE)
    t = market.trades.refuse_refund(t.id, market.seller)
    with pytest.raises(TradeError) as too_much:
        market.trades.request_refund(t.id, market.buyer, PRICE + 1)
    assert too_much.value.code == "refund_exceeds_paid"
    t = market.trades.request_refund(t.id, market.buyer, 1_000)  # a smaller ask, this time
    assert (t.status, t.refund_requested) == ("refund_requested", 1_000)
    t = market.trades.agree_refund(t.id, market.seller)
    assert (t.status, t.refunded) == ("shipped", 1_000)
    assert market.wallet(market.buyer) == FUNDS - PRICE + 1_000


def test_a_refund_asked_after_the_window_ran_out_leaves_no_time_on_the_clock(market: Market) -> None:
    # The worker has not confirmed yet; the window is over, so nothing is left to resume.
    t = shipped_trade(market)
    market.days(11)
    t = market.trades.request_refund(t.id, market.buyer, 1_000)
    assert (t.confirm_by, t.confirm_left_ns) == (None, 0)
    market.days(1)
    t = market.trades.refuse_refund(t.id, market.seller)
    assert t.confirm_by == t.due_at == t.updated_at  # due now, not in the past
    run_due(market.trades)
    assert market.trades.get(t.id, market.buyer).status == "completed"


@pytest.mark.parametrize(
    ("decision", "amount", "status", "to_buyer"),
    [("release", None, "completed", 0), ("refund_full", None, "refunded", PRICE), ("refund_partial", 4_000, "completed", 4_000)],
)
def test_an_arbiter_decides_a_dispute(market: Market, decision: str, amount: int | None, status: str, to_buyer: int) -> None:
    t = market.trades.request_refund(shipped_trade(market).id, market.buyer, PRICE)
    t = market.trades.refuse_refund(t.id, market.seller)
    t = market.trades.dispute(t.id, market.seller)
    t = market.trades.arbitrate(t.id, market.arbiter, decision, amount=amount)
    assert t.status == status
    assert (t.confirm_by, t.confirm_left_ns, t.due_at) == (None, None, None)  # decided: no clock runs again
    assert market.wallet(market.buyer) == FUNDS - PRICE + to_buyer
    to_seller = PRICE - to_buyer
    assert market.wallet(market.seller) == FUNDS + to_seller - share_of(to_seller, 200)
    assert market.trades.events(t.id, market.arbiter)[-1].actor == market.arbiter


def test_several_partial_refunds_never_exceed_what_was_paid(market: Market) -> None:
    t = shipped_trade(market)
    for _ in range(3):
        t = market.trades.request_refund(t.id, market.buyer, 3_000)
        t = market.trades.agree_refund(t.id, market.seller)
    assert t.refunded == 9_000
    before = market.snapshot()
    with pytest.raises(TradeError) as e:
        market.trades.request_refund(t.id, market.buyer, 1_001)
    assert (e.value.code, e.value.field) == ("refund_exceeds_paid", "amount")
    assert market.snapshot() == before
    t = market.trades.request_refund(t.id, market.buyer, 1_000)
    t = market.trades.agree_refund(t.id, market.seller)
    assert t.status == "refunded" and t.refunded == PRICE


def test_a_partial_decision_must_leave_something_for_the_seller(market: Market) -> None:
    t = market.trades.request_refund(shipped_trade(market).id, market.buyer, PRICE)
    t = market.trades.dispute(market.trades.refuse_refund(t.id, market.seller).id, market.buyer)
    for amount, code in [(PRICE, "refund_exceeds_paid"), (0, "amount_invalid"), (None, "amount_invalid")]:
        with pytest.raises(TradeError) as e:
            market.trades.arbitrate(t.id, market.arbiter, "refund_partial", amount=amount)
        assert e.value.code == code
    with pytest.raises(TradeError) as e:
        market.trades.arbitrate(t.id, market.arbiter, "split_it", amount=None)
    assert e.value.code == "decision_invalid"


def test_paying_without_the_money_is_refused_and_changes_nothing(market: Market) -> None:
    t = market.new_trade(amount=FUNDS + 1)
    before = market.snapshot()
    with pytest.raises(TradeError) as e:
        market.trades.pay(t.id, market.buyer)
    assert e.value.code == "insufficient_funds"
    assert market.snapshot() == before
    assert market.trades.get(t.id, market.buyer).status == "created"
    assert [e.action for e in market.trades.events(t.id, market.buyer)] == ["create"]
