"""Pending holds: post in full or in part, void, and expiry driven by the injected clock."""

import pytest

import danbao.ledger.ledger as ledger_module
from danbao.clock import NS_PER_SECOND
from danbao.errors import InvariantViolation
from danbao.ledger import AccountFlags, Hold, Ledger, NewTransfer, Result, TransferFlags
from danbao.ledger.engine import Totals, plan_batch
from danbao.ledger.model import TOTAL_MAX
from danbao.money import AMOUNT_MAX_MINOR
from danbao.store.raw import Raw
from danbao.store.schema import GENESIS_HASH
from tests.ledger.helpers import fund, open_accounts, totals

LINKED = int(TransferFlags.linked)
PENDING = int(TransferFlags.pending)
POST = int(TransferFlags.post_pending)
VOID = int(TransferFlags.void_pending)


@pytest.fixture
def held(ledger):
    open_accounts(ledger, "alice", "bob")
    fund(ledger, "alice", 1000)
    [r] = ledger.create_transfers([NewTransfer("h", "alice", "bob", 400, "USD", flags=PENDING, timeout_seconds=60)])
    assert r.result is Result.ok
    return ledger


def test_a_hold_reserves_funds_without_moving_them(held):
    assert totals(held, "alice") == (400, 0, 0, 1000)
    assert totals(held, "bob") == (0, 0, 400, 0)
    assert held.account("alice").available == 600
    [r] = held.create_transfers([NewTransfer("x", "alice", "bob", 601, "USD")])
    assert r.result is Result.insufficient_funds
    assert [h.pending_id for h in held.holds("alice").items] == ["h"]


def test_post_in_full(held):
    [r] = held.create_transfers([NewTransfer("p", pending_id="h", flags=POST)])
    assert (r.result, r.amount) == (Result.ok, 400)
    assert totals(held, "alice") == (0, 400, 0, 1000)
    assert totals(held, "bob") == (0, 0, 0, 400)
    assert held.holds("alice").items == []
    assert [h.pending_id for h in held.holds("alice", state="posted").items] == ["h"]


def test_post_less_than_held_releases_the_rest(held):
    [r] = held.create_transfers([NewTransfer("p", pending_id="h", flags=POST, amount=150)])
    assert (r.result, r.amount) == (Result.ok, 150)
    assert totals(held, "alice") == (0, 150, 0, 1000)
    assert held.account("alice").available == 850


def test_void_releases_everything(held):
    [r] = held.create_transfers([NewTransfer("v", pending_id="h", flags=VOID)])
    assert r.result is Result.ok
    assert totals(held, "alice") == (0, 0, 0, 1000)
    assert totals(held, "bob") == (0, 0, 0, 0)


@pytest.mark.parametrize(
    ("second", "code"),
    [
        (NewTransfer("p2", pending_id="h", flags=POST), Result.pending_already_posted),
        (NewTransfer("v2", pending_id="h", flags=VOID), Result.pending_already_posted),
    ],
)
def test_a_hold_resolves_once(held, second, code):
    held.create_transfers([NewTransfer("p", pending_id="h", flags=POST)])
    [r] = held.create_transfers([second])
    assert r.result is code


def test_post_after_void_is_refused(held):
    held.create_transfers([NewTransfer("v", pending_id="h", flags=VOID)])
    [r] = held.create_transfers([NewTransfer("p", pending_id="h", flags=POST)])
    assert r.result is Result.pending_already_voided


@pytest.mark.parametrize(
    ("transfer", "code"),
    [
        (NewTransfer("p", pending_id="h", flags=POST, amount=401), Result.amount_exceeds_pending),
        (NewTransfer("p", pending_id="h", flags=POST, debit_account_id="bob"), Result.pending_mismatch),
        (NewTransfer("p", pending_id="h", flags=POST, credit_account_id="alice"), Result.pending_mismatch),
        (NewTransfer("p", pending_id="h", flags=POST, currency="EUR"), Result.pending_mismatch),
        (NewTransfer("p", pending_id="h", flags=VOID, amount=10), Result.pending_mismatch),
        (NewTransfer("p", pending_id="fund-alice-1000", flags=POST), Result.pending_not_pending),
        (NewTransfer("p", pending_id="nope", flags=VOID), Result.pending_not_found),
        (NewTransfer("p", pending_id="h", flags=POST, amount=0), Result.amount_invalid),
        (NewTransfer("p", pending_id="h", flags=POST, debit_account_id="not an id"), Result.account_id_invalid),
        (NewTransfer("p", pending_id="h", flags=VOID, currency="XXQ"), Result.currency_unknown),
    ],
)
def test_bad_resolutions_are_refused_and_change_nothing(held, transfer, code):
    before = (totals(held, "alice"), totals(held, "bob"))
    [r] = held.create_transfers([transfer])
    assert r.result is code
    assert (totals(held, "alice"), totals(held, "bob")) == before


