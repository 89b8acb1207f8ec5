"""llmdocs.viz: deterministic SVG output, the plotting helpers' shapes and their errors."""

from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from llmdocs.viz import plot_attention, plot_curves, plot_heatmap, save_figure


@pytest.fixture(autouse=True)
def figures_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    out = tmp_path / "figs"
    monkeypatch.setenv("LLMDOCS_FIGURES_DIR", str(out))
    return out


def test_save_figure_is_byte_for_byte_reproducible(figures_dir: Path) -> None:
    def draw() -> Figure:
        return plot_attention(torch.softmax(torch.arange(12.0).view(3, 4), -1), title="t")

    first = save_figure(draw(), "attn").read_bytes()
    second = save_figure(draw(), "attn").read_bytes()
    assert first == second
    assert (figures_dir / "attn.svg").is_file()
    assert b"<dc:date>" not in first  # no timestamp in the metadata


def test_save_figure_defaults_to_figures_in_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLMDOCS_FIGURES_DIR")
    monkeypatch.chdir(tmp_path)
    assert save_figure(plot_curves({"a": [1.0, 2.0]}), "curve") == Path("figures/curve.svg")
    assert (tmp_path / "figures" / "curve.svg").is_file()


@pytest.mark.parametrize("name", ["Bad", "x.svg", "", "a/b", "-x"])
def test_save_figure_rejects_bad_names(name: str) -> None:
    with pytest.raises(ValueError, match="not a valid figure name"):
        save_figure(plot_curves({"a": [1.0]}), name)


def test_save_figure_rejects_non_figures() -> None:
    with pytest.raises(TypeError, match="matplotlib Figure"):
        save_figure("figure", "x")  # type: ignore[arg-type]


def test_plot_attention_heads_and_labels() -> None:
    weights = torch.softmax(torch.randn(1, 3, 2, 4), dim=-1)  # (1, H, Tq, Tk)
    fig = plot_attention(weights, x_labels=list("abcd"), y_labels=["p", "q"])
    heads = fig.axes[:3]
    assert [ax.get_title() for ax in heads] == ["head 0", "head 1", "head 2"]
    assert [t.get_text() for t in heads[0].get_xticklabels()] == list("abcd")
    assert [t.get_text() for t in heads[0].get_yticklabels()] == ["p", "q"]


def test_plot_attention_errors() -> None:
    with pytest.raises(ValueError, match=r"\(Tq, Tk\)"):
        plot_attention(torch.rand(5))
    with pytest.raises(ValueError, match="x_labels has 2 labels"):
        plot_attention(torch.rand(3, 4), x_labels=["a", "b"])
    with pytest.raises(ValueError, match="NaN"):
        plot_attention(torch.full((2, 2), float("nan")))


def test_plot_heatmap_symmetric_scale() -> None:
    values = np.array([[-1.0, 0.5], [2.0, 0.0]])
    image = plot_heatmap(values).axes[0].images[0]
    assert image.get_clim() == (-2.0, 2.0)
    with pytest.raises(ValueError, match="2-D"):
        plot_heatmap(np.zeros(3))


def test_plot_curves() -> None:
    fig = plot_curves({"lr": ([0, 10, 20], [1e-3, 5e-4, 1e-4])}, ylabel="lr", logy=True)
    assert fig.axes[0].get_yscale() == "log"
    with pytest.raises(ValueError, match="empty"):
        plot_curves({})
    with pytest.raises(ValueError, match="positive"):
        plot_curves({"a": [1.0, 0.0]}, logy=True)
    with pytest.raises(ValueError, match="3 x values but 2 y values"):
        plot_curves({"a": ([0, 1, 2], [1.0, 2.0])})


def test_figures_show_as_svg_in_notebooks() -> None:
    assert plot_curves({"a": [1.0, 2.0]})._repr_svg_().lstrip().startswith("<?xml")
