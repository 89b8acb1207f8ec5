"""The figures of the Vision Transformer chapter: patches, position similarities, filters, image grids, confusion."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from llmdocs.models.vit import ViT, ViTConfig
from llmdocs.nn.patch_embedding import patchify, sincos_2d_table
from llmdocs.testing import assert_close
from llmdocs.viz import (
    CourseFigure,
    plot_confusion_matrix,
    plot_image_grid,
    plot_patch_filters,
    plot_patches,
    plot_position_similarity,
    save_figure,
)


@pytest.fixture
def figures_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    out = tmp_path / "figs"
    monkeypatch.setenv("LLMDOCS_FIGURES_DIR", str(out))
    return out


def assert_drawn(actual: object, expected: object) -> None:
    """What a figure drew equals ``expected`` to float32 rounding (the policy of llmdocs.testing)."""
    as32 = lambda x: torch.as_tensor(np.asarray(x, dtype=np.float32))  # noqa: E731
    expected32 = as32(expected).expand_as(as32(actual)).contiguous()
    assert_close(as32(actual), expected32)


def test_every_figure_is_a_course_figure_and_saves_reproducibly(figures_dir: Path) -> None:
    torch.manual_seed(0)
    model = ViT(ViTConfig.fashion_mnist())
    images = torch.randint(0, 256, (4, 1, 28, 28), dtype=torch.uint8)
    overlays = torch.rand(4, 28, 28)
    figures = {
        "patches": lambda: plot_patches(images[0], 4, title="t"),
        "positions": lambda: plot_position_similarity(model.embeddings.pos_embed, 7, title="t"),
        "filters": lambda: plot_patch_filters(model.embeddings.patch_embed.proj.weight, title="t"),
        "grid": lambda: plot_image_grid(images, list("abcd"), overlays, title="t"),
        "confusion": lambda: plot_confusion_matrix(torch.eye(10) * 90 + 1, title="t"),
    }
    for name, draw in figures.items():
        fig = draw()
        assert isinstance(fig, CourseFigure) and isinstance(fig, Figure) and fig._suptitle.get_text() == "t"
        assert save_figure(fig, name).read_bytes() == save_figure(draw(), name).read_bytes(), name


# ---- plot_patches ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(12, 8), (1, 12, 8), (3, 12, 8)])
def test_patches_are_drawn_in_reading_order_and_numbered_from_one(shape: tuple[int, ...]) -> None:
    image = torch.rand(shape)
    fig = plot_patches(image, patch_size=4)  # a 3 x 2 grid of patches
    image_ax, patches_ax = fig.axes
    assert len(image_ax.lines) == 2 + 1  # the cut lines: 2 between rows, 1 between columns
    assert [t.get_text() for t in patches_ax.texts] == ["1", "2", "3", "4", "5", "6"]
    batch = image.reshape(1, -1, 12, 8)  # (1, C, H, W)
    expected = patchify(batch, 4)[0]  # (P, C p^2): the model's order of the patches
    mosaic = np.ma.filled(np.asarray(patches_ax.images[0].get_array()), np.nan)  # patches 4 apart, 2 pixels between
    assert mosaic.shape[:2] == (3 * 6 - 2, 2 * 6 - 2)
    for k in range(6):
        r, c = divmod(k, 2)
        drawn = mosaic[6 * r : 6 * r + 4, 6 * c : 6 * c + 4]
        if batch.shape[1] == 1:
            np.testing.assert_array_equal(drawn.reshape(-1), expected[k].numpy())  # pixels drawn as given
        else:  # RGB, rescaled to [0, 1] on the image's range, channels last, opaque
            low, high = float(image.min()), float(image.max())
            pixels = (expected[k].view(3, 4, 4).permute(1, 2, 0).numpy() - low) / (high - low)
            assert_drawn(drawn[..., :3], pixels)
            assert (drawn[..., 3] == 1.0).all()
        x, y = patches_ax.texts[k].get_position()  # the number sits under its patch
        assert 6 * c - 0.5 < x < 6 * c + 3.5 and y > 6 * r + 3.5
    gaps = mosaic[4:6] if batch.shape[1] == 1 else mosaic[4:6, ..., 3]
    assert np.isnan(gaps).all() if batch.shape[1] == 1 else (gaps == 0).all()  # transparent between patches


def test_patches_share_the_images_grey_scale_and_take_uint8() -> None:
    image = torch.zeros(1, 8, 8, dtype=torch.uint8)
    image[0, :4, :4] = 200  # one bright patch
    image_ax, patches_ax = plot_patches(image, 4).axes
    assert image_ax.images[0].get_clim() == patches_ax.images[0].get_clim() == (0.0, 200.0)


@pytest.mark.parametrize(
    ("image", "patch_size", "error", "message"),
    [
        (torch.rand(28, 28), 5, ValueError, "patch_size=5 does not divide the 28 x 28 image"),
        (torch.rand(28, 28), 0, ValueError, "patch_size must be an integer >= 1, got 0"),
        (torch.rand(28, 28), True, ValueError, "patch_size must be an integer >= 1, got True"),
        (torch.rand(28, 28), 4.0, ValueError, "patch_size must be an integer >= 1, got 4.0"),
        (torch.rand(1, 1, 28, 28), 4, ValueError, r"image must be one image \(C, H, W\) or \(H, W\)"),
        (torch.rand(2, 28, 28), 4, ValueError, "image must have 1 .grayscale. or 3 .RGB. channels first, got C=2"),
        (torch.full((8, 8), float("nan")), 4, ValueError, "image contains NaN"),
        ("an image", 4, TypeError, "image must be numbers"),
    ],
)
def test_plot_patches_refuses_bad_input(image: object, patch_size: object, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        plot_patches(image, patch_size)  # type: ignore[arg-type]


# ---- plot_position_similarity ---------------------------------------------------------------------------------------


def panel_maps(fig: Figure, grid: tuple[int, int]) -> np.ndarray:
    """Cut the figure's mosaic back into its panels: (P, P), row k = patch k's map, flattened row-major."""
    Gh, Gw = grid
    assert len(fig.axes) == 2  # the mosaic and its colour bar
    mosaic = np.ma.filled(np.asarray(fig.axes[0].images[0].get_array()), np.nan)
    assert mosaic.shape == (Gh * (Gh + 1) - 1, Gw * (Gw + 1) - 1)
    assert np.isnan(mosaic[Gh]).all() and np.isnan(mosaic[:, Gw]).all()  # a blank line between panels
    panels = [
        mosaic[r * (Gh + 1) : r * (Gh + 1) + Gh, c * (Gw + 1) : c * (Gw + 1) + Gw] for r in range(Gh) for c in range(Gw)
    ]
    return np.stack(panels).reshape(Gh * Gw, Gh * Gw)


def test_each_position_is_itself_at_similarity_one_and_the_maps_are_symmetric() -> None:
    table = sincos_2d_table((3, 4), d_model=16)  # (P, D), no [CLS] row
    fig = plot_position_similarity(table, grid=(3, 4))
    maps = panel_maps(fig, (3, 4))  # (P, P)
    assert_drawn(np.diag(maps), 1.0)
    assert_drawn(maps, maps.T)
    assert maps.max() <= 1.0 + 1e-6 and maps.min() >= -1.0 - 1e-6
    unit = table / table.norm(dim=1, keepdim=True)
    assert_drawn(maps, (unit @ unit.T).numpy())
    assert fig.axes[0].images[0].get_clim() == (-1.0, 1.0)  # a fixed scale
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["1", "2", "3", "4"]
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["1", "2", "3"]


def test_the_cls_row_is_dropped_when_the_table_has_one() -> None:
    """A ViT's table (1, 1 + P, D) and its patch rows (P, D) give the same figure."""
    torch.manual_seed(0)
    model = ViT(ViTConfig.tiny(image_size=12, patch_size=4))  # a 3 x 3 grid
    with_cls = panel_maps(plot_position_similarity(model.embeddings.pos_embed, 3), (3, 3))
    without = panel_maps(plot_position_similarity(model.embeddings.pos_embed[0, 1:], 3), (3, 3))
    np.testing.assert_array_equal(with_cls, without)
    assert_drawn(np.diag(with_cls), 1.0)


