"""Fine-tune BERT with LoRA and its relatives to classify texts (SMS spam, review sentiment): ours and peft's.

The recipe of the LoRA chapter on the packaged all-MiniLM-L6-v2: rank ``r=16`` and ``lora_alpha=32`` (the update
B A x is scaled by alpha / r = 2), adapters on the query and value projections (Hu et al., 2021, section 7.1),
``lora_dropout=0.1``, and the new classifier trained in full (peft's ``modules_to_save``). Everything else is
``examples/finetune_bert.py``'s, imported rather than copied: its tasks and split, batches, AdamW with warm-up and
a cosine decay, 3 epochs, and its training loop (checkpoints, ``--minutes``, ``--resume``). Only which weights
train, and how, differ between the methods:

    head     the classifier only (finetune_bert.py's regime)                    770 trainable parameters on MiniLM
    full     every weight (finetune_bert.py's regime)                           22,713,986
    lora     ours: apply_lora on our BertForSequenceClassification              148,226 (0.65%)
    qlora    ours: every linear layer of the encoder stored in 4-bit NF4 with double quantization
             (quantize_linears), then the same LoRA (Dettmers et al., 2023)    148,226
    peft     Hugging Face's BertForSequenceClassification wrapped by peft's get_peft_model with the equivalent
             LoraConfig, trained by our loop on the same batches               148,226
    adalora  peft's AdaLoraConfig: each adapter starts at rank 1.5 r = 24 and the least important singular
             triplets are pruned to r = 16 on average (Zhang et al., 2023)     222,242 (pruned ones included)
    dora     peft's LoraConfig(use_dora=True): a trained magnitude per output feature times the adapted
             direction (Liu et al., 2024)                                      152,834

Hugging Face's model comes from MiniLM's folder (``from_pretrained``), or, with ``--model-dir``, from our
pretrained BERT through ``llmdocs.interop.hf_bert.to_hf``. peft's ``target_modules`` are our ``--targets``
translated by ``llmdocs.interop.peft_lora.peft_config`` (``q_proj`` -> ``query``).

AdaLoRA needs ``update_and_allocate(step)`` after every optimizer step, which ``llmdocs.training.train`` does not
know about: ``AdaLoRAAllocation`` calls it from a post-step hook of the optimizer, keeps its running scores as
buffers of the model (so the loop's checkpoints carry them and ``--resume`` is exact), and adds AdaLoRA's
orthogonality penalty, which peft adds only to a loss computed from labels, into the backward pass of the logits.

Learning rates (``--lr``; ``DEFAULT_LR``): head and full keep finetune_bert.py's (0.1 and 2e-4). The LoRA methods
were tried on SMS spam's VALIDATION split (453 texts, 56 spam), seed 0, 3 epochs, 1 thread; accuracy and mean
cross-entropy of the last epoch's weights:

    lora     lr 5e-4   val accuracy 99.34%   val loss 0.0292
    lora     lr 1e-3   val accuracy 99.34%   val loss 0.0227
    lora     lr 2e-3   val accuracy 99.34%   val loss 0.0163   <- lora, qlora, peft, dora
    lora     lr 4e-3   val accuracy 98.90%   val loss 0.0361
    adalora  lr 2e-3   val accuracy 98.68%   val loss 0.0637   (still "all ham" after epoch 1: 87.6%)
    adalora  lr 5e-3   val accuracy 100.00%  val loss 0.0108   <- adalora

Accuracies three or five messages apart cannot rank the rates; the validation loss can (finetune_bert.py chose its
rates the same way). 2e-3 is 4x the LoRA paper's 4e-4 to 5e-4 for RoBERTa-base on GLUE (Hu et al., 2021,
appendix D), for a model 5x smaller trained for 297 steps. QLoRA, peft's LoRA and DoRA take LoRA's rate untried:
the same update on a 4-bit base, the same method in another library, the same update with a trained magnitude.
AdaLoRA needs a larger one: its Lambda starts at zero, so A and B get no gradient from the loss until Lambda
grows, and its scaling alpha / 24 is 1.33 where LoRA's is 2.

Tasks and encoders as finetune_bert.py's: ``--task sms-spam`` (stratified 70/10/20) or ``review-sentiment``;
``--model minilm`` or ``--model-dir`` (e.g. ``llmdocs/pretrained/bert-people-daily`` for the Chinese reviews).

Usage:
    python examples/finetune_lora.py                                  # our LoRA on SMS spam, ~3 min
    python examples/finetune_lora.py --method peft                    # the same recipe through peft
    python examples/finetune_lora.py --method qlora --threads 2
    python examples/finetune_lora.py --method lora --targets q_proj k_proj v_proj out_proj --r 8 --lora-alpha 16
    python examples/finetune_lora.py --task review-sentiment --model-dir llmdocs/pretrained/bert-people-daily
    python examples/finetune_lora.py --minutes 1 --out-dir runs/lora   # stops after 1 minute with a checkpoint
    python examples/finetune_lora.py --out-dir runs/lora --resume      # ... and carries on to the end
    python examples/finetune_lora.py --smoke                          # seconds (the tests run this)

Outputs in ``--out-dir``: ``run_args.json`` (the settings of the run, written when it starts; ``--resume`` refuses
to continue with any other value of a flag but ``--minutes``, ``--threads``, ``--no-progress``, ``--json`` and
``--device``), ``results.json`` (test accuracy, precision and recall of the positive class, trainable
parameters, peak memory of one training step, bytes of the base weights, wall-clock and CPU seconds, the command),
``metrics.jsonl``/``metrics.csv``, ``checkpoints/``, and for the LoRA methods ``adapter/`` in peft's format
(``adapter_config.json`` + ``adapter_model.safetensors``; ``PeftModel.from_pretrained`` loads it, and
``llmdocs.interop.peft_lora.load_peft_adapter`` loads ours).

References:
    Hu et al., "LoRA: Low-Rank Adaptation of Large Language Models", ICLR 2022.
    Dettmers et al., "QLoRA: Efficient Finetuning of Quantized LLMs", NeurIPS 2023.
    Zhang et al., "Adaptive Budget Allocation for Parameter-Efficient Fine-Tuning" (AdaLoRA), ICLR 2023.
    Liu et al., "DoRA: Weight-Decomposed Low-Rank Adaptation", ICML 2024.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import functools
import importlib.util
import logging
import math
import os
import shlex
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # Hugging Face's model loads the packaged folder: never the network

import torch
from torch import Tensor, nn
from torch.optim.optimizer import register_optimizer_step_post_hook

from llmdocs.finetuning.classification import ClassificationBatches, EncodedExamples, classification_loss, predict
from llmdocs.finetuning.freezing import trainable_parameters_summary
from llmdocs.finetuning.lora import apply_lora, module_name_matches, target_module_names
from llmdocs.finetuning.qlora import Linear4bit, quantize_linears
from llmdocs.interop.hf_bert import to_hf
from llmdocs.interop.peft_lora import load_peft_adapter, peft_config, save_peft_adapter
from llmdocs.models.bert import BertConfig, BertForSequenceClassification, BertModel
from llmdocs.profiling import machine_description, peak_memory_bytes
from llmdocs.records import write_record
from llmdocs.training import build_adamw, resolve_device


def load_example(relative: str) -> ModuleType:
    """``examples/<relative>`` as a module: this script uses finetune_bert.py's recipe, not a copy of it."""
    path = Path(__file__).resolve().parent / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


