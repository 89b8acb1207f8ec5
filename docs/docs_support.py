"""What the docs tests and the docs build share: Sybil parsers, the page environment, figures, API modules.

One module so that a page is executed the same way by `pytest docs` (docs/conftest.py), by the figure hook of
`mkdocs build` (docs/hooks.py) and by tests/test_docs_*.py:

- every ```` ```python ```` block of a page runs, in order, in one namespace per page;
- in a fresh temporary directory, with `LLMDOCS_FIGURES_DIR` pointing into it (or at the build's cache);
- after seeding `random`, `numpy` and `torch` with 0.

Not a page of the site (excluded in mkdocs.yml), not part of the `llmdocs` package.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import random
import re
import shutil
import tempfile
import unittest
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sybil import Document
from sybil.parsers.markdown import ClearNamespaceParser, PythonCodeBlockParser, SkipParser

DOCS_DIR = Path(__file__).resolve().parent
REPO_ROOT = DOCS_DIR.parent
PACKAGE_DIR = REPO_ROOT / "llmdocs"
FIGURES_DIR_ENV = "LLMDOCS_FIGURES_DIR"  # same as llmdocs.viz.FIGURES_DIR_ENV (not imported: keep this light)

# The one fence that shows Python without running it (highlighted as Python, ignored by Sybil).
DISPLAY_FENCE = "python-display"
# Figures are embedded as ![alt](figures/NAME.svg) or <img src="figures/NAME.svg">, relative to the page.
FIGURE_REF = re.compile(r"""(?:\]\(|src=["'])figures/([a-z0-9][a-z0-9_-]*)\.svg""")
_FENCE_LINE = re.compile(r"^[ \t>]*(?:[-*+][ \t]+|\d+[.)][ \t]+)?(`{3,}|~{3,})")
_INLINE_CODE = re.compile(r"(`+)(?!`).*?(?<!`)\1(?!`)")


def markdown_parsers() -> list[Any]:
    """The Sybil parsers for docs pages: python fences, invisible blocks, skip and clear-namespace."""
    return [PythonCodeBlockParser(), SkipParser(), ClearNamespaceParser()]


def seed_everything(seed: int = 0) -> None:
    """Seed Python, numpy and torch so that every run of a page prints the same numbers."""
    random.seed(seed)
    import numpy as np

    np.random.seed(seed)
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a hard dependency of llmdocs
        return
    torch.manual_seed(seed)


@contextlib.contextmanager
def page_environment(figures_dir: Path | None = None) -> Iterator[Path]:
    """Run the body in a fresh temporary working directory, figures going to `figures_dir`.

    Args:
        figures_dir: Where `llmdocs.viz.save_figure` writes; default `<tmp>/figures`.

    Yields:
        The temporary working directory (removed afterwards).
    """
    old_env = os.environ.get(FIGURES_DIR_ENV)
    with tempfile.TemporaryDirectory(prefix="llmdocs-page-") as tmp:
        tmp_path = Path(tmp)
        os.environ[FIGURES_DIR_ENV] = str(figures_dir or tmp_path / "figures")
        try:
            with contextlib.chdir(tmp_path):
                seed_everything(0)
                yield tmp_path
        finally:
            if old_env is None:
                os.environ.pop(FIGURES_DIR_ENV, None)
            else:
                os.environ[FIGURES_DIR_ENV] = old_env


# Sybil's setup/teardown callbacks receive only the namespace: keep each document's context here.
_OPEN_PAGES: dict[int, contextlib.ExitStack] = {}


def sybil_setup(namespace: dict[str, Any]) -> None:
    """Sybil `setup`: enter a fresh page environment for one document."""
    stack = contextlib.ExitStack()
    stack.enter_context(page_environment())
    _OPEN_PAGES[id(namespace)] = stack


def sybil_teardown(namespace: dict[str, Any]) -> None:
    """Sybil `teardown`: leave the document's page environment."""
    stack = _OPEN_PAGES.pop(id(namespace), None)
    if stack is not None:
        stack.close()


def parse_page(path: Path) -> Document:
    """Parse a Markdown page with the same parsers as the docs tests."""
    return Document.parse(str(path), *markdown_parsers())


def page_calls_save_figure(path: Path) -> bool:
    """Whether a runnable Python block of the page (visible or invisible) calls `save_figure`."""
    text = path.read_text(encoding="utf-8")
    if "save_figure" not in text:
        return False
    for example in parse_page(path):
        parsed = example.parsed
        source = getattr(parsed, "source", parsed)  # a doctest example or a code block
        if isinstance(source, str) and "save_figure" in source:
            return True
    return False


class PageError(RuntimeError):
    """A block of a page failed while running it for its figures."""


def run_page(path: Path, figures_dir: Path) -> list[Path]:
    """Run every Python block of a page in order, in one namespace, writing figures to `figures_dir`.

    Args:
        path: The Markdown page.
        figures_dir: Where the page's `save_figure` calls write.

    Returns:
        The SVG files in `figures_dir` after the run, sorted.

    Raises:
        PageError: Naming `page.md:LINE` of the first block that fails.
    """
    figures_dir.mkdir(parents=True, exist_ok=True)
    document = parse_page(path)
    # The page's printed output belongs on the page, not in the build log.
    with page_environment(figures_dir), contextlib.redirect_stdout(io.StringIO()):
        for example in document:
            try:
                example.evaluate()
            except unittest.SkipTest:
                continue
            except Exception as error:
                raise PageError(f"{path}:{example.line}: {type(error).__name__}: {error}") from error
    return sorted(figures_dir.glob("*.svg"))


def prose_lines(text: str) -> Iterator[str]:
    """The lines of a Markdown text outside code fences, with inline code spans removed."""
    fence = None
    for line in text.splitlines():
        match = _FENCE_LINE.match(line)
        if fence is None and match:
            fence = match.group(1)
        elif fence is not None:
            closes = match and match.group(1)[0] == fence[0] and len(match.group(1)) >= len(fence)
            if closes and not line[match.end() :].strip():
                fence = None
        else:
            yield _INLINE_CODE.sub("", line)


def figure_references(path: Path) -> set[str]:
    """The figure names a page embeds as `![alt](figures/NAME.svg)` (code spans and fences excluded)."""
    text = path.read_text(encoding="utf-8")
    return {name for line in prose_lines(text) for name in FIGURE_REF.findall(line)}


def code_fingerprint() -> str:
    """Hash of everything, besides the page itself, that can change a page's figures."""
    import matplotlib

    digest = hashlib.sha256(f"matplotlib {matplotlib.__version__}\n".encode())
    for source in sorted([*PACKAGE_DIR.rglob("*.py"), Path(__file__).resolve()]):
        digest.update(str(source.relative_to(REPO_ROOT)).encode())
        digest.update(source.read_bytes())
    return digest.hexdigest()


def page_cache_dir(path: Path, cache_dir: Path, fingerprint: str | None = None) -> Path:
    """Where the figures of a page are cached: `cache_dir/<hash of the llmdocs sources and the page text>`."""
    digest = hashlib.sha256((fingerprint or code_fingerprint()).encode())
    digest.update(path.read_bytes())
    return cache_dir / digest.hexdigest()[:32]


def page_figures(path: Path, cache_dir: Path, fingerprint: str | None = None) -> list[Path]:
    """The SVG figures made by a page's code, computed once per (page text, llmdocs sources).

    Args:
        path: The Markdown page.
        cache_dir: Cache root; figures live in `cache_dir/<hash>/`.
        fingerprint: `code_fingerprint()`, when the caller already has it.

    Returns:
        The SVG files, sorted by name.
    """
    final = page_cache_dir(path, cache_dir, fingerprint)
    if not final.is_dir():
        cache_dir.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=".tmp-", dir=cache_dir))
        try:
            run_page(path, scratch)
            scratch.rename(final)  # atomic: concurrent builds or test workers never see half a result
        except OSError:
            if not final.is_dir():
                raise
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return sorted(final.glob("*.svg"))


def markdown_pages() -> list[Path]:
    """Every Markdown page under docs/ (the generated API pages are not on disk)."""
    return sorted(p for p in DOCS_DIR.rglob("*.md") if "assets" not in p.relative_to(DOCS_DIR).parts)


def public_modules() -> list[str]:
    """Every public module of llmdocs, found on disk: `llmdocs`, `llmdocs.viz`, `llmdocs.interop`, ...

    A module or package whose name starts with `_` is private and skipped, and so is everything under it;
    `conftest.py` files (the docstring tests' Sybil set-up) are not modules of the package.
    """
    modules = []
    for file in sorted(PACKAGE_DIR.rglob("*.py")):
        parts = list(file.relative_to(REPO_ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        elif parts[-1] == "conftest":
            continue
        if any(part.startswith("_") for part in parts):
            continue
        if any(not (REPO_ROOT.joinpath(*parts[:i]) / "__init__.py").is_file() for i in range(1, len(parts))):
            continue  # a folder without __init__.py (data, scripts) is not a package
        modules.append(".".join(parts))
    return modules
