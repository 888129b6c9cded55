"""Which pooled connection a SQLite file database hands out next, and how each is set up."""

import sqlite3

import pytest

from danbao.store import Database
from danbao.store.database import SQLITE_BUSY_TIMEOUT_MS


def test_the_connection_returned_last_is_handed_out_first(tmp_path):
    # SQLite drops a connection's page cache when another connection wrote since its last
    # transaction; reusing the writer's own connection keeps that cache warm.
    db = Database(f"sqlite:///{tmp_path}/p.db")
    first, second = db.engine.raw_connection(), db.engine.raw_connection()
    first_dbapi, second_dbapi = first.dbapi_connection, second.dbapi_connection
    assert first_dbapi is not second_dbapi
    first.close()
    second.close()  # returned last
    again = db.engine.raw_connection()
    assert again.dbapi_connection is second_dbapi
    again.close()
    db.dispose()


def test_writes_reuse_one_connection_while_nothing_else_holds_it(tmp_path):
    db = Database(f"sqlite:///{tmp_path}/p.db")
    pooled = [db.engine.raw_connection() for _ in range(2)]  # two idle connections in the pool
    for connection in pooled:
        connection.close()
    used = [db.write_raw(lambda raw: id(raw._cursor.connection)) for _ in range(5)]
    assert len(set(used)) == 1
    db.dispose()


def test_every_sqlite_connection_is_durable_wal_with_a_full_sync_and_foreign_keys(tmp_path):
    # A committed transfer survives power loss by default: synchronous=FULL under WAL.
    db = Database(f"sqlite:///{tmp_path}/p.db")

    def settings(raw):
        return [raw.rows(f"PRAGMA {name}")[0][0] for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")]

    assert db.read_raw(settings) == ["wal", 2, 1, SQLITE_BUSY_TIMEOUT_MS]
    assert db.write_raw(settings) == ["wal", 2, 1, SQLITE_BUSY_TIMEOUT_MS]
    assert db.write_raw(settings, wait=False) == ["wal", 2, 1, 0]  # and the no-wait one, refused at once when the lock is taken
    db.dispose()


@pytest.mark.parametrize("method", ["write", "write_raw"])
def test_a_sqlite_write_takes_the_write_lock_when_it_begins(tmp_path, method):
    # Taken up front, two writers never deadlock on upgrading a read lock.
    path = tmp_path / "p.db"
    db = Database(f"sqlite:///{path}")

    def work(_conn):
        other = sqlite3.connect(path, timeout=0, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            return str(error)
        finally:
            other.close()
        return "the other writer got the lock"

    assert getattr(db, method)(work, attempts=1) == "database is locked"
    db.dispose()


def test_a_broken_no_wait_connection_fails_one_write_and_is_replaced(tmp_path):
    # The event loop commits every group on the kept no-wait connection: one that broke
    # must not fail every later write too.
    db = Database(f"sqlite:///{tmp_path}/p.db")
    db.write_raw(lambda raw: raw.run("CREATE TABLE t (x INTEGER)"))
    db.write_raw(lambda raw: raw.run("INSERT INTO t VALUES (1)"), wait=False)
    db._unwaiting.close()  # broken behind its back, as by an I/O error
    with pytest.raises(Exception, match="closed database"):
        db.write_raw(lambda raw: raw.run("INSERT INTO t VALUES (2)"), wait=False)
    db.write_raw(lambda raw: raw.run("INSERT INTO t VALUES (3)"), wait=False)
    assert db.read_raw(lambda raw: raw.rows("SELECT x FROM t ORDER BY x")) == [(1,), (3,)]
    db.dispose()
