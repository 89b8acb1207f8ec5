"""A standalone Pre-LN Transformer encoder: token ids in, one contextual vector per token out.

    x = Dropout(Embed(ids) * sqrt(D) + PE);  h = LayerNorm(EncoderLayer_N(... EncoderLayer_1(x)))

The encoder half of [Transformer][llmdocs.models.transformer.Transformer], on its own: what a classifier or a
sentence encoder builds on.
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from llmdocs.models.transformer import Encoder, _init_weights
from llmdocs.nn.attention import padding_mask
from llmdocs.nn.checks import check_token_ids
from llmdocs.nn.positional import SinusoidalPositionalEncoding

__all__ = ["TransformerEncoder"]


class TransformerEncoder(nn.Module):
    """A standalone Pre-LN Transformer encoder: token ids -> contextual vectors.

    x = Dropout(Embed(ids) * sqrt(D) + PE); then N Pre-LN [EncoderLayer][llmdocs.nn.transformer_layers.EncoderLayer]s
    and a final LayerNorm. Padding tokens (``pad_id``) are masked out of attention.

    Args:
        vocab_size: vocabulary size V.
        d_model: model width D.
        num_heads: attention heads H.
        d_ff: feed-forward width F.
        num_layers: number of layers N.
        dropout: dropout probability.
        max_len: longest input sequence.
        pad_id: padding token id.

    Shape:
        src (B, S) integer ids -> (B, S, D).

    References:
        Vaswani et al., "Attention Is All You Need", NeurIPS 2017;
        Xiong et al., "On Layer Normalization in the Transformer Architecture", ICML 2020.

    Examples:
        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> encoder = TransformerEncoder(vocab_size=50, d_model=16, num_heads=4, d_ff=32, num_layers=2)
        >>> encoder(torch.randint(1, 50, (3, 9))).shape
        torch.Size([3, 9, 16])
    """

    def __init__(
        self,
        vocab_size: int,
        d_model: int,
        num_heads: int,
        d_ff: int,
        num_layers: int,
        dropout: float = 0.1,
        max_len: int = 512,
        pad_id: int = 0,
    ) -> None:
        super().__init__()
        if d_model % num_heads != 0:
            raise ValueError(f"d_model={d_model} is not divisible by num_heads={num_heads}")
        if not 0 <= pad_id < vocab_size:
            raise ValueError(f"pad_id={pad_id} is not in [0, vocab_size={vocab_size})")
        self.d_model = d_model
        self.pad_id = pad_id
        self.embed = nn.Embedding(vocab_size, d_model, padding_idx=pad_id)
        self.pos = SinusoidalPositionalEncoding(d_model, max_len)
        self.dropout = nn.Dropout(dropout)
        self.encoder = Encoder(d_model, num_heads, d_ff, num_layers, dropout, norm_first=True)
        _init_weights(self, [self.embed], d_model)

    def forward(self, src: Tensor, src_mask: Tensor | None = None, need_weights: bool = False) -> Tensor:
        """Encode ids (B, S) into (B, S, D); ``src_mask`` defaults to the padding mask."""
        check_token_ids(src, self.embed.num_embeddings, "src")
        if src_mask is None:
            src_mask = padding_mask(src, self.pad_id)  # (B, 1, 1, S)
        x = self.embed(src) * math.sqrt(self.d_model)  # (B, S, D)
        x = self.dropout(self.pos(x))  # (B, S, D)
        return self.encoder(x, src_mask, need_weights)  # (B, S, D)
