"""One GRPO step: sample a group of completions per prompt, score them, and update the policy on their advantages.

    1. rollouts   G completions of each of P prompts from the current policy (pi_old)   sample_rollouts
    2. rewards    r_i = reward_fn(completion_i, reference of its prompt)                 e.g. the date task's reward
    3. advantages A_i = (r_i - mean of its group) / (std of its group + eps)           group_relative_advantages
    4. update     num_iterations times: grpo_loss on the per-token log-probabilities, clip the gradient, step

No value model and no reward model: with a verifiable reward (DeepSeek-R1's "rule-based rewards") the only models
are the policy and, for the KL term, the reference, which is the policy with its LoRA adapters switched off
([disable_adapters][llmdocs.finetuning.lora.disable_adapters]): one model in memory. A group whose completions all
score the same has advantages 0 and teaches nothing (``frac_reward_zero_std``, TRL's metric): with a task the
policy already solves, most groups are such groups, which is why G matters.

[grpo_step][llmdocs.finetuning.grpo_training.grpo_step] returns the step's metrics, the names TRL's
``GRPOTrainer`` logs where there is one (``reward``, ``reward_std``, ``frac_reward_zero_std``, ``kl``,
``clip_ratio``, ``completion_length``), so a loop around it is a few lines.

References:
    Shao et al., "DeepSeekMath", 2024, section 4.1.2 (Algorithm 1, iterative GRPO); DeepSeek-AI, "DeepSeek-R1",
    2025, section 2.2; Hugging Face TRL ``GRPOTrainer`` and ``GRPOConfig`` (the names of the settings and metrics).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from llmdocs.finetuning.grpo import GRPO_LOSS_TYPES, REWARD_SCALINGS, GRPOLoss, group_relative_advantages, grpo_loss
from llmdocs.finetuning.logprobs import response_token_log_probs
from llmdocs.finetuning.lora import disable_adapters
from llmdocs.finetuning.masked import _finite_nonnegative, _finite_positive, _number
from llmdocs.finetuning.rollouts import sample_rollouts, score_rollouts

__all__ = ["GRPOConfig", "grpo_step"]

RewardFn = Callable[[list[str], list[str]], Sequence[float]]


@dataclass(frozen=True)
class GRPOConfig:
    """The settings of a GRPO step (TRL ``GRPOConfig``'s names; defaults chosen for LoRA on a 135M model on CPU).

    Attributes:
        num_generations: G, completions per prompt (>= 2: a group of one has no baseline).
        max_completion_length: Most tokens per completion, its end-of-turn token included.
        temperature: Sampling temperature > 0 (1.0 samples the policy itself, as the loss assumes).
        beta: KL coefficient >= 0 (TRL 0.0, DeepSeekMath 0.04); the KL to the reference is measured either way.
        epsilon: Lower clip range of the ratio, in [0, 1).
        epsilon_high: Upper clip range (None: ``epsilon``).
        loss_type: How token losses are averaged: ``"grpo"``, ``"bnpo"``, ``"dr_grpo"`` or ``"dapo"``.
        scale_rewards: ``"group"``, ``"batch"`` or ``"none"`` (see ``group_relative_advantages``).
        num_iterations: Updates per batch of samples (mu of DeepSeekMath; 1 = on-policy, nothing clipped).
        max_grad_norm: Gradient clipping (> 0, or None for none).

    Examples:
        >>> GRPOConfig(num_generations=4, beta=0.0).loss_type
        'grpo'
        >>> GRPOConfig(num_generations=1)
        Traceback (most recent call last):
        ...
        ValueError: num_generations must be >= 2 (a group of one has no baseline), got 1
    """

    num_generations: int = 8
    max_completion_length: int = 16
    temperature: float = 1.0
    beta: float = 0.04
    epsilon: float = 0.2
    epsilon_high: float | None = None
    loss_type: str = "grpo"
    scale_rewards: str = "group"
    num_iterations: int = 1
    max_grad_norm: float | None = 1.0

    def __post_init__(self) -> None:
        for name in ("num_generations", "max_completion_length", "num_iterations"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.num_generations < 2:
            raise ValueError(
                f"num_generations must be >= 2 (a group of one has no baseline), got {self.num_generations}"
            )
        _number("temperature", self.temperature, "a finite number > 0", _finite_positive)
        _number("beta", self.beta, "a finite number >= 0", _finite_nonnegative)
        _number("epsilon", self.epsilon, "a finite number in [0, 1)", lambda v: 0 <= v < 1)
        for name in ("epsilon_high", "max_grad_norm"):
            if getattr(self, name) is not None:
                _number(name, getattr(self, name), "None or a finite number > 0", _finite_positive)
        if self.loss_type not in GRPO_LOSS_TYPES:
            raise ValueError(f"loss_type must be one of {GRPO_LOSS_TYPES}, got {self.loss_type!r}")
        if self.scale_rewards not in REWARD_SCALINGS:
            raise ValueError(f"scale_rewards must be one of {REWARD_SCALINGS}, got {self.scale_rewards!r}")


def grpo_step(
    policy: nn.Module,
    optimizer: torch.optim.Optimizer,
    tokenizer: Any,
    prompts: Sequence[Sequence[Mapping[str, str]]],
    references: Sequence[str],
    reward_fn: RewardFn,
    config: GRPOConfig = GRPOConfig(),
    seed: int | None = None,
) -> dict[str, float]:
    """One GRPO step on a batch of prompts: sample, score, and ``num_iterations`` updates of the policy.

    Args:
        policy: A causal LM with LoRA adapters ([Llama][llmdocs.models.llama.Llama] after
            [apply_lora][llmdocs.finetuning.lora.apply_lora]); with its adapters off it is the reference.
        optimizer: The optimizer of the policy's trainable parameters.
        tokenizer: The policy's tokenizer (chat template, end-of-turn id).
        prompts: P conversations ending with a user turn.
        references: P answers, one per prompt, passed to ``reward_fn``.
        reward_fn: ``reward_fn(completions, references) -> rewards``, one number per completion (the signature of
            [date_reward_fn][llmdocs.data.iso_date_preferences.date_reward_fn] and of TRL's reward functions).
        config: A [GRPOConfig][llmdocs.finetuning.grpo_training.GRPOConfig].
        seed: Seed of the sampling (None: torch's global generator).

    Returns:
        Metrics: ``loss``, ``reward`` (mean), ``reward_std``, ``frac_reward_zero_std``, ``kl`` (per-token k3 mean
        to the reference, before the update), ``clip_ratio``, ``completion_length`` (mean tokens),
        ``truncated`` (fraction cut at ``max_completion_length``), ``grad_norm``, ``completion_tokens``,
        ``generation_seconds``, ``update_seconds``.

    Raises:
        TypeError: If ``config`` is not a GRPOConfig, or ``reward_fn`` is not callable.
        ValueError: If ``references`` does not have one answer per prompt, ``reward_fn`` does not return one finite
            number per completion, or the policy has no LoRA adapters (no reference); as ``sample_rollouts`` for the
            prompts.

    Examples:
        >>> from llmdocs.finetuning.chat import CHAT_SPECIAL_TOKENS
        >>> from llmdocs.finetuning.lora import apply_lora
        >>> from llmdocs.models.llama import Llama, LlamaConfig
        >>> from llmdocs.tokenizers.bpe import BPETokenizer
        >>> tok = BPETokenizer.train("", vocab_size=260, special_tokens=CHAT_SPECIAL_TOKENS)
        >>> _ = torch.manual_seed(0)
        >>> policy = Llama(LlamaConfig.tiny(260, context_length=64))
        >>> _ = apply_lora(policy, ["q_proj", "v_proj"], r=2, lora_alpha=4)
        >>> prompts, references = [[{"role": "user", "content": "Say a"}]], ["a"]
        >>> exact = lambda completions, refs: [float(c == r) for c, r in zip(completions, refs)]
        >>> optimizer = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=1e-3)
        >>> config = GRPOConfig(num_generations=4, max_completion_length=3)
        >>> metrics = grpo_step(policy, optimizer, tok, prompts, references, exact, config, seed=0)
        >>> metrics["kl"], metrics["completion_tokens"] <= 4 * 3  # B = 0 at first: the policy is its reference
        (0.0, True)
    """
    if not isinstance(config, GRPOConfig):
        raise TypeError(f"config must be a GRPOConfig, got {type(config).__name__}")
    if not callable(reward_fn):
        raise TypeError(f"reward_fn must be callable as reward_fn(completions, references), got {reward_fn!r}")
    if isinstance(references, str) or not isinstance(references, Sequence) or len(references) != len(prompts):
        raise ValueError(f"references must hold one answer per prompt ({len(prompts)})")
    with disable_adapters(policy):  # refuses a policy without adapters before the minutes of sampling
        pass
    G = config.num_generations
    start = time.perf_counter()
    rollouts = sample_rollouts(
        policy, tokenizer, prompts, G, config.max_completion_length, config.temperature, seed=seed
    )
    rewards = score_rollouts(reward_fn, rollouts, references)  # (N,)
    advantages = group_relative_advantages(rewards, G, config.scale_rewards)  # (N,)
    generated = time.perf_counter()
    batch = rollouts.batch()
    ids, labels, mask = batch["input_ids"], batch["labels"], batch["attention_mask"]
    with torch.no_grad(), disable_adapters(policy):
        ref_logprobs, _ = response_token_log_probs(policy, ids, labels, mask)  # (N, T - 1)
    policy.train()
    params = [p for group in optimizer.param_groups for p in group["params"]]
    old_logprobs: Tensor | None = None
    first: GRPOLoss | None = None
    grad_norm = torch.tensor(0.0)
    for _ in range(config.num_iterations):
        logprobs, token_mask = response_token_log_probs(policy, ids, labels, mask)  # (N, T - 1) each
        if old_logprobs is None:  # the policy that sampled: this iteration's, before any update
            old_logprobs = logprobs.detach()
        out = grpo_loss(logprobs, old_logprobs, advantages.to(logprobs.dtype), token_mask, ref_logprobs=ref_logprobs,
                        beta=config.beta, epsilon=config.epsilon, epsilon_high=config.epsilon_high,
                        loss_type=config.loss_type, max_completion_length=(
                            config.max_completion_length if config.loss_type == "dr_grpo" else None))  # fmt: skip
        if first is None:  # the metrics of the samples as they were drawn
            first = out
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        max_norm = config.max_grad_norm if config.max_grad_norm is not None else math.inf
        grad_norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
        optimizer.step()
    assert first is not None
    groups = rewards.view(-1, G)  # (P, G)
    return {
        "loss": float(first.loss.detach()),
        "reward": float(rewards.mean()),
        "reward_std": float(rewards.std()) if rewards.numel() > 1 else 0.0,
        "frac_reward_zero_std": float((groups.std(dim=1) == 0).float().mean()),
        "kl": float(first.kl) if first.kl is not None else math.nan,
        "clip_ratio": float(out.clip_ratio),
        "completion_length": float(rollouts.completion_lengths.float().mean()),
        "truncated": sum(rollouts.truncated) / len(rollouts.truncated),
        "grad_norm": float(grad_norm),
        "completion_tokens": int(rollouts.completion_lengths.sum()),
        "generation_seconds": generated - start,
        "update_seconds": time.perf_counter() - generated,
    }
