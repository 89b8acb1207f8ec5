"""How much LoRA trains, and what it saves: adapter parameters and AdamW memory against full fine-tuning.

One adapter on a (D_out, D_in) matrix adds R (D_in + D_out) parameters (A is (R, D_in), B is (D_out, R)), against
D_in D_out for the matrix itself: at D = 768 and R = 8, 12,288 against 589,824, a 48th. Summed over the adapted
matrices of a model, and set against its size:

    lora = sum over adapted matrices of R (D_in + D_out),      trainable% = 100 lora / (model + lora)

Training memory is where the saving shows. AdamW keeps, for every trained float32 parameter, the weight, its
gradient and two moment estimates: 16 bytes. Full fine-tuning pays 16 bytes per model parameter; LoRA pays 4 bytes
per frozen model parameter (the weights only: no gradient, no optimizer state) plus 16 per adapter parameter.
Activations, which both need, are not counted.

The models are built on PyTorch's ``meta`` device: shapes without storage, so BERT-base, MiniLM, GPT-2 small and
the 135M Llama cost no memory and no initialisation time. Target sets are named as in the literature and mapped
to each family's module names (``TARGET_SETS``): the paper's query and value projections (Hu et al., 2021,
section 7.1), all four attention projections, or every linear layer of the blocks (attention and feed-forward,
as QLoRA recommends; Dettmers et al., 2023, section 4). Output heads, the pooler and embeddings are never adapted.

References:
    Hu et al., "LoRA: Low-Rank Adaptation of Large Language Models", ICLR 2022, sections 4.2 and 7.1.
    Dettmers et al., "QLoRA: Efficient Finetuning of Quantized LLMs", NeurIPS 2023, section 4 (all linear layers).
    Loshchilov and Hutter, "Decoupled Weight Decay Regularization", ICLR 2019 (AdamW).

Examples:
    >>> rows = budget_table(models=["MiniLM-L6"], ranks=[4, 8], target_sets=["q,v", "all linear"])
    >>> [(row.r, row.target_set, row.lora_parameters) for row in rows]
    [(4, 'q,v', 36864), (8, 'q,v', 73728), (4, 'all linear', 165888), (8, 'all linear', 331776)]
    >>> columns = as_columns(rows)  # one list per field, ready for a plot
    >>> columns["r"], round(columns["trainable_percent"][1], 3)
    ([4, 8, 4, 8], 0.324)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

import torch
from torch import nn

from llmdocs.finetuning.lora import lora_num_parameters, target_module_names
from llmdocs.models.bert import BertConfig, BertForPreTraining, BertForSequenceClassification, BertModel
from llmdocs.models.gpt import GPT, GPTConfig
from llmdocs.models.llama import Llama, LlamaConfig
from llmdocs.models.vit import ViT

__all__ = [
    "ADAMW_BYTES_PER_TRAINED",
    "BYTES_PER_WEIGHT",
    "MODELS",
    "TARGET_SETS",
    "AdaptedMatrix",
    "LoRABudget",
    "adapted_matrices",
    "as_columns",
    "budget_table",
    "build_on_meta",
    "lora_budget",
    "model_family",
]

BYTES_PER_WEIGHT = 4
"""A float32 value: a frozen weight costs this much during training (no gradient, no optimizer state)."""

ADAMW_BYTES_PER_TRAINED = 4 * BYTES_PER_WEIGHT
"""A trained float32 parameter under AdamW: the weight, its gradient, the first and the second moment."""

_ATTENTION = ("q_proj", "k_proj", "v_proj", "out_proj")
TARGET_SETS: dict[str, dict[str, tuple[str, ...]]] = {
    family: {
        "q,v": ("q_proj", "v_proj"),  # the paper's choice (section 7.1)
        "attention": _ATTENTION,
        "all linear": _ATTENTION + feed_forward,  # every linear layer of the blocks
    }
    for family, feed_forward in [
        ("bert", ("ff.fc1", "ff.fc2")),
        ("gpt", ("ff.fc1", "ff.fc2")),
        ("vit", ("ff.fc1", "ff.fc2")),
        ("llama", ("ff.gate_proj", "ff.up_proj", "ff.down_proj")),  # SwiGLU has three
    ]
}
"""Model family -> target set name -> module name patterns (for [apply_lora][llmdocs.finetuning.lora.apply_lora])."""

MODELS: dict[str, Callable[[], nn.Module]] = {
    "BERT-base": lambda: BertModel(BertConfig.base()),
    "MiniLM-L6": lambda: BertModel(BertConfig.minilm_l6()),
    "GPT-2 small": lambda: GPT(GPTConfig.gpt2_small()),
    "SmolLM2-135M": lambda: Llama(LlamaConfig.smollm2_135m()),
}
"""The models of the analysis: name -> a function that builds it (call it under ``torch.device("meta")``)."""

_FAMILIES: list[tuple[tuple[type[nn.Module], ...], str]] = [
    ((BertModel, BertForPreTraining, BertForSequenceClassification), "bert"),
    ((GPT,), "gpt"),
    ((ViT,), "vit"),
    ((Llama,), "llama"),
]
_META_CACHE: dict[str, nn.Module] = {}


def model_family(model: nn.Module) -> str:
    """The family of a llmdocs model, the key of ``TARGET_SETS``: ``"bert"``, ``"gpt"``, ``"vit"`` or ``"llama"``.

    Raises:
        TypeError: another kind of model (pass patterns instead of a target set name).

    Examples:
        >>> from llmdocs.models.llama import Llama, LlamaConfig
        >>> model_family(Llama(LlamaConfig.tiny()))
        'llama'
    """
    for classes, family in _FAMILIES:
        if isinstance(model, classes):
            return family
    known = [c.__name__ for classes, _ in _FAMILIES for c in classes]
    raise TypeError(
        f"model must be one of {known} to use a target set name, got {type(model).__name__}; pass module name "
        "patterns instead"
    )


def build_on_meta(name: str) -> nn.Module:
    """One of ``MODELS``, built on the ``meta`` device: shapes only, no memory, no initialisation.

    Raises:
        ValueError: an unknown name.

    Examples:
        >>> model = build_on_meta("GPT-2 small")
        >>> model.lm_head.weight.shape, model.lm_head.weight.device.type
        (torch.Size([50257, 768]), 'meta')
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {list(MODELS)}")
    with torch.device("meta"):
        return MODELS[name]()


