"""The schema, as SQLAlchemy Core tables: the one description the code queries against.

Migrations under `migrations/versions` create exactly these tables; a test checks that
the migrated database and this metadata agree. Money columns are BIGINT minor units and
CHECK constraints back the ledger's own guards, so even a bug cannot store a negative
total or an overdrawn `no_overdraft` account.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

TOTALS_COLUMNS = ("debits_pending", "debits_posted", "credits_pending", "credits_posted")


def _four_totals() -> list[Column[int]]:
    """An account's running totals, in minor units (accounts, and its history marks)."""
    return [Column(name, BigInteger, nullable=False) for name in TOTALS_COLUMNS]


def _where(condition: Any) -> dict[str, Any]:
    """A partial index's predicate, on both backends."""
    return {"sqlite_where": condition, "postgresql_where": condition}


# The largest value a BIGINT column holds (amounts, totals, nanosecond timestamps).
BIGINT_MAX = 2**63 - 1


def is_bigint_text(text: str) -> bool:
    """ASCII digits naming a non-negative value a BIGINT column holds (cursors, ids)."""
    # isascii first: str.isdigit also accepts digits int() refuses, such as '²'.
    return 0 < len(text) <= 19 and text.isascii() and text.isdigit() and int(text) <= BIGINT_MAX


ID_LENGTH_MAX = 64
JOURNAL_ID_LENGTH_MAX = 72

