"""The audit proves the books, and names what a row changed behind the ledger's back broke.

Each tampering below is one change made with SQL, as a person with database access could;
the audit must report the specific violation it causes, not merely fail. Some rules are
also enforced by CHECK constraints; the audit does not rely on them (a restored dump or an
altered table may lack them), so those cases switch the constraints off first.
"""

import importlib

import pytest
from sqlalchemy import text

from danbao.clock import NS_PER_SECOND
from danbao.errors import DanbaoError
from danbao.ledger import AccountFlags, JournalHead, NewTransfer, ReadCode, TransferFlags, audit
from danbao.ledger.journal import entry_hash
from danbao.ledger.model import HISTORY_MARK_EVERY
from danbao.store.schema import GENESIS_HASH
from tests.ledger.helpers import fund, open_accounts
from tests.memory import peak_bytes

NO_OVERDRAFT = int(AccountFlags.no_overdraft)
NO_OVERCREDIT = int(AccountFlags.no_overcredit)


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


# tampering -> (SQL statements, a violation the audit must report)
TAMPERING = {
    "amount edited": (["UPDATE transfers SET amount = 1 WHERE id = 't1'"], "hash chain broken at transfer t1"),
    "recipient edited": (["UPDATE transfers SET credit_account_id = 'bank' WHERE id = 't1'"], "hash chain broken at transfer t1"),
    "metadata edited": (["UPDATE transfers SET metadata = '{\"k\":\"w\"}' WHERE id = 't1'"], "hash chain broken at transfer t1"),
    "hash rewritten": (["UPDATE transfers SET hash = '" + "f" * 64 + "' WHERE id = 't1'"], "hash chain broken at transfer t1"),
    "balance edited": (["UPDATE accounts SET credits_posted = credits_posted + 1 WHERE id = 'bob'"], "account bob totals [0, 0, 0, 351] differ from its journal [0, 0, 0, 350]"),
    "both sides edited, still balanced": (
        [
            "UPDATE accounts SET credits_posted = credits_posted + 5 WHERE id = 'bob'",
            "UPDATE accounts SET debits_posted = debits_posted + 5 WHERE id = 'alice'",
        ],
        "account alice totals",
    ),
    "entry deleted": (["DELETE FROM transfers WHERE id = 't1'"], "journal head does not match the last entry"),
    "head hash edited": (["UPDATE ledger_head SET hash = '" + "e" * 64 + "'"], "journal head does not match the last entry"),
    "pending total edited on one side": (["UPDATE accounts SET debits_pending = debits_pending + 5 WHERE id = 'alice'"], "USD: debits do not equal credits"),
    "a hold posted twice": (
        [
            "INSERT INTO transfers (id, timestamp, debit_account_id, credit_account_id, amount, hold_amount, currency, code, ref, metadata, flags, pending_id, timeout_seconds, hash, debit_prev, credit_prev) "
            "SELECT 'p2', timestamp + 1, debit_account_id, credit_account_id, amount, hold_amount, currency, code, ref, metadata, flags, pending_id, timeout_seconds, hash, timestamp, timestamp FROM transfers WHERE id = 'p1'"
        ],
        "transfer p2 resolves h1, which is not an open hold",
    ),
    "head count edited": (["UPDATE ledger_head SET transfers_count = transfers_count + 1"], "journal head does not match the last entry"),
    "amount zeroed": (["UPDATE transfers SET amount = 0 WHERE id = 't1'"], "transfer t1 has non-positive amount 0"),
    "hold reopened": (["UPDATE holds SET state = 'pending' WHERE pending_id = 'h1'"], "hold h1 is pending, journal says posted"),
    "hold deleted": (["DELETE FROM holds WHERE pending_id = 'h1'"], "transfer h1 opened a hold that has no row"),
    "hold moved onto a plain transfer": (
        ["UPDATE holds SET pending_id = 't1' WHERE pending_id = 'h1'"],
        "hold t1 has no pending entry",
    ),
    "hold invented": (
        ["INSERT INTO holds (pending_id, debit_account_id, credit_account_id, amount, currency, timestamp, expires_at, state) VALUES ('ghost', 'alice', 'bob', 5, 'USD', 1, NULL, 'pending')"],
        "hold ghost has no pending entry",
    ),
    "hold's amount edited": (["UPDATE holds SET amount = 30 WHERE pending_id = 'h1'"], "hold h1's amount is 30, its pending entry says 300"),
    "hold's payer edited": (["UPDATE holds SET debit_account_id = 'bank' WHERE pending_id = 'h1'"], "hold h1's debit_account_id is bank, its pending entry says alice"),
    "hold's payee edited": (["UPDATE holds SET credit_account_id = 'alice' WHERE pending_id = 'h1'"], "hold h1's credit_account_id is alice, its pending entry says bob"),
    "hold's currency edited": (["UPDATE holds SET currency = 'EUR' WHERE pending_id = 'h1'"], "hold h1's currency is EUR, its pending entry says USD"),
    "hold's time edited": (["UPDATE holds SET timestamp = timestamp - 1 WHERE pending_id = 'h1'"], "hold h1's timestamp is"),
    "deadline given to a hold without one": (["UPDATE holds SET expires_at = 5 WHERE pending_id = 'h1'"], "hold h1's expires_at is 5, its pending entry says None"),
    "post points at a plain transfer": (["UPDATE transfers SET pending_id = 't1' WHERE id = 'p1'"], "transfer p1 resolves t1, which is not an open hold"),
    "post's hold amount edited": (["UPDATE transfers SET hold_amount = 299 WHERE id = 'p1'"], "transfer p1 does not match hold h1"),
    "post raised above its hold": (["UPDATE transfers SET amount = 301 WHERE id = 'p1'"], "transfer p1 posts more than its hold"),
    "history link cut": (["UPDATE transfers SET credit_prev = NULL WHERE id = 'p1'"], "history chain of bob broken at transfer p1"),
    "history link moved": (
        ["UPDATE transfers SET debit_prev = (SELECT timestamp FROM transfers WHERE id = 't1') WHERE id = 'p1'"],
        "history chain of alice broken at transfer p1",
    ),
    "history count edited": (["UPDATE accounts SET entries = entries + 1 WHERE id = 'bob'"], "account bob history ends"),
    "history end edited": (["UPDATE accounts SET last_entry = NULL WHERE id = 'alice'"], "account alice history ends"),
    "account moved to another currency": (["UPDATE accounts SET currency = 'EUR' WHERE id = 'bob'"], "USD: debits do not equal credits"),
}

