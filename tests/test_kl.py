"""Tests for llmdocs.finetuning.kl: the per-token KL estimators and the KL coefficient controllers, by hand.

Conventions: d = log pi - log pi_ref, r = pi_ref / pi = e^{-d}.

- KL estimators at d = log 2 and d = -log 2: k1 = d = +-0.693147; k2 = d^2 / 2 = 0.240227;
  k3 = e^{-d} - 1 + d = 0.5 - 1 + 0.693147 = 0.193147 and 2 - 1 - 0.693147 = 0.306853; abs = 0.693147.
- GRPO writes k3 with the opposite sign, d' = log pi_ref - log pi = -d: e^{d'} - d' - 1 = e^{-d} + d - 1, the same.
- Adaptive controller, beta 0.2, target 6, horizon 10000, 256 episodes per update (K = 0.0256):
      KL 9:   e = clip(9 / 6 - 1 = 0.5) = 0.2,  beta = 0.2 * (1 + 0.2 * 0.0256) = 0.201024
      KL 5.4: e = -0.1,                         beta = 0.201024 * (1 - 0.1 * 0.0256) = 0.20050937856
      KL 0:   e = clip(-1) = -0.2,              beta = 0.20050937856 * (1 - 0.2 * 0.0256)
      KL 6:   e = 0,                            beta unchanged
"""

from __future__ import annotations

import math

import pytest
import torch

from llmdocs.finetuning.kl import KL_ESTIMATORS, AdaptiveKLController, FixedKLController, kl_penalty
from llmdocs.testing import assert_equivalent

NAN = float("nan")


def test_kl_estimators_at_known_log_ratios() -> None:
    logprobs = torch.zeros(2, dtype=torch.float64)
    ref = torch.tensor([-math.log(2.0), math.log(2.0)], dtype=torch.float64)  # d = logp - ref_logp = log 2, -log 2
    log2 = math.log(2.0)
    assert KL_ESTIMATORS == ("k1", "k2", "k3", "abs")
    assert kl_penalty(logprobs, ref, "k1").tolist() == pytest.approx([log2, -log2])
    assert kl_penalty(logprobs, ref, "k2").tolist() == pytest.approx([0.5 * log2**2] * 2)
    assert kl_penalty(logprobs, ref, "k3").tolist() == pytest.approx([0.5 - 1 + log2, 2 - 1 - log2])
    assert kl_penalty(logprobs, ref).tolist() == kl_penalty(logprobs, ref, "k1").tolist()  # k1 is the default
    assert kl_penalty(logprobs, ref, "abs").tolist() == pytest.approx([log2, log2])
    assert kl_penalty(logprobs, ref, "k3")[0].item() == pytest.approx(0.193147, abs=1e-6)
    assert kl_penalty(logprobs, ref, "k3")[1].item() == pytest.approx(0.306853, abs=1e-6)


def test_k1_and_k3_average_to_the_exact_kl_and_the_others_are_nonnegative() -> None:
    torch.manual_seed(0)
    log_pi = torch.randn(7, dtype=torch.float64).log_softmax(-1)  # the sampling policy, over 7 tokens
    log_ref = torch.randn(7, dtype=torch.float64).log_softmax(-1)
    pi = log_pi.exp()
    exact = (pi * (log_pi - log_ref)).sum()  # KL(pi || pi_ref)
    for estimator in ("k1", "k3"):  # E_{y ~ pi}[k(y)], summed exactly over the 7 tokens
        assert_equivalent((pi * kl_penalty(log_pi, log_ref, estimator)).sum(), exact, depth=2)
    for estimator in ("k2", "k3", "abs"):
        assert (kl_penalty(log_pi, log_ref, estimator) >= 0).all()
    small = torch.tensor([1e-9], dtype=torch.float32)  # expm1 keeps k3 ~ d^2 / 2 instead of rounding to 0
    assert kl_penalty(small, torch.zeros(1), "k3").item() == pytest.approx(0.5e-18, rel=1e-3)


def test_k3_equals_grpos_form_with_the_opposite_log_ratio() -> None:
    torch.manual_seed(0)
    logprobs, ref = -torch.rand(3, 4, dtype=torch.float64) * 3, -torch.rand(3, 4, dtype=torch.float64) * 3
    d = ref - logprobs  # GRPO's d: log pi_ref / pi
    assert_equivalent(kl_penalty(logprobs, ref, "k3"), torch.exp(d) - d - 1)


def test_kl_controllers_by_hand() -> None:
    controller = AdaptiveKLController(init_kl_coef=0.2, target=6.0, horizon=10000)
    assert controller.update(9.0, 256) == pytest.approx(0.201024)  # above target: clipped error +0.2
    assert controller.update(5.4, n_steps=256) == pytest.approx(0.20050937856)
    assert controller.update(torch.tensor(0.0), 256) == pytest.approx(0.20050937856 * (1 - 0.2 * 0.0256))
    before = controller.value
    assert controller.update(6.0, 256) == before == controller.value  # at the target: no change
    assert repr(controller).startswith("AdaptiveKLController(value=0.1994")
    fixed = FixedKLController(0.05)
    assert fixed.update(100.0, 256) == 0.05 == fixed.value and repr(fixed) == "FixedKLController(kl_coef=0.05)"


def test_bad_input_is_refused_with_the_argument_named() -> None:
    x = torch.randn(2, 3)
    cases = [
        (lambda: kl_penalty(x.long(), x), TypeError, "logprobs must be a floating tensor"),
        (lambda: kl_penalty(x, x, "k4"), ValueError, "estimator must be one of"),
        (lambda: kl_penalty(x, x[:, :2]), ValueError, r"ref_logprobs is \(2, 2\), but logprobs is \(2, 3\)"),
        (lambda: FixedKLController(-1.0), ValueError, "kl_coef must be a finite number >= 0"),
        (lambda: AdaptiveKLController(0.1, 0.0, 10000), ValueError, "target must be a finite number > 0"),
        (lambda: AdaptiveKLController(0.1, 6.0, math.inf), ValueError, "horizon must be a finite number > 0"),
        (lambda: AdaptiveKLController(0.1, 6.0, 100).update("6", 1), TypeError, "current_kl must be a number"),
        (lambda: AdaptiveKLController(0.1, 6.0, 100).update(NAN, 1), ValueError, "current_kl must be finite"),
        (lambda: AdaptiveKLController(0.1, 6.0, 100).update(6.0, 0), ValueError, "n_steps must be >= 1"),
        (lambda: FixedKLController(0.1).update(6.0, 1.5), TypeError, "n_steps must be an int"),
    ]
    for call, error, match in cases:
        with pytest.raises(error, match=match):
            call()
