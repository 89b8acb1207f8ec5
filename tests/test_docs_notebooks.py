"""Every chapter can be taken home as a notebook (`chapters/<page>.ipynb`, made at build by docs/hooks.py).

Structure is checked for every chapter (cheap: no code runs). One chapter, the quickest to run, is executed
in a real Jupyter kernel (nbclient + ipykernel, this virtualenv's Python) from an empty directory without
`LLMDOCS_FIGURES_DIR`, as a reader would run it: it must run top to bottom, print what the page shows, and
write the figures its Markdown cells embed to ./figures.
"""

from __future__ import annotations

import ast
import base64
import json
import re
import sys
from pathlib import Path

import nbformat
import pytest
from docs_support import (
    DISPLAY_FENCE,
    DOCS_DIR,
    REPO_ROOT,
    SETUP_TAG,
    code_blocks,
    figure_references,
    notebook_json,
    page_figures,
    page_notebook,
    page_outputs,
    parse_page,
    prose_lines,
    quiet_last_expression,
)
from IPython.core.displayhook import DisplayHook

CHAPTERS = sorted((DOCS_DIR / "chapters").glob("*.md"))
QUICKEST = DOCS_DIR / "chapters" / "tokenization.md"  # about 4 s of code; the others take 6 s to minutes
CACHE_DIR = REPO_ROOT / ".cache" / "llmdocs-figures"  # the build's cache, shared with test_docs_figures.py


def chapter_id(page: Path) -> str:
    return page.stem


def untimed(text: str) -> str:
    """Printed text with durations (`0.4 s`, `12 ms`, `3.1 min`) masked: they differ from run to run."""
    return re.sub(r"\d+(?:\.\d+)?(?= ?(?:s|ms|min|seconds?)\b)", "<time>", text)


def is_setup(cell: dict) -> bool:
    return SETUP_TAG in cell["metadata"].get("tags", [])


def shows_no_value(source: str) -> bool:
    """Whether Jupyter shows no value after running `source` (as the page shows none): its last statement is no
    expression, a print, or an expression silenced with `;` (IPython's own test)."""
    body = ast.parse(source).body
    if not body or not isinstance(body[-1], ast.Expr):
        return True
    value = body[-1].value
    is_print = isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "print"
    return is_print or DisplayHook.semicolon_at_end_of_expression(source)


@pytest.mark.parametrize(
    ("source", "quiet"),
    [
        ('save_figure(fig, "x")', 'save_figure(fig, "x");'),
        ('save_figure(\n    fig, "x"\n)  # writes x.svg', 'save_figure(\n    fig, "x"\n);  # writes x.svg'),
        ("s = 'é'\nlen(s)  # one character", "s = 'é'\nlen(s);  # one character"),  # ast counts UTF-8 bytes
        ("torch.manual_seed(0);", "torch.manual_seed(0);"),
        ("print(x)", "print(x)"),
        ("for i in range(2):\n    i", "for i in range(2):\n    i"),
        ("x = (", "x = ("),  # does not parse: left alone
    ],
)
def test_quiet_last_expression(source: str, quiet: str) -> None:
    assert quiet_last_expression(source) == quiet
    assert quiet == source or shows_no_value(quiet)


@pytest.mark.parametrize("page", CHAPTERS, ids=chapter_id)
def test_chapter_notebook_structure(page: Path) -> None:
    text = notebook_json(page_notebook(page, page_uri=f"chapters/{page.name}"))
    notebook = nbformat.reads(text, as_version=4)
    nbformat.validate(notebook)
    assert notebook.nbformat == 4 and notebook.metadata.kernelspec.name == "python3"
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert is_setup(code[0]) and not any(is_setup(cell) for cell in code[1:])
    blocks = code_blocks(parse_page(page))
    assert [cell.source for cell in code[1:]] == [quiet_last_expression(str(b.parsed).strip("\n")) for b in blocks]
    assert all(shows_no_value(cell.source) for cell in code), "a cell would show the value of its last line"
    prose = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "markdown")
    headings = [line for line in page.read_text(encoding="utf-8").splitlines() if line.startswith("#")]
    headings = [line for line in headings if line in set(prose_lines(page.read_text(encoding="utf-8")))]
    assert headings and all(heading in prose.splitlines() for heading in headings)
    assert f"chapters/{page.name}" in notebook.cells[0].source
    for name in figure_references(page):  # the figures the code saves to ./figures show in the notebook
        assert f"(figures/{name}.svg)" in prose
    assert not re.search(r"^:::", prose, re.MULTILINE), "a mkdocstrings block left as is"
    assert DISPLAY_FENCE not in prose and "invisible-code-block" not in prose and "skip: next" not in prose


