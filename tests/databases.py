"""PostgreSQL databases for tests: clones of the migrated template, reset and used again.

A clone costs about 200 ms on the project's VM (CREATE DATABASE writes some 300 files and
the file system's metadata calls are slow there), and the suite takes about a thousand:
a third of its time. A database a test has finished with is emptied back to the
template's rows instead (a few milliseconds) and handed to a later test, but only when
nothing can tell it from a fresh clone:

- no client is connected to it any more (a test that left a connection, a thread or a
  server behind keeps its database to itself, as every test did before the pool);
- its schema is the template's, to the last column, constraint, index, trigger, function
  and sequence value (a test may drop a constraint to tamper with rows);
- every table then holds exactly the template's rows, which the reset writes back.

A returned database waits until a later test asks for one before it is checked and reset,
so the connections of the test before have long closed by then; one found still in use is
tried again a bounded number of times and then left alone.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import make_url

from danbao.errors import invariant
from danbao.store.throwaway import ThrowawayPostgres

# The migrated database every test database is cloned from.
TEMPLATE = "danbao_template"
# Returned databases waiting to be checked and reset: bounded, so a run of tests that
# leave connections behind cannot pile them up.
RETURNED_MAX = 8
# How many times a returned database still in use is tried again before it is left alone.
TRIES_MAX = 3
# How long the reset waits for a lock some straggler holds before calling it in use.
LOCK_WAIT = "2s"

# Everything in the public schema a test could change and a fresh clone would not have.
_FINGERPRINT = """
SELECT md5(coalesce(string_agg(item, E'\\n' ORDER BY item), '')) FROM (
    SELECT 'column ' || table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable
           || ' ' || coalesce(column_default, '') AS item
      FROM information_schema.columns WHERE table_schema = 'public'
    UNION ALL
    SELECT 'constraint ' || conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid)
      FROM pg_constraint WHERE connamespace = 'public'::regnamespace
    UNION ALL
    SELECT 'index ' || indexdef FROM pg_indexes WHERE schemaname = 'public'
    UNION ALL
    SELECT 'trigger ' || tgrelid::regclass::text || ' ' || tgname || ' ' || tgenabled::text
      FROM pg_trigger WHERE NOT tgisinternal
    UNION ALL
    SELECT 'function ' || oid::regprocedure::text FROM pg_proc WHERE pronamespace = 'public'::regnamespace
    UNION ALL
    SELECT 'relation ' || relname || ' ' || relkind::text FROM pg_class WHERE relnamespace = 'public'::regnamespace
    UNION ALL
    SELECT 'sequence ' || sequencename || ' ' || coalesce(last_value::text, '')
      FROM pg_sequences WHERE schemaname = 'public'
) AS schema
"""
_OTHER_CLIENTS = (
    "SELECT count(*) FROM pg_stat_activity "
    "WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
)
_TABLES = "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"


class DatabasePool:
    """Databases cloned from `template` on `pg`, each handed to one test at a time."""

    def __init__(self, pg: ThrowawayPostgres, template: str = TEMPLATE, prefix: str = "test") -> None:
        self.pg, self.template, self.prefix = pg, template, prefix
        self._made = 0
        self._returned: deque[tuple[str, int]] = deque()  # (name, tries so far), oldest first
        self.reused = 0
        with self._connect(template) as conn:
            self._fingerprint = _fingerprint(conn)
            self._tables = [row[0] for row in conn.execute(_TABLES)]
            self._rows = {table: conn.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(table))).fetchall() for table in self._tables}

    def take(self) -> str:
        """The URL of a database no other test is using, as the template left it."""
        for _ in range(len(self._returned)):
            name, tries = self._returned.popleft()
            state = self._reset(name)
            if state == "reset":
                self.reused += 1
                return self.pg.url(name)
            if state == "in use" and tries + 1 < TRIES_MAX:
                self._returned.append((name, tries + 1))
        self._made += 1
        return self.pg.create_database(f"{self.prefix}_{self._made}", template=self.template)

    def give_back(self, url: str) -> None:
        """The test that took `url` is over: the database may go to a later test."""
        name = str(make_url(url).database)
        invariant(name.startswith(f"{self.prefix}_"), f"{name} came from this pool")
        if len(self._returned) < RETURNED_MAX:
            self._returned.append((name, 0))

    def _reset(self, name: str) -> str:
        """'reset', 'in use' (try later) or 'changed' (never again)."""
        with self._connect(name) as conn:
            if conn.execute(_OTHER_CLIENTS).fetchone()[0]:  # type: ignore[index]
                return "in use"
            conn.execute(f"SET lock_timeout = '{LOCK_WAIT}'")  # the catalog reads lock too
            try:
                if _fingerprint(conn) != self._fingerprint:
                    return "changed"
                self._empty(conn)
            except psycopg.errors.LockNotAvailable:
                return "in use"
            return "reset"

    def _empty(self, conn: psycopg.Connection[Any]) -> None:
        """Every table back to the template's rows, in one transaction."""
        with conn.transaction():
            # Foreign keys are checked by triggers, which a replica's role skips: the
            # tables are emptied in any order, then hold the template's rows again.
            conn.execute("SET LOCAL session_replication_role = replica")
            for table in self._tables:
                conn.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(table)))
                rows = self._rows[table]
                if rows:
                    marks = sql.SQL(", ").join(sql.Placeholder() * len(rows[0]))
                    insert = sql.SQL("INSERT INTO {} VALUES ({})").format(sql.Identifier(table), marks)
                    conn.cursor().executemany(insert, rows)

    def _connect(self, name: str) -> psycopg.Connection[Any]:
        return psycopg.connect(self.pg.dsn(name), autocommit=True)


def _fingerprint(conn: psycopg.Connection[Any]) -> str:
    return str(conn.execute(_FINGERPRINT).fetchone()[0])  # type: ignore[index]
