"""Benchmark: the ablation ladder from GPT-2's block to Llama's, and rotary context extension, on Shakespeare.

Five decoders of the same size (814,592 parameters for GPT-2's; rotary positions drop the 16,384 of the position
table, SwiGLU's 8D/3 hidden width loses 512) are trained with the GPT chapter's tuned recipe (character-level
Shakespeare, T 128, batch 16, 2,000 AdamW steps, lr 3e-3 with warm-up and cosine decay) through
``examples/train_gpt.py``, each with two seeds:

    GPT-2        LayerNorm, learned positions, GELU          (llmdocs.models.gpt.GPT)
    + RMSNorm    only the norms changed
    + RoPE       only the positions changed: rotary embeddings in every layer
    + SwiGLU     only the feed-forward changed
    all three    RMSNorm, RoPE and SwiGLU: a Llama block      (llmdocs.models.ladder.LadderDecoder)

The record holds each run's validation curve (every 400 steps), final validation loss (200 fixed batches of the last
10% of the corpus), time per step and parameters. Same steps and batches for every run: the budget is the data; the
time each step costs is measured and reported beside it.

Then context extension: the "all three" model of the first seed, trained on windows of 128 tokens, is loaded into
``llmdocs.models.llama.Llama`` (the same network) and evaluated on windows of 128, 256 and 512 tokens with plain
RoPE, linear position interpolation and NTK-aware scaling (factor = window / 128): the loss at each position of the
window shows where each method stops extrapolating. GPT-2's learned positions cannot go past 128 at all.

Usage:
    python examples/benchmarks/llama_ladder.py --threads 1        # ~70 minutes on one core: 10 runs + extension
    python examples/benchmarks/llama_ladder.py --resume            # skip finished runs, continue an interrupted one
    python examples/benchmarks/llama_ladder.py --smoke             # seconds, writes no record: the tests run this
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import shlex
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from llmdocs.models.ladder import LADDER
from llmdocs.models.llama import Llama, LlamaConfig
from llmdocs.profiling import machine_description
from llmdocs.serialization import load_language_model

RECORD = Path(__file__).resolve().parents[2] / "llmdocs" / "records" / "llama_ladder.json"
SWITCH_FLAGS = {"norm": "--norm", "positions": "--positions", "feed_forward": "--feed-forward"}
WINDOWS, SMOKE_WINDOWS = (128, 256, 512), (32, 64)
SCALINGS = ("none", "linear", "ntk")
BUCKET = 16  # positions per point of the loss-by-position curves


def load_train_script() -> ModuleType:
    """``examples/train_gpt.py`` as a module: the ladder uses its recipe and data, not copies."""
    path = Path(__file__).resolve().parents[1] / "train_gpt.py"
    spec = importlib.util.spec_from_file_location("train_gpt", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["train_gpt"] = module
    spec.loader.exec_module(module)
    return module


def slug(name: str) -> str:
    """A folder name for a ladder step: ``"+ RMSNorm"`` -> ``"rmsnorm"``, ``"all three"`` -> ``"all-three"``."""
    return name.lower().removeprefix("+ ").replace(" ", "-")


def run_flags(name: str) -> list[str]:
    """train_gpt.py flags of a ladder step."""
    return [flag for key, value in LADDER[name].items() for flag in (SWITCH_FLAGS[key], value)]


def train_step(script: ModuleType, name: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """Train one step of the ladder with one seed (or read the finished run with --resume)."""
    out_dir = Path(args.runs_dir) / f"{slug(name)}-s{seed}"
    results_path = out_dir / "results.json"
    if args.resume and results_path.is_file():
        results = json.loads(results_path.read_text(encoding="utf-8"))
    else:
        flags = ["--preset", "tuned", "--seed", str(seed), "--threads", str(args.threads), "--out-dir", str(out_dir)]
        flags += ["--no-progress"] if not args.progress else []
        flags += ["--smoke"] if args.smoke else []
        flags += ["--resume"] if args.resume else []  # an interrupted run continues from its last checkpoint
        flags += run_flags(name)
        results = script.main(flags)
    history = [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    return {
        "name": name,
        "seed": seed,
        "switches": LADDER[name],
        "val_loss": results["val_loss"],
        "train_seconds": results["train_seconds"],
        "step_ms": results["step_ms"],
        "params": results["params"],
        "command": results["command"],
        "val_curve": [[row["step"], row["val_loss"]] for row in history if "val_loss" in row],
        "train_curve": [[row["step"], row["loss"]] for row in history if "loss" in row],
        "model_dir": str(out_dir / "model"),
    }


@torch.no_grad()
def loss_by_position(model: torch.nn.Module, data: torch.Tensor, T: int, n_windows: int, seed: int) -> torch.Tensor:
    """Mean next-token cross-entropy (T,) at each position of ``n_windows`` random windows of T tokens of ``data``."""
    generator = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, len(data) - T - 1, (n_windows,), generator=generator)  # (W,)
    total = torch.zeros(T, dtype=torch.float64)
    for chunk in starts.split(8):
        offsets = torch.arange(T)
        x, y = data[chunk[:, None] + offsets], data[chunk[:, None] + offsets + 1]  # (w, T) each
        logits = model(x)  # (w, T, V)
        total += F.cross_entropy(logits.transpose(1, 2), y, reduction="none").double().sum(0)  # (T,)
    return total / n_windows


def as_llama(ladder: torch.nn.Module, T: int, scaling: str) -> Llama:
    """The ladder's last step as a Llama for windows of T tokens: RoPE scaled by T / T_train (none below T_train)."""
    c = ladder.config
    factor = T / c.context_length
    rope_scaling = None if scaling == "none" or factor <= 1 else scaling
    config = LlamaConfig(
        c.vocab_size,
        context_length=T,
        d_model=c.d_model,
        n_heads=c.n_heads,
        n_kv_heads=c.n_heads,
        n_layers=c.n_layers,
        d_ff=c.d_ff,
        rope_theta=c.rope_theta,
        rms_norm_eps=c.norm_eps,
        rope_scaling=rope_scaling,
        rope_scaling_factor=max(factor, 1.0),
        tie_embeddings=True,
    )
    llama = Llama(config).eval()
    llama.load_state_dict(ladder.state_dict())  # the same network, module for module
    return llama


