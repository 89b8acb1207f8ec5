"""Images and what a Vision Transformer learned from them: patches, position similarities, filters, maps, errors.

A ViT cuts an image into a grid of p x p patches and reads them as a sequence (Dosovitskiy et al., 2021, eq. 1).
These helpers draw each step of that reading and what training left in the weights:

- `plot_patches`: one image and its patches drawn apart, numbered in the order the model reads them;
- `plot_position_similarity`: each position embedding's cosine similarity to all others (the paper's figure 7,
  centre): a learned table that has discovered the 2-D grid shows a bright spot around each patch's own place;
- `plot_patch_filters`: the patch-embedding filters, or their principal components (figure 7, left);
- `plot_image_grid`: images with titles (true and predicted class) and an optional heat map over each
  (an attention-rollout map from [rollout_map][llmdocs.models.vit.rollout_map]);
- `plot_confusion_matrix`: which classes the classifier mixes up, in counts or shares of each true class.

Images come channels first, as the models take them: (C, H, W) or (H, W) for one image, (N, C, H, W) or (N, H, W)
for several, C = 1 (grayscale) or 3 (RGB), any numeric range (uint8 pixels, standardised floats). Shape legend:
N images, C channels, H x W pixels, p patch side, (Gh, Gw) the grid of patches, P = Gh Gw, D model width,
K classes.

References:
    Dosovitskiy et al., "An Image is Worth 16x16 Words: Transformers for Image Recognition at Scale", ICLR 2021,
    section 4.5 and figure 7 (embedding filters, position similarities), figure 6 (attention maps).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes

from llmdocs.viz._checks import check_labels, to_numpy
from llmdocs.viz.figure import CourseFigure

__all__ = [
    "plot_confusion_matrix",
    "plot_image_grid",
    "plot_patch_filters",
    "plot_patches",
    "plot_position_similarity",
]


def _positive_int(value: Any, argname: str) -> int:
    """``value`` if it is an int >= 1 (not a bool), else a ValueError naming ``argname``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{argname} must be an integer >= 1, got {value!r}")
    return int(value)


def _grid_pair(grid: Any) -> tuple[int, int]:
    """``grid`` as (Gh, Gw): an int means a square grid."""
    pair = (grid, grid) if isinstance(grid, int | np.integer) and not isinstance(grid, bool) else grid
    if isinstance(pair, str | bytes) or not hasattr(pair, "__len__") or len(pair) != 2:
        raise ValueError(f"grid must be an integer >= 1 or a pair (rows, columns) of them, got {grid!r}")
    try:
        return _positive_int(pair[0], "grid"), _positive_int(pair[1], "grid")
    except ValueError:
        raise ValueError(f"grid must be an integer >= 1 or a pair (rows, columns) of them, got {grid!r}") from None


def _image_batch(values: Any, argname: str, single: bool) -> np.ndarray:
    """Images as a float array (N, C, H, W) with C in (1, 3), from one image (``single``) or a batch."""
    array = to_numpy(values, argname)
    if single:
        if array.ndim not in (2, 3):
            raise ValueError(f"{argname} must be one image (C, H, W) or (H, W), got shape {array.shape}")
        array = array.reshape((1, 1, *array.shape) if array.ndim == 2 else (1, *array.shape))
    else:
        if array.ndim not in (3, 4):
            raise ValueError(f"{argname} must be images (N, C, H, W) or (N, H, W), got shape {array.shape}")
        array = array[:, None] if array.ndim == 3 else array
    if array.shape[1] not in (1, 3):
        raise ValueError(
            f"{argname} must have 1 (grayscale) or 3 (RGB) channels first, got C={array.shape[1]} "
            f"(shape {array.shape[1:] if single else array.shape})"
        )
    return array


