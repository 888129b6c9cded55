"""The audit: re-derive everything the ledger keeps from the journal, and compare.

Checks, in one consistent snapshot: the hash chain from genesis to the head; timestamps
strictly increasing; each resolving entry matches the hold it resolves; every account's
four totals equal the sums of its journal; its history chain (each entry's link to the
account's previous one, its latest entry and count, and its marks with their totals)
matches the journal; every hold row is the one its pending entry opened (accounts, amount,
currency, time, deadline) in the state the journal left it, and no hold expired before its
deadline; every entry moves its accounts' currency, and per currency, debits equal
credits; no `no_overdraft` account is overdrawn (and no `no_overcredit` one
overcredited). Returns a report; it never repairs anything.

One walk of the journal in time order does it all. The hold rows and history marks are
read beside it, each ordered by the entry that made it, and compared as the walk reaches
that entry (a merge join): what the audit holds in memory is every account's derived
totals and the holds open at that point of the walk, not the journal, its holds or its
marks, so a ledger's whole history can be audited in the memory of its present.

The chain shows an edit, but anyone who can write the table can also recompute every hash
after the edit. The report's `head` (how many entries, and the last one's hash), recorded
where the database's writers cannot reach it, is an anchor: an audit given it proves the
journal up to that point is the one that was recorded.
"""

from __future__ import annotations

import math
from collections import defaultdict, namedtuple
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Row, select

from danbao.errors import DanbaoError
from danbao.ledger.journal import deltas, entry_hash, hold_deadline
from danbao.ledger.model import (
    FLAG_EXPIRY,
    FLAG_NO_OVERCREDIT,
    FLAG_NO_OVERDRAFT,
    FLAG_PENDING,
    FLAG_POST,
    FLAG_RESOLVING,
    FLAG_VOID,
    HISTORY_MARK_EVERY,
    TOTAL_MAX,
    Hold,
    HoldState,
)
from danbao.ledger.results import ReadCode
from danbao.store import Database
from danbao.store.schema import GENESIS_HASH
from danbao.store.schema import account_marks as marks_t
from danbao.store.schema import accounts as accounts_t
from danbao.store.schema import holds as holds_t
from danbao.store.schema import ledger_head as head_t
from danbao.store.schema import transfers as transfers_t

STREAM_ROWS_PER_FETCH = 5000
VIOLATIONS_REPORTED_MAX = 100


@dataclass
class CurrencyTotals:
    debits_posted: int = 0
    credits_posted: int = 0
    debits_pending: int = 0
    credits_pending: int = 0


_HEX = frozenset("0123456789abcdef")
# An anchor as text: entries (at most TOTAL_MAX, so 19 digits), a colon, the hash.
ANCHOR_CHARS_MAX = 19 + 1 + len(GENESIS_HASH)


@dataclass(frozen=True, slots=True)
class JournalHead:
    """Where the journal stood: how many entries, and the last one's hash (the genesis
    hash for none). Written `<entries>:<hash>`."""

    entries: int
    hash: str

    def __str__(self) -> str:
        return f"{self.entries}:{self.hash}"

    @classmethod
    def parse(cls, text: str) -> JournalHead:
        """The head `str` wrote, as an anchor to audit against; hex digits in either case."""
        entries, colon, digest = text.partition(":") if len(text) <= ANCHOR_CHARS_MAX else ("", "", "")
        digest = digest.lower()
        if (
            not colon
            or not (entries.isascii() and entries.isdigit() and int(entries) <= TOTAL_MAX)
            or len(digest) != len(GENESIS_HASH)
            or not _HEX.issuperset(digest)
        ):
            raise DanbaoError(
                f"{text[:ANCHOR_CHARS_MAX]!r} is not a journal anchor: <entries>:<64 hex digits>, as the audit prints its head",
                field="anchor",
                code=ReadCode.anchor_invalid,
            )
        return cls(int(entries), digest)


@dataclass
class AuditReport:
    transfers_checked: int = 0
    accounts_checked: int = 0
    currencies: dict[str, CurrencyTotals] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    violations_count: int = 0
    head: JournalHead = JournalHead(0, GENESIS_HASH)  # as replayed; the stored head must agree

    @property
    def ok(self) -> bool:
        return self.violations_count == 0

    def violation(self, message: str) -> None:
        self.violations_count += 1
        if len(self.violations) < VIOLATIONS_REPORTED_MAX:
            self.violations.append(message)


# The walk tells `progress` how far it is every this many entries (and at its end).
PROGRESS_EVERY_ENTRIES = 10_000

# (entries walked, entries the head counts): what a progress bar shows.
Progress = Callable[[int, int], None]


def audit(db: Database, anchor: JournalHead | None = None, *, progress: Progress | None = None) -> AuditReport:
    """The books proved; with `anchor`, also that the journal's first `anchor.entries`
    entries are the ones whose head was recorded; `progress` hears how far the walk is."""
    return db.read(lambda conn: _audit(conn, anchor, progress))


