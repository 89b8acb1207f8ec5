"""Supervised fine-tuning (SFT) of SmolLM2-135M-Instruct with our LoRA: instruction data in, an adapter out.

The SFT chapter's recipe, from the package's pieces: each conversation rendered by the model's own chat template,
the loss on the assistant's tokens only (``--no-mask-prompt`` trains on the prompt too), examples padded one per
row or packed several to a row (``--packing``, attention kept inside each example), our LoRA on every linear layer
of the decoder (``--method full`` trains every weight), AdamW with warm-up and a cosine decay, and the package's
training loop (checkpoints, ``--minutes``, ``--resume``, DDP under torchrun).

Tasks:

    iso-dates   the generated verifiable task (llmdocs.data.iso_dates): a date in one of 14 surface forms ->
                YYYY-MM-DD; scored by exact match on its test split (unseen phrasings, dates and one unseen
                form). ``--baseline`` first scores the untouched model zero-shot and 3-shot.
    alpaca-en   LLaMA-Factory's Alpaca demo sets (999 / 1,000 records, fetched by ``make install``), split
    alpaca-zh   80/10/10 by prompt; scored by the held-out loss of the answers, and the first ``--show``
                answers of the test split are kept before and after.

Outputs in ``--out-dir``: ``metrics.jsonl``/``metrics.csv``, ``checkpoints/``, ``adapter/`` in peft's format
(``PeftModel.from_pretrained(LlamaForCausalLM, ...)`` loads it; so does ``llmdocs.interop.peft_lora``), and
``results.json`` (also written to ``--json``).

Usage:
    python examples/sft.py --baseline                      # iso-dates: before, LoRA SFT, after (~15 min on 2 cores)
    python examples/sft.py --task alpaca-en --packing --baseline
    python examples/sft.py --task alpaca-zh --n-train 400 --packing --grad-accum 2   # 8 conversations in memory
    python examples/sft.py --no-mask-prompt                # the chapter's contrast: train on the prompt too
    python examples/sft.py --minutes 5 --out-dir runs/sft  # stops after 5 minutes with a checkpoint ...
    python examples/sft.py --out-dir runs/sft --resume     # ... and carries on to the end
    torchrun --nproc_per_node 2 examples/sft.py            # data-parallel
    python examples/sft.py --out-dir runs/sft --resume --export my-adapter   # ship it: float16 + meta.json
    python examples/sft.py --smoke                         # seconds: a tiny random Llama (the tests run this)
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from llmdocs.data.iso_dates import exact_match, make_iso_date_task
from llmdocs.finetuning.freezing import trainable_parameters_summary
from llmdocs.finetuning.lora import apply_lora, target_module_names
from llmdocs.finetuning.lora_budget import TARGET_SETS
from llmdocs.finetuning.packing import collate_padded
from llmdocs.finetuning.sft import (
    SFTBatches,
    exact_match_rate,
    few_shot_messages,
    generate_answers,
    sft_loss_fn,
    tokenize_sft_examples,
)
from llmdocs.interop.peft_lora import save_peft_adapter
from llmdocs.profiling import machine_description, peak_rss_bytes
from llmdocs.records import write_record
from llmdocs.training import TrainConfig, resolve_device
from llmdocs.training.batch import mean_loss
from llmdocs.training.checkpoint import checkpoint_info
from llmdocs.training.distributed import cleanup_distributed, setup_distributed
from llmdocs.training.loop import train
from llmdocs.training.run_folder import check_run_folder, run_settings, save_run_settings

TASKS = ("iso-dates", "alpaca-en", "alpaca-zh")
ALL_LINEAR = list(TARGET_SETS["llama"]["all linear"])  # q, k, v, out and the three SwiGLU projections
DEFAULT_LR = {"lora": 1e-3, "full": 5e-5}
DEFAULT_MAX_LENGTH = {"iso-dates": 512, "alpaca-en": 1024, "alpaca-zh": 1024}
BASE_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
"""The name an adapter trained here records as its base (``base_model_name_or_path``)."""
SMOKE: dict[str, Any] = dict(n_train=16, n_eval=4, batch_size=4, epochs=1, out_dir="runs/sft-smoke")
MAY_CHANGE_ON_RESUME = (
    "minutes", "threads", "no_progress", "json", "device", "baseline", "show", "out_dir", "resume", "export",
)  # fmt: skip
"""The flags a ``--resume`` may change (budget and outputs); any other difference is refused (run_args.json)."""
N_TRAIN_DATES = 2000
"""iso-dates: training examples generated unless ``--n-train`` says otherwise."""
N_VALIDATION = 200
"""iso-dates: validation examples generated (the split is fixed: ``make_iso_date_task(..., seed=DATA_SEED)``)."""
ALPACA_FRACTIONS = (0.8, 0.1, 0.1)
"""Alpaca: train / validation / test shares, split by prompt with ``seed=DATA_SEED``."""
DATA_SEED = 0
"""The data's seed, apart from ``--seed`` (adapters, dropout, batch order): every run sees the same splits."""
N_SHOTS = 3
"""Solved training examples shown before each test prompt in the few-shot baseline."""


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Show the usage docstring as written and every flag's default."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter, allow_abbrev=False)
    p.add_argument("--task", choices=TASKS, default="iso-dates", help="instruction data")
    p.add_argument("--method", choices=["lora", "full"], default="lora", help="which weights train")
    p.add_argument("--r", type=int, default=16, help="LoRA rank")
    p.add_argument("--lora-alpha", type=float, default=32.0, help="LoRA alpha: the update is scaled by alpha / r")
    p.add_argument("--lora-dropout", type=float, default=0.05, help="dropout on the adapters' inputs")
    p.add_argument("--targets", nargs="+", default=ALL_LINEAR, help="our module names (patterns) to adapt")
    p.add_argument("--epochs", type=int, default=1, help="passes over the training examples")
    p.add_argument("--lr", type=float, default=None, help=f"peak learning rate (default per method: {DEFAULT_LR})")
    p.add_argument("--batch-size", type=int, default=16, help="examples per optimizer step (per process)")
    p.add_argument("--grad-accum", type=int, default=1,
                   help="micro-batches per step: --batch-size / K examples in memory at once, same update")  # fmt: skip
    p.add_argument("--warmup", type=float, default=0.05, help="warm-up, as a fraction of the steps")
    p.add_argument("--weight-decay", type=float, default=0.0, help="AdamW weight decay (matrices only)")
    p.add_argument("--packing", action="store_true", help="pack each batch's examples into rows of --max-length")
    p.add_argument("--max-length", type=int, default=None,
                   help=f"longest example (and packed row), in tokens (default per task: {DEFAULT_MAX_LENGTH}; "
                        "the longest Alpaca conversation is 877 tokens in Chinese, 750 in English)")  # fmt: skip
    p.add_argument("--no-mask-prompt", action="store_true", help="train on every token, the prompt's too")
    p.add_argument("--n-train", type=int, default=None,
                   help="training examples: iso-dates generates this many (default 2,000); Alpaca trains on the "
                        "first N of its training split (default all 800)")  # fmt: skip
    p.add_argument("--n-test", type=int, default=500, help="iso-dates: test examples generated and scored")
    p.add_argument("--baseline", action="store_true", help="score the model before training too (0- and 3-shot)")
    p.add_argument("--show", type=int, default=5, help="answers to the first N test prompts kept in the results")
    p.add_argument("--minutes", type=float, default=None, help="training budget; stops with a checkpoint")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's choice)")
    p.add_argument("--seed", type=int, default=0, help="seed of the adapters, dropout and the batch order")
    p.add_argument("--out-dir", default="runs/sft", help="metrics, checkpoints, adapter, results")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out-dir")
    p.add_argument("--json", default=None, help="also write results.json's content to this file")
    p.add_argument("--export", default=None, metavar="DIR",
                   help="LoRA: also write the adapter in float16 and meta.json (the results, the task's arguments) "
                        "into DIR, a folder llmdocs.pretrained.load_smollm2_lora can ship")  # fmt: skip
    p.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    p.add_argument("--smoke", action="store_true", help="a tiny random Llama and a few examples: seconds (tests)")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Defaults, then --smoke's, then the flags given; every flag is checked before any work starts."""
    parser = build_parser()
    if "--smoke" in (sys.argv[1:] if argv is None else argv):
        parser.set_defaults(**{k: v for k, v in SMOKE.items() if k in ("batch_size", "epochs", "out_dir")})
    args = parser.parse_args(argv)
    args.lr = DEFAULT_LR[args.method] if args.lr is None else args.lr
    args.max_length = DEFAULT_MAX_LENGTH[args.task] if args.max_length is None else args.max_length
    if args.n_train is None and args.task == "iso-dates":
        args.n_train = N_TRAIN_DATES
    for name in ("r", "epochs", "batch_size", "grad_accum", "n_train", "n_test"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.seed < 0:
        parser.error(f"--seed must be >= 0, got {args.seed}")
    if args.threads < 0:
        parser.error(f"--threads must be >= 0 (0 = torch's choice), got {args.threads}")
    try:
        resolve_device(args.device)
    except ValueError as error:
        parser.error(f"--device: {error}")
    if args.batch_size % args.grad_accum:
        parser.error(f"--batch-size ({args.batch_size}) must be a multiple of --grad-accum ({args.grad_accum}): "
                     "each step is --grad-accum micro-batches of equal size")  # fmt: skip
    if args.max_length < 16:
        parser.error(f"--max-length must be >= 16 tokens (a chat turn's markers alone take ~10), got {args.max_length}")
    if args.show < 0:
        parser.error(f"--show must be >= 0, got {args.show}")
    for name in ("lr", "lora_alpha"):
        if not (math.isfinite(getattr(args, name)) and getattr(args, name) > 0):
            parser.error(f"--{name.replace('_', '-')} must be a positive number, got {getattr(args, name)}")
    if not 0.0 <= args.lora_dropout < 1.0:
        parser.error(f"--lora-dropout must be a probability in [0, 1), got {args.lora_dropout}")
    if not 0.0 <= args.warmup < 1.0:
        parser.error(f"--warmup must be a fraction in [0, 1), got {args.warmup}")
    if args.minutes is not None and not 0.0 < args.minutes < float("inf"):
        parser.error(f"--minutes must be a positive number, got {args.minutes}")
    if args.json is not None and Path(args.json).is_dir():
        parser.error(f"--json names a file to write, and {args.json} is a folder")
    if args.export is not None and args.method != "lora":
        parser.error("--export writes a LoRA adapter: it needs --method lora")
    if args.export is not None and Path(args.export).is_file():
        parser.error(f"--export names a folder to write, and {args.export} is a file")
    return args


def load_model(smoke: bool) -> tuple[nn.Module, Any]:
    """SmolLM2-135M-Instruct in our Llama and its tokenizer; with ``smoke``, a tiny random Llama of the same
    vocabulary (the tokenizer and chat template are the real ones)."""
    from llmdocs.models.smollm2 import load_smollm2, smollm2_tokenizer

    if not smoke:
        return load_smollm2()
    from llmdocs.models.llama import Llama, LlamaConfig

    tokenizer = smollm2_tokenizer()
    torch.manual_seed(0)
    return Llama(LlamaConfig.tiny(len(tokenizer), context_length=2048)), tokenizer  # rows of up to 1,024 tokens


def task_data(args: argparse.Namespace) -> tuple[dict[str, list[Any]], str]:
    """The task's train / validation / test conversations' sources and a credit line."""
    if args.task == "iso-dates":
        split = make_iso_date_task(n_train=args.n_train, n_validation=N_VALIDATION, n_test=args.n_test, seed=DATA_SEED)
        credit = "generated by llmdocs.data.iso_dates (babel's CLDR date formats)"
    else:
        from llmdocs.data.llamafactory import LLAMAFACTORY_ATTRIBUTION, load_alpaca, split_examples

        records = load_alpaca("en" if args.task == "alpaca-en" else "zh")
        split = split_examples(records, fractions=ALPACA_FRACTIONS, seed=DATA_SEED)
        split["train"] = split["train"][: args.n_train]  # None: all of them
        credit = LLAMAFACTORY_ATTRIBUTION
    if args.smoke:
        split = {name: part[: SMOKE["n_train"] if name == "train" else SMOKE["n_eval"]] for name, part in split.items()}
    return split, credit


def evaluate_task(
    model: nn.Module, tokenizer: Any, split: dict[str, list[Any]], args: argparse.Namespace, held_out: list[Any]
) -> dict[str, Any]:
    """Held-out loss of the answers; on iso-dates the test exact match; the first ``--show`` test answers."""
    batches = [collate_padded(held_out[i : i + args.batch_size]) for i in range(0, len(held_out), args.batch_size)]
    out: dict[str, Any] = {"test_loss": mean_loss(model, batches, sft_loss_fn)}  # mean_loss moves them to the device
    test = split["test"]
    if args.task == "iso-dates":
        answers = generate_answers(model, tokenizer, [e.messages()[:-1] for e in test], max_new_tokens=16)
        out["exact_match"] = exact_match_rate(answers, [e.output for e in test], exact_match)
        out["errors"] = [  # every miss, for the chapter to show
            {"prompt": e.prompt, "form": e.form, "reference": e.output, "answer": a}
            for e, a in zip(test, answers, strict=True)
            if not exact_match(a, e.output)
        ]
    else:
        answers = generate_answers(model, tokenizer, [e.messages()[:-1] for e in test[: args.show]], 128, batch_size=4)
    shown = zip(test[: args.show], answers[: args.show], strict=True)
    out["answers"] = [{"prompt": e.prompt, "reference": e.output, "answer": a} for e, a in shown]
    return out


def check_run_fits(
    model: nn.Module,
    split: dict[str, list[Any]],
    examples: dict[str, list[dict[str, list[int]]]],
    args: argparse.Namespace,
    world_size: int,
) -> None:
    """Refuse, as a usage error, settings that only the data and the model can check: a conversation longer than
    --max-length, a step that needs more training examples than there are, or a LoRA target that matches no layer."""
    for name, part in examples.items():
        longest = max(range(len(part)), key=lambda i: len(part[i]["input_ids"]))
        if len(part[longest]["input_ids"]) > args.max_length:
            build_parser().error(
                f"--max-length {args.max_length} is shorter than {name} conversation {longest} "
                f"({len(part[longest]['input_ids'])} tokens, the longest): raise --max-length"
            )
    n_train, per_step = len(split["train"]), args.batch_size * world_size
    if n_train < per_step:
        build_parser().error(
            f"--batch-size {args.batch_size} x {world_size} process(es) needs {per_step} training examples per step, "
            f"and {args.task} has {n_train}{' (--smoke)' if args.smoke else ''}: lower --batch-size or raise --n-train"
        )
    if args.method == "lora":
        try:
            target_module_names(model, args.targets)
        except ValueError as error:
            build_parser().error(f"--targets: {error}")


def earlier_commands(args: argparse.Namespace) -> list[str]:
    """The commands that ran this run folder before (from its ``results.json``), when this call resumes it."""
    file = Path(args.out_dir) / "results.json"
    if not (args.resume and file.is_file()):
        return []
    earlier = json.loads(file.read_text(encoding="utf-8"))
    return list(earlier.get("commands", [earlier["command"]] if "command" in earlier else []))


def export_adapter(model: nn.Module, results: dict[str, Any], args: argparse.Namespace) -> Path:
    """The adapter in float16 (half the bytes; it loads into the float32 model) and ``meta.json``: the results and
    the arguments of ``make_iso_date_task`` (or the Alpaca set) that regenerate the run's data."""
    folder = save_peft_adapter(model, args.export, base_model_name_or_path=BASE_MODEL, dtype=torch.float16)
    if args.task == "iso-dates":
        task = {"name": args.task, "n_train": args.n_train, "n_validation": N_VALIDATION, "n_test": args.n_test,
                "seed": DATA_SEED, "smoke": args.smoke}  # fmt: skip
    else:
        task = {"name": args.task, "fractions": list(ALPACA_FRACTIONS), "n_train": args.n_train, "seed": DATA_SEED,
                "smoke": args.smoke}  # fmt: skip
    write_record(folder / "meta.json", {"results": results, "task": task})
    print(f"exported the adapter (float16) and meta.json to {folder}")
    return folder


def few_shot_baseline(model: nn.Module, tokenizer: Any, split: dict[str, list[Any]]) -> float:
    """Exact match of the untouched model with ``N_SHOTS`` solved training examples before every test prompt."""
    shots = [e.messages() for e in split["train"][:N_SHOTS]]
    prompts = [few_shot_messages(shots, e.messages()[:-1]) for e in split["test"]]
    answers = generate_answers(model, tokenizer, prompts, max_new_tokens=16)
    return exact_match_rate(answers, [e.output for e in split["test"]], exact_match)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    info = setup_distributed()
    torch.set_num_threads(args.threads or max(1, torch.get_num_threads() // info.world_size))
    device = info.device if info.world_size > 1 else resolve_device(args.device)
    launcher = f"torchrun --nproc_per_node {info.world_size}" if info.world_size > 1 else "python"
    command = f"{launcher} examples/sft.py " + shlex.join(list(sys.argv[1:] if argv is None else argv))
    settings = run_settings(args, MAY_CHANGE_ON_RESUME)
    if info.is_main:
        check_run_folder(args.out_dir, args.resume, settings, MAY_CHANGE_ON_RESUME)
    try:
        model, tokenizer = load_model(args.smoke)
        split, credit = task_data(args)
        conversations = {name: [e.messages() for e in part] for name, part in split.items()}
        examples = {  # held-out losses are always of the answers only
            name: tokenize_sft_examples(c, tokenizer, name != "train" or not args.no_mask_prompt)
            for name, c in conversations.items()
        }
        check_run_fits(model, split, examples, args, info.world_size)  # before any minutes of baseline scoring
        model.to(device)
        results: dict[str, Any] = {"task": args.task, "method": args.method, "source": credit}
        if info.is_main:
            print(f"{args.task}: {', '.join(f'{n} {len(p):,}' for n, p in split.items())} examples; {credit}")
        before_file = Path(args.out_dir) / "before.json"  # the baseline, kept for a resumed run's results
        if args.resume and before_file.is_file():
            results["before"] = json.loads(before_file.read_text(encoding="utf-8"))
        elif args.baseline and info.is_main:
            results["before"] = evaluate_task(model, tokenizer, split, args, examples["test"])
            if args.task == "iso-dates":
                results["before"]["exact_match_3_shot"] = few_shot_baseline(model, tokenizer, split)
                print(f"before: exact match {results['before']['exact_match']:.2%} zero-shot, "
                      f"{results['before']['exact_match_3_shot']:.2%} {N_SHOTS}-shot")  # fmt: skip
            write_record(before_file, results["before"])
        if args.method == "lora":
            for p in model.parameters():
                p.requires_grad_(False)
            torch.manual_seed(args.seed)
            apply_lora(
                model, targets=args.targets, r=args.r, lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout
            )
        summary = trainable_parameters_summary(model)
        batches = SFTBatches(examples["train"], args.batch_size // args.grad_accum, seed=args.seed,
                             packing=args.packing, max_length=args.max_length, pad_id=tokenizer.pad_token_id or 0,
                             rank=info.rank, world_size=info.world_size, grad_accum=args.grad_accum)  # fmt: skip
        steps = args.epochs * len(batches) // args.grad_accum  # >= 1: check_run_fits
        warmup = min(max(1, int(args.warmup * steps)), steps - 1)  # a one-step run has none
        config = TrainConfig(steps=steps, max_seconds=60 * args.minutes if args.minutes else None, lr=args.lr,
                             warmup=warmup, schedule="cosine", min_lr_ratio=0.0,
                             weight_decay=args.weight_decay, betas=(0.9, 0.999), grad_clip=1.0,
                             grad_accum=args.grad_accum,
                             log_every=max(1, min(10, steps // 10)), seed=args.seed, device=str(device),
                             out_dir=args.out_dir)  # fmt: skip
        if info.is_main:
            print(f"{args.method}: {summary}; {steps} steps of {args.batch_size * info.world_size} examples, "
                  f"{'packed' if args.packing else 'padded'}; {torch.get_num_threads()} thread(s)")  # fmt: skip
        wrapped = DistributedDataParallel(model) if info.world_size > 1 else model
        first_step = checkpoint_info(Path(args.out_dir) / "checkpoints")["step"] if args.resume else 0
        if info.is_main and not args.resume:
            save_run_settings(args.out_dir, settings)
        wall, cpu = time.perf_counter(), time.process_time()
        history = train(wrapped, batches, sft_loss_fn, config, resume=args.resume,
                        progress=info.is_main and not args.no_progress)  # fmt: skip
        train_seconds, cpu_seconds = time.perf_counter() - wall, time.process_time() - cpu
        last_step = history[-1]["step"] if history else 0
        if not info.is_main:
            return {}
        if last_step < steps:
            print(f"stopped at step {last_step} of {steps} (--minutes): continue with --resume")
        if args.method == "lora":
            save_peft_adapter(model, Path(args.out_dir) / "adapter", base_model_name_or_path=BASE_MODEL)
        peak = peak_rss_bytes()  # the process's high-water mark so far: loading, any baseline, the training steps
        results["after"] = evaluate_task(model, tokenizer, split, args, examples["test"])
        results.update({
            "steps": steps, "first_step": first_step, "steps_done": last_step, "finished": last_step >= steps,
            "trainable_params": summary.trainable, "total_params": summary.total,
            "trainable_percent": 100 * summary.fraction,
            "train_seconds": round(train_seconds, 2), "cpu_seconds": round(cpu_seconds, 2),
            "seconds_per_step": round(train_seconds / (last_step - first_step), 3) if last_step > first_step else None,
            "peak_rss_gib": None if peak is None else round(peak / 2**30, 2),
            "history": history, "command": command, "commands": [*earlier_commands(args), command],
            "args": vars(args), "machine": machine_description(),
        })  # fmt: skip
        after = results["after"]
        line = f"after: test loss {after['test_loss']:.4f}"
        if "exact_match" in after:
            line += f", exact match {after['exact_match']:.2%}"
        memory = "" if peak is None else f", peak memory {peak / 2**30:.1f} GiB"
        print(f"{line}; {train_seconds:.0f} s training ({cpu_seconds:.0f} CPU-seconds){memory}")
        write_record(Path(args.out_dir) / "results.json", results)
        if args.json:
            write_record(args.json, results)
        if args.export:
            export_adapter(model, results, args)
        return results
    finally:
        cleanup_distributed()


if __name__ == "__main__":
    main()
