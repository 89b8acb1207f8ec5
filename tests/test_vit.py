"""The Vision Transformer: patch embedding, positions, the model, attention rollout, and equivalence with Hugging Face.

Patch embedding: the strided convolution equals "cut into patches + one linear map" with the same weights, and
patchify equals torch's unfold. Positions: the 2-D sine-cosine table is a row half and a column half; bicubic
interpolation keeps [CLS], is the identity at the native grid and equals Hugging Face's interpolate_pos_encoding.
The model is proven equal to Hugging Face's ViTModel (hidden states) and ViTForImageClassification (logits) in
float64, both ways, for several patch sizes, 1 and 3 channels and an odd head count (llmdocs.testing). Attention
rollout: rows are distributions, identity attention rolls out to the identity, and a 2-layer case by hand.
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # before transformers is imported: never touch the network

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("transformers")
import transformers
from weights import perturb

from llmdocs.interop import hf_vit
from llmdocs.models.vit import ViT, ViTConfig, attention_rollout
from llmdocs.nn.image_checks import check_images
from llmdocs.nn.patch_embedding import (
    ImageEmbedding,
    PatchEmbedding,
    interpolate_pos_embed,
    patchify,
    sincos_2d_table,
    unpatchify,
)
from llmdocs.nn.positional import sinusoidal_table
from llmdocs.profiling import count_parameters
from llmdocs.serialization import load_pretrained, save_pretrained
from llmdocs.testing import assert_close, assert_equivalent

CONFIGS = {
    "patch 4, 3 channels, 4 heads": ViTConfig.tiny(d_model=32, n_heads=4, d_ff=64, n_classes=5),
    "patch 2, 1 channel, 3 heads": ViTConfig.tiny(
        patch_size=2, n_channels=1, d_model=24, n_heads=3, n_layers=3, d_ff=40, n_classes=10
    ),
    "28 px, patch 7, gelu_tanh, eps 1e-6": ViTConfig.tiny(
        image_size=28, patch_size=7, n_channels=1, n_layers=1, activation="gelu_tanh", layer_norm_eps=1e-6
    ),
    "12 px, patch 3, 1 head, ReLU": ViTConfig.tiny(
        image_size=12, patch_size=3, d_model=8, n_heads=1, activation="relu"
    ),
}
HF_CLASSES = {"ViTForImageClassification": True, "ViTModel": False}  # class -> head


@pytest.fixture(autouse=True)
def _seed() -> Iterator[None]:
    torch.manual_seed(0)
    yield


def images_for(config: ViTConfig, B: int = 3, size: int | tuple[int, int] | None = None) -> torch.Tensor:
    H, W = (config.image_size,) * 2 if size is None else (size, size) if isinstance(size, int) else size
    return torch.randn(B, config.n_channels, H, W, dtype=torch.float64)


# ---- patches ------------------------------------------------------------------------------------------------------


def test_patchify_is_unfold_and_unpatchify_inverts_it() -> None:
    images = torch.randn(2, 3, 8, 12)
    patches = patchify(images, 4)  # (B, P, C p^2)
    assert patches.shape == (2, 6, 48)
    assert torch.equal(patches, F.unfold(images, kernel_size=4, stride=4).transpose(1, 2))
    assert torch.equal(unpatchify(patches, 4, grid=(2, 3)), images)
    assert torch.equal(patches[0, 4], images[0, :, 4:8, 4:8].reshape(-1))  # patch 4 = row 1, column 1


@pytest.mark.numerics
@pytest.mark.parametrize(("C", "p", "H", "W"), [(1, 4, 28, 28), (3, 2, 6, 10), (3, 5, 10, 5)])
def test_strided_convolution_equals_unfold_then_linear(C: int, p: int, H: int, W: int) -> None:
    embed = perturb(PatchEmbedding(patch_size=p, n_channels=C, d_model=12)).double()
    images = torch.randn(2, C, H, W, dtype=torch.float64)
    conv = embed(images)
    assert conv.shape == (2, (H // p) * (W // p), 12)
    assert_equivalent(conv, embed.forward_as_linear(images))
    linear = torch.nn.Linear(C * p * p, 12).double()  # the same map as a separate nn.Linear, weights copied
    with torch.no_grad():
        linear.weight.copy_(embed.proj.weight.reshape(12, -1))
        linear.bias.copy_(embed.proj.bias)
    assert_equivalent(conv, linear(patchify(images, p)))


def test_patch_embedding_backward_reaches_the_kernel() -> None:
    embed = PatchEmbedding(patch_size=4, n_channels=3, d_model=8)
    embed(torch.randn(2, 3, 8, 8)).sum().backward()
    assert embed.proj.weight.grad is not None and embed.proj.weight.grad.abs().sum() > 0


@pytest.mark.parametrize(
    ("images", "error", "words"),
    [
        (torch.rand(2, 3, 10, 8), ValueError, "not a multiple of patch_size=4"),
        (torch.rand(2, 1, 8, 8), ValueError, "n_channels=3"),
        (torch.zeros(2, 3, 8, 8, dtype=torch.uint8), TypeError, "floating-point"),
        (torch.rand(3, 8, 8), ValueError, "unsqueeze(0)"),
        ([[0.0]], TypeError, "got list"),
    ],
)
def test_patch_embedding_rejects_bad_images(images: object, error: type, words: str) -> None:
    with pytest.raises(error, match=r"^images.*" + words.replace("(", r"\(").replace(")", r"\)")):
        PatchEmbedding(patch_size=4, n_channels=3, d_model=8)(images)  # type: ignore[arg-type]


def test_check_images_accepts_any_channels_when_none() -> None:
    check_images(torch.rand(1, 5, 4, 4), n_channels=None)
    with pytest.raises(ValueError, match="empty"):
        check_images(torch.rand(0, 1, 4, 4), n_channels=1)


# ---- positions ----------------------------------------------------------------------------------------------------


def test_sincos_table_is_a_row_half_and_a_column_half() -> None:
    table = sincos_2d_table((3, 4), d_model=16).view(3, 4, 16)  # (Gh, Gw, D)
    assert torch.equal(table[:, :, :8], sinusoidal_table(3, 8)[:, None, :].expand(3, 4, 8))  # depends on the row
    assert torch.equal(table[:, :, 8:], sinusoidal_table(4, 8)[None, :, :].expand(3, 4, 8))  # on the column
    assert len({tuple(row.tolist()) for row in table.view(12, 16)}) == 12  # every patch has its own vector
    with pytest.raises(ValueError, match="multiple of 4"):
        sincos_2d_table(3, d_model=18)


def test_interpolation_keeps_cls_and_is_the_identity_at_the_native_grid() -> None:
    pos = torch.randn(1, 1 + 16, 8)  # [CLS] + a 4 x 4 grid
    assert interpolate_pos_embed(pos, 4) is pos
    assert interpolate_pos_embed(pos, (4, 4), old_grid=(4, 4)) is pos
    bigger = interpolate_pos_embed(pos, (6, 8))
    assert bigger.shape == (1, 1 + 48, 8)
    assert torch.equal(bigger[:, :1], pos[:, :1])  # [CLS] belongs to no patch: kept as it is
    constant = torch.ones(1, 1 + 16, 8)
    assert_close(interpolate_pos_embed(constant, 7), torch.ones(1, 1 + 49, 8))  # bicubic weights sum to one
    with pytest.raises(ValueError, match="not a square grid"):
        interpolate_pos_embed(torch.randn(1, 1 + 6, 8), 3)
    assert interpolate_pos_embed(torch.randn(1, 1 + 6, 8), (3, 2), old_grid=(2, 3)).shape == (1, 7, 8)


def test_image_embedding_positions() -> None:
    learned = ImageEmbedding(image_size=8, patch_size=4, n_channels=1, d_model=8)
    assert isinstance(learned.pos_embed, torch.nn.Parameter) and learned.pos_embed.shape == (1, 5, 8)
    fixed = ImageEmbedding(image_size=8, patch_size=4, n_channels=1, d_model=8, pos_embedding="sincos")
    assert "pos_embed" not in fixed.state_dict() and len(list(fixed.parameters())) == 3  # cls, kernel, bias
    assert torch.equal(fixed.pos_embed[0, 0], torch.zeros(8))  # [CLS] gets no position
    assert torch.equal(fixed.position_table((3, 5))[0, 1:], sincos_2d_table((3, 5), 8))  # exact, not interpolated
    out = fixed(torch.rand(2, 1, 12, 20), interpolate_pos_encoding=True)
    assert out.shape == (2, 1 + 15, 8)


# ---- the model ----------------------------------------------------------------------------------------------------


def test_presets() -> None:
    fm = ViTConfig.fashion_mnist()
    assert (fm.image_size, fm.patch_size, fm.n_channels, fm.d_model, fm.n_layers, fm.n_heads, fm.d_ff) == (
        28,
        4,
        1,
        64,
        4,
        4,
        128,
    )
    assert (fm.n_classes, fm.n_patches, fm.n_tokens, fm.d_head, fm.grid_size) == (10, 49, 50, 16, 7)
    D, F_, L, T = 64, 128, 4, 50
    per_layer = 4 * (D * D + D) + (D * F_ + F_) + (F_ * D + D) + 2 * 2 * D
    expected = (16 * D + D) + D + T * D + L * per_layer + 2 * D + (D * 10 + 10)
    assert count_parameters(ViT(fm)) == expected == 139_018
    base = ViTConfig.base()
    assert (base.image_size, base.patch_size, base.d_model, base.n_layers, base.d_ff, base.n_patches) == (
        224,
        16,
        768,
        12,
        3072,
        196,
    )


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        (dict(d_model=10, n_heads=3), "d_model=10 is not divisible by n_heads=3"),
        (dict(image_size=10, patch_size=4), "image_size=10 is not divisible by patch_size=4"),
        (dict(pool="max"), "pool must be one of"),
        (dict(pos_embedding="rope"), "pos_embedding must be one of"),
        (dict(pos_embedding="sincos", d_model=18, n_heads=2), "divisible by 4"),
        (dict(n_classes=0), "n_classes must be an integer >= 1"),
        (dict(n_channels=True), "n_channels must be an integer >= 1"),
        (dict(dropout=1.0), "dropout"),
        (dict(activation="swish"), "activation"),
    ],
)
def test_config_validation(overrides: dict, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        ViTConfig.tiny(**overrides)


def test_shapes_and_backward() -> None:
    model = ViT(ViTConfig.tiny())
    images = torch.rand(2, 3, 8, 8)
    assert model.encode(images).shape == (2, 5, 16)
    logits = model(images)
    assert logits.shape == (2, 3)
    logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    assert model.embeddings.cls_token.grad.abs().sum() > 0


@pytest.mark.parametrize(
    ("images", "error", "words"),
    [
        (torch.rand(2, 3, 12, 12), ValueError, "images are 12x12 pixels but the model was built for image_size=8"),
        (torch.rand(2, 1, 8, 8), ValueError, "images has C=1 channels"),
        (torch.randint(0, 255, (2, 3, 8, 8)), TypeError, "images must be a floating-point tensor"),
        (torch.rand(3, 8, 8), ValueError, "images must have shape \\(B, C, H, W\\)"),
        ("an image", TypeError, "images must be a floating-point tensor .* got str"),
    ],
)
def test_bad_images_are_named(images: object, error: type, words: str) -> None:
    with pytest.raises(error, match=words):
        ViT(ViTConfig.tiny())(images)  # type: ignore[arg-type]


def test_other_sizes_need_interpolate_and_a_patch_multiple() -> None:
    model = ViT(ViTConfig.tiny()).eval()
    with pytest.raises(ValueError, match="interpolate_pos_encoding=True"):
        model(torch.rand(1, 3, 12, 12))
    assert model.encode(torch.rand(1, 3, 12, 16), interpolate_pos_encoding=True).shape == (1, 1 + 12, 16)
    with pytest.raises(ValueError, match="not a multiple of patch_size=4"):
        model(torch.rand(1, 3, 10, 12), interpolate_pos_encoding=True)
    images = torch.rand(2, 3, 8, 8)
    assert torch.equal(model(images, interpolate_pos_encoding=True), model(images))  # native size: no change


@pytest.mark.numerics
@pytest.mark.parametrize("pool", ["cls", "mean"])
def test_pooling_reads_cls_or_the_patch_mean(pool: str) -> None:
    model = perturb(ViT(ViTConfig.tiny(pool=pool))).double()
    images = images_for(model.config)
    hidden = model.encode(images)  # (B, T, D)
    vector = hidden[:, 0] if pool == "cls" else hidden[:, 1:].mean(1)
    assert_equivalent(model(images), model.head(vector), depth=2)


@pytest.mark.numerics
def test_need_weights_path_equals_fused_path_and_rows_are_distributions() -> None:
    config = CONFIGS["patch 2, 1 channel, 3 heads"]
    model = perturb(ViT(config)).double()
    with pytest.raises(RuntimeError, match="need_weights=True"):
        model.attention_weights()
    images = images_for(config)
    with torch.no_grad():
        fused = model(images)
        assert_equivalent(model(images, need_weights=True), fused, depth=config.n_layers)
    weights = model.attention_weights()
    assert len(weights) == 3 and weights[0].shape == (3, 3, 17, 17)  # (B, H, T, T), T = 1 + 16
    assert_close(torch.stack(weights).sum(-1), torch.ones(3, 3, 3, 17, dtype=torch.float64))


# ---- attention rollout --------------------------------------------------------------------------------------------


def random_attention(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, dtype=torch.float64).softmax(dim=-1)


@pytest.mark.numerics
def test_rollout_rows_sum_to_one() -> None:
    rollout = attention_rollout(random_attention(4, 2, 3, 6, 6))  # (L, B, H, T, T)
    assert rollout.shape == (2, 6, 6)
    assert_equivalent(rollout.sum(-1), torch.ones(2, 6, dtype=torch.float64), depth=4)
    assert bool((rollout >= 0).all())


def test_identity_attention_rolls_out_to_the_identity() -> None:
    eye = torch.eye(5).expand(3, 2, 5, 5)  # (L, H, T, T): every token attends to itself
    assert torch.equal(attention_rollout(eye), torch.eye(5))


@pytest.mark.numerics
def test_two_layers_by_hand() -> None:
    # Layer 1: token 1 splits its attention; layer 2: token 0 does. Two heads that average to these.
    A1 = torch.tensor([[1.0, 0.0], [0.5, 0.5]], dtype=torch.float64)
    A2 = torch.tensor([[0.5, 0.5], [0.0, 1.0]], dtype=torch.float64)
    head_a = torch.tensor([[0.8, 0.2], [0.5, 0.5]], dtype=torch.float64)
    layer2 = torch.stack([head_a, 2 * A2 - head_a])  # (H=2, T, T), mean = A2
    attentions = [torch.stack([A1, A1]), layer2]
    # (A + I) / 2:  [[1, 0], [0.25, 0.75]]  and  [[0.75, 0.25], [0, 1]];  rollout = second @ first
    expected = torch.tensor([[0.8125, 0.1875], [0.25, 0.75]], dtype=torch.float64)
    assert_equivalent(attention_rollout(attentions), expected, depth=2)
    assert_equivalent(attention_rollout(torch.stack(attentions)), expected, depth=2)  # a tensor (L, H, T, T)


@pytest.mark.numerics
def test_rollout_of_a_batch_is_the_rollout_of_each_image() -> None:
    layers = [random_attention(2, 4, 5, 5) for _ in range(3)]  # L of (B, H, T, T)
    batched = attention_rollout(layers)
    for b in range(2):
        assert_equivalent(batched[b], attention_rollout([a[b] for a in layers]), depth=3)
    assert_equivalent(attention_rollout(layers, "max").sum(-1), torch.ones(2, 5, dtype=torch.float64), depth=3)


@pytest.mark.parametrize(
    ("attentions", "error", "words"),
    [
        ([], ValueError, "empty"),
        ([torch.rand(2, 4, 4), torch.rand(2, 5, 5)], ValueError, "same shape"),
        (torch.rand(2, 2, 4, 5), ValueError, r"\(L, H, T, T\)"),
        (torch.ones(2, 2, 4, 4, dtype=torch.long), TypeError, "floating-point"),
    ],
)
def test_rollout_errors(attentions: object, error: type, words: str) -> None:
    with pytest.raises(error, match=words):
        attention_rollout(attentions)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="head_fusion"):
        attention_rollout(torch.rand(1, 1, 2, 2), head_fusion="median")


# ---- Hugging Face: names and configs ------------------------------------------------------------------------------


@pytest.mark.parametrize("hf_class", list(HF_CLASSES))
def test_state_dict_names_match_hf_and_round_trip(hf_class: str) -> None:
    head = HF_CLASSES[hf_class]
    ours = ViT(CONFIGS["patch 2, 1 channel, 3 heads"])
    theirs = hf_vit.to_hf(ours, head=head)
    assert type(theirs).__name__ == hf_class
    assert set(hf_vit.state_dict_to_hf(ours.state_dict(), head=head)) == set(theirs.state_dict())
    back = hf_vit.state_dict_from_hf(theirs.state_dict())
    expected = {k: v for k, v in ours.state_dict().items() if head or not k.startswith("head.")}
    assert set(back) == set(expected)
    assert all(torch.equal(back[k], v) for k, v in expected.items())


def test_legacy_names_of_transformers_4_checkpoints() -> None:
    ours = ViT(ViTConfig.tiny(n_layers=2))
    legacy = hf_vit.state_dict_to_hf(ours.state_dict(), legacy=True)
    for name in (
        "vit.embeddings.cls_token",
        "vit.embeddings.position_embeddings",
        "vit.embeddings.patch_embeddings.projection.weight",
        "vit.encoder.layer.1.attention.attention.query.weight",
        "vit.encoder.layer.1.attention.attention.value.bias",
        "vit.encoder.layer.1.attention.output.dense.weight",
        "vit.encoder.layer.1.intermediate.dense.weight",
        "vit.encoder.layer.1.output.dense.bias",
        "vit.encoder.layer.1.layernorm_before.weight",
        "vit.encoder.layer.1.layernorm_after.bias",
        "vit.layernorm.weight",
        "classifier.weight",
    ):
        assert name in legacy
    back = hf_vit.state_dict_from_hf({**legacy, "vit.pooler.dense.weight": torch.zeros(16, 16)})  # pooler dropped
    assert set(back) == set(ours.state_dict())


@pytest.mark.parametrize("name", list(CONFIGS))
def test_config_round_trip(name: str) -> None:
    config = CONFIGS[name]
    assert hf_vit.config_from_hf(hf_vit.config_to_hf(config)) == config
    assert hf_vit.config_from_hf(hf_vit.config_to_hf(config).to_dict()) == config  # a config.json


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        (dict(qkv_bias=False), "qkv_bias=False"),
        (dict(image_size=(8, 12)), "only square"),
        (dict(hidden_act="silu"), "hidden_act='silu'"),
        (dict(model_type="deit"), "not a ViT config"),
    ],
)
def test_config_from_hf_refuses_what_we_do_not_implement(overrides: dict, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        hf_vit.config_from_hf({"model_type": "vit", **overrides})


def test_conversion_errors() -> None:
    with pytest.raises(ValueError, match="head=False"):
        hf_vit.to_hf(ViT(ViTConfig.tiny(pool="mean")))
    with pytest.raises(TypeError, match="from_hf converts"):
        hf_vit.from_hf(torch.nn.Linear(2, 2))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="ViT"):
        hf_vit.to_hf(torch.nn.Linear(2, 2))  # type: ignore[arg-type]


# ---- Hugging Face: equivalence (float64) --------------------------------------------------------------------------


def run_ours(model: ViT, images: torch.Tensor, head: bool, **kwargs: bool) -> torch.Tensor:
    return model(images, **kwargs) if head else model.encode(images, **kwargs)


def run_hf(model: torch.nn.Module, images: torch.Tensor, head: bool, **kwargs: bool) -> torch.Tensor:
    out = model(pixel_values=images, **kwargs)
    return out.logits if head else out.last_hidden_state


@pytest.mark.numerics
@pytest.mark.parametrize("hf_class", list(HF_CLASSES))
@pytest.mark.parametrize("name", list(CONFIGS))
def test_ours_to_hf_equivalent(hf_class: str, name: str) -> None:
    config, head = CONFIGS[name], HF_CLASSES[hf_class]
    ours = perturb(ViT(config)).double()
    theirs = hf_vit.to_hf(ours, head=head).eval()
    images = images_for(config)
    with torch.no_grad():
        assert_equivalent(run_ours(ours, images, head), run_hf(theirs, images, head), depth=config.n_layers)


@pytest.mark.numerics
@pytest.mark.parametrize("hf_class", list(HF_CLASSES))
@pytest.mark.parametrize("name", list(CONFIGS))
def test_hf_to_ours_equivalent(hf_class: str, name: str) -> None:
    config, head = CONFIGS[name], HF_CLASSES[hf_class]
    hf_config = hf_vit.config_to_hf(config)
    theirs = perturb(getattr(transformers, hf_class)(hf_config)).double()
    ours = hf_vit.from_hf(theirs)
    assert type(ours) is ViT and not ours.training and ours.config == config
    images = images_for(config)
    with torch.no_grad():
        assert_equivalent(run_ours(ours, images, head), run_hf(theirs, images, head), depth=config.n_layers)


@pytest.mark.numerics
def test_sincos_positions_and_mean_pooling_encoder_equivalent() -> None:
    config = ViTConfig.tiny(pos_embedding="sincos", pool="mean", d_model=24, n_heads=3)
    ours = perturb(ViT(config)).double()
    theirs = hf_vit.to_hf(ours, head=False).eval()  # the fixed table is copied into HF's learned one
    assert torch.equal(theirs.embeddings.position_embeddings, ours.embeddings.pos_embed)
    images = images_for(config)
    with torch.no_grad():
        assert_equivalent(ours.encode(images), theirs(images).last_hidden_state, depth=config.n_layers)


@pytest.mark.numerics
@pytest.mark.parametrize("size", [12, (12, 16), (4, 8)])
def test_interpolated_positions_equal_hf(size: int | tuple[int, int]) -> None:
    config = CONFIGS["patch 4, 3 channels, 4 heads"]  # a 2 x 2 grid at 8 x 8 pixels
    ours = perturb(ViT(config)).double()
    theirs = hf_vit.to_hf(ours).eval()
    images = images_for(config, size=size)
    H, W = images.shape[-2:]
    with torch.no_grad():
        table = interpolate_pos_embed(ours.embeddings.pos_embed, (H // 4, W // 4))
        dummy = torch.zeros(1, table.size(1), config.d_model, dtype=torch.float64)  # only its length is read
        assert_equivalent(table, theirs.vit.embeddings.interpolate_pos_encoding(dummy, H, W))
        ours_logits = ours(images, interpolate_pos_encoding=True)
        assert_equivalent(ours_logits, theirs(images, interpolate_pos_encoding=True).logits, depth=config.n_layers)


@pytest.mark.numerics
def test_dropout_in_the_same_places_as_hf() -> None:
    """In training mode, with the same seed, the dropout masks fall on the same units as Hugging Face's eager ViT:
    the embeddings, the attention weights and both residual branches, not the MLP's hidden units.

    Hugging Face's eager attention computes its softmax in float32 even for a float64 model, so the results agree
    to float32's rounding (another mask would differ by O(1)): compared with float32's tolerance."""
    config = ViTConfig.tiny(dropout=0.2, d_model=24, n_heads=3)
    ours = perturb(ViT(config)).double().train()
    theirs = hf_vit.to_hf(ours).train()
    theirs.config._attn_implementation = "eager"
    images = images_for(config)
    torch.manual_seed(1)
    logits = ours(images)
    torch.manual_seed(1)
    assert_close(logits.float(), theirs(images).logits.float(), depth=config.n_layers)


# ---- save_pretrained / load_pretrained ------------------------------------------------------------------------------


@pytest.mark.parametrize("overrides", [{}, dict(pos_embedding="sincos", pool="mean")], ids=["learned", "sincos"])
def test_save_and_load_round_trip(tmp_path: Path, overrides: dict) -> None:
    config = ViTConfig.tiny(**overrides)
    model = perturb(ViT(config))
    path = save_pretrained(tmp_path / "vit", model, config, {"note": "untrained"})
    loaded, loaded_config, meta = load_pretrained(path)
    assert type(loaded) is ViT and loaded_config == config and meta == {"note": "untrained"}
    images = torch.rand(2, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(loaded(images), model(images))
