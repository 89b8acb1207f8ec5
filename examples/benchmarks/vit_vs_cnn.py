"""Benchmark: our Vision Transformer against our ResNet and two peers on Fashion-MNIST, on a CPU.

Each experiment (``--experiment``) is a sequence of training runs in one process, one after another on the same
machine, written to one JSON record (``--json``) and printed as a table.

``budget`` (the default): every run gets the same wall-clock budget of training, ``--minutes`` (default 10), or
the same number of epochs, ``--epochs``:

- ``hf-vit``: the peer, Hugging Face's ``ViTForImageClassification`` of ``ours-vit``'s shape (patch 4, D 64, 4
  layers, 4 heads, MLP 128: 139,018 parameters), built from ``llmdocs.interop.hf_vit.config_to_hf`` with its own
  initialisation (no download), trained by our loop on the same batches with the same recipe;
- ``plain-cnn``: the other peer, a plain two-convolution network (``PlainCNN``: conv 32 - pool - conv 64 - pool -
  dropout - fc 128 - fc 10, 421,642 parameters), the same loop, batches and recipe;
- ``ours-vit``: ``llmdocs.models.vit.ViT`` (the ``fashion_mnist`` preset) with ``examples/train_vit.py``'s recipe;
- ``ours-vit-tuned``: the same ViT with our best recipe, given as ``train_vit.py`` flags by ``--run-flags``
  (default: random crops and mirror images, ``--augment --flip``; the chapter's record used patches of 7 pixels,
  mirror images and shifts of up to one pixel, ``--patch-size 7 --flip --augment --crop-padding 1``);
- ``ours-cnn``: ``llmdocs.models.resnet.ResNet`` (the ``fashion_mnist`` preset, 174,970 parameters).

``data-hunger``: ``ours-vit``, ``ours-vit-aug`` (the same, ``--augment --flip``) and ``ours-cnn`` on stratified,
nested subsets of ``--sizes`` training images (1,000, 5,000, 20,000 and 60,000: the whole training split, no
validation hold-out), each for the same number of optimizer steps, ``--steps`` (2,340 = 5 epochs of 60,000). Every
point gets the same compute, so along the curve only the number of different images changes: 1,000 images are seen
334 times each, 60,000 five times. (Epochs fixed instead would give the small sets almost no training at all.)

``patch-size``: ``ours-vit`` with patches of 4, 7 and 14 pixels (``--patch-sizes``): 49, 16 or 4 patches, sequences
of 50, 17 and 5 tokens, the same epochs (``train_vit.py``'s 10, or ``--epochs``); the cost of attention falls with
the square of the sequence length, the patch embedding grows with the patch area.

The recipe is ``examples/train_vit.py``'s, imported from it: cross-entropy, AdamW (betas 0.9/0.999, weight decay
0.05 on matrices), peak learning rate 3e-3, batch 128, gradient clipping at 1.0, a linear warm-up over the first 10%
then a cosine decay to 0 (a one-cycle shape), standardised pixels; its data split (6,000 training images held out
for the per-epoch validation curve, the 10,000 test images scored once at the end) and its ``predict``. With a
budget the schedule runs on the clock instead of the step count (``BudgetSchedule``): how many steps fit into ten
minutes is known only when they are spent, on a shared machine above all, and a step schedule cut short by the
budget would stop before its learning rate has come down.

What each run reports: test accuracy, parameters, ``train_seconds`` (wall-clock of the training steps: what the
budget limits) and ``cpu_seconds`` (the process's CPU time over them, summed over threads), both without the
per-epoch validation passes, which are timed apart (``validation_seconds``): drawing the curve costs a slow model
more, and is not part of its training. Also the training images/s (median of the logged windows), the inference
images/s (``train_vit.predict`` over the test set: batches of ``--eval-batch-size``, the same threads, the first
batch run twice as a warm-up), the validation curve per epoch (with the training seconds at each point), the
training loss, and the load average before and after the run (the machine may be shared).

Usage:
    python examples/benchmarks/vit_vs_cnn.py --json llmdocs/records/vit_fashion_mnist_budget.json \
        --run-flags "ours-vit-tuned=--patch-size 7 --flip --augment --crop-padding 1"  # 5 x 10 min, ~55 min
    python examples/benchmarks/vit_vs_cnn.py --epochs 5 --runs hf-vit plain-cnn ours-vit          # the peers' 5 epochs
    python examples/benchmarks/vit_vs_cnn.py --run-flags "ours-vit-tuned=--augment --flip --pool mean"
    python examples/benchmarks/vit_vs_cnn.py --run-flags "ours-cnn=--widths 16 32 64" --runs ours-cnn
    python examples/benchmarks/vit_vs_cnn.py --json R.json --resume                 # continue an interrupted experiment
    python examples/benchmarks/vit_vs_cnn.py --json R.json --resume --redo ours-vit-tuned \
        --run-flags "ours-vit-tuned=--pool mean"                                     # one run again, other flags
    python examples/benchmarks/vit_vs_cnn.py --experiment data-hunger --json llmdocs/records/vit_data_hunger.json
    python examples/benchmarks/vit_vs_cnn.py --experiment patch-size --json llmdocs/records/vit_patch_size.json
    python examples/benchmarks/vit_vs_cnn.py --smoke --dataset digits                              # seconds
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import importlib.metadata
import importlib.util
import json
import math
import os
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the peer is built from a config: never the network

import torch
from torch import Tensor, nn
from torch.optim.lr_scheduler import LambdaLR

from llmdocs.data.image_batches import ImageBatches
from llmdocs.data.image_dataset import ImageDataset
from llmdocs.data.images import IMAGE_ATTRIBUTIONS, IMAGE_DATASETS, IMAGE_SHAPES
from llmdocs.interop.hf_vit import config_to_hf
from llmdocs.models.vit import ViTConfig
from llmdocs.profiling import count_parameters, machine_description
from llmdocs.serialization import save_pretrained
from llmdocs.training import TrainConfig, resolve_device, seed_everything, train
from llmdocs.training.optim import build_adamw

EXPERIMENTS: dict[str, tuple[str, ...]] = {  # experiment -> its runs, in order (the default of --runs)
    "budget": ("hf-vit", "plain-cnn", "ours-vit", "ours-vit-tuned", "ours-cnn"),
    "data-hunger": ("ours-vit", "ours-vit-aug", "ours-cnn"),
    "patch-size": ("ours-vit",),
}
RUNS = ("hf-vit", "plain-cnn", "ours-vit", "ours-vit-tuned", "ours-vit-aug", "ours-cnn")
VIT_RUNS = ("hf-vit", "ours-vit", "ours-vit-tuned", "ours-vit-aug")  # the runs a patch size applies to
DEFAULT_RUN_FLAGS: dict[str, str] = {  # run -> train_vit.py flags on top of its defaults
    "ours-vit-tuned": "--augment --flip",
    "ours-vit-aug": "--augment --flip",
}
SET_BY_THE_BENCHMARK = ("--dataset", "--model", "--seed", "--device", "--threads", "--smoke", "--out-dir", "--resume",
                        "--minutes", "--record", "--export", "--no-progress", "--eval-batch-size", "--data-dir",
                        "--epochs", "--train-size", "--val-size", "--patch-size")  # fmt: skip
"""train_vit.py flags that ``--run-flags`` may not give: the benchmark sets them the same for every run
(``--patch-size`` only in the patch-size experiment, which varies it; elsewhere a run may choose its patches)."""
MINUTES, SMOKE_MINUTES = 10.0, 0.01  # default budget of each run in the budget experiment
SIZES, SMOKE_SIZES = (1_000, 5_000, 20_000, 60_000), (64, 128)
STEPS, SMOKE_STEPS = 2_340, 4  # data hunger: 5 epochs of the 60,000 training images (468 batches of 128 each)
PATCH_SIZES = {28: (4, 7, 14), 8: (2, 4, 8)}  # image side -> the patch sizes compared by default
MAX_STEPS_PER_SECOND = 1_000  # a bound on the steps of a budgeted run; the budget ends it long before
RECIPE = ("batch_size", "lr", "warmup", "weight_decay", "grad_clip")  # train_vit.py's flags every run shares
WIDTHS = (8, 9, 8, 8, 7, 8, 8)  # of the table's columns


def load_train_script() -> ModuleType:
    """``examples/train_vit.py`` as a module: the benchmark uses its recipe, data and scoring, not copies."""
    path = Path(__file__).resolve().parents[1] / "train_vit.py"
    spec = importlib.util.spec_from_file_location("train_vit", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["train_vit"] = module
    spec.loader.exec_module(module)
    return module


# ---- the peers ------------------------------------------------------------------------------------------------------


class PlainCNN(nn.Module):
    """The peer CNN: two 3 x 3 convolutions, each followed by ReLU and a 2 x 2 max-pool, then two linear layers.

        conv 32 - ReLU - pool - conv 64 - ReLU - pool - dropout - fc 128 - ReLU - fc n_classes

    The network of many PyTorch and Keras tutorials: no batch norm, no shortcut, PyTorch's default initialisation.
    At 28 x 28 the last feature map is 64 x 7 x 7, so the first linear layer holds 3,136 x 128 of its 421,642
    parameters.

    Args:
        n_channels: C of the input images.
        image_size: side of the (square) images; each pool halves it (rounding down).
        n_classes: logits of the head.
        dropout: probability of dropping a feature before the first linear layer.

    Shape:
        images (B, C, H, W) -> logits (B, n_classes).

    Examples:
        >>> count_parameters(PlainCNN())
        421642
        >>> PlainCNN(image_size=8)(torch.zeros(2, 1, 8, 8)).shape
        torch.Size([2, 10])
    """

    def __init__(self, n_channels: int = 1, image_size: int = 28, n_classes: int = 10, dropout: float = 0.25) -> None:
        super().__init__()
        side = image_size // 2 // 2  # two 2 x 2 max-pools
        if side < 1:
            raise ValueError(f"image_size={image_size} is too small for two 2 x 2 max-pools (at least 4 pixels)")
        self.features = nn.Sequential(
            nn.Conv2d(n_channels, 32, kernel_size=3, padding=1),  # (B, 32, H, W)
            nn.ReLU(),
            nn.MaxPool2d(2),  # (B, 32, H/2, W/2)
            nn.Conv2d(32, 64, kernel_size=3, padding=1),  # (B, 64, H/2, W/2)
            nn.ReLU(),
            nn.MaxPool2d(2),  # (B, 64, H/4, W/4)
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),  # (B, 64 * side * side)
            nn.Dropout(dropout),
            nn.Linear(64 * side * side, 128),
            nn.ReLU(),
            nn.Linear(128, n_classes),  # (B, n_classes)
        )

    def forward(self, images: Tensor) -> Tensor:
        """Class logits (B, n_classes) of images (B, C, H, W)."""
        return self.classifier(self.features(images))


class HFLogits(nn.Module):
    """A Hugging Face image classifier as a function ``images -> logits``, so our loss and ``predict`` take it.

    Args:
        hf_model: e.g. a ``transformers.ViTForImageClassification`` (kept as ``self.hf``).
    """

    def __init__(self, hf_model: nn.Module) -> None:
        super().__init__()
        self.hf = hf_model

    def forward(self, images: Tensor) -> Tensor:
        """Logits (B, n_classes) of images (B, C, H, W)."""
        return self.hf(pixel_values=images).logits


def hf_vit(config: ViTConfig) -> HFLogits:
    """Hugging Face's ``ViTForImageClassification`` of the same shape as our ViT of ``config``, built from a config
    (its own initialisation, no download), wrapped to return logits."""
    from transformers import ViTForImageClassification
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        return HFLogits(ViTForImageClassification(config_to_hf(config)))
    finally:  # the process's setting, as it was (this runs inside the tests' process too)
        hf_logging.set_verbosity(verbosity)


# ---- the learning rate of a wall-clock budget -----------------------------------------------------------------------


class BudgetSchedule:
    """The learning-rate factor of a wall-clock budget: a linear warm-up over the first ``warmup`` of the budget,
    then a cosine decay that reaches 0 when the budget is spent (the one-cycle shape, on the clock).

        f = min(1, elapsed / budget)
        factor = f / w                                  if f < w
               = (1 + cos(pi (f - w) / (1 - w))) / 2     otherwise

    A ``LambdaLR`` calls it after every step (the step number is not used). The clock starts when the schedule is
    built: build it right before training. The first step, at f = 0, runs at a learning rate of 0.

    Args:
        seconds: the budget.
        warmup: fraction of the budget spent warming up, in [0, 1).
        clock: seconds of a monotonic clock (``time.perf_counter``; a clock that pauses during validation, or a
            fake one in tests).

    References:
        Li, Yumer and Ramanan, "Budgeted Training: Rethinking Deep Neural Network Training Under Resource
        Constraints", ICLR 2020 (schedules that decay to 0 at the end of the budget).

    Examples:
        >>> seconds = [0.0]  # a fake clock
        >>> schedule = BudgetSchedule(100.0, warmup=0.1, clock=lambda: seconds[0])
        >>> factors = []
        >>> for t in (5.0, 10.0, 55.0, 100.0, 130.0):
        ...     seconds[0] = t
        ...     factors.append(round(schedule(0), 3))
        >>> factors  # half-way up the warm-up, the peak, half-way down the cosine, the end, past the end
        [0.5, 1.0, 0.5, 0.0, 0.0]
    """

    def __init__(self, seconds: float, warmup: float, clock: Callable[[], float] = time.perf_counter) -> None:
        if not (math.isfinite(seconds) and seconds > 0):
            raise ValueError(f"seconds must be a positive number, got {seconds!r}")
        if not 0.0 <= warmup < 1.0:
            raise ValueError(f"warmup must be a fraction in [0, 1), got {warmup!r}")
        self.seconds, self.warmup, self.clock = float(seconds), float(warmup), clock
        self.start = clock()

    def fraction(self) -> float:
        """The fraction of the budget spent, in [0, 1]."""
        return min(1.0, max(0.0, (self.clock() - self.start) / self.seconds))

    def __call__(self, step: int) -> float:
        f, w = self.fraction(), self.warmup
        if f < w:
            return f / w
        return 0.5 * (1.0 + math.cos(math.pi * (f - w) / (1.0 - w)))


# ---- one run --------------------------------------------------------------------------------------------------------


def build_run_model(run: str, args: argparse.Namespace, script: ModuleType) -> nn.Module:
    """The model of ``run``: ours from ``train_vit.py``'s config, the peers from the plain ViT's config."""
    config = script.model_config(args)
    if run == "hf-vit":
        return hf_vit(config)
    if run == "plain-cnn":
        C, side, _ = IMAGE_SHAPES[args.dataset]
        return PlainCNN(n_channels=C, image_size=side, n_classes=config.n_classes)
    return script.build_model(config)


def train_and_test(
    model: nn.Module,
    args: argparse.Namespace,
    data: dict[str, ImageDataset],
    script: ModuleType,
    *,
    minutes: float | None = None,
    steps: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train ``model`` with ``train_vit.py``'s recipe ``args`` on ``data``, then score it on the test images.

    Args:
        model: any module ``images (B, C, H, W) -> logits (B, n_classes)``.
        args: ``train_vit.parse_args`` output: the recipe, augmentation, epochs and evaluation batch size.
        data: ``train_vit.prepare_data`` output.
        script: the ``train_vit`` module.
        minutes: a wall-clock budget of training (the schedule follows the clock); None: a step schedule.
        steps: optimizer steps of a step schedule (default: ``args.epochs`` epochs).
        progress: show the training loop's bar.

    Returns:
        The run's figures (see the module docstring).
    """
    device = resolve_device(args.device)
    model.to(device)
    amp = device.type == "cuda" if args.amp is None else args.amp  # as train_vit.py decides it
    if args.channels_last:
        model.to(memory_format=torch.channels_last)
    precision = {"amp": amp, "channels_last": args.channels_last}
    batches = ImageBatches(
        data["train"],
        args.batch_size,
        seed=args.seed,
        crop_padding=args.crop_padding if args.augment else 0,
        flip=args.flip,
    )
    per_epoch = len(batches)
    budget = 60.0 * minutes if minutes else None
    log_every = max(1, per_epoch // 4)  # a loss point every quarter epoch
    if budget is not None:
        steps = max(2, math.ceil(MAX_STEPS_PER_SECOND * budget))
    elif steps is not None:
        log_every = max(1, steps // 50)  # fixed steps, maybe hundreds of tiny epochs: 50 loss points
    else:
        steps = args.epochs * per_epoch
    validation = data["validation"]
    paused = {"wall": 0.0, "cpu": 0.0}  # spent validating: outside the budget and the training times

    def clock() -> float:
        return time.perf_counter() - paused["wall"]

    def evaluate(model: nn.Module, step: int) -> dict[str, float]:
        if not len(validation):
            return {}
        elapsed = clock() - started
        wall, cpu = time.perf_counter(), time.process_time()
        predictions, loss, _ = script.predict(model, validation, args.eval_batch_size, **precision)
        accuracy = (predictions == validation.labels).float().mean().item()
        paused["wall"] += time.perf_counter() - wall
        paused["cpu"] += time.process_time() - cpu
        return {"val_loss": loss, "val_accuracy": accuracy, "train_seconds": elapsed}

    train_config = TrainConfig(
        steps=steps,
        max_seconds=budget,
        lr=args.lr,
        warmup=0 if budget else int(args.warmup * steps),
        schedule="cosine",
        min_lr_ratio=0.0,
        weight_decay=args.weight_decay,
        betas=(0.9, 0.999),
        grad_clip=args.grad_clip or None,
        log_every=log_every,
        eval_every=per_epoch if len(validation) else 0,
        seed=args.seed,
        device=str(device),
    )
    optimizer = scheduler = None
    if budget is not None:
        optimizer = build_adamw(model, args.lr, args.weight_decay, (0.9, 0.999))
        scheduler = LambdaLR(optimizer, BudgetSchedule(budget, args.warmup, clock))
    wall, cpu = time.perf_counter(), time.process_time()
    started = clock()
    history = train(
        model,
        batches,
        functools.partial(script.classification_loss, **precision),
        train_config,
        optimizer=optimizer,
        scheduler=scheduler,
        evaluate=evaluate,
        progress=progress,
        clock=clock,
    )
    wall_seconds, cpu_seconds = time.perf_counter() - wall, time.process_time() - cpu
    predictions, test_loss, images_per_s = script.predict(model, data["test"], args.eval_batch_size, **precision)
    steps_done = history[-1]["step"] if history else 0
    logged = [row for row in history if "tokens_per_s" in row]
    curve = [
        {
            "step": row["step"],
            "epoch": round(row["step"] / per_epoch, 3),
            "train_seconds": round(row["train_seconds"], 2),
            "val_loss": round(row["val_loss"], 4),
            "val_accuracy": row["val_accuracy"],
        }
        for row in history
        if "val_accuracy" in row
    ]
    labels = data["test"].labels
    return {
        "test_accuracy": (predictions == labels).float().mean().item(),
        "test_loss": test_loss,
        "val_accuracy": curve[-1]["val_accuracy"] if curve else None,
        "params": count_parameters(model),
        "train_images": len(data["train"]),
        "val_images": len(validation),
        "test_images": len(data["test"]),
        "augment": args.augment,
        "flip": args.flip,
        "schedule": "budget" if budget else "steps",
        "budget_seconds": budget,
        "steps_per_epoch": per_epoch,
        "steps": None if budget else steps,
        "steps_done": steps_done,
        "epochs_done": round(steps_done / per_epoch, 3),
        "train_seconds": round(wall_seconds - paused["wall"], 2),  # the training steps: what a budget limits
        "cpu_seconds": round(cpu_seconds - paused["cpu"], 2),  # process CPU time, summed over threads
        "validation_seconds": round(paused["wall"], 2),
        "seconds_per_epoch": round((wall_seconds - paused["wall"]) / max(steps_done / per_epoch, 1e-9), 2),
        "train_images_per_s": round(statistics.median(r["tokens_per_s"] for r in logged), 1) if logged else None,
        "inference_images_per_s": round(images_per_s, 1),
        "final_train_loss": round(logged[-1]["loss"], 4) if logged else None,
        # rows: true class, columns: predicted class (train_vit.py's results.json has the same)
        "confusion_matrix": script.confusion_matrix(predictions, labels, len(data["test"].class_names)).tolist(),
        "curve": curve,
        "train_loss": [[row["step"], round(row["loss"], 4)] for row in logged],
    }


def export_model(
    script: ModuleType,
    folder: Path,
    model: nn.Module,
    args: argparse.Namespace,
    data: dict[str, ImageDataset],
    result: dict[str, Any],
    record: dict[str, Any],
) -> None:
    """Save a trained ``ours-*`` model as ``train_vit.py --export`` does (``save_pretrained``: config, safetensors
    weights and a meta with the class names, the pixel statistics and this run's figures), atomically."""
    results = {k: v for k, v in result.items() if k not in ("curve", "train_loss")}
    call = (record.get("commands") or [record])[-1]  # the call that trained it: a resumed record lists every call
    results |= {"command": call["command"], "machine": call["machine"], "dataset": args.dataset}
    meta = script.model_meta(results, data["train"].class_names, args.dataset)
    save_pretrained(folder, model.cpu(), script.model_config(args), meta)


# ---- flags ----------------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--experiment", choices=sorted(EXPERIMENTS), default="budget", help="what to measure (default: %(default)s)"
    )
    p.add_argument("--runs", nargs="+", choices=RUNS, default=None, metavar="RUN",
                   help=f"runs, in order, among {', '.join(RUNS)} (default: the experiment's, see above)")  # fmt: skip
    p.add_argument(
        "--dataset", choices=IMAGE_DATASETS, default="fashion-mnist", help="images to classify (default: %(default)s)"
    )
    p.add_argument("--minutes", type=float, default=None,
                   help=f"wall-clock budget of each run's training (budget: default {MINUTES:g}; patch-size: "
                        "instead of epochs)")  # fmt: skip
    p.add_argument("--epochs", type=int, default=None,
                   help="epochs of each run instead of a budget (patch-size: default train_vit.py's)")  # fmt: skip
    p.add_argument("--sizes", type=int, nargs="+", default=None,
                   help=f"data-hunger: training-set sizes (default {' '.join(map(str, SIZES))})")  # fmt: skip
    p.add_argument("--steps", type=int, default=None,
                   help=f"data-hunger: optimizer steps of every run (default {STEPS})")  # fmt: skip
    p.add_argument("--patch-sizes", type=int, nargs="+", default=None,
                   help="patch-size: patch sides (default 4 7 14 on 28 x 28 images, 2 4 8 on 8 x 8)")  # fmt: skip
    p.add_argument("--run-flags", nargs="+", default=[], metavar="RUN=FLAGS",
                   help="train_vit.py flags of an ours-* run (peers follow ours-vit's), e.g. "
                        f"'ours-vit-tuned=--augment --flip --pool mean'; defaults: {DEFAULT_RUN_FLAGS}")  # fmt: skip
    p.add_argument(
        "--eval-batch-size",
        type=int,
        default=500,
        help="images per batch when scoring and timing (default: %(default)s)",
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (default: %(default)s)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's choice: the cores)")
    p.add_argument(
        "--seed", type=int, default=0, help="seed of the weights, batch order and augmentation (default: %(default)s)"
    )
    p.add_argument("--note", default="", help="free text stored in the record, e.g. what else ran")
    p.add_argument("--json", default=None, help="write the record to this file (after every run, atomically)")
    p.add_argument("--resume", action="store_true",
                   help="continue the experiment recorded in --json: runs already in it are kept, not run again "
                        "(the flags must be those of the record, --no-progress and --note aside)")  # fmt: skip
    p.add_argument("--redo", nargs="+", default=[], metavar="RUN",
                   help="with --resume: measure these runs again, with the --run-flags given now (the others' "
                        "flags must be the record's); the results they replace stay in the record, under "
                        "'replaced'")  # fmt: skip
    p.add_argument("--export-dir", default=None,
                   help="save each trained ours-* model to EXPORT_DIR/<run> (save_pretrained; with a variant: "
                        "<run>-<variant>), e.g. to ship it")  # fmt: skip
    p.add_argument("--no-progress", action="store_true", help="no tqdm bars")
    p.add_argument("--smoke", action="store_true", help="tiny models, a few images, a few steps: seconds (tests)")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The benchmark's flags, checked, and every run's ``train_vit.py`` arguments parsed before any work."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.runs = args.runs or list(EXPERIMENTS[args.experiment])
    if len(set(args.runs)) != len(args.runs):
        parser.error(f"--runs names a run twice: {args.runs}")
    if args.minutes is not None and args.epochs is not None:
        parser.error("give --minutes (a budget) or --epochs, not both")
    if args.minutes is not None and not 0.0 < args.minutes < float("inf"):
        parser.error(f"--minutes must be a positive number, got {args.minutes}")
    if args.experiment == "data-hunger" and (args.minutes is not None or args.epochs is not None):
        parser.error("data-hunger gives every run the same --steps, not --minutes or --epochs")
    if args.experiment != "data-hunger" and (args.sizes is not None or args.steps is not None):
        parser.error("--sizes and --steps are for --experiment data-hunger")
    if args.experiment != "patch-size" and args.patch_sizes is not None:
        parser.error("--patch-sizes is for --experiment patch-size")
    if args.experiment == "patch-size" and any(run not in VIT_RUNS for run in args.runs):
        parser.error(f"patch-size compares ViTs: --runs must be among {VIT_RUNS}")
    if args.experiment == "budget" and args.minutes is None and args.epochs is None:
        args.minutes = SMOKE_MINUTES if args.smoke else MINUTES
    _, side, _ = IMAGE_SHAPES[args.dataset]
    args.sizes = args.sizes or list(SMOKE_SIZES if args.smoke else SIZES)
    args.steps = args.steps or (SMOKE_STEPS if args.smoke else STEPS)
    args.patch_sizes = args.patch_sizes or list(PATCH_SIZES.get(side, (2, 4)))
    for name in ("epochs", "steps", "eval_batch_size"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.threads < 0 or args.seed < 0:
        parser.error("--threads and --seed must be >= 0")
    flags = dict(DEFAULT_RUN_FLAGS)
    for item in args.run_flags:
        run, sep, value = item.partition("=")
        if not sep or run not in RUNS or not run.startswith("ours-"):
            parser.error(f"--run-flags wants ours-RUN=FLAGS with RUN one of {RUNS[2:]}, got {item!r}")
        flags[run] = value
    for run, value in flags.items():
        given = {token.split("=", 1)[0] for token in shlex.split(value) if token.startswith("--")}
        refused = set(SET_BY_THE_BENCHMARK) - ({"--patch-size"} if args.experiment != "patch-size" else set())
        fixed = sorted(given & refused)
        if fixed:
            parser.error(f"--run-flags {run}: {', '.join(fixed)} are set by the benchmark for every run")
    args.run_flags = flags
    if args.resume and (args.json is None or not Path(args.json).is_file()):
        parser.error(f"--resume continues the record of --json, but there is none: --json {args.json}")
    if args.redo and not args.resume:
        parser.error("--redo measures runs of a record again: give --resume (and its --json) too")
    unknown = [run for run in args.redo if run not in args.runs]
    if unknown:
        parser.error(f"--redo: {', '.join(unknown)} not among the runs of this experiment, {args.runs}")
    if args.export_dir is not None and Path(args.export_dir).is_file():
        parser.error(f"--export-dir must be a folder, got the file {args.export_dir}")
    args.script = load_train_script()
    args.plan = plan_runs(args, args.script, parser.error)  # every run's train_vit.py arguments, checked now
    return args


def run_flags(args: argparse.Namespace, run: str, extra: list[str]) -> list[str]:
    """``train_vit.py``'s flags for ``run``: the peers take ``ours-vit``'s (the same shape and recipe)."""
    own = run if run.startswith("ours-") else "ours-vit"
    flags = ["--dataset", args.dataset, "--model", "cnn" if run == "ours-cnn" else "vit", "--seed", str(args.seed)]
    flags += ["--device", args.device, "--eval-batch-size", str(args.eval_batch_size)]
    flags += shlex.split(args.run_flags.get(own, "")) + extra
    return flags + (["--smoke"] if args.smoke else [])


def plan_runs(args: argparse.Namespace, script: ModuleType, error: Callable[[str], Any]) -> list[dict[str, Any]]:
    """One entry per training run: its run name, variant (a size, a patch size or None), ``train_vit.py`` flags and
    parsed arguments; ``error`` reports flags that ``train_vit.parse_args`` refuses (it has printed why)."""
    plan = []
    for run in args.runs:
        if args.experiment == "data-hunger":
            variants: list[tuple[int | None, list[str]]] = [
                (size, ["--val-size", "0", "--train-size", str(size)]) for size in args.sizes
            ]
        elif args.experiment == "patch-size":
            variants = [(p, ["--patch-size", str(p)]) for p in args.patch_sizes]
        else:
            variants = [(None, [])]
        for variant, extra in variants:
            if args.epochs is not None:
                extra = [*extra, "--epochs", str(args.epochs)]
            flags = run_flags(args, run, extra)
            try:
                parsed = script.parse_args(flags)
            except SystemExit:
                error(f"{run}: train_vit.py refuses the flags {shlex.join(flags)} (see its message above)")
            config = script.model_config(parsed)
            if run == "hf-vit" and (config.pool, config.pos_embedding) != ("cls", "learned"):
                error(
                    f"hf-vit takes ours-vit's shape, but Hugging Face's ViT has no pool={config.pool!r} or "
                    f"pos_embedding={config.pos_embedding!r}: give those flags to ours-vit-tuned"
                )
            plan.append({"run": run, "variant": variant, "flags": flags, "args": parsed})
    return plan


# ---- main -----------------------------------------------------------------------------------------------------------


def data_key(args: argparse.Namespace) -> tuple:
    """What ``train_vit.prepare_data`` depends on: runs with the same key share the loaded images."""
    return (args.dataset, args.data_dir, args.train_size, args.val_size, args.test_size, args.split_seed)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    script = args.script
    command = "python examples/benchmarks/vit_vs_cnn.py " + shlex.join(list(sys.argv[1:] if argv is None else argv))
    versions = {"torch": torch.__version__}
    if "hf-vit" in args.runs:
        versions["transformers"] = importlib.metadata.version("transformers")
    record: dict[str, Any] = {
        "command": command,
        "experiment": args.experiment,
        "machine": machine_description(),
        "threads": torch.get_num_threads(),
        "versions": versions,
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "note": args.note,
        "dataset": args.dataset,
        "source": IMAGE_ATTRIBUTIONS[args.dataset],
        "seed": args.seed,
        "budget_minutes": args.minutes,
        "epochs": args.epochs,
        "steps": args.steps if args.experiment == "data-hunger" else None,
        "sizes": args.sizes if args.experiment == "data-hunger" else None,
        "patch_sizes": args.patch_sizes if args.experiment == "patch-size" else None,
        "run_flags": {run: args.run_flags.get(run if run.startswith("ours-") else "ours-vit", "") for run in args.runs},
        "recipe": {k: getattr(args.plan[0]["args"], k) for k in RECIPE} | {"betas": [0.9, 0.999]},
        "results": {},
    }
    record["runs"] = list(args.runs)
    lines = [header_line()]
    if args.resume:
        record, lines = resume_record(Path(args.json), record, command, redo=args.redo)
    loaded: dict[tuple, dict[str, ImageDataset]] = {}
    print(f"{args.experiment}: {len(args.plan)} run(s) on {torch.get_num_threads()} thread(s); {record['machine']}")
    print("\n".join(lines), flush=True)
    for entry in args.plan:
        run, variant, run_args = entry["run"], entry["variant"], entry["args"]
        done = record["results"].get(run)
        if done is not None and (variant is None or str(variant) in done):
            continue  # --resume: measured by an earlier call, its line is in the table already
        key = data_key(run_args)
        if key not in loaded:
            loaded[key] = script.prepare_data(run_args)
        seed_everything(run_args.seed)  # the same initialisation stream for every run
        model = build_run_model(run, run_args, script)
        load_before = os.getloadavg()
        result = train_and_test(
            model,
            run_args,
            loaded[key],
            script,
            minutes=args.minutes,
            steps=args.steps if args.experiment == "data-hunger" else None,
            progress=not args.no_progress,
        )
        result["model"] = type(model.hf if isinstance(model, HFLogits) else model).__name__
        result["library"] = "transformers" if run == "hf-vit" else "torch.nn" if run == "plain-cnn" else "llmdocs"
        if run != "plain-cnn":
            config = script.model_config(run_args)
            result["model_config"] = dataclasses.asdict(config)
            if run != "ours-cnn":
                result["patch_size"], result["sequence_length"] = config.patch_size, config.n_tokens
        if run == "hf-vit":
            result["attn_implementation"] = model.hf.config._attn_implementation
        result["load_average_before"] = [round(x, 2) for x in load_before]
        result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
        result["train_vit_flags"] = shlex.join(entry["flags"])
        if args.export_dir is not None and run.startswith("ours-"):
            folder = Path(args.export_dir) / (run if variant is None else f"{run}-{variant}")
            export_model(script, folder, model, run_args, loaded[key], result, record)
            result["exported_to"] = str(folder)
        if variant is None:
            record["results"][run] = result
            label = run
        else:
            record["results"].setdefault(run, {})[str(variant)] = result
            label = f"{run} {'n' if args.experiment == 'data-hunger' else 'p'}={variant}"
        line = (
            f"{label:24} {result['test_accuracy']:8.2%} {result['params']:9,} {result['train_seconds']:8.1f} "
            f"{result['cpu_seconds']:8.1f} {result['epochs_done']:7.2f} {result['train_images_per_s'] or 0:8,.0f} "
            f"{result['inference_images_per_s']:8,.0f}  {load_before[0]:.2f} -> {os.getloadavg()[0]:.2f}"
        )
        lines.append(line)
        print(line, flush=True)
        record["table"] = lines
        if args.json:  # after every run: an interrupted experiment keeps what it measured (--resume)
            write_record(Path(args.json), record)
    record["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    record["table"] = lines
    if args.json:
        write_record(Path(args.json), record)
    return record


def header_line() -> str:
    names = ("test acc", "params", "train s", "CPU s", "epochs", "train/s", "infer/s")
    return f"{'run':24} " + " ".join(f"{name:>{width}}" for name, width in zip(names, WIDTHS, strict=True)) + "  load"


RESUME_KEYS = ("experiment", "runs", "dataset", "seed", "budget_minutes", "epochs", "steps", "sizes", "patch_sizes",
               "run_flags", "recipe", "threads", "versions")  # fmt: skip
"""What a resumed experiment must share with its record: every run of one record is measured the same way."""


def resume_record(
    path: Path, fresh: dict[str, Any], command: str, redo: list[str] | None = None
) -> tuple[dict[str, Any], list[str]]:
    """The record at ``path`` to continue, and its table so far; SystemExit if its settings differ from ``fresh``'s.

    Each call is kept in ``"commands"`` (with its start time and machine), so the record says which runs came from
    which call; a run's own ``load_average_before``/``after`` say how busy the machine was meanwhile. The runs in
    ``redo`` are taken out of the results, to be measured again, with the flags of ``fresh`` (theirs alone may
    differ from the record's); what they had measured moves to ``"replaced"``, with the flags that measured it, so
    that a record shows every recipe that was tried, not only the one that won.
    """
    redo = list(redo or [])
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise SystemExit(f"--resume: cannot read the record {path}: {error}") from None
    if not isinstance(record, dict) or not isinstance(record.get("results"), dict):
        raise SystemExit(f"--resume: {path} is not a record of this benchmark")

    def comparable(key: str, value: Any) -> Any:  # the redone runs' flags may change
        if key == "run_flags" and isinstance(value, dict):
            return {run: flags for run, flags in value.items() if run not in redo}
        return value

    differ = [key for key in RESUME_KEYS if comparable(key, record.get(key)) != comparable(key, fresh[key])]
    if differ:
        details = "; ".join(f"{key}: record {record.get(key)!r}, now {fresh[key]!r}" for key in differ)
        raise SystemExit(f"--resume: {path} was measured with other settings ({details}); start a new --json")
    calls = record.get("commands") or [{"command": record["command"], "started": record["started"]}]
    calls.append({"command": command, "started": fresh["started"], "machine": fresh["machine"], "note": fresh["note"]})
    record["commands"], record["finished"] = calls, None
    lines = record.get("table") or [header_line()]
    for run in redo:
        if run in record["results"]:
            replaced = {"run": run, "run_flags": record["run_flags"].get(run), "replaced_by": command}
            record.setdefault("replaced", []).append(replaced | {"results": record["results"].pop(run)})
            lines = [line for line in lines if line.split(" ", 1)[0] != run]
    record["run_flags"] = fresh["run_flags"]
    return record, lines


def write_record(path: Path, record: dict[str, Any]) -> None:
    """Write ``record`` as JSON to ``path`` atomically: a crash leaves the old file or the new one, never half."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


if __name__ == "__main__":
    main()
