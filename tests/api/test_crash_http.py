"""A server killed with SIGKILL in the middle of traffic: every keyed request, retried with
its key against the restarted server, takes effect exactly once, and the books balance.
Top-ups and whole escrow lifecycles (the trade calls commit in shared groups)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest

from danbao.bench.api_bench import ServerProcess
from danbao.client import Danbao
from tests.api.traffic import Answers, buyers_with_keys, wallet_balance

CUR = "CNY"
BUYERS = 4
KILL_AFTER_ANSWERS = 40  # top-ups answered before the kill, so it lands mid-traffic
KEYS_PER_BUYER_MAX = 10_000  # a bound on the loop, far above what runs before the kill


def _kill_mid_traffic(server: ServerProcess, callers: list[threading.Thread], answers: Answers) -> None:
    """Start the callers, SIGKILL the server once enough calls were answered (no shutdown,
    no flush: whatever was in flight is cut off), and wait for every caller to notice."""
    for t in callers:
        t.start()
    assert answers.enough.wait(60), "calls were answered before the kill"
    server.process.kill()
    server.process.wait(30)
    for t in callers:
        t.join(30)
        assert not t.is_alive()


@pytest.fixture
def server(database_url: str) -> Iterator[ServerProcess]:
    first = ServerProcess("danbao", database_url)
    yield first
    if first.process.poll() is None:
        first.stop()


def test_keyed_top_ups_retried_after_a_sigkill_take_effect_exactly_once(server: ServerProcess, database_url: str) -> None:
    assert server.admin_key is not None
    with Danbao(server.url, server.admin_key) as admin:
        keys = buyers_with_keys(admin, BUYERS)
    answers = Answers(KILL_AFTER_ANSWERS)
    unanswered: dict[str, list[str]] = {party: [] for party in keys}  # idempotency keys sent, no answer seen
    sent: dict[str, list[str]] = {party: [] for party in keys}

    def buyer(party: str) -> None:
        with Danbao(server.url, keys[party], retries=0, timeout=5) as client:
            for n in range(KEYS_PER_BUYER_MAX):
                key = f"{party}-top-up-{n}"
                sent[party].append(key)
                try:
                    client.request("POST", "/v1/wallet/top-up", json={"amount": 1, "currency": CUR}, idempotency_key=key)
                except httpx.TransportError:
                    unanswered[party].append(key)  # the server died with this one in flight, or before it
                    return
                answers.add()

    _kill_mid_traffic(server, [threading.Thread(target=buyer, args=(party,)) for party in keys], answers)

    restarted = ServerProcess("danbao", database_url)
    try:
        assert restarted.admin_key is None  # the same books: the operator already has a key
        for party, party_keys in unanswered.items():
            with Danbao(restarted.url, keys[party], retries=0) as client:
                for key in party_keys:
                    moved = client.request("POST", "/v1/wallet/top-up", json={"amount": 1, "currency": CUR}, idempotency_key=key)
                    assert (moved["amount"], moved["currency"]) == (1, CUR)
                # Every key sent took effect once: neither lost with the crash nor repeated by the retry.
                assert wallet_balance(client, party, CUR) == len(sent[party]), party
                transfers = client.request("GET", f"/v1/accounts/{party}.wallet.{CUR}/transfers", params={"limit": 1000})["data"]
                assert len(transfers) == len(sent[party]), party
        with Danbao(restarted.url, server.admin_key) as admin:
            audited = admin.audit()
        assert audited.ok, audited
    finally:
        restarted.stop()


# -- trades -------------------------------------------------------------------------------

PRICE = 1_000
TOP_UP = 10**9
KILLS = 3  # servers killed in turn; each restart resumes every lifecycle where it stopped
KILL_AFTER_STEPS = 30  # trade calls answered in a round before its kill
ROUND_STEPS_MAX = 100_000  # a bound on a buyer's loop in one round, far above what runs
STEPS = ("create", "pay", "ship", "confirm")


@dataclass
class Lifecycle:
    """Where one buyer's current escrow lifecycle stands: the next call, and the key it
    goes under until it is answered (so a call cut off by a kill is retried as itself)."""

    buyer: str
    started: int = 0
    step: int = 0
    trade_id: str | None = None
    key: str = ""

    def call(self) -> tuple[str, str, dict[str, object]]:
        """(party making the call, path, body) for the next step."""
        name = STEPS[self.step]
        if name == "create":
            return self.buyer, "/v1/trades", {"seller_id": "seller", "model": "escrow", "amount": PRICE, "currency": CUR}
        return ("seller" if name == "ship" else self.buyer), f"/v1/trades/{self.trade_id}/{name}", {}

    def answered(self, trade: dict[str, object]) -> None:
        if STEPS[self.step] == "create":
            self.trade_id = str(trade["id"])
            self.started += 1
        self.step = (self.step + 1) % len(STEPS)
        self.key = ""


def _drive(url: str, keys: dict[str, str], life: Lifecycle, *, answered: Callable[[], None], stop_at_boundary: bool) -> None:
    """Take `life`'s steps until the server is gone (or, with `stop_at_boundary`, until the
    current lifecycle is complete)."""
    clients = {party: Danbao(url, keys[party], retries=0, timeout=5) for party in (life.buyer, "seller")}
    try:
        for _ in range(ROUND_STEPS_MAX):
            # Done when the last lifecycle completed and no call is owed an answer (a create
            # cut off by a kill may have made a trade: it is retried before stopping).
            if stop_at_boundary and life.step == 0 and life.trade_id is not None and not life.key:
                return
            party, path, body = life.call()
            life.key = life.key or f"{life.buyer}-{life.started}-{STEPS[life.step]}"
            try:
                trade = clients[party].request("POST", path, json=body, idempotency_key=life.key)
            except httpx.TransportError:
                return  # the server died with this call in flight, or before it: retried as is
            life.answered(trade)
            answered()
        raise AssertionError("a round ran past its bound")
    finally:
        for client in clients.values():
            client.close()


def test_keyed_trade_lifecycles_resumed_after_sigkills_complete_exactly_once(server: ServerProcess, database_url: str) -> None:
    assert server.admin_key is not None
    admin_key = server.admin_key
    with Danbao(server.url, admin_key) as admin:
        admin.create_party("seller", "Seller", id="seller")
        keys = {"seller": admin.issue_key("seller").key, **buyers_with_keys(admin, BUYERS)}
    for party in keys.keys() - {"seller"}:
        with Danbao(server.url, keys[party]) as buyer:
            buyer.top_up(TOP_UP, CUR)
    lives = [Lifecycle(f"b{n}") for n in range(BUYERS)]
    current = server
    for _ in range(KILLS):
        answers = Answers(KILL_AFTER_STEPS)
        callers = [
            threading.Thread(target=_drive, args=(current.url, keys, life), kwargs={"answered": answers.add, "stop_at_boundary": False})
            for life in lives
        ]
        _kill_mid_traffic(current, callers, answers)
        current = ServerProcess("danbao", database_url)
    try:
        assert current.admin_key is None  # the same books
        for life in lives:  # each lifecycle cut off mid-way resumes with its call's own key
            _drive(current.url, keys, life, answered=lambda: None, stop_at_boundary=True)
            assert life.step == 0
        released = 0
        for life in lives:
            with Danbao(current.url, keys[life.buyer], retries=0) as buyer:
                trades = buyer.request("GET", "/v1/trades", params={"limit": 1000})["data"]
                # No call was lost with a crash, and none was done twice by its retry.
                assert len(trades) == life.started, life
                assert {t["status"] for t in trades} == {"completed"}, life
                assert {(t["paid"], t["amount"]) for t in trades} == {(PRICE, PRICE)}
                assert wallet_balance(buyer, life.buyer, CUR) == TOP_UP - PRICE * life.started
                released += sum(t["released"] - t["fee"] for t in trades)
        with Danbao(current.url, keys["seller"], retries=0) as seller:
            assert wallet_balance(seller, "seller", CUR) == released > 0
        with Danbao(current.url, admin_key) as admin:
            audited = admin.audit()
        assert audited.ok, audited
    finally:
        current.stop()
