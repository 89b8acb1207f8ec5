"""Benchmark: our SFT loop against TRL's ``SFTTrainer`` with peft, same model, data, LoRA settings and budget.

One run trains, per seed of ``--seeds``, the SFT chapter's recipe twice and scores both models the same way:

- ``ours``: ``examples/sft.py``'s ``main()`` (imported as a module, not copied) with its defaults:
  SmolLM2-135M-Instruct in our Llama, our LoRA on every linear layer of the decoder (r=16, alpha=32, dropout
  0.05), AdamW (0.9, 0.999, weight decay 0), peak lr 1e-3, warm-up 5% of the steps then cosine to 0, gradient
  clipping at 1.0, batches of 16, one epoch of the iso-dates task's 2,000 training conversations, the loss on the
  assistant's tokens only;
- ``trl``: the same weights in Hugging Face's ``LlamaForCausalLM`` (``to_hf``), ``peft.LoraConfig`` with the same
  rank, alpha, dropout and the same seven projections, and TRL's ``SFTTrainer`` on a ``datasets.Dataset`` of the
  same conversations in **prompt-completion** form (``{"prompt": [system?, user], "completion": [assistant]}``), so
  that TRL trains on the completion only (the date task has no system message: SmolLM2's template adds its default
  one, for both). ``SFTConfig`` gets the same lr, cosine schedule and warm-up steps, batch size,
  epoch, clipping, betas and weight decay; no packing, float32 (``bf16=False``: TRL turns bf16 on by default), no
  gradient checkpointing (TRL's default is on; our loop recomputes nothing), no evaluation or checkpoint during
  training, logging every 10 steps, data-loader workers 0, ``use_cpu=True`` without a GPU.

What is made equal, and checked:

- **the tokens**: TRL tokenises the prompt-completion rows itself (the chat template, then the completion mask);
  its ``input_ids`` are compared with ours token by token on every training example and the first few are printed.
  TRL's completion is everything after the generation prompt, so it also trains on the newline that ChatML writes
  after ``<|im_end|>`` (a token the model never generates: decoding stops at ``<|im_end|>``); ours stops at the
  end-of-turn token. Unless ``--no-align``, TRL's prepared labels are cut after their last end-of-turn token,
  after which the labels equal ours on every example (checked, and the first batch TRL's data loader yields is
  compared with our micro-batch 0). ``assistant_only_loss=True``, TRL's other route, needs ``{% generation %}``
  markers that SmolLM2's template lacks and for which TRL ships no training template: the record keeps TRL's error.
- **the batches**: TRL's dataset is written in the order in which our ``SFTBatches`` reads the examples (seed
  ``s``) and read sequentially (``train_sampling_strategy="sequential"``): step ``i`` sees the same 16 examples
  in both runs. What still differs between the runs of one seed: the adapters' random initialisation and the
  dropout masks (each library draws them its own way).
- **the schedule**: ``warmup_steps`` is sft.py's ``int(0.05 * steps)`` (6 of 125), not Hugging Face's ratio
  (which rounds up to 7). Hugging Face's warm-up starts at lr 0 (its first update does nothing), ours at
  ``lr / warmup``; the cosine decays are the same. The record keeps every step's learning rate (TRL's read from
  its optimizer, ours from sft.py's schedule function, the one our loop's scheduler calls).

Measured for both: seconds per optimizer step (the median, wall clock, of the intervals between the starts of
consecutive steps' loss computations, after the first 3), total training seconds and CPU seconds (the process,
all threads) of the training call, the training loss of every step and the final one (mean of the last 10 steps),
and, after training, the held-out loss of the answers of the test conversations and the exact match on the 500
test prompts, both by **our** code on **our** model (TRL's: peft's ``merge_and_unload``, then ``from_hf``), so the
evaluation is identical. Our training time includes sft.py's final checkpoint (TRL saves nothing). One known
difference in the work per step: TRL's loss computes log-probabilities over the whole vocabulary at every position
of the batch (its chunked LM head, and the entropy it logs), ours projects only the trained positions
(``sft_loss_fn``'s ``logits_mask``).

TRL is a benchmark-only dependency (the ``bench`` extra), not one of the package's: install it with
``pip install "trl>=1.16"``.

Usage:
    python examples/benchmarks/sft_trl.py --json llmdocs/records/sft_trl.json   # ~1 h on 2 cores
    python examples/benchmarks/sft_trl.py --seeds 0 1 2 --threads 2 --json runs/sft_trl_3_seeds.json
    python examples/benchmarks/sft_trl.py --runs trl --no-align              # TRL as shipped: the newline trained too
    python examples/benchmarks/sft_trl.py --smoke                            # seconds: a tiny random Llama (tests)
"""

