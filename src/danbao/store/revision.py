"""Which schema revision a database is at, and which one this code needs, read without Alembic.

Every CLI command compares the two before it touches the books, and importing Alembic to
read one row cost each command about a sixth of its start. The revision lives in
Alembic's own table, which `danbao.store.migrate` writes through Alembic.
"""

from __future__ import annotations

from sqlalchemy import inspect, text

from danbao.errors import invariant
from danbao.store.database import Database
from danbao.store.errors import neutral_errors

# The newest migration's revision: the schema `danbao.store.schema` describes. A test
# checks it against Alembic's head, so a new migration cannot leave it behind.
HEAD_REVISION = "0011"


def current_revision(db: Database) -> str | None:
    """The revision the database's schema is at; None for a database danbao never set up."""
    with neutral_errors(), db.engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        revisions = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    invariant(len(revisions) <= 1, f"danbao's migrations are one line, so a database is at one revision: {revisions}")
    return revisions[0] if revisions else None


def head_revision() -> str:
    return HEAD_REVISION
