"""GPT: a decoder-only Transformer language model with the shape and initialisation of GPT-2.

    h_0 = Dropout(E_tok[ids] + E_pos[positions])
    h_l = h_{l-1} + Dropout(CausalSelfAttention(LN(h_{l-1})));  h_l = h_l + Dropout(FFN(LN(h_l)))
    logits = LN(h_N) E_tok^T

Every position predicts the next token, P(x_{t+1} | x_{<=t}) = softmax(logits_t), and sees only itself and
the tokens before it (a causal mask). The blocks are Pre-LN (Xiong et al., 2020) with a final LayerNorm,
exactly as GPT-2; the feed-forward network uses GPT-2's tanh approximation of GELU. Weights map one to one
onto Hugging Face's ``GPT2LMHeadModel`` through [interop.hf][llmdocs.interop.hf]. Sampling, streaming and
beam search live in [generation][llmdocs.generation].
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from llmdocs.nn.attention import KVCache, MultiHeadAttention, causal_mask, key_padding_mask
from llmdocs.nn.checks import check_model_config, check_position_ids, check_token_ids
from llmdocs.nn.feedforward import PositionwiseFeedForward


@dataclass(frozen=True)
class GPTConfig:
    """Hyper-parameters of a [GPT][llmdocs.models.gpt.GPT].

    Examples:
        >>> GPTConfig.tiny().d_ff  # defaults to 4 * d_model
        128
        >>> GPTConfig(vocab_size=100, d_model=10, n_heads=3)
        Traceback (most recent call last):
        ...
        ValueError: d_model=10 is not divisible by n_heads=3
    """

    vocab_size: int  # vocabulary size V (rows of the token embedding and of the output head)
    context_length: int = 1024  # longest sequence T_max: rows of the learned position embedding
    d_model: int = 768  # model width D
    n_heads: int = 12  # attention heads H; d_head = d_model // n_heads
    n_layers: int = 12  # number of Transformer blocks N
    d_ff: int | None = None  # feed-forward hidden width F; None -> 4 * d_model (set in __post_init__)
    activation: str = "gelu_tanh"  # FFN non-linearity: GPT-2's tanh GELU, or "gelu" (exact, nanoGPT) or "relu"
    dropout: float = 0.0  # P_drop on embeddings, attention weights and both residual branches
    bias: bool = True  # biases in the linear layers and LayerNorms (GPT-2: True; nanoGPT trains without)
    layer_norm_eps: float = 1e-5  # epsilon of every LayerNorm
    tie_embeddings: bool = True  # output head reuses the token embedding matrix (GPT-2 does)

    def __post_init__(self) -> None:
        if self.d_ff is None:
            object.__setattr__(self, "d_ff", 4 * self.d_model)  # frozen: set the derived default once
        check_model_config(self, ("vocab_size", "context_length", "d_model", "n_heads", "n_layers", "d_ff"))

    @property
    def d_head(self) -> int:
        """Width Dh = D / H of one attention head."""
        return self.d_model // self.n_heads

    @classmethod
    def tiny(cls, vocab_size: int = 64, **overrides: Any) -> GPTConfig:
        """A model small enough for tests and doctests (about 30k parameters)."""
        fields: dict[str, Any] = dict(context_length=32, d_model=32, n_heads=4, n_layers=2)
        return cls(vocab_size, **{**fields, **overrides})

    @classmethod
    def gpt2_small(cls, **overrides: Any) -> GPTConfig:
        """GPT-2 small (124M parameters): V=50257, T_max=1024, D=768, H=12, N=12, dropout 0.1."""
        fields: dict[str, Any] = dict(context_length=1024, d_model=768, n_heads=12, n_layers=12, dropout=0.1)
        return cls(**{"vocab_size": 50257, **fields, **overrides})

    @classmethod
    def nanogpt_shakespeare_cpu(cls, vocab_size: int = 65, **overrides: Any) -> GPTConfig:
        """nanoGPT's character-level Shakespeare model for a CPU (its README): 4 layers, 4 heads, D=128, T=64.

        nanoGPT's MLP uses the exact GELU (``nn.GELU()``) and no biases.
        """
        fields: dict[str, Any] = dict(
            context_length=64, d_model=128, n_heads=4, n_layers=4, dropout=0.0, bias=False, activation="gelu"
        )
        return cls(vocab_size, **{**fields, **overrides})


def _feed_forward(config: GPTConfig) -> PositionwiseFeedForward:
    """The FFN of [feedforward][llmdocs.nn.feedforward]: no hidden dropout, optional biases.

    GPT-2 uses the tanh approximation of GELU (``"gelu_tanh"``, the default); on a CPU the exact erf form
    (``"gelu"``) is about 3x cheaper to evaluate.
    """
    assert config.d_ff is not None
    return PositionwiseFeedForward(
        config.d_model, config.d_ff, dropout=0.0, activation=config.activation, bias=config.bias
    )


class CausalSelfAttention(MultiHeadAttention):
    """[MultiHeadAttention][llmdocs.nn.attention.MultiHeadAttention] where token t attends to tokens 0..t only.

        Attention(Q, K, V) = softmax(Q K^T / sqrt(Dh) + M) V,   M_ts = 0 if s <= t else -inf

    Without a padding mask, with an empty cache and without ``need_weights`` (training, or the prompt of a
    generation) it calls the fused kernel with ``is_causal=True``: no (T, T) mask is built. Otherwise it hands the
    causal mask, combined with the padding mask of the batch, to the general layer, which returns the weights
    when asked.

    Args:
        d_model: model width D.
        n_heads: attention heads H.
        dropout: dropout on the attention weights (training only).
        bias: whether the four projections have a bias.

    Shape:
        x (B, T, D), key_mask (B, T_past + T) -> out (B, T, D), weights (B, H, T, T_past + T).

    References:
        Vaswani et al., "Attention Is All You Need", NeurIPS 2017, section 3.2.3 (masking in the decoder).

    Examples:
        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> attn = CausalSelfAttention(d_model=8, n_heads=2).eval()
        >>> x = torch.randn(1, 5, 8)
        >>> out, _ = attn(x)
        >>> from llmdocs.testing import assert_close
        >>> assert_close(out[:, :3], attn(x[:, :3])[0])  # the past ignores the future
        >>> _, weights = attn(x, need_weights=True)  # (B, H, T, T)
        >>> weights.shape, bool(weights.triu(diagonal=1).eq(0).all())  # nothing above the diagonal
        (torch.Size([1, 2, 5, 5]), True)
    """

    def forward(  # type: ignore[override]
        self, x: Tensor, key_mask: Tensor | None = None, cache: KVCache | None = None, need_weights: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        """Causal self-attention over x (B, T, D) and the cached past.

        Args:
            x: hidden states of the new positions (B, T, D).
            key_mask: bool (B, T_past + T), True at real (non-padding) tokens; None = no padding.
            cache: the layer's [KVCache][llmdocs.nn.attention.KVCache]; it receives this call's keys/values.
            need_weights: also return the attention weights (explicit, slower path).

        Returns:
            ``(out, weights)``: out (B, T, D); weights (B, H, T, T_past + T), zero above the diagonal
            (and at padding keys), or None.
        """
        B, T, D = x.shape
        offset = len(cache) if cache is not None else 0
        if key_mask is None and offset == 0 and not need_weights:
            q = self._split_heads(self.q_proj(x))  # (B, H, T, Dh)
            k = self._split_heads(self.k_proj(x))  # (B, H, T, Dh)
            v = self._split_heads(self.v_proj(x))  # (B, H, T, Dh)
            if cache is not None:
                cache.update(k, v)
            dropout_p = self.dropout if self.training else 0.0
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True)  # (B, H, T, Dh)
            out = out.transpose(1, 2).reshape(B, T, D)  # (B, T, H * Dh) = (B, T, D)
            return self.out_proj(out), None
        # One new query may see every cached key: then only padding needs masking.
        mask = causal_mask(T, x.device, offset) if T > 1 else None  # (T, T_past + T)
        if key_mask is not None:
            keys = key_mask[:, None, None, :]  # (B, 1, 1, T_past + T)
            mask = keys if mask is None else keys & mask  # (B, 1, T, T_past + T)
        return super().forward(x, mask=mask, need_weights=need_weights, cache=cache)


class Block(nn.Module):
    """One Pre-LN GPT block: x + Attn(LN(x)), then x + FFN(LN(x)), each branch followed by dropout.

    Args:
        config: a [GPTConfig][llmdocs.models.gpt.GPTConfig].

    Attributes:
        last_self_weights: attention weights (B, H, T, T_past + T) of the last call with ``need_weights=True``,
            else None.

    Shape:
        x (B, T, D), key_mask (B, T_past + T) -> (B, T, D).

    Examples:
        >>> import torch
        >>> block = Block(GPTConfig.tiny())
        >>> block(torch.randn(2, 5, 32), need_weights=True).shape
        torch.Size([2, 5, 32])
        >>> block.last_self_weights.shape  # (B, H, T, T)
        torch.Size([2, 4, 5, 5])
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        c = config
        self.norm1 = nn.LayerNorm(c.d_model, eps=c.layer_norm_eps, bias=c.bias)
        self.self_attn = CausalSelfAttention(c.d_model, c.n_heads, dropout=c.dropout, bias=c.bias)
        self.norm2 = nn.LayerNorm(c.d_model, eps=c.layer_norm_eps, bias=c.bias)
        self.ff = _feed_forward(c)
        self.dropout = nn.Dropout(c.dropout)  # "resid_pdrop" of GPT-2, after each branch
        self.last_self_weights: Tensor | None = None

    def forward(
        self, x: Tensor, key_mask: Tensor | None = None, cache: KVCache | None = None, need_weights: bool = False
    ) -> Tensor:
        """Apply the block to x (B, T, D); see [CausalSelfAttention][llmdocs.models.gpt.CausalSelfAttention].

        Args:
            x: hidden states (B, T, D); with a cache, only the new positions.
            key_mask: bool (B, T_past + T), True at real tokens; None = no padding.
            cache: the block's [KVCache][llmdocs.nn.attention.KVCache].
            need_weights: keep the attention weights in ``last_self_weights``.

        Returns:
            Hidden states (B, T, D).
        """
        attn_out, self.last_self_weights = self.self_attn(self.norm1(x), key_mask, cache, need_weights)
        x = x + self.dropout(attn_out)  # (B, T, D)
        return x + self.dropout(self.ff(self.norm2(x)))  # (B, T, D)


