"""Benchmark: our DPO and GRPO against TRL's ``DPOTrainer`` and ``GRPOTrainer`` (with peft): same start, data,
LoRA, settings and budget of training time, scored by the same code.

One run trains, per method of ``--methods``, twice from one SFT start and scores both policies the same way:

- ``ours``: ``examples/preferences.py``'s ``main()`` (imported as a module, not copied) with its defaults for the
  method and the flags below: the start (``--start``, an ``examples/sft.py`` adapter merged into
  SmolLM2-135M-Instruct) plus a new LoRA (r 16, alpha 32, no dropout, every linear layer of the decoder), AdamW
  (0.9, 0.999, no weight decay) at a constant lr of 5e-5, gradient clipping at 1.0; DPO on 8 date pairs per step
  (beta 0.1), GRPO on 4 prompts x G 8 completions per step (at most 16 tokens, temperature 1, beta 0.04, TRL's
  ``"grpo"`` loss, rewards scaled per group, one update per batch of samples);
- ``trl``: the same start in Hugging Face's ``LlamaForCausalLM`` (``to_hf``), ``peft.LoraConfig`` with the same
  rank, alpha, dropout and the same seven projections, and TRL's trainer with the same settings (``DPOConfig``:
  sigmoid loss, beta, batch size, lr, constant schedule; ``GRPOConfig``: ``per_device_train_batch_size`` 32
  completions = 4 prompts x 8, one generation per step, the same completion length, temperature, beta, loss and
  reward scaling), float32, no gradient checkpointing, on the same training pairs (DPO, in conversational
  prompt / chosen / rejected form) or prompts with their reference dates (GRPO, the reward function
  ``llmdocs.data.iso_date_preferences.date_reward_fn``, whose signature is TRL's). Both references are the start:
  our adapters switched off, peft's adapters disabled (TRL's default when it is given a peft config).

The budget is ``--minutes`` of training for both: ours stops after the step that crosses it (its clock stops
during evaluations), TRL's after the step that crosses it (a ``TrainerCallback``; TRL evaluates nothing during
training here). After training, TRL's LoRA is saved in peft's format and loaded onto our start model
(``load_peft_adapter``), and both policies are scored by ``preferences.py``'s ``policy_scores`` on the same
``--n-test`` test prompts: greedy exact match and reward, one sample per prompt at temperature 1 (reward, length,
and its KL to the start, k1, nats). Measured per run: steps in the budget, mean seconds per step (training seconds
over steps), CPU seconds of training, and each library's own training curve (ours: ``preferences.py``'s history;
TRL's ``log_history``: its loss, rewards, margins or KL as it names them).

What still differs: the order of the training data (each library shuffles its own way), the adapters' random
initialisation, the sampling (each library draws its own samples), and the work per step (TRL computes
log-probabilities over every position of the batch; ours only on the answers).

TRL is a benchmark-only dependency (the ``bench`` extra), not one of the package's: install it with
``pip install "trl>=1.16"``.

Usage:
    python examples/benchmarks/preferences_trl.py --start runs/pref-start-192/adapter --minutes 8 --threads 2 \
        --json llmdocs/records/preferences_trl.json             # ~75 min on 2 cores (two methods x two libraries)
    python examples/benchmarks/preferences_trl.py --methods grpo --runs trl --minutes 2
    python examples/benchmarks/preferences_trl.py --smoke       # seconds: a tiny random Llama (tests)
"""

from __future__ import annotations

import argparse
import copy
import functools
import importlib.util
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here downloads: the model and tokenizer are packaged

import torch

from llmdocs.data.iso_date_preferences import date_reward_fn
from llmdocs.interop.peft_lora import load_peft_adapter
from llmdocs.profiling import machine_description
from llmdocs.records import write_record


@functools.cache
def load_example(relative: str) -> ModuleType:
    """``examples/<relative>`` as a module (loaded once, registered under its file's stem): the benchmark runs
    preferences.py's recipe and shares sft_trl.py's TRL settings, not copies of them."""
    path = Path(__file__).resolve().parents[1] / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


