"""A simulated marketplace: honest and dishonest sellers, forgetful buyers, couriers, an
arbiter, over simulated days on a manual clock, in all three settlement models.

Everything goes through the public `Trades` API and the worker, exactly as a platform
would drive it; the report is read back from the trades and the ledger, not counted on
the side, so it shows what the books say.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from danbao.clock import NS_PER_SECOND, ManualClock
from danbao.ids import Ids
from danbao.ledger import Ledger, audit
from danbao.store import Database, upgrade
from danbao.trade import TradeConfig, TradeError, Trades, run_until_idle
from danbao.trade import accounts as acc
from danbao.trade.reconcile import reconcile

HOUR = 3600
CURRENCY = "CNY"
BUYER_FUNDS = 50_000_00
SELLER_FUNDS = 5_000_00
INSURANCE_SEED = 20_000_00
PRICE_MIN, PRICE_MAX = 5_00, 800_00
# Bounds on the knobs, so a typo cannot ask for a day-long run.
PARTIES_MAX = 10_000
DAYS_MAX = 365
TRADES_PER_DAY_MAX = 10_000


@dataclass(frozen=True)
class MarketPlan:
    buyers: int = 30
    sellers: int = 10
    couriers: int = 4
    days: int = 30
    trades_per_day: int = 40
    seed: int = 7
    dishonest_share: float = 0.2

    def __post_init__(self) -> None:
        for name, value, most in (("buyers", self.buyers, PARTIES_MAX), ("sellers", self.sellers, PARTIES_MAX), ("couriers", self.couriers, PARTIES_MAX), ("days", self.days, DAYS_MAX), ("trades_per_day", self.trades_per_day, TRADES_PER_DAY_MAX)):
            if not 1 <= value <= most:
                raise ValueError(f"{name} must be between 1 and {most}")
        if not 0 <= self.dishonest_share <= 1:
            raise ValueError("dishonest_share is a fraction")


@dataclass
class MarketReport:
    plan: MarketPlan
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)
    refusals: Counter[str] = field(default_factory=Counter)
    escrow_held: int = 0
    fees: int = 0
    insurance_pool: int = 0
    premiums: int = 0
    compensation_from_deposits: int = 0
    compensation_from_pool: int = 0
    seller_debts: int = 0
    claims_rejected: int = 0
    late_remittances: int = 0
    audit_ok: bool = False
    audit_violations: list[str] = field(default_factory=list)
    transfers: int = 0


class Market:
    """The simulation; `run(tick)` calls `tick(hours_done, hours_total)` as it goes."""

    def __init__(self, db: Database, plan: MarketPlan):
        self.plan = plan
        self.rng = random.Random(plan.seed)
        self.clock = ManualClock()
        self.ledger = Ledger(db, self.clock, group_commit=False)
        self.trades = Trades(self.ledger, TradeConfig(), Ids(plan.seed))
        self._queue: list[tuple[int, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self.refusals: Counter[str] = Counter()

    # -- the cast -----------------------------------------------------------------------

    def _open(self) -> None:
        p, plan, run = self.trades.parties, self.plan, f"{self.plan.seed}"
        self.operator = p.create("operator", "Operator", party_id=f"op-{run}").id
        self.arbiter = p.create("arbiter", "Arbiter", party_id=f"arb-{run}").id
        p.fund_insurance(self.operator, INSURANCE_SEED, CURRENCY)
        self.buyers = [p.create("buyer", f"Buyer {i}", party_id=f"b{i}-{run}").id for i in range(plan.buyers)]
        self.sellers = [p.create("seller", f"Seller {i}", party_id=f"s{i}-{run}").id for i in range(plan.sellers)]
        self.couriers = [p.create("courier", f"Courier {i}", party_id=f"c{i}-{run}").id for i in range(plan.couriers)]
        self.dishonest = set(self.rng.sample(self.sellers, round(plan.dishonest_share * plan.sellers)))
        for b in self.buyers:
            p.top_up(b, BUYER_FUNDS, CURRENCY)
        for s in self.sellers:
            p.top_up(s, SELLER_FUNDS, CURRENCY)
            p.deposit(s, self.trades.config.deposit_minimum * 2, CURRENCY)

    # -- scheduling ---------------------------------------------------------------------

    def later(self, hours: float, action: Callable[[], None]) -> None:
        at = self.clock.now_ns() + int(hours * HOUR * NS_PER_SECOND)
        heapq.heappush(self._queue, (at, next(self._order), action))

    def attempt(self, action: Callable[[], object]) -> object | None:
        """Do it, or count the refusal: a marketplace sees refusals as a matter of course."""
        try:
            return action()
        except TradeError as error:
            self.refusals[error.code] += 1
            return None

    def run(self, tick: Callable[[int, int], None] = lambda done, total: None) -> MarketReport:
        self._open()
        hours = self.plan.days * 24
        per_hour = self.plan.trades_per_day / 24
        owed = 0.0
        for hour in range(hours):
            owed += per_hour
            while owed >= 1:
                owed -= 1
                self.later(self.rng.random(), self._new_trade)
            end = self.clock.now_ns() + HOUR * NS_PER_SECOND
            while self._queue and self._queue[0][0] <= end:
                at, _, action = heapq.heappop(self._queue)
                self.clock.advance(ns=max(0, at - self.clock.now_ns()))
                action()
            self.clock.advance(ns=max(0, end - self.clock.now_ns()))
            run_until_idle(self.trades)
            tick(hour + 1, hours)
        return self._report()

    # -- behaviour ----------------------------------------------------------------------

    def _new_trade(self) -> None:
        r = self.rng
        model = r.choices(["escrow", "direct", "cod"], weights=[5, 2, 3])[0]
        buyer, seller = r.choice(self.buyers), r.choice(self.sellers)
        amount = r.randint(PRICE_MIN, PRICE_MAX)
        t = self.attempt(lambda: self.trades.create(buyer, seller_id=seller, model=model, amount=amount, currency=CURRENCY, items=[{"sku": f"item-{r.randint(1, 500)}", "qty": 1}]))
        if t is None:
            return
        if r.random() < 0.05:
            return  # the buyer walks away; the worker closes the trade after the pay window
        getattr(self, f"_{model}")(t.id, buyer, seller)

    def _escrow(self, trade_id: str, buyer: str, seller: str) -> None:
        r, tr = self.rng, self.trades
        if self.attempt(lambda: tr.pay(trade_id, buyer)) is None:
            return
        if seller in self.dishonest and r.random() < 0.5:
            # Never ships: the buyer cancels once the ship window has passed.
            self.later(24 * 3 + 1, lambda: self.attempt(lambda: tr.cancel(trade_id, buyer)))
            return
        self.later(r.uniform(2, 48), lambda: self._escrow_shipped(trade_id, buyer, seller))

    def _escrow_shipped(self, trade_id: str, buyer: str, seller: str) -> None:
        r, tr = self.rng, self.trades
        if self.attempt(lambda: tr.ship(trade_id, seller)) is None:
            return
        roll = r.random()
        if roll < 0.55:
            self.later(r.uniform(24, 24 * 6), lambda: self.attempt(lambda: tr.confirm(trade_id, buyer)))
        elif roll < 0.8:
            pass  # forgets: the worker confirms after the window
        else:
            self.later(r.uniform(24, 24 * 5), lambda: self._ask_refund(trade_id, buyer, seller))

    def _ask_refund(self, trade_id: str, buyer: str, seller: str) -> None:
        r, tr = self.rng, self.trades
        t = self.attempt(lambda: tr.get(trade_id, buyer))
        if t is None:
            return
        amount = t.open_in_escrow if r.random() < 0.5 else max(1, t.open_in_escrow // r.randint(2, 5))
        if self.attempt(lambda: tr.request_refund(trade_id, buyer, amount)) is None:
            return
        roll = r.random()
        if seller in self.dishonest or roll < 0.2:
            self.later(r.uniform(1, 48), lambda: self._refused(trade_id, buyer, seller))
        elif roll < 0.85:
            self.later(r.uniform(1, 72), lambda: self.attempt(lambda: tr.agree_refund(trade_id, seller)))
        # else: silence, which the worker takes as agreement

    def _refused(self, trade_id: str, buyer: str, seller: str) -> None:
        tr = self.trades
        if self.attempt(lambda: tr.refuse_refund(trade_id, seller)) is None:
            return
        self.later(self.rng.uniform(1, 24), lambda: self._dispute(trade_id, buyer, seller))

    def _dispute(self, trade_id: str, buyer: str, seller: str) -> None:
        tr = self.trades
        if self.attempt(lambda: tr.dispute(trade_id, buyer)) is None:
            return
        if seller in self.dishonest:
            decide = lambda: tr.arbitrate(trade_id, self.arbiter, "refund_full")  # noqa: E731
        elif self.rng.random() < 0.5:
            decide = lambda: tr.arbitrate(trade_id, self.arbiter, "release")  # noqa: E731
        else:
            t = tr.get(trade_id, self.arbiter)
            decide = lambda: tr.arbitrate(trade_id, self.arbiter, "refund_partial", amount=max(1, t.open_in_escrow // 3))  # noqa: E731
        self.later(self.rng.uniform(24, 24 * 4), lambda: self.attempt(decide))

    def _direct(self, trade_id: str, buyer: str, seller: str) -> None:
        r, tr = self.rng, self.trades
        if self.attempt(lambda: tr.pay(trade_id, buyer)) is None:
            return
        cheated = seller in self.dishonest and r.random() < 0.6
        false_claim = not cheated and r.random() < 0.05
        if not (cheated or false_claim):
            return
        reason = r.choice(["non_delivery", "counterfeit", "not_as_described"])
        self.later(r.uniform(24 * 3, 24 * 20), lambda: self._claim(trade_id, buyer, seller, reason, cheated))

    def _claim(self, trade_id: str, buyer: str, seller: str, reason: str, cheated: bool) -> None:
        tr = self.trades
        if self.attempt(lambda: tr.claim(trade_id, buyer, reason=reason, evidence=f"{reason}: photos attached")) is None:
            return
        if not cheated:
            self.later(48, lambda: self.attempt(lambda: tr.reject_claim(trade_id, self.arbiter)))
        elif self.rng.random() < 0.3:
            self.later(12, lambda: self.attempt(lambda: tr.settle_claim(trade_id, seller)))
        else:
            self.later(48, lambda: self._uphold(trade_id, seller))

    def _uphold(self, trade_id: str, seller: str) -> None:
        tr = self.trades
        if self.attempt(lambda: tr.uphold_claim(trade_id, self.arbiter)) is None:
            return
        # Some sellers make good and return to selling direct; others stay suspended.
        if self.rng.random() < 0.5:
            self.later(24, lambda: self._make_good(seller))

    def _make_good(self, seller: str) -> None:
        p = self.trades.parties
        owed = -self._balance(acc.owned(seller, "debt", CURRENCY))
        if owed:
            self.attempt(lambda: p.top_up(seller, owed, CURRENCY))
            self.attempt(lambda: p.repay_debt(seller, owed, CURRENCY))
        short = self.trades.config.deposit_minimum - self._balance(acc.owned(seller, "deposit", CURRENCY))
        if short > 0:
            self.attempt(lambda: p.top_up(seller, short, CURRENCY))
            self.attempt(lambda: p.deposit(seller, short, CURRENCY))

    def _cod(self, trade_id: str, buyer: str, seller: str) -> None:
        r = self.rng
        courier = r.choice(self.couriers)
        self.later(r.uniform(2, 24), lambda: self._cod_shipped(trade_id, seller, courier))

    def _cod_shipped(self, trade_id: str, seller: str, courier: str) -> None:
        r, tr = self.rng, self.trades
        if self.attempt(lambda: tr.ship(trade_id, seller, courier_id=courier)) is None:
            self.attempt(lambda: tr.cancel(trade_id, seller))
            return
        if r.random() < 0.1:
            self.later(r.uniform(12, 48), lambda: self._refused_at_door(trade_id, courier))
            return
        method = "card" if r.random() < 0.3 else "cash"
        self.later(r.uniform(12, 48), lambda: self._collected(trade_id, courier, method))

    def _refused_at_door(self, trade_id: str, courier: str) -> None:
        tr = self.trades
        if self.attempt(lambda: tr.refuse(trade_id, courier)) is not None:
            self.later(self.rng.uniform(12, 48), lambda: self.attempt(lambda: tr.return_goods(trade_id, courier)))

    def _collected(self, trade_id: str, courier: str, method: str) -> None:
        tr = self.trades
        if self.attempt(lambda: tr.collect(trade_id, courier, method=method)) is None or method == "card":
            return
        late = self.rng.random() < 0.1
        self.later(self.rng.uniform(30, 60) if late else self.rng.uniform(1, 20), lambda: self.attempt(lambda: tr.remit(trade_id, courier)))

    # -- the report ---------------------------------------------------------------------

    def _balance(self, account_id: str) -> int:
        account = self.ledger.account(account_id)
        return account.balance if account is not None else 0

    def _report(self) -> MarketReport:
        report = MarketReport(self.plan, refusals=self.refusals)
        db = self.ledger.db
        for model, status, count in db.read_raw(lambda raw: raw.rows("SELECT model, status, COUNT(*) FROM trades GROUP BY model, status")):
            report.outcomes[(model, status)] += int(count)
        sums = dict(
            db.read_raw(
                lambda raw: raw.rows(
                    "SELECT code, SUM(amount) FROM transfers WHERE currency = ? GROUP BY code", (CURRENCY,)
                )
            )
        )
        report.premiums = int(sums.get("insurance.premium", 0))
        compensation = db.read_raw(
            lambda raw: raw.rows(
                "SELECT debit_account_id, SUM(amount) FROM transfers WHERE code = 'claim.compensation' GROUP BY debit_account_id"
            )
        )
        pool = acc.platform("insurance", CURRENCY)
        report.compensation_from_pool = sum(int(total) for account, total in compensation if account == pool)
        report.compensation_from_deposits = sum(int(total) for account, total in compensation if account != pool)
        report.escrow_held = self._balance(acc.platform("escrow", CURRENCY))
        report.fees = self._balance(acc.platform("fees", CURRENCY))
        report.insurance_pool = self._balance(acc.platform("insurance", CURRENCY))
        report.seller_debts = -sum(self._balance(acc.owned(s, "debt", CURRENCY)) for s in self.sellers)
        report.claims_rejected = sum(len(self.trades.claims_rejected(b, limit=1000)) for b in self.buyers)
        report.late_remittances = sum(self.trades.parties.get(c).late_remittances for c in self.couriers)
        books = audit(db)
        trade_books = reconcile(db)
        report.audit_ok = books.ok and trade_books.ok
        report.audit_violations = [*books.violations, *trade_books.violations]
        report.transfers = books.transfers_checked
        return report


class MarketNotEmpty(Exception):
    """The simulation needs a database of its own: it owns the clock and reads every trade."""


def simulate(database_url: str, plan: MarketPlan, tick: Callable[[int, int], None] = lambda d, t: None) -> MarketReport:
    db = Database(database_url)
    try:
        upgrade(db)
        if db.read_raw(lambda raw: raw.rows("SELECT id FROM parties LIMIT 1")):
            raise MarketNotEmpty(f"{database_url} already has parties; the demo needs an empty database")
        return Market(db, plan).run(tick)
    finally:
        db.dispose()
