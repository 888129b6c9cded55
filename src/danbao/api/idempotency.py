"""Idempotency-Key records: a retried POST gets the first response, never a second effect.

Per party and key: the hash of the request (method, path, body), whether it is still
running, and once done the status and body to replay. The same key with another request is
refused (`idempotency_key_reused`, 422); a retry while the first is running gets
`idempotency_in_progress` (409) until its lease ends (a crashed first attempt must not
block the key forever). Records are kept `KEEP_SECONDS` (24 hours). 5xx responses are not
kept, so a retry runs again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from danbao.clock import NS_PER_SECOND, Clock
from danbao.errors import DanbaoError
from danbao.ledger import Ledger
from danbao.ledger.ledger import LedgerTransaction
from danbao.store import Database

KEEP_SECONDS = 24 * 3600
RUNNING_LEASE_SECONDS = 60
KEY_CHARS_MAX = 255
RESPONSE_BYTES_MAX = 1_000_000
EXPIRED_PER_SWEEP_MAX = 1000


class IdempotencyError(DanbaoError):
    pass


@dataclass(frozen=True, slots=True)
class Replay:
    status_code: int
    body: bytes


class IdempotencyStore:
    """Records are written as ledger works, so they share the group commit (and its one
    fsync) with the trade steps around them instead of paying a commit each."""

    def __init__(self, ledger: Ledger, clock: Clock):
        self.ledger = ledger
        self.db: Database = ledger.db
        self.clock = clock

    def begin(self, party_id: str, key: str, request_hash: str) -> Replay | None:
        return self.ledger.transaction(self.begin_work(party_id, key, request_hash))  # type: ignore[no-any-return]

    def finish(self, party_id: str, key: str, status_code: int, body: bytes) -> None:
        self.ledger.transaction(self.finish_work(party_id, key, status_code, body))

    def abandon(self, party_id: str, key: str) -> None:
        self.ledger.transaction(self.abandon_work(party_id, key))

    def begin_work(self, party_id: str, key: str, request_hash: str) -> Callable[[LedgerTransaction], Replay | None]:
        """None: go ahead (the key is now running). A Replay: send it. Else raise."""
        now = self.clock.now_ns()

        def work(txn: LedgerTransaction) -> Replay | None:
            raw = txn.raw
            rows = raw.rows(
                "SELECT request_hash, state, status_code, response_body, created_at, expires_at "
                "FROM idempotency_keys WHERE party_id = ? AND key = ?" + raw.for_update,
                (party_id, key),
            )
            if rows:
                stored_hash, state, status_code, body, created_at, expires_at = rows[0]
                if expires_at > now:
                    if stored_hash != request_hash:
                        raise IdempotencyError("this Idempotency-Key was used with a different request", field="Idempotency-Key", code="idempotency_key_reused")
                    if state == "done":
                        return Replay(int(status_code), str(body).encode())
                    if created_at + RUNNING_LEASE_SECONDS * NS_PER_SECOND > now:
                        raise IdempotencyError("a request with this Idempotency-Key is still running", field="Idempotency-Key", code="idempotency_in_progress")
                raw.run("DELETE FROM idempotency_keys WHERE party_id = ? AND key = ?", (party_id, key))
            raw.run(
                "INSERT INTO idempotency_keys (party_id, key, request_hash, state, status_code, response_body, created_at, expires_at) "
                "VALUES (?, ?, ?, 'running', NULL, NULL, ?, ?)",
                (party_id, key, request_hash, now, now + KEEP_SECONDS * NS_PER_SECOND),
            )
            return None

        return work

    def finish_work(self, party_id: str, key: str, status_code: int, body: bytes) -> Callable[[LedgerTransaction], None]:
        if status_code >= 500 or len(body) > RESPONSE_BYTES_MAX:
            return self.abandon_work(party_id, key)

        def work(txn: LedgerTransaction) -> None:
            txn.raw.run(
                "UPDATE idempotency_keys SET state = 'done', status_code = ?, response_body = ? WHERE party_id = ? AND key = ?",
                (status_code, body.decode(), party_id, key),
            )

        return work

    def abandon_work(self, party_id: str, key: str) -> Callable[[LedgerTransaction], None]:
        def work(txn: LedgerTransaction) -> None:
            txn.raw.run("DELETE FROM idempotency_keys WHERE party_id = ? AND key = ?", (party_id, key))

        return work

    def sweep(self) -> int:
        """Forget expired records (bounded per call)."""
        now = self.clock.now_ns()
        return self.db.write_raw(
            lambda raw: raw.run(
                "DELETE FROM idempotency_keys WHERE expires_at <= ? AND key IN "
                f"(SELECT key FROM idempotency_keys WHERE expires_at <= ? LIMIT {EXPIRED_PER_SWEEP_MAX})",
                (now, now),
            )
        )