SFT_TRL = load_example("benchmarks/sft_trl.py")  # the SFT chapter's TRL benchmark (imports no TRL itself)
INSTALL_COMMAND = SFT_TRL.INSTALL_COMMAND
HF_TARGETS: list[str] = SFT_TRL.HF_TARGETS
"""Hugging Face's names of preferences.py's ``ALL_LINEAR`` (our ``out_proj`` is their ``o_proj``)."""
versions = SFT_TRL.versions  # installed versions of torch, transformers, peft, trl, datasets, accelerate
MISSING_TRL = (
    "TRL is not installed. This benchmark runs TRL's DPOTrainer and GRPOTrainer as the peers of our methods; TRL "
    f"is a benchmark-only dependency (the 'bench' extra), install it into this environment with: {INSTALL_COMMAND}"
)
METHODS = ("dpo", "grpo")
RUNS = ("ours", "trl")
RECORDED_ARGS = (
    "learning_rate", "lr_scheduler_type", "warmup_steps", "max_steps", "per_device_train_batch_size",
    "gradient_accumulation_steps", "weight_decay", "adam_beta1", "adam_beta2", "max_grad_norm", "seed", "beta",
    "loss_type", "max_length", "num_generations", "generation_batch_size", "steps_per_generation",
    "max_completion_length", "temperature", "top_p", "top_k", "scale_rewards", "num_iterations", "epsilon",
    "bf16", "fp16", "gradient_checkpointing", "activation_checkpointing", "disable_dropout", "use_cpu",
)  # fmt: skip
"""TRL's settings kept in the record, as the trainer resolved them."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                allow_abbrev=False)  # fmt: skip
    p.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS), help="methods (default: both)")
    p.add_argument("--runs", nargs="+", choices=RUNS, default=list(RUNS), help="libraries to run (default: both)")
    p.add_argument("--start", default="shipped", help="the SFT start: 'shipped' or an examples/sft.py adapter folder")
    p.add_argument("--minutes", type=float, default=8.0, help="training budget of each run, in minutes (default: 8)")
    p.add_argument("--n-test", type=int, default=300, help="test prompts scored after training (default: 300)")
    p.add_argument("--seed", type=int, default=0, help="seed of the adapters, the data order and the sampling")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: 0, torch's choice)")
    p.add_argument("--out-dir", default=None,
                   help="keep each run's outputs here (checkpoints, adapters); default: a temporary folder, removed "
                        "at the end")  # fmt: skip
    p.add_argument("--note", default="", help="free text stored in the record, e.g. what else ran")
    p.add_argument("--json", default=None, help="write the record to this file (after every run)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--smoke", action="store_true", help="a tiny random Llama, a few examples, 2 steps: seconds (tests)")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The flags, each checked before any work; a missing TRL is reported with the command that installs it."""
    parser = build_parser()
    args = parser.parse_args(argv)
    for name in ("methods", "runs"):
        values = getattr(args, name)
        if len(set(values)) != len(values):
            parser.error(f"--{name} lists a value twice: {values}")
    if not args.minutes > 0 or args.minutes == float("inf"):
        parser.error(f"--minutes must be a finite number > 0, got {args.minutes}")
    for name in ("n_test", "threads", "seed"):
        least = 1 if name == "n_test" else 0
        if getattr(args, name) < least:
            parser.error(f"--{name.replace('_', '-')} must be >= {least}, got {getattr(args, name)}")
    if args.start != "shipped" and not args.smoke and not (Path(args.start) / "adapter_config.json").is_file():
        parser.error(f"--start must be 'shipped' or a peft adapter folder (with adapter_config.json): {args.start}")
    if args.json is not None and Path(args.json).is_dir():
        parser.error(f"--json names a file to write, and {args.json} is a folder")
    if args.out_dir is not None and Path(args.out_dir).exists() and not Path(args.out_dir).is_dir():
        parser.error(f"--out-dir names a folder, and {args.out_dir} is a file")
    if "trl" in args.runs and importlib.util.find_spec("trl") is None:
        parser.exit(2, f"{parser.prog}: error: {MISSING_TRL}\n")
    return args


def method_flags(args: argparse.Namespace, method: str, out_dir: Path) -> list[str]:
    """preferences.py's flags for one method: its defaults, this benchmark's start, budget, seed and scoring."""
    flags = ["--method", method, "--start", args.start, "--minutes", f"{args.minutes:g}", "--seed", str(args.seed)]
    flags += ["--n-test", str(args.n_test), "--n-eval", "50", "--eval-every", "0", "--out-dir", str(out_dir)]
    flags += ["--threads", str(args.threads)] if args.threads else []
    flags += ["--no-progress"] if args.no_progress else []
    return flags + (["--smoke", "--n-test", "4"] if args.smoke else [])


