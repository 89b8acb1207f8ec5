"""Group Relative Policy Optimization (GRPO): PPO's clipped objective with a group of samples as the baseline.

PPO needs a value network to tell a good response from a lucky one. GRPO samples G completions of each prompt,
scores them with a reward function, and uses the group itself as the baseline: a completion's advantage is its
reward standardised within its group,

    A_i = (r_i - mean(r_1..G)) / (std(r_1..G) + eps)        (std with Bessel's correction, eps = 1e-4)

given to every token of completion i ([group_relative_advantages][llmdocs.finetuning.grpo.group_relative_advantages]).
The completions were sampled from pi_old, the policy before this update; each token t of completion i is
weighted by the ratio rho_{i,t} = pi(o_t | ...) / pi_old(o_t | ...), clipped as in PPO, and a per-token estimate of
KL(pi || pi_ref) keeps the policy near a frozen reference:

    l_{i,t} = -min(rho_{i,t} A_i, clip(rho_{i,t}, 1 - eps_low, 1 + eps_high) A_i) + beta KL_{i,t}
    KL_{i,t} = exp(d) - d - 1,   d = log pi_ref(o_t) - log pi(o_t)     (Schulman's "k3" estimator, >= 0)

(the "k3" of [kl_penalty][llmdocs.finetuning.kl.kl_penalty], whose d is the opposite sign: log pi - log pi_ref).

[grpo_loss][llmdocs.finetuning.grpo.grpo_loss] averages the l_{i,t} over the completions' tokens in one of four
ways (``loss_type``), which decide how much a long completion weighs against a short one:

    "grpo":    1/B sum_i (1/|o_i| sum_t l_{i,t})        each completion weighs the same (DeepSeekMath)
    "bnpo":    sum_{i,t} l_{i,t} / sum_i |o_i|            each token of the batch weighs the same
    "dr_grpo": sum_{i,t} l_{i,t} / (B L_max)              a constant: L_max = max_completion_length (Dr. GRPO)
    "dapo":    sum_{i,t} l_{i,t} / N                      N = the tokens of the whole accumulated batch (DAPO)

"grpo" divides each completion by its own length: a long wrong answer is punished less per token than a short
one, the length bias that Dr. GRPO and DAPO remove. On-policy (pi_old = pi, one update per batch of samples) every
ratio is 1 and nothing is clipped: the loss is -A averaged over tokens plus beta KL, and its gradient is the
REINFORCE policy gradient -A d log pi with the group mean as baseline.

Matching Hugging Face TRL 1.16 ``GRPOTrainer`` (its defaults are the defaults here): ``beta=0.0`` (no KL term and
no reference model), ``epsilon=0.2``, ``epsilon_high=None`` (= ``epsilon``), ``loss_type="dapo"``,
``scale_rewards="group"``, and the KL term multiplied by the ratio rho (``use_bias_correction_kl=True``, from
DeepSeek-V3.2): with it the KL gradient is the unbiased gradient of KL(pi || pi_ref), beta (log pi - log pi_ref) per
token on-policy, instead of beta (1 - pi_ref / pi). TRL's options beyond the paper (sequence-level ratios,
two-sided ``delta`` clipping, entropy masks, vLLM corrections, other losses) are left out.

References:
    Shao et al., "DeepSeekMath: Pushing the Limits of Mathematical Reasoning in Open Language Models", 2024,
    section 4.1 (equations 3 and 4, outcome supervision); DeepSeek-AI, "DeepSeek-R1", 2025, section 2.2.1;
    Schulman, "Approximating KL Divergence", 2020 (k3); Liu et al., "Understanding R1-Zero-Like Training: A
    Critical Perspective", 2025 (Dr. GRPO); Yu et al., "DAPO: An Open-Source LLM Reinforcement Learning System at
    Scale", 2025 (token-level loss, ``epsilon_high``); DeepSeek-AI, "DeepSeek-V3.2", 2025 (the ratio-weighted KL);
    Hugging Face TRL ``GRPOTrainer._compute_loss`` and ``_generate_and_score_completions``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from llmdocs.finetuning.kl import kl_penalty
from llmdocs.finetuning.masked import _check_floating, _check_per_token, _finite_nonnegative, _number
from llmdocs.finetuning.sft_labels import _check_count  # counts as ints >= 1, as the SFT loss takes them

__all__ = ["ADVANTAGE_EPS", "GRPO_LOSS_TYPES", "REWARD_SCALINGS", "GRPOLoss", "group_relative_advantages", "grpo_loss"]

GRPOLossType = Literal["grpo", "bnpo", "dr_grpo", "dapo"]
GRPO_LOSS_TYPES: tuple[str, ...] = ("grpo", "bnpo", "dr_grpo", "dapo")
"""How [grpo_loss][llmdocs.finetuning.grpo.grpo_loss] averages the per-token losses (see the module docstring)."""

RewardScaling = Literal["group", "batch", "none"]
REWARD_SCALINGS: tuple[str, ...] = ("group", "batch", "none")
"""What [group_relative_advantages][llmdocs.finetuning.grpo.group_relative_advantages] divides by: the group's
standard deviation, the batch's, or nothing (Dr. GRPO)."""

