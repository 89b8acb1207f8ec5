"""Smoke runs of ``examples/sft.py``: results and adapter written, the adapter loads into peft with the trained
logits, ``--resume`` continues a stopped run exactly, bad flags are refused before any work.

``--smoke`` trains a tiny random Llama (2 layers, D=32) with SmolLM2's real tokenizer and chat template on 16
examples of the date task: seconds.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any

os.environ["HF_HUB_OFFLINE"] = "1"

import pytest
import torch
from safetensors.torch import load_file

from llmdocs.interop.hf_llama import to_hf
from llmdocs.interop.peft_lora import load_peft_adapter
from llmdocs.testing import assert_close
from scripts import load_script

peft = pytest.importorskip("peft")
pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"), pytest.mark.filterwarnings("ignore::FutureWarning")]


@pytest.fixture(scope="module")
def script() -> ModuleType:
    return load_script("sft.py")


def smoke(script: ModuleType, out: Path, *flags: str) -> dict[str, Any]:
    return script.main(["--smoke", "--no-progress", "--threads", "1", "--out-dir", str(out), *flags])


@pytest.fixture(scope="module")
def unbroken(script: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("sft")
    return out, smoke(script, out, "--epochs", "2", "--baseline")


def test_a_run_reports_before_and_after_and_saves_a_peft_adapter(unbroken) -> None:
    out, results = unbroken
    assert results["finished"] and results["steps"] == 8  # 2 epochs of 16 examples in batches of 4
    assert {"exact_match", "exact_match_3_shot", "test_loss"} <= set(results["before"])
    assert {"exact_match", "test_loss"} <= set(results["after"]) and len(results["after"]["answers"]) == 4
    assert results["after"]["test_loss"] < results["before"]["test_loss"]  # it learnt something about the answers
    assert 0 < results["trainable_percent"] < 100
    saved = load_file(out / "adapter" / "adapter_model.safetensors")
    assert saved and all(".lora_A." in k or ".lora_B." in k for k in saved)
    assert (out / "results.json").is_file() and (out / "metrics.jsonl").is_file()


@pytest.mark.numerics
def test_the_adapter_gives_the_trained_logits_in_ours_and_in_peft(script, unbroken) -> None:
    out, _ = unbroken
    ids = torch.tensor([[1, 5, 9, 200, 3000, 2]])
    base, _ = script.load_model(smoke=True)  # the same seeded tiny model the run started from
    twin = to_hf(base)
    load_peft_adapter(base, out / "adapter")
    base.eval()
    with torch.no_grad():
        ours = base(ids)
        theirs = peft.PeftModel.from_pretrained(twin, out / "adapter").eval()(ids).logits
        untouched = to_hf(script.load_model(smoke=True)[0]).eval()(ids).logits
    assert not torch.allclose(ours, untouched)  # not rounding: the adapter must change the output
    assert_close(theirs, ours, depth=2)


@pytest.mark.numerics
def test_resume_continues_a_stopped_run_exactly(script, unbroken, tmp_path) -> None:
    out, results = unbroken
    stopped = smoke(script, tmp_path, "--epochs", "2", "--minutes", "1e-6", "--baseline")  # stops after a step
    assert stopped["steps_done"] == 1 and not stopped["finished"]
    with pytest.raises(SystemExit, match=r"these flags differ: --lora-alpha 32.0 -> 64.0"):
        smoke(script, tmp_path, "--epochs", "2", "--resume", "--lora-alpha", "64")
    with pytest.raises(SystemExit, match="already holds the checkpoints of a run"):
        smoke(script, tmp_path, "--epochs", "2")
    resumed = smoke(script, tmp_path, "--epochs", "2", "--resume")
    assert resumed["finished"] and resumed["before"] == stopped["before"]  # the baseline survives the resume
    assert resumed["seconds_per_step"] > 0
    assert [row["loss"] for row in resumed["history"]] == [row["loss"] for row in results["history"]]
    a, b = (load_file(d / "adapter" / "adapter_model.safetensors") for d in (out, tmp_path))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # bit-identical, dropout included


def test_export_writes_a_float16_adapter_and_its_meta_that_load_with_the_trained_weights(script, unbroken, tmp_path):
    out, results = unbroken
    run = tmp_path / "run"
    shutil.copytree(out, run)
    again = smoke(script, run, "--epochs", "2", "--resume", "--export", str(tmp_path / "shipped"))
    assert again["first_step"] == again["steps_done"] == 8 and again["seconds_per_step"] is None  # nothing to train
    assert again["after"]["test_loss"] == results["after"]["test_loss"]
    assert again["commands"][0] == results["command"] and "--export" in again["commands"][1]  # who trained it
    half = load_file(tmp_path / "shipped" / "adapter_model.safetensors")
    full = load_file(out / "adapter" / "adapter_model.safetensors")
    assert half.keys() == full.keys() and all(half[k].dtype == torch.float16 for k in half)
    assert all(torch.equal(half[k], full[k].half()) for k in half)
    meta = json.loads((tmp_path / "shipped" / "meta.json").read_text())
    assert meta["task"] == {"name": "iso-dates", "n_train": 2000, "n_validation": 200, "n_test": 500, "seed": 0,
                            "smoke": True}  # fmt: skip
    assert meta["results"]["before"] == results["before"] and meta["results"]["after"] == again["after"]
    assert (tmp_path / "shipped" / "adapter_config.json").is_file()


def test_packing_and_the_unmasked_loss_run(script, tmp_path) -> None:
    results = smoke(script, tmp_path, "--packing", "--no-mask-prompt")
    assert results["finished"] and results["args"]["packing"] and results["args"]["no_mask_prompt"]


def test_an_alpaca_run_scores_held_out_loss_and_keeps_answers_and_its_rows_fit_every_conversation(script, tmp_path):
    flags = ("--task", "alpaca-zh", "--packing", "--grad-accum", "2", "--n-train", "8", "--show", "1")
    results = smoke(script, tmp_path, *flags)
    assert results["finished"] and "exact_match" not in results["after"] and results["after"]["test_loss"] > 0
    assert len(results["after"]["answers"]) == 1 and results["after"]["answers"][0]["prompt"]
    assert results["steps"] == 2  # the first 8 of the smoke run's 16 training conversations, 4 per step (2 x 2)
    assert results["peak_rss_gib"] > 0.1  # the process's high-water mark, reported
    assert results["args"]["max_length"] == 1024  # the longest Alpaca conversation is 877 tokens (Chinese)
    assert script.parse_args([]).max_length == 512 and script.parse_args(["--task", "alpaca-en"]).max_length == 1024
    assert script.parse_args([]).n_train == 2000 and script.parse_args(["--task", "alpaca-zh"]).n_train is None


def test_bad_flags_fail_before_any_work(script, tmp_path, capsys) -> None:
    for flags, message in (
        (["--r", "0"], "--r must be >= 1"),
        (["--threads", "-1"], "--threads must be >= 0"),
        (["--seed", "-1"], "--seed must be >= 0"),
        (["--device", "tpu"], "--device: device must be one of"),
        (["--grad-accum", "0"], "--grad-accum must be >= 1"),
        (["--grad-accum", "3"], "--batch-size (4) must be a multiple of --grad-accum (3)"),
        (["--lr", "nan"], "--lr must be a positive number"),
        (["--lora-dropout", "1"], "--lora-dropout must be a probability"),
        (["--max-length", "8"], "--max-length must be >= 16"),
        (["--task", "gsm8k"], "invalid choice"),
        (["--json", str(tmp_path)], "is a folder"),
        (["--minutes", "0"], "--minutes must be a positive number"),
        (["--method", "full", "--export", str(tmp_path)], "--export writes a LoRA adapter: it needs --method lora"),
        (["--export", __file__], "--export names a folder to write"),
    ):
        with pytest.raises(SystemExit):
            script.parse_args(["--smoke", *flags])
        assert message in capsys.readouterr().err


def test_what_only_the_data_and_model_can_check_fails_before_the_baseline(script, tmp_path, capsys) -> None:
    for flags, message in (
        (["--batch-size", "32"], "needs 32 training examples per step, and iso-dates has 16 (--smoke)"),
        (["--targets", "nonexistent"], "--targets: target 'nonexistent' matches no module"),
        (["--max-length", "40"], "--max-length 40 is shorter than train conversation"),
    ):
        with pytest.raises(SystemExit):
            smoke(script, tmp_path / flags[0], "--baseline", *flags)
        assert message in capsys.readouterr().err
        assert not (tmp_path / flags[0] / "before.json").exists()  # refused before minutes of scoring


def test_a_one_step_run_has_no_warmup_and_finishes(script, tmp_path) -> None:
    results = smoke(script, tmp_path, "--batch-size", "16", "--grad-accum", "4")
    assert results["finished"] and results["steps"] == 1