# Tamperings a CHECK constraint would refuse: the audit must catch them all the same.
UNCHECKED = {
    "overdraft flag set on an overdrawn account": (f"UPDATE accounts SET flags = {NO_OVERDRAFT} WHERE id = 'bank'", "account bank is overdrawn"),
    "overcredit flag set on an overcredited account": (f"UPDATE accounts SET flags = {NO_OVERCREDIT} WHERE id = 'bob'", "account bob is overcredited"),
    "overdrawn by pending debits alone": ("UPDATE accounts SET debits_pending = 700 WHERE id = 'alice'", "account alice is overdrawn"),
    "overcredited by pending credits alone": (f"UPDATE accounts SET flags = {NO_OVERCREDIT}, credits_pending = 1001 WHERE id = 'bank'", "account bank is overcredited"),
}


def _tamper(db, statements, *, unchecked=False):
    with db.engine.begin() as conn:
        if unchecked and db.dialect == "sqlite":
            conn.exec_driver_sql("PRAGMA ignore_check_constraints = ON")
        if unchecked and db.dialect == "postgresql":
            conn.exec_driver_sql("ALTER TABLE accounts DROP CONSTRAINT ck_accounts_no_overdraft")
            conn.exec_driver_sql("ALTER TABLE accounts DROP CONSTRAINT ck_accounts_no_overcredit")
        for statement in statements:
            conn.execute(text(statement))
        if unchecked and db.dialect == "sqlite":
            conn.exec_driver_sql("PRAGMA ignore_check_constraints = OFF")


