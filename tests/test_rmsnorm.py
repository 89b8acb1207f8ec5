"""Tests for llmdocs.nn.rmsnorm: RMSNorm against torch.nn and Hugging Face, its invariants, its errors."""

from __future__ import annotations

import os

import pytest
import torch
from torch import nn

from llmdocs.nn.rmsnorm import RMSNorm
from llmdocs.testing import assert_close, assert_equivalent

os.environ["HF_HUB_OFFLINE"] = "1"  # before transformers is imported: never touch the network
pytest.importorskip("transformers")
from transformers.models.llama.modeling_llama import LlamaRMSNorm

B, T, D = 2, 5, 16
EPS = 1e-5


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def make_norm(eps: float = EPS, compute_dtype: torch.dtype | None = None) -> RMSNorm:
    """An RMSNorm with a non-trivial gain."""
    norm = RMSNorm(D, eps=eps, compute_dtype=compute_dtype)
    with torch.no_grad():
        norm.weight.copy_(1 + 0.5 * torch.randn(D))
    return norm


def torch_copy(norm: RMSNorm) -> nn.RMSNorm:
    ref = nn.RMSNorm(D, eps=norm.eps)
    with torch.no_grad():
        ref.weight.copy_(norm.weight)
    return ref


def hf_copy(norm: RMSNorm) -> LlamaRMSNorm:
    ref = LlamaRMSNorm(D, eps=norm.eps)
    with torch.no_grad():
        ref.weight.copy_(norm.weight)
    return ref


def inputs(dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return (3 * torch.randn(B, T, D, dtype=torch.float64) + 0.5).to(dtype)  # not centred: RMS != std


# ---- equivalence ------------------------------------------------------------------------------------------------


@pytest.mark.numerics
def test_equals_torch_nn_rmsnorm() -> None:
    norm = make_norm()
    ours, ref = norm.double(), torch_copy(norm).double()
    x = inputs()
    assert_equivalent(ours(x), ref(x))


@pytest.mark.numerics
def test_equals_hugging_face_llama_rmsnorm() -> None:
    # LlamaRMSNorm rounds every input to float32, float64 too; compute_dtype=float32 does the same, bit for bit.
    norm = make_norm(compute_dtype=torch.float32)
    ours, hf = norm.double(), hf_copy(norm).double()
    x = inputs()
    assert_equivalent(ours(x), hf(x))
    default = make_norm()  # the default computes float32 inputs in float32, like Hugging Face
    assert_close(default(x.float()), hf_copy(default)(x.float()))


@pytest.mark.numerics
def test_hugging_face_computes_float64_inputs_in_float32_and_the_default_does_not() -> None:
    norm = make_norm()
    ours, exact, hf = norm.double(), torch_copy(norm).double(), hf_copy(norm).double()
    x = inputs()
    assert_equivalent(ours(x), exact(x))  # the default keeps float64 in float64
    with pytest.raises(AssertionError, match="not close"):
        assert_equivalent(hf(x), exact(x))  # off by float32's rounding, far above float64's
    assert_close(hf(x).float(), exact(x).float())  # but right to float32's


@pytest.mark.numerics
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_inputs_are_normalized_in_float32_like_hugging_face(dtype: torch.dtype) -> None:
    norm = make_norm()
    ours, hf = norm.to(dtype), hf_copy(norm).to(dtype)
    x = inputs(dtype)
    out = ours(x)
    assert out.dtype == dtype
    assert torch.equal(out, hf(x))  # the same operations in the same order
    exact = torch_copy(norm).double()(x.double())
    assert_close(out, exact.to(dtype))  # within the rounding of the low-precision result


# ---- invariants -------------------------------------------------------------------------------------------------


@pytest.mark.numerics
@pytest.mark.parametrize("c", [1e-3, 0.5, 7.0, 1e3])
def test_scale_invariant_for_positive_factors(c: float) -> None:
    norm = make_norm(eps=0.0).double()  # eps is what breaks the invariance, for vectors of RMS near sqrt(eps)
    x = inputs()
    assert_equivalent(norm(c * x), norm(x))
    assert_equivalent(norm(-c * x), -norm(x))  # odd: the sign goes through


@pytest.mark.numerics
def test_output_has_unit_rms_with_unit_weight() -> None:
    norm = RMSNorm(D, eps=0.0).double()
    y = norm(inputs())
    assert_equivalent(y.pow(2).mean(-1).sqrt(), torch.ones(B, T, dtype=torch.float64))


def test_no_centring_and_no_bias_unlike_layernorm() -> None:
    const = torch.full((1, D), -4.0)
    assert_close(RMSNorm(D, eps=0.0)(const), -torch.ones(1, D))  # a constant vector keeps its direction
    assert_close(nn.LayerNorm(D)(const), torch.zeros(1, D))  # LayerNorm subtracts the mean: nothing is left
    norm = RMSNorm(D)
    assert [name for name, _ in norm.named_parameters()] == ["weight"]
    assert sum(p.numel() for p in norm.parameters()) == D  # LayerNorm has 2 D
    assert torch.equal(norm.weight, torch.ones(D))


def test_eps_keeps_a_zero_vector_finite_and_gradients_flow() -> None:
    norm = make_norm()
    zero = torch.zeros(1, D)
    assert torch.equal(norm(zero), zero)
    x = inputs(torch.float32).requires_grad_()
    norm(x).pow(2).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert norm.weight.grad is not None and norm.weight.grad.abs().sum() > 0


def test_any_leading_shape_and_repr() -> None:
    norm = make_norm()
    assert norm(torch.randn(D)).shape == (D,)
    assert norm(torch.randn(2, 3, 4, D)).shape == (2, 3, 4, D)
    assert repr(norm) == "RMSNorm(16, eps=1e-05)"


# ---- errors -----------------------------------------------------------------------------------------------------


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="d_model must be an integer >= 1, got 0"):
        RMSNorm(0)
    with pytest.raises(ValueError, match=r"d_model must be an integer >= 1, got 16\.0"):
        RMSNorm(16.0)  # type: ignore[arg-type]
    for eps in (-1e-5, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="eps must be a finite number >= 0"):
            RMSNorm(D, eps=eps)
    with pytest.raises(TypeError, match=r"compute_dtype must be None or a floating torch\.dtype, got torch\.int32"):
        RMSNorm(D, compute_dtype=torch.int32)
    norm = RMSNorm(D)
    with pytest.raises(ValueError, match=r"x must have shape \(\.\.\., d_model=16\), got \(2, 15\)"):
        norm(torch.randn(2, 15))
    with pytest.raises(TypeError, match=r"x must be a floating-point tensor, got torch\.int64"):
        norm(torch.ones(2, D, dtype=torch.long))
