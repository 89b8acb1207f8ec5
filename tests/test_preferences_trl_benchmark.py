"""examples/benchmarks/preferences_trl.py: a smoke run of our DPO and GRPO and TRL's DPOTrainer and GRPOTrainer
writes a well-formed record, both libraries start from the same model (the first DPO loss is ln 2 in both, the
first GRPO KL is 0), train the same number of adapter weights with the same settings, and bad flags (or a missing
TRL) are refused before any work.

``--smoke`` trains a tiny random Llama with SmolLM2's real tokenizer and chat template, 2 steps per method and
library: seconds. TRL is a benchmark-only dependency: without it the module is skipped.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
from pathlib import Path
from types import ModuleType
from typing import Any

os.environ["HF_HUB_OFFLINE"] = "1"

import pytest
import torch

from llmdocs.testing import assert_close
from scripts import load_script

pytest.importorskip("trl", reason='TRL is a benchmark-only dependency (the bench extra): pip install "trl>=1.16"')
pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"), pytest.mark.filterwarnings("ignore::FutureWarning")]

SMOKE_LAYERS = 2  # preferences.py's --smoke Llama


@pytest.fixture(scope="module")
def script() -> ModuleType:
    return load_script("benchmarks/preferences_trl.py")


@pytest.fixture(scope="module")
def smoke(script: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("preferences-trl")
    flags = ["--smoke", "--threads", "1", "--no-progress", "--out-dir", str(out / "runs")]
    return out / "record.json", script.main([*flags, "--json", str(out / "record.json")])


def test_a_smoke_run_writes_a_record_of_both_methods_and_libraries(smoke) -> None:
    path, record = smoke
    assert json.loads(path.read_text(encoding="utf-8")) == json.loads(json.dumps(record))
    assert record["command"].startswith("python examples/benchmarks/preferences_trl.py --smoke")
    assert record["versions"]["trl"] and record["versions"]["peft"]
    for method in ("dpo", "grpo"):
        ours, trl = record["runs"][method]["ours"], record["runs"][method]["trl"]
        assert ours["trainable_params"] == trl["trainable_params"] > 0  # the same seven projections, same rank
        for run in (ours, trl):
            assert run["steps"] == 2 and run["seconds_per_step"] > 0 and run["train_seconds"] > 0
            after = run["after"]
            assert 0.0 <= after["exact_match"] <= 1.0 and 0.0 <= after["reward"] <= 1.0
            assert math.isfinite(after["kl"]) and len(after["answers"]) == 4
        assert trl["trl_args"]["bf16"] == "False" and trl["trl_args"]["learning_rate"] == str(ours_lr(record, method))
    grpo = record["runs"]["grpo"]["trl"]["trl_args"]
    recipe = record["recipes"]["grpo"]
    assert grpo["loss_type"] == "grpo" and grpo["num_generations"] == str(recipe["num_generations"])
    assert grpo["per_device_train_batch_size"] == str(recipe["batch_size"] * recipe["num_generations"])
    assert grpo["beta"] == str(recipe["beta"]) and record["runs"]["dpo"]["trl"]["trl_args"]["beta"] == "0.1"


def ours_lr(record: dict[str, Any], method: str) -> float:
    return record["recipes"][method]["lr"]


@pytest.mark.numerics
def test_both_libraries_start_from_the_reference(smoke) -> None:
    _, record = smoke
    dpo, grpo = record["runs"]["dpo"], record["runs"]["grpo"]
    # new LoRA, B = 0: the policy is the reference at the first step, so DPO's loss is -log sigmoid(0) = ln 2 ...
    first_trl_dpo = next(row for row in dpo["trl"]["log_history"] if "loss" in row)
    for loss in (dpo["ours"]["history"][0]["loss"], first_trl_dpo["loss"]):
        assert_close(torch.tensor(loss), torch.tensor(math.log(2)), depth=SMOKE_LAYERS)
    # ... and GRPO's KL to the reference is 0 on the first batch of samples
    first_trl_grpo = next(row for row in grpo["trl"]["log_history"] if "kl" in row)
    for kl in (grpo["ours"]["history"][0]["kl"], first_trl_grpo["kl"]):
        assert_close(torch.tensor(kl), torch.tensor(0.0), depth=SMOKE_LAYERS)


BAD_FLAGS = [
    ["--threads", "-1"], ["--methods", "dpo", "dpo"], ["--runs", "trl", "trl"], ["--minutes", "0"],
    ["--minutes", "inf"], ["--n-test", "0"], ["--runs", "peft"], ["--methods", "ppo"],
]  # fmt: skip


@pytest.mark.parametrize("flags", BAD_FLAGS)
def test_bad_flags_are_refused_before_any_work(script: ModuleType, flags: list[str]) -> None:
    with pytest.raises(SystemExit):
        script.parse_args(["--smoke", *flags])


def test_a_folder_is_not_a_json_record_nor_a_start(script: ModuleType, tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        script.parse_args(["--smoke", "--json", str(tmp_path)])
    with pytest.raises(SystemExit):
        script.parse_args(["--start", str(tmp_path)])  # no adapter_config.json


def test_a_missing_trl_names_the_install_command(script: ModuleType, monkeypatch, capsys) -> None:
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "trl" else find_spec(name, *a))
    with pytest.raises(SystemExit):
        script.parse_args(["--smoke"])
    assert 'pip install "trl>=1.16"' in capsys.readouterr().err
    assert script.parse_args(["--smoke", "--runs", "ours"]).runs == ["ours"]  # our runs alone need no TRL