finetune_bert = load_example("finetune_bert.py")

METHODS = ("head", "full", "lora", "qlora", "peft", "adalora", "dora")
"""What ``--method`` trains (see the table above)."""
OUR_LORA = ("lora", "qlora")
PEFT_METHODS = ("peft", "adalora", "dora")
LORA_METHODS = OUR_LORA + PEFT_METHODS
LORA_FLAGS = ("r", "lora_alpha", "lora_dropout", "targets")
"""The flags that only the LoRA methods read."""
MODULES_TO_SAVE = ["classifier"]
"""Trained in full by every LoRA method, never adapted (peft's ``modules_to_save``): the new classifier."""

DEFAULT_LR = {"head": finetune_bert.DEFAULT_LR["head"], "full": finetune_bert.DEFAULT_LR["full"]}
DEFAULT_LR |= dict.fromkeys(LORA_METHODS, 2e-3) | {"adalora": 5e-3}  # the sweep of the docstring
"""Peak learning rate of each method when ``--lr`` is not given."""

QUANTIZED = "bert.*"
"""QLoRA's 4-bit base: every linear layer of the encoder (attention, feed-forward, pooler); the new classifier is
trained in full and stays float32, as do the embeddings and norms (QLoRA quantizes the linear layers only)."""

ADALORA = {"init_r_factor": 1.5, "tinit": 0.1, "tfinal": 0.3, "deltaT": 10, "beta1": 0.85, "beta2": 0.85}
"""AdaLoRA's schedule, not tuned: ranks start at 1.5 r (peft's default 12 for a target of 8) and end at r on
average; no pruning in the first 10% of the steps (the warm-up), a cubic budget decrease until 70%, the final
ranks fixed for the last 30%; a re-allocation every 10 steps; peft's smoothing factors (Zhang et al., 2023,
section 3.3 for the schedule)."""

MINILM_HUB_NAME = "sentence-transformers/all-MiniLM-L6-v2"
"""The base model an adapter trained on MiniLM names (``base_model_name_or_path``)."""

SMOKE: dict[str, Any] = {**finetune_bert.SMOKE, "out_dir": "runs/finetune-lora-smoke"}  # never a real run's folder


def _import_peft() -> ModuleType:
    """peft, imported when a peft method runs. It imports bitsandbytes, whose CPU backend logs that an optional
    kernel package is missing; nothing here uses bitsandbytes."""
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    import peft

    return peft


