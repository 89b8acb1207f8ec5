"""Heatmaps: attention weights (one row per query, one panel per head) and any other matrix.

Shape legend: Tq query positions (rows), Tk key positions (columns), H heads.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from llmdocs.viz._checks import check_labels, to_numpy
from llmdocs.viz.figure import CourseFigure

__all__ = ["plot_attention", "plot_heatmap"]


def plot_attention(
    weights: Any,
    x_labels: Sequence[str] | None = None,
    y_labels: Sequence[str] | None = None,
    title: str | None = None,
) -> Figure:
    """Draw attention weights as a heatmap: one row per query, one column per key.

    Row `i` is the distribution $\\operatorname{softmax}(q_i K^\\top / \\sqrt{d_k})$ over the keys, so every
    row sums to one. Several heads are drawn side by side.

    Args:
        weights: Attention weights, a tensor or array of shape (Tq, Tk), or (H, Tq, Tk) for one panel per
            head. A leading batch dimension of size 1 is dropped.
        x_labels: Tk labels for the keys (columns), e.g. the source tokens.
        y_labels: Tq labels for the queries (rows), e.g. the target tokens.
        title: Figure title.

    Returns:
        The figure (pass it to [`save_figure`][llmdocs.viz.figure.save_figure]).

    Raises:
        TypeError: If `weights` is not numbers.
        ValueError: If `weights` is empty, holds NaN, does not have 2 or 3 dimensions, or a label list has the
            wrong length.

    Shape:
        - weights: (Tq, Tk) or (H, Tq, Tk) or (1, H, Tq, Tk).

    Examples:
        >>> import torch
        >>> from llmdocs.viz import plot_attention
        >>> w = torch.softmax(torch.randn(2, 3, 5), dim=-1)  # (H, Tq, Tk)
        >>> fig = plot_attention(w, title="two heads")
        >>> [ax.get_title() for ax in fig.axes[:2]]
        ['head 0', 'head 1']
    """
    array = to_numpy(weights, "weights")
    if array.ndim == 4 and array.shape[0] == 1:
        array = array[0]
    if array.ndim == 2:
        array = array[None]  # (1, Tq, Tk)
    if array.ndim != 3:
        raise ValueError(f"weights must have shape (Tq, Tk) or (H, Tq, Tk), got {tuple(np.shape(array))}")
    H, Tq, Tk = array.shape
    check_labels(x_labels, Tk, "x_labels", "key columns")
    check_labels(y_labels, Tq, "y_labels", "query rows")

    panel = 0.35
    width = min(4.0 + 0.2 * Tk, 12.0) if H == 1 else min(H * (1.2 + panel * Tk), 14.0)
    height = min(1.8 + panel * Tq, 8.0)
    fig = CourseFigure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(1, H, squeeze=False)[0]
    for head, ax in enumerate(axes):
        image = ax.imshow(array[head], cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
        ax.set_xlabel("key")
        if head == 0:
            ax.set_ylabel("query")
        if H > 1:
            ax.set_title(f"head {head}")
        if x_labels is not None:
            ax.set_xticks(range(Tk), labels=list(x_labels), rotation=90)
        if y_labels is not None and head == 0:
            ax.set_yticks(range(Tq), labels=list(y_labels))
        elif y_labels is not None:
            ax.set_yticks(range(Tq), labels=[])
    fig.colorbar(image, ax=list(axes), shrink=0.9, label="weight")
    if title:
        fig.suptitle(title)
    return fig


def plot_heatmap(
    values: Any,
    xlabel: str = "",
    ylabel: str = "",
    title: str | None = None,
    cmap: str = "RdBu_r",
    symmetric: bool = True,
    colorbar_label: str | None = None,
) -> Figure:
    """Draw a matrix as a heatmap, e.g. a positional-encoding table (positions x dimensions).

    Args:
        values: A tensor or array of shape (rows, columns).
        xlabel: Label of the column axis.
        ylabel: Label of the row axis.
        title: Figure title.
        cmap: A matplotlib colour map name.
        symmetric: Centre the colour scale on zero (`[-m, m]` with `m = max |values|`), right for
            signed data such as sines and cosines.
        colorbar_label: Label of the colour bar.

    Returns:
        The figure.

    Raises:
        TypeError: If `values` is not numbers.
        ValueError: If `values` is empty, holds NaN or is not 2-D.

    Examples:
        >>> import torch
        >>> from llmdocs.viz import plot_heatmap
        >>> fig = plot_heatmap(torch.randn(8, 16), xlabel="dimension", ylabel="position")
        >>> fig.axes[0].get_xlabel()
        'dimension'
    """
    array = to_numpy(values, "values")
    if array.ndim != 2:
        raise ValueError(f"values must be 2-D (rows, columns), got shape {array.shape}")
    limit = float(np.abs(array).max()) or 1.0
    vmin, vmax = (-limit, limit) if symmetric else (None, None)
    fig = CourseFigure(figsize=(7.0, 4.0), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(array, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto", interpolation="nearest")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    fig.colorbar(image, ax=ax, label=colorbar_label)
    if title:
        fig.suptitle(title)
    return fig
