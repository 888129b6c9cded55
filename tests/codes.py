"""Finding codes written as string literals, where an enum must name them."""

from __future__ import annotations

import ast
from pathlib import Path


def literal_codes(path: Path) -> list[tuple[int, str]]:
    """String constants given as a code: `code=...`, `code = ...`, or the first argument
    of problem() and an idempotency refusal. An error class naming its own code in its
    body (`code = "store_busy"`) is that code's one definition, not a use."""
    tree = ast.parse(path.read_text())
    definitions = {id(node) for cls in ast.walk(tree) if isinstance(cls, ast.ClassDef) for node in cls.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            values = [kw.value for kw in node.keywords if kw.arg == "code"]
            if name in ("problem", "problem_body", "_refuse") and node.args:
                values.append(node.args[0])
        elif isinstance(node, ast.Assign) and id(node) not in definitions and any(getattr(t, "id", None) == "code" for t in node.targets):
            values = [node.value]
        else:
            continue
        found += [(v.lineno, v.value) for v in values if isinstance(v, ast.Constant) and isinstance(v.value, str)]
    return sorted(found)
