"""Tests for llmdocs.finetuning.ppo: PPO's rewards, advantages and losses on hand-computed values.

Conventions: d = log pi - log pi_ref (or log pi - log pi_old), rho = e^d, eps = 0.2.

- Rewards, kl_coef 0.1: row 0 logp [-1, -1, -1], ref [-1.5, -1, -1.25], score 1: d = [0.5, 0, 0.25],
  r = [-0.05, 0, -0.025 + 1 = 0.975]; row 1 (2 real tokens) logp [-2, -0.5], ref [-2.5, -0.5], score -2:
  d = [0.5, 0], r = [-0.05, 0 - 2 = -2]. Mean KL per response: (0.75 + 0.5) / 2 = 0.625.
- GAE on r = [0, 0, 1], V = [0.5, 0.25, 0.5], gamma 1, lam 0.5, V = 0 after the end:
      t = 2: delta = 1 + 0 - 0.5 = 0.5,       A_2 = 0.5
      t = 1: delta = 0 + 0.5 - 0.25 = 0.25,   A_1 = 0.25 + 0.5 * 0.5 = 0.5
      t = 0: delta = 0 + 0.25 - 0.5 = -0.25,  A_0 = -0.25 + 0.5 * 0.5 = 0
  R = A + V = [0.5, 0.75, 1]. lam = 0: A = the deltas [-0.25, 0.25, 0.5]. lam = 1: A = [0.5, 0.75, 0.5],
  R = [1, 1, 1] (the reward to go). gamma 0.5, lam 1: deltas [0.125 - 0.5, 0.25 - 0.25, 1 - 0.5] = [-0.375, 0, 0.5],
  A = [-0.375 + 0.5 * 0.25, 0 + 0.5 * 0.5, 0.5] = [-0.25, 0.25, 0.5], R = [0.25, 0.5, 1] = 0.5^(2 - t).
- Policy loss, four tokens (rho, A) and n = 4:
      (1.5, +2): -A rho = -3,   -A clip(rho) = -2.4  -> max -2.4, clipped, gradient 0
      (1.5, -1): -A rho = 1.5,  -A clip(rho) = 1.2   -> max 1.5, unclipped, d/dlogp = -A rho / n = 0.375
      (0.5, -1): -A rho = 0.5,  -A clip(rho) = 0.8   -> max 0.8, clipped, gradient 0
      (0.5, +2): -A rho = -1,   -A clip(rho) = -1.6  -> max -1, unclipped, d/dlogp = -1 / 4 = -0.25
  loss = (-2.4 + 1.5 + 0.8 - 1) / 4 = -0.275, clip fraction 2 / 4, approx_kl = (2 log(1.5)^2 + 2 log(2)^2) / 8.
- Value loss, V_old = 1 (V may move to [0.8, 1.2]), V = 1.5:
      R = 2: (1.5 - 2)^2 = 0.25 < (1.2 - 2)^2 = 0.64 -> clipped, gradient 0
      R = 1: (1.5 - 1)^2 = 0.25 > (1.2 - 1)^2 = 0.04 -> unclipped, d/dV = 0.5 * 2 (1.5 - 1) / 2 = 0.25
  loss = 0.5 * (0.64 + 0.25) / 2 = 0.2225, clip fraction 0.5; unclipped: 0.5 * (0.25 + 0.25) / 2 = 0.125.
"""

from __future__ import annotations

import math

import pytest
import torch

from llmdocs.finetuning.kl import kl_penalty
from llmdocs.finetuning.masked import masked_whiten
from llmdocs.finetuning.ppo import (
    entropy_from_logits,
    gae_advantages,
    kl_penalized_rewards,
    ppo_policy_loss,
    ppo_value_loss,
)
from llmdocs.testing import assert_equivalent

NAN = float("nan")


