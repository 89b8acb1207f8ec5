"""Benchmark: LoRA and its relatives against head-only and full fine-tuning, on one task, one split, one budget.

One run trains, with ``examples/finetune_lora.py``'s recipe (imported as a module, not copied) and the same number
of epochs on the same batches, each method of ``--runs``:

- ``head`` and ``full``: the two ends, the classifier only and every weight (finetune_bert.py's regimes);
- ``lora``: our LoRA (r=16, alpha=32, query and value, dropout 0.1, the classifier trained in full);
- ``peft``: the same recipe through Hugging Face's model and peft's LoraConfig, trained by our loop;
- ``qlora``: our LoRA on the encoder's linear layers stored in 4-bit NF4 with double quantization;
- ``adalora`` and ``dora``: peft's AdaLoraConfig (ranks 24 pruned to 16 on average) and LoraConfig(use_dora=True).

The methods of ``--repeat`` (default: lora and peft, whose difference is the question) run once per seed of
``--seeds`` (default 0 1 2); the others with the first seed only. A seed sets the new classifier, the adapters'
initialisation, dropout and the batch order; the split is fixed (finetune_bert.py's, seed 0).

For every run the record keeps finetune_lora.py's results: test accuracy, precision and recall of the positive
class (spam, or a positive review), the trainable parameters (count and %), the peak memory of one training step
(activations, gradients and AdamW's moments), the bytes of the base weights (and of its linear layers, which QLoRA
stores in 4 bits), the wall-clock and CPU seconds of training, the test predictions (one digit per text: paired
comparisons between methods), and the load average before and after (the machine is shared). Per method: the
accuracies of all seeds, their mean, standard deviation, minimum and maximum.

Usage:
    python examples/benchmarks/lora_classification.py --json llmdocs/records/lora_sms_spam.json   # ~30 min, 2 cores
    python examples/benchmarks/lora_classification.py --task review-sentiment \\
        --model-dir llmdocs/pretrained/bert-people-daily --json llmdocs/records/lora_review_sentiment.json
    python examples/benchmarks/lora_classification.py --runs lora peft --seeds 0 1 2 3 4 --epochs 2
    python examples/benchmarks/lora_classification.py --lr lora=1e-3 peft=1e-3 --runs lora peft
    python examples/benchmarks/lora_classification.py --smoke                                      # seconds
"""

from __future__ import annotations

import argparse
import functools
import gc
import importlib.util
import os
import shlex
import statistics
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # Hugging Face's model loads the packaged folder: never the network

import torch

from llmdocs.profiling import machine_description
from llmdocs.records import write_record

SUMMED = ("test_accuracy", "train_seconds", "cpu_seconds", "peak_step_memory_bytes")
"""Per-seed figures the record lists for every method, beside its per-seed results."""


