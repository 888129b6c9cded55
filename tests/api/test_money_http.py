"""Money outside trades over real HTTP: an account's balance at a past moment."""

from __future__ import annotations

import pytest

from danbao.client import ApiError
from danbao.clock import NS_PER_SECOND
from danbao.ledger import NewTransfer, Result, TransferFlags
from tests.api.conftest import Live

CUR = "CNY"


def test_a_balance_at_a_past_moment_counts_the_entries_up_to_it(live: Live) -> None:
    ann = live.party("buyer", "ann")
    live.party("buyer", "bob")
    before = live.clock.now_ns()
    live.clock.advance(1)
    ann.top_up(10_00, CUR)
    after_top_up = live.clock.now_ns() + NS_PER_SECOND // 2
    live.clock.advance(1)
    ann.transfer("bob", 3_00, CUR)
    live.clock.advance(1)
    wallet = "ann.wallet.CNY"
    assert ann.balance_at(wallet, before).balance == 0
    then = ann.balance_at(wallet, after_top_up)
    assert (then.balance, then.credits_posted, then.debits_posted, then.currency, then.at) == (10_00, 10_00, 0, CUR, after_top_up)
    now = ann.balance_at(wallet, live.clock.now_ns())
    assert (now.balance, now.debits_posted) == (7_00, 3_00)
    [account] = [a for a in ann.accounts() if a.id == wallet]
    assert account.balance == now.balance


@pytest.mark.parametrize("query", [{"at": -1}, {"at": 2**63}, {"at": "yesterday"}, {}])
def test_a_past_balance_needs_a_moment_in_range(live: Live, query: dict[str, object]) -> None:
    ann = live.party("buyer", "ann")
    ann.top_up(1_00, CUR)
    with pytest.raises(ApiError) as refused:
        ann.request("GET", "/v1/accounts/ann.wallet.CNY/balance", params=query)
    # The ledger's own code for a moment that is not one (danbao.ledger.ReadCode).
    assert (refused.value.status, refused.value.code, refused.value.field) == (400, "timestamp_invalid", "at")


def test_a_past_balance_of_an_unknown_account_is_not_found(live: Live) -> None:
    ann = live.party("buyer", "ann")
    with pytest.raises(ApiError) as refused:
        ann.balance_at("ann.wallet.XYZ", 0)
    assert (refused.value.status, refused.value.code) == (404, "account_not_found")


def test_each_money_move_answers_with_what_it_moved_and_moves_it(live: Live) -> None:
    tea, ann = live.party("seller", "tea"), live.party("buyer", "ann")
    moves = [
        (tea, "/v1/wallet/top-up", {"amount": 900_00}, {"tea.wallet.CNY": 900_00}),
        (tea, "/v1/deposit", {"amount": 500_00}, {"tea.wallet.CNY": 400_00, "tea.deposit.CNY": 500_00}),
        (tea, "/v1/deposit/withdraw", {"amount": 100_00}, {"tea.wallet.CNY": 500_00, "tea.deposit.CNY": 400_00}),
        (tea, "/v1/transfers", {"amount": 50_00, "to_party_id": "ann"}, {"tea.wallet.CNY": 450_00, "ann.wallet.CNY": 50_00}),
        (ann, "/v1/wallet/withdraw", {"amount": 20_00}, {"ann.wallet.CNY": 30_00}),
        (live.admin, "/v1/insurance/fund", {"amount": 70_00}, {"platform.insurance.CNY": 70_00}),
    ]
    for client, path, body, balances in moves:
        answer = client.request("POST", path, json={**body, "currency": CUR})
        assert (answer["amount"], answer["currency"]) == (body["amount"], CUR) and answer["transfer_id"], path
        assert live.services.ledger.transfer(answer["transfer_id"]).amount == body["amount"]  # type: ignore[union-attr]
        for account_id, balance in balances.items():
            assert live.services.ledger.account(account_id).balance == balance, (path, account_id)  # type: ignore[union-attr]
    assert {a.id: a.balance for a in tea.accounts()} == {"tea.wallet.CNY": 450_00, "tea.deposit.CNY": 400_00}  # all its own, no other's


def test_a_past_balance_shows_the_holds_pending_then_on_each_side(live: Live) -> None:
    ann, bob = live.party("buyer", "ann"), live.party("buyer", "bob")
    ann.top_up(10_00, CUR)
    bob.top_up(1_00, CUR)
    hold = NewTransfer("h1", "ann.wallet.CNY", "bob.wallet.CNY", 3_00, CUR, flags=int(TransferFlags.pending))
    assert live.services.ledger.create_transfers([hold])[0].result is Result.ok
    live.clock.advance(1)
    payer, payee = ann.balance_at("ann.wallet.CNY", live.clock.now_ns()), bob.balance_at("bob.wallet.CNY", live.clock.now_ns())
    assert (payer.debits_pending, payer.credits_pending, payer.balance) == (3_00, 0, 10_00)
    assert (payee.debits_pending, payee.credits_pending, payee.balance) == (0, 3_00, 1_00)
    [payer_now] = [a for a in ann.accounts() if a.id == "ann.wallet.CNY"]
    [payee_now] = [a for a in bob.accounts() if a.id == "bob.wallet.CNY"]
    assert (payer_now.debits_pending, payer_now.credits_pending, payer_now.balance, payer_now.available) == (3_00, 0, 10_00, 7_00)
    assert (payee_now.debits_pending, payee_now.credits_pending, payee_now.balance) == (0, 3_00, 1_00)
