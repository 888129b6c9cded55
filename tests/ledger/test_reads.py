"""Reads: history in time order, paged; balances as they were at a past moment."""

import pytest

from danbao.errors import DanbaoError
from danbao.ledger import NewTransfer, TransferFlags
from tests.ledger.helpers import fund, open_accounts


def test_history_pages_in_time_order_without_gaps_or_repeats(ledger):
    open_accounts(ledger, "alice", "bob")
    fund(ledger, "alice", 1000)
    for i in range(25):
        ledger.create_transfers([NewTransfer(f"t{i:02}", "alice", "bob", 1, "USD")])
        ledger.create_transfers([NewTransfer(f"r{i:02}", "bob", "alice", 1, "USD")])
    seen, cursor = [], None
    while True:
        page = ledger.transfers_of("alice", after=cursor, limit=7)
        seen.extend(page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
        assert len(page.items) == 7
    assert len(seen) == 51
    assert len({t.id for t in seen}) == 51
    assert [t.timestamp for t in seen] == sorted(t.timestamp for t in seen)


def test_balance_at_a_past_moment(ledger, clock):
    open_accounts(ledger, "alice", "bob")
    fund(ledger, "alice", 1000)
    clock.advance(10)
    [hold] = ledger.create_transfers([NewTransfer("h", "alice", "bob", 300, "USD", flags=int(TransferFlags.pending))])
    clock.advance(10)
    [post] = ledger.create_transfers([NewTransfer("p", pending_id="h", flags=int(TransferFlags.post_pending), amount=200)])
    at_hold = ledger.balance_at("alice", hold.timestamp)
    assert (at_hold.debits_pending, at_hold.debits_posted, at_hold.credits_posted) == (300, 0, 1000)
    before_hold = ledger.balance_at("alice", hold.timestamp - 1)
    assert (before_hold.debits_pending, before_hold.balance) == (0, 1000)
    now = ledger.balance_at("alice", post.timestamp)
    assert (now.debits_pending, now.debits_posted, now.balance) == (0, 200, 800)
    bob = ledger.balance_at("bob", post.timestamp)
    assert (bob.credits_pending, bob.credits_posted) == (0, 200)
    a = ledger.account("alice")
    assert (now.debits_pending, now.debits_posted, now.credits_pending, now.credits_posted) == (
        a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted,
    )


@pytest.mark.parametrize(
    "kwargs", [dict(limit=0), dict(limit=1001), dict(after="abc"), dict(after="-1"), dict(after="\u00b2"), dict(after=str(2**63))]
)
def test_page_bounds_and_cursor_validation(ledger, kwargs):
    with pytest.raises(DanbaoError):
        ledger.transfers_of("alice", **kwargs)


def test_balance_at_refuses_impossible_times(ledger):
    with pytest.raises(DanbaoError):
        ledger.balance_at("alice", 10**30)


# A NUL (PostgreSQL's text refuses it) or a lone surrogate (UTF-8 cannot encode it; it is
# how an undecodable command-line byte arrives) cannot be in the store: looking one up
# finds nothing, on both backends alike, instead of failing in the driver.
UNSTORABLE_IDS = ["a\x00b", "\udcff"]


@pytest.mark.parametrize("bad", UNSTORABLE_IDS)
def test_reads_of_ids_no_store_can_hold_find_nothing(ledger, bad):
    open_accounts(ledger, "alice", "bob")
    fund(ledger, "alice", 100)
    assert ledger.account(bad) is None
    assert [a.id for a in ledger.accounts([bad, "alice"])] == ["alice"]
    assert ledger.accounts_of(bad) == []
    assert ledger.transfer(bad) is None
    assert ledger.transfers_of(bad).items == []
    assert ledger.transfers_by_ref(bad) == []
    assert ledger.balance_at(bad, 10**18).balance == 0
    assert ledger.holds(bad).items == []


def test_holds_are_listed_by_a_known_state_only(ledger):
    with pytest.raises(DanbaoError) as e:
        ledger.holds("alice", state="pending\x00")
    assert e.value.code == "state_invalid"


@pytest.mark.parametrize("count", [4, 5])
def test_holds_page_without_gaps_or_repeats_and_the_last_page_says_so(ledger, count):
    open_accounts(ledger, "alice", "bob")
    fund(ledger, "alice", 100)
    pending = int(TransferFlags.pending)
    ledger.create_transfers([NewTransfer(f"h{i}", "alice", "bob", 1, "USD", flags=pending) for i in range(count)])
    seen, after, pages = [], None, 0
    while True:
        page = ledger.holds("alice", after=after, limit=2)
        seen += [h.pending_id for h in page.items]
        pages += 1
        if page.next_cursor is None:
            break
        after = page.next_cursor
    assert seen == [f"h{i}" for i in range(count)]
    assert pages == (count + 1) // 2  # a full last page says there is no more