def build_parser() -> argparse.ArgumentParser:
    """finetune_bert.py's flags (task, encoder, recipe, budget, seeds), plus the method and the LoRA settings."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=finetune_bert.HelpFormatter, allow_abbrev=False)
    p.add_argument("--method", choices=METHODS, default="lora", help="which weights train, and how")
    finetune_bert.add_data_arguments(p)
    p.add_argument("--r", type=int, default=16, help="LoRA rank R (AdaLoRA: the average final rank)")
    p.add_argument("--lora-alpha", type=float, default=32.0, help="LoRA alpha: the update is scaled by alpha / R")
    p.add_argument("--lora-dropout", type=float, default=0.1, help="dropout on the adapters' inputs")
    p.add_argument("--targets", nargs="+", default=["q_proj", "v_proj"],
                   help="our module names (patterns) to adapt; peft gets Hugging Face's (query, value)")  # fmt: skip
    finetune_bert.add_training_arguments(p, DEFAULT_LR, "seed of the classifier, the adapters, dropout, batch order",
                                         "runs/finetune-lora", "metrics, checkpoints, adapter, results")  # fmt: skip
    p.add_argument("--json", default=None, help="also write results.json's content to this file")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Defaults, then --smoke's, then the flags given; every flag is checked before any work starts (the targets
    against the encoder's module names once it is loaded: ``check_lora_flags``)."""
    parser = build_parser()
    args = finetune_bert.parse_with_smoke(parser, argv, SMOKE)
    args.lr = DEFAULT_LR[args.method] if args.lr is None else args.lr
    if args.method not in LORA_METHODS:  # refused rather than ignored: results and run_args.json would record them
        given = finetune_bert.given_flags(parser, argv)
        unread = [f"--{name.replace('_', '-')}" for name in LORA_FLAGS if name in given]
        if unread:
            verb = "applies" if len(unread) == 1 else "apply"
            parser.error(
                f"{', '.join(unread)} {verb} to the LoRA methods only ({', '.join(LORA_METHODS)}), not to "
                f"--method {args.method}: drop {'it' if len(unread) == 1 else 'them'}"
            )
    if args.r < 1:
        parser.error(f"--r must be >= 1, got {args.r}")
    if not (math.isfinite(args.lora_alpha) and args.lora_alpha > 0):
        parser.error(f"--lora-alpha must be a positive number (the scaling is alpha / r), got {args.lora_alpha}")
    if not 0.0 <= args.lora_dropout < 1.0:
        parser.error(f"--lora-dropout must be a probability in [0, 1), got {args.lora_dropout}")
    if args.json is not None and Path(args.json).is_dir():
        parser.error(f"--json names a file to write, and {args.json} is a folder")
    finetune_bert.check_training_args(parser, args)
    return args


def adapter_rank(method: str, r: int) -> int:
    """The rank of the adapters that ``method`` builds for ``--r r``: ``r``, or AdaLoRA's starting rank
    ``ceil(1.5 r)`` (pruned to ``r`` on average during training)."""
    return math.ceil(ADALORA["init_r_factor"] * r) if method == "adalora" else r


def largest_r(method: str, rank_limit: int) -> int:
    """The largest ``--r`` whose adapters (``adapter_rank``) fit a layer of rank at most ``rank_limit``."""
    return max((r for r in range(1, rank_limit + 1) if adapter_rank(method, r) <= rank_limit), default=0)


def encoder_probe(config: BertConfig) -> BertForSequenceClassification:
    """A classifier of ``config``'s shapes on the ``meta`` device: module names and shapes, no memory."""
    with torch.device("meta"):
        return BertForSequenceClassification(config, n_classes=2)


def check_lora_flags(config: BertConfig, args: argparse.Namespace) -> None:
    """End with a one-line message if ``--targets``, ``--r`` (or ``--max-length``) do not fit the encoder: the
    recipe is tried on a model of the encoder's shapes on the ``meta`` device, before anything is built.

    A rank above ``min(d_in, d_out)`` of a layer adds parameters and memory but no expressiveness: the update
    B A of a (d_out, d_in) weight has rank at most ``min(d_in, d_out)`` whatever R (Hu et al., 2021, section 4.1).

    Raises:
        SystemExit: a target that matches no linear layer (or the classifier, which trains in full); ``--r``
            past the rank of a targeted layer (its shape and the largest ``--r`` named); a ``--max-length`` past
            the encoder's positions.
    """
    if args.max_length > config.context_length:
        raise SystemExit(
            f"error: --max-length {args.max_length} exceeds the encoder's {config.context_length} positions: "
            f"give --max-length {config.context_length} or less"
        )
    if args.method not in LORA_METHODS:
        return
    targets = " ".join(args.targets)
    probe = encoder_probe(config)
    try:
        names = target_module_names(probe, args.targets)
    except (TypeError, ValueError) as error:
        raise SystemExit(f"error: --targets {targets}: {error}") from None
    adapted = {  # name -> the (d_out, d_in) of its weight
        name: (probe.get_submodule(name).out_features, probe.get_submodule(name).in_features)
        for name in names
        if not any(module_name_matches(name, kept) for kept in MODULES_TO_SAVE)
    }
    if adapted:  # a targeted classifier is refused below, by apply_lora's own message
        name = min(adapted, key=lambda n: min(adapted[n]))  # the layer of the smallest rank
        limit, rank = min(adapted[name]), adapter_rank(args.method, args.r)
        if rank > limit:
            starts = f" starts {args.method} at rank {rank}, which" if rank != args.r else ""
            raise SystemExit(
                f"error: --r {args.r}{starts} exceeds the rank of {name}, whose weight (d_out, d_in) = "
                f"{adapted[name]} has rank at most {limit}: the largest --r for --targets {targets} is "
                f"{largest_r(args.method, limit)}"
            )
    try:
        lora_settings(config, args)
    except (TypeError, ValueError) as error:
        raise SystemExit(f"error: --targets {targets}: {error}") from None


