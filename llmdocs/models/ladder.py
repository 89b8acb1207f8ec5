"""The ablation ladder from GPT-2 to Llama: one decoder whose norm, positions and feed-forward are switched one by one.

Four things changed between GPT-2's block and a Llama block: the norm (LayerNorm -> [RMSNorm][llmdocs.nn.rmsnorm]),
the positions (a learned embedding added once -> [rotary embeddings][llmdocs.nn.rotary] in every layer), the
feed-forward (GELU -> [SwiGLU][llmdocs.nn.swiglu]) and, for the KV cache, the attention
([grouped-query][llmdocs.nn.grouped_query_attention]). ``LadderDecoder`` takes the first three as switches, so an
experiment can change one at a time at the same parameter count (SwiGLU's three matrices get 8D/3 hidden units, the
parameters of GELU's two 4D-wide ones) and the same training recipe:

| step | norm | positions | feed-forward |
|---|---|---|---|
| GPT-2 | LayerNorm | learned | GELU |
| + RMSNorm | RMSNorm | learned | GELU |
| + RoPE | LayerNorm | rotary | GELU |
| + SwiGLU | LayerNorm | learned | SwiGLU |
| all three | RMSNorm | rotary | SwiGLU |

Both ends of the ladder are the real models: the first is [GPT][llmdocs.models.gpt.GPT] and the last
[Llama][llmdocs.models.llama.Llama] (with as many key/value heads as query heads), module for module; their state
dicts load into each other and the logits are equal (tested). Biases are off and embeddings tied everywhere, as in
the GPT chapter's recipe and in SmolLM2.

Examples:
    >>> import torch
    >>> configs = {name: LadderConfig.step(name, vocab_size=83) for name in LADDER}
    >>> {name: sum(p.numel() for p in LadderDecoder(c).parameters()) for name, c in configs.items()}
    {'GPT-2': 814592, '+ RMSNorm': 814592, '+ RoPE': 798208, '+ SwiGLU': 814080, 'all three': 797696}
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Literal

import torch
from torch import Tensor, nn

from llmdocs.models.gpt import CausalSelfAttention, GPTCache, check_decoder_call, init_gpt2_weights
from llmdocs.nn.checks import check_size
from llmdocs.nn.feedforward import PositionwiseFeedForward
from llmdocs.nn.grouped_query_attention import GroupedQueryAttention
from llmdocs.nn.rmsnorm import RMSNorm
from llmdocs.nn.rotary import RotaryEmbedding
from llmdocs.nn.swiglu import SwiGLU

__all__ = ["LADDER", "LadderBlock", "LadderConfig", "LadderDecoder"]

Norm = Literal["layernorm", "rmsnorm"]
Positions = Literal["learned", "rope"]
FeedForward = Literal["gelu", "swiglu"]
_CHOICES: dict[str, tuple[str, ...]] = {
    "norm": ("layernorm", "rmsnorm"),
    "positions": ("learned", "rope"),
    "feed_forward": ("gelu", "swiglu"),
}

LADDER: dict[str, dict[str, str]] = {
    "GPT-2": {},
    "+ RMSNorm": {"norm": "rmsnorm"},
    "+ RoPE": {"positions": "rope"},
    "+ SwiGLU": {"feed_forward": "swiglu"},
    "all three": {"norm": "rmsnorm", "positions": "rope", "feed_forward": "swiglu"},
}
"""The steps of the ladder: name -> the switches that differ from GPT-2's."""


