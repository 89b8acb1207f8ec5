"""Packing against padding in SFT: the same batches, the same loss, and how long a training step takes.

For each data set (the date task: conversations of nearly equal length; LLaMA-Factory's Alpaca demo set: answers
from a word to a page), the same micro-batches of ``--batch-size`` conversations are run padded (one per row, to the
batch's longest) and packed (best-fit decreasing into as few rows of at most ``--max-length`` as it can, balanced
to the shortest row length that keeps that many: ``SFTBatches(packing=True)``) through SmolLM2-135M-Instruct with
our LoRA on every linear layer, as ``examples/sft.py`` trains it. Each step is a forward and backward pass and an
AdamW update, timed on the wall clock; the first (warm-up) step is not counted. The record keeps per data set and
layout: the median seconds per step, the tokens computed per step (padding included) and the real tokens, the rows,
the padding fraction, and the loss of every step, which must be the same padded and packed (packing changes the work,
not what is learnt).

Usage:
    python examples/benchmarks/sft_packing.py --threads 2 --json runs/sft_packing.json   # ~10 minutes
    python examples/benchmarks/sft_packing.py --smoke                                     # seconds (the tests)
"""

from __future__ import annotations

import argparse
import copy
import shlex
import statistics
import sys
import time
from typing import Any

import torch

from llmdocs.data.iso_dates import make_iso_date_task
from llmdocs.data.llamafactory import load_alpaca
from llmdocs.finetuning.lora import apply_lora
from llmdocs.finetuning.lora_budget import TARGET_SETS
from llmdocs.finetuning.sft import SFTBatches, sft_loss_fn, tokenize_sft_examples
from llmdocs.profiling import machine_description
from llmdocs.records import write_record
from llmdocs.training import build_adamw


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch-size", type=int, default=16, help="conversations per step (default: 16)")
    p.add_argument("--max-length", type=int, default=1024, help="longest packed row, in tokens (default: 1024)")
    p.add_argument("--steps", type=int, default=4, help="timed steps per layout, after one warm-up (default: 4)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: 0, torch's choice)")
    p.add_argument("--json", default=None, help="write the record to this file")
    p.add_argument("--smoke", action="store_true", help="a tiny random Llama, 2 steps: seconds (for the tests)")
    args = p.parse_args(argv)
    for name in ("batch_size", "max_length", "steps"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    return args


def conversations(smoke: bool) -> dict[str, list[list[dict[str, str]]]]:
    """The date task's training conversations and the English Alpaca demo set's, in their stored order."""
    dates = make_iso_date_task(n_train=2000, n_validation=200, n_test=500, seed=0)["train"]
    alpaca = load_alpaca("en")
    n = 16 if smoke else 512
    return {"iso-dates": [e.messages() for e in dates[:n]], "alpaca-en": [e.messages() for e in alpaca[:n]]}


def time_layout(model: torch.nn.Module, batches: SFTBatches, steps: int) -> dict[str, Any]:
    """``steps + 1`` training steps on batches 0..steps (the first untimed): seconds, tokens and losses."""
    optimizer = build_adamw(model, lr=1e-4, weight_decay=0.0)
    seconds, losses, computed, real, rows = [], [], [], [], []
    for i in range(steps + 1):
        batch = batches(i)
        start = time.perf_counter()
        loss, _ = sft_loss_fn(model, batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if i:
            seconds.append(time.perf_counter() - start)
        losses.append(loss.item())
        computed.append(batch["input_ids"].numel())
        real.append(int(batch["attention_mask"].sum()))
        rows.append(batch["input_ids"].size(0))
    return {
        "seconds_per_step": statistics.median(seconds),
        "seconds": seconds,
        "losses": losses,
        "tokens_computed_per_step": statistics.mean(computed),
        "real_tokens_per_step": statistics.mean(real),
        "rows_per_step": statistics.mean(rows),
        "padding_fraction": 1 - sum(real) / sum(computed),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from llmdocs.models.smollm2 import load_smollm2, smollm2_tokenizer

    if args.smoke:
        from llmdocs.models.llama import Llama, LlamaConfig

        tokenizer = smollm2_tokenizer()
        torch.manual_seed(0)
        base = Llama(LlamaConfig.tiny(len(tokenizer), context_length=2048))
        args.steps, args.batch_size = 1, 4
    else:
        base, tokenizer = load_smollm2()
    for p in base.parameters():
        p.requires_grad_(False)
    command = "python examples/benchmarks/sft_packing.py " + shlex.join(list(sys.argv[1:] if argv is None else argv))
    record: dict[str, Any] = {"command": command, "machine": machine_description(), "threads": torch.get_num_threads(),
                              "batch_size": args.batch_size, "max_length": args.max_length, "steps": args.steps,
                              "results": {}}  # fmt: skip
    for name, chats in conversations(args.smoke).items():
        examples = tokenize_sft_examples(chats, tokenizer)
        longest = max(len(e["input_ids"]) for e in examples)
        record["results"][name] = {
            "longest": longest,
            "median_length": statistics.median(len(e["input_ids"]) for e in examples),
        }
        for layout in ("padded", "packed"):
            adapted = copy.deepcopy(base)  # the same frozen weights, and the same fresh adapters, for each layout
            torch.manual_seed(0)
            apply_lora(adapted, targets=TARGET_SETS["llama"]["all linear"], r=16, lora_alpha=32, lora_dropout=0.0)
            packing, max_length = layout == "packed", max(args.max_length, longest)
            pad_id = tokenizer.pad_token_id or 0
            batches = SFTBatches(
                examples, args.batch_size, seed=0, packing=packing, max_length=max_length, pad_id=pad_id
            )
            result = time_layout(adapted, batches, args.steps)
            record["results"][name][layout] = result
            print(
                f"{name:10} {layout:6} {result['seconds_per_step']:7.2f} s/step, {result['rows_per_step']:5.1f} rows, "
                f"{result['tokens_computed_per_step']:7.0f} tokens computed, {result['padding_fraction']:5.1%} padding"
            )
        padded, packed = (record["results"][name][k] for k in ("padded", "packed"))
        record["results"][name]["speedup"] = padded["seconds_per_step"] / packed["seconds_per_step"]
        differences = [abs(a - b) for a, b in zip(padded["losses"], packed["losses"], strict=True)]
        record["results"][name]["max_loss_difference"] = max(differences)  # float32 rounding only: same batches
        if args.json:
            write_record(args.json, record)
    return record


if __name__ == "__main__":
    main()
