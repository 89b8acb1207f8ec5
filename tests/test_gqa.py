"""Tests for llmdocs.nn.grouped_query_attention: GQA/MQA/MHA against Hugging Face's LlamaAttention, the KV cache of
the key/value heads, the fused and explicit paths, the errors."""

from __future__ import annotations

import os

import pytest
import torch

import llmdocs.nn.grouped_query_attention as gqa_module
from llmdocs.nn.attention import KVCache, causal_mask
from llmdocs.nn.grouped_query_attention import GroupedQueryAttention, kv_cache_numbers_per_token, repeat_kv_heads
from llmdocs.nn.rotary import rope_cos_sin
from llmdocs.testing import assert_close, assert_equivalent

os.environ["HF_HUB_OFFLINE"] = "1"  # before transformers is imported: never touch the network
pytest.importorskip("transformers")
from transformers import LlamaConfig
from transformers.models.llama.modeling_llama import LlamaAttention, LlamaRotaryEmbedding

B, T, Dh = 2, 6, 8
F64 = torch.float64
THETA = 500.0

# (n_heads, n_kv_heads): grouped-query, multi-query, multi-head, and odd head counts (SmolLM2 has 9 and 3)
CONFIGS = {"gqa": (4, 2), "mqa": (4, 1), "mha": (4, 4), "gqa_9_3": (9, 3), "mqa_3_1": (3, 1), "mha_5": (5, 5)}


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def make_gqa(n_heads: int = 4, n_kv_heads: int | None = 2, bias: bool = False) -> GroupedQueryAttention:
    return GroupedQueryAttention(n_heads * Dh, n_heads, n_kv_heads, rope_theta=THETA, bias=bias).eval()


def hf_copy(ours: GroupedQueryAttention) -> tuple[LlamaAttention, LlamaRotaryEmbedding]:
    """Hugging Face's attention with our weights, on the sdpa path (its eager softmax rounds float64 to float32)."""
    config = LlamaConfig(
        hidden_size=ours.d_model,
        num_attention_heads=ours.n_heads,
        num_key_value_heads=ours.n_kv_heads,
        rope_parameters={"rope_type": "default", "rope_theta": THETA},
        attention_bias=ours.q_proj.bias is not None,
        max_position_embeddings=64,
        attn_implementation="sdpa",
    )
    hf = LlamaAttention(config, layer_idx=0).to(ours.q_proj.weight.dtype).eval()  # the dtype first: no rounding
    names = {"q_proj": "q_proj", "k_proj": "k_proj", "v_proj": "v_proj", "out_proj": "o_proj"}  # ours -> theirs
    state = {}
    for key, value in ours.state_dict().items():
        module, param = key.split(".")
        state[f"{names[module]}.{param}"] = value
    hf.load_state_dict(state)
    return hf, LlamaRotaryEmbedding(config)


