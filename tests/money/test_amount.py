"""Money is parsed and formatted in one place, exactly, and refuses what is not money."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from danbao.money import (
    AMOUNT_MAX_MINOR,
    CURRENCIES,
    InvalidAmount,
    Money,
    UnknownCurrency,
    check_minor,
    currency,
    format_amount,
    parse_amount,
)


@pytest.mark.parametrize(
    ("text", "code", "minor"),
    [
        ("12.30", "USD", 1230),
        ("12.3", "USD", 1230),
        ("12", "CNY", 1200),
        ("0.01", "EUR", 1),
        ("1500", "JPY", 1500),
        ("1.234", "KWD", 1234),
        (" 7.5 ", "USD", 750),
    ],
)
def test_parses_decimal_strings_into_minor_units(text, code, minor):
    assert parse_amount(text, code) == minor


@pytest.mark.parametrize(
    "text",
    # Digits are ASCII only: "١٢" (Arabic-Indic) and "１２" (full-width) are not amounts.
    ["1.234", "12.300", "1e3", "abc", "", "1.", ".5", "+1", "1,000", "0x10", "NaN", "inf", "--1", "1.2.3", "\u0661\u0662", "\uff11\uff12", "1.\u0665", "1_000"],
)
def test_refuses_anything_but_a_plain_decimal_with_the_right_scale(text):
    with pytest.raises(InvalidAmount):
        parse_amount(text, "USD")
    with pytest.raises(InvalidAmount):  # not merely as a negative or a zero
        parse_amount(text, "USD", allow_negative=True, allow_zero=True)


@pytest.mark.parametrize("text", ["abc", "1.234", "9" * 40, "-1", "0", "10000000000000.01", 12.3])
def test_every_refusal_names_the_field_it_was_given(text):
    with pytest.raises(InvalidAmount) as refused:
        parse_amount(text, "USD", field="price")
    assert refused.value.field == "price"


def test_refuses_decimals_for_zero_exponent_currencies():
    with pytest.raises(InvalidAmount, match="more than 0 decimals"):
        parse_amount("10.5", "JPY")


@pytest.mark.parametrize("value", [12.3, 1230, None, b"12"])
def test_refuses_non_strings_including_floats(value):
    with pytest.raises(InvalidAmount):
        parse_amount(value, "USD")


def test_refuses_negatives_and_zero_unless_allowed():
    for negative in ("-1.00", "-0.01"):
        with pytest.raises(InvalidAmount, match="negative"):
            parse_amount(negative, "USD")
    with pytest.raises(InvalidAmount):
        parse_amount("0", "USD")
    assert parse_amount("-1.00", "USD", allow_negative=True) == -100
    assert parse_amount("0.00", "USD", allow_zero=True) == 0


def test_refuses_amounts_over_the_documented_bound():
    top = format_amount(AMOUNT_MAX_MINOR, "USD")
    assert parse_amount(top, "USD") == AMOUNT_MAX_MINOR
    with pytest.raises(InvalidAmount, match="maximum"):
        parse_amount(format_amount(AMOUNT_MAX_MINOR + 1, "USD"), "USD")
    with pytest.raises(InvalidAmount, match="too large"):
        parse_amount("9" * 40, "USD")
    # The bound holds below zero as above it.
    assert parse_amount("-" + top, "USD", allow_negative=True) == -AMOUNT_MAX_MINOR
    with pytest.raises(InvalidAmount, match="maximum"):
        parse_amount(format_amount(-AMOUNT_MAX_MINOR - 1, "USD"), "USD", allow_negative=True)


def test_unknown_currencies_are_refused_everywhere():
    for code in ["XXX", "usd", "US", "", None, "DOGE"]:
        with pytest.raises(UnknownCurrency):
            currency(code)
        with pytest.raises(UnknownCurrency):
            parse_amount("1", code)


def test_exponents_follow_iso_4217():
    assert (currency("JPY").exponent, currency("CNY").exponent, currency("KWD").exponent) == (0, 2, 3)


@pytest.mark.parametrize("value", [0, -1, AMOUNT_MAX_MINOR + 1, 1.0, True, "5", None])
def test_check_minor_refuses_non_positive_oversized_and_non_integers(value):
    with pytest.raises(InvalidAmount):
        check_minor(value)


def test_check_minor_takes_its_bounds_themselves():
    assert check_minor(1) == 1
    assert check_minor(AMOUNT_MAX_MINOR) == AMOUNT_MAX_MINOR
    assert check_minor(0, allow_zero=True) == 0


def test_money_refuses_floats_and_bools():
    with pytest.raises(InvalidAmount):
        Money(1.5, "USD")  # type: ignore[arg-type]
    with pytest.raises(InvalidAmount):
        Money(True, "USD")  # type: ignore[arg-type]
    assert str(Money(-1205, "USD")) == "-12.05 USD"


def test_money_refuses_an_unknown_currency():
    with pytest.raises(UnknownCurrency):
        Money(100, "XYZ")


@given(st.integers(-AMOUNT_MAX_MINOR, AMOUNT_MAX_MINOR), st.sampled_from(sorted(CURRENCIES)))
def test_format_then_parse_is_the_identity(minor, code):
    assert parse_amount(format_amount(minor, code), code, allow_negative=True, allow_zero=True) == minor
