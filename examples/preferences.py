"""Learning from preferences on the date task: a reward model, DPO, PPO and GRPO, all from one SFT start.

The preferences chapter's experiments, from the package's pieces. Every policy method starts from the same
supervised model (``--start``: an SFT adapter of ``examples/sft.py``, merged into SmolLM2-135M-Instruct) and
trains a **new** LoRA on top of it, so that switching the new adapters off gives back the start: the reference
model of DPO and of the KL terms, without a second copy in memory.

Methods (``--method``):

    reward-model  Bradley-Terry on preference pairs: a scalar head on the last token of the start model (+ LoRA),
                  or with ``--backbone minilm`` on the [CLS] of the packaged BERT encoder all-MiniLM-L6-v2
                  (fully fine-tuned, pairs as [CLS] prompt [SEP] answer [SEP] cut to ``--max-length``; English);
                  ``--data dates`` (the date task's pairs: the right date against 7 kinds of mistake) or
                  ``dpo-en`` / ``dpo-zh`` (LLaMA-Factory's 300 demo pairs, split 80/20 by prompt); scored by the
                  held-out pairwise accuracy (per kind of mistake on the dates). A decoder reward model's folder
                  is PPO's ``--reward-model``.
    dpo           DPO on the date task's training pairs (beta ``--beta``; ``--rpo-alpha`` adds the chosen
                  answers' NLL, RPO); the implicit reward margin and accuracy on the validation pairs are logged,
                  and each side's implicit reward.
    ppo           RLHF's PPO: one completion per prompt, a value head, a per-token KL penalty against the start,
                  GAE, clipped policy and value losses; the reward is the verifiable date reward (exact match
                  plus format) or, with ``--reward-model DIR``, a trained reward model's score.
    grpo          GRPO: ``--num-generations`` completions per prompt, group-relative advantages, the verifiable
                  date reward, KL to the start (``--beta``).

Every policy run is scored the same way, on the date task's test prompts (the SFT chapter's 500): greedy exact
match and mean reward, and the mean reward and KL to the start of one sampled completion per prompt (temperature
1, the sequence KL sum_t log pi(y_t | ...) - log pi_ref(y_t | ...) averaged over prompts, in nats). The same is
measured every ``--eval-every`` steps on ``--n-eval`` validation prompts: the reward-vs-KL curve over training.
``--minutes`` is a budget of training time: evaluations are not counted, so that every method gets the same
minutes of learning.

Outputs in ``--out-dir``: ``metrics.jsonl``/``metrics.csv``, ``checkpoints/`` (safetensors + JSON, every
``--checkpoint-every`` steps and at the end: ``--resume`` continues a run exactly), ``adapter/`` (the new LoRA in
peft's format; its base is the start model, merged) for the policy methods, ``before.json`` (the start's scores on
the test and validation splits, read back by ``--resume``) and ``results.json`` (also written to ``--json``): the
scores ``before`` and ``after`` training on the test split, ``start_validation`` (the validation scores at step 0,
where the curve of the ``eval_*`` rows starts), the history, steps, seconds (``train_seconds`` and
``train_cpu_seconds``: training only, the scoring not counted; ``wall_seconds`` and ``cpu_seconds``: the whole
run), memory and commands.

Usage:
    python examples/preferences.py --method grpo --minutes 10               # ~12 min on 2 cores with the scoring
    python examples/preferences.py --method dpo --minutes 10
    python examples/preferences.py --method ppo --minutes 10                # the verifiable reward
    python examples/preferences.py --method reward-model --out-dir runs/rm  # the date pairs' reward model ...
    python examples/preferences.py --method ppo --reward-model runs/rm      # ... as PPO's reward
    python examples/preferences.py --method reward-model --data dpo-en --backbone minilm --out-dir runs/rm-en
    python examples/preferences.py --method grpo --start runs/sft/adapter   # from your own SFT run
    python examples/preferences.py --method grpo --minutes 2 --out-dir runs/grpo   # stops with a checkpoint ...
    python examples/preferences.py --method grpo --out-dir runs/grpo --resume      # ... and carries on
    python examples/preferences.py --method dpo --smoke                     # seconds: a tiny random Llama (tests)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import shlex
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from llmdocs.data.iso_date_preferences import date_prompts, date_reward_fn, make_date_preference_pairs
from llmdocs.data.iso_dates import exact_match
from llmdocs.finetuning.freezing import trainable_parameters_summary
from llmdocs.finetuning.grpo_training import GRPOConfig, grpo_step
from llmdocs.finetuning.logprobs import response_token_log_probs
from llmdocs.finetuning.lora import apply_lora, disable_adapters, merge_lora
from llmdocs.finetuning.lora_budget import TARGET_SETS
from llmdocs.finetuning.packing import collate_padded
from llmdocs.finetuning.ppo_training import CausalLMWithValueHead, PPOConfig, ppo_step
from llmdocs.finetuning.preferences import (
    PreferenceBatches,
    dpo_loss_fn,
    encode_preference_pairs,
    reward_loss_fn,
    sequence_rewards,
    tokenize_preference_pairs,
)
from llmdocs.finetuning.reward_model import RewardModel
from llmdocs.finetuning.rollouts import sample_rollouts, score_rollouts
from llmdocs.finetuning.sft import exact_match_rate, generate_answers
from llmdocs.interop.peft_lora import load_peft_adapter, save_peft_adapter
from llmdocs.models.llama import Llama
from llmdocs.profiling import machine_description, peak_rss_bytes
from llmdocs.records import write_record
from llmdocs.tokenizers.wordpiece import WordPieceTokenizer
from llmdocs.training import TrainConfig, resolve_device
from llmdocs.training.checkpoint import checkpoint_info, latest_checkpoint, load_checkpoint, save_checkpoint
from llmdocs.training.loop import train
from llmdocs.training.metrics import append_jsonl, write_csv, write_jsonl
from llmdocs.training.run_folder import check_run_folder, run_settings, save_run_settings

METHODS = ("reward-model", "dpo", "ppo", "grpo")
DATA = ("dates", "dpo-en", "dpo-zh")
ALL_LINEAR = list(TARGET_SETS["llama"]["all linear"])  # q, k, v, out and the three SwiGLU projections
DEFAULT_LR = {"reward-model": 1e-4, "dpo": 5e-5, "ppo": 5e-5, "grpo": 5e-5}
ENCODER_LR = 3e-5
"""The BERT reward model's learning rate: all its weights train, as BERT is fine-tuned (Devlin et al., 2019,
appendix A.3: 2e-5 to 5e-5)."""
BACKBONES = ("start", "minilm")
DEFAULT_BATCH = {"reward-model": 8, "dpo": 8, "ppo": 16, "grpo": 4}
"""Pairs per step (reward model, DPO) or prompts per step (PPO: one completion each; GRPO: G each)."""
DEFAULT_STEPS = {"reward-model": 250, "dpo": 250, "ppo": 125, "grpo": 125}
"""One pass over the 2,000 training dates for the pair methods (and PPO), 500 prompts for GRPO: ``--minutes``
usually ends a run first."""
MAX_COMPLETION = 16
"""Most tokens a sampled or greedy answer may take (an ISO date and the end-of-turn token take 7)."""
DATA_SEED = 0
"""The data's seed, apart from ``--seed``: every run sees the SFT chapter's splits (``make_iso_date_task``)."""
DEMO_FRACTIONS = (0.8, 0.2)
"""LLaMA-Factory's demo pairs: train / test shares, split by prompt with ``seed=DATA_SEED``."""
SMOKE: dict[str, Any] = dict(n_train=16, n_eval=4, n_test=4, batch_size=2, steps=2, out_dir="runs/preferences-smoke")
MAY_CHANGE_ON_RESUME = (
    "minutes", "steps", "threads", "no_progress", "json", "device", "out_dir", "resume", "eval_every",
    "checkpoint_every",
)  # fmt: skip
"""The flags a ``--resume`` may change (budget, outputs, how often to score); any other difference is refused."""


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Show the usage docstring as written and every flag's default."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter, allow_abbrev=False)
    p.add_argument("--method", choices=METHODS, required=True, help="what to train")
    p.add_argument("--data", choices=DATA, default="dates", help="reward-model: which preference pairs")
    p.add_argument(
        "--backbone",
        choices=BACKBONES,
        default="start",
        help="reward-model: the start model's last token (+ LoRA) or all-MiniLM-L6-v2's [CLS] (BERT)",
    )
    p.add_argument(
        "--max-length",
        type=int,
        default=None,
        help="reward-model with --backbone minilm: tokens per side, [CLS] and [SEP]s included (unset: 512)",
    )
    p.add_argument("--start", default="shipped",
                   help="the SFT adapter (a peft folder, e.g. runs/sft/adapter) the policy starts from and the "
                        "reference stays at; 'shipped' = llmdocs.pretrained's smollm2-iso-dates-lora")  # fmt: skip
    p.add_argument(
        "--reward-model",
        default=None,
        metavar="DIR",
        help="ppo: score completions with this reward-model run's model instead of the date reward",
    )
    p.add_argument("--r", type=int, default=16, help="rank of the new LoRA")
    p.add_argument("--lora-alpha", type=float, default=32.0, help="LoRA alpha: the update is scaled by alpha / r")
    p.add_argument("--lr", type=float, default=None, help=f"learning rate, constant (default per method: {DEFAULT_LR})")
    p.add_argument("--batch-size", type=int, default=None,
                   help=f"pairs or prompts per step (default per method: {DEFAULT_BATCH})")  # fmt: skip
    p.add_argument("--steps", type=int, default=None, help=f"most steps (default per method: {DEFAULT_STEPS})")
    p.add_argument("--minutes", type=float, default=None, help="training budget (evaluations not counted)")
    p.add_argument(
        "--beta",
        type=float,
        default=None,
        help="dpo: beta of the implicit reward (default 0.1); grpo: KL coefficient (default 0.04)",
    )
    p.add_argument("--rpo-alpha", type=float, default=None,
                   help="dpo: add this times the chosen answers' NLL per token (RPO; Llama 3 uses 0.2)")  # fmt: skip
    p.add_argument("--num-generations", type=int, default=8, help="grpo: completions per prompt (G)")
    p.add_argument("--kl-coef", type=float, default=0.05, help="ppo: initial KL coefficient of the penalty")
    p.add_argument(
        "--target-kl",
        type=float,
        default=None,
        help="ppo: adaptive KL controller toward this KL per completion (default: fixed --kl-coef)",
    )
    p.add_argument("--ppo-epochs", type=int, default=4, help="ppo: passes over each batch of rollouts")
    p.add_argument("--mini-batches", type=int, default=2, help="ppo: mini-batches per pass")
    p.add_argument("--temperature", type=float, default=1.0, help="ppo, grpo: sampling temperature of the rollouts")
    p.add_argument("--n-train", type=int, default=2000, help="training dates (pairs, or prompts)")
    p.add_argument("--n-eval", type=int, default=100, help="validation prompts (or pairs) scored every --eval-every")
    p.add_argument("--n-test", type=int, default=500, help="test prompts (or pairs) scored at the start and the end")
    p.add_argument("--eval-every", type=int, default=10, help="steps between validation scores (0: end only)")
    p.add_argument("--checkpoint-every", type=int, default=50, help="steps between checkpoints (0: end only)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's choice)")
    p.add_argument("--seed", type=int, default=0, help="seed of the new adapters, the batch order and the sampling")
    p.add_argument("--out-dir", default=None, help="metrics, checkpoints, adapter, results (default runs/<method>)")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out-dir")
    p.add_argument("--json", default=None, help="also write results.json's content to this file")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    p.add_argument(
        "--smoke",
        action="store_true",
        help="a tiny random Llama (BERT with --backbone minilm) and a few examples: seconds (tests)",
    )
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Defaults, then --smoke's, then the flags given; every flag is checked before any work starts."""
    parser = build_parser()
    if "--smoke" in (sys.argv[1:] if argv is None else argv):
        parser.set_defaults(**SMOKE)
    args = parser.parse_args(argv)
    if args.lr is None:
        args.lr = ENCODER_LR if args.backbone == "minilm" else DEFAULT_LR[args.method]
    if args.batch_size is None:  # LLaMA-Factory's chats run to 2,000 tokens: 4 pairs at a time (8 rows) in SmolLM2
        args.batch_size = 4 if args.data != "dates" and args.backbone == "start" else DEFAULT_BATCH[args.method]
    args.steps = DEFAULT_STEPS[args.method] if args.steps is None else args.steps
    args.beta = {"dpo": 0.1, "grpo": 0.04}.get(args.method) if args.beta is None else args.beta
    args.out_dir = f"runs/{args.method}" if args.out_dir is None else args.out_dir
    for name in ("r", "batch_size", "steps", "ppo_epochs", "mini_batches", "n_train", "n_eval", "n_test"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.num_generations < 2:
        parser.error(f"--num-generations must be >= 2 (a group of one has no baseline), got {args.num_generations}")
    for name in ("seed", "threads", "eval_every", "checkpoint_every"):
        if getattr(args, name) < 0:
            parser.error(f"--{name.replace('_', '-')} must be >= 0, got {getattr(args, name)}")
    for name in ("lr", "lora_alpha", "temperature"):
        if not (math.isfinite(getattr(args, name)) and getattr(args, name) > 0):
            parser.error(f"--{name.replace('_', '-')} must be a positive number, got {getattr(args, name)}")
    for name in ("beta", "kl_coef"):
        value = getattr(args, name)
        if value is not None and not (math.isfinite(value) and value >= 0):
            parser.error(f"--{name.replace('_', '-')} must be a number >= 0, got {value}")
    rpo_alpha = args.rpo_alpha
    if rpo_alpha is not None and not (args.method == "dpo" and math.isfinite(rpo_alpha) and rpo_alpha >= 0):
        parser.error(f"--rpo-alpha is DPO's NLL weight: a number >= 0 with --method dpo, got {args.rpo_alpha}")
    if args.method == "dpo" and args.beta == 0:
        parser.error("--beta must be > 0 for dpo (it divides the log-ratio's scale), got 0")
    if args.target_kl is not None and not (math.isfinite(args.target_kl) and args.target_kl > 0):
        parser.error(f"--target-kl must be a positive number, got {args.target_kl}")
    if args.minutes is not None and not 0.0 < args.minutes < float("inf"):
        parser.error(f"--minutes must be a positive number, got {args.minutes}")
    if args.data != "dates" and args.method != "reward-model":
        parser.error(f"--data {args.data} is for --method reward-model; the policy methods train on the date task")
    if args.backbone == "minilm":
        if args.method != "reward-model":
            parser.error("--backbone minilm is a reward model's encoder: use it with --method reward-model")
        if args.data == "dpo-zh":
            parser.error("--backbone minilm reads English only (its uncased WordPiece vocabulary turns most Chinese "
                         "characters into [UNK]): use --backbone start for --data dpo-zh")  # fmt: skip
        if args.start != "shipped":
            parser.error("--start is the decoder's SFT adapter; --backbone minilm starts from all-MiniLM-L6-v2")
        args.max_length = 512 if args.max_length is None else args.max_length
        if not 5 <= args.max_length <= 512:
            parser.error(f"--max-length must be between 5 and 512 (BERT's positions), got {args.max_length}")
    elif args.max_length is not None:
        parser.error("--max-length is the BERT reward model's (--backbone minilm); the decoder reads whole chats")
    if args.reward_model is not None:
        if args.method != "ppo":
            parser.error("--reward-model is PPO's reward (GRPO and DPO use the date reward or the pairs)")
        if not (Path(args.reward_model) / "run_args.json").is_file():
            parser.error(f"--reward-model {args.reward_model} is not a folder of a --method reward-model run "
                         "(it has no run_args.json)")  # fmt: skip
        saved = json.loads((Path(args.reward_model) / "run_args.json").read_text(encoding="utf-8"))
        if saved.get("method") != "reward-model":
            parser.error(f"--reward-model {args.reward_model} was a --method {saved.get('method')} run, "
                         "not a reward model")  # fmt: skip
        if bool(saved.get("smoke")) != args.smoke:
            parser.error(f"--reward-model {args.reward_model} was trained {'with' if saved.get('smoke') else 'without'}"
                         " --smoke")  # fmt: skip
        if saved.get("backbone", "start") != "start":
            parser.error(f"--reward-model {args.reward_model} is a --backbone {saved['backbone']} reward model, "
                         "which reads another tokenizer's ids: PPO needs one of --backbone start")  # fmt: skip
        if latest_checkpoint(Path(args.reward_model) / "checkpoints") is None:
            parser.error(f"--reward-model {args.reward_model} holds no checkpoint: train it first")
    if args.method in ("reward-model", "dpo") and args.data == "dates" and args.n_train < args.batch_size:
        parser.error(f"--n-train ({args.n_train} pairs) must be at least --batch-size ({args.batch_size} pairs)")
    if args.method == "ppo" and args.batch_size % args.mini_batches:
        parser.error(f"--batch-size ({args.batch_size}) must be a multiple of --mini-batches ({args.mini_batches})")
    if args.start != "shipped" and not (Path(args.start) / "adapter_config.json").is_file():
        parser.error(f"--start {args.start} is not a peft adapter folder (no adapter_config.json); "
                     "use 'shipped' or the adapter/ folder of an examples/sft.py run")  # fmt: skip
    try:
        resolve_device(args.device)
    except ValueError as error:
        parser.error(f"--device: {error}")
    if args.json is not None and Path(args.json).is_dir():
        parser.error(f"--json names a file to write, and {args.json} is a folder")
    return args


# --- the models ------------------------------------------------------------------------------------------------


def load_start(start: str, smoke: bool) -> tuple[Llama, Any]:
    """The start model: SmolLM2-135M-Instruct with the SFT adapter ``start`` merged in (a plain Llama, frozen).

    With ``smoke``, a tiny random Llama of SmolLM2's vocabulary (the real tokenizer and chat template) stands in,
    and ``start`` is not read.
    """
    from llmdocs.models.smollm2 import load_smollm2, smollm2_tokenizer

    if smoke:
        from llmdocs.models.llama import LlamaConfig

        tokenizer = smollm2_tokenizer()
        torch.manual_seed(0)
        model = Llama(LlamaConfig.tiny(len(tokenizer), context_length=1024))
    elif start == "shipped":
        from llmdocs.pretrained import load_smollm2_lora

        model, tokenizer, _ = load_smollm2_lora()
    else:
        model, tokenizer = load_smollm2()
        load_peft_adapter(model, start)
    if not smoke:
        merge_lora(model)  # W_0 + (alpha / r) B A: the start is now the base the new adapters sit on
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval(), tokenizer


def load_encoder_reward_model(smoke: bool, seed: int) -> tuple[nn.Module, Any]:
    """A new BERT reward model on the packaged all-MiniLM-L6-v2 (one output on [CLS], N(0, 0.02) head seeded by
    ``seed``), and its WordPiece tokenizer. With ``smoke``, a tiny random BERT with MiniLM's vocabulary."""
    from llmdocs.finetuning.classification import minilm_classifier

    torch.manual_seed(seed)
    if smoke:
        from llmdocs.data.minilm import minilm_dir
        from llmdocs.models.bert import BertConfig, BertForSequenceClassification

        tokenizer = WordPieceTokenizer.from_vocab_file(minilm_dir() / "vocab.txt", do_lower_case=True)
        return BertForSequenceClassification(BertConfig.tiny(tokenizer.vocab_size, context_length=512), 1), tokenizer
    return minilm_classifier(n_classes=1, dropout=0.1)


def add_lora(model: nn.Module, args: argparse.Namespace) -> None:
    """A new LoRA on every linear layer of the decoder, seeded by ``--seed``; no dropout (for the RL methods the
    log-probabilities of the sampling policy and of the update must be those of one model)."""
    torch.manual_seed(args.seed)
    apply_lora(model, targets=ALL_LINEAR, r=args.r, lora_alpha=args.lora_alpha, lora_dropout=0.0)


def load_reward_model(folder: str, start: Llama) -> RewardModel:
    """The reward model of a ``--method reward-model`` run (checked by ``parse_args``): rebuilt from its
    run_args.json on a copy of the start model, then its newest checkpoint (safetensors) loaded into it."""
    import copy

    saved = json.loads((Path(folder) / "run_args.json").read_text(encoding="utf-8"))
    backbone = copy.deepcopy(start)
    rm_args = argparse.Namespace(seed=saved["seed"], r=saved["r"], lora_alpha=saved["lora_alpha"])
    add_lora(backbone, rm_args)
    model = RewardModel(backbone)
    load_checkpoint(Path(folder) / "checkpoints", model, restore_rng=False)
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()


# --- the data --------------------------------------------------------------------------------------------------


def preference_data(args: argparse.Namespace) -> tuple[dict[str, list[Any]], str]:
    """Preference pairs by split (train, validation, test) and a credit line."""
    if args.data == "dates":
        pairs = make_date_preference_pairs(args.n_train, 200, args.n_test, seed=DATA_SEED)
        split = {name: list(part) for name, part in pairs.items()}
        split["validation"] = split["validation"][: args.n_eval]
        credit = "generated by llmdocs.data.iso_date_preferences (the date task's answers and 7 kinds of mistake)"
    else:
        from llmdocs.data.llamafactory import LLAMAFACTORY_ATTRIBUTION, load_dpo_pairs, split_examples

        records = load_dpo_pairs("en" if args.data == "dpo-en" else "zh")
        split = split_examples(records, fractions=DEMO_FRACTIONS, seed=DATA_SEED, names=("train", "test"))
        split["validation"] = split["test"]  # 300 pairs: no third split; the test pairs are scored during training
        credit = LLAMAFACTORY_ATTRIBUTION
    if args.smoke:
        sizes = {"train": args.n_train, "validation": args.n_eval, "test": args.n_test}
        split = {name: part[: sizes[name]] for name, part in split.items()}
    return split, credit


def pair_of(item: Any) -> Any:
    """The PreferencePair of a date pair (which also carries its kind and example) or of a demo pair."""
    return getattr(item, "pair", item)


def pad_id_of(tokenizer: Any) -> int:
    """The id written at padding: BERT's [PAD], or the decoder tokenizer's pad token (0 if it has none)."""
    if isinstance(tokenizer, WordPieceTokenizer):
        return tokenizer.convert_tokens_to_ids([tokenizer.pad_token])[0]
    return tokenizer.pad_token_id or 0


def encode_pairs(items: list[Any], tokenizer: Any, args: argparse.Namespace) -> list[dict]:
    """The pairs as token ids: the chat template for the decoder, ``[CLS] prompt [SEP] answer [SEP]`` for BERT."""
    pairs = [pair_of(item) for item in items]
    if args.backbone == "minilm":
        try:
            return encode_preference_pairs(pairs, tokenizer, max_length=args.max_length)
        except ValueError as error:  # a --max-length so short that both answers of a pair read the same
            raise SystemExit(f"--max-length {args.max_length} is too short for these pairs: {error}") from error
    return tokenize_preference_pairs(pairs, tokenizer)


def prompt_data(args: argparse.Namespace) -> dict[str, tuple[list[Any], list[str]]]:
    """The date task's prompts and reference answers by split (the SFT chapter's splits)."""
    pairs = make_date_preference_pairs(args.n_train, 200, args.n_test, seed=DATA_SEED)
    out = {}
    for name, part in pairs.items():
        examples = [p.example for p in part][: args.n_eval if name == "validation" else None]
        prompts = date_prompts(examples)
        out[name] = ([m for m, _ in prompts], [r for _, r in prompts])
    if args.smoke:
        sizes = {"train": args.n_train, "validation": args.n_eval, "test": args.n_test}
        out = {name: (m[: sizes[name]], r[: sizes[name]]) for name, (m, r) in out.items()}
    return out


# --- scoring ---------------------------------------------------------------------------------------------------


def policy_scores(policy: Llama, tokenizer: Any, prompts: list[Any], references: list[str], seed: int,
                  reward_model: RewardModel | None = None) -> dict:  # fmt: skip
    """Greedy exact match and reward, and the reward and KL to the start (adapters off) of one sample per prompt;
    with ``reward_model`` (PPO's learned reward), also its mean score of the same samples (``sampled_rm_score``):
    the score the policy is trained to raise, next to the date reward it stands for.

    The KL of a sampled completion y is sum_t [log pi(y_t | x, y_<t) - log pi_ref(y_t | x, y_<t)]: its mean over
    prompts estimates KL(pi || pi_ref) per completion, in nats (the k1 estimator, unbiased).
    """
    was_training = policy.training
    policy.eval()
    greedy = generate_answers(policy, tokenizer, prompts, max_new_tokens=MAX_COMPLETION, batch_size=32)
    rollouts = sample_rollouts(policy, tokenizer, prompts, 1, MAX_COMPLETION, temperature=1.0, seed=seed,
                               batch_size=32)  # fmt: skip
    sampled = score_rollouts(date_reward_fn, rollouts, references)  # (N,)
    batch = rollouts.batch()
    kls, rm_scores = [], []
    with torch.no_grad():
        for i in range(0, len(prompts), 32):  # (32, T, V) logits at a time: 500 rows at once would take GBs
            ids, mask, labels = (batch[k][i : i + 32] for k in ("input_ids", "attention_mask", "labels"))
            logp, token_mask = response_token_log_probs(policy, ids, labels, mask)  # (n, T - 1) each
            with disable_adapters(policy):
                ref, _ = response_token_log_probs(policy, ids, labels, mask)
            kls.append(((logp - ref) * token_mask).sum(dim=1))  # (n,)
            if reward_model is not None:
                rm_scores.append(reward_model(ids, attention_mask=mask).float())  # (n,), as ppo_step reads it
    policy.train(was_training)
    greedy_rewards = date_reward_fn(greedy, references)
    extra = {"sampled_rm_score": float(torch.cat(rm_scores).mean())} if rm_scores else {}
    return {
        **extra,
        "exact_match": exact_match_rate(greedy, references, exact_match),
        "reward": sum(greedy_rewards) / len(greedy_rewards),
        "sampled_reward": float(sampled.mean()),
        "kl": float(torch.cat(kls).mean()),
        "completion_length": float(rollouts.completion_lengths.float().mean()),
        "answers": greedy,
    }


def pair_scores(
    model: nn.Module, examples: list[dict], pad_id: int, method: str, kinds: list[str] | None, beta: float = 0.1
) -> dict:
    """Held-out pairwise accuracy (chosen scored above rejected) and mean margin; per kind of mistake if known.

    Every pair is scored (8 at a time, the last chunk shorter). For a reward model the scores are its rewards;
    for DPO the implicit rewards beta log pi / pi_ref, and the chosen side's mean (``chosen_reward``) and the
    rejected side's (``rejected_reward``).
    """
    margins, chosen = [], []
    with torch.no_grad():
        for i in range(0, len(examples), 8):
            chunk = examples[i : i + 8]
            batch = collate_padded([p["chosen"] for p in chunk] + [p["rejected"] for p in chunk], pad_id=pad_id)
            if method == "reward-model":
                rewards = sequence_rewards(model, batch)  # (2B,)
                margins.append(rewards[: len(chunk)] - rewards[len(chunk) :])
            else:
                out, _ = dpo_loss_fn(model, batch, beta=beta)
                margins.append(out.chosen_rewards - out.rejected_rewards)
                chosen.append(out.chosen_rewards)
    margin = torch.cat(margins)  # (n_pairs,)
    scores: dict[str, Any] = {"pair_accuracy": float((margin > 0).float().mean()), "margin": float(margin.mean())}
    if chosen:  # DPO: beta log pi(y_w) / pi_ref(y_w); below 0 when the right answers became less likely
        scores["chosen_reward"] = float(torch.cat(chosen).mean())
        scores["rejected_reward"] = scores["chosen_reward"] - scores["margin"]
    if kinds is not None:
        by_kind: dict[str, list[bool]] = {}
        for kind, m in zip(kinds, margin.tolist(), strict=True):
            by_kind.setdefault(kind, []).append(m > 0)
        scores["pair_accuracy_by_kind"] = {k: sum(v) / len(v) for k, v in sorted(by_kind.items())}
    return scores


# --- training --------------------------------------------------------------------------------------------------


class TrainingClock:
    """Seconds of training: a monotonic clock that stops while the model is scored, so ``--minutes`` buys every
    method the same learning time however long its evaluations take; ``cpu()`` is the process's CPU seconds (all
    threads), stopped likewise."""

    def __init__(self) -> None:
        self.paused = 0.0
        self.paused_cpu = 0.0

    def __call__(self) -> float:
        return time.perf_counter() - self.paused

    def cpu(self) -> float:
        return time.process_time() - self.paused_cpu

    @contextlib.contextmanager
    def stopped(self) -> Iterator[None]:
        """Neither clock counts what runs inside (the scoring)."""
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.paused += time.perf_counter() - wall
            self.paused_cpu += time.process_time() - cpu


def train_on_pairs(model: nn.Module, split: dict[str, list[Any]], tokenizer: Any, args: argparse.Namespace,
                   evaluate: Callable[[nn.Module], dict], clock: TrainingClock) -> list[dict]:  # fmt: skip
    """The reward model or DPO through the package's training loop (checkpoints, budget, exact resume)."""
    examples = encode_pairs(split["train"], tokenizer, args)
    batches = PreferenceBatches(examples, args.batch_size, seed=args.seed, pad_id=pad_id_of(tokenizer))
    if args.method == "reward-model":
        loss_fn = reward_loss_fn
    else:

        def loss_fn(m: nn.Module, b: dict) -> tuple[torch.Tensor, int]:
            out, n = dpo_loss_fn(m, b, beta=args.beta, rpo_alpha=args.rpo_alpha)
            return out.loss, n

    began = clock() - _trained_seconds(args)

    def timed_evaluate(m: nn.Module, step: int) -> dict:
        trained = round(clock() - began, 2)
        with clock.stopped():
            scores = evaluate(m)
        return {
            "train_seconds": trained,
            **{f"eval_{k}": v for k, v in scores.items() if not isinstance(v, list | dict)},
        }

    config = TrainConfig(steps=args.steps, max_seconds=60 * args.minutes if args.minutes else None, lr=args.lr,
                         warmup=0, schedule="constant", weight_decay=0.0, betas=(0.9, 0.999), grad_clip=1.0,
                         log_every=1, eval_every=args.eval_every, checkpoint_every=args.checkpoint_every,
                         keep_checkpoints=1, seed=args.seed, device=args.device, out_dir=args.out_dir)  # fmt: skip
    return train(model, batches, loss_fn, config, evaluate=timed_evaluate, resume=args.resume,
                 progress=not args.no_progress, clock=clock)  # fmt: skip


def _trained_seconds(args: argparse.Namespace) -> float:
    """Training seconds of the run so far: 0, or on ``--resume`` those of the newest logged row that has them."""
    file = Path(args.out_dir) / "metrics.jsonl"
    if not (args.resume and file.is_file()):
        return 0.0
    rows = [json.loads(line) for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]
    return max((row["train_seconds"] for row in rows if "train_seconds" in row), default=0.0)


def train_with_rollouts(model: nn.Module, prompts: tuple[list[Any], list[str]], tokenizer: Any,
                        args: argparse.Namespace, evaluate: Callable[[nn.Module], dict], clock: TrainingClock,
                        reward_model: RewardModel | None) -> list[dict]:  # fmt: skip
    """PPO or GRPO: a loop of steps, each sampling from the current policy; checkpoints hold the adapters, the value
    head, the optimizer, the KL controller and the history, and each step's sampling seed is a function of the step,
    so a resumed run continues exactly."""
    messages, references = prompts
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=args.lr, betas=(0.9, 0.999), weight_decay=0.0)
    if args.method == "grpo":
        config: GRPOConfig | PPOConfig = GRPOConfig(
            num_generations=args.num_generations, max_completion_length=MAX_COMPLETION,
            temperature=args.temperature, beta=args.beta, loss_type="grpo")  # fmt: skip
    else:
        config = PPOConfig(max_completion_length=MAX_COMPLETION, temperature=args.temperature,
                           num_ppo_epochs=args.ppo_epochs, num_mini_batches=args.mini_batches,
                           kl_coef=args.kl_coef, target_kl=args.target_kl)  # fmt: skip
    controller = config.kl_controller() if isinstance(config, PPOConfig) else None
    out_dir = Path(args.out_dir)
    ckpt_dir, metrics_path = out_dir / "checkpoints", out_dir / "metrics.jsonl"
    start, history, trained_seconds = 0, [], 0.0
    if args.resume and latest_checkpoint(ckpt_dir) is not None:
        state = load_checkpoint(ckpt_dir, model, optimizer)
        start, history = state["step"], state["extra"]["history"]
        trained_seconds = state["extra"]["train_seconds"]
        if controller is not None:
            controller.value = state["extra"]["kl_coef"]
    write_jsonl(metrics_path, history)
    n = len(messages)
    bar = tqdm(total=args.steps, initial=start, disable=args.no_progress, dynamic_ncols=True)
    began = clock() - trained_seconds
    for step in range(start, args.steps):
        positions = [(step * args.batch_size + j) for j in range(args.batch_size)]
        order = {e: torch.randperm(n, generator=torch.Generator().manual_seed(args.seed * 7919 + e)).tolist()
                 for e in {p // n for p in positions}}  # fmt: skip
        chosen = [order[p // n][p % n] for p in positions]  # epoch-wise shuffles of the training prompts
        batch_prompts, batch_refs = [messages[i] for i in chosen], [references[i] for i in chosen]
        seed = args.seed * 1_000_003 + step
        if isinstance(config, GRPOConfig):
            metrics = grpo_step(model, optimizer, tokenizer, batch_prompts, batch_refs, date_reward_fn, config, seed)
        elif reward_model is not None:
            metrics = ppo_step(model, optimizer, tokenizer, batch_prompts, reward_model=reward_model, config=config,
                               kl_controller=controller, seed=seed)  # fmt: skip
        else:
            metrics = ppo_step(model, optimizer, tokenizer, batch_prompts, batch_refs, date_reward_fn, config=config,
                               kl_controller=controller, seed=seed)  # fmt: skip
        done = step + 1
        row = {"step": done, **{k: v for k, v in metrics.items() if isinstance(v, int | float)}}
        row["train_seconds"] = round(clock() - began, 2)
        out_of_time = args.minutes is not None and clock() - began >= 60 * args.minutes and done < args.steps
        if (args.eval_every and done % args.eval_every == 0) or done == args.steps or out_of_time:
            with clock.stopped():
                row |= {f"eval_{k}": v for k, v in evaluate(model).items() if not isinstance(v, list | dict)}
        history.append(row)
        append_jsonl(metrics_path, row)
        bar.update(1)
        bar.set_postfix(reward=f"{metrics.get('reward', metrics.get('score', 0.0)):.3f}", kl=f"{metrics['kl']:.3f}")
        if (args.checkpoint_every and done % args.checkpoint_every == 0) or done == args.steps or out_of_time:
            extra = {"history": history, "train_seconds": row["train_seconds"],
                     "kl_coef": controller.value if controller is not None else None}  # fmt: skip
            save_checkpoint(ckpt_dir, model, optimizer, None, done, extra, keep=1)
        if out_of_time:
            bar.write(f"stopped after step {done} of {args.steps}: --minutes {args.minutes:g} spent")
            break
    bar.close()
    write_csv(out_dir / "metrics.csv", history)
    return history


def earlier_commands(args: argparse.Namespace) -> list[str]:
    """The commands that ran this run folder before (from its ``results.json``), when this call resumes it."""
    file = Path(args.out_dir) / "results.json"
    if not (args.resume and file.is_file()):
        return []
    return list(json.loads(file.read_text(encoding="utf-8")).get("commands", []))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    command = "python examples/preferences.py " + shlex.join(list(sys.argv[1:] if argv is None else argv))
    settings = run_settings(args, MAY_CHANGE_ON_RESUME)
    check_run_folder(args.out_dir, args.resume, settings, MAY_CHANGE_ON_RESUME)
    reward_model = None
    if args.backbone == "minilm":
        model, tokenizer = load_encoder_reward_model(args.smoke, args.seed)
        policy = None
    else:
        start_model, tokenizer = load_start(args.start, args.smoke)
        reward_model = load_reward_model(args.reward_model, start_model) if args.reward_model else None
        add_lora(start_model, args)
        policy = start_model
        if args.data != "dates":  # long chats: recompute each block in the backward pass instead of keeping it
            policy.gradient_checkpointing_enable()
        model = RewardModel(policy) if args.method == "reward-model" else policy
        if args.method == "ppo":
            model = CausalLMWithValueHead(policy)
    device = resolve_device(args.device)
    model.to(device)
    if reward_model is not None:
        reward_model.to(device)
    summary = trainable_parameters_summary(model)
    start_name = "all-MiniLM-L6-v2" if args.backbone == "minilm" else args.start
    results: dict[str, Any] = {"method": args.method, "start": start_name}
    clock = TrainingClock()
    resumed_from = latest_checkpoint(Path(args.out_dir) / "checkpoints") if args.resume else None
    first_step = checkpoint_info(resumed_from)["step"] if resumed_from is not None else 0
    if not args.resume:
        save_run_settings(args.out_dir, settings)
    wall, cpu = time.perf_counter(), time.process_time()
    beta = args.beta if args.method == "dpo" else 0.1  # pair_scores' DPO scale (unused for a reward model)
    if args.method in ("reward-model", "dpo"):
        split, credit = preference_data(args)
        kinds = {name: [p.kind for p in split[name]] if args.data == "dates" else None for name in split}
        held_out = {name: encode_pairs(split[name], tokenizer, args) for name in ("validation", "test")}
        print(f"{args.method} on {args.data}: {', '.join(f'{n} {len(p):,}' for n, p in split.items())} pairs; {credit}")
        results["source"] = credit
    else:
        print(f"{args.method} on the date task, from {args.start}")
    prompts = prompt_data(args) if args.method != "reward-model" else None

    pad_id = pad_id_of(tokenizer)

    def score(part: str) -> dict[str, Any]:
        """The held-out scores on a split: pairwise accuracy (pair methods) and the policy's scores (policies)."""
        scores: dict[str, Any] = {}
        if args.method in ("reward-model", "dpo"):
            scores |= pair_scores(model, held_out[part], pad_id, args.method, kinds[part], beta)
        if prompts is not None:
            scores |= policy_scores(policy, tokenizer, *prompts[part], seed=args.seed, reward_model=reward_model)
        return scores

    before_file = Path(args.out_dir) / "before.json"  # scored once: a resumed run reads it
    if args.resume and before_file.is_file():
        saved = json.loads(before_file.read_text(encoding="utf-8"))
        results["before"] = saved.get("test", saved)  # an older preferences.py kept the test scores alone
        results["start_validation"] = saved.get("validation")
    else:
        model.eval()
        results["before"] = score("test")
        results["start_validation"] = score("validation")  # where the validation curve starts (step 0)
        write_record(before_file, {"test": results["before"], "validation": results["start_validation"]})
    cpu_began = clock.cpu()
    if args.method in ("reward-model", "dpo"):
        history = train_on_pairs(model, split, tokenizer, args, lambda m: score("validation"), clock)
    else:
        history = train_with_rollouts(model, prompts["train"], tokenizer, args, lambda m: score("validation"), clock,
                                      reward_model)  # fmt: skip
    train_cpu_seconds = clock.cpu() - cpu_began
    model.eval()
    results["after"] = score("test")
    wall_seconds, cpu_seconds = time.perf_counter() - wall, time.process_time() - cpu
    last_step = history[-1]["step"] if history else first_step
    if args.method != "reward-model":
        save_peft_adapter(policy, Path(args.out_dir) / "adapter", base_model_name_or_path=f"{args.start} (merged)")
    peak = peak_rss_bytes()
    train_seconds = max((row["train_seconds"] for row in history if "train_seconds" in row), default=None)
    results.update({
        "steps": args.steps, "first_step": first_step, "steps_done": last_step, "finished": last_step >= args.steps,
        "trainable_params": summary.trainable, "total_params": summary.total,
        "wall_seconds": round(wall_seconds, 2), "cpu_seconds": round(cpu_seconds, 2),
        "train_seconds": train_seconds, "train_cpu_seconds": round(train_cpu_seconds, 2),
        "peak_rss_gib": None if peak is None else round(peak / 2**30, 2),
        "history": history, "command": command, "commands": [*earlier_commands(args), command],
        "args": vars(args), "machine": machine_description(),
    })  # fmt: skip
    before, after = results["before"], results["after"]
    for key in ("pair_accuracy", "exact_match", "reward", "kl"):
        if key in after:
            print(f"{key}: {before[key]:.4f} -> {after[key]:.4f}")
    write_record(Path(args.out_dir) / "results.json", results)
    if args.json:
        write_record(args.json, results)
    return results


if __name__ == "__main__":
    main()
