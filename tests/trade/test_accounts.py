"""The ledger accounts trades use: one per purpose, of its own kind, owned, and guarded by
the flag that keeps its balance on the side it may be."""

from __future__ import annotations

import pytest

from danbao.errors import InvariantViolation
from danbao.ledger import AccountFlags, Ledger
from danbao.trade import accounts
from tests.trade.helpers import CUR

OVERDRAFT = int(AccountFlags.no_overdraft)
OVERCREDIT = int(AccountFlags.no_overcredit)

# purpose: (kind, flags). Money held for someone may not go below zero; what someone owes
# (a seller's debt, a courier's cash) may not go above what was lent.
PARTY_ACCOUNTS = {
    "wallet": ("wallet", OVERDRAFT),
    "deposit": ("seller_deposit", OVERDRAFT),
    "debt": ("seller_debt", OVERCREDIT),
    "cash": ("courier_cash", OVERCREDIT),
}
PLATFORM_ACCOUNTS = {
    "escrow": ("escrow", OVERDRAFT),
    "fees": ("fees", OVERDRAFT),
    "insurance": ("insurance_pool", OVERDRAFT),
    "bank": ("bank_clearing", 0),
}


@pytest.mark.parametrize(("purpose", "expected"), PARTY_ACCOUNTS.items())
def test_a_partys_account_is_of_its_purposes_kind_owned_by_the_party_and_guarded(purpose: str, expected: tuple[str, int], ledger: Ledger) -> None:
    account_id = accounts.owned("ann", purpose, CUR)
    assert account_id == f"ann.{purpose}.{CUR}"
    made = accounts.definition(account_id)
    assert (made.id, made.currency, made.kind, made.owner, made.flags) == (account_id, CUR, expected[0], "ann", expected[1])
    ledger.create_accounts([made])
    kept = ledger.account(account_id)
    assert kept is not None and (kept.kind, kept.owner, kept.flags) == (expected[0], "ann", expected[1])


@pytest.mark.parametrize(("purpose", "expected"), PLATFORM_ACCOUNTS.items())
def test_a_platform_account_is_of_its_purposes_kind_and_owned_by_the_platform(purpose: str, expected: tuple[str, int]) -> None:
    account_id = accounts.platform(purpose, CUR)
    assert account_id == f"platform.{purpose}.{CUR}"
    made = accounts.definition(account_id)
    assert (made.kind, made.owner, made.flags) == (expected[0], accounts.PLATFORM_OWNER, expected[1])


def test_no_account_is_named_for_a_purpose_trades_do_not_have() -> None:
    with pytest.raises(InvariantViolation):
        accounts.platform("wallet", CUR)  # a party's purpose, not the platform's
    with pytest.raises(InvariantViolation):
        accounts.owned("ann", "escrow", CUR)  # the platform's purpose, not a party's
    for account_id in (f"ann.escrow.{CUR}", f"platform.wallet.{CUR}", f"ann.savings.{CUR}"):
        with pytest.raises(InvariantViolation):
            accounts.definition(account_id)
