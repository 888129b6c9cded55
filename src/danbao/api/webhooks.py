"""Webhooks: endpoints a party registers, deliveries fanned out from the trade event outbox,
signed, retried with exponential backoff for a bounded time, and recorded.

Fan-out runs in a ledger transaction (the head lock orders it with the trade steps that
wrote the events), so each event reaches each subscribed endpoint exactly once as a
delivery row; one fan-out writes a bounded number of rows (whole events, in order). An
event goes to the trade's parties and, if it puts the trade before an arbiter or takes it
away, to every arbiter and operator (whose endpoints together are bounded for that
reason). Delivery happens off the request path, in passes: each pass claims a bounded set
of due deliveries (a few per endpoint, so one receiver's backlog cannot fill it) and
attempts them all at once, each under a timeout per network step and a deadline for the
whole attempt. A slow, failing or trickling receiver never slows the API and holds a pass
for one deadline at most. Where a receiver may be is `danbao.api.outbound`'s to check.

Each delivery is signed as `danbao.api.signature` says; event types are named in
`danbao.api.event_types`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import httpx

from danbao.api.event_types import EVENT_TYPES, event_type
from danbao.api.outbound import AddressRefused, Resolve, pin, refusal_at_registration, system_resolve
from danbao.api.problems import ApiCode
from danbao.api.signature import (
    SECRET_OVERLAP_SECONDS_DEFAULT,
    SECRET_OVERLAP_SECONDS_MAX,
    SIGNATURE_HEADER,
    sign,
)
from danbao.clock import NS_PER_SECOND, Clock
from danbao.errors import DanbaoError, invariant
from danbao.store import Database
from danbao.store.raw import Raw, RowsOf, created_page
from danbao.text import storable
from danbao.trade import Trade, TradeEvent, Trades
from danbao.trade import repository as trade_rows
from danbao.trade.machine import OVERSEERS, concerns_arbiters

log = logging.getLogger("danbao.webhooks")

ENDPOINTS_PER_PARTY_MAX = 16
# Arbiters and operators together: each event that concerns arbiters goes to every one of
# their endpoints, so this (with the trade's three parties' endpoints) bounds one event's
# deliveries.
OVERSEER_ENDPOINTS_MAX = 256
EVENTS_PER_DISPATCH_MAX = 500
# One dispatch writes at most this many deliveries: it takes events in order while their
# deliveries fit, and the rest wait for the next dispatch. One event's always fit.
DELIVERIES_PER_DISPATCH_MAX = 5_000
DELIVERIES_PER_EVENT_MAX = 3 * ENDPOINTS_PER_PARTY_MAX + OVERSEER_ENDPOINTS_MAX
invariant(DELIVERIES_PER_EVENT_MAX <= DELIVERIES_PER_DISPATCH_MAX <= 0xFFFFFF, "a dispatch holds any one event's deliveries, numbered in six hex digits")
DELIVERIES_PER_PASS_MAX = 100
# At most this many of one endpoint's deliveries per pass, picked from the earliest due
# ones (DUE_SCANNED_MAX of them): a receiver with a backlog waits its turn with the others.
DELIVERIES_PER_ENDPOINT_PER_PASS_MAX = 4
DUE_SCANNED_MAX = 10 * DELIVERIES_PER_PASS_MAX
ATTEMPTS_MAX = 12
RETRY_BACKOFF_BASE_SECONDS = 5
RETRY_BACKOFF_MAX_SECONDS = 3600
DELIVERY_TIMEOUT_SECONDS = 5.0
ATTEMPT_DEADLINE_SECONDS = 15.0
# A pass claims the deliveries it will attempt for this long (well past an attempt's
# deadline), so another pass, in this process or another, leaves them alone; an attempt
# that died with its process is due again once the claim runs out.
CLAIM_SECONDS = 60
URL_CHARS_MAX = 2048


def event_id(event: TradeEvent) -> str:
    return f"{event.trade_id}.{event.seq}"


def event_payload(event: TradeEvent, trade: Trade) -> dict[str, Any]:
    return {
        "id": event_id(event),
        "type": event_type(event),
        "created_at": event.at,
        "data": {
            "trade_id": trade.id, "model": trade.model, "action": event.action, "actor": event.actor,
            "from_status": event.from_status, "status": event.to_status, "amount": event.amount,
            "currency": trade.currency, "buyer_id": trade.buyer_id, "seller_id": trade.seller_id, "courier_id": trade.courier_id,
        },
    }


class WebhookError(DanbaoError):
    pass


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    """How deliveries reach receivers; the operator's to choose."""

    timeout_seconds: float = DELIVERY_TIMEOUT_SECONDS  # each step: connect, send, each read
    deadline_seconds: float = ATTEMPT_DEADLINE_SECONDS  # the whole attempt, however it trickles
    # Deliver to loopback, private and link-local addresses too: for receivers on the
    # operator's own network, and for tests. Off by default (see danbao.api.outbound).
    private_networks: bool = False

    def __post_init__(self) -> None:
        invariant(0 < self.timeout_seconds <= self.deadline_seconds < CLAIM_SECONDS, "an attempt ends within its claim")


