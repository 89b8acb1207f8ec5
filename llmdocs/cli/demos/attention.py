"""Tour demo of the Transformer chapter: the shipped date translator, scored and looked inside.

The encoder-decoder model `dates-en-zh` (trained by `examples/train_dates.py` in about a minute) translates
English dates into Chinese: "Sunday, March 3, 2024" -> "2024年3月3日星期日". The year moves to the front and the
weekday to the end, so its cross-attention has to read the source out of order, which the figure shows.
"""

from __future__ import annotations

from pathlib import Path

from llmdocs.cli.registry import progress, register, save_demo_figure

__all__ = ["attention_demo"]

SHOWN_DATE = "Sunday, March 3, 2024"  # the chapter's example
BATCH = 100  # held-out dates translated per call


@register(
    name="attention",
    title="Attention and the Transformer",
    page="chapters/attention.md",
    description=(
        "Translate English dates into Chinese with the shipped encoder-decoder Transformer (dates-en-zh), score it "
        "on held-out dates, and draw where its cross-attention reads while it writes: the year first, from the end "
        "of the source."
    ),
)
def attention_demo(out_dir: Path, fast: bool) -> list[Path]:
    """Translate held-out dates, measure exact match, save the cross- and self-attention maps.

    Args:
        out_dir: Folder for the figures.
        fast: Score 100 held-out dates instead of 1,000.

    Returns:
        The two SVG figures.
    """
    import torch

    from llmdocs.data.dates import date_task_split
    from llmdocs.generation.encoder_decoder import greedy_decode
    from llmdocs.pretrained import load_date_translator
    from llmdocs.viz import plot_attention

    model, src_vocab, tgt_vocab, meta = load_date_translator("dates-en-zh")
    bos, eos = tgt_vocab.bos_id, tgt_vocab.eos_id
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: dates-en-zh, {n_params:,} parameters, trained by `{meta['results']['command']}`")

    # the held-out dates of the training run: the same split, never seen in training
    _, test = date_task_split(n_test=1000, seed=0, target_locale="zh")
    test = test[:100] if fast else test
    correct, outputs = 0, []
    for start in progress(range(0, len(test), BATCH), desc="translating", unit="batch"):
        batch = test[start : start + BATCH]
        src = src_vocab.encode_batch([source for source, _ in batch])  # (B, S)
        decoded = [tgt_vocab.decode(ids) for ids in greedy_decode(model, src, bos, eos, max_new_tokens=20)]
        correct += sum(out == target for out, (_, target) in zip(decoded, batch, strict=True))
        outputs += decoded
    print("\nA few held-out dates (greedy decoding):")
    for (source, target), output in list(zip(test, outputs, strict=True))[:5]:
        mark = "ok" if output == target else f"expected {target}"
        print(f"  {source:<30} -> {output}   {mark}")
    print(f"exact match on {len(test):,} held-out dates: {correct / len(test):.1%}")

    # cross-attention of the last decoder layer while it writes the translation of one date
    src = src_vocab.encode_batch([SHOWN_DATE])  # (1, S)
    ids = greedy_decode(model, src, bos, eos)[0]
    target = tgt_vocab.decode(ids)
    with torch.no_grad():
        model(src, torch.tensor([[bos, *ids]]), need_weights=True)  # layers keep their attention weights
    cross = model.decoder.layers[-1].last_cross_weights[0].mean(dim=0)  # (T, S): averaged over heads
    written = [*target, "<eos>"]  # row t writes the next token
    year_reads = cross[:4].argmax(dim=-1).tolist()  # (4,): the source position each year digit reads most
    print(f"\n{SHOWN_DATE!r} -> {target!r}")
    print(
        f"the year, written first, is read from source positions {year_reads} of {len(SHOWN_DATE)} "
        f"({''.join(SHOWN_DATE[i] for i in year_reads)!r}, the end of the source): the model has learnt to reorder"
    )
    fig = plot_attention(cross, list(SHOWN_DATE), written, title="cross-attention, last decoder layer")
    paths = [save_demo_figure(fig, out_dir, "attention-dates-cross-attention")]
    self_attn = model.encoder.layers[-1].last_self_weights[0]  # (H, S, S)
    fig = plot_attention(self_attn, list(SHOWN_DATE), list(SHOWN_DATE), title="encoder self-attention, last layer")
    paths.append(save_demo_figure(fig, out_dir, "attention-dates-self-attention"))
    return paths
