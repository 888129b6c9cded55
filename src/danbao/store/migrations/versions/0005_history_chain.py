"""Account history as a chain through the journal instead of two per-account indexes.

The (debit, timestamp) and (credit, timestamp) indexes put every transfer on a random
leaf of each: a batch spread over many accounts wrote a page per transfer to them, and
so did every group commit. Each journal row now names each side's previous entry, each
account its latest entry and count, and `account_marks` keeps every 64th entry of an
account with its totals, so reads walk a bounded stretch of the chain.

The backfill replays the journal in time order; its arithmetic is frozen here (a
migration must not change meaning when the code it once imported changes).

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

MARK_EVERY = 64  # danbao.ledger.model.HISTORY_MARK_EVERY when this revision was written
_PAGE = 10_000
_PENDING, _POST, _VOID, _EXPIRY = 2, 4, 8, 32  # TransferFlags


def _deltas(flags: int, amount: int, hold_amount: int) -> tuple[int, int]:
    if flags & _PENDING:
        return amount, 0
    if flags & (_POST | _VOID | _EXPIRY):
        return -hold_amount, amount if flags & _POST else 0
    return 0, amount


def upgrade() -> None:
    op.add_column("accounts", sa.Column("last_entry", sa.BigInteger(), nullable=True))
    op.add_column("accounts", sa.Column("entries", sa.BigInteger(), nullable=False, server_default="0"))
    op.add_column("transfers", sa.Column("debit_prev", sa.BigInteger(), nullable=True))
    op.add_column("transfers", sa.Column("credit_prev", sa.BigInteger(), nullable=True))
    op.create_table(
        "account_marks",
        sa.Column("account_id", sa.String(64), primary_key=True),
        sa.Column("timestamp", sa.BigInteger(), primary_key=True),
        sa.Column("debits_pending", sa.BigInteger(), nullable=False),
        sa.Column("debits_posted", sa.BigInteger(), nullable=False),
        sa.Column("credits_pending", sa.BigInteger(), nullable=False),
        sa.Column("credits_posted", sa.BigInteger(), nullable=False),
    )
    _backfill(op.get_bind())
    op.drop_index("ix_transfers_debit", "transfers")
    op.drop_index("ix_transfers_credit", "transfers")


def _backfill(bind: sa.Connection) -> None:
    # account -> [last entry, entries, debits_pending, debits_posted, credits_pending, credits_posted]
    state: dict[str, list[int]] = {}
    after = -1
    while True:
        rows = bind.execute(
            sa.text(
                "SELECT timestamp, debit_account_id, credit_account_id, amount, hold_amount, flags FROM transfers "
                "WHERE timestamp > :after ORDER BY timestamp LIMIT :page"
            ),
            {"after": after, "page": _PAGE},
        ).all()
        if not rows:
            break
        links, marks = [], []
        for timestamp, debit, credit, amount, hold_amount, flags in rows:
            pending, posted = _deltas(flags, amount, hold_amount)
            prev = []
            for account_id, first in ((debit, 2), (credit, 4)):
                s = state.setdefault(account_id, [None, 0, 0, 0, 0, 0])  # type: ignore[list-item]
                prev.append(s[0])
                s[0] = timestamp
                s[1] += 1
                s[first] += pending
                s[first + 1] += posted
                if s[1] % MARK_EVERY == 0:
                    marks.append({"a": account_id, "t": timestamp, "dp": s[2], "do": s[3], "cp": s[4], "co": s[5]})
            links.append({"t": timestamp, "d": prev[0], "c": prev[1]})
        bind.execute(sa.text("UPDATE transfers SET debit_prev = :d, credit_prev = :c WHERE timestamp = :t"), links)
        if marks:
            bind.execute(
                sa.text(
                    "INSERT INTO account_marks (account_id, timestamp, debits_pending, debits_posted, credits_pending, credits_posted) "
                    "VALUES (:a, :t, :dp, :do, :cp, :co)"
                ),
                marks,
            )
        after = rows[-1][0]
    if state:
        bind.execute(
            sa.text("UPDATE accounts SET last_entry = :t, entries = :n WHERE id = :a"),
            [{"a": a, "t": s[0], "n": s[1]} for a, s in state.items()],
        )


def downgrade() -> None:
    op.create_index("ix_transfers_debit", "transfers", ["debit_account_id", "timestamp"])
    op.create_index("ix_transfers_credit", "transfers", ["credit_account_id", "timestamp"])
    op.drop_table("account_marks")
    with op.batch_alter_table("transfers") as batch:
        batch.drop_column("credit_prev")
        batch.drop_column("debit_prev")
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("entries")
        batch.drop_column("last_entry")
