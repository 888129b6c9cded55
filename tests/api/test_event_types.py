"""Every trade transition the state machine allows reaches webhooks as an event type a party
can subscribe to, and every event type a party can subscribe to is one some transition makes."""

from __future__ import annotations

import pytest

from danbao.api.event_types import EVENT_TYPES, event_type
from danbao.trade.machine import TABLE
from danbao.trade.model import TradeEvent

TRANSITIONS = [
    (model.value, status.value, action.value, to.value)
    for model, rules in TABLE.items()
    for (status, action), rule in rules.items()
    for to in rule.to
]


def _event(action: str, from_status: str, to_status: str) -> TradeEvent:
    return TradeEvent("t_1", 1, 0, "someone", action, from_status, to_status, None, None)


@pytest.mark.parametrize(("model", "status", "action", "to"), TRANSITIONS, ids=["-".join(t) for t in TRANSITIONS])
def test_each_transition_has_a_subscribable_event_type(model: str, status: str, action: str, to: str) -> None:
    assert event_type(_event(action, status, to)) in EVENT_TYPES


def test_every_event_type_is_made_by_some_transition() -> None:
    made = {event_type(_event(action, status, to)) for _, status, action, to in TRANSITIONS}
    made.add(event_type(_event("create", "created", "created")))  # a trade's first event
    assert made == set(EVENT_TYPES)


@pytest.mark.parametrize(
    ("action", "from_status", "to_status", "expected"),
    [
        ("agree_refund", "refund_requested", "shipped", "refund.paid"),  # part refunded, the trade goes on
        ("agree_refund", "refund_requested", "refunded", "trade.refunded"),  # refunded in full
        ("refund_timeout", "refund_requested", "shipped", "refund.paid"),
        ("arbitrate", "disputed", "refunded", "trade.refunded"),
        ("arbitrate", "disputed", "completed", "trade.completed"),
        ("uphold_claim", "claimed", "compensated", "claim.upheld"),
        ("collect", "shipped", "remitted", "cod.collected"),  # paid by card: remitted at once
    ],
)
def test_outcomes_that_share_an_action_are_told_apart(action: str, from_status: str, to_status: str, expected: str) -> None:
    assert event_type(_event(action, from_status, to_status)) == expected
