"""Packages whose public names load on first use.

A package's `__init__` that imports its modules makes every importer of any one of them
pay for all: `danbao.client` needs the API's wire models and, through them, a few of the
trade engine's limits, and importing those eagerly loaded the server (FastAPI,
SQLAlchemy, Alembic, the ledger) into every client process, about a second. A package
declares instead which module defines each public name; the name is imported when first
read and kept, so later reads cost what a plain attribute does.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from danbao.errors import invariant


def exports(package: str, where: dict[str, str]) -> tuple[list[str], Callable[[str], Any], Callable[[], list[str]]]:
    """`__all__`, `__getattr__` and `__dir__` for `package`, whose name `n` lives in the
    module `where[n]` (absolute, under the package)."""
    prefix = package + "."
    invariant(all(module.startswith(prefix) for module in where.values()), f"{package} exports only its own modules")

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        vars(importlib.import_module(package))[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(importlib.import_module(package))) | set(where))

    return sorted(where), __getattr__, __dir__
