"""Trades: parties, trades with their deadlines, and the trade event log.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "parties",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("cash_limit", sa.BigInteger, nullable=True),
        sa.Column("late_remittances", sa.Integer, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.CheckConstraint("cash_limit IS NULL OR cash_limit >= 0", name="ck_parties_cash_limit"),
    )
    op.create_table(
        "trades",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("model", sa.String(16), nullable=False),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("buyer_id", sa.String(64), nullable=False),
        sa.Column("seller_id", sa.String(64), nullable=False),
        sa.Column("courier_id", sa.String(64), nullable=True),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("items", sa.Text, nullable=False),
        sa.Column("paid", sa.BigInteger, nullable=False),
        sa.Column("refunded", sa.BigInteger, nullable=False),
        sa.Column("released", sa.BigInteger, nullable=False),
        sa.Column("fee", sa.BigInteger, nullable=False),
        sa.Column("compensated", sa.BigInteger, nullable=False),
        sa.Column("refund_requested", sa.BigInteger, nullable=True),
        sa.Column("collect_method", sa.String(8), nullable=True),
        sa.Column("confirm_extended", sa.Integer, nullable=False),
        sa.Column("remit_late", sa.Integer, nullable=False),
        sa.Column("pay_by", sa.BigInteger, nullable=True),
        sa.Column("ship_by", sa.BigInteger, nullable=True),
        sa.Column("confirm_by", sa.BigInteger, nullable=True),
        sa.Column("confirm_left_ns", sa.BigInteger, nullable=True),
        sa.Column("respond_by", sa.BigInteger, nullable=True),
        sa.Column("claim_by", sa.BigInteger, nullable=True),
        sa.Column("remit_by", sa.BigInteger, nullable=True),
        sa.Column("due_at", sa.BigInteger, nullable=True),
        sa.Column("due_action", sa.String(24), nullable=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.CheckConstraint("amount > 0", name="ck_trades_amount_positive"),
        sa.CheckConstraint(
            "paid >= 0 AND refunded >= 0 AND released >= 0 AND fee >= 0 AND compensated >= 0",
            name="ck_trades_figures_non_negative",
        ),
        sa.CheckConstraint("refunded + released <= paid", name="ck_trades_never_pay_out_more_than_paid"),
    )
    op.create_index("ix_trades_due", "trades", ["due_at"])
    op.create_index("ix_trades_buyer", "trades", ["buyer_id", "created_at"])
    op.create_index("ix_trades_seller", "trades", ["seller_id", "status"])
    op.create_index("ix_trades_courier", "trades", ["courier_id", "status"])
    op.create_table(
        "trade_events",
        sa.Column("trade_id", sa.String(64), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("at", sa.BigInteger, nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("action", sa.String(24), nullable=False),
        sa.Column("from_status", sa.String(24), nullable=False),
        sa.Column("to_status", sa.String(24), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=True),
        sa.Column("detail", sa.Text, nullable=True),
        sa.Column("dispatched", sa.Integer, nullable=False),
    )
    op.create_index("ix_trade_events_action", "trade_events", ["action", "at"])
    op.create_index("ix_trade_events_dispatched", "trade_events", ["dispatched", "at"])


def downgrade() -> None:
    op.drop_table("trade_events")
    op.drop_table("trades")
    op.drop_table("parties")
