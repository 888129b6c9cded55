"""Idempotency-Key records: a retried POST gets the first response, never a second effect.

Per party and key: the hash of the request (method, path, body) and the status and body to
replay. The same key with another request is refused (`idempotency_key_reused`, 422).
Records are kept `KEEP_SECONDS` (24 hours).

The record commits with the request's effect. A keyed request's `Claim` is joined to the
first ledger transaction the request makes (`danbao.ledger.joined`): the key is checked
before the work and the record written after it, in the same work, so the effect and its
record commit together or not at all. A crash can never leave an effect whose retry would
run it again. So every write a POST makes is a ledger transaction (trade steps, money,
parties, API keys, webhook endpoints), never a bare `Database.write_raw`.

- A route that can render its response inside the transaction (`respond_inside`: the
  trade operations and money movements) stores it there: a keyed call costs no extra commit.
- Otherwise the record commits as `running` and its response is stored once sent. If the
  server dies in between, the record stays `running`; once its lease ends a retry gets
  `idempotency_response_lost` (409): the effect happened and is not done again.
- A request that made no ledger transaction, or whose transaction was refused, did nothing;
  its response is stored afterwards, so a retry replays the refusal. 5xx responses are not
  kept, so such a retry runs again.

Concurrent retries: one process refuses a key it is already serving at once
(`idempotency_in_progress`, 409). Across processes, ledger transactions are ordered by the
journal head lock, so the later one finds the first's record and replays it (or gets 409
while its response is being stored); the record's primary key backs that order up.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from danbao.api.problems import ApiCode
from danbao.clock import NS_PER_SECOND, Clock
from danbao.errors import DanbaoError
from danbao.ledger import Ledger
from danbao.ledger.joined import Join
from danbao.ledger.transaction import LedgerTransaction
from danbao.store import Database
from danbao.store.raw import Raw

KEEP_SECONDS = 24 * 3600
RUNNING_LEASE_SECONDS = 60
KEY_CHARS_MAX = 255
RESPONSE_BYTES_MAX = 1_000_000
EXPIRED_PER_SWEEP_MAX = 1000  # records one sweep transaction forgets
SWEEPS_PER_PASS_MAX = 20  # transactions a pass of the jobs loop sweeps, at most
SCOPE_KEY = "danbao.idempotency"

_SELECT = "SELECT request_hash, state, status_code, response_body, created_at, expires_at FROM idempotency_keys WHERE party_id = ? AND key = ?"
_INSERT = (
    "INSERT INTO idempotency_keys (party_id, key, request_hash, state, status_code, response_body, created_at, expires_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (party_id, key) DO NOTHING"
)
_DELETE_EXPIRED = "DELETE FROM idempotency_keys WHERE party_id = ? AND key = ? AND expires_at <= ?"


class IdempotencyError(DanbaoError):
    pass


_IN_PROGRESS = "a request with this Idempotency-Key is still running"


class Replayed(Exception):
    """The key's first response. Raised out of the request's transaction, which it refuses,
    so nothing is done again; the request gate sends it."""

    def __init__(self, status_code: int, body: bytes):
        super().__init__(status_code)
        self.status_code = status_code
        self.body = body


Render = Callable[[Any], bytes]


class Claim(Join):
    """One keyed request's hold on its key, joined to the request's ledger transaction."""

    def __init__(self, party_id: str, key: str, request_hash: str, now_ns: int):
        self.party_id = party_id
        self.key = key
        self.request_hash = request_hash
        self.now_ns = now_ns
        self.render: tuple[int, Render] | None = None
        self.secret_fields: tuple[str, ...] = ()  # kept as null in the record (`keep_without`)
        self.stored_inside = False  # the response was written with the effect
        self.refused_by_key = False  # the transaction was refused because of the key itself

    def before(self, txn: LedgerTransaction) -> None:
        rows = txn.raw.rows(_SELECT + txn.raw.for_update, (self.party_id, self.key))
        if rows and self.answer(rows[0]):
            txn.raw.run(_DELETE_EXPIRED, (self.party_id, self.key, self.now_ns))

    def after(self, txn: LedgerTransaction, result: Any) -> None:
        state, status, body = "running", None, None
        if self.render is not None:
            status, body = self.render[0], self.kept(self.render[1](result))
            if len(body) > RESPONSE_BYTES_MAX:
                status, body = None, None
            else:
                state = "done"
        self.stored_inside = state == "done"
        if txn.raw.run(_INSERT, self.row(state, status, body)) == 0:
            # Another request with this key committed since `before` looked. The journal
            # head lock orders ledger transactions, so this is defence in depth.
            rows = txn.raw.rows(_SELECT, (self.party_id, self.key))
            if rows:
                self.answer(rows[0])
            self._refuse(ApiCode.idempotency_in_progress, _IN_PROGRESS)

    def row(self, state: str, status_code: int | None, body: bytes | None) -> tuple[Any, ...]:
        """This key's record as `_INSERT` writes it."""
        text = body.decode() if body is not None else None
        return (self.party_id, self.key, self.request_hash, state, status_code, text, self.now_ns, self.now_ns + KEEP_SECONDS * NS_PER_SECOND)

    def kept(self, body: bytes) -> bytes:
        """The body as its record keeps it: without the secrets the route named."""
        if not self.secret_fields:
            return body
        document = json.loads(body)
        if isinstance(document, dict):
            document.update((name, None) for name in self.secret_fields if name in document)
        return json.dumps(document, separators=(",", ":")).encode()

    def answer(self, row: tuple[Any, ...]) -> bool:
        """Raise what a stored record answers for this request; True if it has expired."""
        stored_hash, state, status_code, body, created_at, expires_at = row
        if expires_at <= self.now_ns:
            return True
        if stored_hash != self.request_hash:
            self._refuse(ApiCode.idempotency_key_reused, "this Idempotency-Key was used with a different request")
        if state == "done":
            raise Replayed(int(status_code), str(body).encode())
        if created_at + RUNNING_LEASE_SECONDS * NS_PER_SECOND > self.now_ns:
            self._refuse(ApiCode.idempotency_in_progress, _IN_PROGRESS)
        self._refuse(ApiCode.idempotency_response_lost, "the request with this Idempotency-Key took effect, but its response was lost; read the resource instead")
        return False  # unreachable: _refuse raises

    def _refuse(self, code: str, message: str) -> None:
        self.refused_by_key = True
        raise IdempotencyError(message, field="Idempotency-Key", code=code)


