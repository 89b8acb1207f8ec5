"""Tests for llmdocs.finetuning.grpo: group-relative advantages and the GRPO loss on hand-computed values.

Advantages (std with Bessel's correction, eps = 1e-4):
- One group of 4 rewards [1, 0, 0, 1]: mean 0.5, deviations +-0.5, variance (4 * 0.25) / 3 = 1/3, std = 0.577350;
  A = +-0.5 / (0.577350 + 0.0001) = +-0.865875.
- Two groups of 2, [1, 0 | 3, 3]: "group": std sqrt(0.5) = 0.707107, A = +-0.5 / 0.707207 = +-0.707007, and the
  tied group 0 / (0 + 1e-4) = 0; "batch": the batch's std of [1, 0, 3, 3] is 1.5, A = +-0.5 / 1.5001 = +-0.333311
  (the mean stays the group's); "none": +-0.5 and 0.

Loss, on-policy (old = logprobs.detach(), every ratio rho = 1):
- One completion of two tokens, log pi = log 0.5 for both, log pi_ref = [log 0.25, log 0.5], A = 1, beta = 0.1:
  d = log pi_ref - log pi = [-log 2, 0], KL = exp(d) - d - 1 = [0.5 + log 2 - 1, 0] = [0.193147, 0];
  l = -A + beta KL = [-0.980685, -1]; "grpo" (the row's mean) = -0.990343.
  Gradient of rho KL (rho = exp(log pi - old), d rho / d log pi = rho = 1): dKL/dlog pi + KL = (1 - e^d) + (e^d - d - 1)
  = -d = log pi - log pi_ref, so d l / d log pi = -A + beta (log pi - log pi_ref) = [-1 + 0.1 log 2, -1], halved by the
  mean: [-0.465343, -0.5]. Without the ratio weight: -A + beta (1 - e^d) = [-0.95, -1], halved: [-0.475, -0.5].
- Normalisation, A = [2, -1], row 0 with 3 tokens, row 1 with 1 (T = 3), beta = 0: l = -2 on row 0, +1 on row 1,
  masked sum -6 + 1 = -5.
  "grpo":    (-2 + 1) / 2 = -0.5;          d/dlog pi: row 0 -2 / 3 / 2 = -1/3, row 1 1 / 2 = 0.5
  "bnpo":    -5 / 4 tokens = -1.25;       row 0 -2 / 4 = -0.5, row 1 1 / 4 = 0.25
  "dr_grpo": -5 / (2 rows * 4) = -0.625;  row 0 -2 / 8 = -0.25, row 1 1 / 8 = 0.125   (max_completion_length 4)
  "dapo":    -5 / 4 = -1.25 (= "bnpo");   with num_items_in_batch=10: -0.5, rows -0.2 and 0.1

Clipping (epsilon 0.2), log pi = log 0.4 everywhere, old log pi = log 0.2 (rho = 2) or log 0.8 (rho = 0.5):
  row 0, A = 1:  rho 2   -> min(2, 1.2) = 1.2: l = -1.2, clipped high, no gradient
                 rho 0.5 -> min(0.5, 0.8) = 0.5: l = -0.5, gradient -rho A = -0.5 (PPO never clips a loss upward)
  row 1, A = -1: rho 0.5 -> min(-0.5, -0.8) = -0.8: l = 0.8, clipped low, no gradient
                 rho 2   -> min(-2, -1.2) = -2: l = 2, gradient -rho A = 2
  "bnpo": (-1.2 - 0.5 + 0.8 + 2) / 4 = 0.275, gradient [[0, -0.125], [0, 0.5]], clip fractions 1/4 low, 1/4 high.
  epsilon_high = 1.5: rho 2 < 2.5 is no longer clipped: l = -2, loss (-2 - 0.5 + 0.8 + 2) / 4 = 0.075.
"""

from __future__ import annotations

import math

import pytest
import torch

from llmdocs.finetuning.grpo import ADVANTAGE_EPS, group_relative_advantages, grpo_loss
from llmdocs.testing import assert_equivalent