def test_kl_penalized_rewards_by_hand_and_a_padded_row_equals_the_row_alone() -> None:
    logprobs = torch.tensor([[-1.0, -1.0, -1.0], [-2.0, -0.5, NAN]], requires_grad=True)
    ref = torch.tensor([[-1.5, -1.0, -1.25], [-2.5, -0.5, NAN]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    out = kl_penalized_rewards(torch.tensor([1.0, -2.0]), logprobs, ref, mask, kl_coef=0.1)
    assert out.rewards.tolist()[0] == pytest.approx([-0.05, 0.0, 0.975])
    assert out.rewards.tolist()[1] == pytest.approx([-0.05, -2.0, 0.0])
    assert out.kl.tolist() == [[0.5, 0.0, 0.25], [0.5, 0.0, 0.0]]
    assert out.mean_kl == pytest.approx(0.625)
    assert not out.rewards.requires_grad and not out.kl.requires_grad
    alone = kl_penalized_rewards(torch.tensor([-2.0]), logprobs[1:, :2], ref[1:, :2], torch.ones(1, 2), kl_coef=0.1)
    assert torch.equal(alone.rewards, out.rewards[1:, :2]) and torch.equal(alone.kl, out.kl[1:, :2])
    k3 = kl_penalized_rewards(torch.tensor([1.0, -2.0]), logprobs, ref, mask, kl_coef=0.1, estimator="k3")
    expected = -0.1 * kl_penalty(logprobs[0].detach(), ref[0], "k3")
    expected[2] += 1.0
    assert torch.equal(k3.rewards[0], expected)
    no_penalty = kl_penalized_rewards(torch.tensor([1.0, -2.0]), logprobs, ref, mask, kl_coef=0)
    assert no_penalty.rewards.tolist() == [[0.0, 0.0, 1.0], [0.0, -2.0, 0.0]]  # only the scores, at the ends


def test_gae_by_hand_on_three_tokens() -> None:
    rewards, values, mask = torch.tensor([[0.0, 0.0, 1.0]]), torch.tensor([[0.5, 0.25, 0.5]]), torch.ones(1, 3)
    advantages, returns = gae_advantages(rewards, values, mask, gamma=1.0, lam=0.5)
    assert advantages.tolist() == [[0.0, 0.5, 0.5]] and returns.tolist() == [[0.5, 0.75, 1.0]]
    advantages, returns = gae_advantages(rewards, values, mask, gamma=1.0, lam=0.0)
    assert advantages.tolist() == [[-0.25, 0.25, 0.5]]  # the one-step TD errors
    advantages, returns = gae_advantages(rewards, values, mask, gamma=1.0, lam=1.0)
    assert advantages.tolist() == [[0.5, 0.75, 0.5]] and returns.tolist() == [[1.0, 1.0, 1.0]]  # reward to go
    advantages, returns = gae_advantages(rewards, values, mask, gamma=0.5, lam=1.0)
    assert advantages.tolist() == [[-0.25, 0.25, 0.5]] and returns.tolist() == [[0.25, 0.5, 1.0]]
    advantages, _ = gae_advantages(rewards, values, mask)  # the defaults: gamma 1, lam 0.95
    assert advantages[0, 0].item() == pytest.approx(-0.25 + 0.95 * (0.25 + 0.95 * 0.5))


def test_gae_equals_the_discounted_sum_of_td_errors() -> None:
    torch.manual_seed(0)
    rewards, values = torch.randn(3, 6, dtype=torch.float64), torch.randn(3, 6, dtype=torch.float64)
    gamma, lam = 0.9, 0.8
    advantages, returns = gae_advantages(rewards, values, torch.ones(3, 6), gamma=gamma, lam=lam)
    next_values = torch.cat([values[:, 1:], torch.zeros(3, 1, dtype=torch.float64)], dim=1)  # V = 0 at the end
    deltas = rewards + gamma * next_values - values  # (3, 6)
    expected = torch.stack(
        [sum((gamma * lam) ** (k - t) * deltas[:, k] for k in range(t, 6)) for t in range(6)], dim=1
    )  # A_t = sum_l (gamma lam)^l delta_{t+l}
    assert_equivalent(advantages, expected, depth=6)
    assert_equivalent(returns, expected + values, depth=6)


def test_gae_padded_row_equals_the_row_alone() -> None:
    torch.manual_seed(0)
    rewards, values = torch.randn(2, 5), torch.randn(2, 5, requires_grad=True)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]])
    with torch.no_grad():
        rewards[1, 2:] = NAN  # padding is never read
        values[1, 2:] = 1e9
    advantages, returns = gae_advantages(rewards, values, mask, gamma=0.99, lam=0.9)
    alone_a, alone_r = gae_advantages(rewards[1:, :2], values[1:, :2], torch.ones(1, 2), gamma=0.99, lam=0.9)
    assert torch.equal(advantages[1:, :2], alone_a) and torch.equal(returns[1:, :2], alone_r)
    assert torch.equal(advantages[1, 2:], torch.zeros(3)) and torch.equal(returns[1, 2:], torch.zeros(3))
    assert not advantages.requires_grad and not returns.requires_grad  # targets