def _show(ax: Axes, image: np.ndarray, low: float, high: float) -> None:
    """Draw one (C, H, W) image on ``ax``, ``low`` black and ``high`` white (RGB channels rescaled the same way).

    NaN pixels (the gaps of a mosaic) are left transparent.
    """
    if image.shape[0] == 1:
        gray = np.ma.masked_invalid(image[0])  # masked pixels take the colour map's "bad" colour: transparent
        ax.imshow(gray, cmap="gray", vmin=low, vmax=high, interpolation="nearest")
        return
    rgb = np.clip((image.transpose(1, 2, 0) - low) / ((high - low) or 1.0), 0.0, 1.0)  # (H, W, 3), NaN stays
    if np.isnan(rgb).any():
        alpha = np.isfinite(rgb).all(axis=-1, keepdims=True).astype(float)  # (H, W, 1)
        rgb = np.concatenate([np.nan_to_num(rgb), alpha], axis=-1)  # (H, W, 4)
    ax.imshow(rgb, interpolation="nearest")


def _mosaic(tiles: np.ndarray, gap: int) -> np.ndarray:
    """Tiles (rows, cols, C, h, w) laid out as one (C, rows (h + gap) - gap, cols (w + gap) - gap) image, NaN between.

    One image draws (and saves) much faster than one per tile, and keeps the SVG small.
    """
    rows, cols, C, h, w = tiles.shape
    mosaic = np.full((C, rows * (h + gap) - gap, cols * (w + gap) - gap), np.nan)
    for r in range(rows):
        for c in range(cols):
            top, left = r * (h + gap), c * (w + gap)
            mosaic[:, top : top + h, left : left + w] = tiles[r, c]
    return mosaic


def plot_patches(image: Any, patch_size: int, *, title: str | None = None) -> CourseFigure:
    """Draw an image and the grid of patches a ViT cuts it into, drawn apart and numbered in reading order.

    The patches are read row by row, left to right, as
    [patchify][llmdocs.nn.patch_embedding.patchify] orders them: patch k (1..P) is token k of the ViT's input
    sequence, after the [CLS] token at position 0 (eq. 1 of the paper). All patches share one grey scale, the
    image's, so a dark patch is dark in the image too.

    Args:
        image: One image (C, H, W) or (H, W), C = 1 or 3, e.g. ``dataset.images[0]`` (uint8) or a normalised one.
        patch_size: p, the side of a patch; it must divide H and W.
        title: Figure title.

    Returns:
        The figure: the image with the cut lines (left), and the P = (H / p)(W / p) patches apart (right), each
        labelled with its position 1..P.

    Raises:
        TypeError: If ``image`` is not numbers.
        ValueError: If ``image`` is not (C, H, W) or (H, W) with C = 1 or 3, or holds NaN, or ``patch_size`` is
            not an integer >= 1 that divides H and W.

    Shape:
        - image: (C, H, W) or (H, W).

    References:
        Dosovitskiy et al., "An Image is Worth 16x16 Words", ICLR 2021, section 3.1 (eq. 1) and figure 1.

    Examples:
        >>> import torch
        >>> from llmdocs.viz import plot_patches
        >>> fig = plot_patches(torch.rand(1, 28, 28), patch_size=7)  # 4 x 4 = 16 patches
        >>> image_ax, patches_ax = fig.axes
        >>> len(patches_ax.texts), patches_ax.texts[0].get_text(), patches_ax.texts[-1].get_text()
        (16, '1', '16')
        >>> patches_ax.images[0].get_array().shape  # one mosaic: 4 patches of 7 and 3 gaps of 4 pixels a side
        (40, 40)
        >>> plot_patches(torch.rand(28, 28), patch_size=5)
        Traceback (most recent call last):
        ...
        ValueError: patch_size=5 does not divide the 28 x 28 image: H and W must be multiples of the patch side
    """
    array = _image_batch(image, "image", single=True)[0]  # (C, H, W)
    p = _positive_int(patch_size, "patch_size")
    C, H, W = array.shape
    if H % p or W % p:
        raise ValueError(
            f"patch_size={p} does not divide the {H} x {W} image: H and W must be multiples of the patch side"
        )
    Gh, Gw = H // p, W // p
    low, high = float(array.min()), float(array.max())
    fig = CourseFigure(figsize=(7.0, 3.4), layout="constrained")
    image_ax, patches_ax = fig.subplots(1, 2, width_ratios=[1.0, 1.25])
    _show(image_ax, array, low, high)
    for k in range(1, Gh):
        image_ax.axhline(k * p - 0.5, color="C1", linewidth=0.8)  # pixel i covers [i - 0.5, i + 0.5]
    for k in range(1, Gw):
        image_ax.axvline(k * p - 0.5, color="C1", linewidth=0.8)
    image_ax.set_xticks([])
    image_ax.set_yticks([])
    image_ax.set_title(f"{H} x {W} pixels, patches of {p} x {p}", fontsize=9)

    gap = max(1, round(0.6 * p))  # pixels between patches, room for the number under each
    step = p + gap
    tiles = array.reshape(C, Gh, p, Gw, p).transpose(1, 3, 0, 2, 4)  # (Gh, Gw, C, p, p)
    _show(patches_ax, _mosaic(tiles, gap), low, high)
    fontsize = 8 if Gh * Gw <= 64 else 6
    for r in range(Gh):
        for c in range(Gw):
            number = r * Gw + c + 1  # position in the sequence: [CLS] is 0
            x, y = c * step + (p - 1) / 2, r * step + p - 0.5 + gap / 2  # under the patch (pixel centres)
            patches_ax.text(x, y, str(number), ha="center", va="center", fontsize=fontsize)
    patches_ax.set_ylim(Gh * step - 0.5, -0.5)  # the last row's numbers too; y down, as in the image
    patches_ax.axis("off")
    patches_ax.set_title(f"the sequence: P = {Gh * Gw} patches, row by row", fontsize=9)
    if title:
        fig.suptitle(title)
    return fig


