"""Transient conflicts are retried a bounded number of times; other errors are not."""

import sqlite3

import psycopg
import pytest
import sqlalchemy.exc

from danbao.store import Database, IntegrityViolation, TransientStoreError
from danbao.store.database import SQLITE_BUSY_TIMEOUT_MS
from danbao.store.errors import StoreError, StoreUnavailable, translate


def flaky(failures: int, error: Exception):
    calls = []

    def work(_conn):
        calls.append(1)
        if len(calls) <= failures:
            raise error
        return "done"

    return work, calls


@pytest.mark.parametrize("method", ["write", "write_raw"])
def test_a_busy_database_is_retried_until_it_succeeds(tmp_path, method):
    db = Database(f"sqlite:///{tmp_path}/r.db")
    work, calls = flaky(2, sqlite3.OperationalError("database is locked"))
    assert getattr(db, method)(work) == "done"
    assert len(calls) == 3
    db.dispose()


@pytest.mark.parametrize("method", ["write", "write_raw"])
def test_retries_are_bounded(tmp_path, method):
    db = Database(f"sqlite:///{tmp_path}/r.db")
    work, calls = flaky(100, sqlite3.OperationalError("database is locked"))
    with pytest.raises(TransientStoreError, match="database is locked"):  # the last attempt's own error
        getattr(db, method)(work, attempts=3)
    assert len(calls) == 3
    db.dispose()


def test_each_wait_between_attempts_is_bounded(tmp_path, monkeypatch):
    from danbao.store import database

    waits: list[float] = []
    monkeypatch.setattr(database.time, "sleep", waits.append)
    monkeypatch.setattr(database.random, "uniform", lambda low, high: high)  # the longest each could be
    db = Database(f"sqlite:///{tmp_path}/r.db")
    work, calls = flaky(database.WRITE_ATTEMPTS_MAX - 1, sqlite3.OperationalError("database is locked"))
    assert db.write_raw(work) == "done"
    assert len(waits) == database.WRITE_ATTEMPTS_MAX - 1
    assert waits[0] == 2 * database.RETRY_BACKOFF_BASE_SECONDS and max(waits) == database.RETRY_BACKOFF_MAX_SECONDS
    db.dispose()

def test_driver_errors_that_a_retry_cannot_cure_are_translated_and_not_retried(tmp_path):
    db = Database(f"sqlite:///{tmp_path}/r.db")
    work, calls = flaky(100, sqlite3.IntegrityError("UNIQUE constraint failed"))
    with pytest.raises(IntegrityViolation):
        db.write_raw(work)
    assert len(calls) == 1
    db.dispose()


def test_programmer_errors_propagate_unchanged(tmp_path):
    db = Database(f"sqlite:///{tmp_path}/r.db")
    work, calls = flaky(100, KeyError("bug"))
    with pytest.raises(KeyError):
        db.write(work)
    assert len(calls) == 1
    db.dispose()


