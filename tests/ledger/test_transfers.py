"""Transfers: every result code, and a failed transfer changes nothing."""

import asyncio

import pytest

from danbao.ledger import (
    AccountFlags,
    BatchTooLarge,
    Ledger,
    NewAccount,
    NewTransfer,
    Result,
    TransferFlags,
    engine,
)
from danbao.ledger.audit import audit
from danbao.ledger.group_commit import Failed
from danbao.ledger.model import TIMEOUT_SECONDS_MAX, TRANSFERS_PER_BATCH_MAX
from danbao.money import AMOUNT_MAX_MINOR
from danbao.store.errors import TransientStoreError
from tests.ledger.helpers import fund, open_accounts, totals

PENDING = int(TransferFlags.pending)
POST = int(TransferFlags.post_pending)
VOID = int(TransferFlags.void_pending)
LINKED = int(TransferFlags.linked)
BALANCING = int(TransferFlags.balancing)


@pytest.fixture
def funded(ledger):
    open_accounts(ledger, "alice", "bob")
    open_accounts(ledger, "euro", currency="EUR")
    fund(ledger, "alice", 1000)
    return ledger


def snapshot(ledger):
    ids = ["alice", "bob", "bank", "euro"]
    return {a.id: (a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted) for a in ledger.accounts(ids)}, ledger.transfers_of("alice").items


def test_a_transfer_moves_money_once_and_is_journaled(funded):
    [r] = funded.create_transfers([NewTransfer("t1", "alice", "bob", 250, "USD", code="p2p", ref="order-1", metadata={"note": "lunch"})])
    assert (r.result, r.amount) == (Result.ok, 250)
    assert funded.account("alice").balance == 750
    assert funded.account("bob").balance == 250
    t = funded.transfer("t1")
    assert (t.code, t.ref, t.metadata, t.timestamp) == ("p2p", "order-1", '{"note":"lunch"}', r.timestamp)
    assert [x.id for x in funded.transfers_by_ref("order-1")] == ["t1"]


def test_flags_may_be_named_by_the_enum_and_mean_what_their_ints_mean(funded):
    held, chained = funded.create_transfers([
        NewTransfer("h1", "alice", "bob", 300, "USD", flags=TransferFlags.pending, timeout_seconds=60),
        NewTransfer("c1", "alice", "bob", 10_000, "USD", flags=TransferFlags.linked),  # a chain left open
    ])
    assert (held.result, chained.result) == (Result.ok, Result.linked_event_chain_open)
    [post] = funded.create_transfers([NewTransfer("p1", amount=200, flags=TransferFlags.post_pending, pending_id="h1")])
    assert post.result is Result.ok
    assert (funded.account("alice").balance, funded.account("bob").balance) == (800, 200)
    assert funded.transfer("h1").flags == PENDING and type(funded.transfer("p1").flags) is int
    [again] = funded.create_transfers([NewTransfer("p1", amount=200, flags=POST, pending_id="h1")])
    assert again.result is Result.exists  # the same transfer, however its flags were named
    assert audit(funded.db).ok


def test_replay_is_exists_and_moves_nothing(funded):
    t = NewTransfer("t1", "alice", "bob", 250, "USD")
    first = funded.create_transfers([t])[0]
    again = funded.create_transfers([t])[0]
    assert again.result is Result.exists
    assert (again.timestamp, again.amount) == (first.timestamp, first.amount)
    assert funded.account("bob").balance == 250


@pytest.mark.parametrize(
    "changed",
    [
        dict(amount=251),
        dict(credit_account_id="bank"),
        dict(code="other"),
        dict(ref="r2"),
        dict(metadata={"a": 1}),
        dict(flags=PENDING),
    ],
)
def test_same_id_different_fields_is_refused(funded, changed):
    base = dict(id="t1", debit_account_id="alice", credit_account_id="bob", amount=250, currency="USD")
    funded.create_transfers([NewTransfer(**base)])
    before = snapshot(funded)
    [r] = funded.create_transfers([NewTransfer(**{**base, **changed})])
    assert r.result is Result.exists_with_different_fields
    assert snapshot(funded) == before


