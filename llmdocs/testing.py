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
Complex results get the budget of their parts' dtype (complex128: float64's); float8 and float4 have none and are
refused. NaN never equals NaN (``torch.testing.assert_close``'s ``equal_nan=False``): a NaN fails every check.

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

import math
import numbers
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

__all__ = ["EPS_PER_LEVEL", "MAX_RTOL", "Tolerance", "assert_close", "assert_equivalent", "tolerance"]

EPS_PER_LEVEL: dict[torch.dtype, int] = {
    torch.float64: 64,  # accumulates in float64: sums of D or F terms, softmax, LayerNorm, per layer
    torch.float32: 64,  # accumulates in float32; AVX2 and AVX-512 split the same sums differently
    torch.bfloat16: 16,  # products are accumulated in float32: only the rounding of each stored result counts
    torch.float16: 16,
}
"""Machine epsilons of error budget per level of depth, for each floating dtype; a complex dtype uses the entry of
its parts' dtype (``dtype.to_real()``). A dtype without an entry (float8, float4) has no budget: ``tolerance``
refuses it rather than invent one. Measured on the course's tiny models (5 seeds; default, AVX2 and AVX-512
kernels): two float32 or float64 implementations of one function differ by at most 16 eps of the output's scale
per layer (65 eps after 4 layers); a float32 result is at most 30 eps from the float64 one after 1 layer, a
bfloat16 result 8 eps per layer.
"""


MAX_RTOL = 0.5
"""The widest ``rtol`` ``tolerance`` gives: beyond it a result off by half its own size passes, so the check tests
nothing (bfloat16 reaches it at depth 4, float16 at depth 32, float32 at depth 65,536, float64 at 2**45)."""


class Tolerance(NamedTuple):
    """The ``rtol`` and ``atol`` that ``torch.testing.assert_close`` takes: ``|a - e| <= atol + rtol * |e|``."""

    rtol: float
    atol: float


def tolerance(dtype: torch.dtype, depth: int = 1, scale: float = 1.0) -> Tolerance:
    """The tolerance of a comparison of ``dtype`` results computed through ``depth`` levels.

    rtol = depth * EPS_PER_LEVEL[dtype] * eps(dtype),  atol = rtol * scale

    Args:
        dtype: the ``torch.dtype`` both results are computed in: float64, float32, bfloat16, float16 or a complex
            dtype of these (its parts' budget). Integer and bool results must be equal: ``(0, 0)``.
        depth: the number of sequential levels the rounding errors pass through: a model's number of layers
            (its embeddings and output head are covered by the budget), 1 for one layer, one function or a
            formula, the number of optimizer steps for a training run.
        scale: the magnitude the absolute error is relative to, usually the largest ``|expected|``: a finite
            number >= 0 (an infinite ``atol`` would pass anything), or a one-element tensor. It is trusted: a
            result that cancels to zero legitimately needs a scale far above its own size (the inputs'), so
            no bound is put on it; pass the largest magnitude the computation really involves.

    Returns:
        The ``Tolerance(rtol, atol)``.

    Raises:
        TypeError: ``dtype`` is not a ``torch.dtype``, ``depth`` not an integer, or ``scale`` not a number.
        ValueError: ``depth < 1``; a ``depth`` that makes ``rtol`` exceed ``MAX_RTOL`` (0.5); a negative, NaN or
            infinite ``scale`` (or a tensor of several numbers); a floating dtype without a budget in
            ``EPS_PER_LEVEL`` (float8, float4).

    Examples:
        >>> tolerance(torch.float32)  # 64 machine epsilons of float32
        Tolerance(rtol=7.62939453125e-06, atol=7.62939453125e-06)
        >>> tolerance(torch.float32, depth=2, scale=10.0).atol / tolerance(torch.float32).atol
        20.0
        >>> tolerance(torch.int64)
        Tolerance(rtol=0.0, atol=0.0)
        >>> tolerance(torch.bfloat16, depth=5)
        Traceback (most recent call last):
        ...
        ValueError: a tolerance this wide checks nothing: rtol=0.625 from depth=5 of dtype torch.bfloat16 ...
        >>> tolerance(torch.float32, scale=float("inf"))
        Traceback (most recent call last):
        ...
        ValueError: scale must be a finite number >= 0 (the magnitude errors are relative to), got inf: ...
    """
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"dtype must be a torch.dtype such as torch.float32, got {type(dtype).__name__} {dtype!r}")
    depth = _as_depth(depth)
    scale = _as_scale(scale)
    if not (dtype.is_floating_point or dtype.is_complex):
        return Tolerance(0.0, 0.0)
    real = dtype.to_real()  # the dtype of a complex number's parts, which is what rounds
    if real not in EPS_PER_LEVEL:
        budgets = ", ".join(str(d).removeprefix("torch.") for d in EPS_PER_LEVEL)
        raise ValueError(
            f"dtype {dtype} has no error budget (EPS_PER_LEVEL covers {budgets} and their complex types): "
            "compare the results after converting them to one of those, e.g. with .float()"
        )
    rtol = depth * EPS_PER_LEVEL[real] * torch.finfo(real).eps
    if rtol > MAX_RTOL:
        raise ValueError(
            f"a tolerance this wide checks nothing: rtol={rtol:g} from depth={depth} of dtype {dtype} "
            f"(at most {MAX_RTOL:g}: half the value itself); compare after fewer levels, or in a wider dtype"
        )
    return Tolerance(rtol=rtol, atol=rtol * scale)


