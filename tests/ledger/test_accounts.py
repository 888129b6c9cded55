"""Accounts: created idempotently by client-chosen id, validated, never silently changed."""

import pytest

from danbao.ledger import AccountFlags, BatchTooLarge, NewAccount, Result
from danbao.ledger.model import ACCOUNTS_PER_BATCH_MAX


def test_creates_accounts_with_zero_totals(ledger):
    [r] = ledger.create_accounts([NewAccount("alice", "USD", "wallet", owner="u1", flags=1)])
    assert r.result is Result.ok
    a = ledger.account("alice")
    assert (a.currency, a.kind, a.owner, a.flags, a.balance, a.available) == ("USD", "wallet", "u1", 1, 0, 0)
    assert [x.id for x in ledger.accounts_of("u1")] == ["alice"]


def test_flags_may_be_named_by_the_enum_and_are_kept_as_ints(ledger):
    [r] = ledger.create_accounts([NewAccount("alice", "USD", "wallet", flags=AccountFlags.no_overdraft)])
    assert r.result is Result.ok
    flags = ledger.account("alice").flags
    assert (flags, type(flags)) == (int(AccountFlags.no_overdraft), int)
    [again] = ledger.create_accounts([NewAccount("alice", "USD", "wallet", flags=int(AccountFlags.no_overdraft))])
    assert again.result is Result.exists


def test_an_item_that_is_not_a_new_account_is_refused_and_nothing_is_created(ledger):
    for stranger in (("b", "USD", "wallet"), {"id": "b", "currency": "USD", "kind": "wallet"}, None):
        with pytest.raises(TypeError, match=f"NewAccount items only: item 1 is a {type(stranger).__name__}"):
            ledger.create_accounts([NewAccount("a", "USD", "wallet"), stranger])
    assert ledger.account("a") is None and ledger.account("b") is None


def test_same_id_same_fields_is_exists_and_different_fields_is_refused(ledger):
    ledger.create_accounts([NewAccount("a", "USD", "wallet")])
    results = ledger.create_accounts([NewAccount("a", "USD", "wallet"), NewAccount("a", "EUR", "wallet")])
    assert [r.result for r in results] == [Result.exists, Result.exists_with_different_fields]
    assert ledger.account("a").currency == "USD"


def test_duplicate_inside_one_batch(ledger):
    results = ledger.create_accounts([NewAccount("a", "USD", "wallet"), NewAccount("a", "USD", "wallet"), NewAccount("a", "USD", "escrow")])
    assert [r.result for r in results] == [Result.ok, Result.exists, Result.exists_with_different_fields]


@pytest.mark.parametrize(
    ("account", "code"),
    [
        (NewAccount("", "USD", "wallet"), Result.id_invalid),
        (NewAccount("~sys", "USD", "wallet"), Result.id_invalid),
        (NewAccount("x" * 65, "USD", "wallet"), Result.id_invalid),
        (NewAccount("a\n", "USD", "wallet"), Result.id_invalid),
        (NewAccount("a", ["USD"], "wallet"), Result.currency_unknown),
        (NewAccount("a", "USD", ["wallet"]), Result.kind_unknown),
        (NewAccount("a", "USD", "wallet", flags=3), Result.flags_invalid),
        (NewAccount("a", "USD", "wallet", flags=64), Result.flags_invalid),
        (NewAccount("a", "USD", "wallet", flags=True), Result.flags_invalid),
        (NewAccount("a", "USD", "wallet", flags=AccountFlags.no_overdraft | AccountFlags.no_overcredit), Result.flags_invalid),
        (NewAccount("a", "XYZ", "wallet"), Result.currency_unknown),
        (NewAccount("a", "USD", "piggy_bank"), Result.kind_unknown),
        (NewAccount("a", "USD", "wallet", owner="bad owner"), Result.owner_invalid),
    ],
)
def test_invalid_accounts_are_refused_and_nothing_is_created(ledger, account, code):
    [r] = ledger.create_accounts([account])
    assert r.result is code
    assert ledger.account("a") is None


def test_batch_bound(ledger):
    with pytest.raises(BatchTooLarge):
        ledger.create_accounts([NewAccount(f"a{i}", "USD", "wallet") for i in range(ACCOUNTS_PER_BATCH_MAX + 1)])
    assert ledger.account("a0") is None  # nothing of the refused batch
    # The bound itself is a batch.
    results = ledger.create_accounts([NewAccount(f"a{i}", "USD", "wallet") for i in range(ACCOUNTS_PER_BATCH_MAX)])
    assert len(results) == ACCOUNTS_PER_BATCH_MAX and all(r.result is Result.ok for r in results)