def test_group_relative_advantages_by_hand() -> None:
    advantages = group_relative_advantages(torch.tensor([1.0, 0.0, 0.0, 1.0]), group_size=4)
    assert advantages.tolist() == pytest.approx([0.865875, -0.865875, -0.865875, 0.865875], abs=1e-6)
    rewards = torch.tensor([1.0, 0.0, 3.0, 3.0])
    by_group = group_relative_advantages(rewards, group_size=2)
    assert by_group.tolist() == pytest.approx([0.707007, -0.707007, 0.0, 0.0], abs=1e-6)  # a tie teaches nothing
    by_batch = group_relative_advantages(rewards, group_size=2, scale_rewards="batch")
    assert by_batch.tolist() == pytest.approx([0.333311, -0.333311, 0.0, 0.0], abs=1e-6)
    unscaled = group_relative_advantages(rewards, group_size=2, scale_rewards="none")
    assert unscaled.tolist() == [0.5, -0.5, 0.0, 0.0]
    assert ADVANTAGE_EPS == 1e-4


def test_advantages_are_centred_per_group_and_ignore_a_groups_offset() -> None:
    torch.manual_seed(0)
    rewards = torch.randn(3, 5, dtype=torch.float64)  # 3 prompts, 5 completions each
    for scale in ("group", "batch", "none"):
        advantages = group_relative_advantages(rewards.flatten(), group_size=5, scale_rewards=scale)
        assert advantages.dtype == torch.float64 and advantages.shape == (15,)
        assert_equivalent(advantages.view(3, 5).sum(1), torch.zeros(3, dtype=torch.float64), scale=5.0)
    group = group_relative_advantages(rewards.flatten(), group_size=5)
    shifted = rewards + torch.tensor([[10.0], [-3.0], [0.5]], dtype=torch.float64)  # a per-prompt difficulty
    assert_equivalent(group_relative_advantages(shifted.flatten(), group_size=5), group, scale=10.0)
    # the group's standard deviation, up to the eps: unit spread within every group
    spread = rewards.std(dim=1, keepdim=True)
    assert_equivalent(group.view(3, 5) * (spread + ADVANTAGE_EPS), rewards - rewards.mean(dim=1, keepdim=True))
    order = torch.tensor([3, 0, 4, 1, 2])  # permuting a group's completions permutes their advantages
    assert_equivalent(group_relative_advantages(rewards[:, order].flatten(), 5).view(3, 5), group.view(3, 5)[:, order])


def test_on_policy_loss_and_gradient_with_the_kl_term_by_hand() -> None:
    ref = torch.log(torch.tensor([[0.25, 0.5]], dtype=torch.float64))
    for weighted, grad in ((True, [-0.465343, -0.5]), (False, [-0.475, -0.5])):
        logprobs = torch.log(torch.tensor([[0.5, 0.5]], dtype=torch.float64)).requires_grad_()
        out = grpo_loss(
            logprobs,
            logprobs.detach(),
            torch.ones(1, dtype=torch.float64),
            torch.ones(1, 2),
            ref_logprobs=ref,
            beta=0.1,
            loss_type="grpo",
            importance_weighted_kl=weighted,
        )
        assert out.loss.item() == pytest.approx(-0.990343, abs=1e-6)  # ratio 1: the weight changes no value
        assert out.kl is not None and out.kl.item() == pytest.approx(0.193147 / 2, abs=1e-6)  # token mean
        assert out.clip_ratio.item() == 0.0 and not out.kl.requires_grad
        out.loss.backward()
        assert logprobs.grad is not None and logprobs.grad.tolist()[0] == pytest.approx(grad, abs=1e-6)
    exact = (-1 + 0.1 * math.log(2)) / 2  # -A + beta (log pi - log pi_ref): the gradient of KL(pi || pi_ref)
    assert exact == pytest.approx(-0.465343, abs=1e-6)


def test_on_policy_gradient_is_the_policy_gradient_minus_a_dlogp() -> None:
    torch.manual_seed(0)
    logprobs = (-torch.rand(4, 6, dtype=torch.float64) * 3).requires_grad_()
    advantages = torch.randn(4, dtype=torch.float64)
    mask = (torch.rand(4, 6) < 0.7).double()
    mask[:, 0] = 1.0
    out = grpo_loss(logprobs, logprobs.detach(), advantages, mask, loss_type="bnpo")
    assert_equivalent(out.loss.detach(), -(advantages[:, None] * mask).sum() / mask.sum())  # -mean(A) over tokens
    out.loss.backward()
    assert logprobs.grad is not None
    assert_equivalent(logprobs.grad, -advantages[:, None] * mask / mask.sum())  # REINFORCE, group mean baseline


