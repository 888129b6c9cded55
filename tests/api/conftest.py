"""A live danbao API on a loopback port (uvicorn in a thread), on each backend, with a
manual clock the tests move; clients are real HTTP clients holding each party's key."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
import uvicorn

from danbao.api import Services, create_app
from danbao.api.keys import bootstrap_operator
from danbao.api.models import TradeOut
from danbao.api.webhooks import WebhookSettings
from danbao.client import Danbao
from danbao.clock import ManualClock

# The tests' receivers listen on loopback; short timeouts keep a hanging one brief.
WEBHOOKS = WebhookSettings(timeout_seconds=0.5, deadline_seconds=2.0, private_networks=True)


@dataclass
class Live:
    url: str
    services: Services
    clock: ManualClock
    admin: Danbao
    admin_key: str

    def party(self, role: str, party_id: str, *, cash_limit: int | None = None) -> Danbao:
        """Create a party through the API and return a client acting as it."""
        self.admin.create_party(role, party_id.title(), id=party_id, cash_limit=cash_limit)
        return self.client(self.admin.issue_key(party_id).key)

    def client(self, key: str | None) -> Danbao:
        return Danbao(self.url, key)


def disputed(buyer: Danbao, seller: Danbao, seller_id: str, amount: int, currency: str) -> TradeOut:
    """An escrow trade the buyer paid, the seller shipped and refused to refund: disputed."""
    t = buyer.create_trade(seller_id=seller_id, model="escrow", amount=amount, currency=currency)
    buyer.pay(t.id)
    seller.ship(t.id)
    buyer.request_refund(t.id, amount)
    seller.act(t.id, "refuse-refund")
    return buyer.act(t.id, "dispute")


def serve(services: Services) -> tuple[str, Callable[[], None]]:
    """Start uvicorn on a socket bound before the thread starts: no readiness polling."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(512)
    server = uvicorn.Server(uvicorn.Config(create_app(services), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()

    def stop() -> None:
        server.should_exit = True
        thread.join()
        sock.close()

    return f"http://127.0.0.1:{sock.getsockname()[1]}", stop


@pytest.fixture
def live(database_url: str, clock: ManualClock) -> Iterator[Live]:
    services = Services.open(database_url, clock=clock, webhooks=WEBHOOKS)
    url, stop = serve(services)
    admin = bootstrap_operator(services.keys, services.trades.parties)
    assert admin is not None
    client = Danbao(url, admin.key)
    try:
        yield Live(url, services, clock, client, admin.key)
    finally:
        client.close()
        stop()
        services.close()
