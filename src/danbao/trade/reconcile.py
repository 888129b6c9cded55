"""Trade books against the ledger: the escrow holds exactly what open trades say it holds.

The ledger's audit proves the journal is whole and every balance is its journal's sum;
this proves the trades' own figures agree with that journal: for every escrow and cod
trade, the net of its escrow transfers (ref = trade id) equals paid - refunded -
released, and per currency the escrow account's balance equals the sum over open trades.

Trades are read a page at a time, in id order, each page with the escrow moved under its
trades' ids (the journal's index on ref); escrow moved under any other ref is summed by
the database, which returns only what does not net to zero. Memory is a page, however
many trades the platform has.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from danbao.store import Database
from danbao.store.raw import Raw, list_placeholders
from danbao.trade import accounts

# Report at most this many mismatches, of trades or of escrow moved for no trade (the
# count is still exact).
MISMATCHES_REPORTED_MAX = 50
# Trades read at a time, with the escrow moves under their ids: memory for a page, not
# for every trade on the platform.
TRADES_PER_PAGE = 1000

_ESCROW_LIKE = f"{accounts.PLATFORM_OWNER}.escrow.%"
# What a set of transfers moved into escrow, net, and the transfers that touch escrow at
# all: each takes `_ESCROW_PARAMS`.
_NET = "SUM(CASE WHEN credit_account_id LIKE ? THEN amount ELSE 0 END) - SUM(CASE WHEN debit_account_id LIKE ? THEN amount ELSE 0 END)"
_ESCROW_MOVES = "FROM transfers WHERE (credit_account_id LIKE ? OR debit_account_id LIKE ?)"
_ESCROW_PARAMS = (_ESCROW_LIKE, _ESCROW_LIKE)


@dataclass
class Reconciliation:
    trades_checked: int = 0
    escrow_by_currency: dict[str, int] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations


def reconcile(db: Database) -> Reconciliation:
    return db.read_raw(_reconcile)


def _reconcile(raw: Raw) -> Reconciliation:
    report = Reconciliation()
    expected_by_currency: dict[str, int] = {}
    mismatches = 0

    def mismatch(message: str) -> None:
        nonlocal mismatches
        mismatches += 1
        if mismatches <= MISMATCHES_REPORTED_MAX:
            report.violations.append(message)

    after = ""  # trade ids are never empty
    while True:
        page = raw.rows(
            "SELECT id, currency, paid - refunded - released FROM trades "
            f"WHERE model != 'direct' AND id > ? ORDER BY id LIMIT {TRADES_PER_PAGE}",
            (after,),
        )
        ids = [trade_id for trade_id, _, _ in page]
        moved = _escrow_moved_under(raw, ids)
        for trade_id, currency, held in page:
            report.trades_checked += 1
            expected_by_currency[currency] = expected_by_currency.get(currency, 0) + int(held)
            net = moved.get(trade_id, 0)
            if net != held:
                mismatch(f"trade {trade_id}: escrow moved {net}, the trade says it holds {held}")
        if len(page) < TRADES_PER_PAGE:
            break
        after = ids[-1]
    # Escrow moved under any other ref: summed by the database, and only those that do not
    # net to zero come back, at most one more than are named (then counted).
    strays = (
        f"SELECT ref, {_NET} {_ESCROW_MOVES} AND NOT EXISTS "
        "(SELECT 1 FROM trades WHERE trades.id = transfers.ref AND trades.model != 'direct') "
        f"GROUP BY ref HAVING {_NET} <> 0"
    )
    named = raw.rows(f"{strays} ORDER BY ref LIMIT {MISMATCHES_REPORTED_MAX + 1}", _ESCROW_PARAMS * 3)
    for ref, net in named:
        mismatch(f"escrow moved {int(net)} for {ref!r}, which is no open trade")
    if len(named) > MISMATCHES_REPORTED_MAX:
        [(count,)] = raw.rows(f"SELECT COUNT(*) FROM ({strays}) AS strays", _ESCROW_PARAMS * 3)
        mismatches += int(count) - len(named)
    balances = {
        row[0]: int(row[1])
        for row in raw.rows("SELECT currency, credits_posted - debits_posted FROM accounts WHERE id LIKE ?", (_ESCROW_LIKE,))
    }
    for currency in sorted(set(balances) | set(expected_by_currency)):
        have, want = balances.get(currency, 0), expected_by_currency.get(currency, 0)
        report.escrow_by_currency[currency] = have
        if have != want:
            report.violations.append(f"{currency}: escrow holds {have}, open trades hold {want}")
    if mismatches > MISMATCHES_REPORTED_MAX:
        report.violations.append(f"... {mismatches - MISMATCHES_REPORTED_MAX} more mismatches of trades and escrow")
    return report


def _escrow_moved_under(raw: Raw, trade_ids: list[str]) -> dict[str, int]:
    """What escrow took in, net, under each of these ids as refs (a page of them)."""
    if not trade_ids:
        return {}
    rows = raw.rows(
        f"SELECT ref, {_NET} {_ESCROW_MOVES} AND ref IN ({list_placeholders(len(trade_ids))}) GROUP BY ref",
        (*_ESCROW_PARAMS, *_ESCROW_PARAMS, *trade_ids),
    )
    return {ref: int(net) for ref, net in rows}
