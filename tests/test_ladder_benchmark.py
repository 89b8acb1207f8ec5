"""examples/benchmarks/llama_ladder.py: a smoke run of the whole ladder, and the shipped record's consistency."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

from llmdocs.models.ladder import LADDER

ROOT = Path(__file__).resolve().parents[1]
RECORD = ROOT / "llmdocs" / "records" / "llama_ladder.json"


@pytest.fixture(scope="module")
def script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("llama_ladder", ROOT / "examples" / "benchmarks" / "llama_ladder.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["llama_ladder"] = module
    spec.loader.exec_module(module)
    return module


def test_smoke_run_trains_every_step_and_extends_the_context(script: ModuleType, tmp_path: Path) -> None:
    steps = ["--steps-of-the-ladder", "GPT-2", "+ RoPE", "all three"]
    flags = ["--smoke", "--seeds", "1", "--no-progress", "--runs-dir", str(tmp_path / "runs"), *steps]
    record = script.main([*flags, "--json", str(tmp_path / "r.json")])
    assert json.loads((tmp_path / "r.json").read_text()) == json.loads(json.dumps(record))
    assert [run["name"] for run in record["runs"]] == ["GPT-2", "+ RoPE", "all three"]
    assert record["summary"]["GPT-2"]["params"] > record["summary"]["+ RoPE"]["params"]  # no position table
    extension = record["context_extension"]
    assert set(extension["curves"]) == {"none", "linear", "ntk"} and extension["trained_on"] == 32
    assert extension["curves"]["none"]["32"] == extension["curves"]["linear"]["32"]  # no scaling at its own length
    # --resume reads the finished runs back instead of training them again
    again = script.main([*flags, "--resume", "--json", str(tmp_path / "r2.json")])
    assert [run["val_loss"] for run in again["runs"]] == [run["val_loss"] for run in record["runs"]]


def test_flags_are_checked(script: ModuleType) -> None:
    for bad in (["--threads", "0"], ["--windows", "0"], ["--steps-of-the-ladder", "GPT-2"]):
        with pytest.raises(SystemExit):
            script.main(bad)


@pytest.mark.skipif(not RECORD.is_file(), reason="the ladder's record is written by a 70-minute benchmark run")
def test_the_shipped_record_is_consistent() -> None:
    record = json.loads(RECORD.read_text(encoding="utf-8"))
    assert set(record["summary"]) == set(LADDER) and len(record["seeds"]) == 2
    for name, row in record["summary"].items():
        losses = [run["val_loss"] for run in record["runs"] if run["name"] == name]
        assert row["val_loss_by_seed"] == losses and row["val_loss_mean"] == pytest.approx(sum(losses) / 2)
        assert 1.3 < row["val_loss_mean"] < 2.0  # the GPT chapter's model reached 1.68 with this recipe
    assert record["summary"]["GPT-2"]["params"] == 814_592
    assert record["context_extension"]["windows"] == [128, 256, 512]


def test_a_smoke_run_never_writes_the_chapters_record(script: ModuleType, tmp_path: Path) -> None:
    before = RECORD.read_bytes() if RECORD.is_file() else None
    steps = ["--steps-of-the-ladder", "all three"]
    script.main(["--smoke", "--seeds", "1", "--no-progress", "--runs-dir", str(tmp_path), "--windows", "1", *steps])
    assert (RECORD.read_bytes() if RECORD.is_file() else None) == before
