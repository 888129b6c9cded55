"""docs/trades.md tells the truth: every table row, timeout, setting and code is there."""

from __future__ import annotations

from pathlib import Path

from danbao.trade.config import settings_help
from danbao.trade.errors import TradeCode
from danbao.trade.machine import DUE, TABLE

DOC = (Path(__file__).parents[2] / "docs" / "trades.md").read_text()


def test_every_transition_row_is_documented() -> None:
    for model, rules in TABLE.items():
        assert f"### {model.value}" in DOC
        for (status, action), rule in rules.items():
            row = f"| {status.value} | `{action.value}` | {', '.join(sorted(rule.actors))} | {' or '.join(s.value for s in rule.to)} |"
            assert row in DOC, row


def test_every_timeout_setting_and_code_is_documented() -> None:
    for (model, status), (action, column) in DUE.items():
        assert f"| {model.value} | {status.value} | `{action.value}` | {column or 'at once'} |" in DOC
    for name, (default, help_text) in settings_help().items():
        assert f"| `{name}` | {default} | {help_text} |" in DOC
        assert help_text
    for code in TradeCode:
        assert f"`{code.value}`" in DOC
