"""No code fence on a docs page may look like Python without being run.

Sybil runs only fences whose info string is exactly `python`; ```py, ```python3, ```pycon, ```{.python} or
```python title="x" would be shown on the site yet silently skipped by the tests. Code that must not run uses
the one display-only fence, ```python-display (see docs/conventions.md, "Code on the pages").
"""

import re
from pathlib import Path

import pytest
from docs_support import DISPLAY_FENCE, DOCS_DIR, markdown_pages

# Same opening-fence grammar as Sybil's Markdown lexer: optional blockquote or list prefix, 3+ ` or ~.
FENCE = re.compile(r"^(?:(?:[ \t]*>)+[ \t]*|[ \t]*(?:[-*+]|\d+[.)])[ \t]+|[ \t]*)(`{3,}|~{3,})(.*)$")
PYTHONISH = re.compile(r"^(?:i?py|python|sage)", re.IGNORECASE)


def bad_fences(text: str) -> list[tuple[int, str]]:
    """(line number, info string) of every fence that looks like Python but is not `python` exactly."""
    bad = []
    for number, line in enumerate(text.splitlines(), start=1):
        match = FENCE.match(line)
        if not match or ("`" in match.group(2) and match.group(1)[0] == "`"):
            continue  # not a fence, or inline code such as ```` ```python ```` in prose
        info = match.group(2).strip()
        if not info or info == "python":
            continue
        language = info.lstrip("{").strip().lstrip(".").split()[0].rstrip("}")
        if language == DISPLAY_FENCE and not info.startswith("{"):
            continue
        if PYTHONISH.match(language):
            bad.append((number, info))
    return bad


def test_checker_catches_every_variant() -> None:
    text = "\n".join(
        [
            "```python",
            "```python-display",
            '```python-display title="train.py"',
            "```text",
            "```console",
            "```py",
            "```python3",
            "```pycon",
            "```Python",
            '```python title="x.py"',
            "```python linenums='1'",
            "~~~python hl_lines=1",
            "```{.python}",
            "  - ```ipython",
            "> ```py3",
            "```python_display",
        ]
    )
    assert [line for line, _ in bad_fences(text)] == list(range(6, 17))


@pytest.mark.parametrize("page", markdown_pages(), ids=lambda p: p.relative_to(DOCS_DIR).as_posix())
def test_no_accidental_non_running_python_fence(page: Path) -> None:
    bad = bad_fences(page.read_text(encoding="utf-8"))
    assert not bad, "\n".join(
        f"{page}:{line}: fence '{info}' looks like Python but will never run. Use exactly ```python "
        f"(runs in the tests) or ```{DISPLAY_FENCE} (display only, on purpose)."
        for line, info in bad
    )