def _meta_model(name: str) -> nn.Module:
    """``build_on_meta(name)``, built once: the budget functions only read it."""
    if name not in _META_CACHE:
        _META_CACHE[name] = build_on_meta(name)
    return _META_CACHE[name]


def _patterns(model: nn.Module, targets: str | Iterable[str]) -> tuple[str, ...]:
    """A target set's patterns for the model's family, or ``targets`` themselves when they are patterns."""
    if isinstance(targets, str) and targets in TARGET_SETS["bert"]:
        return TARGET_SETS[model_family(model)][targets]
    if isinstance(targets, str):
        raise ValueError(
            f"targets={targets!r} is not a target set ({list(TARGET_SETS['bert'])}); pass patterns as a list"
        )
    return tuple(targets)


class AdaptedMatrix(NamedTuple):
    """One weight matrix that gets an adapter: its module name and shape (D_out, D_in)."""

    name: str
    d_in: int
    d_out: int


def adapted_matrices(model: nn.Module, targets: str | Iterable[str]) -> list[AdaptedMatrix]:
    """The matrices a target set (or a list of patterns) selects, with their sizes.

    Args:
        model: a llmdocs model (for a target set name) or any model (for patterns); ``meta`` is fine.
        targets: ``"q,v"``, ``"attention"``, ``"all linear"``, or module name patterns.

    Returns:
        One ``AdaptedMatrix(name, d_in, d_out)`` per adapted layer, in module order.

    Raises:
        TypeError: a target set name for a model outside the four families.
        ValueError: an unknown target set name; patterns that match nothing or a non-linear module.

    Examples:
        >>> from llmdocs.models.llama import Llama, LlamaConfig
        >>> adapted_matrices(Llama(LlamaConfig.tiny(n_layers=1)), "q,v")  # 2 of 4 heads are KV heads: D_out 16
        [AdaptedMatrix(name='blocks.0.self_attn.q_proj', d_in=32, d_out=32),
         AdaptedMatrix(name='blocks.0.self_attn.v_proj', d_in=32, d_out=16)]
    """
    names = target_module_names(model, _patterns(model, targets))
    modules = [model.get_submodule(name) for name in names]
    return [AdaptedMatrix(name, m.in_features, m.out_features) for name, m in zip(names, modules, strict=True)]


