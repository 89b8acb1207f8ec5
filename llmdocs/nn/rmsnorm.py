"""Root-mean-square layer normalization, the norm of Llama and of most open models since 2023.

    RMSNorm(x) = x / sqrt(mean(x^2) + eps) * g        (Zhang & Sennrich, 2019, eq. 4)

LayerNorm (Ba et al., 2016) centres each vector (subtracts its mean), divides by its standard deviation, then
scales by ``g`` and shifts by ``b``. Zhang and Sennrich found that the re-scaling alone does the work: RMSNorm
drops the mean and the bias, which saves a reduction per vector and a parameter per feature and trains as well.
What remains is invariant to the scale of its input, ``RMSNorm(c x) = RMSNorm(x)`` for ``c > 0``, which is the
property that keeps the residual stream of a deep Pre-LN model trainable.

Low-precision inputs (bfloat16, float16) are normalized in float32 and rounded back before the weight is applied,
as Hugging Face's ``LlamaRMSNorm`` does: the mean of squares of a few hundred bfloat16 numbers would lose most of
its digits.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from llmdocs.nn.checks import check_size

__all__ = ["RMSNorm"]

_LOW_PRECISION = (torch.bfloat16, torch.float16)


class RMSNorm(nn.Module):
    """Divide each vector by its root mean square, then scale each feature by a learned weight.

    y = x / sqrt(mean_i(x_i^2) + eps) * g,  g initialised to ones; no mean is subtracted and there is no bias.

    Args:
        d_model: feature width D, the size of the last dimension that is normalized.
        eps: added to the mean of squares, in the units of ``x^2``; keeps the division finite for an all-zero
            vector (Llama 1 and 2 use 1e-6 or 1e-5, SmolLM2 1e-5).
        compute_dtype: the dtype the statistics are computed in. None (the default): float32 for bfloat16 and
            float16 inputs, the input's own dtype otherwise. ``torch.float32`` always computes in float32, also for
            float64 inputs, which is exactly what Hugging Face's ``LlamaRMSNorm`` does (it rounds every input to
            float32): use it to reproduce that model to the last bit, e.g. in a float64 equivalence proof.

    Shape:
        x (..., D) -> (..., D), in x's dtype when the module has x's dtype (else torch's type promotion of the two).

    Raises:
        ValueError: If ``d_model < 1`` or ``eps`` is not a finite number >= 0.
        TypeError: If ``compute_dtype`` is not None or a floating ``torch.dtype``.

    References:
        Zhang and Sennrich, "Root Mean Square Layer Normalization", NeurIPS 2019, section 4 (eq. 4).
        Touvron et al., "LLaMA: Open and Efficient Foundation Language Models", 2023, section 2.2 (pre-normalization).

    Examples:
        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> norm = RMSNorm(d_model=8)
        >>> x = torch.randn(2, 3, 8)
        >>> y = norm(x)
        >>> y.shape
        torch.Size([2, 3, 8])
        >>> round(y.pow(2).mean(-1).max().item(), 4)  # unit weight: every vector leaves with RMS 1
        1.0
        >>> from llmdocs.testing import assert_close
        >>> no_eps = RMSNorm(d_model=8, eps=0.0)  # eps guards against dividing by zero; it bends the invariance
        >>> assert_close(no_eps(10 * x), no_eps(x))  # scale-invariant: RMSNorm(c x) = RMSNorm(x), c > 0
    """

    def __init__(self, d_model: int, eps: float = 1e-5, compute_dtype: torch.dtype | None = None) -> None:
        super().__init__()
        check_size("d_model", d_model)
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0.0 <= eps < float("inf"):
            raise ValueError(f"eps must be a finite number >= 0, got {eps!r}")
        if compute_dtype is not None and not (
            isinstance(compute_dtype, torch.dtype) and compute_dtype.is_floating_point
        ):
            raise TypeError(f"compute_dtype must be None or a floating torch.dtype, got {compute_dtype!r}")
        self.d_model = d_model
        self.eps = float(eps)
        self.compute_dtype = compute_dtype
        self.weight = nn.Parameter(torch.ones(d_model))  # g, one gain per feature

    def forward(self, x: Tensor) -> Tensor:
        """Normalize the last dimension of ``x`` (..., D); returns (..., D) in ``x``'s dtype.

        Raises:
            ValueError: If the last dimension of ``x`` is not ``d_model``.
            TypeError: If ``x`` is not a floating-point tensor.
        """
        if not isinstance(x, Tensor) or not x.is_floating_point():
            kind = x.dtype if isinstance(x, Tensor) else type(x).__name__
            raise TypeError(f"x must be a floating-point tensor, got {kind}")
        if x.dim() == 0 or x.size(-1) != self.d_model:
            raise ValueError(f"x must have shape (..., d_model={self.d_model}), got {tuple(x.shape)}")
        input_dtype = x.dtype
        if self.compute_dtype is not None:
            dtype = self.compute_dtype
        else:
            dtype = torch.float32 if input_dtype in _LOW_PRECISION else input_dtype
        hidden = x.to(dtype)  # (..., D)
        mean_square = hidden.pow(2).mean(dim=-1, keepdim=True)  # (..., 1): mean_i x_i^2 = RMS(x)^2
        hidden = hidden * torch.rsqrt(mean_square + self.eps)  # (..., D), RMS 1
        # Rounded back to the input dtype before the gain, in the order Llama's reference code uses.
        return self.weight * hidden.to(input_dtype)  # (..., D)

    def extra_repr(self) -> str:
        """``d_model`` and ``eps`` in the module's printout."""
        return f"{self.d_model}, eps={self.eps}"
