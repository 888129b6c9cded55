"""The migrated schema is exactly the one the code describes, and the public surface is stable."""

from sqlalchemy import inspect

import danbao.api
import danbao.ledger
import danbao.money
import danbao.store
import danbao.trade
from danbao.store import current_revision, head_revision, upgrade
from danbao.store.schema import metadata


def test_migrations_create_exactly_the_declared_tables_and_columns(db):
    assert current_revision(db) == head_revision()
    inspector = inspect(db.engine)
    for name, table in metadata.tables.items():
        migrated = {c["name"]: c["nullable"] for c in inspector.get_columns(name)}
        declared = {c.name: bool(c.nullable) for c in table.columns}
        assert migrated == declared, name
        assert {i["name"] for i in inspector.get_indexes(name)} >= {i.name for i in table.indexes}, name


def test_upgrade_is_idempotent(db):
    upgrade(db)
    upgrade(db)
    assert current_revision(db) == head_revision()


def test_public_surfaces_export_what_they_declare():
    for module in (danbao.ledger, danbao.money, danbao.store, danbao.trade, danbao.api):
        for name in module.__all__:
            assert hasattr(module, name), (module.__name__, name)
