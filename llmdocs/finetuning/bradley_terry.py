"""The Bradley-Terry model of preferences, and the loss that trains a reward model on pairs.

A reward model gives each (prompt, answer) a scalar r. Bradley and Terry (1952) model the probability that answer
y_w is preferred to y_l as a logistic function of the difference of their scores:

    P(y_w > y_l | x) = sigmoid(r(x, y_w) - r(x, y_l))

so training on human (or generated) preference pairs is maximum likelihood, a logistic regression on the margin:

    L = -mean log sigmoid(r_w - r_l - m)

with an optional per-pair margin m (Llama 2's reward models ask a larger gap for "significantly better" pairs). Only
differences of rewards enter, so the scale's zero point is free; ``center_rewards_coefficient`` adds
c * mean((r_w + r_l)^2) to keep the rewards centred on 0 (as TRL's ``RewardTrainer`` does), which makes a reward
readable on its own. [pairwise_accuracy][llmdocs.finetuning.bradley_terry.pairwise_accuracy] is the fraction of
pairs ranked the right way, the number reward models are judged by.

References:
    Bradley and Terry, "Rank Analysis of Incomplete Block Designs: I. The Method of Paired Comparisons",
    Biometrika 1952; Ouyang et al., "Training language models to follow instructions with human feedback", NeurIPS
    2022, section 3.5 (equation 1); Touvron et al., "Llama 2", 2023, section 3.2.2 (the margin); Hugging Face TRL
    ``RewardTrainer`` (``center_rewards_coefficient``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["bradley_terry_loss", "pairwise_accuracy"]


def _check_per_pair(**values: object) -> None:
    """Each value given (None skipped) must be a floating (B,) tensor, one per pair, all of the first one's shape."""
    first: tuple[str, Tensor] | None = None
    for name, value in values.items():
        if value is None:
            continue
        if not isinstance(value, Tensor) or not value.is_floating_point() or value.dim() != 1:
            got = f"{value.dtype} {tuple(value.shape)}" if isinstance(value, Tensor) else type(value).__name__
            raise TypeError(f"{name} must be a floating tensor (B,), one value per pair, got {got}")
        if first is None:
            first = (name, value)
            if value.numel() == 0:
                raise ValueError(f"{name} is empty: a batch needs at least one pair")
        elif value.shape != first[1].shape:
            raise ValueError(f"{name} is {tuple(value.shape)}, but {first[0]} is {tuple(first[1].shape)}")


def bradley_terry_loss(
    chosen_rewards: Tensor,
    rejected_rewards: Tensor,
    margin: Tensor | None = None,
    center_rewards_coefficient: float = 0.0,
) -> Tensor:
    """The negative log-likelihood of the preferences under the Bradley-Terry model, averaged over pairs.

        L = -mean_b log sigmoid(r_w[b] - r_l[b] - m[b]) + c * mean_b (r_w[b] + r_l[b])^2

    Args:
        chosen_rewards: (B,) r(x, y_w), the reward model's score of each preferred answer.
        rejected_rewards: (B,) r(x, y_l), the score of each dispreferred answer.
        margin: (B,) optional gap the chosen score should exceed the rejected one by (0 when None).
        center_rewards_coefficient: c >= 0, the weight of the penalty that keeps rewards centred on 0.

    Returns:
        0-d loss (nats per pair, plus the centring term).

    Raises:
        TypeError: A reward or the margin is not a floating (B,) tensor.
        ValueError: The shapes differ or are empty, or ``center_rewards_coefficient`` is not a finite number >= 0.

    Examples:
        >>> round(bradley_terry_loss(torch.tensor([1.0]), torch.tensor([0.0])).item(), 6)  # -log sigmoid(1)
        0.313262
        >>> round(bradley_terry_loss(torch.tensor([0.0]), torch.tensor([0.0])).item(), 6)  # a tie: log 2
        0.693147
    """
    _check_per_pair(chosen_rewards=chosen_rewards, rejected_rewards=rejected_rewards, margin=margin)
    c = center_rewards_coefficient
    if isinstance(c, bool) or not isinstance(c, int | float) or not (math.isfinite(c) and c >= 0):
        raise ValueError(f"center_rewards_coefficient must be a finite number >= 0, got {c!r}")
    difference = chosen_rewards - rejected_rewards  # (B,)
    if margin is not None:
        difference = difference - margin
    loss = -F.logsigmoid(difference).mean()  # ()
    if c:
        loss = loss + c * (chosen_rewards + rejected_rewards).pow(2).mean()
    return loss


def pairwise_accuracy(chosen_rewards: Tensor, rejected_rewards: Tensor) -> float:
    """The fraction of pairs whose preferred answer scores higher (ties count as wrong).

    Args:
        chosen_rewards: (B,) scores of the preferred answers.
        rejected_rewards: (B,) scores of the dispreferred answers.

    Returns:
        A fraction in [0, 1].

    Raises:
        TypeError: A reward is not a floating (B,) tensor.
        ValueError: The shapes differ or are empty.

    Examples:
        >>> pairwise_accuracy(torch.tensor([2.0, 0.0, 1.0]), torch.tensor([1.0, 1.0, 1.0]))  # right, wrong, tie
        0.3333333432674408
    """
    _check_per_pair(chosen_rewards=chosen_rewards, rejected_rewards=rejected_rewards)
    return float((chosen_rewards > rejected_rewards).to(torch.float32).mean())
