"""Trade rows in the store: parties, trades and trade events, in SQL both backends run.

Everything here runs inside a transaction someone else opened (`Ledger.transaction` for
writes, `Database.read_raw` for reads); this module owns the SQL text and nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from operator import attrgetter
from typing import Any

from danbao.errors import invariant
from danbao.ledger.transaction import LedgerTransaction
from danbao.store.raw import Raw, RowsOf, created_page
from danbao.text import storable
from danbao.trade.machine import AWAITING_ARBITER, concerns_arbiters
from danbao.trade.model import Party, Status, Trade, TradeEvent

_PARTY_FIELDS = tuple(Party.__dataclass_fields__)
_TRADE_FIELDS = tuple(Trade.__dataclass_fields__)
_EVENT_FIELDS = tuple(TradeEvent.__dataclass_fields__)
_PARTY_COLUMNS = ", ".join(_PARTY_FIELDS)
_TRADE_COLUMNS = ", ".join(_TRADE_FIELDS)
_ROLE_COLUMNS = ("buyer_id", "seller_id", "courier_id")  # a party is in at most one of them
_EVENT_COLUMNS = ", ".join(_EVENT_FIELDS)
_UPDATABLE = frozenset(_TRADE_FIELDS) - {"id", "model", "buyer_id", "seller_id", "currency", "amount", "items", "created_at", "version"}

# Trades a seller still answers for: a direct claim may arrive or is open.
CLAIMABLE = (Status.paid.value, Status.claimed.value)


def insert_party(raw: Raw, party: Party) -> None:
    raw.run(f"INSERT INTO parties ({_PARTY_COLUMNS}) VALUES ({','.join('?' * len(_PARTY_FIELDS))})", [getattr(party, f) for f in _PARTY_FIELDS])


def parties(raw: Raw, ids: Sequence[str]) -> dict[str, Party]:
    rows = raw.select_where_in(f"SELECT {_PARTY_COLUMNS} FROM parties", "id", sorted({i for i in ids if storable(i)}))
    return {row[0]: Party(*row) for row in rows}


def count_late_remittance(raw: Raw, courier_id: str) -> None:
    changed = raw.run("UPDATE parties SET late_remittances = late_remittances + 1 WHERE id = ?", (courier_id,))
    invariant(changed == 1, "a trade's courier exists")


def insert_trade(raw: Raw, trade: Trade) -> None:
    raw.write(f"INSERT INTO trades ({_TRADE_COLUMNS}) VALUES ({','.join('?' * len(_TRADE_FIELDS))})", [getattr(trade, f) for f in _TRADE_FIELDS])


def trade(raw: Raw, trade_id: str) -> Trade | None:
    if not storable(trade_id):
        return None
    rows = raw.rows(f"SELECT {_TRADE_COLUMNS} FROM trades WHERE id = ?", (trade_id,))
    return Trade(*rows[0]) if rows else None


@lru_cache(maxsize=256)
def _update_sql(names: tuple[str, ...]) -> str:
    assignments = ", ".join(f"{name} = ?" for name in names)
    return f"UPDATE trades SET {assignments}, updated_at = ?, version = version + 1 WHERE id = ? AND version = ?"


def update_trade(raw: Raw, before: Trade, changes: Mapping[str, Any], now_ns: int) -> None:
    """Apply `changes` if the trade is still at `before.version`; bump the version."""
    names = tuple(sorted(changes))
    invariant(_UPDATABLE.issuperset(names), f"not updatable: {sorted(set(names) - _UPDATABLE)}")
    # Checked before the commit; pipelined, the update travels with the transaction's other writes.
    raw.expect(_update_sql(names), [*(changes[n] for n in names), now_ns, before.id, before.version], 1, "a trade changed under the head lock")


# Events are append-only and nothing reads them back inside a write transaction, so they
# are written when the transaction flushes, a group's events in one statement.
_EVENT_ROWS = RowsOf(
    "trade_events",
    (*_EVENT_FIELDS, "dispatched"),
    ("text", "integer", "bigint", "text", "text", "text", "text", "bigint", "text", "integer"),
)
_event_row = attrgetter(*_EVENT_FIELDS)


_PARTY_EVENT_ROWS = RowsOf("party_events", ("party_id", "at", "trade_id", "seq"), ("text", "bigint", "text", "integer"))


# The feed every arbiter and operator reads: one row per event that puts a trade in the
# arbiters' queue or takes it out, not one per overseer. No party can have this id (party
# ids are lower-case letters, digits, '_' and '-').
ARBITERS_FEED = "@arbiters"


def insert_event(txn: LedgerTransaction, event: TradeEvent, parties: tuple[str | None, ...]) -> None:
    """Append `event`, and put it in the feed of each of the trade's `parties` (None: a
    courier not yet assigned) and, if it concerns them, in the arbiters' feed."""
    txn.append(_EVENT_ROWS, (*_event_row(event), 0))  # not yet dispatched
    for party_id in parties:
        if party_id is not None:
            txn.append(_PARTY_EVENT_ROWS, (party_id, event.at, event.trade_id, event.seq))
    if concerns_arbiters(event.from_status, event.to_status):
        txn.append(_PARTY_EVENT_ROWS, (ARBITERS_FEED, event.at, event.trade_id, event.seq))


