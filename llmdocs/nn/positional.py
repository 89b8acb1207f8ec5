"""Positional information for an attention model, which is otherwise blind to token order.

Two variants from Vaswani et al. (2017), section 3.5: fixed sinusoids and learned embeddings. Both
modules add the position signal to the token embeddings: ``x + P[offset : offset + T]``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def sinusoidal_table(max_len: int, d_model: int) -> Tensor:
    """The table of sinusoidal encodings, one row per position.

    PE(pos, 2i) = sin(pos / 10000^(2i / d_model)),  PE(pos, 2i + 1) = cos(pos / 10000^(2i / d_model))

    Each pair of columns is a rotation at its own frequency, so PE(pos + k) is a linear function of
    PE(pos): relative offsets are easy to attend to.

    Args:
        max_len: number of positions (rows).
        d_model: encoding width (columns); odd widths drop the last cosine column.

    Returns:
        Float tensor of shape (max_len, d_model) with values in [-1, 1].

    References:
        Vaswani et al., "Attention Is All You Need", NeurIPS 2017, section 3.5.

    Examples:
        >>> pe = sinusoidal_table(max_len=50, d_model=16)
        >>> pe.shape
        torch.Size([50, 16])
        >>> pe[0, :4].tolist()  # position 0: sin(0) = 0, cos(0) = 1
        [0.0, 1.0, 0.0, 1.0]
    """
    if max_len < 1 or d_model < 1:
        raise ValueError(f"max_len and d_model must be >= 1, got {max_len}, {d_model}")
    position = torch.arange(max_len, dtype=torch.float32)[:, None]  # (max_len, 1)
    # 1 / 10000^(2i / d_model) for i = 0 .. ceil(d_model / 2) - 1, computed in log space
    inv_freq = torch.exp(
        torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model)
    )  # (ceil(D / 2),)
    angles = position * inv_freq  # (max_len, ceil(D / 2))
    table = torch.zeros(max_len, d_model)
    table[:, 0::2] = torch.sin(angles)
    table[:, 1::2] = torch.cos(angles[:, : d_model // 2])
    return table  # (max_len, D)


def _check_length(T: int, offset: int, max_len: int) -> None:
    if offset < 0:
        raise ValueError(f"offset must be >= 0, got {offset}")
    if offset + T > max_len:
        raise ValueError(
            f"sequence length {offset + T} (offset={offset} + T={T}) exceeds max_len={max_len} of the positional table"
        )


class SinusoidalPositionalEncoding(nn.Module):
    """Adds the fixed [sinusoidal_table][llmdocs.nn.positional.sinusoidal_table] to the input.

    The table is a non-persistent buffer: it moves with ``.to(device)`` but is not saved in
    checkpoints (it is recomputed).

    Args:
        d_model: model width D.
        max_len: longest supported sequence.

    Shape:
        x (B, T, D) -> (B, T, D); requires ``offset + T <= max_len``.

    References:
        Vaswani et al., "Attention Is All You Need", NeurIPS 2017, section 3.5.

    Examples:
        >>> import torch
        >>> pos = SinusoidalPositionalEncoding(d_model=8, max_len=16)
        >>> out = pos(torch.zeros(2, 5, 8))
        >>> out.shape
        torch.Size([2, 5, 8])
        >>> torch.equal(pos(torch.zeros(1, 1, 8), offset=4)[0, 0], out[0, 4])  # incremental decoding
        True
    """

    def __init__(self, d_model: int, max_len: int = 5000) -> None:
        super().__init__()
        self.d_model = d_model
        self.max_len = max_len
        self.table: Tensor
        self.register_buffer("table", sinusoidal_table(max_len, d_model), persistent=False)

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        """Return ``x + PE[offset : offset + T]`` for x of shape (B, T, D)."""
        T = x.size(1)
        _check_length(T, offset, self.max_len)
        return x + self.table[offset : offset + T].to(x.dtype)  # (B, T, D)


class LearnedPositionalEmbedding(nn.Module):
    """A trainable vector per position, added to the input (as in BERT and GPT-2).

    Args:
        d_model: model width D.
        max_len: number of positions with an embedding; longer inputs raise ``ValueError``.

    Shape:
        x (B, T, D) -> (B, T, D); requires ``offset + T <= max_len``.

    References:
        Vaswani et al., "Attention Is All You Need", NeurIPS 2017, section 3.5 and Table 3 (E).

    Examples:
        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> pos = LearnedPositionalEmbedding(d_model=8, max_len=16)
        >>> pos(torch.zeros(2, 5, 8)).shape
        torch.Size([2, 5, 8])
    """

    def __init__(self, d_model: int, max_len: int = 512) -> None:
        super().__init__()
        self.d_model = d_model
        self.max_len = max_len
        self.embedding = nn.Embedding(max_len, d_model)
        nn.init.normal_(self.embedding.weight, std=0.02)

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        """Return ``x + E[offset : offset + T]`` for x of shape (B, T, D)."""
        T = x.size(1)
        _check_length(T, offset, self.max_len)
        positions = torch.arange(offset, offset + T, device=x.device)  # (T,)
        return x + self.embedding(positions)  # (B, T, D)
