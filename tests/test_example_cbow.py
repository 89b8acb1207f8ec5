"""Smoke test of examples/train_cbow.py: vectors in word2vec format, and an exact resume."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest
import torch

from llmdocs.word2vec.vectors import load_word2vec_format

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "train_cbow.py"


@pytest.fixture(scope="module")
def script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("train_cbow", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(script: ModuleType, out_dir: Path, *extra: str) -> dict:
    return script.main(["--smoke", "--no-progress", "--device", "cpu", "--out-dir", str(out_dir), *extra])


def test_smoke_writes_vectors_and_resume_matches(script: ModuleType, tmp_path: Path) -> None:
    results = _run(script, tmp_path / "full")
    vectors = load_word2vec_format(tmp_path / "full" / "vectors.txt")
    assert len(vectors) == results["vocab_size"] and vectors.vectors.shape[1] == 16
    saved = json.loads((tmp_path / "full" / "results.json").read_text(encoding="utf-8"))
    assert saved["command"].startswith("python examples/train_cbow.py") and saved["final_loss"] > 0
    assert len((tmp_path / "full" / "metrics.jsonl").read_text(encoding="utf-8").splitlines()) == 2

    stopped = _run(script, tmp_path / "split", "--stop-after", "1")
    assert stopped["epochs_done"] == 1
    resumed = _run(script, tmp_path / "split", "--resume")
    assert resumed["resumed_from_epoch"] == 1 and resumed["epochs_done"] == 2
    assert resumed["final_loss"] == results["final_loss"]
    again = load_word2vec_format(tmp_path / "split" / "vectors.txt")
    assert again.words == vectors.words
    torch.testing.assert_close(again.vectors, vectors.vectors, rtol=0, atol=0)


def test_skipgram_with_full_softmax_runs(script: ModuleType, tmp_path: Path) -> None:
    results = _run(script, tmp_path / "sg", "--architecture", "skipgram", "--objective", "softmax")
    assert results["epochs_done"] == 2 and results["final_loss"] > 0
    assert load_word2vec_format(tmp_path / "sg" / "vectors.txt").vectors.shape[1] == 16


def test_help_lists_the_usual_flags(script: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        script.parse_args(["--help"])
    text = capsys.readouterr().out
    for flag in ("--device", "--seed", "--out-dir", "--resume", "--smoke", "--architecture", "(default: 5)"):
        assert flag in text