def lora_settings(config: BertConfig, args: argparse.Namespace) -> dict[str, Any]:
    """The recipe as peft's ``adapter_config.json`` fields, in Hugging Face's module names: our LoRA applied to a
    model of ``config``'s shapes on the ``meta`` device, exported by ``peft_config`` (``["q_proj", "v_proj"]`` ->
    ``["query", "value"]``, the classifier in ``modules_to_save``)."""
    probe = encoder_probe(config)
    apply_lora(probe, args.targets, args.r, args.lora_alpha, args.lora_dropout, modules_to_save=MODULES_TO_SAVE)
    return peft_config(probe)


def peft_method_config(method: str, config: BertConfig, args: argparse.Namespace, steps: int) -> Any:
    """peft's config of ``method`` for the recipe on an encoder of ``config``: ``LoraConfig`` (``use_dora=True``
    for DoRA) or ``AdaLoraConfig`` (its schedule from ``ADALORA`` and the run's ``steps``)."""
    peft = _import_peft()
    settings = lora_settings(config, args)
    common = dict(
        task_type=peft.TaskType.SEQ_CLS,
        lora_alpha=settings["lora_alpha"],
        lora_dropout=settings["lora_dropout"],
        target_modules=settings["target_modules"],
        modules_to_save=settings["modules_to_save"],
    )
    if method == "adalora":
        return peft.AdaLoraConfig(
            **common,
            init_r=adapter_rank(method, args.r),
            target_r=args.r,
            tinit=int(ADALORA["tinit"] * steps),
            tfinal=int(ADALORA["tfinal"] * steps),
            deltaT=ADALORA["deltaT"],
            beta1=ADALORA["beta1"],
            beta2=ADALORA["beta2"],
            total_step=steps,
        )
    return peft.LoraConfig(**common, r=settings["r"], use_dora=method == "dora")


def hf_base_model(model: BertForSequenceClassification, args: argparse.Namespace) -> nn.Module:
    """Hugging Face's ``BertForSequenceClassification`` of the same encoder: MiniLM's folder through
    ``from_pretrained`` (the benchmark's peer, with its own new classifier), or with ``--model-dir`` our ``model``
    converted by ``to_hf`` (the same weights, classifier included)."""
    if args.model_dir is not None:
        return to_hf(model).train()
    return _peer_benchmark().hf_classifier(model.n_classes, "full", args.dropout, args.seed)


@functools.cache
def _peer_benchmark() -> ModuleType:
    """``examples/benchmarks/bert_classification.py``, whose ``hf_classifier`` loads MiniLM as Hugging Face's model."""
    return load_example("benchmarks/bert_classification.py")


def build_model(method: str, encoder: BertModel, n_classes: int, args: argparse.Namespace, steps: int) -> nn.Module:
    """A new classifier on ``encoder`` (seeded by ``args.seed``), with the weights of ``method`` trainable.

    Args:
        method: one of ``METHODS``.
        encoder: the pretrained encoder (copied, never changed).
        n_classes: labels C.
        args: the flags (``r``, ``lora_alpha``, ``lora_dropout``, ``targets``, ``dropout``, ``seed``, ...).
        steps: optimizer steps of the run (AdaLoRA's schedule needs them).

    Returns:
        Our ``BertForSequenceClassification`` (head, full, lora, qlora) or a peft model around Hugging Face's.
    """
    if method in ("head", "full"):
        return finetune_bert.build_classifier(encoder, n_classes, method, args.dropout, args.seed)
    model = finetune_bert.build_classifier(encoder, n_classes, "full", args.dropout, args.seed)
    if method in PEFT_METHODS:
        peft = _import_peft()
        config = peft_method_config(method, encoder.config, args, steps)
        with warnings.catch_warnings():  # transformers 5 renamed an attribute that peft 0.21 still reads
            warnings.simplefilter("ignore", FutureWarning)
            peft_model = peft.get_peft_model(hf_base_model(model, args), config)
        if method == "adalora":
            AdaLoRAAllocation(peft_model)
        return peft_model
    if method == "qlora":
        quantize_linears(model, QUANTIZED, double_quant=True)
    apply_lora(model, args.targets, args.r, args.lora_alpha, args.lora_dropout, modules_to_save=MODULES_TO_SAVE)
    return model


