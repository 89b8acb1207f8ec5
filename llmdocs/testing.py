"""Numerical tolerances: one policy for every comparison of floating-point results.

Two computations of the same function (ours and Hugging Face's, a cached and a full forward pass, the AVX2 and
the AVX-512 kernels of one matrix product) round differently, so their results differ in the last bits. How far
they may differ is decided here and nowhere else; the reasoning is on the Conventions page
([Numerical tolerances][numerical-tolerances]). In short:

1. **An equivalence proof runs in float64** ([assert_equivalent][llmdocs.testing.assert_equivalent]): both
   models, and the inputs, are converted with ``.double()``. Rounding then stays near 1e-15 on every CPU, so the
   tolerance is ~1e-13 and a real bug (a weight off by 1e-6) cannot hide inside it.
2. **A check that must run in float32** (a cache against a full pass, a trained or shipped model, a bfloat16
   path) uses [assert_close][llmdocs.testing.assert_close] with the ``depth`` of the computation: the tolerance
   grows with the dtype's machine epsilon and with the number of layers the rounding errors pass through.

The tolerance of a comparison at a given depth (its number of layers) is

    rtol = depth * EPS_PER_LEVEL[dtype] * torch.finfo(dtype).eps,    atol = rtol * scale

where ``scale`` is the largest ``|expected|``: the rounding error of a sum is proportional to its largest terms,
not to its result, so an output that cancels to nearly zero still carries the absolute error of its large
neighbours. ``EPS_PER_LEVEL`` is 64 for float32 and float64 (4x the worst difference measured per layer between
two implementations or two CPU kernel levels) and 16 for bfloat16 and float16 (which accumulate in float32).

Examples:
    >>> import torch
    >>> tolerance(torch.float64, depth=3)  # an equivalence proof through three layers
    Tolerance(rtol=4.263256414560601e-14, atol=4.263256414560601e-14)
    >>> round(tolerance(torch.float32, depth=3).rtol, 9)  # the same check in float32
    2.2888e-05
    >>> x = torch.randn(4, 8, dtype=torch.float64)
    >>> assert_equivalent(x @ x.T, (x.T.unsqueeze(0) * x.unsqueeze(2)).sum(1))  # two orders of summation
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

__all__ = ["EPS_PER_LEVEL", "Tolerance", "assert_close", "assert_equivalent", "tolerance"]

EPS_PER_LEVEL: dict[torch.dtype, int] = {
    torch.float64: 64,  # accumulates in float64: sums of D or F terms, softmax, LayerNorm, per layer
    torch.float32: 64,  # accumulates in float32; AVX2 and AVX-512 split the same sums differently
    torch.bfloat16: 16,  # products are accumulated in float32: only the rounding of each stored result counts
    torch.float16: 16,
}
"""Machine epsilons of error budget per level of depth, for each floating dtype (others: 64 from 32 bits up,
else 16). Measured on the course's tiny models (5 seeds; default, AVX2 and AVX-512 kernels): two float32 or
float64 implementations of one function differ by at most 16 eps of the output's scale per layer (65 eps after 4
layers); a float32 result is at most 30 eps from the float64 one after 1 layer, a bfloat16 result 8 eps per layer.
"""


class Tolerance(NamedTuple):
    """The ``rtol`` and ``atol`` that ``torch.testing.assert_close`` takes: ``|a - e| <= atol + rtol * |e|``."""

    rtol: float
    atol: float


def tolerance(dtype: torch.dtype, depth: int = 1, scale: float = 1.0) -> Tolerance:
    """The tolerance of a comparison of ``dtype`` results computed through ``depth`` levels.

    rtol = depth * EPS_PER_LEVEL[dtype] * eps(dtype),  atol = rtol * scale

    Args:
        dtype: the dtype both results are computed in. Integer and bool results must be equal: ``(0, 0)``.
        depth: the number of sequential levels the rounding errors pass through: a model's number of layers
            (its embeddings and output head are covered by the budget), 1 for one layer, one function or a
            formula, the number of optimizer steps for a training run.
        scale: the magnitude the absolute error is relative to, usually the largest ``|expected|``.

    Returns:
        The ``Tolerance(rtol, atol)``.

    Raises:
        ValueError: ``depth < 1`` or a negative ``scale``.

    Examples:
        >>> tolerance(torch.float32)  # 64 machine epsilons of float32
        Tolerance(rtol=7.62939453125e-06, atol=7.62939453125e-06)
        >>> tolerance(torch.float32, depth=2, scale=10.0).atol / tolerance(torch.float32).atol
        20.0
        >>> tolerance(torch.int64)
        Tolerance(rtol=0.0, atol=0.0)
    """
    if not isinstance(depth, int) or depth < 1:
        raise ValueError(f"depth must be an integer >= 1 (the number of layers), got {depth!r}")
    if not scale >= 0:
        raise ValueError(f"scale must be >= 0, got {scale!r}")
    if not (dtype.is_floating_point or dtype.is_complex):
        return Tolerance(0.0, 0.0)
    info = torch.finfo(dtype)
    budget = EPS_PER_LEVEL.get(dtype, 64 if info.bits >= 32 else 16)
    rtol = depth * budget * info.eps
    return Tolerance(rtol=rtol, atol=rtol * float(scale))


def _scale_of(expected: Tensor) -> float:
    """The largest finite ``|expected|`` (0 for an empty or all-infinite tensor)."""
    magnitude = expected.detach().abs()
    finite = magnitude[torch.isfinite(magnitude)]
    return float(finite.max()) if finite.numel() else 0.0


def assert_close(
    actual: Tensor,
    expected: Tensor,
    *,
    depth: int = 1,
    scale: float | Tensor | None = None,
    msg: str | None = None,
) -> None:
    """Assert that two results agree within the [tolerance][llmdocs.testing.tolerance] of their dtype and depth.

    A thin wrapper of ``torch.testing.assert_close`` (same shape, dtype and device required; infinities must
    match) whose ``rtol`` and ``atol`` come from the policy instead of the call site.

    Args:
        actual: the result under test.
        expected: the reference result, of the same dtype.
        depth: the number of layers between the inputs and the results (see ``tolerance``).
        scale: the magnitude errors are relative to. Default: the largest finite ``|expected|``. Pass the
            inputs' magnitude when ``expected`` is a cancellation to (nearly) zero, e.g. the mean of a centred
            tensor.
        msg: what is compared, printed before the details when the check fails.

    Raises:
        AssertionError: the results differ by more than the tolerance, or their dtypes, shapes or devices differ.

    Examples:
        >>> import torch
        >>> x = torch.randn(3, 5)
        >>> assert_close(torch.softmax(x, -1).sum(-1), torch.ones(3))  # passes silently
        >>> centred = x - x.mean(0)
        >>> assert_close(centred.mean(0), torch.zeros(5), scale=x.abs().max())  # zero, to x's rounding
        >>> assert_close(x * (1 + 1e-4), x, msg="x scaled by 1.0001")
        Traceback (most recent call last):
        ...
        AssertionError: x scaled by 1.0001
        Tensor-likes are not close!
        ...
        Tolerance of torch.float32 at depth 1: rtol=7.6e-06, atol=... (rtol x scale ...), see Conventions > ...
    """
    if not isinstance(actual, Tensor) or not isinstance(expected, Tensor):
        raise TypeError(f"compare tensors, got {type(actual).__name__} and {type(expected).__name__}")
    if actual.dtype != expected.dtype:
        raise AssertionError(
            f"{msg + ': ' if msg else ''}dtypes differ: {actual.dtype} vs {expected.dtype}. The tolerance comes "
            "from the dtype: compare results computed in one dtype (float64 for an equivalence proof)."
        )
    scale = _scale_of(expected) if scale is None else float(scale.detach() if isinstance(scale, Tensor) else scale)
    tol = tolerance(expected.dtype, depth, scale)
    details = (
        f"Tolerance of {expected.dtype} at depth {depth}: rtol={tol.rtol:.2g}, atol={tol.atol:.2g} "
        f"(rtol x scale {scale:.3g}), see Conventions > Numerical tolerances."
    )
    message: Callable[[str], str] = lambda text: "\n".join(filter(None, [msg, text, details]))  # noqa: E731
    torch.testing.assert_close(actual, expected, rtol=tol.rtol, atol=tol.atol, msg=message)


def assert_equivalent(
    actual: Tensor,
    expected: Tensor,
    *,
    depth: int = 1,
    scale: float | Tensor | None = None,
    msg: str | None = None,
) -> None:
    """Assert that two implementations compute the same function: [assert_close][llmdocs.testing.assert_close]
    on float64 results.

    An equivalence proof (ours against ``torch.nn``, Hugging Face or ``peft``; a fast path against the explicit
    one) runs both sides in float64, where a tolerance of ~1e-13 holds on every CPU. Convert both models and the
    inputs with ``.double()`` (the interop builders keep the dtype of the model they copy).

    Args:
        actual: our result, float64.
        expected: the reference result, float64.
        depth: the number of layers between the inputs and the results.
        scale: the magnitude errors are relative to (default: the largest finite ``|expected|``).
        msg: what is compared, printed before the details when the check fails.

    Raises:
        TypeError: a result is not float64: the proof would only hold to float32's rounding.
        AssertionError: the results differ by more than the float64 tolerance.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> linear = nn.Linear(8, 4).double()
        >>> x = torch.randn(2, 8, dtype=torch.float64)
        >>> assert_equivalent(linear(x), x @ linear.weight.T + linear.bias)
        >>> assert_equivalent(linear.float()(x.float()), x.float() @ linear.weight.T + linear.bias)
        Traceback (most recent call last):
        ...
        TypeError: an equivalence proof compares float64 results, got torch.float32: convert both models ...
    """
    for result in (actual, expected):
        if isinstance(result, Tensor) and result.dtype != torch.float64:
            raise TypeError(
                f"an equivalence proof compares float64 results, got {result.dtype}: "
                "convert both models and the inputs with .double()"
            )
    assert_close(actual, expected, depth=depth, scale=scale, msg=msg)
