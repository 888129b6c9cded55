"""The root of danbao's error hierarchy and the invariant check that never disappears.

Operating errors (bad input, wrong state) are `DanbaoError`s with a stable `code`; adapters
map them to HTTP problems or CLI messages. Broken invariants are programmer errors: they
raise `InvariantViolation`, which nothing should catch. Python's `assert` vanishes under
`-O`, so money invariants use `invariant()` instead.
"""

from __future__ import annotations

from enum import Enum


class DanbaoError(Exception):
    """An expected, reportable error: bad input or a refused operation."""

    code: str = "error"

    def __init__(self, message: str, *, field: str | None = None, code: str | Enum | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        if code is not None:
            self.code = code_text(code)


def code_text(code: str | Enum) -> str:
    """A code as its text. A code's enum member (Result, TradeCode, ApiCode) and its text
    name the same code: kept as text, a code reads, compares and serialises the same
    wherever it came from."""
    return code.value if isinstance(code, Enum) else code


class InvariantViolation(Exception):
    """Something that must never happen did: the program is wrong, not the input."""


def invariant(condition: object, message: str) -> None:
    if not condition:
        raise InvariantViolation(message)
