"""The quick task of the Transformer chapter: translate English dates into Chinese (or German) with a small Transformer.

"Sunday, March 3, 2024" -> "2024年3月3日星期日": the year moves to the front, the weekday to the end, month names
become numbers. The pairs come from the Unicode CLDR data in ``babel``, so nothing is downloaded, and the 1,000
held-out dates never occur in training. A 2+2-layer model reaches >= 99% exact match in about a minute on a
laptop CPU.

Usage:
    python examples/train_dates.py                                   # en -> zh, prints exact match, ~1 min
    python examples/train_dates.py --target de --out-dir runs/dates-de
    python examples/train_dates.py --out-dir runs/dates --resume     # continue from the newest checkpoint
    python examples/train_dates.py --smoke                           # seconds: the tests run this
    python examples/train_dates.py --export docs/assets/models/dates-en-zh   # the model the chapter loads

Outputs in ``--out-dir``: ``metrics.jsonl``/``metrics.csv``, ``checkpoints/``, ``curve.svg``, ``results.json``
and the exported model (``model/``: safetensors + JSON).
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
from llmdocs.generation.encoder_decoder import greedy_decode
from llmdocs.models.transformer import Transformer, TransformerConfig
from llmdocs.serialization import save_pretrained
from llmdocs.training import TrainConfig, is_main_process, plot_history, resolve_device, seed_everything, train
from llmdocs.training.seq2seq import label_smoothed_cross_entropy


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Show the usage docstring as written and every flag's default."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--target", default="zh", help="target CLDR locale: zh, de, fr, es, ja, ...")
    parser.add_argument("--n-train", type=int, default=20_000, help="training pairs")
    parser.add_argument("--n-test", type=int, default=1_000, help="held-out pairs (dates never seen in training)")
    parser.add_argument("--steps", type=int, default=800, help="optimizer steps")
    parser.add_argument("--batch-size", type=int, default=64, help="pairs per step")
    parser.add_argument("--lr", type=float, default=3e-3, help="peak learning rate")
    parser.add_argument("--warmup", type=int, default=100, help="linear warm-up steps")
    parser.add_argument("--d-model", type=int, default=64, help="model width D")
    parser.add_argument("--n-heads", type=int, default=4, help="attention heads H")
    parser.add_argument("--d-ff", type=int, default=256, help="feed-forward width F")
    parser.add_argument("--layers", type=int, default=2, help="encoder layers = decoder layers")
    parser.add_argument("--dropout", type=float, default=0.0, help="dropout (the task has no noise to overfit)")
    parser.add_argument("--post-ln", action="store_true", help="Post-LN blocks (the 2017 paper) instead of Pre-LN")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    parser.add_argument("--seed", type=int, default=0, help="seed of data split, initialisation and batches")
    parser.add_argument("--out-dir", default="runs/dates", help="metrics, checkpoints, figures, results")
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out-dir")
    parser.add_argument("--export", default=None, help="also save the trained model to this folder")
    parser.add_argument("--smoke", action="store_true", help="a tiny run that takes seconds (used by the tests)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.n_train, args.n_test, args.steps, args.batch_size = 256, 32, 12, 32
        args.d_model, args.d_ff, args.layers, args.warmup = 32, 64, 1, 2
    return args


def exact_match(model: Transformer, vocab_src: CharVocab, vocab_tgt: CharVocab, pairs: list[tuple[str, str]]) -> float:
    """Fraction of held-out sources whose greedy translation equals the reference exactly."""
    device = next(model.parameters()).device
    correct = 0
    for start in range(0, len(pairs), 250):
        chunk = pairs[start : start + 250]
        src = vocab_src.encode_batch([s for s, _ in chunk]).to(device)  # (B, S)
        longest = max(len(t) for _, t in chunk) + 1
        out = greedy_decode(model, src, vocab_tgt.bos_id, vocab_tgt.eos_id, max_new_tokens=longest)
        correct += sum(vocab_tgt.decode(ids) == t for ids, (_, t) in zip(out, chunk, strict=True))
    return correct / len(pairs)


def main(argv: list[str] | None = None) -> dict[str, object]:
    args = parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    seed_everything(args.seed)
    out_dir = Path(args.out_dir)

    train_pairs, test_pairs = date_task_split(args.n_train, args.n_test, seed=args.seed, target_locale=args.target)
    vocab_src = CharVocab.build(s for s, _ in train_pairs)
    vocab_tgt = CharVocab.build(t for _, t in train_pairs)
    src, tgt = encode_pairs(train_pairs, vocab_src, vocab_tgt)  # (N, S), (N, T): <bos> ... <eos>

    config = TransformerConfig(
        src_vocab_size=len(vocab_src),
        tgt_vocab_size=len(vocab_tgt),
        d_model=args.d_model,
        n_heads=args.n_heads,
        d_ff=args.d_ff,
        n_encoder_layers=args.layers,
        n_decoder_layers=args.layers,
        dropout=args.dropout,
        max_len=64,
        norm_first=not args.post_ln,
        tie_output=True,
        pad_id=vocab_src.pad_id,
    )
    model = Transformer(config)
    train_config = TrainConfig(
        steps=args.steps,
        lr=args.lr,
        warmup=args.warmup,
        schedule="cosine",
        min_lr_ratio=0.02,
        weight_decay=0.01,
        betas=(0.9, 0.98),
        log_every=max(1, args.steps // 20),
        eval_every=max(1, args.steps // 4),
        checkpoint_every=max(1, args.steps // 4),
        seed=args.seed,
        device=args.device,
        out_dir=str(out_dir),
    )
    batches = IndexedBatches(src, tgt, batch_size=args.batch_size, seed=args.seed)
    probe = test_pairs[: min(200, len(test_pairs))]

    def loss_fn(model: Transformer, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, int]:
        src, tgt = batch
        logits = model(src, tgt[:, :-1])  # (B, T-1, V): teacher forcing
        labels = tgt[:, 1:]  # (B, T-1)
        loss = label_smoothed_cross_entropy(logits, labels, smoothing=0.0, ignore_index=config.pad_id)
        return loss, int((labels != config.pad_id).sum())

    def evaluate(model: Transformer, step: int) -> dict[str, float]:
        return {"probe_exact_match": exact_match(model, vocab_src, vocab_tgt, probe)}

    start = time.perf_counter()
    history = train(model, batches, loss_fn, train_config, evaluate=evaluate, resume=args.resume)
    train_seconds = time.perf_counter() - start
    model.to(resolve_device(args.device)).eval()
    accuracy = exact_match(model, vocab_src, vocab_tgt, test_pairs)

    examples = []
    for source, reference in test_pairs[:5]:
        ids = greedy_decode(model, vocab_src.encode_batch([source]).to(next(model.parameters()).device), 1, 2)[0]
        examples.append({"source": source, "reference": reference, "output": vocab_tgt.decode(ids)})
    results = {
        "task": f"en->{args.target} dates",
        "exact_match": accuracy,
        "n_test": len(test_pairs),
        "train_seconds": round(train_seconds, 1),
        "steps": args.steps,
        "parameters": sum(p.numel() for p in model.parameters()),
        "final_loss": history[-1]["loss"] if history else None,
        "command": shlex.join(["python", "examples/train_dates.py", *(sys.argv[1:] if argv is None else argv)]),
        "examples": examples,
    }
    if is_main_process():
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False), encoding="utf-8")
        if history:
            plot_history(history).savefig(out_dir / "curve.svg")
        meta = {"src_vocab": vocab_src.to_dict(), "tgt_vocab": vocab_tgt.to_dict(), "results": results}
        save_pretrained(out_dir / "model", model.cpu(), config, meta)
        if args.export:
            save_pretrained(args.export, model.cpu(), config, meta)
        print(f"exact match on {len(test_pairs)} held-out dates: {accuracy:.1%} (training {train_seconds:.0f} s)")
        for example in examples[:3]:
            print(f"  {example['source']} -> {example['output']}   (reference {example['reference']})")
    return results


if __name__ == "__main__":
    main()
