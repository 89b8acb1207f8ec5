"""The figure every helper returns, and the deterministic SVG writer that puts it on the site.

[`CourseFigure`][llmdocs.viz.figure.CourseFigure] is a plain matplotlib `Figure` that also shows itself in a
notebook. [`save_figure`][llmdocs.viz.figure.save_figure] writes it as `<figures_dir()>/<name>.svg`, the
same bytes build after build, where the page embeds it as `figures/<name>.svg`. Importing this module adds
the first installed CJK font to matplotlib's font list, so labels can mix Latin and Chinese text.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import matplotlib as mpl
from matplotlib.figure import Figure

__all__ = ["CJK_FONTS", "FIGURES_DIR_ENV", "CourseFigure", "figures_dir", "save_figure"]

FIGURES_DIR_ENV = "LLMDOCS_FIGURES_DIR"
"""Environment variable naming the directory where [`save_figure`][llmdocs.viz.figure.save_figure] writes."""

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

    Examples:
        >>> from llmdocs.viz import CourseFigure
        >>> fig = CourseFigure(figsize=(2.0, 1.0))
        >>> _ = fig.add_subplot().plot([0, 1], [1, 0])
        >>> fig._repr_svg_().startswith("<?xml")  # what Jupyter shows
        True
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
