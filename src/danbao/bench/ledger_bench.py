"""`danbao bench ledger`: ledger throughput against the bare driver doing the same writes.

The bare-driver reference inserts one transfer row and updates two balance rows per
transfer, with no ledger logic: the physical floor the ledger's overhead is measured
against. Every scenario runs for a bounded time; durability settings are the defaults
(SQLite WAL synchronous=FULL, PostgreSQL synchronous_commit on).
"""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg

from danbao.clock import SystemClock
from danbao.ledger import Ledger, NewAccount, NewTransfer, Result, TransferResult
from danbao.ledger.model import TRANSFERS_PER_BATCH_MAX
from danbao.store import Database, upgrade

SPREAD_ACCOUNTS = 10_000
CLIENTS_MAX = 64


# A scenario as figures name it: backend, scenario, clients, batch.
FigureKey = tuple[str, str, int, int]


@dataclass
class Figure:
    backend: str
    scenario: str
    clients: int
    batch: int
    transfers: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.transfers / self.seconds if self.seconds else 0.0

    @property
    def key(self) -> FigureKey:
        return (self.backend, self.scenario, self.clients, self.batch)

    @classmethod
    def pooled(cls, slices: list[Figure]) -> Figure:
        """One figure from runs of the same scenario (the slices of an interleaved bench)."""
        if not slices or any(f.key != slices[0].key for f in slices):
            raise ValueError("only slices of one scenario pool")
        return cls(*slices[0].key, sum(f.transfers for f in slices), sum(f.seconds for f in slices))


def run_clients(clients: int, seconds: float, work: Callable[[int, Callable[[], bool]], int]) -> tuple[int, float]:
    """Run `work(client_index, still_running)` on `clients` threads for a bounded time."""
    deadline = time.perf_counter() + seconds
    counts = [0] * clients
    start = time.perf_counter()

    def body(i: int) -> None:
        counts[i] = work(i, lambda: time.perf_counter() < deadline)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts), time.perf_counter() - start


# -- the bare driver --------------------------------------------------------------------

_BARE_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS bare_accounts (id TEXT PRIMARY KEY, debits BIGINT NOT NULL, credits BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS bare_transfers (id TEXT PRIMARY KEY, debit TEXT NOT NULL, credit TEXT NOT NULL, amount BIGINT NOT NULL)",
]