def test_policy_loss_clips_by_hand_with_zero_gradient_where_clipped() -> None:
    ratios = torch.tensor([[1.5, 1.5, 0.5, 0.5, 1.0]])
    old = torch.tensor([[-1.0, -2.0, -1.0, -0.5, NAN]])
    logprobs = (old + ratios.log()).requires_grad_()  # rho = e^(logp - old); the last token is padding (NaN)
    advantages = torch.tensor([[2.0, -1.0, -1.0, 2.0, NAN]])
    mask = torch.tensor([[True, True, True, True, False]])
    out = ppo_policy_loss(logprobs, old, advantages, mask, clip_range=0.2)
    assert out.loss.item() == pytest.approx(-0.275)
    assert out.clip_fraction == pytest.approx(0.5)
    assert out.approx_kl == pytest.approx((2 * math.log(1.5) ** 2 + 2 * math.log(2.0) ** 2) / 8)
    out.loss.backward()
    assert logprobs.grad.tolist()[0] == pytest.approx([0.0, 0.375, 0.0, -0.25, 0.0])  # clipped tokens do not pull
    alone = ppo_policy_loss(logprobs[:, :4], old[:, :4], advantages[:, :4], torch.ones(1, 4))
    assert alone.loss.item() == out.loss.item()
    assert (alone.clip_fraction, alone.approx_kl) == (out.clip_fraction, out.approx_kl)


def test_policy_loss_without_clipping_and_at_the_rollout_policy() -> None:
    logprobs = torch.tensor([[-1.0, -2.0, -3.0]], requires_grad=True)
    advantages = torch.tensor([[1.0, -2.0, 4.0]])
    out = ppo_policy_loss(logprobs, logprobs.detach(), advantages, torch.ones(1, 3))  # rho = 1: -mean(A)
    assert out.loss.item() == pytest.approx(-1.0) and out.clip_fraction == 0.0 and out.approx_kl == 0.0
    out.loss.backward()
    assert logprobs.grad.tolist() == [pytest.approx([-1 / 3, 2 / 3, -4 / 3])]  # -A / n: the policy gradient
    far = torch.tensor([[1.0, -1.0]])  # rho = e and e^-1, far outside [0.8, 1.2]
    unclipped = ppo_policy_loss(far, torch.zeros(1, 2), torch.tensor([[1.0, 1.0]]), torch.ones(1, 2), math.inf)
    assert unclipped.loss.item() == pytest.approx(-(math.e + 1 / math.e) / 2) and unclipped.clip_fraction == 0.0


def test_value_loss_clips_by_hand_with_zero_gradient_where_clipped() -> None:
    values = torch.tensor([[1.5, 1.5, NAN]], requires_grad=True)
    old, returns = torch.tensor([[1.0, 1.0, NAN]]), torch.tensor([[2.0, 1.0, NAN]])
    mask = torch.tensor([[1, 1, 0]])
    out = ppo_value_loss(values, old, returns, mask, clip_range_value=0.2)
    assert out.loss.item() == pytest.approx(0.2225) and out.clip_fraction == pytest.approx(0.5)
    out.loss.backward()
    assert values.grad.tolist()[0] == pytest.approx([0.0, 0.25, 0.0])
    alone = ppo_value_loss(values[:, :2], old[:, :2], returns[:, :2], torch.ones(1, 2))
    assert (alone.loss.item(), alone.clip_fraction) == (out.loss.item(), out.clip_fraction)
    unclipped = ppo_value_loss(values, old, returns, mask, clip_range_value=math.inf)
    assert unclipped.loss.item() == pytest.approx(0.125) and unclipped.clip_fraction == 0.0
    below = ppo_value_loss(torch.tensor([[0.5]]), torch.ones(1, 1), torch.zeros(1, 1), torch.ones(1, 1))
    assert below.loss.item() == pytest.approx(0.5 * 0.64) and below.clip_fraction == 1.0  # V clipped up to 0.8


def test_entropy_by_hand_and_equal_to_trl() -> None:
    logits = torch.tensor([[[0.0] * 4, [3.0, -math.inf, -math.inf, -math.inf], [1e4, 1e4, -1e4, -math.inf]]])
    logits.requires_grad_()
    entropy = entropy_from_logits(logits)
    assert entropy.tolist() == [pytest.approx([math.log(4), 0.0, math.log(2)])]  # uniform, certain, two of four
    entropy.sum().backward()
    assert torch.isfinite(logits.grad).all()
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 11, dtype=torch.float64) * 5
    probs = logits.softmax(-1)
    assert_equivalent(entropy_from_logits(logits), -(probs * probs.log()).sum(-1), depth=2)
    assert entropy_from_logits(logits.bfloat16()).dtype == torch.float32
    trl_utils = pytest.importorskip("trl.trainer.utils")
    assert_equivalent(entropy_from_logits(logits), trl_utils.entropy_from_logits(logits), depth=2)


