"""Metrics logs (JSON lines and CSV) and the training-curve figure.

A *history* is a list of flat dicts, one per logged step, e.g.
`{"step": 10, "loss": 2.31, "lr": 3e-4, "grad_norm": 0.8, "tokens_per_s": 5400.0}`; evaluation rows add
keys such as `"val_loss"`. The same rows go to `metrics.jsonl` (one JSON object per line, appended as
training runs, readable while it runs) and `metrics.csv` (written at the end, for spreadsheets).
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llmdocs.viz import CourseFigure

__all__ = ["append_jsonl", "plot_history", "read_jsonl", "write_csv", "write_jsonl"]


def append_jsonl(path: str | os.PathLike[str], row: dict[str, Any]) -> None:
    """Append one row to a JSON-lines file (created with its folder if needed).

    Args:
        path: The `.jsonl` file.
        row: A flat, JSON-friendly dict.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")


def write_jsonl(path: str | os.PathLike[str], rows: Iterable[dict[str, Any]]) -> None:
    """Write rows to a JSON-lines file, replacing it.

    Args:
        path: The `.jsonl` file.
        rows: Flat, JSON-friendly dicts.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(row) + "\n" for row in rows)


def read_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read a JSON-lines file back into a history.

    Args:
        path: The `.jsonl` file.

    Returns:
        One dict per non-empty line.

    Examples:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     append_jsonl(f"{tmp}/m.jsonl", {"step": 1, "loss": 2.5})
        ...     read_jsonl(f"{tmp}/m.jsonl")
        [{'step': 1, 'loss': 2.5}]
    """
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def write_csv(path: str | os.PathLike[str], history: Sequence[dict[str, Any]]) -> None:
    """Write a history as CSV; the columns are the union of all keys (missing values left empty).

    Args:
        path: The `.csv` file.
        history: The rows.
    """
    columns: list[str] = []
    for row in history:
        columns += [key for key in row if key not in columns]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(history)


def plot_history(
    history: Iterable[dict[str, Any]],
    keys: str | Sequence[str] = ("loss", "val_loss"),
    *,
    log_y: bool = False,
    title: str | None = None,
) -> CourseFigure:
    """Training curve: each key against `step`, plus the learning rate on a second axis when logged.

    Rows where a key is absent or None are skipped for that key (evaluation rows come every few steps); the values
    that are there are checked like [`plot_curves`][llmdocs.viz.curves.plot_curves] checks its series.

    Args:
        history: Rows with a `"step"` key (as returned by `train`); any iterable, read once.
        keys: Metrics to draw, or one metric name; keys absent from every row are skipped.
        log_y: Logarithmic loss axis (the values drawn must then be positive).
        title: Optional figure title.

    Returns:
        A [`CourseFigure`][llmdocs.viz.figure.CourseFigure], like the helpers of [viz][llmdocs.viz] (created without
        pyplot, so no global state; save it with [`save_figure`][llmdocs.viz.figure.save_figure] or `fig.savefig`).

    Raises:
        TypeError: If `history` is not an iterable of dicts, `keys` is not a name or names, or a value is not a
            number.
        ValueError: If `history` or `keys` is empty, a row has no `"step"`, no row holds any of `keys`, a value is
            NaN or infinite, or `log_y` is set and a value is not positive.

    Examples:
        >>> fig = plot_history([{"step": 1, "loss": 2.0, "lr": 1e-3}, {"step": 2, "loss": 1.5, "lr": 1e-3}])
        >>> [line.get_label() for line in fig.axes[0].get_lines()]
        ['loss']
    """
    from llmdocs.viz import CourseFigure
    from llmdocs.viz._checks import to_numpy

    rows_expected = "history must be an iterable of dicts (rows such as {'step': 10, 'loss': 2.3})"
    if isinstance(history, str | bytes | dict) or not isinstance(history, Iterable):
        raise TypeError(f"{rows_expected}, got {type(history).__name__}")
    history = list(history)  # once: a generator would be used up by the checks
    if not all(isinstance(row, dict) for row in history):
        raise TypeError(rows_expected)
    keys = [keys] if isinstance(keys, str) else keys
    if not isinstance(keys, Iterable) or not all(isinstance(key, str) for key in keys):
        raise TypeError(f"keys must be a metric name or a sequence of names, got {keys!r}")
    keys = list(keys)
    if not keys:
        raise ValueError("keys is empty: name at least one metric, e.g. 'loss'")
    if not history:
        raise ValueError("history is empty: there is no step to draw")
    missing = [i for i, row in enumerate(history) if "step" not in row]
    if missing:
        raise ValueError(f"every row of history needs a 'step'; rows {missing[:5]} have none")

    def points(key: str) -> tuple[Any, Any] | None:
        """(steps, values) of the rows that log `key`, checked like plot_curves' series; None if no row does."""
        rows = [row for row in history if row.get(key) is not None]
        if not rows:
            return None
        steps = to_numpy([row["step"] for row in rows], f"history's 'step' (rows with {key!r})")
        return steps, to_numpy([row[key] for row in rows], f"history[{key!r}]")

    curves = {key: found for key in keys if (found := points(key)) is not None}
    if not curves:
        raise ValueError(f"history has none of the keys {keys}")
    for key, (_, values) in curves.items():
        if log_y and (values <= 0).any():
            raise ValueError(f"log_y=True needs positive values, history[{key!r}] has some <= 0")
    lr_points = points("lr")
    fig = CourseFigure(figsize=(6.0, 3.5), layout="constrained")
    ax = fig.add_subplot()
    for key, (steps, values) in curves.items():
        ax.plot(steps, values, label=key, marker="o" if len(values) < 20 else None)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    if log_y:
        ax.set_yscale("log")
    if lr_points is not None:
        ax_lr = ax.twinx()
        ax_lr.plot(*lr_points, color="0.6", linestyle="--", linewidth=1.0)
        ax_lr.set_ylabel("learning rate", color="0.4")
    ax.legend(loc="upper right")
    if title:
        ax.set_title(title)
    return fig