class _Bare:
    """Plain DB-API: insert the transfer, update two balances, commit."""

    def __init__(self, backend: str, target: str, accounts: int):
        self.backend, self.target = backend, target
        self.mark = "?" if backend == "sqlite" else "%s"
        conn = self.connect()
        cur = conn.cursor()
        for statement in _BARE_SCHEMA:
            cur.execute(statement)
        cur.execute("DELETE FROM bare_transfers")
        cur.execute("DELETE FROM bare_accounts")
        cur.executemany(f"INSERT INTO bare_accounts VALUES ({self.mark}, 0, 0)", [(f"a{i}",) for i in range(accounts)])
        conn.commit()
        conn.close()

    def connect(self):  # type: ignore[no-untyped-def]
        if self.backend == "sqlite":
            conn = sqlite3.connect(self.target, timeout=60, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            return conn
        return psycopg.connect(self.target)

    def write(self, conn, rows: list[tuple[str, str, str, int]]) -> None:  # type: ignore[no-untyped-def]
        m = self.mark
        cur = conn.cursor()
        if self.backend == "sqlite":
            cur.execute("BEGIN IMMEDIATE")
        cur.executemany(f"INSERT INTO bare_transfers VALUES ({m}, {m}, {m}, {m})", rows)
        cur.executemany(f"UPDATE bare_accounts SET debits = debits + {m} WHERE id = {m}", [(r[3], r[1]) for r in rows])
        cur.executemany(f"UPDATE bare_accounts SET credits = credits + {m} WHERE id = {m}", [(r[3], r[2]) for r in rows])
        conn.commit()


def bare_rate(backend: str, target: str, *, clients: int, batch: int, seconds: float) -> Figure:
    # Spread over as many accounts as the ledger's spread scenario, so row locks on a
    # few hot rows do not make the reference artificially slow.
    bare = _Bare(backend, target, SPREAD_ACCOUNTS)
    ids = itertools.count()

    def work(i: int, running: Callable[[], bool]) -> int:
        conn = bare.connect()
        done = 0
        k = i
        while running():
            rows = []
            for _ in range(batch):
                k += 7919
                rows.append((f"t{next(ids)}", f"a{k % SPREAD_ACCOUNTS}", f"a{(k + 1) % SPREAD_ACCOUNTS}", 1))
            for attempt in range(100):
                try:
                    bare.write(conn, rows)
                    break
                except (sqlite3.OperationalError, psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure):
                    conn.rollback()
            done += batch
        conn.close()
        return done

    count, elapsed = run_clients(clients, seconds, work)
    return Figure(backend, "bare driver", clients, batch, count, elapsed)


# -- the ledger -------------------------------------------------------------------------


def run_tasks(clients: int, seconds: float, work: Callable[[int, Callable[[], bool]], Awaitable[int]]) -> tuple[int, float]:
    """`run_clients` with asyncio tasks on one event loop instead of threads."""
    deadline = time.perf_counter() + seconds

    async def main() -> tuple[int, float]:
        start = time.perf_counter()
        counts = await asyncio.gather(*(work(i, lambda: time.perf_counter() < deadline) for i in range(clients)))
        return sum(counts), time.perf_counter() - start

    return asyncio.run(main())


def ledger_rate(
    backend: str,
    url: str,
    *,
    clients: int,
    batch: int,
    seconds: float,
    hot: bool,
    accounts: int = SPREAD_ACCOUNTS,
    tasks: bool = False,
) -> Figure:
    """The ledger's rate; `tasks` makes the clients asyncio tasks on one event loop, as
    `danbao serve` submits its requests' work, instead of threads."""
    db = Database(url)
    upgrade(db)
    run = uuid.uuid4().hex[:6]
    names = [f"{run}-a{i}" for i in range(accounts)]
    source = f"{run}-src"
    with Ledger(db, SystemClock()) as ledger:
        ledger.create_accounts([NewAccount(source, "USD", "bank_clearing")])
        for start in range(0, accounts, 8000):
            ledger.create_accounts([NewAccount(n, "USD", "wallet") for n in names[start : start + 8000]])
        ids = itertools.count()
        lock = threading.Lock()

        def next_batch(k: int) -> tuple[list[NewTransfer], int]:
            with lock:
                first = next(ids)
                for _ in range(batch - 1):
                    next(ids)
            transfers = []
            for j in range(batch):
                k += 7919
                credit = names[0] if hot else names[k % accounts]
                transfers.append(NewTransfer(f"{run}-{first + j}", source, credit, 1, "USD", "bench"))
            return transfers, k

        def check(results: list[TransferResult]) -> int:
            if results[0].result is not Result.ok:
                raise RuntimeError(f"bench transfer failed: {results[0]}")
            return len(results)

        def work(i: int, running: Callable[[], bool]) -> int:
            done, k = 0, i
            while running():
                transfers, k = next_batch(k)
                done += check(ledger.create_transfers(transfers))
            return done

        async def task(i: int, running: Callable[[], bool]) -> int:
            done, k = 0, i
            while running():
                transfers, k = next_batch(k)
                done += check(await ledger.create_transfers_async(transfers))
            return done

        count, elapsed = run_tasks(clients, seconds, task) if tasks else run_clients(clients, seconds, work)
    db.dispose()
    scenario = "ledger, hot account" if hot else f"ledger, {accounts} accounts"
    return Figure(backend, scenario + (", asyncio clients" if tasks else ""), clients, batch, count, elapsed)


def scenarios(backend: str, url: str, bare_target: str, seconds: float) -> list[Callable[[], Figure]]:
    """The matrix the issue asks for, in the order it is printed."""
    bare = lambda c, b: lambda: bare_rate(backend, bare_target, clients=c, batch=b, seconds=seconds)  # noqa: E731
    led = lambda c, b, hot=False, tasks=False: lambda: ledger_rate(backend, url, clients=c, batch=b, seconds=seconds, hot=hot, tasks=tasks)  # noqa: E731
    return [
        bare(1, 1),
        led(1, 1),
        bare(8, 1),
        led(8, 1),
        led(8, 1, tasks=True),
        bare(1, 1000),
        led(1, 1000),
        led(1, TRANSFERS_PER_BATCH_MAX),
        led(1, 1000, True),
        led(8, 1, True),
        led(8, 1, True, tasks=True),
    ]


def sqlite_targets(directory: Path) -> tuple[str, str]:
    directory.mkdir(parents=True, exist_ok=True)
    for name in ("ledger.db", "bare.db"):
        for suffix in ("", "-wal", "-shm"):
            (directory / f"{name}{suffix}").unlink(missing_ok=True)
    return f"sqlite:///{directory / 'ledger.db'}", str(directory / "bare.db")