from __future__ import annotations

import argparse
import copy
import functools
import importlib.metadata
import importlib.util
import os
import re
import shlex
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here downloads: the model and tokenizer are packaged

import torch
from torch import Tensor, nn

from llmdocs.data.batches import IndexedBatches
from llmdocs.finetuning.sft import SFTBatches, tokenize_sft_examples
from llmdocs.finetuning.sft_labels import IGNORE_INDEX
from llmdocs.profiling import machine_description
from llmdocs.records import write_record
from llmdocs.training.schedules import warmup_cosine

TRL_REQUIREMENT = "trl>=1.16"
INSTALL_COMMAND = f'pip install "{TRL_REQUIREMENT}"'
MISSING_TRL = (
    "TRL is not installed. This benchmark runs TRL's SFTTrainer as the peer of our loop; TRL is a benchmark-only "
    f"dependency (the 'bench' extra), install it into this environment with: {INSTALL_COMMAND}"
)
RUNS = ("ours", "trl")
HF_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
"""Hugging Face's names of sft.py's default ``--targets``, ``TARGET_SETS["llama"]["all linear"]`` (our ``out_proj``
is their ``o_proj``): every linear layer of the decoder, the head excluded."""
SKIPPED_STEPS = 3
"""Steps left out of the median step time (the first ones pay for lazy allocations)."""
FINAL_WINDOW = 10
"""Steps averaged into the final training loss (the logging interval of both runs)."""
SHOWN_EXAMPLES = 3
"""Training examples whose tokenisation is printed token by token."""
VERSIONED = ("torch", "transformers", "peft", "trl", "datasets", "accelerate")
RECORDED_ARGS = (
    "learning_rate", "lr_scheduler_type", "warmup_steps", "num_train_epochs", "per_device_train_batch_size",
    "weight_decay", "adam_beta1", "adam_beta2", "adam_epsilon", "max_grad_norm", "optim", "seed",
    "train_sampling_strategy", "max_length", "packing", "completion_only_loss", "assistant_only_loss", "bf16",
    "fp16", "activation_checkpointing", "gradient_checkpointing", "use_cpu", "dataloader_num_workers",
)  # fmt: skip
"""TRL's settings kept in the record, as the trainer resolved them."""
GENERATION_TAG = re.compile(r"\{%-?\s*generation\s*-?%\}")


