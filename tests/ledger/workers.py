"""Processes the concurrency and crash tests start: they write through their own Ledger.

Run as `python -m tests.ledger.workers bank URL SEED COUNT` or `... crash URL BATCH`.
"""

from __future__ import annotations

import random
import sys

from danbao.clock import SystemClock
from danbao.ledger import Ledger, NewTransfer, Result, TransferFlags
from danbao.store import Database

BANK_ACCOUNTS = [f"acct{i}" for i in range(5)]


def random_transfer(rng: random.Random, id: str) -> NewTransfer:
    debit, credit = rng.sample(BANK_ACCOUNTS, 2)
    return NewTransfer(id, debit, credit, rng.randint(1, 400), "USD", code="bank")


def bank(url: str, seed: int, count: int) -> None:
    """Make `count` random transfers; print how many succeeded."""
    rng = random.Random(seed)
    db = Database(url)
    ok = 0
    with Ledger(db, SystemClock()) as ledger:
        for i in range(count):
            [r] = ledger.create_transfers([random_transfer(rng, f"p{seed}-{i}")])
            ok += r.result is Result.ok
    db.dispose()
    print(ok, flush=True)


def crash(url: str, batch: int) -> None:
    """Commit batches forever, announcing each; the test kills us mid-flight."""
    db = Database(url)
    ledger = Ledger(db, SystemClock(), group_commit=False)
    n = 0
    while True:
        # Each batch is a linked chain plus loose transfers: all of it commits or none.
        transfers = [
            NewTransfer(f"b{n}-{i}", "src", f"dst{i % 7}", 1, "USD", flags=int(TransferFlags.linked) if i < 3 else 0)
            for i in range(batch)
        ]
        results = ledger.create_transfers(transfers)
        if not all(r.result is Result.ok for r in results):
            raise SystemExit(f"batch {n} failed: {results[0]}")
        print(f"committed {n}", flush=True)
        n += 1


if __name__ == "__main__":
    command, url, *rest = sys.argv[1:]
    if command == "bank":
        bank(url, int(rest[0]), int(rest[1]))
    else:
        crash(url, int(rest[0]))
