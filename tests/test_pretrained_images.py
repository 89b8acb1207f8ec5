"""The shipped image classifiers: `load_image_classifier`, `image_inputs` and `classify_images` (the Vision Transformer
chapter), checked against `examples/train_vit.py`'s own `predict`."""

from __future__ import annotations

import pytest
import torch

from llmdocs.data.image_dataset import normalize_images
from llmdocs.data.images import FASHION_MNIST_CLASSES, FASHION_MNIST_DIR, IMAGE_STATS, load_fashion_mnist
from llmdocs.models.resnet import ResNet, ResNetConfig
from llmdocs.models.vit import ViT, ViTConfig
from llmdocs.pretrained import available, classify_images, image_inputs, load_image_classifier
from scripts import load_script

CLASSIFIERS = {"vit-fashion-mnist": (ViT, ViTConfig.fashion_mnist()), "resnet-fashion-mnist": (ResNet, None)}
HAS_FASHION = (FASHION_MNIST_DIR / "t10k-images-idx3-ubyte.gz").is_file()
needs_fashion = pytest.mark.skipif(
    not HAS_FASHION, reason="Fashion-MNIST is not installed: sudo apt-get install dataset-fashion-mnist (make system)"
)


@pytest.fixture(scope="module")
def loaded() -> dict[str, tuple[torch.nn.Module, dict]]:
    return {name: load_image_classifier(name) for name in CLASSIFIERS}


@pytest.mark.parametrize("name", list(CLASSIFIERS))
def test_both_classifiers_load_in_eval_mode_with_fashion_mnists_classes_and_pixel_statistics(name, loaded) -> None:
    model, meta = loaded[name]
    model_class, config = CLASSIFIERS[name]
    assert name in available() and type(model) is model_class and not model.training
    assert next(model.parameters()).device.type == "cpu"
    assert meta["class_names"] == list(FASHION_MNIST_CLASSES)
    assert tuple(meta["pixel_stats"]) == IMAGE_STATS["fashion-mnist"]
    assert 0.0 < meta["results"]["test_accuracy"] <= 1.0
    assert model.config == (config or ResNetConfig.fashion_mnist())  # the chapter's presets: patch 4, D 64, 4 layers
    assert model.config.n_classes == len(meta["class_names"])


def test_the_default_is_the_vision_transformer() -> None:
    model, meta = load_image_classifier()
    assert isinstance(model, ViT) and model.config.pool == "cls" and meta["class_names"][9] == "Ankle boot"


@pytest.mark.parametrize(
    ("name", "error", "message"),
    [
        ("bert-wikitext2", ValueError, "bert-wikitext2 is a BertForPreTraining, not an image classifier .* load_bert"),
        ("gpt-tang-char", ValueError, "gpt-tang-char is a GPT, not an image classifier .* use load_gpt"),
        ("minilm-sms-spam", ValueError, "a fine-tuned delta on all-MiniLM-L6-v2, not an image classifier"),
        ("vit-imagenet", ValueError, "unknown pretrained model 'vit-imagenet'; available: .*vit-fashion-mnist"),
        ("../pretrained/vit-fashion-mnist", ValueError, "unknown pretrained model"),
        (None, TypeError, "name must be the name of a shipped model"),
    ],
)
def test_names_that_are_not_image_classifiers_are_refused(name: object, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        load_image_classifier(name)  # type: ignore[arg-type]


def test_image_inputs_are_the_training_standardisation() -> None:
    pixels = torch.randint(0, 256, (3, 1, 28, 28), dtype=torch.uint8)
    _, meta = load_image_classifier("resnet-fashion-mnist")
    expected = normalize_images(pixels, *IMAGE_STATS["fashion-mnist"])
    assert torch.equal(image_inputs(pixels, meta), expected)
    with pytest.raises(ValueError, match="meta must be the meta of load_image_classifier"):
        image_inputs(pixels, {"class_names": []})
    with pytest.raises(TypeError, match="images must be uint8 pixels"):
        image_inputs(pixels.float(), meta)


@pytest.mark.parametrize("name", list(CLASSIFIERS))
def test_classify_gives_distributions_whose_argmax_is_the_class_and_batches_do_not_matter(name, loaded) -> None:
    model, meta = loaded[name]
    pixels = torch.randint(0, 256, (7, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    ids, probs = classify_images(model, pixels, meta)
    assert ids.shape == (7,) and ids.dtype == torch.int64 and probs.shape == (7, 10)
    torch.testing.assert_close(probs.sum(dim=-1), torch.ones(7))
    assert torch.equal(ids, probs.argmax(dim=-1))
    small_ids, small_probs = classify_images(model, pixels, meta, batch_size=3)
    assert torch.equal(small_ids, ids)
    torch.testing.assert_close(small_probs, probs)
    with torch.no_grad():
        logits = model(image_inputs(pixels, meta))
    torch.testing.assert_close(probs, logits.softmax(dim=-1))


def test_classify_restores_the_mode_and_refuses_bad_input(loaded) -> None:
    model, meta = loaded["vit-fashion-mnist"]
    pixels = torch.zeros(2, 1, 28, 28, dtype=torch.uint8)
    model.train()
    try:
        classify_images(model, pixels, meta)
        assert model.training
    finally:
        model.eval()
    with pytest.raises(TypeError, match=r"images must be uint8 pixels in 0\.\.255, got torch\.float32"):
        classify_images(model, pixels.float(), meta)
    with pytest.raises(ValueError, match=r"images must have shape \(N, C, H, W\).*use images.unsqueeze\(0\)"):
        classify_images(model, pixels[0], meta)
    with pytest.raises(ValueError, match="batch_size must be an int >= 1, got 0"):
        classify_images(model, pixels, meta, batch_size=0)
    with pytest.raises(ValueError, match="images has C=3 channels"):
        classify_images(model, torch.zeros(2, 3, 28, 28, dtype=torch.uint8), meta)


@needs_fashion
@pytest.mark.parametrize("name", list(CLASSIFIERS))
def test_classify_agrees_with_the_training_scripts_predict_on_test_images(name, loaded) -> None:
    model, meta = loaded[name]
    test = load_fashion_mnist("test").subset(torch.arange(40))
    predictions, _, _ = load_script("train_vit.py").predict(model, test, batch_size=16)
    ids, _ = classify_images(model, test.images, meta)
    assert torch.equal(ids, predictions)