class _AddToLoss(torch.autograd.Function):
    """Identity on the logits whose backward also sends gradient 1 into ``penalty``: the loop minimises
    cross-entropy + penalty without computing it (DeepSeekMoE adds its balance loss the same way). The logged
    loss is the cross-entropy alone."""

    @staticmethod
    def forward(ctx: Any, logits: Tensor, penalty: Tensor) -> Tensor:
        ctx.penalty_like = (penalty.dtype, penalty.device)
        return logits.clone()

    @staticmethod
    def backward(ctx: Any, grad_logits: Tensor) -> tuple[Tensor, Tensor]:
        dtype, device = ctx.penalty_like
        return grad_logits, torch.ones((), dtype=dtype, device=device)  # d(loss + penalty) / d penalty


def orthogonality_penalty(model: nn.Module) -> Tensor:
    """AdaLoRA's regulariser R = mean over the adapters of ||A A^T - I||_F and ||B^T B - I||_F (Zhang et al., 2023,
    eq. 4, in peft's form: Frobenius norms, not squared): it keeps P = B and Q = A near-orthogonal, so that the
    entries of Lambda = lora_E act as singular values that can be pruned."""
    norms = []
    for name, weight in model.named_parameters():
        if weight.requires_grad and (".lora_A." in name or ".lora_B." in name):
            gram = weight @ weight.T if ".lora_A." in name else weight.T @ weight  # (R, R)
            eye = torch.eye(gram.shape[0], dtype=gram.dtype, device=gram.device)
            norms.append(torch.linalg.matrix_norm(gram - eye))
    return torch.stack(norms).mean()


def _penalise_logits(model: nn.Module, args: Any, output: Any) -> Any:
    """Forward hook of an AdaLoRA model: in training, its logits carry the orthogonality penalty's gradient."""
    if not (model.training and torch.is_grad_enabled()):
        return output
    weight = model.peft_config[model.active_adapter].orth_reg_weight
    output.logits = _AddToLoss.apply(output.logits, weight * orthogonality_penalty(model))
    return output


