"""Tests for llmdocs.finetuning.bradley_terry: the reward model's loss and accuracy on hand-computed values.

- r_w - r_l = 1: -log sigmoid(1) = log(1 + e^-1) = 0.313262; a tie: log 2; with a margin of 1 the same pair is a tie.
- Gradient: d/d r_w = -sigmoid(-(r_w - r_l)) / B, d/d r_l its opposite.
- Centring: c (r_w + r_l)^2 added; only differences matter otherwise (a shift of both leaves the loss unchanged).
"""

from __future__ import annotations

import math

import pytest
import torch

from llmdocs.finetuning.bradley_terry import bradley_terry_loss, pairwise_accuracy


def test_loss_by_hand_with_margin_and_centring() -> None:
    chosen, rejected = torch.tensor([1.0, 3.0]), torch.tensor([0.0, 3.0])
    expected = (math.log(1 + math.exp(-1)) + math.log(2)) / 2
    assert bradley_terry_loss(chosen, rejected).item() == pytest.approx(expected)
    assert bradley_terry_loss(chosen, rejected, margin=torch.tensor([1.0, 0.0])).item() == pytest.approx(math.log(2))
    centred = bradley_terry_loss(chosen, rejected, center_rewards_coefficient=0.01).item()
    assert centred == pytest.approx(expected + 0.01 * (1.0 + 36.0) / 2)
    assert bradley_terry_loss(chosen + 5, rejected + 5).item() == pytest.approx(expected)  # only differences count


def test_gradient_by_hand() -> None:
    chosen = torch.tensor([1.0, 3.0], requires_grad=True)
    rejected = torch.tensor([0.0, 3.0], requires_grad=True)
    bradley_terry_loss(chosen, rejected).backward()
    expected = [-1 / (1 + math.e) / 2, -0.5 / 2]  # -sigmoid(-d) / B
    assert chosen.grad.tolist() == pytest.approx(expected)
    assert rejected.grad.tolist() == pytest.approx([-g for g in expected])


def test_pairwise_accuracy_and_bad_input() -> None:
    assert pairwise_accuracy(torch.tensor([2.0, 0.0, 1.0, 5.0]), torch.tensor([1.0, 1.0, 1.0, 4.0])) == 0.5
    good = torch.tensor([1.0, 2.0])
    for args, kwargs, error, match in (
        ((good, torch.tensor([1, 2])), {}, TypeError, r"rejected_rewards must be a floating tensor \(B,\)"),
        ((good[:, None], good), {}, TypeError, "chosen_rewards must be a floating tensor"),
        ((good, torch.zeros(3)), {}, ValueError, r"rejected_rewards is \(3,\), but chosen_rewards is \(2,\)"),
        ((good, good), {"margin": torch.zeros(1)}, ValueError, r"margin is \(1,\)"),
        ((torch.zeros(0), torch.zeros(0)), {}, ValueError, "empty"),
        ((good, good), {"center_rewards_coefficient": -1.0}, ValueError, "center_rewards_coefficient must be"),
    ):
        with pytest.raises(error, match=match):
            bradley_terry_loss(*args, **kwargs)
    with pytest.raises(TypeError, match="chosen_rewards must be a floating tensor"):
        pairwise_accuracy([1.0], good)
