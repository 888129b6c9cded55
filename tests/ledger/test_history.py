"""An account's history (paged transfers, past balances) read from its chain through the
journal: the same answers as scanning the whole journal, across marks, chains rolled
back, holds, transactions and tampering."""

from __future__ import annotations

import random

import pytest
from sqlalchemy import text

from danbao.errors import InvariantViolation
from danbao.ledger import Ledger, NewTransfer, Result, TransferFlags, audit, history
from danbao.ledger.journal import deltas
from danbao.ledger.model import HISTORY_MARK_EVERY, Balance, Transfer
from tests.ledger.helpers import fund, open_accounts
from tests.steps import counted_steps

PENDING = int(TransferFlags.pending)
POST = int(TransferFlags.post_pending)
VOID = int(TransferFlags.void_pending)
LINKED = int(TransferFlags.linked)
ACCOUNTS = ("a", "b", "c")


def journal(ledger: Ledger) -> list[Transfer]:
    """Every entry, the slow way: the whole table in time order."""
    columns = ", ".join(Transfer.__dataclass_fields__)
    rows = ledger.db.read_raw(lambda raw: raw.rows(f"SELECT {columns} FROM transfers ORDER BY timestamp"))
    return [Transfer(*row) for row in rows]


def entries_of(ledger: Ledger, account_id: str) -> list[Transfer]:
    return [t for t in journal(ledger) if account_id in (t.debit_account_id, t.credit_account_id)]


def balance_by_scan(entries: list[Transfer], account_id: str, timestamp: int) -> Balance:
    totals = [0, 0, 0, 0]
    for t in entries:
        if t.timestamp > timestamp:
            break
        pending, posted = deltas(t.flags, t.amount, t.hold_amount)
        side = 0 if t.debit_account_id == account_id else 2
        totals[side] += pending
        totals[side + 1] += posted
    return Balance(*totals)


def read_all_pages(ledger: Ledger, account_id: str, limit: int) -> list[Transfer]:
    found, cursor = [], None
    for _ in range(10_000):
        page = ledger.transfers_of(account_id, after=cursor, limit=limit)
        found += page.items
        assert len(page.items) <= limit
        if page.next_cursor is None:
            return found
        cursor = page.next_cursor
    raise AssertionError("paging never ended")


@pytest.fixture
def busy(ledger: Ledger, clock) -> Ledger:  # type: ignore[no-untyped-def]
    """Three accounts with a few hundred entries each of every kind, over many batches."""
    open_accounts(ledger, *ACCOUNTS)
    for account in ACCOUNTS:
        fund(ledger, account, 1_000_000)
    rng = random.Random(7)
    n = 0
    for _ in range(12):
        batch: list[NewTransfer] = []
        for _ in range(rng.randint(1, 60)):
            n += 1
            debit, credit = rng.sample(ACCOUNTS, 2)
            kind = rng.random()
            if kind < 0.2:
                batch.append(NewTransfer(f"h{n}", debit, credit, rng.randint(1, 50), "USD", flags=PENDING, timeout_seconds=rng.choice([0, 1])))
            elif kind < 0.3 and any(t.flags == PENDING for t in batch):
                hold = rng.choice([t for t in batch if t.flags == PENDING])
                batch.append(NewTransfer(f"p{n}", flags=rng.choice([POST, VOID]), pending_id=hold.id))
            elif kind < 0.4:
                # A linked chain that fails: its entries (and any marks they reached) vanish.
                batch.append(NewTransfer(f"l{n}", debit, credit, 5, "USD", flags=LINKED))
                batch.append(NewTransfer(f"m{n}", debit, "nobody", 5, "USD"))
            else:
                batch.append(NewTransfer(f"t{n}", debit, credit, rng.randint(1, 50), "USD"))
        ledger.create_transfers(batch)
        clock.advance(rng.choice([0, 2]))  # some holds expire at the next batch
    return ledger


