from __future__ import annotations

import pytest

from tests.trade.helpers import Market, assert_books_balance, open_market


@pytest.fixture
def market(ledger, clock) -> Market:  # type: ignore[no-untyped-def]
    m = open_market(ledger, clock)
    yield m
    assert_books_balance(m)