def context_extension(script: ModuleType, model_dir: str, args: argparse.Namespace) -> dict[str, Any]:
    """The "all three" model as a Llama, evaluated past its training length with each RoPE scaling."""
    ladder, tokenizer, _ = load_language_model(model_dir)
    c = ladder.config
    text = script.load_corpus("shakespeare", 40_000 if args.smoke else 0)
    _, val_text = script.split_text(text, 0.1, "shakespeare")
    val_ids = torch.tensor(tokenizer.encode(val_text), dtype=torch.long)
    windows = SMOKE_WINDOWS if args.smoke else WINDOWS
    n_windows = 8 if args.smoke else args.windows
    results: dict[str, Any] = {"trained_on": c.context_length, "windows": list(windows), "n_windows": n_windows}
    curves: dict[str, dict[str, list[float]]] = {}
    for scaling in tqdm(SCALINGS, desc="context extension", disable=not args.progress):
        curves[scaling] = {}
        for T in windows:
            llama = as_llama(ladder, T, scaling)
            per_position = loss_by_position(llama, val_ids, T, n_windows, seed=0)  # (T,)
            buckets = per_position.view(-1, BUCKET).mean(1) if T % BUCKET == 0 else per_position
            curves[scaling][str(T)] = {
                "mean_loss": float(per_position.mean()),
                "loss_past_training": float(per_position[c.context_length :].mean()) if c.context_length < T else None,
                "loss_by_position": [round(float(v), 4) for v in buckets],
            }  # type: ignore[assignment]
    results["bucket"] = BUCKET
    results["curves"] = curves
    return results


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1337, 1338], help="one run per seed and step")
    parser.add_argument("--steps-of-the-ladder", nargs="+", default=list(LADDER), choices=list(LADDER),
                        metavar="NAME", help=f"which steps to train (default: all of {list(LADDER)})")  # fmt: skip
    parser.add_argument("--threads", type=int, default=1, help="torch threads of every run (default: %(default)s)")
    parser.add_argument("--windows", type=int, default=64, help="windows per length in the extension test")
    parser.add_argument("--runs-dir", default="runs/ladder", help="one folder per run (default: %(default)s)")
    parser.add_argument("--resume", action="store_true", help="reuse the finished runs in --runs-dir")
    parser.add_argument("--smoke", action="store_true", help="train_gpt.py's smoke settings: seconds")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    parser.add_argument("--json", default=None,
                        help=f"where to write the record (default: {RECORD.relative_to(RECORD.parents[2])}; "
                        "with --smoke, nowhere)")  # fmt: skip
    args = parser.parse_args(argv)
    if args.json is None and not args.smoke:
        args.json = str(RECORD)  # a smoke run never replaces the chapter's record
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    if args.windows < 1:
        parser.error(f"--windows must be >= 1, got {args.windows}")
    if "all three" not in args.steps_of_the_ladder:
        parser.error("--steps-of-the-ladder must include 'all three': the context extension test uses it")
    torch.set_num_threads(args.threads)
    script = load_train_script()

    runs = [train_step(script, name, seed, args) for seed in args.seeds for name in args.steps_of_the_ladder]
    summary: dict[str, dict[str, Any]] = {}
    for name in args.steps_of_the_ladder:
        mine = [run for run in runs if run["name"] == name]
        losses = [run["val_loss"] for run in mine]
        summary[name] = {
            "val_loss_mean": sum(losses) / len(losses),
            "val_loss_by_seed": losses,
            "step_ms_mean": sum(run["step_ms"] for run in mine) / len(mine),
            "params": mine[0]["params"],
        }
    first = next(run for run in runs if run["name"] == "all three")
    extension = context_extension(script, first["model_dir"], args)

    print(f"\n{'step':<12}{'val loss (seeds)':>28}{'mean':>9}{'ms/step':>9}{'params':>10}")
    for name, row in summary.items():
        seeds = " / ".join(f"{x:.4f}" for x in row["val_loss_by_seed"])
        print(f"{name:<12}{seeds:>28}{row['val_loss_mean']:>9.4f}{row['step_ms_mean']:>9.1f}{row['params']:>10,}")
    print(f"\ncontext extension (trained on {extension['trained_on']} tokens): mean loss per window length")
    for scaling, by_window in extension["curves"].items():
        cells = "  ".join(f"T={T}: {v['mean_loss']:.4f}" for T, v in by_window.items())
        print(f"  {scaling:<7}{cells}")

    command = ["python", "examples/benchmarks/llama_ladder.py", *(sys.argv[1:] if argv is None else argv)]
    record = {
        "command": shlex.join(command),
        "machine": machine_description(),
        "recipe": "examples/train_gpt.py --preset tuned (Shakespeare, char-level, T 128, batch 16, 2,000 steps, "
        "lr 3e-3 -> 3e-4, warm-up 100)" + (" --smoke" if args.smoke else ""),
        "seeds": args.seeds,
        "threads": args.threads,
        "summary": summary,
        "runs": runs,
        "context_extension": extension,
    }
    assert all(math.isfinite(run["val_loss"]) for run in runs)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    return record


if __name__ == "__main__":
    main()