def test_a_hold_or_its_post_replayed_with_other_fields_is_refused(funded):
    funded.create_transfers([
        NewTransfer("h1", "alice", "bob", 300, "USD", flags=PENDING, timeout_seconds=60),
        NewTransfer("h2", "alice", "bob", 300, "USD", flags=PENDING, timeout_seconds=60),
        NewTransfer("p1", amount=100, flags=POST, pending_id="h1"),
    ])
    before = snapshot(funded)
    for replay in (
        NewTransfer("h1", "alice", "bob", 300, "USD", flags=PENDING, timeout_seconds=61),
        NewTransfer("h1", "alice", "bob", 300, "USD", flags=PENDING),
        NewTransfer("p1", amount=100, flags=POST, pending_id="h2"),
    ):
        [r] = funded.create_transfers([replay])
        assert r.result is Result.exists_with_different_fields, replay
    assert snapshot(funded) == before
    assert [r.result for r in funded.create_transfers([
        NewTransfer("h1", "alice", "bob", 300, "USD", flags=PENDING, timeout_seconds=60),
        NewTransfer("p1", amount=100, flags=POST, pending_id="h1"),
    ])] == [Result.exists, Result.exists]


def t(**over):
    base = dict(id="x", debit_account_id="alice", credit_account_id="bob", amount=10, currency="USD")
    return NewTransfer(**{**base, **over})


@pytest.mark.parametrize(
    ("transfer", "code"),
    [
        (t(id=""), Result.id_invalid),
        (t(id="~x"), Result.id_invalid),
        (t(id=None), Result.id_invalid),
        (t(id="a b"), Result.id_invalid),
        (t(id="x\n"), Result.id_invalid),
        (t(id="a\x00b"), Result.id_invalid),  # PostgreSQL's text refuses NUL: refused before the lookup
        (t(id="\udcff"), Result.id_invalid),  # a lone surrogate, as an undecodable CLI byte arrives
        (t(flags=POST, pending_id="p\x00"), Result.pending_id_invalid),
        (t(flags=POST, pending_id="\ud800"), Result.pending_id_invalid),
        (t(debit_account_id="\udcff"), Result.account_id_invalid),
        (t(credit_account_id="b\x00b"), Result.account_id_invalid),
        (t(flags=PENDING | POST), Result.flags_invalid),
        (t(flags=1 << 10), Result.flags_invalid),
        (t(flags=True), Result.flags_invalid),
        (t(flags=int(TransferFlags.expiry)), Result.flags_invalid),
        (t(flags=POST | BALANCING, pending_id="p"), Result.flags_invalid),
        (t(flags=POST), Result.pending_id_required),
        (t(pending_id="p"), Result.pending_id_must_be_empty),
        (t(flags=POST, pending_id=["p"]), Result.pending_id_invalid),
        (t(flags=POST, pending_id="p q"), Result.pending_id_invalid),
        (t(timeout_seconds=5), Result.timeout_invalid),
        (t(flags=PENDING, timeout_seconds=-1), Result.timeout_invalid),
        (t(flags=PENDING, timeout_seconds=TIMEOUT_SECONDS_MAX + 1), Result.timeout_invalid),
        (t(code="Bad Code"), Result.code_invalid),
        (t(code=""), Result.code_invalid),
        (t(code="bench\n"), Result.code_invalid),
        (t(ref="no spaces allowed"), Result.ref_invalid),
        (t(ref="r\n"), Result.ref_invalid),
        (t(metadata={"x": "y" * 2000}), Result.metadata_invalid),
        (t(metadata=["not", "an", "object"]), Result.metadata_invalid),
        (t(metadata={"f": float("nan")}), Result.metadata_invalid),
        (t(metadata={"f": object()}), Result.metadata_invalid),
        (t(metadata={1: "int key"}), Result.metadata_invalid),
        (t(metadata={"note": "\ud800"}), Result.metadata_invalid),  # a lone surrogate
        (t(amount=0), Result.amount_invalid),
        (t(amount=-5), Result.amount_invalid),
        (t(amount=AMOUNT_MAX_MINOR + 1), Result.amount_invalid),
        (t(amount=10.0), Result.amount_invalid),
        (t(amount=True), Result.amount_invalid),
        (t(amount=None), Result.amount_invalid),
        (t(debit_account_id=""), Result.account_id_invalid),
        (t(credit_account_id=None), Result.account_id_invalid),
        (t(credit_account_id="bob\n"), Result.account_id_invalid),
        (t(credit_account_id="alice"), Result.accounts_must_differ),
        (t(currency="XXX"), Result.currency_unknown),
        (t(currency=["USD"]), Result.currency_unknown),
        (t(flags=POST, pending_id="p", currency={"USD": 1}), Result.currency_unknown),
        (t(debit_account_id="nobody"), Result.debit_account_not_found),
        (t(credit_account_id="nobody"), Result.credit_account_not_found),
        (t(credit_account_id="euro"), Result.currency_mismatch),
        (t(currency="EUR"), Result.currency_mismatch),
        (t(amount=1001), Result.insufficient_funds),
        (t(flags=PENDING, amount=1001), Result.insufficient_funds),
        (t(flags=POST, pending_id="nothing"), Result.pending_not_found),
    ],
)
def test_each_refusal_has_its_code_and_changes_nothing(funded, transfer, code):
    before = snapshot(funded)
    [r] = funded.create_transfers([transfer])
    assert r.result is code
    assert not r.ok
    assert snapshot(funded) == before


