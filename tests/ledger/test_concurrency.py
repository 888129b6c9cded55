"""The bank workload (after Jepsen's bank test) and a crash mid-commit, on both backends.

Writers move money at random among a few `no_overdraft` accounts while readers check
that every snapshot sees the same grand total and no overdrawn account. Afterwards the
audit passes. Writers are threads sharing one ledger (group commit), threads with their own
ledger (real database-level contention), and on PostgreSQL also separate processes.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from danbao.clock import SystemClock
from danbao.ledger import AccountFlags, Ledger, NewAccount, NewTransfer, Result, TransferFlags, audit
from danbao.store import Database
from tests.ledger.workers import BANK_ACCOUNTS, random_transfer

INITIAL = 1_000
WRITERS = 8
TRANSFERS_PER_WRITER = 120
WORKLOAD_SECONDS_MAX = 60.0
PROCESS_TRANSFERS = 150


def open_bank(ledger: Ledger) -> None:
    ledger.create_accounts(
        [NewAccount("bank", "USD", "bank_clearing")]
        + [NewAccount(a, "USD", "wallet", flags=int(AccountFlags.no_overdraft)) for a in BANK_ACCOUNTS]
    )
    results = ledger.create_transfers([NewTransfer(f"fund-{a}", "bank", a, INITIAL, "USD") for a in BANK_ACCOUNTS])
    assert all(r.result is Result.ok for r in results)


@contextmanager
def writers_ledger(db: Database, shared: Ledger, writer: int) -> Iterator[Ledger]:
    """Even writers share one ledger (its group committer); odd ones have their own, so
    ledgers contend in the database too."""
    own = Ledger(db, SystemClock()) if writer % 2 else None
    try:
        yield own or shared
    finally:
        if own:
            own.close()


def test_bank_workload_keeps_the_total_and_the_books(db, database_url):
    shared = Ledger(db, SystemClock())
    open_bank(shared)
    total = INITIAL * len(BANK_ACCOUNTS)
    done = threading.Event()
    deadline = time.monotonic() + WORKLOAD_SECONDS_MAX
    errors: list[BaseException] = []
    reads = [0]
    oks = [0] * WRITERS

    def writer(i: int) -> None:
        rng = random.Random(i)
        try:
            with writers_ledger(db, shared, i) as ledger:
                for k in range(TRANSFERS_PER_WRITER):
                    if time.monotonic() > deadline:
                        break
                    [r] = ledger.create_transfers([random_transfer(rng, f"w{i}-{k}")])
                    assert r.result in (Result.ok, Result.insufficient_funds), r
                    oks[i] += r.result is Result.ok
        except BaseException as error:  # reported by the main thread
            errors.append(error)

    def reader() -> None:
        try:
            while not done.is_set():
                accounts = shared.accounts(BANK_ACCOUNTS)
                assert sum(a.balance for a in accounts) == total, accounts
                assert all(a.debits_posted + a.debits_pending <= a.credits_posted for a in accounts)
                reads[0] += 1
        except BaseException as error:
            errors.append(error)

    processes = []
    if database_url.startswith("postgresql"):
        processes = [
            subprocess.Popen(
                [sys.executable, "-m", "tests.ledger.workers", "bank", database_url, str(100 + p), str(PROCESS_TRANSFERS)],
                stdout=subprocess.PIPE, text=True,
            )
            for p in range(4)
        ]
    writers = [threading.Thread(target=writer, args=(i,)) for i in range(WRITERS)]
    readers = [threading.Thread(target=reader) for _ in range(2)]
    for t in writers + readers:
        t.start()
    process_oks = []
    try:
        for t in writers:
            t.join()
        for p in processes:
            out, _ = p.communicate(timeout=WORKLOAD_SECONDS_MAX * 2)
            assert p.returncode == 0
            process_oks.append(int(out.strip()))
    finally:  # a failed writer process fails the test; it must not leave the readers running
        for p in processes:
            p.kill()
        done.set()
        for t in readers:
            t.join()
        shared.close()

    assert not errors, errors
    assert reads[0] > 0
    assert sum(oks) > 0
    accounts = Ledger(db, group_commit=False).accounts(BANK_ACCOUNTS)
    assert sum(a.balance for a in accounts) == total
    report = audit(db)
    assert report.ok, report.violations
    assert report.transfers_checked == len(BANK_ACCOUNTS) + sum(oks) + sum(process_oks)


HOLD_WRITERS = 4
HOLDS_PER_WRITER = 150


def test_audits_run_while_holds_open_and_resolve_each_see_one_moment(db):
    """The audit reads the journal, the hold rows and the history marks as three streams
    side by side: run while writers open holds and post or void them (and accounts pass
    their history marks), every audit must find them all at one moment, and pass."""
    shared = Ledger(db, SystemClock())
    open_bank(shared)
    auditing, written = threading.Event(), threading.Event()
    errors: list[BaseException] = []
    audits = [0]

    def writer(i: int) -> None:
        rng = random.Random(i)
        try:
            with writers_ledger(db, shared, i) as ledger:
                auditing.wait(WORKLOAD_SECONDS_MAX)
                for k in range(HOLDS_PER_WRITER):
                    debit, credit = rng.sample(BANK_ACCOUNTS, 2)
                    [held] = ledger.create_transfers([NewTransfer(f"h{i}-{k}", debit, credit, 1, "USD", flags=int(TransferFlags.pending))])
                    assert held.result is Result.ok, held
                    resolve = TransferFlags.post_pending if rng.random() < 0.5 else TransferFlags.void_pending
                    [resolved] = ledger.create_transfers([NewTransfer(f"r{i}-{k}", pending_id=f"h{i}-{k}", flags=int(resolve))])
                    assert resolved.result is Result.ok, resolved
        except BaseException as error:  # reported by the main thread
            errors.append(error)

    def auditor() -> None:
        try:
            auditing.set()
            while not written.is_set():
                report = audit(db)
                assert report.ok, report.violations
                audits[0] += 1
        except BaseException as error:
            errors.append(error)

    writers = [threading.Thread(target=writer, args=(i,)) for i in range(HOLD_WRITERS)]
    checker = threading.Thread(target=auditor)
    for t in [checker, *writers]:
        t.start()
    for t in writers:
        t.join()
    written.set()
    checker.join()
    shared.close()
    assert not errors, errors
    assert audits[0] > 0
    report = audit(db)
    assert report.ok, report.violations
    assert report.transfers_checked == len(BANK_ACCOUNTS) + 2 * HOLD_WRITERS * HOLDS_PER_WRITER


def test_concurrent_replays_of_one_transfer_move_money_once(db):
    ledger = Ledger(db, SystemClock())
    open_bank(ledger)
    others = [Ledger(db, SystemClock()) for _ in range(3)]
    barrier = threading.Barrier(8)
    results = []

    def submit(i: int) -> None:
        target = (others + [ledger])[i % 4]
        barrier.wait()
        results.append(target.create_transfers([NewTransfer("once", "acct0", "acct1", 700, "USD")])[0].result)

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.value for r in results) == ["exists"] * 7 + ["ok"]
    assert ledger.account("acct1").balance == INITIAL + 700
    for other in others:
        other.close()
    ledger.close()
    assert audit(db).ok


@pytest.mark.parametrize("kill_after_batches", [3, 17])
def test_sigkill_mid_commit_leaves_whole_batches(db, database_url, kill_after_batches):
    batch = 50
    with Ledger(db, group_commit=False) as ledger:
        ledger.create_accounts(
            [NewAccount("src", "USD", "bank_clearing")] + [NewAccount(f"dst{i}", "USD", "wallet") for i in range(7)]
        )
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.ledger.workers", "crash", database_url, str(batch)],
        stdout=subprocess.PIPE, text=True,
    )
    assert child.stdout is not None
    for line in child.stdout:
        if line.strip() == f"committed {kill_after_batches}":
            break
    child.send_signal(signal.SIGKILL)  # it is already writing the next batch
    child.wait()
    child.stdout.close()

    db.dispose()
    reopened = Database(database_url)
    with Ledger(reopened, group_commit=False) as ledger:
        per_batch: dict[str, int] = {}
        for i in range(7):
            cursor = None
            while True:
                page = ledger.transfers_of(f"dst{i}", after=cursor, limit=1000)
                for t in page.items:
                    per_batch[t.id.split("-")[0]] = per_batch.get(t.id.split("-")[0], 0) + 1
                cursor = page.next_cursor
                if cursor is None:
                    break
        assert all(count == batch for count in per_batch.values()), per_batch
        assert len(per_batch) >= kill_after_batches + 1
        assert ledger.account("src").debits_posted == batch * len(per_batch)
    report = audit(reopened)
    reopened.dispose()
    assert report.ok, report.violations
