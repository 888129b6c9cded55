"""One neutral hierarchy for storage failures, whatever driver raised them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from danbao.errors import DanbaoError


class StoreError(DanbaoError):
    code = "store_error"


class TransientStoreError(StoreError):
    """A conflict the database resolved by aborting us: retrying may succeed."""

    code = "store_busy"


class StoreUnavailable(StoreError):
    """The database could not be reached, or the connection to it broke. Retrying later
    may succeed; a commit cut off this way may or may not have happened."""

    code = "store_unavailable"


class IntegrityViolation(StoreError):
    """A constraint refused a write: the code let through something the schema forbids."""

    code = "store_integrity"


# SQLSTATEs a retry can cure: serialization failure, deadlock, and CockroachDB's
# restart-transaction (also 40001).
_TRANSIENT_SQLSTATES = {"40001", "40P01"}
_SQLITE_TRANSIENT_MESSAGES = ("database is locked", "database table is locked", "busy")


def translate(error: BaseException) -> BaseException:
    """Map a driver/SQLAlchemy error to the neutral hierarchy (or return it unchanged)."""
    import sqlite3

    import psycopg
    from sqlalchemy import exc

    if isinstance(error, exc.DBAPIError):
        orig = error.orig
    elif isinstance(error, (sqlite3.Error, psycopg.Error)):
        orig = error  # raised by the raw DB-API path
    else:
        return error
    sqlstate = getattr(orig, "sqlstate", None)  # psycopg 3's; SQLite's errors have none
    message = str(orig)
    if sqlstate in _TRANSIENT_SQLSTATES:
        return TransientStoreError(message)
    if any(text in message.lower() for text in _SQLITE_TRANSIENT_MESSAGES):
        return TransientStoreError(message)
    if isinstance(error, exc.IntegrityError) or isinstance(orig, (sqlite3.IntegrityError, psycopg.IntegrityError)):
        return IntegrityViolation(message)
    # A server that refused the connection, went away or cut it (a restart, a failover, an
    # administrator): psycopg's OperationalError and InterfaceError, or SQLAlchemy noticing
    # that the connection is gone.
    if isinstance(orig, (psycopg.OperationalError, psycopg.InterfaceError)) or getattr(error, "connection_invalidated", False):
        return StoreUnavailable(message)
    return StoreError(message)


def raise_neutral(error: Exception) -> None:
    """Re-raise a driver error as the store's neutral error; return if there is none."""
    neutral = translate(error)
    if neutral is not error:
        raise neutral from error


@contextmanager
def neutral_errors() -> Iterator[None]:
    """Inside, a driver error comes out as the store's neutral error; others unchanged."""
    try:
        yield
    except Exception as error:
        raise_neutral(error)
        raise
