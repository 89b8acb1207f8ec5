"""Rotary position embeddings, drawn: a pair of coordinates turning with the position, and relative-position scores.

RoPE splits a query or key of width Dh into Dh/2 pairs and turns pair ``i`` of the token at position ``m`` by the
angle ``m * theta_i`` (Su et al., 2021, eq. 13). These helpers draw what the page computes with
[llmdocs.nn.rotary][llmdocs.nn.rotary]:

- `plot_rope_rotation`: one 2-D pair at several positions, one panel per frequency: an arrow per position, all on
  one circle (a rotation keeps the length), turning fast for the first pairs and slowly for the last ones;
- `plot_relative_scores`: the attention scores of rotated queries against rotated keys, (Tq, Tk), as a heat map,
  and every score against the offset ``m - n`` of its query and key: when a score depends on the offset only
  (RoFormer's eq. 16), the T^2 points of the second panel fall onto one curve.

Shape legend: K panels (frequencies), P positions, Tq query positions (rows), Tk key positions (columns).

References:
    Su et al., "RoFormer: Enhanced Transformer with Rotary Position Embedding", 2021, section 3.4 (eqs. 13-16),
    figure 1 (the rotation of a pair).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from llmdocs.viz._checks import check_labels, to_numpy
from llmdocs.viz.figure import CourseFigure

__all__ = ["plot_relative_scores", "plot_rope_rotation"]


def plot_rope_rotation(
    points: Any,
    titles: Sequence[str] | None = None,
    *,
    positions: Sequence[int] | None = None,
    title: str | None = None,
) -> CourseFigure:
    """Draw a 2-D pair of coordinates at several positions as arrows from the origin, one panel per frequency.

    Row ``p`` of a panel is the pair after the rotation of position ``p``, e.g. ``apply_rotary`` of one pair
    ``(x_i, x_{i + Dh/2})`` at positions 0 .. P-1. The arrows are coloured from the first position (dark) to the last
    (light) and numbered at their tips; a dashed circle through the first point shows that a rotation keeps the
    length.

    Args:
        points: The rotated pairs, (P, 2) for one panel or (K, P, 2) for K panels (e.g. a fast and a slow pair).
        titles: K panel titles, e.g. the angle per position of each pair.
        positions: P numbers written at the arrow tips; default 0 .. P-1.
        title: Figure title.

    Returns:
        The figure: K square panels on the same scale, the origin at their centre.

    Raises:
        TypeError: If ``points`` is not numbers, or ``titles``/``positions`` is a bare string.
        ValueError: If ``points`` is not (P, 2) or (K, P, 2), is all zeros, or ``titles``/``positions`` has the
            wrong length.

    Shape:
        - points: (P, 2) or (K, P, 2).

    References:
        Su et al., "RoFormer", 2021, section 3.4.1 and figure 1.

    Examples:
        >>> import math
        >>> import torch
        >>> angles = torch.arange(6.0)[:, None] * torch.tensor([1.0, 0.1])  # (P, K): 6 positions, 2 frequencies
        >>> points = torch.stack([angles.cos(), angles.sin()], dim=-1).transpose(0, 1)  # (K, P, 2), from (1, 0)
        >>> fig = plot_rope_rotation(points, ["1 rad per position", "0.1 rad per position"])
        >>> [ax.get_title() for ax in fig.axes]
        ['1 rad per position', '0.1 rad per position']
        >>> len(fig.axes[0].patches)  # the circle and one arrow per position
        7
    """
    array = to_numpy(points, "points")
    if array.ndim == 2:
        array = array[None]  # (1, P, 2)
    if array.ndim != 3 or array.shape[-1] != 2:
        raise ValueError(f"points must be (P, 2) or (K, P, 2) pairs of coordinates, got shape {array.shape}")
    K, P, _ = array.shape
    check_labels(titles, K, "titles", "panels", of="points has")
    check_labels(positions, P, "positions", "positions", of="points has")
    labels = [str(p) for p in (range(P) if positions is None else positions)]
    radius = float(np.linalg.norm(array, axis=-1).max())
    if radius == 0.0:
        raise ValueError("points are all zeros: there is no direction to draw")
    limit = 1.25 * radius

    from matplotlib.patches import Circle, FancyArrowPatch

    fig = CourseFigure(figsize=(min(3.0 * K, 12.0), 3.2), layout="constrained")
    axes = fig.subplots(1, K, squeeze=False)[0]
    colours = _colours(P)
    for k, ax in enumerate(axes):
        first = float(np.linalg.norm(array[k, 0]))
        ax.add_patch(Circle((0.0, 0.0), first, fill=False, linestyle="--", linewidth=0.8, color="0.6"))
        for p in range(P):
            x, y = array[k, p]
            arrow = FancyArrowPatch((0.0, 0.0), (x, y), arrowstyle="-|>", mutation_scale=9, color=colours[p])
            ax.add_patch(arrow)
            ax.text(1.12 * x, 1.12 * y, labels[p], ha="center", va="center", fontsize=8, color=colours[p])
        ax.set_xlim(-limit, limit)
        ax.set_ylim(-limit, limit)
        ax.set_aspect("equal")
        ax.axhline(0.0, color="0.85", linewidth=0.6, zorder=0)
        ax.axvline(0.0, color="0.85", linewidth=0.6, zorder=0)
        ax.set_xlabel("first coordinate")
        if k == 0:
            ax.set_ylabel("second coordinate")
        if titles is not None:
            ax.set_title(titles[k], fontsize=10)
    if title:
        fig.suptitle(title)
    return fig


def _colours(n: int) -> list[Any]:
    """``n`` colours from dark to light (viridis, stopping before its palest yellow, which is hard to read)."""
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    return [cmap(0.85 * i / max(n - 1, 1)) for i in range(n)]


def plot_relative_scores(
    scores: Any,
    *,
    title: str | None = None,
    cmap: str = "RdBu_r",
    xlabel: str = "key position n",
    ylabel: str = "query position m",
) -> CourseFigure:
    """Draw attention scores (Tq, Tk) as a heat map, and every score against the offset ``m - n`` of its positions.

    With rotary embeddings the score of the query at position m and the key at position n is
    ``<R(m) q, R(n) k> = <q, R(n - m) k>``: it depends on the positions only through m - n, so the heat map is
    constant along every diagonal (a Toeplitz matrix) and, in the second panel, the Tq Tk points fall onto one
    curve, one value per offset. Scores that also depend on where the pair sits (learned absolute positions)
    scatter around it.

    Args:
        scores: The scores, (Tq, Tk): row m is the query at position m, column n the key at position n.
        title: Figure title.
        cmap: Colour map of the heat map, centred on zero.
        xlabel: Label of the key axis of the heat map.
        ylabel: Label of the query axis of the heat map.

    Returns:
        The figure: the heat map (with a colour bar) on the left, the scores against ``m - n`` on the right.

    Raises:
        TypeError: If ``scores`` is not numbers.
        ValueError: If ``scores`` is not 2-D, is empty or holds NaN.

    Shape:
        - scores: (Tq, Tk).

    References:
        Su et al., "RoFormer", 2021, section 3.4.2 (eq. 16) and 3.4.3 (long-term decay).

    Examples:
        >>> import torch
        >>> offsets = torch.arange(5)[:, None] - torch.arange(5)  # (T, T): m - n
        >>> fig = plot_relative_scores(torch.cos(0.5 * offsets))  # a function of m - n only
        >>> fig.axes[0].get_ylabel(), fig.axes[1].get_xlabel()
        ('query position m', 'offset m - n')
        >>> len(fig.axes[1].collections[0].get_offsets())  # one point per score
        25
    """
    array = to_numpy(scores, "scores")
    if array.ndim != 2:
        raise ValueError(f"scores must be 2-D (Tq, Tk), got shape {array.shape}")
    Tq, Tk = array.shape
    offsets = np.arange(Tq)[:, None] - np.arange(Tk)[None, :]  # (Tq, Tk): m - n
    limit = float(np.abs(array).max()) or 1.0

    fig = CourseFigure(figsize=(9.0, 3.6), layout="constrained")
    heat_ax, offset_ax = fig.subplots(1, 2, width_ratios=(1.0, 1.2))
    image = heat_ax.imshow(array, cmap=cmap, vmin=-limit, vmax=limit, interpolation="nearest")
    heat_ax.set_xlabel(xlabel)
    heat_ax.set_ylabel(ylabel)
    fig.colorbar(image, ax=heat_ax, shrink=0.9, label="score")
    offset_ax.scatter(offsets.ravel(), array.ravel(), s=6, alpha=0.5, color="C0")
    offset_ax.axhline(0.0, color="0.7", linewidth=0.6, zorder=0)
    offset_ax.set_xlabel("offset m - n")
    offset_ax.set_ylabel("score of the pair")
    offset_ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    return fig
