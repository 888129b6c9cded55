"""Amounts: integer minor units, parsed from and formatted to decimal strings in one place.

`parse_amount("12.30", "USD") == 1230`. Floats are refused outright (0.1 + 0.2 is not
money), as are exponents, signs where not allowed, more decimals than the currency has,
and anything above `AMOUNT_MAX_MINOR`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from danbao.errors import DanbaoError
from danbao.money.currency import Currency, currency

# One transfer may move at most 10^15 minor units (10 trillion USD in cents). The bound
# keeps any realistic sum of amounts far inside a signed 64-bit column.
AMOUNT_MAX_MINOR = 10**15

# [0-9], not \d (which matches every script's digits), and \Z, not $ (which also matches
# before a trailing newline).
_DECIMAL = re.compile(r"^(?P<sign>-)?(?P<whole>[0-9]+)(?:\.(?P<frac>[0-9]+))?\Z")


class InvalidAmount(DanbaoError):
    code = "amount_invalid"


@dataclass(frozen=True, slots=True, order=True)
class Money:
    """An exact amount: minor units plus the currency they count."""

    minor: int
    currency: str

    def __post_init__(self) -> None:
        if type(self.minor) is not int:  # bool is an int subclass: refuse it too
            raise InvalidAmount(f"amount must be an integer of minor units, not {self.minor!r}")
        currency(self.currency)

    def __str__(self) -> str:
        return f"{format_amount(self.minor, self.currency)} {self.currency}"


def check_minor(minor: object, *, allow_zero: bool = False, field: str = "amount") -> int:
    """Validate an amount already in minor units (an API's integer field)."""
    if type(minor) is not int:
        raise InvalidAmount(f"{field} must be an integer of minor units", field=field)
    low = 0 if allow_zero else 1
    if minor < low:
        raise InvalidAmount(f"{field} must be at least {low}", field=field)
    if minor > AMOUNT_MAX_MINOR:
        raise InvalidAmount(f"{field} must be at most {AMOUNT_MAX_MINOR}", field=field)
    return minor


def parse_amount(
    text: object,
    currency_code: str,
    *,
    allow_negative: bool = False,
    allow_zero: bool = False,
    field: str = "amount",
) -> int:
    """Parse a decimal string in major units ("12.30") into minor units (1230)."""
    cur: Currency = currency(currency_code)
    if not isinstance(text, str):
        raise InvalidAmount(f"{field} must be a decimal string such as \"12.30\"", field=field)
    match = _DECIMAL.match(text.strip())
    if match is None:
        raise InvalidAmount(f"{field} {text!r} is not a plain decimal number", field=field)
    frac = match["frac"] or ""
    if len(frac) > cur.exponent:
        raise InvalidAmount(
            f"{field} {text!r} has more than {cur.exponent} decimals for {cur.code}", field=field
        )
    if len(match["whole"]) > 20:
        raise InvalidAmount(f"{field} {text!r} is too large", field=field)
    minor = int(match["whole"]) * cur.minor_per_major + int(frac.ljust(cur.exponent, "0") or "0")
    if match["sign"]:
        minor = -minor
    if minor < 0 and not allow_negative:
        raise InvalidAmount(f"{field} must not be negative", field=field)
    if minor == 0 and not allow_zero:
        raise InvalidAmount(f"{field} must not be zero", field=field)
    if abs(minor) > AMOUNT_MAX_MINOR:
        raise InvalidAmount(f"{field} exceeds the maximum {AMOUNT_MAX_MINOR} minor units", field=field)
    return minor


def format_amount(minor: int, currency_code: str) -> str:
    """Format minor units as a decimal string in major units: (1230, "USD") -> "12.30"."""
    cur = currency(currency_code)
    sign = "-" if minor < 0 else ""
    whole, frac = divmod(abs(minor), cur.minor_per_major)
    if cur.exponent == 0:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{frac:0{cur.exponent}d}"
