"""Errors as `application/problem+json` (RFC 9457): one table from stable code to HTTP status.

The codes are the ledger's and the trade engine's own; the API adds only what belongs to
HTTP (`ApiCode`: authentication, idempotency, malformed requests). A code the table does
not name is a 400: a refusal is the client's to fix unless the table says otherwise.
docs/api.md lists every code with its status (tests/api/test_codes.py holds it to this).
"""

from __future__ import annotations

import json
from enum import Enum
from typing import Any

from starlette.responses import Response

from danbao.errors import code_text
from danbao.ledger.results import Result
from danbao.store.errors import IntegrityViolation, StoreError, StoreUnavailable, TransientStoreError
from danbao.trade.errors import TradeCode

PROBLEM_JSON = "application/problem+json"

class ApiCode(str, Enum):
    """The codes only HTTP adds. Every other code an answer carries is the ledger's
    (`danbao.ledger.Result`), the trade engine's (`danbao.trade.TradeCode`), money's
    (`amount_invalid`, `currency_unknown`) or the store's (`store_*`)."""

    auth_required = "auth_required"  # no Authorization: Bearer <key>
    auth_invalid = "auth_invalid"  # a key unknown, wrong or revoked
    not_found = "not_found"  # no such route
    method_not_allowed = "method_not_allowed"
    account_not_found = "account_not_found"
    key_not_found = "key_not_found"
    endpoint_not_found = "endpoint_not_found"
    request_invalid = "request_invalid"  # a member or parameter the operation does not take, or of the wrong type
    body_invalid = "body_invalid"  # not strict JSON
    body_too_large = "body_too_large"
    media_type_unsupported = "media_type_unsupported"  # a body that is not application/json
    parameter_unknown = "parameter_unknown"
    parameter_repeated = "parameter_repeated"
    idempotency_key_invalid = "idempotency_key_invalid"
    idempotency_key_reused = "idempotency_key_reused"  # the same key with another request
    idempotency_in_progress = "idempotency_in_progress"  # the first request with the key still runs
    idempotency_response_lost = "idempotency_response_lost"  # it took effect; its answer was lost
    keys_limit = "keys_limit"
    endpoints_limit = "endpoints_limit"
    url_invalid = "url_invalid"
    url_not_public = "url_not_public"
    event_types_invalid = "event_types_invalid"
    audit_in_progress = "audit_in_progress"  # the server is already running an audit
    internal_error = "internal_error"  # a fault of ours, not the request's (the server logs it)


# Every code not named here is a 400: a refusal is the client's to fix.
_STATUSES: dict[Enum | str, int] = {
    ApiCode.auth_required: 401,
    ApiCode.auth_invalid: 401,
    TradeCode.role_forbidden: 403,
    TradeCode.trade_not_found: 404,
    TradeCode.party_not_found: 404,
    ApiCode.account_not_found: 404,
    ApiCode.endpoint_not_found: 404,
    ApiCode.key_not_found: 404,
    ApiCode.not_found: 404,
    ApiCode.method_not_allowed: 405,
    TradeCode.trade_state_invalid: 409,
    TradeCode.party_exists: 409,
    TradeCode.extension_used: 409,
    TradeCode.ship_window_open: 409,
    TradeCode.claim_window_closed: 409,
    TradeCode.deposit_locked: 409,
    ApiCode.idempotency_in_progress: 409,
    ApiCode.idempotency_response_lost: 409,
    ApiCode.audit_in_progress: 409,
    ApiCode.body_too_large: 413,
    ApiCode.media_type_unsupported: 415,
    ApiCode.idempotency_key_reused: 422,
    Result.insufficient_funds: 422,
    Result.exceeds_debits: 422,
    TradeCode.refund_exceeds_paid: 422,
    TradeCode.deposit_below_minimum: 422,
    TradeCode.seller_in_debt: 422,
    TradeCode.courier_cash_limit: 422,
    Result.overflow: 422,
    # The database, not the request: try again later (503), or a fault of ours (500). A
    # 5xx is never stored as an Idempotency-Key's answer, so a retry with the key runs.
    StoreUnavailable.code: 503,
    TransientStoreError.code: 503,
    StoreError.code: 500,
    IntegrityViolation.code: 500,
    ApiCode.internal_error: 500,
}
# Keyed by plain text: an error carries its code as text, whichever enum named it.
STATUS_BY_CODE: dict[str, int] = {code_text(code): status for code, status in _STATUSES.items()}

TITLES = {400: "Bad request", 401: "Unauthorized", 403: "Forbidden", 404: "Not found", 405: "Method not allowed", 409: "Conflict", 413: "Payload too large", 415: "Unsupported media type", 422: "Unprocessable", 500: "Internal error", 503: "Service unavailable"}


def status_of(code: str) -> int:
    return STATUS_BY_CODE.get(code, 400)


def problem_body(code: str | Enum, detail: str, *, field: str | None = None, status: int | None = None) -> tuple[int, dict[str, Any]]:
    code = code_text(code)
    status = status if status is not None else status_of(code)
    body: dict[str, Any] = {"type": f"https://danbao.dev/problems/{code}", "title": TITLES.get(status, "Error"), "status": status, "code": code, "detail": detail}
    if field is not None:
        body["field"] = field
    return status, body


RETRY_AFTER_SECONDS = 1  # what a 503 asks a client to wait before trying again


def problem(code: str | Enum, detail: str, *, field: str | None = None, status: int | None = None, headers: dict[str, str] | None = None) -> Response:
    status, body = problem_body(code, detail, field=field, status=status)
    if status == 503:
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS), **(headers or {})}
    elif status == 401:  # a 401 names the scheme to use (RFC 9110 15.5.2, RFC 6750 3)
        challenge = 'Bearer realm="danbao"' + (', error="invalid_token"' if body["code"] == ApiCode.auth_invalid.value else "")
        headers = {"WWW-Authenticate": challenge, **(headers or {})}
    return Response(json.dumps(body), status_code=status, media_type=PROBLEM_JSON, headers=headers)