class GPTCache:
    """The key/value caches of all blocks, for incremental (token-by-token) generation.

    Pass the same object to every [GPT.forward][llmdocs.models.gpt.GPT.forward] call of one generation, feeding only the
    new tokens; positions continue from ``len(cache)``. ``reorder`` follows beam-search survivors.

    Attributes:
        layers: one [KVCache][llmdocs.nn.attention.KVCache] per block.

    Examples:
        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> model = GPT(GPTConfig.tiny()).eval()
        >>> ids = torch.randint(0, 64, (2, 6))
        >>> cache = model.new_cache()
        >>> steps = [model(ids[:, :4], cache=cache)] + [model(ids[:, t : t + 1], cache=cache) for t in (4, 5)]
        >>> len(cache)
        6
        >>> from llmdocs.testing import assert_close
        >>> assert_close(torch.cat(steps, dim=1), model(ids), depth=model.config.n_layers)  # the same logits
    """

    def __init__(self, n_layers: int) -> None:
        self.layers = [KVCache() for _ in range(n_layers)]

    def __len__(self) -> int:
        """Number of positions already cached."""
        return len(self.layers[0]) if self.layers else 0

    def reorder(self, index: Tensor) -> None:
        """Keep batch rows ``index`` (N,) of every layer, in that order."""
        for layer_cache in self.layers:
            layer_cache.reorder(index)


