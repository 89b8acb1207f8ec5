"""Scaled dot-product attention, masks, multi-head attention and its key/value cache.

The whole module computes one equation (Vaswani et al., 2017, eq. 1):

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V

Masks are boolean and **True means "may attend"**, the convention of
`torch.nn.functional.scaled_dot_product_attention`. A mask broadcasts to (B, H, Tq, Tk).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def causal_mask(T: int, device: torch.device | str | None = None, offset: int = 0) -> Tensor:
    """Lower-triangular mask: query ``i`` may attend to keys ``0 .. offset + i``.

    ``offset`` counts keys that come before the ``T`` new queries (cached tokens during incremental
    decoding); the mask then has ``offset + T`` columns.

    Args:
        T: number of query positions.
        device: device of the returned tensor.
        offset: number of earlier (already cached) key positions.

    Returns:
        Boolean mask of shape (T, offset + T), True where attention is allowed.

    Examples:
        >>> causal_mask(3).int()
        tensor([[1, 0, 0],
                [1, 1, 0],
                [1, 1, 1]], dtype=torch.int32)
        >>> causal_mask(1, offset=2).int()
        tensor([[1, 1, 1]], dtype=torch.int32)
    """
    if T < 1 or offset < 0:
        raise ValueError(f"causal_mask needs T >= 1 and offset >= 0, got T={T}, offset={offset}")
    ones = torch.ones(T, offset + T, dtype=torch.bool, device=device)  # (T, offset + T)
    return ones.tril(diagonal=offset)


def padding_mask(ids: Tensor, pad_id: int) -> Tensor:
    """Key mask that hides padding tokens: True at real tokens.

    Args:
        ids: token ids of shape (B, S).
        pad_id: id of the padding token.

    Returns:
        Boolean mask of shape (B, 1, 1, S): it broadcasts over heads and query positions.

    Examples:
        >>> import torch
        >>> padding_mask(torch.tensor([[5, 6, 0]]), pad_id=0)
        tensor([[[[ True,  True, False]]]])
    """
    if ids.dim() != 2:
        raise ValueError(f"ids must have shape (B, S), got {tuple(ids.shape)}")
    return (ids != pad_id)[:, None, None, :]  # (B, 1, 1, S)


def key_padding_mask(
    attention_mask: Tensor | None, batch_size: int, n_keys: int, name: str = "attention_mask"
) -> Tensor | None:
    """Check a Hugging Face style ``attention_mask`` (1/True at real tokens) and return it as a bool key mask.

    A float mask is refused: it may be additive (0 = attend, -inf = hide), which ``.bool()`` would silently invert.

    Args:
        attention_mask: bool or integer (B, Tk), 1/True at real tokens, 0/False at padding; None = no padding.
        batch_size: B.
        n_keys: Tk, the keys the mask covers (cached ones included).
        name: the argument's name in error messages.

    Returns:
        Bool mask (B, Tk), True = may attend; None when ``attention_mask`` is None.

    Raises:
        TypeError: If ``attention_mask`` is not a bool or integer tensor.
        ValueError: If its shape is not (batch_size, n_keys).

    Examples:
        >>> import torch
        >>> key_padding_mask(torch.tensor([[0, 1, 1]]), batch_size=1, n_keys=3)
        tensor([[False,  True,  True]])
    """
    if attention_mask is None:
        return None
    if not isinstance(attention_mask, Tensor):
        raise TypeError(f"{name} must be a bool or integer 0/1 tensor, got {type(attention_mask).__name__}")
    if attention_mask.shape != (batch_size, n_keys):
        expected = (batch_size, n_keys)
        raise ValueError(f"{name} must be (B, T_past + T)={expected}, got {tuple(attention_mask.shape)}")
    if attention_mask.is_floating_point() or attention_mask.is_complex():
        raise TypeError(f"{name} must be a bool or integer 0/1 tensor (1 = real token), got {attention_mask.dtype}")
    return attention_mask.bool()  # (B, Tk)


def _check_mask(mask: Tensor, target: tuple[int, int, int, int]) -> None:
    """Raise a readable error unless ``mask`` is boolean and broadcasts to ``target``."""
    if mask.dtype != torch.bool:
        raise TypeError(f"mask must be a bool tensor (True = may attend), got dtype {mask.dtype}")
    try:
        ok = mask.dim() <= 4 and torch.broadcast_shapes(mask.shape, target) == torch.Size(target)
    except RuntimeError:
        ok = False
    if not ok:
        raise ValueError(f"mask shape {tuple(mask.shape)} does not broadcast to (B, H, Tq, Tk)={target}")


def scaled_dot_product_attention(
    q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None, dropout_p: float = 0.0
) -> tuple[Tensor, Tensor]:
    """Explicit (teaching) scaled dot-product attention that also returns the weights.

    weights = softmax(q k^T / sqrt(Dh)) with masked positions set to exactly 0; out = weights v.
    A query row whose keys are all masked gets all-zero weights and a zero output instead of NaN.

    Args:
        q: queries (B, H, Tq, Dh).
        k: keys (B, H, Tk, Dh).
        v: values (B, H, Tk, Dh).
        mask: bool mask broadcastable to (B, H, Tq, Tk), True = may attend.
        dropout_p: dropout probability applied to the attention weights.

    Returns:
        ``(out, weights)``: out (B, H, Tq, Dh) and weights (B, H, Tq, Tk); each unmasked row sums to 1.

    Shape:
        Any leading dimensions work as long as q, k, v and mask broadcast.

    References:
        Vaswani et al., "Attention Is All You Need", NeurIPS 2017, section 3.2.1.

    Examples:
        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> q = torch.randn(2, 4, 3, 8)  # B=2, H=4, Tq=3, Dh=8
        >>> k, v = torch.randn(2, 2, 4, 5, 8).unbind(0)  # Tk=5
        >>> out, w = scaled_dot_product_attention(q, k, v, mask=causal_mask(3, offset=2))
        >>> out.shape, w.shape
        (torch.Size([2, 4, 3, 8]), torch.Size([2, 4, 3, 5]))
        >>> from llmdocs.testing import assert_close
        >>> assert_close(w.sum(-1), torch.ones(2, 4, 3))  # every row is a distribution
        >>> w[0, 0, 0, 3:].tolist()  # the first query may not see the last two keys
        [0.0, 0.0]
    """
    attn_scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))  # (B, H, Tq, Tk)
    if mask is not None:
        # finfo.min instead of -inf: a fully masked row stays finite (uniform), then is zeroed.
        attn_scores = attn_scores.masked_fill(~mask, torch.finfo(attn_scores.dtype).min)
    weights = attn_scores.softmax(dim=-1)  # (B, H, Tq, Tk)
    if mask is not None:
        weights = weights.masked_fill(~mask, 0.0)
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    context_vec = weights @ v  # (B, H, Tq, Dh)
    return context_vec, weights


class KVCache:
    """Keys and values of one attention layer, kept between incremental decoding steps.

    Self-attention (``static=False``) appends the keys/values of each new token, so a decoding step
    only projects the new token and attends over the stored past: O(T) work per step instead of
    O(T^2). Cross-attention (``static=True``) projects the encoder memory once, on the first call,
    and reuses it afterwards.

    Attributes:
        static: True for cross-attention caches (filled once).
        k: cached keys (B, H, T_past, Dh) or None while empty.
        v: cached values (B, H, T_past, Dh) or None while empty.

    Examples:
        >>> import torch
        >>> cache = KVCache()
        >>> k, v = cache.update(torch.zeros(2, 4, 1, 8), torch.zeros(2, 4, 1, 8))
        >>> k, v = cache.update(torch.zeros(2, 4, 1, 8), torch.zeros(2, 4, 1, 8))
        >>> len(cache), k.shape
        (2, torch.Size([2, 4, 2, 8]))
    """

    def __init__(self, static: bool = False) -> None:
        self.static = static
        self.k: Tensor | None = None
        self.v: Tensor | None = None
        self._buffers: tuple[Tensor, Tensor] | None = None  # (B, H, capacity, Dh) each; k and v are views

    def __len__(self) -> int:
        return 0 if self.k is None else self.k.size(2)

    @property
    def batch_size(self) -> int | None:
        """B, the rows the cache holds once filled (None while empty)."""
        return None if self.k is None else self.k.size(0)

    def check(self, batch_size: int, n_heads: int, d_head: int, name: str = "cache") -> None:
        """Raise ValueError unless a filled cache holds ``batch_size`` rows of ``n_heads`` heads of width ``d_head``.

        Only shapes are compared (Python ints, no device sync), so a decoding step can afford it.

        Examples:
            >>> import torch
            >>> cache = KVCache()
            >>> _ = cache.update(torch.zeros(2, 4, 3, 8), torch.zeros(2, 4, 3, 8))
            >>> cache.check(batch_size=1, n_heads=4, d_head=8)
            Traceback (most recent call last):
            ...
            ValueError: cache was filled with batch size 2, but this step has batch size 1; ...
        """
        if self.k is None:
            return
        cached_batch, H, _, Dh = self.k.shape
        if (H, Dh) != (n_heads, d_head):
            raise ValueError(
                f"{name} holds keys of n_heads={H}, d_head={Dh}, but this layer has n_heads={n_heads}, "
                f"d_head={d_head}: the cache comes from another model"
            )
        if cached_batch != batch_size:
            raise ValueError(
                f"{name} was filled with batch size {cached_batch}, but this step has batch size {batch_size}; a "
                "cache serves the batch it was filled with (reorder it, or start a new one)"
            )

    def update(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Store new keys/values (B, H, T_new, Dh) and return all of them (B, H, T_past + T_new, Dh).

        The keys and values are written into buffers whose capacity doubles when full, so a step copies only
        its own T_new positions (appending with ``torch.cat`` would copy the whole past at every step).
        Under autograd, where writing into a buffer would invalidate saved views, it appends with a copy.

        Raises:
            ValueError: If the new keys differ from the cached ones in batch size, heads or head width.
        """
        if self.k is None or self.v is None or self.static:
            self.k, self.v, self._buffers = k, v, None
            return k, v
        B, H, _, Dh = k.shape
        self.check(B, H, Dh)  # a new batch size would be broadcast into the buffers, or fail in a copy
        if torch.is_grad_enabled() and (k.requires_grad or v.requires_grad or self.k.requires_grad):
            self.k = torch.cat([self.k, k], dim=2)  # (B, H, T_past + T_new, Dh)
            self.v = torch.cat([self.v, v], dim=2)  # (B, H, T_past + T_new, Dh)
            self._buffers = None
            return self.k, self.v
        past, new = self.k.size(2), k.size(2)
        if self._buffers is None or self._buffers[0].size(2) < past + new:
            capacity = max(2 * (past + new), 16)
            buffers = tuple(x.new_empty(B, H, capacity, Dh) for x in (k, v))  # (B, H, capacity, Dh)
            buffers[0][:, :, :past] = self.k
            buffers[1][:, :, :past] = self.v
            self._buffers = buffers  # type: ignore[assignment]
        buf_k, buf_v = self._buffers  # type: ignore[misc]
        buf_k[:, :, past : past + new] = k
        buf_v[:, :, past : past + new] = v
        self.k, self.v = buf_k[:, :, : past + new], buf_v[:, :, : past + new]  # (B, H, T_past + T_new, Dh) views
        return self.k, self.v

    def reorder(self, index: Tensor) -> None:
        """Select batch rows ``index`` (N,), e.g. to follow the surviving hypotheses of a beam."""
        if self.k is not None and self.v is not None:
            self.k = self.k.index_select(0, index)  # (N, H, T_past, Dh)
            self.v = self.v.index_select(0, index)  # (N, H, T_past, Dh)
            self._buffers = None


