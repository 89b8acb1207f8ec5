"""KL between a policy and its reference: per-token estimators (Schulman's k1/k2/k3) and the KL coefficient controllers.

RL fine-tuning keeps the policy pi near a frozen reference pi_ref (the SFT model) with a penalty beta KL(pi || pi_ref)
(Ziegler et al. 2019; InstructGPT). The KL over whole responses cannot be computed exactly, but every sampled token
y_t ~ pi gives an estimate from two numbers, its log-probabilities under both models:

    d = log pi(y_t) - log pi_ref(y_t),    r = pi_ref(y_t) / pi(y_t) = e^{-d}

    k1 = d = -log r              unbiased, but negative wherever pi_ref is the more likely (high variance)
    k2 = d^2 / 2                 biased, >= 0, low variance
    k3 = (r - 1) - log r         unbiased and >= 0: k1 plus r - 1, whose mean under pi is 0 (E[r] = 1)

([kl_penalty][llmdocs.finetuning.kl.kl_penalty]; Schulman 2020). Summed over a response's tokens, k1 is the
log-ratio log pi(y) / pi_ref(y) of the whole sequence, the penalty of PPO's RLHF rewards; k3 is GRPO's per-token KL
term. The same tokens then tell how far the policy has drifted, and the coefficient beta can follow it:

    fixed:     beta stays as set ([FixedKLController][llmdocs.finetuning.kl.FixedKLController])
    adaptive:  e = clip(KL / KL_target - 1, -0.2, 0.2),   beta <- beta (1 + e n_steps / horizon)
               ([AdaptiveKLController][llmdocs.finetuning.kl.AdaptiveKLController])

so that beta grows while the policy runs away from the reference and shrinks while it stays too close.

References:
    Schulman, "Approximating KL Divergence", blog post, 2020, http://joschu.net/blog/kl-approx.html (k1, k2, k3);
    Ziegler et al., "Fine-Tuning Language Models from Human Preferences", 2019, section 2.2 (the KL penalty and the
    adaptive controller) and OpenAI's ``lm-human-preferences``; Ouyang et al., "Training language models to follow
    instructions with human feedback", NeurIPS 2022, section 3.5; Shao et al., "DeepSeekMath", 2024, equation 4
    (k3 in GRPO); Hugging Face TRL <= 0.x ``AdaptiveKLController``, ``FixedKLController`` and ``kl_penalty``.
"""

from __future__ import annotations

import math
import numbers
from typing import Literal

import torch
from torch import Tensor

from llmdocs.finetuning.masked import _check_floating, _finite_nonnegative, _finite_positive, _number
from llmdocs.finetuning.sft_labels import _check_count

__all__ = ["KL_ESTIMATORS", "AdaptiveKLController", "FixedKLController", "kl_penalty"]

KLEstimator = Literal["k1", "k2", "k3", "abs"]
KL_ESTIMATORS: tuple[str, ...] = ("k1", "k2", "k3", "abs")
"""The per-token KL estimators [kl_penalty][llmdocs.finetuning.kl.kl_penalty] computes."""


def kl_penalty(logprobs: Tensor, ref_logprobs: Tensor, estimator: KLEstimator = "k1") -> Tensor:
    """A per-token estimate of KL(pi || pi_ref) from the log-probabilities of sampled tokens.

    With d = log pi(y_t) - log pi_ref(y_t) at a token y_t sampled from pi (Schulman's r = pi_ref / pi = e^{-d}):

        "k1":  d                  unbiased, one sign per token (negative where pi_ref is more likely)
        "k2":  d^2 / 2            biased, >= 0, low variance (TRL 0.x called it "mse")
        "k3":  e^{-d} - 1 + d     unbiased and >= 0 (r - 1 - log r); the "low_var_kl" of GRPO
        "abs": |d|                biased, >= 0

    k1 and k3 average to the KL exactly over y_t ~ pi (E[e^{-d}] = E[pi_ref / pi] = 1); k1 is what InstructGPT
    and TRL's PPO put into the rewards.

    Args:
        logprobs: (B, T) log pi(y_t) of the sampled tokens (the rollout policy's); any shape.
        ref_logprobs: log pi_ref(y_t) of the same tokens, ``logprobs``' shape.
        estimator: One of ``KL_ESTIMATORS``.

    Returns:
        (B, T) per-token estimates, at every position (padding included: mask them).

    Raises:
        TypeError: A log-probability is not a floating tensor.
        ValueError: The shapes differ, or ``estimator`` is unknown.

    References:
        Schulman, "Approximating KL Divergence", 2020, http://joschu.net/blog/kl-approx.html.

    Examples:
        >>> logprobs, ref = torch.tensor([0.0, 0.0]), torch.log(torch.tensor([0.5, 2.0]))  # d = log 2, -log 2
        >>> torch.stack([kl_penalty(logprobs, ref, k) for k in KL_ESTIMATORS])  # rows: k1, k2, k3, abs
        tensor([[ 0.6931, -0.6931],
                [ 0.2402,  0.2402],
                [ 0.1931,  0.3069],
                [ 0.6931,  0.6931]])
    """
    _check_floating("logprobs", logprobs)
    _check_floating("ref_logprobs", ref_logprobs)
    if logprobs.shape != ref_logprobs.shape:
        raise ValueError(f"ref_logprobs is {tuple(ref_logprobs.shape)}, but logprobs is {tuple(logprobs.shape)}")
    if estimator not in KL_ESTIMATORS:
        raise ValueError(f"estimator must be one of {KL_ESTIMATORS}, got {estimator!r}")
    d = logprobs - ref_logprobs  # log pi / pi_ref
    if estimator == "k1":
        return d
    if estimator == "k2":
        return 0.5 * d**2
    if estimator == "k3":
        return torch.expm1(-d) + d  # e^{-d} - 1 + d; expm1 keeps the small-d values accurate
    return d.abs()