ADVANTAGE_EPS = 1e-4
"""Added to the standard deviation before dividing (TRL's value): a group of equal rewards gets advantages 0."""


def group_relative_advantages(rewards: Tensor, group_size: int, scale_rewards: RewardScaling = "group") -> Tensor:
    """Each completion's reward minus its group's mean, divided by a standard deviation: GRPO's advantages.

        A_i = (r_i - mean_group(r)) / (std + ADVANTAGE_EPS)

    where std is the group's (``"group"``, DeepSeekMath), the whole batch's (``"batch"``) or no division at all
    (``"none"``, Dr. GRPO). The mean is always the group's. Standard deviations use Bessel's correction (divide by
    n - 1), as ``torch.std`` and TRL do.

    Args:
        rewards: (B,) one reward per completion, B = n_prompts * group_size, the G completions of a prompt in
            consecutive rows (TRL's layout).
        group_size: G >= 2, the completions sampled per prompt (TRL's ``num_generations``).
        scale_rewards: ``"group"``, ``"batch"`` or ``"none"``.

    Returns:
        (B,) advantages, in the rewards' dtype (no gradients needed: rewards are data).

    Raises:
        TypeError: ``rewards`` is not a floating (B,) tensor, or ``group_size`` not an int.
        ValueError: ``group_size < 2``, B not a multiple of it, a reward not finite, or ``scale_rewards`` unknown.

    Examples:
        >>> group_relative_advantages(torch.tensor([1.0, 0.0, 0.0, 1.0]), group_size=4).round(decimals=4)
        tensor([ 0.8659, -0.8659, -0.8659,  0.8659])
        >>> group_relative_advantages(torch.tensor([1.0, 0.0, 3.0, 3.0]), group_size=2, scale_rewards="none")
        tensor([ 0.5000, -0.5000,  0.0000,  0.0000])
    """
    _check_floating("rewards", rewards, "(B,), one reward per completion", dim=1)
    if isinstance(group_size, bool) or not isinstance(group_size, int):
        raise TypeError(f"group_size must be an int (completions per prompt), got {group_size!r}")
    if group_size < 2:
        raise ValueError(f"group_size must be >= 2: a group needs two completions to compare, got {group_size}")
    B = rewards.size(0)
    if B == 0 or B % group_size:
        raise ValueError(f"rewards has {B} values, not a positive multiple of group_size={group_size}")
    if not torch.isfinite(rewards).all():
        raise ValueError("rewards must be finite (score an unscorable completion before calling this)")
    if scale_rewards not in REWARD_SCALINGS:
        raise ValueError(f"scale_rewards must be one of {REWARD_SCALINGS}, got {scale_rewards!r}")

    grouped = rewards.view(B // group_size, group_size)  # (n_prompts, G)
    centred = (grouped - grouped.mean(dim=1, keepdim=True)).view(B)  # (B,)
    if scale_rewards == "none":
        return centred
    # "group": (B,), each row its group's std; "batch": (), the std around the batch mean, one scale for all groups
    std = grouped.std(dim=1).repeat_interleave(group_size) if scale_rewards == "group" else rewards.std()
    return centred / (std + ADVANTAGE_EPS)


@dataclass(frozen=True)
class GRPOLoss:
    """What [grpo_loss][llmdocs.finetuning.grpo.grpo_loss] returns (the metrics TRL logs, detached).

    Attributes:
        loss: 0-d, with gradients: the per-token losses averaged as ``loss_type`` says.
        kl: 0-d, the mean over completion tokens of the KL term (ratio-weighted as it enters the loss); None
            without a reference.
        clip_ratio_low: 0-d, the fraction of completion tokens clipped below (rho < 1 - eps_low where A < 0).
        clip_ratio_high: 0-d, the fraction clipped above (rho > 1 + eps_high where A > 0).

    Examples:
        >>> logprobs, old_logprobs = torch.log(torch.tensor([[0.5, 0.4]])), torch.log(torch.tensor([[0.25, 0.4]]))
        >>> out = grpo_loss(logprobs, old_logprobs, advantages=torch.ones(1), mask=torch.ones(1, 2))
        >>> out.clip_ratio_high, out.clip_ratio  # the first token's ratio is 2 > 1.2 with A > 0: clipped
        (tensor(0.5000), tensor(0.5000))
    """

    loss: Tensor
    kl: Tensor | None
    clip_ratio_low: Tensor
    clip_ratio_high: Tensor

    @property
    def clip_ratio(self) -> Tensor:
        """The fraction of completion tokens clipped either way (TRL's ``clip_ratio/region_mean``)."""
        return self.clip_ratio_low + self.clip_ratio_high


def grpo_loss(
    logprobs: Tensor,
    old_logprobs: Tensor,
    advantages: Tensor,
    mask: Tensor,
    ref_logprobs: Tensor | None = None,
    beta: float = 0.0,
    epsilon: float = 0.2,
    epsilon_high: float | None = None,
    loss_type: GRPOLossType = "dapo",
    max_completion_length: int | None = None,
    num_items_in_batch: int | Tensor | None = None,
    importance_weighted_kl: bool = True,
) -> GRPOLoss:
    """The GRPO loss of a batch of sampled completions, from their per-token log-probabilities.

        rho = exp(log pi - log pi_old),   d = log pi_ref - log pi,   KL = exp(d) - d - 1
        l = -min(rho A, clip(rho, 1 - epsilon, 1 + epsilon_high) A) + beta rho KL     (rho KL: importance_weighted_kl)

    averaged over the tokens where ``mask`` is 1 as ``loss_type`` says (module docstring). The defaults are TRL
    1.16's ``GRPOConfig`` defaults.

    Args:
        logprobs: (B, T) log pi(o_t | q, o_<t) of each completion token under the policy being trained (with
            gradients); T = the longest completion, right-padded.
        old_logprobs: (B, T) the same under the policy that sampled the completions; ``logprobs.detach()`` when
            each batch of samples is used for one update (on-policy: every ratio is 1).
        advantages: (B,) one advantage per completion
            ([group_relative_advantages][llmdocs.finetuning.grpo.group_relative_advantages]).
        mask: (B, T) 1 at completion tokens, 0 at padding (bool, integer or floating 0/1).
        ref_logprobs: (B, T) the same under the frozen reference; needed when ``beta > 0``. With ``beta == 0``
            it is used for the ``kl`` metric only.
        beta: KL coefficient >= 0 (0 in TRL; DeepSeekMath used 0.04, DeepSeek-R1 0.001).
        epsilon: eps_low in [0, 1): ratios below 1 - epsilon stop pushing a negative advantage.
        epsilon_high: eps_high >= 0 for the upper bound 1 + eps_high (DAPO's "clip-higher" takes 0.28); None uses
            ``epsilon``.
        loss_type: ``"grpo"``, ``"bnpo"``, ``"dr_grpo"`` or ``"dapo"``.
        max_completion_length: L_max, ``"dr_grpo"`` only (required there): the constant it divides by per row, at
            least the longest completion.
        num_items_in_batch: ``"dapo"`` only: the number of completion tokens the sum is divided by; default this
            batch's own (then ``"dapo"`` equals ``"bnpo"``). Under gradient accumulation pass the count of the
            whole accumulated batch, so that the micro-batch losses sum to the step's token mean.
        importance_weighted_kl: Multiply the KL term by rho (TRL's ``use_bias_correction_kl``, on by default).

    Returns:
        A [GRPOLoss][llmdocs.finetuning.grpo.GRPOLoss]: the loss, the KL and the clip fractions. The loss is not
        divided by the number of gradient-accumulation steps (TRL divides "grpo", "bnpo" and "dr_grpo" by it).

    Raises:
        TypeError: A log-probability is not a floating (B, T) tensor, ``advantages`` not a floating (B,) tensor,
            ``mask`` not a bool or 0/1 tensor, or ``importance_weighted_kl`` not a bool.
        ValueError: Shapes differ or are empty, ``mask`` holds values other than 0 and 1, ``ref_logprobs`` missing with
            ``beta > 0``, a number out of range, ``loss_type`` unknown, or ``max_completion_length`` /
            ``num_items_in_batch`` missing where needed, given where unused, or too small.

    Examples:
        >>> logprobs = torch.log(torch.tensor([[0.5, 0.5], [0.25, 1.0]])).requires_grad_()
        >>> mask = torch.tensor([[1, 1], [1, 0]])  # the second completion has one token
        >>> out = grpo_loss(logprobs, logprobs.detach(), torch.tensor([1.0, -1.0]), mask)  # on-policy, "dapo"
        >>> out.loss  # (-1 - 1 + 1) / 3 tokens
        tensor(-0.3333, grad_fn=<DivBackward0>)
        >>> out.loss.backward()
        >>> logprobs.grad  # -A / 3 at each token: raise the good completion, lower the bad one
        tensor([[-0.3333, -0.3333],
                [ 0.3333,  0.0000]])
    """
    keep = _check_per_token(mask, logprobs=logprobs, old_logprobs=old_logprobs, ref_logprobs=ref_logprobs)
    B = logprobs.size(0)
    _check_floating("advantages", advantages, "(B,), one advantage per completion", dim=1)
    if advantages.shape != (B,):
        raise ValueError(f"advantages is {tuple(advantages.shape)}, but logprobs has B={B} completions")
    beta = _number("beta", beta, "a finite number >= 0", _finite_nonnegative)
    if beta > 0 and ref_logprobs is None:
        raise ValueError(f"ref_logprobs is needed for the KL term when beta={beta:g} > 0 (or pass beta=0.0)")
    eps_low = _number("epsilon", epsilon, "a finite number in [0, 1)", lambda v: 0 <= v < 1)
    eps_high = eps_low
    if epsilon_high is not None:
        eps_high = _number("epsilon_high", epsilon_high, "a finite number >= 0", _finite_nonnegative)
    if loss_type not in GRPO_LOSS_TYPES:
        raise ValueError(f"loss_type must be one of {GRPO_LOSS_TYPES}, got {loss_type!r}")
    if not isinstance(importance_weighted_kl, bool):
        raise TypeError(f"importance_weighted_kl must be a bool, got {importance_weighted_kl!r}")
    mask = keep.to(logprobs.dtype)  # (B, T) 0/1
    lengths = mask.sum(dim=-1)  # (B,) |o_i|, may be 0 (a completion masked out): the clamps below keep 0 / 0 away
    if loss_type == "dr_grpo" and max_completion_length is None:
        raise ValueError("loss_type='dr_grpo' divides by max_completion_length: pass it")
    if max_completion_length is not None:
        if loss_type != "dr_grpo":
            raise ValueError(f"max_completion_length applies to loss_type='dr_grpo' only, not to {loss_type!r}")
        max_completion_length = _check_count(max_completion_length, "max_completion_length")
        if max_completion_length < lengths.max().item():
            raise ValueError(
                f"max_completion_length={max_completion_length} is shorter than a completion of "
                f"{int(lengths.max().item())} tokens"
            )
    if num_items_in_batch is not None:
        if loss_type != "dapo":
            raise ValueError(f"num_items_in_batch applies to loss_type='dapo' only, not to {loss_type!r}")
        num_items_in_batch = _check_count(num_items_in_batch)

    # Equation 3 of DeepSeekMath, token by token: the PPO-clip surrogate with the completion's advantage.
    ratio = torch.exp(logprobs - old_logprobs)  # (B, T) rho
    A = advantages.unsqueeze(1)  # (B, 1): every token of a completion shares its advantage
    clipped = torch.clamp(ratio, 1 - eps_low, 1 + eps_high)  # (B, T)
    per_token = -torch.min(ratio * A, clipped * A)  # (B, T) the pessimistic bound
    kl = None
    if ref_logprobs is not None:
        kl = kl_penalty(logprobs, ref_logprobs, "k3")  # (B, T) unbiased for KL(pi || pi_ref) under pi, and >= 0
        if importance_weighted_kl:
            kl = kl * ratio  # the samples come from pi_old: reweight to pi (DeepSeek-V3.2)
        if beta > 0:
            per_token = per_token + beta * kl

    masked_sum = (per_token * mask).sum()  # ()
    if loss_type == "grpo":
        loss = ((per_token * mask).sum(dim=-1) / lengths.clamp(min=1)).mean()  # mean of per-completion means
    elif loss_type == "bnpo":
        loss = masked_sum / lengths.sum().clamp(min=1)
    elif loss_type == "dr_grpo":
        assert max_completion_length is not None  # checked above
        loss = masked_sum / (B * max_completion_length)
    else:  # dapo
        loss = masked_sum / (lengths.sum().clamp(min=1) if num_items_in_batch is None else num_items_in_batch)

    n_tokens = mask.sum().clamp(min=1)
    with torch.no_grad():
        low = ((ratio < 1 - eps_low) & (A < 0)).to(mask.dtype)  # (B, T)
        high = ((ratio > 1 + eps_high) & (A > 0)).to(mask.dtype)  # (B, T)
        return GRPOLoss(
            loss=loss,
            kl=None if kl is None else (kl * mask).sum() / n_tokens,
            clip_ratio_low=(low * mask).sum() / n_tokens,
            clip_ratio_high=(high * mask).sum() / n_tokens,
        )
