"""The ViT-vs-CNN benchmark (`examples/benchmarks/vit_vs_cnn.py`): smoke runs of its three experiments on 8 x 8
digits, the Hugging Face peer is our ViT as a function, the plain CNN peer's size, the budget's schedule."""

from __future__ import annotations

import doctest
import itertools
import json
import math
from pathlib import Path
from types import ModuleType

import pytest
import torch

from llmdocs.interop.hf_vit import to_hf
from llmdocs.models.vit import ViT, ViTConfig
from llmdocs.profiling import count_parameters
from llmdocs.serialization import load_pretrained
from llmdocs.testing import assert_equivalent
from scripts import load_script

RESULT_KEYS = {
    "test_accuracy", "test_loss", "params", "train_seconds", "cpu_seconds", "validation_seconds", "steps_done",
    "epochs_done", "train_images_per_s", "inference_images_per_s", "curve", "train_loss", "load_average_before",
    "load_average_after", "train_vit_flags", "model", "library",
}  # fmt: skip


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_script("benchmarks/vit_vs_cnn.py")


def smoke(bench: ModuleType, target: Path, *flags: str) -> dict:
    record = bench.main(["--smoke", "--dataset", "digits", "--no-progress", "--json", str(target), *flags])
    assert json.loads(target.read_text(encoding="utf-8"))["command"] == record["command"]
    return record


def test_budget_smoke_measures_the_peers_and_ours_with_the_same_budget(bench, tmp_path) -> None:
    budget_minutes = 0.003  # 0.18 s of training per run
    exported = tmp_path / "models"
    record = smoke(bench, tmp_path / "budget.json", "--minutes", str(budget_minutes), "--export-dir", str(exported))
    assert record["experiment"] == "budget" and list(record["results"]) == list(bench.EXPERIMENTS["budget"])
    assert record["recipe"]["lr"] == 0.003 and record["versions"]["transformers"]
    assert record["run_flags"]["ours-vit-tuned"] == "--augment --flip" and record["run_flags"]["hf-vit"] == ""
    results = record["results"]
    for run, result in results.items():
        assert result.keys() >= RESULT_KEYS, run
        assert 0.0 <= result["test_accuracy"] <= 1.0 and result["test_images"] == 100, run
        assert result["schedule"] == "budget" and result["budget_seconds"] == pytest.approx(60 * budget_minutes)
        # the budget ends the run at the first step past it; validation is timed apart
        assert result["train_seconds"] >= 60 * budget_minutes and result["steps_done"] >= 1, run
        assert result["inference_images_per_s"] > 0 and len(result["load_average_after"]) == 3, run
        steps = [point["step"] for point in result["curve"]]
        assert steps and steps == sorted(steps) and steps[-1] == result["steps_done"], run  # the last step is scored
    assert results["hf-vit"]["model"] == "ViTForImageClassification" and results["hf-vit"]["library"] == "transformers"
    assert results["hf-vit"]["params"] == results["ours-vit"]["params"]  # the same shape
    assert results["hf-vit"]["model_config"] == results["ours-vit"]["model_config"]
    assert results["plain-cnn"]["model"] == "PlainCNN" and results["ours-cnn"]["model"] == "ResNet"
    assert results["ours-vit-tuned"]["augment"] and results["ours-vit-tuned"]["flip"]
    assert not results["ours-vit"]["augment"] and not results["hf-vit"]["augment"]
    assert len(record["table"]) == 1 + len(results)
    # --export-dir saves ours (not the peers) as train_vit.py --export does: they load back and score the same
    assert sorted(p.name for p in exported.iterdir()) == ["ours-cnn", "ours-vit", "ours-vit-tuned"]
    script = load_script("train_vit.py")
    for run in ("ours-vit", "ours-cnn"):
        model, _, meta = load_pretrained(exported / run)
        assert results[run]["exported_to"] == str(exported / run) and meta["class_names"] == [str(d) for d in range(10)]
        args = script.parse_args(["--dataset", "digits", "--smoke", "--model", "cnn" if run == "ours-cnn" else "vit"])
        test = script.prepare_data(args)["test"]
        predictions, _, _ = script.predict(model, test, 500)
        assert (predictions == test.labels).float().mean().item() == pytest.approx(results[run]["test_accuracy"])
        confusion = torch.tensor(meta["results"]["confusion_matrix"])  # (10, 10): rows true, columns predicted
        assert (
            confusion.shape == (10, 10)
            and confusion.sum() == len(test)
            and confusion.trace() == (predictions == test.labels).sum()
        )


