"""Image batches for training: normalised, cheaply augmented, and a pure function of the batch index.

**Augmentation** makes new training images from old ones with changes that keep the label, so a model that has
few images (a ViT has no built-in notion of locality, and needs more data than a CNN) sees more variety:

- `random_crop`: pad the image with `padding` black pixels on every side, then cut a window of the original size
  at a random offset: the object moves by up to `padding` pixels in each direction (pad 2, crop 28 on
  Fashion-MNIST; Krizhevsky et al., 2012, and He et al., 2016, section 4.2, with pad 4 on CIFAR-10).
- `random_horizontal_flip`: mirror left-right with probability 1/2. Right for Fashion-MNIST (a mirrored sneaker
  is a sneaker), wrong for digits: a mirrored 2, 3, 7 or 9 is no digit at all.

Both run on uint8 pixels, before the normalisation, so the padding is the black background (pixel 0) and becomes
the same value as the background after `(x / 255 - mean) / std`. Both are plain torch on the whole batch at once
(advanced indexing, no per-image loop).

**Resume.** [`ImageBatches`][llmdocs.data.image_batches.ImageBatches] computes batch `i` from `i` alone: the rows
come from [`IndexedBatches`][llmdocs.data.batches.IndexedBatches] (a permutation per epoch) and the augmentation
from a generator seeded by `(seed, i)`. A resumed run reads exactly the batches of the unbroken one, and under
`torchrun` the shards of batch `i` together are the single-process batch `i`, augmentation included.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from llmdocs.data.batches import IndexedBatches
from llmdocs.data.image_dataset import ImageDataset, normalize_images
from llmdocs.data.images import IMAGE_STATS

__all__ = ["ImageBatches", "image_eval_batches", "random_crop", "random_horizontal_flip"]


def random_crop(images: Tensor, padding: int, generator: torch.Generator | None = None) -> Tensor:
    """Shift each image by up to `padding` pixels: zero-pad every side, then cut a window of the original size.

    Args:
        images: (B, C, H, W), any dtype (uint8 pixels in the pipeline).
        padding: Pixels added on each side; the window's offset is uniform in `0..2 * padding` on each axis, so an
            offset of `padding` returns the image unchanged. 0 returns the images as they are.
        generator: Source of the offsets (seed it for a reproducible batch).

    Returns:
        (B, C, H, W), same dtype.

    Raises:
        TypeError: If `images` is not a tensor or `padding` not an int.
        ValueError: If `images` is not 4-D or `padding` is negative.

    Examples:
        >>> image = torch.arange(1, 10, dtype=torch.uint8).view(1, 1, 3, 3)
        >>> shifted = random_crop(image.expand(50, 1, 3, 3), padding=1, generator=torch.Generator().manual_seed(0))
        >>> shifted.shape, bool((shifted == image).all(dim=(1, 2, 3)).any())  # some windows sit at the centre
        (torch.Size([50, 1, 3, 3]), True)
        >>> shifted[shifted.sum(dim=(1, 2, 3)).argmin()].squeeze(0)  # a corner window: 5 of 9 pixels are padding
        tensor([[0, 0, 0],
                [0, 1, 2],
                [0, 4, 5]], dtype=torch.uint8)
    """
    _check_batch(images)
    if isinstance(padding, bool) or not isinstance(padding, int):
        raise TypeError(f"padding must be an int (pixels per side), got {padding!r}")
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    if padding == 0:
        return images
    B, _, H, W = images.shape
    padded = F.pad(images, (padding, padding, padding, padding))  # (B, C, H + 2p, W + 2p), zeros around
    offsets = torch.randint(0, 2 * padding + 1, (B, 2), generator=generator)  # (B, 2): top, left of each window
    rows = (offsets[:, 0:1] + torch.arange(H)).to(images.device)  # (B, H)
    cols = (offsets[:, 1:2] + torch.arange(W)).to(images.device)  # (B, W)
    batch = torch.arange(B, device=images.device)
    # advanced indices on dims 0, 2, 3 around the ":" of dim 1: the indexed dims come first, C last
    windows = padded[batch[:, None, None], :, rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)
    return windows.permute(0, 3, 1, 2).contiguous()  # (B, C, H, W)


def random_horizontal_flip(images: Tensor, generator: torch.Generator | None = None, p: float = 0.5) -> Tensor:
    """Mirror each image left-right with probability `p` (for clothes, not for digits: see the module docstring).

    Args:
        images: (B, C, H, W).
        generator: Source of the coin flips.
        p: Probability of mirroring an image.

    Returns:
        (B, C, H, W), same dtype.

    Raises:
        TypeError: If `images` is not a tensor.
        ValueError: If `images` is not 4-D or `p` is outside [0, 1].

    Examples:
        >>> image = torch.tensor([[[[1, 2, 3]]]])
        >>> random_horizontal_flip(image, p=1.0).flatten().tolist()
        [3, 2, 1]
    """
    _check_batch(images)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be a probability in [0, 1], got {p}")
    flip = torch.rand(images.shape[0], generator=generator) < p  # (B,)
    return torch.where(flip.to(images.device)[:, None, None, None], images.flip(-1), images)  # (B, C, H, W)


class ImageBatches:
    """Callable `index -> (x, y)`: normalised, augmented training batch `index`, a pure function of the index.

    Epoch `e = index // len(self)` reads the examples in the order of a permutation seeded with `seed + e`; the
    last incomplete batch of an epoch is dropped. The augmentation of batch `index` is drawn from a generator
    seeded by `(seed, index)`, so every epoch sees new crops and flips, and the same index always gives the same
    batch. With `world_size > 1`, the global batch of `batch_size * world_size` rows is built (and augmented) as a
    single process would, and rank `r` keeps its slice `r`.

    Args:
        data: The training images.
        batch_size: Images per batch and per rank, B.
        seed: Seed of the epoch orders and of the augmentation.
        stats: `(mean, std)` of the training pixels on the 0..1 scale; default `IMAGE_STATS[data.name]`.
        crop_padding: Pixels of `random_crop` (0 = no crop).
        flip: Apply `random_horizontal_flip`.
        rank: This process's rank.
        world_size: Number of data-parallel processes.

    Shape:
        `x` (B, C, H, W) float32, `y` (B,) int64.

    Raises:
        TypeError: If `data` is not an `ImageDataset` or a size is not an int.
        ValueError: If `seed` or `crop_padding` is negative, `std <= 0`, `stats` is missing for an unnamed data
            set, or there are fewer than `batch_size * world_size` images.

    Examples:
        >>> from llmdocs.data.images import load_digits_8x8
        >>> digits = load_digits_8x8()
        >>> batches = ImageBatches(digits, batch_size=32, crop_padding=1, flip=False)
        >>> x, y = batches(3)
        >>> x.shape, x.dtype, y.shape, len(batches)
        (torch.Size([32, 1, 8, 8]), torch.float32, torch.Size([32]), 56)
        >>> torch.equal(batches(3)[0], x)  # a pure function of the index: resume reads the same batch
        True
        >>> shards = [ImageBatches(digits, 16, crop_padding=1, rank=r, world_size=2)(3)[0] for r in (0, 1)]
        >>> torch.equal(torch.cat(shards), x)  # two ranks' shards make the single-process batch
        True
    """

    def __init__(
        self,
        data: ImageDataset,
        batch_size: int,
        *,
        seed: int = 0,
        stats: tuple[float, float] | None = None,
        crop_padding: int = 0,
        flip: bool = False,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if not isinstance(data, ImageDataset):
            raise TypeError(f"data must be an ImageDataset, got {type(data).__name__}")
        for name, value in (("batch_size", batch_size), ("rank", rank), ("world_size", world_size)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int, got {value!r}")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {seed!r}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size) with world_size >= 1, got rank={rank} of {world_size}")
        if isinstance(crop_padding, bool) or not isinstance(crop_padding, int) or crop_padding < 0:
            raise ValueError(f"crop_padding must be an int >= 0 (pixels per side), got {crop_padding!r}")
        self.mean, self.std = _stats(data, stats)
        # the global batch: every rank builds the rows of all ranks, then keeps its own (IndexedBatches checks sizes)
        self.rows = IndexedBatches(data.images, data.labels, batch_size=batch_size * world_size, seed=seed)
        self.data, self.batch_size, self.seed = data, batch_size, seed
        self.crop_padding, self.flip, self.rank, self.world_size = crop_padding, bool(flip), rank, world_size

    def __len__(self) -> int:
        """Batches per epoch."""
        return len(self.rows)

    def __call__(self, index: int) -> tuple[Tensor, Tensor]:
        """Batch `index`: normalised images (B, C, H, W) and their labels (B,)."""
        images, labels = self.rows(index)  # (world * B, C, H, W) uint8, (world * B,)
        if self.crop_padding or self.flip:
            generator = torch.Generator().manual_seed(_mix_seed(self.seed, index))
            images = random_crop(images, self.crop_padding, generator)  # draws first, then the flips
            if self.flip:
                images = random_horizontal_flip(images, generator)
        mine = slice(self.rank * self.batch_size, (self.rank + 1) * self.batch_size)
        return normalize_images(images[mine], self.mean, self.std), labels[mine]  # (B, C, H, W), (B,)


def image_eval_batches(
    data: ImageDataset, batch_size: int = 256, stats: tuple[float, float] | None = None
) -> Iterator[tuple[Tensor, Tensor]]:
    """Every example once, in order and without augmentation, as normalised `(x, y)` batches (the last may be
    smaller): for evaluation and prediction.

    Raises:
        TypeError: If `data` is not an `ImageDataset`.
        ValueError: If `batch_size < 1`, or `stats` is missing for an unnamed data set.

    Examples:
        >>> from llmdocs.data.images import load_digits_8x8
        >>> [len(y) for _, y in image_eval_batches(load_digits_8x8(), batch_size=700)]
        [700, 700, 397]
    """
    if not isinstance(data, ImageDataset):
        raise TypeError(f"data must be an ImageDataset, got {type(data).__name__}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    mean, std = _stats(data, stats)
    for start in range(0, len(data), batch_size):
        stop = start + batch_size
        yield normalize_images(data.images[start:stop], mean, std), data.labels[start:stop]  # (B, C, H, W), (B,)


def _stats(data: ImageDataset, stats: tuple[float, float] | None) -> tuple[float, float]:
    """`stats`, or the training statistics of the named data set, checked."""
    if stats is None:
        if data.name not in IMAGE_STATS:
            raise ValueError(f"no pixel statistics for data set {data.name!r}: pass stats=(mean, std)")
        stats = IMAGE_STATS[data.name]
    mean, std = (float(v) for v in stats)
    if not (np.isfinite(mean) and np.isfinite(std) and std > 0):
        raise ValueError(f"stats must be a finite (mean, std) with std > 0, got {tuple(stats)}")
    return mean, std


def _mix_seed(seed: int, index: int) -> int:
    """One 64-bit seed from `(seed, index)`, well mixed: `(0, 1)` and `(1, 0)` give unrelated streams."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1, dtype=np.uint64)[0])


def _check_batch(images: Tensor) -> None:
    """A readable error for anything but a (B, C, H, W) tensor."""
    if not isinstance(images, Tensor):
        raise TypeError(f"images must be a tensor (B, C, H, W), got {type(images).__name__}")
    if images.dim() != 4:
        hint = " (one image? use images.unsqueeze(0))" if images.dim() == 3 else ""
        raise ValueError(f"images must have shape (B, C, H, W), got {tuple(images.shape)}{hint}")