def padded_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Row 0 right-padded (4 real tokens), row 1 left-padded (3 real tokens); positions count real tokens."""
    attention_mask = torch.tensor([[1, 1, 1, 1, 0, 0], [0, 0, 0, 1, 1, 1]])
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)  # (B, T), as Hugging Face's generate
    return attention_mask, position_ids


# ---- Hugging Face -----------------------------------------------------------------------------------------------


@pytest.mark.numerics
@pytest.mark.parametrize("name", list(CONFIGS))
def test_equals_hugging_face_llama_attention(name: str) -> None:
    ours = make_gqa(*CONFIGS[name]).double()
    hf, hf_rope = hf_copy(ours)
    x = torch.randn(B, T, ours.d_model, dtype=F64)
    position_ids = torch.arange(T).expand(B, T)
    hf_out, _ = hf(x, position_embeddings=hf_rope(x, position_ids), attention_mask=None)  # sdpa: is_causal
    out, _ = ours(x)  # its own rotary table: the same float32 angles as Hugging Face's
    assert_equivalent(out, hf_out)
    explicit, weights = ours(x, need_weights=True)
    assert_equivalent(explicit, hf_out)
    assert weights is not None and weights.shape == (B, ours.n_heads, T, T)


@pytest.mark.numerics
@pytest.mark.parametrize("name", ["gqa", "mqa", "gqa_9_3"])
def test_equals_hugging_face_on_a_padded_batch(name: str) -> None:
    ours = make_gqa(*CONFIGS[name], bias=True).double()
    hf, hf_rope = hf_copy(ours)
    x = torch.randn(B, T, ours.d_model, dtype=F64)
    attention_mask, position_ids = padded_batch()
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    hf_mask = causal & attention_mask.bool()[:, None, None, :]  # (B, 1, T, T), True = attend (sdpa's bool mask)
    hf_out, _ = hf(x, position_embeddings=hf_rope(x, position_ids), attention_mask=hf_mask)
    real = attention_mask.bool()  # compare the real tokens: a left-padded row's padding sees no key
    for need_weights in (False, True):
        out, _ = ours(x, attention_mask=attention_mask, position_ids=position_ids, need_weights=need_weights)
        assert_equivalent(out[real], hf_out[real])
        assert torch.isfinite(out).all()  # a query without keys gets a zero context vector, not NaN


# ---- the two paths and the cache --------------------------------------------------------------------------------


@pytest.mark.numerics
@pytest.mark.parametrize("name", ["gqa", "mqa", "mha"])
def test_fused_and_explicit_paths_agree_with_padding_and_a_cache(name: str) -> None:
    ours = make_gqa(*CONFIGS[name]).double()
    x = torch.randn(B, T, ours.d_model, dtype=F64)
    attention_mask, position_ids = padded_batch()
    caches = {True: KVCache(), False: KVCache()}
    for start, stop in [(0, 3), (3, 4), (4, 6)]:  # a prompt, a step, a two-token chunk
        outs = {
            need_weights: ours(
                x[:, start:stop],
                attention_mask=attention_mask[:, :stop],
                cache=caches[need_weights],
                position_ids=position_ids[:, start:stop],
                need_weights=need_weights,
            )
            for need_weights in (True, False)
        }
        assert_equivalent(outs[False][0], outs[True][0])
        if start == 0:  # row 1 is all padding so far: its queries see no key and get zeros (no bias here)
            assert torch.equal(outs[False][0][1], torch.zeros(3, ours.d_model, dtype=F64))
            assert torch.equal(outs[True][0][1], torch.zeros(3, ours.d_model, dtype=F64))
        weights = outs[True][1]
        assert weights is not None and weights.shape == (B, ours.n_heads, stop - start, stop)
        assert torch.all(weights[:, :, ~causal_mask(stop - start, offset=start)] == 0)  # no future key
        assert torch.all(weights[1, :, :, : min(3, stop)] == 0)  # nor row 1's left padding


@pytest.mark.numerics
def test_repeating_the_kv_heads_for_an_older_torch_gives_the_same_output(monkeypatch: pytest.MonkeyPatch) -> None:
    ours = make_gqa(6, 2).double()
    x = torch.randn(B, T, ours.d_model, dtype=F64)
    attention_mask, position_ids = padded_batch()
    kernel_gqa = [ours(x)[0], ours(x, attention_mask=attention_mask, position_ids=position_ids)[0]]
    monkeypatch.setattr(gqa_module, "SDPA_ENABLE_GQA", False)  # torch < 2.5: no enable_gqa argument
    repeated = [ours(x)[0], ours(x, attention_mask=attention_mask, position_ids=position_ids)[0]]
    for fused, fallback in zip(kernel_gqa, repeated, strict=True):
        assert_equivalent(fallback, fused)


@pytest.mark.numerics
@pytest.mark.parametrize("name", ["gqa", "mqa", "mha", "gqa_9_3"])
def test_cached_decoding_equals_the_full_pass(name: str) -> None:
    ours = make_gqa(*CONFIGS[name])
    x = torch.randn(B, T, ours.d_model)
    full, _ = ours(x)
    cache = KVCache()
    with torch.no_grad():
        steps = [ours(x[:, :2], cache=cache)[0]]  # a two-token prompt, then one token at a time
        steps += [ours(x[:, t : t + 1], cache=cache)[0] for t in range(2, T)]
    assert_close(torch.cat(steps, dim=1), full)  # float32, as decoding runs
    assert len(cache) == T


@pytest.mark.numerics
def test_cached_decoding_of_a_left_padded_batch_equals_the_full_pass() -> None:
    ours = make_gqa()
    x = torch.randn(B, T, ours.d_model)
    attention_mask, position_ids = padded_batch()
    full, _ = ours(x, attention_mask=attention_mask, position_ids=position_ids)
    cache = KVCache()
    steps = [
        ours(
            x[:, t : t + 1],
            attention_mask=attention_mask[:, : t + 1],
            cache=cache,
            position_ids=position_ids[:, t : t + 1],
        )[0]
        for t in range(T)
    ]
    assert_close(torch.cat(steps, dim=1), full)


def test_the_cache_holds_only_the_kv_heads() -> None:
    n_heads, steps = 8, 5
    per_token = {}
    for n_kv_heads in (8, 2, 1):  # multi-head, grouped-query, multi-query
        attn = make_gqa(n_heads, n_kv_heads)
        cache = KVCache()
        with torch.no_grad():
            for _ in range(steps):
                attn(torch.randn(B, 1, attn.d_model), cache=cache)
        assert cache.k is not None and cache.v is not None
        assert cache.k.shape == cache.v.shape == (B, n_kv_heads, steps, Dh)
        per_token[n_kv_heads] = (cache.k.numel() + cache.v.numel()) // (B * steps)
        assert per_token[n_kv_heads] == kv_cache_numbers_per_token(n_kv_heads, Dh) == 2 * n_kv_heads * Dh
    assert per_token[8] // per_token[2] == 4 and per_token[8] // per_token[1] == 8  # n_heads / n_kv_heads times less


def test_kv_cache_numbers_per_token_of_smollm2() -> None:
    gqa = kv_cache_numbers_per_token(n_kv_heads=3, d_head=64, n_layers=30)
    assert gqa == 2 * 30 * 3 * 64 == 11_520
    assert gqa * torch.bfloat16.itemsize == 23_040  # bytes per token in bfloat16
    assert kv_cache_numbers_per_token(n_kv_heads=9, d_head=64, n_layers=30) == 3 * gqa


# ---- behaviour --------------------------------------------------------------------------------------------------


@pytest.mark.numerics
def test_output_is_invariant_to_shifting_every_position() -> None:
    ours = make_gqa().double()
    x = torch.randn(B, T, ours.d_model, dtype=F64)
    inv_freq = ours.rotary.inv_freq.double()  # float64 angles: the shift must not change their rounding
    out, _ = ours(x, position_embeddings=rope_cos_sin(torch.arange(T), inv_freq))
    shifted, _ = ours(x, position_embeddings=rope_cos_sin(torch.arange(T) + 37, inv_freq))
    assert_equivalent(shifted, out)  # RoPE sees only offsets m - n


def test_causal_mask_hides_the_future_and_weights_are_distributions() -> None:
    ours = make_gqa()
    x = torch.randn(B, T, ours.d_model)
    changed = x.clone()
    changed[:, 4:] = torch.randn(B, T - 4, ours.d_model)
    out, weights = ours(x, need_weights=True)
    out_changed, _ = ours(changed)
    assert_close(out[:, :4], out_changed[:, :4])
    assert not torch.allclose(out[:, 4:], out_changed[:, 4:])
    assert weights is not None
    assert_close(weights.sum(-1), torch.ones(B, ours.n_heads, T))
    assert torch.all(weights.triu(diagonal=1) == 0)


def test_heads_of_a_group_share_keys_and_values() -> None:
    kv = torch.randn(B, 2, T, Dh)
    repeated = repeat_kv_heads(kv, 3)  # 6 query heads in 2 groups
    assert repeated.shape == (B, 6, T, Dh)
    assert torch.equal(repeated[:, 0], repeated[:, 2]) and torch.equal(repeated[:, 3], kv[:, 1])
    assert repeat_kv_heads(kv, 1) is kv


def test_shapes_defaults_and_gradients() -> None:
    mha = GroupedQueryAttention(32, 4)
    assert mha.n_kv_heads == 4 and mha.n_groups == 1
    ours = GroupedQueryAttention(32, 4, n_kv_heads=1, dropout=0.1)
    assert ours.k_proj.weight.shape == (Dh, 32) and ours.q_proj.weight.shape == (32, 32)
    assert all(m.bias is None for m in (ours.q_proj, ours.k_proj, ours.v_proj, ours.out_proj))
    x = torch.randn(B, T, 32, requires_grad=True)
    out, weights = ours(x)
    assert out.shape == (B, T, 32) and weights is None
    out.pow(2).sum().backward()
    for name, p in ours.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert x.grad is not None


# ---- errors -----------------------------------------------------------------------------------------------------


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="n_heads=6 is not divisible by n_kv_heads=4"):
        GroupedQueryAttention(48, 6, n_kv_heads=4)
    with pytest.raises(ValueError, match="n_heads=4 is not divisible by n_kv_heads=8"):
        GroupedQueryAttention(32, 4, n_kv_heads=8)
    with pytest.raises(ValueError, match="d_model=30 is not divisible by n_heads=4"):
        GroupedQueryAttention(30, 4)
    with pytest.raises(ValueError, match="d_head = d_model / n_heads = 3 is odd"):
        GroupedQueryAttention(12, 4)
    with pytest.raises(ValueError, match="n_kv_heads must be an integer >= 1, got 0"):
        GroupedQueryAttention(32, 4, n_kv_heads=0)
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\)"):
        GroupedQueryAttention(32, 4, dropout=1.0)
    with pytest.raises(ValueError, match="n_layers must be an integer >= 1"):
        kv_cache_numbers_per_token(2, 8, n_layers=0)


def test_bad_inputs_are_named() -> None:
    ours = make_gqa()
    x = torch.randn(B, T, ours.d_model)
    with pytest.raises(ValueError, match=r"x must be \(B, T, d_model=32\), got \(2, 6, 31\)"):
        ours(torch.randn(B, T, 31))
    with pytest.raises(TypeError, match="attention_mask must be a bool or integer 0/1 tensor"):
        ours(x, attention_mask=torch.ones(B, T))
    with pytest.raises(ValueError, match=r"attention_mask must be \(B, T_past \+ T\)=\(2, 6\), got \(2, 5\)"):
        ours(x, attention_mask=torch.ones(B, T - 1, dtype=torch.long))
    with pytest.raises(ValueError, match="pass position_ids or position_embeddings, not both"):
        ours(x, position_ids=torch.arange(T), position_embeddings=rope_cos_sin(torch.arange(T), ours.rotary.inv_freq))
    with pytest.raises(ValueError, match=r"position_embeddings must be \(cos, sin\) of shape \(T, Dh\)=\(6, 8\)"):
        ours(x, position_embeddings=rope_cos_sin(torch.arange(T + 1), ours.rotary.inv_freq))
    cache = KVCache()
    make_gqa(4, 4)(x, cache=cache)  # filled by a multi-head layer: 4 KV heads
    with pytest.raises(ValueError, match="cache holds keys of n_heads=4, d_head=8, but this layer has n_heads=2"):
        ours(x[:, :1], cache=cache)


def test_a_cache_that_is_not_a_kv_cache_and_a_text_dropout_are_refused() -> None:
    attn = GroupedQueryAttention(16, 4, 2)
    with pytest.raises(TypeError, match="cache must be a KVCache"):
        attn(torch.randn(1, 3, 16), cache={})
    for bad in ("0.1", None, True):
        with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\) \(a number\)"):
            GroupedQueryAttention(16, 4, 2, dropout=bad)
