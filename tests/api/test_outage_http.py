"""When the database goes away under the API (a restart, a failover, connections cut), a
request gets 503 with Retry-After, never a 4xx that blames the request, and nothing is
stored under its Idempotency-Key: the retry with the same key does the work once. A
PostgreSQL server that crashes and comes back keeps every answered call."""

from __future__ import annotations

import threading

import httpx
import psycopg
import pytest
from sqlalchemy import make_url

from danbao.bench.api_bench import ServerProcess
from danbao.client import ApiError, Danbao
from danbao.store.throwaway import ThrowawayPostgres
from tests.api.conftest import Live
from tests.api.traffic import Answers, buyers_with_keys, wallet_balance

CUR = "CNY"


def _cut_connections(live: Live, postgres) -> int:  # type: ignore[no-untyped-def]
    """What a restart does to the server's connections: every one of them is terminated."""
    name = make_url(live.services.db.url).database
    with psycopg.connect(postgres.dsn(), autocommit=True) as admin:
        return len(admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)).fetchall())


@pytest.fixture
def on_postgres(live: Live, request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    if live.services.db.dialect != "postgresql":
        pytest.skip("SQLite is a file in this process: there is no connection to lose")
    return request.getfixturevalue("postgres")


def test_a_cut_connection_is_503_and_the_retry_with_the_same_key_does_the_work_once(live: Live, on_postgres) -> None:  # type: ignore[no-untyped-def]
    live.party("buyer", "ann")
    key = live.admin.issue_key("ann").key
    http = httpx.Client(base_url=live.url, headers={"Authorization": f"Bearer {key}"})
    assert http.post("/v1/wallet/top-up", json={"amount": 100, "currency": CUR}).status_code == 201
    assert _cut_connections(live, on_postgres) > 0
    first = http.post("/v1/wallet/top-up", json={"amount": 700, "currency": CUR}, headers={"Idempotency-Key": "k1"})
    assert first.status_code == 503, first.text
    assert first.headers["content-type"] == "application/problem+json"
    assert first.json()["code"] == "store_unavailable" and int(first.headers["retry-after"]) > 0
    again = http.post("/v1/wallet/top-up", json={"amount": 700, "currency": CUR}, headers={"Idempotency-Key": "k1"})
    assert again.status_code == 201 and "idempotent-replayed" not in again.headers
    replay = http.post("/v1/wallet/top-up", json={"amount": 700, "currency": CUR}, headers={"Idempotency-Key": "k1"})
    assert replay.headers.get("idempotent-replayed") == "true"
    assert live.services.ledger.account("ann.wallet.CNY").balance == 800  # type: ignore[union-attr]


def test_the_client_rides_out_a_cut_connection(live: Live, on_postgres) -> None:  # type: ignore[no-untyped-def]
    ann = live.party("buyer", "ann")
    ann.top_up(100, CUR)
    assert _cut_connections(live, on_postgres) > 0
    assert ann.top_up(700, CUR).amount == 700  # a 503, retried with the same key
    assert live.services.ledger.account("ann.wallet.CNY").balance == 800  # type: ignore[union-attr]


BUYERS = 4
CRASH_AFTER_ANSWERS = 40  # top-ups answered before the crash, so it lands mid-traffic
KEYS_PER_BUYER_MAX = 10_000  # a bound on each buyer's loop, far above what runs before it


def test_a_postgresql_crash_mid_traffic_loses_no_answered_top_up_and_the_api_serves_on() -> None:
    """The database server crashes (stopped at once: no checkpoint, no shutdown) while four
    buyers top up, and comes back, recovering from its WAL. The API process lives through
    it: calls meanwhile get 503, and afterwards every key answered before the crash is in
    the books, every key cut off by it takes effect once when retried, and the audit is
    clean."""
    with ThrowawayPostgres() as cluster:
        server = ServerProcess("danbao", cluster.create_database("crash"))
        try:
            assert server.admin_key is not None
            with Danbao(server.url, server.admin_key) as admin:
                keys = buyers_with_keys(admin, BUYERS)
            answers = Answers(CRASH_AFTER_ANSWERS)
            answered: dict[str, int] = {party: 0 for party in keys}  # each written by its buyer's thread alone
            cut_off: dict[str, str | None] = {party: None for party in keys}

            def buyer(party: str) -> None:
                with Danbao(server.url, keys[party], retries=0, timeout=10) as client:
                    for n in range(KEYS_PER_BUYER_MAX):
                        key = f"{party}-{n}"
                        try:
                            client.request("POST", "/v1/wallet/top-up", json={"amount": 1, "currency": CUR}, idempotency_key=key)
                        except ApiError as refused:
                            assert refused.status == 503 and refused.code in ("store_unavailable", "store_busy"), refused
                            cut_off[party] = key
                            return
                        answered[party] += 1
                        answers.add()

            threads = [threading.Thread(target=buyer, args=(party,)) for party in keys]
            for t in threads:
                t.start()
            assert answers.enough.wait(60), "top-ups were answered before the crash"
            cluster.crash()
            for t in threads:
                t.join(60)
                assert not t.is_alive()
            assert all(cut_off.values()), "every buyer met the outage"
            cluster.restart()
            for party, key in cut_off.items():
                # The client retries 503s with the same key while the server's pool reconnects.
                with Danbao(server.url, keys[party]) as client:
                    client.request("POST", "/v1/wallet/top-up", json={"amount": 1, "currency": CUR}, idempotency_key=key)
                    # Each answered top-up survived the crash, and the cut-off one happened once.
                    assert wallet_balance(client, party, CUR) == answered[party] + 1, party
            with Danbao(server.url, server.admin_key) as admin:
                audited = admin.audit()
            assert audited.ok, audited
        finally:
            server.stop()