@dataclass(frozen=True, slots=True)
class Endpoint:
    id: str
    party_id: str
    url: str
    secret: str
    event_types: list[str]
    created_at: int
    disabled_at: int | None
    previous_secret_until: int | None = None  # deliveries also signed under the replaced secret until then


@dataclass(frozen=True, slots=True)
class Delivery:
    id: str
    endpoint_id: str
    event_id: str
    event_type: str
    state: str
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: int | None
    created_at: int
    updated_at: int


# Deliveries are written in one statement per dispatched batch.
_DELIVERY_ROWS = RowsOf(
    "webhook_deliveries",
    ("id", "endpoint_id", "party_id", "event_id", "event_type", "payload", "state", "attempts", "last_status_code", "last_error", "next_attempt_at", "created_at", "updated_at"),
    ("text", "text", "text", "text", "text", "text", "text", "integer", "integer", "text", "bigint", "bigint", "bigint"),
)
_DELIVERY_COLUMNS = "id, endpoint_id, event_id, event_type, state, attempts, last_status_code, last_error, next_attempt_at, created_at, updated_at"
_ENDPOINT_COLUMNS = "id, party_id, url, secret, event_types, created_at, disabled_at, previous_secret_until"


def _receiver_url(url: object) -> httpx.URL | None:
    """The URL parsed, if it is an http(s) URL naming a host, and a port TCP has if any
    (httpx parses any number as one); printable, so no NUL, control character or lone
    surrogate, none of which a URL holds."""
    if not isinstance(url, str) or not url.startswith(("http://", "https://")) or len(url) > URL_CHARS_MAX or not url.isprintable():
        return None
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return None
    return parsed if parsed.raw_host and (parsed.port is None or 0 < parsed.port < 65536) else None


def _endpoint(row: tuple[Any, ...]) -> Endpoint:
    return Endpoint(row[0], row[1], row[2], row[3], json.loads(row[4]), row[5], row[6], row[7])


class _Due(NamedTuple):
    id: str
    payload: str
    url: str
    secret: str
    previous_secret: str | None  # still signing, after a rotation
    attempts: int
    next_attempt_at: int


# Due deliveries, earliest first, at most a few per endpoint (see the limits above).
_DUE = (
    "SELECT id, payload, url, secret, previous_secret, attempts, next_attempt_at FROM ("
    "SELECT d.id, d.payload, e.url, e.secret, CASE WHEN e.previous_secret_until > ? THEN e.previous_secret END AS previous_secret, "
    "d.attempts, d.next_attempt_at, "
    "ROW_NUMBER() OVER (PARTITION BY d.endpoint_id ORDER BY d.next_attempt_at, d.id) AS nth "
    "FROM (SELECT id, endpoint_id, payload, attempts, next_attempt_at FROM webhook_deliveries "
    f"WHERE state = 'pending' AND next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT {DUE_SCANNED_MAX}) d "
    "JOIN webhook_endpoints e ON e.id = d.endpoint_id WHERE e.disabled_at IS NULL"
    f") due WHERE nth <= {DELIVERIES_PER_ENDPOINT_PER_PASS_MAX} ORDER BY next_attempt_at, id LIMIT {DELIVERIES_PER_PASS_MAX}"
)


