"""Tests for llmdocs.nn.rotary: RoPE against Hugging Face, its relative-position property, the two pair layouts,
the cos/sin table and context extension."""

from __future__ import annotations

import math
import os

import pytest
import torch

from llmdocs.nn.rotary import (
    RotaryEmbedding,
    apply_rotary,
    apply_rotary_complex,
    permute_qk_rows,
    rope_angles,
    rope_cos_sin,
    rope_inv_freq,
    rope_permutation,
    rotate_half,
)
from llmdocs.testing import assert_close, assert_equivalent

os.environ["HF_HUB_OFFLINE"] = "1"  # before transformers is imported: never touch the network
pytest.importorskip("transformers")
from transformers import LlamaConfig
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, apply_rotary_pos_emb

B, H, T, Dh = 2, 3, 7, 16
F64 = torch.float64


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def hf_rotary(rope_theta: float, rope_scaling: str | None = None, factor: float = 1.0) -> LlamaRotaryEmbedding:
    params: dict[str, object] = {"rope_type": rope_scaling or "default", "rope_theta": rope_theta}
    if rope_scaling is not None:
        params["factor"] = factor
    config = LlamaConfig(hidden_size=H * Dh, num_attention_heads=H, rope_parameters=params, max_position_embeddings=64)
    return LlamaRotaryEmbedding(config)


def rotate(x: torch.Tensor, positions: torch.Tensor, inv_freq: torch.Tensor) -> torch.Tensor:
    """Rotate-half RoPE with angles in inv_freq's dtype (float64 here: the functional API, not the float32 table)."""
    cos, sin = rope_cos_sin(positions, inv_freq)
    return apply_rotary(x, cos, sin)


# ---- Hugging Face -----------------------------------------------------------------------------------------------


@pytest.mark.numerics
@pytest.mark.parametrize(("rope_scaling", "factor"), [(None, 1.0), ("linear", 4.0)])
def test_equals_hugging_face_rotary_embedding_and_apply(rope_scaling: str | None, factor: float) -> None:
    ours = RotaryEmbedding(Dh, rope_theta=500.0, rope_scaling=rope_scaling, scaling_factor=factor)  # type: ignore[arg-type]
    hf = hf_rotary(500.0, rope_scaling, factor)
    assert torch.equal(ours.inv_freq, hf.inv_freq)
    q, k = torch.randn(2, B, H, T, Dh, dtype=F64).unbind(0)
    position_ids = torch.stack([torch.arange(T), torch.arange(T) + 40])  # row 1: after 40 cached tokens
    cos, sin = ours(q, position_ids=position_ids)  # (B, T, Dh), float64 from float32 angles, as Hugging Face
    hf_cos, hf_sin = hf(q, position_ids)
    assert cos.dtype == F64 and cos.shape == (B, T, Dh)
    assert_equivalent(cos, hf_cos)
    assert_equivalent(sin, hf_sin)
    hf_q, hf_k = apply_rotary_pos_emb(q, k, hf_cos, hf_sin)
    assert_equivalent(apply_rotary(q, cos[:, None], sin[:, None]), hf_q)
    assert_equivalent(apply_rotary(k, cos[:, None], sin[:, None]), hf_k)
    step_cos, _ = ours(q[:, :, :1], offset=42)  # a decoding step: the table row of position 42
    assert_equivalent(step_cos[0], hf_cos[1, 2])


def test_a_float64_module_keeps_the_float32_angles() -> None:
    cos32, _ = RotaryEmbedding(Dh, rope_theta=10000.0)(torch.zeros(1, 50, Dh))
    rope64 = RotaryEmbedding(Dh, rope_theta=10000.0).double()  # .double() leaves the float32 frequencies ...
    cos64, _ = rope64(torch.zeros(1, 50, Dh, dtype=F64))
    assert rope64.inv_freq.dtype == torch.float32 and cos64.dtype == F64
    assert torch.equal(cos64, cos32.double())  # ... and the angles are computed in float32


# ---- the relative-position property and norms -------------------------------------------------------------------


@pytest.mark.numerics
@pytest.mark.parametrize("shift", [1, 3, 50])
def test_scores_depend_only_on_the_offset(shift: int) -> None:
    inv_freq = rope_inv_freq(Dh, rope_theta=100.0).double()
    q, k = torch.randn(2, T, Dh, dtype=F64).unbind(0)  # one query and one key vector per position
    positions = torch.arange(T)
    scores = rotate(q, positions, inv_freq) @ rotate(k, positions, inv_freq).T  # (T, T): q at m, k at n
    shifted = rotate(q, positions + shift, inv_freq) @ rotate(k, positions + shift, inv_freq).T
    assert_equivalent(shifted, scores)  # q_m . k_n == q_{m+c} . k_{n+c}


