"""Webhook signatures as a receiver checks them: the right secret, the body as sent and a
fresh timestamp pass; anything else is refused, and no header, however malformed, raises."""

from __future__ import annotations

import hmac
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from danbao.api.signature import HEADER_CHARS_MAX, SIGNATURES_PER_HEADER_MAX, TOLERANCE_SECONDS, sign
from danbao.client import verify_signature

SECRET = "whsec_test"
BODY = b'{"type":"trade.paid","data":{"amount":12800}}'
NOW = 1_800_000_000


def _digest(secret: str) -> str:
    """The `v1` signature of BODY at NOW under `secret`, as a header carries it."""
    return sign(secret, NOW, BODY).split("v1=")[1]


def test_a_delivery_signed_now_verifies() -> None:
    assert verify_signature(SECRET, sign(SECRET, NOW, BODY), BODY, now_seconds=NOW)


def test_the_wall_clock_is_the_default_now() -> None:
    now = int(time.time())
    assert verify_signature(SECRET, sign(SECRET, now, BODY), BODY)
    assert not verify_signature(SECRET, sign(SECRET, now - 2 * TOLERANCE_SECONDS, BODY), BODY)


def test_a_changed_body_or_another_secret_is_refused() -> None:
    header = sign(SECRET, NOW, BODY)
    assert not verify_signature(SECRET, header, BODY + b" ", now_seconds=NOW)
    assert not verify_signature(SECRET, header, BODY.replace(b"12800", b"12900"), now_seconds=NOW)
    assert not verify_signature("whsec_other", header, BODY, now_seconds=NOW)


def test_a_timestamp_beyond_the_tolerance_either_way_is_refused() -> None:
    header = sign(SECRET, NOW, BODY)
    assert verify_signature(SECRET, header, BODY, now_seconds=NOW + TOLERANCE_SECONDS)
    assert verify_signature(SECRET, header, BODY, now_seconds=NOW - TOLERANCE_SECONDS)
    assert not verify_signature(SECRET, header, BODY, now_seconds=NOW + TOLERANCE_SECONDS + 1)  # a replay
    assert not verify_signature(SECRET, header, BODY, now_seconds=NOW - TOLERANCE_SECONDS - 1)
    assert verify_signature(SECRET, header, BODY, now_seconds=NOW + 3600, tolerance_seconds=3600)


def test_a_moved_timestamp_breaks_the_signature() -> None:
    """The timestamp is signed with the body: a replayer cannot freshen it."""
    digest = _digest(SECRET)
    assert not verify_signature(SECRET, f"t={NOW + 600},v1={digest}", BODY, now_seconds=NOW + 600)


def test_any_of_several_signatures_may_match_and_other_fields_are_ignored() -> None:
    """A sender rotating its secret signs under both; a header may grow new fields."""
    old = _digest("whsec_old")
    new = _digest(SECRET)
    assert verify_signature(SECRET, f"t={NOW},v1={old},v1={new}", BODY, now_seconds=NOW)
    assert verify_signature(SECRET, f"v0=abc, v1={new}, t={NOW}", BODY, now_seconds=NOW)
    assert not verify_signature(SECRET, f"t={NOW},v1={old}", BODY, now_seconds=NOW)


def test_malformed_headers_are_refused() -> None:
    good = sign(SECRET, NOW, BODY)
    digest = _digest(SECRET)
    for header in (
        "",
        "garbage",
        f"v1={digest}",  # no timestamp
        f"t={NOW}",  # no signature
        f"t=,v1={digest}",
        f"t=-{NOW},v1={digest}",
        f"t={NOW}.0,v1={digest}",
        f"t=١٨٠٠٠٠٠٠٠٠,v1={digest}",  # digits, but not ASCII ones
        f"t={NOW},t={NOW},v1={digest}",  # which one was signed?
        f"t={NOW}," + ",".join([f"v1={digest}"] * (SIGNATURES_PER_HEADER_MAX + 1)),
        good + "," + "x" * HEADER_CHARS_MAX,
    ):
        assert not verify_signature(SECRET, header, BODY, now_seconds=NOW), header


def test_a_header_and_its_signatures_may_reach_their_bounds_exactly() -> None:
    """Bounds on what a receiver parses: at them a header is read, one past them it is not
    (the malformed cases above go one past)."""
    good = sign(SECRET, NOW, BODY)
    padding = ",x=" + "x" * (HEADER_CHARS_MAX - len(good) - 3)
    assert len(good + padding) == HEADER_CHARS_MAX
    assert verify_signature(SECRET, good + padding, BODY, now_seconds=NOW)
    assert not verify_signature(SECRET, good + padding + "x", BODY, now_seconds=NOW)
    others = [f"v1={_digest(f'whsec_{i}')}" for i in range(SIGNATURES_PER_HEADER_MAX - 1)]
    at_bound = ",".join([*others, good])
    assert at_bound.count("v1=") == SIGNATURES_PER_HEADER_MAX
    assert verify_signature(SECRET, at_bound, BODY, now_seconds=NOW)


def test_every_signature_is_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Timing says nothing about how much of a guess matched, nor which candidate did:
    each is compared with `hmac.compare_digest`, the matching one first or not."""
    compared: list[str] = []
    real = hmac.compare_digest

    def spy(a: str, b: str) -> bool:
        compared.append(b)
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    new = _digest(SECRET)
    old = _digest("whsec_old")
    assert verify_signature(SECRET, f"t={NOW},v1={new},v1={old}", BODY, now_seconds=NOW)
    assert compared == [new, old]
    compared.clear()
    assert not verify_signature(SECRET, f"t={NOW},v1={old}", BODY, now_seconds=NOW)
    assert compared == [old]


@given(st.text(max_size=200))
def test_no_header_raises(header: str) -> None:
    assert not verify_signature(SECRET, header, BODY, now_seconds=NOW)


PARTS = st.one_of(st.just(f"t={NOW}"), st.text(max_size=80).map(lambda text: "v1=" + text), st.text(max_size=20))


@given(st.lists(PARTS, max_size=10))
def test_no_header_with_a_fresh_timestamp_raises_whatever_its_signatures_are(parts: list[str]) -> None:
    # A fresh `t` gets past the cheap checks to the comparison, which refuses text that is
    # not ASCII with a TypeError unless it is kept from it.
    assert not verify_signature(SECRET, ",".join(parts), BODY, now_seconds=NOW)


def test_a_signature_that_is_not_ascii_is_refused_not_raised() -> None:
    assert not verify_signature(SECRET, f"t={NOW},v1=é", BODY, now_seconds=NOW)
    assert not verify_signature(SECRET, f"t={NOW},v1=\ud800", BODY, now_seconds=NOW)