class LoRABudget(NamedTuple):
    """What LoRA trains and what training costs, for one model, target set and rank.

    Attributes:
        model: the model's name.
        target_set: the target set (or the patterns, joined by commas).
        r: the rank R.
        n_matrices: how many weight matrices get an adapter.
        lora_parameters: sum of R (D_in + D_out) over them.
        model_parameters: the model's own parameters (tied tensors once).
        trainable_percent: 100 lora / (model + lora), peft's ``trainable%``.
        lora_optimizer_bytes: AdamW's two moments for the adapters, 8 bytes each.
        full_optimizer_bytes: AdamW's two moments for every model parameter.
        lora_training_bytes: frozen weights (4 bytes) + adapter weights, gradients and moments (16 bytes).
        full_training_bytes: weights, gradients and moments of every parameter (16 bytes).
    """

    model: str
    target_set: str
    r: int
    n_matrices: int
    lora_parameters: int
    model_parameters: int
    trainable_percent: float
    lora_optimizer_bytes: int
    full_optimizer_bytes: int
    lora_training_bytes: int
    full_training_bytes: int


def _budget(name: str, target_set: str, r: int, matrices: Sequence[AdaptedMatrix], n_model: int) -> LoRABudget:
    n_lora = sum(lora_num_parameters(m.d_in, m.d_out, r) for m in matrices)
    moments = ADAMW_BYTES_PER_TRAINED - 2 * BYTES_PER_WEIGHT  # the two moment tensors
    return LoRABudget(
        model=name,
        target_set=target_set,
        r=r,
        n_matrices=len(matrices),
        lora_parameters=n_lora,
        model_parameters=n_model,
        trainable_percent=100 * n_lora / (n_model + n_lora),
        lora_optimizer_bytes=moments * n_lora,
        full_optimizer_bytes=moments * n_model,
        lora_training_bytes=BYTES_PER_WEIGHT * n_model + ADAMW_BYTES_PER_TRAINED * n_lora,
        full_training_bytes=ADAMW_BYTES_PER_TRAINED * n_model,
    )


def _check_rank(r: object) -> int:
    if isinstance(r, bool) or not isinstance(r, int):
        raise TypeError(f"r must be an integer >= 1, got {type(r).__name__} {r!r}")
    if r < 1:
        raise ValueError(f"r must be an integer >= 1, got {r!r}")
    return r


def _model_and_name(model: str | nn.Module) -> tuple[nn.Module, str]:
    if isinstance(model, str):
        return _meta_model(model), model
    if isinstance(model, nn.Module):
        return model, type(model).__name__
    raise TypeError(f"model must be a name from MODELS or an nn.Module, got {type(model).__name__}")