def _as_depth(depth: object) -> int:
    """``depth`` as an int >= 1 (numpy integers too, not bools)."""
    expected = "an integer >= 1 (the number of layers)"
    if isinstance(depth, bool) or not isinstance(depth, numbers.Integral):
        raise TypeError(f"depth must be {expected}, got {type(depth).__name__} {depth!r}")
    if depth < 1:
        raise ValueError(f"depth must be {expected}, got {depth!r}")
    return int(depth)


def _as_scale(scale: object) -> float:
    """``scale`` as a finite float >= 0: a real number (not a bool) or a one-element real tensor."""
    expected = "a finite number >= 0 (the magnitude errors are relative to)"
    if isinstance(scale, Tensor):
        if scale.numel() != 1 or scale.is_complex() or scale.dtype == torch.bool:
            raise ValueError(f"scale must be {expected}, got a {scale.dtype} tensor of shape {tuple(scale.shape)}")
        value = float(scale.detach())
    elif isinstance(scale, numbers.Real) and not isinstance(scale, bool):
        value = float(scale)
    else:
        raise TypeError(f"scale must be {expected}, got {type(scale).__name__} {scale!r}")
    if math.isinf(value):
        raise ValueError(f"scale must be {expected}, got {value}: an infinite atol would let any result pass")
    if not value >= 0:  # also NaN
        raise ValueError(f"scale must be {expected}, got {value}")
    return value


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
    match) whose ``rtol`` and ``atol`` come from the policy instead of the call site. NaN never equals NaN
    (``equal_nan=False``): a NaN in either result fails, as a test of a finite computation should. To compare
    results that are meant to hold NaN, check ``torch.equal(actual.isnan(), expected.isnan())`` and then compare
    the other elements.

    Args:
        actual: the result under test.
        expected: the reference result, of the same dtype.
        depth: the number of layers between the inputs and the results (see ``tolerance``).
        scale: the magnitude errors are relative to: a finite number >= 0 or a one-element tensor. Default: the
            largest finite ``|expected|``. Pass the inputs' magnitude when ``expected`` is a cancellation to
            (nearly) zero, e.g. the mean of a centred tensor. A given scale is trusted, not bounded (see
            ``tolerance``).
        msg: what is compared (a str), printed before the details when the check fails.

    Raises:
        AssertionError: the results differ by more than the tolerance (a NaN always does), or their dtypes,
            shapes or devices differ.
        TypeError: a result is not a tensor, or ``depth``, ``scale`` or ``msg`` has the wrong type.
        ValueError: ``depth``, ``scale`` or the dtype is out of the policy's range (see ``tolerance``).

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
    if msg is not None and not isinstance(msg, str):
        raise TypeError(f"msg must be a str (what is compared) or None, got {type(msg).__name__} {msg!r}")
    if actual.dtype != expected.dtype:
        raise AssertionError(
            f"{msg + ': ' if msg else ''}dtypes differ: {actual.dtype} vs {expected.dtype}. The tolerance comes "
            "from the dtype: compare results computed in one dtype (float64 for an equivalence proof)."
        )
    scale = _scale_of(expected) if scale is None else _as_scale(scale)
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
    inputs with ``.double()`` (the interop builders keep the dtype of the model they copy). Complex results are
    compared in complex128, float64's complex type, with the same budget.

    Args:
        actual: our result, float64 (or complex128).
        expected: the reference result, of the same dtype.
        depth: the number of layers between the inputs and the results.
        scale: the magnitude errors are relative to (default: the largest finite ``|expected|``).
        msg: what is compared, printed before the details when the check fails.

    Raises:
        TypeError: a result is not float64 or complex128: the proof would only hold to float32's rounding.
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
        if isinstance(result, Tensor) and result.dtype not in (torch.float64, torch.complex128):
            how = ".to(torch.complex128), float64's complex type" if result.is_complex() else ".double()"
            raise TypeError(
                f"an equivalence proof compares float64 results, got {result.dtype}: "
                f"convert both models and the inputs with {how}"
            )
    assert_close(actual, expected, depth=depth, scale=scale, msg=msg)
