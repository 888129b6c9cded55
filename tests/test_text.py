"""Text every store can hold: what `storable` lets through to SQL and what it keeps out."""

import pytest

from danbao.text import storable


@pytest.mark.parametrize("value", ["alice", "acct.p_1.wallet.CNY", "茶馆", "emoji 🍵", "", "line\nbreak"])
def test_text_both_backends_hold_is_storable(value: str) -> None:
    assert storable(value)


@pytest.mark.parametrize(
    "value",
    [
        "a\x00b",  # PostgreSQL's text refuses NUL
        "\ud800",  # a lone surrogate: UTF-8 cannot encode it
        "bad\udcffbyte",  # how an undecodable command-line byte arrives
        None,
        5,
        b"bytes",
        ["alice"],
    ],
)
def test_text_no_backend_can_hold_is_not(value: object) -> None:
    assert not storable(value)
