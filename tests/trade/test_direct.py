"""Direct (peer to peer): the seller is paid at once; a deposit and the insurance pool back
a punitive compensation when a claim is upheld."""

from __future__ import annotations

import pytest

from danbao.trade import TradeError, run_due, share_of
from tests.trade.helpers import FUNDS, PRICE, Market

MINIMUM = 50_000
PREMIUM = share_of(PRICE, 100)


@pytest.fixture
def direct(market: Market) -> Market:
    market.trades.parties.deposit(market.seller, MINIMUM, "CNY")
    market.trades.parties.fund_insurance(market.operator, 100_000, "CNY")
    return market


def paid_direct(m: Market, amount: int = PRICE):  # type: ignore[no-untyped-def]
    return m.trades.pay(m.new_trade("direct", amount).id, m.buyer)


def test_a_seller_without_the_minimum_deposit_cannot_sell_direct(market: Market) -> None:
    with pytest.raises(TradeError) as e:
        market.new_trade("direct")
    assert e.value.code == "deposit_below_minimum"
    market.trades.parties.deposit(market.seller, MINIMUM - 1, "CNY")
    with pytest.raises(TradeError):
        market.new_trade("direct")
    market.trades.parties.deposit(market.seller, 1, "CNY")
    assert market.new_trade("direct").status == "created"


def test_an_order_is_paid_direct_only_while_the_seller_still_holds_the_deposit(direct: Market) -> None:
    # Checked again at payment: the seller may have taken the deposit back since the order.
    t = direct.new_trade("direct")
    direct.trades.parties.withdraw_deposit(direct.seller, 1, "CNY")
    with pytest.raises(TradeError) as e:
        direct.trades.pay(t.id, direct.buyer)
    assert e.value.code == "deposit_below_minimum"
    assert direct.trades.get(t.id, direct.buyer).status == "created" and direct.wallet(direct.buyer) == FUNDS
    direct.trades.parties.deposit(direct.seller, 1, "CNY")
    assert direct.trades.pay(t.id, direct.buyer).status == "paid"


def test_the_buyer_pays_the_seller_at_once_and_the_seller_pays_a_premium(direct: Market) -> None:
    m = direct
    t = paid_direct(m)
    assert t.status == "paid" and t.fee == PREMIUM
    assert m.wallet(m.buyer) == FUNDS - PRICE
    assert m.wallet(m.seller) == FUNDS - MINIMUM + PRICE - PREMIUM
    assert m.platform("insurance") == 100_000 + PREMIUM
    assert m.platform("escrow") == 0


def test_without_a_claim_the_trade_completes_when_the_window_closes(direct: Market) -> None:
    t = paid_direct(direct)
    direct.days(29.9)
    run_due(direct.trades)
    assert direct.trades.get(t.id, direct.buyer).status == "paid"
    direct.days(0.2)
    run_due(direct.trades)
    assert direct.trades.get(t.id, direct.buyer).status == "completed"
    with pytest.raises(TradeError) as e:
        direct.trades.claim(t.id, direct.buyer, reason="counterfeit", evidence="fake seal")
    assert e.value.code == "trade_state_invalid"


def test_a_claim_after_the_window_is_refused_even_before_the_worker_runs(direct: Market) -> None:
    t = paid_direct(direct)
    direct.days(30)
    with pytest.raises(TradeError) as e:
        direct.trades.claim(t.id, direct.buyer, reason="non_delivery", evidence="never came")
    assert e.value.code == "claim_window_closed"


@pytest.mark.parametrize(
    ("reason", "evidence", "code"),
    [("lost_interest", "x", "claim_reason_invalid"), ("counterfeit", "", "evidence_invalid"), ("counterfeit", " \n ", "evidence_invalid"), ("counterfeit", "x" * 2001, "evidence_invalid"),
     ("counterfeit", "fake\x00seal", "evidence_invalid"), ("counterfeit", "fake \udcff seal", "evidence_invalid")],
)
def test_a_claim_needs_a_known_reason_and_evidence(direct: Market, reason: str, evidence: str, code: str) -> None:
    t = paid_direct(direct)
    with pytest.raises(TradeError) as e:
        direct.trades.claim(t.id, direct.buyer, reason=reason, evidence=evidence)
    assert e.value.code == code
    assert direct.trades.get(t.id, direct.buyer).status == "paid"


def test_the_seller_may_settle_a_claim_by_refunding(direct: Market) -> None:
    t = direct.trades.claim(paid_direct(direct).id, direct.buyer, reason="not_as_described", evidence="blue, not red")
    t = direct.trades.settle_claim(t.id, direct.seller)
    assert t.status == "refunded" and direct.wallet(direct.buyer) == FUNDS
    assert direct.trades.events(t.id, direct.buyer)[2].detail == '{"evidence":"blue, not red","reason":"not_as_described"}'


def test_an_upheld_claim_pays_twice_the_price_from_the_deposit_first(direct: Market) -> None:
    t = direct.trades.claim(paid_direct(direct).id, direct.buyer, reason="counterfeit", evidence="fake")
    pool = direct.platform("insurance")
    t = direct.trades.uphold_claim(t.id, direct.arbiter)
    assert t.status == "compensated" and t.compensated == 2 * PRICE
    assert direct.wallet(direct.buyer) == FUNDS - PRICE + 2 * PRICE
    assert direct.owned(direct.seller, "deposit") == MINIMUM - 2 * PRICE
    assert direct.platform("insurance") == pool and direct.owned(direct.seller, "debt") == 0


