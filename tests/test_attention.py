"""Tests for llmdocs.nn.attention: masks, scaled dot-product attention, multi-head attention, KV cache."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from llmdocs.nn.attention import (
    KVCache,
    MultiHeadAttention,
    causal_mask,
    key_padding_mask,
    padding_mask,
    scaled_dot_product_attention,
)
from llmdocs.testing import assert_close, assert_equivalent

B, T, S, D, H = 2, 5, 7, 12, 3


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def make_mha(dropout: float = 0.0, bias: bool = True) -> MultiHeadAttention:
    return MultiHeadAttention(D, H, dropout=dropout, bias=bias).eval()


# ---- masks -------------------------------------------------------------------------------------


def test_causal_mask_is_lower_triangular() -> None:
    mask = causal_mask(4)
    assert mask.shape == (4, 4) and mask.dtype == torch.bool
    assert torch.equal(mask, torch.ones(4, 4).tril().bool())


def test_causal_mask_offset_lets_new_queries_see_the_cache() -> None:
    mask = causal_mask(2, offset=3)  # 3 cached keys, 2 new queries
    assert mask.tolist() == [[True] * 4 + [False], [True] * 5]
    assert torch.equal(causal_mask(5)[3:], mask)


def test_causal_mask_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError, match="T >= 1"):
        causal_mask(0)


def test_padding_mask_shape_and_values() -> None:
    ids = torch.tensor([[4, 5, 0, 0], [4, 0, 0, 0]])
    mask = padding_mask(ids, pad_id=0)
    assert mask.shape == (2, 1, 1, 4)
    assert mask[:, 0, 0].tolist() == [[True, True, False, False], [True, False, False, False]]
    with pytest.raises(ValueError, match=r"\(B, S\)"):
        padding_mask(torch.tensor([1, 2]), pad_id=0)


# ---- scaled dot-product attention ------------------------------------------------------------


@pytest.mark.numerics
def test_sdpa_matches_the_formula_and_torch() -> None:
    q, k, v = torch.randn(3, B, H, T, 4, dtype=torch.float64).unbind(0)  # equivalence: proven in float64
    out, weights = scaled_dot_product_attention(q, k, v)
    expected_weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(4), dim=-1)
    assert_equivalent(weights, expected_weights)
    assert_equivalent(out, expected_weights @ v)
    assert_equivalent(out, F.scaled_dot_product_attention(q, k, v))


@pytest.mark.numerics
def test_sdpa_masked_weights_are_exactly_zero_and_rows_sum_to_one() -> None:
    q, k, v = torch.randn(3, B, H, T, 4, dtype=torch.float64).unbind(0)
    out, weights = scaled_dot_product_attention(q, k, v, mask=causal_mask(T))
    assert torch.all(weights.triu(diagonal=1) == 0)
    assert_equivalent(weights.sum(-1), torch.ones(B, H, T, dtype=torch.float64))
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=causal_mask(T))
    assert_equivalent(out, ref)


def test_sdpa_fully_masked_row_gives_zeros_not_nan() -> None:
    qkv = torch.randn(3, 1, 1, 3, 4, requires_grad=True)
    q, k, v = qkv.unbind(0)
    mask = torch.tensor([[True, False, False], [False, False, False], [True, True, True]])
    out, weights = scaled_dot_product_attention(q, k, v, mask=mask)
    assert not out.isnan().any() and not weights.isnan().any()
    assert torch.all(out[0, 0, 1] == 0) and torch.all(weights[0, 0, 1] == 0)
    out.sum().backward()
    assert qkv.grad is not None and torch.isfinite(qkv.grad).all()


# ---- multi-head attention --------------------------------------------------------------------


def _masks() -> dict[str, torch.Tensor | None]:
    ids = torch.tensor([[3, 4, 5, 6, 7], [3, 4, 0, 0, 0]])
    return {
        "none": None,
        "causal": causal_mask(T),
        "padding": padding_mask(ids, 0),
        "both": causal_mask(T) & padding_mask(ids, 0),
        "full_row_masked": torch.ones(B, 1, T, T, dtype=torch.bool).index_fill(2, torch.tensor([1]), False),
    }


@pytest.mark.numerics
@pytest.mark.parametrize("mask_name", list(_masks()))
def test_mha_fused_and_explicit_paths_agree(mask_name: str) -> None:
    mha = make_mha().double()  # two paths, one function: proven in float64
    x = torch.randn(B, T, D, dtype=torch.float64)
    mask = _masks()[mask_name]
    fused, no_weights = mha(x, mask=mask)
    explicit, weights = mha(x, mask=mask, need_weights=True)
    assert no_weights is None and weights is not None
    assert weights.shape == (B, H, T, T)
    assert_equivalent(fused, explicit)
    assert not fused.isnan().any()


@pytest.mark.numerics
def test_mha_cross_attention_shapes_and_paths_agree() -> None:
    mha = make_mha().double()
    x, memory = torch.randn(B, T, D, dtype=torch.float64), torch.randn(B, S, D, dtype=torch.float64)
    mask = padding_mask(torch.tensor([[1] * S, [1] * 3 + [0] * 4]), 0)
    fused, _ = mha(x, memory, mask=mask)
    explicit, weights = mha(x, memory, memory, mask=mask, need_weights=True)
    assert fused.shape == (B, T, D) and weights is not None and weights.shape == (B, H, T, S)
    assert_equivalent(fused, explicit)
    assert torch.all(weights[1, :, :, 3:] == 0)


@pytest.mark.parametrize(("batch", "tq", "tk"), [(1, 1, 1), (1, 1, 6), (3, 4, 1)])
def test_mha_odd_sizes(batch: int, tq: int, tk: int) -> None:
    mha = make_mha()
    out, weights = mha(torch.randn(batch, tq, D), torch.randn(batch, tk, D), need_weights=True)
    assert out.shape == (batch, tq, D) and weights is not None and weights.shape == (batch, H, tq, tk)


def test_mha_causal_mask_hides_the_future() -> None:
    mha = make_mha()
    x = torch.randn(B, T, D)
    changed = x.clone()
    changed[:, 3:] = torch.randn(B, T - 3, D)  # change tokens 3 and 4
    out, _ = mha(x, mask=causal_mask(T))
    out_changed, _ = mha(changed, mask=causal_mask(T))
    assert_close(out[:, :3], out_changed[:, :3])
    assert not torch.allclose(out[:, 3:], out_changed[:, 3:])


def test_mha_padding_mask_hides_pad_content() -> None:
    mha = make_mha()
    ids = torch.tensor([[3, 4, 5, 6, 7], [3, 4, 0, 0, 0]])
    mask = padding_mask(ids, 0)
    x, memory = torch.randn(B, T, D), torch.randn(B, T, D)
    changed = memory.clone()
    changed[1, 2:] = 100 * torch.randn(3, D)  # rewrite the padded keys/values of sentence 1
    for need_weights in (False, True):
        out, _ = mha(x, memory, mask=mask, need_weights=need_weights)
        out_changed, _ = mha(x, changed, mask=mask, need_weights=need_weights)
        assert_close(out, out_changed)


def test_mha_gradient_reaches_every_parameter() -> None:
    mha = MultiHeadAttention(D, H, dropout=0.1)
    x = torch.randn(B, T, D, requires_grad=True)
    out, _ = mha(x, mask=causal_mask(T))
    out.pow(2).sum().backward()
    for name, p in mha.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert x.grad is not None


def test_mha_without_bias() -> None:
    mha = make_mha(bias=False)
    assert all(m.bias is None for m in (mha.q_proj, mha.k_proj, mha.v_proj, mha.out_proj))
    assert mha(torch.randn(1, 2, D))[0].shape == (1, 2, D)


def test_mha_dropout_only_in_training() -> None:
    mha = MultiHeadAttention(D, H, dropout=0.5)
    x = torch.randn(B, T, D)
    mha.eval()
    assert_close(mha(x)[0], mha(x)[0])
    mha.train()
    assert not torch.allclose(mha(x)[0], mha(x)[0])


def test_mha_errors() -> None:
    with pytest.raises(ValueError, match="d_model=10 is not divisible by n_heads=3"):
        MultiHeadAttention(10, 3)
    with pytest.raises(ValueError, match="must be positive"):
        MultiHeadAttention(0, 1)
    mha = make_mha()
    x = torch.randn(B, T, D)
    with pytest.raises(ValueError, match=r"mask shape \(4, 4\) does not broadcast"):
        mha(x, mask=causal_mask(4))
    with pytest.raises(ValueError, match="mask shape"):
        mha(x, mask=torch.ones(3, 1, T, T, dtype=torch.bool))  # batch 3 != 2
    with pytest.raises(TypeError, match="mask must be a bool tensor"):
        mha(x, mask=torch.zeros(T, T))
    with pytest.raises(ValueError, match=r"query must be \(B, T, d_model=12\)"):
        mha(torch.randn(B, T, D + 1))


# ---- key/value cache -------------------------------------------------------------------------


@pytest.mark.numerics
def test_kv_cache_self_attention_equals_causal_full_attention() -> None:
    mha = make_mha()
    x = torch.randn(B, T, D)
    full, _ = mha(x, mask=causal_mask(T))
    cache = KVCache()
    steps = [mha(x[:, t : t + 1], cache=cache)[0] for t in range(T)]  # one token at a time
    assert len(cache) == T
    assert_close(torch.cat(steps, dim=1), full)  # float32, as decoding runs


@pytest.mark.numerics
def test_mha_weights_equal_the_explicit_softmax_also_with_a_kv_cache() -> None:
    mha = make_mha()
    x = torch.randn(B, T, D)
    _, full = mha(x, mask=causal_mask(T), need_weights=True)  # (B, H, T, T)
    q = mha.q_proj(x).view(B, T, H, D // H).transpose(1, 2)  # (B, H, T, Dh)
    k = mha.k_proj(x).view(B, T, H, D // H).transpose(1, 2)  # (B, H, T, Dh)
    attn_scores = (q @ k.transpose(-2, -1) / math.sqrt(D // H)).masked_fill(~causal_mask(T), -math.inf)
    assert full is not None
    assert_close(full, attn_scores.softmax(dim=-1))
    assert_close(full.sum(dim=-1), torch.ones(B, H, T))
    assert torch.all(full.triu(diagonal=1) == 0)
    cache = KVCache()
    for t in range(T):  # step t: one query over the t + 1 cached keys, row t of the full weights
        _, weights = mha(x[:, t : t + 1], cache=cache, need_weights=True)
        assert weights is not None and weights.shape == (B, H, 1, t + 1)
        assert_close(weights, full[:, :, t : t + 1, : t + 1])


def test_kv_cache_static_projects_memory_once() -> None:
    mha = make_mha()
    x, memory = torch.randn(B, T, D), torch.randn(B, S, D)
    cache = KVCache(static=True)
    mha(x[:, :1], memory, cache=cache)  # first step fills the cache
    k_first = cache.k
    second, _ = mha(x[:, 1:2], memory, cache=cache)
    assert cache.k is k_first and len(cache) == S  # reused, not recomputed
    assert_close(second, mha(x[:, 1:2], memory)[0])


def test_kv_cache_reorder_selects_batch_rows() -> None:
    cache = KVCache()
    cache.update(torch.arange(3.0).view(3, 1, 1, 1), torch.arange(3.0).view(3, 1, 1, 1))
    cache.reorder(torch.tensor([2, 2, 0]))
    assert cache.k is not None and cache.k.flatten().tolist() == [2.0, 2.0, 0.0]


def test_kv_cache_appends_into_a_growing_buffer_without_changing_results() -> None:
    cache = KVCache()
    chunks = [torch.randn(2, 3, n, 4) for n in (5, 1, 1, 20, 1)]  # a prompt, steps, a long chunk that regrows
    seen = []
    with torch.no_grad():
        for chunk in chunks:
            k, _ = cache.update(chunk, -chunk)
            seen.append(k)
    expected = torch.cat(chunks, dim=2)  # (2, 3, 28, 4)
    torch.testing.assert_close(cache.k, expected, rtol=0, atol=0)
    torch.testing.assert_close(cache.v, -expected, rtol=0, atol=0)
    torch.testing.assert_close(seen[1], expected[:, :, :6], rtol=0, atol=0)  # earlier views keep their past
    assert cache.k is not None and cache.k.untyped_storage().nbytes() >= 28 * 2 * 3 * 4 * 4


def test_kv_cache_under_autograd_keeps_the_graph() -> None:
    cache = KVCache()
    first = torch.randn(1, 1, 2, 4, requires_grad=True)
    cache.update(first, first)
    k, _ = cache.update(torch.randn(1, 1, 1, 4), torch.randn(1, 1, 1, 4))
    k.sum().backward()  # in-place writes into a buffer would break this backward
    assert first.grad is not None and torch.equal(first.grad, torch.ones_like(first))


def test_kv_cache_rejects_keys_of_another_batch_size_or_width() -> None:
    cache = KVCache()
    assert cache.batch_size is None
    cache.update(torch.zeros(2, 3, 4, 8), torch.zeros(2, 3, 4, 8))
    assert cache.batch_size == 2
    for batch in (1, 3):  # 1 used to raise an expand error, and a 1-row cache broadcast silently to more rows
        with pytest.raises(
            ValueError, match=f"cache was filled with batch size 2, but this step has batch size {batch}"
        ):
            cache.update(torch.zeros(batch, 3, 1, 8), torch.zeros(batch, 3, 1, 8))
    with pytest.raises(
        ValueError, match="cache holds keys of n_heads=3, d_head=8, but this layer has n_heads=3, d_head=4"
    ):
        cache.update(torch.zeros(2, 3, 1, 4), torch.zeros(2, 3, 1, 4))
    assert len(cache) == 4  # nothing was stored
    single = KVCache()
    single.update(torch.zeros(1, 3, 4, 8), torch.zeros(1, 3, 4, 8))
    with pytest.raises(ValueError, match="filled with batch size 1, but this step has batch size 2"):
        single.update(torch.zeros(2, 3, 1, 8), torch.zeros(2, 3, 1, 8))


def test_mha_static_cache_of_another_batch_raises() -> None:
    mha = make_mha()
    cache = KVCache(static=True)
    mha(torch.randn(B, 1, D), torch.randn(B, S, D), cache=cache)
    with pytest.raises(ValueError, match=f"cache was filled with batch size {B}, but this step has batch size 1"):
        mha(torch.randn(1, 1, D), torch.randn(1, S, D), cache=cache)


def test_key_padding_mask_checks_type_and_shape() -> None:
    assert key_padding_mask(None, 2, 3) is None
    mask = key_padding_mask(torch.tensor([[0, 1, 1], [1, 1, 1]]), 2, 3)
    assert mask is not None and mask.dtype == torch.bool and mask.tolist() == [[False, True, True], [True] * 3]
    with pytest.raises(TypeError, match=r"attention_mask must be a bool or integer 0/1 tensor .*got torch.float32"):
        key_padding_mask(torch.tensor([[float("-inf"), 0.0, 0.0]]), 1, 3)  # additive: .bool() would invert it
    with pytest.raises(TypeError, match="attention_mask must be a bool or integer 0/1 tensor, got list"):
        key_padding_mask([[1, 1, 1]], 1, 3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"attention_mask must be \(B, T_past \+ T\)=\(1, 4\), got \(1, 3\)"):
        key_padding_mask(torch.ones(1, 3, dtype=torch.bool), 1, 4)
