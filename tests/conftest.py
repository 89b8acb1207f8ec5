"""Shared test set-up.

- `docs/docs_support.py` (the helpers the docs build and tests share) is importable.
- Every test runs torch on one thread: the tests use tiny tensors, which one thread handles fastest, and
  `make test` runs two pytest workers on two cores; two threads each would fight over the cores.
"""

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

DOCS_DIR = Path(__file__).resolve().parents[1] / "docs"
if str(DOCS_DIR) not in sys.path:
    sys.path.insert(0, str(DOCS_DIR))


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