def test_a_hold_may_last_the_longest_timeout(funded, clock):
    [r] = funded.create_transfers([t(id="long", flags=PENDING, timeout_seconds=TIMEOUT_SECONDS_MAX)])
    assert r.result is Result.ok
    clock.advance(TIMEOUT_SECONDS_MAX)  # the hold's timestamp is a little after the clock's now
    assert funded.expire_due() == 0
    clock.advance(1)
    assert funded.expire_due() == 1


def test_no_overcredit_accounts_count_pending_credits_against_their_debits(ledger):
    ledger.create_accounts([NewAccount("cap", "USD", "system", flags=int(AccountFlags.no_overcredit)), NewAccount("src", "USD", "bank_clearing")])
    assert ledger.create_transfers([NewTransfer("out", "cap", "src", 100, "USD")])[0].result is Result.ok
    results = ledger.create_transfers([
        NewTransfer("in1", "src", "cap", 60, "USD", flags=PENDING),
        NewTransfer("in2", "src", "cap", 50, "USD", flags=PENDING),
        NewTransfer("in3", "src", "cap", 41, "USD"),
        NewTransfer("in4", "src", "cap", 40, "USD"),
    ])
    assert [r.result for r in results] == [Result.ok, Result.exceeds_debits, Result.exceeds_debits, Result.ok]


def test_no_overcredit_accounts_refuse_credits_beyond_debits(ledger):
    ledger.create_accounts([NewAccount("cap", "USD", "system", flags=int(AccountFlags.no_overcredit)), NewAccount("src", "USD", "bank_clearing")])
    [r] = ledger.create_transfers([NewTransfer("x", "src", "cap", 1, "USD")])
    assert r.result is Result.exceeds_debits
    ledger.create_transfers([NewTransfer("y", "cap", "src", 5, "USD")])
    [r] = ledger.create_transfers([NewTransfer("z", "src", "cap", 5, "USD")])
    assert r.result is Result.ok


@pytest.mark.parametrize("flags", [0, PENDING], ids=["posted", "pending"])
def test_overflow_of_a_total_is_refused_on_either_side(ledger, flags):
    accounts = [NewAccount(name, "USD", "bank_clearing") for name in ("src", "dst", "fresh_src", "fresh_dst")]
    assert all(r.result is Result.ok for r in ledger.create_accounts(accounts))
    big = AMOUNT_MAX_MINOR
    count = (2**63 - 1) // big
    for chunk in range(0, count, 1000):
        n = min(1000, count - chunk)
        results = ledger.create_transfers([NewTransfer(f"b{chunk + i}", "src", "dst", big, "USD", flags=flags) for i in range(n)])
        assert all(r.result is Result.ok for r in results)
    before = [ledger.account(a.id) for a in accounts]
    # src's debits and dst's credits are each a transfer short of the bound: either side
    # alone refuses, whichever account on the other side has room.
    for id, debit, credit in (("debit-side", "src", "fresh_dst"), ("credit-side", "fresh_src", "dst"), ("both", "src", "dst")):
        [r] = ledger.create_transfers([NewTransfer(id, debit, credit, big, "USD", flags=flags)])
        assert r.result is Result.overflow, id
    assert [ledger.account(a.id) for a in accounts] == before
    # The bound itself is reachable: what is left moves, and then nothing more.
    rest = (2**63 - 1) - count * big
    [exact, beyond] = ledger.create_transfers([
        NewTransfer("to-the-bound", "src", "dst", rest, "USD", flags=flags),
        NewTransfer("past-the-bound", "fresh_src", "dst", 1, "USD", flags=flags),
    ])
    assert (exact.result, beyond.result) == (Result.ok, Result.overflow)


