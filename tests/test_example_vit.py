"""Smoke runs of `examples/train_vit.py`: the ViT and the ResNet on 8 x 8 digits (and Fashion-MNIST where it is
installed), exact resume after a `--minutes` stop, and flags that fail before any work."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch
from safetensors.torch import load_file

import llmdocs
from llmdocs.data.images import FASHION_MNIST_DIR
from llmdocs.models.resnet import ResNet
from llmdocs.models.vit import ViT
from llmdocs.serialization import load_pretrained
from llmdocs.testing import assert_close
from scripts import load_script


@pytest.fixture(scope="module")
def script() -> ModuleType:
    return load_script("train_vit.py")


def smoke(script: ModuleType, out: Path, *flags: str) -> dict:
    return script.main(["--smoke", "--no-progress", "--out-dir", str(out), *flags])


@pytest.fixture(scope="module")
def vit_run(script, tmp_path_factory) -> tuple[Path, dict]:
    """One augmented ViT smoke run on digits (with a record and an export), shared by the tests that read it."""
    root = tmp_path_factory.mktemp("vit")
    flags = ["--dataset", "digits", "--augment", "--record", str(root / "record.json"), "--export", str(root / "exp")]
    return root, smoke(script, root / "run", *flags)


def test_vit_smoke_run_reports_accuracy_speed_and_a_confusion_matrix(vit_run) -> None:
    root, results = vit_run
    out = root / "run"
    assert results["model"] == "vit" and results["dataset"] == "digits" and results["augment"]
    assert results["finished"] and results["steps_done"] == results["steps"] == 8  # 2 epochs of 128 / 32
    assert results["train_images"] == 128 and results["val_images"] == 64 and results["test_images"] == 100
    assert 0.0 <= results["test_accuracy"] <= 1.0 and 0.0 <= results["val_accuracy"] <= 1.0
    confusion = torch.tensor(results["confusion_matrix"])
    assert confusion.shape == (10, 10) and int(confusion.sum()) == 100
    assert confusion.diag().sum().item() / 100 == pytest.approx(results["test_accuracy"])
    assert results["params"] > 0 and results["train_seconds"] > 0 and results["cpu_seconds"] > 0
    assert results["inference_images_per_s"] > 0 and results["train_images_per_s"] > 0
    assert results["command"].startswith("python examples/train_vit.py --smoke")
    for name in ("curve.svg", "accuracy.svg", "metrics.jsonl", "metrics.csv", "run.json", "results.json"):
        assert (out / name).is_file(), name
    record = json.loads((root / "record.json").read_text(encoding="utf-8"))
    assert record["test_accuracy"] == results["test_accuracy"] and record["history"]

    model, config, meta = load_pretrained(out / "model")
    assert isinstance(model, ViT) and config.image_size == 8 and config.patch_size == 2  # 8 x 8: patches of 2
    assert meta["class_names"] == list("0123456789") and meta["results"]["params"] == results["params"]
    assert model(torch.zeros(3, 1, 8, 8)).shape == (3, 10)
    exported = load_file(root / "exp" / "model.safetensors")
    saved = load_file(out / "model" / "model.safetensors")
    assert all(torch.equal(exported[k], saved[k]) for k in saved)


def test_cnn_smoke_run(script, tmp_path) -> None:
    results = smoke(script, tmp_path / "cnn", "--dataset", "digits", "--model", "cnn")
    assert results["model"] == "cnn" and results["finished"] and 0.0 <= results["test_accuracy"] <= 1.0
    model, config, _ = load_pretrained(tmp_path / "cnn" / "model")
    assert isinstance(model, ResNet) and config.widths == (8, 16) and config.n_channels == 1


def test_cnn_in_bfloat16_autocast_and_channels_last(script, tmp_path) -> None:
    results = smoke(script, tmp_path / "cnn", "--dataset", "digits", "--model", "cnn", "--amp", "--channels-last")
    assert results["finished"] and results["args"]["amp"] and results["args"]["channels_last"]
    model, _, _ = load_pretrained(tmp_path / "cnn" / "model")  # saved in the usual layout, loads as usual
    images = torch.randn(4, 1, 8, 8)
    model.eval()
    plain = script.forward(model, images)
    assert_close(script.forward(model.to(memory_format=torch.channels_last), images, channels_last=True), plain)
    bf16 = script.forward(model, images, amp=True)  # convolutions and the head in bfloat16, logits in float32
    assert bf16.dtype == torch.float32 and not torch.equal(bf16, plain)
    assert_close(bf16.bfloat16(), plain.bfloat16(), depth=3)  # rounded to bfloat16 at the stem, 2 stages, head


@pytest.mark.skipif(
    not (FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").is_file(),
    reason="Fashion-MNIST is not installed: sudo apt-get install dataset-fashion-mnist (make system)",
)
def test_fashion_mnist_smoke_run_with_crops_and_flips(script, tmp_path) -> None:
    results = smoke(script, tmp_path / "fashion", "--augment", "--flip", "--val-size", "0")
    assert results["dataset"] == "fashion-mnist" and results["flip"] and results["val_accuracy"] is None
    assert results["class_names"][9] == "Ankle boot" and len(results["test_accuracy_per_class"]) == 10
    assert results["model_config"]["image_size"] == 28 and results["model_config"]["patch_size"] == 4


@pytest.mark.numerics
def test_budget_stop_then_resume_equals_an_unbroken_run(script, vit_run, tmp_path) -> None:
    unbroken = vit_run[0] / "run"  # the same flags but --record and --export, which change nothing in training
    broken = tmp_path / "broken"
    stopped = smoke(script, broken, "--dataset", "digits", "--augment", "--minutes", "1e-6")
    assert stopped["steps_done"] == 1 and not stopped["finished"]  # stopped after the first step, checkpointed
    resumed = smoke(script, broken, "--dataset", "digits", "--augment", "--resume")
    assert resumed["finished"] and resumed["steps_done"] == 8
    a = load_file(unbroken / "model" / "model.safetensors")
    b = load_file(broken / "model" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # bit-identical
    assert resumed["test_accuracy"] == vit_run[1]["test_accuracy"]


def test_resume_refuses_other_training_flags_and_a_fresh_run_refuses_old_checkpoints(script, vit_run) -> None:
    out = vit_run[0] / "run"
    with pytest.raises(SystemExit, match=r"--lr 0\.003 -> 0\.01"):
        smoke(script, out, "--dataset", "digits", "--augment", "--resume", "--lr", "0.01")
    with pytest.raises(SystemExit, match="already holds checkpoints"):
        smoke(script, out, "--dataset", "digits", "--augment")


@pytest.mark.slow  # three Python processes import torch
def test_torchrun_two_processes_train_like_one(vit_run, tmp_path) -> None:
    """Two processes, each on half of every batch (augmented as one process would), end near the single-process
    weights: DDP averages the two halves' gradients, which equals the whole batch's gradient up to rounding."""
    repo_root = Path(llmdocs.__file__).resolve().parent.parent
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(repo_root), os.environ.get("PYTHONPATH")])),
        "OMP_NUM_THREADS": "1",
    }
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    command += [str(repo_root / "examples" / "train_vit.py"), "--smoke", "--no-progress", "--dataset", "digits"]
    command += ["--augment", "--out-dir", str(tmp_path / "run")]
    with subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    ) as proc:
        try:
            output, _ = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the launcher and both workers
            output, _ = proc.communicate()
            pytest.fail(f"torchrun timed out:\n{output[-3000:]}")
    assert proc.returncode == 0, output[-6000:]
    results = json.loads((tmp_path / "run" / "results.json").read_text(encoding="utf-8"))
    assert results["world_size"] == 2 and results["finished"]
    assert results["command"].startswith("torchrun --nproc_per_node 2 examples/train_vit.py")
    single = load_file(vit_run[0] / "run" / "model" / "model.safetensors")
    double = load_file(tmp_path / "run" / "model" / "model.safetensors")
    assert single.keys() == double.keys()
    # Rounding differs (two half-batch sums, then an all-reduce), and AdamW can turn a tiny gradient's rounding into
    # a step of up to lr on a single weight, so compare the mean distance: 2e-8 measured, 3e-3 for other crops.
    distance = torch.cat([(double[k] - single[k]).abs().flatten() for k in single]).mean().item()
    assert distance < 1e-5


def test_bad_flags_fail_before_any_work(script, tmp_path) -> None:
    for flags in (
        ["--epochs", "0"],
        ["--batch-size", "0"],
        ["--lr", "-1"],
        ["--lr", "nan"],
        ["--warmup", "1.0"],
        ["--minutes", "0"],
        ["--minutes", "nan"],
        ["--patch-size", "3"],  # does not divide 28
        ["--n-heads", "3"],  # does not divide d_model=32
        ["--dropout", "1.5"],
        ["--model", "cnn", "--depths", "1", "1", "1"],  # three depths, two widths (--smoke's)
        ["--dataset", "digits", "--train-size", "5000"],
        ["--dataset", "digits", "--val-size", "1437"],
        ["--dataset", "digits", "--test-size", "361"],
        ["--dataset", "digits", "--data-dir", str(tmp_path)],
        ["--train-size", "16"],  # fewer than one batch of 32
        ["--crop-padding", "-1"],
        ["--device", "tpu"],
        ["--model", "mlp"],
    ):
        with pytest.raises(SystemExit):
            script.parse_args(["--smoke", *flags])
    with pytest.raises(SystemExit):
        script.main(["--smoke", "--out-dir", str(tmp_path / "never"), "--epochs", "0"])
    assert not (tmp_path / "never").exists()  # nothing was written


def test_smoke_defaults_yield_to_explicit_flags(script) -> None:
    args = script.parse_args(["--smoke", "--batch-size", "16", "--dataset", "digits"])
    assert args.batch_size == 16 and args.epochs == 2 and args.patch_size == 2 and args.crop_padding == 1
    args = script.parse_args([])
    assert (args.batch_size, args.lr, args.epochs, args.model, args.dataset) == (128, 3e-3, 10, "vit", "fashion-mnist")
    assert args.val_size == 6000 and args.patch_size == 4 and args.crop_padding == 2
