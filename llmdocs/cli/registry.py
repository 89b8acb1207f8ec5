"""The registry of chapter demos that `llmdocs tour` runs, and the helpers every demo shares.

A demo is a short, seeded run of one chapter's idea with the shipped models and installed data: seconds to about
a minute on a laptop CPU. It prints what it shows, writes its figures into the folder it is given, and returns the
paths of the files it wrote.

**How a new chapter adds its demo.** Write a module in `llmdocs/cli/demos/` whose function is decorated with
[`register`][llmdocs.cli.registry.register], then add the module's name to `DEMO_MODULES` in
`llmdocs/cli/demos/__init__.py` at the chapter's place in the course (a test checks that no module is forgotten):

```python-display
from pathlib import Path

from llmdocs.cli.registry import register, save_demo_figure


@register(name="lora", title="LoRA fine-tuning", page="chapters/lora.md", description="Fine-tune ...")
def lora_demo(out_dir: Path, fast: bool) -> list[Path]:
    import torch  # heavy imports inside the function: `llmdocs --help` stays instant
    ...
    print("what the reader should look at")
    return [save_demo_figure(fig, out_dir, "lora-loss")]
```

The demo must be deterministic (fixed seeds), finish in seconds with `fast=True` (the tests run every demo that
way), start the names of its files with its own name (`lora-loss.svg`: the demos share one folder), wrap any loop
longer than a few seconds in [`progress`][llmdocs.cli.registry.progress], and import heavy modules inside the
function.
"""

from __future__ import annotations

import contextlib
import os
import re
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["REGISTRY", "Demo", "DemoFunction", "get_demo", "progress", "register", "save_demo_figure"]

DemoFunction = Callable[[Path, bool], list[Path]]
"""A demo: `function(out_dir, fast) -> paths of the files it wrote`."""

_NAME = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
T = TypeVar("T")


@dataclass(frozen=True)
class Demo:
    """One chapter's demo in the tour.

    Attributes:
        name: Short name for `--chapter`, the chapter's page stem, e.g. `"attention"`.
        title: The chapter's title, e.g. `"Attention and the Transformer"`.
        page: The chapter's page under `docs/`, e.g. `"chapters/attention.md"`.
        description: One or two sentences: what the demo does and what to look at.
        function: The demo itself, `function(out_dir, fast) -> list[Path]`.
    """

    name: str
    title: str
    page: str
    description: str
    function: DemoFunction

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ValueError(f"demo name={self.name!r} must be lower-case words joined by '-', e.g. 'word-embeddings'")
        if not self.page.endswith(".md"):
            raise ValueError(
                f"page={self.page!r} must be the chapter's Markdown page under docs/, e.g. 'chapters/gpt.md'"
            )


REGISTRY: list[Demo] = []
"""Every registered demo, in course order (the order in which `llmdocs.cli.demos` imports their modules)."""


def register(name: str, title: str, page: str, description: str) -> Callable[[DemoFunction], DemoFunction]:
    """Decorator that adds a demo function to [`REGISTRY`][llmdocs.cli.registry.REGISTRY].

    Args:
        name: Short name for `llmdocs tour --chapter NAME` (lower-case, words joined by `-`).
        title: The chapter's title.
        page: The chapter's page under `docs/`.
        description: What the demo does and what to look at.

    Returns:
        The decorator; it returns the function unchanged.

    Raises:
        ValueError: If a demo of that name is already registered, or `name` or `page` is malformed.

    Examples:
        >>> from llmdocs.cli.registry import REGISTRY, register
        >>> @register(name="doctest-demo", title="A demo", page="chapters/demo.md", description="Prints hi.")
        ... def hello(out_dir, fast):
        ...     print("hi")
        ...     return []
        >>> REGISTRY[-1].name, REGISTRY[-1].function is hello
        ('doctest-demo', True)
        >>> REGISTRY.pop().title  # the doctest cleans up after itself
        'A demo'
    """

    def decorator(function: DemoFunction) -> DemoFunction:
        if any(demo.name == name for demo in REGISTRY):
            raise ValueError(f"a demo named {name!r} is already registered")
        REGISTRY.append(Demo(name, title, page, description, function))
        return function

    return decorator


def get_demo(name: str) -> Demo:
    """The registered demo called `name`.

    Raises:
        KeyError: If there is none; the message lists the registered names.
    """
    for demo in REGISTRY:
        if demo.name == name:
            return demo
    raise KeyError(f"no demo named {name!r}; choose from {[demo.name for demo in REGISTRY]}")


@contextlib.contextmanager
def _figures_into(out_dir: Path) -> Iterator[None]:
    """Point `llmdocs.viz.save_figure` at `out_dir` for the duration of the block."""
    from llmdocs.viz import FIGURES_DIR_ENV

    old = os.environ.get(FIGURES_DIR_ENV)
    os.environ[FIGURES_DIR_ENV] = str(out_dir)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(FIGURES_DIR_ENV, None)
        else:
            os.environ[FIGURES_DIR_ENV] = old


def save_demo_figure(fig: Any, out_dir: Path, name: str) -> Path:
    """Write a figure as `<out_dir>/<name>.svg` with [`save_figure`][llmdocs.viz.figure.save_figure] (reproducible SVG).

    Missing-glyph warnings are silenced: without a CJK font, Chinese labels are drawn as boxes, and
    `llmdocs doctor` already says how to install one.

    Args:
        fig: A matplotlib `Figure`.
        out_dir: The tour's output folder.
        name: File stem, e.g. `"dates-cross-attention"`.

    Returns:
        The path of the SVG file.
    """
    from llmdocs.viz import save_figure

    with _figures_into(out_dir), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from")
        return save_figure(fig, name)


def progress(iterable: Iterable[T] | None = None, desc: str = "", total: float | None = None, **kwargs: Any) -> Any:
    """A tqdm progress bar that appears only after two seconds, on a terminal, and vanishes when done.

    Args:
        iterable: What to iterate over, or None for a bar moved with `update(n)`.
        desc: Label in front of the bar.
        total: Number of steps, when `iterable` has no length.
        **kwargs: Passed on to `tqdm` (e.g. `unit="word"`).

    Returns:
        A `tqdm` object.
    """
    from tqdm import tqdm  # the text bar everywhere: tqdm.auto would need ipywidgets in a notebook, and warn without

    options: dict[str, Any] = {"delay": 2.0, "leave": False, "disable": None, "dynamic_ncols": True}
    return tqdm(iterable, desc=desc, total=total, **(options | kwargs))
