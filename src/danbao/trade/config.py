"""Trade settings: one registry of names, defaults and help (windows, rates, limits).

Rates are basis points (1/100 of a percent) so every computation stays in integers.
Durations are seconds. Deadlines are computed when a transition happens and stored on the
trade, so changing a setting never moves a deadline already promised to someone.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

MINUTE = 60
DAY = 24 * 3600
BASIS_POINTS = 10_000


def _setting(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True, slots=True)
class TradeConfig:
    pay_window_seconds: int = _setting(30 * MINUTE, "an unpaid trade closes after this long")
    ship_window_seconds: int = _setting(3 * DAY, "after this long unshipped, the buyer may cancel a paid escrow trade for a full refund")
    confirm_window_seconds: int = _setting(10 * DAY, "a shipped escrow trade confirms itself after this long (the clock stops while a refund or dispute is open)")
    confirm_extension_seconds: int = _setting(3 * DAY, "how much the buyer's one extension adds to the confirm window")
    refund_response_seconds: int = _setting(5 * DAY, "the seller's time to answer a refund request; silence is agreement")
    claim_window_seconds: int = _setting(30 * DAY, "how long after paying a direct trade the buyer may claim")
    fee_rate_bp: int = _setting(200, "the platform fee on what the seller receives, in basis points, rounded half up to the minor unit")
    insurance_rate_bp: int = _setting(100, "the direct seller's insurance premium per sale, in basis points of the price, rounded half up")
    compensation_multiple: int = _setting(2, "an upheld direct claim pays the buyer this multiple of the price")
    deposit_minimum: int = _setting(50_000, "minor units a direct seller must keep on deposit (per currency)")
    courier_cash_limit: int = _setting(500_000, "default most cash (minor units per currency) a courier may carry unremitted")
    remit_window_seconds: int = _setting(1 * DAY, "a courier must remit collected cash within this long, or is flagged")
    return_fee: int = _setting(1_000, "minor units charged for returning goods refused at the door")
    return_fee_payer: str = _setting("seller", "who pays the return fee: seller or buyer")

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "return_fee_payer":
                if value not in ("seller", "buyer"):
                    raise ValueError("return_fee_payer must be seller or buyer")
            elif type(value) is not int or value < 0:
                raise ValueError(f"{f.name} must be a non-negative integer")
        if self.fee_rate_bp > BASIS_POINTS or self.insurance_rate_bp > BASIS_POINTS:
            raise ValueError("a rate cannot exceed 100%")
        if not 1 <= self.compensation_multiple <= 10:
            raise ValueError("compensation_multiple must be between 1 and 10")

    def but(self, **changes: Any) -> TradeConfig:
        return replace(self, **changes)


def settings_help() -> dict[str, tuple[Any, str]]:
    """name -> (default, help), for docs and `--help` output."""
    return {f.name: (f.default, f.metadata["help"]) for f in fields(TradeConfig)}


def share_of(amount: int, rate_bp: int) -> int:
    """`amount x rate` in minor units, rounded half up: integers only, so no cent is lost.

    The remainder stays with the other side of the split (seller = amount - fee), so the
    two parts always add up to the whole.
    """
    return (amount * rate_bp + BASIS_POINTS // 2) // BASIS_POINTS