def test_balancing_moves_at_most_what_the_debit_account_has(funded):
    [r] = funded.create_transfers([NewTransfer("sweep", "alice", "bob", 5000, "USD", flags=BALANCING)])
    assert (r.result, r.amount) == (Result.ok, 1000)
    assert funded.account("alice").balance == 0
    [again] = funded.create_transfers([NewTransfer("sweep", "alice", "bob", 5000, "USD", flags=BALANCING)])
    assert (again.result, again.amount) == (Result.exists, 1000)
    # A replay is the same transfer if its ceiling still admits what moved, and no other.
    [exact] = funded.create_transfers([NewTransfer("sweep", "alice", "bob", 1000, "USD", flags=BALANCING)])
    assert (exact.result, exact.amount) == (Result.exists, 1000)
    [lower] = funded.create_transfers([NewTransfer("sweep", "alice", "bob", 999, "USD", flags=BALANCING)])
    assert lower.result is Result.exists_with_different_fields
    [empty] = funded.create_transfers([NewTransfer("sweep2", "alice", "bob", 5000, "USD", flags=BALANCING)])
    assert empty.result is Result.insufficient_funds


def test_balancing_leaves_what_a_hold_has_set_aside(funded):
    [held] = funded.create_transfers([NewTransfer("h", "alice", "bob", 300, "USD", flags=PENDING)])
    assert held.result is Result.ok
    [r] = funded.create_transfers([NewTransfer("sweep", "alice", "bob", 5000, "USD", flags=BALANCING)])
    assert (r.result, r.amount) == (Result.ok, 700)
    [posted] = funded.create_transfers([NewTransfer("p", flags=POST, pending_id="h")])
    assert posted.result is Result.ok
    alice = funded.account("alice")
    assert (alice.debits_posted, alice.debits_pending, alice.balance) == (1000, 0, 0)


def test_a_batch_gets_one_result_per_transfer_in_order(funded):
    results = funded.create_transfers([t(id="a", amount=600), t(id="b", amount=600), t(id="c", amount=400), t(id="a", amount=600)])
    assert [r.result for r in results] == [Result.ok, Result.insufficient_funds, Result.ok, Result.exists]
    assert funded.account("alice").balance == 0
    stamps = [r.timestamp for r in results if r.result is Result.ok]
    assert stamps == sorted(stamps) and len(set(stamps)) == 2


class NotATransfer:
    """Reading any field raises, as a bug in the engine would."""

    def __getattr__(self, name):
        raise RuntimeError("not a transfer")


def test_a_submission_that_breaks_the_engine_fails_alone_not_the_group_it_shared(funded):
    # The submissions of one group commit together; one that raises must not take the
    # other clients' transfers down with it.
    first, broken, last = [t(id="g1", amount=100)], [NotATransfer()], [t(id="g2", amount=200)]
    outcomes = funded._commit([first, broken, last])
    assert [r.result for r in outcomes[0]] == [Result.ok]
    assert isinstance(outcomes[1], Failed) and "not a transfer" in str(outcomes[1].error)
    assert [r.result for r in outcomes[2]] == [Result.ok]
    assert funded.account("bob").balance == 300


def test_a_lone_submission_that_breaks_the_engine_raises_its_error_once(funded, monkeypatch):
    # With nobody to shield, the error goes to its caller as it is, from one attempt.
    attempts = _counted_writes(funded, monkeypatch)
    with pytest.raises(RuntimeError, match="not a transfer"):
        funded._commit([[NotATransfer()]])
    assert len(attempts) == 1
    assert funded.account("bob").balance == 0


