"""`TrainConfig`: every setting of a training run in one frozen, validated dataclass."""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

__all__ = ["RESUME_MAY_CHANGE", "TrainConfig"]

_SCHEDULES = ("cosine", "inverse_sqrt", "constant")

RESUME_MAY_CHANGE: tuple[str, ...] = (
    "max_seconds",
    "device",
    "out_dir",
    "log_every",
    "eval_every",
    "checkpoint_every",
    "keep_checkpoints",
)
"""The `TrainConfig` fields a resumed run may change: when a call stops, where it runs, what it logs and keeps.

Every other field shapes the optimisation trajectory (the learning rate and its schedule over `steps`, AdamW's
settings, clipping, accumulation, the seed), so it must equal the checkpoint's: resuming continues the *same*
run, and `train(..., resume=...)` refuses a config that differs there (start a new `out_dir` to change them).
"""


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run (the model has its own config).

    Steps count optimizer updates; one update consumes `grad_accum` micro-batches, so an update sees
    `grad_accum * micro_batch_size * world_size` examples.

    Every field is checked when the config is built, so a bad setting fails here and not as NaN losses a
    thousand steps later: a value of the wrong type raises `TypeError`, a value out of range (NaN and infinity
    included) `ValueError`, both naming the field. Numpy numbers are accepted and stored as Python ones.

    Examples:
        >>> cfg = TrainConfig(steps=100, warmup=10, lr=1e-3)
        >>> cfg.schedule, cfg.grad_accum
        ('cosine', 1)
        >>> TrainConfig.from_dict(cfg.to_dict()) == cfg
        True
        >>> TrainConfig(steps=0)
        Traceback (most recent call last):
        ...
        ValueError: steps must be a positive int, got 0
        >>> TrainConfig(max_seconds=0)
        Traceback (most recent call last):
        ...
        ValueError: max_seconds must be None or a positive number of seconds, got 0
        >>> TrainConfig(grad_clip=float("nan"))
        Traceback (most recent call last):
        ...
        ValueError: grad_clip must be None or a finite number >= 0 (None or 0 disables clipping), got nan
        >>> TrainConfig(lr="1e-3")
        Traceback (most recent call last):
        ...
        TypeError: lr must be positive and finite, got str '1e-3'
    """

    steps: int = 1000
    """Number of optimizer updates."""
    max_seconds: float | None = None
    """Wall-clock budget of one call of `train`, in seconds: after the first step that ends past it, the run
    writes a checkpoint (with `out_dir`) and stops; `resume=True` continues it towards `steps`. The learning-rate
    schedule still spans `steps`. `None`: no budget."""
    lr: float = 3e-4
    """Peak learning rate (the schedule multiplies it)."""
    warmup: int = 100
    """Linear warm-up steps."""
    schedule: str = "cosine"
    """`"cosine"` (warm-up + cosine decay), `"inverse_sqrt"` (the 2017 paper's, peaking at `lr`) or
    `"constant"` (warm-up then flat)."""
    min_lr_ratio: float = 0.1
    """Final learning rate of the cosine schedule, as a fraction of `lr`."""
    weight_decay: float = 0.1
    """AdamW decoupled weight decay, applied to matrices only (not biases, norms)."""
    betas: tuple[float, float] = (0.9, 0.95)
    """AdamW's moment decay rates."""
    grad_clip: float | None = 1.0
    """Maximum global gradient L2 norm; `None` or 0 disables clipping."""
    grad_accum: int = 1
    """Micro-batches whose gradients are summed before one update."""
    log_every: int = 10
    """Steps between history rows (and metrics-log lines)."""
    eval_every: int = 0
    """Steps between calls of the evaluation function; 0 evaluates only after the last step."""
    checkpoint_every: int = 0
    """Steps between checkpoints (needs `out_dir`); 0 saves only after the last step."""
    keep_checkpoints: int = 2
    """How many of the newest checkpoints to keep."""
    seed: int = 0
    """Seed of every RNG (rank `r` of a distributed run uses `seed + r`)."""
    device: str = "auto"
    """`"auto"`, `"cpu"`, `"cuda"` or `"mps"`, with an optional index (`"cuda:1"`); a `torch.device` is stored
    as its name."""
    out_dir: str | None = None
    """Folder for `metrics.jsonl`, `metrics.csv` and `checkpoints/`; `None` writes nothing."""

    def __post_init__(self) -> None:
        for name in ("steps", "grad_accum", "log_every", "keep_checkpoints"):
            object.__setattr__(self, name, _int(name, getattr(self, name), minimum=1))
        for name in ("warmup", "eval_every", "checkpoint_every", "seed"):
            object.__setattr__(self, name, _int(name, getattr(self, name), minimum=0))
        if self.seed >= 2**64:
            raise ValueError(f"seed must be below 2**64 (torch's seeds are 64-bit), got {self.seed}")
        if self.max_seconds is not None:
            seconds = _finite("max_seconds", self.max_seconds, "None or a positive number of seconds")
            if seconds <= 0:
                raise ValueError(f"max_seconds must be None or a positive number of seconds, got {self.max_seconds!r}")
            object.__setattr__(self, "max_seconds", seconds)
        lr = _finite("lr", self.lr, "positive and finite")
        if lr <= 0:
            raise ValueError(f"lr must be positive and finite, got {self.lr!r}")
        object.__setattr__(self, "lr", lr)
        if not isinstance(self.schedule, str):
            raise TypeError(f"schedule must be one of {_SCHEDULES}, got {type(self.schedule).__name__}")
        if self.schedule not in _SCHEDULES:
            raise ValueError(f"schedule must be one of {_SCHEDULES}, got {self.schedule!r}")
        if self.schedule == "cosine" and self.warmup >= self.steps:
            raise ValueError(f"warmup={self.warmup} must be smaller than steps={self.steps}")
        if self.schedule == "inverse_sqrt" and self.warmup < 1:
            raise ValueError("the inverse_sqrt schedule needs warmup >= 1")
        ratio = _finite("min_lr_ratio", self.min_lr_ratio, "a number in [0, 1]")
        if not 0.0 <= ratio <= 1.0:
            raise ValueError(f"min_lr_ratio must be a number in [0, 1], got {self.min_lr_ratio!r}")
        object.__setattr__(self, "min_lr_ratio", ratio)
        decay = _finite("weight_decay", self.weight_decay, "a finite number >= 0")
        if decay < 0:
            raise ValueError(f"weight_decay must be a finite number >= 0, got {self.weight_decay!r}")
        object.__setattr__(self, "weight_decay", decay)
        object.__setattr__(self, "betas", _betas(self.betas))  # JSON gives lists
        if self.grad_clip is not None:
            expected = "None or a finite number >= 0 (None or 0 disables clipping)"
            clip = _finite("grad_clip", self.grad_clip, expected)
            if clip < 0:
                raise ValueError(f"grad_clip must be {expected}, got {self.grad_clip!r}")
            object.__setattr__(self, "grad_clip", clip)
        object.__setattr__(self, "device", _device(self.device))
        if self.out_dir is not None:
            if not isinstance(self.out_dir, str | os.PathLike):
                raise TypeError(
                    f"out_dir must be None or a folder path (str or Path), got {type(self.out_dir).__name__}"
                )
            if str(self.out_dir) == "":
                raise ValueError("out_dir must be None or a folder path, got '' (use '.' for the current folder)")
            object.__setattr__(self, "out_dir", str(Path(self.out_dir)))

    def resume_conflicts(self, saved: Mapping[str, Any] | None) -> list[str]:
        """The fields outside [`RESUME_MAY_CHANGE`][llmdocs.training.config.RESUME_MAY_CHANGE] that differ from
        a checkpoint's config, as `"name: checkpoint X, now Y"`.

        Args:
            saved: The config stored in the checkpoint (`to_dict()` output); `None` or fields it lacks are not
                compared.

        Returns:
            One line per differing field, in field order; empty when this config may continue the checkpoint.

        Examples:
            >>> saved = TrainConfig(steps=40, lr=1e-2, warmup=0).to_dict()
            >>> TrainConfig(steps=50, lr=1e-3, warmup=0, max_seconds=60).resume_conflicts(saved)
            ['steps: checkpoint 40, now 50', 'lr: checkpoint 0.01, now 0.001']
        """
        if saved is None:
            return []
        conflicts = []
        for field in dataclasses.fields(self):
            if field.name in RESUME_MAY_CHANGE or field.name not in saved:
                continue
            before, now = _plain(saved[field.name]), _plain(getattr(self, field.name))
            if before != now:
                conflicts.append(f"{field.name}: checkpoint {before!r}, now {now!r}")
        return conflicts

    def to_dict(self) -> dict[str, Any]:
        """Return the settings as a JSON-friendly dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build a config from `to_dict()` output, rejecting unknown keys.

        Args:
            data: Field name -> value.

        Returns:
            The config.

        Raises:
            ValueError: If `data` has a key that is not a field.
        """
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown TrainConfig fields: {unknown}")
        return cls(**data)


def _plain(value: object) -> object:
    """A stored value in the form the config holds: JSON turns tuples into lists."""
    return tuple(value) if isinstance(value, list) else value


def _int(name: str, value: object, minimum: int) -> int:
    """`value` as an int >= `minimum` (numpy integers too, not bools), or an error naming the field."""
    kind = "a positive int" if minimum == 1 else "a non-negative int"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be {kind}, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be {kind}, got {value!r}")
    return int(value)


def _finite(name: str, value: object, expected: str) -> float:
    """`value` as a finite float (ints and numpy numbers too, not bools), or an error naming the field.

    NaN or infinity in a setting reaches every weight through the update: the run then logs NaN losses.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be {expected}, got {type(value).__name__} {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return float(value)


def _betas(betas: object) -> tuple[float, float]:
    """AdamW's (beta1, beta2) as a tuple of two floats in [0, 1)."""
    expected = "two numbers in [0, 1), e.g. (0.9, 0.95)"
    if isinstance(betas, str) or not isinstance(betas, Sequence):
        raise TypeError(f"betas must be {expected}, got {type(betas).__name__} {betas!r}")
    if len(betas) != 2:
        raise ValueError(f"betas must be {expected}, got {len(betas)} of them: {tuple(betas)!r}")
    pair = tuple(_finite("betas", b, expected) for b in betas)
    if not all(0.0 <= b < 1.0 for b in pair):
        raise ValueError(f"betas must be {expected}, got {tuple(betas)!r}")
    return pair  # type: ignore[return-value]


def _device(device: object) -> str:
    """The device name: `auto`, `cpu`, `cuda` or `mps`, with an optional index (`cuda:1`); a torch.device too."""
    if isinstance(device, torch.device):
        device = str(device)
    expected = "auto, cpu, cuda or mps (or an indexed device such as cuda:1)"
    if not isinstance(device, str):
        raise TypeError(f"device must be {expected}, got {type(device).__name__} {device!r}")
    if not re.fullmatch(r"auto|(cpu|cuda|mps)(:\d+)?", device):
        raise ValueError(f"device must be {expected}, got {device!r}")
    return device
