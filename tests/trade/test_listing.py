"""A party's trades, listed in pages: every trade once, oldest first, whatever role the
party plays, and a page costs the same however many trades the party has. The same for
the arbiters' queue of trades waiting on a decision."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import pytest

from danbao.trade import TradeError, repository
from tests.steps import counted_steps
from tests.trade.helpers import Market


def _every_page(read_page: Callable[..., list[Any]], limit: int, cursor: Callable[[Any], tuple[Any, ...]]) -> list[Any]:
    """Every row `read_page(after=, limit=)` gives, page after page, each page after
    `cursor(its page's last row)`, until a short page."""
    seen: list[Any] = []
    after = None
    for _ in range(1_000):  # a bound on the pages, far past what any test here needs
        page = read_page(after=after, limit=limit)
        seen += page
        if len(page) < limit:
            return seen
        after = cursor(page[-1])
    raise AssertionError("the pages never ended")


def _created(row: Any) -> tuple[int, str]:
    return (row.created_at, row.id)


def _all_pages(m: Market, party: str, limit: int) -> list[str]:
    return [t.id for t in _every_page(partial(m.trades.of_party, party), limit, _created)]


def test_every_role_pages_through_its_trades_once_oldest_first(market: Market) -> None:
    cod = [market.trades.ship(market.new_trade("cod", amount=100).id, market.seller, courier_id=market.courier).id for _ in range(4)]
    escrow = [market.new_trade(amount=100).id for _ in range(5)]
    by_stranger = [market.new_trade(amount=100, buyer=market.stranger).id for _ in range(3)]
    everyone = [t.id for t in sorted((market.trades.get(i, market.operator) for i in cod + escrow + by_stranger), key=lambda t: (t.created_at, t.id))]  # type: ignore[union-attr]
    for party, expected in (
        (market.buyer, [i for i in everyone if i in cod + escrow]),
        (market.seller, everyone),
        (market.courier, [i for i in everyone if i in cod]),
        (market.stranger, [i for i in everyone if i in by_stranger]),
        (market.arbiter, []),
    ):
        for limit in (1, 2, 5, 100):
            assert _all_pages(market, party, limit) == expected, (party, limit)


def _steps(m: Market, party: str, *, pages: int, limit: int, read_page, cursor) -> int:  # type: ignore[no-untyped-def]
    """SQLite's virtual-machine steps to read `pages` pages with `read_page(raw, party,
    after=, limit=)`, each next page after `cursor(last row)`: the work, without a clock."""

    def read(raw) -> int:  # type: ignore[no-untyped-def]
        with counted_steps(raw._connection.driver_connection) as counted:
            after = None
            for _ in range(pages):
                page = read_page(raw, party, after=after, limit=limit)
                after = cursor(page[-1])
        return counted[0]

    return m.ledger.db.read_raw(read)


def _trade_steps(m: Market, party: str) -> int:
    return _steps(m, party, pages=2, limit=10, read_page=repository.trades_of, cursor=lambda t: (t.created_at, t.id))


def _few_against_many(m: Market, steps, add_to_the_buyer) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """`steps` for a party with 20 trades (the stranger) and for the buyer after
    `add_to_the_buyer()`: SQLite only, whose steps are what is counted."""
    if not m.ledger.db.in_process:
        pytest.skip("counts SQLite's virtual-machine steps, which PostgreSQL has no counter for")
    for _ in range(20):
        m.new_trade(amount=100, buyer=m.stranger)
    add_to_the_buyer()
    return steps(m, m.stranger), steps(m, m.buyer)


def test_a_page_reads_about_a_page_of_rows_however_many_trades_the_party_has(market: Market) -> None:
    def four_hundred_trades() -> None:
        for _ in range(400):
            market.new_trade(amount=100)

    few, many = _few_against_many(market, _trade_steps, four_hundred_trades)
    # One query with the roles OR-ed read and sorted all 400 trades for every page: 20
    # times the work. Read along each role's index from the cursor, a page is a page.
    assert many < 2 * few, (few, many)


def _all_events(m: Market, party: str, limit: int) -> list[tuple[str, int]]:
    events = _every_page(partial(m.trades.events_of_party, party), limit, lambda e: (e.at, e.trade_id, e.seq))
    return [(e.trade_id, e.seq) for e in events]


def _events_of(m: Market, trade_ids: list[str]) -> list[tuple[str, int]]:
    events = [e for t in trade_ids for e in m.trades.events(t, m.operator)]
    return [(e.trade_id, e.seq) for e in sorted(events, key=lambda e: (e.at, e.trade_id, e.seq))]


def _a_few_trades_with_history(m: Market) -> dict[str, list[str]]:
    """Trades of every model with events over time; a courier assigned after creation."""
    cod = m.new_trade("cod", amount=100).id
    m.days(1)
    escrow = m.new_trade(amount=100).id
    m.trades.pay(escrow, m.buyer)
    m.days(1)
    m.trades.ship(cod, m.seller, courier_id=m.courier)
    m.trades.ship(escrow, m.seller)
    other = m.new_trade(amount=100, buyer=m.stranger).id
    m.days(1)
    m.trades.confirm(escrow, m.buyer)
    m.trades.collect(cod, m.courier, method="cash")
    return {m.buyer: [cod, escrow], m.seller: [cod, escrow, other], m.courier: [cod], m.stranger: [other], m.arbiter: []}


def test_every_party_pages_through_the_events_on_its_trades_in_time_order(market: Market) -> None:
    parties = _a_few_trades_with_history(market)
    for party, trades in parties.items():
        expected = _events_of(market, trades)
        for limit in (1, 2, 3, 100):
            assert _all_events(market, party, limit) == expected, (party, limit)
    # The courier joined at shipping and sees the trade's whole history, creation included.
    [cod] = parties[market.courier]
    assert _all_events(market, market.courier, 100)[:2] == [(cod, 1), (cod, 2)]


def test_the_feed_is_rebuilt_from_the_events_when_the_schema_is_upgraded(market: Market) -> None:
    from alembic import command

    from danbao.store import upgrade
    from danbao.store.migrate import _config

    trades = _a_few_trades_with_history(market)
    before = {party: _all_events(market, party, 100) for party in trades}
    config = _config()
    with market.ledger.db.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0008")  # no feed
    upgrade(market.ledger.db)
    assert {party: _all_events(market, party, 100) for party in trades} == before


def _event_steps(m: Market, party: str) -> int:
    return _steps(m, party, pages=2, limit=10, read_page=repository.events_of_party, cursor=lambda e: (e.at, e.trade_id, e.seq))


def test_a_page_of_events_reads_about_a_page_of_rows_however_many_the_party_has(market: Market) -> None:
    def three_hundred_paid_trades() -> None:
        for _ in range(300):
            market.trades.pay(market.new_trade(amount=100).id, market.buyer)

    few, many = _few_against_many(market, _event_steps, three_hundred_paid_trades)
    # Joined to the trades and sorted, every page read all 600 of the buyer's events (13
    # and 238 steps); along the feed, a page reads a page.
    assert many < 2 * few, (few, many)


def _queue(m: Market, party: str, limit: int) -> list[str]:
    return [t.id for t in _every_page(partial(m.trades.awaiting_arbiter, party), limit, _created)]


def _disputed(m: Market) -> str:
    t = m.trades.ship(m.trades.pay(m.new_trade(amount=100).id, m.buyer).id, m.seller)
    t = m.trades.refuse_refund(m.trades.request_refund(t.id, m.buyer, 100).id, m.seller)
    return m.trades.dispute(t.id, m.buyer).id


def _claimed(m: Market) -> str:
    t = m.trades.pay(m.new_trade("direct", amount=100).id, m.buyer)
    return m.trades.claim(t.id, m.buyer, reason="non_delivery", evidence="never came").id


def test_arbiters_page_through_the_trades_waiting_on_a_decision_until_it_is_made(market: Market) -> None:
    market.trades.parties.deposit(market.seller, 50_000, "CNY")
    market.trades.parties.fund_insurance(market.operator, 100_000, "CNY")
    market.trades.pay(market.new_trade(amount=100).id, market.buyer)  # in no one's queue
    waiting = [_disputed(market), _claimed(market), _disputed(market), _claimed(market)]
    market.days(1)
    settled_by_seller = _claimed(market)
    in_order = [t.id for t in sorted((market.trades.get(i, market.arbiter) for i in waiting), key=lambda t: (t.created_at, t.id))]
    for party in (market.arbiter, market.operator):
        for limit in (1, 3, 100):
            assert _queue(market, party, limit) == [*in_order, settled_by_seller], (party, limit)
    market.trades.arbitrate(waiting[0], market.arbiter, "refund_full")
    market.trades.uphold_claim(waiting[1], market.arbiter)
    market.trades.settle_claim(settled_by_seller, market.seller)
    assert _queue(market, market.arbiter, 100) == [i for i in in_order if i in waiting[2:]]


def _arbiters_cases(m: Market) -> tuple[list[str], list[str]]:
    """Trades that went to an arbiter (decided, withdrawn, still waiting) and some that did not."""
    m.trades.parties.deposit(m.seller, 50_000, "CNY")
    m.trades.parties.fund_insurance(m.operator, 100_000, "CNY")
    ordinary = [m.trades.pay(m.new_trade(amount=100).id, m.buyer).id, m.new_trade("direct", amount=100).id]
    decided, upheld, withdrawn, waiting = _disputed(m), _claimed(m), _claimed(m), _disputed(m)
    m.days(1)
    m.trades.arbitrate(decided, m.arbiter, "refund_full")
    m.trades.uphold_claim(upheld, m.arbiter)
    m.trades.settle_claim(withdrawn, m.seller)
    return [decided, upheld, withdrawn, waiting], ordinary


def test_arbiters_and_operators_are_sent_the_events_that_fill_and_empty_their_queue(market: Market) -> None:
    arbitrated, ordinary = _arbiters_cases(market)
    queue = {"disputed", "claimed"}
    every = [e for t in arbitrated + ordinary for e in market.trades.events(t, market.operator)]
    expected = [(e.trade_id, e.seq) for e in sorted(every, key=lambda e: (e.at, e.trade_id, e.seq)) if queue & {e.from_status, e.to_status}]
    # Into the queue (two disputes, two claims) and out of it (a decision, an upheld claim, a
    # claim the seller settled); nothing of the trades that never went there.
    assert len(expected) == 4 + 3
    for party in (market.arbiter, market.operator):
        for limit in (1, 2, 100):
            assert _all_events(market, party, limit) == expected, (party, limit)
    # The trades' own parties still see every event on them, and only those.
    assert _all_events(market, market.buyer, 100) == _events_of(market, arbitrated + ordinary)


def test_the_arbiters_feed_is_filled_with_past_events_when_the_schema_is_upgraded(market: Market) -> None:
    from alembic import command

    from danbao.store import upgrade
    from danbao.store.migrate import _config

    _arbiters_cases(market)
    before = _all_events(market, market.arbiter, 100)
    assert before
    config = _config()
    with market.ledger.db.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0010")  # the arbiters had no feed
    assert _all_events(market, market.arbiter, 100) == []
    upgrade(market.ledger.db)
    assert _all_events(market, market.arbiter, 100) == before


def test_only_arbiters_and_operators_see_the_queue(market: Market) -> None:
    _disputed(market)
    for party in (market.buyer, market.seller, market.courier, market.stranger, "nobody"):
        with pytest.raises(TradeError) as e:
            market.trades.awaiting_arbiter(party)
        assert e.value.code == "role_forbidden", party
    with pytest.raises(TradeError) as e:
        market.trades.awaiting_arbiter(market.arbiter, limit=0)
    assert e.value.code == "limit_invalid"


def test_the_queue_is_the_statuses_an_arbiter_decides_and_its_index_holds_only_them() -> None:
    from danbao.store.schema import AWAITING_ARBITER_STATUSES
    from danbao.trade.machine import AWAITING_ARBITER

    assert {s.value for s in AWAITING_ARBITER} == {"disputed", "claimed"} == set(AWAITING_ARBITER_STATUSES)


def test_a_page_of_the_queue_reads_a_page_however_many_trades_are_not_waiting(market: Market) -> None:
    if not market.ledger.db.in_process:
        pytest.skip("counts SQLite's virtual-machine steps, which PostgreSQL has no counter for")
    for _ in range(12):
        _disputed(market)

    def queue_steps() -> int:
        return _steps(market, market.arbiter, pages=1, limit=10, read_page=lambda raw, _, after, limit: repository.trades_awaiting_arbiter(raw, after=after, limit=limit), cursor=lambda t: None)

    few = queue_steps()
    for _ in range(300):
        market.trades.pay(market.new_trade(amount=100).id, market.buyer)
    # Without the partial index, a page scanned every trade for the few that wait.
    assert queue_steps() < 2 * few, (few, queue_steps())
