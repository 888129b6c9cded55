"""Persistence behind one interface: SQLite (embedded default) or PostgreSQL.

Its names load on first use (`danbao.lazy`): the ledger's modules need the row helpers
and the schema, not Alembic, which only `upgrade` does.
"""

from danbao.lazy import exports

__all__, __getattr__, __dir__ = exports(__name__, {
    "DEFAULT_URL": "danbao.store.database",
    "Database": "danbao.store.database",
    "database_url": "danbao.store.database",
    "sqlite_file": "danbao.store.database",
    "IntegrityViolation": "danbao.store.errors",
    "StoreError": "danbao.store.errors",
    "StoreUnavailable": "danbao.store.errors",
    "TransientStoreError": "danbao.store.errors",
    "current_revision": "danbao.store.revision",
    "head_revision": "danbao.store.revision",
    "upgrade": "danbao.store.migrate",
})