def _audit(conn: Connection, anchor: JournalHead | None, progress: Progress | None) -> AuditReport:
    report = AuditReport()
    head = conn.execute(select(head_t).where(head_t.c.id == 1)).one()
    journal = _Journal()
    codes: dict[str, str] = {}  # one string per currency, not one per account
    for account_id, currency in conn.execution_options(yield_per=STREAM_ROWS_PER_FETCH).execute(select(accounts_t.c.id, accounts_t.c.currency)):
        journal.accounts[account_id] = _no_entries(codes.setdefault(currency, currency))
    told = (lambda walked: progress(walked, head.transfers_count)) if progress is not None else None
    _replay_journal(conn, report, anchor or JournalHead(-1, ""), journal, told)
    _check_head(head, journal, report)
    _check_accounts(conn, journal, report)
    return report


# What a pending entry fixes of its hold: every field but the id (the key) and the state
# (which its resolution changes).
_OPENED_FIELDS = tuple(name for name in Hold.__dataclass_fields__ if name not in ("pending_id", "state"))

# Each hold row with the timestamp of the entry its id names (NULL for none, first), so
# it comes when the walk reaches that entry; an edited row still meets its entry.
_HOLDS_BY_ENTRY = (
    select(holds_t, transfers_t.c.timestamp.label("entry_timestamp"))
    .select_from(holds_t.outerjoin(transfers_t, transfers_t.c.id == holds_t.c.pending_id))
    .order_by(transfers_t.c.timestamp.nulls_first())
)
_MARKS_BY_ENTRY = select(marks_t).order_by(marks_t.c.timestamp)

# The walk's rows as named tuples: a SQLAlchemy row's attribute costs about 200 ns, a named
# tuple's about 13, and an entry is read some forty times (half the walk's time, else).
_Entry = namedtuple("_Entry", [c.name for c in transfers_t.c])  # type: ignore[misc]
_HoldRow = namedtuple("_HoldRow", [c.name for c in _HOLDS_BY_ENTRY.selected_columns])  # type: ignore[misc]
_MarkRow = namedtuple("_MarkRow", [c.name for c in marks_t.c])  # type: ignore[misc]
_AccountRow = namedtuple("_AccountRow", [c.name for c in accounts_t.c])  # type: ignore[misc]


class _Beside:
    """Rows ordered by the journal entry they belong to, taken as the walk reaches each
    entry: one fetch of them in memory at a time, however many there are."""

    __slots__ = ("_rows", "_key", "row", "ahead")

    def __init__(self, rows: Iterable[Any], key: Callable[[Any], int | None]):
        self._rows, self._key = iter(rows), key
        self._advance()

    def _advance(self) -> None:
        self.row = next(self._rows, None)
        # The next row's entry: -1 for none (such rows sort first); past the last, beyond any.
        key = math.inf if self.row is None else self._key(self.row)
        self.ahead: float = -1 if key is None else key

    def through(self, timestamp: float) -> Iterator[Any]:
        """The rows of entries up to `timestamp` (all that are left, for infinity), in
        order: usually none or one."""
        while self.row is not None and self.ahead <= timestamp:
            row = self.row
            self._advance()
            yield row  # type: ignore[misc]


@dataclass
class _Journal:
    """What the journal says, replayed from genesis: the state every check compares with."""

    # account -> [debits_pending, debits_posted, credits_pending, credits_posted, last entry,
    # entries, currency]: every account the table has, with its currency, and any other the
    # journal names (currency None).
    accounts: dict[str, list[Any]] = field(default_factory=lambda: defaultdict(_no_entries))
    # pending id -> the hold its entry opened, and its row's state (None: it has no row),
    # for the holds open where the walk is: a resolution takes its hold out.
    open: dict[str, tuple[Hold, str | None]] = field(default_factory=dict)
    last_hash: str = GENESIS_HASH


