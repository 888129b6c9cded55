"""Idempotency-Key: a retry replays the first response and does nothing again."""

from __future__ import annotations

import httpx

from danbao.api.idempotency import KEEP_SECONDS
from tests.api.conftest import Live

CUR = "CNY"


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


def test_a_retry_while_the_first_is_running_is_409(live: Live) -> None:
    live.party("buyer", "ann")
    key = live.admin.issue_key("ann").key
    body = b'{"amount":700,"currency":"CNY"}'
    import hashlib

    digest = hashlib.sha256(b"POST\n/v1/wallet/top-up\n" + body).hexdigest()
    assert live.services.idempotency.begin("ann", "slow", digest) is None  # the first attempt, still running
    http = httpx.Client(base_url=live.url, headers={"Authorization": f"Bearer {key}", "Idempotency-Key": "slow", "Content-Type": "application/json"})
    response = http.post("/v1/wallet/top-up", content=body)
    assert (response.status_code, response.json()["code"]) == (409, "idempotency_in_progress")
    live.clock.advance(61)  # the first attempt's lease is over (it crashed): the key may run again
    assert http.post("/v1/wallet/top-up", content=body).status_code == 201


def test_keys_are_per_party_and_kept_a_day(live: Live) -> None:
    for name in ("ann", "bob"):
        live.party("buyer", name)
    clients = {n: httpx.Client(base_url=live.url, headers={"Authorization": f"Bearer {live.admin.issue_key(n).key}", "Idempotency-Key": "same"}) for n in ("ann", "bob")}
    for n in ("ann", "bob"):
        assert clients[n].post("/v1/wallet/top-up", json={"amount": 10, "currency": CUR}).status_code == 201
    live.clock.advance(KEEP_SECONDS - 1)
    assert clients["ann"].post("/v1/wallet/top-up", json={"amount": 10, "currency": CUR}).headers.get("idempotent-replayed") == "true"
    live.clock.advance(2)
    assert live.services.idempotency.sweep() >= 2  # ann's, bob's, and the admin's set-up calls
    fresh = clients["ann"].post("/v1/wallet/top-up", json={"amount": 10, "currency": CUR})
    assert fresh.status_code == 201 and "idempotent-replayed" not in fresh.headers
    assert live.services.ledger.account("ann.wallet.CNY").balance == 20  # type: ignore[union-attr]


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
