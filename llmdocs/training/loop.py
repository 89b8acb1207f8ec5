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
3. stop with a `FloatingPointError` if the step's loss or gradient norm is NaN or infinite: before the update,
   so the weights stay those of the last good step instead of turning NaN;
4. `optimizer.step()`, `scheduler.step()`, `optimizer.zero_grad()`.

A run ends after `config.steps` steps, or earlier when `config.max_seconds` of wall-clock time are spent: it
then writes a checkpoint, and `resume=True` carries on to `config.steps` as if it had never stopped. The
optimizer and schedule come from [optim][llmdocs.training.optim], the batch plumbing and `mean_loss` from
[batch][llmdocs.training.batch].
"""

from __future__ import annotations

import contextlib
import inspect
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler
from tqdm import tqdm  # a text bar everywhere: tqdm.auto needs ipywidgets in Jupyter and warns without them

from llmdocs.training.batch import Batch, LossFn, _check_batch, _loss_and_tokens, _model_device, move_to_device
from llmdocs.training.checkpoint import checkpoint_info, latest_checkpoint, load_checkpoint, save_checkpoint
from llmdocs.training.config import RESUME_MAY_CHANGE, TrainConfig
from llmdocs.training.distributed import get_rank, get_world_size, unwrap_model
from llmdocs.training.metrics import append_jsonl, write_csv, write_jsonl
from llmdocs.training.optim import build_adamw, build_scheduler
from llmdocs.training.seed import resolve_device, seed_everything

__all__ = ["train"]


def train(
    model: nn.Module,
    get_batch: Callable[[int], Batch],
    loss_fn: LossFn,
    config: TrainConfig,
    *,
    optimizer: Optimizer | None = None,
    scheduler: LRScheduler | None = None,
    evaluate: Callable[[nn.Module, int], dict[str, float]] | None = None,
    resume: bool | str | os.PathLike[str] = False,
    progress: bool = True,
    clock: Callable[[], float] = time.perf_counter,
) -> list[dict[str, Any]]:
    """Train `model` for `config.steps` optimizer steps (or until `config.max_seconds`) and return the history.

    Args:
        model: The model, or a `DistributedDataParallel` wrapper (already on its device). A plain model
            is moved to `config.device`.
        get_batch: Micro-batch index -> batch, a pure function of the index (see the module docstring).
            The loop reads indices `step * grad_accum + j`; each rank must return its own shard.
        loss_fn: `loss_fn(model, batch) -> loss` (a scalar mean over tokens) or `(loss, n_tokens)`.
            Without `n_tokens`, the number of elements of the batch's first tensor is counted for the
            tokens/s figure.
        config: The run's settings.
        optimizer: Defaults to [`build_adamw`][llmdocs.training.optim.build_adamw] from `config`.
        scheduler: Defaults to [`build_scheduler`][llmdocs.training.optim.build_scheduler] from `config`.
        evaluate: `evaluate(model, step) -> metrics`, called (in eval mode, without gradients, with the
            unwrapped model) after step `step` (1-based, the row's `"step"`) every `config.eval_every` steps
            and after the last step of the call; its dict is merged into that step's row. Under DDP it runs
            on every rank.
        resume: `True` continues from the newest checkpoint in `config.out_dir/checkpoints` (starting
            fresh if there is none); a path names a checkpoint folder. The run continues with the checkpoint's
            settings: `config` may differ from the stored one only in
            [`RESUME_MAY_CHANGE`][llmdocs.training.config.RESUME_MAY_CHANGE] (`max_seconds`, `device`, ...).
        progress: Show a tqdm bar with the loss and tokens/s (rank 0 only).
        clock: Seconds of a monotonic clock, for tokens/s and `config.max_seconds` (tests pass a fake one).

    With `config.max_seconds`, the first step that ends past the budget is the last: the run writes a
    checkpoint there (with `out_dir`), then a final history row (with an evaluation if `evaluate` is given).
    The checkpoint holds the state of the unbroken run at that step, so `resume=True` continues it to
    `config.steps` exactly as if it had never stopped (the final row is then dropped from the log).

    Every RNG is seeded with `config.seed + rank` first (build the model before calling `train`); a
    resumed run then restores the RNG states of the checkpoint. Under DDP only rank 0 writes the metrics
    log and checkpoints, and a resume gives every rank rank 0's RNG state: bit-exact resumption is
    guaranteed for single-process runs (and DDP runs whose ranks draw no random numbers, e.g. no
    dropout).

    Returns:
        The history: one dict per logged step with `step`, `loss` (mean over the steps since the previous
        row), `lr`, `grad_norm` (before clipping), `tokens_per_s`, and the evaluation metrics; a run stopped
        by `config.max_seconds` ends with the row of its last step.

    Raises:
        FileNotFoundError: If `resume` is a path without a complete checkpoint.
        FloatingPointError: If a step's loss or gradient norm is NaN or infinite (raised before that step's
            update; the message names the step and the micro-batches whose loss was not finite).
        TypeError: If `get_batch`, `loss_fn` or `evaluate` is not callable or cannot take the loop's
            arguments (`get_batch(index)`, `loss_fn(model, batch)`, `evaluate(model, step)`), `config` is not
            a `TrainConfig`, `loss_fn` does not return a tensor, or `evaluate` does not return a dict.
        ValueError: If `config.out_dir` is a file; if `resume=True` without `config.out_dir`; if the checkpoint
            to resume was written with other settings than those of
            [`RESUME_MAY_CHANGE`][llmdocs.training.config.RESUME_MAY_CHANGE] (a resume continues the same run;
            resuming a finished run loads it and trains nothing), or by a different model; if a fresh run finds
            checkpoints in `out_dir/checkpoints`; if `get_batch` returns an empty batch, or a dict batch whose
            `grad_accum` entry differs from `config.grad_accum`; or if `loss_fn`
            returns a loss that is not a scalar or has no gradient.

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
    _check_arguments(get_batch, loss_fn, config, evaluate)
    out_dir = Path(config.out_dir) if config.out_dir is not None else None
    if out_dir is not None:
        _check_out_dir(out_dir)
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

    ckpt_dir = out_dir / "checkpoints" if out_dir is not None else None
    metrics_path = out_dir / "metrics.jsonl" if out_dir is not None else None
    start, history = 0, []
    window = _empty_window()  # sums since the last history row
    if resume:
        if resume is True and ckpt_dir is None:
            raise ValueError("resume=True needs config.out_dir (checkpoints live in out_dir/checkpoints)")
        source = ckpt_dir if resume is True else Path(resume)
        if resume is not True or latest_checkpoint(source) is not None:  # True: fresh if none yet
            start, history, window = _resume(source, model, optimizer, scheduler, config)
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
    started = clock()
    for step in range(start, config.steps):
        t0 = clock()
        step_losses: list[torch.Tensor] = []  # the micro-batch losses, detached
        step_tokens = 0
        for micro in range(config.grad_accum):
            index = step * config.grad_accum + micro
            batch = move_to_device(_check_batch(get_batch(index), index), device)
            made_for = batch.get("grad_accum") if isinstance(batch, dict) else None  # e.g. SFTBatches(grad_accum=k)
            if made_for is not None and int(made_for) != config.grad_accum:
                raise ValueError(
                    f"get_batch({index}) was built for grad_accum={int(made_for)} (its 'grad_accum' entry), but "
                    f"config.grad_accum={config.grad_accum}: its loss would be scaled for another number of "
                    "micro-batches per step; build the batches with the config's grad_accum"
                )
            last = micro == config.grad_accum - 1
            # DDP all-reduces gradients in backward(); skip that on all but the last micro-batch.
            sync = model.no_sync() if is_ddp and not last else contextlib.nullcontext()
            with sync:
                loss, n_tokens = _loss_and_tokens(loss_fn(model, batch), batch)
                if not loss.requires_grad:
                    raise ValueError(
                        f"loss_fn(model, get_batch({index})) returned a loss without a gradient (requires_grad=False):"
                        " was it computed under torch.no_grad(), detached, or from frozen parameters only?"
                    )
                (loss / config.grad_accum).backward()  # sum of grads / k = grad of the mean
            step_losses.append(loss.detach())
            step_tokens += n_tokens
        grad_norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
        done = step + 1

        # Summed in the loss's dtype, float32 at least: a float64 run logs float64 losses.
        losses = torch.stack(step_losses)  # (grad_accum,)
        step_loss = losses.sum(dtype=torch.promote_types(losses.dtype, torch.float32)) / config.grad_accum  # ()
        dtype = torch.promote_types(step_loss.dtype, grad_norm.dtype)
        n_tokens_seen = torch.tensor(float(step_tokens), dtype=dtype, device=step_loss.device)
        stats = torch.stack([step_loss.to(dtype), n_tokens_seen, grad_norm.to(step_loss.device, dtype)])  # (3,)
        if world_size > 1:  # the logged loss and throughput cover every rank
            stats = stats.to(device)
            dist.all_reduce(stats)
            stats[0] /= world_size
            stats[2] /= world_size  # the same norm on every rank (gradients are all-reduced)
        step_loss_value, tokens, norm = stats.tolist()  # the step's one device-to-host copy
        if not (math.isfinite(step_loss_value) and math.isfinite(norm)):
            # Checked before the update: an AdamW step with a NaN gradient writes NaN into every weight it
            # touches, and the run would go on logging NaN losses (a NaN loss gives a NaN gradient norm too).
            bar.close()
            raise FloatingPointError(_non_finite_message(done, step_loss_value, norm, step_losses, config))
        lr = optimizer.param_groups[0]["lr"]
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)

        window["loss"] += step_loss_value
        window["tokens"] += int(tokens)
        window["steps"] += 1
        window["seconds"] += clock() - t0
        bar.update(1)
        out_of_time = done < config.steps and _budget_spent(config.max_seconds, clock() - started, device)

        row: dict[str, Any] | None = None
        if done % config.log_every == 0 or done == config.steps:
            row, window = _log_row(window, done, lr, grad_norm), _empty_window()
        metrics: dict[str, float] | None = None
        if evaluate is not None and ((config.eval_every and done % config.eval_every == 0) or done == config.steps):
            metrics = _run_evaluation(model, evaluate, done)
            row = {"step": done, **(row or {}), **metrics}
        if row is not None:
            history.append(row)
            if is_main and metrics_path is not None:
                append_jsonl(metrics_path, row)
            _show(bar, row)

        if ckpt_dir is not None and (
            (config.checkpoint_every and done % config.checkpoint_every == 0) or done == config.steps or out_of_time
        ):
            if is_main:
                extra = {"data_position": done * config.grad_accum, "history": history, "window": window}
                save_checkpoint(
                    ckpt_dir, model, optimizer, scheduler, done, extra, config=config, keep=config.keep_checkpoints
                )
            if world_size > 1:
                dist.barrier()  # no rank races ahead while rank 0 writes
        if out_of_time:
            # The checkpoint holds the unbroken run's state; this last row only reports where the run stopped.
            final = _log_row(window, done, lr, grad_norm) if window["steps"] else {}
            if evaluate is not None and metrics is None:
                final |= _run_evaluation(model, evaluate, done)
            if final:
                if history and history[-1]["step"] == done:
                    history[-1] = {**history[-1], **final}
                else:
                    history.append({"step": done, **final})
                if is_main and metrics_path is not None:
                    write_jsonl(metrics_path, history)
                _show(bar, history[-1])
            if progress and is_main:
                bar.write(f"stopped after step {done} of {config.steps}: max_seconds={config.max_seconds:g} spent")
            break
    bar.close()
    if is_main and out_dir is not None:
        write_csv(out_dir / "metrics.csv", history)
    return history