def test_data_hunger_smoke_gives_every_size_the_same_steps(bench, tmp_path) -> None:
    record = smoke(bench, tmp_path / "hunger.json", "--experiment", "data-hunger", "--sizes", "64", "128")
    assert list(record["results"]) == ["ours-vit", "ours-vit-aug", "ours-cnn"] and record["steps"] == 4
    for run, by_size in record["results"].items():
        assert list(by_size) == ["64", "128"], run
        for size, result in by_size.items():
            assert result["train_images"] == int(size) and result["val_images"] == 0 and not result["curve"]
            assert result["schedule"] == "steps" and result["steps"] == result["steps_done"] == 4
            assert result["epochs_done"] == pytest.approx(4 / (int(size) // 32))  # batches of 32 in the smoke
            assert 0.0 <= result["test_accuracy"] <= 1.0
    assert record["results"]["ours-vit-aug"]["64"]["augment"] and not record["results"]["ours-vit"]["64"]["augment"]


def test_patch_size_smoke_reports_sequence_length_and_time_per_epoch(bench, tmp_path) -> None:
    record = smoke(bench, tmp_path / "patches.json", "--experiment", "patch-size", "--epochs", "1")
    by_patch = record["results"]["ours-vit"]
    assert list(by_patch) == ["2", "4", "8"]  # the defaults on 8 x 8 images
    assert [by_patch[p]["sequence_length"] for p in by_patch] == [17, 5, 2]  # [CLS] + (8 / p)^2 patches
    for result in by_patch.values():
        assert result["epochs_done"] == 1 and result["seconds_per_epoch"] > 0 and len(result["curve"]) == 1
        assert result["model_config"]["patch_size"] == result["patch_size"]


@pytest.mark.numerics
def test_the_hf_peer_is_our_vit_as_a_function(bench) -> None:
    """Given our weights (through to_hf), the peer built from our config computes our logits: only the
    initialisation and the code differ between ours-vit and hf-vit, not the function."""
    torch.manual_seed(0)
    config = ViTConfig.fashion_mnist()
    ours = ViT(config).double().eval()
    peer = bench.hf_vit(config).double().eval()
    assert count_parameters(peer) == count_parameters(ours) == 139_018
    peer.hf.load_state_dict(to_hf(ours).state_dict())  # strict: the same parameters, name for name
    images = torch.randn(3, 1, 28, 28, dtype=torch.float64)
    assert_equivalent(ours(images), peer(images), depth=config.n_layers)


def test_the_plain_cnn_peer_has_422k_parameters(bench) -> None:
    model = bench.PlainCNN()  # Fashion-MNIST: 1 x 28 x 28, 10 classes
    assert count_parameters(model) == 421_642
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    with pytest.raises(ValueError, match="too small"):
        bench.PlainCNN(image_size=3)


def test_docstring_examples_run() -> None:
    """The script's docstring examples (examples/ is outside the package, whose docstrings Sybil runs)."""
    module = load_script("benchmarks/vit_vs_cnn.py")  # the one in sys.modules: doctest looks objects up there
    results = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert results.attempted >= 3 and results.failed == 0


def test_budget_schedule_warms_up_peaks_and_ends_at_zero(bench) -> None:
    seconds = [0.0]
    schedule = bench.BudgetSchedule(60.0, warmup=0.1, clock=lambda: seconds[0])
    factors = []
    for t in range(0, 61, 3):
        seconds[0] = float(t)
        factors.append(schedule(0))
    peak = factors.index(max(factors))
    assert factors[0] == 0.0 and factors[2] == pytest.approx(1.0) and peak == 2  # 6 s = 10% of the budget
    assert all(a < b for a, b in itertools.pairwise(factors[: peak + 1]))  # up during the warm-up
    assert all(a > b for a, b in itertools.pairwise(factors[peak:]))  # down after it
    assert factors[-1] == 0.0 and math.isclose(factors[11], 0.5)  # 33 s: half-way through the cosine
    with pytest.raises(ValueError, match="warmup"):
        bench.BudgetSchedule(60.0, warmup=1.0)


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--minutes", "1", "--epochs", "2"], "not both"),
        (["--experiment", "data-hunger", "--minutes", "1"], "same --steps"),
        (["--sizes", "100"], "data-hunger"),
        (["--experiment", "patch-size", "--runs", "ours-cnn"], "compares ViTs"),
        (["--run-flags", "ours-vit=--dataset mnist"], "--dataset"),
        (["--run-flags", "hf-vit=--augment"], "ours-RUN=FLAGS"),
        (["--experiment", "patch-size", "--patch-sizes", "3"], "refuses the flags"),
        (["--run-flags", "ours-vit=--pool mean"], "no pool='mean'"),
        (["--experiment", "patch-size", "--run-flags", "ours-vit=--patch-size 2"], "--patch-size"),
    ],
)
def test_bad_flags_fail_before_any_work(bench, capsys, flags: list[str], words: str) -> None:
    with pytest.raises(SystemExit):
        bench.parse_args(["--smoke", "--dataset", "digits", *flags])
    assert words in capsys.readouterr().err