def feed_past_events(raw: Raw, trade_id: str, party_id: str) -> None:
    """Put the trade's events so far in the feed of a party that joins it (a courier)."""
    raw.write("INSERT INTO party_events (party_id, at, trade_id, seq) SELECT ?, at, trade_id, seq FROM trade_events WHERE trade_id = ?", (party_id, trade_id))


def undispatched_events(raw: Raw, *, limit: int) -> list[tuple[TradeEvent, Trade]]:
    """The outbox: events not yet handed to subscribers, oldest first, with their trades."""
    columns = ", ".join(f"e.{f}" for f in _EVENT_FIELDS)
    trade_columns = ", ".join(f"t.{f}" for f in _TRADE_FIELDS)
    rows = raw.rows(
        f"SELECT {columns}, {trade_columns} FROM trade_events e JOIN trades t ON t.id = e.trade_id "
        f"WHERE e.dispatched = 0 ORDER BY e.at, e.trade_id, e.seq LIMIT {int(limit)}"
    )
    width = len(_EVENT_FIELDS)
    return [(TradeEvent(*row[:width]), Trade(*row[width:])) for row in rows]


def mark_dispatched(raw: Raw, events: Sequence[TradeEvent]) -> None:
    raw.update_from_rows(
        "UPDATE trade_events SET dispatched = 1 FROM {rows} "
        "WHERE trade_events.trade_id = v.column1 AND trade_events.seq = v.column2",
        ("text", "integer"),
        [(e.trade_id, e.seq) for e in events],
    )


def events_of_party(raw: Raw, party_id: str, *, after: tuple[int, str, int] | None, limit: int) -> list[TradeEvent]:
    """Events on the party's trades (`ARBITERS_FEED`: the arbiters' events), in time
    order, after a cursor (at, trade_id, seq): read along the feed from the cursor, a page
    of rows a page."""
    if not storable(party_id):
        return []
    at, trade_id, seq = after if after is not None else (-1, "", 0)
    columns = ", ".join(f"e.{f}" for f in _EVENT_FIELDS)
    rows = raw.rows(
        f"SELECT {columns} FROM party_events p JOIN trade_events e ON e.trade_id = p.trade_id AND e.seq = p.seq "
        # (at, trade_id, seq) > the cursor, written so the feed's key can start there.
        "WHERE p.party_id = ? AND p.at >= ? AND (p.at > ? OR p.trade_id > ? OR (p.trade_id = ? AND p.seq > ?)) "
        f"ORDER BY p.at, p.trade_id, p.seq LIMIT {int(limit)}",
        (party_id, at, at, trade_id, trade_id, seq),
    )
    return [TradeEvent(*row) for row in rows]


