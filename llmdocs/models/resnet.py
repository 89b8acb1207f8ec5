"""A small residual network: the convolutional baseline a Vision Transformer is measured against.

    stem:   h = ReLU(BN(Conv3x3(x)))
    block:  y = ReLU(BN(Conv3x3(ReLU(BN(Conv3x3(h))))) + shortcut(h))                     (He et al., 2016, eq. 1)
    head:   logits = W mean_{H,W}(h_last) + b                                                 (global average pool)

A convolution builds in what a ViT must learn from data: locality (a 3 x 3 kernel sees its neighbours only) and
translation equivariance (one kernel slides over the whole image). Each stage after the first halves H and W with a
stride-2 convolution and widens the channels; where the shape changes, the shortcut is a 1 x 1 convolution with
batch norm (He et al.'s "option B"), elsewhere the identity. Without max-pooling in the stem (as the CIFAR networks
of the paper's section 4.2), a 28 x 28 image keeps 28 x 28, 14 x 14 and 7 x 7 feature maps.

References:
    He, Zhang, Ren and Sun, "Deep Residual Learning for Image Recognition", CVPR 2016, sections 3.2-3.4 and 4.2.
    Ioffe and Szegedy, "Batch Normalization", ICML 2015.
    Goyal et al., "Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour", 2017 (a zero gamma in each block's
    last batch norm).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from llmdocs.nn.image_checks import check_images

__all__ = ["BasicBlock", "ResNet", "ResNetConfig"]


@dataclass(frozen=True)
class ResNetConfig:
    """Hyper-parameters of a [ResNet][llmdocs.models.resnet.ResNet].

    Examples:
        >>> ResNetConfig.fashion_mnist().widths
        (16, 32, 64)
        >>> ResNetConfig(widths=(16, 32), depths=(2, 2, 2))
        Traceback (most recent call last):
        ...
        ValueError: widths=(16, 32) and depths=(2, 2, 2) must have one entry per stage
    """

    n_channels: int = 3  # C of the input images: 3 for RGB, 1 for grayscale
    n_classes: int = 10  # logits of the head
    widths: tuple[int, ...] = (64, 128, 256)  # channels of each stage; the stem has widths[0]
    depths: tuple[int, ...] = (2, 2, 2)  # basic blocks per stage; every stage after the first halves H and W
    zero_init_residual: bool = False  # start each block's last BN at gamma = 0: every block begins as ReLU(x)

    def __post_init__(self) -> None:
        for name in ("widths", "depths"):
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))  # JSON gives lists back: keep the config hashable
        for name in ("n_channels", "n_classes"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        for name in ("widths", "depths"):
            value = getattr(self, name)
            if not isinstance(value, tuple) or not value:
                raise ValueError(f"{name} must be a non-empty tuple of integers >= 1, got {value!r}")
            if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in value):
                raise ValueError(f"{name} must hold integers >= 1, got {value!r}")
        if len(self.widths) != len(self.depths):
            raise ValueError(f"widths={self.widths} and depths={self.depths} must have one entry per stage")
        if not isinstance(self.zero_init_residual, bool):
            raise ValueError(f"zero_init_residual must be a bool, got {self.zero_init_residual!r}")

    @property
    def downsampling(self) -> int:
        """How many times smaller the last feature map is than the image, per side: 2^(stages - 1)."""
        return 2 ** (len(self.widths) - 1)

    @classmethod
    def tiny(cls, **overrides: Any) -> ResNetConfig:
        """A model small enough for tests and doctests: RGB, 3 classes, two stages of one block (8, 16 channels)."""
        fields: dict[str, Any] = dict(n_channels=3, n_classes=3, widths=(8, 16), depths=(1, 1))
        return cls(**{**fields, **overrides})

    @classmethod
    def fashion_mnist(cls, **overrides: Any) -> ResNetConfig:
        """Fashion-MNIST: grayscale, 10 classes, stages of 16, 32, 64 channels with 2 blocks each (175k parameters).

        The widths of He et al.'s CIFAR-10 networks (section 4.2), with 2 blocks per stage where they used 3 to 18.
        Twice the widths (32, 64, 128: 0.70M parameters) cost four times the multiply-adds per image (a 3 x 3
        convolution's grow with C_in x C_out): the chapter's budget of 10 CPU-minutes would give them about a
        quarter of the epochs.
        """
        fields: dict[str, Any] = dict(n_channels=1, n_classes=10, widths=(16, 32, 64), depths=(2, 2, 2))
        return cls(**{**fields, **overrides})


def _conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """A 3 x 3 convolution that keeps H and W at stride 1 (padding 1); no bias: the batch norm after it has one."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """Two 3 x 3 convolutions with batch norm, and a shortcut around them: y = ReLU(F(x) + shortcut(x)).

        F(x) = BN_2(Conv_2(ReLU(BN_1(Conv_1(x)))))

    The block only has to learn the residual F(x) = H(x) - x; with ``bn2``'s gamma (and beta) at zero, F = 0 and
    the block is ReLU(x) on its input (when the shortcut is the identity).

    Args:
        in_channels: channels of the input.
        out_channels: channels of the output.
        stride: 2 halves H and W (in the first convolution and the shortcut), 1 keeps them.

    Shape:
        x (B, C_in, H, W) -> (B, C_out, ceil(H / stride), ceil(W / stride)).

    References:
        He et al., "Deep Residual Learning for Image Recognition", CVPR 2016, section 3.2 (eq. 1) and figure 2;
        section 3.3 (projection shortcuts, option B).

    Examples:
        >>> import torch
        >>> block = BasicBlock(8, 16, stride=2)
        >>> block(torch.randn(2, 8, 14, 14)).shape
        torch.Size([2, 16, 7, 7])
        >>> type(BasicBlock(8, 8).shortcut).__name__  # same shape in and out: the identity
        'Identity'
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride!r}")
        self.conv1 = _conv3x3(in_channels, out_channels, stride)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = _conv3x3(out_channels, out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:  # the shapes differ: project x to F(x)'s shape
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block to x (B, C_in, H, W)."""
        residual = F.relu(self.bn1(self.conv1(x)))  # (B, C_out, H', W')
        residual = self.bn2(self.conv2(residual))  # (B, C_out, H', W')
        return F.relu(residual + self.shortcut(x))  # (B, C_out, H', W')


class ResNet(nn.Module):
    """A ResNet for small images: a 3 x 3 stem, stages of basic blocks, global average pooling, a linear head.

    Args:
        config: a [ResNetConfig][llmdocs.models.resnet.ResNetConfig].

    Shape:
        images (B, C, H, W) -> logits (B, n_classes); ``features``: (B, widths[-1]). Any H, W >= 1 work (the
        pooling averages whatever map is left).

    References:
        He et al., "Deep Residual Learning for Image Recognition", CVPR 2016, sections 3.4 and 4.2 (the CIFAR-10
        networks: a 3 x 3 stem, three stages, global average pooling).

    Examples:
        >>> import torch
        >>> model = ResNet(ResNetConfig.tiny()).eval()
        >>> model(torch.rand(2, 3, 28, 28)).shape
        torch.Size([2, 3])
        >>> from llmdocs.profiling import count_parameters
        >>> count_parameters(ResNet(ResNetConfig.fashion_mnist()))
        174970
    """

    def __init__(self, config: ResNetConfig) -> None:
        super().__init__()
        if not isinstance(config, ResNetConfig):
            raise TypeError(f"config must be a ResNetConfig, got {type(config).__name__}")
        self.config = config
        self.stem = nn.Sequential(
            _conv3x3(config.n_channels, config.widths[0]), nn.BatchNorm2d(config.widths[0]), nn.ReLU()
        )
        stages = []
        in_channels = config.widths[0]
        for s, (width, depth) in enumerate(zip(config.widths, config.depths, strict=True)):
            stride = 1 if s == 0 else 2  # every stage after the first halves H and W
            blocks = [BasicBlock(in_channels, width, stride)]
            blocks += [BasicBlock(width, width) for _ in range(depth - 1)]
            stages.append(nn.Sequential(*blocks))
            in_channels = width
        self.stages = nn.ModuleList(stages)
        self.head = nn.Linear(config.widths[-1], config.n_classes)
        _init_weights(self)

    def features(self, images: Tensor) -> Tensor:
        """The globally average-pooled features (B, widths[-1]) of ``images`` (B, C, H, W).

        Raises:
            TypeError: ``images`` is not a floating-point tensor.
            ValueError: ``images`` is not (B, C, H, W) with C = ``n_channels``.
        """
        check_images(images, self.config.n_channels)
        x = self.stem(images)  # (B, widths[0], H, W)
        for stage in self.stages:
            x = stage(x)  # (B, width, H / 2^s, W / 2^s)
        return x.mean(dim=(2, 3))  # (B, widths[-1]): global average pooling

    def forward(self, images: Tensor) -> Tensor:
        """Class logits (B, n_classes) of ``images`` (B, C, H, W)."""
        return self.head(self.features(images))  # (B, n_classes)


def _init_weights(model: ResNet) -> None:
    """He (Kaiming) normal initialisation of the convolutions (fan-out, for ReLU), BN at (1, 0), and a zero gamma in
    each block's last BN when ``zero_init_residual`` is set (torchvision's ResNet does the same)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    if model.config.zero_init_residual:
        for m in model.modules():
            if isinstance(m, BasicBlock):
                with torch.no_grad():
                    m.bn2.weight.zero_()