def _reported(report, expected):
    assert not report.ok
    assert any(expected in v for v in report.violations), report.violations


@pytest.mark.parametrize(("statements", "expected"), TAMPERING.values(), ids=TAMPERING.keys())
def test_audit_names_what_tampering_broke(books, db, statements, expected):
    _tamper(db, statements)
    _reported(audit(db), expected)


# Every field an entry is hashed over, edited alone: the chain breaks at that entry, whatever
# else the edit breaks. An absent ref or pending id made empty must show too: the hash tells
# "none" from "". (edit, the entry edited, the entry as the audit names it)
HASHED_FIELDS = {
    "timestamp": ("timestamp = timestamp + 1000", "p1", "p1"),
    "id": ("id = 't1x'", "t1", "t1x"),
    "debit account": ("debit_account_id = 'bank'", "t1", "t1"),
    "amount held": ("hold_amount = 299", "p1", "p1"),
    "currency": ("currency = 'EUR'", "t1", "t1"),
    "code": ("code = 'refund'", "t1", "t1"),
    "ref": ("ref = 'r1'", "t1", "t1"),
    "ref made empty": ("ref = ''", "t1", "t1"),
    "flags": ("flags = 1024", "t1", "t1"),
    "pending id made empty": ("pending_id = ''", "t1", "t1"),
    "timeout": ("timeout_seconds = 5", "t1", "t1"),
}


@pytest.mark.parametrize(("change", "edited", "named"), HASHED_FIELDS.values(), ids=HASHED_FIELDS.keys())
def test_every_field_an_entry_is_hashed_over_is_tamper_evident(books, db, change, edited, named):
    _tamper(db, [f"UPDATE transfers SET {change} WHERE id = '{edited}'"])
    _reported(audit(db), f"hash chain broken at transfer {named}")


def test_an_entry_edited_without_rehashing_is_named_alone(books, db):
    """Each entry is checked against the hash the journal holds for the one before it, so
    an entry edited and left unhashed is one broken link, named where the edit is."""
    _tamper(db, ["UPDATE transfers SET amount = 99 WHERE id = 't1'"])  # not the last entry
    broken = [v for v in audit(db).violations if v.startswith("hash chain broken")]
    assert len(broken) == 1 and broken[0].startswith("hash chain broken at transfer t1 "), broken


def test_a_hold_the_journal_left_open_but_its_row_calls_resolved_is_caught(books, db):
    [held] = books.create_transfers([NewTransfer("h2", "alice", "bob", 40, "USD", flags=int(TransferFlags.pending))])
    assert held.ok
    _tamper(db, ["UPDATE holds SET state = 'voided' WHERE pending_id = 'h2'"])
    _reported(audit(db), "hold h2 is voided, journal says pending")


@pytest.mark.parametrize(("statement", "expected"), UNCHECKED.values(), ids=UNCHECKED.keys())
def test_audit_catches_what_constraints_would_have_refused(books, db, statement, expected):
    _tamper(db, [statement], unchecked=True)
    _reported(audit(db), expected)


def test_a_constraint_refuses_an_overdrawn_flag(books, db):
    # The constraint is the first line; the audit above is the second.
    with pytest.raises(Exception, match="(?i)constraint"):
        _tamper(db, [f"UPDATE accounts SET flags = {NO_OVERDRAFT} WHERE id = 'bank'"])
    assert audit(db).ok


def test_moving_an_account_to_another_currency_unbalances_both(books, db):
    _tamper(db, ["UPDATE accounts SET currency = 'EUR' WHERE id = 'bob'"])
    report = audit(db)
    _reported(report, "USD: debits do not equal credits")
    _reported(report, "EUR: debits do not equal credits")
    _reported(report, "transfer t1 moves USD on account bob, which is in EUR")


