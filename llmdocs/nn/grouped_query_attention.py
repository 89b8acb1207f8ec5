"""Grouped-query attention (GQA) with rotary positions: the attention layer of Llama 2-3, Mistral and SmolLM2.

Multi-head attention gives each of its H query heads its own key and value head. While generating, the keys and
values of every past token are kept in the KV cache, and reading that cache, not the arithmetic, is what bounds
the speed of decoding. Multi-query attention (Shazeer, 2019) shares one key/value head among all query heads;
grouped-query attention (Ainslie et al., 2023) interpolates: ``n_kv_heads`` key/value heads, each shared by a group
of ``n_heads / n_kv_heads`` query heads.

    head_h = Attention(x W^Q_h, x W^K_g, x W^V_g),   g = h // (n_heads / n_kv_heads)

| variant | `n_kv_heads` | KV cache per token and layer (numbers) |
| --- | --- | --- |
| multi-head | H | 2 H Dh = 2 D |
| grouped-query | Hkv, with 1 < Hkv < H | 2 Hkv Dh: H / Hkv times less |
| multi-query | 1 | 2 Dh: H times less |

Queries and keys are rotated by their positions ([rotary][llmdocs.nn.rotary]) before the scores are taken, and
the cache stores the rotated keys, so a decoding step rotates only its own new key. The layer is causal.

For training on packed rows (several examples concatenated into one sequence), ``document_ids`` (B, T) makes the
mask block-diagonal as well as causal: query i may attend to key j only if j <= i and both tokens belong to the
same example, so no example sees another (see [packing][llmdocs.finetuning.packing]).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from llmdocs.nn.attention import KVCache, causal_mask, key_padding_mask, scaled_dot_product_attention
from llmdocs.nn.checks import check_size
from llmdocs.nn.rotary import RotaryEmbedding, apply_rotary

__all__ = [
    "SDPA_ENABLE_GQA",
    "GroupedQueryAttention",
    "check_document_ids",
    "kv_cache_numbers_per_token",
    "repeat_kv_heads",
]

SDPA_ENABLE_GQA: bool = torch.__version__ >= "2.5"
"""Whether ``F.scaled_dot_product_attention`` takes ``enable_gqa`` (torch >= 2.5). Without it the fused path repeats
the key/value heads (``repeat_kv_heads``) before calling the kernel."""


def repeat_kv_heads(x: Tensor, n_groups: int) -> Tensor:
    """Repeat each key/value head ``n_groups`` times: KV head g serves query heads g * n_groups .. g * n_groups + G - 1.

    Args:
        x: keys or values (B, Hkv, T, Dh).
        n_groups: query heads per key/value head, H / Hkv.

    Returns:
        (B, Hkv * n_groups, T, Dh) = (B, H, T, Dh); ``x`` itself when ``n_groups`` is 1.

    Examples:
        >>> import torch
        >>> kv = torch.tensor([10.0, 20.0]).view(1, 2, 1, 1)  # two KV heads
        >>> repeat_kv_heads(kv, 3).flatten().tolist()  # six query heads, in groups of three
        [10.0, 10.0, 10.0, 20.0, 20.0, 20.0]
    """
    if n_groups == 1:
        return x
    B, Hkv, T, Dh = x.shape
    expanded = x[:, :, None].expand(B, Hkv, n_groups, T, Dh)  # (B, Hkv, G, T, Dh), no copy yet
    return expanded.reshape(B, Hkv * n_groups, T, Dh)  # (B, H, T, Dh)


def kv_cache_numbers_per_token(n_kv_heads: int, d_head: int, n_layers: int = 1) -> int:
    """How many numbers the KV cache keeps per token: a key and a value of width Dh per KV head and layer.

    numbers = 2 * n_layers * n_kv_heads * d_head;  bytes = numbers * dtype itemsize (2 for bfloat16).

    Args:
        n_kv_heads: key/value heads per layer (H for multi-head attention, 1 for multi-query).
        d_head: head width Dh.
        n_layers: number of attention layers.

    Returns:
        The number of cached numbers per token.

    Raises:
        ValueError: If an argument is not an integer >= 1.

    Examples:
        >>> gqa = kv_cache_numbers_per_token(n_kv_heads=3, d_head=64, n_layers=30)  # SmolLM2-135M
        >>> mha = kv_cache_numbers_per_token(n_kv_heads=9, d_head=64, n_layers=30)  # the same with 9 KV heads
        >>> gqa, mha, mha // gqa, gqa * 2  # bytes per token in bfloat16
        (11520, 34560, 3, 23040)
    """
    return 2 * check_size("n_layers", n_layers) * check_size("n_kv_heads", n_kv_heads) * check_size("d_head", d_head)


def check_document_ids(document_ids: Tensor | None, B: int, T: int, cache: object = None) -> None:
    """Raise a clear error unless ``document_ids`` is None or an integer (B, T) tensor given without a cache.

    Args:
        document_ids: the example of each token of a packed row, integer (B, T), or None.
        B: batch size.
        T: tokens per row.
        cache: the call's cache (a packed row is a training input: there is no cache to extend).

    Raises:
        TypeError: ``document_ids`` is not an integer tensor.
        ValueError: its shape is not (B, T), or a cache is given too.

    Examples:
        >>> import torch
        >>> check_document_ids(torch.tensor([[0, 0, 1]]), B=1, T=3)  # passes
        >>> check_document_ids(torch.tensor([[0, 0]]), B=1, T=3)
        Traceback (most recent call last):
        ...
        ValueError: document_ids must be (B, T)=(1, 3), got (1, 2)
    """
    if document_ids is None:
        return
    if not isinstance(document_ids, Tensor) or document_ids.is_floating_point() or document_ids.is_complex():
        got = document_ids.dtype if isinstance(document_ids, Tensor) else type(document_ids).__name__
        raise TypeError(f"document_ids must be an integer tensor (B, T), the example of each token, got {got}")
    if document_ids.dtype == torch.bool:
        raise TypeError("document_ids must be an integer tensor (B, T), the example of each token, got torch.bool")
    if tuple(document_ids.shape) != (B, T):
        raise ValueError(f"document_ids must be (B, T)={(B, T)}, got {tuple(document_ids.shape)}")
    if cache is not None:
        raise ValueError(
            "document_ids (packed training rows) cannot be combined with a cache: a packed row is run in one "
            "full pass; generate from one example at a time"
        )


class GroupedQueryAttention(nn.Module):
    """Causal self-attention with ``n_heads`` query heads sharing ``n_kv_heads`` rotary key/value heads.

    Without ``need_weights`` the fused ``torch.nn.functional.scaled_dot_product_attention`` kernel runs on the
    KV heads themselves (``enable_gqa=True``; on a CPU with torch 2.13 it returns exactly what the kernel returns on
    repeated heads, and a decoding step is 2x to 18x faster in our measurements: no repeated copy of the cache is
    made); with it, an explicit computation groups the query heads by the KV head they share and returns the
    attention weights. Both give the same output.

    Args:
        d_model: model width D.
        n_heads: query heads H; must divide ``d_model``, and Dh = D / H must be even (RoPE rotates pairs).
        n_kv_heads: key/value heads, dividing ``n_heads``: H is multi-head attention, 1 multi-query attention;
            None means H.
        rope_theta: base of the rotary frequencies of the layer's own
            [RotaryEmbedding][llmdocs.nn.rotary.RotaryEmbedding] (used when ``forward`` gets no
            ``position_embeddings``; a model computes those once for all its layers).
        dropout: dropout on the attention weights (training only; Llama uses none).
        bias: whether the four projections have biases (Llama's have none, Qwen2's q/k/v do).

    Attributes:
        d_head: Dh = D / H.
        n_groups: query heads per key/value head, H / n_kv_heads.

    Shape:
        x (B, T, D), attention_mask (B, T_past + T) -> out (B, T, D), weights (B, H, T, T_past + T) or None.

    Raises:
        ValueError: ``d_model`` not divisible by ``n_heads``, ``n_heads`` not divisible by ``n_kv_heads``, an odd
            head width, a size that is not an integer >= 1, ``dropout`` outside [0, 1).

    References:
        Ainslie et al., "GQA: Training Generalized Multi-Query Transformer Models from Multi-Head Checkpoints",
        EMNLP 2023, section 2.2.
        Shazeer, "Fast Transformer Decoding: One Write-Head is All You Need", 2019 (multi-query attention).
        Su et al., "RoFormer: Enhanced Transformer with Rotary Position Embedding", 2021, section 3.4.

    Examples:
        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> attn = GroupedQueryAttention(d_model=32, n_heads=4, n_kv_heads=2).eval()
        >>> x = torch.randn(2, 5, 32)
        >>> out, weights = attn(x, need_weights=True)
        >>> out.shape, weights.shape
        (torch.Size([2, 5, 32]), torch.Size([2, 4, 5, 5]))
        >>> attn.k_proj.weight.shape  # 2 KV heads of width 8: half the keys of multi-head attention
        torch.Size([16, 32])
        >>> from llmdocs.nn.attention import KVCache
        >>> cache = KVCache()
        >>> steps = [attn(x[:, t : t + 1], cache=cache)[0] for t in range(5)]  # one token at a time
        >>> cache.k.shape  # (B, n_kv_heads, T, Dh): only the KV heads are stored
        torch.Size([2, 2, 5, 8])
        >>> from llmdocs.testing import assert_close
        >>> assert_close(torch.cat(steps, dim=1), out)
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        n_kv_heads: int | None = None,
        rope_theta: float = 10000.0,
        dropout: float = 0.0,
        bias: bool = False,
    ) -> None:
        super().__init__()
        check_size("d_model", d_model)
        check_size("n_heads", n_heads)
        n_kv_heads = n_heads if n_kv_heads is None else check_size("n_kv_heads", n_kv_heads)
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}")
        if n_heads % n_kv_heads:
            raise ValueError(
                f"n_heads={n_heads} is not divisible by n_kv_heads={n_kv_heads}: every key/value head serves a group "
                "of the same number of query heads"
            )
        if (d_model // n_heads) % 2:
            raise ValueError(
                f"d_head = d_model / n_heads = {d_model // n_heads} is odd; rotary embeddings rotate pairs of "
                "coordinates and need an even head width"
            )
        if isinstance(dropout, bool) or not isinstance(dropout, int | float) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1) (a number), got {dropout!r}")
        self.d_model = d_model
        self.n_heads = n_heads
        self.n_kv_heads = n_kv_heads
        self.d_head = d_model // n_heads
        self.n_groups = n_heads // n_kv_heads
        self.dropout = dropout
        self.q_proj = nn.Linear(d_model, n_heads * self.d_head, bias=bias)  # W^Q, all H heads
        self.k_proj = nn.Linear(d_model, n_kv_heads * self.d_head, bias=bias)  # W^K, only the KV heads
        self.v_proj = nn.Linear(d_model, n_kv_heads * self.d_head, bias=bias)  # W^V, only the KV heads
        self.out_proj = nn.Linear(n_heads * self.d_head, d_model, bias=bias)  # W^O
        self.rotary = RotaryEmbedding(self.d_head, rope_theta=rope_theta)

    def _mask(
        self,
        attention_mask: Tensor | None,
        B: int,
        T: int,
        past: int,
        device: torch.device,
        document_ids: Tensor | None = None,
    ) -> Tensor | None:
        """The bool mask (True = may attend) of T new queries over past + T keys, or None when all may attend.

        With ``document_ids`` (no cache, so Tk = T) it is causal *and* block-diagonal:
        mask[b, 0, i, j] = (j <= i) and (document_ids[b, i] == document_ids[b, j]).
        """
        padding = key_padding_mask(attention_mask, B, past + T)  # (B, Tk) or None
        mask = causal_mask(T, device=device, offset=past) if T > 1 else None  # (T, Tk)
        if document_ids is not None:
            document_ids = document_ids.to(device)
            same_document = document_ids[:, :, None] == document_ids[:, None, :]  # (B, T, T)
            causal = causal_mask(T, device=device)  # (T, T)
            mask = (same_document & causal)[:, None]  # (B, 1, T, T): one block per example, causal inside
        if padding is None:
            return mask
        padding = padding.to(device)[:, None, None, :]  # (B, 1, 1, Tk): the same for every head and query
        return padding if mask is None else padding & mask  # (B, 1, T, Tk)

    def _position_embeddings(
        self,
        x: Tensor,
        position_ids: Tensor | None,
        position_embeddings: tuple[Tensor, Tensor] | None,
        past: int,
    ) -> tuple[Tensor, Tensor]:
        """(cos, sin), each (T, Dh) or (B, 1, T, Dh): broadcastable to the (B, heads, T, Dh) queries and keys."""
        B, T, _ = x.shape
        if position_embeddings is None:
            cos, sin = self.rotary(x, position_ids=position_ids, offset=0 if position_ids is not None else past)
        else:
            if position_ids is not None:
                raise ValueError("pass position_ids or position_embeddings, not both")
            cos, sin = position_embeddings
            allowed = ((T, self.d_head), (B, T, self.d_head))
            if tuple(cos.shape) not in allowed or sin.shape != cos.shape:
                raise ValueError(
                    f"position_embeddings must be (cos, sin) of shape (T, Dh)={allowed[0]} or (B, T, Dh)={allowed[1]}, "
                    f"got {tuple(cos.shape)} and {tuple(sin.shape)}"
                )
        if cos.dim() == 3:
            cos, sin = cos[:, None], sin[:, None]  # (B, 1, T, Dh): the same rotation for every head
        return cos.to(x.dtype), sin.to(x.dtype)

    def forward(
        self,
        x: Tensor,
        attention_mask: Tensor | None = None,
        cache: KVCache | None = None,
        position_ids: Tensor | None = None,
        position_embeddings: tuple[Tensor, Tensor] | None = None,
        need_weights: bool = False,
        document_ids: Tensor | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """Causal self-attention of the T new tokens of ``x`` over the cached tokens and themselves.

        Args:
            x: hidden states (B, T, D) of the new tokens.
            attention_mask: bool or 0/1 integer (B, T_past + T), 1 at real tokens and 0 at padding (Hugging Face's
                convention), covering the cached tokens too; None = no padding.
            cache: a [KVCache][llmdocs.nn.attention.KVCache] holding the rotated keys and the values of the
                earlier tokens (B, n_kv_heads, T_past, Dh); the new ones are appended.
            position_ids: integer positions (T,) or (B, T); default ``T_past .. T_past + T - 1``. A left-padded
                batch passes positions counted from each row's first real token.
            position_embeddings: ``(cos, sin)`` from a model-wide [RotaryEmbedding][llmdocs.nn.rotary.RotaryEmbedding],
                each (T, Dh) or (B, T, Dh), instead of this layer's own (and instead of ``position_ids``).
            need_weights: also return the attention weights (explicit path, slower).
            document_ids: integer (B, T), the example each token of a packed row belongs to: attention stays
                inside each example (a block-diagonal causal mask). For training only: refused with a cache.

        Returns:
            ``(out, weights)``: out (B, T, D); weights (B, H, T, T_past + T), or None without ``need_weights``.
            A query whose keys are all padding (a left-padded row's padding) gets a zero output.

        Raises:
            ValueError: ``x`` not (B, T, d_model), a mask, cache, positions or ``document_ids`` of the wrong shape,
                or ``document_ids`` together with a cache.
            TypeError: a float ``attention_mask`` (it may be additive; pass 1/0 or True/False), or ``document_ids``
                that is not an integer tensor.
        """
        if not isinstance(x, Tensor) or x.dim() != 3 or x.size(-1) != self.d_model:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"x must be (B, T, d_model={self.d_model}), got {got}")
        B, T, _ = x.shape
        H, Hkv, Dh = self.n_heads, self.n_kv_heads, self.d_head
        check_document_ids(document_ids, B, T, cache)
        past = 0
        if cache is not None:
            if not isinstance(cache, KVCache):
                raise TypeError(f"cache must be a KVCache (one layer's), got {type(cache).__name__}")
            cache.check(B, Hkv, Dh)
            past = len(cache)
        mask = self._mask(attention_mask, B, T, past, x.device, document_ids)  # (T, Tk), (B, 1, T, Tk) or None

        q = self.q_proj(x).view(B, T, H, Dh).transpose(1, 2)  # (B, H, T, Dh)
        k = self.k_proj(x).view(B, T, Hkv, Dh).transpose(1, 2)  # (B, Hkv, T, Dh)
        v = self.v_proj(x).view(B, T, Hkv, Dh).transpose(1, 2)  # (B, Hkv, T, Dh)
        cos, sin = self._position_embeddings(x, position_ids, position_embeddings, past)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)  # positions enter as rotations
        if cache is not None:
            k, v = cache.update(k, v)  # (B, Hkv, T_past + T, Dh): the rotated keys, only the KV heads
        dropout_p = self.dropout if self.training else 0.0

        weights: Tensor | None = None
        if need_weights:
            # Group the query heads by the KV head they share; the keys broadcast over the group (no copy).
            q_groups = q.view(B, Hkv, self.n_groups, T, Dh)  # (B, Hkv, G, T, Dh)
            group_mask = mask if mask is None or mask.dim() == 2 else mask[:, :, None]  # (.., 1, T, Tk)
            out, weights = scaled_dot_product_attention(
                q_groups, k[:, :, None], v[:, :, None], group_mask, dropout_p
            )  # (B, Hkv, G, T, Dh), (B, Hkv, G, T, Tk)
            out = out.reshape(B, H, T, Dh)  # (B, H, T, Dh): head h = g * G + j
            weights = weights.reshape(B, H, T, -1)  # (B, H, T, Tk)
        else:
            out = self._fused(q, k, v, mask, dropout_p, is_causal=mask is not None and mask.dim() == 2 and past == 0)
        out = out.transpose(1, 2).reshape(B, T, H * Dh)  # (B, T, H * Dh) = (B, T, D)
        return self.out_proj(out), weights

    def _fused(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, dropout_p: float, is_causal: bool) -> Tensor:
        """``F.scaled_dot_product_attention`` on H query heads and Hkv key/value heads; rows without keys -> 0."""
        gqa: dict[str, bool] = {}
        if self.n_groups > 1:
            if SDPA_ENABLE_GQA:
                gqa["enable_gqa"] = True  # the kernel reads each KV head for its whole group
            else:
                k, v = repeat_kv_heads(k, self.n_groups), repeat_kv_heads(v, self.n_groups)  # (B, H, Tk, Dh)
        if is_causal:  # no padding, no past: the kernel builds the causal mask itself
            return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True, **gqa)
        row_has_key = None
        if mask is not None and mask.dim() == 4:
            # A left-padded row's padding queries see no key: let them attend anywhere (no NaN), zero them below.
            row_has_key = mask.any(dim=-1, keepdim=True)  # (B, 1, T, 1)
            mask = mask | ~row_has_key
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p, **gqa)
        if row_has_key is not None:
            out = out.masked_fill(~row_has_key, 0.0)  # (B, H, T, Dh)
        return out  # (B, H, T, Dh)