def check_decoder_call(
    ids: Tensor,
    cache: GPTCache | None,
    attention_mask: Tensor | None,
    position_ids: Tensor | None,
    vocab_size: int,
    context_length: int,
    n_layers: int,
) -> tuple[int, Tensor | None, Tensor | None]:
    """Check the input of a decoder-only model's ``forward`` and place its tokens: (T_past, key_mask, position_ids).

    Shared by [GPT][llmdocs.models.gpt.GPT] and [Llama][llmdocs.models.llama.Llama], which take the same arguments.

    Args:
        ids: token ids (B, T).
        cache: the model's cache, or None.
        attention_mask: None, or bool / integer (B, T_past + T), True at real tokens.
        position_ids: None, or integer (B, T) / (1, T) in [0, context_length).
        vocab_size: V of the model.
        context_length: T_max of the model.
        n_layers: N of the model (the cache must have as many layers).

    Returns:
        ``T_past`` (the cache's length), the bool key mask (B, T_past + T) or None, and the positions of the new
        tokens: ``position_ids`` when given; with an attention mask, the number of real tokens before each one (so
        left padding shifts nothing; padding gets 0); else None, meaning ``T_past .. T_past + T - 1``.

    Raises:
        TypeError: If ``ids`` or ``position_ids`` is not an integer tensor, or ``attention_mask`` not a bool or
            integer one.
        ValueError: If a shape or an id is wrong, the sequence exceeds ``context_length``, a position is outside
            [0, context_length), or ``cache`` has another number of layers.

    Examples:
        >>> import torch
        >>> mask = torch.tensor([[0, 1, 1], [1, 1, 1]])  # the first row is left-padded
        >>> check_decoder_call(torch.zeros(2, 3, dtype=torch.long), None, mask, None, 10, 8, 2)[2]
        tensor([[0, 0, 1],
                [0, 1, 2]])
    """
    check_token_ids(ids, vocab_size)
    B, T = ids.shape
    if cache is not None and len(cache.layers) != n_layers:  # its KVCaches check batch size, heads and width
        raise ValueError(f"cache has {len(cache.layers)} layers but n_layers={n_layers}: use model.new_cache()")
    offset = len(cache) if cache is not None else 0
    if offset + T > context_length:
        raise ValueError(
            f"sequence length {offset + T} (cached {offset} + new {T}) exceeds context_length={context_length}"
        )
    key_mask = key_padding_mask(attention_mask, B, offset + T)  # (B, T_past + T) bool, or None
    if position_ids is not None:
        check_position_ids(position_ids, B, T, context_length)
    elif key_mask is not None:
        real_before = key_mask.long().cumsum(dim=-1) - 1  # (B, T_past + T)
        position_ids = real_before[:, offset:].clamp(min=0)  # (B, T); padding gets position 0
    return offset, key_mask, position_ids