def test_an_entry_in_another_currency_than_its_accounts_is_caught_even_rechained(books, db):
    # Both accounts moved with it, so every total and per-currency sum still agrees.
    _tamper(db, [
        "UPDATE transfers SET currency = 'EUR' WHERE id = 't1'",
    ])
    _rechain(db)
    assert audit(db).violations == [
        "transfer t1 moves EUR on account alice, which is in USD",
        "transfer t1 moves EUR on account bob, which is in USD",
    ]


@pytest.fixture
def marked_books(books, db):
    """Books where alice has a history mark (every HISTORY_MARK_EVERY-th entry)."""
    entries = 4  # funding, t1, h1, p1
    books.create_transfers([NewTransfer(f"m{i}", "alice", "bob", 1, "USD") for i in range(HISTORY_MARK_EVERY - entries)])
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM account_marks WHERE account_id = 'alice'")).scalar() == 1
    return books


def test_marked_books_pass(marked_books, db):
    report = audit(db)
    assert report.ok, report.violations


def test_audit_catches_an_edited_history_mark(marked_books, db):
    _tamper(db, ["UPDATE account_marks SET debits_posted = debits_posted + 1 WHERE account_id = 'alice'"])
    _reported(audit(db), "history mark of alice at")


def test_audit_catches_a_deleted_history_mark(marked_books, db):
    _tamper(db, ["DELETE FROM account_marks WHERE account_id = 'alice'"])
    report = audit(db)
    _reported(report, "history mark of alice at")
    assert any(v.endswith("is missing") for v in report.violations)


@pytest.mark.parametrize(("values", "expected"), [
    ("'bob', (SELECT timestamp FROM account_marks WHERE account_id = 'alice')", "history mark of bob at {ts} is [1, 2, 3, 4], journal says None"),
    ("'alice', 7", "history mark of alice at 7 is [1, 2, 3, 4], journal says None"),
], ids=["at a marked entry, for its other account", "at no entry"])
def test_audit_catches_an_invented_history_mark(marked_books, db, values, expected):
    _tamper(db, [f"INSERT INTO account_marks SELECT {values}, 1, 2, 3, 4"])
    with db.engine.connect() as conn:
        ts = conn.execute(text("SELECT timestamp FROM account_marks WHERE account_id = 'alice' AND timestamp > 7")).scalar()
    report = audit(db)
    assert report.violations == [expected.format(ts=ts)]


def test_a_hold_row_lost_and_its_pending_entry_are_both_named(books, db):
    _tamper(db, ["UPDATE holds SET pending_id = 'elsewhere' WHERE pending_id = 'h1'"])
    assert sorted(audit(db).violations) == ["hold elsewhere has no pending entry", "transfer h1 opened a hold that has no row"]


# Rows the audit meets beside the journal, each compared when the walk reaches the entry
# that made it: tamperings with rows met early, late or never -> every violation reported.
EXACTLY = {
    "a hold row moved past later entries": (
        ["UPDATE holds SET timestamp = {h1_moved} WHERE pending_id = 'h1'"],
        ["hold h1's timestamp is {h1_moved}, its pending entry says {h1}"],
    ),
    "a hold row moved onto the last entry, which opened no hold": (
        ["UPDATE holds SET pending_id = 't2' WHERE pending_id = 'h1'"],
        ["transfer h1 opened a hold that has no row", "hold t2 has no pending entry"],
    ),
    "the row of a hold still open deleted": (
        ["DELETE FROM holds WHERE pending_id = 'h2'"],
        ["transfer h2 opened a hold that has no row"],
    ),
    "the row of a resolved hold deleted": (
        ["DELETE FROM holds WHERE pending_id = 'h1'"],
        ["transfer h1 opened a hold that has no row"],
    ),
    "a history mark after the last entry": (
        ["INSERT INTO account_marks VALUES ('alice', {after_last}, 1, 2, 3, 4)"],
        ["history mark of alice at {after_last} is [1, 2, 3, 4], journal says None"],
    ),
}