@functools.cache
def load_sft_script() -> ModuleType:
    """``examples/sft.py`` as a module (loaded once): the benchmark runs its recipe, not a copy of it."""
    path = Path(__file__).resolve().parents[1] / "sft.py"
    spec = importlib.util.spec_from_file_location("sft", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["sft"] = module
    spec.loader.exec_module(module)
    return module


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                allow_abbrev=False)  # fmt: skip
    p.add_argument("--runs", nargs="+", choices=RUNS, default=list(RUNS), help="trainers to run (default: both)")
    p.add_argument(
        "--seeds", nargs="+", type=int, default=[0], help="seeds: adapters, dropout, batch order (default: 0)"
    )
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: 0, torch's choice)")
    p.add_argument("--no-align", action="store_true",
                   help="keep TRL's labels as it makes them (the newline after <|im_end|> trained too)")  # fmt: skip
    p.add_argument("--out-dir", default=None,
                   help="keep each run's outputs here (sft.py's metrics, checkpoint, adapter); default: a temporary "
                        "folder, removed at the end")  # fmt: skip
    p.add_argument("--note", default="", help="free text stored in the record, e.g. what else ran")
    p.add_argument("--json", default=None, help="write the record to this file (after every run)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--smoke", action="store_true", help="a tiny random Llama, 16 examples, 4 steps: seconds (tests)")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The flags, each checked before any work; a missing TRL is reported with the command that installs it."""
    parser = build_parser()
    args = parser.parse_args(argv)
    for name in ("runs", "seeds"):
        values = getattr(args, name)
        if len(set(values)) != len(values):
            parser.error(f"--{name} lists a value twice: {values}")
    if args.threads < 0:
        parser.error(f"--threads must be >= 0 (0: torch's choice), got {args.threads}")
    if any(seed < 0 for seed in args.seeds):
        parser.error(f"--seeds must be >= 0, got {args.seeds}")
    if args.json is not None and Path(args.json).is_dir():
        parser.error(f"--json names a file to write, and {args.json} is a folder")
    if args.out_dir is not None and Path(args.out_dir).exists() and not Path(args.out_dir).is_dir():
        parser.error(f"--out-dir names a folder, and {args.out_dir} is a file")
    if "trl" in args.runs and importlib.util.find_spec("trl") is None:
        parser.exit(2, f"{parser.prog}: error: {MISSING_TRL}\n")
    return args


def sft_flags(args: argparse.Namespace, seed: int, out_dir: Path) -> list[str]:
    """sft.py's flags for one seed: its defaults (the chapter's recipe), this seed, and the run's folder."""
    flags = ["--task", "iso-dates", "--seed", str(seed), "--out-dir", str(out_dir)]
    flags += ["--threads", str(args.threads)] if args.threads else []
    flags += ["--no-progress"] if args.no_progress else []
    return flags + (["--smoke"] if args.smoke else [])


class StepClock:
    """Wall-clock start, loss and learning rate of every training step, recorded at its loss computation.

    Both trainers compute the loss once per optimizer step (no gradient accumulation), so the interval between
    the starts of two consecutive loss computations is one whole step: batch, forward, backward, clipping,
    update, logging.

    Examples:
        >>> clock = StepClock()
        >>> for loss in (3.0, 2.0, 1.0):
        ...     clock.start()
        ...     clock.end(torch.tensor(loss))
        >>> summary = clock.summary()
        >>> summary["steps"], summary["step_losses"], summary["final_train_loss"]
        (3, [3.0, 2.0, 1.0], 2.0)
    """

    def __init__(self) -> None:
        self.starts: list[float] = []
        self.losses: list[Tensor] = []  # detached: read once at the end, no synchronisation per step
        self.lrs: list[float] = []

    def start(self, lr: float | None = None) -> None:
        """A step begins (its loss is about to be computed), with this learning rate if known."""
        self.starts.append(time.perf_counter())
        if lr is not None:
            self.lrs.append(lr)

    def end(self, loss: Tensor) -> None:
        """The step's loss is computed."""
        self.losses.append(loss.detach())

    def summary(self) -> dict[str, Any]:
        """Steps, median seconds per step (after ``SKIPPED_STEPS``, fewer in a short run), every step's seconds
        and loss, the final training loss (mean of the last ``FINAL_WINDOW`` steps)."""
        if not self.losses:
            raise ValueError("no training step was recorded")
        intervals = [b - a for a, b in zip(self.starts, self.starts[1:], strict=False)]
        skip = min(SKIPPED_STEPS, max(0, len(intervals) - 1))
        losses = [float(loss) for loss in self.losses]
        out: dict[str, Any] = {
            "steps": len(losses),
            "seconds_per_step": round(statistics.median(intervals[skip:]), 4) if intervals else None,
            "timed_steps": len(intervals) - skip,
            "step_seconds": [round(x, 4) for x in intervals],
            "step_losses": losses,
            "final_train_loss": statistics.fmean(losses[-FINAL_WINDOW:]),
        }
        if self.lrs:
            out["step_lr"] = self.lrs
        return out


