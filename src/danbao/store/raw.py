"""Raw DB-API access for hot paths, with one SQL text for both backends.

SQLAlchemy Core builds and binds statements in Python, which costs more than the database
work for a small commit. Hot paths (the ledger's batch commit) write plain SQL that both
SQLite and PostgreSQL (and PostgreSQL-compatible distributed engines) run, with `?`
placeholders; this module adapts the placeholders and supplies the few clauses that differ.
Multi-row `VALUES` lists are chunked under every backend's bound-parameter limit.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

# SQLite allows 32,766 bound parameters, PostgreSQL 65,535: stay well under both.
PARAMETERS_PER_STATEMENT_MAX = 16_000


@lru_cache(maxsize=4096)
def _to_format(sql: str) -> str:
    if "%" in sql:
        raise ValueError("raw SQL must not contain '%'")
    return sql.replace("?", "%s")


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
    """A DB-API cursor on the SQLAlchemy connection's own transaction."""

    def __init__(self, dbapi_connection: Any, dialect: str):
        self._cursor = dbapi_connection.cursor()
        self._postgres = dialect == "postgresql"
        self.for_update = " FOR UPDATE" if self._postgres else ""

    def _sql(self, sql: str) -> str:
        return _to_format(sql) if self._postgres else sql

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        self._cursor.execute(self._sql(sql), params)
        return self._cursor.fetchall()

    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        self._cursor.execute(self._sql(sql), params)
        return int(self._cursor.rowcount)

    def select_where_in(self, select_from: str, column: str, values: Sequence[Any]) -> list[tuple[Any, ...]]:
        """`<select_from> WHERE <column> IN (values)`, chunked; one array parameter on PostgreSQL."""
        if self._postgres:
            # One parameter instead of thousands: psycopg parses long queries uncached.
            return self.rows(f"{select_from} WHERE {column} = ANY(?)", (list(values),)) if values else []
        found: list[tuple[Any, ...]] = []
        for chunk in chunks(values, PARAMETERS_PER_STATEMENT_MAX):
            found += self.rows(f"{select_from} WHERE {column} IN ({list_placeholders(len(chunk))})", chunk)
        return found

    def insert(self, rows_of: RowsOf, rows: Sequence[Sequence[Any]]) -> None:
        """INSERT many rows: multi-row VALUES on SQLite, one array per column on PostgreSQL."""
        if not rows:
            return
        table, width = rows_of.table, len(rows_of.columns)
        names = ", ".join(rows_of.columns)
        if self._postgres:
            self.run(f"INSERT INTO {table} ({names}) SELECT * FROM {_unnest(rows_of.types)}", _columns_of(rows, width))
            return
        for chunk in chunks(rows, PARAMETERS_PER_STATEMENT_MAX // width):
            flat = [value for row in chunk for value in row]
            self.run(f"INSERT INTO {table} ({names}) VALUES {row_placeholders(len(chunk), width)}", flat)

    def update_from_rows(self, template: str, types: Sequence[str], rows: Sequence[Sequence[Any]]) -> int:
        """`template` holds `{rows}` where a row source named `v` (columns column1..N) goes:
        UPDATE t SET x = v.column2 FROM {rows} WHERE t.id = v.column1."""
        width = len(types)
        if self._postgres:
            aliases = ", ".join(f"column{i + 1}" for i in range(width))
            source = f"{_unnest(types)} AS v({aliases})"
            return self.run(template.format(rows=source), _columns_of(rows, width))
        changed = 0
        for chunk in chunks(rows, PARAMETERS_PER_STATEMENT_MAX // width):
            flat = [value for row in chunk for value in row]
            changed += self.run(template.format(rows=f"(VALUES {row_placeholders(len(chunk), width)}) AS v"), flat)
        return changed

    def close(self) -> None:
        self._cursor.close()


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
