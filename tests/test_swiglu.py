"""Tests for llmdocs.nn.swiglu: SwiGLU against Hugging Face's LlamaMLP, Llama's width rule, the parameter count."""

from __future__ import annotations

import os

import pytest
import torch
import torch.nn.functional as F

from llmdocs.nn.feedforward import PositionwiseFeedForward
from llmdocs.nn.swiglu import SwiGLU, swiglu_hidden_dim
from llmdocs.testing import assert_close, assert_equivalent

os.environ["HF_HUB_OFFLINE"] = "1"  # before transformers is imported: never touch the network
pytest.importorskip("transformers")
from transformers import LlamaConfig
from transformers.models.llama.modeling_llama import LlamaMLP

B, T, D, FF = 2, 5, 24, 64


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ---- equivalence ------------------------------------------------------------------------------------------------


@pytest.mark.numerics
@pytest.mark.parametrize("bias", [False, True])
def test_equals_hugging_face_llama_mlp(bias: bool) -> None:
    ours = SwiGLU(D, FF, bias=bias).double()
    config = LlamaConfig(hidden_size=D, num_attention_heads=4, intermediate_size=FF, hidden_act="silu", mlp_bias=bias)
    hf = LlamaMLP(config).double()
    hf.load_state_dict(ours.state_dict())  # the same three names: gate_proj, up_proj, down_proj
    x = torch.randn(B, T, D, dtype=torch.float64)
    assert_equivalent(ours(x), hf(x))


@pytest.mark.numerics
def test_is_the_formula_of_the_paper() -> None:
    ff = SwiGLU(D, FF).double()
    x = torch.randn(B, T, D, dtype=torch.float64)
    W, V, W2 = ff.gate_proj.weight.T, ff.up_proj.weight.T, ff.down_proj.weight.T
    xW = x @ W
    swish = xW * torch.sigmoid(xW)  # Swish_1 = SiLU
    assert_equivalent(ff(x), (swish * (x @ V)) @ W2)  # Shazeer (2020), eq. 6


# ---- the hidden width and the parameter count -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("d_model", "kwargs", "expected"),
    [
        (4096, {}, 11008),  # Llama-7B
        (5120, {}, 13824),  # Llama-13B
        (8192, {}, 22016),  # Llama-65B
        (4096, {"multiple_of": 1024, "ffn_dim_multiplier": 1.3}, 14336),  # Llama-3-8B
        (8192, {"multiple_of": 4096, "ffn_dim_multiplier": 1.3}, 28672),  # Llama-2-70B
        (576, {}, 1536),  # SmolLM2-135M: 8 * 576 / 3 is already a multiple of 256
    ],
)
def test_hidden_width_rule_on_published_models(d_model: int, kwargs: dict[str, float], expected: int) -> None:
    assert swiglu_hidden_dim(d_model, **kwargs) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("d_model", [12, 64, 100, 576, 4096])
@pytest.mark.parametrize("multiple_of", [1, 256])
def test_parameter_count_equals_a_4d_gelu_mlp_up_to_rounding(d_model: int, multiple_of: int) -> None:
    with torch.device("meta"):  # shapes only: a 4096-wide pair of networks without allocating their weights
        swiglu = SwiGLU(d_model, swiglu_hidden_dim(d_model, multiple_of=multiple_of))
        gelu = PositionwiseFeedForward(d_model, 4 * d_model, activation="gelu", bias=False)
    assert n_params(gelu) == 8 * d_model**2  # two D x 4D matrices
    # three D x F matrices with F = 2/3 * 4D: the same count, up to rounding F to an integer multiple of multiple_of
    assert abs(n_params(swiglu) - n_params(gelu)) <= 3 * d_model * multiple_of
    if multiple_of == 1 and d_model % 3 == 0:
        assert n_params(swiglu) == n_params(gelu)  # 2/3 * 4D is an integer: exactly equal
    assert swiglu_hidden_dim(d_model, multiple_of=multiple_of) % multiple_of == 0


def test_llama_7b_feed_forward_has_the_same_size_as_gpt2_style() -> None:
    d_model = 4096
    with torch.device("meta"):
        swiglu = SwiGLU(d_model, swiglu_hidden_dim(d_model))
    assert n_params(swiglu) == 3 * 4096 * 11008 == 135_266_304
    assert round(n_params(swiglu) / (8 * d_model**2), 4) == 1.0078  # 0.8% over the 4D MLP, from rounding to 256


# ---- behaviour --------------------------------------------------------------------------------------------------


@pytest.mark.numerics
def test_output_is_linear_in_the_up_projection() -> None:
    ff = SwiGLU(D, FF).double()
    x = torch.randn(B, T, D, dtype=torch.float64)
    out = ff(x)
    with torch.no_grad():
        ff.up_proj.weight.mul_(-3.0)
    assert_equivalent(ff(x), -3.0 * out)  # the gate multiplies; only the gate branch is non-linear
    with torch.no_grad():
        ff.up_proj.weight.zero_()
    assert torch.equal(ff(x), torch.zeros_like(out))


def test_each_position_on_its_own_and_any_leading_shape() -> None:
    ff = SwiGLU(D, FF)
    x = torch.randn(B, T, D)
    assert_close(ff(x)[:, 2], ff(x[:, 2:3])[:, 0])
    assert ff(torch.randn(D)).shape == (D,)
    assert ff(torch.randn(3, 2, 4, D)).shape == (3, 2, 4, D)


def test_no_biases_by_default_and_gradients_reach_every_parameter() -> None:
    ff = SwiGLU(D, FF)
    assert all(m.bias is None for m in (ff.gate_proj, ff.up_proj, ff.down_proj))
    assert n_params(ff) == 3 * D * FF
    x = torch.randn(B, T, D, requires_grad=True)
    ff(x).pow(2).sum().backward()
    for name, p in ff.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert x.grad is not None
    assert_close(F.silu(torch.zeros(1)), torch.zeros(1))  # SiLU(0) = 0: a zero input gives a zero output
    assert torch.equal(ff(torch.zeros(1, D)), torch.zeros(1, D))


# ---- errors -----------------------------------------------------------------------------------------------------


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="d_model must be an integer >= 1, got 0"):
        SwiGLU(0, FF)
    with pytest.raises(ValueError, match=r"d_ff must be an integer >= 1, got 2\.5"):
        SwiGLU(D, 2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="multiple_of must be an integer >= 1, got 0"):
        swiglu_hidden_dim(D, multiple_of=0)
    with pytest.raises(ValueError, match="d_model must be an integer >= 1, got -4"):
        swiglu_hidden_dim(-4)
    with pytest.raises(ValueError, match="ffn_dim_multiplier must be None or a number > 0, got 0"):
        swiglu_hidden_dim(D, ffn_dim_multiplier=0)
    with pytest.raises(ValueError, match=r"x must have shape \(\.\.\., d_model=24\), got \(2, 5, 23\)"):
        SwiGLU(D, FF)(torch.randn(B, T, D - 1))
