"""Tests for llmdocs.finetuning.masked: masked means and whitening over (B, T) tokens, on hand-computed values.

- Masked mean of [[1, 2, (100)], [3, (4), (5)]]: (1 + 2 + 3) / 3 = 2; per row 1.5 and 3.
- Whitening [1, 3, 5, (99)]: mean 3, unbiased variance (4 + 0 + 4) / (3 - 1) = 4, so (x - 3) / 2 = [-1, 0, 1];
  with shift_mean=False + 3: [2, 3, 4]; the padding gives 0.
"""

from __future__ import annotations

import pytest
import torch

from llmdocs.finetuning.masked import _check_per_token, masked_mean, masked_whiten
from llmdocs.testing import assert_equivalent

NAN = float("nan")


def test_masked_mean_by_hand_never_reads_the_padding() -> None:
    x = torch.tensor([[1.0, 2.0, NAN], [3.0, NAN, 5.0]], requires_grad=True)
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    assert masked_mean(x, mask).item() == pytest.approx(2.0)
    assert masked_mean(x, mask.bool(), dim=1).tolist() == pytest.approx([1.5, 3.0])
    assert masked_mean(x, mask.float(), dim=-1).tolist() == pytest.approx([1.5, 3.0])
    masked_mean(x, mask).backward()
    assert torch.equal(x.grad, mask / 3.0)  # 1/n at the kept entries, 0 (not NaN) at the padding


def test_masked_whiten_by_hand_and_against_torch_std() -> None:
    x, mask = torch.tensor([1.0, 3.0, 5.0, 99.0]), torch.tensor([True, True, True, False])
    assert masked_whiten(x, mask).tolist() == pytest.approx([-1.0, 0.0, 1.0, 0.0])
    assert masked_whiten(x, mask, shift_mean=False).tolist() == pytest.approx([2.0, 3.0, 4.0, 0.0])
    torch.manual_seed(0)
    x = torch.randn(3, 5, dtype=torch.float64) * 4 + 1
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]]).bool()
    kept = x[mask]  # the 9 real entries
    whitened = masked_whiten(x, mask, eps=0.0)
    assert_equivalent(whitened[mask], (kept - kept.mean()) / kept.std(), depth=2)  # torch's std is unbiased
    assert torch.equal(whitened[~mask], torch.zeros(6, dtype=torch.float64))
    assert whitened[mask].mean().item() == pytest.approx(0.0, abs=1e-12)
    assert whitened[mask].std().item() == pytest.approx(1.0)
    assert masked_whiten(x, mask, shift_mean=False, eps=0.0)[mask].mean().item() == pytest.approx(kept.mean().item())
    constant = masked_whiten(torch.ones(4), torch.ones(4))  # variance 0: eps keeps it finite
    assert torch.equal(constant, torch.zeros(4))


def test_per_token_check_skips_none_and_returns_a_bool_mask() -> None:
    x = torch.zeros(2, 3)
    keep = _check_per_token(torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]]), a=x, b=None, c=x.double())
    assert keep.dtype == torch.bool and keep.tolist() == [[True, True, False], [True, False, False]]
    with pytest.raises(ValueError, match=r"c is \(2, 2\), but a is \(2, 3\)"):
        _check_per_token(torch.ones(2, 3), a=x, b=None, c=x[:, :2])
    with pytest.raises(TypeError, match=r"b must be a floating tensor \(B, T\), one value per response token"):
        _check_per_token(torch.ones(2, 3), a=x, b=x[0])


def test_bad_input_is_refused_with_the_argument_named() -> None:
    x, ones = torch.randn(2, 3), torch.ones(2, 3)
    cases = [
        (lambda: masked_mean(torch.ones(3, dtype=torch.long), torch.ones(3)), TypeError, "x must be a floating"),
        (lambda: masked_mean(x, [[1, 1, 1]] * 2), TypeError, "mask must be a bool or 0/1 tensor"),
        (lambda: masked_mean(x, torch.ones(3)), ValueError, r"mask is \(3,\), but x is \(2, 3\)"),
        (lambda: masked_mean(x, 2 * ones), ValueError, "mask must hold 0 or 1"),
        (lambda: masked_mean(x, torch.zeros(2, 3)), ValueError, "mask selects no entries"),
        (lambda: masked_mean(x, torch.tensor([[1, 0, 0], [0, 0, 0]]), dim=1), ValueError, "along dim=1"),
        (lambda: masked_mean(x, ones, dim=2), ValueError, "dim must be None or a dimension of x"),
        (lambda: masked_whiten(x, torch.tensor([[1, 0, 0], [0, 0, 0]])), ValueError, "at least 2 entries"),
        (lambda: masked_whiten(x, ones, shift_mean=1), TypeError, "shift_mean must be a bool"),
        (lambda: masked_whiten(x, ones, eps=-1.0), ValueError, "eps must be a finite number >= 0"),
    ]
    for call, error, match in cases:
        with pytest.raises(error, match=match):
            call()
