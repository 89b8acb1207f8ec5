"""MkDocs hooks (registered under `hooks:` in mkdocs.yml).

Figures from code: for every Markdown page whose Python blocks call `save_figure`, run those blocks (the same
Sybil parsers and page environment as `pytest docs`, see docs_support.py) with `LLMDOCS_FIGURES_DIR` pointing
at a cache directory, then add each `NAME.svg` to the build as `<page folder>/figures/NAME.svg` with
`File.generated`. Nothing is written under docs/, so `mkdocs serve` does not rebuild in a loop, and no image is
committed. The cache key is the page's text plus the sources of llmdocs (and matplotlib's version): an edit
to either re-runs the page, anything else reuses the SVGs.

Loads MathJax (1.7 MB) and mermaid (3.5 MB), vendored under docs/assets/vendor/, only on the pages that have
math or a diagram: the scripts are inserted before Material's bundle, which then finds `window.mermaid` and does
not reach for a CDN. (Incompatible with Material's `navigation.instant`, which would not run them.)

Pages whose figures are not cached yet run in parallel, one process per core, so a cold build costs about the
slowest page rather than the sum of all of them.

Also keys mkdocs-jupyter's execution cache on the llmdocs sources, so a lab is re-executed when the library
it imports changes (its own cache key only covers the notebook).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from docs_support import (
    PageError,
    code_fingerprint,
    figure_references,
    page_cache_dir,
    page_calls_save_figure,
    page_figures,
)
from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files, InclusionLevel
from mkdocs.structure.nav import Navigation
from mkdocs.structure.pages import Page
from mkdocs.utils import get_relative_url

log = logging.getLogger("mkdocs.hooks.figures")

CACHE_DIR = Path(".cache") / "llmdocs-figures"


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    # Make the working tree's llmdocs importable by the pages' code and by the labs' kernels even when the
    # package is not pip-installed (mkdocstrings reads it from `paths: [.]` already).
    root = str(Path(config.config_file_path).resolve().parent)
    if root not in sys.path:
        sys.path.insert(0, root)
    pythonpath = os.environ.get("PYTHONPATH", "")
    if root not in pythonpath.split(os.pathsep):
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (root, pythonpath) if p)
    jupyter = config.plugins.get("mkdocs-jupyter")
    if jupyter is not None:
        base = Path(jupyter.config["cache_dir"])
        if not base.name.startswith("llmdocs-"):
            current = base / f"llmdocs-{code_fingerprint()[:16]}"
            jupyter.config["cache_dir"] = str(current)
            for stale in base.glob("llmdocs-*"):  # executions against older llmdocs sources
                if stale != current:
                    shutil.rmtree(stale, ignore_errors=True)
    return config


def _run_pages_in_parallel(pages: list[Path], cache_dir: Path, fingerprint: str) -> None:
    """Fill the figure cache of several pages at once, one process per core (spawned: no state is shared).

    The workers find docs_support through PYTHONPATH and run torch on one thread each (they share the cores).
    """
    workers = min(len(pages), os.cpu_count() or 1)
    docs_dir = Path(__file__).resolve().parent
    saved = {name: os.environ.get(name) for name in ("PYTHONPATH", "OMP_NUM_THREADS")}
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(docs_dir), saved["PYTHONPATH"]]))
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            jobs = {page: pool.submit(page_figures, page, cache_dir, fingerprint) for page in pages}
            for page, job in jobs.items():
                try:
                    job.result()
                except PageError as error:
                    raise PluginError(f"figures of {page.relative_to(docs_dir)}: {error}") from error
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def on_files(files: Files, config: MkDocsConfig) -> Files:
    cache_dir = Path(config.config_file_path).parent / CACHE_DIR
    fingerprint = code_fingerprint()
    stale = [
        Path(f.abs_src_path)
        for f in files.documentation_pages()
        if f.abs_src_path is not None
        and f.src_uri.endswith(".md")
        and page_calls_save_figure(Path(f.abs_src_path))
        and not page_cache_dir(Path(f.abs_src_path), cache_dir, fingerprint).is_dir()
    ]
    if len(stale) > 1 and (os.cpu_count() or 1) > 1:
        _run_pages_in_parallel(stale, cache_dir, fingerprint)  # the loop below then finds them cached
    produced: dict[str, str] = {}  # src_uri -> page that made it
    used: set[Path] = set()
    for page_file in list(files.documentation_pages()):
        if page_file.abs_src_path is None or not page_file.src_uri.endswith(".md"):
            continue
        page = Path(page_file.abs_src_path)
        if not page_calls_save_figure(page):
            continue
        start = time.perf_counter()
        try:
            svgs = page_figures(page, cache_dir, fingerprint)
        except PageError as error:
            raise PluginError(f"figures of {page_file.src_uri}: {error}") from error
        log.debug("figures of %s: %d in %.1fs", page_file.src_uri, len(svgs), time.perf_counter() - start)
        used.add(page_cache_dir(page, cache_dir, fingerprint))
        folder = page_file.src_uri.rpartition("/")[0]
        for svg in svgs:
            uri = f"{folder}/figures/{svg.name}" if folder else f"figures/{svg.name}"
            if uri in produced or files.get_file_from_path(uri) is not None:
                other = produced.get(uri, "a file under docs/")
                raise PluginError(f"{page_file.src_uri} and {other} both make {uri}: give the figure another name")
            produced[uri] = page_file.src_uri
            files.append(File.generated(config, uri, abs_src_path=str(svg)))
        missing = figure_references(page) - {svg.stem for svg in svgs}
        if missing:
            raise PluginError(
                f"{page_file.src_uri} embeds figures/{{{', '.join(sorted(missing))}}}.svg but its code "
                "does not save them (call llmdocs.viz.save_figure(fig, NAME) in a python block)"
            )
    if cache_dir.is_dir():  # drop figures of older page texts / llmdocs sources
        for entry in cache_dir.iterdir():
            if entry.is_dir() and not entry.name.startswith(".tmp-") and entry not in used:
                shutil.rmtree(entry, ignore_errors=True)
    return files


def on_nav(nav: Navigation, config: MkDocsConfig, files: Files) -> Navigation:
    # literate-nav has read the generated reference/SUMMARY.md by now: do not publish it as a page.
    for file in files.documentation_pages():
        if file.src_uri.rpartition("/")[2] == "SUMMARY.md":
            file.inclusion = InclusionLevel.EXCLUDED
    return nav


MATH_SCRIPTS = ("assets/javascripts/mathjax.js", "assets/vendor/mathjax/tex-mml-chtml.js")
MERMAID_SCRIPTS = ("assets/vendor/mermaid/mermaid.min.js",)
_BUNDLE = '<script src="'


def on_post_page(output: str, page: Page, config: MkDocsConfig) -> str:
    scripts: list[str] = []
    if 'class="arithmatex"' in output or "jp-RenderedMarkdown" in output:
        scripts += MATH_SCRIPTS
    if 'class="mermaid"' in output:
        scripts += MERMAID_SCRIPTS
    if not scripts:
        return output
    bundle = output.find("assets/javascripts/bundle.")
    at = output.rfind(_BUNDLE, 0, bundle) if bundle != -1 else -1
    if at == -1:
        raise PluginError(f"{page.file.src_uri}: Material's bundle script not found, cannot add {scripts}")
    tags = "".join(f'<script src="{get_relative_url(script, page.url)}"></script>' for script in scripts)
    return output[:at] + tags + output[at:]