def test_a_conflict_that_outlasts_the_retries_fails_the_whole_group_at_once(funded, monkeypatch):
    """The store already retried it; trying each submission alone as well would multiply
    the wait by the group's size, for a conflict, not a broken submission."""
    attempts = _counted_writes(funded, monkeypatch, fail=TransientStoreError("could not serialize access"))
    with pytest.raises(TransientStoreError):
        funded._commit([[t(id="g1", amount=100)], [t(id="g2", amount=200)], [t(id="g3", amount=300)]])
    assert len(attempts) == 1
    assert funded.account("bob").balance == 0


def _counted_writes(ledger, monkeypatch, fail=None):
    """The ledger's write transactions, counted (its one-trip tries aside), each raising
    `fail` if given."""
    attempts = []
    write_raw = ledger.db.write_raw

    def counted(work, **options):
        if not options.get("one_trip"):
            attempts.append(options)
        if fail is not None:
            raise fail
        return write_raw(work, **options)

    monkeypatch.setattr(ledger.db, "write_raw", counted)
    return attempts


def test_batch_bound_is_enforced_before_anything_happens(funded):
    with pytest.raises(BatchTooLarge):
        funded.create_transfers([t(id=f"x{i}", amount=1) for i in range(TRANSFERS_PER_BATCH_MAX + 1)])
    assert funded.account("alice").balance == 1000
    assert funded.create_transfers([]) == []


def test_one_transfer_where_a_batch_goes_is_refused_not_read_as_its_fields(funded):
    # A NewTransfer is a named tuple, so it is a sequence too; its fields are no batch.
    for submit in (funded.create_transfers, lambda batch: asyncio.run(funded.create_transfers_async(batch))):
        with pytest.raises(TypeError, match="not one NewTransfer"):
            submit(t(id="lone", amount=100))

    def inside_a_transaction(txn):
        with pytest.raises(TypeError, match="not one NewTransfer"):
            txn.create_transfers(t(id="lone", amount=100))

    funded.transaction(inside_a_transaction)
    assert funded.account("alice").balance == 1000 and funded.transfer("lone") is None


def test_an_item_that_is_not_a_new_transfer_is_refused_before_it_joins_a_group(funded):
    # A plain tuple of the same fields, a dict, or nothing at all: the caller's bug, said
    # as such, with nothing moved (the transfer beside it included).
    strangers = (("x", "alice", "bob", 100, "USD"), {"id": "x", "amount": 100}, None)
    submits = (funded.create_transfers, lambda batch: asyncio.run(funded.create_transfers_async(batch)))
    for stranger in strangers:
        for submit in submits:
            with pytest.raises(TypeError, match=f"NewTransfer items only: item 1 is a {type(stranger).__name__}"):
                submit([t(id="beside", amount=100), stranger])

    def inside_a_transaction(txn):
        with pytest.raises(TypeError, match="item 0 is a tuple"):
            txn.create_transfers([strangers[0]])

    funded.transaction(inside_a_transaction)
    assert funded.account("alice").balance == 1000 and funded.transfer("beside") is None


async def submit_each(ledger, batches):
    return await asyncio.gather(*(ledger.create_transfers_async(b) for b in batches), return_exceptions=True)


def test_asyncio_callers_each_get_their_own_results_from_shared_commits(funded):
    transactions = []
    write_raw = funded.db.write_raw
    funded.db.write_raw = lambda work, **options: transactions.append(options) or write_raw(work, **options)
    batches = [[t(id=f"as{i}", amount=100)] for i in range(12)] + [[t(id="as0", amount=100)]]
    outcomes = asyncio.run(submit_each(funded, batches))
    results = [r.result for [r] in outcomes]
    # 1,000 funds ten payments of 100; the replay of as0 in the same group is `exists`.
    assert results == [Result.ok] * 10 + [Result.insufficient_funds] * 2 + [Result.exists]
    if funded.db.in_process:  # SQLite: one turn of the loop is one group, committed on the loop
        assert transactions == [dict(attempts=1, one_trip=True, wait=False)]  # planned on known totals
    assert funded.account("bob").balance == 1000
    assert audit(funded.db).ok


def test_an_asyncio_submission_that_breaks_the_engine_fails_alone(funded, monkeypatch):
    check_static = engine.check_static

    def broken_on_boom(transfer):  # as a bug in the engine would, for this transfer only
        if transfer.id == "boom":
            raise RuntimeError("the engine broke")
        return check_static(transfer)

    monkeypatch.setattr(engine, "check_static", broken_on_boom)
    outcomes = asyncio.run(submit_each(funded, [[t(id="g1", amount=100)], [t(id="boom", amount=1)], [t(id="g2", amount=200)]]))
    assert [r.result for r in outcomes[0]] == [Result.ok]
    assert isinstance(outcomes[1], RuntimeError) and "the engine broke" in str(outcomes[1])
    assert [r.result for r in outcomes[2]] == [Result.ok]
    assert funded.account("bob").balance == 300


