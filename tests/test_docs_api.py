"""Every public module of llmdocs imports, and gets an API page (docs/gen_api.py walks the same list)."""

import importlib
import inspect

import pytest
from docs_support import public_modules

MODULES = public_modules()


def test_walk_finds_the_package_and_skips_private_modules() -> None:
    assert MODULES[0] == "llmdocs"
    assert "llmdocs.viz" in MODULES
    assert not any(part.startswith("_") for name in MODULES for part in name.split("."))
    assert not any(name.endswith(".conftest") for name in MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_public_module_imports_and_is_documented(name: str) -> None:
    module = importlib.import_module(name)
    assert inspect.getdoc(module), f"{name} has no module docstring: its API page would open empty"
