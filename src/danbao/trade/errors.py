"""The trade engine's refusals: one closed enum of stable codes, and the error that carries one.

A refused operation changes nothing. Money refusals reuse the ledger's own result codes
(`insufficient_funds`, ...) rather than inventing new names for them, and paging refusals
its read codes (`limit_invalid`, `cursor_invalid`).
"""

from __future__ import annotations

from enum import Enum

from danbao.errors import DanbaoError


class TradeCode(str, Enum):
    party_id_invalid = "party_id_invalid"
    party_exists = "party_exists"
    party_not_found = "party_not_found"
    role_invalid = "role_invalid"
    name_invalid = "name_invalid"
    model_unknown = "model_unknown"
    items_invalid = "items_invalid"
    amount_invalid = "amount_invalid"
    currency_unknown = "currency_unknown"
    parties_must_differ = "parties_must_differ"
    # Someone else's trade reads as a missing one: existence is not revealed.
    trade_not_found = "trade_not_found"
    role_forbidden = "role_forbidden"
    trade_state_invalid = "trade_state_invalid"
    refund_exceeds_paid = "refund_exceeds_paid"
    extension_used = "extension_used"
    ship_window_open = "ship_window_open"
    claim_window_closed = "claim_window_closed"
    claim_reason_invalid = "claim_reason_invalid"
    evidence_invalid = "evidence_invalid"
    decision_invalid = "decision_invalid"
    deposit_below_minimum = "deposit_below_minimum"
    seller_in_debt = "seller_in_debt"
    deposit_locked = "deposit_locked"
    courier_required = "courier_required"
    courier_cash_limit = "courier_cash_limit"
    collect_method_invalid = "collect_method_invalid"


class TradeError(DanbaoError):
    """A refused trade operation, with a `TradeCode`, a ledger `Result` or a `ReadCode` as its code."""

    def __init__(self, code: str | Enum, message: str, *, field: str | None = None):
        super().__init__(message, field=field, code=code)


def with_article(noun: str) -> str:
    """`an arbiter`, `a seller`: a role or model named in a refusal's message."""
    return f"{'an' if noun[0] in 'aeiou' else 'a'} {noun}"
