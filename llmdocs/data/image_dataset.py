"""Labelled images in memory: the container every image loader returns, stratified splits and normalisation.

An [`ImageDataset`][llmdocs.data.image_dataset.ImageDataset] holds uint8 pixels (N, C, H, W) in 0..255 (0 = black)
and int64 labels (N,), as the loaders of [images][llmdocs.data.images] return them. Pixels stay uint8 until a batch
is made: 60,000 Fashion-MNIST images take 47 MB so, four times that as float32.

**Stratified splits.** A random 1,000 of Fashion-MNIST's 60,000 training images typically hold 85 of its rarest
class and 115 of its most common one (the median of 2,000 draws); a *stratified* sample holds 100 of each, as the
full set does, so a small-data experiment measures the number of examples and not an unlucky class balance.
[`stratified_order`][llmdocs.data.image_dataset.stratified_order] gives one seeded order whose every prefix is
stratified: validation sets, subsamples and test hold-outs are its prefixes, and subsamples of one seed are nested.

**Normalisation.** Models get `x = (pixels / 255 - mean) / std`, with the mean and standard deviation of the
training pixels: inputs centred on 0 with unit variance, the scale that the initialisations of the layers assume.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["ImageDataset", "normalize_images", "stratified_order", "stratified_subset", "train_validation_split"]


@dataclass(frozen=True)
class ImageDataset:
    """Labelled grayscale images: uint8 pixels (N, C, H, W) in 0..255 and int64 labels (N,).

    Raises:
        TypeError: If `images` is not a uint8 tensor or `labels` not an int64 tensor.
        ValueError: If the shapes are not (N, C, H, W) and (N,), or a label is outside `0..len(class_names) - 1`.

    Examples:
        >>> data = ImageDataset(torch.zeros(4, 1, 8, 8, dtype=torch.uint8), torch.tensor([0, 1, 1, 0]), ("a", "b"))
        >>> len(data), data.image_shape, data.subset(torch.tensor([1, 2])).labels.tolist()
        (4, (1, 8, 8), [1, 1])
        >>> data.class_counts().tolist()
        [2, 2]
    """

    images: Tensor  # (N, C, H, W) uint8, 0 = black
    labels: Tensor  # (N,) int64 class ids
    class_names: tuple[str, ...]  # name of each class id
    name: str = ""  # the data set's name, e.g. "fashion-mnist" (a key of IMAGE_STATS)

    def __post_init__(self) -> None:
        if not isinstance(self.images, Tensor) or self.images.dtype != torch.uint8:
            got = self.images.dtype if isinstance(self.images, Tensor) else type(self.images).__name__
            raise TypeError(f"images must be a uint8 tensor (N, C, H, W) of pixels 0..255, got {got}")
        if not isinstance(self.labels, Tensor) or self.labels.dtype != torch.int64:
            got = self.labels.dtype if isinstance(self.labels, Tensor) else type(self.labels).__name__
            raise TypeError(f"labels must be an int64 tensor (N,), got {got}")
        if self.images.dim() != 4 or self.labels.dim() != 1 or len(self.images) != len(self.labels):
            shapes = f"{tuple(self.images.shape)} and {tuple(self.labels.shape)}"
            raise ValueError(f"images and labels must have shapes (N, C, H, W) and (N,), got {shapes}")
        object.__setattr__(self, "class_names", tuple(self.class_names))
        n_classes = len(self.class_names)
        if len(self.labels) and not (int(self.labels.min()) >= 0 and int(self.labels.max()) < n_classes):
            span = f"{int(self.labels.min())}..{int(self.labels.max())}"
            raise ValueError(f"labels span {span} but there are {n_classes} class names")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        _, C, H, W = self.images.shape
        return C, H, W

    def class_counts(self) -> Tensor:
        """Examples per class (n_classes,)."""
        return torch.bincount(self.labels, minlength=len(self.class_names))

    def subset(self, rows: Tensor) -> ImageDataset:
        """The examples at `rows` (a 1-D tensor of indices), in that order."""
        return ImageDataset(self.images[rows], self.labels[rows], self.class_names, self.name)


def stratified_order(labels: Tensor, seed: int = 0) -> Tensor:
    """A seeded permutation of the examples whose every prefix keeps the class proportions (to within one example).

    Each class is shuffled; example `i`, the `r`-th of its class of `n_c` examples, gets the key `(r + 0.5) / n_c`,
    and the examples are sorted by key (ties in a random order). The first `k` rows then hold about
    `k * n_c / N` examples of class `c`, and the prefixes are *nested*: the 1,000 examples of a subsample all lie
    in the 5,000 of a larger one with the same seed (the data-hunger experiment compares like with like).

    Args:
        labels: Class ids (N,), int64.
        seed: Seed of the shuffles.

    Returns:
        Row indices (N,), int64, a permutation of `0..N-1`.

    Raises:
        TypeError: If `labels` is not an integer tensor.
        ValueError: If `labels` is not 1-D or holds a negative id.

    Examples:
        >>> labels = torch.tensor([0, 0, 0, 0, 0, 0, 1, 1, 1, 2, 2, 2])
        >>> order = stratified_order(labels, seed=0)
        >>> sorted(order.tolist()) == list(range(12)), torch.bincount(labels[order[:4]]).tolist()
        (True, [2, 1, 1])
    """
    if not isinstance(labels, Tensor) or labels.is_floating_point() or labels.dtype == torch.bool:
        raise TypeError(f"labels must be an integer tensor (N,), got {getattr(labels, 'dtype', type(labels).__name__)}")
    if labels.dim() != 1:
        raise ValueError(f"labels must be 1-D (N,), got shape {tuple(labels.shape)}")
    if len(labels) and int(labels.min()) < 0:
        raise ValueError(f"labels must be class ids >= 0, got {int(labels.min())}")
    N = len(labels)
    generator = torch.Generator().manual_seed(seed)
    shuffled = torch.randperm(N, generator=generator)  # (N,): random order, which also breaks ties
    y = labels[shuffled].long()  # (N,)
    counts = torch.bincount(y)  # (n_classes,)
    rank = torch.empty(N, dtype=torch.float64)  # position of each shuffled example within its class
    for c in torch.nonzero(counts).squeeze(1).tolist():
        members = torch.nonzero(y == c).squeeze(1)  # (n_c,)
        rank[members] = torch.arange(len(members), dtype=torch.float64)
    key = (rank + 0.5) / counts[y].double()  # (N,) in (0, 1): the class quantile of each example
    return shuffled[torch.sort(key, stable=True).indices]


def stratified_subset(data: ImageDataset, n: int, seed: int = 0) -> ImageDataset:
    """`n` examples of `data` with its class proportions: the first `n` of `stratified_order`, in `data`'s order.

    Subsets of one seed are nested (the 1,000 lie in the 5,000), so a curve of accuracy against training-set size
    adds examples instead of drawing new ones.

    Raises:
        ValueError: If `n` is not in `1..len(data)`.

    Examples:
        >>> from llmdocs.data.images import load_digits_8x8
        >>> small = stratified_subset(load_digits_8x8(), 100, seed=0)
        >>> len(small), small.class_counts().tolist()
        (100, [10, 10, 10, 10, 10, 10, 10, 10, 10, 10])
    """
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= len(data):
        raise ValueError(f"n must be an int in 1..{len(data)} (the examples there are), got {n!r}")
    return data.subset(stratified_order(data.labels, seed)[:n].sort().values)


def train_validation_split(data: ImageDataset, n_validation: int, seed: int = 0) -> tuple[ImageDataset, ImageDataset]:
    """Hold out `n_validation` examples (stratified, seeded) from a training split: `(train, validation)`.

    The two parts are disjoint, cover `data`, keep the class proportions and keep `data`'s order.

    Raises:
        ValueError: If `n_validation` is not in `1..len(data) - 1`.

    Examples:
        >>> from llmdocs.data.images import load_image_dataset
        >>> train, validation = train_validation_split(load_image_dataset("digits"), 137, seed=0)
        >>> len(train), len(validation), validation.class_counts().tolist()
        (1300, 137, [13, 14, 13, 14, 14, 14, 14, 14, 13, 14])
    """
    if isinstance(n_validation, bool) or not isinstance(n_validation, int) or not 1 <= n_validation < len(data):
        raise ValueError(f"n_validation must be an int in 1..{len(data) - 1}, got {n_validation!r}")
    order = stratified_order(data.labels, seed)  # (N,)
    return data.subset(order[n_validation:].sort().values), data.subset(order[:n_validation].sort().values)


def normalize_images(images: Tensor, mean: float, std: float) -> Tensor:
    """Model inputs from pixels: `x = (pixels / 255 - mean) / std`, float32.

    Args:
        images: uint8 pixels (..., H, W) in 0..255.
        mean: Mean of the training pixels on the 0..1 scale (`IMAGE_STATS[name][0]`).
        std: Their standard deviation (`IMAGE_STATS[name][1]`), > 0.

    Raises:
        TypeError: If `images` is not a uint8 tensor (floats would be divided by 255 twice).
        ValueError: If `std` is not positive.

    Examples:
        >>> normalize_images(torch.tensor([0, 51, 255], dtype=torch.uint8), mean=0.2, std=0.4)
        tensor([-0.5000,  0.0000,  2.0000])
    """
    if not isinstance(images, Tensor) or images.dtype != torch.uint8:
        got = images.dtype if isinstance(images, Tensor) else type(images).__name__
        raise TypeError(f"images must be uint8 pixels in 0..255, got {got}")
    if not std > 0:
        raise ValueError(f"std must be positive, got {std}")
    return (images.float() / 255 - mean) / std
