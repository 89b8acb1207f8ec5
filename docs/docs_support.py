"""What the docs tests and the docs build share: Sybil parsers, the page environment, figures, outputs, notebooks.

One module so that a page is executed the same way by `pytest docs` (docs/conftest.py), by the hook of
`mkdocs build` (docs/hooks.py) and by tests/test_docs_*.py:

- every ```` ```python ```` block of a page runs, in order, in one namespace per page;
- in a fresh temporary directory, with `LLMDOCS_FIGURES_DIR` pointing into it (or at the build's cache);
- after seeding `random`, `numpy` and `torch` with 0.

The build keeps what one run of a page produces, cached by page text and llmdocs sources: the SVG figures,
`outputs.json`, what each block printed, and `examples.json`, what each example did (ran, or was skipped and
why). `insert_outputs` puts those outputs under their blocks on the page and `page_notebook` turns the page
into a Jupyter notebook (prose, set-up and code cells, outputs).

A test session runs each page once: whichever of the build, tests/test_docs_figures.py and the docs tests
needs a page first runs it (`page_results`; a lock makes the others wait for it, across processes), and the
others reuse that run. The docs tests (`PageReplay`) trust only a run of their own session, never one left in
the cache by an earlier session: the conftests give every session an id (`start_test_session`).

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
import sys
import tempfile
import unittest
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import sybil.document
import sybil.example
from sybil import Document, Example
from sybil.parsers.markdown import ClearNamespaceParser, PythonCodeBlockParser, SkipParser

DOCS_DIR = Path(__file__).resolve().parent
REPO_ROOT = DOCS_DIR.parent
PACKAGE_DIR = REPO_ROOT / "llmdocs"
PAGE_CACHE_DIR = REPO_ROOT / ".cache" / "llmdocs-figures"  # the build's cache of page results (docs/hooks.py)
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
    """A block of a page failed while running it for its figures and outputs.

    Attributes:
        examples: Every example's record (`examples.json`), when the page ran in this process.
        failures: The exception of every example that failed, by its index in the page, likewise.
    """

    def __init__(
        self,
        message: str,
        examples: list[dict[str, Any]] | None = None,
        failures: dict[int, BaseException] | None = None,
    ) -> None:
        super().__init__(message)
        self.examples = examples or []
        self.failures = failures or {}

    def __reduce__(self) -> tuple[type, tuple[str]]:
        # Out of a page worker of the build (another process), only the message: the exceptions may not pickle.
        return PageError, (str(self),)


OUTPUTS_FILE = "outputs.json"
EXAMPLES_FILE = "examples.json"
SESSION_FILE = "session"  # in a page's results: the test session that ran the page (when a test session did)
SESSION_ENV = "LLMDOCS_TEST_SESSION"  # the id of the running test session (start_test_session)
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


def skip_reason(error: BaseException) -> str | None:
    """The reason of a skip (`skip: next if(...)`, `unittest.SkipTest`, `pytest.skip`), None for a failure."""
    if isinstance(error, unittest.SkipTest):
        return str(error)
    outcomes = sys.modules.get("_pytest.outcomes")  # a page can only raise pytest's Skipped once pytest is imported
    if outcomes is not None and isinstance(error, outcomes.Skipped):
        return error.msg
    return None


def run_page(path: Path, out_dir: Path, *, keep_going: bool = False) -> list[dict[str, Any]]:
    """Run every Python block of a page in order, in one namespace, capturing what each block prints.

    Figures go to `out_dir` (`save_figure`), and so do `outputs.json`, the blocks' records, as returned, and
    `examples.json`, one record per Sybil example (code blocks and directives): `line`, `column`, `skip` (the
    reason, when skipped) and `stdout`. In a test session (`SESSION_ENV`), its id goes to `out_dir/session`.
    Only standard output is captured, per block; standard error (warnings, progress bars) is left to the
    caller's terminal, like the build log.

    Args:
        path: The Markdown page.
        out_dir: Where the page's `save_figure` calls write, and where `outputs.json` goes.
        keep_going: Run the examples after a failing one too, as Sybil does (the docs tests report each);
            by default the first failure stops the run.

    Returns:
        One record per code block, in page order: `line` and `end_line` (1-based, of the opening and
        closing fence, or of the comment), `hidden` (an invisible block), `skipped` (a skip directive
        applied), `digest` (`source_digest` of its code) and `stdout` (what it printed, `clean_output`).

    Raises:
        PageError: Naming `page.md:LINE` of the first block that fails (after running the rest, with
            `keep_going`); it carries every example's record and exception.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    document = parse_page(path)
    blocks: list[dict[str, Any]] = []
    examples: list[dict[str, Any]] = []
    failures: dict[int, BaseException] = {}
    with page_environment(out_dir):
        for index, example in enumerate(document):
            captured = io.StringIO()
            skipped = None
            try:
                # The page's printed output belongs on the page, not in the build log.
                with contextlib.redirect_stdout(captured):
                    example.evaluate()
            except KeyboardInterrupt:
                raise
            except BaseException as error:  # also pytest's outcomes (pytest.raises that did not raise), as Sybil
                skipped = skip_reason(error)
                if skipped is None:
                    failures[index] = error
            stdout = "" if skipped is not None else clean_output(captured.getvalue())
            examples.append({"line": example.line, "column": example.column, "skip": skipped, "stdout": stdout})
            if is_code_block(example):
                blocks.append(
                    {
                        "line": example.line,
                        "end_line": document.text.count("\n", 0, example.end) + 1,
                        "hidden": is_hidden(example),
                        "skipped": skipped is not None,
                        "digest": source_digest(str(example.parsed)),
                        "stdout": stdout,
                    }
                )
            if failures and not keep_going:
                break
    if failures:
        index, error = next(iter(failures.items()))
        message = f"{path}:{examples[index]['line']}: {type(error).__name__}: {error}"
        raise PageError(message, examples, failures) from error
    (out_dir / OUTPUTS_FILE).write_text(json.dumps(blocks, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    (out_dir / EXAMPLES_FILE).write_text(json.dumps(examples, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    session = os.environ.get(SESSION_ENV)
    if session:
        (out_dir / SESSION_FILE).write_text(session, encoding="utf-8")
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


def page_results(path: Path, cache_dir: Path, fingerprint: str | None = None, *, keep_going: bool = False) -> Path:
    """Run a page once per (page text, llmdocs sources) and return the directory of its results.

    Processes that need the same page at the same time (the build's page workers, test workers) do not run it
    twice: the first holds a lock while it runs the page, the others wait for it and reuse its results.

    Args:
        path: The Markdown page.
        cache_dir: Cache root; results live in `cache_dir/<hash>/`.
        fingerprint: `code_fingerprint()`, when the caller already has it.
        keep_going: Passed to `run_page`, when this call runs the page.

    Returns:
        The directory holding the page's SVG figures, `outputs.json` and `examples.json`.

    Raises:
        PageError: If a block of the page fails (nothing is cached then).
    """
    final = page_cache_dir(path, cache_dir, fingerprint)
    if (final / OUTPUTS_FILE).is_file():
        return final
    cache_dir.mkdir(parents=True, exist_ok=True)
    with _exclusive(cache_dir / f".{final.name}.lock"):
        if (final / OUTPUTS_FILE).is_file():  # run by the process we waited for
            return final
        scratch = Path(tempfile.mkdtemp(prefix=".tmp-", dir=cache_dir))
        try:
            run_page(path, scratch, keep_going=keep_going)
            if final.is_dir() and not (final / OUTPUTS_FILE).is_file():  # an unfinished result (none expected)
                shutil.rmtree(final, ignore_errors=True)
            scratch.rename(final)  # atomic: concurrent builds or test workers never see half a result
        except OSError:
            if not (final / OUTPUTS_FILE).is_file():
                raise
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return final


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive lock (flock) on `lock_path`; the file is removed when the work it guards is done.

    Removing it is safe: a process still waiting holds the old file and, once it has the lock, finds the results
    (or, after a failure, runs the page itself); a newcomer locks a new file and finds the results too. Without
    flock (not POSIX) there is no lock: two processes may then run one page, and the first rename wins.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            lock_path.unlink(missing_ok=True)
            fcntl.flock(handle, fcntl.LOCK_UN)


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


# -- the docs tests: one run per page and test session ----------------------------------------------------

_STARTED_SESSION = False


def start_test_session() -> None:
    """Give this test session an id (`SESSION_ENV`) unless it has one: pytest's workers and the build inherit it.

    Called by the conftests' `pytest_configure`, which runs in pytest's main process before it starts any worker.
    """
    global _STARTED_SESSION
    if not os.environ.get(SESSION_ENV):
        os.environ[SESSION_ENV] = uuid.uuid4().hex
        _STARTED_SESSION = True


def end_test_session() -> None:
    """Forget the session id, in the process that made it (a later `pytest.main` in it starts a new session)."""
    global _STARTED_SESSION
    if _STARTED_SESSION:
        os.environ.pop(SESSION_ENV, None)
        _STARTED_SESSION = False


_RUNNER_FILES = {__file__, sybil.example.__file__, sybil.document.__file__}


def _page_frames(traceback: TracebackType | None) -> TracebackType | None:
    """A failure's traceback from Sybil's evaluator on (the page's code), without `run_page`'s frames."""
    while traceback is not None and traceback.tb_frame.f_code.co_filename in _RUNNER_FILES:
        traceback = traceback.tb_next
    return traceback


def _session_of(results: Path) -> str | None:
    session = results / SESSION_FILE
    return session.read_text(encoding="utf-8") if session.is_file() else None


class PageReplay:
    """Sybil evaluator for a page's examples: each passes, skips or fails as it did in the page's one run.

    docs/conftest.py pushes one onto every page's document, so Sybil never evaluates an example itself. The
    first example gets the page's run: this test session's, wherever it ran (the build's hook, tests/
    test_docs_figures.py, another worker: `page_results` waits for one in progress), or else a run made here,
    through the cache, for the others. Like Sybil, that run goes on after a failing example (`keep_going`). A
    run of an earlier session, or of a build outside the tests, is not trusted: the page then runs here, its
    results not cached. A failing example prints what it printed and raises the exception it raised.

    Args:
        path: The Markdown page.
        cache_dir: The build's cache of page results.
    """

    def __init__(self, path: Path, cache_dir: Path) -> None:
        self.path = path
        self.cache_dir = cache_dir
        self._outcomes: dict[tuple[int, int], tuple[dict[str, Any], BaseException | None]] | None = None

    def __call__(self, example: Example) -> None:
        __tracebackhide__ = True
        if self._outcomes is None:
            self._outcomes = self._run()
        outcome = self._outcomes.get((example.line, example.column))
        if outcome is None:
            raise RuntimeError(f"{self.path}:{example.line}: not an example of the page that ran (edited meanwhile?)")
        record, error = outcome
        if error is not None:
            print(record["stdout"], end="")  # pytest shows it with the failure
            raise error.with_traceback(_page_frames(error.__traceback__))
        if record["skip"] is not None:
            raise unittest.SkipTest(record["skip"])

    def _run(self) -> dict[tuple[int, int], tuple[dict[str, Any], BaseException | None]]:
        session = os.environ.get(SESSION_ENV)
        failures: dict[int, BaseException] = {}
        try:
            results = None
            if session:
                fingerprint = code_fingerprint()
                cached = page_cache_dir(self.path, self.cache_dir, fingerprint)
                if not (cached / OUTPUTS_FILE).is_file() or _session_of(cached) == session:
                    results = page_results(self.path, self.cache_dir, fingerprint, keep_going=True)
                    if _session_of(results) != session:  # made meanwhile by a process outside this session
                        results = None
            if results is not None:
                records = json.loads((results / EXAMPLES_FILE).read_text(encoding="utf-8"))
            else:
                with tempfile.TemporaryDirectory(prefix="llmdocs-page-run-") as tmp:
                    run_page(self.path, Path(tmp), keep_going=True)
                    records = json.loads((Path(tmp) / EXAMPLES_FILE).read_text(encoding="utf-8"))
        except PageError as error:
            if not error.examples:  # pragma: no cover - a PageError from this process always carries them
                raise
            records, failures = error.examples, error.failures
        return {(r["line"], r["column"]): (r, failures.get(i)) for i, r in enumerate(records)}


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
