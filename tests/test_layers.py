"""The layers of DESIGN.md, read from the source: every import points down.

kernel (errors, text, clock, ids, money, lazy) <- store <- ledger <- trade <- adapters (api,
client) <- tools (sim, bench, cli). The domain (ledger, trade) knows nothing of HTTP or of
a database driver; the kernel depends on nothing outside the standard library.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parent.parent / "src" / "danbao"

KERNEL = {"errors", "text", "clock", "ids", "money", "lazy"}
# Each package of danbao, and the packages of danbao it may import besides itself.
MAY_IMPORT: dict[str, set[str]] = {
    **{name: KERNEL for name in KERNEL},
    "store": KERNEL,
    "ledger": KERNEL | {"store"},
    "trade": KERNEL | {"store", "ledger"},
    "api": KERNEL | {"store", "ledger", "trade"},
    "client": {"api"},  # the wire models only (danbao.api.models)
    "sim": KERNEL | {"store", "ledger", "trade"},
    "bench": KERNEL | {"store", "ledger", "trade", "api", "client"},
    "cli": KERNEL | {"store", "ledger", "trade", "api", "client", "sim", "bench"},
}
# What the domain must not know: HTTP and the database drivers (SQLAlchemy Core, which
# speaks every dialect, is how it reaches the store's tables).
NOT_IN_DOMAIN = {"fastapi", "starlette", "uvicorn", "httpx", "psycopg", "sqlite3", "pydantic"}


def _package(path: Path) -> str:
    return path.relative_to(SOURCE).parts[0].removesuffix(".py")


def _imports(path: Path) -> set[str]:
    """Every module `path` imports by absolute name (inside functions too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


MODULES = sorted(p for p in SOURCE.rglob("*.py") if _package(p) != "__init__")


def test_every_package_has_its_place_in_the_layers() -> None:
    assert MODULES, "the source is where this test looks for it"
    assert {_package(p) for p in MODULES} <= set(MAY_IMPORT)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SOURCE)))
def test_imports_point_down(path: Path) -> None:
    package = _package(path)
    imported = _imports(path)
    inside = {name.split(".")[1] for name in imported if name.startswith("danbao.")}
    assert inside - {package} <= MAY_IMPORT.get(package, set()), f"{package} may not import {sorted(inside - {package} - MAY_IMPORT.get(package, set()))}"
    outside = {name.split(".")[0] for name in imported if name.split(".")[0] != "danbao"}
    if package in {"ledger", "trade"}:
        assert not outside & NOT_IN_DOMAIN, f"the domain imports {sorted(outside & NOT_IN_DOMAIN)}"
    if package in KERNEL:
        assert outside <= set(sys.stdlib_module_names) | {"__future__"}, f"the kernel imports {sorted(outside - set(sys.stdlib_module_names))}"


def test_a_wrong_way_import_is_caught(tmp_path: Path) -> None:
    """The check itself can fail: a ledger module reaching up into the API is seen."""
    wrong = tmp_path / "wrong.py"
    wrong.write_text("def f():\n    from danbao.api.app import create_app\n    return create_app\n")
    assert "danbao.api.app" in _imports(wrong)


# What a process that only calls the API, or receives its webhooks, has no use for.
SERVER_ONLY = {"fastapi", "starlette", "uvicorn", "sqlalchemy", "alembic", "psycopg", "sqlite3"}


def _modules_after(statement: str) -> list[str]:
    """The modules a fresh interpreter holds after running `statement`."""
    return subprocess.run(
        [sys.executable, "-c", f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout.split()


def test_the_cli_loads_the_books_only_for_a_command_that_reads_them() -> None:
    """`danbao --help` took a second, most of it SQLAlchemy, Alembic, psycopg and the ledger."""
    shown = _modules_after("import danbao.cli.main")
    assert "danbao.cli.main" in shown
    assert not {name.split(".")[0] for name in shown} & SERVER_ONLY
    assert not {name for name in shown if name.startswith(("danbao.ledger", "danbao.trade", "danbao.store", "danbao.sim", "danbao.api"))}


def test_the_client_loads_none_of_the_server() -> None:
    """An integrator's process imports `danbao.client` for the API's wire models and the
    webhook check; it loaded the whole server with them (a second of start-up) until the
    packages' names loaded on first use (`danbao.lazy`)."""
    shown = _modules_after("import danbao.client")
    assert "danbao.client" in shown
    assert not {name.split(".")[0] for name in shown} & SERVER_ONLY
    inside = {name for name in shown if name.startswith("danbao.")}
    assert inside <= {"danbao.client", "danbao.lazy", "danbao.errors", "danbao.api", "danbao.api.models", "danbao.api.signature", "danbao.api.event_types", "danbao.money", "danbao.money.amount", "danbao.money.currency", "danbao.trade", "danbao.trade.model"}, sorted(inside)