@functools.cache
def budget_callback_class() -> type:
    """A ``TrainerCallback`` that times each step and stops training after the step that spends the budget."""
    from transformers import TrainerCallback

    class Budget(TrainerCallback):
        def __init__(self, seconds: float) -> None:
            self.seconds, self.began, self.step_ends = seconds, 0.0, []

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.began = time.perf_counter()

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.step_ends.append(time.perf_counter() - self.began)
            if self.step_ends[-1] >= self.seconds:
                control.should_training_stop = True

    return Budget


def trl_config(method: str, pargs: argparse.Namespace, out_dir: Path, progress: bool, max_completion: int) -> Any:
    """``DPOConfig`` or ``GRPOConfig`` with preferences.py's settings for the method (the module docstring);
    ``max_completion`` is preferences.py's ``MAX_COMPLETION``."""
    import dataclasses

    from trl import DPOConfig, GRPOConfig

    cls = DPOConfig if method == "dpo" else GRPOConfig
    fields = {f.name for f in dataclasses.fields(cls)}
    checkpointing = "activation_checkpointing" if "activation_checkpointing" in fields else "gradient_checkpointing"
    common = dict(
        output_dir=str(out_dir), **{checkpointing: False}, max_steps=pargs.steps, learning_rate=pargs.lr,
        lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0, adam_beta1=0.9, adam_beta2=0.999,
        max_grad_norm=1.0, gradient_accumulation_steps=1, seed=pargs.seed, data_seed=pargs.seed, bf16=False,
        fp16=False, logging_steps=1, eval_strategy="no", save_strategy="no", report_to="none",
        dataloader_num_workers=0, use_cpu=not torch.cuda.is_available(), disable_tqdm=not progress,
        disable_dropout=True,
    )  # fmt: skip
    if method == "dpo":
        return DPOConfig(**common, per_device_train_batch_size=pargs.batch_size, beta=pargs.beta,
                         loss_type=["sigmoid"])  # fmt: skip
    return GRPOConfig(
        **common, per_device_train_batch_size=pargs.batch_size * pargs.num_generations, steps_per_generation=1,
        num_generations=pargs.num_generations, max_completion_length=max_completion,
        temperature=pargs.temperature, top_p=1.0, top_k=0, beta=pargs.beta, loss_type="grpo",
        scale_rewards="group", num_iterations=1, epsilon=0.2,
    )  # fmt: skip


def trl_rows(script: ModuleType, method: str, pargs: argparse.Namespace) -> list[dict[str, Any]]:
    """The training data as TRL's conversational rows: prompt / chosen / rejected pairs (DPO), or prompts with
    their reference dates, the reward function's ``reference`` column (GRPO)."""
    if method == "dpo":
        split, _ = script.preference_data(pargs)
        pairs = [script.pair_of(item) for item in split["train"]]
        return [{"prompt": [dict(m) for m in p.prompt], "chosen": [{"role": "assistant", "content": p.chosen}],
                 "rejected": [{"role": "assistant", "content": p.rejected}]} for p in pairs]  # fmt: skip
    messages, references = script.prompt_data(pargs)["train"]
    return [{"prompt": [dict(m) for m in ms], "reference": r} for ms, r in zip(messages, references, strict=True)]


def run_ours(script: ModuleType, flags: list[str]) -> dict[str, Any]:
    """preferences.py's ``main(flags)``: its results, and its steps, seconds per step and training curve."""
    results = script.main(flags)
    steps = results["steps_done"]
    return {
        "steps": steps, "train_seconds": results["train_seconds"], "cpu_seconds": results["train_cpu_seconds"],
        "seconds_per_step": results["train_seconds"] / steps if steps else None, "before": results["before"],
        "after": results["after"], "trainable_params": results["trainable_params"], "history": results["history"],
    }  # fmt: skip


