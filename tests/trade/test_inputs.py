"""Bad input to parties and trades gets a clear code and the field at fault, and changes nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from danbao.ids import Ids
from danbao.ledger import Ledger
from danbao.ledger.model import TOTAL_MAX
from danbao.money import AMOUNT_MAX_MINOR, format_amount
from danbao.trade import TradeError, Trades
from danbao.trade import accounts as acc
from danbao.trade.model import ITEMS_BYTES_MAX, NAME_CHARS_MAX, Model
from tests.trade.helpers import CUR, FUNDS, PRICE, Market, open_market


@pytest.mark.parametrize(
    ("role", "name", "party_id", "code", "field"),
    [
        ("emperor", "X", "x1", "role_invalid", "role"),
        ("buyer", "", "x1", "name_invalid", "name"),
        ("buyer", " \t ", "x1", "name_invalid", "name"),  # blank once trimmed
        ("buyer", "x" * 129, "x1", "name_invalid", "name"),
        ("buyer", "Nul\x00Name", "x1", "name_invalid", "name"),  # PostgreSQL's text refuses NUL
        ("buyer", "Bad\udcffByte", "x1", "name_invalid", "name"),  # a lone surrogate: not UTF-8
        ("buyer", "X", "Has.Dots", "party_id_invalid", "party_id"),
        ("buyer", "X", "-leading-dash", "party_id_invalid", "party_id"),
        ("buyer", "X", "_leading_underscore", "party_id_invalid", "party_id"),
        ("buyer", "X", "x" * 33, "party_id_invalid", "party_id"),
        ("buyer", "X", "trailing-newline\n", "party_id_invalid", "party_id"),
        ("buyer", "X", "platform", "party_id_invalid", "party_id"),  # would own the platform's accounts
        ("buyer", "X", "buyer", "party_exists", "party_id"),
    ],
)
def test_a_party_needs_a_role_a_name_and_a_fresh_id(market: Market, role: str, name: str, party_id: str, code: str, field: str) -> None:
    with pytest.raises(TradeError) as e:
        market.trades.parties.create(role, name, party_id=party_id)
    assert (e.value.code, e.value.field) == (code, field)


def test_a_partys_name_is_kept_without_the_spaces_around_it_and_a_couriers_limit_may_be_zero(market: Market) -> None:
    assert market.trades.parties.create("buyer", "  Ann Lee \t", party_id="ann").name == "Ann Lee"
    assert market.trades.parties.get("ann").name == "Ann Lee"
    assert market.trades.parties.create("courier", "Walker", party_id="walker", cash_limit=0).cash_limit == 0
    with pytest.raises(TradeError) as e:
        market.trades.parties.create("courier", "Runner", party_id="runner", cash_limit=-1)
    assert (e.value.code, e.value.field) == ("amount_invalid", "cash_limit")
    for odd in (True, 1.0, "5"):  # a bool is an int to Python, not an amount
        with pytest.raises(TradeError) as e:
            market.trades.parties.create("courier", "Runner", party_id="runner", cash_limit=odd)  # type: ignore[arg-type]
        assert (e.value.code, e.value.field) == ("amount_invalid", "cash_limit")


def test_a_name_and_a_cash_limit_may_be_as_long_and_as_large_as_their_bounds(market: Market) -> None:
    name = "n" * NAME_CHARS_MAX
    made = market.trades.parties.create("courier", name, party_id="longest", cash_limit=AMOUNT_MAX_MINOR)
    assert (made.name, made.cash_limit) == (name, AMOUNT_MAX_MINOR)
    with pytest.raises(TradeError) as e:
        market.trades.parties.create("courier", "Runner", party_id="runner", cash_limit=AMOUNT_MAX_MINOR + 1)
    assert (e.value.code, e.value.field) == ("amount_invalid", "cash_limit")


def test_a_party_gets_a_fresh_id_when_none_is_given(market: Market) -> None:
    a = market.trades.parties.create("buyer", "A")
    b = market.trades.parties.create("buyer", "B")
    assert a.id != b.id and market.trades.parties.get(a.id) == a


@pytest.mark.parametrize(
    ("amount", "currency", "code"),
    [(0, CUR, "amount_invalid"), (-5, CUR, "amount_invalid"), (1.5, CUR, "amount_invalid"), ("100", CUR, "amount_invalid"),
     (AMOUNT_MAX_MINOR + 1, CUR, "amount_invalid"), (True, CUR, "amount_invalid"), (100, "XXX", "currency_unknown"), (100, "cny", "currency_unknown")],
)
def test_money_in_and_out_needs_a_positive_bounded_amount_in_a_known_currency(market: Market, amount: object, currency: str, code: str) -> None:
    before = market.snapshot()
    for call in (market.trades.parties.top_up, market.trades.parties.withdraw):
        with pytest.raises(TradeError) as e:
            call(market.buyer, amount, currency)  # type: ignore[arg-type]
        assert e.value.code == code
    assert market.snapshot() == before


def test_the_largest_amount_moves_in_and_out(market: Market) -> None:
    market.trades.parties.top_up(market.buyer, AMOUNT_MAX_MINOR, CUR)
    assert market.wallet(market.buyer) == FUNDS + AMOUNT_MAX_MINOR
    market.trades.parties.withdraw(market.buyer, AMOUNT_MAX_MINOR, CUR)
    assert market.wallet(market.buyer) == FUNDS


def test_each_money_move_is_journalled_with_its_own_code_and_the_acting_party_as_its_ref(market: Market) -> None:
    parties = market.trades.parties
    moves = [
        (parties.top_up, market.buyer, (), f"platform.bank.{CUR}", f"{market.buyer}.wallet.{CUR}", "wallet.top_up"),
        (parties.withdraw, market.buyer, (), f"{market.buyer}.wallet.{CUR}", f"platform.bank.{CUR}", "wallet.withdraw"),
        (parties.send, market.buyer, (market.seller,), f"{market.buyer}.wallet.{CUR}", f"{market.seller}.wallet.{CUR}", "wallet.transfer"),
        (parties.deposit, market.seller, (), f"{market.seller}.wallet.{CUR}", f"{market.seller}.deposit.{CUR}", "deposit.top_up"),
        (parties.withdraw_deposit, market.seller, (), f"{market.seller}.deposit.{CUR}", f"{market.seller}.wallet.{CUR}", "deposit.withdraw"),
        (parties.fund_insurance, market.operator, (), f"platform.bank.{CUR}", f"platform.insurance.{CUR}", "insurance.fund"),
    ]
    for move, party, others, debit, credit, code in moves:
        transfer_id = move(party, *others, 7, CUR)
        t = market.ledger.transfer(transfer_id)
        assert t is not None, move.__name__
        assert (t.debit_account_id, t.credit_account_id, t.amount, t.code, t.ref) == (debit, credit, 7, code, party), move.__name__


def test_money_sent_to_an_unknown_party_names_the_payee_as_the_field_at_fault(market: Market) -> None:
    before = market.snapshot()
    with pytest.raises(TradeError) as e:
        market.trades.parties.send(market.buyer, "nobody", 100, CUR)
    assert (e.value.code, e.value.field) == ("party_not_found", "to_party_id")
    assert market.snapshot() == before


def test_a_party_cannot_send_money_to_itself(market: Market) -> None:
    before = market.snapshot()
    with pytest.raises(TradeError) as e:
        market.trades.parties.send(market.buyer, market.buyer, 100, CUR)
    assert (e.value.code, e.value.field) == ("parties_must_differ", "to_party_id")
    assert market.snapshot() == before


def test_a_wallet_cannot_give_more_than_it_holds(market: Market) -> None:
    with pytest.raises(TradeError) as e:
        market.trades.parties.withdraw(market.buyer, FUNDS + 1, CUR)
    assert e.value.code == "insufficient_funds"
    # In the caller's terms: the wallet and the amount, not the ledger's transfer id.
    assert str(e.value) == f"{market.buyer}.wallet.{CUR} has less than {format_amount(FUNDS + 1, CUR)} {CUR} available"
    market.trades.parties.withdraw(market.buyer, FUNDS, CUR)
    assert market.wallet(market.buyer) == 0


def test_a_move_that_would_overflow_a_total_names_both_accounts_and_the_amount(ledger, clock, db) -> None:  # type: ignore[no-untyped-def]
    m = open_market(ledger, clock)
    m.trades.pay(m.new_trade().id, m.buyer)  # escrow's account is opened
    trade = m.new_trade()
    escrow, wallet = acc.platform("escrow", CUR), acc.owned(m.buyer, "wallet", CUR)
    with db.engine.begin() as conn:  # behind the ledger's back: escrow's credits a minor unit short of room for the price
        conn.execute(text("UPDATE accounts SET credits_posted = :total WHERE id = :id"), {"total": TOTAL_MAX - PRICE + 1, "id": escrow})
    with Ledger(db, clock) as fresh:  # a ledger that knows no totals from before the edit
        with pytest.raises(TradeError) as e:
            Trades(fresh, m.trades.config, Ids(seed=8)).pay(trade.id, m.buyer)
    assert e.value.code == "overflow"
    assert str(e.value) == f"{format_amount(PRICE, CUR)} {CUR} more would overflow a total of {wallet} or {escrow}"


def test_a_deposit_cannot_give_back_more_than_it_holds(market: Market) -> None:
    market.trades.parties.deposit(market.seller, 300, CUR)  # the seller has nothing on deposit before
    before = market.snapshot()
    with pytest.raises(TradeError) as e:
        market.trades.parties.withdraw_deposit(market.seller, 301, CUR)
    assert e.value.code == "insufficient_funds" and f"{market.seller}.deposit.{CUR}" in str(e.value)
    assert market.snapshot() == before
    market.trades.parties.withdraw_deposit(market.seller, 300, CUR)
    assert market.owned(market.seller, "deposit") == 0


def test_money_for_unknown_parties_is_refused_and_a_sellers_or_operators_moves_are_theirs_alone(market: Market) -> None:
    with pytest.raises(TradeError) as e:
        market.trades.parties.top_up("nobody", 100, CUR)
    assert e.value.code == "party_not_found"
    parties = market.trades.parties
    for move, who in ((parties.deposit, market.buyer), (parties.withdraw_deposit, market.arbiter), (parties.repay_debt, market.courier), (parties.fund_insurance, market.seller)):
        before = market.snapshot()
        with pytest.raises(TradeError) as e:
            move(who, 100, CUR)
        # The party acting is in a role that may not: forbidden, as a transition its role lacks.
        assert (e.value.code, e.value.field) == ("role_forbidden", None), move.__name__
        assert market.snapshot() == before
    with pytest.raises(TradeError) as e:
        parties.deposit(market.arbiter, 100, CUR)
    assert str(e.value) == "arbiter is an arbiter; only a seller may do this"


@pytest.mark.parametrize(
    ("changes", "code", "field"),
    [
        ({"model": "barter"}, "model_unknown", "model"),
        ({"amount": 0}, "amount_invalid", "amount"),
        ({"amount": AMOUNT_MAX_MINOR + 1}, "amount_invalid", "amount"),
        ({"amount": 99.99}, "amount_invalid", "amount"),
        ({"currency": "ZZZ"}, "currency_unknown", "currency"),
        ({"items": {"x": float("nan")}}, "items_invalid", "items"),
        ({"items": [{"sku": "x" * 5000}]}, "items_invalid", "items"),
        ({"items": [{"sku": "\ud800"}]}, "items_invalid", "items"),  # a lone surrogate is not Unicode text
        ({"items": {1, 2}}, "items_invalid", "items"),
        ({"seller_id": "nobody"}, "party_not_found", "seller_id"),
        ({"seller_id": "buyer"}, "role_invalid", "seller_id"),
        ({"buyer_id": "seller"}, "role_forbidden", None),  # the party ordering is the one acting
        ({"buyer_id": "nobody", "seller_id": "nobody-else"}, "party_not_found", "buyer_id"),  # the buyer is checked first
        ({"seller_id": 7}, "party_not_found", "seller_id"),
        ({"seller_id": "sel\x00ler"}, "party_not_found", "seller_id"),  # no store holds such an id
        ({"buyer_id": "\udcff"}, "party_not_found", "buyer_id"),
    ],
)
def test_a_trade_needs_parties_in_their_roles_and_sound_terms(market: Market, changes: dict, code: str, field: str) -> None:  # type: ignore[type-arg]
    terms = {"buyer_id": market.buyer, "seller_id": market.seller, "model": "escrow", "amount": 100, "currency": CUR, "items": []}
    terms.update(changes)
    buyer = terms.pop("buyer_id")
    with pytest.raises(TradeError) as e:
        market.trades.create(buyer, **terms)
    assert (e.value.code, e.value.field) == (code, field)
    assert market.trades.of_party(market.buyer) == []


def test_items_take_up_to_their_bound_in_bytes_of_json(market: Market) -> None:
    def items(size: int) -> list[str]:
        return ["é" * ((size - 4) // 2)]  # ["…"]: 4 bytes of JSON around two bytes a letter

    exact = market.trades.create(market.buyer, seller_id=market.seller, model="escrow", amount=100, currency=CUR, items=items(ITEMS_BYTES_MAX))
    assert len(exact.items.encode()) == ITEMS_BYTES_MAX  # counted in bytes as stored, not in letters
    with pytest.raises(TradeError) as e:
        market.trades.create(market.buyer, seller_id=market.seller, model="escrow", amount=100, currency=CUR, items=items(ITEMS_BYTES_MAX + 2))
    assert (e.value.code, e.value.field) == ("items_invalid", "items")


def test_a_courier_made_without_a_cash_limit_gets_the_configured_one(market: Market) -> None:
    made = market.trades.parties.create("courier", "Walker", party_id="walker")
    assert made.cash_limit == market.trades.config.courier_cash_limit == market.trades.parties.get("walker").cash_limit
    assert market.trades.parties.create("buyer", "Ann", party_id="ann").cash_limit is None  # only couriers carry cash


def test_a_model_may_be_named_by_its_enum_and_the_trade_keeps_the_plain_name(market: Market) -> None:
    made = market.new_trade(Model.escrow)  # type: ignore[arg-type]
    assert (made.model, type(made.model)) == ("escrow", str)
    assert market.trades.get(made.id, market.buyer).model == made.model


def test_trade_events_and_a_partys_trades_come_in_bounded_pages(market: Market) -> None:
    made = []
    for _ in range(3):
        made.append(market.new_trade())
        market.clock.advance(1)  # listed oldest first (ties at the same instant go by id)
    assert [t.id for t in market.trades.of_party(market.buyer)] == [t.id for t in made]
    first = market.trades.of_party(market.buyer, limit=2)
    rest = market.trades.of_party(market.buyer, after=(first[-1].created_at, first[-1].id), limit=2)
    assert [t.id for t in first + rest] == [t.id for t in made]
    t = market.trades.confirm(market.trades.ship(market.trades.pay(made[0].id, market.buyer).id, market.seller).id, market.buyer)
    page = market.trades.events(t.id, market.buyer, limit=2)
    more = market.trades.events(t.id, market.buyer, after_seq=page[-1].seq, limit=10)
    assert [e.action for e in page + more] == ["create", "pay", "ship", "confirm"]
    for bad in (0, 1001, "10"):
        with pytest.raises(TradeError) as e:
            market.trades.events(t.id, market.buyer, limit=bad)  # type: ignore[arg-type]
        assert e.value.code == "limit_invalid"


@pytest.mark.parametrize("bad", ["t\x00", "\udcff"])
def test_ids_no_store_can_hold_are_simply_not_found(market: Market, bad: str) -> None:
    """A NUL or a lone surrogate cannot be in either store, so it is an unknown id on both
    backends alike, not a driver error."""
    t = market.new_trade()
    before = market.snapshot()
    for call, code in [
        (lambda: market.trades.pay(bad, market.buyer), "trade_not_found"),
        (lambda: market.trades.get(bad, market.buyer), "trade_not_found"),
        (lambda: market.trades.events(bad, market.buyer), "trade_not_found"),
        (lambda: market.trades.pay(t.id, bad), "trade_not_found"),
        (lambda: market.trades.parties.get(bad), "party_not_found"),
        (lambda: market.trades.parties.top_up(bad, 100, CUR), "party_not_found"),
        (lambda: market.trades.parties.send(market.buyer, bad, 100, CUR), "party_not_found"),
    ]:
        with pytest.raises(TradeError) as e:
            call()
        assert e.value.code == code
    assert market.trades.of_party(bad) == []
    assert market.trades.events_of_party(bad) == []
    assert market.trades.claims_rejected(bad) == []
    assert market.snapshot() == before


@pytest.mark.parametrize("bad", [-1, 2**31 + 1, 10**30, "3", None])
def test_a_trades_events_are_read_after_a_sequence_number_in_bounds(market: Market, bad: object) -> None:
    t = market.new_trade()
    with pytest.raises(TradeError) as e:
        market.trades.events(t.id, market.buyer, after_seq=bad)  # type: ignore[arg-type]
    assert (e.value.code, e.value.field) == ("cursor_invalid", "after_seq")
