"""MkDocs hooks (registered under `hooks:` in mkdocs.yml).

Pages run at build: every Markdown page with Python blocks is executed (the same Sybil parsers and page
environment as `pytest docs`, see docs_support.py) with `LLMDOCS_FIGURES_DIR` pointing at a cache directory.
One run gives the page's figures and what each block printed (`outputs.json`):

- each `NAME.svg` is added to the build as `<page folder>/figures/NAME.svg` with `File.generated`;
- under every visible block that printed something, `on_page_markdown` inserts an output area (escaped HTML,
  styled in assets/stylesheets/extra.css); silent, skipped and invisible blocks show nothing;
- each chapter (chapters/*.md) also becomes a notebook, `chapters/<page>.ipynb`, with those outputs in its
  code cells and its figures embedded in its Markdown cells, linked by a button under the chapter's title.

Nothing is written under docs/, so `mkdocs serve` does not rebuild in a loop, and no image or output is
committed. The cache key is the page's text plus the sources of llmdocs (and matplotlib's version): an edit
to either re-runs the page, anything else reuses its figures and outputs.

Loads MathJax (1.7 MB) and mermaid (3.5 MB), vendored under docs/assets/vendor/, only on the pages that have
math or a diagram: the scripts are inserted before Material's bundle, which then finds `window.mermaid` and does
not reach for a CDN. (Incompatible with Material's `navigation.instant`, which would not run them.)

Pages whose results are not cached yet run in parallel, one process per core, so a cold build costs about the
slowest page rather than the sum of all of them. A page that another process is running at the same time (a
test worker during the test suite, which shares this cache) is waited for, not run twice.

The API pages' source listings are left out of the search index: while Material's search plugin reads a page, its
listings are stood in for by placeholders, put back in the written page. (Marking them `data-search-exclude` kept
them out of the index too, but the plugin still parsed every highlighted token of them: 40% of a warm build.)

Also keys mkdocs-jupyter's execution cache on the llmdocs sources, so a lab is re-executed when the library
it imports changes (its own cache key only covers the notebook).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import re
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from docs_support import (
    OUTPUTS_FILE,
    PageError,
    code_fingerprint,
    figure_references,
    insert_outputs,
    notebook_json,
    page_cache_dir,
    page_has_code,
    page_notebook,
    page_outputs,
    page_results,
)
from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files, InclusionLevel
from mkdocs.structure.nav import Navigation
from mkdocs.structure.pages import Page
from mkdocs.utils import get_relative_url

log = logging.getLogger("mkdocs.hooks.figures")

CACHE_DIR = Path(".cache") / "llmdocs-figures"
NOTEBOOK_FOLDER = "chapters"  # pages of this folder get a notebook: chapters/<page>.ipynb
NOTEBOOK_BUTTON = (
    "[:material-download: Download this chapter as a notebook (.ipynb)]({name}){{ .md-button .llmdocs-notebook "
    'download="{name}" title="The chapter\'s prose and code, with the outputs shown here; runs where llmdocs is '
    'installed" }}'
)

# Filled by on_files for on_page_markdown (reset at every build, so `mkdocs serve` sees edits).
_OUTPUTS: dict[str, list[dict]] = {}  # page src_uri -> outputs.json records
_NOTEBOOKS: dict[str, str] = {}  # page src_uri -> notebook file name, next to the page
_LISTINGS: dict[str, list[str]] = {}  # page src_uri -> its source listings, out of page.content while it is indexed


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
    """Fill the cache (figures, outputs) of several pages at once, one process per core (spawned: no shared state).

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
            jobs = {page: pool.submit(page_results, page, cache_dir, fingerprint) for page in pages}
            for page, job in jobs.items():
                try:
                    job.result()
                except PageError as error:
                    raise PluginError(f"running {page.relative_to(docs_dir)}: {error}") from error
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def on_files(files: Files, config: MkDocsConfig) -> Files:
    cache_dir = Path(config.config_file_path).parent / CACHE_DIR
    fingerprint = code_fingerprint()
    _OUTPUTS.clear()
    _NOTEBOOKS.clear()
    pages = [
        f
        for f in files.documentation_pages()
        if f.abs_src_path is not None and f.src_uri.endswith(".md") and page_has_code(Path(f.abs_src_path))
    ]
    stale = [
        Path(f.abs_src_path)
        for f in pages
        if not (page_cache_dir(Path(f.abs_src_path), cache_dir, fingerprint) / OUTPUTS_FILE).is_file()
    ]
    if len(stale) > 1 and (os.cpu_count() or 1) > 1:
        _run_pages_in_parallel(stale, cache_dir, fingerprint)  # the loop below then finds them cached
    produced: dict[str, str] = {}  # src_uri -> page that made it
    used: set[Path] = set()
    for page_file in pages:
        page = Path(page_file.abs_src_path)
        start = time.perf_counter()
        try:
            results = page_results(page, cache_dir, fingerprint)
        except PageError as error:
            raise PluginError(f"running {page_file.src_uri}: {error}") from error
        svgs = sorted(results.glob("*.svg"))
        blocks = page_outputs(page, cache_dir, fingerprint)
        log.debug("%s: %d figures in %.1fs", page_file.src_uri, len(svgs), time.perf_counter() - start)
        used.add(results)
        folder, _, name = page_file.src_uri.rpartition("/")
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
        _OUTPUTS[page_file.src_uri] = blocks
        if folder == NOTEBOOK_FOLDER:
            notebook = name.removesuffix(".md") + ".ipynb"
            uri = f"{folder}/{notebook}"
            if files.get_file_from_path(uri) is not None:
                raise PluginError(f"{uri} is made from {page_file.src_uri}: do not keep a file of that name")
            figures = {svg.stem: svg for svg in svgs}  # embedded: the notebook shows them before it is run
            content = notebook_json(page_notebook(page, blocks, page_file.src_uri, figures))
            files.append(File.generated(config, uri, content=content))
            _NOTEBOOKS[page_file.src_uri] = notebook
    if cache_dir.is_dir():  # drop results of older page texts / llmdocs sources
        for entry in cache_dir.iterdir():
            if entry.is_dir() and not entry.name.startswith(".tmp-") and entry not in used:
                shutil.rmtree(entry, ignore_errors=True)
    return files


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    uri = page.file.src_uri
    blocks = _OUTPUTS.get(uri)
    if blocks:
        try:
            markdown = insert_outputs(markdown, blocks, uri)
        except ValueError as error:
            raise PluginError(str(error)) from error
    notebook = _NOTEBOOKS.get(uri)
    if notebook:
        markdown = _insert_after_title(markdown, NOTEBOOK_BUTTON.format(name=notebook))
    return markdown


