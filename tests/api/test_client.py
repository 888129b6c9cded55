"""The Python client: a response lost on the network is retried with the same
Idempotency-Key, so the retry replays instead of doing it twice; refusals raise ApiError."""

from __future__ import annotations

import httpx
import pytest

from danbao.api.background import run_pass
from danbao.client import ApiError, Danbao
from tests.api.conftest import Live


class LosesFirstResponse(httpx.HTTPTransport):
    """Sends every request, but drops the first response as a broken network would."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        response = super().handle_request(request)
        if len(self.sent) == 1:
            response.read()
            raise httpx.ReadError("connection reset while reading the response", request=request)
        return response


def test_a_lost_response_is_retried_with_the_same_key_and_charges_once(live: Live) -> None:
    live.party("buyer", "ann")
    key = live.admin.issue_key("ann").key
    transport = LosesFirstResponse()
    with Danbao(live.url, key, transport=transport) as ann:
        moved = ann.top_up(700, "CNY")
    assert moved.amount == 700 and len(transport.sent) == 2
    assert transport.sent[0].headers["idempotency-key"] == transport.sent[1].headers["idempotency-key"]
    assert live.services.ledger.account("ann.wallet.CNY").balance == 700  # type: ignore[union-attr]


class FirstAttemptEndsAfterOneConflict(httpx.HTTPTransport):
    """Lets the request through; when the server answers 409 because an earlier attempt
    with the key is still running, that attempt ends (its claim is released), as it would
    a moment later on a real server."""

    def __init__(self, end_first_attempt) -> None:  # type: ignore[no-untyped-def]
        super().__init__()
        self.end_first_attempt = end_first_attempt
        self.statuses: list[int] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        self.statuses.append(response.status_code)
        if response.status_code == 409:
            self.end_first_attempt()
        return response


def test_a_retry_that_finds_the_first_attempt_still_running_waits_for_it(live: Live) -> None:
    import hashlib

    live.party("buyer", "ann")
    key = live.admin.issue_key("ann").key
    body = b'{"amount":700,"currency":"CNY"}'
    digest = hashlib.sha256(b"POST\n/v1/wallet/top-up\n" + body).hexdigest()
    first = live.services.idempotency.claim("ann", "k-lost", digest)  # an attempt whose response was lost, still running
    transport = FirstAttemptEndsAfterOneConflict(lambda: live.services.idempotency.release(first))
    with Danbao(live.url, key, transport=transport) as ann:
        moved = ann.request("POST", "/v1/wallet/top-up", json={"amount": 700, "currency": "CNY"}, idempotency_key="k-lost")
    assert transport.statuses == [409, 201] and moved["amount"] == 700
    assert live.services.ledger.account("ann.wallet.CNY").balance == 700  # type: ignore[union-attr]


def test_refusals_raise_api_errors_with_the_servers_code(live: Live) -> None:
    ann = live.party("buyer", "ann")
    with pytest.raises(ApiError) as e:
        ann.withdraw(1, "CNY")
    assert (e.value.status, e.value.code) == (422, "insufficient_funds")
    with pytest.raises(ApiError) as e:
        ann.trade("t_nope")
    assert (e.value.status, e.value.code, e.value.field) == (404, "trade_not_found", "trade_id")


def test_the_servers_background_pass_runs_timeouts_and_webhooks(live: Live) -> None:
    ann = live.party("buyer", "ann")
    live.party("seller", "tea")
    hook = ann.register_webhook("http://127.0.0.1:9/unreachable", ["trade.closed"])
    t = ann.create_trade(seller_id="tea", model="escrow", amount=500, currency="CNY")
    live.clock.advance(31 * 60)  # past the pay window
    run_pass(live.services)
    assert ann.trade(t.id).status == "closed"
    [delivery] = ann.deliveries(hook.id)[0]
    assert (delivery.event_type, delivery.state, delivery.attempts) == ("trade.closed", "pending", 1)
    assert delivery.last_error and delivery.last_status_code is None
