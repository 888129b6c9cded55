"""Raw DB-API access for hot paths, with one SQL text for both backends.

SQLAlchemy Core builds and binds statements in Python, which costs more than the database
work for a small commit. Hot paths (the ledger's batch commit) write plain SQL that both
SQLite and PostgreSQL (and PostgreSQL-compatible distributed engines) run, with `?`
placeholders; this module adapts the placeholders (PostgreSQL's own `$n`, through psycopg's
raw cursors) and supplies the few clauses that differ. Rows go as multi-row `VALUES` lists,
chunked under every backend's bound-parameter limit; on PostgreSQL, more than
`VALUES_ROWS_MAX` rows go as one array per column instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from danbao.errors import InvariantViolation, invariant

# SQLite allows 32,766 bound parameters, PostgreSQL 65,535: stay well under both.
PARAMETERS_PER_STATEMENT_MAX = 16_000
# The most rows one page of any list holds.
PAGE_ROWS_MAX = 1000
# PostgreSQL: up to this many rows go as a VALUES list (or IN list) of scalar parameters;
# more as one array per column (`unnest`, `= ANY`). psycopg dumps an array in Python, about
# 8x the cost of the same values as scalars (8 rows of a journal entry: 120 us against
# 11), but the server takes big batches faster as arrays (8,190 transfers: ~15% faster).
VALUES_ROWS_MAX = 64


@lru_cache(maxsize=4096)
def _to_native(sql: str) -> str:
    """`?` placeholders as PostgreSQL's own `$1, $2, ...`, which psycopg's raw cursors
    send as they are: its `%s` form is parsed on every call once a statement has more
    than 50 parameters (a VALUES list of a few rows)."""
    parts = sql.split("?")
    if any("$" in part for part in parts):
        raise ValueError("raw SQL must not contain '$'")
    return "".join(part + (f"${i + 1}" if i < len(parts) - 1 else "") for i, part in enumerate(parts))


@lru_cache(maxsize=4096)
def row_placeholders(rows: int, width: int) -> str:
    """'(?,?),(?,?)' for `rows` rows of `width` columns."""
    one = "(" + ",".join("?" * width) + ")"
    return ",".join([one] * rows)


@lru_cache(maxsize=4096)
def list_placeholders(count: int) -> str:
    return ",".join("?" * count)


@dataclass(frozen=True, slots=True)
class RowsOf:
    """A table's columns and their PostgreSQL types, in the order rows give them."""

    table: str
    columns: tuple[str, ...]
    types: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.columns) != len(self.types):
            raise ValueError("one type per column")


