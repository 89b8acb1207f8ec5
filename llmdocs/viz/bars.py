"""Bar charts: N groups with one bar per series in each, or one panel per series.

Grouped bars compare several programs on the same inputs (timings per model size); panels compare several
distributions over the same labels (next-token probabilities under each decoding strategy).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from llmdocs.viz._checks import to_numpy
from llmdocs.viz.figure import CourseFigure

__all__ = ["plot_bars"]


def plot_bars(
    values: Mapping[str, Any] | Any,
    labels: Sequence[str] | None = None,
    *,
    panels: bool = False,
    horizontal: bool = False,
    bar_labels: str | None = None,
    xlabel: str = "",
    ylabel: str = "",
    log: bool = False,
    title: str | None = None,
    figsize: tuple[float, float] | None = None,
) -> CourseFigure:
    """Draw a bar chart: N groups, one bar per series in each group, e.g. timings of several programs per model.

    Args:
        values: N numbers (one series), or a mapping series name -> N numbers (a tensor, an array or a
            list each); several series are drawn side by side in each group, with a legend.
        labels: N group labels, e.g. the tokens of a distribution; default `0 .. N-1`.
        panels: One panel per series instead of grouped bars: side by side, sharing the value axis, titled
            with the series names (e.g. one distribution per decoding strategy).
        horizontal: Horizontal bars, the first group on top (for long labels or ranked lists).
        bar_labels: A format such as `"{:.2f}"` to write each bar's value at its end; None writes none.
        xlabel: Label of the x axis (the groups, or the values when `horizontal`), on every panel.
        ylabel: Label of the y axis (the values, or the groups when `horizontal`), on the first panel.
        log: Logarithmic value axis (all values must then be positive).
        title: Figure title.
        figsize: Size in inches; by default it grows with the number of bars.

    Returns:
        The figure.

    Raises:
        TypeError: If `values` or a series is not numbers (None, a string), or `labels` is a bare string.
        ValueError: If `values` or a series is empty or not 1-D, the series differ in length, `labels` has
            the wrong length, `log` is set with a value <= 0, or `bar_labels` is not a format for one number.

    Examples:
        >>> from llmdocs.viz import plot_bars
        >>> fig = plot_bars({"ours": [1.0, 4.0], "theirs": [2.0, 3.0]}, labels=["small", "large"], ylabel="s")
        >>> len(fig.axes[0].patches), [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
        (4, ['ours', 'theirs'])
        >>> fig = plot_bars({"T = 1": [0.5, 0.3, 0.2], "T = 0.5": [0.7, 0.2, 0.1]}, list("abc"), panels=True)
        >>> [ax.get_title() for ax in fig.axes]
        ['T = 1', 'T = 0.5']
    """
    series = _bar_series(values)
    n_groups = next(iter(series.values())).shape[0]
    if labels is not None:
        if isinstance(labels, str | bytes) or not hasattr(labels, "__len__"):
            raise TypeError(f"labels must be a sequence of {n_groups} strings, one per group, got {labels!r:.60}")
        if len(labels) != n_groups:
            raise ValueError(f"labels has {len(labels)} entries but each series has {n_groups} values")
    if log and any((ys <= 0).any() for ys in series.values()):
        raise ValueError("log=True needs positive values, some are <= 0")
    if bar_labels is not None:
        try:
            bar_labels.format(1.0)
        except (AttributeError, IndexError, KeyError, ValueError):
            raise ValueError(f"bar_labels must format one number, like '{{:.2f}}', got {bar_labels!r}") from None
    n_panels = len(series) if panels else 1
    bars = n_groups * (1 if panels else len(series))  # bars per panel
    if figsize is None:
        long_side = min(max(0.25 * bars + 1.5, 3.0), 10.0)
        figsize = (min(4.0 * n_panels, 14.0), long_side) if horizontal else (min(long_side * n_panels, 14.0), 3.2)
    fig = CourseFigure(figsize=figsize, layout="constrained")
    axes = fig.subplots(1, n_panels, sharey=True, squeeze=False)[0]
    positions = np.arange(n_groups)
    width = 0.8 if panels else 0.8 / len(series)
    for k, (name, ys) in enumerate(series.items()):
        ax = axes[k] if panels else axes[0]
        offset = 0.0 if panels else (k - (len(series) - 1) / 2) * width  # centre the group on its tick
        draw = ax.barh if horizontal else ax.bar
        container = draw(positions + offset, ys, width, label=name, color="C0" if panels else None)
        if bar_labels is not None:
            ax.bar_label(container, fmt=bar_labels, padding=2, fontsize=8)
        if panels and name is not None:
            ax.set_title(name)
    tick_labels = [str(i) for i in positions] if labels is None else list(labels)
    for ax in axes:
        (ax.set_yticks if horizontal else ax.set_xticks)(positions, labels=tick_labels)
        ax.set_xlabel(xlabel)
        if log:
            (ax.set_xscale if horizontal else ax.set_yscale)("log")
    axes[0].set_ylabel(ylabel)
    if horizontal:
        axes[0].invert_yaxis()  # the first group on top (the y axes are shared: once is enough)
    if isinstance(values, Mapping) and not panels:
        axes[0].legend()
    if title:
        fig.suptitle(title)
    return fig


def _bar_series(values: Mapping[str, Any] | Any) -> dict[str | None, np.ndarray]:
    """Validate the `values` of `plot_bars`: series name (None for a lone series) -> (N,) floats."""
    if isinstance(values, Mapping):
        if not values:
            raise ValueError("values is empty: pass N numbers, or {series name: N numbers}")
        series = {str(name): to_numpy(ys, f"values[{name!r}]") for name, ys in values.items()}
    else:
        series = {None: to_numpy(values, "values")}
    for name, ys in series.items():
        if ys.ndim != 1:
            where = "values" if name is None else f"values[{name!r}]"
            raise ValueError(f"{where} must be 1-D (one number per group), got shape {ys.shape}")
    lengths = {name: ys.shape[0] for name, ys in series.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"every series needs the same number of values, got {lengths}")
    return series