def init_gpt2_weights(
    model: nn.Module, n_layers: int, residual_outputs: tuple[str, ...] = ("self_attn.out_proj.weight", "ff.fc2.weight")
) -> None:
    """GPT-2 initialisation: N(0, 0.02) matrices and embeddings, zero biases, residual outputs / sqrt(2N).

    Each block adds two branches to the residual stream; drawing their last matrices with std 0.02 / sqrt(2N) keeps
    the variance of the stream from growing with depth (GPT-2 paper, section 2.3). Norm gains keep their ones.
    [GPT][llmdocs.models.gpt.GPT], [Llama][llmdocs.models.llama.Llama] and the
    [LadderDecoder][llmdocs.models.ladder.LadderDecoder] all start this way, so that they compare at equal footing.

    Args:
        model: the model, initialised in place.
        n_layers: N, its number of blocks.
        residual_outputs: endings of the names of the matrices that write into the residual stream.

    Examples:
        >>> model = GPT(GPTConfig.tiny())  # GPT calls it in its constructor; here it draws again
        >>> init_gpt2_weights(model, n_layers=2)
        >>> round(model.blocks[0].ff.fc2.weight.std().item() / model.blocks[0].ff.fc1.weight.std().item(), 1)
        0.5
    """
    for module in model.modules():
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
    for name, param in model.named_parameters():
        if name.endswith(residual_outputs):
            nn.init.normal_(param, mean=0.0, std=0.02 / math.sqrt(2 * n_layers))


