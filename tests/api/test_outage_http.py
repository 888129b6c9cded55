"""When the database goes away under the API (a restart, a failover, connections cut), a
request gets 503 with Retry-After, never a 4xx that blames the request, and nothing is
stored under its Idempotency-Key: the retry with the same key does the work once."""

from __future__ import annotations

import httpx
import psycopg
import pytest
from sqlalchemy import make_url

from tests.api.conftest import Live

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
