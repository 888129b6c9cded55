"""Transient conflicts are retried a bounded number of times; other errors are not."""

import sqlite3

import pytest

from danbao.store import Database, IntegrityViolation, TransientStoreError


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
    with pytest.raises(TransientStoreError):
        getattr(db, method)(work, attempts=3)
    assert len(calls) == 3
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
