"""The training loop: a few small functions that return a history (no callbacks, no framework).

One optimizer **step** consumes `grad_accum` micro-batches. Micro-batch `i` comes from `get_batch(i)`, a
*pure function of its index*: the data position is then just `step * grad_accum`, which goes into every
checkpoint together with the RNG states, so a resumed run reads exactly the batches the unbroken run would
have read and ends with bit-identical weights.
[`IndexedBatches`][llmdocs.data.batches.IndexedBatches] builds such a function from tensors (shuffled per
epoch, sharded per rank).

Per step (the loop body of every LLM trainer):

1. for each micro-batch: `loss = loss_fn(model, batch) / grad_accum; loss.backward()`
   (gradients add up; under DDP they are averaged across processes on the last micro-batch);
2. clip the global gradient norm to `grad_clip`;
3. `optimizer.step()`, `scheduler.step()`, `optimizer.zero_grad()`.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim import AdamW, Optimizer
from torch.optim.lr_scheduler import LambdaLR, LRScheduler
from tqdm.auto import tqdm

from llmdocs.training.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from llmdocs.training.config import TrainConfig
from llmdocs.training.distributed import get_rank, get_world_size, unwrap_model
from llmdocs.training.metrics import append_jsonl, write_csv, write_jsonl
from llmdocs.training.schedules import inverse_sqrt_lambda, warmup_cosine_lambda
from llmdocs.training.seed import resolve_device, seed_everything

__all__ = ["build_adamw", "build_scheduler", "mean_loss", "move_to_device", "train"]

Batch = Any
"""Whatever `get_batch` returns and `loss_fn` accepts: a tensor, or a tuple/list/dict of tensors."""
LossFn = Callable[[nn.Module, Batch], "torch.Tensor | tuple[torch.Tensor, int]"]


def build_adamw(
    model: nn.Module,
    lr: float,
    weight_decay: float = 0.1,
    betas: tuple[float, float] = (0.9, 0.95),
    eps: float = 1e-8,
) -> AdamW:
    """AdamW with two parameter groups: weight decay on matrices (dim >= 2), none on biases and norms.

    Decaying a LayerNorm gain or a bias towards 0 only hurts; decaying weight matrices and embeddings is
    the regulariser (the GPT-2/3, nanoGPT recipe).

    Args:
        model: The model (only parameters with `requires_grad` are optimised).
        lr: Peak learning rate.
        weight_decay: Decoupled weight decay of the matrices.
        betas: Moment decay rates.
        eps: Denominator epsilon.

    Returns:
        The optimizer.

    Examples:
        >>> model = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))
        >>> opt = build_adamw(model, lr=1e-3)
        >>> [(len(g["params"]), g["weight_decay"]) for g in opt.param_groups]
        [(1, 0.1), (3, 0.0)]
    """
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [{"params": group, "weight_decay": wd} for group, wd in ((decay, weight_decay), (no_decay, 0.0)) if group]
    return AdamW(groups, lr=lr, betas=betas, eps=eps, fused=_fused_adamw_supported(params) or None)


def _fused_adamw_supported(params: list[Tensor]) -> bool:
    """Whether AdamW's fused kernel (one call for all tensors) runs here: CUDA, or CPU from torch 2.4 on.

    On a CPU the default per-tensor loop costs about 10% of a small GPT's step; the fused kernel does the same
    update (up to float rounding) in one pass over each tensor.
    """
    cpu_ok = tuple(int(part) for part in torch.__version__.split(".")[:2]) >= (2, 4)
    devices = {p.device.type for p in params}
    floating = all(p.is_floating_point() for p in params)
    return floating and (devices == {"cuda"} or (cpu_ok and devices == {"cpu"}))


def build_scheduler(optimizer: Optimizer, config: TrainConfig) -> LambdaLR:
    """The `LambdaLR` named by `config.schedule`, peaking at the optimizer's learning rate.

    Args:
        optimizer: The optimizer.
        config: Uses `schedule`, `warmup`, `steps` and `min_lr_ratio`.

    Returns:
        The scheduler.

    Examples:
        >>> opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
        >>> sched = build_scheduler(opt, TrainConfig(steps=10, warmup=4, schedule="inverse_sqrt"))
        >>> lrs = [opt.param_groups[0]["lr"]]
        >>> for _ in range(7):
        ...     opt.step()
        ...     sched.step()
        ...     lrs.append(round(opt.param_groups[0]["lr"], 3))
        >>> lrs
        [0.25, 0.5, 0.75, 1.0, 0.894, 0.816, 0.756, 0.707]
    """
    if config.schedule == "cosine":
        lr_lambda = warmup_cosine_lambda(config.warmup, config.steps, config.min_lr_ratio)
    elif config.schedule == "inverse_sqrt":
        lr_lambda = inverse_sqrt_lambda(d_model=1, warmup=config.warmup, normalize=True)
    else:
        warmup = config.warmup

        def lr_lambda(step: int) -> float:
            return min(1.0, (step + 1) / warmup) if warmup else 1.0

    return LambdaLR(optimizer, lr_lambda)


def move_to_device(batch: Batch, device: torch.device) -> Batch:
    """Move every tensor of a (nested tuple/list/dict) batch to `device`.

    Args:
        batch: A tensor or a container of tensors (other values pass through).
        device: The target device.

    Returns:
        The same structure on `device`.

    Examples:
        >>> move_to_device({"x": torch.zeros(2), "n": 3}, torch.device("cpu"))["x"].device
        device(type='cpu')
    """
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: move_to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, tuple | list):
        return type(batch)(move_to_device(v, device) for v in batch)
    return batch


@torch.no_grad()
def mean_loss(model: nn.Module, batches: Iterable[Batch], loss_fn: LossFn) -> float:
    """Average loss over a fixed set of batches, in eval mode (dropout off), without gradients.

    Each batch is weighted by its token count (see `train` for how tokens are counted), so the result is
    a per-token average.

    Args:
        model: The model.
        batches: Evaluation batches (e.g. a list, so every evaluation sees the same data).
        loss_fn: `loss_fn(model, batch) -> loss` or `(loss, n_tokens)`.

    Returns:
        The mean loss (`nan` for no batches).

    Examples:
        >>> model = nn.Linear(2, 1)
        >>> batches = [(torch.ones(4, 2), torch.zeros(4, 1))]
        >>> mse = lambda m, b: nn.functional.mse_loss(m(b[0]), b[1])
        >>> isinstance(mean_loss(model, batches, mse), float)
        True
    """
    was_training = model.training
    model.eval()
    device = _model_device(model)
    total, count = 0.0, 0
    for batch in batches:
        batch = move_to_device(batch, device)
        loss, n_tokens = _loss_and_tokens(loss_fn(model, batch), batch)
        total += loss.item() * n_tokens
        count += n_tokens
    model.train(was_training)
    return total / count if count else math.nan


def train(
    model: nn.Module,
    get_batch: Callable[[int], Batch],
    loss_fn: LossFn,
    config: TrainConfig,
    *,
    optimizer: Optimizer | None = None,
    scheduler: LRScheduler | None = None,
    evaluate: Callable[[nn.Module], dict[str, float]] | None = None,
    resume: bool | str | os.PathLike[str] = False,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Train `model` for `config.steps` optimizer steps and return the history.

    Args:
        model: The model, or a `DistributedDataParallel` wrapper (already on its device). A plain model
            is moved to `config.device`.
        get_batch: Micro-batch index -> batch, a pure function of the index (see the module docstring).
            The loop reads indices `step * grad_accum + j`; each rank must return its own shard.
        loss_fn: `loss_fn(model, batch) -> loss` (a scalar mean over tokens) or `(loss, n_tokens)`.
            Without `n_tokens`, the number of elements of the batch's first tensor is counted for the
            tokens/s figure.
        config: The run's settings.
        optimizer: Defaults to [`build_adamw`][llmdocs.training.loop.build_adamw] from `config`.
        scheduler: Defaults to [`build_scheduler`][llmdocs.training.loop.build_scheduler] from `config`.
        evaluate: Called (in eval mode, without gradients, with the unwrapped model) every
            `config.eval_every` steps and after the last one; its dict is merged into that step's row.
            Under DDP it runs on every rank.
        resume: `True` continues from the newest checkpoint in `config.out_dir/checkpoints` (starting
            fresh if there is none); a path names a checkpoint folder.
        progress: Show a tqdm bar with the loss and tokens/s (rank 0 only).

    Every RNG is seeded with `config.seed + rank` first (build the model before calling `train`); a
    resumed run then restores the RNG states of the checkpoint. Under DDP only rank 0 writes the metrics
    log and checkpoints, and a resume gives every rank rank 0's RNG state: bit-exact resumption is
    guaranteed for single-process runs (and DDP runs whose ranks draw no random numbers, e.g. no
    dropout).

    Returns:
        The history: one dict per logged step with `step`, `loss` (mean over the steps since the previous
        row), `lr`, `grad_norm` (before clipping), `tokens_per_s`, and the evaluation metrics.

    Raises:
        FileNotFoundError: If `resume` is a path without a complete checkpoint.
        ValueError: If `resume=True` without `config.out_dir`, if the checkpoint's data position does
            not fit `config.grad_accum`, or if a fresh run (no `resume`) finds checkpoints in
            `out_dir/checkpoints`.

    Examples:
        >>> _ = torch.manual_seed(0)
        >>> model = nn.Linear(3, 1)
        >>> x = torch.randn(8, 3)
        >>> y = x.sum(dim=1, keepdim=True)
        >>> mse = lambda m, b: nn.functional.mse_loss(m(b[0]), b[1])
        >>> cfg = TrainConfig(steps=30, lr=0.1, warmup=0, log_every=10, device="cpu")
        >>> history = train(model, lambda i: (x, y), mse, cfg, progress=False)
        >>> [row["step"] for row in history]
        [10, 20, 30]
        >>> history[-1]["loss"] < history[0]["loss"]
        True
    """
    rank, world_size = get_rank(), get_world_size()
    is_main = rank == 0
    if not isinstance(model, DistributedDataParallel):
        model.to(resolve_device(config.device))
    device = _model_device(model)
    seed_everything(config.seed + rank)
    if optimizer is None:
        optimizer = build_adamw(unwrap_model(model), config.lr, config.weight_decay, config.betas)
    if scheduler is None:
        scheduler = build_scheduler(optimizer, config)

    out_dir = Path(config.out_dir) if config.out_dir is not None else None
    ckpt_dir = out_dir / "checkpoints" if out_dir is not None else None
    metrics_path = out_dir / "metrics.jsonl" if out_dir is not None else None
    start, history = 0, []
    window = {"loss": 0.0, "steps": 0, "tokens": 0, "seconds": 0.0}  # since the last history row
    if resume:
        if resume is True and ckpt_dir is None:
            raise ValueError("resume=True needs config.out_dir (checkpoints live in out_dir/checkpoints)")
        source = ckpt_dir if resume is True else Path(resume)
        if resume is not True or latest_checkpoint(source) is not None:  # True: fresh if none yet
            info = load_checkpoint(source, model, optimizer, scheduler)
            start, history, window = info["step"], info["extra"]["history"], info["extra"]["window"]
            if info["extra"]["data_position"] != start * config.grad_accum:
                raise ValueError("the checkpoint was written with a different grad_accum")
    elif ckpt_dir is not None and latest_checkpoint(ckpt_dir) is not None:
        # a fresh run must not mix its checkpoints with an old run's (the newest would win on resume)
        raise ValueError(f"{ckpt_dir} already holds checkpoints: pass resume=True or a new out_dir")
    if is_main and metrics_path is not None:
        write_jsonl(metrics_path, history)  # drops rows logged after the checkpoint we resume from

    is_ddp = isinstance(model, DistributedDataParallel)
    params = [p for p in model.parameters() if p.requires_grad]
    max_norm = config.grad_clip if config.grad_clip else math.inf  # inf: measure without clipping
    bar = tqdm(total=config.steps, initial=start, disable=not (progress and is_main), dynamic_ncols=True)
    model.train()
    for step in range(start, config.steps):
        t0 = time.perf_counter()
        step_loss = torch.zeros((), device=device)
        step_tokens = 0
        for micro in range(config.grad_accum):
            batch = move_to_device(get_batch(step * config.grad_accum + micro), device)
            last = micro == config.grad_accum - 1
            # DDP all-reduces gradients in backward(); skip that on all but the last micro-batch.
            sync = model.no_sync() if is_ddp and not last else contextlib.nullcontext()
            with sync:
                loss, n_tokens = _loss_and_tokens(loss_fn(model, batch), batch)
                (loss / config.grad_accum).backward()  # sum of grads / k = grad of the mean
            step_loss += loss.detach()
            step_tokens += n_tokens
        grad_norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
        lr = optimizer.param_groups[0]["lr"]
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        done = step + 1

        stats = torch.stack([step_loss / config.grad_accum, torch.tensor(float(step_tokens))])
        if world_size > 1:  # the logged loss and throughput cover every rank
            stats = stats.to(device)
            dist.all_reduce(stats)
            stats[0] /= world_size
        window["loss"] += stats[0].item()
        window["tokens"] += int(stats[1].item())
        window["steps"] += 1
        window["seconds"] += time.perf_counter() - t0
        bar.update(1)

        row: dict[str, Any] | None = None
        if done % config.log_every == 0 or done == config.steps:
            row = {
                "step": done,
                "loss": window["loss"] / window["steps"],
                "lr": lr,
                "grad_norm": grad_norm.item(),
                "tokens_per_s": window["tokens"] / max(window["seconds"], 1e-9),
            }
            window = {"loss": 0.0, "steps": 0, "tokens": 0, "seconds": 0.0}
        if evaluate is not None and ((config.eval_every and done % config.eval_every == 0) or done == config.steps):
            plain = unwrap_model(model)
            plain.eval()
            with torch.no_grad():
                metrics = evaluate(plain)
            plain.train()
            row = {"step": done, **(row or {}), **metrics}
        if row is not None:
            history.append(row)
            if is_main and metrics_path is not None:
                append_jsonl(metrics_path, row)
            postfix = {k: f"{v:.4g}" for k, v in row.items() if k not in ("step", "tokens_per_s")}
            if "tokens_per_s" in row:
                postfix["tok/s"] = f"{row['tokens_per_s']:,.0f}"
            bar.set_postfix(postfix, refresh=False)

        if ckpt_dir is not None and (
            (config.checkpoint_every and done % config.checkpoint_every == 0) or done == config.steps
        ):
            if is_main:
                extra = {
                    "data_position": done * config.grad_accum,
                    "history": history,
                    "window": window,
                }
                save_checkpoint(
                    ckpt_dir,
                    model,
                    optimizer,
                    scheduler,
                    done,
                    extra,
                    config=config,
                    keep=config.keep_checkpoints,
                )
            if world_size > 1:
                dist.barrier()  # no rank races ahead while rank 0 writes
    bar.close()
    if is_main and out_dir is not None:
        write_csv(out_dir / "metrics.csv", history)
    return history


def _loss_and_tokens(output: torch.Tensor | tuple[torch.Tensor, int], batch: Batch) -> tuple[torch.Tensor, int]:
    """Split `loss_fn`'s output into the loss and a token count."""
    if isinstance(output, tuple):
        loss, n_tokens = output
        return loss, int(n_tokens)
    return output, _count_tokens(batch)


def _count_tokens(batch: Batch) -> int:
    """Elements of the first tensor found in the batch (the input ids, by convention)."""
    if isinstance(batch, torch.Tensor):
        return batch.numel()
    values = batch.values() if isinstance(batch, dict) else batch
    if isinstance(values, Iterable) and not isinstance(values, str):
        for value in values:
            n = _count_tokens(value)
            if n:
                return n
    return 0


def _model_device(model: nn.Module) -> torch.device:
    """Device of the model's first parameter (CPU for a model without parameters)."""
    first = next(model.parameters(), None)
    return first.device if first is not None else torch.device("cpu")
