"""Equivalence with torch.nn after copying weights: eval mode, float64 (llmdocs.testing's equivalence tolerance).

Every test runs with float64 as the default dtype, so both models and the inputs are float64 (the interop
builders keep the dtype of the module they copy). torch.nn's masks mean the opposite of ours: a True in
``attn_mask`` / ``key_padding_mask`` *blocks* attention, so every torch.nn call below gets the negated mask.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
import torch
from torch import Tensor, nn

from llmdocs.interop import torch_nn as interop
from llmdocs.models.transformer import Decoder, Encoder, Transformer, TransformerConfig
from llmdocs.nn.attention import MultiHeadAttention, causal_mask, padding_mask
from llmdocs.nn.transformer_layers import DecoderLayer, EncoderLayer
from llmdocs.testing import assert_equivalent

D, H, F, PAD = 16, 4, 24, 0
pytestmark = pytest.mark.numerics  # every test compares numbers with torch.nn's


@pytest.fixture(autouse=True)
def _seed_no_grad_float64() -> Iterator[None]:
    torch.manual_seed(0)
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # an equivalence proof runs in float64: models and inputs
    try:
        with torch.no_grad():
            yield
    finally:
        torch.set_default_dtype(default)


def ids_with_padding(b: int = 3, s: int = 6) -> Tensor:
    ids = torch.randint(3, 20, (b, s))
    ids[1, 4:] = PAD
    ids[2, 2:] = PAD
    return ids


def perturb(module: nn.Module) -> nn.Module:
    """Randomise every parameter (LayerNorms included) so a wrong mapping cannot hide."""
    for p in module.parameters():
        p.copy_(torch.randn_like(p) * 0.3)
    return module.eval()


# ---- state dict mapping ----------------------------------------------------------------------


def test_state_dict_round_trip_is_lossless() -> None:
    layer = perturb(DecoderLayer(D, H, F))
    there = interop.state_dict_to_torch(layer.state_dict())
    assert set(there) == set(nn.TransformerDecoderLayer(D, H, F, batch_first=True).state_dict())
    back = interop.state_dict_from_torch(there)
    assert set(back) == set(layer.state_dict())
    for key, value in layer.state_dict().items():
        assert torch.equal(back[key], value), key


def test_in_proj_packs_q_k_v_in_order() -> None:
    ours = perturb(MultiHeadAttention(D, H))
    theirs = interop.mha_to_torch(ours)
    assert torch.equal(theirs.in_proj_weight[:D], ours.q_proj.weight)
    assert torch.equal(theirs.in_proj_weight[D : 2 * D], ours.k_proj.weight)
    assert torch.equal(theirs.in_proj_bias[2 * D :], ours.v_proj.bias)


# ---- MultiheadAttention ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["self", "self_causal", "self_padding", "cross_padding"])
@pytest.mark.parametrize("direction", ["ours_to_torch", "torch_to_ours"])
def test_mha_matches_torch(kind: str, direction: str) -> None:
    if direction == "ours_to_torch":
        ours = perturb(MultiHeadAttention(D, H))
        theirs = interop.mha_to_torch(ours).eval()
    else:
        theirs = perturb(nn.MultiheadAttention(D, H, batch_first=True))
        ours = interop.mha_from_torch(theirs).eval()
    B, T = 3, 5
    x = torch.randn(B, T, D)
    memory = torch.randn(B, 6, D) if kind.startswith("cross") else x
    ids = ids_with_padding(B, memory.size(1))
    mask: Tensor | None = None
    torch_kwargs: dict[str, Tensor] = {}
    if kind == "self_causal":
        mask = causal_mask(T)
        torch_kwargs["attn_mask"] = ~mask
    elif kind.endswith("padding"):
        mask = padding_mask(ids, PAD)
        torch_kwargs["key_padding_mask"] = ids == PAD

    out, weights = ours(x, memory, memory, mask=mask, need_weights=True)
    fused, _ = ours(x, memory, memory, mask=mask)
    ref, ref_mean = theirs(x, memory, memory, **torch_kwargs)
    _, ref_heads = theirs(x, memory, memory, average_attn_weights=False, **torch_kwargs)
    assert weights is not None and out.dtype == ref.dtype == torch.float64
    assert_equivalent(out, ref)
    assert_equivalent(fused, ref)
    assert_equivalent(weights.mean(dim=1), ref_mean)
    assert_equivalent(weights, ref_heads)


def test_builders_copy_into_a_given_module_and_return_it() -> None:
    ours = perturb(MultiHeadAttention(D, H))
    theirs = nn.MultiheadAttention(D, H, batch_first=True)
    assert interop.mha_to_torch(ours, theirs) is theirs
    assert torch.equal(theirs.out_proj.weight, ours.out_proj.weight)
    target = MultiHeadAttention(D, H)
    assert interop.mha_from_torch(theirs, target) is target
    assert torch.equal(target.k_proj.weight, ours.k_proj.weight)
    layer = perturb(DecoderLayer(D, H, F))
    twin = nn.TransformerDecoderLayer(D, H, F, batch_first=True, norm_first=True)
    assert interop.decoder_layer_to_torch(layer, twin) is twin
    assert torch.equal(twin.multihead_attn.out_proj.bias, layer.cross_attn.out_proj.bias)


def test_mha_without_bias_round_trip() -> None:
    ours = perturb(MultiHeadAttention(D, H, bias=False))
    theirs = interop.mha_to_torch(ours).eval()
    x = torch.randn(2, 3, D)
    assert_equivalent(ours(x)[0], theirs(x, x, x)[0])
    back = interop.mha_from_torch(theirs)
    assert back.q_proj.bias is None and torch.equal(back.v_proj.weight, ours.v_proj.weight)


# ---- single layers ---------------------------------------------------------------------------


@pytest.mark.parametrize("norm_first", [True, False])
@pytest.mark.parametrize("direction", ["ours_to_torch", "torch_to_ours"])
def test_encoder_layer_matches_torch(norm_first: bool, direction: str) -> None:
    if direction == "ours_to_torch":
        ours = perturb(EncoderLayer(D, H, F, norm_first=norm_first))
        theirs = interop.encoder_layer_to_torch(ours).eval()
    else:
        theirs = perturb(nn.TransformerEncoderLayer(D, H, F, batch_first=True, norm_first=norm_first))
        ours = interop.encoder_layer_from_torch(theirs).eval()
    ids = ids_with_padding()
    x = torch.randn(3, 6, D)
    out = ours(x, mask=padding_mask(ids, PAD))
    ref = theirs(x, src_key_padding_mask=ids == PAD)
    assert_equivalent(out, ref)
    both = causal_mask(6) & padding_mask(ids, PAD)
    ref_causal = theirs(x, src_mask=~causal_mask(6), src_key_padding_mask=ids == PAD)
    assert_equivalent(ours(x, mask=both), ref_causal)


@pytest.mark.parametrize("norm_first", [True, False])
@pytest.mark.parametrize("direction", ["ours_to_torch", "torch_to_ours"])
def test_decoder_layer_matches_torch(norm_first: bool, direction: str) -> None:
    if direction == "ours_to_torch":
        ours = perturb(DecoderLayer(D, H, F, norm_first=norm_first))
        theirs = interop.decoder_layer_to_torch(ours).eval()
    else:
        theirs = perturb(nn.TransformerDecoderLayer(D, H, F, batch_first=True, norm_first=norm_first))
        ours = interop.decoder_layer_from_torch(theirs).eval()
    src_ids = ids_with_padding()
    x, memory = torch.randn(3, 5, D), torch.randn(3, 6, D)
    out = ours(x, memory, self_mask=causal_mask(5), memory_mask=padding_mask(src_ids, PAD))
    ref = theirs(x, memory, tgt_mask=~causal_mask(5), memory_key_padding_mask=src_ids == PAD)
    assert_equivalent(out, ref)


def test_gelu_layer_and_unsupported_activation() -> None:
    ours = perturb(EncoderLayer(D, H, F, activation="gelu"))
    theirs = interop.encoder_layer_to_torch(ours).eval()
    x = torch.randn(2, 4, D)
    assert_equivalent(ours(x), theirs(x))
    custom = nn.TransformerEncoderLayer(D, H, F, activation=torch.tanh, batch_first=True)
    with pytest.raises(ValueError, match="only relu and gelu"):
        interop.encoder_layer_from_torch(custom)


# ---- stacks ----------------------------------------------------------------------------------


@pytest.mark.parametrize("norm_first", [True, False])
def test_encoder_and_decoder_stacks_match_torch_both_ways(norm_first: bool) -> None:
    enc = perturb(Encoder(D, H, F, n_layers=2, norm_first=norm_first))
    dec = perturb(Decoder(D, H, F, n_layers=2, norm_first=norm_first))
    torch_enc = interop.encoder_to_torch(enc).eval()
    torch_dec = interop.decoder_to_torch(dec).eval()
    assert (torch_enc.norm is None) == (not norm_first)
    ids = ids_with_padding()
    src_x, tgt_x = torch.randn(3, 6, D), torch.randn(3, 5, D)
    memory = enc(src_x, padding_mask(ids, PAD))
    ref_memory = torch_enc(src_x, src_key_padding_mask=ids == PAD)
    assert_equivalent(memory, ref_memory, depth=2)
    out = dec(tgt_x, memory, causal_mask(5), padding_mask(ids, PAD))
    ref = torch_dec(tgt_x, memory, tgt_mask=~causal_mask(5), memory_key_padding_mask=ids == PAD)
    assert_equivalent(out, ref, depth=2)
    # and back: torch.nn -> ours gives the same numbers again
    enc_back, dec_back = interop.encoder_from_torch(torch_enc), interop.decoder_from_torch(torch_dec)
    assert_equivalent(enc_back.eval()(src_x, padding_mask(ids, PAD)), memory, depth=2)
    back = dec_back.eval()(tgt_x, memory, causal_mask(5), padding_mask(ids, PAD))
    assert_equivalent(back, out, depth=2)


# ---- nn.Transformer --------------------------------------------------------------------------


def embedded(model: Transformer, ids: Tensor, side: str) -> Tensor:
    embed, pos = (model.src_embed, model.src_pos) if side == "src" else (model.tgt_embed, model.tgt_pos)
    return pos(embed(ids) * math.sqrt(model.config.d_model))


@pytest.mark.parametrize("norm_first", [True, False])
def test_transformer_matches_nn_transformer(norm_first: bool) -> None:
    config = TransformerConfig.tiny(20, 20, d_model=D, n_heads=H, d_ff=F, norm_first=norm_first)
    model = Transformer(config).eval()
    theirs = interop.transformer_to_torch(model).eval()
    src, tgt = ids_with_padding(), torch.randint(1, 20, (3, 5))
    hidden = theirs(
        embedded(model, src, "src"),
        embedded(model, tgt, "tgt"),
        tgt_mask=~causal_mask(5),
        src_key_padding_mask=src == PAD,
        memory_key_padding_mask=src == PAD,
    )  # (B, T, D)
    assert_equivalent(model(src, tgt), model.lm_head(hidden), depth=4)  # 2 encoder + 2 decoder layers


@pytest.mark.filterwarnings("ignore:enable_nested_tensor is True")
def test_transformer_from_torch() -> None:
    theirs = perturb(nn.Transformer(D, H, 2, 2, F, batch_first=True, norm_first=True))
    config = TransformerConfig.tiny(20, 20, d_model=D, n_heads=H, d_ff=F, norm_first=True)
    model = Transformer(config).eval()
    interop.transformer_from_torch(theirs, model)
    src, tgt = ids_with_padding(), torch.randint(1, 20, (3, 5))
    hidden = theirs(
        embedded(model, src, "src"),
        embedded(model, tgt, "tgt"),
        tgt_mask=~causal_mask(5),
        src_key_padding_mask=src == PAD,
        memory_key_padding_mask=src == PAD,
    )
    assert_equivalent(model(src, tgt), model.lm_head(hidden), depth=4)  # 2 encoder + 2 decoder layers


def test_copy_post_ln_transformer_from_torch_needs_matching_final_norms() -> None:
    theirs = nn.Transformer(D, H, 2, 2, F, batch_first=True, norm_first=False)
    model = Transformer(TransformerConfig.tiny(20, 20, d_model=D, n_heads=H, d_ff=F, norm_first=False))
    with pytest.raises(ValueError, match=r"final encoder norm: torch\.nn has one, ours has none"):
        interop.transformer_from_torch(theirs, model)
    theirs.encoder.norm = None
    theirs.decoder.norm = None
    interop.transformer_from_torch(theirs, model)  # now the structures match
    assert torch.equal(model.encoder.layers[0].ff.fc1.weight, theirs.encoder.layers[0].linear1.weight)
