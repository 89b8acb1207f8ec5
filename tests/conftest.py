"""Shared test set-up.

- `docs/docs_support.py` (the helpers the docs build and tests share) is importable.
- Every test runs torch on one thread: the tests use tiny tensors, which one thread handles fastest, and
  `make test` runs two pytest workers on two cores; two threads each would fight over the cores.
- The header names the CPU kernel level torch runs (`ATEN_CPU_CAPABILITY`; see scripts/cpu_matrix.py).
- Hugging Face's progress bars and log level are put back after each test: an example script that a test
  imports may switch them off for the whole process, and a later test on the same worker must not depend on it.
- The session gets an id, so that a docs page runs once per session (docs/conftest.py, `docs_support.PageReplay`).
- The browser tests come first: the longest file of the suite (it builds the site, running every docs page, then
  drives Chromium for a minute or two). `make test` distributes whole files in collection order
  (`--dist loadfile --no-loadscope-reorder`), so it starts at once on one worker while the other takes the
  rest, instead of starting last and running alone at the end.
"""

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

DOCS_DIR = Path(__file__).resolve().parents[1] / "docs"
if str(DOCS_DIR) not in sys.path:
    sys.path.insert(0, str(DOCS_DIR))

from docs_support import end_test_session, start_test_session  # noqa: E402 - needs the path above


def pytest_configure(config: pytest.Config) -> None:
    start_test_session()


def pytest_unconfigure(config: pytest.Config) -> None:
    end_test_session()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.get_closest_marker("browser") is None)  # stable: the rest keeps its order


def pytest_report_header() -> str:
    """The CPU kernel level in the header: float32 results differ between levels (Conventions, tolerances)."""
    return f"torch {torch.__version__}, CPU kernels: {torch.backends.cpu.get_cpu_capability()}"


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _transformers_logging_restored() -> Iterator[None]:
    hf_logging = sys.modules.get("transformers.utils.logging")  # imported at collection by the tests that use it
    if hf_logging is None:
        yield
        return
    bars, verbosity = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()
    yield
    if hf_logging.is_progress_bar_enabled() != bars:
        (hf_logging.enable_progress_bar if bars else hf_logging.disable_progress_bar)()
    hf_logging.set_verbosity(verbosity)
