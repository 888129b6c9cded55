"""The CLI's own codes are one enum, each of them used, none written as a literal."""

from __future__ import annotations

from pathlib import Path

from danbao.cli.codes import CliCode
from tests.codes import literal_codes

CLI_SOURCE = Path(__file__).parents[2] / "src" / "danbao" / "cli"


def test_the_cli_names_codes_by_their_enums_not_by_strings() -> None:
    literal = {f"{path.name}:{line}": code for path in sorted(CLI_SOURCE.glob("*.py")) for line, code in literal_codes(path)}
    assert not literal, literal


def test_every_cli_code_is_given_somewhere() -> None:
    source = "\n".join(path.read_text() for path in CLI_SOURCE.glob("*.py") if path.name != "codes.py")
    assert [code.name for code in CliCode if f"CliCode.{code.name}" not in source] == []
