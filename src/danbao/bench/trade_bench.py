"""`danbao bench trades`: complete escrow lifecycles per second (create, pay, ship, confirm).

Each client is a buyer with its own seller, driving whole lifecycles through the public
trade API for a bounded time; four ledger transactions per lifecycle, at the default
durability. The figure counts lifecycles that reached `completed`.
"""

from __future__ import annotations

from dataclasses import dataclass

from danbao.bench.ledger_bench import run_clients
from danbao.ids import Ids
from danbao.ledger import Ledger
from danbao.store import Database, upgrade
from danbao.trade import Trades

CLIENTS_MAX = 64
PRICE = 10_00


@dataclass
class TradeFigure:
    backend: str
    clients: int
    lifecycles: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.lifecycles / self.seconds if self.seconds else 0.0


def lifecycle_rate(backend: str, url: str, *, clients: int, seconds: float) -> TradeFigure:
    if not 1 <= clients <= CLIENTS_MAX:
        raise ValueError(f"clients must be between 1 and {CLIENTS_MAX}")
    db = Database(url, pool_size=clients + 2)
    upgrade(db)
    ledger = Ledger(db)
    trades = Trades(ledger, ids=Ids())
    run = trades.ids.new("x")[2:10]
    buyers = [f"b{i}-{run}" for i in range(clients)]
    sellers = [f"s{i}-{run}" for i in range(clients)]
    for buyer, seller in zip(buyers, sellers, strict=True):
        trades.parties.create("buyer", buyer, party_id=buyer)
        trades.parties.create("seller", seller, party_id=seller)
        trades.parties.top_up(buyer, 10**12, "CNY")

    def client(i: int, running) -> int:  # type: ignore[no-untyped-def]
        done = 0
        while running():
            t = trades.create(buyers[i], seller_id=sellers[i], model="escrow", amount=PRICE, currency="CNY")
            trades.pay(t.id, buyers[i])
            trades.ship(t.id, sellers[i])
            if trades.confirm(t.id, buyers[i]).status == "completed":
                done += 1
        return done

    try:
        lifecycles, elapsed = run_clients(clients, seconds, client)
    finally:
        ledger.close()
        db.dispose()
    return TradeFigure(backend, clients, lifecycles, elapsed)
