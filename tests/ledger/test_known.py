"""A ledger plans on the totals it committed while the journal head stays where it left
it, and reads them again as soon as anyone else has written."""

from __future__ import annotations

import asyncio

import pytest

from danbao.errors import DanbaoError
from danbao.ledger import Ledger, NewAccount, NewTransfer, Result, TransferFlags, TransferResult, audit
from danbao.ledger.engine import Totals
from danbao.ledger.group_commit import Failed
from danbao.ledger.known import KnownTotals
from danbao.store import Database
from tests.ledger.helpers import fund, open_accounts, totals


def _head_hash(db: Database) -> str:
    [(head_hash,)] = db.read_raw(lambda raw: raw.rows("SELECT hash FROM ledger_head WHERE id = 1"))
    return str(head_hash)


def _totals(credits_posted: int) -> Totals:
    return Totals("USD", 0, 0, 0, 0, credits_posted)


def test_knowledge_holds_at_the_head_its_commit_left() -> None:
    known = KnownTotals()
    known.learn("h0", (0, "h1"), {"a": _totals(5)})
    known.learn("h1", (0, "h2"), {"b": _totals(7)})
    head, found = known.find(["a", "b", "c"])
    assert head == "h2"
    assert {k: t.credits_posted for k, t in found.items()} == {"a": 5, "b": 7}


def test_a_commit_from_another_head_replaces_what_was_known() -> None:
    known = KnownTotals()
    known.learn("h0", (0, "h1"), {"a": _totals(5)})
    known.learn("x1", (0, "x2"), {"b": _totals(7)})  # someone else moved the head from h1 to x1
    head, found = known.find(["a", "b"])
    assert (head, list(found)) == ("x2", ["b"])


def test_knowledge_is_bounded() -> None:
    known = KnownTotals(limit=3)
    known.learn("h0", (0, "h1"), {"a": _totals(1), "b": _totals(2)})
    known.learn("h1", (0, "h2"), {"c": _totals(3), "d": _totals(4)})
    assert len(known) == 2
    assert list(known.find("abcd")[1]) == ["c", "d"]
    known.learn("h2", (0, "h3"), {"e": _totals(5)})  # exactly the bound: all kept
    assert len(known) == 3
    assert list(known.find("abcde")[1]) == ["c", "d", "e"]


def test_the_engine_gets_copies() -> None:
    known = KnownTotals()
    known.learn("h0", (0, "h1"), {"a": _totals(5)})
    _, found = known.find(["a"])
    found["a"].credits_posted += 100
    assert known.find(["a"])[1]["a"].credits_posted == 5


def test_a_commit_teaches_the_ledger_the_totals_it_wrote(ledger: Ledger) -> None:
    open_accounts(ledger, "alice", "bob")
    fund(ledger, "alice", 100)
    [r] = ledger.create_transfers([NewTransfer("t1", "alice", "bob", 30, "USD")])
    assert r.result is Result.ok
    head, found = ledger.known.find(["alice", "bob"])
    assert head == _head_hash(ledger.db)
    assert (found["alice"].debits_posted, found["alice"].credits_posted, found["bob"].credits_posted) == (30, 100, 30)


def test_another_writer_between_two_commits_is_read_not_overwritten(db: Database, ledger: Ledger) -> None:
    open_accounts(ledger, "alice", "bob")
    fund(ledger, "alice", 100)
    assert ledger.create_transfers([NewTransfer("t1", "alice", "bob", 10, "USD")])[0].result is Result.ok
    with Ledger(db, ledger.clock) as other:  # a second writer: another process, in effect
        assert other.create_transfers([NewTransfer("t2", "alice", "bob", 60, "USD")])[0].result is Result.ok
    # The first ledger still knows alice at 90: planning on it would let 40 more through
    # and write totals that lose the other writer's 60.
    [r] = ledger.create_transfers([NewTransfer("t3", "alice", "bob", 40, "USD")])
    assert r.result is Result.insufficient_funds
    assert ledger.create_transfers([NewTransfer("t4", "alice", "bob", 30, "USD")])[0].result is Result.ok
    assert totals(ledger, "alice") == (0, 100, 0, 100)
    assert totals(ledger, "bob") == (0, 0, 0, 100)
    assert audit(db).ok


class Refused(DanbaoError):
    code = "refused"


def test_a_rolled_back_transaction_teaches_nothing(db: Database, ledger: Ledger) -> None:
    open_accounts(ledger, "alice", "bob")
    fund(ledger, "alice", 100)
    before = ledger.known.find(["alice", "bob"])

    def moves_then_refuses(txn):  # type: ignore[no-untyped-def]
        assert txn.create_transfers([NewTransfer("t1", "alice", "bob", 70, "USD")])[0].result is Result.ok
        raise Refused("changed its mind")

    with pytest.raises(Refused):
        ledger.transaction(moves_then_refuses)
    after = ledger.known.find(["alice", "bob"])
    assert after[0] == before[0]
    assert {k: t.debits_posted for k, t in after[1].items()} == {k: t.debits_posted for k, t in before[1].items()}
    assert ledger.create_transfers([NewTransfer("t2", "alice", "bob", 100, "USD")])[0].result is Result.ok
    assert totals(ledger, "alice") == (0, 100, 0, 100)
    assert audit(db).ok


