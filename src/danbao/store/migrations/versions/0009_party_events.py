"""Each party's feed of the events on its trades, in time order.

`GET /v1/events` joined every event to its trade and kept those of the caller's trades,
then sorted them: every page read all the events of all the party's trades. The feed
holds one row per event and party to the trade, keyed by (party, at, trade, seq), so a
page reads a page of rows. Backfilled from the events and trades there are.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "party_events",
        sa.Column("party_id", sa.String(64), primary_key=True),
        sa.Column("at", sa.BigInteger(), primary_key=True),
        sa.Column("trade_id", sa.String(64), primary_key=True),
        sa.Column("seq", sa.Integer(), primary_key=True),
        sqlite_with_rowid=False,  # the key is the table: one B-tree per row written
    )
    for column in ("buyer_id", "seller_id", "courier_id"):
        op.execute(
            "INSERT INTO party_events (party_id, at, trade_id, seq) "
            f"SELECT t.{column}, e.at, e.trade_id, e.seq FROM trade_events e JOIN trades t ON t.id = e.trade_id "
            f"WHERE t.{column} IS NOT NULL"
        )


def downgrade() -> None:
    op.drop_table("party_events")
