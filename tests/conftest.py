"""Fixtures shared by every test: a fresh database on each backend, a manual clock, a ledger.

Tests that take `db` (or `ledger`) run once on SQLite and once on PostgreSQL. The
PostgreSQL cluster is a throwaway one started for the session; each test gets a database
of its own, cloned from a migrated template or reset to it (tests/databases.py).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from danbao.clock import ManualClock
from danbao.ledger import Ledger
from danbao.store import Database, upgrade
from danbao.store.throwaway import ThrowawayPostgres
from tests.databases import TEMPLATE, DatabasePool

BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(scope="session")
def postgres() -> Iterator[ThrowawayPostgres]:
    pg = ThrowawayPostgres().start()
    db = Database(pg.create_database(TEMPLATE))
    upgrade(db)
    db.dispose()
    yield pg
    pg.stop()


@pytest.fixture(scope="session")
def postgres_databases(postgres: ThrowawayPostgres) -> DatabasePool:
    return DatabasePool(postgres, TEMPLATE)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "danbao.db"
    db = Database(f"sqlite:///{path}")
    upgrade(db)
    db.dispose()
    return path


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        path = tmp_path / "danbao.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    pool: DatabasePool = request.getfixturevalue("postgres_databases")
    url = pool.take()
    yield url
    pool.give_back(url)


@pytest.fixture(params=BACKENDS)
def database_factory(request: pytest.FixtureRequest, sqlite_template: Path):  # type: ignore[no-untyped-def]
    """For hypothesis state machines: a fresh database per example, and its clean-up."""
    if request.param == "sqlite":

        def sqlite_factory():  # type: ignore[no-untyped-def]
            tmp = tempfile.mkdtemp(prefix="danbao-stateful-")
            shutil.copy(sqlite_template, f"{tmp}/danbao.db")
            return Database(f"sqlite:///{tmp}/danbao.db"), lambda: shutil.rmtree(tmp, ignore_errors=True)

        return sqlite_factory
    pool: DatabasePool = request.getfixturevalue("postgres_databases")

    def postgres_factory():  # type: ignore[no-untyped-def]
        url = pool.take()
        return Database(url), lambda: pool.give_back(url)

    return postgres_factory


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    yield database
    database.dispose()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def ledger(db: Database, clock: ManualClock) -> Iterator[Ledger]:
    with Ledger(db, clock) as ledger:
        yield ledger
