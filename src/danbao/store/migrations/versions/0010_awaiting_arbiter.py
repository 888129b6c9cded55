"""The arbiters' queue: trades waiting on an arbiter's decision, oldest first.

An arbiter decides escrow disputes and direct claims, and had no way to find them: the
trade list is the caller's own trades. A partial index holds only the trades in those
statuses, by (created_at, id), the order every list pages in; a trade step between two
other statuses, nearly every step, does not touch it.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    predicate = sa.text("status IN ('claimed', 'disputed')")
    op.create_index("ix_trades_awaiting_arbiter", "trades", ["created_at", "id"], sqlite_where=predicate, postgresql_where=predicate)


def downgrade() -> None:
    op.drop_index("ix_trades_awaiting_arbiter", "trades")