def test_notebook_cells_carry_the_outputs_of_the_build() -> None:
    notebook = page_notebook(QUICKEST, page_outputs(QUICKEST, CACHE_DIR))
    printed = [cell for cell in notebook["cells"] if cell["cell_type"] == "code" and cell["outputs"]]
    assert printed
    for cell in printed:
        (output,) = cell["outputs"]
        assert output["output_type"] == "stream" and output["name"] == "stdout" and output["text"]
    nbformat.validate(nbformat.from_dict(notebook))


def test_notebook_markdown_embeds_the_figures_of_the_build() -> None:
    """A downloaded notebook shows its figures before it is run: the build's SVGs, as data URLs of the Markdown."""
    figures = {svg.stem: svg for svg in page_figures(QUICKEST, CACHE_DIR)}
    assert figures.keys() == figure_references(QUICKEST)
    notebook = page_notebook(QUICKEST, page_outputs(QUICKEST, CACHE_DIR), figures=figures)
    nbformat.validate(nbformat.from_dict(notebook))
    prose = [cell["source"] for cell in notebook["cells"] if cell["cell_type"] == "markdown"]
    for name, svg in figures.items():
        (cell,) = [text for text in prose if f"][figure-{name}]" in text]  # ![alt][figure-NAME] ...
        (url,) = re.findall(rf"^\[figure-{name}\]: data:image/svg\+xml;base64,(\S+)$", cell, re.MULTILINE)
        assert base64.b64decode(url) == svg.read_bytes()  # ... defined at the end of the same cell
    assert not any("](figures/" in text for text in prose), "a figure left as a link to a file not there yet"


@pytest.fixture
def venv_kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A `python3` kernelspec that runs this interpreter, found before any other (JUPYTER_PATH comes first)."""
    spec_dir = tmp_path / "jupyter" / "kernels" / "python3"
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (llmdocs tests)",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.delenv("LLMDOCS_FIGURES_DIR", raising=False)  # a reader does not set it
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return "python3"


@pytest.mark.slow
def test_quickest_chapter_notebook_runs_in_a_kernel(tmp_path: Path, venv_kernel: str) -> None:
    from nbclient import NotebookClient

    expected = page_outputs(QUICKEST, CACHE_DIR)
    notebook = nbformat.reads(notebook_json(page_notebook(QUICKEST, expected)), as_version=4)
    notebook.cells.append(nbformat.v4.new_code_cell("import sys\n\nprint(sys.executable)", id="which-python"))
    workdir = tmp_path / "reader"
    workdir.mkdir()
    client = NotebookClient(
        notebook,
        kernel_name=venv_kernel,
        timeout=300,
        allow_errors=False,
        resources={"metadata": {"path": str(workdir)}},
    )
    client.execute()

    def stdout(cell: nbformat.NotebookNode) -> str:
        return "".join(out.text for out in cell.outputs if out.output_type == "stream" and out.name == "stdout")

    *code, which = [cell for cell in notebook.cells if cell.cell_type == "code" and not is_setup(cell)]
    assert stdout(which).strip() == sys.executable, "the kernel is not this virtualenv's Python"
    assert all(cell.execution_count for cell in code)
    # Like the page, the notebook shows what the code prints, no value (PosixPath('figures/...'), a Generator).
    shown = [out for cell in notebook.cells if cell.cell_type == "code" for out in cell.outputs]
    assert not [out for out in shown if out.output_type == "execute_result"]
    # Same seed, same order: the same numbers as the page, except durations.
    printed = [untimed(stdout(cell)) for cell in code]
    assert printed == [untimed(block["stdout"]) for block in expected], "prints differ from the page"
    for name in figure_references(QUICKEST):
        assert (workdir / "figures" / f"{name}.svg").is_file(), f"figures/{name}.svg not written from the notebook"
