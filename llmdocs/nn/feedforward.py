"""The position-wise feed-forward network of a Transformer layer.

FFN(x) = max(0, x W_1 + b_1) W_2 + b_2   (Vaswani et al., 2017, eq. 2)

The same two-layer MLP is applied to every position independently: attention mixes information
across positions, the feed-forward network transforms each position on its own.
"""

from __future__ import annotations

from collections.abc import Callable

import torch.nn.functional as F
from torch import Tensor, nn


def gelu_tanh(x: Tensor) -> Tensor:
    """GELU with GPT-2's tanh approximation.

    GELU(x) ~= 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))

    References:
        Hendrycks and Gimpel, "Gaussian Error Linear Units (GELUs)", 2016, section 2.

    Examples:
        >>> import torch
        >>> gelu_tanh(torch.tensor([-1.0, 0.0, 1.0])).round(decimals=4)
        tensor([-0.1588,  0.0000,  0.8412])
    """
    return F.gelu(x, approximate="tanh")


ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {"relu": F.relu, "gelu": F.gelu, "gelu_tanh": gelu_tanh}
"""Activation functions accepted by name: ReLU (the 2017 paper), exact GELU (BERT), GELU's tanh form (GPT-2)."""


def get_activation(name: str) -> Callable[[Tensor], Tensor]:
    """Look up an activation function by name (``"relu"``, ``"gelu"`` or ``"gelu_tanh"``).

    Examples:
        >>> import torch
        >>> get_activation("relu")(torch.tensor([-1.0, 2.0]))
        tensor([0., 2.])
    """
    if name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name]


class PositionwiseFeedForward(nn.Module):
    """Two linear maps with a non-linearity between them, expanding D -> F -> D.

    Args:
        d_model: model width D.
        d_ff: hidden width F (4 * D in the paper: 2048 for D = 512).
        dropout: dropout on the hidden activations (training only).
        activation: ``"relu"`` (the paper), ``"gelu"`` (BERT) or ``"gelu_tanh"`` (GPT-2).
        bias: whether both linear maps have a bias (GPT-2 does; nanoGPT and LLaMA-style models often don't).

    Shape:
        x (B, T, D) -> (B, T, D).

    References:
        Vaswani et al., "Attention Is All You Need", NeurIPS 2017, section 3.3.

    Examples:
        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> ff = PositionwiseFeedForward(d_model=8, d_ff=32)
        >>> x = torch.randn(2, 5, 8)
        >>> ff(x).shape
        torch.Size([2, 5, 8])
        >>> from llmdocs.testing import assert_close
        >>> assert_close(ff(x)[:, 2], ff(x[:, 2:3])[:, 0])  # each position on its own
    """

    def __init__(
        self, d_model: int, d_ff: int, dropout: float = 0.0, activation: str = "relu", bias: bool = True
    ) -> None:
        super().__init__()
        self.activation_name = activation
        self.activation = get_activation(activation)
        self.fc1 = nn.Linear(d_model, d_ff, bias=bias)  # W_1, b_1
        self.fc2 = nn.Linear(d_ff, d_model, bias=bias)  # W_2, b_2
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        """Apply FFN to every position of x (B, T, D)."""
        hidden = self.dropout(self.activation(self.fc1(x)))  # (B, T, F)
        return self.fc2(hidden)  # (B, T, D)
