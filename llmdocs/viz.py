"""Figures for the course: plotting helpers and a deterministic SVG writer.

Every figure of the site is drawn by code on the page that shows it. A chapter calls a plotting helper,
then [`save_figure`][llmdocs.viz.save_figure], and embeds the result as `![...](figures/NAME.svg)`. At build
time a MkDocs hook runs the page's code and adds the SVGs to the site, so a figure can never be older than
the code that draws it, and no image is committed (see the Conventions page, "How figures are made").

The helpers build a [`CourseFigure`][llmdocs.viz.CourseFigure] (a `matplotlib.figure.Figure`) directly,
without `pyplot`: no global state, no GUI backend, nothing to close. In a notebook, show one by leaving it as
the last expression of a cell.

Shape legend: Tq query positions (rows), Tk key positions (columns), H heads.

Examples:
    >>> import torch
    >>> from llmdocs.viz import plot_attention
    >>> weights = torch.softmax(torch.randn(3, 4), dim=-1)  # (Tq, Tk)
    >>> fig = plot_attention(weights, x_labels=list("abcd"), y_labels=list("xyz"), title="demo")
    >>> len(fig.axes)  # the heatmap and its colour bar
    2
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib as mpl
import numpy as np
from matplotlib.figure import Figure

__all__ = [
    "FIGURES_DIR_ENV",
    "CourseFigure",
    "figures_dir",
    "plot_attention",
    "plot_bars",
    "plot_curves",
    "plot_heatmap",
    "save_figure",
]

FIGURES_DIR_ENV = "LLMDOCS_FIGURES_DIR"
"""Environment variable naming the directory where [`save_figure`][llmdocs.viz.save_figure] writes."""

_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")
# Fixed SVG ids and no timestamp: the same figure gives the same bytes, build after build.
_SVG_RC = {"svg.hashsalt": "llmdocs", "svg.fonttype": "path"}

CJK_FONTS = (
    "WenQuanYi Micro Hei",  # Debian/Ubuntu: fonts-wqy-microhei (make install adds it where it can)
    "Noto Sans CJK SC",  # fonts-noto-cjk
    "Noto Sans SC",
    "PingFang SC",  # macOS
    "Microsoft YaHei",  # Windows
    "SimHei",
)
"""Fonts tried, in order, for characters that the default font lacks (Chinese, Japanese labels)."""


def _add_cjk_fallback() -> None:
    """Let labels mix Latin and Chinese text: matplotlib falls back glyph by glyph along `font.family`.

    The generic family ("sans-serif") resolves to one font, so the first installed CJK font is appended to
    the family list itself. Without one, Chinese labels are drawn as boxes and matplotlib warns.
    """
    from matplotlib import font_manager

    installed = {font.name for font in font_manager.fontManager.ttflist}
    families = list(mpl.rcParams["font.family"])
    cjk = next((name for name in CJK_FONTS if name in installed), None)
    if cjk is not None and cjk not in families:
        mpl.rcParams["font.family"] = [*families, cjk]


_add_cjk_fallback()


class CourseFigure(Figure):
    """A matplotlib `Figure` that shows itself as SVG when it is the last expression of a notebook cell.

    Figures made without `pyplot` have no notebook display of their own; this adds one. Everything else is
    the plain `matplotlib.figure.Figure`.
    """

    def _repr_svg_(self) -> str:
        buffer = io.StringIO()
        # The default random hash salt keeps element ids unique when a page shows several figures.
        self.savefig(buffer, format="svg", metadata={"Date": None}, bbox_inches="tight")
        return buffer.getvalue()


def figures_dir() -> Path:
    """Return the directory that figures are written to.

    It is `$LLMDOCS_FIGURES_DIR` when set (the docs build and the docs tests set it), else `./figures`.

    Returns:
        The directory (it may not exist yet).
    """
    return Path(os.environ.get(FIGURES_DIR_ENV) or "figures")


def save_figure(fig: Figure, name: str) -> Path:
    """Write `fig` as `<figures_dir()>/<name>.svg`, byte-for-byte reproducibly.

    The SVG has fixed element ids (`svg.hashsalt`), no creation date and text drawn as paths (no font
    needed in the browser), so saving the same figure twice gives identical files.

    Args:
        fig: The figure to save.
        name: File stem: lower-case letters, digits, `-` and `_`, e.g. `"attention-weights"`. A page embeds
            it as `figures/<name>.svg`.

    Returns:
        The path of the written SVG file.

    Raises:
        TypeError: If `fig` is not a matplotlib `Figure`.
        ValueError: If `name` is not a valid file stem.

    Examples:
        The docs tests run this in a temporary directory with `LLMDOCS_FIGURES_DIR` set.

        >>> from matplotlib.figure import Figure
        >>> from llmdocs.viz import save_figure
        >>> fig = Figure()
        >>> _ = fig.add_subplot().plot([0, 1], [1, 0])
        >>> path = save_figure(fig, "line")
        >>> path.name, path.read_bytes() == save_figure(fig, "line").read_bytes()
        ('line.svg', True)
    """
    if not isinstance(fig, Figure):
        raise TypeError(f"fig must be a matplotlib Figure, got {type(fig).__name__}")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(
            f"name={name!r} is not a valid figure name: use lower-case letters, digits, '-' and '_' "
            "(no extension), e.g. 'attention-weights'"
        )
    out_dir = figures_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.svg"
    with mpl.rc_context(_SVG_RC):
        fig.savefig(path, format="svg", metadata={"Date": None}, bbox_inches="tight")
    return path


def _to_numpy(values: Any, argname: str) -> np.ndarray:
    """Convert a tensor or array-like to a non-empty, finite float numpy array (detached, on CPU)."""
    if hasattr(values, "detach"):  # a torch.Tensor, without importing torch here
        values = values.detach().to("cpu").float().numpy()
    if isinstance(values, str | bytes):
        raise TypeError(f"{argname} must be numbers (a tensor, an array or a sequence), got {type(values).__name__}")
    try:
        array = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{argname} must be numbers (a tensor, an array or a sequence): {error}") from None
    if array.size == 0:
        raise ValueError(f"{argname} is empty (shape {array.shape}): there is nothing to draw")
    if not np.isfinite(array).all():
        raise ValueError(f"{argname} contains NaN or infinite values")
    return array


def _check_labels(labels: Sequence[str] | None, size: int, argname: str, axis: str) -> None:
    if labels is not None and len(labels) != size:
        raise ValueError(f"{argname} has {len(labels)} labels but the weights have {size} {axis}")


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
        The figure (pass it to [`save_figure`][llmdocs.viz.save_figure]).

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
    array = _to_numpy(weights, "weights")
    if array.ndim == 4 and array.shape[0] == 1:
        array = array[0]
    if array.ndim == 2:
        array = array[None]  # (1, Tq, Tk)
    if array.ndim != 3:
        raise ValueError(f"weights must have shape (Tq, Tk) or (H, Tq, Tk), got {tuple(np.shape(array))}")
    H, Tq, Tk = array.shape
    _check_labels(x_labels, Tk, "x_labels", "key columns")
    _check_labels(y_labels, Tq, "y_labels", "query rows")

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
    array = _to_numpy(values, "values")
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
            xs, ys = _to_numpy(values[0], f"series[{label!r}][0]"), _to_numpy(values[1], f"series[{label!r}][1]")
            if xs.shape != ys.shape:
                raise ValueError(f"series[{label!r}] has {xs.shape[0]} x values but {ys.shape[0]} y values")
        else:
            ys = _to_numpy(values, f"series[{label!r}]")
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
        TypeError: If a series is not numbers.
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
    if labels is not None and len(labels) != n_groups:
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
        series = {str(name): _to_numpy(ys, f"values[{name!r}]") for name, ys in values.items()}
    else:
        series = {None: _to_numpy(values, "values")}
    for name, ys in series.items():
        if ys.ndim != 1:
            where = "values" if name is None else f"values[{name!r}]"
            raise ValueError(f"{where} must be 1-D (one number per group), got shape {ys.shape}")
    lengths = {name: ys.shape[0] for name, ys in series.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"every series needs the same number of values, got {lengths}")
    return series