def test_each_loss_type_normalises_as_written() -> None:
    advantages = torch.tensor([2.0, -1.0])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    cases = (
        ({"loss_type": "grpo"}, -0.5, [[-1 / 3] * 3, [0.5, 0.0, 0.0]]),
        ({"loss_type": "bnpo"}, -1.25, [[-0.5] * 3, [0.25, 0.0, 0.0]]),
        ({"loss_type": "dr_grpo", "max_completion_length": 4}, -0.625, [[-0.25] * 3, [0.125, 0.0, 0.0]]),
        ({"loss_type": "dapo"}, -1.25, [[-0.5] * 3, [0.25, 0.0, 0.0]]),
        ({"loss_type": "dapo", "num_items_in_batch": 10}, -0.5, [[-0.2] * 3, [0.1, 0.0, 0.0]]),
    )
    for kwargs, value, grad in cases:
        logprobs = torch.tensor([[-1.0, -2.0, -0.5], [-1.5, 7.0, 9.0]], requires_grad=True)  # padding: anything
        old = logprobs.detach().clone()
        old[1, 1:] = -30.0  # padded ratios far from 1 change nothing
        out = grpo_loss(logprobs, old, advantages, mask, **kwargs)
        assert out.loss.item() == pytest.approx(value), kwargs
        out.loss.backward()
        assert logprobs.grad is not None
        for row, expected in zip(logprobs.grad.tolist(), grad, strict=True):
            assert row == pytest.approx(expected), kwargs
        assert out.clip_ratio.item() == 0.0  # padding is not counted


def test_loss_types_agree_when_every_completion_fills_the_window() -> None:
    torch.manual_seed(1)
    logprobs = -torch.rand(3, 4, dtype=torch.float64)
    old = logprobs + 0.3 * torch.randn(3, 4, dtype=torch.float64)  # off-policy, some ratios clipped
    advantages = torch.randn(3, dtype=torch.float64)
    mask = torch.ones(3, 4)
    ref = logprobs - 0.1
    losses = [
        grpo_loss(logprobs, old, advantages, mask, ref, beta=0.04, loss_type=kind, **extra).loss
        for kind, extra in (("grpo", {}), ("bnpo", {}), ("dr_grpo", {"max_completion_length": 4}), ("dapo", {}))
    ]
    for loss in losses[1:]:
        assert_equivalent(loss, losses[0])


def test_clipping_by_hand() -> None:
    advantages = torch.tensor([1.0, -1.0])
    old = torch.log(torch.tensor([[0.2, 0.8], [0.8, 0.2]]))  # rho = [[2, 0.5], [0.5, 2]]
    for epsilon_high, value, high, grad in ((None, 0.275, 0.25, [[0.0, -0.125], [0.0, 0.5]]), (1.5, 0.075, 0.0, None)):
        logprobs = torch.full((2, 2), math.log(0.4), requires_grad=True)
        out = grpo_loss(logprobs, old, advantages, torch.ones(2, 2), epsilon_high=epsilon_high, loss_type="bnpo")
        assert out.loss.item() == pytest.approx(value)
        assert out.clip_ratio_low.item() == 0.25 and out.clip_ratio_high.item() == high
        assert out.clip_ratio.item() == 0.25 + high
        out.loss.backward()
        if grad is not None:
            assert logprobs.grad is not None
            for row, expected in zip(logprobs.grad.tolist(), grad, strict=True):
                assert row == pytest.approx(expected)  # clipped tokens get no gradient


def test_the_kl_metric_and_term_need_a_reference() -> None:
    logprobs = torch.tensor([[-1.0, -2.0]])
    args = (logprobs, logprobs, torch.ones(1), torch.ones(1, 2))
    assert grpo_loss(*args).kl is None  # TRL's default beta = 0: no reference at all
    ref = torch.tensor([[-1.0, -1.0]])
    metric_only = grpo_loss(*args, ref_logprobs=ref)  # beta 0: the KL is reported, not added
    assert metric_only.loss.item() == pytest.approx(-1.0)
    assert metric_only.kl is not None and metric_only.kl.item() == pytest.approx((math.e - 2) / 2)  # e^1 - 1 - 1
    assert grpo_loss(*args, ref_logprobs=ref, beta=0.5).loss.item() == pytest.approx(-1 + 0.5 * (math.e - 2) / 2)


