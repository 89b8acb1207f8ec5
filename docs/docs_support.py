"""What the docs tests and the docs build share: Sybil parsers, the page environment, figures, outputs, notebooks.

One module so that a page is executed the same way by `pytest docs` (docs/conftest.py), by the hook of
`mkdocs build` (docs/hooks.py) and by tests/test_docs_*.py:

- every ```` ```python ```` block of a page runs, in order, in one namespace per page;
- in a fresh temporary directory, with `LLMDOCS_FIGURES_DIR` pointing into it (or at the build's cache);
- after seeding `random`, `numpy` and `torch` with 0.

The build keeps what one run of a page produces, cached by page text and llmdocs sources: the SVG figures and
`outputs.json`, what each block printed. `insert_outputs` puts those outputs under their blocks on the page
and `page_notebook` turns the page into a Jupyter notebook (prose, set-up and code cells, outputs).

Not a page of the site (excluded in mkdocs.yml), not part of the `llmdocs` package.
"""

from __future__ import annotations

import ast
import base64
import contextlib
import hashlib
import html
import io
import json
import os
import random
import re
import shutil
import tempfile
import unittest
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from sybil import Document, Example
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


def parse_text(text: str, path: Path | str = "<page>") -> Document:
    """Parse Markdown text (e.g. what MkDocs hands to `on_page_markdown`) with the docs tests' parsers."""
    document = Document(text, str(path))
    for parser in markdown_parsers():
        for region in parser(document):
            document.add(region)
    return document


def is_code_block(example: Example) -> bool:
    """Whether an example is a whole ```` ```python ```` block or an invisible block (not a skip, not a doctest)."""
    return example.region.lexemes.get("arguments") == "python" and isinstance(example.parsed, str)


def is_hidden(example: Example) -> bool:
    """Whether a code block sits in an HTML comment (`<!-- invisible-code-block: python`): it runs, unseen."""
    return "directive" in example.region.lexemes


def code_blocks(document: Document) -> list[Example]:
    """The code blocks of a page that run, in order: visible and invisible ones."""
    return [example for example in document if is_code_block(example)]


def page_has_code(path: Path) -> bool:
    """Whether the page has at least one block that runs (it is then executed at build)."""
    text = path.read_text(encoding="utf-8")
    if "python" not in text:
        return False
    return bool(code_blocks(parse_page(path)))


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
    """A block of a page failed while running it for its figures and outputs."""


OUTPUTS_FILE = "outputs.json"
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def clean_output(text: str) -> str:
    """What a terminal would show of `text`: no colour codes, a line rewritten by `\\r` shows its last version."""
    text = _ANSI.sub("", text.replace("\r\n", "\n"))
    lines = [line.rstrip("\r").rpartition("\r")[2] for line in text.split("\n")]
    return _CONTROL.sub("", "\n".join(lines))


def source_digest(source: str) -> str:
    """Short hash of a block's code: ties a stored output to the block that printed it."""
    return hashlib.sha256(source.encode()).hexdigest()[:16]


