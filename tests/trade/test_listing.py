"""A party's trades, listed in pages: every trade once, oldest first, whatever role the
party plays, and a page costs the same however many trades the party has."""

from __future__ import annotations

import pytest

from danbao.trade import repository
from tests.trade.helpers import Market


def _all_pages(m: Market, party: str, limit: int) -> list[str]:
    seen: list[str] = []
    after = None
    for _ in range(1_000):  # a bound on the pages, far past what the trades need
        page = m.trades.of_party(party, after=after, limit=limit)
        seen += [t.id for t in page]
        if len(page) < limit:
            return seen
        after = (page[-1].created_at, page[-1].id)
    raise AssertionError("the pages never ended")


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


def _steps(m: Market, party: str, *, pages: int, limit: int) -> int:
    """SQLite's virtual-machine steps to read `pages` pages: the work, without a clock."""
    counted = [0]

    def read(raw):  # type: ignore[no-untyped-def]
        connection = raw._connection.driver_connection
        connection.set_progress_handler(lambda: counted.__setitem__(0, counted[0] + 1) or 0, 100)
        try:
            after = None
            for _ in range(pages):
                page = repository.trades_of(raw, party, after=after, limit=limit)
                after = (page[-1].created_at, page[-1].id)
        finally:
            connection.set_progress_handler(None, 0)

    m.ledger.db.read_raw(read)
    return counted[0]


def test_a_page_reads_about_a_page_of_rows_however_many_trades_the_party_has(market: Market) -> None:
    if not market.ledger.db.in_process:
        pytest.skip("counts SQLite's virtual-machine steps, which PostgreSQL has no counter for")
    for _ in range(20):
        market.new_trade(amount=100, buyer=market.stranger)
    for _ in range(400):
        market.new_trade(amount=100)
    few, many = _steps(market, market.stranger, pages=2, limit=10), _steps(market, market.buyer, pages=2, limit=10)
    # One query with the roles OR-ed read and sorted all 400 trades for every page: 20
    # times the work. Read along each role's index from the cursor, a page is a page.
    assert many < 2 * few, (few, many)