def respond_inside(scope: dict[str, Any], status_code: int, render: Render) -> None:
    """A route that can render its response from its transaction's result says so: a keyed
    request then stores the response in the same commit as the effect."""
    claim = scope.get(SCOPE_KEY)
    if claim is not None:
        claim.render = (status_code, render)


def keep_without(scope: dict[str, Any], *fields: str) -> None:
    """The response shows a secret once (an API key, stored only as a hash): a keyed
    request's record keeps these fields as null, so a replay names what was made without
    putting the secret in the database."""
    claim = scope.get(SCOPE_KEY)
    if claim is not None:
        claim.secret_fields = fields


class IdempotencyStore:
    """Claims (one process's keys in flight) and the records' writes. Records written after
    a response are ledger works, sharing the group commit with the trade steps around them."""

    def __init__(self, ledger: Ledger, clock: Clock):
        self.ledger = ledger
        self.db: Database = ledger.db
        self.clock = clock
        self._in_flight: set[tuple[str, str]] = set()

    def claim(self, party_id: str, key: str, request_hash: str) -> Claim:
        """Hold the key for one request of this process (release it with `release`)."""
        if (party_id, key) in self._in_flight:
            raise IdempotencyError(_IN_PROGRESS, field="Idempotency-Key", code=ApiCode.idempotency_in_progress)
        self._in_flight.add((party_id, key))
        return Claim(party_id, key, request_hash, self.clock.now_ns())

    def release(self, claim: Claim) -> None:
        self._in_flight.discard((claim.party_id, claim.key))

    async def settle(self, claim: Claim, status_code: int, body: bytes) -> None:
        """Store what the record still lacks, once the response is known and before it is sent."""
        work = self.settle_work(claim, status_code, body)
        if work is not None:
            await self.ledger.transaction_async(work)

    def settle_work(self, claim: Claim, status_code: int, body: bytes) -> Callable[[LedgerTransaction], None] | None:
        """What `settle` writes, if anything."""
        if claim.stored_inside and claim.committed:
            return None
        if status_code >= 500 or len(body) > RESPONSE_BYTES_MAX:
            return None  # a committed record stays running: its lease ends in response_lost
        body = claim.kept(body) if status_code < 400 else body
        if claim.committed:
            return lambda txn: self._store_response(txn.raw, claim, status_code, body)
        if claim.refused_by_key:
            return None  # the answer was about the key, not the request
        return lambda txn: self._store_record(txn.raw, claim, status_code, body)

    def _store_response(self, raw: Raw, claim: Claim, status_code: int, body: bytes) -> None:
        raw.run(
            "UPDATE idempotency_keys SET state = 'done', status_code = ?, response_body = ? WHERE party_id = ? AND key = ? AND state = 'running'",
            (status_code, body.decode(), claim.party_id, claim.key),
        )

    def _store_record(self, raw: Raw, claim: Claim, status_code: int, body: bytes) -> None:
        """The request did nothing: its response is the record (unless a concurrent one's is)."""
        raw.run(_DELETE_EXPIRED, (claim.party_id, claim.key, claim.now_ns))
        raw.run(_INSERT, claim.row("done", status_code, body))

    def sweep(self) -> int:
        """Forget expired records, oldest first; how many. Each transaction forgets at most
        `EXPIRED_PER_SWEEP_MAX` (the write lock is held briefly), and a pass goes on while
        they come back full, up to `SWEEPS_PER_PASS_MAX`: records expire as fast as keyed
        requests came a day before, faster than one transaction a pass forgets."""
        forgotten = 0
        for _ in range(SWEEPS_PER_PASS_MAX):
            now = self.clock.now_ns()
            # Named by the whole primary key: parties choose their keys, so a key alone
            # names every party's record of that name, and the bound would not hold.
            deleted = self.db.write_raw(
                lambda raw: raw.run(
                    "DELETE FROM idempotency_keys WHERE (party_id, key) IN (SELECT party_id, key FROM idempotency_keys "
                    f"WHERE expires_at <= ? ORDER BY expires_at LIMIT {EXPIRED_PER_SWEEP_MAX})",
                    (now,),
                )
            )
            forgotten += deleted
            if deleted < EXPIRED_PER_SWEEP_MAX:
                break
        return forgotten
