"""The figures of rotary position embeddings: a pair turning with the position, and relative-position scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.patches import Circle, FancyArrowPatch

from llmdocs.nn.rotary import apply_rotary, rope_cos_sin
from llmdocs.testing import assert_close
from llmdocs.viz import CourseFigure, plot_relative_scores, plot_rope_rotation, save_figure


@pytest.fixture
def figures_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    out = tmp_path / "figs"
    monkeypatch.setenv("LLMDOCS_FIGURES_DIR", str(out))
    return out


def rotated_pair(frequency: float, n_positions: int) -> torch.Tensor:
    """The pair (1, 0) rotated by apply_rotary at positions 0 .. n-1: (P, 2)."""
    cos, sin = rope_cos_sin(torch.arange(n_positions), torch.tensor([frequency]))  # (P, 2) each
    return apply_rotary(torch.tensor([[1.0, 0.0]]).expand(n_positions, 2), cos, sin)


def test_both_figures_are_course_figures_and_save_reproducibly(figures_dir: Path) -> None:
    offsets = torch.arange(6)[:, None] - torch.arange(6)
    for name, draw in {
        "rotation": lambda: plot_rope_rotation(rotated_pair(1.0, 5), title="t"),
        "scores": lambda: plot_relative_scores(torch.cos(offsets.float()), title="t"),
    }.items():
        fig = draw()
        assert isinstance(fig, CourseFigure)
        assert save_figure(fig, name).read_bytes() == save_figure(draw(), name).read_bytes()


def test_one_arrow_per_position_ending_at_the_rotated_pair() -> None:
    points = torch.stack([rotated_pair(1.0, 6), rotated_pair(0.1, 6)])  # (K, P, 2)
    fig = plot_rope_rotation(2.0 * points, ["fast", "slow"], positions=range(10, 16))
    assert [ax.get_title() for ax in fig.axes] == ["fast", "slow"]
    for k, ax in enumerate(fig.axes):
        arrows = [p for p in ax.patches if isinstance(p, FancyArrowPatch)]
        circles = [p for p in ax.patches if isinstance(p, Circle)]
        assert len(arrows) == 6 and len(circles) == 1
        assert circles[0].radius == pytest.approx(2.0)  # through the first point: a rotation keeps the length
        tips = np.array([arrow._posA_posB[1] for arrow in arrows])  # (P, 2)
        assert_close(torch.from_numpy(tips).float(), 2.0 * points[k])  # float32 points, drawn as given
        assert [t.get_text() for t in ax.texts] == [str(p) for p in range(10, 16)]
        assert ax.get_xlim() == ax.get_ylim()  # square, origin in the middle


def test_a_single_panel_from_a_p_by_2_array() -> None:
    fig = plot_rope_rotation(rotated_pair(0.5, 3).numpy())
    assert len(fig.axes) == 1 and [t.get_text() for t in fig.axes[0].texts] == ["0", "1", "2"]


@pytest.mark.parametrize(
    ("points", "kwargs", "error", "message"),
    [
        (torch.zeros(4, 3), {}, ValueError, r"\(P, 2\) or \(K, P, 2\)"),
        (torch.zeros(4, 2), {}, ValueError, "all zeros"),
        (torch.ones(2, 4, 2), {"titles": ["one"]}, ValueError, "titles has 1 labels but points has 2 panels"),
        (torch.ones(4, 2), {"positions": [0, 1]}, ValueError, "positions has 2 labels"),
        (torch.ones(4, 2), {"titles": "ab"}, TypeError, "titles must be a sequence"),
        ("pairs", {}, TypeError, "points must be numbers"),
    ],
)
def test_plot_rope_rotation_refuses_bad_input(points: object, kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        plot_rope_rotation(points, **kwargs)


def test_scores_are_drawn_against_their_offsets() -> None:
    scores = torch.arange(12.0).view(3, 4)  # (Tq, Tk)
    fig = plot_relative_scores(scores, title="s", xlabel="key", ylabel="query")
    heat, offset = fig.axes[0], fig.axes[1]
    np.testing.assert_array_equal(heat.images[0].get_array(), scores.numpy())
    assert heat.images[0].get_clim() == (-11.0, 11.0)  # centred on zero
    assert (heat.get_xlabel(), heat.get_ylabel()) == ("key", "query")
    points = offset.collections[0].get_offsets()  # (Tq Tk, 2): (m - n, score)
    expected = [(m - n, scores[m, n].item()) for m in range(3) for n in range(4)]
    np.testing.assert_array_equal(np.asarray(points), np.array(expected))
    assert fig._suptitle is not None and fig._suptitle.get_text() == "s"


@pytest.mark.parametrize(
    ("scores", "error", "message"),
    [
        (torch.zeros(3), ValueError, r"2-D \(Tq, Tk\)"),
        (torch.full((2, 2), float("nan")), ValueError, "NaN"),
        (None, TypeError, "scores must be numbers"),
    ],
)
def test_plot_relative_scores_refuses_bad_input(scores: object, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        plot_relative_scores(scores)