def lora_budget(model: str | nn.Module, r: int, targets: str | Iterable[str] = "q,v") -> LoRABudget:
    """LoRA's parameters and training memory for one model, target set and rank, against full fine-tuning.

    Args:
        model: a name from ``MODELS`` (built on ``meta``) or a model.
        r: the rank R >= 1.
        targets: a target set name (``"q,v"``, ``"attention"``, ``"all linear"``) or module name patterns.

    Returns:
        The [LoRABudget][llmdocs.finetuning.lora_budget.LoRABudget].

    Raises:
        TypeError, ValueError: an unknown model or target set, a bad rank, patterns that match nothing.

    Examples:
        >>> b = lora_budget("BERT-base", r=8, targets="q,v")  # 12 layers x 2 matrices x 8 (768 + 768)
        >>> b.n_matrices, b.lora_parameters, round(b.trainable_percent, 4)
        (24, 294912, 0.2686)
        >>> round(b.full_training_bytes / b.lora_training_bytes, 2)  # 16 bytes per parameter vs ~4
        3.96
    """
    module, name = _model_and_name(model)
    label = targets if isinstance(targets, str) else ",".join(targets)
    matrices = adapted_matrices(module, targets)
    n_model = sum(p.numel() for p in module.parameters())  # each shared tensor once
    return _budget(name, label, _check_rank(r), matrices, n_model)


def _as_list(name: str, values: object, single: type | tuple[type, ...], what: str) -> list[Any]:
    """``values`` as a non-empty list; a lone value of type ``single`` is a list of one (errors name ``name``)."""
    if isinstance(values, single) and not isinstance(values, bool):
        return [values]
    if not isinstance(values, Iterable):
        raise TypeError(f"{name} must be {what} or a list of them, got {type(values).__name__} {values!r}")
    items = list(values)
    if not items:
        raise ValueError(f"{name} must not be empty (the table would have no rows): give {what} or a list of them")
    return items


def budget_table(
    models: str | Iterable[str] = tuple(MODELS),
    ranks: int | Iterable[int] = (1, 2, 4, 8, 16, 32, 64),
    target_sets: str | Iterable[str] = ("q,v", "attention", "all linear"),
) -> list[LoRABudget]:
    """The budget of every model x target set x rank, one row each (model-major, then target set, then rank).

    Args:
        models: names from ``MODELS`` (or models); a single name is one model.
        ranks: ranks R; a single int is one rank.
        target_sets: target set names; a single name is one target set.

    Returns:
        A list of [LoRABudget][llmdocs.finetuning.lora_budget.LoRABudget] rows; ``as_columns`` turns it into
        columns for a plot.

    Raises:
        TypeError: an argument that is neither one value nor an iterable of them; a rank that is not an int.
        ValueError: an empty ``models``, ``ranks`` or ``target_sets``; an unknown model or target set name; a
            rank < 1.

    Examples:
        >>> rows = budget_table(models=["GPT-2 small", "SmolLM2-135M"], ranks=[8], target_sets=["attention"])
        >>> [(row.model, row.n_matrices, row.lora_parameters) for row in rows]
        [('GPT-2 small', 48, 589824), ('SmolLM2-135M', 120, 921600)]
        >>> [row.lora_parameters for row in budget_table("MiniLM-L6", ranks=8, target_sets="q,v")]  # one of each
        [73728]
    """
    models = _as_list("models", models, (str, nn.Module), "a model name from MODELS")
    ranks = [_check_rank(r) for r in _as_list("ranks", ranks, int, "a rank R (an int >= 1)")]
    target_sets = _as_list("target_sets", target_sets, str, f"a target set name {list(TARGET_SETS['bert'])}")
    rows = []
    for model in models:
        module, name = _model_and_name(model)
        n_model = sum(p.numel() for p in module.parameters())
        for target_set in target_sets:
            matrices = adapted_matrices(module, target_set)
            rows += [_budget(name, target_set, r, matrices, n_model) for r in ranks]
    return rows


def as_columns(rows: Sequence[NamedTuple]) -> dict[str, list[Any]]:
    """Rows of a table (NamedTuples) as columns: field name -> list of values (what plotting functions take).

    Examples:
        >>> as_columns([AdaptedMatrix("a", 4, 2), AdaptedMatrix("b", 2, 1)])
        {'name': ['a', 'b'], 'd_in': [4, 2], 'd_out': [2, 1]}
    """
    if not rows:
        return {}
    return {field: [getattr(row, field) for row in rows] for field in rows[0]._fields}
