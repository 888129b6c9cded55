"""Every trade model from start to finish over real HTTP, each party with its own key."""

from __future__ import annotations

import importlib
import json
import threading

import pytest

from danbao.api.background import run_pass
from danbao.api.models import TradeOut
from danbao.client import ApiError
from danbao.trade import share_of
from tests.api.conftest import Live, disputed

CUR = "CNY"


def test_an_escrow_trade_from_order_to_payout(live: Live) -> None:
    buyer, seller = live.party("buyer", "ann"), live.party("seller", "tea")
    buyer.top_up(500_00, CUR)
    t = buyer.create_trade(seller_id="tea", model="escrow", amount=128_00, currency=CUR, items=[{"sku": "longjing", "qty": 1}])
    assert (t.status, t.buyer_id, t.items) == ("created", "ann", [{"sku": "longjing", "qty": 1}])
    assert buyer.pay(t.id).status == "paid"
    assert seller.ship(t.id).status == "shipped"
    done = buyer.confirm(t.id)
    assert done.status == "completed" and done.fee == share_of(128_00, 200)
    wallets = {a.id: a.balance for a in seller.accounts()}
    assert wallets["tea.wallet.CNY"] == 128_00 - done.fee
    assert [e.type for e in buyer.trade_events(t.id)] == ["trade.created", "trade.paid", "trade.shipped", "trade.completed"]
    report = live.admin.audit()
    assert report.ok and report.trades_checked == 1