def test_hold_and_post_in_one_batch(held):
    results = held.create_transfers(
        [
            NewTransfer("h2", "alice", "bob", 100, "USD", flags=PENDING),
            NewTransfer("p2", pending_id="h2", flags=POST, amount=60),
        ]
    )
    assert [r.result for r in results] == [Result.ok, Result.ok]
    assert totals(held, "bob") == (0, 0, 400, 60)


@pytest.mark.parametrize("resolution", [POST, VOID], ids=["post", "void"])
def test_a_failed_chain_leaves_the_hold_it_resolved_pending(held, resolution):
    before = (totals(held, "alice"), totals(held, "bob"))
    results = held.create_transfers(
        [
            NewTransfer("r", pending_id="h", flags=resolution | LINKED),
            NewTransfer("x", "alice", "bob", 10_000, "USD"),  # more than alice has: the chain fails
        ]
    )
    assert [r.result for r in results] == [Result.linked_event_failed, Result.insufficient_funds]
    assert (totals(held, "alice"), totals(held, "bob")) == before
    assert [h.pending_id for h in held.holds("alice").items] == ["h"]
    [again] = held.create_transfers([NewTransfer("r", pending_id="h", flags=resolution)])
    assert again.result is Result.ok


def _fill(ledger, prefix: str, count: int, **fields) -> None:
    """`count` transfers of the largest amount, in batches, all of which must succeed."""
    for start in range(0, count, 1000):
        batch = [NewTransfer(f"{prefix}{start + i}", amount=AMOUNT_MAX_MINOR, **fields) for i in range(min(1000, count - start))]
        assert all(r.result is Result.ok for r in ledger.create_transfers(batch))


FILLS = TOTAL_MAX // AMOUNT_MAX_MINOR  # one more of the largest amount overflows a total


def test_a_hold_that_would_overflow_the_pending_totals_is_refused(ledger):
    open_accounts(ledger, "src", "dst", flags=0)
    _fill(ledger, "h", FILLS, debit_account_id="src", credit_account_id="dst", currency="USD", flags=PENDING)
    before = (totals(ledger, "src"), totals(ledger, "dst"))
    [r] = ledger.create_transfers([NewTransfer("over", "src", "dst", AMOUNT_MAX_MINOR, "USD", flags=PENDING)])
    assert r.result is Result.overflow
    assert (totals(ledger, "src"), totals(ledger, "dst")) == before


# Who filled the credit account's posted total: the hold's own debit account (both sides
# full), or another account (the credit side alone full).
@pytest.mark.parametrize("filler", ["src", "other"], ids=["both sides full", "credit side full"])
def test_a_post_that_would_overflow_the_posted_totals_is_refused_and_the_hold_stays(ledger, filler):
    open_accounts(ledger, "src", "dst", "other", flags=0)
    [r] = ledger.create_transfers([NewTransfer("h", "src", "dst", AMOUNT_MAX_MINOR, "USD", flags=PENDING)])
    assert r.result is Result.ok
    _fill(ledger, "t", FILLS, debit_account_id=filler, credit_account_id="dst", currency="USD")
    before = (totals(ledger, "src"), totals(ledger, "dst"))
    [r] = ledger.create_transfers([NewTransfer("p", pending_id="h", flags=POST)])
    assert r.result is Result.overflow
    assert (totals(ledger, "src"), totals(ledger, "dst")) == before
    [r] = ledger.create_transfers([NewTransfer("v", pending_id="h", flags=VOID)])
    assert r.result is Result.ok  # voiding moves nothing posted, so it still may


def test_a_hold_cannot_be_posted_at_its_deadline_even_before_its_expiry_is_written(held, clock):
    # Inside a transaction due holds are voided once, at its first write: the engine's own
    # check of the deadline is what refuses a post that comes at it later.
    def work(txn):  # type: ignore[no-untyped-def]
        assert txn.create_transfers([NewTransfer("first", "alice", "bob", 1, "USD")])[0].result is Result.ok
        clock.advance(60, ns=1)  # exactly the hold's deadline: 60 s after its timestamp
        return txn.create_transfers([NewTransfer("p", pending_id="h", flags=POST)])[0].result

    assert held.transaction(work) is Result.pending_expired
    assert [h.pending_id for h in held.holds("alice").items] == ["h"]  # still pending, until expired