def events(raw: Raw, trade_id: str, *, after_seq: int, limit: int) -> list[TradeEvent]:
    rows = raw.rows(
        f"SELECT {_EVENT_COLUMNS} FROM trade_events WHERE trade_id = ? AND seq > ? ORDER BY seq LIMIT {int(limit)}",
        (trade_id, after_seq),
    )
    return [TradeEvent(*row) for row in rows]


def claims_rejected(raw: Raw, buyer_id: str, *, limit: int) -> list[TradeEvent]:
    if not storable(buyer_id):
        return []
    columns = ", ".join(f"e.{f}" for f in _EVENT_FIELDS)
    rows = raw.rows(
        f"SELECT {columns} FROM trade_events e JOIN trades t ON t.id = e.trade_id "
        f"WHERE e.action = 'reject_claim' AND t.buyer_id = ? ORDER BY e.at, e.trade_id LIMIT {int(limit)}",
        (buyer_id,),
    )
    return [TradeEvent(*row) for row in rows]


def trades_of(raw: Raw, party_id: str, *, after: tuple[int, str] | None, limit: int) -> list[Trade]:
    """A party's trades (as buyer, seller or courier), oldest first, after a cursor.

    One page per role, each read along that role's index from the cursor, then merged:
    a page reads at most three pages of rows, however many trades the party has. (One
    query with the three roles OR-ed read and sorted all of the party's trades for every
    page.)"""
    if not storable(party_id):
        return []
    selects, params = [], ()  # type: ignore[var-annotated]
    for column in _ROLE_COLUMNS:
        select, branch_params = created_page(f"SELECT {_TRADE_COLUMNS} FROM trades WHERE {column} = ?", (party_id,), after, limit)
        selects.append(f"SELECT * FROM ({select}) AS by_{column}")
        params += branch_params
    rows = raw.rows(f"SELECT * FROM ({' UNION ALL '.join(selects)}) AS mine ORDER BY created_at, id LIMIT {int(limit)}", params)
    return [Trade(*row) for row in rows]


# Written as the partial index's predicate is (schema.AWAITING_ARBITER_STATUSES), so
# SQLite's planner, which matches the terms as written, reads that index.
_AWAITING_ARBITER = f"status IN ({', '.join(repr(s.value) for s in sorted(AWAITING_ARBITER))})"


def trades_awaiting_arbiter(raw: Raw, *, after: tuple[int, str] | None, limit: int) -> list[Trade]:
    """Every trade waiting on an arbiter's decision, oldest first, after a cursor."""
    rows = raw.rows(*created_page(f"SELECT {_TRADE_COLUMNS} FROM trades WHERE {_AWAITING_ARBITER}", (), after, limit))
    return [Trade(*row) for row in rows]


def due_trade_ids(raw: Raw, now_ns: int, *, limit: int) -> list[str]:
    rows = raw.rows(f"SELECT id FROM trades WHERE due_at <= ? ORDER BY due_at, id LIMIT {int(limit)}", (now_ns,))
    return [row[0] for row in rows]


def courier_uncollected(raw: Raw, courier_id: str, currency: str) -> int:
    """Cash a courier is out collecting: shipped cod trades not yet collected."""
    [(total,)] = raw.rows(
        "SELECT COALESCE(SUM(amount), 0) FROM trades WHERE courier_id = ? AND status = ? AND currency = ?",
        (courier_id, Status.shipped.value, currency),
    )
    return int(total)


def seller_answers_for_claims(raw: Raw, seller_id: str, currency: str) -> bool:
    rows = raw.rows(
        "SELECT id FROM trades WHERE seller_id = ? AND model = 'direct' AND currency = ? AND status IN (?, ?) LIMIT 1",
        (seller_id, currency, *CLAIMABLE),
    )
    return bool(rows)
