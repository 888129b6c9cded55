"""The test databases' pool hands a test nothing a fresh clone of the template would not be."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import make_url

from danbao.clock import ManualClock
from danbao.ledger import Ledger, NewAccount, NewTransfer, Result
from danbao.store import Database
from danbao.store.throwaway import ThrowawayPostgres
from tests import databases
from tests.databases import TEMPLATE, TRIES_MAX, DatabasePool


@pytest.fixture
def pool(postgres: ThrowawayPostgres, request: pytest.FixtureRequest) -> DatabasePool:
    # A prefix of its own per test: the pool's names must not meet the suite's.
    return DatabasePool(postgres, prefix=f"pooltest_{request.node.name.split('[')[0][-40:]}")


def connect(pg: ThrowawayPostgres, url: str, *, autocommit: bool = True) -> psycopg.Connection[Any]:
    """A plain connection to the database a pool's `url` names."""
    return psycopg.connect(pg.dsn(name_of(url)), autocommit=autocommit)


def name_of(url: str) -> str:
    return str(make_url(url).database)


def contents(pg: ThrowawayPostgres, url: str) -> dict[str, list[tuple[object, ...]]]:
    """Every public table's rows, sorted."""
    with connect(pg, url) as conn:
        tables = [row[0] for row in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        return {t: sorted(conn.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(t))).fetchall()) for t in tables}


def use(url: str) -> None:
    """What a test does to its database: accounts, a transfer, the journal's head moved."""
    db = Database(url)
    with Ledger(db, ManualClock()) as ledger:
        ledger.create_accounts([NewAccount("a", "USD", "wallet"), NewAccount("b", "USD", "wallet")])
        [result] = ledger.create_transfers([NewTransfer("t1", "a", "b", 5, "USD")])
        assert result.result is Result.ok
    db.dispose()


def test_a_returned_database_is_handed_out_again_holding_only_the_templates_rows(pool: DatabasePool, postgres: ThrowawayPostgres) -> None:
    template = contents(postgres, postgres.url(TEMPLATE))
    url = pool.take()
    use(url)
    assert contents(postgres, url) != template
    pool.give_back(url)
    assert pool.take() == url
    assert pool.reused == 1
    assert contents(postgres, url) == template


def test_a_database_whose_schema_a_test_changed_is_never_handed_out_again(pool: DatabasePool, postgres: ThrowawayPostgres) -> None:
    url = pool.take()
    with connect(postgres, url) as conn:
        conn.execute("ALTER TABLE accounts DROP CONSTRAINT ck_accounts_no_overdraft")
    pool.give_back(url)
    assert pool.take() != url
    assert pool.reused == 0


def test_a_database_still_connected_to_waits_and_is_left_alone_after_a_bounded_number_of_tries(pool: DatabasePool, postgres: ThrowawayPostgres) -> None:
    url = pool.take()
    with connect(postgres, url):
        pool.give_back(url)
        others = [pool.take() for _ in range(TRIES_MAX)]
    assert url not in others
    # Its connection is closed now, but its tries are used up: it is not handed out.
    assert pool.take() != url
    assert pool.reused == 0


def test_a_database_is_handed_out_once_its_last_connection_closed(pool: DatabasePool, postgres: ThrowawayPostgres) -> None:
    url = pool.take()
    with connect(postgres, url):
        pool.give_back(url)
        other = pool.take()
    assert other != url
    wait_until_no_client_is_connected(postgres, name_of(url))
    assert pool.take() == url


def wait_until_no_client_is_connected(pg: ThrowawayPostgres, name: str) -> None:
    """A closed connection's server process leaves a moment after the client: ask until it
    has (a bounded number of round trips)."""
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        for _ in range(10_000):
            query = "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND backend_type = 'client backend'"
            if conn.execute(query, (name,)).fetchone() == (0,):
                return
    raise AssertionError(f"a client is still connected to {name}")


def test_a_lock_a_straggler_holds_makes_the_database_in_use_not_a_hang(pool: DatabasePool, postgres: ThrowawayPostgres, monkeypatch: pytest.MonkeyPatch) -> None:
    url = pool.take()
    with connect(postgres, url, autocommit=False) as straggler:
        straggler.execute("LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE")  # held until the block ends
        # As if the straggler connected just after the pool looked for clients.
        monkeypatch.setattr(databases, "_OTHER_CLIENTS", "SELECT 0")
        pool.give_back(url)
        assert pool.take() != url
    assert pool.reused == 0
