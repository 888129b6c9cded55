"""Idempotency-Key: a retry replays the first response and does nothing again."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from danbao.api import Services, idempotency
from danbao.api.idempotency import KEEP_SECONDS, RUNNING_LEASE_SECONDS
from danbao.client import ApiError
from danbao.clock import NS_PER_SECOND
from danbao.store.errors import StoreError
from tests.api.conftest import Live, serve

CUR = "CNY"


def _digest(path: str, body: bytes) -> str:
    return hashlib.sha256(b"POST\n" + path.encode() + b"\n" + body).hexdigest()


def test_a_retry_with_the_same_key_and_body_replays_the_first_response(live: Live) -> None:
    live.party("buyer", "ann")
    key = live.admin.issue_key("ann").key
    http = httpx.Client(base_url=live.url, headers={"Authorization": f"Bearer {key}", "Idempotency-Key": "top-up-1"})
    first = http.post("/v1/wallet/top-up", json={"amount": 700, "currency": CUR})
    again = http.post("/v1/wallet/top-up", json={"amount": 700, "currency": CUR})
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json() and again.headers["idempotent-replayed"] == "true"
    assert live.services.ledger.account("ann.wallet.CNY").balance == 700  # type: ignore[union-attr]


def test_the_same_key_with_another_body_is_422_and_changes_nothing(live: Live) -> None:
    live.party("buyer", "ann")
    key = live.admin.issue_key("ann").key
    http = httpx.Client(base_url=live.url, headers={"Authorization": f"Bearer {key}", "Idempotency-Key": "k"})
    http.post("/v1/wallet/top-up", json={"amount": 700, "currency": CUR})
    other = http.post("/v1/wallet/top-up", json={"amount": 900, "currency": CUR})
    assert (other.status_code, other.json()["code"]) == (422, "idempotency_key_reused")
    assert live.services.ledger.account("ann.wallet.CNY").balance == 700  # type: ignore[union-attr]


def test_a_refusal_is_replayed_too(live: Live) -> None:
    live.party("buyer", "ann")
    key = live.admin.issue_key("ann").key
    http = httpx.Client(base_url=live.url, headers={"Authorization": f"Bearer {key}", "Idempotency-Key": "w"})
    first = http.post("/v1/wallet/withdraw", json={"amount": 5, "currency": CUR})
    live.services.trades.parties.top_up("ann", 100, CUR)
    again = http.post("/v1/wallet/withdraw", json={"amount": 5, "currency": CUR})
    assert first.status_code == again.status_code == 422 and again.json() == first.json()
    assert live.services.ledger.account("ann.wallet.CNY").balance == 100  # type: ignore[union-attr]


def test_a_retry_while_the_first_is_in_flight_is_409(live: Live) -> None:
    live.party("buyer", "ann")
    key = live.admin.issue_key("ann").key
    body = b'{"amount":700,"currency":"CNY"}'
    first = live.services.idempotency.claim("ann", "slow", _digest("/v1/wallet/top-up", body))  # the first attempt, still being served
    http = httpx.Client(base_url=live.url, headers={"Authorization": f"Bearer {key}", "Idempotency-Key": "slow", "Content-Type": "application/json"})
    response = http.post("/v1/wallet/top-up", content=body)
    assert (response.status_code, response.json()["code"]) == (409, "idempotency_in_progress")
    assert live.services.ledger.account("ann.wallet.CNY") is None  # nothing moved
    live.services.idempotency.release(first)  # the first attempt ended without an effect (it was refused, or crashed)
    assert http.post("/v1/wallet/top-up", content=body).status_code == 201
    assert live.services.ledger.account("ann.wallet.CNY").balance == 700  # type: ignore[union-attr]


def test_keys_are_per_party_and_kept_a_day(live: Live) -> None:
    for name in ("ann", "bob"):
        live.party("buyer", name)
    clients = {n: httpx.Client(base_url=live.url, headers={"Authorization": f"Bearer {live.admin.issue_key(n).key}", "Idempotency-Key": "same"}) for n in ("ann", "bob")}
    for n in ("ann", "bob"):
        assert clients[n].post("/v1/wallet/top-up", json={"amount": 10, "currency": CUR}).status_code == 201
    # At least a day, as the API promises: a day less a nanosecond, the record still answers.
    live.clock.advance(24 * 3600 - 1, ns=NS_PER_SECOND - 1)
    assert clients["ann"].post("/v1/wallet/top-up", json={"amount": 10, "currency": CUR}).headers.get("idempotent-replayed") == "true"
    assert live.services.idempotency.sweep() == 0
    live.clock.advance(KEEP_SECONDS - 24 * 3600, ns=1)  # KEEP_SECONDS to the nanosecond: expired
    assert live.services.idempotency.sweep() >= 2  # ann's, bob's, and the admin's set-up calls
    fresh = clients["ann"].post("/v1/wallet/top-up", json={"amount": 10, "currency": CUR})
    assert fresh.status_code == 201 and "idempotent-replayed" not in fresh.headers
    assert live.services.ledger.account("ann.wallet.CNY").balance == 20  # type: ignore[union-attr]


def test_a_key_past_its_day_is_free_again_before_any_sweep(live: Live) -> None:
    # The expired record is still in the table (no sweep ran): the request that finds it
    # must treat the key as unused, whatever body it brings, and replace the record.
    live.party("buyer", "ann")
    key = live.admin.issue_key("ann").key
    http = httpx.Client(base_url=live.url, headers={"Authorization": f"Bearer {key}", "Idempotency-Key": "daily"})
    assert http.post("/v1/wallet/top-up", json={"amount": 10, "currency": CUR}).status_code == 201
    live.clock.advance(KEEP_SECONDS)
    other = http.post("/v1/wallet/top-up", json={"amount": 25, "currency": CUR})
    assert other.status_code == 201 and "idempotent-replayed" not in other.headers
    again = http.post("/v1/wallet/top-up", json={"amount": 25, "currency": CUR})
    assert again.headers.get("idempotent-replayed") == "true" and again.json() == other.json()
    assert live.services.ledger.account("ann.wallet.CNY").balance == 35  # type: ignore[union-attr]


def test_a_refusal_replaces_an_expired_record_and_is_what_a_retry_gets(live: Live) -> None:
    live.party("buyer", "ann")
    http = _keyed(live, live.admin.issue_key("ann").key, "daily")
    assert http.post("/v1/wallet/top-up", json={"amount": 10, "currency": CUR}).status_code == 201
    live.clock.advance(KEEP_SECONDS)
    refused = http.post("/v1/wallet/withdraw", json={"amount": 50, "currency": CUR})
    assert (refused.status_code, refused.json()["code"]) == (422, "insufficient_funds")
    live.services.trades.parties.top_up("ann", 100, CUR)
    again = http.post("/v1/wallet/withdraw", json={"amount": 50, "currency": CUR})
    assert again.headers.get("idempotent-replayed") == "true" and again.json() == refused.json()
    assert live.services.ledger.account("ann.wallet.CNY").balance == 110  # type: ignore[union-attr]


def _fails(error: Exception) -> Callable[..., None]:
    def fail(*args: object) -> None:
        raise error

    return fail


@pytest.mark.parametrize(
    ("error", "code"),
    [(ZeroDivisionError("a bug"), "internal_error"), (StoreError("the disk is gone"), "store_error")],
    ids=["unexpected", "store"],
)
def test_a_server_error_is_not_kept_so_a_retry_runs_again(live: Live, monkeypatch: pytest.MonkeyPatch, error: Exception, code: str) -> None:
    live.party("buyer", "ann")
    http = _keyed(live, live.admin.issue_key("ann").key, "top-up-1")
    monkeypatch.setattr(live.services.trades.parties, "top_up", _fails(error))
    failed = http.post("/v1/wallet/top-up", json={"amount": 10, "currency": CUR})
    assert (failed.status_code, failed.headers["content-type"], failed.json()["code"]) == (500, "application/problem+json", code)
    monkeypatch.undo()
    http = httpx.Client(base_url=live.url, headers=http.headers)  # the server closes a connection after a fault
    again = http.post("/v1/wallet/top-up", json={"amount": 10, "currency": CUR})
    assert again.status_code == 201 and "idempotent-replayed" not in again.headers
    assert live.services.ledger.account("ann.wallet.CNY").balance == 10  # type: ignore[union-attr]


def test_the_client_retries_a_trade_operation_without_doing_it_twice(live: Live) -> None:
    ann, tea = live.party("buyer", "ann"), live.party("seller", "tea")
    ann.top_up(1_000, CUR)
    t = ann.create_trade(seller_id="tea", model="escrow", amount=400, currency=CUR, idempotency_key="order-1")
    same = ann.create_trade(seller_id="tea", model="escrow", amount=400, currency=CUR, idempotency_key="order-1")
    assert same.id == t.id
    ann.pay(t.id, idempotency_key="pay-1")
    assert ann.pay(t.id, idempotency_key="pay-1").status == "paid"
    assert {a.id: a.balance for a in ann.accounts()}["ann.wallet.CNY"] == 600
    assert tea.trade(t.id).status == "paid"


def _async_transactions(live: Live, monkeypatch: pytest.MonkeyPatch) -> list[Callable[..., object]]:
    """The works the server submits to its ledger from the event loop from now on."""
    ledger, works = live.services.ledger, []
    run = ledger.transaction_async

    async def counted(work: Callable[..., object]) -> object:
        works.append(work)
        return await run(work)

    monkeypatch.setattr(ledger, "transaction_async", counted)
    return works


def test_a_keyed_trade_step_and_its_record_cost_one_ledger_transaction(live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    ann, _ = live.party("buyer", "ann"), live.party("seller", "tea")
    ann.top_up(1_000, CUR)
    t = ann.create_trade(seller_id="tea", model="escrow", amount=400, currency=CUR)
    works = _async_transactions(live, monkeypatch)
    assert ann.pay(t.id, idempotency_key="pay-1").status == "paid"
    assert len(works) == 1  # the response was stored with the payment: no second commit
    assert ann.pay(t.id, idempotency_key="pay-1").status == "paid"  # and replays from it
    assert len(works) == 2  # the replay's transaction, refused by the record it found


def test_a_keyed_money_move_stores_its_response_in_the_commit_that_moves_the_money(live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    ann = live.party("buyer", "ann")
    later = _async_transactions(live, monkeypatch)
    moved = ann.request("POST", "/v1/wallet/top-up", json={"amount": 700, "currency": CUR}, idempotency_key="top-1")
    assert later == []  # nothing left to store once the money moved
    assert ann.request("POST", "/v1/wallet/top-up", json={"amount": 700, "currency": CUR}, idempotency_key="top-1") == moved
    assert live.services.ledger.account(f"ann.wallet.{CUR}").balance == 700  # type: ignore[union-attr]


def _dies_before_storing_the_response(live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    """The server dies between committing a keyed request's effect and storing its response."""

    def died(*args: object) -> None:
        raise RuntimeError("the server died here")

    monkeypatch.setattr(live.services.idempotency, "settle_work", died)


