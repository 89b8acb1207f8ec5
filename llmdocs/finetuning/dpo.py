"""Direct Preference Optimization (DPO): learn from pairs of answers without a reward model or sampling.

RLHF maximises a reward while staying close to a reference policy pi_ref:

    max_pi  E_{x, y ~ pi} [ r(x, y) ] - beta KL( pi(. | x) || pi_ref(. | x) )

whose optimum is pi*(y | x) = pi_ref(y | x) exp(r(x, y) / beta) / Z(x). Solved for the reward,
r(x, y) = beta log (pi*(y | x) / pi_ref(y | x)) + beta log Z(x): the policy itself defines a reward, up to a term
of x alone. Put into the Bradley-Terry model of a preference y_w > y_l, P = sigmoid(r(x, y_w) - r(x, y_l)), the
Z(x) terms cancel, and maximising the likelihood of the observed preferences is a loss on the policy directly:

    h = [log pi(y_w | x) - log pi_ref(y_w | x)] - [log pi(y_l | x) - log pi_ref(y_l | x)]
    L_DPO = -log sigmoid(beta h)

[dpo_loss][llmdocs.finetuning.dpo.dpo_loss] computes it from the four sequence log-probabilities
([sequence_log_probs][llmdocs.finetuning.logprobs.sequence_log_probs]), with two variants:

- ``label_smoothing`` eps (conservative DPO: each label is wrong with probability eps):
  L = -(1 - eps) log sigmoid(beta h) - eps log sigmoid(-beta h).
- ``loss_type="ipo"`` (Azar et al., 2023): L = (h - 1 / (2 beta))^2, which does not push h to infinity when the
  pairs are separable (with per-token mean log-probabilities, as in TRL).
- ``reference_free=True``: pi_ref taken as uniform over responses (its log-ratios are 0), the contrast that shows
  what the reference does.

The implicit rewards beta (log pi - log pi_ref) of the chosen and rejected answers, their margin and the fraction of
pairs where the chosen one's is higher (the reward accuracy) are the metrics that DPO runs report.

References:
    Rafailov et al., "Direct Preference Optimization: Your Language Model is Secretly a Reward Model", NeurIPS
    2023, sections 4 and 5 (equation 7); Azar et al., "A General Theoretical Paradigm to Understand Learning from
    Human Preferences", 2023 (IPO, equation 17); Mitchell, "A note on DPO with noisy preferences and relationship to
    IPO", 2023 (label smoothing); Hugging Face TRL ``DPOTrainer.dpo_loss``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from llmdocs.finetuning.bradley_terry import _check_per_pair

__all__ = ["DPO_LOSS_TYPES", "DPOLoss", "check_dpo_settings", "dpo_loss"]

DPOLossType = Literal["sigmoid", "ipo"]
DPO_LOSS_TYPES: tuple[str, ...] = ("sigmoid", "ipo")
"""The losses [dpo_loss][llmdocs.finetuning.dpo.dpo_loss] computes: DPO's (``"sigmoid"``) and IPO's."""


@dataclass(frozen=True)
class DPOLoss:
    """What [dpo_loss][llmdocs.finetuning.dpo.dpo_loss] returns.

    Attributes:
        loss: 0-d, the mean over pairs, with gradients.
        losses: (B,) each pair's loss.
        chosen_rewards: (B,) beta (log pi(y_w) - log pi_ref(y_w)), detached.
        rejected_rewards: (B,) beta (log pi(y_l) - log pi_ref(y_l)), detached.
        nll: 0-d, detached: the chosen answers' negative log-likelihood per token when an NLL term was added to the
            loss (``dpo_loss_fn``'s ``rpo_alpha``), else None.

    Examples:
        >>> out = dpo_loss(torch.tensor([-1.0, -4.0]), torch.tensor([-3.0, -2.0]), torch.full((2,), -2.0),
        ...                torch.full((2,), -2.0), beta=0.5)
        >>> out.margins, out.accuracy  # beta h per pair (h = 2 and -2): the second pair is ranked the wrong way
        (tensor([ 1., -1.]), 0.5)
    """

    loss: Tensor
    losses: Tensor
    chosen_rewards: Tensor
    rejected_rewards: Tensor
    nll: Tensor | None = None

    @property
    def margins(self) -> Tensor:
        """(B,) chosen minus rejected implicit reward: beta h."""
        return self.chosen_rewards - self.rejected_rewards

    @property
    def accuracy(self) -> float:
        """The fraction of pairs whose chosen answer has the higher implicit reward (ties count as wrong)."""
        return float((self.chosen_rewards > self.rejected_rewards).to(torch.float32).mean())


def check_dpo_settings(beta: object, loss_type: object, label_smoothing: object) -> None:
    """Check DPO's settings before any work: ``beta`` > 0 finite, ``loss_type`` known, ``label_smoothing`` in
    [0, 0.5) and only with ``"sigmoid"``; a ValueError naming the argument otherwise.

    Examples:
        >>> check_dpo_settings(0.1, "ipo", 0.0)  # fine: returns None
        >>> check_dpo_settings(0.1, "ipo", 0.1)
        Traceback (most recent call last):
        ...
        ValueError: label_smoothing applies to the sigmoid (DPO) loss only, not to 'ipo'
    """
    if isinstance(beta, bool) or not isinstance(beta, int | float) or not (math.isfinite(beta) and beta > 0):
        raise ValueError(f"beta must be a positive finite number, got {beta!r}")
    if loss_type not in DPO_LOSS_TYPES:
        raise ValueError(f"loss_type must be one of {DPO_LOSS_TYPES}, got {loss_type!r}")
    if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, int | float):
        raise ValueError(f"label_smoothing must be a number in [0, 0.5), got {label_smoothing!r}")
    if not 0.0 <= label_smoothing < 0.5:
        raise ValueError(f"label_smoothing must be a number in [0, 0.5), got {label_smoothing!r}")
    if label_smoothing and loss_type != "sigmoid":
        raise ValueError(f"label_smoothing applies to the sigmoid (DPO) loss only, not to {loss_type!r}")


def dpo_loss(
    policy_chosen: Tensor,
    policy_rejected: Tensor,
    reference_chosen: Tensor | None,
    reference_rejected: Tensor | None,
    beta: float = 0.1,
    loss_type: DPOLossType = "sigmoid",
    label_smoothing: float = 0.0,
    reference_free: bool = False,
) -> DPOLoss:
    """The DPO (or IPO) loss of a batch of preference pairs, from their sequence log-probabilities.

        h = [log pi(y_w) - log pi_ref(y_w)] - [log pi(y_l) - log pi_ref(y_l)]
        "sigmoid": L = -(1 - eps) log sigmoid(beta h) - eps log sigmoid(-beta h)
        "ipo":     L = (h - 1 / (2 beta))^2

    Args:
        policy_chosen: (B,) log pi(y_w | x) under the policy being trained (with gradients).
        policy_rejected: (B,) log pi(y_l | x) under the policy.
        reference_chosen: (B,) log pi_ref(y_w | x) under the frozen reference (no gradients needed); None with
            ``reference_free``.
        reference_rejected: (B,) log pi_ref(y_l | x); None with ``reference_free``.
        beta: How far the policy may move from the reference (the KL coefficient of the RLHF objective); > 0.
        loss_type: ``"sigmoid"`` (DPO) or ``"ipo"``.
        label_smoothing: eps in [0, 0.5): the assumed probability that a pair's label is flipped (``"sigmoid"``
            only).
        reference_free: Ignore the reference (its log-ratio taken as 0).

    Returns:
        A [DPOLoss][llmdocs.finetuning.dpo.DPOLoss]: the mean loss, each pair's, and the implicit rewards.

    Raises:
        TypeError: A log-probability is not a floating (B,) tensor, or ``reference_free`` is not a bool.
        ValueError: The shapes differ or are empty, the reference is missing (or given with ``reference_free``),
            ``beta`` is not a positive finite number, ``loss_type`` is unknown, or ``label_smoothing`` is outside
            [0, 0.5) or used with ``"ipo"``.

    Examples:
        >>> out = dpo_loss(torch.tensor([-1.0]), torch.tensor([-3.0]), torch.tensor([-2.0]), torch.tensor([-2.0]))
        >>> round(out.loss.item(), 6)  # h = (-1 + 2) - (-3 + 2) = 2, -log sigmoid(0.1 * 2)
        0.598139
        >>> out.chosen_rewards, out.rejected_rewards, out.accuracy
        (tensor([0.1000]), tensor([-0.1000]), 1.0)
    """
    if not isinstance(reference_free, bool):
        raise TypeError(f"reference_free must be a bool, got {reference_free!r}")
    if reference_free and (reference_chosen is not None or reference_rejected is not None):
        raise ValueError("reference_free=True ignores the reference: pass reference_chosen=reference_rejected=None")
    if not reference_free and (reference_chosen is None or reference_rejected is None):
        raise ValueError("reference_chosen and reference_rejected are needed (or pass reference_free=True)")
    _check_per_pair(  # sequence log-probabilities, one per pair
        policy_chosen=policy_chosen,
        policy_rejected=policy_rejected,
        reference_chosen=reference_chosen,
        reference_rejected=reference_rejected,
    )
    check_dpo_settings(beta, loss_type, label_smoothing)

    chosen_ratio = policy_chosen - (0.0 if reference_chosen is None else reference_chosen)  # (B,) log pi/pi_ref
    rejected_ratio = policy_rejected - (0.0 if reference_rejected is None else reference_rejected)  # (B,)
    h = chosen_ratio - rejected_ratio  # (B,)
    if loss_type == "sigmoid":
        losses = -(1.0 - label_smoothing) * F.logsigmoid(beta * h) - label_smoothing * F.logsigmoid(-beta * h)
    else:  # ipo
        losses = (h - 1.0 / (2.0 * beta)) ** 2
    return DPOLoss(
        loss=losses.mean(),
        losses=losses,
        chosen_rewards=(beta * chosen_ratio).detach(),
        rejected_rewards=(beta * rejected_ratio).detach(),
    )
