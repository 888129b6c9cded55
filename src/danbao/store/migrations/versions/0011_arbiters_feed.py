"""The arbiters' events: arbiters and operators, parties to no trade, had no events.

Their feed (`party_events` under the id '@arbiters', which no party can have) holds the
events that put a trade in the arbiters' queue or take it out; this revision fills it with
the events written before it. Their webhooks are found through their role, so parties gain
an index by role.

Revision ID: 0011
Revises: 0010
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_parties_role", "parties", ["role"])
    # The statuses are the arbiters' queue as of this revision (escrow disputes, direct claims).
    op.execute(
        "INSERT INTO party_events (party_id, at, trade_id, seq) "
        "SELECT '@arbiters', at, trade_id, seq FROM trade_events "
        "WHERE from_status IN ('claimed', 'disputed') OR to_status IN ('claimed', 'disputed')"
    )


def downgrade() -> None:
    op.execute("DELETE FROM party_events WHERE party_id = '@arbiters'")
    op.drop_index("ix_parties_role", "parties")
