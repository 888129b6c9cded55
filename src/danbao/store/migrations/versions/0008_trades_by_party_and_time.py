"""Each role's trades by (created_at, id), the order they are listed in.

Listing a party's trades now reads each role's trades along that role's index from the
page's cursor (`trades_of`). The buyer's and seller's indexes ended at created_at, so
trades created at the same moment (one group commit, or a clock that did not move) were
all read and sorted by id for every page; the courier had only (courier_id, status), so
its every page read all its trades. Now all three end at id. The courier's is partial,
like the courier index beside it: only trades with a courier.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_trades_buyer", "trades")
    op.create_index("ix_trades_buyer", "trades", ["buyer_id", "created_at", "id"])
    op.drop_index("ix_trades_seller", "trades")
    op.create_index("ix_trades_seller", "trades", ["seller_id", "created_at", "id"])
    predicate = sa.text("courier_id IS NOT NULL")
    op.create_index("ix_trades_courier_created", "trades", ["courier_id", "created_at", "id"], sqlite_where=predicate, postgresql_where=predicate)


def downgrade() -> None:
    op.drop_index("ix_trades_courier_created", "trades")
    op.drop_index("ix_trades_seller", "trades")
    op.create_index("ix_trades_seller", "trades", ["seller_id", "created_at"])
    op.drop_index("ix_trades_buyer", "trades")
    op.create_index("ix_trades_buyer", "trades", ["buyer_id", "created_at"])
