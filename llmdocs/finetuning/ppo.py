"""PPO for language models: the per-token rewards, advantages and losses of RLHF.

RLHF as in InstructGPT fine-tunes a policy pi (initialised from the SFT model) to maximise the reward model's score
of its own sampled responses, minus a KL penalty that keeps it near the frozen reference pi_ref (the SFT model):

    max_pi  E_{x, y ~ pi} [ r(x, y) - beta log (pi(y | x) / pi_ref(y | x)) ]

Each response token is one action, so the episode is the response and PPO needs per-token quantities. Everything
here works on (B, T) tensors over the RESPONSE tokens with a ``mask`` (B, T), True at real tokens, with each row's
padding after its end. One PPO iteration:

1. **Rollout** (no gradients): sample y ~ pi_old, keep log pi_old(y_t), log pi_ref(y_t), the value head's V_old(s_t)
   and the reward model's score r(x, y) of each whole response.
2. **Rewards** ([kl_penalized_rewards][llmdocs.finetuning.ppo.kl_penalized_rewards]): a penalty at every token, the
   score at the last one,

       r_t = -beta kl_t + [t = last] r(x, y),    kl_t = log pi_old(y_t) - log pi_ref(y_t)

   (k1, or another estimator of [kl_penalty][llmdocs.finetuning.kl.kl_penalty]).
3. **Advantages** ([gae_advantages][llmdocs.finetuning.ppo.gae_advantages]), computed backwards from the end, where
   the episode stops (V = 0 after the last token):

       delta_t = r_t + gamma V_{t+1} - V_t,    A_t = delta_t + gamma lam A_{t+1},    R_t = A_t + V_t

   then whitened over the batch ([masked_whiten][llmdocs.finetuning.masked.masked_whiten]).
4. **Losses**, for a few epochs over the rollout, with rho_t = pi(y_t) / pi_old(y_t):

       L_policy = mean_t max(-A_t rho_t, -A_t clip(rho_t, 1 - eps, 1 + eps))
       L_value  = 1/2 mean_t max((V_t - R_t)^2, (clip(V_t, V_old_t - eps_v, V_old_t + eps_v) - R_t)^2)

   ([ppo_policy_loss][llmdocs.finetuning.ppo.ppo_policy_loss], [ppo_value_loss][llmdocs.finetuning.ppo.ppo_value_loss];
   the means are over the masked tokens of the batch, [masked_mean][llmdocs.finetuning.masked.masked_mean]). The
   policy's entropy ([entropy_from_logits][llmdocs.finetuning.ppo.entropy_from_logits]) is watched for collapse.
5. **KL coefficient**: beta stays fixed or follows a target KL, updated with the batch's
   [PenalizedRewards.mean_kl][llmdocs.finetuning.ppo.PenalizedRewards] (the controllers of
   [kl][llmdocs.finetuning.kl]).

The reference for the formulas is the papers below and Hugging Face TRL's PPO trainer of the 0.x releases
(``PPOTrainer.compute_rewards``, ``compute_advantages`` and ``loss``). TRL 1.16, the version installed here, has no
PPO trainer any more; only its ``entropy_from_logits`` remains, and the tests check ours against it. Padding
entries are never read (they may hold anything, even NaN), where TRL 0.x multiplied them by the mask.

References:
    Schulman et al., "Proximal Policy Optimization Algorithms", 2017 (equation 7: the clipped objective; equations
    9, 11 and 12: the value loss and truncated GAE); Schulman et al., "High-Dimensional Continuous Control Using
    Generalized Advantage Estimation", ICLR 2016 (equation 16); Ziegler et al., "Fine-Tuning Language Models from
    Human Preferences", 2019, section 2.2 (the per-token KL penalty); Ouyang et al., "Training language models to
    follow instructions with human feedback", NeurIPS 2022, section 3.5 (equation 2); Huang et al., "The 37
    Implementation Details of Proximal Policy Optimization", ICLR Blog Track 2022, and Huang et al., "The N+
    Implementation Details of RLHF with PPO: A Case Study on TL;DR Summarization", 2024 (value clipping, the
    last-token score); Hugging Face TRL <= 0.x ``PPOTrainer``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from llmdocs.finetuning.bradley_terry import _check_per_pair
from llmdocs.finetuning.kl import KLEstimator, kl_penalty
from llmdocs.finetuning.masked import _check_per_token, _finite_nonnegative, _number, masked_mean

__all__ = [
    "PPOPolicyLoss",
    "PPOValueLoss",
    "PenalizedRewards",
    "entropy_from_logits",
    "gae_advantages",
    "kl_penalized_rewards",
    "ppo_policy_loss",
    "ppo_value_loss",
]


# ---- checks -------------------------------------------------------------------------------------------------------


def _check_right_padded(keep: Tensor) -> None:
    """Each row of the (B, T) mask is its real tokens first, then padding: no 1 after a 0."""
    late = keep[:, 1:] & ~keep[:, :-1]  # (B, T - 1): a real token right after padding
    if late.any():
        row = int(late.any(dim=-1).nonzero()[0])
        raise ValueError(
            f"mask must be right-padded (real tokens first, then padding), but row {row} has a 1 after a 0"
        )


# ---- rewards ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PenalizedRewards:
    """What [kl_penalized_rewards][llmdocs.finetuning.ppo.kl_penalized_rewards] returns (detached).

    Attributes:
        rewards: (B, T) -kl_coef * kl_t, plus the score at each row's last real token; 0 at padding.
        kl: (B, T) the per-token KL estimate used, 0 at padding.

    Examples:
        >>> out = PenalizedRewards(rewards=torch.zeros(2, 3), kl=torch.tensor([[0.5, 0.25, 0.0], [1.0, 0.0, 0.0]]))
        >>> out.mean_kl  # the rows' sums 0.75 and 1.0, averaged
        0.875
    """

    rewards: Tensor
    kl: Tensor

    @property
    def mean_kl(self) -> float:
        """The batch mean of each response's KL (its tokens' sum): what the KL controller is updated with."""
        return float(self.kl.sum(dim=-1).mean())


def kl_penalized_rewards(
    scores: Tensor,
    logprobs: Tensor,
    ref_logprobs: Tensor,
    mask: Tensor,
    kl_coef: float,
    estimator: KLEstimator = "k1",
) -> PenalizedRewards:
    """Per-token rewards: the KL penalty at every response token, the sequence score at the last one.

        r_t = -kl_coef * kl_t + [t = last real token] * score

    The reward model scores whole responses, so the score is a sparse reward at the end of the episode; the KL
    penalty is dense, one term per token (Ziegler et al. 2019, equation 2; InstructGPT, equation 2).

    Args:
        scores: (B,) the reward model's score of each response.
        logprobs: (B, T) log pi_old(y_t) of the sampled tokens, from the rollout.
        ref_logprobs: (B, T) log pi_ref(y_t), from the frozen reference.
        mask: (B, T) bool or 0/1, true at real response tokens; each row needs at least one.
        kl_coef: beta, a finite number >= 0 (a KL controller's ``value``).
        estimator: The per-token KL estimate (see [kl_penalty][llmdocs.finetuning.kl.kl_penalty]).

    Returns:
        A [PenalizedRewards][llmdocs.finetuning.ppo.PenalizedRewards]: the rewards and the KL used, detached
        (rewards are the environment's signal, not something to differentiate).

    Raises:
        TypeError: ``scores`` is not a floating (B,) tensor, or a log-probability not a floating (B, T) tensor.
        ValueError: The shapes differ or are empty, ``mask`` holds values other than 0/1 or a row without a real
            token, ``kl_coef`` is not a finite number >= 0, or ``estimator`` is unknown.

    Examples:
        >>> logprobs, ref = torch.tensor([[-1.0, -1.0, -1.0]]), torch.tensor([[-1.5, -1.0, -1.25]])  # d = .5, 0, .25
        >>> out = kl_penalized_rewards(torch.tensor([1.0]), logprobs, ref, torch.ones(1, 3), kl_coef=0.1)
        >>> out.rewards, out.mean_kl  # -0.1 * d, and 1 - 0.025 at the end
        (tensor([[-0.0500,  0.0000,  0.9750]]), 0.75)
    """
    keep = _check_per_token(mask, logprobs=logprobs, ref_logprobs=ref_logprobs)
    _check_per_pair(scores=scores)
    B, T = logprobs.shape
    if scores.shape[0] != B:
        raise ValueError(f"scores is {tuple(scores.shape)}, but logprobs has B={B} rows")
    empty = ~keep.any(dim=-1)  # (B,)
    if empty.any():
        row = int(empty.nonzero()[0])
        raise ValueError(f"row {row} of mask has no real token: its score has no token to be given to")
    kl_coef = _number("kl_coef", kl_coef, "a finite number >= 0", _finite_nonnegative)
    kl = kl_penalty(logprobs.detach(), ref_logprobs.detach(), estimator).masked_fill(~keep, 0.0)  # (B, T)
    rewards = -kl_coef * kl + 0.0  # (B, T); + 0.0 turns the -0.0 of kl = 0 into 0.0
    last = T - 1 - keep.flip(-1).to(torch.int8).argmax(dim=-1)  # (B,) the index of each row's last real token
    rewards[torch.arange(B), last] += scores.detach().to(rewards.dtype)
    return PenalizedRewards(rewards=rewards, kl=kl)


# ---- advantages ---------------------------------------------------------------------------------------------------


def gae_advantages(
    rewards: Tensor, values: Tensor, mask: Tensor, gamma: float = 1.0, lam: float = 0.95
) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimates and value targets, computed backwards over each response.

        delta_t = r_t + gamma V_{t+1} - V_t          (V = 0 after the last real token: the episode has ended)
        A_t     = delta_t + gamma lam A_{t+1}        = sum_l (gamma lam)^l delta_{t+l}
        R_t     = A_t + V_t                          (the value head's targets)

    lam = 1 gives the Monte-Carlo return minus V (unbiased, high variance), lam = 0 the one-step TD error
    (biased by V, low variance). RLHF uses gamma = 1: the episode is one response. The advantages are not
    whitened here: pass them to [masked_whiten][llmdocs.finetuning.masked.masked_whiten], as TRL did.

    Args:
        rewards: (B, T) per-token rewards (from [kl_penalized_rewards][llmdocs.finetuning.ppo.kl_penalized_rewards]).
        values: (B, T) V_old(s_t), the value head's estimates during the rollout.
        mask: (B, T) bool or 0/1, true at real tokens, right-padded (each row: real tokens, then padding).
        gamma: The discount, in [0, 1].
        lam: The GAE lambda, in [0, 1].

    Returns:
        ``(advantages, returns)``, both (B, T), detached (they are targets), 0 at padding.

    Raises:
        TypeError: ``rewards`` or ``values`` is not a floating (B, T) tensor.
        ValueError: The shapes differ or are empty, ``mask`` holds values other than 0/1 or is not right-padded,
            or ``gamma`` or ``lam`` is outside [0, 1].

    References:
        Schulman et al., "High-Dimensional Continuous Control Using Generalized Advantage Estimation", ICLR 2016,
        equation 16; Schulman et al., "Proximal Policy Optimization Algorithms", 2017, equations 11 and 12.

    Examples:
        >>> rewards, values = torch.tensor([[0.0, 0.0, 1.0]]), torch.tensor([[0.5, 0.25, 0.5]])
        >>> gae_advantages(rewards, values, torch.ones(1, 3), gamma=1.0, lam=0.5)  # deltas -0.25, 0.25, 0.5
        (tensor([[0.0000, 0.5000, 0.5000]]), tensor([[0.5000, 0.7500, 1.0000]]))
    """
    keep = _check_per_token(mask, rewards=rewards, values=values)
    _check_right_padded(keep)
    gamma = _number("gamma", gamma, "a number in [0, 1]", lambda v: 0.0 <= v <= 1.0)
    lam = _number("lam", lam, "a number in [0, 1]", lambda v: 0.0 <= v <= 1.0)
    dtype = torch.promote_types(rewards.dtype, values.dtype)
    rewards = rewards.detach().to(dtype).masked_fill(~keep, 0.0)  # (B, T)
    values = values.detach().to(dtype).masked_fill(~keep, 0.0)  # (B, T): V = 0 once the episode has ended
    B, T = rewards.shape
    advantages = torch.zeros_like(rewards)  # (B, T)
    next_value = rewards.new_zeros(B)  # (B,) V_{t+1}
    next_advantage = rewards.new_zeros(B)  # (B,) A_{t+1}
    for t in reversed(range(T)):
        delta = rewards[:, t] + gamma * next_value - values[:, t]  # (B,) the TD error; 0 at padding
        next_advantage = delta + gamma * lam * next_advantage
        advantages[:, t] = next_advantage
        next_value = values[:, t]
    return advantages, advantages + values


# ---- losses -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PPOPolicyLoss:
    """What [ppo_policy_loss][llmdocs.finetuning.ppo.ppo_policy_loss] returns.

    Attributes:
        loss: 0-d, the clipped surrogate loss (masked mean over tokens), with gradients.
        clip_fraction: The fraction of tokens where the clipped term is the larger one (those get no gradient).
        approx_kl: 1/2 mean_t (log pi - log pi_old)^2, the k2 estimate of KL(pi_old || pi) that TRL 0.x
            logged as ``approxkl``; 0 until the policy has moved from the rollout's.

    Examples:
        >>> logprobs = torch.log(torch.tensor([[0.5, 0.5]]))
        >>> out = ppo_policy_loss(logprobs, logprobs, torch.tensor([[1.0, -1.0]]), torch.ones(1, 2))  # on-policy
        >>> out.loss.item(), out.clip_fraction, out.approx_kl  # -mean(A); nothing clipped; not moved
        (0.0, 0.0, 0.0)
    """

    loss: Tensor
    clip_fraction: float
    approx_kl: float


def ppo_policy_loss(
    logprobs: Tensor, old_logprobs: Tensor, advantages: Tensor, mask: Tensor, clip_range: float = 0.2
) -> PPOPolicyLoss:
    """PPO's clipped surrogate loss over the response tokens.

        rho_t = exp(log pi(y_t) - log pi_old(y_t))
        L = masked_mean_t max(-A_t rho_t, -A_t clip(rho_t, 1 - eps, 1 + eps))

    The max of the two losses is the pessimistic bound (PPO's min of the objectives): once rho has moved past
    1 + eps on a token with A > 0 (or below 1 - eps with A < 0) the clipped term wins, and that token stops
    pulling; a move that makes the objective worse is never clipped.

    Args:
        logprobs: (B, T) log pi(y_t) under the policy being trained (with gradients).
        old_logprobs: (B, T) log pi_old(y_t) from the rollout (detached here).
        advantages: (B, T) A_t, usually whitened (detached here).
        mask: (B, T) bool or 0/1, true at real tokens; padding entries are never read.
        clip_range: eps > 0 (``math.inf`` turns clipping off: the plain policy-gradient loss -A rho).

    Returns:
        A [PPOPolicyLoss][llmdocs.finetuning.ppo.PPOPolicyLoss]: the loss, the clip fraction and the approximate KL.

    Raises:
        TypeError: An input is not a floating (B, T) tensor.
        ValueError: The shapes differ or are empty, ``mask`` holds values other than 0/1 or selects nothing, or
            ``clip_range`` is not > 0.

    References:
        Schulman et al., "Proximal Policy Optimization Algorithms", 2017, equation 7.

    Examples:
        >>> logprobs = torch.log(torch.tensor([[1.5, 1.5]]))  # rho = 1.5 on both tokens (log pi_old = 0)
        >>> out = ppo_policy_loss(logprobs, torch.zeros(1, 2), torch.tensor([[2.0, -1.0]]), torch.ones(1, 2))
        >>> round(out.loss.item(), 6), out.clip_fraction  # (max(-3, -2.4) + max(1.5, 1.2)) / 2
        (-0.45, 0.5)
    """
    keep = _check_per_token(mask, logprobs=logprobs, old_logprobs=old_logprobs, advantages=advantages)
    eps = _number("clip_range", clip_range, "a number > 0", lambda v: v > 0)
    log_ratio = (logprobs - old_logprobs.detach()).masked_fill(~keep, 0.0)  # (B, T) padding: rho = 1
    ratio = log_ratio.exp()  # (B, T)
    A = advantages.detach().masked_fill(~keep, 0.0)  # (B, T)
    unclipped = -A * ratio
    clipped = -A * ratio.clamp(1.0 - eps, 1.0 + eps)
    loss = masked_mean(torch.maximum(unclipped, clipped), keep)
    clip_fraction = masked_mean((clipped > unclipped).to(ratio.dtype), keep)
    approx_kl = masked_mean(0.5 * log_ratio.detach() ** 2, keep)
    return PPOPolicyLoss(loss=loss, clip_fraction=float(clip_fraction), approx_kl=float(approx_kl))


@dataclass(frozen=True)
class PPOValueLoss:
    """What [ppo_value_loss][llmdocs.finetuning.ppo.ppo_value_loss] returns.

    Attributes:
        loss: 0-d, half the masked mean of the larger squared error, with gradients.
        clip_fraction: The fraction of tokens where the clipped error is the larger one (those get no gradient).

    Examples:
        >>> values = torch.tensor([[0.0, 1.0]])
        >>> out = ppo_value_loss(values, values, torch.tensor([[1.0, 1.0]]), torch.ones(1, 2))
        >>> out.loss.item(), out.clip_fraction  # 1/2 mean((0 - 1)^2, (1 - 1)^2)
        (0.25, 0.0)
    """

    loss: Tensor
    clip_fraction: float


def ppo_value_loss(
    values: Tensor, old_values: Tensor, returns: Tensor, mask: Tensor, clip_range_value: float = 0.2
) -> PPOValueLoss:
    """The value head's clipped squared error against the GAE returns.

        V_clip = clip(V_t, V_old_t - eps, V_old_t + eps)
        L = 1/2 masked_mean_t max((V_t - R_t)^2, (V_clip - R_t)^2)

    Like the policy's ratio, the value may move at most eps from the rollout's estimate before it stops learning
    from a batch (OpenAI's baselines and TRL 0.x clip it; Huang et al. 2022 find it not to help on control tasks,
    ``math.inf`` turns it off).

    Args:
        values: (B, T) V(s_t) from the value head being trained (with gradients).
        old_values: (B, T) V_old(s_t) from the rollout (detached here).
        returns: (B, T) R_t from [gae_advantages][llmdocs.finetuning.ppo.gae_advantages] (detached here).
        mask: (B, T) bool or 0/1, true at real tokens; padding entries are never read.
        clip_range_value: eps > 0 (``math.inf``: no clipping).

    Returns:
        A [PPOValueLoss][llmdocs.finetuning.ppo.PPOValueLoss]: the loss and the clip fraction.

    Raises:
        TypeError: An input is not a floating (B, T) tensor.
        ValueError: The shapes differ or are empty, ``mask`` holds values other than 0/1 or selects nothing, or
            ``clip_range_value`` is not > 0.

    References:
        Schulman et al., "Proximal Policy Optimization Algorithms", 2017, equation 9; Huang et al., "The 37
        Implementation Details of Proximal Policy Optimization", 2022 (detail 9, value function loss clipping).

    Examples:
        >>> values, old = torch.tensor([[1.5, 1.5]]), torch.ones(1, 2)  # V may move to 1.2 at most
        >>> out = ppo_value_loss(values, old, torch.tensor([[2.0, 1.0]]), torch.ones(1, 2))
        >>> round(out.loss.item(), 6), out.clip_fraction  # 0.5 * (max(0.25, 0.64) + max(0.25, 0.04)) / 2
        (0.2225, 0.5)
    """
    keep = _check_per_token(mask, values=values, old_values=old_values, returns=returns)
    eps = _number("clip_range_value", clip_range_value, "a number > 0", lambda v: v > 0)
    V = values.masked_fill(~keep, 0.0)  # (B, T)
    V_old = old_values.detach().masked_fill(~keep, 0.0)  # (B, T)
    R = returns.detach().masked_fill(~keep, 0.0)  # (B, T)
    V_clipped = torch.clamp(V, V_old - eps, V_old + eps)  # exactly V when eps is inf
    unclipped = (V - R) ** 2
    clipped = (V_clipped - R) ** 2
    loss = 0.5 * masked_mean(torch.maximum(unclipped, clipped), keep)
    clip_fraction = masked_mean((clipped > unclipped).to(V.dtype), keep)
    return PPOValueLoss(loss=loss, clip_fraction=float(clip_fraction))


def entropy_from_logits(logits: Tensor) -> Tensor:
    """The entropy (nats) of each position's next-token distribution, without a (B, T, V) log-softmax.

        H = -sum_v p_v log p_v = logsumexp(z) - sum_v p_v z_v

    computed on z - max(z) (shift-invariant, so logsumexp stays in [0, log V]); a -inf logit (a banned token)
    counts as probability 0 instead of giving 0 * -inf = NaN. Half-precision logits are computed in float32.

    Args:
        logits: (B, T, V) logits (any leading dimensions: (..., V)).

    Returns:
        (B, T) entropies, between 0 (one certain token) and log V (uniform).

    Raises:
        TypeError: ``logits`` is not a floating tensor with a vocabulary dimension.
        ValueError: The vocabulary dimension is empty.

    Examples:
        >>> logits = torch.tensor([[[0.0, 0.0, 0.0, 0.0], [0.0, float("-inf"), float("-inf"), float("-inf")]]])
        >>> entropy_from_logits(logits)  # log 4 and 0
        tensor([[1.3863, 0.0000]])
    """
    if not isinstance(logits, Tensor) or not logits.is_floating_point() or logits.dim() < 1:
        got = f"{logits.dtype} {tuple(logits.shape)}" if isinstance(logits, Tensor) else type(logits).__name__
        raise TypeError(f"logits must be a floating tensor (B, T, V), got {got}")
    if logits.size(-1) == 0:
        raise ValueError(f"logits has an empty vocabulary dimension: {tuple(logits.shape)}")
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    z = logits - logits.amax(dim=-1, keepdim=True).detach()  # (B, T, V), max 0
    z = z.clamp(min=torch.finfo(z.dtype).min)  # -inf -> a finite value whose probability is exactly 0
    probs = F.softmax(z, dim=-1)  # (B, T, V)
    return torch.logsumexp(z, dim=-1) - (probs * z).sum(dim=-1)  # (B, T)