class GPT(nn.Module):
    """A GPT-2-style decoder-only language model: ids (B, T) -> next-token logits (B, T, V).

    ``forward`` checks its input, adds learned position embeddings (positions continue after a cache's length, and
    count only real tokens when an ``attention_mask`` marks left padding), runs the blocks and the final LayerNorm,
    and projects onto the vocabulary with the (tied) token embedding matrix. With ``need_weights=True`` every block
    keeps its attention weights in ``last_self_weights``, as the layers of the
    [Transformer][llmdocs.models.transformer.Transformer] do.

    Args:
        config: a [GPTConfig][llmdocs.models.gpt.GPTConfig].

    Shape:
        ids (B, T) integer -> logits (B, T, V), with ``len(cache) + T <= context_length``.

    References:
        Radford et al., "Improving Language Understanding by Generative Pre-Training", 2018 (GPT).
        Radford et al., "Language Models are Unsupervised Multitask Learners", 2019 (GPT-2), section 2.3.

    Examples:
        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> model = GPT(GPTConfig.tiny(vocab_size=50)).eval()
        >>> ids = torch.randint(0, 50, (2, 7))
        >>> logits = model(ids)
        >>> logits.shape
        torch.Size([2, 7, 50])
        >>> from llmdocs.testing import assert_close
        >>> assert_close(model(ids[:, :4]), logits[:, :4], depth=model.config.n_layers)  # the future is not seen
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        c = self.config = config
        self.tok_embed = nn.Embedding(c.vocab_size, c.d_model)  # E_tok (V, D)
        self.pos_embed = nn.Embedding(c.context_length, c.d_model)  # E_pos (T_max, D)
        self.dropout = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(Block(c) for _ in range(c.n_layers))
        self.norm = nn.LayerNorm(c.d_model, eps=c.layer_norm_eps, bias=c.bias)
        self.lm_head = nn.Linear(c.d_model, c.vocab_size, bias=False)
        init_gpt2_weights(self, c.n_layers)
        if c.tie_embeddings:
            self.lm_head.weight = self.tok_embed.weight  # (V, D): logits = h E_tok^T (Press and Wolf, 2017)

    def new_cache(self) -> GPTCache:
        """An empty [GPTCache][llmdocs.models.gpt.GPTCache] for incremental generation."""
        return GPTCache(self.config.n_layers)

    def forward(
        self,
        ids: Tensor,
        cache: GPTCache | None = None,
        attention_mask: Tensor | None = None,
        position_ids: Tensor | None = None,
        need_weights: bool = False,
    ) -> Tensor:
        """Next-token logits for every position of ``ids``.

        Args:
            ids: token ids (B, T); with a cache, only the tokens not yet fed.
            cache: a [GPTCache][llmdocs.models.gpt.GPTCache] from ``new_cache()``; it stores this call's keys/values.
            attention_mask: optional bool or integer (B, T_past + T), 1/True at real tokens and 0/False at (left)
                padding; it covers the cached tokens too, as in Hugging Face.
            position_ids: optional (B, T) or (1, T) ints < context_length; default ``T_past .. T_past + T - 1``, or,
                with an ``attention_mask``, the number of real tokens before each one (so left padding shifts nothing).
            need_weights: keep each block's attention weights (B, H, T, T_past + T) in its ``last_self_weights``
                (for plots; the explicit attention path is slower).

        Returns:
            Logits (B, T, V).

        Raises:
            TypeError: If ``ids`` or ``position_ids`` is not an integer tensor, ``attention_mask`` not a bool or
                integer one, or ``cache`` not a GPTCache.
            ValueError: If a shape or an id is wrong, the sequence exceeds the context, a position is outside
                [0, context_length), or ``cache`` comes from another model (layers, heads, width) or batch size.

        Examples:
            >>> import torch
            >>> model = GPT(GPTConfig.tiny()).eval()
            >>> logits = model(torch.tensor([[3, 1, 4, 1]]), need_weights=True)
            >>> [tuple(block.last_self_weights.shape) for block in model.blocks]  # (B, H, T, T) per block
            [(1, 4, 4, 4), (1, 4, 4, 4)]
        """
        c = self.config
        if cache is not None and not isinstance(cache, GPTCache):
            raise TypeError(f"cache must be a GPTCache from model.new_cache(), got {type(cache).__name__}")
        offset, key_mask, position_ids = check_decoder_call(
            ids, cache, attention_mask, position_ids, c.vocab_size, c.context_length, c.n_layers
        )
        if position_ids is None:
            position_ids = torch.arange(offset, offset + ids.size(1), device=ids.device)[None]  # (1, T)
        x = self.dropout(self.tok_embed(ids) + self.pos_embed(position_ids))  # (B, T, D)
        for i, block in enumerate(self.blocks):
            x = block(x, key_mask, cache.layers[i] if cache is not None else None, need_weights)  # (B, T, D)
        return self.lm_head(self.norm(x))  # (B, T, V)
