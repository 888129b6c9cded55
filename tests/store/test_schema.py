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
        migrated_key = inspector.get_pk_constraint(name)["constrained_columns"]
        assert migrated_key == [c.name for c in table.primary_key.columns], name
        migrated_unique = {tuple(u["column_names"]) for u in inspector.get_unique_constraints(name)}
        assert migrated_unique == {(c.name,) for c in table.columns if c.unique}, name
        # (PostgreSQL also lists the index behind each UNIQUE constraint; those are columns' business)
        migrated_indexes = {i["name"] for i in inspector.get_indexes(name) if not i.get("duplicates_constraint")}
        assert migrated_indexes == {i.name for i in table.indexes}, name


def test_upgrade_is_idempotent(db):
    upgrade(db)
    upgrade(db)
    assert current_revision(db) == head_revision()


def test_public_surfaces_export_what_they_declare():
    for module in (danbao.ledger, danbao.money, danbao.store, danbao.trade, danbao.api):
        for name in module.__all__:
            assert hasattr(module, name), (module.__name__, name)


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
