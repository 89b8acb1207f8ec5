"""Every figure a page embeds (`![...](figures/NAME.svg)`) is produced by that page's own code.

The pages are run exactly as the build's figure hook runs them (docs/docs_support.py), sharing its cache
(.cache/llmdocs-figures, keyed by the page text and the llmdocs sources): after a `mkdocs build` this is
instant, and a fresh checkout runs each figure page once per session, for this test, the build of
tests/test_browser.py and the docs tests together (whichever needs it first runs it; the others wait for it).
"""

from pathlib import Path

import pytest
from docs_support import (
    DOCS_DIR,
    PAGE_CACHE_DIR,
    figure_references,
    markdown_pages,
    page_calls_save_figure,
    page_figures,
)

PAGES = [p for p in markdown_pages() if figure_references(p) or page_calls_save_figure(p)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(DOCS_DIR).as_posix())
def test_page_makes_every_figure_it_embeds(page: Path) -> None:
    referenced = figure_references(page)
    produced = {svg.stem: svg for svg in page_figures(page, PAGE_CACHE_DIR)}
    missing = referenced - produced.keys()
    assert not missing, (
        f"{page} embeds figures/{{{', '.join(sorted(missing))}}}.svg but its python blocks do not call "
        "save_figure(fig, NAME) for them"
    )
    unused = produced.keys() - referenced
    assert not unused, f"{page} saves {sorted(unused)} but never embeds them: embed or drop them"
    for name in referenced:
        head = produced[name].read_bytes()[:400]
        assert b"<svg" in head, f"{produced[name]} is not an SVG file"


def test_figure_names_are_unique_per_folder() -> None:
    seen: dict[tuple[Path, str], Path] = {}
    for page in markdown_pages():
        for name in figure_references(page):
            key = (page.parent, name)
            assert key not in seen, f"{page} and {seen[key]} both embed figures/{name}.svg"
            seen[key] = page


def test_figure_references_ignore_code() -> None:
    import tempfile

    text = (
        "Embed it as `![alt](figures/in-code.svg)`.\n\n"
        "```text\n![alt](figures/in-fence.svg)\n```\n\n"
        '![real](figures/real-one.svg)\n<img src="figures/html-one.svg" alt="x">\n'
    )
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp, "page.md")
        page.write_text(text, encoding="utf-8")
        assert figure_references(page) == {"real-one", "html-one"}
