"""What the chapters' code prints is shown on the built pages, under the block that printed it.

The build runs each page once (docs/docs_support.py `run_page`, cached with its figures), keeps what every
block printed in `outputs.json`, and `insert_outputs` puts it under the block as an escaped HTML output area.
The tests run a small page of their own; tests/test_browser.py checks the real built chapters (one
build serves both).

Also the run that the build, tests/test_docs_figures.py and the docs tests share: one per page and test
session (a lock for runs at the same time, `PageReplay` for the docs tests' verdicts).
"""

from __future__ import annotations

import fcntl
import json
import os
import pickle
import re
import threading
import time
import unittest
from pathlib import Path

import markdown
import pytest
from docs_support import (
    EXAMPLES_FILE,
    OUTPUT_CLASS,
    OUTPUTS_FILE,
    SESSION_ENV,
    SESSION_FILE,
    PageError,
    PageReplay,
    clean_output,
    code_blocks,
    insert_outputs,
    output_html,
    page_cache_dir,
    page_outputs,
    page_results,
    parse_page,
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


# -- one run per page and test session ------------------------------------------------------------------

FAILING_PAGE = f"""\
# A page that fails

{FENCE}python
print("first")
{FENCE}

{FENCE}python
print("about to fail")
raise ValueError("boom")
{FENCE}

{FENCE}python
import pytest

with pytest.raises(KeyError):
    pass
{FENCE}

{FENCE}python
after = "runs anyway"
{FENCE}

<!-- skip: next if(True, reason="not here") -->
{FENCE}python
print("skipped")
{FENCE}
"""


def replay(path: Path, cache: Path) -> list[tuple[str, object]]:
    """Evaluate every example of a page as the docs tests do (through a `PageReplay`): (outcome, detail) each."""
    document = parse_page(path)
    document.push_evaluator(PageReplay(path, cache))
    outcomes = []
    for example in document:
        try:
            example.evaluate()
        except unittest.SkipTest as skip:
            outcomes.append(("skipped", str(skip)))
        except BaseException as error:  # pytest's Failed is no Exception
            outcomes.append(("failed", error))
        else:
            outcomes.append(("passed", None))
    return outcomes


def counting_page(folder: Path, body: str = "") -> tuple[Path, Path]:
    """A page that appends a line to a file each time it runs (the page runs in a temporary directory)."""
    runs = folder / "runs.txt"
    path = folder / "counted.md"
    path.write_text(
        f"# Counted\n\n{FENCE}python\nwith open({str(runs)!r}, 'a') as f:\n    f.write('run\\n')\n{body}{FENCE}\n",
        encoding="utf-8",
    )
    return path, runs


def run_count(runs: Path) -> int:
    return len(runs.read_text().splitlines()) if runs.exists() else 0


def test_this_session_has_an_id() -> None:
    # Without one, the docs tests would trust no shared run and run every page again (correct, but slower).
    assert os.environ.get(SESSION_ENV), "the conftests' pytest_configure gives every test session an id"


def test_replay_gives_each_example_its_outcome(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SESSION_ENV, "this-session")
    outcomes = replay(page, tmp_path / "cache")
    assert [outcome for outcome, _ in outcomes] == ["passed"] * 6 + ["skipped"]  # the skip directive passes
    assert outcomes[-1][1] == "never runs here"
    (results,) = [d for d in (tmp_path / "cache").iterdir() if d.is_dir()]  # the run, shared through the cache
    assert (results / SESSION_FILE).read_text() == "this-session"
    records = json.loads((results / EXAMPLES_FILE).read_text(encoding="utf-8"))
    assert [(r["line"], r["skip"]) for r in records][-2:] == [(27, None), (28, "never runs here")]


def test_replay_reports_failures_and_runs_on_like_sybil(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(SESSION_ENV, "this-session")
    path = tmp_path / "failing.md"
    path.write_text(FAILING_PAGE, encoding="utf-8")
    outcomes = replay(path, tmp_path / "cache")
    assert [outcome for outcome, _ in outcomes] == ["passed", "failed", "failed", "passed", "passed", "skipped"]
    assert isinstance(outcomes[1][1], ValueError) and str(outcomes[1][1]) == "boom"
    assert "DID NOT RAISE" in str(outcomes[2][1])  # pytest.raises' own failure, as Sybil reports it
    assert outcomes[5][1] == "not here"
    assert "about to fail\n" in capsys.readouterr().out  # the failing block's output, shown with its failure
    assert not [d for d in (tmp_path / "cache").iterdir() if d.is_dir()], "a failed run was cached"


def test_build_stops_at_the_first_failure(tmp_path: Path) -> None:
    path = tmp_path / "failing.md"
    path.write_text(FAILING_PAGE, encoding="utf-8")
    with pytest.raises(PageError, match=r"failing\.md:7: ValueError: boom") as caught:
        page_results(path, tmp_path / "cache", "fingerprint")
    assert [r["line"] for r in caught.value.examples] == [3, 7]  # the build does not run on after it
    assert str(pickle.loads(pickle.dumps(caught.value))) == str(caught.value)  # out of the build's page workers
    page = tmp_path / "raises.md"
    page.write_text(f"{FENCE}python\nimport pytest\n\nwith pytest.raises(KeyError):\n    pass\n{FENCE}\n")
    with pytest.raises(PageError, match=r"raises\.md:1: Failed: DID NOT RAISE"):
        page_results(page, tmp_path / "cache", "fingerprint")


def test_replay_trusts_only_a_run_of_its_own_session(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path, runs = counting_page(tmp_path)
    cache = tmp_path / "cache"
    monkeypatch.setenv(SESSION_ENV, "earlier")
    results = page_results(path, cache)  # e.g. the build, or tests/test_docs_figures.py, of an earlier session
    assert run_count(runs) == 1
    monkeypatch.setenv(SESSION_ENV, "this-session")
    assert replay(path, cache) == [("passed", None)] and run_count(runs) == 2  # ran again, here
    assert (results / SESSION_FILE).read_text() == "earlier"  # and left the cache alone
    monkeypatch.delenv(SESSION_ENV)
    assert replay(path, cache) == [("passed", None)] and run_count(runs) == 3  # no session: nothing trusted
    results.rename(tmp_path / "old")  # a fresh cache in this session: one run, then shared
    monkeypatch.setenv(SESSION_ENV, "this-session")
    assert replay(path, cache) == [("passed", None)] and run_count(runs) == 4
    assert replay(path, cache) == [("passed", None)] and run_count(runs) == 4
    assert page_results(path, cache) == results and run_count(runs) == 4


def test_a_page_run_in_progress_is_waited_for_not_repeated(tmp_path: Path) -> None:
    path, runs = counting_page(tmp_path)
    cache = tmp_path / "cache"
    final = page_cache_dir(path, cache, "fingerprint")
    cache.mkdir()
    with open(cache / f".{final.name}.lock", "a") as held:  # another process is running the page
        fcntl.flock(held, fcntl.LOCK_EX)
        found: list[Path] = []
        waiter = threading.Thread(target=lambda: found.append(page_results(path, cache, "fingerprint")))
        waiter.start()
        time.sleep(0.3)
        assert not found and waiter.is_alive()
        final.mkdir()  # ... and finishes it
        (final / OUTPUTS_FILE).write_text("[]")
        (final / EXAMPLES_FILE).write_text("[]")
        fcntl.flock(held, fcntl.LOCK_UN)
    waiter.join(10)
    assert found == [final] and run_count(runs) == 0
    assert not list(cache.glob(".*.lock"))  # removed once the results are there
