"""How webhook deliveries are signed, and how a receiver checks them (as Stripe's).

Header `Danbao-Signature: t=<unix seconds>,v1=<hex>`, where v1 is HMAC-SHA256 of
`"<t>.<body>"` under the endpoint's secret. The timestamp is signed with the body, so a
receiver that refuses a stale `t` refuses a replayed delivery. After the endpoint's secret
is rotated, deliveries carry a second `v1`, under the replaced secret, for a while.
Standard library only: a receiver imports this (through `danbao.client`) without the
server behind it.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "Danbao-Signature"
TOLERANCE_SECONDS = 300
# A header is a handful of short fields: one longer than this is not ours, and parsing it
# would only cost the receiver.
HEADER_CHARS_MAX = 1024
SIGNATURES_PER_HEADER_MAX = 8
# After a rotation the replaced secret signs too, for a day unless the party says otherwise
# (at most a week: a secret replaced because it leaked should not sign for long).
SECRET_OVERLAP_SECONDS_DEFAULT = 24 * 3600
SECRET_OVERLAP_SECONDS_MAX = 7 * 24 * 3600


def sign(secret: str, timestamp: int, body: bytes, *also: str) -> str:
    """The header for `body` sent at `timestamp`: signed under `secret`, and under each of
    `also` (a secret being replaced) for receivers that still hold it."""
    signatures = ",".join(f"v1={_digest(key, timestamp, body)}" for key in (secret, *also))
    return f"t={timestamp},{signatures}"


def verify_signature(
    secret: str,
    header: str,
    body: bytes,
    *,
    now_seconds: int | None = None,
    tolerance_seconds: int = TOLERANCE_SECONDS,
) -> bool:
    """Whether `body` was signed under `secret` within `tolerance_seconds` of now (either
    way). Never raises: any header that is not a valid signature is False.

    `body` must be the bytes as received, before any JSON parsing. Any `v1` in the header
    may match (a sender may sign under more than one secret while it rotates them); fields
    other than `t` and `v1` are ignored, so the header can grow without breaking receivers.
    """
    if len(header) > HEADER_CHARS_MAX:
        return False
    timestamps, signatures = [], []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t":
            timestamps.append(value)
        elif name == "v1":
            signatures.append(value)
    if len(timestamps) != 1 or not signatures or len(signatures) > SIGNATURES_PER_HEADER_MAX:
        return False
    if not timestamps[0].isascii() or not timestamps[0].isdigit():
        return False
    timestamp = int(timestamps[0])
    now = int(time.time()) if now_seconds is None else now_seconds
    if abs(now - timestamp) > tolerance_seconds:
        return False
    expected = _digest(secret, timestamp, body)
    # Every candidate is compared, so the time taken says nothing about which one matched.
    # compare_digest refuses text that is not ASCII (a TypeError); no hex digest is.
    matched = [candidate.isascii() and hmac.compare_digest(expected, candidate) for candidate in signatures]
    return any(matched)


def _digest(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
