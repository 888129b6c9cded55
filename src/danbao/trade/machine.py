"""The three settlement models as transition tables, and the one place they are checked.

Each row says: in this model and status, this action may be taken by these actors and
leads to one of these statuses. `authorise` is the only gate: an action not in the table
for the actor's part is `role_forbidden`; in the table but not from this status is
`trade_state_invalid`. The worker's timeouts are table rows too (actor `system`), and
`DUE` says which timeout a status waits on and which deadline column starts it.
"""

from __future__ import annotations

from dataclasses import dataclass

from danbao.errors import invariant
from danbao.trade.errors import TradeCode, TradeError, with_article
from danbao.trade.model import Action, Model, Status

# Actors, by the part they play: the trade's own buyer, seller and courier; any arbiter
# or operator; and the worker.
BUYER, SELLER, COURIER, ARBITER, OPERATOR, SYSTEM = "buyer", "seller", "courier", "arbiter", "operator", "system"
# The roles that see every trade without being a party to any.
OVERSEERS = (ARBITER, OPERATOR)


@dataclass(frozen=True, slots=True)
class Rule:
    actors: frozenset[str]
    to: tuple[Status, ...]


def _r(actors: str, *to: Status) -> Rule:
    return Rule(frozenset(actors.split()), to)


S, A = Status, Action

TABLE: dict[Model, dict[tuple[Status, Action], Rule]] = {
    Model.escrow: {
        (S.created, A.pay): _r(BUYER, S.paid),
        (S.created, A.cancel): _r(f"{BUYER} {SELLER}", S.closed),
        (S.created, A.close): _r(SYSTEM, S.closed),
        (S.paid, A.ship): _r(SELLER, S.shipped),
        (S.paid, A.refund): _r(BUYER, S.refunded),
        # The buyer only once the ship window has passed; the seller whenever it cannot ship.
        (S.paid, A.cancel): _r(f"{BUYER} {SELLER}", S.refunded),
        (S.shipped, A.confirm): _r(BUYER, S.completed),
        (S.shipped, A.auto_confirm): _r(SYSTEM, S.completed),
        (S.shipped, A.extend): _r(BUYER, S.shipped),
        (S.shipped, A.request_refund): _r(BUYER, S.refund_requested),
        (S.refund_requested, A.agree_refund): _r(SELLER, S.shipped, S.refunded),
        (S.refund_requested, A.refund_timeout): _r(SYSTEM, S.shipped, S.refunded),
        (S.refund_requested, A.refuse_refund): _r(SELLER, S.refund_refused),
        (S.refund_refused, A.confirm): _r(BUYER, S.completed),
        (S.refund_refused, A.auto_confirm): _r(SYSTEM, S.completed),
        (S.refund_refused, A.request_refund): _r(BUYER, S.refund_requested),
        (S.refund_refused, A.dispute): _r(f"{BUYER} {SELLER}", S.disputed),
        (S.disputed, A.arbitrate): _r(ARBITER, S.completed, S.refunded),
    },
    Model.direct: {
        (S.created, A.pay): _r(BUYER, S.paid),
        (S.created, A.cancel): _r(f"{BUYER} {SELLER}", S.closed),
        (S.created, A.close): _r(SYSTEM, S.closed),
        (S.paid, A.claim): _r(BUYER, S.claimed),
        (S.paid, A.claim_window_end): _r(SYSTEM, S.completed),
        (S.claimed, A.settle_claim): _r(SELLER, S.refunded),
        (S.claimed, A.uphold_claim): _r(ARBITER, S.compensated),
        (S.claimed, A.reject_claim): _r(ARBITER, S.completed),
    },
    Model.cod: {
        (S.created, A.cancel): _r(f"{BUYER} {SELLER}", S.closed),
        (S.created, A.ship): _r(SELLER, S.shipped),
        # Cash leaves the courier owing it; a card payment reaches the platform at once.
        (S.shipped, A.collect): _r(COURIER, S.collected, S.remitted),
        (S.shipped, A.refuse): _r(COURIER, S.refused),
        (S.collected, A.remit): _r(COURIER, S.remitted),
        (S.collected, A.flag_late): _r(SYSTEM, S.collected),
        (S.remitted, A.settle): _r(f"{OPERATOR} {SYSTEM}", S.settled),
        (S.refused, A.return_goods): _r(COURIER, S.returned),
    },
}

# What each status waits on: the worker's action and the deadline column that starts it
# (None: due at once).
DUE: dict[tuple[Model, Status], tuple[Action, str | None]] = {
    (Model.escrow, S.created): (A.close, "pay_by"),
    (Model.escrow, S.shipped): (A.auto_confirm, "confirm_by"),
    (Model.escrow, S.refund_refused): (A.auto_confirm, "confirm_by"),
    (Model.escrow, S.refund_requested): (A.refund_timeout, "respond_by"),
    (Model.direct, S.created): (A.close, "pay_by"),
    (Model.direct, S.paid): (A.claim_window_end, "claim_by"),
    (Model.cod, S.collected): (A.flag_late, "remit_by"),
    (Model.cod, S.remitted): (A.settle, None),
}

# Statuses that wait on an arbiter's decision (an escrow dispute, a direct claim): the
# arbiters' queue (`Trades.awaiting_arbiter`), read from the table, not listed again.
AWAITING_ARBITER = frozenset(status for rules in TABLE.values() for (status, _), rule in rules.items() if ARBITER in rule.actors)


def concerns_arbiters(from_status: str, to_status: str) -> bool:
    """Whether a transition puts a trade in the arbiters' queue or takes it out: the
    events that arbiters and operators, never parties to a trade, are sent."""
    return from_status in AWAITING_ARBITER or to_status in AWAITING_ARBITER


# Statuses in which the escrow's confirm clock is stopped.
CONFIRM_CLOCK_STOPPED = frozenset({S.refund_requested, S.disputed})
FINAL = frozenset({S.completed, S.refunded, S.closed, S.compensated, S.settled, S.returned})


def authorise(model: Model, status: Status, action: Action, actor: str) -> Rule:
    """The rule for `action` by `actor`, or the refusal: role first, then state."""
    rules = TABLE[model]
    if not any(a == action and actor in rule.actors for (_, a), rule in rules.items()):
        raise TradeError(TradeCode.role_forbidden, f"{with_article(actor)} cannot {action.value} {with_article(model.value)} trade")
    rule = rules.get((status, action))
    if rule is None or actor not in rule.actors:
        raise TradeError(TradeCode.trade_state_invalid, f"cannot {action.value} {with_article(model.value)} trade that is {status.value}")
    return rule


def arrive(rule: Rule, to: Status) -> Status:
    invariant(to in rule.to, f"the table does not allow {to.value} here")
    return to


def _check_tables() -> None:
    for model, rules in TABLE.items():
        for (status, _), rule in rules.items():
            invariant(status not in FINAL, f"{model.value}: a final status has no way out")
            invariant(rule.actors <= {BUYER, SELLER, COURIER, ARBITER, OPERATOR, SYSTEM}, "unknown actor")
    for (model, status), (action, _) in DUE.items():
        invariant(SYSTEM in TABLE[model][(status, action)].actors, "a due action is the worker's")


_check_tables()
