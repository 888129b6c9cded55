"""The simulated marketplace runs every model to its ends, repeatably, with balanced books."""

from __future__ import annotations

import pytest

from danbao.sim.market import MarketNotEmpty, MarketPlan, simulate

PLAN = MarketPlan(buyers=12, sellers=5, couriers=2, days=25, trades_per_day=30, seed=11, dishonest_share=0.4)


def test_a_month_of_trading_ends_with_balanced_books_and_every_kind_of_ending(database_url: str) -> None:
    report = simulate(database_url, PLAN)
    assert report.audit_ok, report.audit_violations
    endings = {status for _, status in report.outcomes}
    assert {"completed", "refunded", "closed", "settled", "returned", "compensated"} <= endings
    assert report.fees > 0 and report.premiums > 0 and report.compensation_from_deposits > 0
    assert {model for model, _ in report.outcomes} == {"escrow", "direct", "cod"}
    # Every trade the plan started exists, except those a guard refused at creation.
    refused_at_creation = report.refusals["deposit_below_minimum"] + report.refusals["seller_in_debt"]
    assert sum(report.outcomes.values()) + refused_at_creation == PLAN.days * PLAN.trades_per_day


def test_the_same_seed_gives_the_same_market(tmp_path) -> None:  # type: ignore[no-untyped-def]
    plan = MarketPlan(buyers=6, sellers=3, couriers=1, days=5, trades_per_day=20, seed=3)
    first = simulate(f"sqlite:///{tmp_path}/a.db", plan)
    second = simulate(f"sqlite:///{tmp_path}/b.db", plan)
    assert first.outcomes == second.outcomes and first.fees == second.fees
    assert first.escrow_held == second.escrow_held


def test_the_simulation_refuses_a_database_that_is_already_in_use(tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path}/a.db"
    simulate(url, MarketPlan(days=1, trades_per_day=1, buyers=1, sellers=1, couriers=1))
    with pytest.raises(MarketNotEmpty):
        simulate(url, MarketPlan(days=1, trades_per_day=1, buyers=1, sellers=1, couriers=1))