class MultiHeadAttention(nn.Module):
    """Multi-head attention: H scaled dot-product attentions on learned projections, concatenated.

    MultiHead(Q, K, V) = Concat(head_1, ..., head_H) W^O,  head_h = Attention(Q W^Q_h, K W^K_h, V W^V_h)

    Without ``need_weights`` the fused ``F.scaled_dot_product_attention`` kernel runs; with it, the
    explicit [scaled_dot_product_attention][llmdocs.nn.attention.scaled_dot_product_attention] runs and
    the per-head weights are returned. Both paths give the same output.

    Args:
        d_model: model width D.
        n_heads: number of heads H; must divide ``d_model`` (Dh = D / H).
        dropout: dropout on the attention weights (training only).
        bias: whether the four projections have a bias.

    Shape:
        query (B, Tq, D), key/value (B, Tk, D), mask broadcastable to (B, H, Tq, Tk) -> out (B, Tq, D).

    References:
        Vaswani et al., "Attention Is All You Need", NeurIPS 2017, section 3.2.2.

    Examples:
        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> mha = MultiHeadAttention(d_model=8, n_heads=2).eval()
        >>> x, memory = torch.randn(2, 5, 8), torch.randn(2, 7, 8)
        >>> out, w = mha(x, need_weights=True)  # self-attention
        >>> out.shape, w.shape
        (torch.Size([2, 5, 8]), torch.Size([2, 2, 5, 5]))
        >>> out_cross, _ = mha(x, memory)  # cross-attention, fused kernel
        >>> out_cross.shape
        torch.Size([2, 5, 8])
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0, bias: bool = True) -> None:
        super().__init__()
        if d_model <= 0 or n_heads <= 0:
            raise ValueError(f"d_model and n_heads must be positive, got {d_model}, {n_heads}")
        if d_model % n_heads != 0:
            raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}")
        self.d_model = d_model
        self.n_heads = n_heads
        self.d_head = d_model // n_heads
        self.dropout = dropout
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(d_model, d_model, bias=bias)
        self.v_proj = nn.Linear(d_model, d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)

    def _split_heads(self, x: Tensor) -> Tensor:
        B, T, _ = x.shape
        return x.view(B, T, self.n_heads, self.d_head).transpose(1, 2)  # (B, H, T, Dh)

    def forward(
        self,
        query: Tensor,
        key: Tensor | None = None,
        value: Tensor | None = None,
        mask: Tensor | None = None,
        need_weights: bool = False,
        cache: KVCache | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """Attend from ``query`` to ``key``/``value`` (self-attention when both are None).

        Args:
            query: (B, Tq, D).
            key: (B, Tk, D); defaults to ``query``.
            value: (B, Tk, D); defaults to ``key``.
            mask: bool, broadcastable to (B, H, Tq, Tk); True = may attend. With a cache, Tk
                counts the cached keys too.
            need_weights: also return the attention weights (explicit, slower path).
            cache: optional [KVCache][llmdocs.nn.attention.KVCache] for incremental decoding.

        Returns:
            ``(out, weights)``: out (B, Tq, D); weights (B, H, Tq, Tk) or None.
        """
        if query.dim() != 3 or query.size(-1) != self.d_model:
            raise ValueError(f"query must be (B, T, d_model={self.d_model}), got {tuple(query.shape)}")
        key = query if key is None else key
        value = key if value is None else value
        B, Tq, D = query.shape
        q = self._split_heads(self.q_proj(query))  # (B, H, Tq, Dh)
        if cache is not None and cache.static and cache.k is not None and cache.v is not None:
            cache.check(B, self.n_heads, self.d_head)
            k, v = cache.k, cache.v  # memory already projected on the first step
        else:
            k = self._split_heads(self.k_proj(key))  # (B, H, Tk, Dh)
            v = self._split_heads(self.v_proj(value))  # (B, H, Tk, Dh)
            if cache is not None:
                k, v = cache.update(k, v)  # (B, H, T_past + Tk, Dh)
        Tk = k.size(2)
        if mask is not None:
            _check_mask(mask, (B, self.n_heads, Tq, Tk))
        dropout_p = self.dropout if self.training else 0.0

        weights: Tensor | None = None
        if need_weights:
            out, weights = scaled_dot_product_attention(q, k, v, mask, dropout_p)  # (B, H, Tq, Dh)
        else:
            row_has_key = None
            if mask is not None:
                # Fully masked rows: let them attend anywhere (no NaN), then zero them below.
                row_has_key = mask.any(dim=-1, keepdim=True)  # (..., Tq, 1)
                mask = mask | ~row_has_key
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
            if row_has_key is not None:
                out = out.masked_fill(~row_has_key, 0.0)  # (B, H, Tq, Dh)
        out = out.transpose(1, 2).reshape(B, Tq, D)  # (B, Tq, H * Dh) = (B, Tq, D)
        return self.out_proj(out), weights
