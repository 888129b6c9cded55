"""Trade settings are validated when made, and the fee split never creates or loses a cent."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from danbao.money import AMOUNT_MAX_MINOR
from danbao.trade import TradeConfig, share_of


@pytest.mark.parametrize(
    "changes",
    [
        {"fee_rate_bp": 10_001}, {"insurance_rate_bp": 10_001}, {"insurance_rate_bp": -1}, {"fee_rate_bp": True},
        {"pay_window_seconds": 1.5}, {"return_fee_payer": "courier"}, {"compensation_multiple": 0}, {"compensation_multiple": 11},
    ],
)
def test_impossible_settings_are_refused(changes: dict) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValueError):
        TradeConfig(**changes)


@pytest.mark.parametrize(
    "changes",
    [{"fee_rate_bp": 10_000, "insurance_rate_bp": 10_000}, {"fee_rate_bp": 0}, {"compensation_multiple": 1}, {"compensation_multiple": 10}, {"return_fee_payer": "buyer"}],
)
def test_the_bounds_of_each_setting_are_settings(changes: dict) -> None:  # type: ignore[type-arg]
    config = TradeConfig(**changes)
    assert all(getattr(config, name) == value for name, value in changes.items())


@given(amount=st.integers(0, AMOUNT_MAX_MINOR), rate=st.integers(0, 10_000))
def test_a_share_is_a_rounded_part_of_the_whole(amount: int, rate: int) -> None:
    share = share_of(amount, rate)
    assert 0 <= share <= amount
    # Rounded half up: within half a minor unit of the exact value.
    assert abs(share * 10_000 - amount * rate) <= 5_000


def test_half_a_minor_unit_rounds_up() -> None:
    assert share_of(25, 200) == 1  # 0.5 -> 1
    assert share_of(24, 200) == 0  # 0.48 -> 0
    assert share_of(75, 200) == 2  # 1.5 -> 2
