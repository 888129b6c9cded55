"""The ledger's nouns: accounts, transfers, holds, flags, kinds and the bounds on them."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from enum import Enum, IntFlag
from typing import Any, NamedTuple

from danbao.errors import DanbaoError
from danbao.store.raw import PAGE_ROWS_MAX
from danbao.store.schema import BIGINT_MAX

# Bounds (TigerBeetle style: everything has a named limit).
TRANSFERS_PER_BATCH_MAX = 8190
ACCOUNTS_PER_BATCH_MAX = 8190
TIMEOUT_SECONDS_MAX = 10 * 365 * 24 * 3600
METADATA_BYTES_MAX = 1024
PAGE_LIMIT_MAX = PAGE_ROWS_MAX
# Every this-many-th entry of an account is marked with its totals (account_marks), so a
# history read walks at most this many entries of the account's chain before a page.
HISTORY_MARK_EVERY = 64
# Totals are BIGINT columns; refuse anything that would push one past what they hold.
TOTAL_MAX = BIGINT_MAX

# \Z, not $: `$` also matches before a trailing newline, which would let "id\n" in.
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}\Z")
CODE_PATTERN = re.compile(r"^[a-z][a-z0-9_.]{0,63}\Z")


class AccountFlags(IntFlag):
    none = 0
    no_overdraft = 1  # debits may not exceed credits
    no_overcredit = 2  # credits may not exceed debits


class TransferFlags(IntFlag):
    none = 0
    linked = 1
    pending = 2
    post_pending = 4
    void_pending = 8
    balancing = 16
    # Set only by the ledger on the journal row that voids an expired hold.
    expiry = 32


CLIENT_TRANSFER_FLAGS = (
    TransferFlags.linked
    | TransferFlags.pending
    | TransferFlags.post_pending
    | TransferFlags.void_pending
    | TransferFlags.balancing
)
RESOLVING_FLAGS = TransferFlags.post_pending | TransferFlags.void_pending | TransferFlags.expiry

# Each flag as a plain int, for the code that tests flags per entry (the engine, the
# journal's arithmetic, the audit): an IntFlag's `&` goes through the enum's machinery,
# about 1.3 us, a plain int's takes a few ns.
FLAG_LINKED = int(TransferFlags.linked)
FLAG_PENDING = int(TransferFlags.pending)
FLAG_POST = int(TransferFlags.post_pending)
FLAG_VOID = int(TransferFlags.void_pending)
FLAG_BALANCING = int(TransferFlags.balancing)
FLAG_EXPIRY = int(TransferFlags.expiry)
FLAG_RESOLVING = int(RESOLVING_FLAGS)
FLAG_NO_OVERDRAFT = int(AccountFlags.no_overdraft)
FLAG_NO_OVERCREDIT = int(AccountFlags.no_overcredit)


class AccountKind(str, Enum):
    wallet = "wallet"
    merchant = "merchant"
    escrow = "escrow"
    fees = "fees"
    insurance_pool = "insurance_pool"
    seller_deposit = "seller_deposit"
    seller_debt = "seller_debt"
    bank_clearing = "bank_clearing"
    courier_cash = "courier_cash"
    credit_receivable = "credit_receivable"
    savings = "savings"
    interest_expense = "interest_expense"
    promotions = "promotions"
    red_envelope = "red_envelope"
    system = "system"


class HoldState(str, Enum):
    pending = "pending"
    posted = "posted"
    voided = "voided"
    expired = "expired"


@dataclass(frozen=True, slots=True)
class NewAccount:
    id: str
    currency: str
    kind: str
    owner: str | None = None
    flags: int = 0


@dataclass(frozen=True, slots=True)
class Account:
    id: str
    currency: str
    kind: str
    owner: str | None
    flags: int
    debits_pending: int
    debits_posted: int
    credits_pending: int
    credits_posted: int
    timestamp: int

    @property
    def balance(self) -> int:
        """Posted credits minus posted debits: what a wallet holder thinks of as balance."""
        return self.credits_posted - self.debits_posted

    @property
    def available(self) -> int:
        """What a debit may still take: posted balance less outgoing holds."""
        return self.credits_posted - self.debits_posted - self.debits_pending


class NewTransfer(NamedTuple):
    """A transfer as a client asks for it.

    For `post_pending`/`void_pending`, accounts and currency may be left out (they come
    from the hold); `amount=None` posts or voids the whole hold.

    A named tuple, like `TransferResult`: clients build one per transfer, and a frozen
    dataclass of eleven fields costs about 1.9 us to construct against 0.6. Being a
    tuple, one transfer is itself a sequence: the ledger refuses it where a batch goes.
    """

    id: str
    debit_account_id: str | None = None
    credit_account_id: str | None = None
    amount: int | None = None
    currency: str | None = None
    code: str = "transfer"
    ref: str | None = None
    metadata: dict[str, Any] | None = None
    flags: int = 0
    pending_id: str | None = None
    timeout_seconds: int = 0


@dataclass(frozen=True, slots=True)
class Transfer:
    """A journal entry, as committed."""

    id: str
    timestamp: int
    debit_account_id: str
    credit_account_id: str
    amount: int
    hold_amount: int
    currency: str
    code: str
    ref: str | None
    metadata: str | None  # canonical JSON, exactly as hashed
    flags: int
    pending_id: str | None
    timeout_seconds: int
    hash: str


@dataclass(frozen=True, slots=True)
class Hold:
    pending_id: str
    debit_account_id: str
    credit_account_id: str
    amount: int
    currency: str
    timestamp: int
    expires_at: int | None
    state: str


@dataclass(frozen=True, slots=True)
class Balance:
    debits_pending: int
    debits_posted: int
    credits_pending: int
    credits_posted: int

    @property
    def balance(self) -> int:
        return self.credits_posted - self.debits_posted


class TransferResult(NamedTuple):
    """One transfer's outcome. A named tuple, not a frozen dataclass: the engine makes one
    per transfer, and a frozen dataclass costs about 0.9 us to construct against 0.2."""

    id: str
    result: Any  # Result; typed loosely to keep this module free of the enum import cycle
    timestamp: int | None = None
    amount: int | None = None

    @property
    def ok(self) -> bool:
        return bool(self.result.succeeded)


@dataclass(frozen=True, slots=True)
class AccountResult:
    id: str
    result: Any


@dataclass(frozen=True, slots=True)
class Page:
    items: list[Any]
    next_cursor: str | None


class BatchTooLarge(DanbaoError):
    code = "batch_too_large"


def checked_batch(transfers: Sequence[NewTransfer]) -> Sequence[NewTransfer]:
    """A batch within the bound, of `NewTransfer`s only, its `TransferFlags` members given
    as plain ints.

    The engine takes flags by exact type (so `True` is no flag), which would refuse the
    ledger's own enum; callers may name flags either way."""
    if isinstance(transfers, NewTransfer):  # a named tuple: its fields are no batch
        raise TypeError("a batch is a sequence of NewTransfer, not one NewTransfer")
    if len(transfers) > TRANSFERS_PER_BATCH_MAX:
        raise BatchTooLarge(f"at most {TRANSFERS_PER_BATCH_MAX} transfers per batch")
    return _with_int_flags(transfers, NewTransfer, TransferFlags, _transfer_with_flags)


