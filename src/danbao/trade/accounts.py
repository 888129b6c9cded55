"""Which ledger accounts a trade uses, by name, with the flags that guard each one.

Platform accounts exist once per currency; party accounts once per party and currency.
Ids are `platform.<purpose>.<CUR>` and `<party>.<purpose>.<CUR>` (party ids hold no dots,
so every id reads back unambiguously).
"""

from __future__ import annotations

from danbao.errors import invariant
from danbao.ledger import AccountFlags, AccountKind, NewAccount

_OWNED = {
    # purpose: (kind, flags)
    "wallet": (AccountKind.wallet, AccountFlags.no_overdraft),
    "deposit": (AccountKind.seller_deposit, AccountFlags.no_overdraft),
    # What a seller owes the insurance pool: debits only, so it can never be overpaid.
    "debt": (AccountKind.seller_debt, AccountFlags.no_overcredit),
    # Cash a courier collected and has not remitted: what it owes the platform.
    "cash": (AccountKind.courier_cash, AccountFlags.no_overcredit),
}
_PLATFORM = {
    "escrow": (AccountKind.escrow, AccountFlags.no_overdraft),
    "fees": (AccountKind.fees, AccountFlags.no_overdraft),
    "insurance": (AccountKind.insurance_pool, AccountFlags.no_overdraft),
    # Money in the platform's bank: debited by top-ups, so its balance is the negative of
    # what customers have brought in.
    "bank": (AccountKind.bank_clearing, AccountFlags.none),
}
PLATFORM_OWNER = "platform"


def platform(purpose: str, currency: str) -> str:
    invariant(purpose in _PLATFORM, f"no platform account for {purpose}")
    return f"{PLATFORM_OWNER}.{purpose}.{currency}"


def owned(party_id: str, purpose: str, currency: str) -> str:
    invariant(purpose in _OWNED, f"no party account for {purpose}")
    return f"{party_id}.{purpose}.{currency}"


def definition(account_id: str) -> NewAccount:
    """The `NewAccount` an id names, so any operation can make sure its accounts exist."""
    owner, purpose, currency = account_id.split(".")
    table = _PLATFORM if owner == PLATFORM_OWNER else _OWNED
    invariant(purpose in table, f"{account_id} names no account a trade uses")
    kind, flags = table[purpose]
    return NewAccount(account_id, currency, kind.value, owner, int(flags))