@pytest.mark.numerics
def test_score_is_the_query_against_the_key_rotated_by_n_minus_m() -> None:
    inv_freq = rope_inv_freq(Dh).double()
    q, k = torch.randn(2, Dh, dtype=F64).unbind(0)
    for m, n in [(0, 5), (9, 2), (4, 4)]:
        score = rotate(q, torch.tensor(m), inv_freq) @ rotate(k, torch.tensor(n), inv_freq)
        assert_equivalent(score, q @ rotate(k, torch.tensor(n - m), inv_freq))  # RoFormer eq. 16


@pytest.mark.numerics
def test_rotations_preserve_norms_in_both_layouts() -> None:
    inv_freq = rope_inv_freq(Dh).double()
    x = torch.randn(B, H, T, Dh, dtype=F64)
    positions = torch.arange(100, 100 + T)
    norms = x.norm(dim=-1)
    assert_equivalent(rotate(x, positions, inv_freq).norm(dim=-1), norms)
    assert_equivalent(apply_rotary_complex(x, rope_angles(positions, inv_freq)).norm(dim=-1), norms)
    assert_equivalent(rotate(x, torch.zeros(T, dtype=torch.long), inv_freq), x)  # position 0: no rotation


# ---- the two layouts --------------------------------------------------------------------------------------------


def test_permutation_moves_evens_to_the_first_half() -> None:
    assert rope_permutation(6).tolist() == [0, 2, 4, 1, 3, 5]
    assert rope_permutation(6).argsort().tolist() == [0, 3, 1, 4, 2, 5]  # the inverse: halves -> interleaved
    assert rotate_half(torch.tensor([1.0, 2.0, 3.0, 4.0])).tolist() == [-3.0, -4.0, 1.0, 2.0]


@pytest.mark.numerics
def test_complex_form_equals_rotate_half_form_up_to_the_permutation() -> None:
    inv_freq = rope_inv_freq(Dh).double()
    x = torch.randn(B, H, T, Dh, dtype=F64)
    positions = torch.arange(3, 3 + T)
    perm = rope_permutation(Dh)
    interleaved = apply_rotary_complex(x, rope_angles(positions, inv_freq))  # pairs (x0, x1), (x2, x3), ...
    halves = rotate(x[..., perm], positions, inv_freq)  # pairs (y_i, y_{i + Dh/2})
    assert_equivalent(interleaved[..., perm], halves)
    assert not torch.allclose(rotate(x, positions, inv_freq), interleaved)  # without it, two different functions


@pytest.mark.numerics
def test_complex_form_rotates_each_interleaved_pair_by_its_angle() -> None:
    inv_freq = rope_inv_freq(Dh, rope_theta=10.0).double()
    x = torch.randn(T, Dh, dtype=F64)
    angles = rope_angles(torch.arange(T), inv_freq)  # (T, Dh/2)
    out = apply_rotary_complex(x, angles)
    i = 3  # pair (x6, x7)
    cos, sin = angles[:, i].cos(), angles[:, i].sin()
    a, b = x[:, 2 * i], x[:, 2 * i + 1]
    assert_equivalent(out[:, 2 * i], a * cos - b * sin)
    assert_equivalent(out[:, 2 * i + 1], a * sin + b * cos)


def test_complex_form_keeps_low_precision_dtypes() -> None:
    x = torch.randn(T, Dh).bfloat16()
    angles = rope_angles(torch.arange(T), rope_inv_freq(Dh))
    out = apply_rotary_complex(x, angles)
    assert out.dtype == torch.bfloat16
    assert_close(out, apply_rotary_complex(x.float(), angles).bfloat16())


