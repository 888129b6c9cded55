"""The transition tables, walked row by row: every allowed move arrives where the table says,
and every move by the wrong role, from the wrong state, or on someone else's trade is
refused with its code and changes nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from danbao.trade import Trade, TradeError
from danbao.trade.machine import BUYER, FINAL, SELLER, SYSTEM, TABLE, Rule, authorise
from danbao.trade.model import Action, Model, Status
from tests.trade.helpers import Market, assert_books_balance

# How to bring a fresh trade to each status, as steps from the one before.
PATHS: dict[Model, list[tuple[Status, Callable[[Market, Trade], Trade]]]] = {
    Model.escrow: [
        (Status.paid, lambda m, t: m.trades.pay(t.id, m.buyer)),
        (Status.shipped, lambda m, t: m.trades.ship(t.id, m.seller)),
        (Status.refund_requested, lambda m, t: m.trades.request_refund(t.id, m.buyer, 1_000)),
        (Status.refund_refused, lambda m, t: m.trades.refuse_refund(t.id, m.seller)),
        (Status.disputed, lambda m, t: m.trades.dispute(t.id, m.buyer)),
    ],
    Model.direct: [
        (Status.paid, lambda m, t: m.trades.pay(t.id, m.buyer)),
        (Status.claimed, lambda m, t: m.trades.claim(t.id, m.buyer, reason="counterfeit", evidence="fake")),
    ],
    Model.cod: [
        (Status.shipped, lambda m, t: m.trades.ship(t.id, m.seller, courier_id=m.courier)),
        (Status.collected, lambda m, t: m.trades.collect(t.id, m.courier, method="cash")),
        (Status.remitted, lambda m, t: m.trades.remit(t.id, m.courier)),
    ],
}
SIDE_PATHS: dict[tuple[Model, Status], tuple[Status, Callable[[Market, Trade], Trade]]] = {
    (Model.cod, Status.refused): (Status.shipped, lambda m, t: m.trades.refuse(t.id, m.courier)),
}

# Each action as a call, with arguments that pass its own guards.
CALLS: dict[Action, Callable[[Market, str, str], Any]] = {
    Action.pay: lambda m, t, a: m.trades.pay(t, a),
    Action.cancel: lambda m, t, a: m.trades.cancel(t, a),
    Action.ship: lambda m, t, a: m.trades.ship(t, a, courier_id=m.courier),
    Action.refund: lambda m, t, a: m.trades.refund(t, a),
    Action.confirm: lambda m, t, a: m.trades.confirm(t, a),
    Action.extend: lambda m, t, a: m.trades.extend(t, a),
    Action.request_refund: lambda m, t, a: m.trades.request_refund(t, a, 500),
    Action.agree_refund: lambda m, t, a: m.trades.agree_refund(t, a),
    Action.refuse_refund: lambda m, t, a: m.trades.refuse_refund(t, a),
    Action.dispute: lambda m, t, a: m.trades.dispute(t, a),
    Action.arbitrate: lambda m, t, a: m.trades.arbitrate(t, a, "refund_partial", amount=100),
    Action.claim: lambda m, t, a: m.trades.claim(t, a, reason="non_delivery", evidence="nothing came"),
    Action.settle_claim: lambda m, t, a: m.trades.settle_claim(t, a),
    Action.uphold_claim: lambda m, t, a: m.trades.uphold_claim(t, a),
    Action.reject_claim: lambda m, t, a: m.trades.reject_claim(t, a),
    Action.collect: lambda m, t, a: m.trades.collect(t, a, method="cash"),
    Action.refuse: lambda m, t, a: m.trades.refuse(t, a),
    Action.return_goods: lambda m, t, a: m.trades.return_goods(t, a),
    Action.remit: lambda m, t, a: m.trades.remit(t, a),
    Action.settle: lambda m, t, a: m.trades.settle(t, a),
}
PARTY_ROLES = ("buyer", "seller", "courier", "arbiter", "operator")


def actor_id(m: Market, role: str) -> str:
    return getattr(m, role)


def prepare(m: Market) -> None:
    m.trades.parties.deposit(m.seller, 50_000, "CNY")
    m.trades.parties.fund_insurance(m.operator, 100_000, "CNY")


def reach(m: Market, model: Model, status: Status) -> Trade:
    t = m.new_trade(model.value)
    if (model, status) in SIDE_PATHS:
        before, step = SIDE_PATHS[(model, status)]
        return step(m, reach(m, model, before))
    for arrived, step in PATHS[model]:
        if t.status == status:
            break
        t = step(m, t)
        assert t.status == arrived
    assert t.status == status, f"no path to {model.value}/{status.value}"
    return t


def rows() -> list[tuple[Model, Status, Action, str]]:
    return [(model, status, action, actor) for model, rules in TABLE.items() for (status, action), rule in rules.items() for actor in sorted(rule.actors)]


@pytest.mark.parametrize(("model", "status", "action", "actor"), rows(), ids=lambda v: getattr(v, "value", v))
def test_every_allowed_move_arrives_where_the_table_says(market: Market, model: Model, status: Status, action: Action, actor: str) -> None:
    prepare(market)
    t = reach(market, model, status)
    if action == Action.cancel and status == Status.paid and actor == "buyer":
        market.days(3)  # the buyer may cancel a paid trade only once the ship window is over
    if actor == SYSTEM:
        assert t.due_action == action.value
        market.clock.advance(ns=max(0, t.due_at - market.clock.now_ns()))
        after = market.trades.run_due_one(t.id)
        actor_name = "system"
    else:
        actor_name = actor_id(market, actor)
        after = CALLS[action](market, t.id, actor_name)
    assert after is not None and Status(after.status) in TABLE[model][(status, action)].to
    last = market.trades.events(t.id, market.operator)[-1]
    assert (last.action, last.actor, last.from_status, last.to_status) == (action.value, actor_name, status.value, after.status)
    assert market.trades.get(t.id, market.buyer) == after
    assert_books_balance(market)


def forbidden() -> list[tuple[Model, Action, str]]:
    cases = []
    for model, rules in TABLE.items():
        for action in sorted({a for (_, a) in rules if a in CALLS}, key=lambda a: a.value):
            allowed = set().union(*(r.actors for (_, a), r in rules.items() if a == action))
            first = next(s for (s, a) in rules if a == action)
            # A courier is a party only to a cod trade it was assigned (from shipping on).
            has_courier = model == Model.cod and first != Status.created
            cases += [(model, action, role) for role in PARTY_ROLES if role not in allowed and (role != "courier" or has_courier)]
    return cases


@pytest.mark.parametrize(("model", "action", "role"), forbidden(), ids=lambda v: getattr(v, "value", v))
def test_a_party_in_the_wrong_role_is_forbidden_and_nothing_changes(market: Market, model: Model, action: Action, role: str) -> None:
    prepare(market)
    # The first status from which the action is allowed at all.
    status = next(s for (s, a) in TABLE[model] if a == action)
    t = reach(market, model, status)
    before = market.snapshot()
    with pytest.raises(TradeError) as e:
        CALLS[action](market, t.id, actor_id(market, role))
    assert e.value.code == "role_forbidden"
    assert market.trades.get(t.id, market.operator) == t
    assert market.snapshot() == before


def wrong_states() -> list[tuple[Model, Status, Action, str]]:
    cases = []
    for model, rules in TABLE.items():
        reachable = [Status.created, *(s for s, _ in PATHS[model]), *(s for (mm, s) in SIDE_PATHS if mm == model)]
        for action in sorted({a for (_, a) in rules}, key=lambda a: a.value):
            for (_, a), rule in rules.items():
                if a != action:
                    continue
                for role in sorted(rule.actors - {SYSTEM}):
                    for status in reachable:
                        allowed = rules.get((status, action))
                        if role == "courier" and status == Status.created:
                            continue  # not yet assigned: the trade is not the courier's to see
                        if allowed is None or role not in allowed.actors:
                            cases.append((model, status, action, role))
    return sorted(set(cases), key=str)


@pytest.mark.parametrize(("model", "status", "action", "role"), wrong_states(), ids=lambda v: getattr(v, "value", v))
def test_a_move_from_the_wrong_state_is_refused_and_nothing_changes(market: Market, model: Model, status: Status, action: Action, role: str) -> None:
    prepare(market)
    t = reach(market, model, status)
    before = market.snapshot()
    with pytest.raises(TradeError) as e:
        CALLS[action](market, t.id, actor_id(market, role))
    assert e.value.code == "trade_state_invalid"
    assert market.trades.get(t.id, market.operator) == t
    assert market.snapshot() == before


@pytest.mark.parametrize("model", list(Model), ids=lambda v: v.value)
def test_someone_elses_trade_looks_like_no_trade_at_all(market: Market, model: Model) -> None:
    prepare(market)
    t = reach(market, model, Status.created)
    before = market.snapshot()
    for action in {a for (_, a) in TABLE[model] if a in CALLS}:
        for trade_id in (t.id, "t_missing"):
            with pytest.raises(TradeError) as e:
                CALLS[action](market, trade_id, market.stranger)
            assert e.value.code == "trade_not_found"
    for read in (market.trades.get, market.trades.events):
        with pytest.raises(TradeError) as e:
            read(t.id, market.stranger)
        assert e.value.code == "trade_not_found"
    assert market.snapshot() == before
    assert market.trades.get(t.id, market.operator) == t


def test_the_gate_reads_the_actors_of_the_row_for_the_trades_status(monkeypatch: pytest.MonkeyPatch) -> None:
    """An actor the table lets take an action from one status may not take it from another
    whose row does not name them: that is the trade's state, not the actor's role."""
    rules = dict(TABLE[Model.escrow])
    rules[(Status.paid, Action.cancel)] = Rule(frozenset({SELLER}), (Status.refunded,))
    monkeypatch.setitem(TABLE, Model.escrow, rules)
    assert authorise(Model.escrow, Status.paid, Action.cancel, SELLER).to == (Status.refunded,)
    assert authorise(Model.escrow, Status.created, Action.cancel, BUYER).to == (Status.closed,)
    with pytest.raises(TradeError) as refused:
        authorise(Model.escrow, Status.paid, Action.cancel, BUYER)
    assert refused.value.code == "trade_state_invalid"
    with pytest.raises(TradeError) as refused:
        authorise(Model.escrow, Status.paid, Action.ship, BUYER)
    assert refused.value.code == "role_forbidden"


def test_the_final_statuses_are_exactly_those_a_trade_arrives_at_and_never_leaves() -> None:
    arrived = {to for rules in TABLE.values() for rule in rules.values() for to in rule.to}
    left = {status for rules in TABLE.values() for (status, _) in rules}
    assert FINAL == arrived - left


@pytest.mark.parametrize("field", ["id", "model", "buyer_id", "seller_id", "currency", "amount", "items", "created_at", "version"])
def test_what_a_trade_was_made_with_is_never_changed_by_a_step(market: Market, field: str) -> None:
    from danbao.errors import InvariantViolation
    from danbao.trade import repository

    t = market.new_trade()
    with pytest.raises(InvariantViolation, match="not updatable"):
        market.ledger.transaction(lambda txn: repository.update_trade(txn.raw, t, {field: getattr(t, field)}, txn.now_ns))
    assert market.trades.get(t.id, market.buyer) == t
