"""The ledger: accounts, the hash-chained transfer journal, holds and the chain head.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("owner", sa.String(64), nullable=True),
        sa.Column("flags", sa.Integer, nullable=False),
        sa.Column("debits_pending", sa.BigInteger, nullable=False),
        sa.Column("debits_posted", sa.BigInteger, nullable=False),
        sa.Column("credits_pending", sa.BigInteger, nullable=False),
        sa.Column("credits_posted", sa.BigInteger, nullable=False),
        sa.Column("timestamp", sa.BigInteger, nullable=False),
        sa.CheckConstraint(
            "debits_pending >= 0 AND debits_posted >= 0 AND credits_pending >= 0 AND credits_posted >= 0",
            name="ck_accounts_totals_non_negative",
        ),
        sa.CheckConstraint(
            "(flags & 1) = 0 OR debits_pending + debits_posted <= credits_posted",
            name="ck_accounts_no_overdraft",
        ),
        sa.CheckConstraint(
            "(flags & 2) = 0 OR credits_pending + credits_posted <= debits_posted",
            name="ck_accounts_no_overcredit",
        ),
    )
    op.create_index("ix_accounts_owner", "accounts", ["owner"])

    op.create_table(
        "transfers",
        sa.Column("id", sa.String(72), primary_key=True),
        sa.Column("timestamp", sa.BigInteger, nullable=False, unique=True),
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
        sa.CheckConstraint("amount >= 0 AND hold_amount >= 0", name="ck_transfers_amounts"),
    )
    op.create_index("ix_transfers_debit", "transfers", ["debit_account_id", "timestamp"])
    op.create_index("ix_transfers_credit", "transfers", ["credit_account_id", "timestamp"])
    op.create_index("ix_transfers_ref", "transfers", ["ref"])

    op.create_table(
        "holds",
        sa.Column("pending_id", sa.String(64), primary_key=True),
        sa.Column("debit_account_id", sa.String(64), nullable=False),
        sa.Column("credit_account_id", sa.String(64), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("timestamp", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
    )
    op.create_index("ix_holds_due", "holds", ["state", "expires_at"])
    op.create_index("ix_holds_debit", "holds", ["debit_account_id", "state"])

    op.create_table(
        "ledger_head",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("timestamp", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("transfers_count", sa.BigInteger, nullable=False),
    )
    op.execute(
        "INSERT INTO ledger_head (id, timestamp, hash, transfers_count) "
        f"VALUES (1, 0, '{'0' * 64}', 0)"
    )


def downgrade() -> None:
    for table in ("ledger_head", "holds", "transfers", "accounts"):
        op.drop_table(table)
