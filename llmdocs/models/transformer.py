"""The encoder-decoder Transformer of "Attention Is All You Need".

    memory = Encoder(Embed(src) * sqrt(D) + PE)
    logits = Decoder(Embed(tgt) * sqrt(D) + PE, memory) W_out^T

Stacks, the model and its config live here; the standalone encoder is
[TransformerEncoder][llmdocs.models.transformer_encoder.TransformerEncoder], the layers are in
[transformer_layers][llmdocs.nn.transformer_layers]. Greedy and beam-search decoding with a key/value
cache are in [decoding][llmdocs.generation.encoder_decoder].
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from llmdocs.nn.attention import KVCache, causal_mask, padding_mask
from llmdocs.nn.checks import check_token_ids
from llmdocs.nn.feedforward import ACTIVATIONS
from llmdocs.nn.positional import LearnedPositionalEmbedding, SinusoidalPositionalEncoding
from llmdocs.nn.transformer_layers import DecoderLayer, DecoderLayerCache, EncoderLayer


@dataclass(frozen=True)
class TransformerConfig:
    """Hyper-parameters of the encoder-decoder [Transformer][llmdocs.models.transformer.Transformer].

    Examples:
        >>> TransformerConfig.tiny().d_model
        32
        >>> TransformerConfig(src_vocab_size=100, tgt_vocab_size=100, d_model=10, n_heads=3)
        Traceback (most recent call last):
        ...
        ValueError: d_model=10 is not divisible by n_heads=3
    """

    src_vocab_size: int  # source vocabulary size V_src
    tgt_vocab_size: int  # target vocabulary size V_tgt (rows of the output projection)
    d_model: int = 512  # model width D, also the embedding size
    n_heads: int = 8  # attention heads H; d_head = d_model // n_heads
    d_ff: int = 2048  # hidden width F of the position-wise feed-forward network
    n_encoder_layers: int = 6  # encoder depth N
    n_decoder_layers: int = 6  # decoder depth N
    dropout: float = 0.1  # P_drop: embeddings, attention weights, FFN hidden units, residuals
    max_len: int = 512  # longest source or target sequence (size of the positional table)
    norm_first: bool = True  # Pre-LN (True) or the paper's Post-LN (False)
    share_embeddings: bool = False  # one embedding matrix for source and target (same vocab)
    tie_output: bool = True  # output projection reuses the target embedding matrix
    pad_id: int = 0  # padding token id, masked out of attention
    positional: str = "sinusoidal"  # "sinusoidal" (fixed) or "learned"
    activation: str = "relu"  # feed-forward non-linearity: "relu" or "gelu"

    def __post_init__(self) -> None:
        for name in ("src_vocab_size", "tgt_vocab_size", "d_model", "n_heads", "d_ff", "max_len"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.d_model % self.n_heads != 0:
            raise ValueError(f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}")
        if self.n_encoder_layers < 1 or self.n_decoder_layers < 1:
            raise ValueError(
                "n_encoder_layers and n_decoder_layers must be >= 1, got "
                f"{self.n_encoder_layers}, {self.n_decoder_layers}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if not 0 <= self.pad_id < min(self.src_vocab_size, self.tgt_vocab_size):
            raise ValueError(f"pad_id={self.pad_id} is not a valid id of both vocabularies")
        if self.positional not in ("sinusoidal", "learned"):
            raise ValueError(f"positional must be 'sinusoidal' or 'learned', got {self.positional!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}")
        if self.share_embeddings and self.src_vocab_size != self.tgt_vocab_size:
            raise ValueError(
                "share_embeddings needs src_vocab_size == tgt_vocab_size, got "
                f"{self.src_vocab_size} != {self.tgt_vocab_size}"
            )

    @classmethod
    def tiny(cls, src_vocab_size: int = 64, tgt_vocab_size: int = 64, **overrides: Any) -> TransformerConfig:
        """A model small enough for tests and doctests (about 60k parameters)."""
        fields: dict[str, Any] = dict(
            d_model=32, n_heads=4, d_ff=64, n_encoder_layers=2, n_decoder_layers=2, max_len=64
        )
        return cls(src_vocab_size, tgt_vocab_size, **{**fields, **overrides})

    @classmethod
    def base(cls, src_vocab_size: int = 37000, tgt_vocab_size: int = 37000, **overrides: Any) -> TransformerConfig:
        """The paper's base model: Post-LN, D=512, H=8, F=2048, N=6, shared and tied embeddings."""
        fields: dict[str, Any] = dict(norm_first=False, share_embeddings=True, tie_output=True)
        return cls(src_vocab_size, tgt_vocab_size, **{**fields, **overrides})


