"""Tour demo of the GPT chapter: the two shipped character-level GPTs write Shakespeare and Tang poems.

`gpt-shakespeare-char` (0.8 M parameters, trained on 38 plays in minutes on a CPU) continues a speaker's line,
streamed character by character as a chat interface would print it. `gpt-tang-char` writes seven-character
regulated verse: nothing tells it the form, yet most lines come out with seven characters and the right
punctuation, which the demo counts.
"""

from __future__ import annotations

import re
from pathlib import Path

from llmdocs.cli.registry import progress, register, save_demo_figure

__all__ = ["gpt_demo"]

SHAKESPEARE_PROMPT = "ROMEO:\n"
TANG_STARTS = ["春", "月", "山中", "秋風"]  # first characters of each poem, as in the chapter
TANG_LINE = re.compile(r"[^，。]+[，。]?")


@register(
    name="gpt",
    title="GPT: a decoder-only language model",
    page="chapters/gpt.md",
    description=(
        "Sample Shakespeare from the shipped character-level GPT (temperature 0.8, top-k 20, seeded), streamed as "
        "it is generated, then four Tang poems from the Tang model, checking the 7-character form it learnt."
    ),
)
def gpt_demo(out_dir: Path, fast: bool) -> list[Path]:
    """Generate a Shakespeare passage and Tang poems with fixed seeds, save them and a figure of the poems.

    Args:
        out_dir: Folder for the figure and the samples.
        fast: 80 characters of Shakespeare and one poem instead of 400 characters and four poems.

    Returns:
        `gpt-samples.txt` and the SVG figure of the poems.
    """
    from llmdocs.generation.decoder_only import generate, stream_generate
    from llmdocs.pretrained import load_gpt
    from llmdocs.viz import CourseFigure

    model, tokenizer, meta = load_gpt("gpt-shakespeare-char")
    results = meta["results"]
    print(f"model: gpt-shakespeare-char, {results['params']:,} parameters, validation loss {results['val_loss']:.2f}")
    n_chars = 80 if fast else 400
    print(f"\n--- {n_chars} characters after {SHAKESPEARE_PROMPT!r} (temperature 0.8, top-k 20, seed 0)")
    print(SHAKESPEARE_PROMPT, end="")
    pieces = []
    for token in stream_generate(
        model, tokenizer.encode(SHAKESPEARE_PROMPT), n_chars, temperature=0.8, top_k=20, seed=0
    ):
        pieces.append(tokenizer.decode([token]))
        print(pieces[-1], end="", flush=True)
    shakespeare = SHAKESPEARE_PROMPT + "".join(pieces)
    print("\n---")

    tang_model, tang_tokenizer, tang_meta = load_gpt("gpt-tang-char")
    tang_results = tang_meta["results"]
    print(
        f"\nmodel: gpt-tang-char, {tang_results['params']:,} parameters, {tang_tokenizer.vocab_size:,} characters, "
        f"validation loss {tang_results['val_loss']:.2f}"
    )
    end_of_poem = tang_tokenizer.encode("\n")  # one poem per line of the corpus
    poems: dict[str, list[str]] = {}
    starts = TANG_STARTS[:1] if fast else TANG_STARTS
    for seed, start in enumerate(progress(starts, desc="poems", unit="poem")):
        prompt = tang_tokenizer.encode("\n" + start)  # a poem begins after a newline
        new = generate(tang_model, prompt, 64 - len(start), top_k=20, seed=seed, stop_tokens=end_of_poem)[0]
        poems[start] = TANG_LINE.findall(start + tang_tokenizer.decode(new))
    for start, lines in poems.items():
        print(f"\nprompt {start!r} (top-k 20):")
        print("\n".join("  " + line for line in lines))
    lines = [line for poem in poems.values() for line in poem]
    good = sum(
        bool(re.fullmatch("[^，。]{7}" + "，。"[i % 2], line)) for poem in poems.values() for i, line in enumerate(poem)
    )
    print(f"\n{good} of {len(lines)} lines have 7 characters and end with the right punctuation (，odd / 。even)")

    samples = out_dir / "gpt-samples.txt"
    text = [f"# gpt-shakespeare-char, temperature 0.8, top-k 20, seed 0\n{shakespeare}\n"]
    text += [
        f"# gpt-tang-char, prompt {start}, top-k 20, seed {seed}\n" + "\n".join(poem) + "\n"
        for seed, (start, poem) in enumerate(poems.items())
    ]
    samples.write_text("\n".join(text), encoding="utf-8")

    fig = CourseFigure(figsize=(2.2 * len(poems) + 0.4, 3.4))
    for ax, (start, poem) in zip(fig.subplots(1, len(poems), squeeze=False)[0], poems.items(), strict=True):
        ax.axis("off")
        ax.set_title(f"prompt: {start}")
        ax.text(0.5, 1, "\n".join(poem), ha="center", va="top", fontsize=12, linespacing=1.6)
    return [samples, save_demo_figure(fig, out_dir, "gpt-tang-poems")]
