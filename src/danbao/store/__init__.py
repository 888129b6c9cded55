"""Persistence behind one interface: SQLite (embedded default) or PostgreSQL."""

from danbao.store.database import DEFAULT_URL, Database, database_url, sqlite_file
from danbao.store.errors import IntegrityViolation, StoreError, StoreUnavailable, TransientStoreError
from danbao.store.migrate import current_revision, head_revision, upgrade

__all__ = [
    "DEFAULT_URL",
    "Database",
    "IntegrityViolation",
    "StoreError",
    "StoreUnavailable",
    "TransientStoreError",
    "current_revision",
    "database_url",
    "head_revision",
    "sqlite_file",
    "upgrade",
]
