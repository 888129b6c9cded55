"""The journal's arithmetic: how one entry moves totals, and how entries chain by hash.

Shared by the engine (which writes), the audit (which re-derives) and historical reads,
so the three can never disagree about what an entry means.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from danbao.clock import NS_PER_SECOND
from danbao.ledger.model import FLAG_PENDING, FLAG_POST, FLAG_RESOLVING


def deltas(flags: int, amount: int, hold_amount: int) -> tuple[int, int]:
    """(pending, posted) change an entry makes to each side's totals."""
    if flags & FLAG_PENDING:
        return amount, 0
    if flags & FLAG_RESOLVING:
        return -hold_amount, amount if flags & FLAG_POST else 0
    return 0, amount


def hold_deadline(timestamp: int, timeout_seconds: int) -> int | None:
    """When a hold opened at `timestamp` expires (None: it waits until resolved)."""
    return timestamp + timeout_seconds * NS_PER_SECOND if timeout_seconds else None


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
    """SHA-256 over the previous hash and every field of the entry, unambiguously framed.

    Fields are joined by the unit separator (0x1f). No field can contain it: ids, codes,
    refs and currencies are validated against patterns without control characters, and
    canonical JSON escapes every control character. Absent optional fields are framed
    differently from empty ones by a one-letter tag.
    """
    text = (
        f"{prev_hash}\x1f{timestamp}\x1f{id}\x1f{debit_account_id}\x1f{credit_account_id}\x1f"
        f"{amount}\x1f{hold_amount}\x1f{currency}\x1f{code}\x1f"
        f"{'' if ref is None else 'r' + ref}\x1f{'' if metadata is None else 'm' + metadata}\x1f"
        f"{flags}\x1f{'' if pending_id is None else 'p' + pending_id}\x1f{timeout_seconds}"
    )
    return hashlib.sha256(text.encode()).hexdigest()
