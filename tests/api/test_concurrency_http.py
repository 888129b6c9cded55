"""Many clients paying, confirming and refunding through HTTP at once; the audit stays clean."""

from __future__ import annotations

import random
import threading
from concurrent.futures import ThreadPoolExecutor

from danbao.client import ApiError
from tests.api.conftest import Live

CUR = "CNY"
BUYERS = 8
TRADES_EACH = 6


def test_many_clients_at_once_leave_the_books_balanced(live: Live) -> None:
    seller = live.party("seller", "tea")
    buyers = [live.party("buyer", f"b{i}") for i in range(BUYERS)]
    for b in buyers:
        b.top_up(100_000, CUR)
    barrier = threading.Barrier(BUYERS)

    def shop(i: int) -> list[str]:
        rng, me = random.Random(i), buyers[i]
        barrier.wait()
        endings = []
        for _ in range(TRADES_EACH):
            t = me.create_trade(seller_id="tea", model="escrow", amount=rng.randint(1, 5_000), currency=CUR)
            me.pay(t.id)
            if rng.random() < 0.3:
                endings.append(me.act(t.id, "refund").status)
                continue
            seller.ship(t.id)
            if rng.random() < 0.3:
                me.request_refund(t.id, t.amount)
                endings.append(seller.act(t.id, "agree-refund").status)
            else:
                endings.append(me.confirm(t.id).status)
        return endings

    with ThreadPoolExecutor(BUYERS) as pool:
        endings = [e for found in pool.map(shop, range(BUYERS)) for e in found]
    assert len(endings) == BUYERS * TRADES_EACH and set(endings) <= {"completed", "refunded"}
    report = live.admin.audit()
    assert report.ok, report.violations
    assert report.escrow_by_currency == {CUR: 0}


def test_the_same_payment_sent_by_eight_clients_at_once_charges_once(live: Live) -> None:
    live.party("seller", "tea")
    ann = live.party("buyer", "ann")
    ann.top_up(1_000, CUR)
    key = live.admin.issue_key("ann").key
    t = ann.create_trade(seller_id="tea", model="escrow", amount=700, currency=CUR)
    barrier = threading.Barrier(8)

    def pay(_: int) -> int:
        client = live.client(key)
        barrier.wait()
        try:
            client.pay(t.id)
            return 200
        except ApiError as error:
            return error.status

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(pay, range(8)))
    assert sorted(statuses) == [200] + [409] * 7
    assert {a.id: a.balance for a in ann.accounts()}["ann.wallet.CNY"] == 300
    assert live.admin.audit().ok