def test_resume_runs_only_what_the_record_lacks_and_refuses_other_settings(bench, tmp_path) -> None:
    target = tmp_path / "hunger.json"
    flags = ["--experiment", "data-hunger", "--sizes", "64", "128", "--runs", "ours-vit", "plain-cnn"]
    first = smoke(bench, target, *flags)
    assert target.read_text(encoding="utf-8")  # written after every run, so an interruption keeps the finished ones
    interrupted = json.loads(target.read_text(encoding="utf-8"))
    del interrupted["results"]["plain-cnn"]["128"]  # as if the call had stopped during the last run
    interrupted["table"] = interrupted["table"][:-1]
    interrupted["finished"] = None
    target.write_text(json.dumps(interrupted), encoding="utf-8")
    resumed = smoke(bench, target, *flags, "--resume")
    assert resumed["results"]["ours-vit"] == interrupted["results"]["ours-vit"]  # kept, not run again
    assert resumed["results"]["plain-cnn"]["64"] == interrupted["results"]["plain-cnn"]["64"]
    assert resumed["results"]["plain-cnn"]["128"]["steps_done"] == first["results"]["plain-cnn"]["128"]["steps_done"]
    assert [call["command"].endswith("--resume") for call in resumed["commands"]] == [False, True]
    assert len(resumed["table"]) == 1 + 4 and resumed["finished"]
    with pytest.raises(SystemExit, match=r"other settings \(steps: record 4, now 3"):
        smoke(bench, target, *flags, "--steps", "3", "--resume")
    with pytest.raises(SystemExit):  # argparse: nothing to resume
        bench.main(["--smoke", "--dataset", "digits", "--resume", "--json", str(tmp_path / "none.json")])


def test_redo_measures_one_run_again_with_new_flags_and_keeps_what_it_replaced(bench, tmp_path) -> None:
    target = tmp_path / "budget.json"
    runs = ["--runs", "ours-vit", "ours-vit-tuned"]
    first = smoke(bench, target, *runs, "--run-flags", "ours-vit-tuned=--flip")
    redo = ["--run-flags", "ours-vit-tuned=--pool mean", "--resume", "--redo", "ours-vit-tuned"]
    redone = smoke(bench, target, *runs, *redo, "--export-dir", str(tmp_path / "models"))
    _, _, meta = load_pretrained(tmp_path / "models" / "ours-vit-tuned")
    assert meta["results"]["command"] == redone["commands"][-1]["command"]  # the call that trained it
    assert redone["results"]["ours-vit"] == first["results"]["ours-vit"]  # kept, not run again
    assert redone["results"]["ours-vit-tuned"]["model_config"]["pool"] == "mean"  # measured again, with the new flags
    assert redone["run_flags"]["ours-vit-tuned"] == "--pool mean"
    (replaced,) = redone["replaced"]
    assert replaced["run"] == "ours-vit-tuned" and replaced["run_flags"] == "--flip"
    assert replaced["results"] == first["results"]["ours-vit-tuned"]
    assert replaced["replaced_by"] == redone["commands"][-1]["command"]
    assert [line.split()[0] for line in redone["table"][1:]] == ["ours-vit", "ours-vit-tuned"]
    with pytest.raises(SystemExit, match="other settings"):  # the runs not redone keep the record's flags
        smoke(bench, target, *runs, "--run-flags", "ours-vit=--flip", "--resume", "--redo", "ours-vit-tuned")


@pytest.mark.parametrize(
    ("flags", "words"),
    [(["--redo", "ours-vit"], "give --resume"), (["--redo", "hf-vit", "--runs", "ours-vit"], "not among the runs")],
)
def test_redo_needs_resume_and_a_run_of_the_experiment(bench, capsys, tmp_path, flags: list[str], words: str) -> None:
    target = tmp_path / "r.json"
    target.write_text("{}", encoding="utf-8")
    extra = ["--resume", "--json", str(target)] if "--runs" in flags else []
    with pytest.raises(SystemExit):
        bench.parse_args(["--smoke", "--dataset", "digits", *flags, *extra])
    assert words in capsys.readouterr().err
