"""The SwiGLU feed-forward network of Llama-style models, a gated MLP.

    FFN_SwiGLU(x) = (Swish(x W) * (x V)) W_2        (Shazeer, 2020, eq. 6; Swish_1 = SiLU, no biases)

GPT-2's feed-forward network, ``GELU(x W_1) W_2``, has two matrices. A gated linear unit (Dauphin et al., 2017)
multiplies an activated projection (the *gate*) elementwise with a second, linear one (the *up* projection);
Shazeer found the Swish-gated variant the best of the family at the same compute. It has three matrices, so to keep
the parameter count of a 4D-wide two-matrix MLP the hidden width shrinks by 2/3: 3 * D * (2/3 * 4D) = 2 * D * 4D.
Llama then rounds that width up to a multiple of 256 ([swiglu_hidden_dim][llmdocs.nn.swiglu.swiglu_hidden_dim]).

The names of the three maps follow Hugging Face's ``LlamaMLP``: ``gate_proj`` (W, Meta's ``w1``), ``up_proj`` (V,
``w3``), ``down_proj`` (W_2, ``w2``).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from llmdocs.nn.checks import check_size

__all__ = ["SwiGLU", "swiglu_hidden_dim"]


def swiglu_hidden_dim(d_model: int, multiple_of: int = 256, ffn_dim_multiplier: float | None = None) -> int:
    """Llama's hidden width of the SwiGLU network: 2/3 of 4D, rounded up to a multiple of ``multiple_of``.

    F = multiple_of * ceil(int(ffn_dim_multiplier * int(2 * 4D / 3)) / multiple_of)

    The 2/3 keeps the three matrices of SwiGLU at the parameter count of GPT-2's two 4D-wide ones; rounding up to a
    multiple of 256 makes the matrix shapes friendly to GPU kernels.

    Args:
        d_model: model width D.
        multiple_of: F is rounded up to a multiple of this (256 in Llama 1 and 2 7B-13B, 4096 in Llama 2 70B,
            1024 in Llama 3 8B).
        ffn_dim_multiplier: an extra factor applied before rounding (1.3 in Llama 2 70B and Llama 3); None for 1.

    Returns:
        The hidden width F.

    Raises:
        ValueError: If ``d_model`` or ``multiple_of`` is not an integer >= 1, or ``ffn_dim_multiplier`` is not > 0.

    References:
        Touvron et al., "LLaMA: Open and Efficient Foundation Language Models", 2023, section 2.2 (SwiGLU, "2/3 4d"),
        and the reference code's ``FeedForward``.

    Examples:
        >>> swiglu_hidden_dim(4096)  # Llama-7B
        11008
        >>> swiglu_hidden_dim(5120)  # Llama-13B
        13824
        >>> swiglu_hidden_dim(8192, multiple_of=4096, ffn_dim_multiplier=1.3)  # Llama-2-70B
        28672
    """
    check_size("d_model", d_model)
    check_size("multiple_of", multiple_of)
    hidden = int(2 * 4 * d_model / 3)  # 2/3 of GPT-2's 4D
    if ffn_dim_multiplier is not None:
        if isinstance(ffn_dim_multiplier, bool) or not ffn_dim_multiplier > 0:
            raise ValueError(f"ffn_dim_multiplier must be None or a number > 0, got {ffn_dim_multiplier!r}")
        hidden = int(ffn_dim_multiplier * hidden)
    return multiple_of * -(-hidden // multiple_of)  # round up


class SwiGLU(nn.Module):
    """A gated feed-forward network: ``down_proj(silu(gate_proj(x)) * up_proj(x))``, D -> F -> D.

    Args:
        d_model: model width D.
        d_ff: hidden width F; [swiglu_hidden_dim][llmdocs.nn.swiglu.swiglu_hidden_dim] gives Llama's choice
            (11,008 for D = 4,096), SmolLM2-135M uses 1,536 for D = 576.
        bias: whether the three linear maps have a bias (Llama's don't).

    Shape:
        x (..., D) -> (..., D).

    Raises:
        ValueError: If ``d_model`` or ``d_ff`` is not an integer >= 1.

    References:
        Shazeer, "GLU Variants Improve Transformer", 2020, section 2 (eq. 6, FFN_SwiGLU).
        Ramachandran et al., "Searching for Activation Functions", 2017 (Swish; with beta = 1 it is SiLU).

    Examples:
        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> ff = SwiGLU(d_model=12, d_ff=swiglu_hidden_dim(12, multiple_of=1))
        >>> ff.d_ff, sum(p.numel() for p in ff.parameters())  # 3 * 12 * 32 = 2 * 12 * 48: a 4D GELU MLP's count
        (32, 1152)
        >>> ff(torch.randn(2, 5, 12)).shape
        torch.Size([2, 5, 12])
    """

    def __init__(self, d_model: int, d_ff: int, bias: bool = False) -> None:
        super().__init__()
        self.d_model = check_size("d_model", d_model)
        self.d_ff = check_size("d_ff", d_ff)
        self.gate_proj = nn.Linear(d_model, d_ff, bias=bias)  # W: its SiLU gates ...
        self.up_proj = nn.Linear(d_model, d_ff, bias=bias)  # V: ... this linear projection
        self.down_proj = nn.Linear(d_ff, d_model, bias=bias)  # W_2

    def forward(self, x: Tensor) -> Tensor:
        """Apply the network to every position of ``x`` (..., D).

        Raises:
            ValueError: If the last dimension of ``x`` is not ``d_model``.
        """
        if x.dim() == 0 or x.size(-1) != self.d_model:
            raise ValueError(f"x must have shape (..., d_model={self.d_model}), got {tuple(x.shape)}")
        gate = F.silu(self.gate_proj(x))  # (..., F): Swish_1(x W) = x W * sigmoid(x W)
        hidden = gate * self.up_proj(x)  # (..., F): the gated linear unit
        return self.down_proj(hidden)  # (..., D)
