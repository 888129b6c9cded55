"""Schema migrations, run programmatically through Alembic on danbao's own connection."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from danbao.store.database import Database
from danbao.store.errors import neutral_errors

_SCRIPTS = Path(__file__).parent / "migrations"


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(_SCRIPTS))
    return config


def upgrade(db: Database, revision: str = "head") -> None:
    """Bring the schema up to `revision` (idempotent: running it twice changes nothing)."""
    config = _config()
    with neutral_errors(), db.engine.begin() as conn:  # an unreachable server is a StoreError too
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def current_revision(db: Database) -> str | None:
    with neutral_errors(), db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_config()).get_current_head()
