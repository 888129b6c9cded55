"""A ledger plans on the totals it committed while the journal head stays where it left
it, and reads them again as soon as anyone else has written."""

from __future__ import annotations

import pytest

from danbao.errors import DanbaoError
from danbao.ledger import Ledger, NewTransfer, Result, audit
from danbao.ledger.engine import Totals
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
    known.learn("h0", "h1", {"a": _totals(5)})
    known.learn("h1", "h2", {"b": _totals(7)})
    head, found = known.find(["a", "b", "c"])
    assert head == "h2"
    assert {k: t.credits_posted for k, t in found.items()} == {"a": 5, "b": 7}


def test_a_commit_from_another_head_replaces_what_was_known() -> None:
    known = KnownTotals()
    known.learn("h0", "h1", {"a": _totals(5)})
    known.learn("x1", "x2", {"b": _totals(7)})  # someone else moved the head from h1 to x1
    head, found = known.find(["a", "b"])
    assert (head, list(found)) == ("x2", ["b"])


def test_knowledge_is_bounded() -> None:
    known = KnownTotals(limit=3)
    known.learn("h0", "h1", {"a": _totals(1), "b": _totals(2)})
    known.learn("h1", "h2", {"c": _totals(3), "d": _totals(4)})
    assert len(known) == 2
    assert list(known.find("abcd")[1]) == ["c", "d"]


def test_the_engine_gets_copies() -> None:
    known = KnownTotals()
    known.learn("h0", "h1", {"a": _totals(5)})
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
