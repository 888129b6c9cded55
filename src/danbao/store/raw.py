"""Raw DB-API access for hot paths, with one SQL text for both backends.

SQLAlchemy Core builds and binds statements in Python, which costs more than the database
work for a small commit. Hot paths (the ledger's batch commit) write plain SQL that both
SQLite and PostgreSQL (and PostgreSQL-compatible distributed engines) run, with `?`
placeholders; this module adapts the placeholders and supplies the few clauses that differ.
Multi-row `VALUES` lists are chunked under every backend's bound-parameter limit.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
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

    def select_in(self, sql_before_list: str, values: Sequence[Any], sql_after_list: str = ")") -> list[tuple[Any, ...]]:
        """Run `... IN (<values>)` in chunks and concatenate the rows."""
        found: list[tuple[Any, ...]] = []
        for chunk in chunks(values, PARAMETERS_PER_STATEMENT_MAX):
            found += self.rows(sql_before_list + list_placeholders(len(chunk)) + sql_after_list, chunk)
        return found

    def insert_rows(self, table_and_columns: str, rows: Sequence[Sequence[Any]], width: int) -> None:
        """INSERT INTO <table (cols)> VALUES (...), (...): one statement per chunk."""
        for chunk in chunks(rows, PARAMETERS_PER_STATEMENT_MAX // width):
            flat = [value for row in chunk for value in row]
            self.run(f"INSERT INTO {table_and_columns} VALUES {row_placeholders(len(chunk), width)}", flat)

    def update_from_values(self, template: str, rows: Sequence[Sequence[Any]], width: int) -> int:
        """`template` holds `{values}` where the rows go: UPDATE t SET ... FROM (VALUES ...) AS v WHERE ..."""
        changed = 0
        for chunk in chunks(rows, PARAMETERS_PER_STATEMENT_MAX // width):
            flat = [value for row in chunk for value in row]
            changed += self.run(template.format(values=row_placeholders(len(chunk), width)), flat)
        return changed

    def close(self) -> None:
        self._cursor.close()


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
