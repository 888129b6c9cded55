"""Every code a refusal carries is named once, by an enum member or by its error class,
and used through that name: no module writes a code as a string."""

from __future__ import annotations

from pathlib import Path

from tests.codes import literal_codes

SOURCE = Path(__file__).parents[1] / "src" / "danbao"


def test_no_module_writes_a_code_as_a_string() -> None:
    literal = {f"{path.relative_to(SOURCE)}:{line}": code for path in sorted(SOURCE.rglob("*.py")) for line, code in literal_codes(path)}
    assert not literal, literal


def test_the_literal_check_sees_a_literal_and_passes_a_definition(tmp_path: Path) -> None:
    """The check itself can fail."""
    source = tmp_path / "route.py"
    source.write_text(
        'def f():\n    raise DanbaoError("no", code="made_up")\n\n'
        'def g():\n    return problem("also_made_up", "x")\n\n'
        'def h():\n    code = "third"\n    return code\n\n'
        'class Busy(Exception):\n    code = "defined_here"\n'
    )
    assert [code for _, code in literal_codes(source)] == ["made_up", "also_made_up", "third"]
