"""Smoke run of examples/benchmarks/cbow_vs_gensim.py: three models trained, every comparison recorded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scripts import load_script

pytest.importorskip("gensim")


def test_cbow_benchmark_smoke_records_all_comparisons(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    module = load_script("benchmarks/cbow_vs_gensim.py")
    out = tmp_path / "record.json"
    record = module.main(
        ["--corpora", "en", "--max-sentences", "400", "--epochs", "1", "--dim", "8", "--json", str(out)]
    )
    assert json.loads(out.read_text(encoding="utf-8")) == json.loads(json.dumps(record))
    en = record["corpora"]["en"]
    assert set(en["words_per_second"]) == set(record["models"]) == {"ours", "ours_word2vec", "gensim"}
    assert all(v > 0 for v in en["words_per_second"].values())
    overlaps = en["overlap_at_10"]
    assert set(overlaps) == {
        "ours_vs_gensim",
        "ours_word2vec_vs_gensim",
        "gensim_vs_gensim_other_seed",
        "ours_vs_ours_other_seed",
        "ours_vs_ours_word2vec",
    }
    assert all(value is None or 0.0 <= value <= 1.0 for value in overlaps.values())
    assert record["setup"]["w2v_batch_size"] == 16
    assert "overlap@10 with gensim" in capsys.readouterr().out
