"""Masked statistics over response tokens: means and whitening that see only the real tokens of a padded batch.

RL fine-tuning (PPO, GRPO) works on (B, T) tensors with one value per RESPONSE token: log-probabilities, rewards,
values, advantages. The responses have different lengths, so each row is padded, and a ``mask`` (B, T), true at
real tokens, says which entries count. Every statistic is then taken over the n = sum_i m_i entries the mask keeps:

    masked_mean(x)  = sum_i m_i x_i / n
    masked_var(x)   = n / (n - 1) masked_mean((x - masked_mean(x))^2)        (unbiased: Bessel's correction)
    whiten(x)       = (x - masked_mean(x)) / sqrt(masked_var(x) + eps)

[masked_mean][llmdocs.finetuning.masked.masked_mean] is the token mean that PPO's losses are averaged with;
[masked_whiten][llmdocs.finetuning.masked.masked_whiten] normalises PPO's advantages to mean 0 and variance 1 over
the batch. Padding entries are never read: they may hold anything, even NaN (a product ``x * mask`` would turn
0 * NaN into NaN, so the padding is replaced, not multiplied), and they get no gradient.

The checks that the per-token losses share live here too: each per-token input a floating (B, T) tensor of one
shape, and the mask given as bool or as integers or floats that are 0 or 1.

References:
    Hugging Face TRL <= 0.x ``trl.core.masked_mean``, ``masked_var`` and ``masked_whiten`` (the formulas above,
    with TRL's unbiased variance); Huang et al., "The 37 Implementation Details of Proximal Policy Optimization",
    ICLR Blog Track 2022 (detail 7, advantage normalisation); Huang et al., "The N+ Implementation Details of RLHF
    with PPO: A Case Study on TL;DR Summarization", 2024 (whitening over the masked response tokens).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["masked_mean", "masked_whiten"]


# ---- checks shared by the per-token losses ------------------------------------------------------------------------


def _number(name: str, value: object, requirement: str, ok: Callable[[float], bool]) -> float:
    """``value`` as a float if it is a real number (not a bool) satisfying ``ok``; else a ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not ok(float(value)):
        raise ValueError(f"{name} must be {requirement}, got {value!r}")
    return float(value)


def _finite_nonnegative(v: float) -> bool:
    """The test of ``_number`` for "a finite number >= 0" (coefficients, eps)."""
    return math.isfinite(v) and v >= 0


def _finite_positive(v: float) -> bool:
    """The test of ``_number`` for "a finite number > 0" (temperatures, targets, horizons)."""
    return math.isfinite(v) and v > 0


def _check_floating(name: str, value: object, shape: str = "", dim: int | None = None) -> Tensor:
    """``value`` must be a floating tensor, of ``dim`` dimensions if given (``shape`` describes them: "(B, T)")."""
    if not isinstance(value, Tensor) or not value.is_floating_point() or (dim is not None and value.dim() != dim):
        got = f"{value.dtype} {tuple(value.shape)}" if isinstance(value, Tensor) else type(value).__name__
        raise TypeError(f"{name} must be a floating tensor{' ' + shape if shape else ''}, got {got}")
    return value


def _as_bool_mask(mask: object, like: Tensor, like_name: str) -> Tensor:
    """``mask`` as a bool tensor of ``like``'s shape: given as bool, or as integers or floats that are 0 or 1."""
    if not isinstance(mask, Tensor) or mask.is_complex():
        got = f"{mask.dtype}" if isinstance(mask, Tensor) else type(mask).__name__
        raise TypeError(f"mask must be a bool or 0/1 tensor of {like_name}'s shape, got {got}")
    if mask.shape != like.shape:
        raise ValueError(f"mask is {tuple(mask.shape)}, but {like_name} is {tuple(like.shape)}")
    if mask.dtype == torch.bool:
        return mask
    bad = mask[(mask != 0) & (mask != 1)]
    if bad.numel():
        raise ValueError(f"mask must hold 0 or 1 (or True/False) only, got {bad[0].item()}")
    return mask != 0


def _check_per_token(mask: object, **values: Tensor | None) -> Tensor:
    """Each value given (None skipped) a floating (B, T) tensor of the first one's shape, B, T >= 1; returns the
    mask as bool."""
    given = {name: value for name, value in values.items() if value is not None}
    for name, value in given.items():
        _check_floating(name, value, "(B, T), one value per response token", dim=2)
    first_name, first = next(iter(given.items()))
    for name, value in given.items():
        if value.shape != first.shape:
            raise ValueError(f"{name} is {tuple(value.shape)}, but {first_name} is {tuple(first.shape)}")
    if first.numel() == 0:
        raise ValueError(f"{first_name} is empty {tuple(first.shape)}: it needs at least one row and one token")
    return _as_bool_mask(mask, first, first_name)


