"""The migrated schema is exactly the one the code describes."""

import itertools
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import inspect

from danbao.store import Database, current_revision, head_revision, upgrade
from danbao.store.schema import metadata


def test_migrations_create_exactly_the_declared_tables_and_columns(db):
    assert current_revision(db) == head_revision()
    inspector = inspect(db.engine)
    for name, table in metadata.tables.items():
        migrated = {c["name"]: c["nullable"] for c in inspector.get_columns(name)}
        declared = {c.name: bool(c.nullable) for c in table.columns}
        assert migrated == declared, name
        migrated_key = inspector.get_pk_constraint(name)["constrained_columns"]
        assert migrated_key == [c.name for c in table.primary_key.columns], name
        migrated_unique = {tuple(u["column_names"]) for u in inspector.get_unique_constraints(name)}
        assert migrated_unique == {(c.name,) for c in table.columns if c.unique}, name
        # (PostgreSQL also lists the index behind each UNIQUE constraint; those are columns' business)
        migrated_indexes = {i["name"] for i in inspector.get_indexes(name) if not i.get("duplicates_constraint")}
        assert migrated_indexes == {i.name for i in table.indexes}, name


def _index_sql(url: str) -> dict[str, str]:
    db = Database(url)
    try:
        with db.engine.connect() as conn:
            return dict(conn.exec_driver_sql("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL").all())
    finally:
        db.dispose()


def test_every_index_the_migrations_make_is_the_one_the_schema_declares(tmp_path):
    """Columns, their order and a partial index's predicate too (SQLite keeps each index's
    CREATE statement): queries are written for the indexes the schema declares."""
    migrated = Database(f"sqlite:///{tmp_path}/migrated.db")
    upgrade(migrated)
    migrated.dispose()
    declared = Database(f"sqlite:///{tmp_path}/declared.db")
    metadata.create_all(declared.engine)
    declared.dispose()
    made = _index_sql(f"sqlite:///{tmp_path}/migrated.db")
    assert made == _index_sql(f"sqlite:///{tmp_path}/declared.db")
    assert "WHERE status IN ('claimed', 'disputed')" in made["ix_trades_awaiting_arbiter"]


def test_upgrade_is_idempotent(db):
    upgrade(db)
    upgrade(db)
    assert current_revision(db) == head_revision()


_fresh = itertools.count()


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database_url(request, tmp_path):
    """A database no schema has been put in yet."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/empty.db"
    return request.getfixturevalue("postgres").create_database(f"empty_{next(_fresh)}")



def test_the_head_revision_is_the_newest_migration():
    from alembic.script import ScriptDirectory

    from danbao.store.migrate import _config

    assert head_revision() == ScriptDirectory.from_config(_config()).get_current_head()


def test_the_revision_read_without_alembic_is_the_one_alembic_reads(empty_database_url):
    from alembic.runtime.migration import MigrationContext

    db = Database(empty_database_url)
    try:
        assert current_revision(db) is None  # never set up: no revision table at all
        for revision in ("0001", "0005", head_revision()):
            upgrade(db, revision)
            with db.engine.connect() as conn:
                assert current_revision(db) == MigrationContext.configure(conn).get_current_revision() == revision
    finally:
        db.dispose()

# Imports, then waits for the word to go, then upgrades: so the upgrades start together.
_STARTER = """
import sys
from danbao.store import Database, current_revision, upgrade
db = Database(sys.argv[1])
print("ready", flush=True)
sys.stdin.readline()
upgrade(db)
print(current_revision(db), flush=True)
"""


def test_processes_starting_at_once_on_an_empty_database_all_find_it_upgraded(empty_database_url):
    # `danbao serve` and `danbao worker` started together by a service manager, say: each
    # upgrades the schema as it starts, and none may fail because another is doing it too.
    starters = [
        subprocess.Popen([sys.executable, "-c", _STARTER, empty_database_url], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    for starter in starters:
        assert starter.stdout.readline() == "ready\n"
    for starter in starters:
        starter.stdin.write("go\n")
        starter.stdin.flush()
    for starter in starters:
        out, err = starter.communicate(timeout=120)
        assert (starter.returncode, out.strip()) == (0, head_revision()), err


def test_upgrades_at_once_in_one_process_take_turns(empty_database_url):
    # Alembic keeps a run's context in module globals, which two threads would share.
    starting = 4
    barrier = threading.Barrier(starting)

    def start(_: int) -> str | None:
        db = Database(empty_database_url)
        try:
            barrier.wait()
            upgrade(db)
            return current_revision(db)
        finally:
            db.dispose()

    with ThreadPoolExecutor(starting) as pool:
        assert list(pool.map(start, range(starting))) == [head_revision()] * starting


def test_a_database_with_trades_upgrades_to_the_partial_indexes_and_back(db):
    from alembic import command

    from danbao.store.migrate import _config

    upgrade(db, "0003")
    with db.engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO trades (id, model, status, buyer_id, seller_id, courier_id, currency, amount, items, paid, refunded, "
            "released, fee, compensated, confirm_extended, remit_late, due_at, version, created_at, updated_at) "
            "VALUES ('t1', 'direct', 'settled', 'b', 's', NULL, 'CNY', 5, '[]', 5, 0, 5, 0, 0, 0, 0, 7, 1, 1, 1)"
        )
    upgrade(db)
    with db.engine.connect() as conn:
        found = conn.exec_driver_sql("SELECT id FROM trades WHERE seller_id = 's' AND model = 'direct' AND status IN ('settled', 'paid')").all()
        due = conn.exec_driver_sql("SELECT id FROM trades WHERE due_at <= 7").all()
    assert found == [("t1",)] and due == [("t1",)]
    config = _config()
    with db.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0003")
    assert current_revision(db) == "0003"
    upgrade(db)
    assert current_revision(db) == head_revision()