class Encoder(nn.Module):
    """A stack of [EncoderLayer][llmdocs.nn.transformer_layers.EncoderLayer]s, optionally a final norm.

    Args:
        d_model: model width D.
        n_heads: attention heads H.
        d_ff: feed-forward width F.
        n_layers: number of layers N.
        dropout: dropout inside each layer.
        norm_first: Pre-LN (True) or Post-LN (False) layers.
        activation: feed-forward non-linearity.
        final_norm: add a LayerNorm after the last layer; defaults to ``norm_first`` (a Pre-LN stack
            needs it, a Post-LN stack already ends with one). ``torch.nn.Transformer`` always has it.

    Shape:
        x (B, S, D), mask broadcastable to (B, H, S, S) -> (B, S, D).

    Examples:
        >>> import torch
        >>> encoder = Encoder(d_model=8, n_heads=2, d_ff=16, n_layers=2).eval()
        >>> encoder(torch.randn(2, 5, 8)).shape
        torch.Size([2, 5, 8])
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        d_ff: int,
        n_layers: int,
        dropout: float = 0.1,
        norm_first: bool = True,
        activation: str = "relu",
        final_norm: bool | None = None,
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            EncoderLayer(d_model, n_heads, d_ff, dropout, norm_first, activation) for _ in range(n_layers)
        )
        final_norm = norm_first if final_norm is None else final_norm
        self.norm = nn.LayerNorm(d_model) if final_norm else None

    def forward(self, x: Tensor, mask: Tensor | None = None, need_weights: bool = False) -> Tensor:
        """Run every layer on x (B, S, D); weights are stored on the layers when requested."""
        for layer in self.layers:
            x = layer(x, mask=mask, need_weights=need_weights)  # (B, S, D)
        return self.norm(x) if self.norm is not None else x


class DecoderCache:
    """Key/value caches of all decoder layers, for incremental (token-by-token) decoding.

    Pass the same object to every [Transformer.decode][llmdocs.models.transformer.Transformer.decode] call
    of one generation, feeding only the new tokens; ``reorder`` follows beam-search survivors.

    Attributes:
        layers: one [DecoderLayerCache][llmdocs.nn.transformer_layers.DecoderLayerCache] per layer.

    Examples:
        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> model = Transformer(TransformerConfig.tiny()).eval()
        >>> src, tgt = torch.randint(1, 64, (2, 6)), torch.randint(1, 64, (2, 4))
        >>> memory = model.encode(src)
        >>> cache = model.new_cache()
        >>> steps = [model.decode(tgt[:, t : t + 1], memory, cache=cache) for t in range(4)]
        >>> len(cache)  # four target positions cached
        4
        >>> from llmdocs.testing import assert_close
        >>> assert_close(torch.cat(steps, dim=1), model.decode(tgt, memory), depth=4)  # 2 encoder + 2 decoder layers
    """

    def __init__(self, n_layers: int) -> None:
        self.layers = [DecoderLayerCache(KVCache(), KVCache(static=True)) for _ in range(n_layers)]

    def __len__(self) -> int:
        """Number of target positions already cached."""
        return len(self.layers[0].self_attn) if self.layers else 0

    def reorder(self, index: Tensor, cross_attn: bool = True) -> None:
        """Keep batch rows ``index`` (N,) of every cache, in that order.

        ``cross_attn=False`` leaves the memory caches alone: correct (and cheaper) when every row is
        replaced by a row of the same source sentence, as between the beams of one sentence.
        """
        for layer_cache in self.layers:
            layer_cache.self_attn.reorder(index)
            if cross_attn:
                layer_cache.cross_attn.reorder(index)


class Decoder(nn.Module):
    """A stack of [DecoderLayer][llmdocs.nn.transformer_layers.DecoderLayer]s, optionally a final norm.

    Args:
        d_model: model width D.
        n_heads: attention heads H.
        d_ff: feed-forward width F.
        n_layers: number of layers N.
        dropout: dropout inside each layer.
        norm_first: Pre-LN (True) or Post-LN (False) layers.
        activation: feed-forward non-linearity.
        final_norm: add a LayerNorm after the last layer; defaults to ``norm_first``.

    Shape:
        x (B, T, D), memory (B, S, D) -> (B, T, D).

    Examples:
        >>> import torch
        >>> decoder = Decoder(d_model=8, n_heads=2, d_ff=16, n_layers=2).eval()
        >>> decoder(torch.randn(2, 4, 8), torch.randn(2, 6, 8)).shape
        torch.Size([2, 4, 8])
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        d_ff: int,
        n_layers: int,
        dropout: float = 0.1,
        norm_first: bool = True,
        activation: str = "relu",
        final_norm: bool | None = None,
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            DecoderLayer(d_model, n_heads, d_ff, dropout, norm_first, activation) for _ in range(n_layers)
        )
        final_norm = norm_first if final_norm is None else final_norm
        self.norm = nn.LayerNorm(d_model) if final_norm else None

    def new_cache(self) -> DecoderCache:
        """An empty [DecoderCache][llmdocs.models.transformer.DecoderCache] for this stack."""
        return DecoderCache(len(self.layers))

    def forward(
        self,
        x: Tensor,
        memory: Tensor,
        self_mask: Tensor | None = None,
        memory_mask: Tensor | None = None,
        need_weights: bool = False,
        cache: DecoderCache | None = None,
    ) -> Tensor:
        """Run every layer; with ``cache``, x holds only the new positions (B, T_new, D)."""
        for i, layer in enumerate(self.layers):
            layer_cache = cache.layers[i] if cache is not None else None
            x = layer(x, memory, self_mask, memory_mask, need_weights, layer_cache)  # (B, T, D)
        return self.norm(x) if self.norm is not None else x


