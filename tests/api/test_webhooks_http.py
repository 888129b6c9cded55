"""Webhooks over real HTTP: signed, retried with backoff through failure and timeout until the
receiver succeeds, recorded where the party can list them, never slowing the API."""

from __future__ import annotations

import dataclasses
import json
import queue
import socket
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from danbao.api import webhooks
from danbao.api.models import DeliveryOut
from danbao.api.signature import SECRET_OVERLAP_SECONDS_DEFAULT, SECRET_OVERLAP_SECONDS_MAX
from danbao.api.webhooks import (
    ATTEMPTS_MAX,
    CLAIM_SECONDS,
    ENDPOINTS_PER_PARTY_MAX,
    OVERSEER_ENDPOINTS_MAX,
    RETRY_BACKOFF_BASE_SECONDS,
    RETRY_BACKOFF_MAX_SECONDS,
)
from danbao.client import SIGNATURE_HEADER, ApiError, Danbao, verify_signature
from danbao.clock import NS_PER_SECOND
from danbao.errors import InvariantViolation
from tests.api.conftest import Live, disputed

CUR = "CNY"


class Receiver:
    """A webhook receiver that answers from a script: a status code, or "hang"."""

    def __init__(self, script: list[int | str]):
        self.script = list(script)
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.release = threading.Event()
        self.hanging = threading.Event()
        receiver = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append((dict(self.headers), body))
                answer = receiver.script.pop(0) if receiver.script else 200
                if answer == "hang":
                    receiver.hanging.set()
                    receiver.release.wait(10)  # until the test lets go; the sender has long timed out
                    answer = 200
                try:
                    self.send_response(int(answer))
                    if 300 <= int(answer) < 400:
                        self.send_header("Location", "/elsewhere")  # a redirect a client could follow
                    self.end_headers()
                except OSError:
                    pass  # the sender gave up on us

        self._stack = ExitStack()
        self.url = self._stack.enter_context(serving(Handler))
        self.port = httpx.URL(self.url).port

    def close(self) -> None:
        self.release.set()
        self._stack.close()


