"""Line plots: one curve per named series, e.g. training and validation loss, or a learning-rate schedule.

Each series is either its y values (x = 0, 1, 2, ...) or an `(xs, ys)` pair, so a validation loss measured
every few steps can share the axes with a training loss logged at every step.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from llmdocs.viz._checks import to_numpy
from llmdocs.viz.figure import CourseFigure

__all__ = ["plot_curves"]


def plot_curves(
    series: Mapping[str, Any],
    xlabel: str = "step",
    ylabel: str = "loss",
    logy: bool = False,
    title: str | None = None,
) -> Figure:
    """Draw one line per named series, e.g. training and validation loss, or a learning-rate schedule.

    Args:
        series: Maps a legend label to its values: either a sequence of y values (x = 0, 1, 2, ...) or a pair
            `(xs, ys)` of equal-length sequences.
        xlabel: Label of the x axis.
        ylabel: Label of the y axis.
        logy: Use a logarithmic y axis (all values must then be positive).
        title: Figure title.

    Returns:
        The figure.

    Raises:
        TypeError: If `series` is not a mapping, or holds something other than numbers.
        ValueError: If `series` or one of its sequences is empty or not 1-D, a pair has sequences of different
            lengths, or `logy` is set and a value is not positive.

    Examples:
        >>> from llmdocs.viz import plot_curves
        >>> fig = plot_curves({"train": [3.0, 2.0, 1.5], "valid": ([0, 2], [3.1, 1.9])}, logy=True)
        >>> [line.get_label() for line in fig.axes[0].get_lines()]
        ['train', 'valid']
    """
    if not isinstance(series, Mapping):
        raise TypeError(f"series must be a mapping {{label: values}}, got {type(series).__name__}")
    if not series:
        raise ValueError("series is empty: pass at least one {label: values} entry")
    fig = CourseFigure(figsize=(6.0, 3.6), layout="constrained")
    ax = fig.add_subplot()
    for label, values in series.items():
        if isinstance(values, tuple) and len(values) == 2:
            xs, ys = to_numpy(values[0], f"series[{label!r}][0]"), to_numpy(values[1], f"series[{label!r}][1]")
            if xs.shape != ys.shape:
                raise ValueError(f"series[{label!r}] has {xs.shape[0]} x values but {ys.shape[0]} y values")
        else:
            ys = to_numpy(values, f"series[{label!r}]")
            xs = np.arange(ys.shape[0])
        if ys.ndim != 1:
            raise ValueError(f"series[{label!r}] must be 1-D (one value per point), got shape {ys.shape}")
        if logy and (ys <= 0).any():
            raise ValueError(f"logy=True needs positive values, series[{label!r}] has some <= 0")
        ax.plot(xs, ys, label=label)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title)
    return fig
