"""Benchmark: is next-sentence prediction worth it? Two BERTs pre-trained alike but for NSP, then fine-tuned alike.

RoBERTa (Liu et al., 2019, section 4.2) dropped BERT's second pre-training task. This script takes the output
folders of two runs of ``examples/pretrain_bert.py`` whose flags differ only by ``--no-nsp`` (checked), and
fine-tunes each encoder with ``examples/finetune_bert.py``'s recipe on the same task, split, seeds and batches:

- ``head``: a linear classifier on the frozen pooled ``[CLS]`` vector (a probe of what pre-training put there: NSP
  is the only task that trains the pooler; without it the pooler keeps its random initialisation);
- ``full``: every weight trains (what one would do in practice).

Each (model, mode) runs once per seed; the record keeps every test accuracy, their mean and spread, and both
pre-training runs' held-out MLM accuracy, so the chapter can say whether a difference is larger than the noise.

Usage:
    python examples/benchmarks/nsp_ablation.py --with-nsp runs/bert-en --without-nsp runs/bert-en-no-nsp \\
        --json llmdocs/records/bert_nsp_ablation.json                                  # ~10 min on 2 cores
    python examples/benchmarks/nsp_ablation.py --with-nsp A --without-nsp B --smoke    # seconds
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # examples/: the fine-tuning recipe is imported
import finetune_bert

from llmdocs.profiling import machine_description

ONLY_DIFFERENCE = {"nsp", "out_dir", "record", "export", "resume", "no_progress", "minutes", "threads", "device"}
"""Flags of the two pre-training runs that may differ (the rest must be equal for a fair ablation)."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--with-nsp", required=True, help="--out-dir of the pre-training run with NSP")
    p.add_argument("--without-nsp", required=True, help="--out-dir of the same run with --no-nsp")
    p.add_argument("--task", choices=sorted(finetune_bert.TASKS), default="sms-spam", help="(default: %(default)s)")
    p.add_argument("--modes", nargs="+", choices=["head", "full"], default=["head", "full"],
                   help="fine-tuning regimes (default: head full)")  # fmt: skip
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="fine-tuning seeds (default: 0 1 2)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    p.add_argument("--json", default=None, help="write the record to this file")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bars")
    p.add_argument("--smoke", action="store_true", help="a few texts, a few steps: seconds (for the tests)")
    args = p.parse_args(argv)
    for name in ("seeds", "modes"):
        values = getattr(args, name)
        if len(set(values)) != len(values):
            p.error(f"--{name} must not repeat a value (a repeated seed would look like agreement), got {values}")
    if args.threads < 0:
        p.error(f"--threads must be >= 0, got {args.threads}")
    if args.json is not None and not Path(args.json).resolve().parent.is_dir():
        p.error(f"--json {args.json}: its folder does not exist (checked before any fine-tuning)")
    for flag in ("with_nsp", "without_nsp"):
        folder = Path(getattr(args, flag))
        if not (folder / "results.json").is_file() or not (folder / "model" / "config.json").is_file():
            p.error(f"--{flag.replace('_', '-')} {folder} is not an output folder of pretrain_bert.py "
                    "(results.json and model/ expected)")  # fmt: skip
    return args


def pretraining_summary(folder: Path) -> dict[str, Any]:
    """What the chapter needs of a pre-training run: its flags, held-out scores and time."""
    results = json.loads((folder / "results.json").read_text(encoding="utf-8"))
    keep = ("nsp", "steps", "val_mlm_accuracy", "val_mlm_loss", "val_nsp_accuracy", "train_seconds", "command")
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text(encoding="utf-8").splitlines() if line]
    held_out = [row for row in rows if "val_mlm_accuracy" in row]  # the evaluations during training
    return {k: results[k] for k in keep if k in results} | {"args": results["args"], "held_out": held_out}


def check_comparable(with_nsp: dict[str, Any], without_nsp: dict[str, Any]) -> None:
    """The two runs must be the same recipe but for NSP."""
    if not with_nsp["nsp"] or without_nsp["nsp"]:
        raise SystemExit("--with-nsp must be a run with NSP and --without-nsp one with --no-nsp")
    a, b = with_nsp["args"], without_nsp["args"]
    differ = sorted(k for k in a.keys() - ONLY_DIFFERENCE if a[k] != b.get(k))
    if differ:
        raise SystemExit(f"the two pre-training runs differ in more than NSP: {differ}")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    folders = {"with NSP": Path(args.with_nsp), "without NSP": Path(args.without_nsp)}
    pretraining = {name: pretraining_summary(folder) for name, folder in folders.items()}
    check_comparable(pretraining["with NSP"], pretraining["without NSP"])
    split_fn, class_names, attribution = finetune_bert.TASKS[args.task]
    split = split_fn(0)
    if args.smoke:
        split = {name: part[: 32 if name == "train" else 16] for name, part in split.items()}
    record: dict[str, Any] = {
        "command": "python examples/benchmarks/nsp_ablation.py " + shlex.join(sys.argv[1:] if argv is None else argv),
        "machine": machine_description(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "task": args.task,
        "source": attribution,
        "seeds": args.seeds,
        "pretraining": pretraining,
        "recipes": {},
        "results": {},
    }
    for name, folder in folders.items():
        encoder, tokenizer = finetune_bert.load_encoder("minilm", str(folder / "model"))
        for mode in args.modes:
            flags = ["--task", args.task, "--mode", mode, "--model-dir", str(folder / "model")]
            recipe = finetune_bert.parse_args(flags + ["--smoke"] * args.smoke + ["--no-progress"] * args.no_progress)
            data = finetune_bert.encode_split(tokenizer, split, recipe.max_length)
            runs = []
            for seed in args.seeds:
                recipe.seed = seed
                model = finetune_bert.build_classifier(encoder, len(class_names), mode, recipe.dropout, seed)
                result = finetune_bert.finetune_and_test(model, data, recipe, class_names)
                runs.append({k: v for k, v in result.items() if k != "history"} | {"seed": seed})
                print(f"{name:12} {mode:5} seed {seed}: test {result['test_accuracy']:.2%} "
                      f"({result['train_seconds']:.0f} s)", flush=True)  # fmt: skip
            accuracies = [run["test_accuracy"] for run in runs]
            record["recipes"][mode] = {k: v for k, v in vars(recipe).items() if k not in ("out_dir", "resume", "seed")}
            record["results"][f"{name}/{mode}"] = {
                "test_accuracy": accuracies,
                "mean": statistics.fmean(accuracies),
                "stdev": statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0,
                "runs": runs,
            }
    record["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    for key, result in record["results"].items():
        print(f"{key:18} test accuracy {result['mean']:.2%} +- {result['stdev']:.2%} over {len(args.seeds)} seed(s)")
    if args.json:
        Path(args.json).write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return record


if __name__ == "__main__":
    main()
