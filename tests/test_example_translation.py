"""Smoke tests of examples/train_translation.py: results, exact resume, and a 2-process torchrun run."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "train_translation.py"


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("train_translation", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def script() -> ModuleType:
    return _load_script()


def _run(script: ModuleType, out_dir: Path, *extra: str) -> dict:
    return script.main(["--smoke", "--no-progress", "--out-dir", str(out_dir), *extra])


def _weights(out_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(out_dir / "model" / "model.safetensors"))


def test_smoke_writes_results(script: ModuleType, tmp_path: Path) -> None:
    results = _run(script, tmp_path / "run")
    saved = json.loads((tmp_path / "run" / "results.json").read_text(encoding="utf-8"))
    for mode in ("greedy", "beam"):
        assert {"bleu", "bleu_multi_ref"} <= set(saved[mode])
        assert 0.0 <= saved[mode]["bleu"] <= 100.0
    assert saved["steps"] == results["steps"] == 6
    assert saved["train_seconds"] > 0 and saved["params"] > 0
    example = saved["examples"][0]
    T, S = len(example["output_tokens"]), len(example["source_tokens"])
    assert torch.tensor(example["cross_attention"]).shape == (T, S)
    rows = torch.tensor(example["cross_attention"]).sum(-1)
    assert torch.allclose(rows, torch.ones(T), atol=S * 1e-4)  # not rounding: 4 decimals, each off by <= 5e-5
    for name in ("tokenizer.json", "model/model.safetensors", "model/config.json", "model/tokenizer.json"):
        assert (tmp_path / "run" / name).is_file(), name
    assert (tmp_path / "run" / "attention-0.png").is_file() and (tmp_path / "run" / "attention-0.svg").is_file()
    # the exported model and tokenizer are enough to evaluate again
    again = _run(script, tmp_path / "run", "--eval-only")
    assert again["greedy"] == saved["greedy"]


def test_resume_matches_unbroken_run(script: ModuleType, tmp_path: Path) -> None:
    _run(script, tmp_path / "full", "--steps", "8", "--checkpoint-every", "4")
    stopped = _run(script, tmp_path / "split", "--steps", "8", "--checkpoint-every", "4", "--stop-after", "3")
    assert stopped["steps"] == 3 and stopped["stopped_early"]
    resumed = _run(script, tmp_path / "split", "--steps", "8", "--checkpoint-every", "4", "--resume")
    assert resumed["resumed_from_step"] == 3 and resumed["steps"] == 8
    full, split = _weights(tmp_path / "full"), _weights(tmp_path / "split")
    assert full.keys() == split.keys()
    for name in full:
        torch.testing.assert_close(split[name], full[name], rtol=0, atol=0, msg=name)


def test_torchrun_two_processes(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        str(SCRIPT), "--smoke", "--no-progress", "--no-reexec", "--out-dir", str(tmp_path / "ddp"),
    ]  # fmt: skip
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    saved = json.loads((tmp_path / "ddp" / "results.json").read_text(encoding="utf-8"))
    assert saved["world_size"] == 2 and saved["steps"] == 6
    assert "bleu" in saved["beam"]
