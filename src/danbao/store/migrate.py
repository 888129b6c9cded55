"""Schema migrations, run programmatically through Alembic on danbao's own connection."""

from __future__ import annotations

import threading
from pathlib import Path

from alembic import command
from alembic.config import Config

from danbao.store.database import Database
from danbao.store.errors import StoreError, StoreUnavailable, neutral_errors

_SCRIPTS = Path(__file__).parent / "migrations"
# Alembic keeps a run's context in module globals: two upgrades at once in one process
# would share it. Other processes' upgrades the database orders (see `upgrade`).
_UPGRADING = threading.Lock()
# A PostgreSQL upgrade that raced another process's fails once the other commits; the
# next attempt finds nothing to do.
UPGRADE_ATTEMPTS_MAX = 3


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(_SCRIPTS))
    return config


def upgrade(db: Database, revision: str = "head") -> None:
    """Bring the schema up to `revision`: idempotent, and safe for processes starting
    together on one database (`danbao serve` and `danbao worker` under one service
    manager). On SQLite the upgrade takes the write lock before it reads the schema's
    revision (BEGIN IMMEDIATE), so the others wait for it and then find nothing to do.
    On PostgreSQL each upgrade is one transaction; the others' fail on the catalog once
    the first commits, and their next attempt finds nothing to do."""
    config = _config()
    with _UPGRADING:
        for attempt in range(1, UPGRADE_ATTEMPTS_MAX + 1):
            try:
                # An unreachable server is a StoreError too, and no retry cures it here.
                with neutral_errors(), db.engine.connect().execution_options(danbao_write=True) as conn, conn.begin():
                    config.attributes["connection"] = conn
                    command.upgrade(config, revision)
                return
            except StoreUnavailable:
                raise
            except StoreError:
                if attempt == UPGRADE_ATTEMPTS_MAX:
                    raise

