"""What the HTTP layer stands on: one object built from configuration, in one place."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from danbao.api.idempotency import IdempotencyStore
from danbao.api.keys import ApiKeys
from danbao.api.webhooks import Webhooks, WebhookSettings
from danbao.clock import Clock, SystemClock
from danbao.ledger import Ledger
from danbao.store import Database, upgrade
from danbao.trade import TradeConfig, Trades


@dataclass
class Services:
    db: Database
    clock: Clock
    ledger: Ledger
    trades: Trades
    keys: ApiKeys
    idempotency: IdempotencyStore
    webhooks: Webhooks
    # Held while an audit runs: one at a time, since each reads the whole journal and
    # holds the GIL for most of it, slowing every other request while it does.
    auditing: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def trade_works(self) -> Trades:
        """Trade operations as units of work, for the async routes (see `Trades.as_works`)."""
        return self._trade_works

    def __post_init__(self) -> None:
        self._trade_works = self.trades.as_works()

    @classmethod
    def open(cls, database_url: str | None = None, *, clock: Clock | None = None, config: TradeConfig | None = None,
             webhooks: WebhookSettings | None = None) -> Services:
        clock = clock or SystemClock()
        db = Database(database_url)
        upgrade(db)
        ledger = Ledger(db, clock)
        trades = Trades(ledger, config)
        return cls(db, clock, ledger, trades, ApiKeys(ledger, clock), IdempotencyStore(ledger, clock), Webhooks(trades, clock, webhooks))

    def close(self) -> None:
        self.ledger.close()
        self.db.dispose()