def _check_out_dir(out_dir: Path) -> None:
    """Refuse an `out_dir` that is a file, or lies inside one, before any work (mkdir would fail much later)."""
    existing = next((folder for folder in (out_dir, *out_dir.parents) if folder.exists()), None)
    if existing is not None and not existing.is_dir():
        where = f"out_dir={str(out_dir)!r}" + ("" if existing == out_dir else f" is inside {str(existing)!r}, which")
        raise ValueError(f"{where} is a file, not a folder: pick a folder path")


def _resume(
    source: Path, model: nn.Module, optimizer: Optimizer, scheduler: LRScheduler, config: TrainConfig
) -> tuple[int, list[dict[str, Any]], dict[str, Any]]:
    """Load the checkpoint to continue from; return its step, history and log window.

    Checked before anything is loaded: a resume continues the same run, so the settings that shape the
    trajectory must be the checkpoint's (only `RESUME_MAY_CHANGE` may differ). Resuming a finished run loads
    it and trains nothing more: a resume is idempotent.
    """
    info = checkpoint_info(source)
    conflicts = config.resume_conflicts(info["config"])
    if conflicts:
        raise ValueError(
            f"resume continues the run of the checkpoint at {info['path']}, but settings that shape its training "
            f"differ: {'; '.join(conflicts)}. Start a new out_dir to change them (a resume may change only "
            f"{', '.join(RESUME_MAY_CHANGE)})"
        )
    extra = load_checkpoint(info["path"], model, optimizer, scheduler)["extra"]
    if extra["data_position"] != info["step"] * config.grad_accum:
        raise ValueError("the checkpoint was written with a different grad_accum")
    return info["step"], extra["history"], extra["window"]


