"""A server killed with SIGKILL in the middle of traffic: every keyed request, retried with
its key against the restarted server, takes effect exactly once, and the books balance."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest

from danbao.bench.api_bench import ServerProcess
from danbao.client import Danbao

CUR = "CNY"
BUYERS = 4
KILL_AFTER_ANSWERS = 40  # top-ups answered before the kill, so it lands mid-traffic
KEYS_PER_BUYER_MAX = 10_000  # a bound on the loop, far above what runs before the kill


@pytest.fixture
def server(database_url: str) -> Iterator[ServerProcess]:
    first = ServerProcess("danbao", database_url)
    yield first
    if first.process.poll() is None:
        first.stop()


def test_keyed_top_ups_retried_after_a_sigkill_take_effect_exactly_once(server: ServerProcess, database_url: str) -> None:
    assert server.admin_key is not None
    with Danbao(server.url, server.admin_key) as admin:
        keys = {}
        for n in range(BUYERS):
            admin.create_party("buyer", f"Buyer {n}", id=f"b{n}")
            keys[f"b{n}"] = admin.issue_key(f"b{n}").key
    answered = 0
    enough = threading.Event()
    lock = threading.Lock()
    unanswered: dict[str, list[str]] = {party: [] for party in keys}  # idempotency keys sent, no answer seen
    sent: dict[str, list[str]] = {party: [] for party in keys}

    def buyer(party: str) -> None:
        nonlocal answered
        with Danbao(server.url, keys[party], retries=0, timeout=5) as client:
            for n in range(KEYS_PER_BUYER_MAX):
                key = f"{party}-top-up-{n}"
                sent[party].append(key)
                try:
                    client.request("POST", "/v1/wallet/top-up", json={"amount": 1, "currency": CUR}, idempotency_key=key)
                except httpx.TransportError:
                    unanswered[party].append(key)  # the server died with this one in flight, or before it
                    return
                with lock:
                    answered += 1
                    if answered >= KILL_AFTER_ANSWERS:
                        enough.set()

    threads = [threading.Thread(target=buyer, args=(party,)) for party in keys]
    for t in threads:
        t.start()
    assert enough.wait(60), "the buyers' top-ups were answered"
    server.process.kill()  # SIGKILL: no shutdown, no flush, whatever was in flight is cut off
    server.process.wait(30)
    for t in threads:
        t.join(30)
        assert not t.is_alive()

    restarted = ServerProcess("danbao", database_url)
    try:
        assert restarted.admin_key is None  # the same books: the operator already has a key
        for party, party_keys in unanswered.items():
            with Danbao(restarted.url, keys[party], retries=0) as client:
                for key in party_keys:
                    moved = client.request("POST", "/v1/wallet/top-up", json={"amount": 1, "currency": CUR}, idempotency_key=key)
                    assert (moved["amount"], moved["currency"]) == (1, CUR)
                # Every key sent took effect once: neither lost with the crash nor repeated by the retry.
                [wallet] = [a for a in client.accounts() if a.id == f"{party}.wallet.{CUR}"]
                assert wallet.balance == len(sent[party]), party
                transfers = client.request("GET", f"/v1/accounts/{wallet.id}/transfers", params={"limit": 1000})["data"]
                assert len(transfers) == len(sent[party]), party
        with Danbao(restarted.url, server.admin_key) as admin:
            audited = admin.audit()
        assert audited.ok, audited
    finally:
        restarted.stop()
