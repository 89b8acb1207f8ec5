"""`TrainConfig`: every setting of a training run in one frozen, validated dataclass."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["TrainConfig"]

_SCHEDULES = ("cosine", "inverse_sqrt", "constant")


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run (the model has its own config).

    Steps count optimizer updates; one update consumes `grad_accum` micro-batches, so an update sees
    `grad_accum * micro_batch_size * world_size` examples.

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
    """`"auto"`, `"cpu"`, `"cuda"` or `"mps"`."""
    out_dir: str | None = None
    """Folder for `metrics.jsonl`, `metrics.csv` and `checkpoints/`; `None` writes nothing."""

    def __post_init__(self) -> None:
        for name in ("steps", "grad_accum", "log_every", "keep_checkpoints"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        for name in ("warmup", "eval_every", "checkpoint_every", "seed"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a non-negative int, got {value!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.max_seconds is not None and (
            isinstance(self.max_seconds, bool)
            or not isinstance(self.max_seconds, int | float)
            or not self.max_seconds > 0  # also rejects NaN
        ):
            raise ValueError(f"max_seconds must be None or a positive number of seconds, got {self.max_seconds!r}")
        if self.schedule not in _SCHEDULES:
            raise ValueError(f"schedule must be one of {_SCHEDULES}, got {self.schedule!r}")
        if self.schedule == "cosine" and self.warmup >= self.steps:
            raise ValueError(f"warmup={self.warmup} must be smaller than steps={self.steps}")
        if self.schedule == "inverse_sqrt" and self.warmup < 1:
            raise ValueError("the inverse_sqrt schedule needs warmup >= 1")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError(f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {self.betas}")
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))  # JSON gives lists
        if self.grad_clip is not None and self.grad_clip < 0:
            raise ValueError(f"grad_clip must be None or >= 0, got {self.grad_clip}")
        if self.device.split(":")[0] not in ("auto", "cpu", "cuda", "mps"):
            raise ValueError(f"device must be auto, cpu, cuda or mps, got {self.device!r}")
        if self.out_dir is not None:
            object.__setattr__(self, "out_dir", str(Path(self.out_dir)))

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