def _check_arguments(get_batch: object, loss_fn: object, config: object, evaluate: object) -> None:
    """Fail before any work on arguments of the wrong kind, or functions that cannot take the loop's arguments."""
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    for name, fn, params, expected in (
        ("get_batch", get_batch, ("index",), "get_batch(index) -> batch, e.g. an IndexedBatches"),
        ("loss_fn", loss_fn, ("model", "batch"), "loss_fn(model, batch) -> loss"),
        ("evaluate", evaluate, ("model", "step"), "evaluate(model, step) -> dict of metrics, or None"),
    ):
        if name == "evaluate" and fn is None:
            continue
        if not callable(fn):
            raise TypeError(f"{name} must be a function {expected}; got {type(fn).__name__}")
        try:
            signature = inspect.signature(fn)
        except (TypeError, ValueError):  # a builtin without a signature: the call will tell
            continue
        try:
            signature.bind(*params)  # the loop passes them positionally
        except TypeError:
            label = getattr(fn, "__qualname__", type(fn).__name__)
            hint = (
                ": add the step argument, e.g. evaluate=lambda model, step: my_eval(model)"
                if name == "evaluate"
                else ""
            )
            raise TypeError(f"{name} must be a function {expected}, but {label} takes {signature}{hint}") from None


def _non_finite_message(
    step: int, loss: float, grad_norm: float, step_losses: list[torch.Tensor], config: TrainConfig
) -> str:
    """Why the run stopped at `step`, and which micro-batches gave a non-finite loss (on this rank)."""
    first = (step - 1) * config.grad_accum
    bad = [first + j for j, micro_loss in enumerate(step_losses) if not bool(torch.isfinite(micro_loss))]
    where = f" (from get_batch({'), get_batch('.join(map(str, bad))}))" if bad else ""
    return (
        f"step {step}: the loss is {loss}{where} and the gradient norm {grad_norm}; training stopped before "
        f"this step's update, so the weights are those after step {step - 1}. Lower the learning rate "
        f"(lr={config.lr:g}), clip gradients (grad_clip={config.grad_clip}), or check the batch for NaN, inf or "
        "out-of-range values."
    )


