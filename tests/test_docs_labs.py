"""Every lab (docs/labs/*.py, Jupytext percent scripts) runs top to bottom as a plain script.

`mkdocs build` executes them too (mkdocs-jupyter, `allow_errors: false`); this gives the failure as a normal
traceback with a line number, in a temporary directory, without building the site.
"""

import runpy
from pathlib import Path

import pytest
from docs_support import DOCS_DIR, page_environment

LABS = sorted((DOCS_DIR / "labs").glob("*.py"))


@pytest.mark.parametrize("lab", LABS, ids=lambda p: p.name)
def test_lab_runs(lab: Path) -> None:
    text = lab.read_text(encoding="utf-8")
    assert text.startswith("# %%"), f"{lab} is not a Jupytext percent script (first line '# %%...')"
    with page_environment():
        runpy.run_path(str(lab), run_name="__main__")