def _init_weights(module: nn.Module, token_embeddings: list[nn.Embedding], d_model: int) -> None:
    """Xavier-uniform matrices (as ``torch.nn.Transformer``), N(0, 1/D) embeddings, zero pad row."""
    for sub in module.modules():
        if isinstance(sub, nn.Linear):
            nn.init.xavier_uniform_(sub.weight)
            if sub.bias is not None:
                nn.init.zeros_(sub.bias)
    for embedding in token_embeddings:
        nn.init.normal_(embedding.weight, std=d_model**-0.5)  # times sqrt(D) -> unit scale
        if embedding.padding_idx is not None:
            with torch.no_grad():
                embedding.weight[embedding.padding_idx].zero_()


def _positional(kind: str, d_model: int, max_len: int) -> nn.Module:
    if kind == "learned":
        return LearnedPositionalEmbedding(d_model, max_len)
    return SinusoidalPositionalEncoding(d_model, max_len)


class Transformer(nn.Module):
    """The encoder-decoder Transformer for sequence-to-sequence tasks such as translation.

    Token embeddings are multiplied by sqrt(D) before the positional signal is added (section 3.4),
    then dropout. ``forward`` builds the masks itself: source padding (from ``pad_id``) for encoder
    self-attention and cross-attention, causal for decoder self-attention. Targets are right-padded,
    so the causal mask already hides their padding from every real position.

    Args:
        config: a [TransformerConfig][llmdocs.models.transformer.TransformerConfig].

    Shape:
        src (B, S), tgt (B, T) integer ids -> logits (B, T, V_tgt).

    References:
        Vaswani et al., "Attention Is All You Need", NeurIPS 2017.

    Examples:
        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> model = Transformer(TransformerConfig.tiny(src_vocab_size=20, tgt_vocab_size=30)).eval()
        >>> src, tgt = torch.randint(1, 20, (2, 7)), torch.randint(1, 30, (2, 5))
        >>> model(src, tgt).shape
        torch.Size([2, 5, 30])
    """

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        c = self.config = config
        self.src_embed = nn.Embedding(c.src_vocab_size, c.d_model, padding_idx=c.pad_id)
        if c.share_embeddings:
            self.tgt_embed = self.src_embed
        else:
            self.tgt_embed = nn.Embedding(c.tgt_vocab_size, c.d_model, padding_idx=c.pad_id)
        self.src_pos = _positional(c.positional, c.d_model, c.max_len)
        self.tgt_pos = _positional(c.positional, c.d_model, c.max_len)
        self.dropout = nn.Dropout(c.dropout)
        stack_args = (c.d_model, c.n_heads, c.d_ff)
        self.encoder = Encoder(*stack_args, c.n_encoder_layers, c.dropout, c.norm_first, c.activation)
        self.decoder = Decoder(*stack_args, c.n_decoder_layers, c.dropout, c.norm_first, c.activation)
        self.lm_head = nn.Linear(c.d_model, c.tgt_vocab_size, bias=False)
        _init_weights(self, [self.src_embed, self.tgt_embed], c.d_model)
        if c.tie_output:
            self.lm_head.weight = self.tgt_embed.weight  # (V_tgt, D), section 3.4

    def _embed(self, ids: Tensor, embed: nn.Embedding, pos: nn.Module, offset: int = 0) -> Tensor:
        check_token_ids(ids, embed.num_embeddings, "src" if embed is self.src_embed else "tgt")
        x = embed(ids) * math.sqrt(self.config.d_model)  # (B, T, D)
        return self.dropout(pos(x, offset=offset))  # (B, T, D)

    def new_cache(self) -> DecoderCache:
        """An empty [DecoderCache][llmdocs.models.transformer.DecoderCache] for incremental decoding."""
        return self.decoder.new_cache()

    def encode(self, src: Tensor, src_mask: Tensor | None = None, need_weights: bool = False) -> Tensor:
        """Encode source ids (B, S) into memory (B, S, D).

        ``src_mask`` defaults to ``padding_mask(src, pad_id)`` of shape (B, 1, 1, S).
        """
        x = self._embed(src, self.src_embed, self.src_pos)  # (B, S, D)
        if src_mask is None:
            src_mask = padding_mask(src, self.config.pad_id)  # (B, 1, 1, S)
        return self.encoder(x, src_mask, need_weights)  # (B, S, D)

    def decode(
        self,
        tgt: Tensor,
        memory: Tensor,
        src_mask: Tensor | None = None,
        cache: DecoderCache | None = None,
        need_weights: bool = False,
    ) -> Tensor:
        """Next-token logits (B, T, V_tgt) for target ids (B, T) given memory (B, S, D).

        Args:
            tgt: target ids (B, T); with a cache, only the tokens not yet fed.
            memory: encoder output (B, S, D).
            src_mask: source padding mask (B, 1, 1, S), as given to ``encode``; None attends to
                every memory position.
            cache: a [DecoderCache][llmdocs.models.transformer.DecoderCache] from ``new_cache()``; it
                stores this call's keys/values, and positions continue after the cached ones.
            need_weights: store attention weights on the decoder layers (for plots).

        Returns:
            Logits (B, T, V_tgt).
        """
        offset = len(cache) if cache is not None else 0
        T = tgt.size(-1)
        # One new query may see every cached key: no mask needed (and the fused kernel is faster).
        self_mask = causal_mask(T, tgt.device, offset) if T > 1 else None  # (T, offset + T)
        x = self._embed(tgt, self.tgt_embed, self.tgt_pos, offset)  # (B, T, D)
        h = self.decoder(x, memory, self_mask, src_mask, need_weights, cache)  # (B, T, D)
        return self.lm_head(h)  # (B, T, V_tgt)

    def forward(self, src: Tensor, tgt: Tensor, need_weights: bool = False) -> Tensor:
        """Teacher-forced logits (B, T, V_tgt) for src (B, S) and decoder input tgt (B, T)."""
        check_token_ids(src, self.config.src_vocab_size, "src")
        src_mask = padding_mask(src, self.config.pad_id)  # (B, 1, 1, S)
        memory = self.encode(src, src_mask, need_weights)  # (B, S, D)
        return self.decode(tgt, memory, src_mask, need_weights=need_weights)  # (B, T, V_tgt)
