"""Import an example script as a module (scripts are not a package), for the tests that call its functions."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load_script(relative: str) -> ModuleType:
    """``load_script("benchmarks/gpt.py")``: the module of ``examples/<relative>``, registered in ``sys.modules``."""
    path = EXAMPLES / relative
    name = path.stem
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look the module up by name
    spec.loader.exec_module(module)
    return module
