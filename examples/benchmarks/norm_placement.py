"""Benchmark: Pre-LN vs Post-LN Transformers trained the same way, with and without learning-rate warm-up.

Post-LN (the 2017 paper: ``x = LayerNorm(x + sublayer(x))``) puts a normalisation on the residual path, so the
gradients of the top layers are large at initialisation and it needs a learning-rate warm-up; Pre-LN
(``x = x + sublayer(LayerNorm(x))``) keeps an identity path from the loss to every layer and trains well without
one (Xiong et al., 2020, "On Layer Normalization in the Transformer Architecture").

This trains a 6+6-layer model on the date task (English -> German) four times: {Pre-LN, Post-LN} x {no
warm-up, warm-up}, same seed, same batches, and prints the loss after each quarter of the run. Chapter 1 plots the
curves from the JSON it writes (``llmdocs/records/norm_placement.json``).

Usage:
    python examples/benchmarks/norm_placement.py                 # ~2-4 minutes on 2 CPU cores
    python examples/benchmarks/norm_placement.py --steps 20 --json /tmp/n.json   # a quick look
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import torch

from llmdocs.data.batches import IndexedBatches
from llmdocs.data.dates import date_task_split
from llmdocs.data.vocab import CharVocab, encode_pairs
from llmdocs.models.transformer import Transformer, TransformerConfig
from llmdocs.training import TrainConfig, train
from llmdocs.training.seq2seq import label_smoothed_cross_entropy

RECORD = Path(__file__).resolve().parents[2] / "llmdocs" / "records" / "norm_placement.json"


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200, help="optimizer steps per run (default: %(default)s)")
    parser.add_argument("--layers", type=int, default=6, help="encoder = decoder layers (default: %(default)s)")
    parser.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=100, help="warm-up steps of warm-up runs (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed (default: %(default)s)")
    parser.add_argument("--json", default=str(RECORD), help="where to write the curves (default: %(default)s)")
    args = parser.parse_args(argv)

    pairs, _ = date_task_split(n_train=4000, n_test=1, seed=args.seed, target_locale="de")
    src_vocab, tgt_vocab = CharVocab.build(s for s, _ in pairs), CharVocab.build(t for _, t in pairs)
    src, tgt = encode_pairs(pairs, src_vocab, tgt_vocab)  # (N, S), (N, T)
    batches = IndexedBatches(src, tgt, batch_size=32, seed=args.seed)

    def loss_fn(model: Transformer, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        s, t = batch
        return label_smoothed_cross_entropy(model(s, t[:, :-1]), t[:, 1:], smoothing=0.0)

    runs: dict[str, dict[str, object]] = {}
    for norm_first in (True, False):
        for warmup in (0, args.warmup):
            name = f"{'Pre' if norm_first else 'Post'}-LN, {'warm-up ' + str(warmup) if warmup else 'no warm-up'}"
            torch.manual_seed(args.seed)
            config = TransformerConfig(
                len(src_vocab), len(tgt_vocab), d_model=64, n_heads=4, d_ff=128, n_encoder_layers=args.layers,
                n_decoder_layers=args.layers, dropout=0.0, norm_first=norm_first, max_len=64,
            )  # fmt: skip
            train_config = TrainConfig(
                steps=args.steps, lr=args.lr, warmup=warmup, schedule="constant", weight_decay=0.0,
                betas=(0.9, 0.98), log_every=max(1, args.steps // 30), seed=args.seed, device="cpu",
            )  # fmt: skip
            start = time.perf_counter()
            history = train(Transformer(config), batches, loss_fn, train_config, progress=False)
            seconds = time.perf_counter() - start
            runs[name] = {"steps": [r["step"] for r in history], "loss": [r["loss"] for r in history]}
            quarters = [history[len(history) * q // 4 - 1]["loss"] for q in (1, 2, 3, 4)]
            losses = ", ".join(f"{x:.3f}" for x in quarters)
            print(f"{name:<28} loss at 1/4, 1/2, 3/4, end: {losses}  ({seconds:.0f} s)")
    command = ["python", "examples/benchmarks/norm_placement.py", *(sys.argv[1:] if argv is None else argv)]
    record = {
        "command": shlex.join(command),
        "setup": f"dates en->de, {args.layers}+{args.layers} layers, d_model 64, batch 32, lr {args.lr}, AdamW",
        "runs": runs,
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    return record


if __name__ == "__main__":
    main()
