"""Smoke runs of `examples/train_gpt.py`: both corpora and tokenizers, exact resume, torchrun, the presets."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch
from safetensors.torch import load_file

import llmdocs
from llmdocs.serialization import load_language_model
from llmdocs.training import read_jsonl

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "train_gpt.py"


@pytest.fixture(scope="module")
def script() -> ModuleType:
    """The example imported as a module (scripts are not a package)."""
    spec = importlib.util.spec_from_file_location("train_gpt", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["train_gpt"] = module
    spec.loader.exec_module(module)
    return module


def smoke(script: ModuleType, out: Path, *flags: str) -> dict:
    return script.main(["--smoke", "--no-progress", "--out-dir", str(out), *flags])


@pytest.mark.parametrize("corpus", ["shakespeare", "tang"])
@pytest.mark.parametrize("tokenizer", ["char", "bpe"])
def test_smoke_run_writes_results_and_a_loadable_model(script, tmp_path, capsys, corpus, tokenizer):
    out = tmp_path / "run"
    results = smoke(script, out, "--corpus", corpus, "--tokenizer", tokenizer, "--record", str(tmp_path / "r.json"))
    assert math.isfinite(results["val_loss"])
    assert results["val_perplexity"] == pytest.approx(math.exp(results["val_loss"]))
    assert results["eval_iters"] == 4 and results["steps"] == 8 and results["params"] > 0
    assert results["tokens_per_s"] > 0 and results["wall_seconds"] >= results["train_seconds"] > 0
    assert results["command"].startswith("python examples/train_gpt.py --smoke")
    assert len(results["samples"]) == 2 and all(isinstance(s, str) for s in results["samples"])
    assert json.loads((out / "results.json").read_text(encoding="utf-8"))["val_loss"] == results["val_loss"]
    assert (out / "metrics.jsonl").is_file() and (out / "curve.svg").is_file()
    assert "val loss" in capsys.readouterr().out

    samples = read_jsonl(out / "samples.jsonl")  # every evaluation: steps 4 and 8
    assert [row["step"] for row in samples] == [4, 8] and all(isinstance(row["sample"], str) for row in samples)
    record = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    assert record["val_loss"] == results["val_loss"] and record["samples_during"] == samples
    assert [row["step"] for row in record["history"]] == [row["step"] for row in read_jsonl(out / "metrics.jsonl")]

    model, tok, meta = load_language_model(out / "model")
    assert meta["results"]["corpus"] == corpus and meta["tokenizer"]["type"] == tokenizer
    assert model.config.vocab_size == tok.vocab_size == results["vocab_size"]
    if tokenizer == "bpe":
        assert tok.vocab_size == 300
    ids = torch.tensor([tok.encode("春風\n" if corpus == "tang" else "ROMEO:\n")[-8:]])  # (1, <= 8)
    assert model(ids).shape == (1, ids.size(1), tok.vocab_size)


def test_resume_continues_exactly(script, tmp_path):
    flags = ("--dropout", "0.1", "--tokenizer", "bpe")  # dropout: the RNG state must be resumed too; BPE is reloaded
    unbroken = tmp_path / "unbroken"
    smoke(script, unbroken, *flags)
    broken = tmp_path / "broken"
    stopped = smoke(script, broken, *flags, "--stop-after", "4")
    assert stopped["stopped_after"] == 4 and not (broken / "model").exists()
    assert (broken / "tokenizer" / "merges.txt").is_file()
    resumed = smoke(script, broken, *flags, "--resume")
    assert resumed["resumed_from_step"] == 4
    a = load_file(unbroken / "model" / "model.safetensors")
    b = load_file(broken / "model" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed["val_loss"] == pytest.approx(json.loads((unbroken / "results.json").read_text())["val_loss"])
    assert read_jsonl(broken / "samples.jsonl") == read_jsonl(unbroken / "samples.jsonl")  # no duplicated step 4


def test_modern_pieces_train_a_ladder_decoder(script, tmp_path, capsys):
    flags = ("--norm", "rmsnorm", "--positions", "rope", "--feed-forward", "swiglu")
    results = smoke(script, tmp_path / "run", *flags)
    assert math.isfinite(results["val_loss"]) and results["model_config"]["positions"] == "rope"
    model, tok, _ = load_language_model(tmp_path / "run" / "model")
    assert type(model).__name__ == "LadderDecoder" and model.config.name == "all three"
    assert not hasattr(model, "pos_embed") and model.config.vocab_size == tok.vocab_size
    with pytest.raises(SystemExit):
        script.parse_args(["--positions", "rope", "--bias"])  # the ladder has no biases
    assert "no biases" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        script.parse_args(["--positions", "rope", "--d-model", "20", "--n-heads", "4"])  # heads of 5: odd
    assert "d_head = 5 is odd" in capsys.readouterr().err
    stopped = smoke(script, tmp_path / "broken", *flags, "--stop-after", "4")
    assert stopped["stopped_after"] == 4
    with pytest.raises(SystemExit, match="hold a LadderDecoder"):  # resumed without the switches: refused
        smoke(script, tmp_path / "broken", "--resume")
    assert smoke(script, tmp_path / "broken", *flags, "--resume")["resumed_from_step"] == 4


def test_presets_and_aliases(script):
    ref = script.parse_args(["--preset", "nanogpt-cpu"])
    assert (ref.n_layers, ref.n_heads, ref.d_model, ref.context_length, ref.batch_size) == (4, 4, 128, 64, 12)
    assert (ref.steps, ref.lr, ref.dropout, ref.bias, ref.eval_iters) == (2000, 1e-3, 0.0, False, 200)
    assert ref.activation == "gelu"  # nanoGPT's nn.GELU()
    assert vars(script.parse_args([])) == vars(ref)  # nanogpt-cpu is the default
    args = script.parse_args(["--preset", "tuned", "--n-layer", "6", "--block-size", "256", "--max-iters", "10"])
    assert (args.n_layers, args.context_length, args.steps, args.batch_size, args.lr) == (6, 256, 10, 16, 3e-3)
    tang = script.parse_args(["--preset", "tang"])
    assert (tang.corpus, tang.d_model, tang.n_heads, tang.context_length) == ("tang", 192, 6, 64)
    with pytest.raises(SystemExit):
        script.parse_args(["--smoke", "--stop-after", "3"])  # not a checkpoint step


def test_help_shows_the_preset_defaults(script, capsys):
    with pytest.raises(SystemExit):
        script.parse_args(["--help"])
    text = capsys.readouterr().out
    for flag in ("--device", "--seed", "--out-dir", "--resume", "--smoke", "--block-size", "(default: 2000)"):
        assert flag in text


def test_random_windows_are_pure_and_sharded(script):
    data = torch.arange(1000)
    batches = script.RandomWindows(data, T=8, batch_size=4, seed=0)
    x, y = batches(5)
    assert torch.equal(x, batches(5)[0]) and not torch.equal(x, batches(6)[0])
    assert torch.equal(y, x + 1)  # targets are the inputs shifted by one token
    shards = [script.RandomWindows(data, T=8, batch_size=2, seed=0, rank=r, world_size=2)(5)[0] for r in (0, 1)]
    assert torch.equal(torch.cat(shards), script.RandomWindows(data, T=8, batch_size=4, seed=0)(5)[0])


@pytest.mark.slow  # three Python processes import torch
def test_torchrun_two_processes(tmp_path):
    repo_root = Path(llmdocs.__file__).resolve().parent.parent
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(repo_root), os.environ.get("PYTHONPATH")])),
        "OMP_NUM_THREADS": "1",
    }
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(SCRIPT)]
    command += ["--smoke", "--no-progress", "--out-dir", str(tmp_path / "run")]
    with subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    ) as proc:
        try:
            output, _ = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the launcher and both workers
            output, _ = proc.communicate()
            pytest.fail(f"torchrun timed out:\n{output[-3000:]}")
    assert proc.returncode == 0, output[-6000:]
    results = json.loads((tmp_path / "run" / "results.json").read_text(encoding="utf-8"))
    assert results["world_size"] == 2 and math.isfinite(results["val_loss"])
    assert results["command"].startswith("torchrun --nproc_per_node 2 examples/train_gpt.py")
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()
