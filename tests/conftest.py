"""Shared test set-up.

- `docs/docs_support.py` (the helpers the docs build and tests share) is importable.
- Every test runs torch on one thread: the tests use tiny tensors, which one thread handles fastest, and
  `make test` runs two pytest workers on two cores; two threads each would fight over the cores.
- The header names the CPU kernel level torch runs (`ATEN_CPU_CAPABILITY`; see scripts/cpu_matrix.py).
"""

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

DOCS_DIR = Path(__file__).resolve().parents[1] / "docs"
if str(DOCS_DIR) not in sys.path:
    sys.path.insert(0, str(DOCS_DIR))


def pytest_report_header() -> str:
    """The CPU kernel level in the header: float32 results differ between levels (Conventions, tolerances)."""
    return f"torch {torch.__version__}, CPU kernels: {torch.backends.cpu.get_cpu_capability()}"


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