def test_group_relative_advantages_refuses_bad_input() -> None:
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0])
    for args, kwargs, error, match in (
        ((torch.tensor([1, 0]), 2), {}, TypeError, r"rewards must be a floating tensor \(B,\)"),
        ((rewards[None], 2), {}, TypeError, "rewards must be a floating tensor"),
        ((rewards, 2.0), {}, TypeError, "group_size must be an int"),
        ((rewards, True), {}, TypeError, "group_size must be an int"),
        ((rewards, 1), {}, ValueError, "group_size must be >= 2"),
        ((rewards, 3), {}, ValueError, "rewards has 4 values, not a positive multiple of group_size=3"),
        ((torch.zeros(0), 2), {}, ValueError, "rewards has 0 values"),
        ((torch.tensor([1.0, float("nan")]), 2), {}, ValueError, "rewards must be finite"),
        ((rewards, 2), {"scale_rewards": True}, ValueError, "scale_rewards must be one of"),
    ):
        with pytest.raises(error, match=match):
            group_relative_advantages(*args, **kwargs)


def test_grpo_loss_refuses_bad_input() -> None:
    lp = torch.zeros(2, 3)
    a = torch.zeros(2)
    m = torch.ones(2, 3)
    for kwargs, error, match in (
        ({"beta": 0.1}, ValueError, "ref_logprobs is needed for the KL term when beta=0.1"),
        ({"beta": -0.1, "ref_logprobs": lp}, ValueError, "beta must be a finite number >= 0"),
        ({"beta": True}, ValueError, "beta must be a finite number"),
        ({"epsilon": 1.0}, ValueError, r"epsilon must be a finite number in \[0, 1\)"),
        ({"epsilon": -0.1}, ValueError, r"epsilon must be a finite number in \[0, 1\)"),
        ({"epsilon_high": float("inf")}, ValueError, "epsilon_high must be a finite number"),
        ({"loss_type": "ppo"}, ValueError, "loss_type must be one of"),
        ({"loss_type": "dr_grpo"}, ValueError, "divides by max_completion_length: pass it"),
        ({"max_completion_length": 4}, ValueError, "max_completion_length applies to loss_type='dr_grpo' only"),
        ({"loss_type": "dr_grpo", "max_completion_length": 2}, ValueError, "shorter than a completion of 3 tokens"),
        ({"loss_type": "dr_grpo", "max_completion_length": 0}, ValueError, "max_completion_length must be >= 1"),
        ({"loss_type": "dr_grpo", "max_completion_length": 4.0}, TypeError, "max_completion_length must be an int"),
        ({"loss_type": "bnpo", "num_items_in_batch": 8}, ValueError, "applies to loss_type='dapo' only"),
        ({"num_items_in_batch": 0}, ValueError, "num_items_in_batch must be >= 1"),
        ({"importance_weighted_kl": 1}, TypeError, "importance_weighted_kl must be a bool"),
        ({"ref_logprobs": torch.zeros(2, 4)}, ValueError, r"ref_logprobs is \(2, 4\), but logprobs is \(2, 3\)"),
    ):
        with pytest.raises(error, match=match):
            grpo_loss(lp, lp, a, m, **kwargs)
    for args, error, match in (
        ((lp[0], lp, a, m), TypeError, r"logprobs must be a floating tensor \(B, T\)"),
        ((lp.long(), lp, a, m), TypeError, "logprobs must be a floating tensor"),
        ((lp, lp[:1], a, m), ValueError, r"old_logprobs is \(1, 3\)"),
        ((lp, lp, a[:, None], m), TypeError, r"advantages must be a floating tensor \(B,\)"),
        ((lp, lp, torch.zeros(3), m), ValueError, "advantages is \\(3,\\), but logprobs has B=2"),
        ((lp, lp, a, [[1, 1, 1]] * 2), TypeError, "mask must be a bool or 0/1 tensor"),
        ((lp, lp, a, m[:, :2]), ValueError, r"mask is \(2, 2\)"),
        ((lp, lp, a, m * 2), ValueError, "mask must hold 0 or 1"),
        ((lp[:0], lp[:0], a[:0], m[:0]), ValueError, "logprobs is empty"),
    ):
        with pytest.raises(error, match=match):
            grpo_loss(*args)  # type: ignore[arg-type]