def test_works_sharing_a_commit_teach_their_totals_once_committed(db: Database, ledger: Ledger) -> None:
    open_accounts(ledger, "alice", "bob")
    fund(ledger, "alice", 100)

    def moves(transfer_id: str, amount: int):  # type: ignore[no-untyped-def]
        return lambda txn: txn.create_transfers([NewTransfer(transfer_id, "alice", "bob", amount, "USD")])[0].result

    assert ledger._commit_works([moves("t1", 20), moves("t2", 30)]) == [Result.ok, Result.ok]
    head, found = ledger.known.find(["alice", "bob"])
    assert head == _head_hash(db)
    assert found["alice"].debits_posted == 50
    assert found["bob"].credits_posted == 50


def test_accounts_a_ledger_created_are_known_with_zero_totals_at_the_head(db: Database, ledger: Ledger) -> None:
    open_accounts(ledger, "alice", "bob")
    found = ledger.known.find_all(["alice", "bob"])
    assert found is not None
    (_, head_hash), known = found
    assert head_hash == _head_hash(db)
    assert {k: (t.currency, t.debits_posted, t.credits_posted, t.entries) for k, t in known.items()} == {
        "alice": ("USD", 0, 0, 0),
        "bob": ("USD", 0, 0, 0),
    }
    assert ledger.known.find_all(["alice", "carol"]) is None  # one unknown account: nothing


def test_accounts_a_refused_work_created_are_not_known(ledger: Ledger) -> None:
    def creates(account_id: str, *, refuses: bool):  # type: ignore[no-untyped-def]
        def work(txn):  # type: ignore[no-untyped-def]
            assert txn.create_accounts([NewAccount(account_id, "USD", "wallet")])[0].result is Result.ok
            if refuses:
                raise Refused("changed its mind")

        return work

    outcomes = ledger._commit_works([creates("carol", refuses=True), creates("dave", refuses=False)])
    assert isinstance(outcomes[0], Failed) and outcomes[1] is None
    assert ledger.account("carol") is None
    assert list(ledger.known.find(["carol", "dave"])[1]) == ["dave"]