# ---- the KL coefficient -------------------------------------------------------------------------------------------


def _check_update(current_kl: object, n_steps: object) -> tuple[float, int]:
    if isinstance(current_kl, Tensor) and current_kl.numel() == 1 and current_kl.is_floating_point():
        current_kl = float(current_kl)
    if isinstance(current_kl, bool) or not isinstance(current_kl, numbers.Real):
        raise TypeError(f"current_kl must be a number (the batch's mean KL), got {type(current_kl).__name__}")
    if not math.isfinite(current_kl):
        raise ValueError(f"current_kl must be finite, got {current_kl!r}")
    return float(current_kl), _check_count(n_steps, "n_steps")


class FixedKLController:
    """A constant KL coefficient beta, with the adaptive controller's interface.

    Args:
        kl_coef: beta, a finite number >= 0.

    Raises:
        ValueError: ``kl_coef`` is not a finite number >= 0.

    Examples:
        >>> controller = FixedKLController(0.05)
        >>> controller.update(current_kl=12.0, n_steps=64), controller.value
        (0.05, 0.05)
    """

    def __init__(self, kl_coef: float) -> None:
        self.value = _number("kl_coef", kl_coef, "a finite number >= 0", _finite_nonnegative)

    def update(self, current_kl: float, n_steps: int) -> float:
        """Check the arguments and keep beta; returns it."""
        _check_update(current_kl, n_steps)
        return self.value

    def __repr__(self) -> str:
        return f"FixedKLController(kl_coef={self.value!r})"


class AdaptiveKLController:
    """Ziegler et al.'s proportional controller: beta grows when the KL is above its target and shrinks below.

        e = clip(KL / KL_target - 1, -0.2, 0.2)
        beta <- beta * (1 + e * n_steps / horizon)

    Ziegler et al. (2019, section 2.2) write beta_{t+1} = beta_t (1 + K_beta e_t); their code (OpenAI's
    ``lm-human-preferences``, copied by TRL 0.x) sets K_beta = n_steps / horizon, the number of episodes since the
    last update over a horizon of episodes. The clip bounds the step, so one odd batch cannot swing beta.

    Args:
        init_kl_coef: The initial beta, a finite number > 0.
        target: KL_target (nats per response), a finite number > 0.
        horizon: The number of episodes over which beta adapts, a finite number > 0 (10000 in the paper).

    Raises:
        ValueError: An argument is not a finite number > 0.

    References:
        Ziegler et al., "Fine-Tuning Language Models from Human Preferences", 2019, section 2.2.

    Examples:
        >>> controller = AdaptiveKLController(init_kl_coef=0.2, target=6.0, horizon=10000)
        >>> round(controller.update(current_kl=9.0, n_steps=256), 6)  # e = clip(0.5) = 0.2: x (1 + 0.2 * 0.0256)
        0.201024
    """

    def __init__(self, init_kl_coef: float, target: float, horizon: float) -> None:
        positive = "a finite number > 0"
        self.value = _number("init_kl_coef", init_kl_coef, positive, _finite_positive)
        self.target = _number("target", target, positive, _finite_positive)
        self.horizon = _number("horizon", horizon, positive, _finite_positive)

    def update(self, current_kl: float, n_steps: int) -> float:
        """Move beta towards the target KL after a batch of ``n_steps`` episodes; returns the new beta.

        Args:
            current_kl: The batch's mean KL per response (PPO's ``PenalizedRewards.mean_kl``), a finite number.
            n_steps: The number of episodes (responses) since the last update, an int >= 1.

        Returns:
            The new beta, also stored in ``value``.

        Raises:
            TypeError: ``current_kl`` is not a number or ``n_steps`` not an integer.
            ValueError: ``current_kl`` is not finite or ``n_steps`` < 1.
        """
        current_kl, n_steps = _check_update(current_kl, n_steps)
        error = min(max(current_kl / self.target - 1.0, -0.2), 0.2)  # e_t, the clipped proportional error
        self.value *= 1.0 + error * n_steps / self.horizon  # beta_{t+1} = beta_t (1 + K_beta e_t)
        return self.value

    def __repr__(self) -> str:
        return f"AdaptiveKLController(value={self.value!r}, target={self.target!r}, horizon={self.horizon!r})"
