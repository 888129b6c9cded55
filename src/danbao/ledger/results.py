"""Result codes: one closed, ordered enum for every account and transfer the ledger sees,
and one for the reads it refuses.

The order of `Result` is the order of the guards in `engine.py`: the first failing guard
names the result. `transient` says whether submitting the same thing again could ever
succeed. `ReadCode` names what is wrong with a read's arguments; the layers above page
and read with the same rules, so they give the same codes.
"""

from __future__ import annotations

from enum import Enum


class Result(str, Enum):
    ok = "ok"
    linked_event_failed = "linked_event_failed"
    linked_event_chain_open = "linked_event_chain_open"
    id_invalid = "id_invalid"
    flags_invalid = "flags_invalid"
    pending_id_required = "pending_id_required"
    pending_id_must_be_empty = "pending_id_must_be_empty"
    pending_id_invalid = "pending_id_invalid"
    timeout_invalid = "timeout_invalid"
    code_invalid = "code_invalid"
    ref_invalid = "ref_invalid"
    metadata_invalid = "metadata_invalid"
    amount_invalid = "amount_invalid"
    account_id_invalid = "account_id_invalid"
    accounts_must_differ = "accounts_must_differ"
    currency_unknown = "currency_unknown"
    kind_unknown = "kind_unknown"
    owner_invalid = "owner_invalid"
    exists = "exists"
    exists_with_different_fields = "exists_with_different_fields"
    debit_account_not_found = "debit_account_not_found"
    credit_account_not_found = "credit_account_not_found"
    currency_mismatch = "currency_mismatch"
    pending_not_found = "pending_not_found"
    pending_not_pending = "pending_not_pending"
    pending_mismatch = "pending_mismatch"
    pending_already_posted = "pending_already_posted"
    pending_already_voided = "pending_already_voided"
    pending_expired = "pending_expired"
    amount_exceeds_pending = "amount_exceeds_pending"
    overflow = "overflow"
    insufficient_funds = "insufficient_funds"
    exceeds_debits = "exceeds_debits"

    @property
    def succeeded(self) -> bool:
        """The thing now exists as asked (created now, or already)."""
        return self in (Result.ok, Result.exists)

    @property
    def transient(self) -> bool:
        """Could the very same request succeed later, once other state changes?"""
        return self in _TRANSIENT


_TRANSIENT = frozenset(
    {
        Result.linked_event_failed,
        Result.debit_account_not_found,
        Result.credit_account_not_found,
        Result.pending_not_found,
        Result.overflow,
        Result.insufficient_funds,
        Result.exceeds_debits,
    }
)


class ReadCode(str, Enum):
    limit_invalid = "limit_invalid"  # a page's size is not 1 to its bound
    cursor_invalid = "cursor_invalid"  # `after` is not a cursor this server gave out
    timestamp_invalid = "timestamp_invalid"  # a moment that is not nanoseconds since the epoch
    state_invalid = "state_invalid"  # a hold state that does not exist
    anchor_invalid = "anchor_invalid"  # a journal anchor that is not <entries>:<64 hex digits>
