"""A small typed Python client for the danbao HTTP API, over httpx.

Every POST carries an Idempotency-Key (made here unless given), and a request that fails
on the network, gets 503 while the server's database is unavailable, or finds an earlier
attempt with its key still running (409 idempotency_in_progress) is retried (a bounded
number of times, backing off, or after the 503's Retry-After) with the same key, so a
retry never does anything twice.
Refusals raise `ApiError` with the server's stable `code`, `status`, `detail` and `field`.

    from danbao.client import Danbao
    with Danbao("http://127.0.0.1:8000", key) as api:
        trade = api.create_trade(seller_id="tea", model="escrow", amount=128_00, currency="CNY")
        api.pay(trade.id)

A webhook receiver checks each delivery with `verify_signature(secret, header, body)`,
which needs none of the server (see `danbao.api.signature`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from danbao.api.models import (
    AccountOut,
    AuditOut,
    BalanceOut,
    DeliveryOut,
    EventOut,
    KeyOut,
    MoveOut,
    PartyOut,
    TradeOut,
    WebhookEndpointOut,
)
from danbao.api.signature import SIGNATURE_HEADER, verify_signature

RETRIES_MAX = 3
RETRY_BACKOFF_SECONDS = 0.05
# A 503's Retry-After is waited for (its database is restarting or failing over, which
# takes seconds, not the backoff's milliseconds), up to this long a retry.
RETRY_AFTER_SECONDS_MAX = 10.0
__all__ = ["SIGNATURE_HEADER", "ApiError", "Danbao", "verify_signature"]

M = TypeVar("M", bound=BaseModel)


class ApiError(Exception):
    def __init__(self, status: int, code: str, detail: str, field: str | None = None):
        super().__init__(f"{status} {code}: {detail}")
        self.status, self.code, self.detail, self.field = status, code, detail, field


class Danbao:
    def __init__(
        self,
        base_url: str,
        key: str | None = None,
        *,
        timeout: float = 10.0,
        retries: int = RETRIES_MAX,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._http = httpx.Client(base_url=base_url, headers=headers, timeout=timeout, transport=transport)
        self._retries = min(max(retries, 0), 10)
        self._sleep = sleep  # how the client waits before a retry

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Danbao:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ---------------------------------------------------------------------

    def request(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None, idempotency_key: str | None = None) -> Any:
        headers = {}
        if method == "POST":
            headers["Idempotency-Key"] = idempotency_key or uuid.uuid4().hex
        for attempt in range(self._retries + 1):
            wait = RETRY_BACKOFF_SECONDS * 2**attempt
            try:
                response = self._http.request(method, path, json=json, params=params, headers=headers)
            except httpx.TransportError:
                if attempt == self._retries:
                    raise
            else:
                if not _worth_retrying(response) or attempt == self._retries:
                    break
                wait = _retry_after(response, wait)
            self._sleep(wait)
        if response.status_code >= 400:
            body = response.json() if response.headers.get("content-type", "").endswith("json") else {}
            raise ApiError(response.status_code, body.get("code", "error"), body.get("detail", response.text), body.get("field"))
        return response.json()

    def _post(self, model: type[M], path: str, body: Any = None, **kw: Any) -> M:
        return model.model_validate(self.request("POST", path, json=body if body is not None else {}, **kw))

    def _get(self, model: type[M], path: str, **params: Any) -> M:
        return model.model_validate(self.request("GET", path, params={k: v for k, v in params.items() if v is not None}))

    # -- parties and keys -------------------------------------------------------------

    def create_party(self, role: str, name: str, *, id: str | None = None, cash_limit: int | None = None) -> PartyOut:
        body = {"role": role, "name": name, **({"id": id} if id else {}), **({"cash_limit": cash_limit} if cash_limit is not None else {})}
        return self._post(PartyOut, "/v1/parties", body)

    def issue_key(self, party_id: str) -> KeyOut:
        return self._post(KeyOut, f"/v1/parties/{party_id}/keys")

    def revoke_key(self, key_id: str) -> KeyOut:
        return self._post(KeyOut, f"/v1/keys/{key_id}/revoke")

    def rotate_key(self, key_id: str) -> KeyOut:
        return self._post(KeyOut, f"/v1/keys/{key_id}/rotate")

    # -- money ------------------------------------------------------------------------

    def accounts(self) -> list[AccountOut]:
        return [AccountOut.model_validate(a) for a in self.request("GET", "/v1/accounts")["data"]]

    def balance_at(self, account_id: str, at: int) -> BalanceOut:
        """The account's totals just after its last entry at or before `at` (ns since the epoch)."""
        return self._get(BalanceOut, f"/v1/accounts/{account_id}/balance", at=at)

    def top_up(self, amount: int, currency: str) -> MoveOut:
        return self._post(MoveOut, "/v1/wallet/top-up", {"amount": amount, "currency": currency})

    def withdraw(self, amount: int, currency: str) -> MoveOut:
        return self._post(MoveOut, "/v1/wallet/withdraw", {"amount": amount, "currency": currency})

    def transfer(self, to_party_id: str, amount: int, currency: str) -> MoveOut:
        return self._post(MoveOut, "/v1/transfers", {"to_party_id": to_party_id, "amount": amount, "currency": currency})

    def deposit(self, amount: int, currency: str) -> MoveOut:
        return self._post(MoveOut, "/v1/deposit", {"amount": amount, "currency": currency})

    def fund_insurance(self, amount: int, currency: str) -> MoveOut:
        return self._post(MoveOut, "/v1/insurance/fund", {"amount": amount, "currency": currency})

    # -- trades -----------------------------------------------------------------------

    def create_trade(self, *, seller_id: str, model: str, amount: int, currency: str, items: list[dict[str, Any]] | None = None, idempotency_key: str | None = None) -> TradeOut:
        body = {"seller_id": seller_id, "model": model, "amount": amount, "currency": currency, "items": items or []}
        return self._post(TradeOut, "/v1/trades", body, idempotency_key=idempotency_key)

    def trade(self, trade_id: str) -> TradeOut:
        return self._get(TradeOut, f"/v1/trades/{trade_id}")

    def act(self, trade_id: str, operation: str, *, idempotency_key: str | None = None, **body: Any) -> TradeOut:
        """Any trade operation by its path name: pay, ship, confirm, request-refund, ..."""
        return self._post(TradeOut, f"/v1/trades/{trade_id}/{operation}", body, idempotency_key=idempotency_key)

    def pay(self, trade_id: str, **kw: Any) -> TradeOut:
        return self.act(trade_id, "pay", **kw)

    def ship(self, trade_id: str, courier_id: str | None = None) -> TradeOut:
        return self.act(trade_id, "ship", **({"courier_id": courier_id} if courier_id else {}))

    def confirm(self, trade_id: str) -> TradeOut:
        return self.act(trade_id, "confirm")

    def request_refund(self, trade_id: str, amount: int) -> TradeOut:
        return self.act(trade_id, "request-refund", amount=amount)

    def trade_events(self, trade_id: str) -> list[EventOut]:
        return [EventOut.model_validate(e) for e in self.request("GET", f"/v1/trades/{trade_id}/events")["data"]]

    def events(self, after: str | None = None, limit: int = 100) -> tuple[list[EventOut], str | None]:
        page = self.request("GET", "/v1/events", params={"limit": limit, **({"after": after} if after else {})})
        return [EventOut.model_validate(e) for e in page["data"]], page["next_cursor"]

    def disputes(self, after: str | None = None, limit: int = 100) -> tuple[list[TradeOut], str | None]:
        """The trades waiting on an arbiter's decision, oldest first (arbiters and operators)."""
        page = self.request("GET", "/v1/disputes", params={"limit": limit, **({"after": after} if after else {})})
        return [TradeOut.model_validate(t) for t in page["data"]], page["next_cursor"]

    # -- webhooks and operations ------------------------------------------------------

    def register_webhook(self, url: str, event_types: list[str]) -> WebhookEndpointOut:
        return self._post(WebhookEndpointOut, "/v1/webhook-endpoints", {"url": url, "event_types": event_types})

    def rotate_webhook_secret(self, endpoint_id: str, overlap_seconds: int | None = None) -> WebhookEndpointOut:
        """A new signing secret (in `.secret`, shown once); the replaced one signs too until
        `.previous_secret_until` (a day unless `overlap_seconds` says otherwise)."""
        body = {} if overlap_seconds is None else {"overlap_seconds": overlap_seconds}
        return self._post(WebhookEndpointOut, f"/v1/webhook-endpoints/{endpoint_id}/rotate-secret", body)

    def disable_webhook(self, endpoint_id: str) -> WebhookEndpointOut:
        return self._post(WebhookEndpointOut, f"/v1/webhook-endpoints/{endpoint_id}/disable")

    def webhooks(self, after: str | None = None, limit: int = 100) -> tuple[list[WebhookEndpointOut], str | None]:
        page = self.request("GET", "/v1/webhook-endpoints", params={"limit": limit, **({"after": after} if after else {})})
        return [WebhookEndpointOut.model_validate(e) for e in page["data"]], page["next_cursor"]

    def deliveries(self, endpoint_id: str, after: str | None = None, limit: int = 100) -> tuple[list[DeliveryOut], str | None]:
        page = self.request("GET", f"/v1/webhook-endpoints/{endpoint_id}/deliveries", params={"limit": limit, **({"after": after} if after else {})})
        return [DeliveryOut.model_validate(d) for d in page["data"]], page["next_cursor"]

    def audit(self, anchor: str | None = None) -> AuditOut:
        """The operator's audit; `anchor` is the `head` of an earlier one (see /v1/audit)."""
        return self._get(AuditOut, "/v1/audit", anchor=anchor)


def _retry_after(response: httpx.Response, backoff: float) -> float:
    """The wait a 503 asks for in whole seconds (RFC 9110 10.2.3), within a bound; the
    backoff when it asks for none, or in a form this client does not read (a date)."""
    asked = response.headers.get("retry-after", "")
    if response.status_code != 503 or not asked.isascii() or not asked.isdigit():
        return backoff
    return min(max(float(asked), backoff), RETRY_AFTER_SECONDS_MAX)


def _worth_retrying(response: httpx.Response) -> bool:
    """Answers that say "the same request again, a little later": 503 (the server's database
    is unavailable; nothing was stored under the key), and 409 idempotency_in_progress (an
    earlier attempt with this key, say one whose response the network lost, still runs:
    the retry will get its answer)."""
    if response.status_code == 503:
        return True
    if response.status_code == 409 and response.headers.get("content-type", "").endswith("json"):
        return bool(response.json().get("code") == "idempotency_in_progress")
    return False
