"""Tests for llmdocs.finetuning.dpo: DPO and IPO losses on hand-computed values, their gradients and invariants.

h = (log pi(y_w) - log pi_ref(y_w)) - (log pi(y_l) - log pi_ref(y_l)); with pi(y_w) = -1, pi(y_l) = -3 and the
reference at -2 for both, h = 2:
- DPO, beta 0.1: -log sigmoid(0.2) = log(1 + e^-0.2) = 0.598139; d/d log pi(y_w) = -beta sigmoid(-beta h) = -0.045017.
- Label smoothing 0.1: 0.9 * 0.598139 + 0.1 * log(1 + e^0.2) = 0.618139.
- IPO, beta 0.1: (2 - 1 / 0.2)^2 = 9.
"""

from __future__ import annotations

import pytest
import torch

from llmdocs.finetuning.dpo import dpo_loss
from llmdocs.testing import assert_equivalent

PAIR = (torch.tensor([-1.0]), torch.tensor([-3.0]), torch.tensor([-2.0]), torch.tensor([-2.0]))


def test_dpo_loss_rewards_and_gradient_by_hand() -> None:
    chosen = torch.tensor([-1.0], requires_grad=True)
    out = dpo_loss(chosen, *PAIR[1:], beta=0.1)
    assert out.loss.item() == pytest.approx(0.598139, abs=1e-6)
    assert out.chosen_rewards.tolist() == pytest.approx([0.1]) and out.rejected_rewards.tolist() == pytest.approx(
        [-0.1]
    )
    assert out.margins.tolist() == pytest.approx([0.2]) and out.accuracy == 1.0
    out.loss.backward()
    assert chosen.grad.item() == pytest.approx(-0.045017, abs=1e-6)  # -beta sigmoid(-beta h): raise log pi(y_w)
    assert not out.chosen_rewards.requires_grad  # metrics are detached


def test_label_smoothing_ipo_and_reference_free_by_hand() -> None:
    assert dpo_loss(*PAIR, beta=0.1, label_smoothing=0.1).loss.item() == pytest.approx(0.618139, abs=1e-6)
    assert dpo_loss(*PAIR, beta=0.1, loss_type="ipo").loss.item() == pytest.approx(9.0)
    free = dpo_loss(PAIR[0], PAIR[1], None, None, beta=0.1, reference_free=True)
    assert free.loss.item() == pytest.approx(0.598139, abs=1e-6)  # h = -1 - (-3) = 2 again
    assert free.chosen_rewards.tolist() == pytest.approx([-0.1]) and free.rejected_rewards.tolist() == pytest.approx(
        [-0.3]
    )


def test_a_batch_averages_its_pairs_and_swapping_a_pair_shifts_the_loss_by_beta_h() -> None:
    torch.manual_seed(0)
    logps = [torch.randn(5, dtype=torch.float64) for _ in range(4)]
    out = dpo_loss(*logps, beta=0.5)
    for i in range(5):
        alone = dpo_loss(*(x[i : i + 1] for x in logps), beta=0.5)
        assert out.losses[i].item() == pytest.approx(alone.loss.item(), rel=1e-12)
    assert out.loss.item() == pytest.approx(out.losses.mean().item(), rel=1e-12)
    swapped = dpo_loss(logps[1], logps[0], logps[3], logps[2], beta=0.5)
    # -log sigmoid(x) + log sigmoid(-x) = -x: the loss of a pair minus the swapped pair's is -beta h
    assert_equivalent(out.losses - swapped.losses, -out.margins, depth=1)
    assert out.accuracy == pytest.approx(float((out.margins > 0).double().mean()))
    reference = torch.tensor([-2.0, 0.0])
    two = dpo_loss(torch.tensor([-1.0, 0.0]), torch.tensor([-3.0, 1.0]), reference, reference, beta=0.5)
    assert two.loss.item() == pytest.approx(0.643669, abs=1e-6)  # h = 2 and -1: (-log s(1) - log s(-0.5)) / 2


def test_dpo_loss_refuses_bad_input() -> None:
    a = torch.tensor([-1.0, -2.0])
    for kwargs, error, match in (
        ({"beta": 0.0}, ValueError, "beta must be a positive finite number"),
        ({"beta": float("inf")}, ValueError, "beta must be a positive finite number"),
        ({"loss_type": "hinge"}, ValueError, "loss_type must be one of"),
        ({"label_smoothing": 0.5}, ValueError, r"label_smoothing must be a number in \[0, 0.5\)"),
        ({"label_smoothing": 0.1, "loss_type": "ipo"}, ValueError, "applies to the sigmoid"),
        ({"reference_free": 1}, TypeError, "reference_free must be a bool"),
        ({"reference_free": True}, ValueError, "reference_free=True ignores the reference"),
    ):
        with pytest.raises(error, match=match):
            dpo_loss(a, a, a, a, **kwargs)
    with pytest.raises(ValueError, match="reference_chosen and reference_rejected are needed"):
        dpo_loss(a, a, None, None)
    with pytest.raises(ValueError, match=r"policy_rejected is \(3,\)"):
        dpo_loss(a, torch.zeros(3), a, a)
    with pytest.raises(TypeError, match="policy_chosen must be a floating tensor \\(B,\\)"):
        dpo_loss(torch.tensor([1, 2]), a, a, a)
    with pytest.raises(TypeError, match="reference_chosen must be a floating tensor"):
        dpo_loss(a, a, a[:, None], a)
    with pytest.raises(ValueError, match="empty"):
        dpo_loss(*(torch.zeros(0),) * 4)