def test_when_the_deposit_is_short_the_pool_pays_and_the_seller_owes_it(direct: Market) -> None:
    m = direct
    t = m.trades.claim(paid_direct(m, 40_000).id, m.buyer, reason="non_delivery", evidence="nothing arrived")
    t = m.trades.uphold_claim(t.id, m.arbiter)
    owed = 80_000 - MINIMUM
    assert m.wallet(m.buyer) == FUNDS - 40_000 + 80_000
    assert m.owned(m.seller, "deposit") == 0
    assert m.owned(m.seller, "debt") == -owed
    assert '"from_pool":30000' in (m.trades.events(t.id, m.arbiter)[-1].detail or "")
    # Suspended until the debt is paid and the deposit is back at the minimum.
    with pytest.raises(TradeError) as e:
        m.new_trade("direct")
    assert e.value.code == "seller_in_debt"
    with pytest.raises(TradeError) as e:
        m.trades.parties.repay_debt(m.seller, owed + 1, "CNY")
    assert e.value.code == "exceeds_debits"
    m.trades.parties.repay_debt(m.seller, owed - 1, "CNY")
    with pytest.raises(TradeError) as e:  # a minor unit owed is a debt
        m.new_trade("direct")
    assert e.value.code == "seller_in_debt"
    m.trades.parties.repay_debt(m.seller, 1, "CNY")
    with pytest.raises(TradeError) as e:
        m.new_trade("direct")
    assert e.value.code == "deposit_below_minimum"
    m.trades.parties.deposit(m.seller, MINIMUM, "CNY")
    assert m.new_trade("direct").status == "created"


def test_a_compensation_the_deposit_and_the_pool_cannot_cover_is_refused_and_moves_nothing(direct: Market) -> None:
    m = direct  # owed 2 x 100,000: the deposit's 50,000 moves first, then the pool is 50,000 short
    t = m.trades.claim(paid_direct(m, 100_000).id, m.buyer, reason="non_delivery", evidence="nothing arrived")
    before = m.snapshot()
    with pytest.raises(TradeError) as e:
        m.trades.uphold_claim(t.id, m.arbiter)
    # The pool's own refusal, not the echo of it on the deposit's move before it in the chain.
    assert e.value.code == "insufficient_funds" and "insurance" in str(e.value)
    assert m.snapshot() == before and m.trades.get(t.id, m.arbiter).status == "claimed"


def test_only_direct_trades_open_to_claims_lock_the_deposit_and_only_in_their_currency(direct: Market) -> None:
    m = direct
    m.trades.parties.top_up(m.seller, 1_000, "USD")
    m.trades.parties.deposit(m.seller, 1_000, "USD")
    m.trades.pay(m.new_trade().id, m.buyer)  # escrow: no claim can arrive on it
    m.trades.parties.withdraw_deposit(m.seller, 1, "CNY")
    m.trades.parties.deposit(m.seller, 1, "CNY")
    paid_direct(m)
    with pytest.raises(TradeError) as e:
        m.trades.parties.withdraw_deposit(m.seller, 1, "CNY")
    assert e.value.code == "deposit_locked"
    m.trades.parties.withdraw_deposit(m.seller, 1_000, "USD")
    assert m.owned(m.seller, "deposit") == MINIMUM


def test_a_rejected_claim_completes_the_trade_and_is_recorded_against_the_claimant(direct: Market) -> None:
    t = direct.trades.claim(paid_direct(direct).id, direct.buyer, reason="counterfeit", evidence="looks odd")
    t = direct.trades.reject_claim(t.id, direct.arbiter)
    assert t.status == "completed" and direct.wallet(direct.buyer) == FUNDS - PRICE
    claims = direct.trades.claims_rejected(direct.buyer)
    assert [c.trade_id for c in claims] == [t.id]


def test_the_deposit_is_locked_while_a_claim_may_still_arrive(direct: Market) -> None:
    t = paid_direct(direct)
    with pytest.raises(TradeError) as e:
        direct.trades.parties.withdraw_deposit(direct.seller, 1, "CNY")
    assert e.value.code == "deposit_locked"
    direct.days(31)
    run_due(direct.trades)
    assert direct.trades.get(t.id, direct.seller).status == "completed"
    direct.trades.parties.withdraw_deposit(direct.seller, MINIMUM, "CNY")
    assert direct.owned(direct.seller, "deposit") == 0


def test_the_deposit_stays_locked_while_a_claim_waits_on_the_arbiter(direct: Market) -> None:
    t = direct.trades.claim(paid_direct(direct).id, direct.buyer, reason="counterfeit", evidence="the seal is fake")
    direct.days(31)  # past the window for new claims: this one is still open
    run_due(direct.trades)
    assert direct.trades.get(t.id, direct.seller).status == "claimed"
    with pytest.raises(TradeError) as e:
        direct.trades.parties.withdraw_deposit(direct.seller, 1, "CNY")
    assert e.value.code == "deposit_locked"
    direct.trades.reject_claim(t.id, direct.arbiter)
    direct.trades.parties.withdraw_deposit(direct.seller, 1, "CNY")
