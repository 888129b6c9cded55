"""ISO 4217 currencies danbao accepts, with the exponent of each (digits after the point).

The table is the single source of truth: an unknown code is rejected everywhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from danbao.errors import DanbaoError


class UnknownCurrency(DanbaoError):
    code = "currency_unknown"


@dataclass(frozen=True, slots=True)
class Currency:
    code: str
    exponent: int

    @property
    def minor_per_major(self) -> int:
        return 10**self.exponent


# Exponents from ISO 4217 (the published list, current currencies in use by payment networks).
_EXPONENTS: dict[str, int] = {
    # exponent 0
    "JPY": 0, "KRW": 0, "VND": 0, "CLP": 0, "ISK": 0, "PYG": 0, "UGX": 0, "XAF": 0,
    "XOF": 0, "RWF": 0, "KMF": 0, "GNF": 0, "VUV": 0, "XPF": 0, "DJF": 0, "BIF": 0,
    # exponent 3
    "KWD": 3, "BHD": 3, "OMR": 3, "JOD": 3, "TND": 3, "LYD": 3, "IQD": 3,
    # exponent 2
    "CNY": 2, "USD": 2, "EUR": 2, "GBP": 2, "HKD": 2, "TWD": 2, "SGD": 2, "MYR": 2,
    "THB": 2, "IDR": 2, "PHP": 2, "INR": 2, "AUD": 2, "NZD": 2, "CAD": 2, "CHF": 2,
    "SEK": 2, "NOK": 2, "DKK": 2, "PLN": 2, "CZK": 2, "HUF": 2, "RUB": 2, "TRY": 2,
    "BRL": 2, "MXN": 2, "ARS": 2, "COP": 2, "PEN": 2, "ZAR": 2, "NGN": 2, "KES": 2,
    "EGP": 2, "AED": 2, "SAR": 2, "QAR": 2, "ILS": 2, "PKR": 2, "BDT": 2, "LKR": 2,
    "MOP": 2, "UAH": 2, "RON": 2, "BGN": 2, "MAD": 2, "GHS": 2, "KZT": 2, "MNT": 2,
}

CURRENCIES: dict[str, Currency] = {code: Currency(code, exp) for code, exp in _EXPONENTS.items()}

_CODE_PATTERN = re.compile(r"^[A-Z]{3}\Z")


def is_currency(code: object) -> bool:
    """Is `code` one of the ISO 4217 codes danbao knows? Any object may be asked."""
    return isinstance(code, str) and code in CURRENCIES


def currency(code: object) -> Currency:
    """The currency for an ISO 4217 code, or UnknownCurrency."""
    if not isinstance(code, str) or not _CODE_PATTERN.match(code) or code not in CURRENCIES:
        raise UnknownCurrency(f"unknown currency {code!r}", field="currency")
    return CURRENCIES[code]