def _insert_after_title(markdown: str, text: str) -> str:
    """Insert a paragraph right after the page's `# Title` line, its first line (at the top when it has none)."""
    lines = markdown.split("\n")
    first = next((i for i, line in enumerate(lines) if line.strip()), 0)
    at = first + 1 if lines[first].startswith("# ") else 0
    return "\n".join([*lines[:at], "", text, "", *lines[at:]])


def on_nav(nav: Navigation, config: MkDocsConfig, files: Files) -> Navigation:
    # literate-nav has read the generated reference/SUMMARY.md by now: do not publish it as a page.
    for file in files.documentation_pages():
        if file.src_uri.rpartition("/")[2] == "SUMMARY.md":
            file.inclusion = InclusionLevel.EXCLUDED
    return nav


MATH_SCRIPTS = ("assets/javascripts/mathjax.js", "assets/vendor/mathjax/tex-mml-chtml.js")
MERMAID_SCRIPTS = ("assets/vendor/mermaid/mermaid.min.js",)
_BUNDLE = '<script src="'


SOURCE_LISTING = re.compile(r'<details class="mkdocstrings-source">.*?</details>', re.S)  # mkdocstrings' show_source
_PLACEHOLDER = "<!--llmdocs-source-listing-{}-->"
_PLACEHOLDERS = re.compile(r"<!--llmdocs-source-listing-(\d+)-->")


def on_page_content(html: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    """Keep the source listings ("Source code in ...") out of the search index, half of the API pages' text: a search
    for a name finds where it is documented, not every line of code that mentions it. Each listing waits in
    `_LISTINGS` behind a placeholder until `on_post_page` puts it back."""
    listings = _LISTINGS[page.file.src_uri] = []

    def stash(match: re.Match[str]) -> str:
        listings.append(match.group(0))
        return _PLACEHOLDER.format(len(listings) - 1)

    return SOURCE_LISTING.sub(stash, html)


def _restore_listings(output: str, page: Page) -> str:
    listings = _LISTINGS.pop(page.file.src_uri, [])
    found = [int(n) for n in _PLACEHOLDERS.findall(output)]
    if sorted(found) != list(range(len(listings))):
        raise PluginError(
            f"{page.file.src_uri}: {len(listings)} source listings taken out for search, placeholders {found} "
            "in the written page"
        )
    return _PLACEHOLDERS.sub(lambda match: listings[int(match.group(1))], output)


def on_post_page(output: str, page: Page, config: MkDocsConfig) -> str:
    output = _restore_listings(output, page)
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