@pytest.mark.parametrize(
    ("table", "grid", "error", "message"),
    [
        (torch.randn(1, 50, 8), 6, ValueError, "pos_embed has 50 rows but grid=6 has 36 patches"),
        (torch.randn(2, 10, 8), 3, ValueError, r"pos_embed must be \(1, T, D\) or \(T, D\)"),
        (torch.randn(9), 3, ValueError, r"pos_embed must be \(1, T, D\) or \(T, D\)"),
        (torch.cat([torch.randn(4, 8), torch.zeros(1, 8)]), (1, 5), ValueError, "row for patch 5 is all zeros"),
        (torch.randn(9, 8), 0, ValueError, "grid must be an integer >= 1 or a pair"),
        (torch.randn(9, 8), (3, 3, 1), ValueError, "grid must be an integer >= 1 or a pair"),
        (torch.randn(9, 8), "3", ValueError, "grid must be an integer >= 1 or a pair"),
        (None, 3, TypeError, "pos_embed must be numbers"),
    ],
)
def test_plot_position_similarity_refuses_bad_input(table: object, grid: object, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        plot_position_similarity(table, grid)  # type: ignore[arg-type]


# ---- plot_patch_filters ---------------------------------------------------------------------------------------------


def test_pca_finds_the_one_direction_the_filters_vary_along() -> None:
    """Filters mean + a_i v: one principal component, v (up to its sign), with all the variance."""
    torch.manual_seed(0)
    v = torch.randn(16)
    weight = torch.randn(16) + torch.randn(32, 1) * v  # (D=32, C p^2=16)
    fig = plot_patch_filters(weight, patch_size=4, n_filters=3)
    assert [ax.get_title() for ax in fig.axes] == ["PC 1: 100%", "PC 2: 0%", "PC 3: 0%"]
    first = np.asarray(fig.axes[0].images[0].get_array()).reshape(-1)
    direction = (v / v.norm()).numpy()
    assert_drawn(abs(first @ direction), 1.0)


def test_raw_filters_are_the_rows_of_e_and_a_kernel_equals_its_matrix() -> None:
    torch.manual_seed(0)
    model = ViT(ViTConfig.fashion_mnist())
    kernel = model.embeddings.patch_embed.proj.weight  # (64, 1, 4, 4)
    fig = plot_patch_filters(kernel, pca=False, n_filters=10, ncols=4)
    assert len(fig.axes) == 10  # 3 rows of 4, the 2 empty slots removed
    for i, ax in enumerate(fig.axes):
        assert_drawn(ax.images[0].get_array(), kernel[i, 0].detach().numpy())
        limit = float(kernel[i].detach().abs().max())
        assert ax.images[0].get_clim() == pytest.approx((-limit, limit))  # diverging, centred on zero
    from_matrix = plot_patch_filters(kernel.flatten(1), patch_size=4)
    from_kernel = plot_patch_filters(kernel)
    assert len(from_kernel.axes) == 16  # min(D, C p^2) components, though n_filters asks for 28
    for a, b in zip(from_matrix.axes, from_kernel.axes, strict=True):
        np.testing.assert_allclose(np.asarray(a.images[0].get_array()), np.asarray(b.images[0].get_array()))


def test_rgb_filters_are_drawn_as_colour_images() -> None:
    fig = plot_patch_filters(torch.randn(8, 3, 2, 2), n_filters=4)
    array = np.asarray(fig.axes[0].images[0].get_array())
    assert array.shape == (2, 2, 3) and array.min() >= 0.0 and array.max() <= 1.0


@pytest.mark.parametrize(
    ("weight", "kwargs", "message"),
    [
        (torch.randn(8, 16), {}, "pass patch_size"),
        (torch.randn(8, 15), {"patch_size": 4}, "weight has 15 columns, not C . 4 . 4"),
        (torch.randn(8, 1, 4, 4), {"patch_size": 2}, r"weight is a 4 x 4 kernel .* but patch_size=2"),
        (torch.randn(8, 1, 4, 2), {}, "weight is a 4 x 2 kernel"),
        (torch.randn(8, 2, 4, 4), {}, "1 .grayscale. or 3 .RGB. channels, got C=2"),
        (torch.randn(8, 1, 1, 4, 4), {}, r"weight must be a kernel \(D, C, p, p\) or a matrix"),
        (torch.randn(8, 1, 4, 4), {"n_filters": 0}, "n_filters must be an integer >= 1"),
        (torch.randn(8, 1, 4, 4), {"ncols": -1}, "ncols must be an integer >= 1"),
        (torch.ones(8, 1, 4, 4), {}, "filters are all equal"),
    ],
)
def test_plot_patch_filters_refuses_bad_input(weight: torch.Tensor, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        plot_patch_filters(weight, **kwargs)


# ---- plot_image_grid ------------------------------------------------------------------------------------------------


def test_image_grid_titles_colours_and_empty_slots() -> None:
    images = torch.randint(0, 256, (5, 28, 28), dtype=torch.uint8)  # (N, H, W)
    titles = [f"true {i}\npredicted {i}" for i in range(5)]
    colours = ["green", "red", "green", "green", "red"]
    fig = plot_image_grid(images, titles, title_colors=colours, ncols=3)
    assert len(fig.axes) == 5  # 2 rows of 3, the last slot removed
    assert [ax.get_title() for ax in fig.axes] == titles
    assert fig.axes[1].title.get_color() == "red"
    assert all(len(ax.images) == 1 for ax in fig.axes)  # no overlays asked for
    np.testing.assert_array_equal(np.asarray(fig.axes[2].images[0].get_array()), images[2].numpy())


def test_overlays_are_scaled_to_their_own_range_and_stretched_over_the_image() -> None:
    images = torch.rand(2, 3, 28, 28)  # RGB
    overlays = torch.stack([torch.arange(49.0).view(7, 7), torch.full((7, 7), 3.0)])  # patch grids, not pixels
    fig = plot_image_grid(images, overlays=overlays.unsqueeze(1), alpha=0.4)  # (N, 1, h, w) is accepted
    first, flat = (np.asarray(ax.images[1].get_array()) for ax in fig.axes)
    assert first.min() == 0.0 and first.max() == 1.0 and first.shape == (7, 7)
    assert (flat == 0.0).all()  # a constant map has no region to show
    assert fig.axes[0].images[1].get_extent() == [-0.5, 27.5, 27.5, -0.5]  # covers the 28 x 28 image
    assert fig.axes[0].images[1].get_alpha() == 0.4
    assert fig.axes[0].images[0].get_array().shape == (28, 28, 3)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"images": torch.rand(28, 28)}, ValueError, r"images must be images \(N, C, H, W\) or \(N, H, W\)"),
        ({"images": torch.rand(2, 4, 8, 8)}, ValueError, "images must have 1 .grayscale. or 3 .RGB. channels"),
        ({"titles": ["a", "b"]}, ValueError, "titles has 2 labels but the batch has 3 images"),
        ({"titles": "abc"}, TypeError, "titles must be a sequence of 3 labels"),
        ({"title_colors": ["red"]}, ValueError, "title_colors has 1 labels"),
        ({"overlays": torch.rand(2, 8, 8)}, ValueError, "overlays has 2 maps but there are 3 images"),
        ({"overlays": torch.rand(3, 64)}, ValueError, r"overlays must be maps \(N, h, w\) or \(N, 1, h, w\)"),
        ({"overlays": [[["x"]]]}, TypeError, "overlays must be numbers"),
        ({"ncols": 0}, ValueError, "ncols must be an integer >= 1"),
        ({"alpha": 0.0}, ValueError, r"alpha must be a number in \(0, 1\]"),
        ({"alpha": 1.5}, ValueError, r"alpha must be a number in \(0, 1\]"),
    ],
)
def test_plot_image_grid_refuses_bad_input(kwargs: dict, error: type, message: str) -> None:
    arguments = {"images": torch.rand(3, 1, 8, 8)} | kwargs
    with pytest.raises(error, match=message):
        plot_image_grid(**arguments)


