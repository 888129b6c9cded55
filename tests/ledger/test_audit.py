"""The audit proves the books, and catches a row changed behind the ledger's back."""

import pytest
from sqlalchemy import text

from danbao.ledger import NewTransfer, TransferFlags, audit
from tests.ledger.helpers import fund, open_accounts


@pytest.fixture
def books(ledger):
    open_accounts(ledger, "alice", "bob")
    fund(ledger, "alice", 1000)
    ledger.create_transfers(
        [
            NewTransfer("t1", "alice", "bob", 100, "USD", metadata={"k": "v"}),
            NewTransfer("h1", "alice", "bob", 300, "USD", flags=int(TransferFlags.pending)),
            NewTransfer("p1", pending_id="h1", flags=int(TransferFlags.post_pending), amount=250),
        ]
    )
    return ledger


def test_clean_books_pass(books, db):
    report = audit(db)
    assert report.ok, report.violations
    assert report.transfers_checked == 4
    usd = report.currencies["USD"]
    assert usd.debits_posted == usd.credits_posted == 1350


TAMPERING = {
    "amount edited": "UPDATE transfers SET amount = 1 WHERE id = 't1'",
    "recipient edited": "UPDATE transfers SET credit_account_id = 'bank' WHERE id = 't1'",
    "metadata edited": "UPDATE transfers SET metadata = '{\"k\":\"w\"}' WHERE id = 't1'",
    "balance edited": "UPDATE accounts SET credits_posted = credits_posted + 1 WHERE id = 'bob'",
    "entry deleted": "DELETE FROM transfers WHERE id = 't1'",
    "hold reopened": "UPDATE holds SET state = 'pending' WHERE pending_id = 'h1'",
    "history link cut": "UPDATE transfers SET credit_prev = NULL WHERE id = 'p1'",
    "history link moved": "UPDATE transfers SET debit_prev = (SELECT timestamp FROM transfers WHERE id = 't1') WHERE id = 'p1'",
    "history count edited": "UPDATE accounts SET entries = entries + 1 WHERE id = 'bob'",
    "history end edited": "UPDATE accounts SET last_entry = NULL WHERE id = 'alice'",
    "both sides edited": (
        "UPDATE accounts SET credits_posted = credits_posted + 5 WHERE id = 'bob';"
        "UPDATE accounts SET debits_posted = debits_posted + 5 WHERE id = 'alice'"
    ),
}


@pytest.mark.parametrize("sql", TAMPERING.values(), ids=TAMPERING.keys())
def test_audit_catches_tampering(books, db, sql):
    with db.engine.begin() as conn:
        for statement in sql.split(";"):
            conn.execute(text(statement))
    report = audit(db)
    assert not report.ok
    assert report.violations


def test_rewriting_an_entry_and_its_hash_still_breaks_the_chain(books, db):
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE transfers SET hash = :h WHERE id = 't1'"), {"h": "f" * 64})
    report = audit(db)
    assert any("hash chain" in v for v in report.violations)
