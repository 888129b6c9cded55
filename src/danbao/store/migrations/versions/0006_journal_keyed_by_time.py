"""The journal keyed by its timestamp; the client's id becomes a unique key beside it.

SQLite stores a table in the order of an INTEGER primary key (the rowid). Keyed by its
text id, the journal was a rowid table plus two unique indexes (id, timestamp): every
appended entry went into three B-trees. Keyed by timestamp, the table is the time index
and appends at its right edge; a group commit of 8 transfers writes 8.0 WAL pages instead
of 9.3. PostgreSQL swaps the two constraints in place (a heap has no such order; both
keys stay unique either way).

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# The journal's columns in their order when this revision was written.
_COLUMNS = (
    "id, timestamp, debit_account_id, credit_account_id, amount, hold_amount, currency, code, ref, "
    "metadata, flags, pending_id, timeout_seconds, hash, debit_prev, credit_prev"
)


def _journal(name: str, *, keyed_by_time: bool) -> None:
    op.create_table(
        name,
        sa.Column("id", sa.String(72), nullable=False),
        # Exactly INTEGER, so SQLite makes it the rowid.
        sa.Column("timestamp", sa.Integer if keyed_by_time else sa.BigInteger, nullable=False),
        sa.Column("debit_account_id", sa.String(64), nullable=False),
        sa.Column("credit_account_id", sa.String(64), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("hold_amount", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("ref", sa.String(64), nullable=True),
        sa.Column("metadata", sa.Text, nullable=True),
        sa.Column("flags", sa.Integer, nullable=False),
        sa.Column("pending_id", sa.String(64), nullable=True),
        sa.Column("timeout_seconds", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("debit_prev", sa.BigInteger, nullable=True),
        sa.Column("credit_prev", sa.BigInteger, nullable=True),
        sa.PrimaryKeyConstraint("timestamp" if keyed_by_time else "id"),
        sa.UniqueConstraint("id" if keyed_by_time else "timestamp"),
        sa.CheckConstraint("amount >= 0 AND hold_amount >= 0", name="ck_transfers_amounts"),
    )


def _rebuild_on_sqlite(*, keyed_by_time: bool) -> None:
    # SQLite cannot change a table's key in place: copy into the new shape, in time order.
    _journal("transfers_rekeyed", keyed_by_time=keyed_by_time)
    op.execute(f"INSERT INTO transfers_rekeyed ({_COLUMNS}) SELECT {_COLUMNS} FROM transfers ORDER BY timestamp")
    op.drop_table("transfers")  # and its index on ref
    op.rename_table("transfers_rekeyed", "transfers")
    where = sa.text("ref IS NOT NULL")
    op.create_index("ix_transfers_ref", "transfers", ["ref"], sqlite_where=where, postgresql_where=where)


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_on_sqlite(keyed_by_time=True)
        return
    op.drop_constraint("transfers_pkey", "transfers", type_="primary")
    op.drop_constraint("transfers_timestamp_key", "transfers", type_="unique")
    op.create_primary_key("transfers_pkey", "transfers", ["timestamp"])
    op.create_unique_constraint("transfers_id_key", "transfers", ["id"])


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_on_sqlite(keyed_by_time=False)
        return
    op.drop_constraint("transfers_pkey", "transfers", type_="primary")
    op.drop_constraint("transfers_id_key", "transfers", type_="unique")
    op.create_primary_key("transfers_pkey", "transfers", ["id"])
    op.create_unique_constraint("transfers_timestamp_key", "transfers", ["timestamp"])