def _keyed(live: Live, key: str, idempotency_key: str) -> httpx.Client:
    return httpx.Client(base_url=live.url, headers={"Authorization": f"Bearer {key}", "Idempotency-Key": idempotency_key})


def _unanswered(post: Callable[[], httpx.Response]) -> bool:
    """The client got no answer it could use: the connection broke, or a 500."""
    try:
        return post().status_code == 500
    except httpx.TransportError:
        return True


def test_a_payment_and_its_recorded_response_commit_together(live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    live.party("buyer", "ann")
    key = live.admin.issue_key("ann").key
    http = _keyed(live, key, "top-up-1")
    _dies_before_storing_the_response(live, monkeypatch)
    assert _unanswered(lambda: http.post("/v1/wallet/top-up", json={"amount": 700, "currency": CUR}))
    monkeypatch.undo()
    http = httpx.Client(base_url=live.url, headers=http.headers)  # a new connection, as after a crash
    live.clock.advance(61)
    again = http.post("/v1/wallet/top-up", json={"amount": 700, "currency": CUR})
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert live.services.ledger.account("ann.wallet.CNY").balance == 700  # type: ignore[union-attr]


def test_a_trade_step_and_its_recorded_response_commit_together(live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    ann, _ = live.party("buyer", "ann"), live.party("seller", "tea")
    http = _keyed(live, live.admin.issue_key("ann").key, "order-1")
    order = {"seller_id": "tea", "model": "escrow", "amount": 400, "currency": CUR}
    _dies_before_storing_the_response(live, monkeypatch)
    assert _unanswered(lambda: http.post("/v1/trades", json=order))
    monkeypatch.undo()
    http = httpx.Client(base_url=live.url, headers=http.headers)  # a new connection, as after a crash
    again = http.post("/v1/trades", json=order)
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert [t["id"] for t in ann.request("GET", "/v1/trades")["data"]] == [again.json()["id"]]


def test_an_effect_whose_response_was_lost_is_never_done_again(live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    # Creating a party does not render its response inside its transaction: the record
    # commits with the party as running, and the response is stored after.
    http = _keyed(live, live.admin_key, "ann")
    body = {"role": "buyer", "name": "Ann", "id": "ann"}
    _dies_before_storing_the_response(live, monkeypatch)
    assert _unanswered(lambda: http.post("/v1/parties", json=body))
    monkeypatch.undo()
    http = httpx.Client(base_url=live.url, headers=http.headers)  # a new connection, as after a crash
    soon = http.post("/v1/parties", json=body)
    assert (soon.status_code, soon.json()["code"]) == (409, "idempotency_in_progress")
    live.clock.advance(RUNNING_LEASE_SECONDS - 1)
    still = http.post("/v1/parties", json=body)
    assert (still.status_code, still.json()["code"]) == (409, "idempotency_in_progress")
    live.clock.advance(1)  # the lease is over: the response is not coming
    late = http.post("/v1/parties", json=body)
    assert (late.status_code, late.json()["code"]) == (409, "idempotency_response_lost")
    assert live.services.trades.parties.get("ann").name == "Ann"


@pytest.mark.parametrize("path, body", [("/v1/trades", {"seller_id": "tea", "model": "escrow", "amount": 400, "currency": CUR}), ("/v1/parties", {"role": "buyer", "name": "Bo", "id": "bo"})])
def test_a_response_too_large_to_keep_is_not_kept_and_its_effect_is_never_done_again(live: Live, monkeypatch: pytest.MonkeyPatch, path: str, body: dict[str, object]) -> None:
    # A trade renders its response inside its transaction, a party after it: both bounded.
    live.party("buyer", "ann"), live.party("seller", "tea")
    http = _keyed(live, live.admin_key if path == "/v1/parties" else live.admin.issue_key("ann").key, "big")
    monkeypatch.setattr(idempotency, "RESPONSE_BYTES_MAX", 64)  # every answer here is longer
    first = http.post(path, json=body)
    assert first.status_code == 201 and len(first.content) > 64
    live.clock.advance(RUNNING_LEASE_SECONDS)
    again = http.post(path, json=body)
    assert (again.status_code, again.json()["code"]) == (409, "idempotency_response_lost")
    assert len(live.services.trades.of_party("ann", after=None, limit=10)) == (path == "/v1/trades")


def test_a_response_of_exactly_the_bound_is_kept(live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    live.party("buyer", "ann"), live.party("seller", "tea")
    key = live.admin.issue_key("ann").key
    body = {"seller_id": "tea", "model": "escrow", "amount": 400, "currency": CUR}
    measured = _keyed(live, key, "measure").post("/v1/trades", json=body)
    assert measured.status_code == 201
    monkeypatch.setattr(idempotency, "RESPONSE_BYTES_MAX", len(measured.content))
    http = _keyed(live, key, "at-the-bound")
    first = http.post("/v1/trades", json=body)
    assert first.status_code == 201 and len(first.content) == len(measured.content)
    live.clock.advance(RUNNING_LEASE_SECONDS)
    again = http.post("/v1/trades", json=body)
    assert (again.status_code, again.content) == (201, first.content)
    assert len(live.services.trades.of_party("ann", after=None, limit=10)) == 2


def test_two_servers_racing_on_one_key_move_the_money_once(live: Live, database_url: str) -> None:
    # A second server process on the same database: its own group committer, key cache
    # and keys in flight, so only the record's primary key can stop the second effect.
    other = Services.open(database_url, clock=live.clock)
    other_url, stop = serve(other)
    try:
        live.party("buyer", "ann")
        key = live.admin.issue_key("ann").key
        callers = [httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}) for url in (live.url, other_url) * 4]
        rounds = 6
        barrier = threading.Barrier(len(callers))

        def race(caller: httpx.Client) -> list[httpx.Response]:
            answers = []
            for r in range(rounds):
                barrier.wait()
                answers.append(caller.post("/v1/wallet/top-up", json={"amount": 100 + r, "currency": CUR}, headers={"Idempotency-Key": f"race-{r}"}))
            return answers

        with ThreadPoolExecutor(len(callers)) as pool:
            answers = [a for per_caller in pool.map(race, callers) for a in per_caller]
        assert {a.status_code for a in answers} <= {201, 409}
        for r in range(rounds):
            firsts = {a.json()["transfer_id"] for a in answers if a.status_code == 201 and a.json()["amount"] == 100 + r}
            assert len(firsts) == 1  # every 201 for one key is the same transfer
        assert live.services.ledger.account("ann.wallet.CNY").balance == sum(100 + r for r in range(rounds))  # type: ignore[union-attr]
        assert all(a.json()["code"] == "idempotency_in_progress" for a in answers if a.status_code == 409)
    finally:
        stop()
        other.close()


def test_an_issued_api_key_is_never_kept_in_its_record_and_a_replay_names_it_without_the_secret(live: Live) -> None:
    live.party("buyer", "ann")
    keys_before = len(live.services.keys.of_party("ann"))
    http = _keyed(live, live.admin_key, "issue-ann")
    first = http.post("/v1/parties/ann/keys")
    again = http.post("/v1/parties/ann/keys")
    assert first.status_code == again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    secret = first.json()["key"]
    assert secret and again.json() == {**first.json(), "key": None}
    stored = live.services.db.read_raw(lambda raw: raw.rows("SELECT response_body FROM idempotency_keys"))
    assert stored and not any(secret in str(body) for (body,) in stored)  # keys rest only as hashes
    assert len(live.services.keys.of_party("ann")) == keys_before + 1 and live.client(secret).accounts() == []


def test_a_retry_of_a_call_that_writes_outside_the_ledger_replays_too(live: Live) -> None:
    live.party("buyer", "ann")
    http = _keyed(live, live.admin.issue_key("ann").key, "hook-1")
    body = {"url": "http://127.0.0.1:9/hook", "event_types": ["trade.paid"]}
    first, again = http.post("/v1/webhook-endpoints", json=body), http.post("/v1/webhook-endpoints", json=body)
    assert first.status_code == again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json() and [e.id for e in live.services.webhooks.endpoints("ann")] == [first.json()["id"]]


def test_the_same_key_and_body_on_another_path_is_another_request(live: Live) -> None:
    ann = live.party("buyer", "ann")
    body = {"amount": 700, "currency": CUR}
    ann.request("POST", "/v1/wallet/top-up", json=body, idempotency_key="k-1")
    with pytest.raises(ApiError) as refused:
        ann.request("POST", "/v1/wallet/withdraw", json=body, idempotency_key="k-1")
    assert (refused.value.status, refused.value.code) == (422, "idempotency_key_reused")
    assert live.services.ledger.account(f"ann.wallet.{CUR}").balance == 700  # type: ignore[union-attr]


def test_a_replayed_refusal_is_the_same_problem_with_its_media_type(live: Live) -> None:
    live.party("buyer", "ann")
    key = live.admin.issue_key("ann").key
    with httpx.Client(base_url=live.url, headers={"Authorization": f"Bearer {key}", "Idempotency-Key": "w-1"}) as ann:
        first = ann.post("/v1/wallet/withdraw", json={"amount": 700, "currency": CUR})
        again = ann.post("/v1/wallet/withdraw", json={"amount": 700, "currency": CUR})
    assert (first.status_code, first.json()["code"]) == (422, "insufficient_funds")
    assert (again.status_code, again.json(), again.headers["idempotent-replayed"]) == (422, first.json(), "true")
    assert first.headers["content-type"] == again.headers["content-type"] == "application/problem+json"