def plain_account_flags(new: Sequence[NewAccount]) -> Sequence[NewAccount]:
    """New accounts with their `AccountFlags` members given as plain ints (see `checked_batch`)."""
    return _with_int_flags(new, NewAccount, AccountFlags, _account_with_flags)


def _transfer_with_flags(t: NewTransfer, flags: int) -> NewTransfer:
    return t._replace(flags=flags)


def _account_with_flags(a: NewAccount, flags: int) -> NewAccount:
    return replace(a, flags=flags)


def _with_int_flags(items: Sequence[Any], kind: type, enum: type[IntFlag], rebuild: Callable[[Any, int], Any]) -> Sequence[Any]:
    """`items` as they are when every one's flags are a plain int, else with each `enum`
    member rebuilt as its int; other flags are left for the checks to refuse.

    Every item must be a `kind`. Anything else is the caller's bug, refused here, before
    the batch joins a group: the engine would raise on it mid-plan, and a group that
    raises is committed again one submission at a time."""
    plain = True
    for item in items:  # a loop, not all(): no generator to set up for each single transfer
        if type(item) is not kind:
            raise TypeError(_not_all(items, kind))
        if type(item.flags) is not int:
            plain = False
    if plain:
        return items
    return [rebuild(item, int(item.flags)) if isinstance(item.flags, enum) else item for item in items]


def _not_all(items: Sequence[Any], kind: type) -> str:
    position, item = next((i, item) for i, item in enumerate(items) if type(item) is not kind)
    return f"a batch holds {kind.__name__} items only: item {position} is a {type(item).__name__}"
