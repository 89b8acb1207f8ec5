"""Smoke run of examples/benchmarks/gpt.py: tiny sizes, every ratio printed."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("transformers")

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "benchmarks" / "gpt.py"


def test_gpt_benchmark_smoke_prints_ratios(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("gpt_benchmark", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpt_benchmark"] = module
    spec.loader.exec_module(module)
    result = module.main(["--smoke", "--json", str(tmp_path / "gpt.json")])
    assert set(result["train_seconds"]) == {"ours", "hf"}
    assert set(result["generate_seconds"]) == {"cached", "uncached", "hf"}
    assert result["train_ratio_ours_over_hf"] > 0 and result["cache_speedup"] > 0
    assert json.loads((tmp_path / "gpt.json").read_text(encoding="utf-8"))["args"]["smoke"] is True
    out = capsys.readouterr().out
    for line in ("ours / HF time", "KV-cache speed-up", "HF generate / ours cached"):
        assert line in out
