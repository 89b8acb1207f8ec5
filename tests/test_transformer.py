"""Tests for the feed-forward network, the layers, the stacks, the Transformer and its config."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest
import torch

from llmdocs.models.transformer import (
    Decoder,
    Encoder,
    Transformer,
    TransformerConfig,
)
from llmdocs.models.transformer_encoder import TransformerEncoder
from llmdocs.nn.attention import causal_mask, padding_mask
from llmdocs.nn.checks import check_token_ids
from llmdocs.nn.feedforward import PositionwiseFeedForward, get_activation
from llmdocs.nn.transformer_layers import DecoderLayer, EncoderLayer
from llmdocs.testing import assert_close

D, H, F = 16, 4, 32
V_SRC, V_TGT, PAD = 23, 29, 0


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def tiny_model(**overrides: Any) -> Transformer:
    config = TransformerConfig.tiny(V_SRC, V_TGT, d_model=D, n_heads=H, d_ff=F, **overrides)
    return Transformer(config).eval()


def batch(b: int = 2, s: int = 6, t: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """Source (B, S) with right padding in the last row, target (B, T) starting with BOS=1."""
    src = torch.randint(3, V_SRC, (b, s))
    if b > 1 and s > 2:
        src[-1, s - 2 :] = PAD
    tgt = torch.randint(3, V_TGT, (b, t))
    tgt[:, 0] = 1
    return src, tgt


# ---- feed-forward ----------------------------------------------------------------------------


def test_feedforward_is_position_wise() -> None:
    ff = PositionwiseFeedForward(D, F)
    x = torch.randn(2, 5, D)
    out = ff(x)
    assert out.shape == (2, 5, D)
    assert_close(out[:, 3], ff(x[:, 3:4])[:, 0])
    expected = ff.fc2(torch.relu(ff.fc1(x)))  # FFN(x) = max(0, x W1 + b1) W2 + b2
    assert_close(out, expected)


def test_activation_lookup() -> None:
    assert get_activation("gelu")(torch.tensor([0.0])).item() == 0.0
    with pytest.raises(ValueError, match="activation must be one of"):
        get_activation("swish")


# ---- layers ----------------------------------------------------------------------------------


@pytest.mark.parametrize("norm_first", [True, False])
def test_layers_shapes_weights_and_gradients(norm_first: bool) -> None:
    enc = EncoderLayer(D, H, F, dropout=0.1, norm_first=norm_first)
    dec = DecoderLayer(D, H, F, dropout=0.1, norm_first=norm_first)
    x, memory = torch.randn(2, 5, D), torch.randn(2, 7, D)
    h = enc(memory, need_weights=True)
    out = dec(x, h, self_mask=causal_mask(5), need_weights=True)
    assert h.shape == (2, 7, D) and out.shape == (2, 5, D)
    assert enc.last_self_weights is not None and enc.last_self_weights.shape == (2, H, 7, 7)
    assert dec.last_self_weights is not None and dec.last_self_weights.shape == (2, H, 5, 5)
    assert dec.last_cross_weights is not None and dec.last_cross_weights.shape == (2, H, 5, 7)
    out.sum().backward()
    for module in (enc, dec):
        for name, p in module.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, name
    enc(memory)
    assert enc.last_self_weights is None  # only kept when asked for


def test_post_ln_output_is_normalised_pre_ln_is_not() -> None:
    x = 5 * torch.randn(2, 5, D) + 3
    post = EncoderLayer(D, H, F, dropout=0.0, norm_first=False).eval()(x)
    pre = EncoderLayer(D, H, F, dropout=0.0, norm_first=True).eval()(x)
    assert_close(post.mean(-1), torch.zeros(2, 5), scale=post.abs().max())  # zero, to the rounding of post
    assert pre.mean(-1).abs().max() > 1.0  # residual stream keeps the input's offset


# ---- stacks ----------------------------------------------------------------------------------


@pytest.mark.parametrize("norm_first", [True, False])
def test_stacks_final_norm_defaults_to_norm_first(norm_first: bool) -> None:
    enc = Encoder(D, H, F, n_layers=2, norm_first=norm_first)
    dec = Decoder(D, H, F, n_layers=2, norm_first=norm_first)
    assert (enc.norm is not None) == norm_first and (dec.norm is not None) == norm_first
    assert Encoder(D, H, F, 1, norm_first=False, final_norm=True).norm is not None


@pytest.mark.numerics
def test_encoder_stack_padding_invariance() -> None:
    enc = Encoder(D, H, F, n_layers=2, dropout=0.0).eval()
    ids = torch.tensor([[5, 6, 7, 8], [5, 6, 0, 0]])
    x = torch.randn(2, 4, D)
    changed = x.clone()
    changed[1, 2:] = torch.randn(2, D)
    mask = padding_mask(ids, PAD)
    assert_close(enc(x, mask)[1, :2], enc(changed, mask)[1, :2], depth=2)


# ---- config ----------------------------------------------------------------------------------


def test_config_presets_and_frozen() -> None:
    base = TransformerConfig.base()
    assert (base.d_model, base.n_heads, base.d_ff, base.n_encoder_layers) == (512, 8, 2048, 6)
    assert base.norm_first is False and base.share_embeddings and base.tie_output
    tiny = TransformerConfig.tiny(dropout=0.0)
    assert tiny.dropout == 0.0 and tiny.d_model % tiny.n_heads == 0
    with pytest.raises(dataclasses.FrozenInstanceError):
        tiny.d_model = 8  # type: ignore[misc]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"d_model": 10, "n_heads": 3}, "d_model=10 is not divisible by n_heads=3"),
        ({"src_vocab_size": 0}, "src_vocab_size must be >= 1"),
        ({"n_decoder_layers": 0}, "n_decoder_layers must be >= 1"),
        ({"dropout": 1.0}, r"dropout must be in \[0, 1\)"),
        ({"pad_id": 64}, "pad_id=64 is not a valid id"),
        ({"positional": "rope"}, "positional must be 'sinusoidal' or 'learned'"),
        ({"activation": "tanh"}, "activation must be one of"),
        ({"share_embeddings": True, "tgt_vocab_size": 50}, "share_embeddings needs"),
    ],
)
def test_config_validation(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TransformerConfig.tiny(**overrides)


# ---- the Transformer -------------------------------------------------------------------------


@pytest.mark.parametrize("norm_first", [True, False])
@pytest.mark.parametrize("positional", ["sinusoidal", "learned"])
def test_transformer_shapes_and_gradient_to_every_parameter(norm_first: bool, positional: str) -> None:
    model = tiny_model(norm_first=norm_first, positional=positional, tie_output=False).train()
    src, tgt = batch()
    logits = model(src, tgt)
    assert logits.shape == (2, 5, V_TGT)
    torch.nn.functional.cross_entropy(logits.flatten(0, 1), tgt.flatten()).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_tied_and_shared_embeddings() -> None:
    tied = tiny_model()
    assert tied.lm_head.weight is tied.tgt_embed.weight
    assert tied.src_embed is not tied.tgt_embed
    shared = Transformer(TransformerConfig.tiny(V_SRC, V_SRC, share_embeddings=True))
    assert shared.src_embed is shared.tgt_embed is not None
    assert shared.lm_head.weight is shared.src_embed.weight
    untied = tiny_model(tie_output=False)
    assert untied.lm_head.weight is not untied.tgt_embed.weight


def test_embeddings_are_scaled_by_sqrt_d_model() -> None:
    model = tiny_model()
    src, _ = batch()
    expected = model.src_pos(model.src_embed(src) * math.sqrt(D))
    captured: list[torch.Tensor] = []
    model.encoder.layers[0].register_forward_pre_hook(lambda m, args: captured.append(args[0]))
    model.encode(src)
    assert_close(captured[0], expected)


def test_pad_embedding_starts_at_zero() -> None:
    model = tiny_model()
    assert torch.all(model.src_embed.weight[PAD] == 0) and torch.all(model.tgt_embed.weight[PAD] == 0)


@pytest.mark.numerics
def test_transformer_causal_invariance() -> None:
    model = tiny_model()
    src, tgt = batch()
    changed = tgt.clone()
    changed[:, 3] = (tgt[:, 3] + 1) % V_TGT
    assert_close(model(src, tgt)[:, :3], model(src, changed)[:, :3], depth=4)  # 2 encoder + 2 decoder layers
    assert not torch.allclose(model(src, tgt)[:, 3], model(src, changed)[:, 3])


@pytest.mark.numerics
def test_transformer_extra_source_padding_changes_nothing() -> None:
    model = tiny_model()
    src, tgt = batch()
    padded = torch.cat([src, torch.full((2, 4), PAD)], dim=1)  # (B, S + 4)
    assert_close(model(src, tgt), model(padded, tgt), depth=4)


def test_transformer_odd_sizes() -> None:
    model = tiny_model()
    assert model(torch.tensor([[5]]), torch.tensor([[1]])).shape == (1, 1, V_TGT)


def test_transformer_need_weights_stores_maps_on_layers() -> None:
    model = tiny_model()
    src, tgt = batch()
    model(src, tgt, need_weights=True)
    cross = model.decoder.layers[-1].last_cross_weights
    assert cross is not None and cross.shape == (2, H, 5, 6)
    assert torch.all(cross[1, :, :, -2:] == 0)  # padded source positions get no attention


@pytest.mark.parametrize(
    ("src", "tgt", "error", "message"),
    [
        (torch.tensor([[5, V_SRC]]), torch.tensor([[1]]), ValueError, "src contains id 23"),
        (torch.tensor([[5, -1]]), torch.tensor([[1]]), ValueError, "src contains negative id -1"),
        (torch.tensor([[5]]), torch.tensor([[1, V_TGT]]), ValueError, "tgt contains id 29"),
        (torch.tensor([[5.0]]), torch.tensor([[1]]), TypeError, "src must be an integer tensor"),
        (torch.tensor([5]), torch.tensor([[1]]), ValueError, r"src must have shape \(B, T\)"),
        (torch.ones(1, 65, dtype=torch.long), torch.tensor([[1]]), ValueError, "exceeds max_len=64"),
    ],
)
def test_transformer_bad_inputs(src: torch.Tensor, tgt: torch.Tensor, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        tiny_model()(src, tgt)


def test_check_token_ids_rejects_bool_and_empty() -> None:
    with pytest.raises(TypeError, match="integer tensor"):
        check_token_ids(torch.ones(1, 2, dtype=torch.bool), 5)
    with pytest.raises(ValueError, match="is empty"):
        check_token_ids(torch.ones(1, 0, dtype=torch.long), 5)


# ---- incremental decoding with the cache ------------------------------------------------------


@pytest.mark.numerics
@pytest.mark.parametrize("norm_first", [True, False])
@pytest.mark.parametrize("positional", ["sinusoidal", "learned"])
def test_cached_decoding_equals_full_forward(norm_first: bool, positional: str) -> None:
    model = tiny_model(norm_first=norm_first, positional=positional)
    src, tgt = batch(t=7)
    full = model(src, tgt)  # (B, T, V)
    src_mask = padding_mask(src, PAD)
    memory = model.encode(src, src_mask)
    cache = model.new_cache()
    chunks = [model.decode(tgt[:, :3], memory, src_mask, cache)]  # a 3-token prefix
    chunks.append(model.decode(tgt[:, 3:5], memory, src_mask, cache))  # 2 more: offset causal mask
    chunks += [model.decode(tgt[:, t : t + 1], memory, src_mask, cache) for t in range(5, 7)]  # 1 by 1
    assert len(cache) == 7
    assert_close(torch.cat(chunks, dim=1), full, depth=4)  # float32, as decoding runs


@pytest.mark.numerics
def test_cache_reorder_follows_rows() -> None:
    model = tiny_model()
    src, tgt = batch()
    src_mask = padding_mask(src, PAD)
    memory = model.encode(src, src_mask)
    cache = model.new_cache()
    model.decode(tgt[:, :4], memory, src_mask, cache)
    cache.reorder(torch.tensor([1, 1]))
    step = model.decode(tgt[[1, 1], 4:5], memory[[1, 1]], src_mask[[1, 1]], cache)
    full = model(src[[1, 1]], tgt[[1, 1]])[:, 4:5]
    assert_close(step, full, depth=4)


# ---- the standalone encoder ------------------------------------------------------------------


def test_transformer_encoder_named_arguments_and_shape() -> None:
    enc = TransformerEncoder(vocab_size=50, d_model=D, num_heads=H, d_ff=F, num_layers=2, dropout=0.0)
    assert enc.encoder.norm is not None and all(layer.norm_first for layer in enc.encoder.layers)
    assert enc(torch.randint(1, 50, (3, 9))).shape == (3, 9, D)
    assert enc(torch.tensor([[7]])).shape == (1, 1, D)


@pytest.mark.numerics
def test_transformer_encoder_padding_and_gradients() -> None:
    enc = TransformerEncoder(50, D, H, F, 2, dropout=0.0).eval()
    ids = torch.tensor([[5, 6, 7, 0, 0]])
    out = enc(ids)
    assert_close(out[:, :3], enc(ids[:, :3]), depth=2)
    enc.train()
    enc(ids).sum().backward()
    for name, p in enc.named_parameters():
        assert p.grad is not None, name


def test_transformer_encoder_errors() -> None:
    with pytest.raises(ValueError, match="d_model=10 is not divisible by num_heads=3"):
        TransformerEncoder(50, 10, 3, 16, 1)
    enc = TransformerEncoder(50, D, H, F, 1, max_len=8)
    with pytest.raises(ValueError, match="src contains id 50"):
        enc(torch.tensor([[50]]))
    with pytest.raises(ValueError, match="exceeds max_len=8"):
        enc(torch.ones(1, 9, dtype=torch.long))
    with pytest.raises(TypeError, match="integer tensor"):
        enc(torch.ones(1, 3))
