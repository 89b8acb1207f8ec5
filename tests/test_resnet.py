"""The ResNet baseline: shapes, the preset's size, residual blocks, input errors, saving and loading.

The invariant that defines a residual block: with its last batch norm at gamma = beta = 0 the residual branch is
zero, so the block is ReLU(x) on its input (and ``zero_init_residual`` starts every block there).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from llmdocs.models.resnet import BasicBlock, ResNet, ResNetConfig
from llmdocs.profiling import count_parameters
from llmdocs.serialization import load_pretrained, save_pretrained


@pytest.fixture(autouse=True)
def _seed() -> Iterator[None]:
    torch.manual_seed(0)
    yield


def expected_parameters(config: ResNetConfig) -> int:
    """Count by hand: 3 x 3 convolutions without bias, BN (gamma, beta) after each, 1 x 1 projection shortcuts."""

    def conv_bn(c_in: int, c_out: int, k: int = 3) -> int:
        return k * k * c_in * c_out + 2 * c_out

    total = conv_bn(config.n_channels, config.widths[0])  # stem
    c_in = config.widths[0]
    for s, (width, depth) in enumerate(zip(config.widths, config.depths, strict=True)):
        for b in range(depth):
            block_in = c_in if b == 0 else width
            total += conv_bn(block_in, width) + conv_bn(width, width)
            if b == 0 and (s > 0 or block_in != width):
                total += conv_bn(block_in, width, k=1)  # projection shortcut
        c_in = width
    return total + config.widths[-1] * config.n_classes + config.n_classes  # head


def test_preset_for_fashion_mnist() -> None:
    config = ResNetConfig.fashion_mnist()
    assert (config.n_channels, config.n_classes, config.widths, config.depths) == (1, 10, (16, 32, 64), (2, 2, 2))
    n = count_parameters(ResNet(config))
    assert n == expected_parameters(config) == 174_970
    assert 100_000 <= n <= 1_000_000  # a real residual network, not a two-layer toy, and not a slow one


@pytest.mark.parametrize("size", [28, 32, 9])
def test_shapes_and_backward(size: int) -> None:
    model = ResNet(ResNetConfig.tiny(n_channels=1))
    images = torch.rand(4, 1, size, size)
    assert model.features(images).shape == (4, 16)
    logits = model(images)
    assert logits.shape == (4, 3)
    logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_stages_halve_the_feature_map() -> None:
    model = ResNet(ResNetConfig.fashion_mnist()).eval()
    x = model.stem(torch.rand(2, 1, 28, 28))
    shapes = []
    for stage in model.stages:
        x = stage(x)
        shapes.append(tuple(x.shape[1:]))
    assert shapes == [(16, 28, 28), (32, 14, 14), (64, 7, 7)]
    assert ResNetConfig.fashion_mnist().downsampling == 4


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
def test_block_with_zero_last_gamma_is_relu_of_its_input(train: bool) -> None:
    block = BasicBlock(8, 8).train(train)
    with torch.no_grad():
        block.bn2.weight.zero_()  # gamma = 0 (beta starts at 0): the residual branch outputs exactly 0
    x = torch.randn(4, 8, 6, 6)
    assert torch.equal(block(x), torch.relu(x))


def test_zero_init_residual_starts_every_block_as_relu() -> None:
    model = ResNet(ResNetConfig.tiny(zero_init_residual=True))
    blocks = [m for m in model.modules() if isinstance(m, BasicBlock)]
    assert blocks and all(bool((b.bn2.weight == 0).all()) for b in blocks)
    assert not bool((ResNet(ResNetConfig.tiny()).stages[0][0].bn2.weight == 0).any())


def test_projection_shortcut_only_where_the_shape_changes() -> None:
    model = ResNet(ResNetConfig.fashion_mnist())
    kinds = [[type(block.shortcut).__name__ for block in stage] for stage in model.stages]
    assert kinds == [["Identity", "Identity"], ["Sequential", "Identity"], ["Sequential", "Identity"]]
    with pytest.raises(ValueError, match="stride must be 1 or 2"):
        BasicBlock(8, 8, stride=3)


@pytest.mark.parametrize(
    ("images", "error", "words"),
    [
        (torch.rand(2, 3, 28, 28), ValueError, "images has C=3 channels .* n_channels=1"),
        (torch.zeros(2, 1, 28, 28, dtype=torch.uint8), TypeError, "images must be a floating-point tensor"),
        (torch.rand(1, 28, 28), ValueError, r"images must have shape \(B, C, H, W\)"),
        (None, TypeError, "images must be a floating-point tensor .* got NoneType"),
    ],
)
def test_bad_images_are_named(images: object, error: type, words: str) -> None:
    with pytest.raises(error, match=words):
        ResNet(ResNetConfig.tiny(n_channels=1))(images)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        (dict(widths=(8, 16), depths=(1,)), "one entry per stage"),
        (dict(widths=(), depths=()), "non-empty tuple"),
        (dict(depths=(1, 0)), "integers >= 1"),
        (dict(n_classes=0), "n_classes must be an integer >= 1"),
        (dict(n_channels=2.0), "n_channels must be an integer >= 1"),
        (dict(zero_init_residual=1), "zero_init_residual must be a bool"),
    ],
)
def test_config_validation(overrides: dict, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        ResNetConfig.tiny(**overrides)


def test_config_from_json_lists_is_the_same_config() -> None:
    assert ResNetConfig(widths=[8, 16], depths=[1, 2]) == ResNetConfig(widths=(8, 16), depths=(1, 2))  # type: ignore[arg-type]


def test_save_and_load_round_trip_keeps_batch_norm_statistics(tmp_path: Path) -> None:
    config = ResNetConfig.tiny()
    model = ResNet(config)
    model(torch.rand(8, 3, 12, 12))  # a training-mode pass moves the running statistics
    model.eval()
    path = save_pretrained(tmp_path / "resnet", model, config)
    loaded, loaded_config, _ = load_pretrained(path)
    assert type(loaded) is ResNet and loaded_config == config
    images = torch.rand(2, 3, 12, 12)
    with torch.no_grad():
        assert torch.equal(loaded(images), model(images))
    assert torch.equal(loaded.stem[1].running_mean, model.stem[1].running_mean)
