"""Learning-rate schedules as pure functions of the step, plus `LambdaLR` helpers.

Two schedules cover the course:

* **Linear warm-up + cosine decay** (GPT-2/3, Llama): the multiplier climbs linearly to 1 over `warmup`
  steps, then follows half a cosine down to `min_ratio` at step `total`.
* **Inverse square root** (Vaswani et al., 2017, section 5.3), the original Transformer's schedule:

$$\\text{lrate} = d_\\text{model}^{-0.5} \\cdot \\min(\\text{step}^{-0.5},\\ \\text{step} \\cdot
\\text{warmup}^{-1.5})$$

`torch.optim.lr_scheduler.LambdaLR` multiplies each group's base learning rate by `lr_lambda(s)`, where `s` is
the number of scheduler steps taken so far (0 before the first optimizer step). The helpers below map that
`s` onto the schedules.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

__all__ = [
    "inverse_sqrt",
    "inverse_sqrt_lambda",
    "lambda_scheduler",
    "warmup_cosine",
    "warmup_cosine_lambda",
]


def warmup_cosine(step: int, warmup: int, total: int, min_ratio: float = 0.0) -> float:
    """Linear warm-up then cosine decay, as a multiplier of the peak learning rate.

    For `step < warmup`: `(step + 1) / warmup` (so the very first update already moves). Afterwards, with
    `p = (step - warmup) / (total - warmup)` clipped to `[0, 1]`:

    $$m = r + (1 - r)\\,\\tfrac{1}{2}\\,(1 + \\cos \\pi p)$$

    Args:
        step: Optimizer steps already taken (0-based).
        warmup: Warm-up steps (0 disables warm-up).
        total: Step at which the decay reaches `min_ratio`; must exceed `warmup`.
        min_ratio: Final multiplier `r` in `[0, 1]`.

    Returns:
        The multiplier in `[min_ratio, 1]`.

    Raises:
        ValueError: On a negative step/warm-up, `total <= warmup` or `min_ratio` outside `[0, 1]`.

    Examples:
        >>> [warmup_cosine(s, warmup=10, total=110) for s in (0, 9, 10, 60, 110, 500)]
        [0.1, 1.0, 1.0, 0.5, 0.0, 0.0]
        >>> warmup_cosine(110, warmup=10, total=110, min_ratio=0.1)
        0.1
    """
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0, got {warmup}")
    if total <= warmup:
        raise ValueError(f"total={total} must be greater than warmup={warmup}")
    if not 0.0 <= min_ratio <= 1.0:
        raise ValueError(f"min_ratio must be in [0, 1], got {min_ratio}")
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / (total - warmup))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def inverse_sqrt(step: int, d_model: int, warmup: int = 4000) -> float:
    """The original Transformer's learning rate (Vaswani et al., 2017, eq. 3), an absolute value.

    $$\\text{lrate} = d_\\text{model}^{-0.5} \\min(\\text{step}^{-0.5}, \\text{step}\\cdot\\text{warmup}^{-1.5})$$

    It rises linearly for `warmup` steps, peaks at `(d_model * warmup) ** -0.5` and then decays as
    `step ** -0.5`.

    Args:
        step: The paper's 1-based step number (step 0 gives 0.0).
        d_model: Model width `D` (512 in the base model).
        warmup: Warm-up steps (4000 in the paper).

    Returns:
        The learning rate.

    Raises:
        ValueError: On a negative step or a non-positive `d_model`/`warmup`.

    References:
        Vaswani et al., "Attention Is All You Need", 2017, section 5.3.

    Examples:
        >>> round(inverse_sqrt(4000, d_model=512, warmup=4000), 7)  # the peak
        0.0006988
        >>> inverse_sqrt(2000, 512) < inverse_sqrt(4000, 512) > inverse_sqrt(8000, 512)
        True
    """
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if d_model <= 0:
        raise ValueError(f"d_model must be positive, got {d_model}")
    if warmup <= 0:
        raise ValueError(f"warmup must be positive, got {warmup}")
    if step == 0:
        return 0.0
    return d_model**-0.5 * min(step**-0.5, step * warmup**-1.5)


def warmup_cosine_lambda(warmup: int, total: int, min_ratio: float = 0.0) -> Callable[[int], float]:
    """A `LambdaLR` multiplier for [`warmup_cosine`][llmdocs.training.schedules.warmup_cosine].

    Args:
        warmup: Warm-up steps.
        total: Total steps.
        min_ratio: Final multiplier.

    Returns:
        `f(s) = warmup_cosine(s, warmup, total, min_ratio)`; the optimizer's `lr` is the peak.

    Examples:
        >>> f = warmup_cosine_lambda(warmup=2, total=4)
        >>> [f(s) for s in range(5)]
        [0.5, 1.0, 1.0, 0.5, 0.0]
    """
    warmup_cosine(0, warmup, total, min_ratio)  # validate now, not at the first step

    def lr_lambda(step: int) -> float:
        return warmup_cosine(step, warmup, total, min_ratio)

    return lr_lambda


def inverse_sqrt_lambda(d_model: int, warmup: int, normalize: bool = False) -> Callable[[int], float]:
    """A `LambdaLR` multiplier for the paper's [`inverse_sqrt`][llmdocs.training.schedules.inverse_sqrt].

    Scheduler step `s` (0-based) is the paper's step `s + 1`.

    Args:
        d_model: Model width.
        warmup: Warm-up steps.
        normalize: If False, the multiplier *is* the paper's learning rate: use it with an optimizer whose
            `lr=1.0`. If True, it is scaled to peak at 1.0 at step `warmup`, so the optimizer's `lr` is
            the peak (`d_model` then drops out).

    Returns:
        The multiplier function.

    Examples:
        >>> f = inverse_sqrt_lambda(d_model=512, warmup=4000)
        >>> f(3999) == inverse_sqrt(4000, 512, 4000)
        True
        >>> inverse_sqrt_lambda(512, warmup=4, normalize=True)(3)
        1.0
    """
    inverse_sqrt(1, d_model, warmup)  # validate now

    def lr_lambda(step: int) -> float:
        if normalize:  # d_model**-0.5 * min(...) divided by its peak (d_model * warmup)**-0.5
            return min((step + 1) / warmup, (warmup / (step + 1)) ** 0.5)
        return inverse_sqrt(step + 1, d_model, warmup)

    return lr_lambda


def lambda_scheduler(optimizer: Optimizer, lr_lambda: Callable[[int], float]) -> LambdaLR:
    """Wrap a multiplier function into a `LambdaLR` (a one-liner, named for the chapters).

    Args:
        optimizer: The optimizer whose groups' `lr` are the base (peak) learning rates.
        lr_lambda: Step -> multiplier, e.g. from `warmup_cosine_lambda`.

    Returns:
        The scheduler; call `scheduler.step()` after every `optimizer.step()`.

    Examples:
        >>> import torch
        >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
        >>> sched = lambda_scheduler(opt, warmup_cosine_lambda(warmup=2, total=4))
        >>> round(opt.param_groups[0]["lr"], 3)
        0.05
    """
    return LambdaLR(optimizer, lr_lambda)
