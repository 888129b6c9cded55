"""Trade books against the ledger: the escrow holds exactly what open trades say it holds.

The ledger's audit proves the journal is whole and every balance is its journal's sum;
this proves the trades' own figures agree with that journal: for every escrow and cod
trade, the net of its escrow transfers (ref = trade id) equals paid - refunded -
released, and per currency the escrow account's balance equals the sum over open trades.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from danbao.store import Database
from danbao.store.raw import Raw
from danbao.trade import accounts

# Report at most this many mismatches, of trades or of escrow moved for no trade (the
# count is still exact).
MISMATCHES_REPORTED_MAX = 50


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
    escrow_like = f"{accounts.PLATFORM_OWNER}.escrow.%"
    net_by_ref = {
        ref: int(net)
        for ref, net in raw.rows(
            "SELECT ref, SUM(CASE WHEN credit_account_id LIKE ? THEN amount ELSE 0 END) "
            "- SUM(CASE WHEN debit_account_id LIKE ? THEN amount ELSE 0 END) "
            "FROM transfers WHERE (credit_account_id LIKE ? OR debit_account_id LIKE ?) GROUP BY ref",
            (escrow_like, escrow_like, escrow_like, escrow_like),
        )
    }
    expected_by_currency: dict[str, int] = {}
    mismatches = 0

    def mismatch(message: str) -> None:
        nonlocal mismatches
        mismatches += 1
        if mismatches <= MISMATCHES_REPORTED_MAX:
            report.violations.append(message)

    for trade_id, currency, held in raw.rows(
        "SELECT id, currency, paid - refunded - released FROM trades WHERE model != 'direct' ORDER BY id"
    ):
        report.trades_checked += 1
        expected_by_currency[currency] = expected_by_currency.get(currency, 0) + int(held)
        net = net_by_ref.pop(trade_id, 0)
        if net != held:
            mismatch(f"trade {trade_id}: escrow moved {net}, the trade says it holds {held}")
    for ref, net in sorted(net_by_ref.items(), key=lambda kv: str(kv[0])):
        if net != 0:
            mismatch(f"escrow moved {net} for {ref!r}, which is no open trade")
    balances = {
        row[0]: int(row[1])
        for row in raw.rows("SELECT currency, credits_posted - debits_posted FROM accounts WHERE id LIKE ?", (escrow_like,))
    }
    for currency in sorted(set(balances) | set(expected_by_currency)):
        have, want = balances.get(currency, 0), expected_by_currency.get(currency, 0)
        report.escrow_by_currency[currency] = have
        if have != want:
            report.violations.append(f"{currency}: escrow holds {have}, open trades hold {want}")
    if mismatches > MISMATCHES_REPORTED_MAX:
        report.violations.append(f"... {mismatches - MISMATCHES_REPORTED_MAX} more mismatches of trades and escrow")
    return report