# ---- plot_confusion_matrix ------------------------------------------------------------------------------------------


def test_counts_are_annotated_as_whole_numbers_with_the_class_names() -> None:
    counts = torch.tensor([[50, 3, 0], [4, 40, 6], [0, 10, 90]])
    fig = plot_confusion_matrix(counts, ["Coat", "Shirt", "Bag"])
    ax = fig.axes[0]
    assert len(fig.axes) == 2  # the matrix and its colour bar
    assert [t.get_text() for t in ax.texts] == ["50", "3", "0", "4", "40", "6", "0", "10", "90"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["Coat", "Shirt", "Bag"]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("predicted class", "true class")
    assert ax.texts[-1].get_color() == "white" and ax.texts[1].get_color() != "white"  # readable on dark cells
    np.testing.assert_array_equal(np.asarray(ax.images[0].get_array()), counts.numpy())


def test_normalised_rows_are_shares_of_each_true_class_and_an_empty_row_stays_zero() -> None:
    counts = np.array([[8, 2, 0], [0, 0, 0], [1, 1, 2]])
    fig = plot_confusion_matrix(counts, normalize=True, annotate=False)
    shares = np.asarray(fig.axes[0].images[0].get_array())
    np.testing.assert_allclose(shares.sum(axis=1), [1.0, 0.0, 1.0])
    np.testing.assert_allclose(shares[2], [0.25, 0.25, 0.5])
    assert len(fig.axes[0].texts) == 0 and fig.axes[0].images[0].get_clim() == (0.0, 1.0)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["0", "1", "2"]  # default names: the ids


def test_scores_that_are_not_whole_are_written_with_two_decimals() -> None:
    fig = plot_confusion_matrix([[0.5, 1.25], [2.0, 0.0]])
    assert [t.get_text() for t in fig.axes[0].texts] == ["0.50", "1.25", "2.00", "0.00"]


@pytest.mark.parametrize(
    ("matrix", "names", "error", "message"),
    [
        ([[1, 2, 3]], None, ValueError, r"matrix must be square \(K, K\)"),
        ([1, 2], None, ValueError, r"matrix must be square \(K, K\)"),
        ([[1, -1], [0, 2]], None, ValueError, "matrix must hold counts >= 0"),
        ([[1, float("nan")], [0, 2]], None, ValueError, "matrix contains NaN"),
        ([[1, 0], [0, 2]], ["a"], ValueError, "class_names has 1 labels"),
        ([[1, 0], [0, 2]], "ab", TypeError, "class_names must be a sequence of 2 labels"),
        ("matrix", None, TypeError, "matrix must be numbers"),
    ],
)
def test_plot_confusion_matrix_refuses_bad_input(matrix: object, names: object, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        plot_confusion_matrix(matrix, names)  # type: ignore[arg-type]