def run_trl(script: ModuleType, method: str, pargs: argparse.Namespace, out_dir: Path, progress: bool) -> dict:
    """TRL's trainer for ``method`` on preferences.py's start, data and settings; its LoRA then scored by
    preferences.py's ``policy_scores`` on our start model."""
    import datasets
    from peft import LoraConfig
    from trl import DPOTrainer, GRPOTrainer

    from llmdocs.interop.hf_llama import to_hf

    if not progress:
        datasets.disable_progress_bars()  # TRL's tokenising maps
    start, tokenizer = script.load_start(pargs.start, pargs.smoke)
    hf_model = to_hf(start).train()  # frozen like the start; peft adds the trainable adapters
    del start
    lora = LoraConfig(r=pargs.r, lora_alpha=pargs.lora_alpha, lora_dropout=0.0, target_modules=HF_TARGETS,
                      task_type="CAUSAL_LM")  # fmt: skip
    dataset = datasets.Dataset.from_list(trl_rows(script, method, pargs))
    budget = budget_callback_class()(60 * pargs.minutes)
    config = trl_config(method, pargs, out_dir, progress, script.MAX_COMPLETION)
    common = dict(model=hf_model, args=config, train_dataset=dataset, processing_class=copy.deepcopy(tokenizer),
                  peft_config=lora, callbacks=[budget])  # fmt: skip
    if method == "dpo":
        trainer: Any = DPOTrainer(**common)
    else:
        trainer = GRPOTrainer(reward_funcs=date_reward_fn, **common)
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    wall, cpu = time.perf_counter(), time.process_time()
    output = trainer.train()
    cpu_seconds = time.process_time() - cpu
    wall_seconds = time.perf_counter() - wall
    steps = trainer.state.global_step
    train_seconds = budget.step_ends[-1] if budget.step_ends else wall_seconds
    adapter = out_dir / "adapter"
    trainer.model.save_pretrained(str(adapter))
    resolved = {name: str(getattr(trainer.args, name)) for name in RECORDED_ARGS if hasattr(trainer.args, name)}
    log_history = trainer.state.log_history
    del trainer, hf_model
    policy, _ = script.load_start(pargs.start, pargs.smoke)
    load_peft_adapter(policy, adapter)  # TRL's LoRA on our start: adapters off is the start again, for the KL
    messages, references = script.prompt_data(pargs)["test"]
    after = script.policy_scores(policy, tokenizer, messages, references, seed=pargs.seed)
    return {
        "steps": steps, "train_seconds": round(train_seconds, 2), "cpu_seconds": round(cpu_seconds, 2),
        "seconds_per_step": train_seconds / steps if steps else None, "after": after,
        "trainable_params": trainable, "train_metrics": output.metrics, "log_history": log_history,
        "trl_args": resolved, "step_seconds": [round(t, 3) for t in budget.step_ends],
    }  # fmt: skip


def report_line(method: str, name: str, run: dict[str, Any]) -> str:
    after = run["after"]
    per_step = f"{run['seconds_per_step']:.2f}" if run["seconds_per_step"] is not None else "-"
    return (f"{method:4} {name:4}: exact match {after['exact_match']:.1%}, reward {after['reward']:.3f}, sampled "
            f"{after['sampled_reward']:.3f}, KL {after['kl']:.3f} nats; {run['steps']} steps, {per_step} s/step, "
            f"{run['train_seconds']:.0f} s training, {run['cpu_seconds']:.0f} CPU-s")  # fmt: skip


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    script = load_example("preferences.py")
    with tempfile.TemporaryDirectory(prefix="preferences-trl-") as scratch:
        root = Path(args.out_dir) if args.out_dir is not None else Path(scratch)
        command = "python examples/benchmarks/preferences_trl.py " + shlex.join(sys.argv[1:] if argv is None else argv)
        record: dict[str, Any] = {
            "command": command,
            "machine": machine_description(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "note": args.note,
            "versions": versions(),
            "start": args.start,
            "minutes": args.minutes,
            "hf_target_modules": HF_TARGETS,
            "recipes": {},
            "runs": {method: {} for method in args.methods},
        }
        for method in args.methods:
            for name in args.runs:
                out_dir = root / f"{method}-{name}"
                flags = method_flags(args, method, out_dir)
                pargs = script.parse_args(flags)
                record["recipes"][method] = {k: v for k, v in vars(pargs).items()
                                             if k not in ("out_dir", "resume", "json", "no_progress")}  # fmt: skip
                load_before = os.getloadavg()
                if name == "ours":
                    run = run_ours(script, flags)
                else:
                    out_dir.mkdir(parents=True, exist_ok=True)
                    run = run_trl(script, method, pargs, out_dir, not args.no_progress)
                run["load_average_before"] = [round(x, 2) for x in load_before]
                run["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
                record["runs"][method][name] = run
                print(report_line(method, name, run), flush=True)
                if args.json:  # a long benchmark keeps what it measured so far
                    write_record(args.json, record)
    record["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    if args.json:
        write_record(args.json, record)
    return record


if __name__ == "__main__":
    main()
