"""Smoke runs of the example scripts and benchmarks: each one end to end, tiny, in seconds."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

from llmdocs.serialization import load_pretrained

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load_script(relative: str) -> ModuleType:
    """Import an example script as a module (they are scripts, not a package)."""
    path = EXAMPLES / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


def test_train_dates_smoke_and_resume(tmp_path):
    script = load_script("train_dates.py")
    out = tmp_path / "run"
    results = script.main(["--smoke", "--out-dir", str(out), "--export", str(tmp_path / "export")])
    assert 0.0 <= results["exact_match"] <= 1.0 and results["n_test"] == 32
    assert json.loads((out / "results.json").read_text(encoding="utf-8"))["steps"] == 12
    assert (out / "metrics.jsonl").is_file() and (out / "curve.svg").is_file()
    model, config, meta = load_pretrained(tmp_path / "export")
    assert config.d_model == 32 and meta["results"]["command"].startswith("python examples/train_dates.py")
    # a resumed run continues from the last checkpoint (step 12 of 12): nothing left to do, same weights
    resumed = script.main(["--smoke", "--out-dir", str(out), "--resume"])
    assert resumed["exact_match"] == results["exact_match"]
    again, _, _ = load_pretrained(out / "model")
    for a, b in zip(model.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_train_dates_help_lists_flags(capsys):
    script = load_script("train_dates.py")
    with pytest.raises(SystemExit):
        script.parse_args(["--help"])
    text = capsys.readouterr().out
    for flag in ("--device", "--seed", "--out-dir", "--resume", "--smoke", "(default: 800)"):
        assert flag in text


def test_attention_benchmark_prints_ratios(tmp_path, capsys):
    script = load_script("benchmarks/attention.py")
    rows = script.main(["--lengths", "16", "32", "--repeats", "1", "--batch", "1", "--d-model", "32"])
    assert {r["implementation"] for r in rows} == {
        "ours (fused)",
        "ours (explicit, weights)",
        "nn.MultiheadAttention",
        "F.scaled_dot_product_attention",
    }
    assert all(r["time_ratio"] > 0 and r["peak_mib"] >= 0 for r in rows)
    assert "ratios are relative to our fused layer" in capsys.readouterr().out


def test_norm_placement_benchmark_writes_record(tmp_path):
    script = load_script("benchmarks/norm_placement.py")
    target = tmp_path / "norm.json"
    record = script.main(["--steps", "4", "--layers", "1", "--warmup", "2", "--json", str(target)])
    assert set(record["runs"]) == {
        "Pre-LN, no warm-up",
        "Pre-LN, warm-up 2",
        "Post-LN, no warm-up",
        "Post-LN, warm-up 2",
    }
    assert json.loads(target.read_text(encoding="utf-8")) == record
