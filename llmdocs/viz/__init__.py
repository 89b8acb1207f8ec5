"""Figures for the course: plotting helpers and a deterministic SVG writer.

Every figure of the site is drawn by code on the page that shows it. A chapter calls a plotting helper,
then [`save_figure`][llmdocs.viz.figure.save_figure], and embeds the result as `![...](figures/NAME.svg)`. At
build time a MkDocs hook runs the page's code and adds the SVGs to the site, so a figure can never be older
than the code that draws it, and no image is committed (see the Conventions page, "How figures are made").

The helpers build a [`CourseFigure`][llmdocs.viz.figure.CourseFigure] (a `matplotlib.figure.Figure`)
directly, without `pyplot`: no global state, no GUI backend, nothing to close. In a notebook, show one by
leaving it as the last expression of a cell.

One module per kind of figure, everything importable from here:

- [figure][llmdocs.viz.figure]: `CourseFigure`, `save_figure` (reproducible SVG), `figures_dir`, the CJK
  font fallback for Chinese labels.
- [heatmaps][llmdocs.viz.heatmaps]: `plot_attention` (attention weights, one panel per head) and
  `plot_heatmap` (any matrix).
- [curves][llmdocs.viz.curves]: `plot_curves` (loss curves, schedules).
- [bars][llmdocs.viz.bars]: `plot_bars` (grouped bars, or one panel per series).
- [tokens][llmdocs.viz.tokens]: `plot_masking` (BERT's masked input and targets, token by token).
- [images][llmdocs.viz.images]: what a Vision Transformer reads and learns: `plot_patches`,
  `plot_position_similarity`, `plot_patch_filters`, `plot_image_grid` (images with titles and heat-map overlays),
  `plot_confusion_matrix`.
- [rope][llmdocs.viz.rope]: rotary position embeddings: `plot_rope_rotation` (a pair of coordinates turning with
  the position), `plot_relative_scores` (scores of rotated queries and keys, against the offset of their positions).

Shape legend: Tq query positions (rows), Tk key positions (columns), H heads.

Examples:
    >>> import torch
    >>> from llmdocs.viz import plot_attention
    >>> weights = torch.softmax(torch.randn(3, 4), dim=-1)  # (Tq, Tk)
    >>> fig = plot_attention(weights, x_labels=list("abcd"), y_labels=list("xyz"), title="demo")
    >>> len(fig.axes)  # the heatmap and its colour bar
    2
"""

from llmdocs.viz.bars import plot_bars
from llmdocs.viz.curves import plot_curves
from llmdocs.viz.figure import CJK_FONTS, FIGURES_DIR_ENV, CourseFigure, figures_dir, save_figure
from llmdocs.viz.heatmaps import plot_attention, plot_heatmap
from llmdocs.viz.images import (
    plot_confusion_matrix,
    plot_image_grid,
    plot_patch_filters,
    plot_patches,
    plot_position_similarity,
)
from llmdocs.viz.rope import plot_relative_scores, plot_rope_rotation
from llmdocs.viz.tokens import MASKING_COLORS, plot_masking

__all__ = [
    "CJK_FONTS",
    "FIGURES_DIR_ENV",
    "MASKING_COLORS",
    "CourseFigure",
    "figures_dir",
    "plot_attention",
    "plot_bars",
    "plot_confusion_matrix",
    "plot_curves",
    "plot_heatmap",
    "plot_image_grid",
    "plot_masking",
    "plot_patch_filters",
    "plot_patches",
    "plot_position_similarity",
    "plot_relative_scores",
    "plot_rope_rotation",
    "save_figure",
]
