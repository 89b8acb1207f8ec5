"""Benchmark: fine-tuning BERT to classify texts, against a TF-IDF baseline and against Hugging Face's model.

One run measures, on the same split and with the same recipe, data order and budget:

- ``tfidf``: TF-IDF + logistic regression (scikit-learn), fit on train + validation. SMS spam: word unigrams and
  bigrams, C chosen on the validation set among 1, 4, 16, 100, then refit. Review sentiment: character 1-3-grams,
  C = 4 (nothing chosen);
- ``ours-head``, ``ours-last-block``, ``ours-full``: our ``BertForSequenceClassification`` on the packaged
  all-MiniLM-L6-v2, in the three regimes of ``examples/finetune_bert.py`` (its recipe and per-mode learning rates);
- ``scratch-full``: the control for pre-training: the same encoder shape with fresh random weights (seeded),
  fine-tuned in full by the same recipe; what the ``ours-full`` run gains over it is what pre-training bought;
- ``hf-head``, ``hf-full``: the peer, Hugging Face's ``BertForSequenceClassification.from_pretrained`` on the same
  folder (offline), trained by the same loop on the same batches (our WordPiece tokenizer gives the ids of
  Hugging Face's ``BertTokenizer``). "head" freezes ``bert`` (the pooler too) in both.

``--model-dir`` replaces MiniLM, for the ``ours-*`` runs, by a BERT pre-trained in this course (a folder written by
``examples/pretrain_bert.py``, e.g. ``llmdocs/pretrained/bert-people-daily`` for the Chinese reviews); the peer runs
need MiniLM's folder and are refused with it.

Each fine-tuning run tests the weights that ``--select`` names (by default finetune_bert.py's: the last epoch's;
``best``: the epoch with the best validation accuracy) and reports their test accuracy, the spam (or
positive) class's precision and recall, the trainable parameters, and the training time: wall-clock seconds of the
training loop, per-epoch validation included, and the CPU seconds of the process (summed over threads). The machine
is shared: the record keeps the load average before and after every run.

Usage:
    python examples/benchmarks/bert_classification.py --json llmdocs/records/bert_sms_spam.json   # ~10-15 min
    python examples/benchmarks/bert_classification.py --runs tfidf ours-full --epochs 2
    python examples/benchmarks/bert_classification.py --task review-sentiment --runs tfidf        # 84.8%
    python examples/benchmarks/bert_classification.py --task review-sentiment --runs tfidf ours-full scratch-full \
        --model-dir llmdocs/pretrained/bert-people-daily --json llmdocs/records/bert_review_sentiment.json
    python examples/benchmarks/bert_classification.py --smoke                                      # seconds
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shlex
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the peer loads the packaged folder: never the network

import torch
from torch import nn

from llmdocs.data.minilm import minilm_dir
from llmdocs.finetuning import mark_trainable, unfreeze
from llmdocs.interop.hf_bert import HF_BERT_HEAD_NAMES
from llmdocs.models.bert import BertModel
from llmdocs.profiling import machine_description

RUNS = ("tfidf", "ours-head", "ours-last-block", "ours-full", "scratch-full", "hf-head", "hf-full")
TFIDF = {  # task -> vectorizer settings, the C values tried (one: nothing to choose)
    "sms-spam": (dict(analyzer="word", ngram_range=(1, 2)), (1.0, 4.0, 16.0, 100.0)),
    "review-sentiment": (dict(analyzer="char", ngram_range=(1, 3)), (4.0,)),
}


def load_finetune_script() -> ModuleType:
    """``examples/finetune_bert.py`` as a module: the benchmark uses its recipe, not a copy of it."""
    path = Path(__file__).resolve().parents[1] / "finetune_bert.py"
    spec = importlib.util.spec_from_file_location("finetune_bert", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["finetune_bert"] = module
    spec.loader.exec_module(module)
    return module


def tfidf_baseline(split: dict[str, list[tuple[str, int]]], task: str, class_names: tuple[str, ...]) -> dict:
    """TF-IDF + logistic regression: C chosen on validation (if several), then fit on train + validation."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    from llmdocs.finetuning.classification import classification_metrics

    settings, Cs = TFIDF[task]

    def fit(examples: list[tuple[str, int]], C: float) -> tuple[Any, Any]:
        vectorizer = TfidfVectorizer(**settings)
        features = vectorizer.fit_transform([text for text, _ in examples])
        return vectorizer, LogisticRegression(C=C, max_iter=5000).fit(features, [label for _, label in examples])

    def predict(model: tuple[Any, Any], examples: list[tuple[str, int]]) -> torch.Tensor:
        vectorizer, classifier = model
        return torch.as_tensor(classifier.predict(vectorizer.transform([text for text, _ in examples])))

    def labels(examples: list[tuple[str, int]]) -> torch.Tensor:
        return torch.tensor([label for _, label in examples])

    wall, cpu = time.perf_counter(), time.process_time()
    val_scores = {}
    if len(Cs) > 1 and split["validation"]:
        for C in Cs:
            val_scores[C] = float(
                (predict(fit(split["train"], C), split["validation"]) == labels(split["validation"])).float().mean()
            )
    best_C = max(val_scores, key=val_scores.get) if val_scores else Cs[0]  # the first of equals
    model = fit(split["train"] + split["validation"], best_C)
    train_seconds, cpu_seconds = time.perf_counter() - wall, time.process_time() - cpu
    test = classification_metrics(predict(model, split["test"]), labels(split["test"]), class_names)
    return {
        "test": test, "test_accuracy": test["accuracy"], "settings": {**settings, "C": best_C},
        "val_accuracy_by_C": val_scores, "trainable_params": len(model[0].vocabulary_) + 1, "total_params": None,
        "train_seconds": round(train_seconds, 2), "cpu_seconds": round(cpu_seconds, 2),
    }  # fmt: skip


