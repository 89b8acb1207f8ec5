"""Llama: the decoder-only language model of today's open models, GPT-2 with four pieces replaced.

    h_0 = E_tok[ids]                                                    (no position embedding)
    h_l = h_{l-1} + GQA(RMSNorm(h_{l-1}), RoPE(positions));  h_l = h_l + SwiGLU(RMSNorm(h_l))
    logits = RMSNorm(h_N) W_out^T                                       (W_out = E_tok when tied)

Against [GPT][llmdocs.models.gpt] (Touvron et al., 2023, section 2.2): [RMSNorm][llmdocs.nn.rmsnorm] instead of
LayerNorm (still Pre-LN, still a final norm); [rotary embeddings][llmdocs.nn.rotary] rotate the queries and keys
of every layer instead of a learned position embedding added once; the [SwiGLU][llmdocs.nn.swiglu] feed-forward
instead of GELU; no biases anywhere and no dropout. Llama 2 and its descendants add
[grouped-query attention][llmdocs.nn.grouped_query_attention], whose KV cache holds only ``n_kv_heads`` heads.

SmolLM2-135M (Allal et al., 2025) is this model at 30 layers, D 576, 9 query and 3 key/value heads, tied embeddings:
``LlamaConfig.smollm2_135m()``; [smollm2][llmdocs.models.smollm2] loads its released weights. The calling convention
is GPT's, so [generation][llmdocs.generation] (greedy, sampling, streaming, beam search, left-padded batches)
runs on it unchanged; [interop.hf_llama][llmdocs.interop.hf_llama] maps it to Hugging Face's ``LlamaForCausalLM``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from llmdocs.models.gpt import GPTCache, check_decoder_call, init_gpt2_weights
from llmdocs.nn.attention import KVCache
from llmdocs.nn.checks import check_size
from llmdocs.nn.grouped_query_attention import GroupedQueryAttention, check_document_ids
from llmdocs.nn.rmsnorm import RMSNorm
from llmdocs.nn.rotary import ROPE_SCALINGS, RopeScaling, RotaryEmbedding
from llmdocs.nn.swiglu import SwiGLU, swiglu_hidden_dim

__all__ = ["Llama", "LlamaBlock", "LlamaCache", "LlamaConfig"]


def _check_positive(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value < math.inf:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


@dataclass(frozen=True)
class LlamaConfig:
    """Hyper-parameters of a [Llama][llmdocs.models.llama.Llama]; the defaults are LLaMA-7B's (Touvron et al., 2023).

    Examples:
        >>> LlamaConfig(vocab_size=32000).d_ff  # 2/3 of 4D, rounded up to a multiple of 256
        11008
        >>> c = LlamaConfig.smollm2_135m()
        >>> c.d_head, c.n_groups  # 9 query heads share 3 key/value heads
        (64, 3)
        >>> LlamaConfig(vocab_size=10, d_model=64, n_heads=4, n_kv_heads=3)
        Traceback (most recent call last):
        ...
        ValueError: n_heads=4 is not divisible by n_kv_heads=3: every key/value head serves a group of the same ...
    """

    vocab_size: int  # vocabulary size V (rows of the token embedding and of the output head)
    context_length: int = 2048  # longest sequence T_max the model is meant for (RoPE has no table to outgrow)
    d_model: int = 4096  # model width D
    n_heads: int = 32  # query heads H; d_head = d_model // n_heads, even (RoPE rotates pairs)
    n_kv_heads: int | None = None  # key/value heads, dividing n_heads; None -> n_heads (multi-head attention)
    n_layers: int = 32  # number of blocks N
    d_ff: int | None = None  # SwiGLU hidden width F; None -> swiglu_hidden_dim(d_model): 2/3 * 4D, rounded up to 256
    rope_theta: float = 10000.0  # RoPE base (10,000 in Llama 1-2, 500,000 in Llama 3, 100,000 in SmolLM2)
    rope_scaling: RopeScaling | None = None  # context extension: None, "linear" or "ntk" (see llmdocs.nn.rotary)
    rope_scaling_factor: float = 1.0  # s of rope_scaling: the context is extended s times
    rms_norm_eps: float = 1e-6  # epsilon of every RMSNorm (1e-6 in Llama 1, 1e-5 in Llama 2 and SmolLM2)
    dropout: float = 0.0  # dropout on the attention weights, training only (Llama trains without)
    tie_embeddings: bool = False  # output head reuses the token embedding matrix (SmolLM2: yes, Llama: no)

    def __post_init__(self) -> None:
        if self.n_kv_heads is None:
            object.__setattr__(self, "n_kv_heads", self.n_heads)  # frozen: set the derived defaults once
        for name in ("vocab_size", "context_length", "d_model", "n_heads", "n_kv_heads", "n_layers"):
            check_size(name, getattr(self, name))
        if self.d_ff is None:
            object.__setattr__(self, "d_ff", swiglu_hidden_dim(self.d_model))
        check_size("d_ff", self.d_ff)
        assert self.n_kv_heads is not None
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}")
        if self.n_heads % self.n_kv_heads:
            raise ValueError(
                f"n_heads={self.n_heads} is not divisible by n_kv_heads={self.n_kv_heads}: every key/value head "
                "serves a group of the same number of query heads"
            )
        if self.d_head % 2:
            raise ValueError(
                f"d_head = d_model / n_heads = {self.d_head} is odd; rotary embeddings rotate pairs of coordinates"
            )
        _check_positive("rope_theta", self.rope_theta)
        _check_positive("rope_scaling_factor", self.rope_scaling_factor)
        if self.rope_scaling is not None and self.rope_scaling not in ROPE_SCALINGS:
            raise ValueError(f"rope_scaling must be None or one of {ROPE_SCALINGS}, got {self.rope_scaling!r}")
        _check_positive("rms_norm_eps", self.rms_norm_eps)
        if not isinstance(self.tie_embeddings, bool):
            raise TypeError(f"tie_embeddings must be True or False, got {self.tie_embeddings!r}")
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)) or not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")

    @property
    def d_head(self) -> int:
        """Width Dh = D / H of one attention head."""
        return self.d_model // self.n_heads

    @property
    def n_groups(self) -> int:
        """Query heads per key/value head, H / n_kv_heads (1: multi-head attention; H: multi-query)."""
        assert self.n_kv_heads is not None
        return self.n_heads // self.n_kv_heads

    @classmethod
    def tiny(cls, vocab_size: int = 64, **overrides: Any) -> LlamaConfig:
        """A model small enough for tests and doctests: 2 layers, D 32, 4 query heads sharing 2 KV heads, F 96."""
        fields: dict[str, Any] = dict(
            context_length=32, d_model=32, n_heads=4, n_kv_heads=2, n_layers=2, d_ff=96, tie_embeddings=True
        )
        return cls(vocab_size, **{**fields, **overrides})

    @classmethod
    def llama_7b(cls, **overrides: Any) -> LlamaConfig:
        """LLaMA-7B (Touvron et al., 2023, table 2): V 32,000, 2,048 positions, D 4,096, H = N = 32, F 11,008."""
        return cls(**{"vocab_size": 32000, **overrides})

    @classmethod
    def smollm2_135m(cls, **overrides: Any) -> LlamaConfig:
        """SmolLM2-135M (Allal et al., 2025): 30 layers, D 576, F 1,536, 9 heads sharing 3 KV heads, theta 100,000.

        49,152 tokens, 8,192 positions, RMSNorm eps 1e-5, tied embeddings: 134.5M parameters.
        """
        fields: dict[str, Any] = dict(
            vocab_size=49152,
            context_length=8192,
            d_model=576,
            n_heads=9,
            n_kv_heads=3,
            n_layers=30,
            d_ff=1536,
            rope_theta=100000.0,
            rms_norm_eps=1e-5,
            tie_embeddings=True,
        )
        return cls(**{**fields, **overrides})


class LlamaBlock(nn.Module):
    """One Pre-RMSNorm Llama block: x + GQA(RMSNorm(x)), then x + SwiGLU(RMSNorm(x)); no dropout, no biases.

    Both norms compute their statistics in float32 whatever the model's dtype, as Meta's reference code
    (``self._norm(x.float()).type_as(x)``) and Hugging Face's ``LlamaRMSNorm`` do: a float64 copy of the model then
    computes exactly what theirs computes, which is what a float64 equivalence proof needs.

    Args:
        config: a [LlamaConfig][llmdocs.models.llama.LlamaConfig].

    Attributes:
        last_self_weights: attention weights (B, H, T, T_past + T) of the last call with ``need_weights=True``,
            else None.

    Shape:
        x (B, T, D), position_embeddings ``(cos, sin)`` each (T, Dh) or (B, T, Dh), key_mask (B, T_past + T)
        -> (B, T, D).

    References:
        Touvron et al., "LLaMA: Open and Efficient Foundation Language Models", 2023, section 2.2.

    Examples:
        >>> import torch
        >>> from llmdocs.nn.rotary import RotaryEmbedding
        >>> block = LlamaBlock(LlamaConfig.tiny())
        >>> x = torch.randn(2, 5, 32)
        >>> block(x, RotaryEmbedding(d_head=8)(x), need_weights=True).shape
        torch.Size([2, 5, 32])
        >>> block.last_self_weights.shape  # (B, H, T, T)
        torch.Size([2, 4, 5, 5])
    """

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        c = config
        assert c.d_ff is not None
        self.norm1 = RMSNorm(c.d_model, eps=c.rms_norm_eps, compute_dtype=torch.float32)
        self.self_attn = GroupedQueryAttention(
            c.d_model, c.n_heads, c.n_kv_heads, rope_theta=c.rope_theta, dropout=c.dropout
        )
        self.norm2 = RMSNorm(c.d_model, eps=c.rms_norm_eps, compute_dtype=torch.float32)
        self.ff = SwiGLU(c.d_model, c.d_ff)
        self.last_self_weights: Tensor | None = None

    def forward(
        self,
        x: Tensor,
        position_embeddings: tuple[Tensor, Tensor],
        key_mask: Tensor | None = None,
        cache: KVCache | None = None,
        need_weights: bool = False,
        document_ids: Tensor | None = None,
    ) -> Tensor:
        """Apply the block to x (B, T, D); see [GroupedQueryAttention][llmdocs.nn.grouped_query_attention].

        Args:
            x: hidden states (B, T, D); with a cache, only the new positions.
            position_embeddings: ``(cos, sin)`` of the new positions from the model's
                [RotaryEmbedding][llmdocs.nn.rotary.RotaryEmbedding], each (T, Dh) or (B, T, Dh).
            key_mask: bool (B, T_past + T), True at real tokens; None = no padding.
            cache: the block's [KVCache][llmdocs.nn.attention.KVCache] (rotated keys and values of the KV heads).
            need_weights: keep the attention weights in ``last_self_weights``.
            document_ids: integer (B, T), the example of each token of a packed row (attention stays inside each
                example); None = one sequence per row. Not with a cache.

        Returns:
            Hidden states (B, T, D).
        """
        attn_out, self.last_self_weights = self.self_attn(
            self.norm1(x),
            attention_mask=key_mask,
            cache=cache,
            position_embeddings=position_embeddings,
            need_weights=need_weights,
            document_ids=document_ids,
        )
        x = x + attn_out  # (B, T, D)
        return x + self.ff(self.norm2(x))  # (B, T, D)


class LlamaCache(GPTCache):
    """The key/value caches of all blocks of a [Llama][llmdocs.models.llama.Llama] (``model.new_cache()``).

    The same bookkeeping as [GPTCache][llmdocs.models.gpt.GPTCache] (``len``, ``reorder`` for beam search); each
    layer's [KVCache][llmdocs.nn.attention.KVCache] holds the *rotated* keys and the values of the ``n_kv_heads``
    key/value heads only, (B, n_kv_heads, T_past, Dh): SmolLM2 keeps 2 * 30 * 3 * 64 = 11,520 numbers per token.

    Examples:
        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> model = Llama(LlamaConfig.tiny()).eval()
        >>> ids = torch.randint(0, 64, (2, 6))
        >>> cache = model.new_cache()
        >>> steps = [model(ids[:, :4], cache=cache)] + [model(ids[:, t : t + 1], cache=cache) for t in (4, 5)]
        >>> len(cache), tuple(cache.layers[0].k.shape)  # (B, n_kv_heads, T, Dh)
        (6, (2, 2, 6, 8))
        >>> from llmdocs.testing import assert_close
        >>> assert_close(torch.cat(steps, dim=1), model(ids), depth=model.config.n_layers)  # the same logits
    """


class Llama(nn.Module):
    """A Llama-style decoder-only language model: ids (B, T) -> next-token logits (B, T, V).

    ``forward`` checks its input, looks up the token embeddings, computes the rotary cosines and sines of the
    positions once for all blocks (positions continue after a cache's length, and count only real tokens when an
    ``attention_mask`` marks left padding, so a padded row is rotated exactly as the same prompt alone), runs the
    blocks and the final RMSNorm, and projects onto the vocabulary. The calling convention is
    [GPT][llmdocs.models.gpt.GPT]'s: ``new_cache()``, ``model(ids, cache=..., attention_mask=...,
    position_ids=...)``.

    Args:
        config: a [LlamaConfig][llmdocs.models.llama.LlamaConfig].

    Shape:
        ids (B, T) integer -> logits (B, T, V), with ``len(cache) + T <= context_length``.

    References:
        Touvron et al., "LLaMA: Open and Efficient Foundation Language Models", 2023, section 2.2.
        Touvron et al., "Llama 2: Open Foundation and Fine-Tuned Chat Models", 2023, section 2.2 (GQA).
        Allal et al., "SmolLM2: When Smol Goes Big -- Data-Centric Training of a Small Language Model", 2025.

    Examples:
        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> model = Llama(LlamaConfig.tiny(vocab_size=50)).eval()
        >>> ids = torch.randint(0, 50, (2, 7))
        >>> logits = model(ids)
        >>> logits.shape
        torch.Size([2, 7, 50])
        >>> from llmdocs.testing import assert_close
        >>> assert_close(model(ids[:, :4]), logits[:, :4], depth=model.config.n_layers)  # the future is not seen
        >>> model.lm_head.weight is model.tok_embed.weight  # tiny() ties the head, as SmolLM2
        True
    """

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        c = self.config = config
        self.tok_embed = nn.Embedding(c.vocab_size, c.d_model)  # E_tok (V, D)
        # One table of cosines and sines for all blocks (each GroupedQueryAttention also has its own, unused here).
        self.rotary = RotaryEmbedding(
            c.d_head,
            rope_theta=c.rope_theta,
            rope_scaling=c.rope_scaling,
            scaling_factor=c.rope_scaling_factor,
            max_position_embeddings=min(c.context_length, 4096),
        )
        self.blocks = nn.ModuleList(LlamaBlock(c) for _ in range(c.n_layers))
        self.norm = RMSNorm(c.d_model, eps=c.rms_norm_eps, compute_dtype=torch.float32)
        self.lm_head = nn.Linear(c.d_model, c.vocab_size, bias=False)  # W_out (V, D)
        # N(0, 0.02) as Hugging Face's Llama, and GPT-2's 1/sqrt(2N) on the residual outputs: comparable with GPT.
        init_gpt2_weights(self, c.n_layers, ("self_attn.out_proj.weight", "ff.down_proj.weight"))
        if c.tie_embeddings:
            self.lm_head.weight = self.tok_embed.weight  # (V, D): logits = h E_tok^T (Press and Wolf, 2017)
        self.gradient_checkpointing = False

    def gradient_checkpointing_enable(self) -> None:
        """Recompute each block's activations in the backward pass instead of keeping them (Chen et al., 2016).

        Training keeps, for the backward pass, every intermediate tensor of every block: for SmolLM2 under LoRA in
        float32 about 3.3 MB per token, so 16 rows of 1,000 tokens need some 50 GB. With checkpointing each block
        keeps only its input (B, T, D) and runs its forward a second time during the backward pass: activation
        memory falls to about one block's worth plus N inputs, for about one more forward pass of compute (~30% more
        time per step). Gradients are unchanged (the same operations run on the same values; dropout replays its
        random numbers). Applies only in training mode with gradients enabled and without a cache; the name and
        behaviour are Hugging Face's ``gradient_checkpointing_enable()``.

        References:
            Chen et al., "Training Deep Nets with Sublinear Memory Cost", 2016; ``torch.utils.checkpoint``
            (non-reentrant).
        """
        self.gradient_checkpointing = True

    def gradient_checkpointing_disable(self) -> None:
        """Keep every block's activations again (the default): the fastest backward pass, the most memory."""
        self.gradient_checkpointing = False

    def new_cache(self) -> LlamaCache:
        """An empty [LlamaCache][llmdocs.models.llama.LlamaCache] for incremental generation."""
        return LlamaCache(self.config.n_layers)

    def forward(
        self,
        ids: Tensor,
        cache: LlamaCache | None = None,
        attention_mask: Tensor | None = None,
        position_ids: Tensor | None = None,
        need_weights: bool = False,
        logits_to_keep: int | None = None,
        document_ids: Tensor | None = None,
        logits_mask: Tensor | None = None,
    ) -> Tensor:
        """Next-token logits for every position of ``ids`` (or for its last ``logits_to_keep`` positions, or for
        the positions of ``logits_mask``).

        Args:
            ids: token ids (B, T); with a cache, only the tokens not yet fed.
            cache: a [LlamaCache][llmdocs.models.llama.LlamaCache] from ``new_cache()``; it stores this call's
                rotated keys and values.
            attention_mask: optional bool or integer (B, T_past + T), 1/True at real tokens and 0/False at (left)
                padding; it covers the cached tokens too, as in Hugging Face.
            position_ids: optional (B, T) or (1, T) ints < context_length; default ``T_past .. T_past + T - 1``, or,
                with an ``attention_mask``, the number of real tokens before each one (so left padding shifts nothing).
            need_weights: keep each block's attention weights (B, H, T, T_past + T) in its ``last_self_weights``.
            logits_to_keep: project only the last ``logits_to_keep`` positions onto the vocabulary (the prompt of a
                generation needs only its last one: with V = 49,152 the head is most of the work of a long prompt);
                None projects all T.
            document_ids: optional integer (B, T) for packed training rows: the example each token belongs to.
                Attention is then block-diagonal as well as causal, so no example attends to another; pass
                ``position_ids`` restarting at 0 in each example with it (as
                [pack_examples][llmdocs.finetuning.packing.pack_examples] returns them). Refused with a cache.
            logits_mask: optional bool (B, T): project only the positions where it is True, and return their logits
                as rows in row-major order. Training needs logits only where a label is trained: in SFT, the few
                answer tokens of a long prompt ([sft_loss_fn][llmdocs.finetuning.sft.sft_loss_fn]); with
                V = 49,152 and D = 576 the head is a fifth of SmolLM2's work per token. Not with ``logits_to_keep``.

        Returns:
            Logits (B, T, V), (B, logits_to_keep, V), or (N, V) for the N True positions of ``logits_mask``.

        Raises:
            TypeError: If ``ids`` or ``position_ids`` is not an integer tensor, ``attention_mask`` not a bool or
                integer one, ``cache`` not a LlamaCache, ``document_ids`` not an integer tensor, or ``logits_mask``
                not a bool tensor.
            ValueError: If a shape or an id is wrong, the sequence exceeds the context, a position is outside
                [0, context_length), ``logits_to_keep`` is not in 1..T, or ``cache`` comes from another model
                (layers, KV heads, width) or batch size, ``document_ids`` is not (B, T) or comes with a cache, or
                ``logits_mask`` is not (B, T) or comes with ``logits_to_keep``.

        Examples:
            >>> import torch
            >>> model = Llama(LlamaConfig.tiny()).eval()
            >>> ids = torch.tensor([[3, 1, 4, 1, 5]])
            >>> model(ids, logits_to_keep=1).shape
            torch.Size([1, 1, 64])
            >>> _ = model(ids, need_weights=True)
            >>> [tuple(block.last_self_weights.shape) for block in model.blocks]  # (B, H, T, T) per block
            [(1, 4, 5, 5), (1, 4, 5, 5)]
        """
        offset, key_mask, position_ids = self._check_call(ids, cache, attention_mask, position_ids, document_ids)
        B, T = ids.shape
        if logits_to_keep is not None and (
            isinstance(logits_to_keep, bool) or not isinstance(logits_to_keep, int) or not 1 <= logits_to_keep <= T
        ):
            raise ValueError(f"logits_to_keep must be None or an integer in 1..T={T}, got {logits_to_keep!r}")
        if logits_mask is not None:
            if not isinstance(logits_mask, Tensor) or logits_mask.dtype != torch.bool:
                got = logits_mask.dtype if isinstance(logits_mask, Tensor) else type(logits_mask).__name__
                raise TypeError(f"logits_mask must be a bool tensor (B, T), True where logits are needed, got {got}")
            if logits_mask.shape != (B, T):
                raise ValueError(f"logits_mask must be (B, T)={(B, T)}, got {tuple(logits_mask.shape)}")
            if logits_to_keep is not None:
                raise ValueError("give logits_to_keep or logits_mask, not both")
        x = self._run_blocks(ids, cache, offset, key_mask, position_ids, need_weights, document_ids)  # (B, T, D)
        if logits_to_keep is not None:
            x = x[:, T - logits_to_keep :]  # (B, logits_to_keep, D)
        elif logits_mask is not None:
            x = x[logits_mask.to(x.device)]  # (N, D): the chosen positions only
        return self.lm_head(self.norm(x))  # (B, T, V), (B, logits_to_keep, V) or (N, V)

    def hidden_states(
        self,
        ids: Tensor,
        cache: LlamaCache | None = None,
        attention_mask: Tensor | None = None,
        position_ids: Tensor | None = None,
        document_ids: Tensor | None = None,
    ) -> Tensor:
        """The final hidden states RMSNorm(h_N) (B, T, D): what ``forward`` projects onto the vocabulary.

        A head other than the language-model head reads these: the scalar head of a reward or value model
        ([RewardModel][llmdocs.finetuning.reward_model.RewardModel]), as Hugging Face's
        ``LlamaForSequenceClassification`` reads ``LlamaModel``'s ``last_hidden_state`` (also after the final norm).

        Args:
            ids: token ids (B, T); with a cache, only the tokens not yet fed.
            cache: a [LlamaCache][llmdocs.models.llama.LlamaCache], as in ``forward``.
            attention_mask: optional bool or integer (B, T_past + T), 1/True at real tokens, as in ``forward``.
            position_ids: optional (B, T) or (1, T) positions, as in ``forward``.
            document_ids: optional integer (B, T) for packed rows, as in ``forward``.

        Returns:
            Hidden states (B, T, D) after the final RMSNorm.

        Raises:
            TypeError: If an argument has the wrong type (as ``forward``).
            ValueError: If a shape, an id or a position is wrong (as ``forward``).

        Examples:
            >>> import torch
            >>> model = Llama(LlamaConfig.tiny()).eval()
            >>> ids = torch.tensor([[3, 1, 4, 1, 5]])
            >>> h = model.hidden_states(ids)
            >>> h.shape
            torch.Size([1, 5, 32])
            >>> torch.equal(model.lm_head(h), model(ids))  # forward is the head on these
            True
        """
        offset, key_mask, position_ids = self._check_call(ids, cache, attention_mask, position_ids, document_ids)
        return self.norm(self._run_blocks(ids, cache, offset, key_mask, position_ids, False, document_ids))

    def _check_call(
        self,
        ids: Tensor,
        cache: LlamaCache | None,
        attention_mask: Tensor | None,
        position_ids: Tensor | None,
        document_ids: Tensor | None,
    ) -> tuple[int, Tensor | None, Tensor | None]:
        """Check a call's inputs: the cache's length, the key mask (B, T_past + T) and the positions to use."""
        c = self.config
        if cache is not None and not isinstance(cache, LlamaCache):
            raise TypeError(f"cache must be a LlamaCache from model.new_cache(), got {type(cache).__name__}")
        offset, key_mask, position_ids = check_decoder_call(
            ids, cache, attention_mask, position_ids, c.vocab_size, c.context_length, c.n_layers
        )
        check_document_ids(document_ids, ids.size(0), ids.size(1), cache)
        return offset, key_mask, position_ids

    def _run_blocks(
        self,
        ids: Tensor,
        cache: LlamaCache | None,
        offset: int,
        key_mask: Tensor | None,
        position_ids: Tensor | None,
        need_weights: bool,
        document_ids: Tensor | None,
    ) -> Tensor:
        """Embed checked ``ids`` (B, T) and run the blocks: h_N (B, T, D), before the final norm."""
        if position_ids is not None and position_ids.size(0) == 1:
            position_ids = position_ids[0]  # (T,): one row of angles for the whole batch
        x = self.tok_embed(ids)  # (B, T, D)
        # Computed once for all blocks: each (T, Dh), or (B, T, Dh) for per-row positions.
        offset_of_ids = 0 if position_ids is not None else offset
        position_embeddings = self.rotary(x, position_ids=position_ids, offset=offset_of_ids)
        recompute = self.gradient_checkpointing and self.training and torch.is_grad_enabled() and cache is None
        for i, block in enumerate(self.blocks):
            if recompute:  # keep only the block's input; its forward runs again in the backward pass
                x = checkpoint(
                    block, x, position_embeddings, key_mask, None, need_weights, document_ids, use_reentrant=False
                )  # (B, T, D)
            else:
                layer_cache = cache.layers[i] if cache is not None else None
                x = block(x, position_embeddings, key_mask, layer_cache, need_weights, document_ids)  # (B, T, D)
        return x
