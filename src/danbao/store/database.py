"""The database behind one interface: SQLite (embedded default) or PostgreSQL.

The backend is chosen here and only here, from a URL. Write transactions run through
`Database.write`, which begins them the way each backend needs (SQLite: `BEGIN IMMEDIATE`
so two writers never deadlock on lock upgrade) and retries transient conflicts a bounded
number of times. Nothing connects at import time.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, make_url
from sqlalchemy.pool import NullPool

from danbao.errors import invariant
from danbao.store.errors import StoreError, TransientStoreError, neutral_errors, raise_neutral, translate
from danbao.store.raw import Raw, broken_server_check

T = TypeVar("T")

DEFAULT_URL = "sqlite:///danbao.db"
WRITE_ATTEMPTS_MAX = 20
RETRY_BACKOFF_BASE_SECONDS = 0.001
RETRY_BACKOFF_MAX_SECONDS = 0.05
SQLITE_BUSY_TIMEOUT_MS = 30_000
POOL_SIZE = 16


def database_url(url: str | None = None) -> str:
    """The URL to use: the argument, else `DANBAO_DATABASE_URL`, else ./danbao.db."""
    return url or os.environ.get("DANBAO_DATABASE_URL") or DEFAULT_URL


def sqlite_file(url: str | None = None) -> Path | None:
    """The file a SQLite URL names; None for PostgreSQL or an in-memory database."""
    resolved = database_url(url)
    if not resolved.startswith("sqlite"):
        return None
    path = make_url(resolved).database
    return Path(path) if path and path != ":memory:" else None


def _normalise(url: str) -> str:
    # Accept the URLs people paste (postgres://, postgresql://) and use psycopg 3.
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


class Database:
    """An engine plus the transaction discipline every writer follows."""

    def __init__(self, url: str | None = None, *, pool_size: int = POOL_SIZE):
        self.url = _normalise(database_url(url))
        if self.url.startswith("sqlite"):
            self.dialect = "sqlite"
            self.engine = _sqlite_engine(self.url)
        elif self.url.startswith("postgresql"):
            self.dialect = "postgresql"
            self.engine = create_engine(
                self.url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=False
            )
        else:
            raise StoreError(f"unsupported database URL {url!r}: use sqlite:/// or postgresql://")
        # SQLite: one connection kept out of the pool for writers that must not wait (see
        # `write_raw`), at busy timeout 0 for good. A non-blocking lock makes it one
        # writer's at a time; a second such writer is refused as if the write lock were taken.
        self._unwaiting: Any = None
        self._unwaiting_lock = threading.Lock()

    @property
    def shown_url(self) -> str:
        """The URL with any password masked: for logs and messages."""
        return make_url(self.url).render_as_string(hide_password=True)

    @property
    def in_process(self) -> bool:
        """Statements are calls into this process (SQLite), not round trips to a server."""
        return self.dialect == "sqlite"

    def write(self, work: Callable[[Connection], T], *, attempts: int = WRITE_ATTEMPTS_MAX) -> T:
        """Run `work` in one write transaction, retrying transient conflicts (bounded)."""

        def attempt() -> T:
            with self.engine.connect().execution_options(danbao_write=True) as conn:
                with conn.begin():
                    return work(conn)

        return _with_retries(attempt, attempts)

    def write_raw(
        self,
        work: Callable[[Raw], T],
        *,
        attempts: int = WRITE_ATTEMPTS_MAX,
        pipelined: bool = False,
        one_trip: bool = False,
        wait: bool = True,
    ) -> T:
        """Like `write`, on a pooled DB-API connection: for hot paths that send plain SQL.

        SQLAlchemy's connection and transaction bookkeeping costs more CPU than a small
        commit's database work, so the ledger's batch commit skips it. `pipelined` puts a
        PostgreSQL connection in pipeline mode for `work`: its `Raw.write`s travel together
        instead of one round trip each (SQLite, in process, has no round trips to save).
        `one_trip` goes further, for a `work` that only writes: the server checks its
        `Raw.expect`s and the COMMIT is queued behind them, so the whole transaction is one
        round trip; a broken check fails it, its COMMIT included.
        `wait=False` makes SQLite refuse at once (`TransientStoreError`) when another
        connection holds the write lock, instead of waiting up to its busy timeout: for a
        caller that must not block, such as an event loop.
        """

        if not wait and self.dialect == "sqlite":
            return _with_retries(lambda: self._write_unwaiting(work)(), attempts)

        def attempt() -> T:
            proxy = self.engine.raw_connection()
            try:
                if self.dialect == "postgresql" and (pipelined or one_trip):
                    return _pipelined_work_and_commit(proxy, work, one_trip=one_trip)
                return _work_and_commit(proxy, Raw(proxy, self.dialect), work, begin=self.dialect == "sqlite")
            except BaseException:
                _rollback_quietly(proxy)
                raise
            finally:
                proxy.close()  # back to the pool

        return _with_retries(attempt, attempts)

    def write_raw_commit_later(self, work: Callable[[Raw], T]) -> Callable[[], T]:
        """`write_raw(wait=False, attempts=1)` on SQLite, but with the COMMIT left to the
        caller: `work` runs now, and the returned `commit` makes it durable, on any thread,
        and returns `work`'s result (or raises, the transaction rolled back). Until then no
        other no-wait write can start. For an event loop, which can go on with its other
        work while a thread waits out the COMMIT's write and `fdatasync`."""
        invariant(self.dialect == "sqlite", "only an in-process database commits this way")
        return _with_retries(lambda: self._write_unwaiting(work), 1)

    def _write_unwaiting(self, work: Callable[[Raw], T]) -> Callable[[], T]:
        """One attempt of `write_raw(wait=False)` on SQLite, on the kept connection: `work`
        done, and its COMMIT returned (see `write_raw_commit_later`).

        Kept rather than pooled, it skips the pool's checkout and check-in and the two
        busy-timeout switches a pooled connection would need: the event loop commits a
        group this way on every turn, where those cost about a tenth of its CPU."""
        if not self._unwaiting_lock.acquire(blocking=False):
            raise TransientStoreError("the no-wait connection is in use")
        handed_over = False
        try:
            if self._unwaiting is None:
                proxy = self.engine.raw_connection()
                proxy.detach()  # ours: closing it closes it, not a return to the pool
                connection = proxy.dbapi_connection
                connection.execute("PRAGMA busy_timeout = 0")
                self._unwaiting = connection
            connection = self._unwaiting
            raw: Raw | None = None
            try:
                # Making its cursor is the connection's first use: a broken one fails here.
                raw = Raw(connection, self.dialect)
                result = _work_settled(raw, work, begin=True)
            except BaseException:
                if raw is not None:
                    raw.close()
                self._roll_back_unwaiting(connection)
                raise
            opened: Raw = raw  # made, or this raised

            def commit() -> T:
                try:
                    with neutral_errors():
                        _commit(connection, opened)
                    return result
                except BaseException:
                    self._roll_back_unwaiting(connection)
                    raise
                finally:
                    opened.close()
                    self._unwaiting_lock.release()

            handed_over = True
            return commit
        finally:
            if not handed_over:
                self._unwaiting_lock.release()

    def _roll_back_unwaiting(self, connection: Any) -> None:
        try:
            connection.rollback()
        except Exception:  # broken: the next writer opens a fresh one
            self._unwaiting = None
            _close_quietly(connection)

    def read_raw(self, work: Callable[[Raw], T]) -> T:
        """Like `read`, on a pooled DB-API connection: one snapshot, no locks, no writes."""
        with neutral_errors():  # connecting too: an unreachable server is a StoreError
            proxy = self.engine.raw_connection()
            raw = Raw(proxy, self.dialect)
            try:
                raw.run("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ" if self.dialect == "postgresql" else "BEGIN")
                return work(raw)
            finally:
                _rollback_quietly(proxy)
                raw.close()
                proxy.close()

    def read(self, work: Callable[[Connection], T]) -> T:
        """Run `work` in one read transaction (a consistent snapshot on both backends)."""
        with neutral_errors(), self.engine.connect() as conn:
            if self.dialect == "postgresql":
                # READ COMMITTED would give each statement its own snapshot; an audit
                # or a multi-query read needs one snapshot for all of them.
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                return work(conn)

    def dispose(self) -> None:
        with self._unwaiting_lock:
            if self._unwaiting is not None:
                _close_quietly(self._unwaiting)
                self._unwaiting = None
        self.engine.dispose()


