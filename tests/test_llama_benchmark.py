"""The Llama benchmarks (`examples/benchmarks/llama_generation.py`, `examples/benchmarks/kv_cache.py`): smoke runs
on tiny random Llamas (SmolLM2 is never loaded here), and the shipped records obey the same invariants."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

import pytest

from llmdocs.records import load_record
from scripts import load_script

pytest.importorskip("transformers")
pytest.importorskip("psutil")

MIB = 2**20


def check_generation_record(record: dict[str, Any]) -> None:
    """What holds for every record of llama_generation.py, smoke or real."""
    assert record["command"].startswith("python examples/benchmarks/llama_generation.py")
    assert f"{record['threads']} torch thread(s)" in record["machine"] and record["versions"]["transformers"]
    for section in (record["decode"], record["first_token"]):
        assert section["same_tokens"] is True and section["first_difference"] is None  # the same greedy tokens
        for side in ("ours", "hf"):
            times = section["seconds"][side]
            assert len(times) == section["repeats"] and min(times) > 0
            assert section["median_seconds"][side] == statistics.median(times)
            assert section["min_seconds"][side] == min(times)
    decode, first = record["decode"], record["first_token"]
    assert first["new_tokens"] == 1
    for side in ("ours", "hf"):
        assert decode["tokens_per_s"][side] == pytest.approx(decode["new_tokens"] / decode["median_seconds"][side])
    assert decode["ratio_ours_over_hf"] == pytest.approx(decode["tokens_per_s"]["ours"] / decode["tokens_per_s"]["hf"])
    fastest = decode["min_seconds"]
    assert decode["ratio_ours_over_hf_min"] == pytest.approx(fastest["hf"] / fastest["ours"])
    assert decode["goal_met"] == (decode["ratio_ours_over_hf"] >= 1.0)
    for stat in ("median", "min"):
        ratio = first[f"ratio_hf_over_ours{'_min' * (stat == 'min')}"]
        assert ratio == pytest.approx(first[f"{stat}_seconds"]["hf"] / first[f"{stat}_seconds"]["ours"])


def check_kv_record(record: dict[str, Any]) -> None:
    """What holds for every record of kv_cache.py: the formula equals what the caches hold, 9:3:1."""
    assert record["command"].startswith("python examples/benchmarks/kv_cache.py")
    shape, T = record["shape"], record["prefill_tokens"]
    variants = {(row["attention"], row["dtype"]): row for row in record["variants"]}
    assert sorted(variants) == sorted((a, d) for a in ("MHA", "GQA", "MQA") for d in ("float32", "bfloat16"))
    for row in variants.values():
        per_token = 2 * shape["n_layers"] * row["n_kv_heads"] * shape["d_head"] * row["bytes_per_number"]
        assert row["computed_bytes_per_token"] == per_token and row["computed_bytes"] == per_token * T
        # measured: exactly the formula, in our cache's tensors, their storage, and Hugging Face's cache
        assert row["tensor_bytes"] == row["storage_bytes_after_prefill"] == row["hf_cache_bytes"] == per_token * T
        assert row["tensor_bytes_per_token"] == per_token
        # one step later the capacity-doubling buffers hold room for more tokens than they use
        assert row["capacity_tokens_after_one_step"] >= T + 1
        assert row["storage_bytes_after_one_step"] == per_token * row["capacity_tokens_after_one_step"]
        assert row["context_bytes"] == {str(n): per_token * n for n in record["contexts"]}
    for dtype, half in (("float32", 1), ("bfloat16", 2)):
        per_token = [variants[a, dtype]["tensor_bytes_per_token"] for a in ("MHA", "GQA", "MQA")]
        assert [x / per_token[2] for x in per_token] == [9, 3, 1]  # the key/value heads, 9:3:1
        assert per_token[0] * half == variants["MHA", "float32"]["tensor_bytes_per_token"]  # 2 bytes against 4


def test_generation_smoke_times_both_sides_on_the_same_tokens(tmp_path: Path, capsys) -> None:
    bench = load_script("benchmarks/llama_generation.py")
    target = tmp_path / "generation.json"
    record = bench.main(["--smoke", "--no-progress", "--json", str(target)])
    assert json.loads(target.read_text(encoding="utf-8")) == record
    check_generation_record(record)
    assert record["smoke"] and record["model_config"]["n_layers"] == 2  # the tiny model, never SmolLM2
    assert record["decode"]["new_tokens"] == 8 and record["first_token"]["prompt_tokens"] == 16
    assert "eos_token_id None" in record["hf_model"]  # nothing for Hugging Face's generate to stop at
    out = capsys.readouterr().out
    assert "ours / HF tokens/s" in out and "HF / ours time" in out


def test_kv_cache_smoke_measures_the_formula(tmp_path: Path) -> None:
    bench = load_script("benchmarks/kv_cache.py")
    target = tmp_path / "kv.json"
    record = bench.main(["--smoke", "--no-progress", "--json", str(target)])
    assert json.loads(target.read_text(encoding="utf-8")) == record
    check_kv_record(record)
    assert record["shape"] == {"n_layers": 2, "d_model": 72, "n_heads": 9, "d_head": 8, "d_ff": 96, "vocab_size": 64}
    assert record["model_weights"]["bytes"]["float32"] == 2 * record["model_weights"]["bytes"]["bfloat16"]


def test_shipped_generation_record() -> None:
    record = load_record("llama_generation")
    check_generation_record(record)
    assert not record["smoke"] and record["model"].startswith("SmolLM2-135M-Instruct")
    assert record["decode"]["new_tokens"] == 256 and record["first_token"]["prompt_tokens"] == 512
    assert "--threads 1" in record["command"] and record["threads"] == 1
    assert record["decode"]["text"]  # the 256 tokens, decoded


def test_shipped_kv_cache_record() -> None:
    record = load_record("llama_kv_cache")
    check_kv_record(record)
    assert not record["smoke"] and record["prefill_tokens"] == 256 and record["contexts"] == [2048, 8192]
    assert record["shape"] | {"vocab_size": 0} == {
        "n_layers": 30, "d_model": 576, "n_heads": 9, "d_head": 64, "d_ff": 1536, "vocab_size": 0
    }  # fmt: skip
    gqa = next(row for row in record["variants"] if row["attention"] == "GQA" and row["dtype"] == "float32")
    assert gqa["computed_bytes_per_token"] == 46_080  # LlamaCache's docstring: 11,520 numbers per token
    for row in record["variants"]:  # the process's memory follows the cache up to the allocator's slack
        assert abs(row["rss_released_bytes"] - row["tensor_bytes"]) < 1 * MIB
        assert -1 * MIB < row["rss_growth_bytes"] - row["tensor_bytes"] < 3 * MIB
