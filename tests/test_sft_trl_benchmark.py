"""examples/benchmarks/sft_trl.py: a smoke run of our SFT loop and TRL's SFTTrainer writes a well-formed record,
TRL's tokenisation equals ours token by token (once its labels are cut after ``<|im_end|>``), both runs see the
same first batch and start from the same loss, and bad flags (or a missing TRL) are refused before any work.

``--smoke`` trains a tiny random Llama (2 layers, D=32) with SmolLM2's real tokenizer and chat template on 16
examples of the date task, 4 steps per trainer: seconds. TRL is a benchmark-only dependency: without it the module
is skipped.
"""

from __future__ import annotations

import doctest
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

from llmdocs.testing import assert_close, assert_equivalent
from scripts import load_script

pytest.importorskip("trl", reason='TRL is a benchmark-only dependency (the bench extra): pip install "trl>=1.16"')
pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"), pytest.mark.filterwarnings("ignore::FutureWarning")]

SMOKE_LAYERS = 2  # examples/sft.py's --smoke Llama


@pytest.fixture(scope="module")
def script() -> ModuleType:
    return load_script("benchmarks/sft_trl.py")


@pytest.fixture(scope="module")
def smoke(script: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("sft-trl")
    flags = ["--smoke", "--threads", "1", "--no-progress", "--out-dir", str(out / "runs")]
    return out / "record.json", script.main([*flags, "--json", str(out / "record.json")])


def test_a_smoke_run_writes_a_record_of_both_runs(smoke) -> None:
    path, record = smoke
    assert json.loads(path.read_text(encoding="utf-8")) == json.loads(json.dumps(record))
    assert record["command"].startswith("python examples/benchmarks/sft_trl.py --smoke")
    assert record["versions"]["trl"] and record["versions"]["peft"] and record["aligned_labels"]
    assert record["recipe"]["r"] == 16 and record["recipe"]["lora_alpha"] == 32 and record["recipe"]["epochs"] == 1
    ours, trl = record["runs"]["ours"]["0"], record["runs"]["trl"]["0"]
    for run in (ours, trl):
        assert run["steps"] == 4 and len(run["step_losses"]) == 4 and len(run["step_lr"]) == 4  # 16 examples / 4
        assert run["seconds_per_step"] > 0 and run["train_seconds"] > 0 and run["cpu_seconds"] >= 0
        assert 0.0 <= run["after"]["exact_match"] <= 1.0 and math.isfinite(run["after"]["test_loss"])
        assert math.isfinite(run["final_train_loss"]) and len(run["after"]["answers"]) == 4
    assert ours["trainable_params"] == trl["trainable_params"] > 0  # the same seven projections, same rank
    assert trl["trl_args"]["train_sampling_strategy"] == "sequential" and trl["trl_args"]["bf16"] == "False"
    assert set(record["summary"]) == {"ours", "trl"}
    assert {"exact_match", "test_loss", "seconds_per_step"} <= set(record["summary"]["trl"])


def test_trl_tokenises_the_examples_as_ours_token_by_token(smoke) -> None:
    _, record = smoke
    trl = record["runs"]["trl"]["0"]
    native, aligned = trl["tokenization"], trl["tokenization_aligned"]
    assert native["same_input_ids"] == native["examples"] == 16  # the same ids, every example
    # as shipped, TRL's completion also holds the newline ChatML writes after <|im_end|>: one more trained token
    assert native["trained_by_theirs_only"] == {"\n": 16} and native["trained_by_ours_only"] == {}
    assert all(e["trained_theirs"] == e["trained_ours"] + "\n" for e in native["first"])
    assert all(e["trained_ours"].endswith("<|im_end|>") for e in native["first"])
    # cut after <|im_end|>, TRL trains exactly our positions; its first batch is our micro-batch 0
    assert aligned["same_input_ids"] == aligned["same_labels"] == 16
    assert trl["first_batch_equal"]
    assert not trl["assistant_only_loss"]["usable"] and not trl["assistant_only_loss"]["generation_markers"]


@pytest.mark.numerics
def test_both_start_from_the_same_loss_and_share_the_decay(smoke) -> None:
    _, record = smoke
    ours, trl = record["runs"]["ours"]["0"], record["runs"]["trl"]["0"]
    # same weights, same first batch, same labels, LoRA's B = 0: the first losses agree to float32 rounding
    assert_close(torch.tensor(trl["step_losses"][0]), torch.tensor(ours["step_losses"][0]), depth=SMOKE_LAYERS)
    # Hugging Face's warm-up starts at lr 0, ours at lr / warmup; after it, the same cosine decay
    warmup = trl["trl_args"]["warmup_steps"]
    assert trl["step_lr"][0] == 0.0 and ours["step_lr"][0] == record["recipe"]["lr"] / int(warmup)
    decay = slice(int(warmup), None)
    their_decay, our_decay = (torch.tensor(run["step_lr"][decay], dtype=torch.float64) for run in (trl, ours))
    assert_equivalent(their_decay, our_decay)


def test_the_docstring_examples_run(script: ModuleType) -> None:
    results = doctest.testmod(script, optionflags=doctest.ELLIPSIS)
    assert results.attempted >= 6 and results.failed == 0


@pytest.mark.parametrize(
    "flags",
    [["--threads", "-1"], ["--seeds", "0", "0"], ["--runs", "trl", "trl"], ["--seeds", "-2"], ["--runs", "peft"]],
)
def test_bad_flags_are_refused_before_any_work(script: ModuleType, flags: list[str]) -> None:
    with pytest.raises(SystemExit):
        script.parse_args(["--smoke", *flags])


def test_a_folder_is_not_a_json_record(script: ModuleType, tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        script.parse_args(["--smoke", "--json", str(tmp_path)])


def test_a_missing_trl_names_the_install_command(script: ModuleType, monkeypatch, capsys) -> None:
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "trl" else find_spec(name, *a))
    with pytest.raises(SystemExit):
        script.parse_args(["--smoke"])
    assert 'pip install "trl>=1.16"' in capsys.readouterr().err
    assert script.parse_args(["--smoke", "--runs", "ours"]).runs == ["ours"]  # our run alone needs no TRL