_OVERSEERS_ENDPOINTS = (
    "FROM parties p JOIN webhook_endpoints e ON e.party_id = p.id "
    f"WHERE p.role IN ({', '.join('?' for _ in OVERSEERS)}) AND e.disabled_at IS NULL"
)


def _also(previous_secret: str | None) -> tuple[str, ...]:
    return () if previous_secret is None else (previous_secret,)


def new_secret() -> str:
    return f"whsec_{secrets.token_urlsafe(24)}"


class Webhooks:
    def __init__(self, trades: Trades, clock: Clock, settings: WebhookSettings | None = None, *, resolve: Resolve = system_resolve):
        self.trades = trades
        self.db: Database = trades.ledger.db
        self.clock = clock
        self.settings = settings or WebhookSettings()
        self.resolve = resolve  # how receivers' names become addresses (a test may aim them)

    # -- endpoints --------------------------------------------------------------------

    def register(self, party_id: str, url: str, event_types: list[str]) -> Endpoint:
        target = _receiver_url(url)
        if target is None:
            raise WebhookError("url must be an http(s) URL naming a host (and a valid port, if any)", field="url", code=ApiCode.url_invalid)
        refusal = None if self.settings.private_networks else refusal_at_registration(target)
        if refusal is not None:
            raise WebhookError(f"webhooks go to public addresses only: {refusal}", field="url", code=ApiCode.url_not_public)
        unknown = sorted(set(event_types) - set(EVENT_TYPES) - {"*"})
        if not event_types or unknown:
            raise WebhookError(f"unknown event types: {unknown}" if unknown else "name at least one event type", field="event_types", code=ApiCode.event_types_invalid)
        endpoint = Endpoint(f"we_{secrets.token_hex(8)}", party_id, url, new_secret(), sorted(set(event_types)), self.clock.now_ns(), None)

        def work(raw: Raw) -> None:
            [(count,)] = raw.rows("SELECT COUNT(*) FROM webhook_endpoints WHERE party_id = ? AND disabled_at IS NULL", (party_id,))
            if count >= ENDPOINTS_PER_PARTY_MAX:
                raise WebhookError(f"at most {ENDPOINTS_PER_PARTY_MAX} endpoints per party", code=ApiCode.endpoints_limit)
            party = trade_rows.parties(raw, [party_id]).get(party_id)
            if party is not None and party.role in OVERSEERS and self._overseers_endpoints_count(raw) >= OVERSEER_ENDPOINTS_MAX:
                raise WebhookError(f"at most {OVERSEER_ENDPOINTS_MAX} endpoints for arbiters and operators together", code=ApiCode.endpoints_limit)
            raw.run(
                "INSERT INTO webhook_endpoints (id, party_id, url, secret, event_types, created_at, disabled_at) VALUES (?, ?, ?, ?, ?, ?, NULL)",
                (endpoint.id, party_id, url, endpoint.secret, json.dumps(endpoint.event_types), endpoint.created_at),
            )

        self.trades.ledger.transaction(lambda txn: work(txn.raw))  # a ledger transaction: a keyed request's record joins it
        return endpoint

    def disable(self, party_id: str, endpoint_id: str) -> Endpoint:
        """Stop delivering to an endpoint; its pending deliveries are given up."""
        now = self.clock.now_ns()

        def work(raw: Raw) -> int:
            changed = raw.run(
                "UPDATE webhook_endpoints SET disabled_at = ? WHERE id = ? AND party_id = ? AND disabled_at IS NULL",
                (now, endpoint_id, party_id),
            )
            if changed == 1:  # someone else's endpoint, or one disabled already: nothing more changes
                raw.run("UPDATE webhook_deliveries SET state = 'cancelled', next_attempt_at = NULL, updated_at = ? WHERE endpoint_id = ? AND state = 'pending'", (now, endpoint_id))
            return changed

        return self._change_active(party_id, endpoint_id, work)

    def rotate_secret(self, party_id: str, endpoint_id: str, *, overlap_seconds: int = SECRET_OVERLAP_SECONDS_DEFAULT) -> Endpoint:
        """A new signing secret for an active endpoint, returned once. For `overlap_seconds`
        deliveries are signed under the replaced secret too, so the receiver can take the
        new one without refusing a delivery meanwhile. Only the secret just replaced is
        kept: rotating again within the overlap retires the one before it at once."""
        invariant(0 <= overlap_seconds <= SECRET_OVERLAP_SECONDS_MAX, f"overlap of {overlap_seconds} s")
        now = self.clock.now_ns()
        secret = new_secret()
        until = now + overlap_seconds * NS_PER_SECOND if overlap_seconds else None

        # Every right-hand side reads the row as it was: the old secret moves aside.
        kept = "secret" if until is not None else "NULL"

        def work(raw: Raw) -> int:
            return raw.run(
                f"UPDATE webhook_endpoints SET previous_secret = {kept}, previous_secret_until = ?, secret = ? "
                "WHERE id = ? AND party_id = ? AND disabled_at IS NULL",
                (until, secret, endpoint_id, party_id),
            )

        rotated = self._change_active(party_id, endpoint_id, work)
        invariant(rotated.secret == secret, "an endpoint just rotated has its new secret")
        return rotated

    def _change_active(self, party_id: str, endpoint_id: str, work: Callable[[Raw], int]) -> Endpoint:
        """Run `work` (which changes the party's active endpoint and says how many rows it
        changed) in a ledger transaction, and return the endpoint as it left it; anyone
        else's, a disabled or an unknown endpoint is `endpoint_not_found`."""
        if not storable(endpoint_id) or self.trades.ledger.transaction(lambda txn: work(txn.raw)) != 1:
            raise WebhookError(f"no active endpoint {endpoint_id!r}", field="endpoint_id", code=ApiCode.endpoint_not_found)
        found = self.endpoint(party_id, endpoint_id)
        invariant(found is not None, "an endpoint just changed is still there")
        return found  # type: ignore[return-value]

    def endpoint(self, party_id: str, endpoint_id: str) -> Endpoint | None:
        """The party's endpoint of that id; None for an unknown id or another party's."""
        if not storable(endpoint_id):
            return None
        rows = self.db.read_raw(lambda raw: raw.rows(f"SELECT {_ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = ? AND party_id = ?", (endpoint_id, party_id)))
        return _endpoint(rows[0]) if rows else None

    def endpoints(self, party_id: str, *, after: tuple[int, str] | None = None, limit: int = 100) -> list[Endpoint]:
        """The party's endpoints, disabled ones too, oldest first: a page after `after`
        (created_at, id), as every list is, since disabled endpoints accumulate."""
        rows = self.db.read_raw(lambda raw: raw.rows(*created_page(f"SELECT {_ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE party_id = ?", (party_id,), after, limit)))
        return [_endpoint(row) for row in rows]

    def deliveries(self, party_id: str, endpoint_id: str, *, after: tuple[int, str] | None = None, limit: int = 100) -> list[Delivery]:
        """Deliveries to one of the party's endpoints, oldest first, a page after `after`."""
        if self.endpoint(party_id, endpoint_id) is None:
            raise WebhookError(f"no endpoint {endpoint_id!r}", field="endpoint_id", code=ApiCode.endpoint_not_found)
        rows = self.db.read_raw(lambda raw: raw.rows(*created_page(f"SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries WHERE endpoint_id = ?", (endpoint_id,), after, limit)))
        return [Delivery(*row) for row in rows]

    # -- fan-out and delivery -----------------------------------------------------------

    def dispatch(self) -> int:
        """Turn undispatched trade events into deliveries; returns how many deliveries."""

        def work(txn) -> int:  # type: ignore[no-untyped-def]
            raw = txn.raw
            pending = trade_rows.undispatched_events(raw, limit=EVENTS_PER_DISPATCH_MAX)
            if not pending:
                return 0
            parties = sorted({p for _, t in pending for p in (t.buyer_id, t.seller_id, t.courier_id) if p})
            endpoints = self._endpoints_of(raw, parties)
            # Arbiters and operators are parties to no trade; they are sent the events that
            # put a trade in the arbiters' queue or take it out.
            for_overseers = [concerns_arbiters(e.from_status, e.to_status) for e, _ in pending]
            overseers = self._overseers_endpoints(raw) if any(for_overseers) else []
            subscribed: dict[str, list[tuple[str, set[str]]]] = {}
            for endpoint_id, party_id, types in endpoints + overseers:
                subscribed.setdefault(party_id, []).append((endpoint_id, set(json.loads(types))))
            overseer_ids = {party_id for _, party_id, _ in overseers}
            now = txn.now_ns
            rows: list[tuple[Any, ...]] = []
            dispatched: list[TradeEvent] = []
            for (event, trade), overseen in zip(pending, for_overseers, strict=True):
                kind = event_type(event)
                receivers = {trade.buyer_id, trade.seller_id, trade.courier_id} - {None}
                targets = [
                    (party, endpoint_id)
                    for party in sorted((receivers | overseer_ids) if overseen else receivers)  # type: ignore[type-var]
                    for endpoint_id, types in subscribed.get(party, [])
                    if kind in types or "*" in types
                ]
                invariant(len(targets) <= DELIVERIES_PER_EVENT_MAX, f"event {event_id(event)} has {len(targets)} deliveries")
                if len(rows) + len(targets) > DELIVERIES_PER_DISPATCH_MAX:
                    break  # this event and the rest: the next dispatch
                body = json.dumps(event_payload(event, trade), separators=(",", ":"), sort_keys=True)
                for party, endpoint_id in targets:
                    # A dispatch's deliveries share `now`; lists page by (created_at, id),
                    # so the id leads with the row's place here: in the events' order.
                    rows.append((f"wd_{len(rows):06x}{secrets.token_hex(6)}", endpoint_id, party, event_id(event), kind, body, "pending", 0, None, None, now, now, now))
                dispatched.append(event)
            invariant(bool(dispatched), "a dispatch takes at least its first event")
            raw.insert(_DELIVERY_ROWS, rows)
            trade_rows.mark_dispatched(raw, dispatched)
            return len(rows)

        return self.trades.ledger.transaction(work)

    @staticmethod
    def _endpoints_of(raw: Raw, parties: list[str]) -> list[tuple[str, str, str]]:
        return [
            (r[0], r[1], r[2])
            for r in raw.select_where_in("SELECT id, party_id, event_types, disabled_at FROM webhook_endpoints", "party_id", parties)
            if r[3] is None
        ]

    @staticmethod
    def _overseers_endpoints(raw: Raw) -> list[tuple[str, str, str]]:
        """Every arbiter's and operator's active endpoints (found by the parties' role):
        at most OVERSEER_ENDPOINTS_MAX, as registration keeps them."""
        rows = raw.rows(f"SELECT e.id, e.party_id, e.event_types {_OVERSEERS_ENDPOINTS} ORDER BY e.id LIMIT {OVERSEER_ENDPOINTS_MAX + 1}", OVERSEERS)
        invariant(len(rows) <= OVERSEER_ENDPOINTS_MAX, f"more than {OVERSEER_ENDPOINTS_MAX} active endpoints of arbiters and operators")
        return [tuple(r) for r in rows]  # type: ignore[misc]

    @staticmethod
    def _overseers_endpoints_count(raw: Raw) -> int:
        [(count,)] = raw.rows(f"SELECT COUNT(*) {_OVERSEERS_ENDPOINTS}", OVERSEERS)
        return int(count)

    def deliver_due(self) -> int:
        """Claim the due deliveries (bounded per pass and per endpoint) and attempt them
        concurrently; returns how many were attempted, once all have ended."""
        now = self.clock.now_ns()
        due = self.db.read_raw(lambda raw: [_Due(*row) for row in raw.rows(_DUE, (now, now))])
        if not due:
            return 0
        claimed_until = now + CLAIM_SECONDS * NS_PER_SECOND

        def claim(raw: Raw) -> list[_Due]:
            # Only what no other pass claimed (or attempted) since it was read.
            return [
                row
                for row in due
                if raw.run(
                    "UPDATE webhook_deliveries SET next_attempt_at = ? WHERE id = ? AND state = 'pending' AND next_attempt_at = ?",
                    (claimed_until, row.id, row.next_attempt_at),
                ) == 1
            ]

        claimed = self.db.write_raw(claim)
        if claimed:
            asyncio.run(self._attempt_all(claimed))
        return len(claimed)

    async def _attempt_all(self, claimed: list[_Due]) -> None:
        # All at once (at most DELIVERIES_PER_PASS_MAX), so the pass ends within one
        # deadline, well inside its claim. One client per receiver name: requests go to
        # checked addresses, so a kept-alive connection (its certificate verified for one
        # name) must never carry another name's delivery to a host sharing the address.
        clients: dict[str, httpx.AsyncClient] = {}

        async def attempt(due: _Due) -> None:
            now = self.clock.now_ns()
            try:
                status_code, error = await self._send(clients, due, now)
            except Exception as failure:  # a bug of ours, not the receiver's: loud, and still counted
                log.exception("webhook delivery %s failed unexpectedly", due.id)
                status_code, error = None, f"{type(failure).__name__}: {failure}"[:256]
            await asyncio.to_thread(self._record, due, status_code, error, now)

        try:
            await asyncio.gather(*(attempt(due) for due in claimed))
        finally:
            for client in clients.values():
                await client.aclose()

    async def _send(self, clients: dict[str, httpx.AsyncClient], due: _Due, now: int) -> tuple[int | None, str | None]:
        """POST one delivery, through the pass's client for its receiver's name; the
        receiver's status code, or why there is none."""
        body = due.payload.encode()
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(due.secret, now // NS_PER_SECOND, body, *_also(due.previous_secret)), "User-Agent": "danbao-webhooks"}
        deadline = self.settings.deadline_seconds
        try:
            async with asyncio.timeout(deadline):
                target = await pin(due.url, private_networks=self.settings.private_networks, resolve=self.resolve)
                if target.name not in clients:
                    clients[target.name] = httpx.AsyncClient(timeout=self.settings.timeout_seconds, follow_redirects=False, trust_env=False)
                # Only the status counts: the receiver's body is never read, so a huge or
                # endless one costs neither memory nor time.
                headers["Host"] = target.name
                async with clients[target.name].stream("POST", target.url, content=body, headers=headers, extensions=target.extensions) as response:
                    return response.status_code, None
        except TimeoutError:  # the deadline (httpx's own timeouts are HTTPErrors)
            return None, f"DeadlineExceeded: no answer within {deadline:g} s"
        except (AddressRefused, httpx.HTTPError, OSError) as failure:  # OSError: the name did not resolve
            return None, f"{type(failure).__name__}: {failure}"[:256]

    def _record(self, due: _Due, status_code: int | None, error: str | None, now: int) -> None:
        attempts = due.attempts + 1
        if status_code is not None and 200 <= status_code < 300:
            state, next_at = "delivered", None
        elif attempts >= ATTEMPTS_MAX:
            state, next_at = "failed", None
        else:
            backoff = min(RETRY_BACKOFF_MAX_SECONDS, RETRY_BACKOFF_BASE_SECONDS * 2 ** (attempts - 1))
            state, next_at = "pending", now + backoff * NS_PER_SECOND
        # The attempt is recorded, but only a delivery still pending takes its outcome: one
        # cancelled while this attempt was in flight (its endpoint disabled) stays cancelled.
        # The attempts count read before is the guard against recording one attempt twice.
        self.db.write_raw(
            lambda raw: raw.run(
                "UPDATE webhook_deliveries SET attempts = ?, last_status_code = ?, last_error = ?, updated_at = ?, "
                "next_attempt_at = CASE WHEN state = 'pending' THEN ? ELSE next_attempt_at END, "
                "state = CASE WHEN state = 'pending' THEN ? ELSE state END "
                "WHERE id = ? AND attempts = ?",
                (attempts, status_code, error, now, next_at, state, due.id, due.attempts),
            )
        )

    def run_once(self) -> tuple[int, int]:
        return self.dispatch(), self.deliver_due()