@pytest.mark.numerics
def test_permuted_projection_rows_give_the_same_attention_scores() -> None:
    D, n_heads = 24, 3
    d_head = D // n_heads
    w_q, w_k = torch.randn(2, D, D, dtype=F64).unbind(0)  # interleaved-RoPE checkpoint (Meta, GGUF)
    x = torch.randn(T, D, dtype=F64)
    inv_freq = rope_inv_freq(d_head).double()
    positions = torch.arange(T)

    def scores(w_q: torch.Tensor, w_k: torch.Tensor, interleaved: bool) -> torch.Tensor:
        q = (x @ w_q.T).view(T, n_heads, d_head).transpose(0, 1)  # (H, T, Dh)
        k = (x @ w_k.T).view(T, n_heads, d_head).transpose(0, 1)  # (H, T, Dh)
        if interleaved:
            angles = rope_angles(positions, inv_freq)
            q, k = apply_rotary_complex(q, angles), apply_rotary_complex(k, angles)
        else:
            q, k = rotate(q, positions, inv_freq), rotate(k, positions, inv_freq)
        return q @ k.transpose(-2, -1)  # (H, T, T)

    reference = scores(w_q, w_k, interleaved=True)
    converted = scores(permute_qk_rows(w_q, n_heads), permute_qk_rows(w_k, n_heads), interleaved=False)
    assert_equivalent(converted, reference)
    assert not torch.allclose(scores(w_q, w_k, interleaved=False), reference)
    # the permutation of Hugging Face's Llama conversion script, written as a reshape
    as_reshape = w_q.view(n_heads, d_head // 2, 2, D).transpose(1, 2).reshape(D, D)
    assert torch.equal(permute_qk_rows(w_q, n_heads), as_reshape)
    assert torch.equal(permute_qk_rows(permute_qk_rows(w_q, n_heads), n_heads, inverse=True), w_q)
    bias = torch.arange(D, dtype=F64)  # a bias (Qwen2) is permuted the same way
    assert torch.equal(permute_qk_rows(bias, n_heads), bias.view(n_heads, d_head // 2, 2).transpose(1, 2).flatten())


# ---- the table --------------------------------------------------------------------------------------------------


def test_table_grows_past_max_position_embeddings_and_serves_offsets() -> None:
    rope = RotaryEmbedding(Dh, max_position_embeddings=4)
    cos, sin = rope(torch.zeros(1, 20, Dh))  # 20 > 4: the table grows
    expected_cos, expected_sin = rope_cos_sin(torch.arange(20), rope_inv_freq(Dh))
    assert torch.equal(cos, expected_cos) and torch.equal(sin, expected_sin)
    step_cos, step_sin = rope(torch.zeros(1, 1, Dh), offset=19)
    assert torch.equal(step_cos, cos[19:]) and torch.equal(step_sin, sin[19:])
    ids = torch.tensor([[0, 1, 2], [0, 0, 1]])  # a left-padded row counts from its first real token
    batch_cos, _ = rope(torch.zeros(2, 3, Dh), position_ids=ids)
    assert batch_cos.shape == (2, 3, Dh) and torch.equal(batch_cos[1, 2], cos[1])
    half_cos, _ = rope(torch.zeros(1, 3, Dh, dtype=torch.bfloat16))
    assert half_cos.dtype == torch.bfloat16


# ---- context extension ------------------------------------------------------------------------------------------


def test_linear_interpolation_divides_the_positions() -> None:
    s = 4
    plain = RotaryEmbedding(Dh, rope_theta=10000.0)
    linear = RotaryEmbedding(Dh, rope_theta=10000.0, rope_scaling="linear", scaling_factor=float(s))
    cos, sin = linear(torch.zeros(1, 4 * T, Dh))
    plain_cos, plain_sin = plain(torch.zeros(1, T, Dh))
    assert torch.equal(cos[::s], plain_cos) and torch.equal(sin[::s], plain_sin)  # position s m -> m


def test_ntk_scaling_raises_the_base_keeping_the_fastest_pair() -> None:
    s, theta = 8.0, 10000.0
    ntk = rope_inv_freq(Dh, theta, rope_scaling="ntk", scaling_factor=s)
    plain = rope_inv_freq(Dh, theta)
    assert torch.equal(ntk, rope_inv_freq(Dh, theta * s ** (Dh / (Dh - 2))))
    assert ntk[0] == plain[0] == 1.0  # the fastest pair keeps its resolution (linear divides it by s)
    assert_close(ntk[-1], plain[-1] / s)  # the slowest pair is interpolated like the linear variant
    ratio = plain / ntk  # between 1 and s, growing with the wavelength
    assert torch.all(ratio[1:] > ratio[:-1])
    linear = rope_inv_freq(Dh, theta, rope_scaling="linear", scaling_factor=s)
    assert_close(plain / linear, torch.full_like(plain, s))


def test_scaling_factor_is_ignored_without_a_scaling() -> None:
    assert torch.equal(rope_inv_freq(Dh, scaling_factor=4.0), rope_inv_freq(Dh))


# ---- errors -----------------------------------------------------------------------------------------------------


def test_bad_arguments_are_named() -> None:
    for d_head in (7, 0, 1, 8.0):
        with pytest.raises(ValueError, match=rf"d_head must be an even integer >= 2 .*got {d_head}"):
            rope_inv_freq(d_head)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="d_head must be an even integer"):
        rope_permutation(5)
    with pytest.raises(ValueError, match="d_head must be an even integer"):
        RotaryEmbedding(9)
    for theta in (0.0, -1.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="rope_theta must be a finite number > 0"):
            rope_inv_freq(Dh, rope_theta=theta)
    with pytest.raises(ValueError, match=r"scaling_factor must be a finite number > 0, got 0\.0"):
        rope_inv_freq(Dh, rope_scaling="linear", scaling_factor=0.0)
    with pytest.raises(ValueError, match=r"rope_scaling must be None or one of \('linear', 'ntk'\), got 'yarn'"):
        rope_inv_freq(Dh, rope_scaling="yarn")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="rope_scaling='ntk' needs d_head >= 4"):
        rope_inv_freq(2, rope_scaling="ntk", scaling_factor=2.0)
    with pytest.raises(ValueError, match="max_position_embeddings must be an integer >= 1"):
        RotaryEmbedding(Dh, max_position_embeddings=0)


def test_bad_inputs_are_named() -> None:
    x = torch.randn(T, Dh)
    cos, sin = rope_cos_sin(torch.arange(T), rope_inv_freq(Dh))
    with pytest.raises(ValueError, match=r"needs an even Dh and cos, sin of width Dh, got x \(7, 16\), cos \(7, 8\)"):
        apply_rotary(x, cos[:, :8], sin[:, :8])
    with pytest.raises(ValueError, match=r"needs an even Dh and angles of width Dh/2, got x \(7, 15\)"):
        apply_rotary_complex(torch.randn(T, 15), torch.zeros(T, 8))
    rope = RotaryEmbedding(Dh)
    hidden = torch.zeros(1, T, Dh)
    with pytest.raises(ValueError, match="position_ids must be >= 0, got -1"):
        rope(hidden, position_ids=torch.arange(-1, T - 1))
    with pytest.raises(TypeError, match=r"position_ids must be an integer tensor, got torch\.float32"):
        rope(hidden, position_ids=torch.arange(T, dtype=torch.float32))
    with pytest.raises(ValueError, match=r"position_ids must have shape \(T,\) or \(B, T\), got \(1, 1, 7\)"):
        rope(hidden, position_ids=torch.arange(T).view(1, 1, T))
    with pytest.raises(ValueError, match="pass position_ids or offset, not both"):
        rope(hidden, position_ids=torch.arange(T), offset=3)
    with pytest.raises(ValueError, match="offset must be an integer >= 0"):
        rope(hidden, offset=-1)
    with pytest.raises(ValueError, match=r"x must be a tensor of shape \(\.\.\., T, C\), got \(16,\)"):
        rope(torch.zeros(Dh))
    with pytest.raises(ValueError, match=r"weight of shape \(10, 4\) does not split into n_heads=3 heads"):
        permute_qk_rows(torch.zeros(10, 4), n_heads=3)
    with pytest.raises(ValueError, match="heads of an even width"):
        permute_qk_rows(torch.zeros(9, 4), n_heads=3)  # width 3
    with pytest.raises(ValueError, match="n_heads must be an integer >= 1, got 0"):
        permute_qk_rows(torch.zeros(8, 4), n_heads=0)


def test_a_bfloat16_model_rotates_by_float32_angles_whatever_it_ran_before() -> None:
    """The frequencies are not a buffer: casting the module leaves them (and the angles) float32."""
    x = torch.zeros(1, 4, 8, dtype=torch.bfloat16)
    positions = torch.tensor([0, 1, 1000, 3000])
    fresh = RotaryEmbedding(d_head=8, rope_theta=10000.0).to(torch.bfloat16)
    used_first = RotaryEmbedding(d_head=8, rope_theta=10000.0)
    used_first(torch.zeros(1, 4, 8), position_ids=positions)  # builds its float32 table before the cast
    used_first = used_first.to(torch.bfloat16)
    assert fresh.inv_freq.dtype == torch.float32
    exact = RotaryEmbedding(d_head=8, rope_theta=10000.0)(torch.zeros(1, 4, 8), position_ids=positions)
    for rope in (fresh, used_first):
        cos, sin = rope(x, position_ids=positions)
        assert torch.equal(cos, exact[0].bfloat16()) and torch.equal(sin, exact[1].bfloat16())
