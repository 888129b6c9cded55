"""docs/ledger.md tells the truth: every result code in guard order with whether it is
transient, every read code, every flag with its value, every kind, and every bound with
its value."""

from __future__ import annotations

import re
from pathlib import Path

from danbao.ledger import group_commit, model
from danbao.ledger import ledger as ledger_module
from danbao.ledger.model import AccountFlags, AccountKind, TransferFlags
from danbao.ledger.results import ReadCode, Result
from danbao.money import AMOUNT_MAX_MINOR

DOC = (Path(__file__).parents[2] / "docs" / "ledger.md").read_text()

BOUNDS = {
    "TRANSFERS_PER_BATCH_MAX": model.TRANSFERS_PER_BATCH_MAX,
    "ACCOUNTS_PER_BATCH_MAX": model.ACCOUNTS_PER_BATCH_MAX,
    "AMOUNT_MAX_MINOR": AMOUNT_MAX_MINOR,
    "TOTAL_MAX": model.TOTAL_MAX,
    "TIMEOUT_SECONDS_MAX": model.TIMEOUT_SECONDS_MAX,
    "METADATA_BYTES_MAX": model.METADATA_BYTES_MAX,
    "PAGE_LIMIT_MAX": model.PAGE_LIMIT_MAX,
    "EXPIRIES_PER_BATCH_MAX": ledger_module.EXPIRIES_PER_BATCH_MAX,
    "HISTORY_MARK_EVERY": model.HISTORY_MARK_EVERY,
    "QUEUE_REQUESTS_MAX": group_commit.QUEUE_REQUESTS_MAX,
    "WORKS_PER_GROUP_MAX": ledger_module.WORKS_PER_GROUP_MAX,
}


def test_every_result_code_is_documented_in_guard_order_with_whether_it_is_transient() -> None:
    rows = re.findall(r"^\| `(\w+)` \| (yes|no) \|", DOC, flags=re.MULTILINE)
    assert rows == [(r.value, "yes" if r.transient else "no") for r in Result]


def test_every_read_code_is_documented_in_order() -> None:
    rows = re.findall(r"^\| `(\w+)` \| `(\w+)` \|", DOC, flags=re.MULTILINE)
    assert [code for code, _ in rows] == [c.value for c in ReadCode]


def test_every_flag_is_documented_with_its_value() -> None:
    for flag in (*AccountFlags, *TransferFlags):
        if flag.value:
            assert f"| `{flag.name}` | {flag.value} |" in DOC, flag


def test_every_kind_is_documented() -> None:
    kinds = re.search(r"^Kinds: (.*?)\.$", DOC, flags=re.MULTILINE | re.DOTALL)
    assert kinds is not None
    assert re.findall(r"`(\w+)`", kinds.group(1)) == [k.value for k in AccountKind]


def test_every_bound_is_documented_with_its_value() -> None:
    for name, value in BOUNDS.items():
        assert f"| `{name}` | {value:,} |" in DOC, name
