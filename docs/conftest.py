"""Run every ```python block of docs/**/*.md with Sybil: one namespace per page, in order.

Each page runs in a fresh temporary directory with `LLMDOCS_FIGURES_DIR` inside it, after seeding
random/numpy/torch with 0 (docs/docs_support.py, shared with the build's hook, which runs every page for its
figures, outputs and notebook).
`*.md` matches at any depth: Sybil matches patterns against the path from the right.

A test session runs each page once: the build of tests/test_browser.py and tests/test_docs_figures.py need
the same run, so every example reports what it did in the page's run of this session, made by whichever
needed it first (`docs_support.PageReplay`; the session id comes from `pytest_configure` below).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import pytest
from docs_support import PAGE_CACHE_DIR, PageReplay, end_test_session, markdown_parsers, start_test_session
from sybil import Document, Sybil


class PageSybil(Sybil):
    """Sybil whose documents report the outcomes of their page's one run (`PageReplay`)."""

    def parse(self, path: Path) -> Document:
        document = super().parse(path)
        document.push_evaluator(PageReplay(Path(path), PAGE_CACHE_DIR))
        return document


def pytest_configure(config: pytest.Config) -> None:
    start_test_session()


def pytest_unconfigure(config: pytest.Config) -> None:
    end_test_session()


pytest_collect_file = PageSybil(
    parsers=markdown_parsers(),
    patterns=["*.md"],
    excludes=["assets/*"],
).pytest()