def _replay_journal(
    conn: Connection, report: AuditReport, anchor: JournalHead, journal: _Journal, progress: Callable[[int], None] | None
) -> None:
    """Walk the journal once, checking each entry's hash link, amount, hold and currency
    (its accounts'), and the anchor where the walk reaches it, and derive into `journal`
    every account's totals and history chain; check each hold row and history mark when
    the walk reaches the entry that made it. (No anchor is one at -1 entries, which the
    walk never reaches.)"""
    if anchor.entries == 0 and anchor.hash != GENESIS_HASH:
        report.violation(f"anchor {anchor} has no entries but is not the genesis hash")
    streamed = conn.execution_options(yield_per=STREAM_ROWS_PER_FETCH)
    hold_rows = _Beside(map(_HoldRow._make, streamed.execute(_HOLDS_BY_ENTRY)), lambda h: h.entry_timestamp)
    mark_rows = _Beside(map(_MarkRow._make, streamed.execute(_MARKS_BY_ENTRY)), lambda m: m.timestamp)
    # In timestamp order, which is the chain's: the timestamp is the journal's key, so
    # entries come strictly increasing and a reordering shows as a broken link.
    rows = streamed.execute(select(transfers_t).order_by(transfers_t.c.timestamp))
    for t in map(_Entry._make, rows):
        report.transfers_checked += 1
        if progress is not None and report.transfers_checked % PROGRESS_EVERY_ENTRIES == 0:
            progress(report.transfers_checked)
        _check_entry(t, journal, anchor, report)
        if t.flags & FLAG_PENDING:
            opened = Hold(
                t.id, t.debit_account_id, t.credit_account_id, t.amount, t.currency, t.timestamp,
                hold_deadline(t.timestamp, t.timeout_seconds), HoldState.pending.value,
            )
            journal.open[t.id] = (opened, _check_hold_row(hold_rows, opened, report))
        elif t.flags & FLAG_RESOLVING:
            _check_resolution(t, journal.open.pop(t.pending_id, None), report)
        marked = _move_accounts(t, journal, report)
        if marked is not None or mark_rows.ahead <= t.timestamp:
            _check_marks(mark_rows, t.timestamp, marked or {}, report)
    if anchor.entries > report.transfers_checked:
        report.violation(f"the journal has {report.transfers_checked} entries, fewer than the anchor's {anchor.entries}")
    report.head = JournalHead(report.transfers_checked, journal.last_hash)
    if progress is not None and (report.transfers_checked % PROGRESS_EVERY_ENTRIES or not report.transfers_checked):
        progress(report.transfers_checked)  # the end, unless just told
    # What the walk left: rows of entries past the last, and the holds still open.
    _check_marks(mark_rows, math.inf, {}, report)
    for h in hold_rows.through(math.inf):
        report.violation(f"hold {h.pending_id} has no pending entry")
    for pending_id, (_, state) in journal.open.items():
        if state is not None and state != HoldState.pending.value:
            report.violation(f"hold {pending_id} is {state}, journal says {HoldState.pending.value}")


def _check_entry(t: _Entry, journal: _Journal, anchor: JournalHead, report: AuditReport) -> None:
    """An entry's link to the one before it (and the anchor, if it ends there), and its amount."""
    expected = entry_hash(
        journal.last_hash, t.timestamp, t.id, t.debit_account_id, t.credit_account_id, t.amount,
        t.hold_amount, t.currency, t.code, t.ref, t.metadata, t.flags, t.pending_id,
        t.timeout_seconds,
    )
    if expected != t.hash:
        report.violation(f"hash chain broken at transfer {t.id} (timestamp {t.timestamp})")
    journal.last_hash = t.hash
    if report.transfers_checked == anchor.entries and expected != anchor.hash:
        report.violation(f"the journal's first {anchor.entries} entries are not the anchor's: they hash to {expected}, not {anchor.hash}")
    if t.amount <= 0:
        report.violation(f"transfer {t.id} has non-positive amount {t.amount}")


def _move_accounts(t: _Entry, journal: _Journal, report: AuditReport) -> dict[str, list[int | None]] | None:
    """Move both accounts' derived totals and history by an entry, checking its currency
    and each side's link to the account's previous entry. Returns the marks it makes
    (totals by account), if any."""
    pending_delta, posted_delta = deltas(t.flags, t.amount, t.hold_amount)
    marked: dict[str, list[int | None]] | None = None
    for account_id, first, prev in ((t.debit_account_id, 0, t.debit_prev), (t.credit_account_id, 2, t.credit_prev)):
        a = journal.accounts[account_id]
        if a[6] is not None and a[6] != t.currency:
            report.violation(f"transfer {t.id} moves {t.currency} on account {account_id}, which is in {a[6]}")
        a[first] += pending_delta  # type: ignore[operator]
        a[first + 1] += posted_delta  # type: ignore[operator]
        if prev != a[4]:
            report.violation(f"history chain of {account_id} broken at transfer {t.id}")
        a[4] = t.timestamp
        a[5] += 1  # type: ignore[operator]
        if a[5] % HISTORY_MARK_EVERY == 0:  # type: ignore[operator]
            marked = marked or {}
            marked[account_id] = a[:4]
    return marked