@dataclass(frozen=True)
class LadderConfig:
    """Hyper-parameters of a [LadderDecoder][llmdocs.models.ladder.LadderDecoder]; defaults: the GPT chapter's model.

    Examples:
        >>> LadderConfig(83).d_ff, LadderConfig(83, feed_forward="swiglu").d_ff  # 4D, and 8D/3 rounded
        (512, 341)
        >>> LadderConfig.step("+ RoPE", vocab_size=83).positions
        'rope'
        >>> LadderConfig(83, norm="batchnorm")
        Traceback (most recent call last):
        ...
        ValueError: norm must be one of ('layernorm', 'rmsnorm'), got 'batchnorm'
    """

    vocab_size: int  # V
    context_length: int = 128  # T_max: learned positions have this many rows; rotary ones have no table to outgrow
    d_model: int = 128  # D
    n_heads: int = 4  # H; d_head = D / H (even for rotary embeddings)
    n_layers: int = 4  # N
    norm: Norm = "layernorm"  # the two norms of every block and the final one
    positions: Positions = "learned"  # a learned (T_max, D) embedding added to the input, or RoPE in every layer
    feed_forward: FeedForward = "gelu"  # GELU (exact erf form) between two matrices, or SwiGLU's three
    d_ff: int | None = None  # None -> 4D for GELU, round(8D/3) for SwiGLU: the same parameters
    rope_theta: float = 10000.0  # base of the rotary frequencies
    norm_eps: float = 1e-5  # epsilon of every norm
    dropout: float = 0.0  # on the attention weights and after each residual branch, training only

    def __post_init__(self) -> None:
        for name, choices in _CHOICES.items():
            if getattr(self, name) not in choices:
                raise ValueError(f"{name} must be one of {choices}, got {getattr(self, name)!r}")
        if self.d_ff is None:
            hidden = round(8 * self.d_model / 3) if self.feed_forward == "swiglu" else 4 * self.d_model
            object.__setattr__(self, "d_ff", hidden)  # frozen: set the derived default once
        for name in ("vocab_size", "context_length", "d_model", "n_heads", "n_layers", "d_ff"):
            check_size(name, getattr(self, name))
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}")
        if self.positions == "rope" and (self.d_model // self.n_heads) % 2:
            raise ValueError(f"d_head = {self.d_model // self.n_heads} is odd; rotary embeddings rotate pairs")
        for name in ("rope_theta", "norm_eps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, int | float) or not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")

    @classmethod
    def step(cls, name: str, vocab_size: int, **overrides: Any) -> LadderConfig:
        """The config of one step of [LADDER][llmdocs.models.ladder.LADDER] (``"GPT-2"``, ``"+ RMSNorm"``, ...).

        Raises:
            ValueError: If ``name`` is not a step of the ladder.
        """
        if name not in LADDER:
            raise ValueError(f"name must be one of {list(LADDER)}, got {name!r}")
        return cls(vocab_size, **{**LADDER[name], **overrides})

    @property
    def name(self) -> str:
        """The ladder step this config is (``"GPT-2"``, ..., ``"all three"``), or its switches if none."""
        switches = {k: getattr(self, k) for k in _CHOICES if getattr(self, k) != _CHOICES[k][0]}
        for name, step in LADDER.items():
            if step == switches:
                return name
        return " + ".join(switches.values())

    def with_switches(self, **switches: str) -> LadderConfig:
        """The same config with other switches; ``d_ff`` is derived again unless given."""
        return replace(self, **{"d_ff": None, **switches})


class LadderBlock(nn.Module):
    """One Pre-norm block: x + Attn(Norm(x)), then x + FFN(Norm(x)), with the norm, attention and FFN of the config.

    Attention is GPT's [CausalSelfAttention][llmdocs.models.gpt.CausalSelfAttention] with learned positions and
    [GroupedQueryAttention][llmdocs.nn.grouped_query_attention.GroupedQueryAttention] with H key/value heads (plain
    multi-head attention) with rotary ones; the module names are GPT's and Llama's (``norm1``, ``self_attn``,
    ``norm2``, ``ff``).

    Args:
        config: a [LadderConfig][llmdocs.models.ladder.LadderConfig].

    Shape:
        x (B, T, D), position_embeddings ``(cos, sin)`` each (T, Dh) or (B, T, Dh) (rotary only, else None),
        key_mask (B, T_past + T) -> (B, T, D).
    """

    def __init__(self, config: LadderConfig) -> None:
        super().__init__()
        c = config
        assert c.d_ff is not None
        self.norm1, self.norm2 = _norm(c), _norm(c)
        self.self_attn: nn.Module
        if c.positions == "rope":
            self.self_attn = GroupedQueryAttention(c.d_model, c.n_heads, c.n_heads, c.rope_theta, dropout=c.dropout)
        else:
            self.self_attn = CausalSelfAttention(c.d_model, c.n_heads, dropout=c.dropout, bias=False)
        self.ff: nn.Module
        if c.feed_forward == "swiglu":
            self.ff = SwiGLU(c.d_model, c.d_ff)
        else:
            self.ff = PositionwiseFeedForward(c.d_model, c.d_ff, activation="gelu", bias=False)
        self.dropout = nn.Dropout(c.dropout)

    def forward(
        self,
        x: Tensor,
        position_embeddings: tuple[Tensor, Tensor] | None,
        key_mask: Tensor | None = None,
        cache: Any = None,
    ) -> Tensor:
        """Apply the block to x (B, T, D); with a cache, x holds only the new positions."""
        if isinstance(self.self_attn, GroupedQueryAttention):
            attn_out, _ = self.self_attn(
                self.norm1(x), attention_mask=key_mask, cache=cache, position_embeddings=position_embeddings
            )
        else:
            attn_out, _ = self.self_attn(self.norm1(x), key_mask, cache)
        x = x + self.dropout(attn_out)  # (B, T, D)
        return x + self.dropout(self.ff(self.norm2(x)))  # (B, T, D)


def _norm(config: LadderConfig) -> nn.Module:
    """LayerNorm without a bias (the GPT chapter's recipe) or RMSNorm computed in float32 (Llama's)."""
    if config.norm == "rmsnorm":
        return RMSNorm(config.d_model, eps=config.norm_eps, compute_dtype=torch.float32)
    return nn.LayerNorm(config.d_model, eps=config.norm_eps, bias=False)


class LadderDecoder(nn.Module):
    """A decoder-only language model between GPT-2 and Llama: ids (B, T) -> next-token logits (B, T, V).

    The calling convention is GPT's (``new_cache()``, ``model(ids, cache=..., attention_mask=...,
    position_ids=...)``), so the package's training loop and [generation][llmdocs.generation] run on every step of
    the ladder. Initialisation is the same for every step: N(0, 0.02) matrices and embeddings, the two residual
    output matrices of every block scaled by 1/sqrt(2N) (GPT-2, section 2.3), norms at one.

    Args:
        config: a [LadderConfig][llmdocs.models.ladder.LadderConfig].

    Shape:
        ids (B, T) integer -> logits (B, T, V), with ``len(cache) + T <= context_length``.

    References:
        Radford et al., "Language Models are Unsupervised Multitask Learners", 2019 (GPT-2).
        Touvron et al., "LLaMA: Open and Efficient Foundation Language Models", 2023, section 2.2 (the three
        changes: pre-normalisation with RMSNorm, SwiGLU, rotary embeddings).

    Examples:
        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> model = LadderDecoder(LadderConfig.step("+ RoPE", vocab_size=50, d_model=32, n_layers=2)).eval()
        >>> ids = torch.randint(0, 50, (2, 7))
        >>> model(ids).shape
        torch.Size([2, 7, 50])
        >>> hasattr(model, "pos_embed"), hasattr(model, "rotary")  # rotary positions: no position embedding
        (False, True)
    """

    def __init__(self, config: LadderConfig) -> None:
        super().__init__()
        c = self.config = config
        self.tok_embed = nn.Embedding(c.vocab_size, c.d_model)  # E_tok (V, D)
        if c.positions == "learned":
            self.pos_embed = nn.Embedding(c.context_length, c.d_model)  # E_pos (T_max, D)
        else:
            self.rotary = RotaryEmbedding(c.d_model // c.n_heads, rope_theta=c.rope_theta)
        self.dropout = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(LadderBlock(c) for _ in range(c.n_layers))
        self.norm = _norm(c)
        self.lm_head = nn.Linear(c.d_model, c.vocab_size, bias=False)
        init_gpt2_weights(self, c.n_layers, ("self_attn.out_proj.weight", "ff.fc2.weight", "ff.down_proj.weight"))
        self.lm_head.weight = self.tok_embed.weight  # tied (Press and Wolf, 2017)

    def new_cache(self) -> GPTCache:
        """An empty [GPTCache][llmdocs.models.gpt.GPTCache] for incremental generation."""
        return GPTCache(self.config.n_layers)

    def forward(
        self,
        ids: Tensor,
        cache: GPTCache | None = None,
        attention_mask: Tensor | None = None,
        position_ids: Tensor | None = None,
    ) -> Tensor:
        """Next-token logits for every position of ``ids``.

        Args:
            ids: token ids (B, T); with a cache, only the tokens not yet fed.
            cache: a [GPTCache][llmdocs.models.gpt.GPTCache] from ``new_cache()``.
            attention_mask: optional bool or integer (B, T_past + T), True at real tokens (left padding).
            position_ids: optional (B, T) or (1, T) ints < context_length; by default positions continue after
                the cache and count only real tokens.

        Returns:
            Logits (B, T, V).

        Raises:
            TypeError: If ``ids`` or ``position_ids`` is not an integer tensor, ``attention_mask`` not a bool or
                integer one, or ``cache`` not a GPTCache.
            ValueError: As [check_decoder_call][llmdocs.models.gpt.check_decoder_call].
        """
        c = self.config
        if cache is not None and not isinstance(cache, GPTCache):
            raise TypeError(f"cache must be a GPTCache from model.new_cache(), got {type(cache).__name__}")
        offset, key_mask, position_ids = check_decoder_call(
            ids, cache, attention_mask, position_ids, c.vocab_size, c.context_length, c.n_layers
        )
        x = self.tok_embed(ids)  # (B, T, D)
        rotation: tuple[Tensor, Tensor] | None = None
        if c.positions == "learned":
            if position_ids is None:
                position_ids = torch.arange(offset, offset + ids.size(1), device=ids.device)[None]  # (1, T)
            x = x + self.pos_embed(position_ids)  # (B, T, D)
        else:
            rows = position_ids[0] if position_ids is not None and position_ids.size(0) == 1 else position_ids
            rotation = self.rotary(x, position_ids=rows, offset=offset if rows is None else 0)  # (T, Dh) each
        x = self.dropout(x)
        for i, block in enumerate(self.blocks):
            x = block(x, rotation, key_mask, cache.layers[i] if cache is not None else None)  # (B, T, D)
        return self.lm_head(self.norm(x))  # (B, T, V)