def run_ours(script: ModuleType, flags: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """sft.py's ``main(flags)``, with each training step timed: the loss function it hands to the loop is wrapped
    by a [StepClock][] (evaluation calls, in eval mode, pass through untimed).

    Returns:
        main()'s results and the clock's summary.
    """
    clock = StepClock()
    loss_fn = script.sft_loss_fn

    def timed_loss_fn(model: nn.Module, batch: Mapping[str, Tensor]) -> tuple[Tensor, int]:
        if not model.training:  # the held-out loss after training
            return loss_fn(model, batch)
        clock.start()
        loss, n_tokens = loss_fn(model, batch)
        clock.end(loss)
        return loss, n_tokens

    script.sft_loss_fn = timed_loss_fn  # main() looks the name up when it calls train()
    try:
        results = script.main(flags)
    finally:
        script.sft_loss_fn = loss_fn
    return results, clock.summary()


def training_order(n_examples: int, batch_size: int, seed: int) -> list[int]:
    """The example indices in the order our ``SFTBatches(examples, batch_size, seed)`` reads them in its first
    epoch (the last incomplete batch dropped): micro-batch ``i`` is ``order[i * batch_size : (i + 1) * batch_size]``.

    Examples:
        >>> order = training_order(10, batch_size=4, seed=0)
        >>> len(order), len(set(order))
        (8, 8)
    """
    index = torch.arange(n_examples)[:, None]  # (N, 1): what SFTBatches hands to IndexedBatches
    batches = IndexedBatches(index, batch_size=batch_size, seed=seed)
    return [int(i) for step in range(len(batches)) for i in batches.indices(step)]


def prompt_completion_rows(conversations: Sequence[Sequence[Mapping[str, str]]]) -> list[dict[str, list]]:
    """Conversations ending with one assistant turn as TRL's conversational prompt-completion rows.

    Raises:
        ValueError: If a conversation does not end with an assistant message.

    Examples:
        >>> chat = [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]
        >>> prompt_completion_rows([chat])[0]["completion"]
        [{'role': 'assistant', 'content': '4'}]
    """
    rows = []
    for i, messages in enumerate(conversations):
        if not messages or messages[-1]["role"] != "assistant":
            raise ValueError(f"conversations[{i}] must end with an assistant message, the completion")
        rows.append({"prompt": [dict(m) for m in messages[:-1]], "completion": [dict(messages[-1])]})
    return rows


def mask_after_end_of_turn(labels: Sequence[int], end_of_turn_id: int) -> list[int]:
    """Labels with everything after the last trained end-of-turn token set to -100 (what ours trains on).

    Examples:
        >>> mask_after_end_of_turn([-100, 7, 8, 2, 198], end_of_turn_id=2)
        [-100, 7, 8, 2, -100]
    """
    last = max((j for j, label in enumerate(labels) if label == end_of_turn_id), default=None)
    if last is None:
        return list(labels)
    return [*labels[: last + 1], *([IGNORE_INDEX] * (len(labels) - last - 1))]


def compare_tokenization(
    ours: Sequence[Mapping[str, Sequence[int]]], theirs: Sequence[Mapping[str, Sequence[int]]], tokenizer: Any
) -> dict[str, Any]:
    """Token-by-token comparison of two tokenisations of the same SFT examples: same ids, same trained positions.

    Returns:
        Counts of examples with equal ``input_ids`` and equal labels, the tokens one side trains and the other
        does not (decoded, counted), and for the first ``SHOWN_EXAMPLES`` the ids and both sides' trained tokens.

    Examples:
        >>> class Tok:
        ...     def decode(self, ids):
        ...         return "".join(chr(96 + i) for i in ids)
        >>> ours = [{"input_ids": [1, 2, 3], "labels": [-100, 2, -100]}]
        >>> theirs = [{"input_ids": [1, 2, 3], "labels": [-100, 2, 3]}]
        >>> report = compare_tokenization(ours, theirs, Tok())
        >>> report["same_input_ids"], report["same_labels"], report["trained_by_theirs_only"]
        (1, 0, {'c': 1})
    """
    if len(ours) != len(theirs):
        raise ValueError(f"ours ({len(ours)}) and theirs ({len(theirs)}) must list the same examples")
    same_ids = same_labels = 0
    only_theirs: Counter[str] = Counter()
    only_ours: Counter[str] = Counter()
    shown = []
    for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        ids_a, ids_b = list(a["input_ids"]), list(b["input_ids"])
        same_ids += ids_a == ids_b
        same_labels += list(a["labels"]) == list(b["labels"])
        trained_a = {j for j, label in enumerate(a["labels"]) if label != IGNORE_INDEX}
        trained_b = {j for j, label in enumerate(b["labels"]) if label != IGNORE_INDEX}
        only_theirs.update(tokenizer.decode([ids_b[j]]) for j in sorted(trained_b - trained_a))
        only_ours.update(tokenizer.decode([ids_a[j]]) for j in sorted(trained_a - trained_b) if j < len(ids_a))
        if i < SHOWN_EXAMPLES:
            shown.append({
                "tokens": len(ids_a), "same_input_ids": ids_a == ids_b, "input_ids": ids_a,
                "trained_ours": tokenizer.decode([ids_a[j] for j in sorted(trained_a)]),
                "trained_theirs": tokenizer.decode([ids_b[j] for j in sorted(trained_b)]),
                "trained_positions_ours": sorted(trained_a), "trained_positions_theirs": sorted(trained_b),
            })  # fmt: skip
    return {
        "examples": len(ours),
        "same_input_ids": same_ids,
        "same_labels": same_labels,
        "trained_by_theirs_only": dict(only_theirs),
        "trained_by_ours_only": dict(only_ours),
        "first": shown,
    }


def print_comparison(report: Mapping[str, Any], title: str) -> None:
    """The comparison's counts, and the first examples' trained tokens side by side."""
    n = report["examples"]
    print(f"{title}: {report['same_input_ids']}/{n} examples with the same input_ids, {report['same_labels']}/{n} "
          f"with the same trained positions; trained by TRL only: {report['trained_by_theirs_only'] or 'none'}, "
          f"by ours only: {report['trained_by_ours_only'] or 'none'}")  # fmt: skip
    for i, example in enumerate(report["first"]):
        print(f"  example {i}: {example['tokens']} tokens, ids {'equal' if example['same_input_ids'] else 'DIFFER'}; "
              f"trained ours {example['trained_ours']!r} at {example['trained_positions_ours']}, "
              f"TRL {example['trained_theirs']!r} at {example['trained_positions_theirs']}")  # fmt: skip


def first_batches_equal(ours: Mapping[str, Tensor], theirs: Mapping[str, Tensor]) -> bool:
    """Whether two padded batches hold the same tokens and labels at the same places (padding ids may differ).

    Examples:
        >>> a = {"input_ids": torch.tensor([[5, 6], [7, 0]]), "attention_mask": torch.tensor([[1, 1], [1, 0]]),
        ...      "labels": torch.tensor([[-100, 6], [7, -100]])}
        >>> first_batches_equal(a, {**a, "input_ids": torch.tensor([[5, 6], [7, 2]])})
        True
    """
    mask = ours["attention_mask"].bool()
    return (
        ours["input_ids"].shape == theirs["input_ids"].shape
        and torch.equal(mask, theirs["attention_mask"].bool())
        and torch.equal(ours["input_ids"][mask], theirs["input_ids"].to(ours["input_ids"].device)[mask])
        and torch.equal(ours["labels"], theirs["labels"].to(ours["labels"].device))
    )


def assistant_only_loss_check(tokenizer: Any) -> dict[str, Any]:
    """Whether TRL's ``assistant_only_loss=True`` could mask this chat template: it needs ``{% generation %}``
    markers, in the template or in a training template TRL ships for it."""
    template = tokenizer.chat_template
    out: dict[str, Any] = {"generation_markers": bool(GENERATION_TAG.search(template or ""))}
    try:
        from trl.chat_template_utils import get_training_chat_template
    except ImportError:  # an older TRL: the markers alone decide
        out["usable"] = out["generation_markers"]
        return out
    try:
        patched = get_training_chat_template(tokenizer)
    except ValueError as error:
        return {**out, "usable": False, "trl_error": str(error)}
    return {**out, "usable": True, "trl_training_template": patched is not None}


@functools.cache
def timed_trainer_class() -> type:
    """TRL's ``SFTTrainer`` whose training loss computations are recorded by a [StepClock][] (``trainer.clock``),
    with the learning rate of each step; nothing else changes."""
    from trl import SFTTrainer

    class TimedSFTTrainer(SFTTrainer):
        clock: StepClock

        def compute_loss(
            self,
            model: nn.Module,
            inputs: dict[str, Any],
            return_outputs: bool = False,
            num_items_in_batch: Tensor | int | None = None,
        ) -> Any:
            if not model.training:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            self.clock.start(self.optimizer.param_groups[0]["lr"])
            out = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            self.clock.end(out[0] if return_outputs else out)
            return out

    return TimedSFTTrainer


def trl_config(sft_args: argparse.Namespace, steps: int, seed: int, out_dir: Path, progress: bool) -> Any:
    """``SFTConfig`` with sft.py's recipe (see the module docstring for each choice)."""
    import dataclasses

    from trl import SFTConfig

    # transformers >= 5 renamed gradient_checkpointing (TRL's default: on) to activation_checkpointing
    fields = {f.name for f in dataclasses.fields(SFTConfig)}
    checkpointing = "activation_checkpointing" if "activation_checkpointing" in fields else "gradient_checkpointing"
    return SFTConfig(
        output_dir=str(out_dir),
        **{checkpointing: False},
        num_train_epochs=sft_args.epochs,
        per_device_train_batch_size=sft_args.batch_size,
        gradient_accumulation_steps=1,
        learning_rate=sft_args.lr,
        lr_scheduler_type="cosine",
        warmup_steps=max(1, int(sft_args.warmup * steps)),  # sft.py's count of warm-up steps
        weight_decay=sft_args.weight_decay,
        adam_beta1=0.9,
        adam_beta2=0.999,
        adam_epsilon=1e-8,
        max_grad_norm=1.0,
        seed=seed,
        data_seed=seed,
        train_sampling_strategy="sequential",  # the dataset is already in our batch order
        max_length=sft_args.max_length,
        packing=False,
        completion_only_loss=True,
        assistant_only_loss=False,
        bf16=False,
        fp16=False,
        logging_steps=10,
        eval_strategy="no",
        save_strategy="no",
        report_to="none",
        dataloader_num_workers=0,
        use_cpu=not torch.cuda.is_available(),
        disable_tqdm=not progress,
    )


def run_trl(
    script: ModuleType, sft_args: argparse.Namespace, seed: int, out_dir: Path, align: bool, progress: bool
) -> dict[str, Any]:
    """TRL's SFTTrainer on sft.py's model, data and recipe; tokenisation checked against ours, then trained,
    merged, converted back to our Llama and scored by sft.py's ``evaluate_task``."""
    import datasets
    from peft import LoraConfig

    from llmdocs.interop.hf_llama import from_hf, to_hf

    if not progress:
        datasets.disable_progress_bars()  # TRL's tokenising maps
    model, tokenizer = script.load_model(sft_args.smoke)
    split, _ = script.task_data(sft_args)
    conversations = {name: [e.messages() for e in part] for name, part in split.items()}
    examples = {
        name: tokenize_sft_examples(c, tokenizer, True, sft_args.max_length) for name, c in conversations.items()
    }
    order = training_order(len(examples["train"]), sft_args.batch_size, seed)
    ours_train = [examples["train"][i] for i in order]
    dataset = datasets.Dataset.from_list(prompt_completion_rows([conversations["train"][i] for i in order]))
    steps = sft_args.epochs * len(order) // sft_args.batch_size
    lora = LoraConfig(r=sft_args.r, lora_alpha=sft_args.lora_alpha, lora_dropout=sft_args.lora_dropout,
                      target_modules=HF_TARGETS, task_type="CAUSAL_LM")  # fmt: skip
    hf_model = to_hf(model).train()
    del model
    trainer = timed_trainer_class()(
        model=hf_model,
        args=trl_config(sft_args, steps, seed, out_dir, progress),
        train_dataset=dataset,
        processing_class=copy.deepcopy(tokenizer),  # TRL sets its pad token; ours stays untouched
        peft_config=lora,
    )
    trainer.clock = StepClock()
    result: dict[str, Any] = {"assistant_only_loss": assistant_only_loss_check(tokenizer)}
    prepared = trainer.train_dataset
    result["tokenization"] = compare_tokenization(ours_train, prepared, tokenizer)
    print_comparison(result["tokenization"], "TRL's tokenisation against ours")
    eot = tokenizer.eos_token_id
    if align:  # cut TRL's labels after <|im_end|>, as ours are
        prepared = prepared.map(lambda row: {"labels": mask_after_end_of_turn(row["labels"], eot)})
        trainer.train_dataset = prepared
        result["tokenization_aligned"] = compare_tokenization(ours_train, prepared, tokenizer)
        print_comparison(result["tokenization_aligned"], "after cutting TRL's labels after <|im_end|>")
    ours_first = SFTBatches(examples["train"], sft_args.batch_size, seed=seed, max_length=sft_args.max_length,
                            pad_id=tokenizer.pad_token_id or 0)(0)  # fmt: skip
    loader = trainer.get_train_dataloader()
    result["first_batch_equal"] = first_batches_equal(ours_first, next(iter(loader)))
    del loader
    why = "" if align else " (--no-align: its labels keep the newline after <|im_end|>)"
    print(f"TRL's first batch {'equals' if result['first_batch_equal'] else 'differs from'} our micro-batch 0{why}")
    result["trainable_params"] = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)

    wall, cpu = time.perf_counter(), time.process_time()
    output = trainer.train()
    train_seconds, cpu_seconds = time.perf_counter() - wall, time.process_time() - cpu
    result.update(trainer.clock.summary())
    result.update({
        "train_seconds": round(train_seconds, 2), "cpu_seconds": round(cpu_seconds, 2),
        "train_metrics": output.metrics, "log_history": trainer.state.log_history,
        "trl_args": {name: str(getattr(trainer.args, name)) for name in RECORDED_ARGS if hasattr(trainer.args, name)},
    })  # fmt: skip
    merged = trainer.model.merge_and_unload()  # the adapters folded into the weights: a plain LlamaForCausalLM
    del trainer
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    ours_again = from_hf(merged).to(device)
    result["after"] = script.evaluate_task(ours_again, tokenizer, split, sft_args, examples["test"])
    return result