accounts = Table(
    "accounts",
    metadata,
    Column("id", String(ID_LENGTH_MAX), primary_key=True),
    Column("currency", String(3), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("owner", String(ID_LENGTH_MAX), nullable=True),
    Column("flags", Integer, nullable=False),
    *_four_totals(),
    Column("timestamp", BigInteger, nullable=False),
    # The account's history is a chain through the journal (see `transfers`): its latest
    # entry, and how many it has (every HISTORY_MARK_EVERY-th is marked in account_marks).
    Column("last_entry", BigInteger, nullable=True),
    Column("entries", BigInteger, nullable=False, server_default="0"),
    CheckConstraint(
        "debits_pending >= 0 AND debits_posted >= 0 AND credits_pending >= 0 AND credits_posted >= 0",
        name="ck_accounts_totals_non_negative",
    ),
    # flag 1 = no_overdraft, 2 = no_overcredit (danbao.ledger.model.AccountFlags)
    CheckConstraint(
        "(flags & 1) = 0 OR debits_pending + debits_posted <= credits_posted",
        name="ck_accounts_no_overdraft",
    ),
    CheckConstraint(
        "(flags & 2) = 0 OR credits_pending + credits_posted <= debits_posted",
        name="ck_accounts_no_overcredit",
    ),
)
Index("ix_accounts_owner", accounts.c.owner)

# The journal: append-only, one row per transfer, hash-chained in timestamp order.
transfers = Table(
    "transfers",
    metadata,
    # Client ids are at most 64 characters; the ledger's own expiry entries add a prefix.
    Column("id", String(JOURNAL_ID_LENGTH_MAX), nullable=False, unique=True),
    # Keyed by time: on SQLite an INTEGER key is the rowid, so the table is the time index
    # and entries append at its right edge instead of going into a third B-tree.
    Column("timestamp", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False),
    Column("debit_account_id", String(ID_LENGTH_MAX), nullable=False),
    Column("credit_account_id", String(ID_LENGTH_MAX), nullable=False),
    Column("amount", BigInteger, nullable=False),
    # For post/void/expiry rows: the amount of the hold they resolve (0 otherwise).
    Column("hold_amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("code", String(64), nullable=False),
    Column("ref", String(ID_LENGTH_MAX), nullable=True),
    Column("metadata", Text, nullable=True),
    Column("flags", Integer, nullable=False),
    Column("pending_id", String(ID_LENGTH_MAX), nullable=True),
    Column("timeout_seconds", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
    # Each side's previous entry (its timestamp) for that account: an account's history
    # is a chain from accounts.last_entry back through these. A per-account index would
    # put every transfer on a random index page; the chain writes only pages a batch
    # already writes (the appended row, the account's totals).
    Column("debit_prev", BigInteger, nullable=True),
    Column("credit_prev", BigInteger, nullable=True),
    CheckConstraint("amount >= 0 AND hold_amount >= 0", name="ck_transfers_amounts"),
)
Index("ix_transfers_ref", transfers.c.ref, **_where(transfers.c.ref.isnot(None)))

# Every HISTORY_MARK_EVERY-th entry of an account, with its totals just after: the
# entry points from which history pages are read forwards and past balances found, each
# within a bounded walk of the chain.
account_marks = Table(
    "account_marks",
    metadata,
    Column("account_id", String(ID_LENGTH_MAX), primary_key=True),
    Column("timestamp", BigInteger, primary_key=True),
    *_four_totals(),
)

# Open and resolved holds (pending transfers). Derived state, like account totals: the
# journal alone can rebuild it.
holds = Table(
    "holds",
    metadata,
    Column("pending_id", String(ID_LENGTH_MAX), primary_key=True),
    Column("debit_account_id", String(ID_LENGTH_MAX), nullable=False),
    Column("credit_account_id", String(ID_LENGTH_MAX), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=True),
    Column("state", String(16), nullable=False),
)
Index("ix_holds_due", holds.c.state, holds.c.expires_at)
Index("ix_holds_debit", holds.c.debit_account_id, holds.c.state)

# One row: the head of the journal's hash chain. Every ledger write locks it first, which
# orders all writers (one lock, always taken first, so no deadlock is possible).
ledger_head = Table(
    "ledger_head",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("timestamp", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
    Column("transfers_count", BigInteger, nullable=False),
)

GENESIS_HASH = "0" * 64

# -- trades -------------------------------------------------------------------------------

# Who takes part: one role per party (buyer, seller, courier, arbiter, operator).
parties = Table(
    "parties",
    metadata,
    Column("id", String(ID_LENGTH_MAX), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("name", String(128), nullable=False),
    # Couriers: most cash (minor units, per currency) held before remitting.
    Column("cash_limit", BigInteger, nullable=True),
    Column("late_remittances", Integer, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    CheckConstraint("cash_limit IS NULL OR cash_limit >= 0", name="ck_parties_cash_limit"),
)
# The few arbiters and operators, whose webhooks are sent the arbiters' events.
Index("ix_parties_role", parties.c.role)

# One row per trade: its state machine's current state, amounts and deadlines. Money is
# never here: these are the trade's own figures, each matched by ledger transfers
# (ref = trade id) that the audit can reconcile.
trades = Table(
    "trades",
    metadata,
    Column("id", String(ID_LENGTH_MAX), primary_key=True),
    Column("model", String(16), nullable=False),
    Column("status", String(24), nullable=False),
    Column("buyer_id", String(ID_LENGTH_MAX), nullable=False),
    Column("seller_id", String(ID_LENGTH_MAX), nullable=False),
    Column("courier_id", String(ID_LENGTH_MAX), nullable=True),
    Column("currency", String(3), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("items", Text, nullable=False),
    Column("paid", BigInteger, nullable=False),
    Column("refunded", BigInteger, nullable=False),
    Column("released", BigInteger, nullable=False),
    Column("fee", BigInteger, nullable=False),
    Column("compensated", BigInteger, nullable=False),
    Column("refund_requested", BigInteger, nullable=True),
    Column("collect_method", String(8), nullable=True),
    Column("confirm_extended", Integer, nullable=False),
    Column("remit_late", Integer, nullable=False),
    Column("pay_by", BigInteger, nullable=True),
    Column("ship_by", BigInteger, nullable=True),
    Column("confirm_by", BigInteger, nullable=True),
    Column("confirm_left_ns", BigInteger, nullable=True),
    Column("respond_by", BigInteger, nullable=True),
    Column("claim_by", BigInteger, nullable=True),
    Column("remit_by", BigInteger, nullable=True),
    # The worker's next job on this trade: what to do, and when.
    Column("due_at", BigInteger, nullable=True),
    Column("due_action", String(24), nullable=True),
    Column("version", Integer, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    CheckConstraint("amount > 0", name="ck_trades_amount_positive"),
    CheckConstraint(
        "paid >= 0 AND refunded >= 0 AND released >= 0 AND fee >= 0 AND compensated >= 0",
        name="ck_trades_figures_non_negative",
    ),
    CheckConstraint("refunded + released <= paid", name="ck_trades_never_pay_out_more_than_paid"),
)
# Partial indexes where a query only ever asks for some rows: a trade step that changes
# status or deadline then rewrites fewer index pages (fewer pages in every commit).
Index("ix_trades_due", trades.c.due_at, **_where(trades.c.due_at.isnot(None)))
Index("ix_trades_buyer", trades.c.buyer_id, trades.c.created_at, trades.c.id)
Index("ix_trades_seller", trades.c.seller_id, trades.c.created_at, trades.c.id)
Index("ix_trades_seller_direct", trades.c.seller_id, trades.c.status, **_where(trades.c.model == "direct"))
Index("ix_trades_courier", trades.c.courier_id, trades.c.status, **_where(trades.c.courier_id.isnot(None)))
Index("ix_trades_courier_created", trades.c.courier_id, trades.c.created_at, trades.c.id, **_where(trades.c.courier_id.isnot(None)))
# The arbiters' queue: trades waiting on an arbiter's decision, whose statuses the trade
# engine's table names (`danbao.trade.machine.AWAITING_ARBITER`; a test keeps the two
# equal). A step between two other statuses leaves this index alone.
AWAITING_ARBITER_STATUSES = ("claimed", "disputed")
Index("ix_trades_awaiting_arbiter", trades.c.created_at, trades.c.id, **_where(trades.c.status.in_(AWAITING_ARBITER_STATUSES)))

# Every transition, in order per trade: who did what, when, from which state to which.
trade_events = Table(
    "trade_events",
    metadata,
    Column("trade_id", String(ID_LENGTH_MAX), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("at", BigInteger, nullable=False),
    Column("actor", String(ID_LENGTH_MAX), nullable=False),
    Column("action", String(24), nullable=False),
    Column("from_status", String(24), nullable=False),
    Column("to_status", String(24), nullable=False),
    Column("amount", BigInteger, nullable=True),
    Column("detail", Text, nullable=True),
    # The outbox flag: 0 until the event has been handed to its subscribers (webhooks).
    Column("dispatched", Integer, nullable=False),
)
# The outbox index holds only what is still to dispatch. (Rejected claims are found
# through the buyer's trades, so events need no index by action.)
Index("ix_trade_events_undispatched", trade_events.c.at, trade_events.c.trade_id, trade_events.c.seq, **_where(trade_events.c.dispatched == 0))

# Each party's feed of the events on its trades, in time order: one row per event and per
# party to the trade (buyer, seller, and the courier once assigned). It is how a party's
# events are paged without reading all of its trades' events for every page.
party_events = Table(
    "party_events",
    metadata,
    Column("party_id", String(ID_LENGTH_MAX), primary_key=True),
    Column("at", BigInteger, primary_key=True),
    Column("trade_id", String(ID_LENGTH_MAX), primary_key=True),
    Column("seq", Integer, primary_key=True),
    # SQLite: the key is the table (one B-tree per row written, not a table and an index).
    sqlite_with_rowid=False,
)

# -- the HTTP API -------------------------------------------------------------------------

# API keys: only a keyed hash of the secret is kept; the secret is shown once.
api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("party_id", String(ID_LENGTH_MAX), nullable=False),
    Column("secret_hash", String(64), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger, nullable=True),
)
Index("ix_api_keys_party", api_keys.c.party_id)

# Idempotency-Key records: the first response, replayed for a retry with the same body.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("party_id", String(ID_LENGTH_MAX), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("state", String(8), nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("response_body", Text, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
)
Index("ix_idempotency_keys_expires", idempotency_keys.c.expires_at)

# Server-side secrets (the API key pepper), made once per database.
server_secrets = Table(
    "server_secrets",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", String(128), nullable=False),
)

webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("party_id", String(ID_LENGTH_MAX), nullable=False),
    Column("url", String(2048), nullable=False),
    Column("secret", String(128), nullable=False),
    Column("event_types", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("disabled_at", BigInteger, nullable=True),
    # After a rotation, deliveries are signed under the replaced secret too until then.
    Column("previous_secret", String(128), nullable=True),
    Column("previous_secret_until", BigInteger, nullable=True),
)
Index("ix_webhook_endpoints_party", webhook_endpoints.c.party_id)

# One row per (endpoint, event): attempts so far, the last status, the next attempt.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("endpoint_id", String(32), nullable=False),
    Column("party_id", String(ID_LENGTH_MAX), nullable=False),
    Column("event_id", String(96), nullable=False),
    Column("event_type", String(48), nullable=False),
    Column("payload", Text, nullable=False),
    Column("state", String(12), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("last_status_code", Integer, nullable=True),
    Column("last_error", String(256), nullable=True),
    Column("next_attempt_at", BigInteger, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)
Index("ix_webhook_deliveries_due", webhook_deliveries.c.state, webhook_deliveries.c.next_attempt_at)
Index("ix_webhook_deliveries_endpoint", webhook_deliveries.c.endpoint_id, webhook_deliveries.c.created_at)
Index("ux_webhook_deliveries_event", webhook_deliveries.c.endpoint_id, webhook_deliveries.c.event_id, unique=True)