def test_the_server_runs_one_audit_at_a_time(live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each audit reads the whole journal: a second one asked for while the first runs is
    refused with its own code, and the first still answers."""
    inside, release = threading.Event(), threading.Event()
    operator_routes = importlib.import_module("danbao.api.routes.operator")
    real = operator_routes.audit_ledger

    def held(*args, **kwargs):  # type: ignore[no-untyped-def]
        inside.set()
        assert release.wait(30), "the test never released the first audit"
        return real(*args, **kwargs)

    monkeypatch.setattr(operator_routes, "audit_ledger", held)
    answers: list[object] = []
    first = threading.Thread(target=lambda: answers.append(live.admin.audit()))
    first.start()
    try:
        assert inside.wait(30)
        with pytest.raises(ApiError) as refused:
            live.client(live.admin_key).audit()
        assert (refused.value.status, refused.value.code) == (409, "audit_in_progress")
    finally:
        release.set()
        first.join(30)
    assert len(answers) == 1 and answers[0].ok  # type: ignore[attr-defined]
    monkeypatch.setattr(operator_routes, "audit_ledger", real)
    assert live.admin.audit().ok  # once it has answered, the next one runs


def test_the_operators_audit_names_the_journal_head_and_proves_an_anchor(live: Live) -> None:
    buyer = live.party("buyer", "ann")
    buyer.top_up(500_00, CUR)
    first = live.admin.audit()
    entries, _, digest = first.head.partition(":")
    assert int(entries) == first.transfers_checked > 0 and len(digest) == 64
    buyer.withdraw(100_00, CUR)
    anchored = live.admin.audit(anchor=first.head)
    assert anchored.ok and anchored.head != first.head
    forged = live.admin.audit(anchor=f"{entries}:{'0' * 64}")
    assert not forged.ok and forged.violations == [f"the journal's first {entries} entries are not the anchor's: they hash to {digest}, not {'0' * 64}"]
    for bad in ("12", f"{entries}:{'g' * 64}", "1" * 200):
        with pytest.raises(ApiError) as refused:
            live.admin.audit(anchor=bad)
        assert (refused.value.status, refused.value.code, refused.value.field) == (400, "anchor_invalid", "anchor"), bad
    assert live.admin.audit() == anchored


def test_a_disputed_escrow_trade_decided_by_an_arbiter(live: Live) -> None:
    buyer, seller, arbiter = live.party("buyer", "ann"), live.party("seller", "tea"), live.party("arbiter", "judge")
    buyer.top_up(100_00, CUR)
    t = disputed(buyer, seller, "tea", 60_00, CUR)
    decided = arbiter.act(t.id, "arbitrate", decision="refund_partial", amount=20_00)
    assert (decided.status, decided.refunded, decided.released) == ("completed", 20_00, 40_00)
    assert live.admin.audit().ok


def test_an_arbiter_finds_the_disputes_waiting_on_it_page_by_page(live: Live) -> None:
    buyer, seller, arbiter = live.party("buyer", "ann"), live.party("seller", "tea"), live.party("arbiter", "judge")
    buyer.top_up(100_00, CUR)
    assert arbiter.disputes() == ([], None)
    waiting = []
    for _ in range(3):
        waiting.append(disputed(buyer, seller, "tea", 10_00, CUR))
        live.clock.advance(1)
    first, after = arbiter.disputes(limit=2)
    rest, end = arbiter.disputes(after=after, limit=2)
    assert [t.id for t in first + rest] == [t.id for t in waiting] and end is None
    assert first[0] == waiting[0]  # the trade as it stands: what the arbiter decides on
    arbiter.act(waiting[0].id, "arbitrate", decision="release")
    assert [t.id for t in arbiter.disputes()[0]] == [t.id for t in waiting[1:]]


def test_a_direct_trade_with_an_upheld_claim(live: Live) -> None:
    buyer, seller, arbiter = live.party("buyer", "ann"), live.party("seller", "tea"), live.party("arbiter", "judge")
    live.admin.fund_insurance(1_000_00, CUR)
    seller.top_up(600_00, CUR)
    seller.deposit(500_00, CUR)
    buyer.top_up(400_00, CUR)
    t = buyer.create_trade(seller_id="tea", model="direct", amount=300_00, currency=CUR)
    buyer.pay(t.id)
    buyer.act(t.id, "claim", reason="counterfeit", evidence="the seal is fake")
    upheld = arbiter.act(t.id, "uphold-claim")
    assert upheld.status == "compensated" and upheld.compensated == 600_00
    balances = {a.id: a.balance for a in seller.accounts()}
    assert balances["tea.deposit.CNY"] == 0 and balances["tea.debt.CNY"] == -100_00
    assert live.admin.audit().ok


def test_a_cod_trade_collected_remitted_and_settled(live: Live) -> None:
    buyer, seller, courier = live.party("buyer", "ann"), live.party("seller", "tea"), live.party("courier", "kuai", cash_limit=1_000_00)
    t = buyer.create_trade(seller_id="tea", model="cod", amount=88_00, currency=CUR)
    seller.ship(t.id, courier_id="kuai")
    assert courier.act(t.id, "collect", method="cash").status == "collected"
    assert courier.act(t.id, "remit").status == "remitted"
    assert live.admin.act(t.id, "settle").status == "settled"
    assert live.admin.audit().ok


def _as_engine_holds_it(live: Live, trade_id: str) -> dict[str, object]:
    """The trade as the engine keeps it, in the API's terms (flags as booleans, items as JSON)."""
    t = live.services.trades.get(trade_id, "operator")
    held = {name: getattr(t, name) for name in TradeOut.model_fields}
    return held | {"items": json.loads(t.items), "confirm_extended": bool(t.confirm_extended), "remit_late": bool(t.remit_late)}


def test_every_answer_shows_every_field_of_the_trade_as_the_engine_holds_it(live: Live) -> None:
    buyer, seller, courier = live.party("buyer", "ann"), live.party("seller", "tea"), live.party("courier", "kuai", cash_limit=1_000_00)
    live.admin.fund_insurance(1_000_00, CUR)
    buyer.top_up(500_00, CUR)
    seller.top_up(600_00, CUR)
    seller.deposit(500_00, CUR)
    escrow = buyer.create_trade(seller_id="tea", model="escrow", amount=60_00, currency=CUR, items=[{"sku": "pu-erh", "qty": 2}])
    direct = buyer.create_trade(seller_id="tea", model="direct", amount=30_00, currency=CUR)
    cod = buyer.create_trade(seller_id="tea", model="cod", amount=20_00, currency=CUR)
    steps = [
        lambda: buyer.pay(escrow.id),
        lambda: seller.ship(escrow.id),
        lambda: buyer.act(escrow.id, "extend"),  # confirm_extended
        lambda: buyer.request_refund(escrow.id, 10_00),  # refund_requested, respond_by
        lambda: buyer.pay(direct.id),  # claim_by
        lambda: buyer.act(direct.id, "claim", reason="counterfeit", evidence="the seal is fake"),
        lambda: seller.ship(cod.id, courier_id="kuai"),
        lambda: courier.act(cod.id, "collect", method="cash"),  # collect_method, remit_by
    ]
    for step in steps:
        live.clock.advance(1)  # so that updated_at moves on from created_at
        answer = step()
        assert answer.model_dump() == _as_engine_holds_it(live, answer.id), answer.status
    live.clock.advance(3 * 24 * 3600)  # past the courier's day to remit
    run_pass(live.services)
    late = buyer.trade(cod.id)
    assert late.remit_late and late.model_dump() == _as_engine_holds_it(live, cod.id)
    engine_events = live.services.trades.events(direct.id, "ann", after_seq=0, limit=100)
    shown = buyer.trade_events(direct.id)
    assert [(e.seq, e.at, e.actor, e.action, e.from_status, e.to_status, e.amount, e.detail) for e in shown] == [
        (e.seq, e.at, e.actor, e.action, e.from_status, e.to_status, e.amount, json.loads(e.detail) if e.detail else None) for e in engine_events
    ]
    assert shown[-1].detail == {"reason": "counterfeit", "evidence": "the seal is fake"}


def test_event_pages_end_with_no_cursor_and_the_cursor_moves_on(live: Live) -> None:
    buyer, seller = live.party("buyer", "ann"), live.party("seller", "tea")
    buyer.top_up(100_00, CUR)
    t = buyer.create_trade(seller_id="tea", model="escrow", amount=10_00, currency=CUR)
    buyer.pay(t.id)
    seller.ship(t.id)  # three events: created, paid, shipped
    first = buyer.request("GET", f"/v1/trades/{t.id}/events", params={"limit": 2})
    rest = buyer.request("GET", f"/v1/trades/{t.id}/events", params={"limit": 2, "after": first["next_cursor"]})
    assert [e["type"] for e in first["data"] + rest["data"]] == ["trade.created", "trade.paid", "trade.shipped"]
    assert rest["next_cursor"] is None
    assert buyer.request("GET", f"/v1/trades/{t.id}/events", params={"limit": 3})["next_cursor"] is not None  # a full page may have more
    everything, cursor = buyer.events(limit=10)
    assert len(everything) == 3 and cursor is None
    page, cursor = buyer.events(limit=2)
    more, end = buyer.events(after=cursor, limit=2)
    assert [e.id for e in page + more] == [e.id for e in everything] and end is None