def _with_retries(attempt: Callable[[], T], attempts: int) -> T:
    """Run one transaction attempt at a time, retrying only what a retry can cure."""
    for number in range(1, attempts + 1):
        try:
            return attempt()
        except Exception as error:  # translated below; anything else propagates as is
            if isinstance(translate(error), TransientStoreError) and number < attempts:
                _backoff(number)
                continue
            raise_neutral(error)
            raise
    raise TransientStoreError(f"gave up after {attempts} attempts")  # pragma: no cover


def _work_and_commit(proxy, raw: Raw, work: Callable[[Raw], T], *, begin: bool = False) -> T:  # type: ignore[no-untyped-def]
    try:
        result = _work_settled(raw, work, begin=begin)
        _commit(proxy, raw)
        return result
    finally:
        raw.close()


def _work_settled(raw: Raw, work: Callable[[Raw], T], *, begin: bool) -> T:
    """`work` done, every queued write answered and checked: all but the COMMIT."""
    if begin:
        # SQLite: take the write lock up front, so two writers never deadlock on a
        # lock upgrade (at busy timeout 0, refused at once if it is taken).
        raw.run("BEGIN IMMEDIATE")
    result = work(raw)
    raw.settle()
    return result


def _commit(proxy, raw: Raw) -> None:  # type: ignore[no-untyped-def]
    proxy.commit()
    raw.committed()


