"""A webhook endpoint's previous signing secret, kept for a while after a rotation.

While `previous_secret_until` is ahead, deliveries carry a signature under the previous
secret beside the one under the new secret, so a receiver can switch secrets without
refusing a delivery.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("webhook_endpoints", sa.Column("previous_secret", sa.String(128), nullable=True))
    op.add_column("webhook_endpoints", sa.Column("previous_secret_until", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("webhook_endpoints") as batch:
        batch.drop_column("previous_secret_until")
        batch.drop_column("previous_secret")
