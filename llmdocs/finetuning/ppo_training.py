"""One PPO step for a language model (RLHF as in InstructGPT): roll out, score, penalise KL, estimate advantages,
and several epochs of clipped updates of the policy and its value head.

    1. rollouts    one completion per prompt from the current policy pi_old              sample_rollouts
    2. scores      s_i from a reward model or a verifiable reward                         (B,)
    3. rewards     r_t = -beta KL_t at each token, + s_i at the last one                  kl_penalized_rewards
    4. advantages  GAE over the value head's V_old, whitened over the batch                gae_advantages, masked_whiten
    5. update      num_ppo_epochs x mini-batches: clipped policy loss + vf_coef x value loss - ent_coef x entropy
    6. KL control  beta follows the measured KL (adaptive) or stays (fixed)

The value function is a scalar head on the policy's own hidden states
([CausalLMWithValueHead][llmdocs.finetuning.ppo_training.CausalLMWithValueHead]): one forward pass gives the
next-token logits and V(s_t), and the LoRA adapters serve both (TRL 0.x's ``AutoModelForCausalLMWithValueHead``;
InstructGPT used a separate value model initialised from the reward model, which costs a second 135M forward and
backward per step). The reference for the KL penalty is the policy with its adapters switched off.

Values are read at the position that predicts each completion token, the (B, T - 1) layout of
[token_log_probs][llmdocs.finetuning.logprobs.token_log_probs]: V_t estimates the return from the state just before
completion token t + 1 is chosen.

References:
    Ouyang et al., "Training language models to follow instructions with human feedback", NeurIPS 2022, section
    3.5; Ziegler et al., "Fine-Tuning Language Models from Human Preferences", 2019, section 2.2; Schulman et al.,
    "Proximal Policy Optimization Algorithms", 2017; Huang et al., "The N+ Implementation Details of RLHF with PPO",
    2024; Hugging Face TRL 0.x ``PPOTrainer`` / ``PPOConfig`` (the names of the settings and metrics).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from llmdocs.finetuning.kl import KL_ESTIMATORS, AdaptiveKLController, FixedKLController
from llmdocs.finetuning.logprobs import token_log_probs
from llmdocs.finetuning.lora import disable_adapters
from llmdocs.finetuning.masked import _finite_nonnegative, _finite_positive, _number, masked_mean, masked_whiten
from llmdocs.finetuning.ppo import (
    entropy_from_logits,
    gae_advantages,
    kl_penalized_rewards,
    ppo_policy_loss,
    ppo_value_loss,
)
from llmdocs.finetuning.reward_model import RewardModel
from llmdocs.finetuning.rollouts import Rollouts, sample_rollouts, score_rollouts
from llmdocs.models.llama import Llama

__all__ = ["CausalLMWithValueHead", "PPOConfig", "ppo_step"]

RewardFn = Callable[[list[str], list[str]], Sequence[float]]


class CausalLMWithValueHead(nn.Module):
    """A [Llama][llmdocs.models.llama.Llama] with a value head: ids (B, T) -> logits (B, T, V) and values (B, T).

    Args:
        policy: The language model (with its LoRA adapters, if any); generation runs on it directly.

    Attributes:
        policy: The language model.
        v_head: ``nn.Linear(D, 1)``, zero-initialised: every value starts at 0, so the first advantages are the
            rewards themselves (TRL 0.x's name; a zero start keeps early value errors from steering the policy).

    Raises:
        TypeError: If ``policy`` is not a Llama.

    Examples:
        >>> from llmdocs.models.llama import LlamaConfig
        >>> model = CausalLMWithValueHead(Llama(LlamaConfig.tiny()))
        >>> logits, values = model(torch.tensor([[3, 1, 4]]))
        >>> logits.shape, values.tolist()
        (torch.Size([1, 3, 64]), [[0.0, 0.0, 0.0]])
    """

    def __init__(self, policy: Llama) -> None:
        super().__init__()
        if not isinstance(policy, Llama):
            raise TypeError(f"policy must be a llmdocs Llama, got {type(policy).__name__}")
        self.policy = policy
        weight = policy.tok_embed.weight
        self.v_head = nn.Linear(policy.config.d_model, 1, device=weight.device, dtype=weight.dtype)  # (1, D) + bias
        nn.init.zeros_(self.v_head.weight)
        nn.init.zeros_(self.v_head.bias)

    def forward(self, ids: Tensor, attention_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Logits (B, T, V) and values (B, T) from one pass through the decoder (arguments as ``Llama.forward``)."""
        h = self.policy.hidden_states(ids, attention_mask=attention_mask)  # (B, T, D)
        return self.policy.lm_head(h), self.v_head(h).squeeze(-1)  # (B, T, V), (B, T)


@dataclass(frozen=True)
class PPOConfig:
    """The settings of a PPO step (TRL 0.x ``PPOConfig``'s names; defaults for LoRA on a 135M model on CPU).

    Attributes:
        max_completion_length: Most tokens per completion (TRL's ``response_length``).
        temperature: Sampling temperature > 0.
        num_ppo_epochs: Passes over each batch of rollouts.
        num_mini_batches: Mini-batches per pass (each an optimizer step); must divide the number of prompts.
        kl_coef: Initial beta of the KL penalty, >= 0.
        kl_estimator: ``"k1"`` (TRL's default), ``"k2"``, ``"k3"`` or ``"abs"``.
        target_kl: None for a fixed beta, or the per-sequence KL the adaptive controller steers to (> 0).
        horizon: The adaptive controller's horizon in samples (Ziegler et al.: 10,000).
        cliprange: The policy ratio's clip range eps, > 0.
        cliprange_value: The value clip range, > 0 (``math.inf`` for none).
        vf_coef: Weight of the value loss, >= 0.
        ent_coef: Weight of the entropy bonus, >= 0 (0 in TRL).
        gamma: Discount in [0, 1] (1: the episode is one response).
        lam: GAE lambda in [0, 1].
        max_grad_norm: Gradient clipping (> 0, or None for none).

    Examples:
        >>> PPOConfig(target_kl=6.0).kl_controller()  # Ziegler et al.'s adaptive beta
        AdaptiveKLController(value=0.05, target=6.0, horizon=10000.0)
        >>> PPOConfig().kl_controller()
        FixedKLController(kl_coef=0.05)
    """

    max_completion_length: int = 16
    temperature: float = 1.0
    num_ppo_epochs: int = 4
    num_mini_batches: int = 1
    kl_coef: float = 0.05
    kl_estimator: str = "k1"
    target_kl: float | None = None
    horizon: float = 10000.0
    cliprange: float = 0.2
    cliprange_value: float = 0.2
    vf_coef: float = 0.1
    ent_coef: float = 0.0
    gamma: float = 1.0
    lam: float = 0.95
    max_grad_norm: float | None = 1.0

    def __post_init__(self) -> None:
        for name in ("max_completion_length", "num_ppo_epochs", "num_mini_batches"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        in_unit = lambda v: 0 <= v <= 1  # noqa: E731
        for name, requirement, ok in (
            ("temperature", "a number > 0", _finite_positive),
            ("kl_coef", "a number >= 0", _finite_nonnegative),
            ("horizon", "a number > 0", _finite_positive),
            ("cliprange", "a number > 0", _finite_positive),
            ("cliprange_value", "a number > 0", lambda v: v > 0),  # math.inf: no value clipping
            ("vf_coef", "a number >= 0", _finite_nonnegative),
            ("ent_coef", "a number >= 0", _finite_nonnegative),
            ("gamma", "a number in [0, 1]", in_unit),
            ("lam", "a number in [0, 1]", in_unit),
        ):
            _number(name, getattr(self, name), requirement, ok)
        for name in ("target_kl", "max_grad_norm"):
            if getattr(self, name) is not None:
                _number(name, getattr(self, name), "None or a finite number > 0", _finite_positive)
        if self.kl_estimator not in KL_ESTIMATORS:
            raise ValueError(f"kl_estimator must be one of {KL_ESTIMATORS}, got {self.kl_estimator!r}")

    def kl_controller(self) -> FixedKLController | AdaptiveKLController:
        """The controller of beta: adaptive toward ``target_kl`` if it is set, else fixed at ``kl_coef``."""
        if self.target_kl is None:
            return FixedKLController(self.kl_coef)
        return AdaptiveKLController(self.kl_coef, self.target_kl, self.horizon)


def _scores(
    reward_fn: RewardFn | None, reward_model: RewardModel | None, rollouts: Rollouts, references: Sequence[str]
) -> Tensor:
    """(N,) float32 scores of the rollouts: by the reward model on the token ids, or by reward_fn on the text."""
    if reward_model is not None:
        with torch.no_grad():
            return reward_model(rollouts.input_ids, attention_mask=rollouts.attention_mask).float()
    assert reward_fn is not None
    return score_rollouts(reward_fn, rollouts, references)


def ppo_step(
    model: CausalLMWithValueHead,
    optimizer: torch.optim.Optimizer,
    tokenizer: Any,
    prompts: Sequence[Sequence[Mapping[str, str]]],
    references: Sequence[str] | None = None,
    reward_fn: RewardFn | None = None,
    reward_model: RewardModel | None = None,
    config: PPOConfig = PPOConfig(),
    kl_controller: FixedKLController | AdaptiveKLController | None = None,
    seed: int | None = None,
) -> dict[str, float]:
    """One PPO step on a batch of prompts: one completion each, scored, then ``num_ppo_epochs`` of updates.

    Args:
        model: The policy with its value head; the policy needs LoRA adapters (adapters off = the reference).
        optimizer: The optimizer of the trainable parameters (adapters and value head).
        tokenizer: The policy's tokenizer.
        prompts: P conversations ending with a user turn.
        references: P reference answers for ``reward_fn`` (None with a reward model).
        reward_fn: ``reward_fn(completions, references) -> scores`` (a verifiable reward), or
        reward_model: A [RewardModel][llmdocs.finetuning.reward_model.RewardModel] scoring prompt + completion ids
            (same tokenizer). Exactly one of the two.
        config: A [PPOConfig][llmdocs.finetuning.ppo_training.PPOConfig].
        kl_controller: The beta controller carried across steps (``config.kl_controller()``); None makes a fresh one.
        seed: Seed of the sampling.

    Returns:
        Metrics: ``score`` (mean), ``non_score_reward`` (mean -beta KL per sequence), ``kl`` (mean per-sequence KL of
        the rollouts), ``kl_coef`` (beta used), ``policy_loss``, ``value_loss``, ``clipfrac``, ``vf_clipfrac``,
        ``approx_kl``, ``entropy``, ``completion_length``, ``truncated``, ``completion_tokens``,
        ``generation_seconds``, ``update_seconds`` (losses and fractions averaged over the mini-batch updates).

    Raises:
        TypeError: If ``model`` or ``config`` has the wrong type, or ``reward_fn`` is not callable.
        ValueError: If not exactly one of ``reward_fn`` and ``reward_model`` is given, ``references`` does not match
            the prompts, ``num_mini_batches`` does not divide the prompts, a reward is not finite, or the policy has
            no LoRA adapters.

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
        >>> model = CausalLMWithValueHead(policy)
        >>> optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
        >>> config = PPOConfig(max_completion_length=3, num_ppo_epochs=2)
        >>> metrics = ppo_step(model, optimizer, tok, prompts, references, exact, config=config, seed=0)
        >>> metrics["kl"], metrics["kl_coef"]  # B = 0 at first: the policy is its reference
        (0.0, 0.05)
    """
    if not isinstance(model, CausalLMWithValueHead):
        raise TypeError(f"model must be a CausalLMWithValueHead, got {type(model).__name__}")
    if not isinstance(config, PPOConfig):
        raise TypeError(f"config must be a PPOConfig, got {type(config).__name__}")
    if (reward_fn is None) == (reward_model is None):
        raise ValueError("give exactly one of reward_fn (a verifiable reward) and reward_model")
    if reward_fn is not None:
        if not callable(reward_fn):
            raise TypeError(f"reward_fn must be callable as reward_fn(completions, references), got {reward_fn!r}")
        if isinstance(references, str) or not isinstance(references, Sequence) or len(references) != len(prompts):
            raise ValueError(f"references must hold one answer per prompt ({len(prompts)}) for reward_fn")
    if reward_model is not None and not isinstance(reward_model, RewardModel):
        raise TypeError(f"reward_model must be a RewardModel, got {type(reward_model).__name__}")
    if len(prompts) % config.num_mini_batches:
        raise ValueError(f"num_mini_batches={config.num_mini_batches} must divide the {len(prompts)} prompts")
    with disable_adapters(model.policy):  # refuses a policy without adapters before the sampling
        pass
    controller = kl_controller if kl_controller is not None else config.kl_controller()
    beta = controller.value
    start = time.perf_counter()
    rollouts = sample_rollouts(model.policy, tokenizer, prompts, 1, config.max_completion_length, config.temperature,
                               seed=seed)  # fmt: skip
    scores = _scores(reward_fn, reward_model, rollouts, references or [])  # (B,)
    generated = time.perf_counter()
    ids, labels, attention = rollouts.input_ids, rollouts.labels, rollouts.attention_mask
    with torch.no_grad():
        logits, values = model(ids, attention_mask=attention)  # (B, T, V), (B, T)
        old_logprobs, mask = token_log_probs(logits, labels)  # (B, T - 1) each
        old_values = values[:, :-1].to(old_logprobs.dtype)  # (B, T - 1): V before each completion token
        with disable_adapters(model.policy):
            ref_logprobs, _ = token_log_probs(model.policy(ids, attention_mask=attention), labels)
        del logits
    # GAE runs over right-padded rows (real tokens, then padding): move each row's completion to its start, so the
    # (B, T - 1) positions after the prompt become columns 0 .. |o_i| - 1; all the per-token terms use this layout
    positions = torch.arange(mask.size(1), device=mask.device)[None]  # (1, T - 1)
    columns = (mask.argmax(dim=1, keepdim=True) + positions).clamp(max=mask.size(1) - 1)  # (B, T - 1)
    inside = positions < mask.sum(dim=1, keepdim=True)  # (B, T - 1): the completion, right-padded
    # (B, T - 1) each, the completion first
    old_logprobs, ref_logprobs, old_values = (x.gather(1, columns) for x in (old_logprobs, ref_logprobs, old_values))
    penalized = kl_penalized_rewards(scores.to(old_logprobs.dtype), old_logprobs, ref_logprobs,
                                     inside, beta, config.kl_estimator)  # fmt: skip
    advantages, returns = gae_advantages(penalized.rewards, old_values, inside, config.gamma, config.lam)
    advantages = masked_whiten(advantages, inside)  # (B, T - 1)
    model.train()
    params = [p for group in optimizer.param_groups for p in group["params"]]
    B = ids.size(0)
    size = B // config.num_mini_batches
    sums = dict.fromkeys(("policy_loss", "value_loss", "clipfrac", "vf_clipfrac", "approx_kl", "entropy"), 0.0)
    n_updates = 0
    generator = torch.Generator().manual_seed(0 if seed is None else seed)
    for _ in range(config.num_ppo_epochs):
        order = torch.randperm(B, generator=generator)
        for k in range(config.num_mini_batches):
            rows = order[k * size : (k + 1) * size]
            logits, values = model(ids[rows], attention_mask=attention[rows])  # (b, T, V), (b, T)
            logprobs, _ = token_log_probs(logits, labels[rows])  # (b, T - 1)
            cols = columns[rows]
            policy = ppo_policy_loss(logprobs.gather(1, cols), old_logprobs[rows], advantages[rows],
                                     inside[rows], config.cliprange)  # fmt: skip
            value = ppo_value_loss(values[:, :-1].gather(1, cols), old_values[rows], returns[rows],
                                   inside[rows], config.cliprange_value)  # fmt: skip
            entropy = masked_mean(entropy_from_logits(logits[:, :-1]).gather(1, cols), inside[rows])
            loss = policy.loss + config.vf_coef * value.loss - config.ent_coef * entropy
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm or math.inf)
            optimizer.step()
            for name, number in (("policy_loss", policy.loss), ("value_loss", value.loss), ("entropy", entropy)):
                sums[name] += float(number.detach())
            sums["clipfrac"] += policy.clip_fraction
            sums["approx_kl"] += policy.approx_kl
            sums["vf_clipfrac"] += value.clip_fraction
            n_updates += 1
    sequence_kl = (penalized.kl * inside).sum(dim=1)  # (B,)
    controller.update(float(sequence_kl.mean()), B)
    return {
        "score": float(scores.mean()),
        "non_score_reward": float((-beta * sequence_kl).mean()),
        "kl": float(sequence_kl.mean()),
        "kl_coef": beta,
        **{name: total / n_updates for name, total in sums.items()},
        "completion_length": float(rollouts.completion_lengths.float().mean()),
        "truncated": sum(rollouts.truncated) / len(rollouts.truncated),
        "completion_tokens": int(rollouts.completion_lengths.sum()),
        "generation_seconds": generated - start,
        "update_seconds": time.perf_counter() - generated,
    }
