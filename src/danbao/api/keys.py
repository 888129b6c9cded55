"""API keys: long random secrets shown once, stored only as a keyed hash, one party each.

A key reads `dbk_<id>_<secret>`: the id finds the row, the secret is checked against its
HMAC-SHA256 under the server's pepper (a fast keyed hash: the secret has 256 bits of
entropy, so a slow password hash would only cap throughput). Keys can be revoked, and
rotated (a new key issued, the old one revoked, in one transaction).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from danbao.clock import Clock
from danbao.errors import invariant
from danbao.ledger import Ledger
from danbao.store import Database
from danbao.store.raw import Raw, created_page
from danbao.text import storable
from danbao.trade import Party, TradeCode, TradeError
from danbao.trade import repository as trade_rows

KEY_PREFIX = "dbk_"
KEY_ID_BYTES = 8
KEY_SECRET_BYTES = 32
KEYS_PER_PARTY_MAX = 20
# Verified keys are remembered this long, so most requests skip the database. A key revoked
# through this process is forgotten at once; another process notices within this bound.
VERIFIED_CACHE_SECONDS = 5.0
VERIFIED_CACHE_KEYS_MAX = 10_000
PEPPER_ENV = "DANBAO_API_KEY_PEPPER"

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class IssuedKey:
    id: str
    party_id: str
    key: str  # the only time the secret is seen
    created_at: int


@dataclass(frozen=True, slots=True)
class KeyInfo:
    id: str
    party_id: str
    created_at: int
    revoked_at: int | None


class TooManyKeys(Exception):
    """A party already holds KEYS_PER_PARTY_MAX live keys."""


class KeyRevoked(Exception):
    """The key to rotate is already revoked (perhaps by a rotation that just ran)."""


class ApiKeys:
    def __init__(self, ledger: Ledger, clock: Clock):
        # Writes are ledger transactions, so a keyed request's record commits with them
        # (`danbao.api.idempotency`).
        self.ledger = ledger
        self.db: Database = ledger.db
        self.clock = clock
        self._pepper = self._load_pepper()
        self._verified: dict[str, tuple[str, Party, float]] = {}  # key id -> (hash, party, until)
        # Counts revocations; a verification that overlapped one does not cache what it read.
        self._revocations = 0
        self._lock = threading.Lock()

    def _load_pepper(self) -> bytes:
        configured = os.environ.get(PEPPER_ENV)
        if configured:
            return configured.encode()

        def work(raw: Raw) -> str:
            rows = raw.rows("SELECT value FROM server_secrets WHERE name = 'api_key_pepper'")
            if rows:
                return str(rows[0][0])
            value = secrets.token_hex(32)
            raw.run("INSERT INTO server_secrets (name, value) VALUES ('api_key_pepper', ?)", (value,))
            return value

        return self.db.write_raw(work).encode()

    def _hash(self, secret: str) -> str:
        return hmac.new(self._pepper, secret.encode(), hashlib.sha256).hexdigest()

    def issue(self, party_id: str, *, revoke: str | None = None) -> IssuedKey:
        issued = self._issue(party_id, revoke=revoke, first=False)
        invariant(issued is not None, "a key is issued unless only a first one was asked for")
        return issued  # type: ignore[return-value]

    def issue_first(self, party_id: str) -> IssuedKey | None:
        """A key for a party that holds no live key, or None if it holds one. Checked in
        the transaction that inserts it: of two processes starting at once, one issues."""
        return self._issue(party_id, revoke=None, first=True)

    def _issue(self, party_id: str, *, revoke: str | None, first: bool) -> IssuedKey | None:
        key_id = secrets.token_hex(KEY_ID_BYTES)
        secret = secrets.token_urlsafe(KEY_SECRET_BYTES)
        now = self.clock.now_ns()

        def work(raw: Raw) -> bool:
            # Checked here, in the transaction: of two rotations of one key, one issues.
            if revoke is not None and raw.run("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (now, revoke)) != 1:
                raise KeyRevoked(f"key {revoke} is revoked")
            [(live,)] = raw.rows("SELECT COUNT(*) FROM api_keys WHERE party_id = ? AND revoked_at IS NULL", (party_id,))
            if first and live:
                return False
            if live >= KEYS_PER_PARTY_MAX:
                raise TooManyKeys(f"a party holds at most {KEYS_PER_PARTY_MAX} live keys")
            raw.run(
                "INSERT INTO api_keys (id, party_id, secret_hash, created_at, revoked_at) VALUES (?, ?, ?, ?, NULL)",
                (key_id, party_id, self._hash(secret), now),
            )
            return True

        if revoke is None:
            issued = self.ledger.transaction(lambda txn: work(txn.raw))
        else:
            issued = self._revoking(revoke, lambda: self.ledger.transaction(lambda txn: work(txn.raw)))
        return IssuedKey(key_id, party_id, f"{KEY_PREFIX}{key_id}_{secret}", now) if issued else None

    def revoke(self, key_id: str) -> bool:
        if not storable(key_id):
            return False
        now = self.clock.now_ns()
        changed = self._revoking(
            key_id, lambda: self.ledger.transaction(lambda txn: txn.raw.run("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (now, key_id)))
        )
        return changed == 1

    def revoke_all(self, party_id: str) -> int:
        """Revoke every live key of a party; how many there were."""
        now = self.clock.now_ns()
        # Which key ids are the party's is in the database, not here: forget them all.
        return self._revoking(
            None, lambda: self.ledger.transaction(lambda txn: txn.raw.run("UPDATE api_keys SET revoked_at = ? WHERE party_id = ? AND revoked_at IS NULL", (now, party_id)))
        )

    def _revoking(self, key_id: str | None, commit: Callable[[], T]) -> T:
        """Run `commit`, which revokes `key_id` (None: some keys), and forget that key's
        verification here (None: every key's).

        Forgotten once the commit is over (until then the key is live): a verification
        that read the row before the commit either finishes after the count moved and
        caches nothing (`verify` checks it), or cached the key before, and is forgotten."""
        try:
            return commit()
        finally:
            with self._lock:
                self._revocations += 1
            self._forget(key_id)

    def _forget(self, key_id: str | None) -> None:
        with self._lock:
            if key_id is None:
                self._verified.clear()
            else:
                self._verified.pop(key_id, None)

    def get(self, key_id: str) -> KeyInfo | None:
        if not storable(key_id):
            return None
        rows = self.db.read_raw(lambda raw: raw.rows("SELECT id, party_id, created_at, revoked_at FROM api_keys WHERE id = ?", (key_id,)))
        return KeyInfo(*rows[0]) if rows else None

    def of_party(self, party_id: str, *, after: tuple[int, str] | None = None, limit: int = 100) -> list[KeyInfo]:
        """The party's keys, revoked ones too, oldest first: a page after `after` (created_at, id)."""
        rows = self.db.read_raw(lambda raw: raw.rows(*created_page("SELECT id, party_id, created_at, revoked_at FROM api_keys WHERE party_id = ?", (party_id,), after, limit)))
        return [KeyInfo(*row) for row in rows]

    @staticmethod
    def _split(presented: str) -> tuple[str, str] | None:
        if not presented.startswith(KEY_PREFIX) or len(presented) > 128:
            return None
        key_id, _, secret = presented[len(KEY_PREFIX) :].partition("_")
        return (key_id, secret) if key_id and secret else None

    def cached(self, presented: str) -> Party | None:
        """The party, if this key was verified moments ago (no database); else None."""
        parts = self._split(presented)
        if parts is None:
            return None
        with self._lock:
            entry = self._verified.get(parts[0])
        if entry is None or entry[2] < time.monotonic() or not hmac.compare_digest(entry[0], self._hash(parts[1])):
            return None
        return entry[1]

    def verify(self, presented: str) -> Party | None:
        """The party a presented key acts as, or None (unknown, wrong secret, revoked)."""
        parts = self._split(presented)
        if parts is None:
            return None
        key_id, secret = parts
        with self._lock:
            revocations = self._revocations

        def read(raw: Raw) -> tuple[str, Party] | None:
            rows = raw.rows("SELECT party_id, secret_hash FROM api_keys WHERE id = ? AND revoked_at IS NULL", (key_id,))
            if not rows or not hmac.compare_digest(rows[0][1], self._hash(secret)):
                return None
            party = trade_rows.parties(raw, [rows[0][0]]).get(rows[0][0])
            return (rows[0][1], party) if party is not None else None

        found = self.db.read_raw(read)
        if found is None:
            return None
        with self._lock:
            if self._revocations != revocations:
                return found[1]  # valid when read; not cached, it may be revoked since
            if len(self._verified) >= VERIFIED_CACHE_KEYS_MAX:
                self._verified.clear()  # bounded: start over rather than grow
            self._verified[key_id] = (found[0], found[1], time.monotonic() + VERIFIED_CACHE_SECONDS)
        return found[1]


OPERATOR_ID = "operator"


def bootstrap_operator(keys: ApiKeys, parties) -> IssuedKey | None:  # type: ignore[no-untyped-def]
    """At first start: make the operator party and its admin key. None once the operator
    has a live key, however many processes start at once."""
    live = keys.db.read_raw(
        lambda raw: raw.rows(
            "SELECT k.id FROM api_keys k JOIN parties p ON p.id = k.party_id WHERE p.role = 'operator' AND k.revoked_at IS NULL LIMIT 1"
        )
    )
    if live:
        return None  # the usual start, which writes nothing
    _operator(keys, parties)
    return keys.issue_first(OPERATOR_ID)


def new_operator_key(keys: ApiKeys, parties, *, revoke_others: bool = False) -> IssuedKey:  # type: ignore[no-untyped-def]
    """A new admin key for the operator (made first if missing), for one that was lost;
    with `revoke_others`, every other live key of the operator is revoked first (leaked)."""
    _operator(keys, parties)
    if revoke_others:
        keys.revoke_all(OPERATOR_ID)
    return keys.issue(OPERATOR_ID)


def _operator(keys: ApiKeys, parties) -> None:  # type: ignore[no-untyped-def]
    """The operator party, made if missing."""
    if keys.db.read_raw(lambda raw: trade_rows.parties(raw, [OPERATOR_ID])):
        return
    try:
        parties.create("operator", "Platform operator", party_id=OPERATOR_ID)
    except TradeError as error:  # another process starting at once made it first
        if error.code != TradeCode.party_exists.value:
            raise
