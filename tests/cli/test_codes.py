"""The CLI's own codes are one enum, each of them used (`tests/test_codes.py`: none is written
as a string)."""

from __future__ import annotations

from pathlib import Path

from danbao.cli.codes import CliCode

CLI_SOURCE = Path(__file__).parents[2] / "src" / "danbao" / "cli"


def test_every_cli_code_is_given_somewhere() -> None:
    source = "\n".join(path.read_text() for path in CLI_SOURCE.glob("*.py") if path.name != "codes.py")
    assert [code.name for code in CliCode if f"CliCode.{code.name}" not in source] == []