# ---- statistics ---------------------------------------------------------------------------------------------------


def masked_mean(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """The mean of the entries of ``x`` where ``mask`` is true: over all of them, or along ``dim``.

        masked_mean(x, m) = sum_i m_i x_i / sum_i m_i

    Entries outside the mask are never read (they may be NaN) and get no gradient.

    Args:
        x: (B, T), or any shape: the values.
        mask: ``x``'s shape, bool or 0/1.
        dim: The dimension to average along, or None for one mean over everything.

    Returns:
        0-d with ``dim=None``, else ``x``'s shape without ``dim``.

    Raises:
        TypeError: ``x`` is not a floating tensor, or ``mask`` is not a tensor.
        ValueError: ``mask`` has another shape or values other than 0/1, ``dim`` is not a dimension of ``x``, or the
            mask selects nothing (in some slice along ``dim``).

    Examples:
        >>> x = torch.tensor([[1.0, 2.0, 100.0], [3.0, 4.0, 5.0]])
        >>> mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
        >>> masked_mean(x, mask), masked_mean(x, mask, dim=1)  # (1 + 2 + 3) / 3; per row
        (tensor(2.), tensor([1.5000, 3.0000]))
    """
    _check_floating("x", x)
    keep = _as_bool_mask(mask, x, "x")
    if dim is not None and (isinstance(dim, bool) or not isinstance(dim, int) or not -x.dim() <= dim < x.dim()):
        raise ValueError(f"dim must be None or a dimension of x {tuple(x.shape)}, got {dim!r}")
    kept = x.masked_fill(~keep, 0.0)  # not x * mask: 0 * NaN is NaN
    count = keep.to(x.dtype).sum() if dim is None else keep.to(x.dtype).sum(dim)
    if (count == 0).any():
        where = "" if dim is None else f" in some slice along dim={dim}"
        raise ValueError(f"mask selects no entries{where}: the mean of nothing is undefined")
    total = kept.sum() if dim is None else kept.sum(dim)
    return total / count


def masked_whiten(x: Tensor, mask: Tensor, shift_mean: bool = True, eps: float = 1e-8) -> Tensor:
    """Normalise the masked entries of ``x`` to mean 0 and variance 1 (advantage whitening).

        x' = (x - mu) / sqrt(s^2 + eps),   mu = masked_mean(x),   s^2 = n / (n - 1) masked_mean((x - mu)^2)

    with the unbiased variance over the n masked entries, as TRL's ``masked_whiten`` / ``masked_var``. With
    ``shift_mean=False`` the mean is added back (x' + mu: only the scale changes, as TRL does for rewards).
    Whitened advantages make the policy loss's scale independent of the reward's; half of them are negative, so
    each batch pushes some tokens down and some up.

    Args:
        x: (B, T), or any shape: the values (advantages).
        mask: ``x``'s shape, bool or 0/1.
        shift_mean: Centre on 0 (True) or keep the mean (False).
        eps: Added to the variance, so that constant values do not divide by 0; a finite number >= 0.

    Returns:
        ``x``'s shape: the whitened values, 0 outside the mask (TRL left the padding whitened too).

    Raises:
        TypeError: ``x`` is not a floating tensor, ``mask`` not a tensor, or ``shift_mean`` not a bool.
        ValueError: ``mask`` has another shape or values other than 0/1, it selects fewer than 2 entries (the
            unbiased variance divides by n - 1), or ``eps`` is not a finite number >= 0.

    References:
        Huang et al., "The 37 Implementation Details of Proximal Policy Optimization", 2022 (detail 7).

    Examples:
        >>> x, mask = torch.tensor([1.0, 3.0, 5.0, 99.0]), torch.tensor([True, True, True, False])
        >>> masked_whiten(x, mask)  # mean 3, unbiased variance (4 + 0 + 4) / 2 = 4
        tensor([-1.,  0.,  1.,  0.])
        >>> masked_whiten(x, mask, shift_mean=False)
        tensor([2., 3., 4., 0.])
    """
    _check_floating("x", x)
    keep = _as_bool_mask(mask, x, "x")
    if not isinstance(shift_mean, bool):
        raise TypeError(f"shift_mean must be a bool, got {shift_mean!r}")
    eps = _number("eps", eps, "a finite number >= 0", _finite_nonnegative)
    n = int(keep.sum())
    if n < 2:
        raise ValueError(
            f"whitening needs at least 2 entries under the mask (the unbiased variance divides by n - 1), got {n}"
        )
    mean = masked_mean(x, keep)  # ()
    variance = masked_mean((x - mean) ** 2, keep) * (n / (n - 1))  # () unbiased, Bessel's correction
    whitened = (x - mean) * torch.rsqrt(variance + eps)
    if not shift_mean:
        whitened = whitened + mean
    return whitened.masked_fill(~keep, 0.0)
