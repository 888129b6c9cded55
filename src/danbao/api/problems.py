"""Errors as `application/problem+json` (RFC 9457): one table from stable code to HTTP status.

The codes are the ledger's and the trade engine's own; the API adds only what belongs to
HTTP (authentication, idempotency, malformed requests). An unknown code is a 400: a
refusal is the client's to fix unless the table says otherwise.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import Response

PROBLEM_JSON = "application/problem+json"

STATUS_BY_CODE: dict[str, int] = {
    "auth_required": 401,
    "auth_invalid": 401,
    "role_forbidden": 403,
    "trade_not_found": 404,
    "party_not_found": 404,
    "account_not_found": 404,
    "endpoint_not_found": 404,
    "key_not_found": 404,
    "not_found": 404,
    "method_not_allowed": 405,
    "trade_state_invalid": 409,
    "party_exists": 409,
    "extension_used": 409,
    "ship_window_open": 409,
    "claim_window_closed": 409,
    "deposit_locked": 409,
    "idempotency_in_progress": 409,
    "idempotency_response_lost": 409,
    "body_too_large": 413,
    "media_type_unsupported": 415,
    "idempotency_key_reused": 422,
    "insufficient_funds": 422,
    "exceeds_debits": 422,
    "refund_exceeds_paid": 422,
    "deposit_below_minimum": 422,
    "seller_in_debt": 422,
    "courier_cash_limit": 422,
    "overflow": 422,
    # The database, not the request: try again later (503), or a fault of ours (500). A
    # 5xx is never stored as an Idempotency-Key's answer, so a retry with the key runs.
    "store_unavailable": 503,
    "store_busy": 503,
    "store_error": 500,
    "store_integrity": 500,
}

TITLES = {400: "Bad request", 401: "Unauthorized", 403: "Forbidden", 404: "Not found", 405: "Method not allowed", 409: "Conflict", 413: "Payload too large", 415: "Unsupported media type", 422: "Unprocessable", 500: "Internal error", 503: "Service unavailable"}


def status_of(code: str) -> int:
    return STATUS_BY_CODE.get(code, 400)


def problem_body(code: str, detail: str, *, field: str | None = None, status: int | None = None) -> tuple[int, dict[str, Any]]:
    status = status if status is not None else status_of(code)
    body: dict[str, Any] = {"type": f"https://danbao.dev/problems/{code}", "title": TITLES.get(status, "Error"), "status": status, "code": code, "detail": detail}
    if field is not None:
        body["field"] = field
    return status, body


RETRY_AFTER_SECONDS = 1  # what a 503 asks a client to wait before trying again


def problem(code: str, detail: str, *, field: str | None = None, status: int | None = None, headers: dict[str, str] | None = None) -> Response:
    status, body = problem_body(code, detail, field=field, status=status)
    if status == 503:
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS), **(headers or {})}
    elif status == 401:  # a 401 names the scheme to use (RFC 9110 15.5.2, RFC 6750 3)
        challenge = 'Bearer realm="danbao"' + (', error="invalid_token"' if code == "auth_invalid" else "")
        headers = {"WWW-Authenticate": challenge, **(headers or {})}
    return Response(json.dumps(body), status_code=status, media_type=PROBLEM_JSON, headers=headers)