@functools.cache
def load_finetune_script() -> ModuleType:
    """``examples/finetune_lora.py`` as a module (loaded once): the benchmark uses its recipe and methods, not a
    copy of them."""
    path = Path(__file__).resolve().parents[1] / "finetune_lora.py"
    spec = importlib.util.spec_from_file_location("finetune_lora", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["finetune_lora"] = module
    spec.loader.exec_module(module)
    return module


def build_parser(script: ModuleType) -> argparse.ArgumentParser:
    tasks = sorted(script.finetune_bert.TASKS)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                allow_abbrev=False)  # fmt: skip
    p.add_argument("--task", choices=tasks, default="sms-spam", help="data set (default: %(default)s)")
    p.add_argument("--runs", nargs="+", choices=script.METHODS, default=list(script.METHODS),
                   help="methods to train (default: all, in this order)")  # fmt: skip
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2],
                   help="seeds of the --repeat methods (default: 0 1 2)")  # fmt: skip
    p.add_argument("--repeat", nargs="*", choices=script.METHODS, default=["lora", "peft"],
                   help="methods run with every seed; the others use the first (default: lora peft)")  # fmt: skip
    p.add_argument("--model", choices=sorted(script.finetune_bert.ENCODERS), default="minilm",
                   help="pretrained encoder (default: %(default)s)")  # fmt: skip
    p.add_argument("--model-dir", default=None,
                   help="a BERT of examples/pretrain_bert.py instead of --model (peft: through to_hf)")  # fmt: skip
    p.add_argument("--epochs", type=int, default=None, help="fine-tuning epochs (default: finetune_lora.py's)")
    p.add_argument("--max-length", type=int, default=None, help="tokens per text (default: finetune_lora.py's)")
    p.add_argument("--batch-size", type=int, default=None, help="texts per step (default: finetune_lora.py's)")
    p.add_argument("--select", choices=["last", "best"], default=None,
                   help="test the last epoch or the best on validation (default: finetune_lora.py's)")  # fmt: skip
    p.add_argument("--lr", nargs="+", default=[], metavar="METHOD=LR",
                   help="override a method's learning rate, e.g. lora=1e-3 (default: finetune_lora.py's)")  # fmt: skip
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: 0, torch's choice)")
    p.add_argument("--note", default="", help="free text stored in the record, e.g. what else ran")
    p.add_argument("--json", default=None, help="write the record to this file (after every run)")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bars")
    p.add_argument("--smoke", action="store_true", help="a few texts, a few steps: seconds (for the tests)")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The flags, each checked before any training: every run's recipe goes through finetune_lora.py's checks."""
    script = load_finetune_script()
    parser = build_parser(script)
    args = parser.parse_args(argv)
    for name in ("runs", "seeds", "repeat"):
        values = getattr(args, name)
        if len(set(values)) != len(values):
            parser.error(f"--{name} lists a value twice: {values}")
    lrs: dict[str, str] = {}
    for item in args.lr:
        method, _, value = item.partition("=")
        if method not in script.METHODS or not value:
            parser.error(f"--lr takes METHOD=LR with METHOD one of {script.METHODS}, got {item!r}")
        lrs[method] = value
    args.lrs = lrs
    if args.json is not None and Path(args.json).is_dir():
        parser.error(f"--json names a file to write, and {args.json} is a folder")
    if args.model_dir is not None:
        problem = script.finetune_bert.model_dir_problem(args.model_dir)
        if problem:  # one line: "... holds a GPT, not a BERT ...", before any run
            parser.exit(2, f"{parser.prog}: error: --model-dir {problem}\n")
    for method in args.runs:  # finetune_lora.py refuses a bad --lr, --epochs, --max-length ... in one line
        recipe_args(script, args, method, args.seeds[0])
    return args


def recipe_args(script: ModuleType, args: argparse.Namespace, method: str, seed: int) -> argparse.Namespace:
    """finetune_lora.py's arguments for one method and seed: its defaults, then this benchmark's overrides."""
    flags = ["--task", args.task, "--method", method, "--seed", str(seed)]
    flags += ["--model-dir", args.model_dir] if args.model_dir is not None else ["--model", args.model]
    for name in ("epochs", "max_length", "batch_size", "select"):
        if getattr(args, name) is not None:
            flags += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    if method in args.lrs:
        flags += ["--lr", args.lrs[method]]
    flags += ["--smoke"] if args.smoke else []
    flags += ["--no-progress"] if args.no_progress else []
    return script.parse_args(flags)


def spread(values: list[float]) -> dict[str, float]:
    """Mean, sample standard deviation (0 for one value), minimum and maximum."""
    return {
        "mean": statistics.fmean(values),
        "stdev": statistics.stdev(values) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    script = load_finetune_script()
    _, class_names, attribution = script.finetune_bert.TASKS[args.task]
    recipes = {method: recipe_args(script, args, method, args.seeds[0]) for method in args.runs}
    split = script.load_split(next(iter(recipes.values())))  # fixed (--split-seed 0); --seeds vary the training
    encoder, tokenizer = script.finetune_bert.load_encoder(args.model, args.model_dir)
    for recipe in recipes.values():
        script.check_lora_flags(encoder.config, recipe)
    max_length = next(iter(recipes.values())).max_length  # the same for every method
    data = script.finetune_bert.encode_split(tokenizer, split, max_length)
    record: dict[str, Any] = {
        "command": "python examples/benchmarks/lora_classification.py "
        + shlex.join(sys.argv[1:] if argv is None else argv),
        "machine": machine_description(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "note": args.note,
        "task": args.task,
        "encoder": args.model_dir or args.model,
        "source": attribution,
        "split": {name: {"texts": len(part), class_names[-1]: sum(y for _, y in part)} for name, part in split.items()},
        "seeds": {method: args.seeds if method in args.repeat else args.seeds[:1] for method in args.runs},
        "recipes": {
            method: {k: v for k, v in vars(recipe).items() if k not in ("out_dir", "resume", "seed", "json")}
            for method, recipe in recipes.items()
        },
        "results": {},
    }
    print(f"{args.task}: {record['split']}; {torch.get_num_threads()} thread(s)")
    positive = class_names[-1]
    for method in args.runs:
        runs: dict[str, dict[str, Any]] = {}
        for seed in record["seeds"][method]:
            recipe = recipe_args(script, args, method, seed)
            load_before = os.getloadavg()
            model, result = script.run(recipe, encoder, data, class_names)
            del model
            gc.collect()  # the next method's model is built in the memory this one held
            result["load_average_before"] = [round(x, 2) for x in load_before]
            result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
            runs[str(seed)] = result
            print(
                f"{method:8} seed {seed}: test {result['test_accuracy']:.2%}  {positive} "
                f"P {result['test_precision']:.3f} R {result['test_recall']:.3f}  "
                f"trainable {result['trainable_params']:>10,} "
                f"({result['trainable_percent']:.3g}%)  step {result['peak_step_memory_bytes'] / 2**20:5.0f} MiB  "
                f"{result['train_seconds']:6.1f} s  load {load_before[0]:.2f} -> {os.getloadavg()[0]:.2f}",
                flush=True,
            )
        first = next(iter(runs.values()))
        record["results"][method] = {
            **{name: [run[name] for run in runs.values()] for name in SUMMED},
            "test_accuracy_spread": spread([run["test_accuracy"] for run in runs.values()]),
            **{key: first[key] for key in ("trainable_params", "total_params", "trainable_percent")},
            **{key: first[key] for key in ("base_weights_bytes", "base_linear_weights_bytes")},
            "runs": runs,
        }
        if args.json:  # a long benchmark keeps what it measured so far
            write_record(args.json, record)
    record["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    for method, result in record["results"].items():
        accuracy = result["test_accuracy_spread"]
        seeds = len(result["test_accuracy"])
        print(
            f"{method:8} test accuracy {accuracy['mean']:.2%} +- {accuracy['stdev']:.2%} over {seeds} seed(s) "
            f"[{accuracy['min']:.2%}, {accuracy['max']:.2%}]; trainable {result['trainable_percent']:.3g}%"
        )
    if args.json:
        write_record(args.json, record)
    return record


if __name__ == "__main__":
    main()
