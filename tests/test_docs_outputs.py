"""What the chapters' code prints is shown on the built pages, under the block that printed it.

The build runs each page once (docs/docs_support.py `run_page`, cached with its figures), keeps what every
block printed in `outputs.json`, and `insert_outputs` puts it under the block as an escaped HTML output area.
The tests run a small page of their own; tests/test_browser.py checks the real built chapters (one
build serves both).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import markdown
import pytest
from docs_support import (
    OUTPUT_CLASS,
    OUTPUTS_FILE,
    clean_output,
    code_blocks,
    insert_outputs,
    output_html,
    page_outputs,
    page_results,
    parse_text,
    rendered_outputs,
    run_page,
    source_digest,
)

FENCE = "```"
PAGE = f"""\
# A page

<!-- invisible-code-block: python
print("hidden set-up")
greeting = "hello"
-->

Some prose.

{FENCE}python
print(greeting, "world")
{FENCE}

{FENCE}python
silent = 2 * 21
{FENCE}

{FENCE}python
print("<b>&amp; 中文 *not emphasis* $x$")
{FENCE}

{FENCE}python
for i in range(100):
    print(f"row {{i:03d}}", "x" * 300)
{FENCE}

<!-- skip: next if(True, reason="never runs here") -->
{FENCE}python
print("skipped")
{FENCE}

The end.
"""
# The same Markdown extensions as mkdocs.yml, minus those that need MkDocs itself.
EXTENSIONS = [
    "abbr",
    "admonition",
    "attr_list",
    "def_list",
    "footnotes",
    "md_in_html",
    "tables",
    "pymdownx.arithmatex",
    "pymdownx.details",
    "pymdownx.highlight",
    "pymdownx.inlinehilite",
    "pymdownx.snippets",
    "pymdownx.superfences",
]
EXTENSION_CONFIGS = {"pymdownx.arithmatex": {"generic": True}, "pymdownx.snippets": {"check_paths": True}}


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("docs") / "page.md"
    path.write_text(PAGE, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def blocks(page: Path) -> list[dict]:
    return run_page(page, page.parent / "out")


def test_run_page_captures_each_blocks_stdout(page: Path, blocks: list[dict]) -> None:
    assert [(b["line"], b["hidden"], b["skipped"]) for b in blocks] == [
        (3, True, False),
        (10, False, False),
        (14, False, False),
        (18, False, False),
        (22, False, False),
        (28, False, True),
    ]
    assert [b["end_line"] for b in blocks[1:3]] == [12, 16]
    stdouts = [b["stdout"] for b in blocks]
    assert stdouts[:4] == ["hidden set-up\n", "hello world\n", "", "<b>&amp; 中文 *not emphasis* $x$\n"]
    assert stdouts[4].count("\n") == 100 and stdouts[4].startswith("row 000 xxx")
    assert stdouts[5] == ""
    stored = json.loads((page.parent / "out" / OUTPUTS_FILE).read_text(encoding="utf-8"))
    assert stored == blocks


def test_outputs_follow_their_blocks_escaped_and_whole(page: Path, blocks: list[dict]) -> None:
    text = page.read_text(encoding="utf-8")
    with_outputs = insert_outputs(text, blocks, page)
    areas = re.findall(rf'\n\n<div class="{OUTPUT_CLASS}".*\n', with_outputs)
    assert len(areas) == 3  # none for the invisible, the silent and the skipped block
    assert re.sub(rf'\n\n<div class="{OUTPUT_CLASS}".*\n', "", with_outputs) == text  # nothing else changed
    assert f'print(greeting, "world")\n{FENCE}\n\n<div class="{OUTPUT_CLASS}"' in with_outputs
    assert f"silent = 2 * 21\n{FENCE}\n\n{FENCE}python" in with_outputs
    assert with_outputs.count("hidden set-up") == 1 and with_outputs.count("skipped") == 1  # only in the code
    for area in areas:  # one line each, no raw markup from the output
        assert area.strip().count("\n") == 0 and "<b>" not in area and "*" not in area and "$" not in area


def test_outputs_survive_markdown(page: Path, blocks: list[dict]) -> None:
    rendered = markdown.markdown(
        insert_outputs(page.read_text(encoding="utf-8"), blocks, page),
        extensions=EXTENSIONS,
        extension_configs=EXTENSION_CONFIGS,
    )
    shown = rendered_outputs(rendered)
    assert shown[:2] == ["hello world", "<b>&amp; 中文 *not emphasis* $x$"]
    assert shown[2] == blocks[4]["stdout"].rstrip("\n")  # 100 long lines, all of them: the box scrolls
    assert "<em>not emphasis</em>" not in rendered and "arithmatex" not in rendered


def test_output_area_in_a_blockquote_stays_in_it() -> None:
    text = f"> {FENCE}python\n> print(1)\n> {FENCE}\n\nafter\n"
    digest = source_digest(str(code_blocks(parse_text(text))[0].parsed))
    block = {"line": 1, "hidden": False, "skipped": False, "stdout": "1\n", "digest": digest}
    with_output = insert_outputs(text, [block])
    assert with_output.startswith(f"> {FENCE}python\n> print(1)\n> {FENCE}\n>\n> <div class=")
    rendered = markdown.markdown(with_output, extensions=EXTENSIONS, extension_configs=EXTENSION_CONFIGS)
    assert rendered.index("<blockquote>") < rendered.index(OUTPUT_CLASS) < rendered.index("</blockquote>")


def test_changed_code_is_not_given_old_outputs(page: Path, blocks: list[dict]) -> None:
    edited = page.read_text(encoding="utf-8").replace('"world"', '"there"')
    with pytest.raises(ValueError, match="differ"):
        insert_outputs(edited, blocks, page)


def test_output_html_is_one_inert_line() -> None:
    area = output_html("a < b & c\n\n--8<-- x\n  `code` _u_ [l](x) \\(m\\)\n")
    assert "\n" not in area
    assert rendered_outputs(area) == ["a < b & c\n\n--8<-- x\n  `code` _u_ [l](x) \\(m\\)"]


def test_clean_output_is_what_a_terminal_shows() -> None:
    assert clean_output("\x1b[31mred\x1b[0m\n") == "red\n"
    assert clean_output("10%\r50%\r100%\nnext\r\n") == "100%\nnext\n"
    assert clean_output("tab\tbell\x07") == "tab\tbell"


def test_results_are_cached_with_outputs(page: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = page_results(page, cache, "fingerprint")
    assert (first / OUTPUTS_FILE).is_file()
    (first / "marker").write_text("cached")
    assert page_results(page, cache, "fingerprint") == first and (first / "marker").is_file()
    assert page_outputs(page, cache, "fingerprint")[1]["stdout"] == "hello world\n"
    assert page_results(page, cache, "other sources") != first
