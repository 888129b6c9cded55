"""The trade's nouns: settlement models, statuses, actions, roles, and the records read back."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

# Bounds on what a caller may hand us.
ITEMS_BYTES_MAX = 4096
EVIDENCE_CHARS_MAX = 2000
NAME_CHARS_MAX = 128
EVENTS_PER_PAGE_MAX = 1000
SEQ_MAX = 2**31  # a trade's events are numbered 1, 2, ...; a cursor past this is not one
WORKER_TRADES_PER_RUN_MAX = 1000


class Model(str, Enum):
    escrow = "escrow"
    direct = "direct"
    cod = "cod"


class Role(str, Enum):
    buyer = "buyer"
    seller = "seller"
    courier = "courier"
    arbiter = "arbiter"
    operator = "operator"


class Status(str, Enum):
    created = "created"
    paid = "paid"
    shipped = "shipped"
    refund_requested = "refund_requested"
    refund_refused = "refund_refused"
    disputed = "disputed"
    completed = "completed"
    refunded = "refunded"
    closed = "closed"
    claimed = "claimed"
    compensated = "compensated"
    collected = "collected"
    remitted = "remitted"
    settled = "settled"
    refused = "refused"
    returned = "returned"


class Action(str, Enum):
    create = "create"  # recorded as the first event; not a transition
    pay = "pay"
    cancel = "cancel"
    close = "close"  # the worker: unpaid past the pay window
    ship = "ship"
    refund = "refund"  # before shipping: the whole amount back at once
    confirm = "confirm"
    auto_confirm = "auto_confirm"  # the worker: confirm window over
    extend = "extend"
    request_refund = "request_refund"
    agree_refund = "agree_refund"
    refund_timeout = "refund_timeout"  # the worker: the seller was silent, which is agreement
    refuse_refund = "refuse_refund"
    dispute = "dispute"
    arbitrate = "arbitrate"
    claim = "claim"
    settle_claim = "settle_claim"  # the seller refunds instead of facing the arbiter
    uphold_claim = "uphold_claim"
    reject_claim = "reject_claim"
    claim_window_end = "claim_window_end"  # the worker
    collect = "collect"
    refuse = "refuse"
    return_goods = "return_goods"
    remit = "remit"
    settle = "settle"  # the worker or an operator: pay the seller once the cash is in
    flag_late = "flag_late"  # the worker: a courier missed the remittance deadline


class ClaimReason(str, Enum):
    non_delivery = "non_delivery"
    counterfeit = "counterfeit"
    not_as_described = "not_as_described"


class Decision(str, Enum):
    release = "release"  # all to the seller
    refund_full = "refund_full"
    refund_partial = "refund_partial"


class CollectMethod(str, Enum):
    cash = "cash"
    card = "card"


# The actor recorded for what the worker does on its own.
SYSTEM_ACTOR = "system"


@dataclass(frozen=True, slots=True)
class Party:
    id: str
    role: str
    name: str
    cash_limit: int | None
    late_remittances: int
    created_at: int


@dataclass(frozen=True, slots=True)
class Trade:
    id: str
    model: str
    status: str
    buyer_id: str
    seller_id: str
    courier_id: str | None
    currency: str
    amount: int
    items: str
    paid: int
    refunded: int
    released: int
    fee: int
    compensated: int
    refund_requested: int | None
    collect_method: str | None
    confirm_extended: int
    remit_late: int
    pay_by: int | None
    ship_by: int | None
    confirm_by: int | None
    confirm_left_ns: int | None
    respond_by: int | None
    claim_by: int | None
    remit_by: int | None
    due_at: int | None
    due_action: str | None
    version: int
    created_at: int
    updated_at: int

    @property
    def open_in_escrow(self) -> int:
        """What the platform still holds for this trade (escrow and cod)."""
        return self.paid - self.refunded - self.released if self.model != Model.direct else 0

    def party_role(self, party_id: str) -> str | None:
        """The part `party_id` plays in this trade, if any."""
        if party_id == self.buyer_id:
            return Role.buyer.value
        if party_id == self.seller_id:
            return Role.seller.value
        if party_id == self.courier_id:
            return Role.courier.value
        return None


@dataclass(frozen=True, slots=True)
class TradeEvent:
    trade_id: str
    seq: int
    at: int
    actor: str
    action: str
    from_status: str
    to_status: str
    amount: int | None
    detail: str | None
