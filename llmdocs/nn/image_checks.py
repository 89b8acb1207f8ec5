"""Input checks that every image model shares: a floating-point (B, C, H, W) batch with the right channels.

A convolution given the wrong input fails deep inside ``torch.nn.functional.conv2d`` ("expected input[1, 28, 28]
to have 1 channels"), and given uint8 pixels it fails with a dtype error; a patch size that does not divide the
image is worse: the strided convolution silently drops the last rows and columns. These checks fail first, in the
reader's terms (``images has C=3 channels but the model expects n_channels=1``).
"""

from __future__ import annotations

from torch import Tensor

__all__ = ["check_images"]


def check_images(
    images: Tensor,
    n_channels: int | None,
    name: str = "images",
    patch_size: int | None = None,
) -> None:
    """Raise a readable error unless ``images`` is a floating-point (B, C, H, W) batch with ``n_channels`` channels.

    Args:
        images: the batch to check, pixel values as floats (e.g. in [0, 1] or standardised).
        n_channels: C, the channels the model was built for (1 for grayscale, 3 for RGB); None accepts any.
        name: the argument's name in error messages.
        patch_size: if given, H and W must be multiples of it (a ViT cuts the image into patches of this side).

    Raises:
        TypeError: ``images`` is not a tensor, or not a floating-point one (uint8 pixels, integer labels).
        ValueError: ``images`` is not 4-D, is empty, has another number of channels, or H or W is not a multiple
            of ``patch_size``.

    Examples:
        >>> import torch
        >>> check_images(torch.rand(2, 1, 28, 28), n_channels=1)
        >>> check_images(torch.rand(2, 3, 28, 28), n_channels=1)
        Traceback (most recent call last):
        ...
        ValueError: images has C=3 channels (shape (2, 3, 28, 28)) but the model expects n_channels=1
        >>> check_images(torch.zeros(2, 1, 28, 28, dtype=torch.uint8), n_channels=1)
        Traceback (most recent call last):
        ...
        TypeError: images must be a floating-point tensor (B, C, H, W), got torch.uint8: convert pixels ...
    """
    if not isinstance(images, Tensor):
        raise TypeError(f"{name} must be a floating-point tensor (B, C, H, W), got {type(images).__name__}")
    if not images.is_floating_point():
        raise TypeError(
            f"{name} must be a floating-point tensor (B, C, H, W), got {images.dtype}: convert pixels with "
            f"{name}.float() / 255 (or the model's normalisation)"
        )
    if images.dim() != 4:
        hint = f" (one image? use {name}.unsqueeze(0))" if images.dim() == 3 else ""
        raise ValueError(f"{name} must have shape (B, C, H, W), got {tuple(images.shape)}{hint}")
    if images.numel() == 0:
        raise ValueError(f"{name} is empty: shape {tuple(images.shape)}")
    _, C, H, W = images.shape
    if n_channels is not None and n_channels != C:
        raise ValueError(
            f"{name} has C={C} channels (shape {tuple(images.shape)}) but the model expects n_channels={n_channels}"
        )
    if patch_size is not None and (H % patch_size or W % patch_size):
        raise ValueError(
            f"{name} is {H}x{W} pixels, not a multiple of patch_size={patch_size}: the strided convolution would "
            f"silently drop the last {H % patch_size} rows and {W % patch_size} columns"
        )
