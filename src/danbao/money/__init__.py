"""Money: integer minor units with an ISO 4217 currency, parsed and formatted in one place."""

from danbao.money.amount import (
    AMOUNT_MAX_MINOR,
    InvalidAmount,
    Money,
    check_minor,
    format_amount,
    parse_amount,
)
from danbao.money.currency import CURRENCIES, Currency, UnknownCurrency, currency, is_currency

__all__ = [
    "AMOUNT_MAX_MINOR",
    "CURRENCIES",
    "Currency",
    "InvalidAmount",
    "Money",
    "UnknownCurrency",
    "check_minor",
    "currency",
    "format_amount",
    "is_currency",
    "parse_amount",
]