class AdaLoRAAllocation(nn.Module):
    """AdaLoRA's rank allocation for a peft AdaLoRA model trained by a loop that knows nothing of it.

    AdaLoRA writes each update as P Lambda Q (peft's ``lora_B``, ``lora_E``, ``lora_A``) and after every optimizer
    step scores each weight by its smoothed sensitivity times its uncertainty (Zhang et al., 2023, eq. 8-10),

        I = |w dL/dw|,   I_bar <- b1 I_bar + (1 - b1) I,   U_bar <- b2 U_bar + (1 - b2) |I - I_bar|,   s = I_bar U_bar

    then zeroes the entries of Lambda whose triplets score lowest until the total rank meets a budget that falls
    from ``init_r`` to ``target_r`` per matrix. peft does this in ``update_and_allocate(step)``, to be called after
    ``optimizer.step()`` and before ``zero_grad()``. Attached to the model as ``rank_allocation``, this module

    - calls it, inside ``active()``, from a post-step hook of torch's optimizers, for the optimizer that holds this
      model's adapters, with that optimizer's own step count (a resumed run continues from the checkpoint's);
    - keeps I_bar, U_bar and the rank pattern in its buffers: they are part of the model's ``state_dict``, so the
      loop's checkpoints carry them, and a resumed run equals an unbroken one (peft keeps them in plain dicts);
    - adds the orthogonality penalty (``orthogonality_penalty``, weight ``orth_reg_weight``) through a forward hook
      on the logits: peft adds it only to a loss the model computes from labels, and our loop computes its own.

    Args:
        model: a ``PeftModel`` made by ``get_peft_model`` with an ``AdaLoraConfig``.

    Examples:
        >>> from peft import AdaLoraConfig, get_peft_model
        >>> from transformers import BertConfig as HFConfig, BertForSequenceClassification as HFModel
        >>> _ = torch.manual_seed(0)
        >>> hf = HFModel(HFConfig(vocab_size=30, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        ...                       intermediate_size=32))
        >>> config = AdaLoraConfig(task_type="SEQ_CLS", init_r=3, target_r=2, target_modules=["query"],
        ...                        total_step=4, tfinal=1)
        >>> model = get_peft_model(hf, config)
        >>> allocation = AdaLoRAAllocation(model)
        >>> optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.1)
        >>> with allocation.active():
        ...     for step in range(4):
        ...         model(torch.randint(0, 30, (2, 5))).logits.sum().backward()
        ...         optimizer.step()
        ...         optimizer.zero_grad()
        >>> [(name.split(".")[-3], sum(keep)) for name, keep in allocation.rank_pattern().items()]  # 2 of 3 kept
        [('query', 2)]
    """

    allocated: Tensor

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        tuner = getattr(model, "base_model", None)
        if not hasattr(tuner, "update_and_allocate"):
            raise TypeError(f"model must be a peft model with an AdaLoraConfig, got {type(model).__name__}")
        self.adapter: str = tuner.trainable_adapter_name
        named = [(n, p) for n, p in tuner.model.named_parameters() if "lora_" in n and self.adapter in n]
        self.names = [n for n, _ in named]  # peft's keys: the names in the wrapped Hugging Face model
        self.e_names = [n for n in self.names if ".lora_E." in n]
        for i, (_, weight) in enumerate(named):
            self.register_buffer(f"sensitivity_{i}", torch.zeros_like(weight, requires_grad=False))  # I_bar
            self.register_buffer(f"uncertainty_{i}", torch.zeros_like(weight, requires_grad=False))  # U_bar
        for i, name in enumerate(self.e_names):
            rank = tuner.model.get_parameter(name).shape[0]
            self.register_buffer(f"keep_{i}", torch.ones(rank, dtype=torch.bool, device=named[0][1].device))
        self.register_buffer("allocated", torch.tensor(False))  # whether the keep_* masks hold a rank pattern
        self._model = [model]  # a list: the model is not a submodule of its own submodule
        model.rank_allocation = self  # buffers in the model's state_dict: named without "lora_", not in the adapter
        model.register_forward_hook(_penalise_logits)

    def _state(self, kind: str, n: int) -> list[Tensor]:
        return [self.get_buffer(f"{kind}_{i}") for i in range(n)]

    def rank_pattern(self) -> dict[str, list[bool]] | None:
        """The kept triplets of every ``lora_E`` (peft's ``rank_pattern``), or None before the first allocation."""
        if not bool(self.allocated):
            return None
        return {
            name: keep.tolist() for name, keep in zip(self.e_names, self._state("keep", len(self.e_names)), strict=True)
        }

    def restore(self) -> None:
        """Put the saved rank pattern into peft's config (after ``--resume``, before ``save_pretrained``)."""
        tuner = self._model[0].base_model
        pattern = self.rank_pattern()
        if pattern is not None:
            tuner.peft_config[self.adapter].rank_pattern = pattern

    def allocate(self, step: int) -> None:
        """peft's ``update_and_allocate(step)`` (``step`` from 0) on the state held in the buffers."""
        tuner = self._model[0].base_model
        allocator, config = tuner.rankallocator, tuner.peft_config[self.adapter]
        sensitivity = self._state("sensitivity", len(self.names))
        uncertainty = self._state("uncertainty", len(self.names))
        # peft reads and replaces the tensors of these dicts; a name missing from `ipt` would restart them at zero
        allocator.ipt = dict(zip(self.names, sensitivity, strict=True))
        allocator.exp_avg_ipt = dict(zip(self.names, sensitivity, strict=True))
        allocator.exp_avg_unc = dict(zip(self.names, uncertainty, strict=True))
        self.restore()
        tuner.update_and_allocate(step)
        with torch.no_grad():
            for name, s, u in zip(self.names, sensitivity, uncertainty, strict=True):
                if name in allocator.exp_avg_ipt:  # emptied at the final allocation (peft's reset_ipt)
                    s.copy_(allocator.exp_avg_ipt[name])
                    u.copy_(allocator.exp_avg_unc[name])
            if config.rank_pattern:
                for name, keep in zip(self.e_names, self._state("keep", len(self.e_names)), strict=True):
                    keep.copy_(torch.tensor(config.rank_pattern[name], dtype=torch.bool))
                self.allocated.fill_(True)

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """Within the block, every optimizer step that updates this model's adapters runs ``allocate``."""
        probe = self._model[0].base_model.model.get_parameter(self.names[0])

        def after_step(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
            state = optimizer.state.get(probe)  # .get: no entry is created for another optimizer's parameters
            if state is not None and "step" in state:
                self.allocate(int(state["step"]) - 1)  # AdamW has counted this step; peft counts from 0

        handle = register_optimizer_step_post_hook(after_step)
        try:
            yield
        finally:
            handle.remove()


def _is_adapter(name: str) -> bool:
    return "lora_" in name or "ranknum" in name  # A, B, AdaLoRA's E and rank, DoRA's lora_magnitude_vector


def base_weight_bytes(model: nn.Module) -> tuple[int, int]:
    """Bytes of the pretrained encoder's weights, adapters excluded: all of them, and those of its linear layers
    (what QLoRA stores in 4 bits: codes and scales).

    Returns:
        ``(encoder_bytes, linear_bytes)``.
    """
    plain = model.get_base_model() if hasattr(model, "get_base_model") else model  # a peft model wraps Hugging Face's
    encoder = plain.bert
    seen: set[int] = set()
    total = linear = 0
    for module_name, module in encoder.named_modules():
        if _is_adapter(module_name):
            continue
        tensors = [*module.named_parameters(recurse=False), *module.named_buffers(recurse=False)]
        for name, tensor in tensors:
            if _is_adapter(name) or id(tensor) in seen:
                continue
            seen.add(id(tensor))
            total += tensor.nelement() * tensor.element_size()
            if isinstance(module, nn.Linear | Linear4bit):
                linear += tensor.nelement() * tensor.element_size()
    return total, linear


def training_step_memory(model: nn.Module, batch: tuple[Tensor, Tensor, Tensor], args: argparse.Namespace) -> int:
    """Peak bytes that one training step allocates beyond the weights (``llmdocs.profiling.peak_memory_bytes``):
    activations, gradients and AdamW's two moments (created by the first step), measured on a copy of the model
    with its own optimizer, so the run itself is untouched. Activations grow with the batch's padded length, so
    ``run`` passes the same batch (the first texts of the training split) for every method and seed."""
    twin = copy.deepcopy(model).train()
    device = next(twin.parameters()).device
    optimizer = build_adamw(twin, args.lr, args.weight_decay, (0.9, 0.999))
    batch = tuple(t.to(device) for t in batch)

    def step() -> None:
        loss, _ = classification_loss(twin, batch)
        loss.backward()
        optimizer.step()

    return peak_memory_bytes(step, device)


@torch.no_grad()
def validation_loss(model: nn.Module, data: EncodedExamples, batch_size: int = 64) -> float:
    """Mean cross-entropy per text in eval mode: it separates learning rates that accuracy, one message apart on
    SMS spam's validation split, cannot."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total = 0.0
    try:
        for rows in torch.arange(len(data)).split(batch_size):
            batch = tuple(t.to(device) for t in data.rows(rows))
            total += classification_loss(model, batch)[0].item() * len(rows)
    finally:
        model.train(was_training)
    return total / len(data)


def run(
    args: argparse.Namespace,
    encoder: BertModel,
    data: dict[str, EncodedExamples],
    class_names: tuple[str, ...],
    out_dir: str | None = None,
    resume: bool = False,
) -> tuple[nn.Module, dict[str, Any]]:
    """Build ``args.method``'s model on ``encoder``, measure one training step, train it with finetune_bert.py's
    ``finetune_and_test`` and score it: the part of ``main`` that the benchmark repeats.

    Returns:
        The trained model and its results: finetune_and_test's, and ``test_precision``/``test_recall`` of the
        positive class, ``val_loss``, ``peak_step_memory_bytes``, ``base_weights_bytes``,
        ``base_linear_weights_bytes``, ``test_predictions`` (one digit per test text, in the split's order).
    """
    batches = ClassificationBatches(data["train"], args.batch_size, seed=args.seed)
    steps = args.epochs * len(batches)  # as finetune_and_test's schedule
    model = build_model(args.method, encoder, len(class_names), args, steps).to(resolve_device(args.device))
    if args.method in PEFT_METHODS:
        model.print_trainable_parameters()  # peft's own line
    else:
        print(trainable_parameters_summary(model))  # the same line, 4-bit weights counted as peft counts them
    fixed = torch.arange(min(args.batch_size, len(data["train"])))  # the first texts, the same for every run
    step_bytes = training_step_memory(model, data["train"].rows(fixed), args)
    encoder_bytes, linear_bytes = base_weight_bytes(model)
    allocation = getattr(model, "rank_allocation", None)
    with allocation.active() if allocation is not None else contextlib.nullcontext():
        results = finetune_bert.finetune_and_test(model, data, args, class_names, out_dir, resume)
    if allocation is not None:
        allocation.restore()  # a resumed, finished run allocated nothing in this process
    predictions = predict(model, data["test"])
    positive = class_names[-1]
    results |= {
        "test_precision": results["test"][f"precision_{positive}"],
        "test_recall": results["test"][f"recall_{positive}"],
        "positive_class": positive,
        "val_loss": validation_loss(model, data["validation"]),
        "peak_step_memory_bytes": step_bytes,
        "base_weights_bytes": encoder_bytes,
        "base_linear_weights_bytes": linear_bytes,
        "test_predictions": "".join(str(int(y)) for y in predictions),
    }
    if args.method in LORA_METHODS:
        results["lora"] = {"r": args.r, "lora_alpha": args.lora_alpha, "lora_dropout": args.lora_dropout,
                           "targets": list(args.targets)}  # fmt: skip
    if args.method == "adalora":
        config = model.peft_config[model.active_adapter]
        results["adalora"] = {k: getattr(config, k) for k in ("init_r", "target_r", "tinit", "tfinal", "deltaT")}
        pattern = allocation.rank_pattern() or {}
        results["adalora"]["final_ranks"] = {k.split(".lora_E")[0]: sum(v) for k, v in pattern.items()}
    return model, results


def base_model_name(args: argparse.Namespace) -> str:
    """What an adapter names as its base: MiniLM's Hub name, or the ``--model-dir`` folder."""
    return MINILM_HUB_NAME if args.model_dir is None else str(finetune_bert.model_folder(args.model_dir))


def save_adapter(model: nn.Module, method: str, directory: str | os.PathLike[str], base_name: str) -> Path | None:
    """Save what a LoRA method trained in peft's format (ours through ``save_peft_adapter``, peft's models through
    ``save_pretrained``); head and full train no adapter (None)."""
    if method in OUR_LORA:
        return save_peft_adapter(model, directory, base_model_name_or_path=base_name)
    if method in PEFT_METHODS:
        model.peft_config[model.active_adapter].base_model_name_or_path = base_name
        model.save_pretrained(directory, save_embedding_layers=False)  # not trained; peft guesses from the base's
        # config.json, which for a --model-dir is ours, not Hugging Face's
        return Path(directory)
    return None


def load_adapter(
    method: str, directory: str | os.PathLike[str], encoder: BertModel, n_classes: int, args: argparse.Namespace
) -> nn.Module:
    """The trained classifier again, from the base encoder and its saved adapter (in eval mode): ours through
    ``load_peft_adapter`` (QLoRA's base quantized first, as in training), peft's through
    ``PeftModel.from_pretrained``."""
    if method not in LORA_METHODS:
        raise ValueError(f"method must be one of {LORA_METHODS} (head and full save no adapter), got {method!r}")
    model = finetune_bert.build_classifier(encoder, n_classes, "full", args.dropout, args.seed)
    if method in OUR_LORA:
        if method == "qlora":
            quantize_linears(model, QUANTIZED, double_quant=True)
        load_peft_adapter(model, directory)
        return model.eval()
    peft = _import_peft()
    with warnings.catch_warnings():  # peft 0.21 does not recognise the rank pattern it saved for AdaLoRA (it works)
        warnings.filterwarnings("ignore", "The following rank_pattern keys did not match", RuntimeWarning)
        return peft.PeftModel.from_pretrained(hf_base_model(model, args), directory).eval()


def load_split(args: argparse.Namespace) -> dict[str, list[tuple[str, int]]]:
    """The task's train/validation/test split of ``--split-seed`` (with ``--smoke``, its first few texts)."""
    split_fn, _, _ = finetune_bert.TASKS[args.task]
    split = split_fn(args.split_seed)
    if args.smoke:  # a few examples of each class in every part
        split = {name: part[: SMOKE["n_train"] if name == "train" else SMOKE["n_eval"]] for name, part in split.items()}
    return split


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    finetune_bert.check_run_folder(args)  # --out-dir against --resume, before anything is built
    if args.threads:
        torch.set_num_threads(args.threads)
    command = "python examples/finetune_lora.py " + shlex.join(list(sys.argv[1:] if argv is None else argv))
    _, class_names, attribution = finetune_bert.TASKS[args.task]
    split = load_split(args)
    encoder, tokenizer = finetune_bert.load_encoder(args.model, args.model_dir)
    check_lora_flags(encoder.config, args)
    data = finetune_bert.encode_split(tokenizer, split, args.max_length)
    print(f"{args.task}: {attribution}")
    print(
        f"{', '.join(f'{name} {len(part):,}' for name, part in data.items())} texts; {args.model_dir or args.model}, "
        f"method {args.method}, lr {args.lr:g}; {torch.get_num_threads()} thread(s)"
    )
    if not args.resume:
        finetune_bert.save_run_settings(args)
    model, results = run(args, encoder, data, class_names, args.out_dir, args.resume)
    adapter = save_adapter(model, args.method, Path(args.out_dir) / "adapter", base_model_name(args))
    results = {
        "task": args.task,
        "method": args.method,
        "model": args.model_dir or args.model,
        **results,
        "adapter": str(adapter) if adapter is not None else None,
        "command": command,
        "args": vars(args),
        "machine": machine_description(),
        "source": attribution,
    }
    write_record(Path(args.out_dir) / "results.json", results)
    if args.json:
        write_record(args.json, results)
    if not results["finished"]:
        print(f"stopped after step {results['steps_done']} of {results['steps']}: continue with --resume")
    val = f"{results['val_accuracy']:.2%}" if results["val_accuracy"] is not None else "not measured"
    print(
        f"test accuracy {results['test_accuracy']:.2%} ({len(data['test']):,} texts; {results['positive_class']}: "
        f"precision {results['test_precision']:.3f} recall {results['test_recall']:.3f}); val accuracy {val}; "
        f"trainable {results['trainable_params']:,} of {results['total_params']:,} "
        f"({results['trainable_percent']:.3g}%); one step {results['peak_step_memory_bytes'] / 2**20:.0f} MiB, "
        f"base weights {results['base_weights_bytes'] / 2**20:.1f} MiB; {results['train_seconds']:.0f} s training "
        f"({results['cpu_seconds']:.0f} CPU-seconds)" + (f"; adapter in {adapter}" if adapter else "")
    )
    return results


if __name__ == "__main__":
    main()
