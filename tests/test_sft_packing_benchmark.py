"""The packing benchmark's smoke run: both data sets, both layouts, the same losses padded and packed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from llmdocs.testing import assert_close
from scripts import load_script


def test_smoke_run_writes_a_record_with_equal_losses_padded_and_packed(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    bench = load_script("benchmarks/sft_packing.py")
    out = tmp_path / "packing.json"
    record = bench.main(["--smoke", "--threads", "1", "--json", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(record))
    for name in ("iso-dates", "alpaca-en"):
        result = record["results"][name]
        padded, packed = result["padded"], result["packed"]
        assert (
            packed["rows_per_step"] <= padded["rows_per_step"]
            and packed["real_tokens_per_step"] == padded["real_tokens_per_step"]
        )  # the same conversations, fewer rows
        assert packed["padding_fraction"] <= padded["padding_fraction"]
        assert_close(torch.tensor(packed["losses"]), torch.tensor(padded["losses"]), depth=2)  # the same batches
        assert result["speedup"] > 0