def test_without_group_commit_asyncio_callers_commit_on_a_worker_thread(funded):
    with Ledger(funded.db, funded.clock, group_commit=False) as alone:
        outcomes = asyncio.run(submit_each(alone, [[t(id="w1", amount=100)], [t(id="w1", amount=100)]]))
    assert sorted(r.result.name for [r] in outcomes) == ["exists", "ok"]
    assert funded.account("bob").balance == 100


def test_the_asyncio_batch_bound_is_enforced_before_anything_happens(funded):
    too_many = [t(id=f"x{i}", amount=1) for i in range(TRANSFERS_PER_BATCH_MAX + 1)]
    with pytest.raises(BatchTooLarge):
        asyncio.run(funded.create_transfers_async(too_many))
    assert asyncio.run(funded.create_transfers_async([])) == []
    assert funded.account("alice").balance == 1000


def test_linked_chain_commits_as_one(funded):
    results = funded.create_transfers([t(id="l1", amount=100, flags=LINKED), t(id="l2", amount=200)])
    assert [r.result for r in results] == [Result.ok, Result.ok]
    assert funded.account("bob").balance == 300


def test_a_chain_replayed_as_sent_exists_and_moves_nothing_again(funded):
    chain = [t(id="l1", amount=100, flags=LINKED), t(id="l2", amount=200)]
    assert [r.result for r in funded.create_transfers(chain)] == [Result.ok, Result.ok]
    after = snapshot(funded)
    # A member that exists as asked is a success: the chain stands, nothing moves twice.
    assert [r.result for r in funded.create_transfers(chain)] == [Result.exists, Result.exists]
    assert snapshot(funded) == after
    mixed = funded.create_transfers([t(id="l1", amount=100, flags=LINKED), t(id="l3", amount=50)])
    assert [r.result for r in mixed] == [Result.exists, Result.ok]
    assert funded.account("bob").balance == 350


def test_linked_chain_failure_undoes_the_whole_chain(funded):
    before = snapshot(funded)
    results = funded.create_transfers(
        [t(id="l1", amount=100, flags=LINKED), t(id="l2", amount=100, flags=LINKED | PENDING), t(id="l3", amount=5000)]
    )
    assert [r.result for r in results] == [Result.linked_event_failed, Result.linked_event_failed, Result.insufficient_funds]
    assert snapshot(funded) == before
    assert funded.holds("alice").items == []


def test_chains_are_independent_of_each_other_and_of_singles(funded):
    results = funded.create_transfers(
        [t(id="s1", amount=100), t(id="c1", amount=100, flags=LINKED), t(id="c2", amount=5000), t(id="s2", amount=100)]
    )
    assert [r.result for r in results] == [Result.ok, Result.linked_event_failed, Result.insufficient_funds, Result.ok]
    assert funded.account("bob").balance == 200


def test_open_chain_at_the_end_of_a_batch_fails_entirely(funded):
    results = funded.create_transfers([t(id="s1", amount=100), t(id="c1", amount=100, flags=LINKED)])
    assert [r.result for r in results] == [Result.ok, Result.linked_event_chain_open]
    assert funded.account("bob").balance == 100


def test_invalid_member_fails_the_chain(funded):
    results = funded.create_transfers([t(id="c1", amount=100, flags=LINKED), t(id="c2", amount=0)])
    assert [r.result for r in results] == [Result.linked_event_failed, Result.amount_invalid]


def test_result_codes_know_whether_a_retry_could_succeed():
    assert Result.insufficient_funds.transient
    assert Result.debit_account_not_found.transient
    assert not Result.amount_invalid.transient
    assert not Result.exists_with_different_fields.transient
    assert Result.exists.succeeded and Result.ok.succeeded and not Result.linked_event_failed.succeeded


def test_totals_helper_reads_the_four_totals(funded):
    assert totals(funded, "alice") == (0, 0, 0, 1000)
