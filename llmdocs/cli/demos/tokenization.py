"""Tour demo of the tokenization chapter: one sentence through three tokenizers, checked against GPT-2's.

The sentence is cut into characters, into the tokens of a byte-level BPE trained here in a fraction of a second on
Shakespeare, and into GPT-2's tokens (our `BPETokenizer` loaded with GPT-2's own files, from an installed package).
Our GPT-2 ids are compared with OpenAI's tiktoken and with `transformers` when they are installed. The figure draws
one box per token, as wide as its bytes, so the three segmentations line up.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

from llmdocs.cli.registry import register, save_demo_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

__all__ = ["token_label", "tokenization_demo"]

SENTENCE = "To be, or not to be, that is the question: 生存还是毁灭。"


def token_label(token: bytes) -> str:
    """A readable label for a token's bytes: its text, or its bytes in hex when it ends inside a character.

    Examples:
        >>> token_label(b" the"), token_label("你".encode()[:2]), token_label(b"\\n")
        ('␣the', '<e4 bd>', '⏎')
    """
    try:
        text = token.decode("utf-8")
    except UnicodeDecodeError:
        return f"<{token.hex(' ')}>"
    return text.replace(" ", "␣").replace("\n", "⏎")


def _gpt2_references(fast: bool) -> dict[str, list[int] | None]:
    """GPT-2 ids of the sentence from tiktoken and (unless fast) transformers; None when one is not installed."""
    from llmdocs.data.gpt2_files import gpt2_tiktoken_file, gpt2_vocab_files
    from llmdocs.tokenizers import GPT2_SPLIT_PATTERN

    references: dict[str, list[int] | None] = {"tiktoken": None, "transformers": None}
    if importlib.util.find_spec("tiktoken") is not None:
        import tiktoken
        import tiktoken.load

        # tiktoken.get_encoding("gpt2") would download its file: build the same encoding from the installed one
        ranks = tiktoken.load.load_tiktoken_bpe(str(gpt2_tiktoken_file()))
        encoding = tiktoken.Encoding("gpt2", pat_str=GPT2_SPLIT_PATTERN, mergeable_ranks=ranks, special_tokens={})
        references["tiktoken"] = encoding.encode_ordinary(SENTENCE)
    if not fast and importlib.util.find_spec("transformers") is not None:
        from transformers import GPT2Tokenizer

        vocab_json, merges_txt = gpt2_vocab_files()
        hf = GPT2Tokenizer(vocab=str(vocab_json), merges=str(merges_txt))  # transformers v5: vocab=/merges= paths
        references["transformers"] = hf.encode(SENTENCE)
    return references


def _segmentation_figure(rows: dict[str, list[bytes]]) -> Figure:
    """One row of boxes per tokenizer; a box spans its token's bytes."""
    from llmdocs.viz import CourseFigure

    width = len(SENTENCE.encode("utf-8"))
    fig = CourseFigure(figsize=(min(0.26 * width + 2.5, 20), 0.8 * len(rows) + 0.9), layout="constrained")
    ax = fig.add_subplot()
    colours = ["#cfe2f3", "#fce5cd"]
    for row, (name, tokens) in enumerate(rows.items()):
        y, x = len(rows) - 1 - row, 0
        for i, token in enumerate(tokens):
            ax.add_patch(_box(x, y, len(token), colours[i % 2]))
            ax.text(x + len(token) / 2, y + 0.4, token_label(token), ha="center", va="center", fontsize=7)
            x += len(token)
        ax.text(-0.5, y + 0.4, f"{name}\n{len(tokens)} tokens", ha="right", va="center", fontsize=8)
    ax.set_xlim(0, width)
    ax.set_ylim(-0.2, len(rows))
    ax.set_yticks([])
    ax.set_xlabel("byte offset in the UTF-8 text")
    ax.set_title("one box per token, as wide as its bytes")
    return fig


def _box(x: float, y: float, w: float, colour: str) -> Rectangle:
    from matplotlib.patches import Rectangle

    return Rectangle((x + 0.05, y), w - 0.1, 0.8, facecolor=colour, edgecolor="#555555", linewidth=0.5)


@register(
    name="tokenization",
    title="Tokenization",
    page="chapters/tokenization.md",
    description=(
        "Cut one English-and-Chinese sentence into characters, into the tokens of a byte-level BPE trained here on "
        "Shakespeare, and into GPT-2's tokens; check our GPT-2 ids against tiktoken and transformers."
    ),
)
def tokenization_demo(out_dir: Path, fast: bool) -> list[Path]:
    """Train a small BPE, tokenize one sentence three ways, compare with GPT-2's reference tokenizers.

    Args:
        out_dir: Folder for the figure.
        fast: Train on 50,000 characters up to 512 tokens (instead of 300,000 up to 4,096) and skip `transformers`.

    Returns:
        The SVG figure of the three segmentations.
    """
    import time

    from llmdocs.data.gpt2_files import gpt2_vocab_files
    from llmdocs.data.shakespeare import load_shakespeare
    from llmdocs.tokenizers import BPETokenizer

    n_chars, vocab_size = (50_000, 512) if fast else (300_000, 4096)
    n_bytes = len(SENTENCE.encode("utf-8"))
    print(f"sentence: {SENTENCE!r}\n  {len(SENTENCE)} characters, {n_bytes} bytes in UTF-8")

    start = time.perf_counter()
    ours = BPETokenizer.train(load_shakespeare()[:n_chars], vocab_size=vocab_size)
    print(f"\ntrained our byte-level BPE on {n_chars:,} characters of Shakespeare: {vocab_size:,} tokens in "
          f"{time.perf_counter() - start:.2f} s")  # fmt: skip
    gpt2 = BPETokenizer.from_gpt2_files(*gpt2_vocab_files())  # GPT-2's own vocab.json and merges.txt

    rows = {"characters": [c.encode("utf-8") for c in SENTENCE]}
    for name, tokenizer in ((f"our BPE ({vocab_size:,})", ours), ("GPT-2 (50,257)", gpt2)):
        ids = tokenizer.encode(SENTENCE)
        rows[name] = [tokenizer.token_bytes(i) for i in ids]
        print(f"\n{name}: {len(ids)} tokens, {len(ids) / len(SENTENCE):.2f} per character")
        print("  " + " ".join(f"[{token_label(t)}]" for t in rows[name]))
        print(f"  ids: {ids}")
    chinese = SENTENCE[SENTENCE.index(":") + 2 :]
    print(
        f"\nthe Chinese part ({len(chinese)} characters): {len(ours.encode(chinese))} tokens with ours (it never saw "
        f"Chinese: single bytes), {len(gpt2.encode(chinese))} with GPT-2; <..> is a token ending inside a character"
    )

    gpt2_ids = gpt2.encode(SENTENCE)
    for library, ids in _gpt2_references(fast).items():
        if ids is None:
            print(f"{library}: skipped" + (" (--fast)" if fast and library == "transformers" else " (not installed)"))
        else:
            print(f"{library}: {'the same ids as ours' if ids == gpt2_ids else f'DIFFERENT ids: {ids}'}")
    return [save_demo_figure(_segmentation_figure(rows), out_dir, "tokenization-segmentations")]
