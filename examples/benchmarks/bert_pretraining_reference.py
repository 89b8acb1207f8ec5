"""Benchmark: BERT pre-training with Hugging Face's BertForPreTraining and with ours, in one loop, step by step.

The same data, the same initial weights, the same optimizer and schedule, the same batches in the same order: only
the model's code differs. Both models take turns (ours, then theirs, then theirs, then ours, ...), so a background
load on the machine slows both alike, and each step is timed on its own; the reported time per step is the median.

- data: ``examples/pretrain_bert.py``'s (WikiText-2 train, a WordPiece vocabulary trained on it, NSP pairs of at
  most 125 tokens, 15% of the tokens chosen, 80/10/10), and its held-out evaluation (fixed batches of the validation
  split with fixed masks): MLM accuracy, MLM loss, NSP accuracy;
- model: ``pretrain_bert.py``'s default shape (4 layers, D=256, 4 heads, F=1024, dropout 0.1), built once by us and
  copied into ``transformers.BertForPreTraining`` through ``llmdocs.interop.hf_bert.to_hf``;
- optimizer: AdamW (betas 0.9/0.999, weight decay 0.01 on matrices), warm-up then cosine decay, clipping at 1.0;
- each model is used as its library intends: Hugging Face's with ``labels=`` and ``next_sentence_label=`` (its loss
  scores all T positions against the vocabulary), ours through ``pretrain_bert.pretraining_loss`` (the MLM head on
  the chosen positions only, as Google's original BERT does).

Usage:
    python examples/benchmarks/bert_pretraining_reference.py --json llmdocs/records/bert_pretraining_reference.json
    python examples/benchmarks/bert_pretraining_reference.py --steps 200     # a shorter comparison
    python examples/benchmarks/bert_pretraining_reference.py --smoke         # seconds (used by the tests)
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import os
import shlex
import statistics
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # models are built from configs: never the network

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from llmdocs.interop import hf_bert
from llmdocs.models.bert import BertConfig, BertForPreTraining
from llmdocs.profiling import machine_description
from llmdocs.training.masked_lm import IGNORE_INDEX, mlm_accuracy
from llmdocs.training.next_sentence import nsp_accuracy
from llmdocs.training.schedules import warmup_cosine_lambda


def load_pretrain_script() -> ModuleType:
    """``examples/pretrain_bert.py`` as a module: its data preparation and loss are the ones compared here."""
    path = Path(__file__).resolve().parents[1] / "pretrain_bert.py"
    spec = importlib.util.spec_from_file_location("pretrain_bert", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["pretrain_bert"] = module
    spec.loader.exec_module(module)
    return module


def optimizer_for(model: nn.Module, lr: float) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only: the same construction for both models."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999))


def hf_loss(model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
    """Hugging Face's own loss: MLM cross-entropy over all positions' logits (labels -100 ignored) + NSP."""
    return model(
        input_ids=batch["input_ids"],
        token_type_ids=batch["token_type_ids"],
        attention_mask=batch["attention_mask"],
        labels=batch["labels"],
        next_sentence_label=batch["next_sentence_label"],
    ).loss


@torch.no_grad()
def hf_evaluate(model: nn.Module, batches: list[dict[str, Tensor]]) -> dict[str, float]:
    """Held-out MLM accuracy and NSP accuracy of Hugging Face's model, counted as for ours."""
    model.eval()
    correct = total = nsp_correct = nsp_total = 0
    for batch in batches:
        out = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
        chosen = batch["labels"] != IGNORE_INDEX  # (B, T)
        c, n = mlm_accuracy(out.prediction_logits[chosen], batch["labels"][chosen])
        correct, total = correct + c, total + n
        c, n = nsp_accuracy(out.seq_relationship_logits, batch["next_sentence_label"])
        nsp_correct, nsp_total = nsp_correct + c, nsp_total + n
    model.train()
    return {"val_mlm_accuracy": correct / total, "val_nsp_accuracy": nsp_correct / nsp_total}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=600, help="optimizer steps per model")
    p.add_argument("--warmup", type=int, default=60, help="linear warm-up steps")
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate")
    p.add_argument("--batch-size", type=int, default=32, help="sequences per step")
    p.add_argument("--eval-batches", type=int, default=20, help="held-out batches of 32 sequences")
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights, pairs, masks and batches")
    p.add_argument("--json", default=None, help="write the record here")
    p.add_argument("--smoke", action="store_true", help="a tiny model for a few steps (seconds)")
    args = p.parse_args(argv)
    command = "python examples/benchmarks/bert_pretraining_reference.py " + shlex.join(
        list(sys.argv[1:] if argv is None else argv)
    )
    torch.set_num_threads(args.threads)
    script = load_pretrain_script()
    flags = ["--smoke"] if args.smoke else []
    settings = script.parse_args([*flags, "--batch-size", str(args.batch_size), "--seed", str(args.seed)])
    if args.smoke:
        args.steps, args.warmup, args.eval_batches = 4, 1, 2

    # data: exactly pretrain_bert.py's
    train_docs, held_docs = script.load_documents(settings.corpus)
    if settings.max_documents:
        train_docs, held_docs = train_docs[: settings.max_documents], held_docs[: max(4, settings.max_documents // 10)]
    tokenizer = script.build_tokenizer(train_docs, settings.vocab_size, Path("unused"), resume=False)
    T = settings.context_length
    train_pairs = script.sentence_pairs(script.tokenize_documents(train_docs, tokenizer), T, True, settings.seed)
    held_pairs = script.sentence_pairs(script.tokenize_documents(held_docs, tokenizer), T, True, settings.seed + 1)
    batches = script.PretrainingBatches(train_pairs, batch_size=args.batch_size, tokenizer=tokenizer, seed=args.seed)
    held = script.PretrainingBatches(
        held_pairs, batch_size=args.batch_size, tokenizer=tokenizer, seed=12_345, shuffle=False
    )
    eval_batches = [held(i) for i in range(min(args.eval_batches, len(held)))]

    # the same initial weights in both models
    torch.manual_seed(args.seed)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size, context_length=T, d_model=settings.d_model, n_heads=settings.n_heads,
        n_layers=settings.n_layers, d_ff=settings.d_ff, dropout=settings.dropout,
        pad_token_id=tokenizer.vocab[tokenizer.pad_token],
    )  # fmt: skip
    ours = BertForPreTraining(config).train()
    theirs = hf_bert.to_hf(copy.deepcopy(ours)).train()
    runs: dict[str, dict[str, Any]] = {
        "ours": {"model": ours, "loss": lambda m, b: script.pretraining_loss(m, b, True)[0]},
        "hf": {"model": theirs, "loss": hf_loss},
    }
    for run in runs.values():
        run["optimizer"] = optimizer_for(run["model"], args.lr)
        schedule = warmup_cosine_lambda(args.warmup, args.steps, min_ratio=0.1)
        run["scheduler"] = torch.optim.lr_scheduler.LambdaLR(run["optimizer"], schedule)
        run["rng"] = torch.get_rng_state()  # each model draws its dropout masks from its own stream
        run["seconds"], run["losses"] = [], []

    bar = tqdm(range(args.steps), desc="ours + hf", unit="step", disable=args.smoke)
    for step in bar:
        batch = batches(step)
        order = ["ours", "hf"] if step % 2 == 0 else ["hf", "ours"]
        for name in order:
            run = runs[name]
            torch.set_rng_state(run["rng"])
            t0 = time.perf_counter()
            loss = run["loss"](run["model"], batch)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(run["model"].parameters(), 1.0)
            run["optimizer"].step()
            run["optimizer"].zero_grad(set_to_none=True)
            run["scheduler"].step()
            run["seconds"].append(time.perf_counter() - t0)
            run["losses"].append(loss.item())
            run["rng"] = torch.get_rng_state()
        bar.set_postfix(ours=f"{runs['ours']['losses'][-1]:.3f}", hf=f"{runs['hf']['losses'][-1]:.3f}")

    ours.eval()
    results: dict[str, Any] = {}
    with torch.no_grad():
        ours_metrics = script.evaluate_pretraining(ours, eval_batches, True)
    for name, metrics in (("ours", ours_metrics), ("hf", hf_evaluate(theirs, eval_batches))):
        seconds = runs[name]["seconds"][min(5, args.steps - 1) :]  # the first steps warm the allocator up
        results[name] = {
            "val_mlm_accuracy": metrics["val_mlm_accuracy"],
            "val_nsp_accuracy": metrics["val_nsp_accuracy"],
            "final_train_loss": statistics.fmean(runs[name]["losses"][-20:]),
            "step_ms_median": round(1000 * statistics.median(seconds), 2),
            "train_seconds": round(sum(runs[name]["seconds"]), 2),
        }
    ratio = results["ours"]["step_ms_median"] / results["hf"]["step_ms_median"]
    record = {
        "command": command,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "context_length": T,
        "vocab_size": tokenizer.vocab_size,
        "params": sum(p.numel() for p in ours.parameters()),
        "train_pairs": len(train_pairs),
        "eval_sequences": sum(len(b["input_ids"]) for b in eval_batches),
        "model_config": {k: getattr(config, k) for k in ("n_layers", "d_model", "n_heads", "d_ff", "dropout")},
        "results": results,
        "time_per_step_ratio": round(ratio, 3),
        "machine": machine_description(),
    }
    print(f"{'model':6} {'MLM acc':>8} {'NSP acc':>8} {'ms/step':>8} {'train s':>8}")
    for name, r in results.items():
        print(
            f"{name:6} {r['val_mlm_accuracy']:8.4f} {r['val_nsp_accuracy']:8.4f} {r['step_ms_median']:8.1f} "
            f"{r['train_seconds']:8.1f}"
        )
    print(f"ours / hf time per step: {ratio:.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    return record


if __name__ == "__main__":
    main()
