"""The journal's arithmetic: how one entry moves totals, and how entries chain by hash.

Shared by the engine (which writes), the audit (which re-derives) and historical reads,
so the three can never disagree about what an entry means.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from danbao.ledger.model import RESOLVING_FLAGS, TransferFlags

_PENDING = int(TransferFlags.pending)
_RESOLVING = int(RESOLVING_FLAGS)
_POST = int(TransferFlags.post_pending)


def deltas(flags: int, amount: int, hold_amount: int) -> tuple[int, int]:
    """(pending, posted) change an entry makes to each side's totals."""
    if flags & _PENDING:
        return amount, 0
    if flags & _RESOLVING:
        return -hold_amount, amount if flags & _POST else 0
    return 0, amount


def canonical_metadata(metadata: dict[str, Any] | None) -> str | None:
    if metadata is None:
        return None
    # allow_nan=False: NaN and Infinity are not JSON, and no receiver could parse them back.
    return json.dumps(metadata, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def entry_hash(
    prev_hash: str,
    timestamp: int,
    id: str,
    debit_account_id: str,
    credit_account_id: str,
    amount: int,
    hold_amount: int,
    currency: str,
    code: str,
    ref: str | None,
    metadata: str | None,
    flags: int,
    pending_id: str | None,
    timeout_seconds: int,
) -> str:
    """SHA-256 over the previous hash and every field of the entry, unambiguously framed."""
    fields = (
        prev_hash,
        str(timestamp),
        id,
        debit_account_id,
        credit_account_id,
        str(amount),
        str(hold_amount),
        currency,
        code,
        "" if ref is None else "r" + ref,
        "" if metadata is None else "m" + metadata,
        str(flags),
        "" if pending_id is None else "p" + pending_id,
        str(timeout_seconds),
    )
    # Length-prefix each field so no two different entries can frame to the same bytes.
    framed = "".join(f"{len(f)}:{f}" for f in fields)
    return hashlib.sha256(framed.encode()).hexdigest()
