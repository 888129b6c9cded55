"""The Python client: a response lost on the network is retried with the same
Idempotency-Key, so the retry replays instead of doing it twice; refusals raise ApiError."""

from __future__ import annotations

import httpx
import pytest

from danbao.api.background import run_pass
from danbao.api.models import TradeOut, WebhookEndpointOut
from danbao.client import RETRY_AFTER_SECONDS_MAX, RETRY_BACKOFF_SECONDS, ApiError, Danbao
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


def _a_trade_closed_for_an_unreachable_receiver(live: Live) -> tuple[Danbao, WebhookEndpointOut, TradeOut]:
    """Ann's unpaid trade, closed by one background pass past its pay window; its
    trade.closed delivery attempted once, to a receiver that never answers."""
    ann = live.party("buyer", "ann")
    live.party("seller", "tea")
    hook = ann.register_webhook("http://127.0.0.1:9/unreachable", ["trade.closed"])
    t = ann.create_trade(seller_id="tea", model="escrow", amount=500, currency="CNY")
    live.clock.advance(31 * 60)  # past the pay window
    run_pass(live.services)
    return ann, hook, t


def test_the_servers_background_pass_runs_timeouts_and_webhooks(live: Live) -> None:
    ann, hook, t = _a_trade_closed_for_an_unreachable_receiver(live)
    assert ann.trade(t.id).status == "closed"
    [delivery] = ann.deliveries(hook.id)[0]
    assert (delivery.event_type, delivery.state, delivery.attempts) == ("trade.closed", "pending", 1)
    assert delivery.last_error and delivery.last_status_code is None


class Answers(httpx.MockTransport):
    """A server that answers from a script, recording the Idempotency-Key of each request
    (the client's decisions between answers are what is under test here)."""

    def __init__(self, *answers: httpx.Response):
        self.keys: list[str | None] = []
        script = list(answers)

        def answer(request: httpx.Request) -> httpx.Response:
            self.keys.append(request.headers.get("idempotency-key"))
            return script.pop(0)

        super().__init__(answer)


def unavailable(retry_after: str | None) -> httpx.Response:
    headers = {"Content-Type": "application/problem+json", **({"Retry-After": retry_after} if retry_after is not None else {})}
    return httpx.Response(503, headers=headers, json={"code": "store_unavailable", "detail": "the database is unavailable"})


CREATED = httpx.Response(201, json={"transfer_id": "m_1", "amount": 700, "currency": "CNY"})


@pytest.mark.parametrize(
    ("retry_after", "waits"),
    [
        ("2", [2.0, 2.0]),  # what the server asks
        ("3600", [RETRY_AFTER_SECONDS_MAX] * 2),  # within a bound
        (None, [RETRY_BACKOFF_SECONDS, 2 * RETRY_BACKOFF_SECONDS]),  # nothing asked: the backoff
        ("Wed, 21 Oct 2026 07:28:00 GMT", [RETRY_BACKOFF_SECONDS, 2 * RETRY_BACKOFF_SECONDS]),  # a date: not read
        ("0", [RETRY_BACKOFF_SECONDS, 2 * RETRY_BACKOFF_SECONDS]),  # never less than the backoff
    ],
)
def test_a_503_is_retried_after_the_wait_it_asks_for_with_the_same_key(retry_after: str | None, waits: list[float]) -> None:
    slept: list[float] = []
    transport = Answers(unavailable(retry_after), unavailable(retry_after), CREATED)
    with Danbao("http://danbao.test", "dbk_x", transport=transport, sleep=slept.append) as client:
        answer = client.request("POST", "/v1/wallet/top-up", json={"amount": 700, "currency": "CNY"})
    assert answer["amount"] == 700 and slept == waits
    assert len(transport.keys) == 3 and len(set(transport.keys)) == 1


def test_a_503_that_lasts_past_the_retries_is_raised_and_no_more_is_waited() -> None:
    slept: list[float] = []
    transport = Answers(*[unavailable("1")] * 3)
    with Danbao("http://danbao.test", "dbk_x", retries=2, transport=transport, sleep=slept.append) as client, pytest.raises(ApiError) as raised:
        client.request("POST", "/v1/wallet/top-up", json={"amount": 700, "currency": "CNY"})
    assert (raised.value.status, raised.value.code) == (503, "store_unavailable")
    assert slept == [1.0, 1.0] and len(transport.keys) == 3