@pytest.mark.parametrize(("statements", "expected"), EXACTLY.values(), ids=EXACTLY.keys())
def test_rows_beside_the_journal_are_each_named_once_where_the_walk_meets_them(books, db, statements, expected):
    later = [NewTransfer("h2", "alice", "bob", 40, "USD", flags=int(TransferFlags.pending)), NewTransfer("t2", "alice", "bob", 1, "USD")]
    assert all(r.ok for r in books.create_transfers(later))
    h1, last = books.transfer("h1").timestamp, books.transfer("t2").timestamp
    times = {"h1": h1, "h1_moved": h1 + NS_PER_SECOND, "after_last": last + 5}
    _tamper(db, [statement.format(**times) for statement in statements])
    assert audit(db).violations == [violation.format(**times) for violation in expected]


def test_an_invented_mark_met_with_a_real_one_is_not_taken_for_it(ledger, db, clock):
    """A mark stored between two entries is met when the walk reaches the next entry;
    when that entry makes a mark of the same account, the invented one is still one the
    journal never made, and the real one is still checked."""
    open_accounts(ledger, "alice", "bob")
    fund(ledger, "alice", 1000)  # alice's first entry
    ledger.create_transfers([NewTransfer(f"m{i}", "alice", "bob", 1, "USD") for i in range(HISTORY_MARK_EVERY - 2)])
    clock.advance(1)  # a gap in time before alice's marked entry
    ledger.create_transfers([NewTransfer("marked", "alice", "bob", 1, "USD")])
    marked_at = ledger.transfer("marked").timestamp
    _tamper(db, [f"INSERT INTO account_marks VALUES ('alice', {marked_at - 1}, 1, 2, 3, 4)"])
    assert audit(db).violations == [f"history mark of alice at {marked_at - 1} is [1, 2, 3, 4], journal says None"]


@pytest.mark.parametrize(("every", "told"), [(2, [(2, 4), (4, 4)]), (3, [(3, 4), (4, 4)]), (10, [(4, 4)])])
def test_the_audit_tells_how_far_its_walk_is_of_the_entries_the_head_counts(books, db, monkeypatch, every, told):
    monkeypatch.setattr(importlib.import_module("danbao.ledger.audit"), "PROGRESS_EVERY_ENTRIES", every)
    heard: list[tuple[int, int]] = []
    assert audit(db, progress=lambda walked, entries: heard.append((walked, entries))).ok
    assert heard == told


def test_an_empty_journal_is_told_as_walked(db):
    heard: list[tuple[int, int]] = []
    assert audit(db, progress=lambda walked, entries: heard.append((walked, entries))).ok
    assert heard == [(0, 0)]


def test_the_audit_holds_no_more_in_memory_for_a_longer_past(ledger, db, monkeypatch):
    """Resolved holds and history marks are compared as the walk reaches them, not kept:
    auditing four times the resolved holds (and their marks) takes no more memory.
    (Keeping each resolved hold took about 600 bytes a hold.)"""
    # Fetches far smaller than what is measured. (The package exports the function under
    # the module's name.)
    monkeypatch.setattr(importlib.import_module("danbao.ledger.audit"), "STREAM_ROWS_PER_FETCH", 50)
    open_accounts(ledger, "alice", "bob")
    fund(ledger, "alice", 10**9)

    def resolved_holds(start: int, count: int) -> None:
        for first in range(start, start + count, 500):
            batch = []
            for i in range(first, first + 500):
                batch.append(NewTransfer(f"h{i}", "alice", "bob", 5, "USD", flags=int(TransferFlags.pending), timeout_seconds=60))
                batch.append(NewTransfer(f"p{i}", pending_id=f"h{i}", flags=int(TransferFlags.post_pending)))
            assert all(r.ok for r in ledger.create_transfers(batch))

    def peak() -> int:
        report, held = peak_bytes(lambda: audit(db))
        assert report.ok, report.violations
        return held

    resolved_holds(0, 500)
    audit(db)  # first-use caches (statements, types) are not the audit's
    before = peak()
    resolved_holds(500, 1500)
    after = peak()
    assert after - before < 150_000, (before, after)  # 1,500 holds kept were 750 KB