def test_an_expired_hold_cannot_be_posted_and_voids_itself(held, clock):
    # The timeout runs from the hold's ledger timestamp, 1 ns after the funding transfer.
    clock.advance(60, ns=1)
    [r] = held.create_transfers([NewTransfer("p", pending_id="h", flags=POST)])
    assert r.result is Result.pending_expired
    # The same write voided the due hold: its funds are available again.
    assert totals(held, "alice") == (0, 0, 0, 1000)
    assert [h.pending_id for h in held.holds(state="expired").items] == ["h"]
    expiry = held.transfer("~h")
    assert (expiry.code, expiry.pending_id, expiry.flags) == ("expiry", "h", int(TransferFlags.expiry))


def test_expiry_is_run_by_the_worker_and_is_idempotent(held, clock):
    clock.advance(60)
    assert held.expire_due() == 0
    assert totals(held, "alice")[0] == 400
    clock.advance(ns=1)
    assert held.expire_due() == 1
    assert held.expire_due() == 0
    assert totals(held, "alice") == (0, 0, 0, 1000)


def test_a_hold_without_timeout_never_expires(held, clock):
    held.create_transfers([NewTransfer("forever", "alice", "bob", 100, "USD", flags=PENDING)])
    clock.advance(10 * 365 * 24 * 3600)
    held.expire_due()
    [r] = held.create_transfers([NewTransfer("p", pending_id="forever", flags=POST)])
    assert r.result is Result.ok


def test_replayed_post_is_exists(held):
    post = NewTransfer("p", pending_id="h", flags=POST, amount=100)
    held.create_transfers([post])
    [r] = held.create_transfers([post])
    assert (r.result, r.amount) == (Result.exists, 100)
    [r] = held.create_transfers([NewTransfer("p", pending_id="h", flags=POST, amount=101)])
    assert r.result is Result.exists_with_different_fields


@pytest.fixture
def due_lookups(monkeypatch):
    """How many times the ledger has asked the database for due holds."""
    asked = []
    rows_later = Raw.rows_later

    def counting(raw, sql, params=()):
        if "expires_at <= ?" in sql:
            asked.append(sql)
        return rows_later(raw, sql, params)

    monkeypatch.setattr(Raw, "rows_later", counting)
    return asked


def _at(clock, timestamp_ns: int) -> None:
    clock.advance(ns=timestamp_ns - clock.now_ns())


def test_the_due_lookup_is_skipped_until_a_hold_can_be_due_and_the_hold_still_expires_on_time(ledger, clock, due_lookups):
    open_accounts(ledger, "alice", "bob")
    fund(ledger, "alice", 1000)
    [h] = ledger.create_transfers([NewTransfer("h", "alice", "bob", 100, "USD", flags=PENDING, timeout_seconds=2)])
    clock.advance(1.5)
    fund(ledger, "alice", 1, id="learns")  # h, pending, is due half a second from now
    asked = len(due_lookups)
    fund(ledger, "alice", 1, id="skips")
    assert len(due_lookups) == asked
    _at(clock, h.timestamp + 2 * NS_PER_SECOND - 1)
    fund(ledger, "alice", 1, id="still-early")
    assert len(due_lookups) == asked and ledger.holds(state="expired").items == []
    clock.advance(ns=1)  # h's deadline, before the second after the head
    fund(ledger, "alice", 1, id="on-time")
    assert len(due_lookups) == asked + 1
    assert [x.pending_id for x in ledger.holds(state="expired").items] == ["h"]


def test_a_hold_another_writer_opens_expires_on_time_though_this_ledger_learned_nothing_was_pending(ledger, db, clock):
    open_accounts(ledger, "alice", "bob")
    fund(ledger, "alice", 1000)
    fund(ledger, "alice", 1, id="learns")  # nothing pending: no hold is due for a second
    with Ledger(db, clock) as other:
        [h] = other.create_transfers([NewTransfer("h", "alice", "bob", 100, "USD", flags=PENDING, timeout_seconds=1)])
    _at(clock, h.timestamp + NS_PER_SECOND)
    fund(ledger, "alice", 1, id="on-time")
    assert [x.pending_id for x in ledger.holds(state="expired").items] == ["h"]