def test_a_no_wait_write_refuses_at_once_while_another_connection_holds_the_write_lock(tmp_path):
    db = Database(f"sqlite:///{tmp_path}/r.db")
    db.write_raw(lambda raw: raw.run("CREATE TABLE t (x INTEGER)"))
    holder = sqlite3.connect(f"{tmp_path}/r.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    calls = []
    with pytest.raises(TransientStoreError):
        db.write_raw(lambda raw: calls.append(raw.run("INSERT INTO t VALUES (1)")), wait=False)
    assert calls == []  # refused before the work ran
    holder.execute("COMMIT")
    # The pooled connection went back with its usual busy timeout, and writes go through.
    assert db.write_raw(lambda raw: raw.rows("PRAGMA busy_timeout")) == [(SQLITE_BUSY_TIMEOUT_MS,)]
    assert db.write_raw(lambda raw: raw.run("INSERT INTO t VALUES (2)"), wait=False) == 1
    holder.close()
    db.dispose()


def test_a_second_no_wait_writer_is_refused_while_the_first_is_writing(tmp_path):
    db = Database(f"sqlite:///{tmp_path}/r.db")
    db.write_raw(lambda raw: raw.run("CREATE TABLE t (x INTEGER)"))
    inner = []

    def outer(raw):
        raw.run("INSERT INTO t VALUES (1)")
        with pytest.raises(TransientStoreError):  # the no-wait connection is this writer's
            db.write_raw(lambda raw: inner.append(raw.run("INSERT INTO t VALUES (2)")), wait=False)
        return "outer"

    assert db.write_raw(outer, wait=False) == "outer"
    assert inner == []
    assert db.read_raw(lambda raw: raw.rows("SELECT x FROM t")) == [(1,)]
    db.dispose()


def half_done(raw):
    """A work that fails after writing."""
    raw.run("INSERT INTO t VALUES (1)")
    raise KeyError("bug")


def test_a_failed_no_wait_write_leaves_nothing_behind_and_the_next_one_goes_through(tmp_path):
    db = Database(f"sqlite:///{tmp_path}/r.db")
    db.write_raw(lambda raw: raw.run("CREATE TABLE t (x INTEGER)"))

    with pytest.raises(KeyError):
        db.write_raw(half_done, wait=False)
    assert db.write_raw(lambda raw: raw.run("INSERT INTO t VALUES (2)"), wait=False) == 1
    assert db.read_raw(lambda raw: raw.rows("SELECT x FROM t")) == [(2,)]
    # It never waits: its busy timeout stays 0 from one write to the next.
    assert db.write_raw(lambda raw: raw.rows("PRAGMA busy_timeout"), wait=False) == [(0,)]
    db.dispose()


def test_a_write_committed_later_is_invisible_and_holds_the_no_wait_connection_until_committed(tmp_path):
    db = Database(f"sqlite:///{tmp_path}/r.db")
    db.write_raw(lambda raw: raw.run("CREATE TABLE t (x INTEGER)"))
    committed = []

    def work(raw):
        raw.on_commit(lambda: committed.append(True))
        return raw.run("INSERT INTO t VALUES (1)")

    commit = db.write_raw_commit_later(work)
    assert db.read_raw(lambda raw: raw.rows("SELECT x FROM t")) == []  # not yet committed
    assert committed == []
    with pytest.raises(TransientStoreError):  # the connection waits for its COMMIT
        db.write_raw(lambda raw: raw.run("INSERT INTO t VALUES (2)"), wait=False)
    assert commit() == 1
    assert committed == [True]
    assert db.read_raw(lambda raw: raw.rows("SELECT x FROM t")) == [(1,)]
    assert db.write_raw(lambda raw: raw.run("INSERT INTO t VALUES (2)"), wait=False) == 1
    db.dispose()


def test_a_write_whose_later_commit_fails_is_rolled_back_and_frees_the_connection(tmp_path):
    db = Database(f"sqlite:///{tmp_path}/r.db")
    # A deferred foreign key is checked by the COMMIT itself, so the COMMIT can refuse.
    db.write_raw(lambda raw: raw.run("CREATE TABLE parent (id INTEGER PRIMARY KEY)"))
    db.write_raw(lambda raw: raw.run("CREATE TABLE child (p INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)"))
    committed = []

    def orphan(raw):
        raw.on_commit(lambda: committed.append(True))
        raw.run("INSERT INTO child VALUES (7)")

    commit = db.write_raw_commit_later(orphan)
    with pytest.raises(IntegrityViolation):
        commit()
    assert committed == []
    assert db.read_raw(lambda raw: raw.rows("SELECT p FROM child")) == []
    assert db.write_raw(lambda raw: raw.run("INSERT INTO parent VALUES (7)"), wait=False) == 1
    db.dispose()


def test_a_write_to_commit_later_that_fails_leaves_nothing_behind(tmp_path):
    db = Database(f"sqlite:///{tmp_path}/r.db")
    db.write_raw(lambda raw: raw.run("CREATE TABLE t (x INTEGER)"))

    with pytest.raises(KeyError):
        db.write_raw_commit_later(half_done)
    assert db.write_raw_commit_later(lambda raw: raw.run("INSERT INTO t VALUES (2)"))() == 1
    assert db.read_raw(lambda raw: raw.rows("SELECT x FROM t")) == [(2,)]
    db.dispose()


@pytest.mark.parametrize(
    ("error", "neutral"),
    [
        (psycopg.errors.SerializationFailure("could not serialize access"), TransientStoreError),  # 40001, CockroachDB's restart too
        (psycopg.errors.DeadlockDetected("deadlock detected"), TransientStoreError),  # 40P01
        (sqlite3.OperationalError("database is locked"), TransientStoreError),
        (sqlite3.OperationalError("database table is locked"), TransientStoreError),
        (psycopg.errors.UniqueViolation("duplicate key"), IntegrityViolation),
        (psycopg.OperationalError("connection refused"), StoreUnavailable),
        (psycopg.InterfaceError("the connection is closed"), StoreUnavailable),
        (sqlalchemy.exc.DBAPIError("SELECT 1", {}, Exception("server closed the connection"), connection_invalidated=True), StoreUnavailable),
        (sqlite3.OperationalError("no such table: accounts"), StoreError),
    ],
)
def test_each_driver_error_is_one_neutral_error(error: Exception, neutral: type[Exception]) -> None:
    assert type(translate(error)) is neutral


def test_a_serialization_failure_is_retried_like_a_busy_database(tmp_path):
    db = Database(f"sqlite:///{tmp_path}/r.db")
    work, calls = flaky(2, psycopg.errors.SerializationFailure("could not serialize access"))
    assert db.write_raw(work) == "done"
    assert len(calls) == 3
    db.dispose()

