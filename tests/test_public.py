"""Each package's public surface: what its `__all__` declares, it exports."""

from __future__ import annotations

import importlib

import pytest

PACKAGES = ("danbao.money", "danbao.store", "danbao.ledger", "danbao.trade", "danbao.api")


@pytest.mark.parametrize("package", PACKAGES)
def test_a_package_exports_what_it_declares(package: str) -> None:
    module = importlib.import_module(package)
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert not missing, missing
    assert len(set(module.__all__)) == len(module.__all__), "declared once each"


LAZY = ("danbao.trade", "danbao.api")


@pytest.mark.parametrize("package", LAZY)
def test_a_lazy_package_names_what_it_exports_and_keeps_what_was_read(package: str) -> None:
    module = importlib.import_module(package)
    assert set(module.__all__) <= set(dir(module))
    name = module.__all__[0]
    value = getattr(module, name)
    assert vars(module)[name] is value, "read once, then a plain attribute"


@pytest.mark.parametrize("package", LAZY)
def test_a_lazy_package_refuses_a_name_it_does_not_export(package: str) -> None:
    module = importlib.import_module(package)
    with pytest.raises(AttributeError, match=f"{package}.*no_such_name"):
        module.no_such_name  # noqa: B018


def test_a_lazy_package_still_gives_its_modules() -> None:
    from danbao.trade import repository

    assert repository.__name__ == "danbao.trade.repository"


def test_an_export_outside_the_package_is_refused_at_declaration() -> None:
    from danbao.errors import InvariantViolation
    from danbao.lazy import exports

    with pytest.raises(InvariantViolation):
        exports("danbao.trade", {"Ledger": "danbao.ledger.ledger"})