def test_one_ppo_step_end_to_end_on_a_padded_batch() -> None:
    torch.manual_seed(0)
    B, T = 3, 5
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]]).bool()
    old_logprobs, ref_logprobs, old_values = -torch.rand(B, T), -torch.rand(B, T), torch.randn(B, T)
    penalized = kl_penalized_rewards(torch.randn(B), old_logprobs, ref_logprobs, mask, kl_coef=0.05)
    advantages, returns = gae_advantages(penalized.rewards, old_values, mask)
    advantages = masked_whiten(advantages, mask)
    logprobs = (old_logprobs + 0.3 * torch.randn(B, T)).requires_grad_()
    values = (old_values + 0.3 * torch.randn(B, T)).requires_grad_()
    policy = ppo_policy_loss(logprobs, old_logprobs, advantages, mask)
    value = ppo_value_loss(values, old_values, returns, mask)
    (policy.loss + 0.1 * value.loss).backward()
    for grad in (logprobs.grad, values.grad):
        assert torch.isfinite(grad).all() and torch.equal(grad[~mask], torch.zeros(int((~mask).sum())))
    assert 0.0 <= policy.clip_fraction <= 1.0 and 0.0 <= value.clip_fraction <= 1.0 and policy.approx_kl > 0


def test_bad_input_is_refused_with_the_argument_named() -> None:
    x, ones = torch.randn(2, 3), torch.ones(2, 3)
    cases = [
        (lambda: kl_penalized_rewards(torch.zeros(3), x, x, ones, 0.1), ValueError, r"scores is \(3,\), but"),
        (lambda: kl_penalized_rewards(torch.zeros(2, 1), x, x, ones, 0.1), TypeError, "scores must be a floating"),
        (lambda: kl_penalized_rewards(torch.zeros(1), x[0], x[0], ones[0], 0.1), TypeError, r"logprobs .*\(B, T\)"),
        (lambda: kl_penalized_rewards(torch.zeros(2), x, x[:, :2], ones, 0.1), ValueError, "ref_logprobs is"),
        (lambda: kl_penalized_rewards(torch.zeros(0), x[:0], x[:0], ones[:0], 0.1), ValueError, "is empty"),
        (
            lambda: kl_penalized_rewards(torch.zeros(2), x, x, torch.tensor([[1, 1, 0], [0, 0, 0]]), 0.1),
            ValueError,
            "row 1 of mask has no real token",
        ),
        (lambda: kl_penalized_rewards(torch.zeros(2), x, x, ones, -0.1), ValueError, "kl_coef must be a finite"),
        (lambda: kl_penalized_rewards(torch.zeros(2), x, x, ones, NAN), ValueError, "kl_coef must be a finite"),
        (lambda: gae_advantages(x, x, torch.tensor([[1, 0, 1], [1, 1, 1]])), ValueError, "row 0 has a 1 after a 0"),
        (lambda: gae_advantages(x, x, ones, gamma=1.5), ValueError, r"gamma must be a number in \[0, 1\]"),
        (lambda: gae_advantages(x, x, ones, lam=True), ValueError, r"lam must be a number in \[0, 1\]"),
        (lambda: gae_advantages(x, x.long(), ones), TypeError, "values must be a floating tensor"),
        (lambda: ppo_policy_loss(x, x, x, ones, clip_range=0), ValueError, "clip_range must be a number > 0"),
        (lambda: ppo_policy_loss(x, x, x, torch.zeros(2, 3)), ValueError, "mask selects no entries"),
        (lambda: ppo_policy_loss(x, x, x[:1], ones), ValueError, r"advantages is \(1, 3\)"),
        (lambda: ppo_value_loss(x, x, x, ones, clip_range_value=NAN), ValueError, "clip_range_value must be"),
        (lambda: entropy_from_logits(torch.ones(2, 3, dtype=torch.long)), TypeError, "logits must be a floating"),
        (lambda: entropy_from_logits(torch.ones(2, 0)), ValueError, "empty vocabulary"),
    ]
    for call, error, match in cases:
        with pytest.raises(error, match=match):
            call()