def test_a_hold_opened_early_in_a_batch_expires_on_time_though_the_batch_ran_on(ledger, clock):
    open_accounts(ledger, "alice", "bob")
    fund(ledger, "alice", 1000)
    clock.advance(1)  # past what the funding taught: this batch looks up due holds and learns
    [h, _] = ledger.create_transfers(
        [NewTransfer("h", "alice", "bob", 100, "USD", flags=PENDING, timeout_seconds=1), NewTransfer("after", "alice", "bob", 1, "USD")]
    )
    _at(clock, h.timestamp + NS_PER_SECOND)  # before a second after the batch's last entry
    fund(ledger, "alice", 1, id="on-time")
    assert [x.pending_id for x in ledger.holds(state="expired").items] == ["h"]


def test_a_plain_transfer_made_earlier_in_the_same_batch_is_not_a_hold(held):
    results = held.create_transfers([
        NewTransfer("plain", "alice", "bob", 10, "USD"),
        NewTransfer("p", pending_id="plain", flags=POST),
    ])
    assert [r.result for r in results] == [Result.ok, Result.pending_not_pending]


def test_the_engine_refuses_a_hold_from_its_deadline_on_though_nothing_voided_it_yet():
    # The ledger voids due holds in the write that loads them; the engine's own rule is the
    # backstop for a plan made without that (a hold falling due inside a transaction).
    hold = Hold("h", "a", "b", 400, "USD", timestamp=5, expires_at=100, state="pending")
    for now, expected in ((99, Result.ok), (100, Result.pending_expired), (101, Result.pending_expired)):
        plan = plan_batch(
            [[NewTransfer("p", pending_id="h", flags=POST)]],
            accounts={"a": Totals("USD", 0, 400, 0, 0, 1000), "b": Totals("USD", 0, 0, 0, 400, 0)},
            journal={}, holds={"h": hold}, due_holds=(), now_ns=now, head_timestamp=50, head_hash=GENESIS_HASH,
        )
        assert plan.results[0][0].result is expected, now


def test_the_engine_fails_loudly_rather_than_plan_totals_that_break_an_accounts_flags():
    # Only an impossible state can get here (the guards refuse first): an overdrawn
    # no_overdraft account, as a corrupted row would load. A credit that leaves it
    # overdrawn must not be planned as if all were well.
    overdrawn = Totals("USD", int(AccountFlags.no_overdraft), 0, 500, 0, 100)
    with pytest.raises(InvariantViolation, match="overdraft"):
        plan_batch(
            [[NewTransfer("in", "src", "a", 10, "USD")]],
            accounts={"a": overdrawn, "src": Totals("USD", 0, 0, 0, 0, 0)},
            journal={}, holds={}, due_holds=(), now_ns=1, head_timestamp=0, head_hash=GENESIS_HASH,
        )


def test_a_batch_that_names_known_accounts_still_finds_the_hold_it_posts(held):
    # The first transfer names only accounts this ledger just wrote; the post names a
    # hold, which only the database knows.
    results = held.create_transfers([
        NewTransfer("plain", "alice", "bob", 10, "USD"),
        NewTransfer("p", pending_id="h", flags=POST, amount=100),
    ])
    assert [(r.result, r.amount) for r in results] == [(Result.ok, 10), (Result.ok, 100)]
    assert totals(held, "alice") == (0, 110, 0, 1000)


def test_holds_due_beyond_one_batch_are_voided_by_the_next_write(ledger, clock, monkeypatch):
    monkeypatch.setattr(ledger_module, "EXPIRIES_PER_BATCH_MAX", 2)  # a write voids two at most
    open_accounts(ledger, "alice", "bob")
    fund(ledger, "alice", 1000)
    ledger.create_transfers([NewTransfer(f"h{i}", "alice", "bob", 100, "USD", flags=PENDING, timeout_seconds=60) for i in range(3)])
    clock.advance(61)
    for write in ("t1", "t2"):
        [r] = ledger.create_transfers([NewTransfer(write, "alice", "bob", 1, "USD")])
        assert r.result is Result.ok
    # The first write voided two and could not know the third was due too: the second,
    # on accounts the ledger knows, must still look.
    assert sorted(h.pending_id for h in ledger.holds(state="expired").items) == ["h0", "h1", "h2"]
    assert totals(ledger, "alice")[0] == 0
