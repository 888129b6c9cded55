"""A small market for trade tests: one party of each role, funded, and the checks every
scenario ends with (ledger audit, escrow reconciliation, no negative wallet)."""

from __future__ import annotations

from dataclasses import dataclass

from danbao.clock import ManualClock
from danbao.ids import Ids
from danbao.ledger import Ledger, audit
from danbao.trade import TradeConfig, Trades
from danbao.trade import accounts as acc
from danbao.trade.reconcile import reconcile

CUR = "CNY"
PRICE = 10_000  # 100.00
FUNDS = 1_000_000


@dataclass
class Market:
    trades: Trades
    clock: ManualClock
    buyer: str = "buyer"
    seller: str = "seller"
    courier: str = "courier"
    arbiter: str = "arbiter"
    operator: str = "operator"
    stranger: str = "stranger"

    @property
    def ledger(self) -> Ledger:
        return self.trades.ledger

    def balance(self, account_id: str) -> int:
        account = self.ledger.account(account_id)
        return account.balance if account is not None else 0

    def wallet(self, party: str) -> int:
        return self.balance(acc.owned(party, "wallet", CUR))

    def platform(self, purpose: str) -> int:
        return self.balance(acc.platform(purpose, CUR))

    def owned(self, party: str, purpose: str) -> int:
        return self.balance(acc.owned(party, purpose, CUR))

    def new_trade(self, model: str = "escrow", amount: int = PRICE, *, buyer: str | None = None, seller: str | None = None, currency: str = CUR):  # type: ignore[no-untyped-def]
        return self.trades.create(buyer or self.buyer, seller_id=seller or self.seller, model=model, amount=amount, currency=currency, items=[{"sku": "tea", "qty": 1}])

    def days(self, n: float) -> None:
        self.clock.advance(n * 24 * 3600)

    def snapshot(self) -> dict[str, int]:
        """Every balance a refusal must leave alone."""
        parties = (self.buyer, self.seller, self.courier, self.stranger)
        figures = {f"{p}.{k}": self.owned(p, k) for p in parties for k in ("wallet", "deposit", "debt", "cash")}
        figures.update({f"platform.{k}": self.platform(k) for k in ("escrow", "fees", "insurance", "bank")})
        return figures


def open_market(ledger: Ledger, clock: ManualClock, config: TradeConfig | None = None) -> Market:
    trades = Trades(ledger, config or TradeConfig(), Ids(seed=7))
    m = Market(trades, clock)
    p = trades.parties
    p.create("buyer", "Buyer", party_id=m.buyer)
    p.create("buyer", "Stranger", party_id=m.stranger)
    p.create("seller", "Seller", party_id=m.seller)
    p.create("courier", "Courier", party_id=m.courier, cash_limit=5 * PRICE)
    p.create("arbiter", "Arbiter", party_id=m.arbiter)
    p.create("operator", "Operator", party_id=m.operator)
    p.top_up(m.buyer, FUNDS, CUR)
    p.top_up(m.stranger, FUNDS, CUR)
    p.top_up(m.seller, FUNDS, CUR)
    return m


def assert_books_balance(m: Market) -> None:
    report = audit(m.ledger.db)
    assert report.ok, report.violations
    rec = reconcile(m.ledger.db)
    assert rec.ok, rec.violations
    for party in (m.buyer, m.seller, m.stranger):
        assert m.wallet(party) >= 0