def _empty_window() -> dict[str, Any]:
    """Sums of the steps since the last history row."""
    return {"loss": 0.0, "steps": 0, "tokens": 0, "seconds": 0.0}


def _log_row(window: dict[str, Any], step: int, lr: float, grad_norm: torch.Tensor) -> dict[str, Any]:
    """The history row of the steps in `window`, ending at `step`."""
    return {
        "step": step,
        "loss": window["loss"] / window["steps"],
        "lr": lr,
        "grad_norm": grad_norm.item(),
        "tokens_per_s": window["tokens"] / max(window["seconds"], 1e-9),
    }


def _run_evaluation(
    model: nn.Module, evaluate: Callable[[nn.Module, int], dict[str, float]], step: int
) -> dict[str, float]:
    """`evaluate(model, step)` on the unwrapped model, in eval mode and without gradients."""
    plain = unwrap_model(model)
    plain.eval()
    try:
        with torch.no_grad():
            metrics = evaluate(plain, step)
    finally:
        plain.train()
    if not isinstance(metrics, dict):
        raise TypeError(f"evaluate(model, step) must return a dict of metrics, got {type(metrics).__name__}")
    return metrics


def _budget_spent(max_seconds: float | None, elapsed: float, device: torch.device) -> bool:
    """Whether `elapsed` seconds exhaust the budget; under DDP every rank gets the same answer."""
    if max_seconds is None:
        return False
    spent = elapsed >= max_seconds
    if get_world_size() > 1:  # ranks must stop after the same step, or the next all-reduce hangs
        flag = torch.tensor(float(spent), device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        spent = bool(flag.item())
    return spent


def _show(bar: tqdm, row: dict[str, Any]) -> None:
    """Put a history row's figures on the progress bar."""
    postfix = {k: f"{v:.4g}" for k, v in row.items() if k not in ("step", "tokens_per_s")}
    if "tokens_per_s" in row:
        postfix["tok/s"] = f"{row['tokens_per_s']:,.0f}"
    bar.set_postfix(postfix, refresh=False)