def test_audit_catches_an_account_the_journal_names_but_that_is_gone(books, db):
    _tamper(db, ["UPDATE accounts SET id = 'robert' WHERE id = 'bob'"])
    report = audit(db)
    _reported(report, "journal names account bob, which does not exist")


def test_violations_are_counted_beyond_those_reported(books, db):
    from danbao.ledger.audit import VIOLATIONS_REPORTED_MAX

    books.create_transfers([NewTransfer(f"x{i}", "alice", "bob", 1, "USD") for i in range(VIOLATIONS_REPORTED_MAX)])
    _tamper(db, ["UPDATE transfers SET hash = 'x'"])  # every entry's link breaks
    report = audit(db)
    assert len(report.violations) == VIOLATIONS_REPORTED_MAX
    assert report.violations_count > VIOLATIONS_REPORTED_MAX


def _rechain(db):
    """Recompute every entry's hash and the head's, as a forger who knows the scheme
    would after editing an entry: the chain alone then shows nothing."""
    with db.engine.begin() as conn:
        last = GENESIS_HASH
        for t in conn.execute(text("SELECT * FROM transfers ORDER BY timestamp")).all():
            last = entry_hash(
                last, t.timestamp, t.id, t.debit_account_id, t.credit_account_id, t.amount, t.hold_amount,
                t.currency, t.code, t.ref, t.metadata, t.flags, t.pending_id, t.timeout_seconds,
            )
            conn.execute(text("UPDATE transfers SET hash = :h WHERE timestamp = :ts"), {"h": last, "ts": t.timestamp})
        conn.execute(text("UPDATE ledger_head SET hash = :h"), {"h": last})


@pytest.fixture
def expired_at_its_deadline(ledger, db, clock):
    """A hold of 60 s, expired at the very nanosecond of its deadline."""
    open_accounts(ledger, "alice", "bob")
    fund(ledger, "alice", 100)
    ledger.create_transfers([NewTransfer("hx", "alice", "bob", 40, "USD", flags=int(TransferFlags.pending), timeout_seconds=60)])
    [hold] = ledger.holds("alice").items
    clock.advance(ns=hold.expires_at - clock.now_ns())
    assert ledger.expire_due() == 1
    assert ledger.transfer("~hx").timestamp == hold.expires_at
    return ledger


def test_a_hold_expired_at_its_deadline_passes(expired_at_its_deadline, db):
    assert audit(db).ok
    _rechain(db)
    assert audit(db).ok, "the forger's own rechaining is faithful"


@pytest.mark.parametrize(("timeout", "expires_at"), [(3600, f"timestamp + {3600 * NS_PER_SECOND}"), (0, "NULL")], ids=["an hour", "no deadline"])
def test_a_rewritten_chain_still_shows_a_hold_expired_before_its_deadline(expired_at_its_deadline, db, timeout, expires_at):
    # The forgery: the hold was given an hour (or forever), yet it expired after a minute.
    _tamper(db, [
        f"UPDATE transfers SET timeout_seconds = {timeout} WHERE id = 'hx'",
        f"UPDATE holds SET expires_at = {expires_at} WHERE pending_id = 'hx'",
    ])
    _rechain(db)
    report = audit(db)
    assert report.violations == ["transfer ~hx expires hold hx before its deadline"]


def _stored_head(db) -> JournalHead:
    with db.engine.connect() as conn:
        count, last = conn.execute(text("SELECT transfers_count, hash FROM ledger_head")).one()
    return JournalHead(count, last)