def run_page(path: Path, out_dir: Path) -> list[dict[str, Any]]:
    """Run every Python block of a page in order, in one namespace, capturing what each block prints.

    Figures go to `out_dir` (`save_figure`), and so does `outputs.json`: the blocks' records, as returned.
    Only standard output is captured, per block; standard error (warnings, progress bars) is left to the
    caller's terminal, like the build log.

    Args:
        path: The Markdown page.
        out_dir: Where the page's `save_figure` calls write, and where `outputs.json` goes.

    Returns:
        One record per code block, in page order: `line` and `end_line` (1-based, of the opening and
        closing fence, or of the comment), `hidden` (an invisible block), `skipped` (a skip directive
        applied), `digest` (`source_digest` of its code) and `stdout` (what it printed, `clean_output`).

    Raises:
        PageError: Naming `page.md:LINE` of the first block that fails.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    document = parse_page(path)
    blocks: list[dict[str, Any]] = []
    with page_environment(out_dir):
        for example in document:
            captured = io.StringIO()
            skipped = False
            try:
                # The page's printed output belongs on the page, not in the build log.
                with contextlib.redirect_stdout(captured):
                    example.evaluate()
            except unittest.SkipTest:
                skipped = True
            except Exception as error:
                raise PageError(f"{path}:{example.line}: {type(error).__name__}: {error}") from error
            if is_code_block(example):
                blocks.append(
                    {
                        "line": example.line,
                        "end_line": document.text.count("\n", 0, example.end) + 1,
                        "hidden": is_hidden(example),
                        "skipped": skipped,
                        "digest": source_digest(str(example.parsed)),
                        "stdout": "" if skipped else clean_output(captured.getvalue()),
                    }
                )
    (out_dir / OUTPUTS_FILE).write_text(json.dumps(blocks, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return blocks


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


def page_results(path: Path, cache_dir: Path, fingerprint: str | None = None) -> Path:
    """Run a page once per (page text, llmdocs sources) and return the directory of its results.

    Args:
        path: The Markdown page.
        cache_dir: Cache root; results live in `cache_dir/<hash>/`.
        fingerprint: `code_fingerprint()`, when the caller already has it.

    Returns:
        The directory holding the page's SVG figures and `outputs.json`.
    """
    final = page_cache_dir(path, cache_dir, fingerprint)
    if not (final / OUTPUTS_FILE).is_file():
        cache_dir.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=".tmp-", dir=cache_dir))
        try:
            run_page(path, scratch)
            if final.is_dir():  # left by an older version of this module, without outputs.json
                shutil.rmtree(final, ignore_errors=True)
            scratch.rename(final)  # atomic: concurrent builds or test workers never see half a result
        except OSError:
            if not (final / OUTPUTS_FILE).is_file():
                raise
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return final


def page_figures(path: Path, cache_dir: Path, fingerprint: str | None = None) -> list[Path]:
    """The SVG figures made by a page's code, computed once per (page text, llmdocs sources).

    Args:
        path: The Markdown page.
        cache_dir: Cache root; figures live in `cache_dir/<hash>/`.
        fingerprint: `code_fingerprint()`, when the caller already has it.

    Returns:
        The SVG files, sorted by name.
    """
    return sorted(page_results(path, cache_dir, fingerprint).glob("*.svg"))


def page_outputs(path: Path, cache_dir: Path, fingerprint: str | None = None) -> list[dict[str, Any]]:
    """What each code block of a page printed (the records of `run_page`), from the same cached run."""
    results = page_results(path, cache_dir, fingerprint)
    return json.loads((results / OUTPUTS_FILE).read_text(encoding="utf-8"))


# -- outputs on the page ---------------------------------------------------------------------------------

OUTPUT_CLASS = "llmdocs-output"
_LINE_PREFIX = re.compile(r"[ \t>]*")


_PUNCTUATION = re.compile(r"[!-/:-@\[-`{-~]|\n")  # ASCII punctuation (and newlines)


def output_html(stdout: str) -> str:
    """The output area shown under a block: one line of HTML, inert in any Markdown context.

    Every ASCII punctuation character and newline of the output becomes a character reference (`<` is
    `&#60;`, a newline `&#10;`): the text cannot close a tag, open a Markdown emphasis, a link, math or a
    snippet directive, and the block holds no blank line that would end Markdown's raw HTML, even when the
    code block sits in a list or a blockquote. Browsers show the text unchanged.
    """
    text = _PUNCTUATION.sub(lambda match: f"&#{ord(match.group(0))};", stdout.rstrip("\n"))
    return (
        f'<div class="{OUTPUT_CLASS}" role="group" aria-label="Output of the code above">'
        f'<div class="{OUTPUT_CLASS}-label" aria-hidden="true">Output</div>'
        f"<pre><code>{text}</code></pre></div>"
    )


def rendered_outputs(rendered: str) -> list[str]:
    """The text of every output area in rendered HTML, as a browser shows it."""
    pattern = rf'<div class="{OUTPUT_CLASS}"[^>]*>.*?<pre><code>(.*?)</code></pre></div>'
    return [html.unescape(text) for text in re.findall(pattern, rendered, flags=re.DOTALL)]


def insert_outputs(markdown: str, blocks: list[dict[str, Any]], path: Path | str = "<page>") -> str:
    """Put each visible block's printed output right after its closing fence.

    Args:
        markdown: The page's Markdown, as run (MkDocs may have stripped a front matter: blocks are matched
            in order and by the hash of their code, not by line).
        blocks: The page's records from `run_page`.
        path: For error messages.

    Returns:
        The Markdown with an output area (`output_html`) under every visible block that printed something;
        silent, skipped and invisible blocks get none.

    Raises:
        ValueError: If the page's code blocks are not the ones that ran.
    """
    examples = code_blocks(parse_text(markdown, path))
    digests = [source_digest(str(example.parsed)) for example in examples]
    if digests != [block["digest"] for block in blocks]:
        raise ValueError(f"{path}: its code blocks differ from the ones whose outputs were recorded")
    for example, block in reversed(list(zip(examples, blocks, strict=True))):
        if block["hidden"] or block["skipped"] or not block["stdout"].strip():
            continue
        line_start = markdown.rfind("\n", 0, example.start) + 1
        prefix = _LINE_PREFIX.match(markdown, line_start).group(0)  # the fence's indent or blockquote marks
        blank = "\n" + prefix.rstrip()
        area = blank + "\n" + prefix + output_html(block["stdout"]) + blank
        markdown = markdown[: example.end] + area + markdown[example.end :]
    return markdown


# -- a page as a notebook --------------------------------------------------------------------------------

_API_BLOCK = re.compile(r"^::: *([\w.]+)[ \t]*\n(?:(?:[ \t]+\S[^\n]*)?\n)*", re.MULTILINE)
_DISPLAY_FENCE_INFO = re.compile(rf"^([ \t>]*(?:`{{3,}}|~{{3,}})){re.escape(DISPLAY_FENCE)}\b[^\n`]*$", re.MULTILINE)
_COMMENT_END = re.compile(r"[ \t]*-*-->[ \t]*")
_SKIP_REASON = re.compile(r"""reason\s*=\s*(["'])(.*?)\1""")
SEED_CELL = """\
# Set-up of the site's build: seed Python, numpy and torch with 0 so that this notebook prints the same numbers.
import random
import warnings

import numpy as np
import torch

# transformers imports tqdm.auto, which warns in a kernel without ipywidgets; its bars fall back to text anyway.
warnings.filterwarnings("ignore", message="IProgress not found")
random.seed(0)
np.random.seed(0)
_ = torch.manual_seed(0)  # it returns the generator, which Jupyter would show"""
SETUP_TAG = "llmdocs-setup"  # the one code cell of a notebook that is not a block of its page


def quiet_last_expression(source: str) -> str:
    """A code cell that shows no value, like its block on the page: `;` after a last line that is an expression.

    Jupyter displays the value of a cell's last expression (`save_figure(...)` would show `PosixPath(...)`); the
    page shows only what its code prints, and IPython shows nothing after a trailing `;`. A call of `print` (always
    None), a last statement that is not an expression, and code that does not parse are left as they are.

    Examples:
        >>> quiet_last_expression('fig = plot()\\nsave_figure(fig, "x")  # the file')
        'fig = plot()\\nsave_figure(fig, "x");  # the file'
        >>> quiet_last_expression("print(1)"), quiet_last_expression("x = 1"), quiet_last_expression("x;")
        ('print(1)', 'x = 1', 'x;')
    """
    try:
        body = ast.parse(source).body
    except SyntaxError:
        return source
    if not body or not isinstance(body[-1], ast.Expr):
        return source
    value = body[-1].value
    if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "print":
        return source
    lines = source.split("\n")
    line = lines[body[-1].end_lineno - 1]
    end = len(line.encode("utf-8")[: body[-1].end_col_offset].decode("utf-8"))  # ast counts UTF-8 bytes
    if line[end:].lstrip().startswith(";"):
        return source
    lines[body[-1].end_lineno - 1] = line[:end] + ";" + line[end:]
    return "\n".join(lines)


_FIGURE_LINK = re.compile(r"\]\(figures/([a-z0-9][a-z0-9_-]*)\.svg\)")
_FIGURE_SRC = re.compile(r"""(src=["'])figures/([a-z0-9][a-z0-9_-]*)\.svg(["'])""")


def _embed_figures(markdown: str, figures: Mapping[str, Path]) -> str:
    """Markdown whose `![alt](figures/NAME.svg)` show the build's SVG, embedded: no broken image before a run.

    Each link becomes a reference, `![alt][figure-NAME]`, defined at the end of the cell by a `data:` URL (base64),
    so that the prose stays readable in the cell's source. (JupyterLab renders `data:` images in Markdown in any
    notebook, while it shows SVG outputs and SVG attachments only in trusted ones, or not at all.)
    """
    used: dict[str, Path] = {}

    def link(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in figures:
            return match.group(0)
        used[name] = figures[name]
        return f"][figure-{name}]"

    def src(match: re.Match[str]) -> str:
        name = match.group(2)
        return match.group(1) + _svg_data_url(figures[name]) + match.group(3) if name in figures else match.group(0)

    lines, fence = [], None
    for line in markdown.split("\n"):
        match = _FENCE_LINE.match(line)
        if fence is None and match:
            fence = match.group(1)
        elif fence is not None:
            if match and match.group(1)[0] == fence[0] and len(match.group(1)) >= len(fence):
                fence = None
        else:
            line = _FIGURE_SRC.sub(src, _FIGURE_LINK.sub(link, line))
        lines.append(line)
    definitions = [f"[figure-{name}]: {_svg_data_url(path)}" for name, path in used.items()]
    return "\n".join([*lines, "", *definitions] if definitions else lines)


def _svg_data_url(path: Path) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _notebook_prose(text: str) -> str:
    """Page Markdown as a notebook Markdown cell: API blocks become a pointer, display fences plain Python."""

    def api(match: re.Match[str]) -> str:
        name = match.group(1)
        return f"> The site shows the source of `{name}` here; in Jupyter, `{name}??` shows it (after an import).\n\n"

    text = _API_BLOCK.sub(api, text)
    return _DISPLAY_FENCE_INFO.sub(lambda m: m.group(1) + "python", text).strip("\n")


def _split_at_headings(text: str) -> list[str]:
    """Split Markdown before each heading outside code fences: one notebook cell per section."""
    sections: list[list[str]] = [[]]
    fence = None
    for line in text.splitlines(keepends=True):
        match = _FENCE_LINE.match(line)
        if fence is None and match:
            fence = match.group(1)
        elif fence is not None:
            if match and match.group(1)[0] == fence[0] and len(match.group(1)) >= len(fence):
                fence = None
        elif line.startswith("#") and any(part.strip() for part in sections[-1]):
            sections.append([])
        sections[-1].append(line)
    return ["".join(section) for section in sections]


def _skip_note(example: Example) -> str:
    reason = example.parsed[1] or ""
    found = _SKIP_REASON.search(reason)
    if found:
        return f"> The site skips the next cell when something optional is missing: {found.group(2)}."
    return "> The site skips the next cell; it may need something that is not installed here."


def _cell(kind: str, index: int, source: str, **extra: Any) -> dict[str, Any]:
    cell: dict[str, Any] = {"cell_type": kind, "id": f"{kind}-{index}", "metadata": {}, "source": source}
    cell.update(extra)
    return cell


def page_notebook(
    path: Path,
    blocks: list[dict[str, Any]] | None = None,
    page_uri: str | None = None,
    figures: Mapping[str, Path] | None = None,
) -> dict[str, Any]:
    """The page as a Jupyter notebook (nbformat 4.5): prose in Markdown cells, every block that runs a code cell.

    Invisible set-up blocks become ordinary code cells, `python-display` fences stay Markdown (not run),
    and a first code cell, tagged `llmdocs-setup`, seeds like the build does. A code cell whose last line is an
    expression gets a `;` (`quiet_last_expression`): like the page, the notebook shows what the code prints,
    not `PosixPath('figures/...')`. The Markdown cells show the build's figures, embedded, when `figures` is
    given (else they link `figures/NAME.svg`); running the code writes them again to `./figures`.

    Args:
        path: The Markdown page.
        blocks: The page's records from `run_page`: their output becomes the cells' stored output.
        page_uri: The page's path in the site (for the opening note), default its file name.
        figures: The page's figures from its run, `NAME -> NAME.svg`, to embed in the Markdown cells.

    Returns:
        The notebook as a dict (write it with `notebook_json`).
    """
    document = parse_page(path)
    text = document.text
    outputs = {block["digest"]: block for block in blocks or []}
    cells = [
        _cell(
            "markdown",
            0,
            f"*Generated from the page `{page_uri or path.name}` of the llmdocs course: run it where the `llmdocs` "
            "package is installed (`pip install -e .` in its repository). The figures shown are the site's; running "
            "the code writes them again to `./figures/`.*",
        ),
        _cell("code", 0, SEED_CELL, metadata={"tags": [SETUP_TAG]}, execution_count=None, outputs=[]),
    ]

    def add_prose(chunk: str) -> None:
        for section in _split_at_headings(chunk):
            prose = _notebook_prose(section)
            if figures:
                prose = _embed_figures(prose, figures)
            if prose.strip():
                cells.append(_cell("markdown", len(cells), prose))

    position = 0
    for example in document:
        if is_code_block(example):
            add_prose(text[position : example.start])
            source = quiet_last_expression(str(example.parsed).strip("\n"))
            block = outputs.get(source_digest(str(example.parsed)))
            stream = []
            if block and block["stdout"]:
                stream = [{"output_type": "stream", "name": "stdout", "text": block["stdout"]}]
            cells.append(_cell("code", len(cells), source, execution_count=None, outputs=stream))
            position = example.end
            if is_hidden(example):  # the region stops before the comment's closing -->
                position += len(_COMMENT_END.match(text, position).group(0))
        elif isinstance(example.parsed, tuple):  # a skip directive
            add_prose(text[position : example.start])
            cells.append(_cell("markdown", len(cells), _skip_note(example)))
            position = example.end + len(_COMMENT_END.match(text, example.end).group(0))
    add_prose(text[position:])
    return {
        "cells": cells,
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def notebook_json(notebook: dict[str, Any]) -> str:
    """A notebook dict as the text of an `.ipynb` file (as Jupyter writes it: one-space indent, UTF-8)."""
    return json.dumps(notebook, indent=1, ensure_ascii=False) + "\n"


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
