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
