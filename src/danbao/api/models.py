"""Request and response bodies: the OpenAPI document is generated from these, so they are
the contract. Amounts are integers in minor units with an ISO 4217 currency."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictStr

from danbao.api.event_types import EVENT_TYPES
from danbao.api.signature import SECRET_OVERLAP_SECONDS_DEFAULT, SECRET_OVERLAP_SECONDS_MAX
from danbao.money import AMOUNT_MAX_MINOR, CURRENCIES
from danbao.trade.model import EVIDENCE_CHARS_MAX, NAME_CHARS_MAX


def _whole(value: Any) -> Any:
    # JSON Schema counts 5.0 as an integer; 5.5, "5" and true are not.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


StrictInt = Annotated[int, BeforeValidator(_whole), Field(strict=True)]
Amount = Field(gt=0, le=AMOUNT_MAX_MINOR, description="minor units (CNY 12.30 is 1230)")
CurrencyCode = Enum("CurrencyCode", {code: code for code in sorted(CURRENCIES)}, type=str)  # type: ignore[misc]
Currency = Field(description="ISO 4217 code")
EventType = Enum("EventType", {t.replace(".", "_"): t for t in (*EVENT_TYPES, "*")}, type=str)  # type: ignore[misc]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")  # strictness per field: enums accept their string values


class PartyIn(Strict):
    role: Literal["buyer", "seller", "courier", "arbiter", "operator"]
    name: StrictStr = Field(min_length=1, max_length=NAME_CHARS_MAX)
    id: StrictStr | None = Field(default=None, pattern="^[a-z0-9][a-z0-9_-]{0,31}$")
    cash_limit: StrictInt | None = Field(default=None, ge=0, le=AMOUNT_MAX_MINOR)


class PartyOut(BaseModel):
    id: str
    role: str
    name: str
    cash_limit: int | None
    late_remittances: int
    created_at: int


class KeyOut(BaseModel):
    id: str
    party_id: str
    key: str | None = Field(default=None, description="the secret, shown only when issued")
    created_at: int | None = None
    revoked_at: int | None = None


class KeyPage(BaseModel):
    data: list[KeyOut]
    next_cursor: str | None


class MoneyIn(Strict):
    amount: StrictInt = Amount
    currency: CurrencyCode = Currency  # type: ignore[valid-type]


class TransferIn(MoneyIn):
    to_party_id: StrictStr = Field(min_length=1, max_length=64)


class MoveOut(BaseModel):
    transfer_id: str
    amount: int
    currency: str


class AccountOut(BaseModel):
    id: str
    currency: str
    kind: str
    balance: int
    available: int
    debits_pending: int
    debits_posted: int
    credits_pending: int
    credits_posted: int


class AccountPage(BaseModel):
    data: list[AccountOut]


class BalanceOut(BaseModel):
    """An account's totals just after its last entry at or before `at`."""

    account_id: str
    currency: str
    at: int = Field(description="nanoseconds since the epoch, as asked")
    balance: int
    debits_pending: int
    debits_posted: int
    credits_pending: int
    credits_posted: int


class TransferOut(BaseModel):
    id: str
    timestamp: int
    debit_account_id: str
    credit_account_id: str
    amount: int
    currency: str
    code: str
    ref: str | None


class TransferPage(BaseModel):
    data: list[TransferOut]
    next_cursor: str | None


class TradeIn(Strict):
    seller_id: StrictStr = Field(min_length=1, max_length=64)
    model: Literal["escrow", "direct", "cod"]
    amount: StrictInt = Amount
    currency: CurrencyCode = Currency  # type: ignore[valid-type]
    items: list[dict[str, Any]] = Field(default_factory=list, max_length=100)


class TradeOut(BaseModel):
    id: str
    model: str
    status: str
    buyer_id: str
    seller_id: str
    courier_id: str | None
    currency: str
    amount: int
    items: list[dict[str, Any]]
    paid: int
    refunded: int
    released: int
    fee: int
    compensated: int
    refund_requested: int | None
    collect_method: str | None
    confirm_extended: bool
    remit_late: bool
    pay_by: int | None
    ship_by: int | None
    confirm_by: int | None
    respond_by: int | None
    claim_by: int | None
    remit_by: int | None
    version: int
    created_at: int
    updated_at: int


class TradePage(BaseModel):
    data: list[TradeOut]
    next_cursor: str | None


class NoBody(Strict):
    """The body of an operation that takes no parameters: nothing, `null` or `{}`. Any
    member is refused rather than ignored, so a parameter the API does not have is never
    silently dropped."""


class ShipIn(Strict):
    courier_id: StrictStr | None = Field(default=None, min_length=1, max_length=64)


class RefundRequestIn(Strict):
    amount: StrictInt = Amount


class ArbitrateIn(Strict):
    decision: Literal["release", "refund_full", "refund_partial"]
    amount: StrictInt | None = Field(default=None, gt=0, le=AMOUNT_MAX_MINOR)


class ClaimIn(Strict):
    reason: Literal["non_delivery", "counterfeit", "not_as_described"]
    evidence: StrictStr = Field(min_length=1, max_length=EVIDENCE_CHARS_MAX)


class CollectIn(Strict):
    method: Literal["cash", "card"]


class EventOut(BaseModel):
    id: str
    type: str
    trade_id: str
    seq: int
    at: int
    actor: str
    action: str
    from_status: str
    to_status: str
    amount: int | None
    detail: dict[str, Any] | None


class EventPage(BaseModel):
    data: list[EventOut]
    next_cursor: str | None


class WebhookEndpointIn(Strict):
    url: StrictStr = Field(min_length=8, max_length=2048, pattern="^https?://[^\\s]+$")
    event_types: list[EventType] = Field(min_length=1, max_length=32)  # type: ignore[valid-type]


class SecretRotationIn(Strict):
    overlap_seconds: StrictInt = Field(
        default=SECRET_OVERLAP_SECONDS_DEFAULT, ge=0, le=SECRET_OVERLAP_SECONDS_MAX,
        description="how long deliveries are signed under the replaced secret too (0: not at all)",
    )


class WebhookEndpointOut(BaseModel):
    id: str
    url: str
    event_types: list[str]
    secret: str | None = Field(default=None, description="the signing secret, shown only at registration and rotation")
    created_at: int
    disabled_at: int | None = None
    previous_secret_until: int | None = Field(default=None, description="deliveries are signed under the replaced secret too until then (ns)")


class WebhookEndpointPage(BaseModel):
    data: list[WebhookEndpointOut]
    next_cursor: str | None


class DeliveryOut(BaseModel):
    id: str
    event_id: str
    event_type: str
    state: str
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: int | None
    created_at: int
    updated_at: int


class DeliveryPage(BaseModel):
    data: list[DeliveryOut]
    next_cursor: str | None


class AuditOut(BaseModel):
    ok: bool
    violations: list[str]
    transfers_checked: int
    accounts_checked: int
    trades_checked: int
    escrow_by_currency: dict[str, int]
    head: str  # <entries>:<hash of the last>: pass it back as `anchor` to a later audit


class Problem(BaseModel):
    type: str
    title: str
    status: int
    code: str
    detail: str
    field: str | None = None
