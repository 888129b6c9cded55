"""How the ledger's rows are laid out, read and written: column lists in the models' field
order, the typed row sets batched inserts take, the journal head's lock, and the two
writes every committed plan ends with (the changed accounts' totals, and the head moved
under its lock)."""

from __future__ import annotations

from collections.abc import Callable
from operator import itemgetter

from danbao.ledger.engine import Entry, Totals
from danbao.ledger.model import Account, Hold, Transfer
from danbao.store.raw import Raw, RowsOf
from danbao.store.schema import TOTALS_COLUMNS
from danbao.store.schema import accounts as accounts_t

TRANSFER_FIELDS = tuple(Transfer.__dataclass_fields__)
TRANSFER_COLUMNS = ", ".join(TRANSFER_FIELDS)
HOLD_FIELDS = tuple(Hold.__dataclass_fields__)
HOLD_COLUMNS = ", ".join(HOLD_FIELDS)
# Column types for PostgreSQL's array parameters, in field order.
TRANSFER_TYPES = ("text", "bigint", "text", "text", "bigint", "bigint", "text", "text", "text", "text", "integer", "text", "bigint", "text")
HOLD_TYPES = ("text", "text", "text", "bigint", "text", "bigint", "bigint", "text")
ACCOUNT_FIELDS = tuple(Account.__dataclass_fields__)
ACCOUNT_COLUMNS = ", ".join(ACCOUNT_FIELDS)
# The accounts table also keeps the history chain, which is not part of an Account.
ACCOUNT_SELECT = [accounts_t.c[name] for name in ACCOUNT_FIELDS]
ACCOUNT_TYPES = ("text", "text", "text", "text", "integer", "bigint", "bigint", "bigint", "bigint", "bigint")
# A journal row as written: the engine's `Entry`, a Transfer's fields and then each
# side's previous entry.
TRANSFER_ROW_FIELDS = Entry._fields
TRANSFER_ROWS = RowsOf("transfers", TRANSFER_ROW_FIELDS, (*TRANSFER_TYPES, "bigint", "bigint"))
MARK_ROWS = RowsOf("account_marks", ("account_id", "timestamp", *TOTALS_COLUMNS), ("text", "bigint", "bigint", "bigint", "bigint", "bigint"))
# What the engine needs of an account (`Totals`, in field order).
ENGINE_TOTALS_COLUMNS = ", ".join(("currency", "flags", *TOTALS_COLUMNS, "last_entry", "entries"))
hold_row = itemgetter(*HOLD_FIELDS)
HOLD_ROWS = RowsOf("holds", HOLD_FIELDS, HOLD_TYPES)
ACCOUNT_ROWS = RowsOf("accounts", ACCOUNT_FIELDS, ACCOUNT_TYPES)


def lock_head_later(raw: Raw) -> Callable[[], tuple[int, str]]:
    """Ask for the journal head, locked; read (timestamp, hash) when the answer is called for."""
    # The head lock comes first, always: it orders every ledger writer, on every backend.
    # Pipelined, the reads queued after it run once the lock is held.
    head = raw.rows_later("SELECT timestamp, hash FROM ledger_head WHERE id = 1" + raw.for_update)

    def locked() -> tuple[int, str]:
        [(head_timestamp, head_hash)] = head()
        return head_timestamp, head_hash

    return locked


def write_totals(raw: Raw, accounts: dict[str, Totals]) -> None:
    raw.update_from_rows(
        "UPDATE accounts SET debits_pending = v.column2, debits_posted = v.column3, "
        "credits_pending = v.column4, credits_posted = v.column5, last_entry = v.column6, entries = v.column7 "
        "FROM {rows} WHERE accounts.id = v.column1",
        ("text", "bigint", "bigint", "bigint", "bigint", "bigint", "bigint"),
        [
            (k, t.debits_pending, t.debits_posted, t.credits_pending, t.credits_posted, t.last_entry, t.entries)
            for k, t in sorted(accounts.items())
        ],
        why="every changed account is updated exactly once",
    )


def move_head(raw: Raw, expected_hash: str, head: tuple[int, str], entries: int) -> None:
    raw.expect(
        "UPDATE ledger_head SET timestamp = ?, hash = ?, transfers_count = transfers_count + ? WHERE id = 1 AND hash = ?",
        (head[0], head[1], entries, expected_hash),
        1,
        "the journal head moved under a held lock",
    )
