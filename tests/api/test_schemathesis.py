"""schemathesis against the served OpenAPI document: no 5xx, and every response conforms
to the schema (status code documented, body matching its model).

Excluded: `positive_data_acceptance`, which expects every schema-valid request to be
accepted. A payments API must refuse schema-valid requests by its rules (insufficient
funds, a trade in the wrong state, a seller without a deposit), and says so with 4xx
problem+json bodies that the other checks do validate.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.api.conftest import Live

# Invalid data must be refused with a 4xx that says why. schemathesis's own list lacks 413,
# which is how an oversized body is refused (the body bound is checked before its schema).
REFUSALS = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429"]
CONFIG = SchemathesisConfig.from_dict({"checks": {"negative_data_rejection": {"expected-statuses": REFUSALS}}})


@pytest.fixture
def api_schema(live: Live):  # type: ignore[no-untyped-def]
    # Something real to find: parties, money and a trade, so ids are not all unknown.
    ann = live.party("buyer", "ann")
    live.party("seller", "tea")
    ann.top_up(10_000, "CNY")
    ann.create_trade(seller_id="tea", model="escrow", amount=500, currency="CNY")
    return schemathesis.openapi.from_url(f"{live.url}/openapi.json", config=CONFIG)


@pytest.fixture
def admin_headers(live: Live) -> dict[str, str]:
    return {"Authorization": f"Bearer {live.admin_key}"}


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)
def test_the_api_honours_its_own_schema(case, admin_headers) -> None:  # type: ignore[no-untyped-def]
    case.call_and_validate(headers=admin_headers, excluded_checks=[positive_data_acceptance])