def test_a_503_whose_retry_after_is_no_plain_number_waits_the_backoff() -> None:
    slept: list[float] = []
    superscript_two = "\u00b2".encode("latin-1")  # a digit to str.isdigit, not to float()
    odd = httpx.Response(503, headers=[(b"Content-Type", b"application/problem+json"), (b"Retry-After", superscript_two)], json={"code": "store_unavailable"})
    transport = Answers(odd, CREATED)
    with Danbao("http://danbao.test", "dbk_x", transport=transport, sleep=slept.append) as client:
        assert client.request("POST", "/v1/wallet/top-up", json={"amount": 700, "currency": "CNY"})["amount"] == 700
    assert slept == [RETRY_BACKOFF_SECONDS]


@pytest.mark.parametrize(("asked", "attempts"), [(1_000, 11), (-3, 1), (0, 1)])
def test_the_retries_a_client_makes_are_bounded(asked: int, attempts: int) -> None:
    transport = Answers(*[unavailable(None)] * 12)
    with Danbao("http://danbao.test", "dbk_x", retries=asked, transport=transport, sleep=lambda _: None) as client, pytest.raises(ApiError):
        client.request("POST", "/v1/wallet/top-up", json={"amount": 700, "currency": "CNY"})
    assert len(transport.keys) == attempts


def test_a_network_that_stays_down_raises_its_error_after_the_retries() -> None:
    tried: list[httpx.Request] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        tried.append(request)
        raise httpx.ConnectError("connection refused", request=request)

    slept: list[float] = []
    with Danbao("http://danbao.test", "dbk_x", retries=2, transport=httpx.MockTransport(refuse), sleep=slept.append) as client, pytest.raises(httpx.ConnectError):
        client.request("POST", "/v1/wallet/top-up", json={"amount": 700, "currency": "CNY"})
    assert len(tried) == 3 and slept == [RETRY_BACKOFF_SECONDS, 2 * RETRY_BACKOFF_SECONDS]


def test_only_posts_carry_an_idempotency_key_and_a_400_is_a_refusal() -> None:
    refused = httpx.Response(400, headers={"Content-Type": "application/problem+json"}, json={"code": "request_invalid", "detail": "no", "field": "limit"})
    transport = Answers(httpx.Response(200, json={"data": []}), refused)
    with Danbao("http://danbao.test", "dbk_x", transport=transport) as client:
        assert client.accounts() == []
        with pytest.raises(ApiError) as raised:
            client.request("GET", "/v1/events", params={"limit": 0})
    assert (raised.value.status, raised.value.code, raised.value.field) == (400, "request_invalid", "limit")
    assert transport.keys == [None, None]


def test_a_conflict_other_than_one_still_running_is_raised_at_once() -> None:
    state = httpx.Response(409, headers={"Content-Type": "application/problem+json"}, json={"code": "trade_state_invalid", "detail": "paid already"})
    plain = httpx.Response(409, headers={"Content-Type": "text/plain"}, text="conflict")
    for answer, code in [(state, "trade_state_invalid"), (plain, "error")]:
        transport = Answers(answer)
        with Danbao("http://danbao.test", "dbk_x", transport=transport, sleep=lambda _: None) as client, pytest.raises(ApiError) as raised:
            client.request("POST", "/v1/trades/t_1/pay")
        assert (raised.value.status, raised.value.code, len(transport.keys)) == (409, code, 1)


def test_a_retry_of_one_still_running_waits_the_backoff_whatever_retry_after_says() -> None:
    running = httpx.Response(409, headers={"Content-Type": "application/problem+json", "Retry-After": "5"}, json={"code": "idempotency_in_progress"})
    slept: list[float] = []
    with Danbao("http://danbao.test", "dbk_x", transport=Answers(running, CREATED), sleep=slept.append) as client:
        assert client.request("POST", "/v1/wallet/top-up", json={"amount": 700, "currency": "CNY"})["amount"] == 700
    assert slept == [RETRY_BACKOFF_SECONDS]


def test_zero_is_sent_as_a_setting_and_none_is_left_out(live: Live) -> None:
    assert live.admin.create_party("courier", "Kim", id="kim", cash_limit=0).cash_limit == 0
    ann = live.party("buyer", "ann")
    hook = ann.register_webhook("https://93.184.216.34/in", ["trade.paid"])
    assert ann.rotate_webhook_secret(hook.id, overlap_seconds=0).previous_secret_until is None
    assert live.admin.audit(anchor=None).ok  # an empty anchor would be refused


def test_the_metrics_count_webhook_attempts_apart_from_deliveries(live: Live) -> None:
    _a_trade_closed_for_an_unreachable_receiver(live)
    live.clock.advance(60)  # past the first backoff
    run_pass(live.services)
    metrics = httpx.get(f"{live.url}/metrics").text
    assert 'danbao_webhook_deliveries{state="pending"} 1.0' in metrics
    assert 'danbao_webhook_delivery_attempts_total{state="pending"} 2.0' in metrics
