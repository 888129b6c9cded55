"""An account's history, read from its chain through the journal.

Each journal row names each side's previous entry for that account (`debit_prev`,
`credit_prev`), each account its latest entry (`last_entry`), and `account_marks` every
`HISTORY_MARK_EVERY`-th entry with the account's totals just after it. Writing the chain
touches only pages a batch writes anyway; reading walks it from the nearest mark, so any
read walks at most `HISTORY_MARK_EVERY` entries before it has what it wants.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Connection, case, literal, select

from danbao.errors import invariant
from danbao.ledger.journal import deltas
from danbao.ledger.model import HISTORY_MARK_EVERY, Balance, Transfer
from danbao.store.schema import TOTALS_COLUMNS
from danbao.store.schema import account_marks as marks_t
from danbao.store.schema import accounts as accounts_t
from danbao.store.schema import transfers as transfers_t

# The tables also keep the chain, which is not part of a Transfer.
TRANSFER_COLUMNS = [transfers_t.c[name] for name in Transfer.__dataclass_fields__]


def transfers_after(conn: Connection, account_id: str, since: int, count: int) -> list[Transfer]:
    """Up to `count` of the account's entries with timestamp > `since`, oldest first."""
    last = conn.execute(select(accounts_t.c.last_entry).where(accounts_t.c.id == account_id)).scalar()
    found: list[Transfer] = []
    lower = since
    # Each pass reads one stretch between marks (at least one entry), so `count` passes bound it.
    for _ in range(count):
        if last is None or lower >= last or len(found) >= count:
            break
        end = _next_mark(conn, account_id, lower)
        end = last if end is None else end[0]
        found += _stretch(conn, account_id, lower, end)
        lower = end
    return found[:count]


def balance_at(conn: Connection, account_id: str, timestamp: int) -> Balance:
    """The account's totals just after its last entry at or before `timestamp`."""
    mark = _next_mark(conn, account_id, timestamp)
    if mark is not None:
        end, *totals = mark
    else:
        row = conn.execute(
            select(accounts_t.c.last_entry, *(accounts_t.c[name] for name in TOTALS_COLUMNS)).where(accounts_t.c.id == account_id)
        ).first()
        if row is None or row[0] is None:
            return Balance(0, 0, 0, 0)
        end, *totals = row
    if end > timestamp:
        # Undo, newest first, the entries after the moment asked for.
        for t in _stretch(conn, account_id, timestamp, end):
            pending, posted = deltas(t.flags, t.amount, t.hold_amount)
            side = 0 if t.debit_account_id == account_id else 2
            totals[side] -= pending
            totals[side + 1] -= posted
    return Balance(*totals)


def _next_mark(conn: Connection, account_id: str, after: int) -> tuple[int, int, int, int, int] | None:
    row = conn.execute(
        select(marks_t.c.timestamp, *(marks_t.c[name] for name in TOTALS_COLUMNS))
        .where(marks_t.c.account_id == account_id, marks_t.c.timestamp > after)
        .order_by(marks_t.c.timestamp)
        .limit(1)
    ).first()
    return tuple(row) if row is not None else None  # type: ignore[return-value]


def _stretch(conn: Connection, account_id: str, lower: int, end: int) -> list[Transfer]:
    """The account's entries with lower < timestamp <= end (an entry of the account), oldest
    first: the chain walked back from `end`, one recursive query."""
    t = transfers_t
    chain = select(literal(end, BigInteger).label("ts")).cte("chain", recursive=True)
    previous = case((t.c.debit_account_id == account_id, t.c.debit_prev), else_=t.c.credit_prev)
    chain = chain.union_all(select(previous).select_from(t.join(chain, t.c.timestamp == chain.c.ts)).where(chain.c.ts > lower))
    rows = conn.execute(
        select(*TRANSFER_COLUMNS).where(t.c.timestamp.in_(select(chain.c.ts)), t.c.timestamp > lower).order_by(t.c.timestamp)
    ).all()
    # Marks bound every stretch; a longer one means the chain or its marks are broken.
    invariant(len(rows) <= HISTORY_MARK_EVERY, f"account {account_id}'s history runs {len(rows)} entries between marks")
    return [Transfer(*row) for row in rows]
