"""Run the `>>>` examples of every docstring under llmdocs/ (subpackages included) with Sybil.

The pattern `*.py` matches at any depth (Sybil matches it against the path from the right; a `**/` prefix
would wrongly skip the top-level modules on Python 3.11). Each module's examples share one namespace and run
in a fresh temporary directory with `LLMDOCS_FIGURES_DIR` inside it, after seeding random/numpy/torch with 0.
pytest's own doctest plugin is off (`-p no:doctest` in pyproject.toml) so nothing runs twice.
"""

import contextlib
import doctest
import os
import random
import tempfile
from typing import Any

from sybil import Sybil
from sybil.parsers.rest import DocTestParser

_OPEN: dict[int, contextlib.ExitStack] = {}


def _setup(namespace: dict[str, Any]) -> None:
    stack = contextlib.ExitStack()
    tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="llmdocs-doctest-"))
    old = os.environ.get("LLMDOCS_FIGURES_DIR")
    os.environ["LLMDOCS_FIGURES_DIR"] = os.path.join(tmp, "figures")
    stack.callback(
        lambda: (
            os.environ.pop("LLMDOCS_FIGURES_DIR", None)
            if old is None
            else os.environ.__setitem__("LLMDOCS_FIGURES_DIR", old)
        )
    )
    stack.enter_context(contextlib.chdir(tmp))
    random.seed(0)
    try:
        import numpy as np
        import torch
    except ImportError:  # pragma: no cover
        pass
    else:
        np.random.seed(0)
        torch.manual_seed(0)
    _OPEN[id(namespace)] = stack


def _teardown(namespace: dict[str, Any]) -> None:
    stack = _OPEN.pop(id(namespace), None)
    if stack is not None:
        stack.close()


pytest_collect_file = Sybil(
    parsers=[DocTestParser(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)],
    patterns=["*.py"],
    excludes=["conftest.py"],
    setup=_setup,
    teardown=_teardown,
).pytest()
