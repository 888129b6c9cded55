"""Every code an answer can carry is named once, in an enum, and docs/api.md gives each of
the API's own codes, and each domain code with a status of its own, that very status."""

from __future__ import annotations

import re
from pathlib import Path

from danbao.api.keys import KEYS_PER_PARTY_MAX
from danbao.api.problems import STATUS_BY_CODE, ApiCode, status_of
from danbao.api.webhooks import ENDPOINTS_PER_PARTY_MAX, OVERSEER_ENDPOINTS_MAX
from danbao.ledger.results import ReadCode, Result
from danbao.money.amount import InvalidAmount
from danbao.money.currency import UnknownCurrency
from danbao.store.errors import IntegrityViolation, StoreError, StoreUnavailable, TransientStoreError
from danbao.trade.errors import TradeCode

ROOT = Path(__file__).parents[2]
DOC = (ROOT / "docs" / "api.md").read_text()
STORE_CODES = {e.code for e in (StoreError, TransientStoreError, StoreUnavailable, IntegrityViolation)}
ORIGINS = {
    "ledger": {r.value for r in Result},
    "ledger reads": {c.value for c in ReadCode},
    "trade engine": {c.value for c in TradeCode},
    "store": STORE_CODES,
}
KNOWN = {c.value for c in ApiCode} | {InvalidAmount.code, UnknownCurrency.code} | set().union(*ORIGINS.values())


def _table(heading: str) -> list[tuple[str, int, str]]:
    section = DOC.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return [(code, int(status), rest) for code, status, rest in re.findall(r"^\| `(\w+)` \| (\d+) \| (.*) \|$", section, flags=re.MULTILINE)]


def test_every_code_the_api_adds_is_documented_with_its_status() -> None:
    rows = _table("Codes the API adds")
    assert [code for code, _, _ in rows] == [c.value for c in ApiCode], "in the enum's order"
    assert [(code, status) for code, status, _ in rows] == [(c.value, status_of(c.value)) for c in ApiCode]


def test_every_domain_code_with_a_status_of_its_own_is_documented_with_it() -> None:
    rows = _table("Domain codes with a status of their own")
    api_codes = {c.value for c in ApiCode}
    assert {code: status for code, status, _ in rows} == {code: status for code, status in STATUS_BY_CODE.items() if code not in api_codes}
    for code, _, origin in rows:
        source = origin.split(":")[0].split(",")[0].strip()
        assert code in ORIGINS[source], f"{code} is not the {source}'s"


def test_the_status_table_names_only_codes_that_exist() -> None:
    # A misspelt code here would leave the real one a 400 without anything failing.
    assert set(STATUS_BY_CODE) <= KNOWN, sorted(set(STATUS_BY_CODE) - KNOWN)


def test_the_documented_limits_are_the_codes_limits() -> None:
    assert f"already holds {KEYS_PER_PARTY_MAX} live API keys" in DOC
    assert f"already has {ENDPOINTS_PER_PARTY_MAX} webhook endpoints active" in DOC
    assert f"together already have {OVERSEER_ENDPOINTS_MAX} " in DOC