def test_the_fixture_reaches_marks_and_rolls_back_chains(busy: Ledger) -> None:
    counts = {a: len(entries_of(busy, a)) for a in (*ACCOUNTS, "bank")}
    assert min(counts[a] for a in ACCOUNTS) > 2 * HISTORY_MARK_EVERY
    assert not any(t.id[0] in "lm" for t in journal(busy))  # every linked chain failed
    kinds = {t.flags & (PENDING | POST | VOID | int(TransferFlags.expiry)) for t in journal(busy)}
    assert kinds == {0, PENDING, POST, VOID, int(TransferFlags.expiry)}
    marks = busy.db.read_raw(lambda raw: raw.rows("SELECT COUNT(*) FROM account_marks"))
    assert marks == [(sum(c // HISTORY_MARK_EVERY for c in counts.values()),)]


@pytest.mark.parametrize("limit", [1, 7, HISTORY_MARK_EVERY, 100, 1000])
def test_pages_read_every_entry_in_time_order_once(busy: Ledger, limit: int) -> None:
    for account in ACCOUNTS:
        assert read_all_pages(busy, account, limit) == entries_of(busy, account)


def test_a_page_may_start_anywhere(busy: Ledger) -> None:
    entries = entries_of(busy, "a")
    for i in range(0, len(entries), 5):
        cursor = str(entries[i].timestamp)
        assert busy.transfers_of("a", after=cursor, limit=30).items == entries[i + 1 : i + 31]
    between = str(entries[10].timestamp + 1)  # not an entry of this account
    assert busy.transfers_of("a", after=between, limit=3).items == entries[11:14]


def test_past_balances_match_a_scan_of_the_journal(busy: Ledger) -> None:
    for account in ACCOUNTS:
        entries = entries_of(busy, account)
        for t in entries:
            for moment in (t.timestamp - 1, t.timestamp):
                assert busy.balance_at(account, moment) == balance_by_scan(entries, account, moment)
        a = busy.account(account)
        latest = Balance(a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted)  # type: ignore[union-attr]
        assert busy.balance_at(account, entries[-1].timestamp + 10**12) == latest
        assert busy.balance_at(account, 0) == Balance(0, 0, 0, 0)


def test_accounts_without_entries_have_an_empty_history(busy: Ledger) -> None:
    open_accounts(busy, "quiet")
    assert busy.transfers_of("quiet").items == []
    assert busy.balance_at("quiet", 2**62) == Balance(0, 0, 0, 0)
    assert busy.transfers_of("never-opened").items == []
    assert busy.balance_at("never-opened", 2**62) == Balance(0, 0, 0, 0)


def test_entries_made_inside_a_transaction_join_the_history(busy: Ledger) -> None:
    def inside(txn):  # type: ignore[no-untyped-def]
        results = []
        for i in range(HISTORY_MARK_EVERY + 3):
            [r] = txn.create_transfers([NewTransfer(f"x{i}", "a", "b", 1, "USD")])
            results.append(r.result)
        return results

    assert busy.transaction(inside) == [Result.ok] * (HISTORY_MARK_EVERY + 3)
    assert read_all_pages(busy, "b", 50) == entries_of(busy, "b")
    entries = entries_of(busy, "a")
    assert busy.balance_at("a", entries[-40].timestamp) == balance_by_scan(entries, "a", entries[-40].timestamp)
    assert audit(busy.db).ok


def test_the_audit_passes_and_catches_a_mark_changed_or_removed(busy: Ledger) -> None:
    report = audit(busy.db)
    assert report.ok, report.violations
    for sql in (
        "UPDATE account_marks SET credits_posted = credits_posted + 1 WHERE account_id = 'b'",
        "DELETE FROM account_marks WHERE account_id = 'c'",
    ):
        with busy.db.engine.begin() as conn:
            conn.execute(text(sql))
        assert any("history mark" in v for v in audit(busy.db).violations)


def test_a_history_whose_marks_were_removed_fails_loudly_rather_than_walk_the_whole_chain(busy: Ledger) -> None:
    first = entries_of(busy, "a")[0].timestamp
    with busy.db.engine.begin() as conn:
        conn.execute(text("DELETE FROM account_marks WHERE account_id = 'a'"))
    with pytest.raises(InvariantViolation, match="history runs"):
        busy.balance_at("a", first)


def test_a_journal_from_before_the_chain_is_linked_by_the_migration(busy: Ledger) -> None:
    from alembic import command

    from danbao.store import current_revision, head_revision, upgrade
    from danbao.store.migrate import _config

    pages = {a: read_all_pages(busy, a, 100) for a in ACCOUNTS}
    linked = busy.db.read_raw(lambda raw: raw.rows("SELECT timestamp, debit_prev, credit_prev FROM transfers ORDER BY timestamp"))
    marks = busy.db.read_raw(lambda raw: raw.rows("SELECT * FROM account_marks ORDER BY account_id, timestamp"))
    busy.close()
    config = _config()
    with busy.db.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0004")  # back to the per-account indexes: the chain is gone
    assert current_revision(busy.db) == "0004"
    upgrade(busy.db)
    assert current_revision(busy.db) == head_revision()
    assert busy.db.read_raw(lambda raw: raw.rows("SELECT timestamp, debit_prev, credit_prev FROM transfers ORDER BY timestamp")) == linked
    assert busy.db.read_raw(lambda raw: raw.rows("SELECT * FROM account_marks ORDER BY account_id, timestamp")) == marks
    with Ledger(busy.db) as reopened:
        assert {a: read_all_pages(reopened, a, 100) for a in ACCOUNTS} == pages
    assert audit(busy.db).ok


def test_a_read_of_the_history_takes_no_more_entries_than_it_asks_for(busy: Ledger) -> None:
    # The first stretch between marks holds HISTORY_MARK_EVERY entries; three are asked for.
    found = busy.db.read(lambda conn: history.transfers_after(conn, "a", 0, 3))
    assert found == entries_of(busy, "a")[:3]


def _steps(ledger: Ledger, read) -> int:  # type: ignore[no-untyped-def]
    """SQLite virtual-machine steps (in hundreds) that `read(conn)` takes."""

    def counting(conn) -> int:  # type: ignore[no-untyped-def]
        with counted_steps(conn.connection.driver_connection) as counted:
            read(conn)
        return counted[0]

    return ledger.db.read(counting)


def test_a_recent_moment_is_read_from_the_recent_entries_however_long_the_history(ledger: Ledger) -> None:
    if not ledger.db.in_process:
        pytest.skip("counts SQLite's virtual-machine steps, which PostgreSQL has no counter for")
    open_accounts(ledger, "long", "short")
    for account, entries in (("long", 16 * HISTORY_MARK_EVERY - 10), ("short", HISTORY_MARK_EVERY - 10)):
        transfers = [NewTransfer(f"{account}-{i}", "bank", account, 1, "USD") for i in range(entries)]
        fund(ledger, account, 1)  # opens the bank: one entry more
        for start in range(0, entries, 500):
            assert {r.result for r in ledger.create_transfers(transfers[start : start + 500])} == {Result.ok}

    def ten_back(account: str) -> int:
        moment = entries_of(ledger, account)[-11].timestamp
        expected = balance_by_scan(entries_of(ledger, account), account, moment)
        assert ledger.balance_at(account, moment) == expected
        return _steps(ledger, lambda conn: history.balance_at(conn, account, moment))

    short, long = ten_back("short"), ten_back("long")
    # Both walk the ten entries after the moment back from the latest. Walking the chain
    # on past the moment, to the account's first entry, read the long history whole.
    assert long < 2 * short + 2, (short, long)