def _pipelined_work_and_commit(proxy, work: Callable[[Raw], T], *, one_trip: bool = False) -> T:  # type: ignore[no-untyped-def]
    """PostgreSQL: `work` in pipeline mode, then its checks and COMMIT.

    Leaving a pipeline always syncs it, which answers every write still queued; so the
    checks need no sync of their own and the COMMIT is one round trip. Committing inside
    the pipeline cost three: the checks' sync, the COMMIT's, and the exit's (empty).
    `one_trip`: the server makes the checks, so the COMMIT is queued behind them and the
    exit's sync answers the whole transaction (see `Database.write_raw`).

    BEGIN is ours too, the pipeline's first statement, sent in autocommit: psycopg's own
    is followed by a sync of its own, a round trip before any of the work."""
    connection = proxy.driver_connection
    raw: Raw | None = None
    connection.autocommit = True
    try:
        with connection.pipeline() as pipeline:
            raw = Raw(proxy, "postgresql", pipeline=pipeline, checked_by_server=one_trip)
            raw.write("BEGIN")
            result = work(raw)
            if one_trip:
                raw.write("COMMIT")
        if not one_trip:
            raw.leave_pipeline()
            raw.settle()
            raw.run("COMMIT")
        raw.committed()
        return result
    except Exception as error:
        broken = broken_server_check(error)
        if broken is not None:
            raise broken from error
        raise
    finally:
        if raw is not None:
            raw.close()
        _leave_autocommit(proxy)


def _leave_autocommit(proxy) -> None:  # type: ignore[no-untyped-def]
    """Hand the connection back to psycopg's own transactions, ending any left open (a
    failed one). A connection that cannot be must never reach the pool in autocommit,
    where each statement would commit alone: it is discarded."""
    from psycopg.pq import TransactionStatus

    connection = proxy.driver_connection
    try:
        if connection.info.transaction_status != TransactionStatus.IDLE:
            connection.rollback()
        connection.autocommit = False
    except Exception:
        proxy.invalidate()


def _close_quietly(connection) -> None:  # type: ignore[no-untyped-def]
    try:
        connection.close()
    except Exception:
        pass


def _rollback_quietly(proxy) -> None:  # type: ignore[no-untyped-def]
    try:
        proxy.rollback()
    except Exception:  # the connection may be dead; the pool discards it
        pass


def _backoff(attempt: int) -> None:
    # Jittered exponential backoff: a real wait for a conflicting writer, not a test sleep.
    ceiling = min(RETRY_BACKOFF_MAX_SECONDS, RETRY_BACKOFF_BASE_SECONDS * 2**attempt)
    time.sleep(random.uniform(0, ceiling))


def _sqlite_engine(url: str) -> Engine:
    path = url.removeprefix("sqlite:///")
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        # One connection per checkout keeps each thread's transaction its own; the
        # SQLite file is the shared state.
        poolclass=NullPool if path == ":memory:" else None,
        # Last in, first out: a connection's page cache is thrown away whenever another
        # connection has written since its last transaction, so the writer reusing the
        # connection it just returned keeps its cache warm (FIFO made it re-read about four
        # pages per trade call).
        **({} if path == ":memory:" else {"pool_use_lifo": True}),
        connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        # Let us issue BEGIN ourselves (pysqlite's implicit transactions get it wrong).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed transfer survives power loss. Durability is not for sale.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):  # type: ignore[no-untyped-def]
        write = conn.get_execution_options().get("danbao_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine
