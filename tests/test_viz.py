"""llmdocs.viz: deterministic SVG output, the plotting helpers' shapes and their errors."""

from pathlib import Path

import matplotlib.colors
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from llmdocs.training import plot_history
from llmdocs.viz import CourseFigure, plot_attention, plot_bars, plot_curves, plot_heatmap, save_figure


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


def test_plot_bars_groups_series_around_each_label() -> None:
    fig = plot_bars({"ours": [1.0, 4.0, 9.0], "theirs": torch.tensor([2.0, 3.0, 8.0])}, ["s", "m", "l"], ylabel="s")
    assert isinstance(fig, CourseFigure) and len(fig.axes) == 1
    ax = fig.axes[0]
    bars = ax.patches  # series by series: ours s, m, l, then theirs s, m, l
    assert [round(bar.get_height(), 3) for bar in bars] == [1.0, 4.0, 9.0, 2.0, 3.0, 8.0]
    centres = [bar.get_x() + bar.get_width() / 2 for bar in bars]
    assert centres[0] < 0 < centres[3] and centres[1] < 1 < centres[4]  # side by side, around each tick
    assert [t.get_text() for t in ax.get_xticklabels()] == ["s", "m", "l"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["ours", "theirs"]
    assert ax.get_ylabel() == "s" and ax.get_yscale() == "linear"


def test_plot_bars_panels_horizontal_log_and_value_labels() -> None:
    panels = plot_bars({"a": [0.5, 0.5], "b": [0.9, 0.1]}, ["x", "y"], panels=True, ylabel="probability")
    assert [ax.get_title() for ax in panels.axes] == ["a", "b"]
    assert panels.axes[0].get_ylabel() == "probability" and panels.axes[0].get_legend() is None
    assert panels.axes[0].get_shared_y_axes().joined(panels.axes[0], panels.axes[1])  # one value scale
    flat = plot_bars([3.0, 1.0], ["first", "second"], horizontal=True, bar_labels="{:.1f}", log=True)
    ax = flat.axes[0]
    assert [round(bar.get_width(), 3) for bar in ax.patches] == [3.0, 1.0]  # bars grow along x
    assert ax.get_xscale() == "log" and ax.yaxis_inverted()  # the first group on top
    assert [t.get_text() for t in ax.texts] == ["3.0", "1.0"]
    assert ax.get_legend() is None  # a lone series needs no legend
    assert plot_bars([2.0]).axes[0].patches[0].get_height() == 2.0  # a single bar is fine


@pytest.mark.parametrize(
    ("values", "kwargs", "error", "message"),
    [
        ({}, {}, ValueError, "values is empty"),
        ([], {}, ValueError, r"values is empty \(shape \(0,\)\)"),
        ({"a": []}, {}, ValueError, r"values\['a'\] is empty"),
        ({"a": [1.0], "b": [1.0, 2.0]}, {}, ValueError, "same number of values, got {'a': 1, 'b': 2}"),
        ([[1.0, 2.0]], {}, ValueError, r"values must be 1-D .* got shape \(1, 2\)"),
        ([1.0, 2.0], {"labels": ["a"]}, ValueError, "labels has 1 entries but each series has 2 values"),
        ([1.0, 0.0], {"log": True}, ValueError, "log=True needs positive values"),
        ([1.0, float("nan")], {}, ValueError, "NaN"),
        ([1.0], {"bar_labels": "{:d} {}"}, ValueError, "bar_labels must format one number"),
        ("abc", {}, TypeError, "values must be numbers"),
        ({"a": ["x", "y"]}, {}, TypeError, r"values\['a'\] must be numbers"),
        (None, {}, TypeError, r"values must be numbers \(a tensor, an array or a sequence\), got NoneType"),
        ([1.0, None], {}, TypeError, "values must be numbers .*, got None among them"),
        ({"a": None}, {}, TypeError, r"values\['a'\] must be numbers .*, got NoneType"),
        ([1.0, 2.0], {"labels": "ab"}, TypeError, "labels must be a sequence of 2 strings, one per group, got 'ab'"),
    ],
)
def test_plot_bars_rejects_bad_input(values: object, kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        plot_bars(values, **kwargs)


def test_helpers_reject_empty_and_non_numeric_input() -> None:
    with pytest.raises(ValueError, match=r"weights is empty \(shape \(0, 0\)\)"):
        plot_attention(torch.zeros(0, 0))
    with pytest.raises(ValueError, match="values is empty"):
        plot_heatmap(torch.zeros(0, 3))  # used to fail inside numpy's max()
    with pytest.raises(TypeError, match="weights must be numbers"):
        plot_attention("abc")
    with pytest.raises(ValueError, match=r"series\['a'\] is empty"):
        plot_curves({"a": []})
    with pytest.raises(ValueError, match=r"series\['a'\] must be 1-D"):
        plot_curves({"a": [[1.0, 2.0], [3.0, 4.0]]})
    with pytest.raises(TypeError, match="series must be a mapping"):
        plot_curves([1.0, 2.0])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"series\['a'\] must be numbers .*, got None among them"):
        plot_curves({"a": [1.0, None]})
    with pytest.raises(TypeError, match=r"x_labels must be a sequence of 2 labels .*, got 'ab'"):
        plot_attention(torch.rand(2, 2), x_labels="ab")  # a string is not one label per character
    assert plot_attention(torch.rand(2, 2), x_labels=("a", "b")).axes  # a tuple is a sequence of labels


def test_plot_history_is_a_course_figure_and_checks_its_rows() -> None:
    fig = plot_history([{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.5}])
    assert isinstance(fig, CourseFigure)
    assert fig._repr_svg_().lstrip().startswith("<?xml")  # shows itself in a notebook
    with pytest.raises(ValueError, match="history is empty"):
        plot_history([])
    with pytest.raises(ValueError, match=r"needs a 'step'; rows \[1\] have none"):
        plot_history([{"step": 1, "loss": 2.0}, {"loss": 1.0}])
    with pytest.raises(TypeError, match="history must be an iterable of dicts"):
        plot_history("loss")  # type: ignore[arg-type]


def test_plot_history_reads_an_iterable_once_and_takes_one_key_as_a_string() -> None:
    rows = ({"step": i, "loss": 2.0 / i} for i in range(1, 4))  # a generator: checked and drawn from one pass
    assert [line.get_label() for line in plot_history(rows).axes[0].get_lines()] == ["loss"]
    fig = plot_history([{"step": 1, "loss": 2.0, "acc": 0.5}], keys="acc")  # one key, not 'a', 'c', 'c'
    assert [line.get_label() for line in fig.axes[0].get_lines()] == ["acc"]
    skipped = plot_history([{"step": 1, "loss": 2.0}, {"step": 2, "loss": None, "val_loss": 1.9}])  # None: not logged
    assert [len(line.get_xdata()) for line in skipped.axes[0].get_lines()] == [1, 1]


@pytest.mark.parametrize(
    ("history", "kwargs", "error", "message"),
    [
        ([{"step": 1, "loss": float("nan")}], {}, ValueError, r"history\['loss'\] contains NaN or infinite values"),
        ([{"step": 1, "loss": float("inf")}], {}, ValueError, "NaN or infinite"),
        (
            [{"step": 1, "loss": -1.0}],
            {"log_y": True},
            ValueError,
            r"log_y=True needs positive values, history\['loss'\]",
        ),
        ([{"step": 1, "loss": "x"}], {}, TypeError, r"history\['loss'\] must be numbers"),
        ([{"step": 1, "loss": 1.0}], {"keys": []}, ValueError, "keys is empty"),
        ([{"step": 1, "loss": 1.0}], {"keys": ["loss", 3]}, TypeError, "keys must be a metric name or a sequence"),
        (None, {}, TypeError, "history must be an iterable of dicts .*, got NoneType"),
        ({"step": 1}, {}, TypeError, "history must be an iterable of dicts .*, got dict"),
    ],
)
def test_plot_history_checks_values_like_plot_curves(history: object, kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        plot_history(history, **kwargs)  # type: ignore[arg-type]


def test_plot_masking_colours_each_chosen_position_by_what_happened() -> None:
    from llmdocs.viz import MASKING_COLORS, plot_masking

    original = ["[CLS]", "the", "cat", "sat", "on", "the", "mat", "[SEP]"]
    corrupted = ["[CLS]", "[MASK]", "cat", "dog", "on", "the", "mat", "[SEP]"]
    chosen = [False, True, False, True, False, False, True, False]
    fig = plot_masking(original, corrupted, chosen, per_row=5)
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.texts]
    assert texts.count("text") == texts.count("input") == texts.count("target") == 2  # two lines of 5 and 3
    faces = {matplotlib.colors.to_hex(p.get_facecolor()) for p in ax.patches}
    assert {MASKING_COLORS["[MASK]"], MASKING_COLORS["random"], MASKING_COLORS["unchanged"]} <= faces
    with pytest.raises(ValueError, match="same non-zero length"):
        plot_masking(original, corrupted[:-1], chosen)
    with pytest.raises(ValueError, match="position 3 was changed"):
        plot_masking(original, corrupted, [False, True, False, False, False, False, True, False])
    with pytest.raises(ValueError, match="per_row"):
        plot_masking(original, corrupted, chosen, per_row=0)
    with pytest.raises(TypeError, match="token strings"):
        plot_masking([1, 2], ["a", "b"], [False, False])