def our_lrs(sft_args: argparse.Namespace, steps: int) -> list[float]:
    """The learning rate of each of our steps: sft.py's schedule (the loop's ``warmup_cosine``)."""
    warmup = max(1, int(sft_args.warmup * steps))
    return [sft_args.lr * warmup_cosine(s, warmup, steps) for s in range(steps)]


def versions() -> dict[str, str | None]:
    """Installed versions of the libraries both runs depend on."""
    out: dict[str, str | None] = {}
    for name in VERSIONED:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def spread(values: list[float]) -> dict[str, float]:
    """Mean, sample standard deviation (0 for one value), minimum and maximum."""
    return {
        "mean": statistics.fmean(values),
        "stdev": statistics.stdev(values) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
    }


SUMMARISED: dict[str, Callable[[dict[str, Any]], float | None]] = {
    "exact_match": lambda run: run["after"].get("exact_match"),
    "test_loss": lambda run: run["after"]["test_loss"],
    "final_train_loss": lambda run: run["final_train_loss"],
    "seconds_per_step": lambda run: run["seconds_per_step"],
    "train_seconds": lambda run: run["train_seconds"],
    "cpu_seconds": lambda run: run["cpu_seconds"],
}


def summarise(runs: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    """Per figure of ``SUMMARISED``: every seed's value and their spread."""
    out: dict[str, Any] = {}
    for name, get in SUMMARISED.items():
        values = [get(run) for run in runs.values()]
        if values and all(v is not None for v in values):
            out[name] = {"values": values, **spread([float(v) for v in values])}
    return out


def report_line(name: str, seed: int, run: Mapping[str, Any]) -> str:
    after = run["after"]
    match = f"exact match {after['exact_match']:.2%}, " if "exact_match" in after else ""
    per_step = f"{run['seconds_per_step']:.3f}" if run["seconds_per_step"] is not None else "-"
    return (f"{name:4} seed {seed}: {match}test loss {after['test_loss']:.4f}, final train loss "
            f"{run['final_train_loss']:.4f}; {per_step} s/step (median of {run['timed_steps']}), "
            f"{run['train_seconds']:.1f} s training, {run['cpu_seconds']:.0f} CPU-s")  # fmt: skip


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    script = load_sft_script()
    with tempfile.TemporaryDirectory(prefix="sft-trl-") as scratch:
        root = Path(args.out_dir) if args.out_dir is not None else Path(scratch)
        recipe = script.parse_args(sft_flags(args, args.seeds[0], root))
        record: dict[str, Any] = {
            "command": "python examples/benchmarks/sft_trl.py " + shlex.join(sys.argv[1:] if argv is None else argv),
            "machine": machine_description(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "note": args.note,
            "versions": versions(),
            "model": "tiny random Llama (--smoke)" if args.smoke else script.BASE_MODEL,
            "recipe": {k: v for k, v in vars(recipe).items() if k not in ("out_dir", "resume", "seed", "json")},
            "hf_target_modules": HF_TARGETS,
            "aligned_labels": not args.no_align,
            "seeds": args.seeds,
            "runs": {name: {} for name in args.runs},
        }
        for seed in args.seeds:
            for name in args.runs:
                out_dir = root / f"{name}-seed{seed}"
                load_before = os.getloadavg()
                if name == "ours":
                    results, timing = run_ours(script, sft_flags(args, seed, out_dir))
                    run = {**timing, "step_lr": our_lrs(recipe, results["steps"]), "after": results["after"],
                           "train_seconds": results["train_seconds"], "cpu_seconds": results["cpu_seconds"],
                           "trainable_params": results["trainable_params"], "sft_py": results}  # fmt: skip
                else:
                    sft_args = script.parse_args(sft_flags(args, seed, out_dir))
                    run = run_trl(script, sft_args, seed, out_dir, not args.no_align, not args.no_progress)
                run["load_average_before"] = [round(x, 2) for x in load_before]
                run["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
                record["runs"][name][str(seed)] = run
                print(report_line(name, seed, run), flush=True)
                if args.json:  # a long benchmark keeps what it measured so far
                    write_record(args.json, record)
    record["summary"] = {name: summarise(runs) for name, runs in record["runs"].items()}
    record["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    if args.json:
        write_record(args.json, record)
    return record


if __name__ == "__main__":
    main()