def hf_classifier(n_classes: int, mode: str, dropout: float, seed: int) -> nn.Module:
    """Hugging Face's ``BertForSequenceClassification`` on the packaged MiniLM folder; "head" trains the classifier."""
    from transformers import BertForSequenceClassification as HFBertForSequenceClassification
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()  # "classifier newly initialized" is the point, not a warning
    hf_logging.disable_progress_bar()  # a local file loads in a blink
    torch.manual_seed(seed)
    try:
        model = HFBertForSequenceClassification.from_pretrained(
            minilm_dir(), num_labels=n_classes, hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout
        )
    finally:  # the process's settings, as they were (this runs inside the tests' process too)
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
    if mode == "head":
        mark_trainable(model, f"{HF_BERT_HEAD_NAMES['classifier']}.*")
    elif mode == "full":
        unfreeze(model)
    else:
        raise ValueError(f"the peer runs modes 'head' and 'full', got {mode!r}")
    return model.train()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", choices=sorted(TFIDF), default="sms-spam", help="data set (default: %(default)s)")
    p.add_argument("--runs", nargs="+", choices=RUNS, default=None,
                   help="what to measure (default: all for sms-spam, tfidf for review-sentiment)")  # fmt: skip
    p.add_argument("--model-dir", default=None,
                   help="for the ours-* runs: a BERT of examples/pretrain_bert.py instead of MiniLM")  # fmt: skip
    p.add_argument("--epochs", type=int, default=None, help="fine-tuning epochs (default: finetune_bert.py's)")
    p.add_argument("--max-length", type=int, default=None, help="tokens per text (default: finetune_bert.py's)")
    p.add_argument("--batch-size", type=int, default=None, help="texts per step (default: finetune_bert.py's)")
    p.add_argument("--select", choices=["last", "best"], default=None,
                   help="test the last epoch or the best on validation (default: finetune_bert.py's)")  # fmt: skip
    p.add_argument("--lr", nargs="+", default=[], metavar="MODE=LR",
                   help="override a mode's learning rate, e.g. full=5e-5 (default: finetune_bert.py's)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="seed of the classifier, dropout and batches (default: 0)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    p.add_argument("--note", default="", help="free text stored in the record, e.g. what else ran")
    p.add_argument("--json", default=None, help="write the record to this file")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bars")
    p.add_argument("--smoke", action="store_true", help="a few texts, a few steps: seconds (for the tests)")
    args = p.parse_args(argv)
    args.runs = args.runs or (list(RUNS) if args.task == "sms-spam" else ["tfidf"])
    problem = load_finetune_script().model_dir_problem(args.model_dir) if args.model_dir is not None else None
    if problem:  # one line: "... holds a GPT, not a BERT ...", before any run
        p.exit(2, f"{p.prog}: error: --model-dir {problem}\n")
    if args.model_dir is not None and any(run.startswith("hf-") for run in args.runs):
        p.error("the hf-* runs load MiniLM's folder: leave them out of --runs with --model-dir")
    return args


def recipe_args(script: ModuleType, args: argparse.Namespace, mode: str) -> argparse.Namespace:
    """finetune_bert.py's arguments for one mode: its defaults, then this benchmark's overrides."""
    flags = ["--task", args.task, "--mode", mode, "--seed", str(args.seed)]
    if args.model_dir is not None:
        flags += ["--model-dir", args.model_dir]
    for name in ("epochs", "max_length", "batch_size", "select"):
        if getattr(args, name) is not None:
            flags += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    lrs = dict(item.split("=", 1) for item in args.lr)
    if mode in lrs:
        flags += ["--lr", lrs[mode]]
    return script.parse_args(
        flags + (["--smoke"] if args.smoke else []) + (["--no-progress"] if args.no_progress else [])
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    script = load_finetune_script()
    split_fn, class_names, attribution = script.TASKS[args.task]
    split = split_fn(0)  # the split is fixed; --seed varies the training
    if args.smoke:
        split = {name: part[: 32 if name == "train" else 16] for name, part in split.items()}
    record: dict[str, Any] = {
        "command": "python examples/benchmarks/bert_classification.py "
        + shlex.join(sys.argv[1:] if argv is None else argv),
        "machine": machine_description(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "note": args.note,
        "task": args.task,
        "encoder": args.model_dir or "all-MiniLM-L6-v2",
        "source": attribution,
        "split": {name: {"texts": len(part), class_names[1]: sum(y for _, y in part)} for name, part in split.items()},
        "recipes": {},
        "results": {},
    }
    encoder = tokenizer = data = None
    print(f"{args.task}: {record['split']}; {torch.get_num_threads()} thread(s)")
    for run in args.runs:
        load_before = os.getloadavg()
        if run == "tfidf":
            result = tfidf_baseline(split, args.task, class_names)
        else:
            family, mode = run.split("-", 1)
            recipe = recipe_args(script, args, mode)
            if encoder is None:
                encoder, tokenizer = script.load_encoder("minilm", args.model_dir)
                data = script.encode_split(tokenizer, split, recipe.max_length)
            if family == "ours":
                model = script.build_classifier(encoder, len(class_names), mode, recipe.dropout, recipe.seed)
            elif family == "scratch":  # the shape of the encoder, none of what it learnt
                torch.manual_seed(recipe.seed)
                fresh = BertModel(encoder.config).eval()
                model = script.build_classifier(fresh, len(class_names), mode, recipe.dropout, recipe.seed)
            else:
                model = hf_classifier(len(class_names), mode, recipe.dropout, recipe.seed)
            result = script.finetune_and_test(model, data, recipe, class_names)
            record["recipes"][mode] = {k: v for k, v in vars(recipe).items() if k not in ("out_dir", "resume")}
        result["load_average_before"] = [round(x, 2) for x in load_before]
        result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
        record["results"][run] = result
        positive = class_names[1]
        print(
            f"{run:16} test {result['test_accuracy']:.2%}  {positive} P {result['test'][f'precision_{positive}']:.3f} "
            f"R {result['test'][f'recall_{positive}']:.3f}  trainable {result['trainable_params']:>11,}  "
            f"{result['train_seconds']:6.1f} s  load {load_before[0]:.2f} -> {os.getloadavg()[0]:.2f}",
            flush=True,
        )
    record["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    if args.json:
        Path(args.json).write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return record


if __name__ == "__main__":
    main()
