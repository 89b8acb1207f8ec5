"""Encoder and decoder layers of the Transformer, with Post-LN or Pre-LN placement.

Each sub-layer (attention or feed-forward) is wrapped in a residual connection and a LayerNorm.
Where the norm goes is the ``norm_first`` flag:

    Post-LN (the 2017 paper, norm_first=False):  x = LayerNorm(x + Dropout(Sublayer(x)))
    Pre-LN  (GPT-2 and later, norm_first=True):  x = x + Dropout(Sublayer(LayerNorm(x)))

Pre-LN keeps an identity path from input to output and trains stably without learning-rate warm-up
tricks (Xiong et al., 2020); it needs one final LayerNorm after the stack.
"""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor, nn

from llmdocs.nn.attention import KVCache, MultiHeadAttention
from llmdocs.nn.feedforward import PositionwiseFeedForward


class DecoderLayerCache(NamedTuple):
    """The two key/value caches of one decoder layer (see [KVCache][llmdocs.nn.attention.KVCache])."""

    self_attn: KVCache
    """Grows by one entry per decoded token."""
    cross_attn: KVCache
    """Encoder memory, projected once (``static=True``)."""


class EncoderLayer(nn.Module):
    """Self-attention then feed-forward, each with residual, dropout and LayerNorm.

    Args:
        d_model: model width D.
        n_heads: attention heads H.
        d_ff: feed-forward hidden width F.
        dropout: dropout on attention weights, feed-forward hidden units and both residual branches.
        norm_first: True for Pre-LN, False for Post-LN (the original paper).
        activation: ``"relu"`` or ``"gelu"``.
        layer_norm_eps: epsilon of the LayerNorms.
        ffn_dropout: dropout on the feed-forward hidden units alone, when it differs from ``dropout``
            (BERT has none there: ``ffn_dropout=0.0``); None means ``dropout``.

    Attributes:
        last_self_weights: attention weights (B, H, S, S) of the last call with ``need_weights=True``.

    Shape:
        x (B, S, D), mask broadcastable to (B, H, S, S) -> (B, S, D).

    References:
        Vaswani et al., "Attention Is All You Need", NeurIPS 2017, section 3.1.
        Xiong et al., "On Layer Normalization in the Transformer Architecture", ICML 2020.

    Examples:
        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> layer = EncoderLayer(d_model=8, n_heads=2, d_ff=16, dropout=0.0).eval()
        >>> layer(torch.randn(2, 5, 8), need_weights=True).shape
        torch.Size([2, 5, 8])
        >>> layer.last_self_weights.shape
        torch.Size([2, 2, 5, 5])
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        d_ff: int,
        dropout: float = 0.1,
        norm_first: bool = True,
        activation: str = "relu",
        layer_norm_eps: float = 1e-5,
        ffn_dropout: float | None = None,
    ) -> None:
        super().__init__()
        self.norm_first = norm_first
        self.self_attn = MultiHeadAttention(d_model, n_heads, dropout=dropout)
        ffn_p = dropout if ffn_dropout is None else ffn_dropout
        self.ff = PositionwiseFeedForward(d_model, d_ff, dropout=ffn_p, activation=activation)
        self.norm1 = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.norm2 = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.last_self_weights: Tensor | None = None

    def _self_attention(self, x: Tensor, mask: Tensor | None, need_weights: bool) -> Tensor:
        out, self.last_self_weights = self.self_attn(x, mask=mask, need_weights=need_weights)
        return self.dropout1(out)

    def forward(self, x: Tensor, mask: Tensor | None = None, need_weights: bool = False) -> Tensor:
        """Encode x (B, S, D); ``mask`` is bool, True = may attend (e.g. a padding mask)."""
        if self.norm_first:
            x = x + self._self_attention(self.norm1(x), mask, need_weights)
            x = x + self.dropout2(self.ff(self.norm2(x)))
        else:
            x = self.norm1(x + self._self_attention(x, mask, need_weights))
            x = self.norm2(x + self.dropout2(self.ff(x)))
        return x  # (B, S, D)


class DecoderLayer(nn.Module):
    """Masked self-attention, cross-attention to the encoder memory, then feed-forward.

    Args:
        d_model: model width D.
        n_heads: attention heads H.
        d_ff: feed-forward hidden width F.
        dropout: dropout on attention weights, feed-forward hidden units and the residual branches.
        norm_first: True for Pre-LN, False for Post-LN (the original paper).
        activation: ``"relu"`` or ``"gelu"``.
        layer_norm_eps: epsilon of the LayerNorms.

    Attributes:
        last_self_weights: self-attention weights (B, H, T, T) of the last ``need_weights`` call.
        last_cross_weights: cross-attention weights (B, H, T, S) of the last ``need_weights`` call.

    Shape:
        x (B, T, D), memory (B, S, D), self_mask -> (B, H, T, T), memory_mask -> (B, H, T, S);
        output (B, T, D).

    References:
        Vaswani et al., "Attention Is All You Need", NeurIPS 2017, section 3.1.

    Examples:
        >>> import torch
        >>> from llmdocs.nn.attention import causal_mask
        >>> _ = torch.manual_seed(0)
        >>> layer = DecoderLayer(d_model=8, n_heads=2, d_ff=16, dropout=0.0).eval()
        >>> x, memory = torch.randn(2, 4, 8), torch.randn(2, 6, 8)
        >>> layer(x, memory, self_mask=causal_mask(4), need_weights=True).shape
        torch.Size([2, 4, 8])
        >>> layer.last_cross_weights.shape
        torch.Size([2, 2, 4, 6])
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        d_ff: int,
        dropout: float = 0.1,
        norm_first: bool = True,
        activation: str = "relu",
        layer_norm_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.norm_first = norm_first
        self.self_attn = MultiHeadAttention(d_model, n_heads, dropout=dropout)
        self.cross_attn = MultiHeadAttention(d_model, n_heads, dropout=dropout)
        self.ff = PositionwiseFeedForward(d_model, d_ff, dropout=dropout, activation=activation)
        self.norm1 = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.norm2 = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.norm3 = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)
        self.last_self_weights: Tensor | None = None
        self.last_cross_weights: Tensor | None = None

    def forward(
        self,
        x: Tensor,
        memory: Tensor,
        self_mask: Tensor | None = None,
        memory_mask: Tensor | None = None,
        need_weights: bool = False,
        cache: DecoderLayerCache | None = None,
    ) -> Tensor:
        """Decode x (B, T, D) against memory (B, S, D).

        Args:
            x: target-side hidden states (B, T, D); with a cache, only the new positions.
            memory: encoder output (B, S, D).
            self_mask: bool, broadcastable to (B, H, T, T_past + T); usually causal.
            memory_mask: bool, broadcastable to (B, H, T, S); usually the source padding mask.
            need_weights: store ``last_self_weights`` and ``last_cross_weights``.
            cache: optional per-layer key/value caches for incremental decoding.

        Returns:
            Hidden states (B, T, D).
        """
        self_cache = cache.self_attn if cache is not None else None
        cross_cache = cache.cross_attn if cache is not None else None

        def self_block(h: Tensor) -> Tensor:
            out, self.last_self_weights = self.self_attn(h, mask=self_mask, need_weights=need_weights, cache=self_cache)
            return self.dropout1(out)

        def cross_block(h: Tensor) -> Tensor:
            out, self.last_cross_weights = self.cross_attn(
                h, memory, mask=memory_mask, need_weights=need_weights, cache=cross_cache
            )
            return self.dropout2(out)

        if self.norm_first:
            x = x + self_block(self.norm1(x))
            x = x + cross_block(self.norm2(x))
            x = x + self.dropout3(self.ff(self.norm3(x)))
        else:
            x = self.norm1(x + self_block(x))
            x = self.norm2(x + cross_block(x))
            x = self.norm3(x + self.dropout3(self.ff(x)))
        return x  # (B, T, D)
