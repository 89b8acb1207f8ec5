"""The optimizer and the learning-rate schedule of a run: AdamW with two parameter groups, and `LambdaLR`.

[`train`][llmdocs.training.loop.train] builds both from a [`TrainConfig`][llmdocs.training.config.TrainConfig]
unless it is handed its own:

* `build_adamw`: AdamW (Loshchilov and Hutter, 2019) with weight decay on the matrices only;
* `build_scheduler`: the schedule named by `config.schedule` (see [schedules][llmdocs.training.schedules]).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.optim import AdamW, Optimizer
from torch.optim.lr_scheduler import LambdaLR

from llmdocs.training.config import TrainConfig
from llmdocs.training.schedules import inverse_sqrt_lambda, warmup_cosine_lambda

__all__ = ["build_adamw", "build_scheduler"]


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

    Raises:
        ValueError: If the model has no trainable parameter.

    References:
        Loshchilov and Hutter, "Decoupled Weight Decay Regularization", ICLR 2019.

    Examples:
        >>> model = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))
        >>> opt = build_adamw(model, lr=1e-3)
        >>> [(len(g["params"]), g["weight_decay"]) for g in opt.param_groups]
        [(1, 0.1), (3, 0.0)]
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError(f"model ({type(model).__name__}) has no parameter with requires_grad=True to optimise")
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
