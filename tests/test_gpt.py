"""Tests for GPTConfig and the GPT model: shapes, causality, cache == full forward, padding, init, errors."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest
import torch
from torch import nn
from weights import perturb

from llmdocs.models.gpt import GPT, Block, CausalSelfAttention, GPTConfig
from llmdocs.nn.feedforward import gelu_tanh
from llmdocs.serialization import load_pretrained, save_pretrained
from llmdocs.testing import assert_close, assert_equivalent

V = 37


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def tiny_model(**overrides: Any) -> GPT:
    return perturb(GPT(GPTConfig.tiny(V, **overrides)))


# ---- config -----------------------------------------------------------------------------------------------------


def test_config_defaults_and_presets() -> None:
    assert GPTConfig(vocab_size=10, d_model=16, n_heads=2).d_ff == 64  # 4 * d_model
    assert GPTConfig(vocab_size=10, d_model=16, n_heads=2, d_ff=24).d_ff == 24
    small = GPTConfig.gpt2_small()
    assert (small.vocab_size, small.context_length, small.d_model, small.n_heads, small.n_layers) == (
        50257,
        1024,
        768,
        12,
        12,
    )
    assert small.d_ff == 3072 and small.d_head == 64 and small.bias and small.tie_embeddings
    shakespeare = GPTConfig.nanogpt_shakespeare_cpu()
    assert (shakespeare.vocab_size, shakespeare.context_length, shakespeare.d_model, shakespeare.n_layers) == (
        65,
        64,
        128,
        4,
    )
    assert GPTConfig.tiny(d_model=64).d_ff == 256  # the default follows an overridden width
    with pytest.raises(dataclasses.FrozenInstanceError):
        small.d_model = 10  # type: ignore[misc]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(d_model=10, n_heads=3), "d_model=10 is not divisible by n_heads=3"),
        (dict(vocab_size=0), "vocab_size must be an integer >= 1"),
        (dict(n_layers=0), "n_layers must be an integer >= 1"),
        (dict(context_length=-1), "context_length must be an integer >= 1"),
        (dict(d_ff=0), "d_ff must be an integer >= 1"),
        (dict(dropout=1.0), r"dropout must be in \[0, 1\)"),
        (dict(layer_norm_eps=0.0), "layer_norm_eps must be > 0"),
        (dict(activation="swish"), r"activation must be one of \['gelu', 'gelu_tanh', 'relu'\], got 'swish'"),
    ],
)
def test_config_validation(overrides: dict[str, Any], message: str) -> None:
    fields: dict[str, Any] = dict(vocab_size=10, d_model=16, n_heads=2)
    with pytest.raises(ValueError, match=message):
        GPTConfig(**{**fields, **overrides})


# ---- model ------------------------------------------------------------------------------------------------------


def test_forward_shape_and_backward_reaches_every_parameter() -> None:
    model = GPT(GPTConfig.tiny(V, dropout=0.1)).train()
    ids = torch.randint(0, V, (3, 11))
    logits = model(ids)
    assert logits.shape == (3, 11, V)
    loss = nn.functional.cross_entropy(logits[:, :-1].reshape(-1, V), ids[:, 1:].reshape(-1))
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_output_head_is_tied_to_token_embedding_unless_disabled() -> None:
    tied = GPT(GPTConfig.tiny(V))
    assert tied.lm_head.weight is tied.tok_embed.weight
    untied = GPT(GPTConfig.tiny(V, tie_embeddings=False))
    assert untied.lm_head.weight is not untied.tok_embed.weight
    extra = sum(p.numel() for p in untied.parameters()) - sum(p.numel() for p in tied.parameters())
    assert extra == V * 32


@pytest.mark.numerics
def test_causal_earlier_logits_ignore_later_tokens() -> None:
    model = tiny_model()
    ids = torch.randint(0, V, (2, 10))
    changed = ids.clone()
    changed[:, 6:] = (changed[:, 6:] + 1) % V
    before, after = model(ids), model(changed)
    assert_close(before[:, :6], after[:, :6], depth=model.config.n_layers)
    assert not torch.allclose(before[:, 6:], after[:, 6:])


def test_dropout_only_in_training_mode() -> None:
    model = GPT(GPTConfig.tiny(V, dropout=0.5))
    ids = torch.randint(0, V, (2, 8))
    model.eval()
    assert_close(model(ids), model(ids), depth=model.config.n_layers)
    model.train()
    assert not torch.allclose(model(ids), model(ids))


def test_gelu_tanh_is_gpt2_formula() -> None:
    x = torch.linspace(-5, 5, 101)
    expected = 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    assert_close(gelu_tanh(x), expected)
    ff = GPT(GPTConfig.tiny(V)).blocks[0].ff
    h = torch.randn(2, 3, 32)
    assert_close(ff(h), ff.fc2(gelu_tanh(ff.fc1(h))))


def test_bias_false_removes_every_bias() -> None:
    model = GPT(GPTConfig.tiny(V, bias=False))
    assert not [name for name, _ in model.named_parameters() if name.endswith("bias")]
    assert model(torch.randint(0, V, (1, 5))).shape == (1, 5, V)


def test_gpt2_initialisation() -> None:
    config = GPTConfig.tiny(V, d_model=256, n_heads=4, n_layers=4, d_ff=512)
    model = GPT(config)
    residual_std = 0.02 / math.sqrt(2 * config.n_layers)
    for name, p in model.named_parameters():
        if name.endswith(("self_attn.out_proj.weight", "ff.fc2.weight")):
            assert p.std().item() == pytest.approx(residual_std, rel=0.05), name
        elif "norm" in name:
            assert torch.equal(p, torch.ones_like(p) if name.endswith("weight") else torch.zeros_like(p)), name
        elif name.endswith("bias"):
            assert torch.equal(p, torch.zeros_like(p)), name
        else:
            assert p.std().item() == pytest.approx(0.02, rel=0.05), name
            assert abs(p.mean().item()) < 2e-3, name


# ---- key/value cache --------------------------------------------------------------------------------------------


@pytest.mark.numerics
def test_cache_steps_equal_full_forward() -> None:
    model = tiny_model()
    ids = torch.randint(0, V, (2, 12))
    full = model(ids)
    cache = model.new_cache()
    chunks = [model(ids[:, :5], cache=cache), model(ids[:, 5:8], cache=cache)]  # a prompt, then a chunk of 3
    chunks += [model(ids[:, t : t + 1], cache=cache) for t in range(8, 12)]  # then one token at a time
    assert len(cache) == 12
    assert_close(torch.cat(chunks, dim=1), full, depth=model.config.n_layers)  # float32, as generation runs


@pytest.mark.numerics
def test_cache_reorder_selects_rows() -> None:
    model = tiny_model()
    ids = torch.randint(0, V, (3, 6))
    cache = model.new_cache()
    model(ids[:, :5], cache=cache)
    cache.reorder(torch.tensor([2, 0]))
    step = model(ids[[2, 0], 5:], cache=cache)
    assert_close(step, model(ids[[2, 0]])[:, 5:], depth=model.config.n_layers)


@pytest.mark.numerics
def test_fused_causal_path_equals_masked_path() -> None:
    attn = perturb(CausalSelfAttention(16, 4)).double()  # two paths, one function: proven in float64
    x = torch.randn(2, 7, 16, dtype=torch.float64)
    all_real = torch.ones(2, 7, dtype=torch.bool)
    assert_equivalent(attn(x)[0], attn(x, key_mask=all_real)[0])  # (output, weights=None)
    block = perturb(Block(GPTConfig.tiny(V, d_model=16))).double()
    assert_equivalent(block(x), block(x, key_mask=all_real))


# ---- left padding -----------------------------------------------------------------------------------------------


@pytest.mark.numerics
def test_left_padded_batch_equals_each_prompt_alone() -> None:
    model = tiny_model()
    prompts = [torch.randint(0, V, (n,)) for n in (7, 3, 5)]
    ids = torch.zeros(3, 7, dtype=torch.long)
    mask = torch.zeros(3, 7, dtype=torch.bool)
    for row, p in enumerate(prompts):
        ids[row, 7 - len(p) :], mask[row, 7 - len(p) :] = p, True
    batched = model(ids, attention_mask=mask)
    for row, p in enumerate(prompts):
        assert_close(batched[row, 7 - len(p) :], model(p[None])[0], depth=model.config.n_layers)
    # ... and incrementally: the mask grows by one column per new token
    cache = model.new_cache()
    model(ids, cache=cache, attention_mask=mask)
    nxt = torch.randint(0, V, (3, 1))
    step = model(nxt, cache=cache, attention_mask=torch.cat([mask, torch.ones(3, 1, dtype=torch.bool)], 1))
    for row, p in enumerate(prompts):
        assert_close(step[row, 0], model(torch.cat([p, nxt[row]])[None])[0, -1], depth=model.config.n_layers)
    assert torch.isfinite(batched).all()  # fully padded query rows do not produce NaN


# ---- attention weights ------------------------------------------------------------------------------------------


def _explicit_weights(model: GPT, ids: torch.Tensor) -> list[torch.Tensor]:
    """softmax(Q K^T / sqrt(Dh) + M) of every block, computed by hand from the projections: (B, H, T, T) each."""
    B, T = ids.shape
    H, Dh = model.config.n_heads, model.config.d_head
    x = model.tok_embed(ids) + model.pos_embed(torch.arange(T))  # (B, T, D)
    future = torch.ones(T, T, dtype=torch.bool).triu(diagonal=1)  # (T, T), True above the diagonal
    weights = []
    for block in model.blocks:
        h = block.norm1(x)  # (B, T, D)
        attn = block.self_attn
        q = attn.q_proj(h).view(B, T, H, Dh).transpose(1, 2)  # (B, H, T, Dh)
        k = attn.k_proj(h).view(B, T, H, Dh).transpose(1, 2)  # (B, H, T, Dh)
        attn_scores = (q @ k.transpose(-2, -1) / math.sqrt(Dh)).masked_fill(future, -math.inf)  # (B, H, T, T)
        weights.append(attn_scores.softmax(dim=-1))
        x = block(x)  # (B, T, D)
    return weights


@pytest.mark.numerics
def test_need_weights_returns_causal_weights_equal_to_the_explicit_computation() -> None:
    model = tiny_model().eval()
    ids = torch.randint(0, V, (2, 9))
    explicit = _explicit_weights(model, ids)
    fused = model(ids)
    assert_close(model(ids, need_weights=True), fused, depth=model.config.n_layers)  # same logits
    H = model.config.n_heads
    for block, expected in zip(model.blocks, explicit, strict=True):
        weights = block.last_self_weights
        assert weights is not None and weights.shape == (2, H, 9, 9)
        assert_close(weights.sum(dim=-1), torch.ones(2, H, 9))  # every row is a distribution
        assert torch.all(weights.triu(diagonal=1) == 0)  # exactly zero above the diagonal
        assert_close(weights, expected, depth=model.config.n_layers)
    model(ids)
    assert all(block.last_self_weights is None for block in model.blocks)  # only kept when asked for


@pytest.mark.numerics
def test_causal_self_attention_returns_its_weights() -> None:
    attn = perturb(CausalSelfAttention(16, 4)).eval()
    x = torch.randn(2, 6, 16)
    out, none = attn(x)
    out_w, weights = attn(x, need_weights=True)
    assert none is None and weights is not None and weights.shape == (2, 4, 6, 6)
    assert_close(out_w, out)
    key_mask = torch.tensor([[True] * 6, [False, False] + [True] * 4])  # row 1: two left-padding tokens
    _, padded = attn(x, key_mask=key_mask, need_weights=True)
    assert padded is not None and torch.all(padded[1, :, :, :2] == 0)  # no weight on padding
    assert_close(padded[1, :, 2:].sum(dim=-1), torch.ones(4, 4))  # real queries: distributions


@pytest.mark.numerics
def test_need_weights_with_a_cache_gives_the_rows_of_the_full_weights() -> None:
    model = tiny_model().eval()
    ids = torch.randint(0, V, (2, 8))
    model(ids, need_weights=True)
    full = [block.last_self_weights for block in model.blocks]  # (B, H, 8, 8) each
    cache = model.new_cache()
    model(ids[:, :5], cache=cache, need_weights=True)  # the prompt: rows 0..4, keys 0..4
    for block, weights in zip(model.blocks, full, strict=True):
        assert weights is not None and block.last_self_weights is not None
        assert_close(block.last_self_weights, weights[:, :, :5, :5], depth=model.config.n_layers)
    for t in range(5, 8):  # then one token at a time: row t over the t + 1 keys seen so far
        model(ids[:, t : t + 1], cache=cache, need_weights=True)
        for block, weights in zip(model.blocks, full, strict=True):
            assert weights is not None and block.last_self_weights is not None
            assert block.last_self_weights.shape == (2, model.config.n_heads, 1, t + 1)
            assert_close(block.last_self_weights, weights[:, :, t : t + 1, : t + 1], depth=model.config.n_layers)


# ---- errors -----------------------------------------------------------------------------------------------------


def test_bad_inputs_raise_readable_errors() -> None:
    model = GPT(GPTConfig.tiny(V, context_length=8))
    with pytest.raises(ValueError, match=f"contains id {V} but vocab_size={V}"):
        model(torch.tensor([[1, V]]))
    with pytest.raises(ValueError, match="negative id -1"):
        model(torch.tensor([[1, -1]]))
    with pytest.raises(TypeError, match="integer tensor"):
        model(torch.tensor([[1.0, 2.0]]))
    with pytest.raises(ValueError, match=r"shape \(B, T\)"):
        model(torch.tensor([1, 2]))
    with pytest.raises(ValueError, match=r"sequence length 9 .* exceeds context_length=8"):
        model(torch.zeros(1, 9, dtype=torch.long))
    cache = model.new_cache()
    model(torch.zeros(1, 8, dtype=torch.long), cache=cache)
    with pytest.raises(ValueError, match=r"cached 8 \+ new 1\) exceeds context_length=8"):
        model(torch.zeros(1, 1, dtype=torch.long), cache=cache)
    with pytest.raises(ValueError, match="attention_mask must be"):
        model(torch.zeros(2, 3, dtype=torch.long), attention_mask=torch.ones(2, 4))


@pytest.mark.parametrize(
    ("filled_with", "step_batch", "message"),
    [
        # (config overrides of the model that filled the cache, batch of the next step, expected error)
        (dict(n_layers=1), 2, r"cache has 1 layers but n_layers=2: use model.new_cache\(\)"),  # was an IndexError
        (dict(n_layers=3), 2, r"cache has 3 layers but n_layers=2"),  # was silently accepted
        (dict(d_model=64), 2, r"cache holds keys of n_heads=4, d_head=16, but this layer has n_heads=4, d_head=8"),
        ({}, 1, r"cache was filled with batch size 2, but this step has batch size 1"),  # was an expand error
        ({}, 3, r"cache was filled with batch size 2, but this step has batch size 3"),
    ],
)
def test_a_cache_of_another_model_or_batch_size_raises(
    filled_with: dict[str, Any], step_batch: int, message: str
) -> None:
    model = tiny_model()
    other = tiny_model(**filled_with)
    cache = other.new_cache()
    other(torch.randint(0, V, (2, 4)), cache=cache)
    with pytest.raises(ValueError, match=message):
        model(torch.randint(0, V, (step_batch, 1)), cache=cache)
    assert len(cache) == 4  # rejected before any layer stored a key


def test_a_cache_filled_with_one_row_does_not_broadcast_to_two() -> None:
    model = tiny_model()
    cache = model.new_cache()
    model(torch.randint(0, V, (1, 4)), cache=cache)
    with pytest.raises(ValueError, match="cache was filled with batch size 1, but this step has batch size 2"):
        model(torch.randint(0, V, (2, 1)), cache=cache)  # used to broadcast the one cached row silently
    cache.reorder(torch.tensor([0, 0]))  # the documented way to widen it
    assert model(torch.randint(0, V, (2, 1)), cache=cache).shape == (2, 1, V)
    with pytest.raises(TypeError, match=r"cache must be a GPTCache from model.new_cache\(\), got list"):
        model(torch.randint(0, V, (2, 1)), cache=[])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("position_ids", "error", "message"),
    [
        (torch.full((2, 4), 10**4), ValueError, r"position_ids must be in \[0, context_length=8\), got values 10000"),
        (torch.tensor([[-1, 0, 1, 2]]), ValueError, r"position_ids must be in \[0, context_length=8\), got values -1"),
        (torch.zeros(3, 4, dtype=torch.long), ValueError, r"position_ids must be \(B, T\)=\(2, 4\) or \(1, T\)"),
        (torch.zeros(2, 5, dtype=torch.long), ValueError, r"got \(2, 5\)"),
        (torch.arange(4.0)[None], TypeError, "position_ids must be an integer tensor, got torch.float32"),
        (torch.ones(2, 4, dtype=torch.bool), TypeError, "position_ids must be an integer tensor"),
        ([[0, 1, 2, 3]], TypeError, "position_ids must be an integer tensor, got"),
    ],
)
def test_bad_position_ids_raise(position_ids: Any, error: type, message: str) -> None:
    model = GPT(GPTConfig.tiny(V, context_length=8))
    with pytest.raises(error, match=message):
        model(torch.randint(0, V, (2, 4)), position_ids=position_ids)


def test_explicit_position_ids_equal_the_default_ones() -> None:
    model = tiny_model()
    ids = torch.randint(0, V, (2, 4))
    default = model(ids)
    assert torch.equal(model(ids, position_ids=torch.arange(4)[None]), default)  # (1, T), the same kernels
    assert torch.equal(model(ids, position_ids=torch.arange(4).expand(2, 4)), default)  # (B, T)


def test_attention_mask_must_be_a_bool_or_integer_tensor() -> None:
    model = tiny_model()
    ids = torch.randint(0, V, (2, 4))
    with pytest.raises(TypeError, match=r"attention_mask must be a bool or integer 0/1 tensor .*got torch.float32"):
        model(ids, attention_mask=torch.zeros(2, 4))  # an additive 0/-inf mask would be inverted by .bool()
    with pytest.raises(TypeError, match="attention_mask must be a bool or integer 0/1 tensor, got list"):
        model(ids, attention_mask=[[1] * 4] * 2)  # type: ignore[arg-type]
    assert torch.equal(
        model(ids, attention_mask=torch.ones(2, 4, dtype=torch.long)),
        model(ids, attention_mask=torch.ones(2, 4, dtype=torch.bool)),
    )


# ---- saving -----------------------------------------------------------------------------------------------------


def test_save_and_load_pretrained_round_trip(tmp_path) -> None:
    config = GPTConfig.tiny(V, tie_embeddings=True)
    model = tiny_model()
    path = save_pretrained(tmp_path / "gpt", model, config, {"note": "tiny"})
    loaded, loaded_config, meta = load_pretrained(path)
    assert isinstance(loaded, GPT) and loaded_config == config and meta == {"note": "tiny"}
    assert loaded.lm_head.weight is loaded.tok_embed.weight
    ids = torch.randint(0, V, (2, 6))
    assert torch.equal(loaded(ids), model(ids))  # the same weights, the same kernels: bit-identical
