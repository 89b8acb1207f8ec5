"""`llmdocs tour --chapter vit`: the shipped ViT and ResNet classify Fashion-MNIST test images, and the ViT's
attention rollout is drawn over them; without Fashion-MNIST the demo says how to install it and still draws a figure."""

from __future__ import annotations

from pathlib import Path

import pytest

import llmdocs.data.images as images_module
from llmdocs.cli import main
from llmdocs.cli.demos import DEMO_MODULES
from llmdocs.cli.registry import get_demo
from llmdocs.data.images import FASHION_MNIST_DIR

HAS_FASHION = (FASHION_MNIST_DIR / "t10k-images-idx3-ubyte.gz").is_file()


def test_the_demo_is_registered_after_bert() -> None:
    assert DEMO_MODULES.index("vit") == DEMO_MODULES.index("bert") + 1
    demo = get_demo("vit")
    assert demo.page == "chapters/vit.md" and demo.title.startswith("Vision Transformer")


@pytest.mark.skipif(
    not HAS_FASHION, reason="Fashion-MNIST is not installed: sudo apt-get install dataset-fashion-mnist (make system)"
)
def test_both_models_classify_the_first_test_images_and_the_rollout_figure_is_reproducible(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for run in ("a", "b"):
        assert main(["tour", "--chapter", "vit", "--fast", "--out-dir", str(tmp_path / run)]) == 0
    out = capsys.readouterr().out
    assert "model: vit-fashion-mnist, a ViT of 139,018 parameters" in out
    assert "model: resnet-fashion-mnist, a ResNet of 174,970 parameters" in out
    assert "the first 6 Fashion-MNIST test images" in out
    table = out.split("the first 6 Fashion-MNIST test images")[1]
    assert table.splitlines()[2].split()[:2] == ["0", "Ankle"]  # row 0: the true class of test image 0
    assert "vit-fashion-mnist: " in out and " of 6 right" in out
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert files == ["vit-rollout.svg"]
    first, second = ((tmp_path / run / "vit-rollout.svg").read_bytes() for run in ("a", "b"))
    assert len(first) > 10_000 and first == second


def test_without_fashion_mnist_the_demo_names_the_install_commands_and_draws_the_positions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(images_module, "FASHION_MNIST_DIR", tmp_path / "nowhere")
    assert main(["tour", "--chapter", "vit", "--fast", "--out-dir", str(tmp_path / "out")]) == 0  # not a skip
    out = capsys.readouterr().out
    assert "sudo apt-get install dataset-fashion-mnist" in out and "make system" in out
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["vit-positions.svg"]
    assert (tmp_path / "out" / "vit-positions.svg").stat().st_size > 10_000
