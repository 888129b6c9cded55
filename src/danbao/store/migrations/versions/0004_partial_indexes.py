"""Partial indexes where queries only ever ask for some rows.

A trade step changes the trade's status and deadline and appends an event; with these,
it rewrites fewer index pages, so every commit writes fewer pages: the due index holds
only trades with a deadline, the courier index only trades with a courier, the seller's
status index only direct trades (listing by seller uses seller and creation time, which
never change), the outbox index only undispatched events, and the ref index only
transfers with a ref. Events lose their index by action: the one query by action (a
buyer's rejected claims) goes through the buyer's trades.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _where(predicate: str) -> dict[str, object]:
    return {"sqlite_where": sa.text(predicate), "postgresql_where": sa.text(predicate)}


def upgrade() -> None:
    op.drop_index("ix_transfers_ref", "transfers")
    op.create_index("ix_transfers_ref", "transfers", ["ref"], **_where("ref IS NOT NULL"))
    op.drop_index("ix_trades_due", "trades")
    op.create_index("ix_trades_due", "trades", ["due_at"], **_where("due_at IS NOT NULL"))
    op.drop_index("ix_trades_seller", "trades")
    op.create_index("ix_trades_seller", "trades", ["seller_id", "created_at"])
    op.create_index("ix_trades_seller_direct", "trades", ["seller_id", "status"], **_where("model = 'direct'"))
    op.drop_index("ix_trades_courier", "trades")
    op.create_index("ix_trades_courier", "trades", ["courier_id", "status"], **_where("courier_id IS NOT NULL"))
    op.drop_index("ix_trade_events_action", "trade_events")  # rejected claims are found by buyer
    op.drop_index("ix_trade_events_dispatched", "trade_events")
    op.create_index("ix_trade_events_undispatched", "trade_events", ["at", "trade_id", "seq"], **_where("dispatched = 0"))


def downgrade() -> None:
    op.drop_index("ix_trade_events_undispatched", "trade_events")
    op.create_index("ix_trade_events_dispatched", "trade_events", ["dispatched", "at"])
    op.create_index("ix_trade_events_action", "trade_events", ["action", "at"])
    op.drop_index("ix_trades_courier", "trades")
    op.create_index("ix_trades_courier", "trades", ["courier_id", "status"])
    op.drop_index("ix_trades_seller_direct", "trades")
    op.drop_index("ix_trades_seller", "trades")
    op.create_index("ix_trades_seller", "trades", ["seller_id", "status"])
    op.drop_index("ix_trades_due", "trades")
    op.create_index("ix_trades_due", "trades", ["due_at"])
    op.drop_index("ix_transfers_ref", "transfers")
    op.create_index("ix_transfers_ref", "transfers", ["ref"])