def plot_position_similarity(
    pos_embed: Any, grid: int | tuple[int, int], *, cmap: str = "viridis", title: str | None = None
) -> CourseFigure:
    """Draw the cosine similarity of each patch's position embedding to every other one, as a grid of small maps.

    The panel at row r, column c of the figure is the map, over the grid of patches, of

        sim(k, j) = <e_k, e_j> / (|e_k| |e_j|),     k = the patch at (r, c), j = every patch

    with e the rows of the position table. Panel (r, c) is 1 at its own place; a table that has learned the
    image's 2-D layout is also high along the same row and column and falls off with distance (Dosovitskiy et
    al., 2021, figure 7, centre).

    Args:
        pos_embed: The position table, e.g. ``model.embeddings.pos_embed``: (1, T, D) or (T, D), with the
            [CLS] row first (T = 1 + P, what a [ViT][llmdocs.models.vit.ViT] stores) or without it (T = P). The
            row count tells which: a table of 1 + P rows loses its first row, which belongs to no patch.
        grid: (Gh, Gw) patches per column and per row, or an int for a square grid; Gh Gw = P.
        cmap: Colour map of the similarities, drawn on the fixed scale [-1, 1].
        title: Figure title.

    Returns:
        The figure: one image of Gh x Gw panels, each a (Gh, Gw) map, with a blank pixel between panels (panel
        (r, c) starts at row r (Gh + 1) and column c (Gw + 1)), and a colour bar.

    Raises:
        TypeError: If ``pos_embed`` is not numbers.
        ValueError: If ``pos_embed`` is not (1, T, D) or (T, D), T is neither P nor 1 + P, a patch row is all
            zeros (no direction to compare), or ``grid`` is not an integer >= 1 or a pair of them.

    Shape:
        - pos_embed: (1, 1 + P, D), (1 + P, D), (1, P, D) or (P, D).

    References:
        Dosovitskiy et al., "An Image is Worth 16x16 Words", ICLR 2021, section 4.5 and figure 7 (centre);
        appendix D.4 (1-D position embeddings learn the 2-D grid).

    Examples:
        >>> import torch
        >>> from llmdocs.nn.patch_embedding import sincos_2d_table
        >>> from llmdocs.viz import plot_position_similarity
        >>> fig = plot_position_similarity(sincos_2d_table((3, 4), d_model=16), grid=(3, 4))  # no [CLS] row
        >>> mosaic = fig.axes[0].images[0].get_array()  # 3 x 4 panels of 3 x 4 maps, 1 blank pixel apart
        >>> mosaic.shape
        (11, 19)
        >>> round(float(mosaic[1 * 4 + 1, 1 * 5 + 1]), 4)  # panel (1, 1) at its own place: itself
        1.0
        >>> plot_position_similarity(torch.randn(1, 50, 8), grid=6)
        Traceback (most recent call last):
        ...
        ValueError: pos_embed has 50 rows but grid=6 has 36 patches: expected 36 rows (patches only) or 37 ([CLS] first)
    """
    table = to_numpy(pos_embed, "pos_embed")
    if table.ndim == 3 and table.shape[0] == 1:
        table = table[0]
    if table.ndim != 2:
        raise ValueError(f"pos_embed must be (1, T, D) or (T, D), got shape {table.shape}")
    Gh, Gw = _grid_pair(grid)
    P = Gh * Gw
    if table.shape[0] == P + 1:
        table = table[1:]  # the [CLS] row: it belongs to no patch
    elif table.shape[0] != P:
        raise ValueError(
            f"pos_embed has {table.shape[0]} rows but grid={grid!r} has {P} patches: expected {P} rows (patches "
            f"only) or {P + 1} ([CLS] first)"
        )
    norms = np.linalg.norm(table, axis=1, keepdims=True)  # (P, 1)
    if (norms == 0).any():
        k = int(np.flatnonzero(norms[:, 0] == 0)[0])
        raise ValueError(f"pos_embed's row for patch {k + 1} is all zeros: its cosine similarity is undefined")
    unit = table / norms  # (P, D)
    similarity = unit @ unit.T  # (P, P): cosine similarities

    maps = similarity.reshape(Gh, Gw, 1, Gh, Gw)  # panel (r, c): patch r Gw + c against the (Gh, Gw) grid
    mosaic = _mosaic(maps, gap=1)[0]  # (Gh (Gh + 1) - 1, Gw (Gw + 1) - 1), NaN between panels

    width = 6.4 if Gw >= Gh else 1.4 + 5.0 * Gw / Gh
    fig = CourseFigure(figsize=(width, 5.0 * Gh / max(Gh, Gw) + 0.6), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(np.ma.masked_invalid(mosaic), cmap=cmap, vmin=-1.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks([c * (Gw + 1) + (Gw - 1) / 2 for c in range(Gw)], labels=[str(c + 1) for c in range(Gw)])
    ax.set_yticks([r * (Gh + 1) + (Gh - 1) / 2 for r in range(Gh)], labels=[str(r + 1) for r in range(Gh)])
    ax.tick_params(length=0, labelsize=8)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_xlabel("input patch column")
    ax.set_ylabel("input patch row")
    fig.colorbar(image, ax=ax, shrink=0.8, label="cosine similarity")
    if title:
        fig.suptitle(title)
    return fig


def plot_patch_filters(
    weight: Any,
    patch_size: int | None = None,
    *,
    pca: bool = True,
    n_filters: int = 28,
    ncols: int = 7,
    title: str | None = None,
) -> CourseFigure:
    """Draw the patch embedding's filters as p x p images: their principal components (default) or the rows of E.

    The patch embedding multiplies each flattened patch by one matrix E (eq. 1), whose D rows are filters of
    C p^2 numbers. With ``pca=True`` (the paper's figure 7, left) the rows are centred and decomposed,
    ``E - mean = U S V^T``, and the first rows of V^T are drawn: the directions, in pixel space, along which the
    filters differ most, with each component's share of the variance, S_i^2 / sum S^2, in its title. A trained
    ViT's components look like low-frequency bases (edges, blobs, stripes), as the first layer of a CNN learns.
    With ``pca=False`` the first ``n_filters`` rows of E are drawn as they are. Principal components are at most
    min(D, C p^2) (16 for 4 x 4 grayscale patches): ``n_filters`` is cut to what there is.

    Grayscale filters use a diverging colour map centred on zero, each on its own scale (a component's sign is
    arbitrary); RGB ones are rescaled to [0, 1] each.

    Args:
        weight: The embedding's weights: the convolution kernel (D, C, p, p), e.g.
            ``model.embeddings.patch_embed.proj.weight``, or the matrix (D, C p^2) with ``patch_size`` given.
        patch_size: p; needed for a (D, C p^2) matrix, checked against a 4-D kernel.
        pca: Draw principal components (True) or the raw filters (False).
        n_filters: How many to draw (at most).
        ncols: Panels per row of the figure.
        title: Figure title.

    Returns:
        The figure, one panel per filter or component.

    Raises:
        TypeError: If ``weight`` is not numbers.
        ValueError: If ``weight`` is not (D, C, p, p) or (D, C p^2), C is not 1 or 3, ``patch_size`` is missing
            or does not fit, ``n_filters`` or ``ncols`` is not an integer >= 1, or (with ``pca``) all filters
            are equal.

    Shape:
        - weight: (D, C, p, p) or (D, C p^2), C = 1 or 3.

    References:
        Dosovitskiy et al., "An Image is Worth 16x16 Words", ICLR 2021, section 4.5 and figure 7 (left).

    Examples:
        >>> from llmdocs.models.vit import ViT, ViTConfig
        >>> from llmdocs.viz import plot_patch_filters
        >>> model = ViT(ViTConfig.fashion_mnist())  # D = 64 filters of 1 x 4 x 4
        >>> fig = plot_patch_filters(model.embeddings.patch_embed.proj.weight)
        >>> len(fig.axes), fig.axes[0].get_title().startswith("PC 1")  # 16 = C p^2 components at most
        (16, True)
        >>> len(plot_patch_filters(model.embeddings.patch_embed.proj.weight, pca=False, n_filters=8).axes)
        8
    """
    array = to_numpy(weight, "weight")
    p = None if patch_size is None else _positive_int(patch_size, "patch_size")
    if array.ndim == 4:
        D, C, ph, pw = array.shape
        if ph != pw or (p is not None and p != ph):
            raise ValueError(f"weight is a {ph} x {pw} kernel (shape {array.shape}) but patch_size={patch_size}")
        p = ph
    elif array.ndim == 2:
        if p is None:
            raise ValueError(f"weight is a (D, C p^2) matrix {array.shape}: pass patch_size to cut its rows")
        D, columns = array.shape
        C = columns // (p * p)
        if C * p * p != columns:
            raise ValueError(f"weight has {columns} columns, not C * {p} * {p} for patch_size={p}")
    else:
        raise ValueError(f"weight must be a kernel (D, C, p, p) or a matrix (D, C p^2), got shape {array.shape}")
    if C not in (1, 3):
        raise ValueError(f"weight's filters must have 1 (grayscale) or 3 (RGB) channels, got C={C}")
    n = _positive_int(n_filters, "n_filters")
    cols = _positive_int(ncols, "ncols")
    flat = array.reshape(D, C * p * p)  # (D, C p^2), the (c, i, j) order of a patch
    if pca:
        centred = flat - flat.mean(axis=0)  # (D, C p^2)
        _, singular, components = np.linalg.svd(centred, full_matrices=False)  # components: (min(D, Cp^2), Cp^2)
        variance = singular**2
        if variance.sum() <= 0:
            raise ValueError("weight's filters are all equal: they have no principal components")
        share = variance / variance.sum()
        filters = components[:n]
        names = [f"PC {i + 1}: {s:.0%}" for i, s in enumerate(share[: len(filters)])]
    else:
        filters = flat[:n]
        names = [f"filter {i}" for i in range(len(filters))]

    n_drawn = len(filters)
    cols = min(cols, n_drawn)
    rows = -(-n_drawn // cols)  # ceil
    fig = CourseFigure(figsize=(1.05 * cols + 0.3, 1.2 * rows + (0.4 if title else 0.1)), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).flat
    for i, ax in enumerate(axes):
        if i >= n_drawn:
            ax.remove()  # an empty slot of the last row
            continue
        kernel = filters[i].reshape(C, p, p)  # (C, p, p)
        if C == 1:
            limit = float(np.abs(kernel).max()) or 1.0
            ax.imshow(kernel[0], cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest")
        else:
            _show(ax, kernel, float(kernel.min()), float(kernel.max()))
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(names[i], fontsize=7)
    if title:
        fig.suptitle(title)
    return fig


def plot_image_grid(
    images: Any,
    titles: Sequence[str] | None = None,
    overlays: Any | None = None,
    *,
    title_colors: Sequence[str] | None = None,
    ncols: int | None = None,
    cmap: str = "inferno",
    alpha: float = 0.55,
    title: str | None = None,
) -> CourseFigure:
    """Draw several images in a grid, each with a title and, optionally, a heat map laid over it.

    Each image is drawn on its own grey (or RGB) scale, its darkest pixel black and its brightest white. An
    overlay is stretched over its whole image, so a map of any size fits: the per-pixel maps of
    [rollout_map][llmdocs.models.vit.rollout_map] or a (Gh, Gw) map of patches (drawn as blocks). Each overlay is
    scaled to its own range (its minimum transparent-dark, its maximum brightest): the colours compare the regions
    of one image, not two images.

    Args:
        images: N images (N, C, H, W) or (N, H, W), C = 1 or 3 (a batch even for one image), e.g.
            ``dataset.images[:8]``.
        titles: N titles, e.g. ``"true: Coat / predicted: Shirt"``.
        overlays: N heat maps (N, h, w) or (N, 1, h, w), e.g. ``rollout_map(model, inputs)``; None draws none.
        title_colors: N matplotlib colours of the titles, e.g. green for right predictions and red for wrong ones.
        ncols: Images per row; default min(N, 8).
        cmap: Colour map of the overlays.
        alpha: Opacity of the overlays, in (0, 1].
        title: Figure title.

    Returns:
        The figure, one panel per image.

    Raises:
        TypeError: If ``images`` or ``overlays`` is not numbers, or ``titles`` or ``title_colors`` is a bare
            string.
        ValueError: If ``images`` is not (N, C, H, W) or (N, H, W) with C = 1 or 3, ``overlays`` is not
            (N, h, w) for the same N, a list of titles or colours has the wrong length, ``ncols`` is not an
            integer >= 1, or ``alpha`` is not in (0, 1].

    Shape:
        - images: (N, C, H, W) or (N, H, W).
        - overlays: (N, h, w) or (N, 1, h, w); (h, w) = (H, W) for per-pixel maps.

    Examples:
        >>> import torch
        >>> from llmdocs.viz import plot_image_grid
        >>> images = torch.randint(0, 256, (3, 1, 28, 28), dtype=torch.uint8)
        >>> fig = plot_image_grid(images, ["Coat", "Bag", "Shirt"], overlays=torch.rand(3, 7, 7))
        >>> [ax.get_title() for ax in fig.axes], len(fig.axes[0].images)  # the image and its overlay
        (['Coat', 'Bag', 'Shirt'], 2)
        >>> plot_image_grid(images, overlays=torch.rand(2, 28, 28))
        Traceback (most recent call last):
        ...
        ValueError: overlays has 2 maps but there are 3 images
    """
    batch = _image_batch(images, "images", single=False)  # (N, C, H, W)
    N, _, H, W = batch.shape
    check_labels(titles, N, "titles", "images", of="the batch has")
    check_labels(title_colors, N, "title_colors", "images", of="the batch has")
    maps = None
    if overlays is not None:
        maps = to_numpy(overlays, "overlays")
        if maps.ndim == 4 and maps.shape[1] == 1:
            maps = maps[:, 0]
        if maps.ndim != 3:
            raise ValueError(f"overlays must be maps (N, h, w) or (N, 1, h, w), got shape {maps.shape}")
        if len(maps) != N:
            raise ValueError(f"overlays has {len(maps)} maps but there are {N} images")
    cols = min(N, 8) if ncols is None else _positive_int(ncols, "ncols")
    cols = min(cols, N)
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0.0 < alpha <= 1.0:
        raise ValueError(f"alpha must be a number in (0, 1], got {alpha!r}")
    rows = -(-N // cols)  # ceil
    fig = CourseFigure(figsize=(1.6 * cols + 0.2, 1.85 * rows + (0.4 if title else 0.1)), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).flat
    extent = (-0.5, W - 0.5, H - 0.5, -0.5)  # the image's own pixel extent: an overlay of any size covers it
    for i, ax in enumerate(axes):
        if i >= N:
            ax.remove()
            continue
        image = batch[i]  # (C, H, W)
        _show(ax, image, float(image.min()), float(image.max()))
        if maps is not None:
            low, high = float(maps[i].min()), float(maps[i].max())
            scaled = (maps[i] - low) / ((high - low) or 1.0)  # (h, w) in [0, 1]
            ax.imshow(scaled, cmap=cmap, vmin=0.0, vmax=1.0, alpha=alpha, extent=extent, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        if titles is not None:
            color = {} if title_colors is None else {"color": title_colors[i]}
            ax.set_title(titles[i], fontsize=8, **color)
    if title:
        fig.suptitle(title)
    return fig


def plot_confusion_matrix(
    matrix: Any,
    class_names: Sequence[str] | None = None,
    *,
    normalize: bool = False,
    annotate: bool = True,
    cmap: str = "Blues",
    title: str | None = None,
) -> CourseFigure:
    """Draw a confusion matrix: row = true class, column = predicted class, in counts or shares of each row.

    Cell (i, j) counts the images of class i predicted as class j; the diagonal holds the right answers. With
    ``normalize=True`` every row is divided by its sum, so cell (i, j) is the share of class i predicted as j and
    the diagonal is each class's recall (a row without images stays zero).

    Args:
        matrix: (K, K) non-negative counts (or any non-negative scores), rows true, columns predicted, e.g. the
            ``"confusion_matrix"`` of ``examples/train_vit.py``'s results.
        class_names: K names, for both axes; default ``0 .. K-1``.
        normalize: Divide each row by its sum.
        annotate: Write each cell's value in it (whole numbers for counts, two decimals otherwise).
        cmap: Colour map.
        title: Figure title.

    Returns:
        The figure: the matrix and its colour bar.

    Raises:
        TypeError: If ``matrix`` is not numbers, or ``class_names`` is a bare string.
        ValueError: If ``matrix`` is not square (K, K), holds a negative value or NaN, or ``class_names`` does not
            have K names.

    Shape:
        - matrix: (K, K).

    Examples:
        >>> from llmdocs.viz import plot_confusion_matrix
        >>> counts = [[8, 2], [1, 9]]  # 10 coats and 10 shirts
        >>> fig = plot_confusion_matrix(counts, ["Coat", "Shirt"], normalize=True)
        >>> [t.get_text() for t in fig.axes[0].texts]
        ['0.80', '0.20', '0.10', '0.90']
        >>> plot_confusion_matrix([[1, 2, 3]])
        Traceback (most recent call last):
        ...
        ValueError: matrix must be square (K, K), rows true classes and columns predicted ones, got shape (1, 3)
    """
    values = to_numpy(matrix, "matrix")
    if values.ndim != 2 or values.shape[0] != values.shape[1]:
        raise ValueError(
            f"matrix must be square (K, K), rows true classes and columns predicted ones, got shape {values.shape}"
        )
    if (values < 0).any():
        raise ValueError("matrix must hold counts >= 0, got a negative value")
    K = values.shape[0]
    check_labels(class_names, K, "class_names", "classes", of="the matrix has")
    if normalize:
        totals = values.sum(axis=1, keepdims=True)  # (K, 1)
        values = np.divide(values, totals, out=np.zeros_like(values), where=totals > 0)  # empty rows stay 0
    whole = not normalize and bool((values == np.round(values)).all())
    fmt = "{:.0f}" if whole else "{:.2f}"
    names = [str(k) for k in range(K)] if class_names is None else list(class_names)

    side = min(max(2.5, 0.55 * K + 1.5), 9.0)
    fig = CourseFigure(figsize=(side + 1.4, side), layout="constrained")
    ax = fig.add_subplot()
    vmax = 1.0 if normalize else (float(values.max()) or 1.0)
    image = ax.imshow(values, cmap=cmap, vmin=0.0, vmax=vmax, interpolation="nearest")
    if annotate:
        fontsize = 8 if K <= 10 else 6
        for i in range(K):
            for j in range(K):
                dark = values[i, j] > 0.55 * vmax  # white text on the dark cells
                ax.text(
                    j, i, fmt.format(values[i, j]), ha="center", va="center", fontsize=fontsize,
                    color="white" if dark else "#333333",
                )  # fmt: skip
    ax.set_xticks(
        range(K), labels=names, rotation=45 if K > 4 else 0, ha="right" if K > 4 else "center", rotation_mode="anchor"
    )
    ax.set_yticks(range(K), labels=names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    fig.colorbar(image, ax=ax, shrink=0.8, label="share of the true class" if normalize else "images")
    if title:
        fig.suptitle(title)
    return fig
