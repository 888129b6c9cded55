"""API keys below HTTP: a rotation revokes exactly once, and a revoked key is never served
from the verification cache, whatever the order of concurrent steps."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from danbao.api import Services
from danbao.api import keys as keys_module
from danbao.api.keys import (
    KEY_PREFIX,
    OPERATOR_ID,
    VERIFIED_CACHE_SECONDS,
    ApiKeys,
    IssuedKey,
    KeyRevoked,
    bootstrap_operator,
    new_operator_key,
)
from danbao.clock import ManualClock


@pytest.fixture
def services(database_url: str, clock: ManualClock) -> Iterator[Services]:
    services = Services.open(database_url, clock=clock)
    services.trades.parties.create("buyer", "Ann", party_id="ann")
    try:
        yield services
    finally:
        services.close()


def _live_keys(keys: ApiKeys, party_id: str) -> list[str]:
    return [k.id for k in keys.of_party(party_id) if k.revoked_at is None]


def test_a_key_rotates_once(services: Services) -> None:
    keys = services.keys
    first = keys.issue("ann")
    second = keys.issue("ann", revoke=first.id)
    # The second rotation of the same key is what a concurrent request would do after both
    # passed the route's ownership check: it must issue nothing.
    with pytest.raises(KeyRevoked):
        keys.issue("ann", revoke=first.id)
    assert _live_keys(keys, "ann") == [second.id]
    assert keys.verify(first.key) is None


def test_a_revoked_key_cannot_be_rotated(services: Services) -> None:
    keys = services.keys
    issued = keys.issue("ann")
    assert keys.revoke(issued.id)
    with pytest.raises(KeyRevoked):
        keys.issue("ann", revoke=issued.id)
    assert _live_keys(keys, "ann") == []


def test_a_verification_overlapping_a_revocation_is_not_cached(services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    keys = services.keys
    issued = keys.issue("ann")
    read_raw = keys.db.read_raw

    def read_then_revoke(work):  # type: ignore[no-untyped-def]
        found = read_raw(work)  # the key is live when read...
        monkeypatch.setattr(keys.db, "read_raw", read_raw)
        assert keys.revoke(issued.id)  # ...and revoked before the verification caches it
        return found

    monkeypatch.setattr(keys.db, "read_raw", read_then_revoke)
    party = keys.verify(issued.key)
    assert party is not None and party.id == "ann"  # valid at the moment it was read
    assert keys.cached(issued.key) is None
    assert keys.verify(issued.key) is None


def test_a_verification_cached_while_a_revocation_commits_is_forgotten_once_it_has(services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    # The other order: the verification reads the live key and caches it before the
    # revocation's commit is counted, so only forgetting after the commit removes it.
    keys = services.keys
    issued = keys.issue("ann")
    transaction = keys.ledger.transaction

    def verified_first(work):  # type: ignore[no-untyped-def]
        assert keys.verify(issued.key) is not None and keys.cached(issued.key) is not None
        return transaction(work)

    monkeypatch.setattr(keys.ledger, "transaction", verified_first)
    assert keys.revoke(issued.id)
    assert keys.cached(issued.key) is None
    monkeypatch.setattr(keys.ledger, "transaction", transaction)
    assert keys.verify(issued.key) is None


def test_a_verified_key_is_cached_until_revoked(services: Services) -> None:
    keys = services.keys
    issued = keys.issue("ann")
    assert keys.cached(issued.key) is None
    assert keys.verify(issued.key) is not None
    cached = keys.cached(issued.key)
    assert cached is not None and cached.id == "ann"
    assert keys.revoke(issued.id)
    assert keys.cached(issued.key) is None
    assert keys.verify(issued.key) is None


def _with_secret(key: IssuedKey, secret: str) -> str:
    return f"{KEY_PREFIX}{key.id}_{secret}"


def test_a_keys_id_with_any_other_secret_is_refused_whether_or_not_the_key_is_cached(services: Services) -> None:
    keys = services.keys
    issued = keys.issue("ann")
    secret = issued.key.rsplit("_", 1)[1]
    wrong = [_with_secret(issued, secret[:-1] + ("A" if secret[-1] != "A" else "B")), _with_secret(issued, secret[:-1]), _with_secret(issued, "x")]
    for presented in wrong:
        assert keys.verify(presented) is None  # read from the database
    assert keys.verify(issued.key) is not None and keys.cached(issued.key) is not None
    for presented in [*wrong, _with_secret(issued, ""), f"{KEY_PREFIX}_{secret}", issued.key + "x"]:
        assert keys.cached(presented) is None, presented  # the id is cached; the secret is not its
        assert keys.verify(presented) is None, presented


def test_a_cached_verification_lapses_so_another_process_can_revoke_the_key(services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    keys = services.keys
    issued = keys.issue("ann")
    assert keys.verify(issued.key) is not None
    # Another server process revokes it: this process's cache is not told.
    keys.db.write_raw(lambda raw: raw.run("UPDATE api_keys SET revoked_at = 1 WHERE id = ?", (issued.id,)))
    assert keys.cached(issued.key) is not None
    later = time.monotonic() + VERIFIED_CACHE_SECONDS + 1
    monkeypatch.setattr(keys_module.time, "monotonic", lambda: later)
    assert keys.cached(issued.key) is None
    assert keys.verify(issued.key) is None


def test_a_partys_keys_are_listed_in_pages_revoked_ones_too(services: Services, clock: ManualClock) -> None:
    keys = services.keys
    issued = keys.issue("ann")
    for _ in range(4):  # each rotation revokes one key and issues the next
        clock.advance(1)
        issued = keys.issue("ann", revoke=issued.id)
    first = keys.of_party("ann", limit=3)
    rest = keys.of_party("ann", after=(first[-1].created_at, first[-1].id), limit=3)
    assert len(first) == 3 and len(rest) == 2
    assert [k.created_at for k in first + rest] == sorted(k.created_at for k in first + rest)
    assert [k.revoked_at is None for k in first + rest] == [False] * 4 + [True]
    assert rest[-1].id == issued.id


def test_an_operator_made_by_another_process_starting_at_once_is_taken_as_it_is(services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    keys = services.keys
    services.trades.parties.create("operator", "Made elsewhere", party_id=OPERATOR_ID)  # after this process looked
    monkeypatch.setattr(keys.db, "read_raw", lambda work: {})  # ...and found no operator
    issued = new_operator_key(keys, services.trades.parties)
    monkeypatch.undo()
    party = keys.verify(issued.key)
    assert party is not None and (party.id, party.role) == (OPERATOR_ID, "operator")


def test_of_two_processes_starting_at_once_only_one_issues_the_admin_key(services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    keys = services.keys
    first = bootstrap_operator(keys, services.trades.parties)
    assert first is not None
    # The second looked for a live operator key before the first had committed its own.
    monkeypatch.setattr(keys.db, "read_raw", lambda work: [])
    assert bootstrap_operator(keys, services.trades.parties) is None
    monkeypatch.undo()
    assert _live_keys(keys, OPERATOR_ID) == [first.id]
    assert bootstrap_operator(keys, services.trades.parties) is None  # and at the next start


def test_many_first_starts_at_once_print_one_admin_key(services: Services) -> None:
    keys, parties = services.keys, services.trades.parties
    barrier = threading.Barrier(8)

    def start() -> IssuedKey | None:
        barrier.wait(timeout=30)
        return bootstrap_operator(keys, parties)

    with ThreadPoolExecutor(8) as pool:
        issued = [key for key in pool.map(lambda _: start(), range(8)) if key is not None]
    assert len(issued) == 1 and _live_keys(keys, OPERATOR_ID) == [issued[0].id]


def test_a_first_key_is_issued_only_to_a_party_without_one(services: Services) -> None:
    keys = services.keys
    first = keys.issue_first("ann")
    assert first is not None and keys.issue_first("ann") is None
    keys.revoke(first.id)
    again = keys.issue_first("ann")
    assert again is not None and _live_keys(keys, "ann") == [again.id]


def test_revoking_stamps_a_key_once_and_counts_only_live_keys(services: Services, clock: ManualClock) -> None:
    keys = services.keys
    one, two, three = (keys.issue("ann") for _ in range(3))
    assert keys.revoke(one.id) is True
    when = keys.get(one.id).revoked_at  # type: ignore[union-attr]
    clock.advance(5)
    assert keys.revoke(one.id) is False and keys.get(one.id).revoked_at == when  # type: ignore[union-attr]
    assert keys.revoke_all("ann") == 2  # two and three: one was revoked already
    assert keys.get(one.id).revoked_at == when and keys.revoke_all("ann") == 0  # type: ignore[union-attr]
    assert {keys.get(k.id).revoked_at for k in (two, three)} == {when + 5 * 10**9}  # type: ignore[union-attr]


def test_a_key_counts_only_with_its_own_prefix(services: Services) -> None:
    issued = services.keys.issue("ann")
    assert issued.key.startswith(KEY_PREFIX)
    for presented in ("xyz_" + issued.key[len(KEY_PREFIX) :], "DBK_" + issued.key[len(KEY_PREFIX) :], issued.key[len(KEY_PREFIX) :]):
        assert services.keys.verify(presented) is None, presented
        assert services.keys.cached(presented) is None, presented
    assert services.keys.verify(issued.key) is not None


def test_the_verification_cache_holds_a_bounded_number_of_keys(services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keys_module, "VERIFIED_CACHE_KEYS_MAX", 3)
    keys = services.keys
    issued = [keys.issue("ann") for _ in range(7)]
    for key in issued:
        assert keys.verify(key.key) is not None
        assert len(keys._verified) <= 3  # past the bound it starts over rather than grow
    assert keys.cached(issued[-1].key) is not None  # the newest is still cached


def test_an_operator_whose_keys_were_all_revoked_gets_a_new_one_at_the_next_start(services: Services) -> None:
    keys = services.keys
    first = bootstrap_operator(keys, services.trades.parties)
    assert first is not None and bootstrap_operator(keys, services.trades.parties) is None
    keys.revoke_all(OPERATOR_ID)
    again = bootstrap_operator(keys, services.trades.parties)
    assert again is not None and _live_keys(keys, OPERATOR_ID) == [again.id]


def test_a_pepper_set_in_the_environment_is_the_one_keys_are_hashed_under(services: Services, clock: ManualClock, monkeypatch: pytest.MonkeyPatch) -> None:
    # An operator may keep the pepper out of the database; keys then verify only under it.
    monkeypatch.setenv(keys_module.PEPPER_ENV, "pepper-one")
    issued = ApiKeys(services.ledger, clock).issue("ann")
    assert ApiKeys(services.ledger, clock).verify(issued.key) is not None
    monkeypatch.setenv(keys_module.PEPPER_ENV, "pepper-two")
    assert ApiKeys(services.ledger, clock).verify(issued.key) is None
    monkeypatch.delenv(keys_module.PEPPER_ENV)
    assert ApiKeys(services.ledger, clock).verify(issued.key) is None  # nor under the stored one
