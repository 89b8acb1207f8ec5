"""`rollout_map`: the [CLS] row of a ViT's attention rollout, laid on the grid of patches and upsampled to pixels."""

from __future__ import annotations

import pytest
import torch

from llmdocs.models.resnet import ResNet, ResNetConfig
from llmdocs.models.vit import ViT, ViTConfig, attention_rollout, rollout_map


def tiny_vit(**overrides: object) -> ViT:
    """8 x 8 RGB images in a 2 x 2 grid of 4 x 4 patches: T = 5 tokens, 2 layers, 2 heads."""
    torch.manual_seed(0)
    return ViT(ViTConfig.tiny(**overrides)).eval()


def fixed_attention(model: ViT, weights: torch.Tensor, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every layer report the attention ``weights`` (B, H, T, T) to the rollout (the forward pass still runs)."""
    monkeypatch.setattr(model, "attention_weights", lambda: [weights] * model.config.n_layers)


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_one_map_per_image_of_the_image_size_non_negative_and_without_grad(mode: str) -> None:
    model = tiny_vit()
    images = torch.randn(3, 3, 8, 8, requires_grad=True)
    maps = rollout_map(model, images, mode=mode)
    assert maps.shape == (3, 8, 8) and maps.dtype == torch.float32
    assert bool((maps >= 0).all()) and not maps.requires_grad
    assert torch.allclose(rollout_map(model, images[1:2], mode=mode)[0], maps[1])  # images do not mix


def test_the_cls_row_sums_to_one_before_its_own_column_is_dropped() -> None:
    model = tiny_vit()
    images = torch.randn(2, 3, 8, 8)
    maps = rollout_map(model, images, mode="nearest")  # each patch's share repeated over its 4 x 4 pixels
    rollout = attention_rollout(model.attention_weights())  # (B, T, T), from the same forward pass
    patch_shares = maps.sum(dim=(1, 2)) / 16  # (B,)
    torch.testing.assert_close(patch_shares + rollout[:, 0, 0], torch.ones(2))
    torch.testing.assert_close(maps[:, ::4, ::4].reshape(2, 4), rollout[:, 0, 1:])  # row-major over the grid


def test_uniform_attention_gives_a_uniform_map_of_the_known_share() -> None:
    """q = k = 0: every score is equal, W = J / T, A = (I + J / T) / 2, and A^L = I / 2^L + (1 - 1 / 2^L) J / T."""
    model = tiny_vit()
    with torch.no_grad():
        for layer in model.layers:
            for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj):
                proj.weight.zero_()
                proj.bias.zero_()
    L, T = model.config.n_layers, model.config.n_tokens
    expected = (1 - 0.5**L) / T
    for mode in ("bilinear", "nearest"):
        maps = rollout_map(model, torch.randn(2, 3, 8, 8), mode=mode)
        torch.testing.assert_close(maps, torch.full((2, 8, 8), expected))


def test_identity_attention_gives_a_zero_map_and_mean_pooling_a_uniform_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tokens that read only themselves: [CLS] gathers nothing from the patches; the mean of the patch rows spreads
    evenly over the P = 4 patches."""
    identity = torch.eye(5).expand(1, 2, 5, 5)  # (B, H, T, T)
    cls_model = tiny_vit()
    fixed_attention(cls_model, identity, monkeypatch)
    assert torch.equal(rollout_map(cls_model, torch.randn(1, 3, 8, 8)), torch.zeros(1, 8, 8))
    mean_model = tiny_vit(pool="mean")
    fixed_attention(mean_model, identity, monkeypatch)
    torch.testing.assert_close(rollout_map(mean_model, torch.randn(1, 3, 8, 8)), torch.full((1, 8, 8), 0.25))


def test_a_cls_token_reading_one_patch_lights_that_patch_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """[CLS] attends to patch 3 (bottom left of the 2 x 2 grid): that 4 x 4 block holds all the patches' share."""
    weights = torch.eye(5)
    weights[0] = torch.tensor([0.0, 0.0, 0.0, 1.0, 0.0])  # token 3 = patch (row 1, column 0)
    model = tiny_vit(n_layers=1)
    fixed_attention(model, weights.expand(1, 2, 5, 5), monkeypatch)
    maps = rollout_map(model, torch.randn(1, 3, 8, 8), mode="nearest")[0]  # (8, 8)
    expected = torch.zeros(8, 8)
    expected[4:, :4] = 0.5  # (W + I) / 2: half to [CLS] itself, half to the patch
    torch.testing.assert_close(maps, expected)
    smooth = rollout_map(model, torch.randn(1, 3, 8, 8))[0]
    assert smooth.argmax() // 8 >= 4 and smooth.argmax() % 8 < 4 and float(smooth.max()) <= 0.5


def test_head_fusion_and_the_models_mode() -> None:
    model = tiny_vit()
    images = torch.randn(2, 3, 8, 8)
    maps = {fusion: rollout_map(model, images, head_fusion=fusion) for fusion in ("mean", "max", "min")}
    assert not torch.allclose(maps["max"], maps["min"])
    model.train()
    rollout_map(model, images)
    assert model.training  # restored after the eval-mode pass


def test_bad_input_is_refused_by_name() -> None:
    model = tiny_vit()
    images = torch.randn(1, 3, 8, 8)
    with pytest.raises(TypeError, match="model must be a ViT, got ResNet"):
        rollout_map(ResNet(ResNetConfig.tiny()), images)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mode must be 'bilinear' or 'nearest', got 'bicubic'"):
        rollout_map(model, images, mode="bicubic")
    with pytest.raises(ValueError, match="head_fusion must be one of"):
        rollout_map(model, images, head_fusion="sum")
    with pytest.raises(TypeError, match="images must be a floating-point tensor"):
        rollout_map(model, torch.zeros(1, 3, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match="images are 16x16 pixels"):
        rollout_map(model, torch.randn(1, 3, 16, 16))