class QuietHandler(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass  # the tests' receivers keep their logs to themselves


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """A receiver on a loopback port, answering with `handler`; yields its URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()


def one_delivery_to(live: Live, handler: type[BaseHTTPRequestHandler]) -> DeliveryOut:
    """ann's trade.created, delivered in one pass to a receiver answering with `handler`."""
    with serving(handler) as url:
        ann = live.party("buyer", "ann")
        live.party("seller", "tea")
        hook = ann.register_webhook(url, ["trade.created"])
        ann.create_trade(seller_id="tea", model="escrow", amount=300, currency=CUR)
        assert live.services.webhooks.run_once() == (1, 1)
        [delivery] = ann.deliveries(hook.id)[0]
        return delivery


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver([500, "hang", 200])
    yield r
    r.close()


def test_a_failing_then_hanging_receiver_gets_the_event_in_the_end(live: Live, receiver: Receiver) -> None:
    ann, tea = live.party("buyer", "ann"), live.party("seller", "tea")
    endpoint = ann.register_webhook(receiver.url, ["trade.paid"])
    assert endpoint.secret and endpoint.secret.startswith("whsec_")
    ann.top_up(500, CUR)
    t = ann.create_trade(seller_id="tea", model="escrow", amount=300, currency=CUR)
    ann.pay(t.id)
    tea.ship(t.id)
    hooks = live.services.webhooks
    assert hooks.dispatch() == 1  # one subscribed event (trade.paid) for one endpoint
    assert hooks.dispatch() == 0  # dispatched once only
    assert hooks.deliver_due() == 1  # -> 500
    assert hooks.deliver_due() == 0  # not due again until the backoff passes
    live.clock.advance(5)
    assert hooks.deliver_due() == 1  # -> hangs past the sender's timeout
    receiver.release.set()
    live.clock.advance(9)
    assert hooks.deliver_due() == 0
    live.clock.advance(1)
    assert hooks.deliver_due() == 1  # -> 200
    [delivery] = ann.deliveries(endpoint.id)[0]
    assert (delivery.state, delivery.attempts, delivery.last_status_code, delivery.event_type) == ("delivered", 3, 200, "trade.paid")
    assert len(receiver.received) == 3
    for headers, body in receiver.received:
        now = live.clock.now_ns() // NS_PER_SECOND
        assert verify_signature(endpoint.secret, headers[SIGNATURE_HEADER], body, now_seconds=now)
        assert not verify_signature(endpoint.secret, headers[SIGNATURE_HEADER], body + b" ", now_seconds=now)
        assert not verify_signature(endpoint.secret, headers[SIGNATURE_HEADER], body, now_seconds=now + 3600)  # a replay
        event = json.loads(body)
        assert (event["type"], event["data"]["trade_id"], event["data"]["status"]) == ("trade.paid", t.id, "paid")
    events, _ = ann.events()
    assert [e.id for e in events if e.type == "trade.paid"] == [json.loads(receiver.received[0][1])["id"]]
    metrics = httpx.get(f"{live.url}/metrics").text  # the operator sees deliveries by state
    assert 'danbao_webhook_deliveries{state="delivered"} 1.0' in metrics
    assert 'danbao_webhook_delivery_attempts_total{state="delivered"} 3.0' in metrics


def test_only_a_2xx_answer_delivers_a_redirect_is_tried_again_not_followed(live: Live) -> None:
    receiver = Receiver([302, 300, 200])
    try:
        ann, _ = live.party("buyer", "ann"), live.party("seller", "tea")
        endpoint = ann.register_webhook(receiver.url, ["trade.created"])
        ann.create_trade(seller_id="tea", model="escrow", amount=300, currency=CUR)
        hooks = live.services.webhooks
        hooks.dispatch()
        for status, wait in ((302, 5), (300, 10)):
            assert hooks.deliver_due() == 1
            [delivery] = live.services.webhooks.deliveries("ann", endpoint.id)
            assert (delivery.state, delivery.last_status_code) == ("pending", status)
            live.clock.advance(wait)
        assert hooks.deliver_due() == 1
        [delivery] = live.services.webhooks.deliveries("ann", endpoint.id)
        assert (delivery.state, delivery.attempts, delivery.last_status_code) == ("delivered", 3, 200)
        assert len(receiver.received) == 3  # to the endpoint each time, never to a Location
    finally:
        receiver.close()


def test_a_receiver_that_always_fails_is_given_up_on_after_a_bounded_number_of_attempts(live: Live) -> None:
    receiver = Receiver([500] * ATTEMPTS_MAX)
    try:
        ann = live.party("buyer", "ann")
        live.party("seller", "tea")
        endpoint = ann.register_webhook(receiver.url, ["trade.created"])
        ann.create_trade(seller_id="tea", model="escrow", amount=300, currency=CUR)
        hooks = live.services.webhooks
        assert hooks.dispatch() == 1
        waited = 0
        for attempt in range(1, ATTEMPTS_MAX + 1):
            assert hooks.deliver_due() == 1, f"attempt {attempt} was due"
            backoff = min(RETRY_BACKOFF_MAX_SECONDS, RETRY_BACKOFF_BASE_SECONDS * 2 ** (attempt - 1))
            live.clock.advance(backoff - 1)
            assert hooks.deliver_due() == 0, "not before its backoff"  # exponential, capped
            live.clock.advance(1)
            waited += backoff
        assert hooks.deliver_due() == 0  # given up: no attempt after the last
        live.clock.advance(RETRY_BACKOFF_MAX_SECONDS * 10)
        assert hooks.deliver_due() == 0
        [delivery] = ann.deliveries(endpoint.id)[0]
        assert (delivery.state, delivery.attempts, delivery.last_status_code) == ("failed", ATTEMPTS_MAX, 500)
        assert len(receiver.received) == ATTEMPTS_MAX
        assert waited < 2 * 24 * 3600  # the whole retry span is bounded, here under two days
    finally:
        receiver.close()


def test_a_receivers_answer_body_is_never_read(live: Live) -> None:
    body_bytes = 64 * 1024 * 1024
    sent: queue.Queue[int] = queue.Queue()  # what the receiver wrote, once it has stopped

    class Flooding(QuietHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Length", str(body_bytes))
            self.end_headers()
            chunk, written = b"x" * 65536, 0
            try:
                while written < body_bytes:
                    self.wfile.write(chunk)
                    written += len(chunk)
            except OSError:
                pass  # the sender hung up, as it should
            sent.put(written)

    delivery = one_delivery_to(live, Flooding)
    assert (delivery.state, delivery.last_status_code) == ("delivered", 200)
    written = sent.get(timeout=60)  # the receiver stops at its next write after the hang-up
    assert written < body_bytes  # the sender closed the connection after the status line


def test_a_hanging_receiver_never_slows_the_api(live: Live) -> None:
    receiver = Receiver(["hang"])
    try:
        ann = live.party("buyer", "ann")
        live.party("seller", "tea")
        ann.register_webhook(receiver.url, ["*"])
        t = ann.create_trade(seller_id="tea", model="escrow", amount=300, currency=CUR)
        live.services.webhooks.dispatch()
        delivering = threading.Thread(target=live.services.webhooks.deliver_due)
        delivering.start()
        assert receiver.hanging.wait(10)
        # The receiver is stuck; the API still answers.
        ann.top_up(500, CUR)
        assert ann.pay(t.id).status == "paid"
        assert not receiver.release.is_set()
        receiver.release.set()
        delivering.join()
    finally:
        receiver.close()


def test_only_the_trades_parties_get_its_events_and_only_the_types_they_chose(live: Live) -> None:
    receiver = Receiver([])
    try:
        ann, tea, bob = live.party("buyer", "ann"), live.party("seller", "tea"), live.party("buyer", "bob")
        ann_hook = ann.register_webhook(receiver.url, ["trade.completed"])
        tea_hook = tea.register_webhook(receiver.url, ["*"])
        bob_hook = bob.register_webhook(receiver.url, ["*"])
        ann.top_up(500, CUR)
        t = ann.create_trade(seller_id="tea", model="escrow", amount=300, currency=CUR)
        ann.pay(t.id)
        tea.ship(t.id)
        ann.confirm(t.id)
        live.services.webhooks.run_once()
        assert [d.event_type for d in ann.deliveries(ann_hook.id)[0]] == ["trade.completed"]
        assert [d.event_type for d in tea.deliveries(tea_hook.id)[0]] == ["trade.created", "trade.paid", "trade.shipped", "trade.completed"]
        assert bob.deliveries(bob_hook.id)[0] == []
        for bad in (["trade.exploded"], []):
            with pytest.raises(Exception) as e:
                ann.register_webhook(receiver.url, bad)
            assert getattr(e.value, "status", None) == 400
            # The service holds the rule too, for callers that are not the HTTP API.
            with pytest.raises(webhooks.WebhookError) as refused:
                live.services.webhooks.register("ann", receiver.url, bad)
            assert refused.value.code == "event_types_invalid"
        assert [e.id for e in ann.webhooks()[0]] == [ann_hook.id]
    finally:
        receiver.close()


def test_arbiters_and_operators_get_the_events_that_put_a_trade_before_an_arbiter_or_take_it_away(live: Live) -> None:
    receiver = Receiver([])
    try:
        ann, tea = live.party("buyer", "ann"), live.party("seller", "tea")
        judge, other_judge = live.party("arbiter", "judge"), live.party("arbiter", "judy")
        judge_hook = judge.register_webhook(receiver.url, ["*"])
        judy_hook = other_judge.register_webhook(receiver.url, ["trade.disputed"])
        gone = other_judge.register_webhook(receiver.url, ["*"])
        other_judge.disable_webhook(gone.id)
        admin_hook = live.admin.register_webhook(receiver.url, ["trade.refunded", "trade.paid"])
        ann.top_up(500, CUR)
        t = disputed(ann, tea, "tea", 300, CUR)
        judge.act(t.id, "arbitrate", decision="refund_full")
        live.services.webhooks.run_once()
        assert [d.event_type for d in judge.deliveries(judge_hook.id)[0]] == ["trade.disputed", "trade.refunded"]
        assert [d.event_type for d in other_judge.deliveries(judy_hook.id)[0]] == ["trade.disputed"]
        assert other_judge.deliveries(gone.id)[0] == []
        # The operator chose trade.paid too, but a payment is the trade's parties' business.
        assert [d.event_type for d in live.admin.deliveries(admin_hook.id)[0]] == ["trade.refunded"]
        for overseer in (judge, other_judge, live.admin):
            assert [(e.from_status, e.to_status) for e in overseer.events()[0]] == [("refund_refused", "disputed"), ("disputed", "refunded")]
    finally:
        receiver.close()


def test_deliveries_are_listed_in_pages_oldest_first(live: Live) -> None:
    ann, tea = live.party("buyer", "ann"), live.party("seller", "tea")
    hook = tea.register_webhook("http://127.0.0.1:9/never-called", ["*"])
    ann.top_up(500, CUR)
    t = ann.create_trade(seller_id="tea", model="escrow", amount=300, currency=CUR)
    ann.pay(t.id)
    tea.ship(t.id)
    ann.confirm(t.id)
    assert live.services.webhooks.dispatch() == 4  # recorded as pending; none attempted
    everything, last = tea.deliveries(hook.id)
    assert len(everything) == 4 and last is None
    first, after = tea.deliveries(hook.id, limit=3)
    assert [d.id for d in first] == [d.id for d in everything[:3]] and after is not None
    rest, end = tea.deliveries(hook.id, after=after, limit=3)
    assert [d.id for d in rest] == [everything[3].id] and end is None
    # Made by one dispatch at one instant, they are still listed in the events' order.
    assert [d.event_type for d in everything] == ["trade.created", "trade.paid", "trade.shipped", "trade.completed"]


def test_a_party_that_replaced_many_endpoints_still_reaches_its_newest(live: Live) -> None:
    ann = live.party("buyer", "ann")
    for n in range(70):  # more than any fixed window over the party's endpoints would show
        ann.disable_webhook(ann.register_webhook(f"http://127.0.0.1:9/old{n}", ["*"]).id)
        live.clock.advance(1)
    newest = ann.register_webhook("http://127.0.0.1:9/new", ["*"])
    first, after = ann.webhooks(limit=50)
    assert len(first) == 50 and after is not None
    rest, end = ann.webhooks(after=after, limit=50)
    assert len(rest) == 21 and end is None
    assert rest[-1].id == newest.id and rest[-1].disabled_at is None
    assert len({e.id for e in first + rest}) == 71
    assert ann.deliveries(newest.id) == ([], None)
    disabled = ann.disable_webhook(newest.id)
    assert disabled.disabled_at is not None
    # The signing secret is shown once, when made: never in a listing nor by a disable.
    assert newest.secret and disabled.secret is None and all(e.secret is None for e in first + rest)


def test_a_party_has_a_bounded_number_of_active_endpoints(live: Live) -> None:
    ann = live.party("buyer", "ann")
    active = {ann.register_webhook(f"http://127.0.0.1:9/e{n}", ["*"]).id for n in range(ENDPOINTS_PER_PARTY_MAX)}
    try:
        ann.register_webhook("http://127.0.0.1:9/one-more", ["*"])
        raise AssertionError("an endpoint past the bound was registered")
    except ApiError as error:
        assert (error.status, error.code) == (400, "endpoints_limit")
    listed, _ = ann.webhooks()
    assert {e.id for e in listed} == active
    # A disabled endpoint frees its place.
    ann.disable_webhook(sorted(active)[0])
    newest = ann.register_webhook("http://127.0.0.1:9/one-more", ["*"])
    listed, _ = ann.webhooks()
    assert len(listed) == ENDPOINTS_PER_PARTY_MAX + 1
    assert sum(e.disabled_at is None for e in listed) == ENDPOINTS_PER_PARTY_MAX and newest.id in {e.id for e in listed}


@pytest.mark.parametrize("url", ["http://hooks.example/\udcff", "http://hooks.example/a\u2028b", "http://hooks.example/a\x7fb"])
def test_the_service_refuses_a_url_with_what_no_url_holds(live: Live, url: str) -> None:
    # Over HTTP the strict JSON decoder already refuses a lone surrogate; other callers reach the service.
    live.party("buyer", "ann")
    with pytest.raises(webhooks.WebhookError) as refused:
        live.services.webhooks.register("ann", url, ["*"])
    assert (refused.value.code, refused.value.field) == ("url_invalid", "url")


def test_arbiters_and_operators_together_have_a_bounded_number_of_active_endpoints(live: Live) -> None:
    """Each event before an arbiter goes to every arbiter's and operator's endpoint, so
    their number bounds one event's deliveries."""
    judges = [live.party("arbiter", f"judge{n}") for n in range(OVERSEER_ENDPOINTS_MAX // ENDPOINTS_PER_PARTY_MAX)]
    hooks = [judge.register_webhook(f"http://127.0.0.1:9/j{n}", ["*"]) for judge in judges for n in range(ENDPOINTS_PER_PARTY_MAX)]
    for overseer in (live.party("arbiter", "newcomer"), live.admin):
        with pytest.raises(ApiError) as refused:
            overseer.register_webhook("http://127.0.0.1:9/one-more", ["*"])
        assert (refused.value.status, refused.value.code) == (400, "endpoints_limit")
        assert overseer.webhooks() == ([], None)
    # A buyer's or a seller's endpoints are not counted with theirs.
    assert live.party("buyer", "ann").register_webhook("http://127.0.0.1:9/ann", ["*"]).disabled_at is None
    # A disabled endpoint frees its place.
    judges[0].disable_webhook(hooks[0].id)
    assert live.admin.register_webhook("http://127.0.0.1:9/admin", ["*"]).disabled_at is None


def test_a_dispatch_writes_a_bounded_number_of_deliveries_and_leaves_the_next_events_to_the_next(live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    ann, tea = live.party("buyer", "ann"), live.party("seller", "tea")
    hooks = [tea.register_webhook(f"http://127.0.0.1:9/t{n}", ["*"]) for n in range(2)]
    ann.top_up(500, CUR)
    t = ann.create_trade(seller_id="tea", model="escrow", amount=300, currency=CUR)
    ann.pay(t.id)
    tea.ship(t.id)
    ann.confirm(t.id)
    # Two deliveries an event: a dispatch of at most 4 takes two events, which fill it exactly.
    monkeypatch.setattr(webhooks, "DELIVERIES_PER_DISPATCH_MAX", 4)
    dispatched = []
    for _ in range(3):
        dispatched.append(live.services.webhooks.dispatch())
        live.clock.advance(1)  # deliveries list by when they were made
    assert dispatched == [4, 4, 0]
    for hook in hooks:
        assert [d.event_type for d in tea.deliveries(hook.id)[0]] == ["trade.created", "trade.paid", "trade.shipped", "trade.completed"]


def test_a_webhook_list_refuses_a_cursor_it_did_not_issue(live: Live) -> None:
    ann = live.party("buyer", "ann")
    hook = ann.register_webhook("http://127.0.0.1:9/x", ["*"])
    for path in ("/v1/webhook-endpoints", f"/v1/webhook-endpoints/{hook.id}/deliveries"):
        for after, code in (("garbage", "cursor_invalid"), ("99999999999999999999:x", "cursor_invalid")):
            with pytest.raises(ApiError) as refused:
                ann.request("GET", path, params={"after": after})
            assert (refused.value.status, refused.value.code) == (400, code), (path, after)
        with pytest.raises(ApiError) as too_many:
            ann.request("GET", path, params={"limit": 1001})
        assert too_many.value.status == 400
    with pytest.raises(ApiError) as other:
        live.party("buyer", "bob").deliveries(hook.id)
    assert (other.value.status, other.value.code) == (404, "endpoint_not_found")


@contextmanager
def a_delivery_due(live: Live, script: list[int | str]) -> Iterator[tuple[Danbao, str, Receiver]]:
    """ann's trade.created delivery, dispatched and due, to a receiver answering `script`.
    Yields ann, the endpoint id and the receiver."""
    receiver = Receiver(script)
    try:
        ann = live.party("buyer", "ann")
        live.party("seller", "tea")
        hook = ann.register_webhook(receiver.url, ["trade.created"])
        ann.create_trade(seller_id="tea", model="escrow", amount=300, currency=CUR)
        assert live.services.webhooks.dispatch() == 1
        yield ann, hook.id, receiver
    finally:
        receiver.close()


@contextmanager
def a_delivery_in_flight(live: Live) -> Iterator[tuple[Danbao, str, Receiver, threading.Thread]]:
    """ann's trade.created delivery, attempted by a pass on another thread and held there by
    a receiver that hangs (the sender times out on it). Yields ann, the endpoint id, the
    receiver and the pass's thread."""
    with a_delivery_due(live, ["hang"]) as (ann, hook_id, receiver):
        attempt = threading.Thread(target=live.services.webhooks.deliver_due)
        attempt.start()
        try:
            assert receiver.hanging.wait(10)  # the attempt is in flight
            yield ann, hook_id, receiver, attempt
        finally:
            receiver.release.set()
            attempt.join()


def test_two_passes_at_once_attempt_each_delivery_once(live: Live) -> None:
    """Two servers on one database each run delivery passes: a pass claims what it attempts."""
    webhooks = live.services.webhooks
    with a_delivery_in_flight(live) as (ann, hook_id, receiver, first):
        assert webhooks.deliver_due() == 0  # the second pass finds it claimed
        first.join()
        assert len(receiver.received) == 1
        [delivery] = ann.deliveries(hook_id)[0]
        assert (delivery.state, delivery.attempts) == ("pending", 1)  # timed out: retried later
        receiver.release.set()
        live.clock.advance(3600)
        assert webhooks.deliver_due() == 1
        [delivery] = ann.deliveries(hook_id)[0]
        assert (delivery.state, delivery.attempts) == ("delivered", 2)


def test_a_delivery_claimed_by_a_pass_that_died_is_attempted_once_its_claim_runs_out(live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    """A process killed between claiming a delivery and recording its attempt leaves the
    claim behind: nobody attempts it while the claim lasts, and a pass does once it ends."""
    webhooks = live.services.webhooks
    with a_delivery_due(live, []) as (ann, hook_id, receiver):
        with monkeypatch.context() as dying:
            async def died(claimed: object) -> None:
                raise SystemExit  # the process ends here: the claim is written, no attempt made

            dying.setattr(webhooks, "_attempt_all", died)
            with pytest.raises(SystemExit):
                webhooks.deliver_due()
        live.clock.advance(CLAIM_SECONDS - 1)
        assert webhooks.deliver_due() == 0  # still claimed
        [delivery] = ann.deliveries(hook_id)[0]
        assert (delivery.state, delivery.attempts) == ("pending", 0)
        live.clock.advance(1)
        assert webhooks.deliver_due() == 1
        [delivery] = ann.deliveries(hook_id)[0]
        assert (delivery.state, delivery.attempts, delivery.last_status_code) == ("delivered", 1, 200)
        assert len(receiver.received) == 1


def test_a_delivery_another_pass_claims_between_this_ones_read_and_claim_is_attempted_once(live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two servers' passes read the same due delivery; the one that claims it second must
    find it claimed (its due time moved), not claim it again."""
    service = live.services.webhooks
    with a_delivery_due(live, []) as (ann, hook_id, receiver):
        read_raw, attempt_all = service.db.read_raw, service._attempt_all
        attempted_by_other: list[object] = []

        async def held(claimed: list[object]) -> None:  # the other pass's attempt, not yet made
            attempted_by_other.extend(claimed)

        def read_then_the_other_pass_claims(work):  # type: ignore[no-untyped-def]
            found = read_raw(work)
            monkeypatch.setattr(service.db, "read_raw", read_raw)
            monkeypatch.setattr(service, "_attempt_all", held)
            assert service.deliver_due() == 1  # the other pass claims it first
            monkeypatch.setattr(service, "_attempt_all", attempt_all)
            return found

        monkeypatch.setattr(service.db, "read_raw", read_then_the_other_pass_claims)
        assert service.deliver_due() == 0
        assert len(attempted_by_other) == 1 and receiver.received == []
        [delivery] = ann.deliveries(hook_id)[0]
        assert (delivery.state, delivery.attempts) == ("pending", 0)  # claimed by the other, not attempted twice


def test_an_attempt_recorded_after_a_later_one_does_not_overwrite_it(live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    """An attempt whose record comes late (its pass stalled past its claim, and another
    pass attempted the delivery again meanwhile) is not recorded over the later outcome."""
    service = live.services.webhooks
    # The stalled attempt is refused, the later one delivered.
    with a_delivery_due(live, [500]) as (ann, hook_id, receiver):
        record = service._record

        def stalled(*args):  # type: ignore[no-untyped-def]
            monkeypatch.setattr(service, "_record", record)
            live.clock.advance(CLAIM_SECONDS)  # the claim ran out while this pass stalled
            assert service.deliver_due() == 1  # another pass attempts it, and delivers
            record(*args)  # the stalled attempt's outcome arrives last

        monkeypatch.setattr(service, "_record", stalled)
        assert service.deliver_due() == 1
        assert len(receiver.received) == 2
        [delivery] = ann.deliveries(hook_id)[0]
        # The stalled attempt's record found the row moved on, so it is not counted either.
        assert (delivery.state, delivery.attempts, delivery.last_status_code) == ("delivered", 1, 200)


def test_an_endpoint_disabled_while_a_delivery_is_in_flight_gets_nothing_more(live: Live) -> None:
    with a_delivery_in_flight(live) as (ann, hook_id, receiver, attempt):
        ann.disable_webhook(hook_id)
        attempt.join()  # the sender timed out on the hanging receiver: a failed attempt
        [delivery] = ann.deliveries(hook_id)[0]
        assert (delivery.state, delivery.attempts) == ("cancelled", 1)  # recorded, and not revived
        assert delivery.next_attempt_at is None  # nor shown a next attempt it will never get
        live.clock.advance(3600)
        live.services.webhooks.run_once()
        assert len(receiver.received) == 1


def test_a_disabled_endpoint_gets_nothing_more_and_its_pending_deliveries_stop(live: Live) -> None:
    ann = live.party("buyer", "ann")
    bob = live.party("buyer", "bob")
    live.party("seller", "tea")
    hook = ann.register_webhook("http://127.0.0.1:9/unreachable", ["*"])
    ann.create_trade(seller_id="tea", model="escrow", amount=300, currency=CUR)
    live.services.webhooks.run_once()  # one attempt, fails: pending with a retry due
    with pytest.raises(Exception) as e:
        bob.disable_webhook(hook.id)  # not bob's
    assert getattr(e.value, "status", None) == 404
    [delivery] = ann.deliveries(hook.id)[0]
    assert delivery.state == "pending"  # bob's refused attempt changed nothing
    disabled = ann.disable_webhook(hook.id)
    assert disabled.disabled_at is not None
    ann.create_trade(seller_id="tea", model="escrow", amount=300, currency=CUR)
    live.clock.advance(3600)
    live.services.webhooks.run_once()
    [delivery] = ann.deliveries(hook.id)[0]
    assert (delivery.state, delivery.attempts) == ("cancelled", 1)


def test_disabling_an_endpoint_leaves_the_record_of_what_it_was_sent(live: Live) -> None:
    receiver = Receiver([200, 500] + [500] * ATTEMPTS_MAX)
    try:
        ann, _ = live.party("buyer", "ann"), live.party("seller", "tea")
        hook = ann.register_webhook(receiver.url, ["trade.created"])
        ann.create_trade(seller_id="tea", model="escrow", amount=300, currency=CUR)
        live.services.webhooks.run_once()  # delivered: one at a time, so the answers go in order
        live.clock.advance(1)
        ann.create_trade(seller_id="tea", model="escrow", amount=300, currency=CUR)
        live.services.webhooks.run_once()  # fails once
        for _ in range(ATTEMPTS_MAX - 1):
            live.clock.advance(RETRY_BACKOFF_MAX_SECONDS)
            live.services.webhooks.run_once()
        ann.create_trade(seller_id="tea", model="escrow", amount=300, currency=CUR)
        live.services.webhooks.dispatch()  # a third, pending when the endpoint goes
        ann.disable_webhook(hook.id)
        assert [(d.state, d.attempts) for d in ann.deliveries(hook.id)[0]] == [("delivered", 1), ("failed", ATTEMPTS_MAX), ("cancelled", 0)]
    finally:
        receiver.close()


@pytest.mark.parametrize(("timeout", "deadline"), [(0, 1), (2, 1), (1, CLAIM_SECONDS), (-1, 1)])
def test_an_attempt_must_end_within_its_claim_or_the_settings_are_refused(timeout: float, deadline: float) -> None:
    # Otherwise another pass could claim a delivery still being attempted, and send it twice.
    with pytest.raises(InvariantViolation):
        webhooks.WebhookSettings(timeout_seconds=timeout, deadline_seconds=deadline)
    assert webhooks.WebhookSettings(timeout_seconds=1, deadline_seconds=CLAIM_SECONDS - 1).deadline_seconds == CLAIM_SECONDS - 1


def test_a_trickling_receiver_is_cut_off_at_the_attempts_deadline(live: Live) -> None:
    """Each byte arrives well within the per-read timeout; the whole answer never does."""
    finished: queue.Queue[bool] = queue.Queue()  # whether the receiver sent it all, once it has stopped

    class Trickling(QuietHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            self.rfile.read(int(self.headers["Content-Length"]))
            answer = b"HTTP/1.1 200 OK\r\n" + b"X-Slow: " + b"z" * 4000 + b"\r\n\r\n"  # 80 s at this pace
            try:
                for byte in answer:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    threading.Event().wait(0.02)  # the receiver's pace, not the test's synchronisation
                finished.put(True)
            except OSError:
                finished.put(False)  # the sender hung up

    delivery = one_delivery_to(live, Trickling)
    assert (delivery.state, delivery.attempts, delivery.last_status_code) == ("pending", 1, None)
    assert delivery.last_error and delivery.last_error.startswith("DeadlineExceeded")
    # The receiver learns of the hang-up at its next write or two; 60 s is far beyond that
    # and still short of the 80 s the whole answer would take.
    assert finished.get(timeout=60) is False


def test_one_receivers_backlog_takes_a_few_places_in_a_pass_not_all(live: Live) -> None:
    busy, quiet = Receiver([]), Receiver([])
    try:
        ann, tea = live.party("buyer", "ann"), live.party("seller", "tea")
        busy_hook = ann.register_webhook(busy.url, ["trade.created"])
        ann.top_up(10_000, CUR)
        for _ in range(10):
            ann.create_trade(seller_id="tea", model="escrow", amount=100, currency=CUR)
        assert live.services.webhooks.dispatch() == 10
        live.clock.advance(1)
        quiet_hook = tea.register_webhook(quiet.url, ["trade.created"])
        ann.create_trade(seller_id="tea", model="escrow", amount=100, currency=CUR)
        assert live.services.webhooks.dispatch() == 2  # one each, the busy endpoint's is 11th
        assert live.services.webhooks.deliver_due() == 4 + 1  # four of the backlog, and the quiet one
        [quiet_delivery] = tea.deliveries(quiet_hook.id)[0]
        assert quiet_delivery.state == "delivered"
        assert [d.state for d in ann.deliveries(busy_hook.id)[0]].count("delivered") == 4
        while live.services.webhooks.deliver_due():
            pass
        assert {d.state for d in ann.deliveries(busy_hook.id)[0]} == {"delivered"}
        assert len(busy.received) == 11 and len(quiet.received) == 1
    finally:
        busy.close()
        quiet.close()


def test_a_receiver_on_a_private_address_is_refused_unless_the_operator_allows_it(live: Live) -> None:
    webhooks = live.services.webhooks
    allowed = webhooks.settings
    webhooks.settings = dataclasses.replace(allowed, private_networks=False)
    receiver = Receiver([])
    try:
        ann = live.party("buyer", "ann")
        live.party("seller", "tea")
        for url in (receiver.url, "http://localhost:8080/hook", "http://api.localhost/hook", "http://[::1]/hook",
                    "http://[::ffff:127.0.0.1]/hook", "http://169.254.169.254/latest/meta-data", "http://10.0.0.7/hook",
                    "https://192.168.1.1/hook", "http://0.0.0.0/hook"):
            with pytest.raises(ApiError) as refused:
                ann.register_webhook(url, ["*"])
            assert (refused.value.status, refused.value.code, refused.value.field) == (400, "url_not_public", "url"), url
        assert ann.webhooks() == ([], None)
        # A name is judged when it is resolved, at each attempt; this one resolves to loopback.
        port = receiver.port
        webhooks.resolve = _resolving({"hooks.example": ["127.0.0.1"]})
        hook = ann.register_webhook(f"http://hooks.example:{port}/hook", ["trade.created"])
        ann.create_trade(seller_id="tea", model="escrow", amount=300, currency=CUR)
        assert webhooks.run_once() == (1, 1)
        [delivery] = ann.deliveries(hook.id)[0]
        assert (delivery.state, delivery.last_status_code) == ("pending", None)
        assert delivery.last_error == "AddressRefused: hooks.example resolves to 127.0.0.1, not a public address"
        assert receiver.received == []
        # Allowed, the attempt goes to the address checked, in the registered name's name.
        webhooks.settings = allowed
        live.clock.advance(3600)
        assert webhooks.deliver_due() == 1
        [delivery] = ann.deliveries(hook.id)[0]
        assert (delivery.state, delivery.attempts) == ("delivered", 2)
        [(headers, _)] = receiver.received
        assert headers["Host"] == f"hooks.example:{port}"
    finally:
        receiver.close()


def _resolving(names: dict[str, list[str]]):  # type: ignore[no-untyped-def]
    async def resolve(host: str, port: int) -> list[str]:
        return names[host]

    return resolve


def test_a_pass_attempts_all_it_claimed_at_once_so_it_lasts_one_deadline_at_most(live: Live) -> None:
    webhooks = live.services.webhooks
    webhooks.settings = dataclasses.replace(webhooks.settings, timeout_seconds=10, deadline_seconds=10)
    endpoints, trades = 3, 4
    together = threading.Barrier(endpoints * trades, timeout=10)

    class Gathering(QuietHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            self.rfile.read(int(self.headers["Content-Length"]))
            try:
                together.wait()  # answers only once every attempt of the pass is in flight
                self.send_response(200)
            except threading.BrokenBarrierError:
                self.send_response(503)
            self.end_headers()

    with serving(Gathering) as url:
        ann = live.party("buyer", "ann")
        live.party("seller", "tea")
        hooks = [ann.register_webhook(f"{url}/{n}", ["trade.created"]) for n in range(endpoints)]
        for _ in range(trades):
            ann.create_trade(seller_id="tea", model="escrow", amount=300, currency=CUR)
        assert webhooks.run_once() == (endpoints * trades, endpoints * trades)
    for hook in hooks:
        assert [(d.state, d.last_status_code) for d in ann.deliveries(hook.id)[0]] == [("delivered", 200)] * trades


def test_a_name_lookup_that_hangs_costs_its_attempt_the_deadline_not_the_pass_its_end(live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    """A resolver that never answers (a dead DNS server) holds one lookup thread, not the
    pass: the pass ends at the attempt's deadline, so its claims never lapse under it."""
    let_go = threading.Event()
    system_lookup = socket.getaddrinfo

    def lookup(host: str, *args: object, **kwargs: object) -> object:
        if host == "hangs.example":
            let_go.wait(120)  # far past the deadline, until the test ends
            raise socket.gaierror(socket.EAI_AGAIN, "no answer")
        return system_lookup(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", lookup)
    ann = live.party("buyer", "ann")
    live.party("seller", "tea")
    hook = ann.register_webhook("http://hangs.example/hook", ["trade.created"])
    ann.create_trade(seller_id="tea", model="escrow", amount=300, currency=CUR)
    passes: queue.Queue[tuple[int, int]] = queue.Queue()
    threading.Thread(target=lambda: passes.put(live.services.webhooks.run_once()), daemon=True).start()
    try:
        assert passes.get(timeout=60) == (1, 1)  # the lookup is still hanging when the pass ends
        [delivery] = ann.deliveries(hook.id)[0]
        assert (delivery.state, delivery.attempts, delivery.last_status_code) == ("pending", 1, None)
        assert delivery.last_error and delivery.last_error.startswith("DeadlineExceeded")
    finally:
        let_go.set()


def test_an_attempt_that_fails_unexpectedly_is_recorded_and_the_others_in_its_pass_go_on(live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug of ours in one attempt (here, a resolver that raises what no lookup raises) is
    recorded on that delivery, so its attempts run out like any failure's, and cuts short
    no other attempt of the pass."""
    webhooks = live.services.webhooks
    resolve = webhooks.resolve

    async def buggy(host: str, port: int) -> list[str]:
        if host == "buggy.example":
            raise ValueError("not a lookup failure")
        return await resolve(host, port)

    monkeypatch.setattr(webhooks, "resolve", buggy)
    with serving(QuietHandler) as url:  # no do_POST: answers 501, a status all the same
        ann = live.party("buyer", "ann")
        live.party("seller", "tea")
        broken = ann.register_webhook("http://buggy.example/hook", ["trade.created"])
        working = ann.register_webhook(url, ["trade.created"])
        ann.create_trade(seller_id="tea", model="escrow", amount=300, currency=CUR)
        assert webhooks.run_once() == (2, 2)
    [failed] = ann.deliveries(broken.id)[0]
    assert (failed.state, failed.attempts, failed.last_status_code) == ("pending", 1, None)
    assert failed.last_error == "ValueError: not a lookup failure"
    [answered] = ann.deliveries(working.id)[0]
    assert (answered.attempts, answered.last_status_code) == (1, 501)


class Rotation:
    """ann's endpoint for trade.created on a receiver that accepts all, and a way to have
    a delivery sent now and read back: its header and body."""

    def __init__(self, live: Live, receiver: Receiver):
        self.live, self.receiver = live, receiver
        self.ann = live.party("buyer", "ann")
        live.party("seller", "tea")
        self.hook = self.ann.register_webhook(receiver.url, ["trade.created"])

    def delivered(self) -> tuple[str, bytes]:
        self.ann.create_trade(seller_id="tea", model="escrow", amount=300, currency=CUR)
        assert self.live.services.webhooks.run_once() == (1, 1)
        headers, body = self.receiver.received[-1]
        return headers[SIGNATURE_HEADER], body

    def signed_by(self, header: str, body: bytes, secret: str | None) -> bool:
        now = self.live.clock.now_ns() // NS_PER_SECOND
        return secret is not None and verify_signature(secret, header, body, now_seconds=now)


@pytest.fixture
def rotation(live: Live) -> Iterator[Rotation]:
    receiver = Receiver([])
    yield Rotation(live, receiver)
    receiver.close()


def test_a_rotated_secret_signs_beside_the_replaced_one_for_a_day_then_alone(rotation: Rotation) -> None:
    old = rotation.hook.secret
    rotated = rotation.ann.rotate_webhook_secret(rotation.hook.id)
    assert rotated.secret is not None and rotated.secret.startswith("whsec_") and rotated.secret != old
    assert rotated.previous_secret_until == rotation.live.clock.now_ns() + SECRET_OVERLAP_SECONDS_DEFAULT * NS_PER_SECOND
    header, body = rotation.delivered()
    assert rotation.signed_by(header, body, rotated.secret) and rotation.signed_by(header, body, old)
    rotation.live.clock.advance(SECRET_OVERLAP_SECONDS_DEFAULT)
    header, body = rotation.delivered()
    assert rotation.signed_by(header, body, rotated.secret) and not rotation.signed_by(header, body, old)
    [listed], _ = rotation.ann.webhooks()
    assert listed.secret is None and listed.previous_secret_until == rotated.previous_secret_until  # never shown again


def test_a_rotation_without_overlap_retires_the_replaced_secret_at_once(rotation: Rotation) -> None:
    old = rotation.hook.secret
    rotated = rotation.ann.rotate_webhook_secret(rotation.hook.id, overlap_seconds=0)
    assert rotated.previous_secret_until is None
    header, body = rotation.delivered()
    assert rotation.signed_by(header, body, rotated.secret) and not rotation.signed_by(header, body, old)
    # Nor is it kept: a secret replaced because it leaked is gone from the database.
    kept = rotation.live.services.db.read_raw(lambda raw: raw.rows("SELECT previous_secret FROM webhook_endpoints WHERE id = ?", (rotation.hook.id,)))
    assert kept == [(None,)]


def test_rotating_again_keeps_only_the_secret_just_replaced(rotation: Rotation) -> None:
    first = rotation.hook.secret
    second = rotation.ann.rotate_webhook_secret(rotation.hook.id).secret
    third = rotation.ann.rotate_webhook_secret(rotation.hook.id, overlap_seconds=60).secret
    header, body = rotation.delivered()
    assert [rotation.signed_by(header, body, s) for s in (first, second, third)] == [False, True, True]


def test_a_rotation_replayed_with_its_key_rotates_once_and_answers_the_same_secret(rotation: Rotation, live: Live) -> None:
    http = httpx.Client(base_url=live.url, headers=rotation.ann._http.headers)
    path = f"/v1/webhook-endpoints/{rotation.hook.id}/rotate-secret"
    first = http.post(path, json={"overlap_seconds": 60}, headers={"Idempotency-Key": "rot-1"})
    again = http.post(path, json={"overlap_seconds": 60}, headers={"Idempotency-Key": "rot-1"})
    assert first.status_code == again.status_code == 200 and first.json() == again.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    header, body = rotation.delivered()
    # Rotated once: the registration's secret still signs beside the new one.
    assert rotation.signed_by(header, body, first.json()["secret"]) and rotation.signed_by(header, body, rotation.hook.secret)


@pytest.mark.parametrize("overlap", [-1, SECRET_OVERLAP_SECONDS_MAX + 1, "60", 1.5, None])
def test_a_rotation_with_a_bad_overlap_is_refused_and_changes_nothing(rotation: Rotation, overlap: object) -> None:
    with pytest.raises(ApiError) as refused:
        rotation.ann.request("POST", f"/v1/webhook-endpoints/{rotation.hook.id}/rotate-secret", json={"overlap_seconds": overlap})
    assert (refused.value.status, refused.value.code, refused.value.field) == (400, "request_invalid", "overlap_seconds")
    header, body = rotation.delivered()
    assert rotation.signed_by(header, body, rotation.hook.secret) and "," not in header.split("v1=", 1)[1]


def test_only_the_owner_rotates_an_active_endpoint(rotation: Rotation, live: Live) -> None:
    bob = live.party("buyer", "bob")
    for caller in (bob, rotation.ann):
        if caller is rotation.ann:
            rotation.ann.disable_webhook(rotation.hook.id)
        with pytest.raises(ApiError) as refused:
            caller.rotate_webhook_secret(rotation.hook.id)
        assert (refused.value.status, refused.value.code) == (404, "endpoint_not_found")
    with pytest.raises(ApiError) as refused:
        rotation.ann.rotate_webhook_secret("we_nonesuch")
    assert refused.value.status == 404
    [listed], _ = rotation.ann.webhooks()
    assert listed.previous_secret_until is None  # nothing was rotated