def _trips(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """How each write transaction of `ledger` travels from here on: one_trip or usual."""
    trips: list[str] = []
    write_raw = ledger.db.write_raw

    def spy(work, **options):  # type: ignore[no-untyped-def]
        trips.append("one_trip" if options.get("one_trip") else "usual")
        return write_raw(work, **options)

    monkeypatch.setattr(ledger.db, "write_raw", spy)
    return trips


@pytest.fixture
def known_ledger(ledger: Ledger) -> Ledger:
    """Alice (funded with 100) and Bob, created by this ledger. The funding is the first
    commit: it learns when holds can next be due."""
    open_accounts(ledger, "alice", "bob")
    fund(ledger, "alice", 100)
    return ledger


def test_a_group_on_known_accounts_is_planned_without_reading_and_sent_in_one_trip(known_ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    ledger = known_ledger
    trips = _trips(ledger, monkeypatch)
    [r] = ledger.create_transfers([NewTransfer("t1", "alice", "bob", 30, "USD")])
    assert r.result is Result.ok
    assert trips == ["one_trip"]
    assert totals(ledger, "alice") == (0, 30, 0, 100)
    assert totals(ledger, "bob") == (0, 0, 0, 30)
    head, found = ledger.known.find(["alice"])
    assert head == _head_hash(ledger.db) and found["alice"].debits_posted == 30
    assert audit(ledger.db).ok


def test_a_group_from_an_event_loop_on_known_accounts_is_planned_without_reading(
    known_ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = known_ledger
    trips = _trips(ledger, monkeypatch)

    async def pay() -> list[TransferResult]:
        return await ledger.create_transfers_async([NewTransfer("t1", "alice", "bob", 30, "USD")])

    [r] = asyncio.run(pay())
    assert r.result is Result.ok
    assert trips == ["one_trip"]  # on SQLite, committed on the loop itself
    assert totals(ledger, "bob") == (0, 0, 0, 30)
    assert audit(ledger.db).ok


def test_an_id_already_in_the_journal_fails_the_one_trip_and_is_answered_exists(
    known_ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = known_ledger
    assert ledger.create_transfers([NewTransfer("t1", "alice", "bob", 30, "USD")])[0].result is Result.ok
    trips = _trips(ledger, monkeypatch)
    # Planned on what the ledger knows, t1 looks new; the journal's unique index says
    # otherwise, and the usual way reads the journal and answers as a replay is answered.
    results = ledger.create_transfers([NewTransfer("t2", "alice", "bob", 5, "USD"), NewTransfer("t1", "alice", "bob", 30, "USD")])
    assert [r.result for r in results] == [Result.ok, Result.exists]
    assert trips == ["one_trip", "usual"]
    assert totals(ledger, "alice") == (0, 35, 0, 100)
    assert audit(ledger.db).ok


def test_a_head_moved_by_another_writer_fails_the_one_trip_and_nothing_of_it_lands(
    known_ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = known_ledger
    with Ledger(ledger.db, ledger.clock) as other:  # another process, in effect
        assert other.create_transfers([NewTransfer("t1", "alice", "bob", 80, "USD")])[0].result is Result.ok
    ledger.clock.advance(ns=1000)  # so no journal timestamp of ours could collide with its
    trips = _trips(ledger, monkeypatch)
    # On what it knows, alice still has 100; the server finds the head moved, and the
    # group is planned again on what the database holds.
    [r] = ledger.create_transfers([NewTransfer("t2", "alice", "bob", 50, "USD")])
    assert r.result is Result.insufficient_funds
    assert trips == ["one_trip", "usual"]
    assert totals(ledger, "alice") == (0, 80, 0, 100)
    # After a failed try, groups go the usual way until one finds the head where this
    # ledger left it (t2 wrote nothing and t3 found the other writer's head): writers in
    # several processes taking turns would otherwise each waste a round trip on every group.
    for transfer_id in ("t3", "t4", "t5"):
        assert ledger.create_transfers([NewTransfer(transfer_id, "alice", "bob", 5, "USD")])[0].result is Result.ok
    assert trips == ["one_trip", "usual", "usual", "usual", "one_trip"]
    assert totals(ledger, "alice") == (0, 95, 0, 100)
    assert audit(ledger.db).ok


def test_a_hold_to_resolve_or_an_account_created_elsewhere_goes_the_usual_way(
    known_ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = known_ledger
    pending = NewTransfer("h1", "alice", "bob", 40, "USD", flags=int(TransferFlags.pending), timeout_seconds=60)
    assert ledger.create_transfers([pending])[0].result is Result.ok
    with Ledger(ledger.db, ledger.clock) as other:  # another process, in effect
        open_accounts(other, "carol")
    trips = _trips(ledger, monkeypatch)
    post = NewTransfer("p1", pending_id="h1", flags=int(TransferFlags.post_pending))
    assert ledger.create_transfers([post])[0].result is Result.ok  # the hold is read
    assert ledger.create_transfers([NewTransfer("t1", "alice", "carol", 1, "USD")])[0].result is Result.ok
    assert trips == ["usual", "usual"]
    assert ledger.create_transfers([NewTransfer("t2", "alice", "carol", 1, "USD")])[0].result is Result.ok
    assert trips == ["usual", "usual", "one_trip"]  # carol is known now
    assert totals(ledger, "carol") == (0, 0, 0, 2)
    assert audit(ledger.db).ok


def test_a_transaction_that_creates_an_account_and_moves_money_keeps_what_was_known(db: Database, ledger: Ledger) -> None:
    open_accounts(ledger, "alice", "bob")
    fund(ledger, "alice", 100)

    def opens_carol_and_pays_her(txn):  # type: ignore[no-untyped-def]
        assert txn.create_accounts([NewAccount("carol", "USD", "wallet")])[0].result is Result.ok
        assert txn.create_transfers([NewTransfer("t1", "alice", "carol", 30, "USD")])[0].result is Result.ok

    ledger.transaction(opens_carol_and_pays_her)
    found = ledger.known.find_all({"alice", "bob", "carol"})
    assert found is not None, "bob, untouched, is still known at the new head"
    (_, head_hash), known = found
    assert head_hash == _head_hash(db)
    assert {k: (t.debits_posted, t.credits_posted) for k, t in known.items()} == {"alice": (30, 100), "bob": (0, 0), "carol": (0, 30)}


def test_an_account_created_again_is_not_taught_as_new(db: Database, ledger: Ledger) -> None:
    open_accounts(ledger, "alice")
    fund(ledger, "alice", 100)

    def opens_alice_again(txn):  # type: ignore[no-untyped-def]
        assert txn.create_accounts([NewAccount("alice", "USD", "wallet")])[0].result is not Result.ok

    ledger.transaction(opens_alice_again)
    _, known = ledger.known.find(["alice"])
    assert {k: t.credits_posted for k, t in known.items()} in ({}, {"alice": 100})
    assert ledger.create_transfers([NewTransfer("t1", "alice", "bank", 100, "USD")])[0].result is Result.ok
    assert audit(db).ok