class Raw:
    """A DB-API cursor on the SQLAlchemy connection's own transaction.

    On PostgreSQL the connection may be in pipeline mode (`pipeline`): then `write` and
    `expect` only queue their statements, and the server gets them all in one round trip
    at the next read or at `settle`; `rows` and `run` still answer at once. With
    `checked_by_server`, the server checks each `expect` itself (a broken one fails the
    transaction), so the COMMIT may be queued behind them (see `Database.write_raw`).
    """

    def __init__(self, dbapi_connection: Any, dialect: str, *, pipeline: Any = None, checked_by_server: bool = False):
        invariant(not checked_by_server or pipeline is not None, "only a pipeline has its checks made by the server")
        self._connection = dbapi_connection
        self._postgres = dialect == "postgresql"
        self._cursor = self._new_cursor()
        self._pipeline = pipeline
        self._checked_by_server = checked_by_server
        self._expected: list[tuple[Any, int, str]] = []
        self._opened: list[Any] = []  # cursors of pipelined reads, closed with this Raw
        self._on_commit: list[Callable[[], None]] = []
        self.for_update = " FOR UPDATE" if self._postgres else ""

    def _new_cursor(self) -> Any:
        if self._postgres:
            import psycopg

            return psycopg.RawCursor(self._connection.driver_connection)
        return self._connection.cursor()

    def _sql(self, sql: str) -> str:
        return _to_native(sql) if self._postgres else sql

    def _as_arrays(self, rows: int) -> bool:
        """PostgreSQL sends this many rows as one array per column (see `VALUES_ROWS_MAX`)."""
        return self._postgres and rows > VALUES_ROWS_MAX

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        self._cursor.execute(self._sql(sql), params)
        return self._cursor.fetchall()

    def rows_later(self, sql: str, params: Sequence[Any] = ()) -> Callable[[], list[tuple[Any, ...]]]:
        """`rows`, asked now and read when called: pipelined reads share one round trip."""
        if self._pipeline is None:
            found = self.rows(sql, params)
            return lambda: found
        return self._postgres_later(self._sql(sql), params)

    def _postgres_later(
        self, sql: str, params: Sequence[Any], *, prepare: bool | None = None
    ) -> Callable[[], list[tuple[Any, ...]]]:
        """A PostgreSQL query, queued on its own cursor when pipelined, else answered now."""
        if self._pipeline is None:
            self._cursor.execute(sql, params, prepare=prepare)
            found = self._cursor.fetchall()
            return lambda: found
        cursor = self._new_cursor()
        cursor.execute(sql, params, prepare=prepare)
        self._opened.append(cursor)
        return cursor.fetchall  # the first fetch flushes the pipeline and waits

    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Execute and return how many rows changed (waits for the server, even in a pipeline)."""
        self._cursor.execute(self._sql(sql), params)
        if self._pipeline is not None:
            self._pipeline.sync()
        return int(self._cursor.rowcount)

    def write(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Execute a statement whose result nobody reads: queued when pipelined."""
        self._cursor.execute(self._sql(sql), params)

    def expect(self, sql: str, params: Sequence[Any], changed: int, why: str) -> None:
        """Execute a write that must change exactly `changed` rows, or `why` is broken.

        Checked at once, or, when pipelined, at `settle` (before the commit), or by the
        server (`checked_by_server`): see `_checked_in_server`."""
        if self._checked_by_server:
            self.write(_checked_in_server(sql), (*params, changed, f"{_CHECK_BROKEN}{why}; rows changed: "))
            return
        if self._pipeline is None:
            invariant(self.run(sql, params) == changed, why)
            return
        cursor = self._new_cursor()  # its own cursor keeps its own row count
        cursor.execute(self._sql(sql), params)
        self._expected.append((cursor, changed, why))

    def on_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` once this transaction has committed; never if it rolls back.
        For what a writer may only believe of a committed state."""
        invariant(len(self._on_commit) < 64, "a transaction registers a bounded number of callbacks")
        self._on_commit.append(callback)

    def committed(self) -> None:
        """The transaction committed: run its `on_commit` callbacks (the store calls this)."""
        callbacks, self._on_commit = self._on_commit, []
        for callback in callbacks:
            callback()

    def leave_pipeline(self) -> None:
        """The connection left pipeline mode, whose exit synced every queued statement:
        from here statements answer at once and `settle` only checks."""
        self._pipeline = None

    def settle(self) -> None:
        """Wait for every queued statement and check each `expect`: call before commit."""
        if self._pipeline is not None:
            self._pipeline.sync()
        expected, self._expected = self._expected, []
        for cursor, changed, why in expected:
            rowcount = cursor.rowcount
            cursor.close()
            invariant(rowcount == changed, why)

    def select_where_in(self, select_from: str, column: str, values: Sequence[Any]) -> list[tuple[Any, ...]]:
        """`<select_from> WHERE <column> IN (values)`, chunked; one array parameter on PostgreSQL."""
        return self.select_where_in_later(select_from, column, values)()

    def select_where_in_later(
        self, select_from: str, column: str, values: Sequence[Any]
    ) -> Callable[[], list[tuple[Any, ...]]]:
        """`select_where_in`, asked now and read when called (see `rows_later`)."""
        if not values:
            return list
        if self._postgres:
            if self._as_arrays(len(values)):
                sql, params = f"{select_from} WHERE {column} = ANY(?)", (list(values),)
            else:
                sql, params = f"{select_from} WHERE {column} IN ({list_placeholders(len(values))})", values
            # Not prepared: a generic plan made while the table was small scans it whole.
            return self._postgres_later(_to_native(sql), params, prepare=False)
        found = []
        for chunk in chunks(values, PARAMETERS_PER_STATEMENT_MAX):
            found += self.rows(f"{select_from} WHERE {column} IN ({list_placeholders(len(chunk))})", chunk)
        return lambda: found

    def insert(self, rows_of: RowsOf, rows: Sequence[Sequence[Any]]) -> None:
        """INSERT many rows: multi-row VALUES on SQLite, one array per column on PostgreSQL."""
        if not rows:
            return
        table, width = rows_of.table, len(rows_of.columns)
        names = ", ".join(rows_of.columns)
        if self._as_arrays(len(rows)):
            self.write(f"INSERT INTO {table} ({names}) SELECT * FROM {_unnest(rows_of.types)}", _columns_of(rows, width))
            return
        for chunk in chunks(rows, PARAMETERS_PER_STATEMENT_MAX // width):
            flat = [value for row in chunk for value in row]
            self.write(f"INSERT INTO {table} ({names}) VALUES {row_placeholders(len(chunk), width)}", flat)

    def update_from_rows(
        self, template: str, types: Sequence[str], rows: Sequence[Sequence[Any]], *, why: str | None = None
    ) -> None:
        """`template` holds `{rows}` where a row source named `v` (columns column1..N) goes:
        UPDATE t SET x = v.column2 FROM {rows} WHERE t.id = v.column1. With `why`, each row
        must change exactly one row (see `expect`)."""
        types, width = tuple(types), len(types)
        if self._as_arrays(len(rows)):
            aliases = ", ".join(f"column{i + 1}" for i in range(width))
            source = f"{_unnest(types)} AS v({aliases})"
            self._write_or_expect(template.format(rows=source), _columns_of(rows, width), len(rows), why)
            return
        for chunk in chunks(rows, PARAMETERS_PER_STATEMENT_MAX // width):
            flat = [value for row in chunk for value in row]
            # PostgreSQL types a VALUES column from its first row: typed placeholders there.
            values = _typed_values(len(chunk), types) if self._postgres else row_placeholders(len(chunk), width)
            sql = template.format(rows=f"(VALUES {values}) AS v")
            self._write_or_expect(sql, flat, len(chunk), why)

    def _write_or_expect(self, sql: str, params: Sequence[Any], changed: int, why: str | None) -> None:
        if why is None:
            self.write(sql, params)
        else:
            self.expect(sql, params, changed, why)

    def close(self) -> None:
        for cursor in [c for c, _, _ in self._expected] + self._opened:
            cursor.close()
        self._expected.clear()
        self._opened.clear()
        self._cursor.close()


# Opens the message of a check the server made and found broken (see `_checked_in_server`).
_CHECK_BROKEN = "danbao check broken: "


def broken_server_check(error: BaseException) -> InvariantViolation | None:
    """The invariant a check made by the server found broken, from the error the server
    failed the statement with (`expect` with `checked_by_server`); None for any other."""
    message = str(error)
    start = message.find(_CHECK_BROKEN)
    if start < 0:
        return None
    return InvariantViolation(message[start + len(_CHECK_BROKEN) :].split('"')[0])


@lru_cache(maxsize=256)
def _checked_in_server(sql: str) -> str:
    """A write that must change a given number of rows (the next parameter), checked by
    the server: a wrong count fails the statement, and with it the transaction and the
    COMMIT queued behind it, with an error that says why (the parameter after) and how
    many rows changed. Plain SQL has no RAISE, so the failure is a cast of that message to
    an integer; the count in it keeps the cast from being evaluated while planning."""
    return (
        f"WITH changed AS ({sql} RETURNING 1) "
        "SELECT CASE WHEN COUNT(*) = ? THEN 0 ELSE CAST(CAST(? AS TEXT) || CAST(COUNT(*) AS TEXT) AS INTEGER) END FROM changed"
    )


@lru_cache(maxsize=4096)
def _typed_values(rows: int, types: tuple[str, ...]) -> str:
    """`row_placeholders` with the first row's placeholders cast to `types`."""
    first = "(" + ",".join(f"CAST(? AS {t})" for t in types) + ")"
    return ",".join([first] + [row_placeholders(1, len(types))] * (rows - 1))


@lru_cache(maxsize=64)
def _unnest(types: tuple[str, ...]) -> str:
    return "unnest(" + ", ".join(f"?::{t}[]" for t in types) + ")"


def _columns_of(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    columns: list[list[Any]] = [[] for _ in range(width)]
    for row in rows:
        for i, value in enumerate(row):
            columns[i].append(value)
    return columns


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def created_page(select: str, params: tuple[Any, ...], after: tuple[int, str] | None, limit: int) -> tuple[str, tuple[Any, ...]]:
    """`select ... WHERE ...` narrowed to one page of rows in (created_at, id) order, after
    the row `after` names: a keyset page, which stays correct while rows are added."""
    invariant(" WHERE " in select and type(limit) is int and 0 < limit <= PAGE_ROWS_MAX, "a bounded page of a filtered select")
    if after is not None:
        # (created_at, id) > after, written so that an index on (..., created_at) can start
        # its range at the cursor instead of reading from the party's first row.
        select += " AND created_at >= ? AND (created_at > ? OR id > ?)"
        params += (after[0], after[0], after[1])
    return f"{select} ORDER BY created_at, id LIMIT {limit}", params
