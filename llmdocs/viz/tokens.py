"""Token sequences drawn as rows of boxes: what a masked-language model reads and what it must predict.

BERT's input is easier to see than to read: 15% of the tokens are chosen, and of those 80% become `[MASK]`, 10% a
random token and 10% stay as they are (Devlin et al., 2019, section 3.1). `plot_masking` draws the original text,
the corrupted input and the targets as three aligned rows, each chosen position coloured by what happened to it.
"""

from __future__ import annotations

from collections.abc import Sequence

from matplotlib.patches import Patch

from llmdocs.viz.figure import CourseFigure

__all__ = ["MASKING_COLORS", "plot_masking"]

MASKING_COLORS: dict[str, str] = {
    "[MASK]": "#4c72b0",  # replaced by [MASK] (80% of the chosen)
    "random": "#dd8452",  # replaced by a random token (10%)
    "unchanged": "#55a868",  # kept, but still predicted (10%)
}
"""Box colour of a chosen position, by what the corruption did to it."""


def plot_masking(
    original: Sequence[str],
    corrupted: Sequence[str],
    chosen: Sequence[bool],
    *,
    mask_token: str = "[MASK]",
    per_row: int = 12,
    title: str | None = None,
) -> CourseFigure:
    """Draw the original tokens, the corrupted input and the prediction targets as aligned rows of boxes.

    Args:
        original: T tokens of the text (e.g. `tokenizer.convert_ids_to_tokens(input_ids)`).
        corrupted: The T tokens the model reads after masking.
        chosen: T flags, True where the model must predict the original token (`labels != -100`).
        mask_token: The mask token's string.
        per_row: Tokens per line of the figure; a longer sequence wraps onto more lines.
        title: Figure title.

    Returns:
        The figure: for each line of tokens, the rows "text", "input" and "target", chosen positions
        coloured by [`MASKING_COLORS`][llmdocs.viz.tokens.MASKING_COLORS], with a legend.

    Raises:
        ValueError: If the three sequences differ in length or are empty, a position that was not chosen was
            changed, or `per_row` < 1.
        TypeError: If a token is not a string.

    References:
        Devlin et al., "BERT", NAACL 2019, section 3.1 (task 1, masked LM) and appendix C.2.

    Examples:
        >>> chosen = [False, True, False, True]
        >>> fig = plot_masking(["the", "cat", "sat", "down"], ["the", "[MASK]", "sat", "up"], chosen)
        >>> len(fig.axes), [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
        (1, ['[MASK] (80%)', 'random token (10%)', 'unchanged (10%)'])
    """
    T = len(original)
    if T == 0 or len(corrupted) != T or len(chosen) != T:
        raise ValueError(
            f"original, corrupted and chosen must have the same non-zero length, got {T}, {len(corrupted)}, "
            f"{len(chosen)}"
        )
    if isinstance(per_row, bool) or not isinstance(per_row, int) or per_row < 1:
        raise ValueError(f"per_row must be a positive int, got {per_row!r}")
    for name, tokens in (("original", original), ("corrupted", corrupted)):
        bad = [t for t in tokens if not isinstance(t, str)]
        if bad:
            raise TypeError(f"{name} must hold token strings, got {type(bad[0]).__name__} {bad[0]!r}")
    changed = [t for t in range(T) if original[t] != corrupted[t] and not chosen[t]]
    if changed:
        t = changed[0]
        raise ValueError(f"position {t} was changed ({original[t]!r} -> {corrupted[t]!r}) but is not chosen")

    n_lines = -(-T // per_row)  # ceil
    width = min(T, per_row)
    fig = CourseFigure(figsize=(1.05 * width + 1.2, 1.35 * n_lines + 0.6))
    ax = fig.add_subplot()
    for t in range(T):
        line, col = divmod(t, per_row)
        top = -4.0 * line
        kind = None
        if chosen[t]:
            kind = "[MASK]" if corrupted[t] == mask_token else "unchanged" if corrupted[t] == original[t] else "random"
        rows = [(original[t], None), (corrupted[t], kind), (original[t] if chosen[t] else "", kind)]
        for r, (text, box_kind) in enumerate(rows):
            face = MASKING_COLORS[box_kind] if box_kind else "#f2f2f2"
            color = "white" if box_kind else "#333333"
            ax.add_patch(_box(col, top - r, face))
            if text:
                ax.text(col + 0.5, top - r + 0.5, text, ha="center", va="center", fontsize=8, color=color)
    for line in range(n_lines):
        for r, label in enumerate(("text", "input", "target")):
            ax.text(-0.15, -4.0 * line - r + 0.5, label, ha="right", va="center", fontsize=8, color="#555555")
    ax.set_xlim(-1.3, width + 0.1)
    ax.set_ylim(-4.0 * (n_lines - 1) - 2.2, 1.1)
    ax.set_aspect("auto")
    ax.axis("off")
    legend = [
        Patch(color=MASKING_COLORS["[MASK]"], label="[MASK] (80%)"),
        Patch(color=MASKING_COLORS["random"], label="random token (10%)"),
        Patch(color=MASKING_COLORS["unchanged"], label="unchanged (10%)"),
    ]
    ax.legend(handles=legend, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=3, frameon=False, fontsize=8)
    if title:
        ax.set_title(title)
    return fig


def _box(x: float, y: float, face: str) -> Patch:
    """A rounded token box of width 0.9 at (x, y)."""
    from matplotlib.patches import FancyBboxPatch

    return FancyBboxPatch(
        (x + 0.05, y + 0.08), 0.9, 0.84, boxstyle="round,pad=0.0,rounding_size=0.12", facecolor=face, edgecolor="none"
    )
