"""Small builders that keep ledger tests readable."""

from __future__ import annotations

from danbao.ledger import AccountFlags, Ledger, NewAccount, NewTransfer, Result

OVERDRAFT = int(AccountFlags.no_overdraft)


def open_accounts(ledger: Ledger, *ids: str, currency: str = "USD", flags: int = OVERDRAFT, kind: str = "wallet") -> None:
    results = ledger.create_accounts([NewAccount(i, currency, kind, flags=flags) for i in ids])
    assert [r.result for r in results] == [Result.ok] * len(ids)


def fund(ledger: Ledger, account: str, amount: int, *, source: str = "bank", id: str | None = None) -> None:
    if ledger.account(source) is None:
        open_accounts(ledger, source, flags=0, kind="bank_clearing")
    [result] = ledger.create_transfers([NewTransfer(id or f"fund-{account}-{amount}", source, account, amount, "USD")])
    assert result.result is Result.ok


def totals(ledger: Ledger, account: str) -> tuple[int, int, int, int]:
    a = ledger.account(account)
    assert a is not None
    return (a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted)
