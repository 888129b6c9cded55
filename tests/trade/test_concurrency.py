"""Races that must settle money once: buyer vs worker, double payment, two workers, and many
parties trading at once; the books balance afterwards on both backends."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from danbao.trade import TradeError, run_due, share_of
from danbao.trade.reconcile import reconcile
from tests.trade.helpers import CUR, FUNDS, PRICE, Market, assert_books_balance

ROUNDS = 10


def race(*calls: Callable[[], Any]) -> list[Any]:
    """Run the calls at the same moment; each outcome is a result or the TradeError raised."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], Any]) -> Any:
        barrier.wait()
        try:
            return call()
        except TradeError as error:
            return error

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def test_confirmed_by_the_buyer_and_the_worker_at_once_pays_the_seller_once(market: Market) -> None:
    m = market
    ids = []
    for _ in range(ROUNDS):
        t = m.trades.ship(m.trades.pay(m.new_trade().id, m.buyer).id, m.seller)
        ids.append(t.id)
    m.days(10)
    for trade_id in ids:
        buyer, worker = race(lambda: m.trades.confirm(trade_id, m.buyer), lambda: m.trades.run_due_one(trade_id))
        winners = [o for o in (buyer, worker) if o is not None and not isinstance(o, TradeError)]
        assert len(winners) == 1, (buyer, worker)
        if isinstance(buyer, TradeError):
            assert buyer.code == "trade_state_invalid"
        events = [e.action for e in m.trades.events(trade_id, m.seller)]
        assert events.count("confirm") + events.count("auto_confirm") == 1
    assert m.wallet(m.seller) == FUNDS + ROUNDS * (PRICE - share_of(PRICE, 200))


def test_a_payment_submitted_eight_times_at_once_charges_once(market: Market) -> None:
    m = market
    for _ in range(3):
        t = m.new_trade()
        outcomes = race(*[lambda: m.trades.pay(t.id, m.buyer)] * 8)
        assert sum(not isinstance(o, TradeError) for o in outcomes) == 1
        assert {o.code for o in outcomes if isinstance(o, TradeError)} == {"trade_state_invalid"}
    assert m.wallet(m.buyer) == FUNDS - 3 * PRICE
    assert m.platform("escrow") == 3 * PRICE


def test_two_workers_at_once_advance_each_trade_once(market: Market) -> None:
    m = market
    for _ in range(ROUNDS):
        m.trades.ship(m.trades.pay(m.new_trade().id, m.buyer).id, m.seller)
        m.new_trade()  # left unpaid: closes
    m.days(11)
    first, second = race(lambda: run_due(m.trades), lambda: run_due(m.trades))
    assert first.trades_advanced + second.trades_advanced == 2 * ROUNDS
    assert run_due(m.trades).trades_advanced == 0
    assert m.wallet(m.seller) == FUNDS + ROUNDS * (PRICE - share_of(PRICE, 200))


def test_many_parties_trading_at_once_keep_the_books_balanced(market: Market) -> None:
    m = market
    buyers = [f"b{i}" for i in range(6)]
    for b in buyers:
        m.trades.parties.create("buyer", b, party_id=b)
        m.trades.parties.top_up(b, FUNDS, CUR)
    stop = threading.Event()
    completed = [0]
    lock = threading.Lock()

    def shopper(buyer: str, seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(12):
            t = m.trades.pay(m.new_trade(amount=rng.randint(1, 5_000), buyer=buyer).id, buyer)
            t = m.trades.ship(t.id, m.seller)
            if rng.random() < 0.3:
                t = m.trades.agree_refund(m.trades.request_refund(t.id, buyer, rng.randint(1, t.amount)).id, m.seller)
            if t.status == "shipped":
                m.trades.confirm(t.id, buyer)
                with lock:
                    completed[0] += 1

    snapshots: list[list[str]] = []

    def auditor() -> None:
        # Every snapshot, taken mid-traffic, must reconcile escrow with the open trades.
        while not stop.is_set():
            snapshots.append(reconcile(m.ledger.db).violations)

    watcher = threading.Thread(target=auditor)
    watcher.start()
    try:
        with ThreadPoolExecutor(len(buyers)) as pool:
            for f in [pool.submit(shopper, b, i) for i, b in enumerate(buyers)]:
                f.result()
    finally:  # a shopper's failure fails the test; it must not leave the auditor running
        stop.set()
        watcher.join()
    assert completed[0] > 0
    assert snapshots and not any(snapshots)
    assert m.platform("escrow") == 0
    assert_books_balance(m)
