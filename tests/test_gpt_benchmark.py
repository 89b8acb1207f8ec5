"""Smoke run of examples/benchmarks/gpt.py: tiny sizes, every ratio printed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scripts import load_script

pytest.importorskip("transformers")


def test_gpt_benchmark_smoke_prints_ratios(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    module = load_script("benchmarks/gpt.py")
    result = module.main(["--smoke", "--json", str(tmp_path / "gpt.json")])
    assert set(result["train_seconds"]) == {"ours", "hf"}
    [gen] = result["generation"]  # the smoke run's one shape
    assert (gen["n_layers"], gen["n_heads"], gen["d_model"]) == (1, 2, 16)
    assert set(gen["seconds"]) == {"cached", "uncached", "hf"}
    assert result["train_ratio_ours_over_hf"] > 0 and gen["cache_speedup"] > 0 and gen["hf_over_ours"] > 0
    record = json.loads((tmp_path / "gpt.json").read_text(encoding="utf-8"))
    assert record["args"]["smoke"] is True and record["command"].startswith("python examples/benchmarks/gpt.py --smoke")
    out = capsys.readouterr().out
    for line in ("ours / HF time", "KV-cache speed-up", "HF generate / ours cached"):
        assert line in out


def test_nanogpt_reference_smoke_trains_both_models(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    module = load_script("benchmarks/nanogpt_reference.py")
    record = module.main(["--smoke", "--json", str(tmp_path / "ref.json")])
    assert set(record["results"]) == {"hf", "ours"}
    for result in record["results"].values():
        assert 0 < result["val_loss"] < 10 and result["train_seconds"] > 0 and result["params"] > 0
    assert record["results"]["ours"]["params"] < record["results"]["hf"]["params"]  # nanoGPT's: no biases
    assert json.loads((tmp_path / "ref.json").read_text(encoding="utf-8"))["command"].endswith(
        "--json " + str(tmp_path / "ref.json")
    )
    assert "ours / HF training time" in capsys.readouterr().out
