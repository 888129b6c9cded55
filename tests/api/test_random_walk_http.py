"""Any caller, any operation, in any order, with any body, several callers at once: the
answer is a 2xx or a 4xx, never a 5xx, and afterwards the audit (the journal, every
total, the trades' books against escrow) is clean.

Each walker mostly takes a move the transition table allows from the trade's status, by
the party whose move it is, so trades reach their ends; otherwise it calls any operation
as any caller on any trade, with bodies drawn from edge cases, some under an
Idempotency-Key from a small pool. Now and then a walker moves the clock and runs the
due jobs while the others keep calling.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from typing import Any

import httpx

from danbao.trade.machine import SYSTEM, TABLE
from danbao.trade.model import Model
from danbao.trade.worker import run_until_idle
from tests.api.conftest import Live

WALKERS = 4
STEPS_EACH = 150
PARTIES = {"b1": "buyer", "b2": "buyer", "s1": "seller", "s2": "seller", "c1": "courier", "c2": "courier", "a1": "arbiter"}
CURRENCIES = ("CNY", "JPY", "KWD")
ODD_AMOUNTS: tuple[Any, ...] = (0, -1, 2**63, 10**15, 1.5, "5", True, None)
OPERATIONS = (
    "pay", "cancel", "refund", "ship", "confirm", "extend", "request-refund", "agree-refund", "refuse-refund", "dispute",
    "arbitrate", "claim", "settle-claim", "uphold-claim", "reject-claim", "collect", "refuse", "return", "remit", "settle",
)
MONEY_PATHS = ("/v1/wallet/top-up", "/v1/wallet/withdraw", "/v1/transfers", "/v1/deposit", "/v1/deposit/withdraw", "/v1/debt/repay", "/v1/insurance/fund")
STRANGERS = ("nobody", "platform", "operator")  # ids no trade may name as a party


def sane_body(rng: random.Random, operation: str) -> dict[str, Any]:
    return {
        "ship": {"courier_id": rng.choice(["c1", "c2"])},
        "request-refund": {"amount": rng.choice([1, 50, 500])},
        "arbitrate": rng.choice([{"decision": "release"}, {"decision": "refund_full"}, {"decision": "refund_partial", "amount": 20}]),
        "claim": {"reason": "counterfeit", "evidence": "photo"},
        "collect": {"method": rng.choice(["cash", "card"])},
    }.get(operation, {})


def odd_body(rng: random.Random) -> dict[str, Any]:
    return rng.choice([
        {},
        {"junk": 1},
        {"amount": rng.choice(ODD_AMOUNTS)},
        {"courier_id": rng.choice([*PARTIES, *STRANGERS])},
        {"decision": rng.choice(["release", "split"]), "amount": rng.choice(ODD_AMOUNTS)},
        {"reason": "counterfeit", "evidence": "x" * rng.choice([0, 1, 5000])},
        {"method": rng.choice(["cash", "iou"])},
    ])


class Walk:
    """What the walkers share: the server, each caller's key, the trades made so far."""

    def __init__(self, live: Live):
        self.live = live
        self.keys = {party_id: live.admin.issue_key(party_id).key for party_id in PARTIES} | {"operator": live.admin_key}
        self.trades: list[str] = ["t_missing"]
        self.lock = threading.Lock()
        self.statuses: Counter[int] = Counter()
        self.failures: list[str] = []

    def clients(self) -> dict[str, httpx.Client]:
        return {who: httpx.Client(base_url=self.live.url, headers={"Authorization": f"Bearer {key}"}) for who, key in self.keys.items()}

    def walk(self, seed: int) -> None:
        rng, clients = random.Random(seed), self.clients()
        try:
            for _ in range(STEPS_EACH):
                self.step(rng, clients)
        finally:
            for client in clients.values():
                client.close()

    def step(self, rng: random.Random, clients: dict[str, httpx.Client]) -> None:
        draw = rng.random()
        if draw < 0.03:
            self.live.clock.advance(rng.choice([3600, 86400, 3 * 86400, 8 * 86400, 20 * 86400]))
            run_until_idle(self.live.services.trades)
            return
        if draw < 0.2:
            self.record(self.create_trade(rng, clients))
        elif draw < 0.9:
            self.record(self.act(rng, clients))
        else:
            body = {"amount": rng.choice([1, 500, *ODD_AMOUNTS]), "currency": rng.choice([*CURRENCIES, "cny", "XXX"])}
            path = rng.choice(MONEY_PATHS)
            if path == "/v1/transfers":
                body["to_party_id"] = rng.choice([*PARTIES, *STRANGERS])
            self.record(clients[rng.choice(list(clients))].post(path, json=body))

    def create_trade(self, rng: random.Random, clients: dict[str, httpx.Client]) -> httpx.Response:
        sane = rng.random() < 0.8
        body = {
            "seller_id": rng.choice(["s1", "s2"]) if sane else rng.choice([*PARTIES, *STRANGERS]),
            "model": rng.choice(["escrow", "direct", "cod"]) if sane else rng.choice(["escrow", "barter"]),
            "amount": rng.choice([100, 999, 10_000]) if sane else rng.choice(ODD_AMOUNTS),
            "currency": rng.choice(CURRENCIES) if sane else rng.choice(["cny", "XXX", None]),
        }
        caller = rng.choice(["b1", "b2"]) if sane else rng.choice(list(clients))
        response = clients[caller].post("/v1/trades", json=body)
        if response.status_code == 201:
            with self.lock:
                self.trades.append(response.json()["id"])
        return response

    def act(self, rng: random.Random, clients: dict[str, httpx.Client]) -> httpx.Response:
        with self.lock:
            trade_id = rng.choice(self.trades[-20:])
        caller, operation = rng.choice(list(clients)), rng.choice(OPERATIONS)
        body = odd_body(rng)
        if rng.random() < 0.7 and trade_id != "t_missing":
            trade = clients["operator"].get(f"/v1/trades/{trade_id}").json()
            moves = [
                (action, actor)
                for (status, action), rule in TABLE[Model(trade["model"])].items()
                if status.value == trade["status"]
                for actor in sorted(rule.actors - {SYSTEM})
            ]
            if moves:  # the table's move, by the party whose move it is, mostly cancelling nothing
                action, actor = rng.choices(moves, [0.1 if a.value in ("cancel", "refund") else 1.0 for a, _ in moves])[0]
                operation = "return" if action.value == "return_goods" else action.value.replace("_", "-")
                parts = {"buyer": trade["buyer_id"], "seller": trade["seller_id"], "courier": trade["courier_id"] or "c1", "arbiter": "a1", "operator": "operator"}
                caller, body = parts[actor], sane_body(rng, operation)
        # Now and then under a key from a small pool: replays, and keys reused for other requests.
        headers = {"Idempotency-Key": f"k{rng.randrange(40)}"} if rng.random() < 0.2 else {}
        return clients[caller].post(f"/v1/trades/{trade_id}/{operation}", json=body, headers=headers)

    def record(self, response: httpx.Response) -> None:
        with self.lock:
            self.statuses[response.status_code] += 1
            if response.status_code >= 500:
                self.failures.append(f"{response.request.method} {response.request.url.path} {response.request.content!r}: {response.status_code} {response.text}")


def test_random_callers_get_no_5xx_and_leave_the_books_clean(live: Live) -> None:
    for party_id, role in PARTIES.items():
        live.admin.create_party(role, party_id.upper(), id=party_id, cash_limit=5_000 if role == "courier" else None)
    walk = Walk(live)
    setup = walk.clients()
    for party_id in ("b1", "b2", "s1", "s2"):
        for currency in CURRENCIES:
            setup[party_id].post("/v1/wallet/top-up", json={"amount": 1_000_000, "currency": currency}).raise_for_status()
            if party_id.startswith("s"):
                setup[party_id].post("/v1/deposit", json={"amount": 50_000, "currency": currency}).raise_for_status()
    walkers = [threading.Thread(target=walk.walk, args=(seed,)) for seed in range(WALKERS)]
    for walker in walkers:
        walker.start()
    for walker in walkers:
        walker.join()

    assert walk.failures == []
    # The walk did reach past the refusals: trades made and moved, and refusals of each kind.
    assert walk.statuses[201] >= 20 and walk.statuses[200] >= 20, walk.statuses
    assert {400, 403, 404, 409} <= set(walk.statuses), walk.statuses
    report = live.admin.audit()
    assert report.ok, report.violations
    assert report.trades_checked >= 20
