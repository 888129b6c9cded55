"""The sweep of Idempotency-Key records past their day: oldest first, a bounded number a
transaction and a bounded number of transactions a pass, never a record still in its day."""

from __future__ import annotations

import pytest

from danbao.api import idempotency
from danbao.api.idempotency import IdempotencyStore
from danbao.clock import ManualClock
from danbao.ledger import Ledger
from danbao.store.raw import RowsOf

RECORD_ROWS = RowsOf(
    "idempotency_keys",
    ("party_id", "key", "request_hash", "state", "status_code", "response_body", "created_at", "expires_at"),
    ("text", "text", "text", "text", "int4", "text", "int8", "int8"),
)
PER_TRANSACTION = 10
TRANSACTIONS = 3


@pytest.fixture
def store(ledger: Ledger, clock: ManualClock, monkeypatch: pytest.MonkeyPatch) -> IdempotencyStore:
    # Small bounds, so a backlog beyond them is quick to make.
    monkeypatch.setattr(idempotency, "EXPIRED_PER_SWEEP_MAX", PER_TRANSACTION)
    monkeypatch.setattr(idempotency, "SWEEPS_PER_PASS_MAX", TRANSACTIONS)
    return IdempotencyStore(ledger, clock)


def keep(store: IdempotencyStore, records: list[tuple[str, str, int]]) -> None:
    """Records (party, key, expires_at) as the API leaves them: done, with a response."""
    rows = [(party, key, "h" * 64, "done", 201, "{}", 0, expires_at) for party, key, expires_at in records]
    store.db.write_raw(lambda raw: raw.insert(RECORD_ROWS, rows))


def kept(store: IdempotencyStore) -> list[tuple[str, str]]:
    return sorted(store.db.read_raw(lambda raw: raw.rows("SELECT party_id, key FROM idempotency_keys")))


def test_one_transaction_forgets_at_most_its_bound_though_parties_share_key_names(store: IdempotencyStore, clock: ManualClock, monkeypatch: pytest.MonkeyPatch) -> None:
    # Keys are chosen by each party, so two parties' "order-1" are two records.
    monkeypatch.setattr(idempotency, "SWEEPS_PER_PASS_MAX", 1)
    now = clock.now_ns()
    keep(store, [(party, f"order-{i}", now) for party in ("ann", "bob", "cat") for i in range(PER_TRANSACTION)])
    assert store.sweep() == PER_TRANSACTION
    assert len(kept(store)) == 2 * PER_TRANSACTION


def test_the_oldest_records_go_first(store: IdempotencyStore, clock: ManualClock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(idempotency, "SWEEPS_PER_PASS_MAX", 1)
    now = clock.now_ns()
    # Inserted youngest first, so neither insertion order nor key order is age order.
    keep(store, [("ann", f"k{i:02d}", now - i) for i in range(PER_TRANSACTION + 5)])
    assert store.sweep() == PER_TRANSACTION
    assert kept(store) == [("ann", f"k{i:02d}") for i in range(5)]


def test_a_pass_goes_on_while_transactions_come_back_full(store: IdempotencyStore, clock: ManualClock) -> None:
    now = clock.now_ns()
    backlog = 2 * PER_TRANSACTION + 7
    keep(store, [("ann", f"old-{i}", now - 1) for i in range(backlog)])
    keep(store, [("ann", f"live-{i}", now + 1) for i in range(5)])
    assert store.sweep() == backlog
    assert kept(store) == [("ann", f"live-{i}") for i in range(5)]


def test_a_pass_is_bounded_and_the_next_goes_on_where_it_stopped(store: IdempotencyStore, clock: ManualClock) -> None:
    now = clock.now_ns()
    keep(store, [("ann", f"old-{i}", now) for i in range(TRANSACTIONS * PER_TRANSACTION + 3)])
    assert store.sweep() == TRANSACTIONS * PER_TRANSACTION
    assert store.sweep() == 3
    assert store.sweep() == 0
    assert kept(store) == []


def test_a_record_is_forgotten_at_its_expiry_to_the_nanosecond_and_not_before(store: IdempotencyStore, clock: ManualClock) -> None:
    now = clock.now_ns()
    keep(store, [("ann", "due", now), ("ann", "early", now + 1)])
    assert store.sweep() == 1
    assert kept(store) == [("ann", "early")]