def _check_hold_row(hold_rows: _Beside, opened: Hold, report: AuditReport) -> str | None:
    """Compare the row of the hold a pending entry opened with what the entry fixes, and
    name rows met before it that belong to no pending entry. Returns the row's state
    (None: the hold has no row)."""
    state = None
    for h in hold_rows.through(opened.timestamp):
        if h.entry_timestamp != opened.timestamp:  # its id names no entry, or one that opened no hold
            report.violation(f"hold {h.pending_id} has no pending entry")
            continue
        for name in _OPENED_FIELDS:
            kept, entered = getattr(h, name), getattr(opened, name)
            if kept != entered:
                report.violation(f"hold {h.pending_id}'s {name} is {kept}, its pending entry says {entered}")
        state = h.state
    if state is None:
        report.violation(f"transfer {opened.pending_id} opened a hold that has no row")
    return state  # type: ignore[no-any-return]


def _check_resolution(t: _Entry, open_hold: tuple[Hold, str | None] | None, report: AuditReport) -> None:
    """A post, void or expiry against the hold it resolves, and that hold's row's state."""
    if open_hold is None:
        report.violation(f"transfer {t.id} resolves {t.pending_id}, which is not an open hold")
        return
    hold, row_state = open_hold
    if (hold.amount, hold.debit_account_id, hold.credit_account_id, hold.currency) != (
        t.hold_amount, t.debit_account_id, t.credit_account_id, t.currency
    ):
        report.violation(f"transfer {t.id} does not match hold {t.pending_id}")
    elif t.amount > t.hold_amount:
        report.violation(f"transfer {t.id} posts more than its hold")
    elif t.flags & FLAG_EXPIRY and (hold.expires_at is None or t.timestamp < hold.expires_at):
        report.violation(f"transfer {t.id} expires hold {t.pending_id} before its deadline")
    state = _state_of(t.flags)
    if row_state is not None and row_state != state:
        report.violation(f"hold {t.pending_id} is {row_state}, journal says {state}")


def _check_marks(mark_rows: _Beside, timestamp: float, marked: dict[str, list[int | None]], report: AuditReport) -> None:
    """The history marks stored up to the entry at `timestamp` against those the walk
    made there (`marked`, by account): any other mark met is one the journal never made."""
    for m in mark_rows.through(timestamp):
        expected = marked.pop(m.account_id, None) if m.timestamp == timestamp else None
        stored = [m.debits_pending, m.debits_posted, m.credits_pending, m.credits_posted]
        if expected != stored:
            report.violation(f"history mark of {m.account_id} at {m.timestamp} is {stored}, journal says {expected}")
    for account_id in sorted(marked):
        report.violation(f"history mark of {account_id} at {timestamp} is missing")


def _check_head(head: Row[Any], journal: _Journal, report: AuditReport) -> None:
    if head.hash != journal.last_hash or head.transfers_count != report.transfers_checked:
        report.violation("journal head does not match the last entry (rows removed or added)")


def _check_accounts(conn: Connection, journal: _Journal, report: AuditReport) -> None:
    """Each account's totals and history against the journal, its flags against its
    totals, and per currency, debits against credits."""
    derived = journal.accounts  # taken out as met: what is left names no account
    currencies: dict[str, CurrencyTotals] = defaultdict(CurrencyTotals)
    rows = conn.execution_options(yield_per=STREAM_ROWS_PER_FETCH).execute(select(accounts_t).order_by(accounts_t.c.id))
    for a in map(_AccountRow._make, rows):
        report.accounts_checked += 1
        stored = [a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted]
        expected = derived.pop(a.id, _no_entries())
        if stored != expected[:4]:
            report.violation(f"account {a.id} totals {stored} differ from its journal {expected[:4]}")
        if [a.last_entry, a.entries] != expected[4:6]:
            report.violation(f"account {a.id} history ends at {a.last_entry} after {a.entries} entries, journal says {expected[4]} after {expected[5]}")
        if a.flags & FLAG_NO_OVERDRAFT and a.debits_pending + a.debits_posted > a.credits_posted:
            report.violation(f"account {a.id} is overdrawn")
        if a.flags & FLAG_NO_OVERCREDIT and a.credits_pending + a.credits_posted > a.debits_posted:
            report.violation(f"account {a.id} is overcredited")
        c = currencies[a.currency]
        c.debits_pending += a.debits_pending
        c.debits_posted += a.debits_posted
        c.credits_pending += a.credits_pending
        c.credits_posted += a.credits_posted
    for missing in sorted(derived):
        report.violation(f"journal names account {missing}, which does not exist")
    for code, c in sorted(currencies.items()):
        if c.debits_posted != c.credits_posted or c.debits_pending != c.credits_pending:
            report.violation(f"{code}: debits do not equal credits ({c})")
    report.currencies = dict(currencies)


def _no_entries(currency: str | None = None) -> list[Any]:
    """An account as no entry has moved it (of a currency unknown, for one the table lacks)."""
    return [0, 0, 0, 0, None, 0, currency]


def _state_of(flags: int) -> str:
    if flags & FLAG_POST:
        return HoldState.posted.value
    if flags & FLAG_VOID:
        return HoldState.voided.value
    return HoldState.expired.value
