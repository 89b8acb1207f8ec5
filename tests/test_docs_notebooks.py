"""Every chapter can be taken home as a notebook (`chapters/<page>.ipynb`, made at build by docs/hooks.py).

Structure is checked for every chapter (cheap: no code runs). One chapter, the quickest to run, is executed
in a real Jupyter kernel (nbclient + ipykernel, this virtualenv's Python) from an empty directory without
`LLMDOCS_FIGURES_DIR`, as a reader would run it: it must run top to bottom, print what the page shows, and
write the figures its Markdown cells embed to ./figures.
"""

from __future__ import annotations

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
    page_notebook,
    page_outputs,
    parse_page,
    prose_lines,
)

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


@pytest.mark.parametrize("page", CHAPTERS, ids=chapter_id)
def test_chapter_notebook_structure(page: Path) -> None:
    text = notebook_json(page_notebook(page, page_uri=f"chapters/{page.name}"))
    notebook = nbformat.reads(text, as_version=4)
    nbformat.validate(notebook)
    assert notebook.nbformat == 4 and notebook.metadata.kernelspec.name == "python3"
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert is_setup(code[0]) and not any(is_setup(cell) for cell in code[1:])
    blocks = code_blocks(parse_page(page))
    assert [cell.source for cell in code[1:]] == [str(block.parsed).strip("\n") for block in blocks]
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
    # Same seed, same order: the same numbers as the page, except durations.
    printed = [untimed(stdout(cell)) for cell in code]
    assert printed == [untimed(block["stdout"]) for block in expected], "prints differ from the page"
    for name in figure_references(QUICKEST):
        assert (workdir / "figures" / f"{name}.svg").is_file(), f"figures/{name}.svg not written from the notebook"