def test_the_report_names_where_the_journal_stands(books, db):
    report = audit(db)
    assert report.head == _stored_head(db) == JournalHead(4, report.head.hash)
    assert report.head.hash != GENESIS_HASH
    assert str(report.head) == f"4:{report.head.hash}"


def test_an_anchor_proves_the_journal_up_to_it_while_it_grows(books, db):
    anchor = audit(db).head
    books.create_transfers([NewTransfer("later", "alice", "bob", 7, "USD")])
    report = audit(db, anchor)
    assert report.ok, report.violations
    assert report.head.entries == 5
    assert audit(db, JournalHead(0, GENESIS_HASH)).ok
    assert audit(db, report.head).ok


def test_an_anchor_shows_what_a_rewritten_chain_hides(books, db):
    anchor = audit(db).head
    books.create_transfers([NewTransfer("later", "alice", "bob", 7, "USD")])
    _tamper(db, ["UPDATE transfers SET metadata = '{\"k\":\"forged\"}' WHERE id = 't1'"])
    _rechain(db)
    assert audit(db).ok, "the rewritten chain alone passes: that is what anchors are for"
    assert audit(db, anchor).violations == [
        f"the journal's first 4 entries are not the anchor's: they hash to {_stored_hash_at(db, 4)}, not {anchor.hash}"
    ]


def test_an_anchored_entry_edited_without_rehashing_fails_the_anchor_as_well_as_the_chain(books, db):
    """The anchor is checked against what the entries hash to, not against the hash a row
    claims: an edit left unhashed is a broken link and an anchor not met."""
    anchor = audit(db).head
    _tamper(db, ["UPDATE transfers SET amount = 249 WHERE id = 'p1'"])  # the anchor's last entry
    violations = audit(db, anchor).violations
    assert "hash chain broken at transfer p1" in violations[0]
    assert any(v.startswith("the journal's first 4 entries are not the anchor's") for v in violations), violations


def test_an_anchor_shows_entries_removed_from_the_end(books, db):
    anchor = audit(db).head
    _tamper(db, [
        "DELETE FROM transfers WHERE id = 'p1'",
        "UPDATE ledger_head SET transfers_count = 3, hash = (SELECT hash FROM transfers WHERE id = 'h1')",
        "UPDATE holds SET state = 'pending' WHERE pending_id = 'h1'",
    ])
    report = audit(db, anchor)
    assert "the journal has 3 entries, fewer than the anchor's 4" in report.violations


def test_an_anchor_at_no_entries_must_be_the_genesis_hash(books, db):
    assert audit(db, JournalHead(0, "a" * 64)).violations == [f"anchor 0:{'a' * 64} has no entries but is not the genesis hash"]


def test_an_anchor_reads_back_as_printed_in_either_case():
    head = JournalHead(12, "0123456789abcdef" * 4)
    assert JournalHead.parse(str(head)) == head
    assert JournalHead.parse(str(head).upper()) == head


@pytest.mark.parametrize("text", [
    "", "12", ":" + "a" * 64, "12:", "-1:" + "a" * 64, "1.5:" + "a" * 64, "\u0663:" + "a" * 64,
    "12:" + "a" * 63, "12:" + "a" * 65, "12:" + "g" * 64, "12:0x" + "a" * 62, " 12:" + "a" * 64,
    f"{2**63}:" + "a" * 64, "1" * 10_000,
], ids=lambda text: repr(text[:20]))
def test_an_anchor_that_is_not_one_is_refused_with_its_code(text):
    with pytest.raises(DanbaoError) as refused:
        JournalHead.parse(text)
    assert refused.value.code == ReadCode.anchor_invalid and refused.value.field == "anchor"
    assert len(refused.value.message) < 200


def _stored_hash_at(db, entries: int) -> str:
    with db.engine.connect() as conn:
        return conn.execute(text("SELECT hash FROM transfers ORDER BY timestamp LIMIT 1 OFFSET :n"), {"n": entries - 1}).scalar()
