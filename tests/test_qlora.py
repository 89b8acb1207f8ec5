"""Tests for llmdocs.finetuning.qlora: NF4 from scratch, equal to bitsandbytes, and a frozen 4-bit linear for QLoRA.

- The code books: NF4's 16 levels (the QLoRA paper's table, and bitsandbytes' own) and the dynamic 8-bit type that
  double quantization stores the scales in.
- Quantization on hand-computed values (codes, nibble order, padding), its invariants (nearest levels, each
  block's absmax kept exactly, a partial last block) and clear errors on bad input.
- Parity with bitsandbytes (skipped with the reason when it cannot be imported or run): packed codes, scales and
  dequantized weights equal bit for bit; see `test_double_quantization_matches_bitsandbytes` for the one place
  where its CPU search differs from the nearest level.
- Why NF4: on normal weights int8 < NF4 < uniform 4-bit in round-trip error; on uniform weights the order flips.
- Memory: bytes per parameter from the stored tensors, equal to the closed forms.
- Linear4bit: equal to nn.Linear with the dequantized weight, nothing to train, safetensors round trip, ``.to``;
  a minimal LoRA adapter written here trains on top of it while the 4-bit buffers stay untouched.
- quantize_linears: replaces the matching layers, bare names match the last component, clear errors.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from llmdocs.finetuning.lora import LoRALinear, apply_lora, merge_lora
from llmdocs.finetuning.qlora import (
    SCHEMES,
    Int8Weight,
    Linear4bit,
    NF4Weight,
    bytes_per_parameter,
    dequantize_int8_absmax,
    dequantize_nf4,
    dynamic_code_book,
    nf4_code_book,
    quantize_int8_absmax,
    quantize_linears,
    quantize_nf4,
    round_trip,
    round_trip_errors,
    uniform4_code_book,
)
from llmdocs.models.bert import BertConfig, BertForSequenceClassification
from llmdocs.models.gpt import GPT, GPTConfig
from llmdocs.models.llama import Llama, LlamaConfig
from llmdocs.testing import assert_close, assert_equivalent, tolerance

# QLoRA, appendix E: the NF4 data type's values (float32, as bitsandbytes hard-codes them).
PAPER_NF4 = [
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
    -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
    0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
]  # fmt: skip


@pytest.fixture(scope="module")
def bnb() -> Any:
    """``bitsandbytes.functional``, or a skip that says why it is unavailable."""
    reason = "bitsandbytes is not installed: the NF4 parity tests need it (pip install bitsandbytes)"
    pytest.importorskip("bitsandbytes", reason=reason)
    import bitsandbytes.functional as bnb_functional

    try:
        bnb_functional.quantize_4bit(torch.randn(4, 64), blocksize=64, quant_type="nf4")
    except Exception as error:  # a build without a kernel for this CPU
        pytest.skip(f"bitsandbytes cannot quantize to NF4 on this CPU: {type(error).__name__}: {error}")
    return bnb_functional


def unpack(codes: Tensor) -> Tensor:
    """Packed bytes (n/2,) -> 4-bit codes (n,), high nibble first."""
    return torch.stack([codes >> 4, codes & 0xF], dim=1).reshape(-1)


def nf4_from_bnb(packed: Tensor, state: Any) -> NF4Weight:
    """bitsandbytes' quantized weight as our NF4Weight (its tensors, our dataclass)."""
    double = state.nested
    return NF4Weight(
        packed.reshape(-1),
        state.absmax,
        state.shape,
        state.blocksize,
        state.dtype,
        state.state2.absmax if double else None,
        state.offset if double else None,
        state.state2.blocksize if double else 256,
    )


# ---- the code books ---------------------------------------------------------------------------------------------


def test_nf4_code_book_is_sorted_normal_quantiles_with_one_exact_zero() -> None:
    q = nf4_code_book()
    assert q.shape == (16,) and q.dtype == torch.float32
    assert torch.equal(q, q.sort().values) and q.unique().numel() == 16
    assert q[0] == -1 and q[-1] == 1 and q.abs().max() == 1
    assert (q == 0).sum() == 1 and (q < 0).sum() == 7 and (q > 0).sum() == 8  # the extra level is positive
    assert torch.equal(q, torch.tensor(PAPER_NF4))
    # Equal probability mass between levels: the normal CDF of 0 and the positive levels, in standard deviations
    # (times Phi^-1(offset), the largest quantile), is evenly spaced from 1/2 to the offset.
    quantiles = q[7:].double() * torch.special.ndtri(torch.tensor(0.9677083, dtype=torch.float64))  # (9,)
    steps = torch.special.ndtr(quantiles).diff().float()  # (8,)
    assert_close(steps, torch.full((8,), (0.9677083 - 0.5) / 8))


def test_nf4_code_book_equals_bitsandbytes(bnb: Any) -> None:
    assert torch.equal(nf4_code_book(), bnb.get_4bit_type("nf4", device="cpu"))


def test_dynamic_code_book_equals_bitsandbytes_and_is_a_signed_decade_grid(bnb: Any) -> None:
    levels = dynamic_code_book()
    assert torch.equal(levels, bnb.create_dynamic_map())
    assert levels.shape == (256,) and levels.unique().numel() == 256
    assert levels[127] == 0 and levels[-1] == 1
    assert torch.equal(levels[:127], -levels[128:255].flip(0))  # symmetric, 1.0 is the extra level


def test_uniform4_code_book_is_evenly_spaced_without_zero() -> None:
    levels = uniform4_code_book()
    assert levels.shape == (16,) and levels[0] == -1 and levels[-1] == 1 and not (levels == 0).any()
    assert_close(levels.diff(), torch.full((15,), 2 / 15))


# ---- quantize / dequantize --------------------------------------------------------------------------------------


def test_quantize_nf4_hand_computed_codes_and_nibble_order() -> None:
    w = torch.tensor([[0.5, -1.0, 0.25, 0.0], [2.0, -0.2, 0.0, 0.0]])  # blocks of 4: absmax 1 and 2
    q = quantize_nf4(w, block_size=4)
    # 0.5 -> level 12 (0.4407; 0.5626 is farther), -1 -> 0, 0.25 -> 10 (0.2461), 0 -> 7; 1 -> 15, -0.1 -> 6 (-0.0911)
    assert unpack(q.codes).tolist() == [12, 0, 10, 7, 15, 6, 7, 7]
    assert q.codes.tolist() == [12 << 4 | 0, 10 << 4 | 7, 15 << 4 | 6, 7 << 4 | 7]  # first weight in the high nibble
    assert q.absmax.tolist() == [1.0, 2.0] and q.shape == (2, 4) and not q.double_quant
    expected = torch.tensor([[PAPER_NF4[12], -1.0, PAPER_NF4[10], 0.0], [2.0, 2 * PAPER_NF4[6], 0.0, 0.0]])
    assert torch.equal(dequantize_nf4(q), expected)


def test_codes_are_the_nearest_levels() -> None:
    torch.manual_seed(0)
    w = torch.randn(16, 64)
    q = quantize_nf4(w)
    levels = nf4_code_book()
    scaled = (w.reshape(-1, 64) / q.absmax.unsqueeze(1)).reshape(-1).double()  # (n,) in [-1, 1]
    distances = (scaled.unsqueeze(1) - levels.double()).abs()  # (n, 16)
    chosen = distances.gather(1, unpack(q.codes).long().unsqueeze(1)).squeeze(1)
    # one rounding of w / absmax apart from the float32 reciprocal the quantizer multiplies by
    assert (chosen <= distances.min(dim=1).values + tolerance(torch.float32).atol).all()


def test_block_absmax_round_trips_exactly() -> None:
    torch.manual_seed(0)
    w = torch.randn(8, 128)
    w_hat = dequantize_nf4(quantize_nf4(w, block_size=64))
    blocks, blocks_hat = w.reshape(-1, 64), w_hat.reshape(-1, 64)
    largest = blocks.abs().argmax(dim=1, keepdim=True)  # (N, 1)
    assert torch.equal(blocks_hat.gather(1, largest), blocks.gather(1, largest))  # level +-1 times absmax
    assert torch.equal(blocks_hat.abs().amax(dim=1), blocks.abs().amax(dim=1))
    assert w_hat.dtype == w.dtype and w_hat.shape == w.shape


def test_partial_last_block_and_odd_length_are_padded() -> None:
    torch.manual_seed(0)
    w = torch.randn(5, 31)  # 155 numbers: two blocks of 64 and a last block of 27; an odd count of nibbles
    q = quantize_nf4(w, block_size=64)
    assert q.codes.shape == (78,) and q.absmax.shape == (3,)
    assert torch.equal(q.absmax[2], w.reshape(-1)[128:].abs().max())  # the padding zeros never count
    assert q.codes[-1] & 0xF == 7  # the padding nibble holds the code of 0
    w_hat = dequantize_nf4(q)
    assert w_hat.shape == (5, 31)
    tail = w.reshape(-1)[128:]
    assert torch.equal(w_hat.reshape(-1)[128:][tail.abs().argmax()], tail[tail.abs().argmax()])


def test_any_block_size_shape_and_dtype() -> None:
    torch.manual_seed(0)
    w = torch.randn(3, 4, 40, dtype=torch.bfloat16)  # a 3-D bfloat16 tensor, blocks of 48 (not a power of 2)
    q = quantize_nf4(w, block_size=48)
    assert q.absmax.shape == (10,) and q.dtype == torch.bfloat16
    w_hat = dequantize_nf4(q)
    assert w_hat.shape == w.shape and w_hat.dtype == torch.bfloat16
    assert dequantize_nf4(q, torch.float64).dtype == torch.float64
    assert torch.equal(dequantize_nf4(quantize_nf4(torch.zeros(2, 64))), torch.zeros(2, 64))  # no 0 / 0


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"weight": torch.ones(4, 4, dtype=torch.int64)}, TypeError, "floating-point tensor"),
        ({"weight": [[1.0, 2.0]]}, TypeError, "must be a torch.Tensor"),
        ({"weight": torch.tensor(1.0)}, ValueError, "at least one dimension"),
        ({"weight": torch.ones(0, 8)}, ValueError, "at least one dimension and one element"),
        ({"weight": torch.tensor([1.0, float("nan")])}, ValueError, "NaN or infinite"),
        ({"weight": torch.tensor([1.0, float("inf")])}, ValueError, "NaN or infinite"),
        ({"block_size": 0}, ValueError, "block_size must be a positive integer"),
        ({"block_size": -64}, ValueError, "block_size must be a positive integer"),
        ({"block_size": 64.0}, ValueError, "block_size must be a positive integer"),
        ({"block_size": True}, ValueError, "block_size must be a positive integer"),
        ({"absmax_block_size": 0}, ValueError, "absmax_block_size must be a positive integer"),
        ({"double_quant": "yes"}, TypeError, "double_quant must be a bool"),
    ],
)
def test_quantize_nf4_rejects_bad_input(kwargs: dict[str, Any], error: type[Exception], match: str) -> None:
    arguments = {"weight": torch.randn(4, 64), **kwargs}
    with pytest.raises(error, match=match):
        quantize_nf4(**arguments)


def test_dequantize_rejects_what_is_not_a_quantized_weight() -> None:
    with pytest.raises(TypeError, match="NF4Weight"):
        dequantize_nf4(torch.randn(4))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"floating torch\.dtype"):
        dequantize_nf4(quantize_nf4(torch.randn(64)), torch.int8)
    with pytest.raises(TypeError, match="Int8Weight"):
        dequantize_int8_absmax(quantize_nf4(torch.randn(64)))  # type: ignore[arg-type]
    q = quantize_nf4(torch.randn(128))
    with pytest.raises(ValueError, match=r"codes must be uint8 of shape \(64,\)"):
        NF4Weight(q.codes[:10], q.absmax, q.shape, 64)
    with pytest.raises(ValueError, match=r"absmax must be torch.float32 of shape \(2,\)"):
        NF4Weight(q.codes, q.absmax.double(), q.shape, 64)
    with pytest.raises(ValueError, match="come together"):
        NF4Weight(q.codes, q.absmax, q.shape, 64, absmax_scale=torch.ones(1))
    with pytest.raises(ValueError, match="scheme must be one of"):
        round_trip(torch.randn(64), "fp4")


def test_double_quantization_stores_8_bit_scales_near_the_float32_ones() -> None:
    torch.manual_seed(0)
    w = torch.randn(64, 1024)  # 1024 scales: 4 blocks of 256
    single, double = quantize_nf4(w), quantize_nf4(w, double_quant=True)
    assert double.double_quant and double.absmax.dtype == torch.uint8 and double.absmax.shape == (1024,)
    assert double.absmax_scale.shape == (4,) and double.absmax_offset.shape == ()
    assert torch.equal(double.codes, single.codes)  # the 4-bit codes use the exact scales
    assert torch.equal(double.absmax_offset, single.absmax.mean())
    # Each scale moves by at most half the widest gap of the 8-bit levels times its block's second-level scale
    # (a block's largest |w| has level +-1, so its dequantized value is the dequantized scale).
    dequantized = dequantize_nf4(double).reshape(-1, 64).abs().amax(dim=1)  # (1024,)
    half_gap = dynamic_code_book().diff().max() / 2
    bound = half_gap * double.absmax_scale.repeat_interleave(256)
    assert ((dequantized - single.absmax).abs() <= bound + tolerance(torch.float32).atol * single.absmax.max()).all()


def test_double_quantization_refuses_scales_that_overflow_float32() -> None:
    """A finite weight near float32's largest value: the float32 mean of the scales overflows (as bitsandbytes
    computes it), or the dequantized scale mean + level x scale rounds past the largest value. Both used to
    dequantize to inf and NaN silently; single quantization keeps every finite weight finite."""
    huge = torch.tensor([3e38, -3e38, 1.0] * 100)
    with pytest.raises(ValueError, match=r"block scales overflow float32 .* their float32 mean is not finite"):
        quantize_nf4(huge, double_quant=True)
    assert torch.isfinite(dequantize_nf4(quantize_nf4(huge))).all()  # float32 scales: fine
    largest = torch.zeros(10, 64)
    largest[0, 0] = torch.finfo(torch.float32).max  # mean = max / 10: finite; max - mean + mean rounds up to inf
    with pytest.raises(ValueError, match=r"a dequantized scale \(mean \+ 8-bit level x second-level scale\)"):
        quantize_nf4(largest, double_quant=True)
    linear = nn.Linear(64, 10)
    with torch.no_grad():
        linear.weight.copy_(largest)  # (D_out, D_in) = (10, 64)
    with pytest.raises(ValueError, match="double_quant=False"):  # Linear4bit double-quantizes by default
        Linear4bit.from_linear(linear)
    assert torch.isfinite(dequantize_nf4(quantize_nf4(largest))).all()


def test_int8_absmax_round_trip() -> None:
    q = quantize_int8_absmax(torch.tensor([[0.5, -1.0, 0.25, 0.0], [0.0, 0.0, 0.0, 0.0]]), block_size=4)
    assert isinstance(q, Int8Weight)
    assert q.codes.tolist() == [64, -127, 32, 0, 0, 0, 0, 0] and q.absmax.tolist() == [1.0, 0.0]
    assert dequantize_int8_absmax(q).tolist()[1] == [0.0, 0.0, 0.0, 0.0]
    torch.manual_seed(0)
    w = torch.randn(7, 50)  # a partial last block
    w_hat = dequantize_int8_absmax(quantize_int8_absmax(w))
    blocks = torch.nn.functional.pad(w.reshape(-1), (0, 34)).reshape(-1, 64)
    step = blocks.abs().amax(dim=1).repeat_interleave(64)[: w.numel()] / 127  # one int8 step per block
    assert ((w_hat - w).abs().reshape(-1) <= step / 2 + tolerance(torch.float32).atol * w.abs().max()).all()


# ---- parity with bitsandbytes -----------------------------------------------------------------------------------


@pytest.mark.numerics
@pytest.mark.parametrize("shape", [(64, 128), (48, 256), (5, 128)])  # rows of whole blocks, as in real layers
@pytest.mark.parametrize("block_size", [64, 128])
def test_nf4_matches_bitsandbytes_bit_for_bit(bnb: Any, shape: tuple[int, int], block_size: int) -> None:
    torch.manual_seed(block_size + shape[0])
    w = torch.randn(shape) * 0.02
    packed, state = bnb.quantize_4bit(w, blocksize=block_size, quant_type="nf4")
    q = quantize_nf4(w, block_size)
    assert torch.equal(q.codes, packed.reshape(-1))
    assert torch.equal(q.absmax, state.absmax)
    assert torch.equal(dequantize_nf4(q), bnb.dequantize_4bit(packed, state))


@pytest.mark.numerics
def test_partial_blocks_match_bitsandbytes(bnb: Any) -> None:
    """Codes and scales of weights whose rows are not whole blocks (a partial last block, an odd count).

    The dequantized values are compared on our side only: bitsandbytes 0.50's AVX-512 kernel reads the scale
    of row r, column c at r * (D_in // block_size) + c // block_size, right only when rows are whole blocks.
    """
    torch.manual_seed(0)
    for shape in [(33, 70), (7, 9), (10, 64)]:
        w = torch.randn(shape)
        packed, state = bnb.quantize_4bit(w, blocksize=128, quant_type="nf4")
        q = quantize_nf4(w, 128)
        assert torch.equal(q.codes, packed.reshape(-1)) and torch.equal(q.absmax, state.absmax)


@pytest.mark.numerics
@pytest.mark.parametrize("block_size", [64, 128])
def test_double_quantization_matches_bitsandbytes(bnb: Any, block_size: int) -> None:
    """Double quantization (``compress_statistics=True``): 4-bit codes, second-level scales and the mean equal bit
    for bit, and our dequantization of bitsandbytes' stored tensors equals its own.

    Our 8-bit codes of the scales are the nearest dynamic levels; the CPU search of bitsandbytes 0.50 is not
    exactly nearest (it sometimes returns a level a few 1e-5 farther), so its codes are checked to be equal to
    ours almost everywhere, never nearer, and the dequantized weights equal wherever the codes are.
    """
    torch.manual_seed(block_size)
    w = torch.randn(128, 512)  # 1024 or 512 scales: several blocks of 256
    packed, state = bnb.quantize_4bit(w, blocksize=block_size, compress_statistics=True, quant_type="nf4")
    q = quantize_nf4(w, block_size, double_quant=True)
    assert torch.equal(q.codes, packed.reshape(-1))
    assert torch.equal(q.absmax_offset, state.offset) and torch.equal(q.absmax_scale, state.state2.absmax)
    theirs = bnb.dequantize_4bit(packed, state)
    assert torch.equal(dequantize_nf4(nf4_from_bnb(packed, state)), theirs)

    exact = quantize_nf4(w, block_size).absmax
    scaled = (exact - q.absmax_offset) / q.absmax_scale.repeat_interleave(256)[: exact.numel()]  # in [-1, 1]
    levels = dynamic_code_book()
    ours_distance = (scaled - levels[q.absmax.long()]).abs()
    theirs_distance = (scaled - levels[state.absmax.long()]).abs()
    assert (ours_distance <= theirs_distance + tolerance(torch.float32).atol).all()
    same = q.absmax == state.absmax  # (N,)
    assert same.float().mean() > 0.95  # measured: 99.8 % on 300 seeds
    in_same_blocks = same.repeat_interleave(block_size)  # (n,)
    assert torch.equal(dequantize_nf4(q).reshape(-1)[in_same_blocks], theirs.reshape(-1)[in_same_blocks])


# ---- why NF4: round-trip error ----------------------------------------------------------------------------------


def test_error_ordering_on_normal_weights_int8_nf4_uniform4() -> None:
    torch.manual_seed(0)  # any seed: 65,536 samples pin each error to ~0.5 %; the gaps are 8 % and 15x
    w = torch.randn(256, 256)
    errors = round_trip_errors(w)
    assert list(errors) == list(SCHEMES)
    for measure in ("mean_abs", "rmse"):
        int8, nf4, nf4_dq, uniform4 = (getattr(errors[s], measure) for s in SCHEMES)
        assert int8 < nf4 < uniform4, measure
        assert abs(nf4_dq - nf4) < 0.01 * nf4  # 8-bit scales cost under 1 % of the error
    assert errors["nf4"].max_abs > errors["uniform4"].max_abs  # NF4's wide outer gap: rare values pay


def test_uniform_grid_wins_on_uniform_weights() -> None:
    torch.manual_seed(0)
    w = torch.rand(256, 256) * 2 - 1  # NF4 is made for normal data: on uniform data its dense centre is wasted
    errors = round_trip_errors(w)
    assert errors["uniform4"].rmse < errors["nf4"].rmse


def test_round_trip_keeps_shape_and_dtype() -> None:
    w = torch.randn(6, 40, dtype=torch.bfloat16)
    for scheme in SCHEMES:
        w_hat = round_trip(w, scheme)
        assert w_hat.shape == w.shape and w_hat.dtype == w.dtype, scheme


# ---- memory -----------------------------------------------------------------------------------------------------


def test_bytes_per_parameter_from_stored_tensors_match_closed_forms() -> None:
    w = torch.randn(256, 512)
    n = w.numel()
    assert quantize_nf4(w).nbytes == n // 2 + 4 * n // 64
    assert quantize_nf4(w, double_quant=True).nbytes == n // 2 + n // 64 + 4 * math.ceil(n / 64 / 256) + 4
    assert quantize_int8_absmax(w).nbytes == n + 4 * n // 64
    assert quantize_nf4(w).bits_per_parameter == 4.5 and quantize_int8_absmax(w).bits_per_parameter == 8.5
    measured = bytes_per_parameter(w)
    assert measured["fp32"] == 4 and measured["bf16"] == 2 and measured["int8"] == 1 + 4 / 64
    assert measured["nf4"] == 0.5 + 4 / 64 == 0.5625
    assert measured["nf4-dq"] == 0.5 + 1 / 64 + 4 / (64 * 256) + 4 / n  # the last term: the mean of the scales
    assert round(measured["nf4-dq"], 3) == 0.516


# ---- Linear4bit -------------------------------------------------------------------------------------------------


@pytest.mark.numerics
@pytest.mark.parametrize("double_quant", [False, True])
def test_linear4bit_equals_nn_linear_with_the_dequantized_weight(double_quant: bool) -> None:
    torch.manual_seed(0)
    linear = nn.Linear(128, 24)
    layer = Linear4bit.from_linear(linear, double_quant=double_quant)
    assert (layer.in_features, layer.out_features) == (128, 24)
    assert torch.equal(layer.dequantize(), dequantize_nf4(quantize_nf4(linear.weight, 64, double_quant)))
    reference = nn.Linear(128, 24)
    reference.load_state_dict({"weight": layer.dequantize(), "bias": linear.bias.detach()})
    x = torch.randn(3, 5, 128)
    assert_close(layer(x), reference(x))
    # the same layer computing in float64: an equivalence proof
    layer64 = Linear4bit.from_linear(linear, double_quant=double_quant, compute_dtype=torch.float64)
    assert_equivalent(layer64(x.double()), reference.double()(x.double()))


def test_linear4bit_has_nothing_to_train_and_a_frozen_bias() -> None:
    layer = Linear4bit.from_linear(nn.Linear(64, 8))
    assert [name for name, p in layer.named_parameters() if p.requires_grad] == []
    assert isinstance(layer.bias, nn.Parameter) and not layer.bias.requires_grad
    assert Linear4bit.from_linear(nn.Linear(64, 8, bias=False)).bias is None
    assert {name for name, _ in layer.named_buffers()} == {
        "weight_codes",
        "weight_absmax",
        "weight_absmax_scale",
        "weight_absmax_offset",
    }
    x = torch.randn(2, 64, requires_grad=True)
    layer(x).sum().backward()  # gradients reach the input through the frozen weights
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_linear4bit_state_dict_round_trips_through_safetensors(tmp_path: Path) -> None:
    torch.manual_seed(0)
    layer = Linear4bit.from_linear(nn.Linear(96, 16))
    path = tmp_path / "layer.safetensors"
    save_file(layer.state_dict(), str(path))
    loaded = Linear4bit(96, 16)  # zeros until the state dict arrives
    assert loaded.dequantize().abs().sum() == 0
    loaded.load_state_dict(load_file(str(path)))
    x = torch.randn(4, 96)
    assert torch.equal(loaded(x), layer(x))
    single = Linear4bit(96, 16, double_quant=False)
    with pytest.raises(RuntimeError, match="Unexpected key"):  # a double-quantized state dict needs a double layer
        single.load_state_dict(load_file(str(path)))


def test_linear4bit_to_dtype_keeps_the_weights_and_computes_in_compute_dtype() -> None:
    torch.manual_seed(0)
    layer = Linear4bit.from_linear(nn.Linear(64, 8))
    x = torch.randn(3, 64)
    expected = layer(x)
    layer.double()  # float buffers become float64 exactly; the product stays in float32 (compute_dtype)
    assert layer.weight_codes.dtype == torch.uint8
    out = layer(x.double())
    assert out.dtype == torch.float64 and torch.equal(out, expected.double())
    bf16 = Linear4bit.from_linear(nn.Linear(64, 8), compute_dtype=torch.bfloat16)
    assert bf16.dequantize().dtype == torch.bfloat16 and bf16(x).dtype == torch.float32


def test_linear4bit_refuses_a_non_finite_bias_like_a_non_finite_weight() -> None:
    linear = nn.Linear(64, 4)
    with torch.no_grad():
        linear.bias[2] = float("nan")
    with pytest.raises(ValueError, match="linear's bias holds NaN or infinite values"):
        Linear4bit.from_linear(linear)
    model = blocks()
    with torch.no_grad():
        model["layers"][1].q_proj.bias[0] = float("inf")
    with pytest.raises(ValueError, match="bias holds NaN or infinite values"):
        quantize_linears(model, "q_proj")
    assert not any(isinstance(m, Linear4bit) for m in model.modules())  # nothing replaced


def test_linear4bit_rejects_bad_input() -> None:
    with pytest.raises(TypeError, match=r"torch\.nn\.Linear"):
        Linear4bit.from_linear(nn.Conv1d(4, 4, 1))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="in_features must be a positive integer"):
        Linear4bit(0, 4)
    with pytest.raises(TypeError, match="compute_dtype"):
        Linear4bit(64, 4, compute_dtype=torch.int32)
    with pytest.raises(TypeError, match="double_quant must be a bool"):
        Linear4bit(64, 4, double_quant=1)  # type: ignore[arg-type]
    layer = Linear4bit(64, 4)
    with pytest.raises(ValueError, match=r"x must have shape \(\.\.\., 64\)"):
        layer(torch.randn(2, 32))
    with pytest.raises(TypeError, match="floating-point"):
        layer(torch.ones(2, 64, dtype=torch.long))


class TinyLoRA(nn.Module):
    """The adapter contract lora.py relies on: y = base(x) + (x A^T B^T) * alpha / r, A (r, D_in), B (D_out, r)."""

    def __init__(self, base_layer: nn.Module, r: int = 4, lora_alpha: float = 8.0) -> None:
        super().__init__()
        self.base_layer = base_layer
        self.lora_A = nn.Parameter(torch.randn(r, base_layer.in_features) / base_layer.in_features**0.5)
        self.lora_B = nn.Parameter(torch.zeros(base_layer.out_features, r))  # B = 0: starts equal to the base
        self.scaling = lora_alpha / r

    def forward(self, x: Tensor) -> Tensor:
        return self.base_layer(x) + x @ self.lora_A.T @ self.lora_B.T * self.scaling  # (..., D_out)


def test_a_lora_adapter_trains_on_the_frozen_4bit_base() -> None:
    torch.manual_seed(0)
    teacher = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 8))
    student = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 8))
    student.load_state_dict(teacher.state_dict())
    with torch.no_grad():
        student[0].weight.add_(0.1 * torch.randn(64, 2) @ torch.randn(2, 64))  # a rank-2 drift from the teacher
    assert quantize_linears(student, ["0", "2"]) == ["0", "2"]
    student[0] = TinyLoRA(student[0])  # the adapter on the first layer; the frozen 4-bit head passes gradients back
    buffers = {name: b.clone() for name, b in student.named_buffers()}
    bias = student[2].bias.clone()
    trainable = [name for name, p in student.named_parameters() if p.requires_grad]
    assert trainable == ["0.lora_A", "0.lora_B"]

    x = torch.randn(256, 64)
    with torch.no_grad():
        target = teacher(x)
        assert torch.equal(student(x), student[2](torch.relu(student[0].base_layer(x))))  # B = 0: the base alone
    optimizer = torch.optim.Adam([p for p in student.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(40):
        loss = nn.functional.mse_loss(student(x), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]  # measured on 30 seeds: 0.05 to 0.11 of the first loss
    assert all(torch.equal(b, buffers[name]) for name, b in student.named_buffers())  # 4-bit weights untouched
    assert torch.equal(student[2].bias, bias)
    # Merging the adapter into the dequantized weight gives the same layer (what lora.py's merge computes).
    adapter = student[0]
    merged = adapter.base_layer.dequantize() + adapter.lora_B @ adapter.lora_A * adapter.scaling  # (D_out, D_in)
    with torch.no_grad():
        assert_close(adapter(x), x @ merged.T + adapter.base_layer.bias, scale=adapter(x).abs().max())


# ---- quantize_linears -------------------------------------------------------------------------------------------


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.q_proj = nn.Linear(64, 64)
        self.v_proj = nn.Linear(64, 64)
        self.norm = nn.LayerNorm(64)
        self.fc = nn.Linear(64, 64, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.norm(self.q_proj(x) + self.v_proj(x)))


def blocks() -> nn.Module:
    torch.manual_seed(0)
    return nn.ModuleDict({"layers": nn.ModuleList([Block(), Block()]), "head": nn.Linear(64, 4)})


@pytest.mark.numerics
def test_quantize_linears_replaces_the_matching_layers_in_place() -> None:
    model = blocks()
    weights = {name: m.weight.detach().clone() for name, m in model.named_modules() if isinstance(m, nn.Linear)}
    replaced = quantize_linears(model, ["q_proj", "layers.1.*"], double_quant=False)
    assert replaced == ["layers.0.q_proj", "layers.1.q_proj", "layers.1.v_proj", "layers.1.fc"]
    kinds = {name: type(m).__name__ for name, m in model.named_modules() if isinstance(m, nn.Linear | Linear4bit)}
    assert kinds == {
        "layers.0.q_proj": "Linear4bit",
        "layers.0.v_proj": "Linear",
        "layers.0.fc": "Linear",
        "layers.1.q_proj": "Linear4bit",
        "layers.1.v_proj": "Linear4bit",
        "layers.1.fc": "Linear4bit",
        "head": "Linear",
    }
    for name in replaced:
        expected = dequantize_nf4(quantize_nf4(weights[name]))
        assert torch.equal(model.get_submodule(name).dequantize(), expected)
    assert model.get_submodule("layers.1.fc").bias is None
    assert quantize_linears(model, "*_proj") == ["layers.0.v_proj"]  # a wildcard on the last component too


def test_quantize_linears_rejects_patterns_that_match_no_linear() -> None:
    model = blocks()
    with pytest.raises(ValueError, match=r"no nn.Linear matches \['proj'\]"):  # a bare name matches a whole component
        quantize_linears(model, "proj")
    with pytest.raises(ValueError, match=r"no nn.Linear matches \['norm'\]"):  # a LayerNorm is not a linear layer
        quantize_linears(model, ["q_proj", "norm"])
    assert all(isinstance(m, nn.Linear) for n, m in model.named_modules() if n.endswith("q_proj"))  # nothing changed
    with pytest.raises(ValueError, match="targets must hold at least one module name pattern"):
        quantize_linears(model, [])
    with pytest.raises(TypeError, match=r"targets must be a module name pattern \(a str\)"):
        quantize_linears(model, [3])  # type: ignore[list-item]
    with pytest.raises(TypeError, match=r"torch\.nn\.Module"):
        quantize_linears("model", "q_proj")  # type: ignore[arg-type]
    quantize_linears(model, "head")
    with pytest.raises(
        ValueError, match=r"targets 'head' matches only layers that are already Linear4bit \(\['head'\]\)"
    ):
        quantize_linears(model, "head")
    quantize_linears(model, "*_proj")
    with pytest.raises(ValueError, match=r"'\*_proj' matches only layers that are already Linear4bit"):
        quantize_linears(model, ["fc", "*_proj"])
    assert all(type(layer["fc"]) is nn.Linear for layer in [dict(b.named_children()) for b in model["layers"]])


def test_the_trainable_summary_counts_4bit_weights_as_frozen_parameters_as_peft_does() -> None:
    from llmdocs.finetuning.freezing import trainable_parameters_summary
    from llmdocs.finetuning.lora import apply_lora

    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 8))  # 2,080 + 264 parameters
    quantize_linears(model, ["0"])
    apply_lora(model, ["0"], r=2, lora_alpha=4)  # 2 x (64 + 32) trainable, everything else frozen
    summary = trainable_parameters_summary(model)
    assert (summary.trainable, summary.total) == (192, 64 * 32 + 32 + 264 + 192)  # the 4-bit weights: 64 x 32


def test_bad_targets_are_refused_by_name_and_change_nothing() -> None:
    model = blocks()
    for targets in (None, 5):
        with pytest.raises(TypeError, match=r"targets must be a module name pattern \(a str\) or a list of them"):
            quantize_linears(model, targets)  # type: ignore[arg-type]
    for targets in ("", ["q_proj", ""]):
        with pytest.raises(ValueError, match="targets holds an empty pattern"):
            quantize_linears(model, targets)
    with pytest.raises(ValueError, match=r"model is itself a linear layer .*Linear4bit\.from_linear"):
        quantize_linears(nn.Linear(64, 64), "*")
    assert not any(isinstance(m, Linear4bit) for m in model.modules())


def test_quantizing_after_apply_lora_is_refused_qlora_quantizes_first() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 8))
    apply_lora(model, ["0"], r=2, lora_alpha=4)
    for targets in ("*", "lora_A", "0.base_layer", "0"):  # the adapter's insides, or the adapted layer itself
        with pytest.raises(ValueError, match=r"selects LoRA adapters .* quantize_linears before apply_lora"):
            quantize_linears(model, targets)
    assert type(model[0].base_layer) is nn.Linear and type(model[2]) is nn.Linear  # nothing was replaced
    assert model[0].lora_A.weight.requires_grad and model[0].lora_B.weight.requires_grad
    assert quantize_linears(model, "2") == ["2"]  # a layer outside the adapters is still fine


def test_tied_weights_and_weights_read_by_the_parent_are_refused_like_apply_lora_refuses_them() -> None:
    model = GPT(GPTConfig.tiny())
    with pytest.raises(ValueError, match=r"lm_head shares its weight with .*tok_embed.* would untie them"):
        quantize_linears(model, "lm_head")
    with pytest.raises(ValueError, match="lm_head shares its weight"):  # a glob that takes the head too
        quantize_linears(model, "*")
    assert type(model.lm_head) is nn.Linear and model.lm_head.weight is model.tok_embed.weight  # still tied
    assert not any(isinstance(m, Linear4bit) for m in model.modules())  # an error replaces nothing
    attention = nn.MultiheadAttention(64, 4)
    with pytest.raises(ValueError, match=r"out_proj cannot become a Linear4bit: .*MultiheadAttention, reads out_proj"):
        quantize_linears(attention, "out_proj")
    assert type(attention.out_proj) is nn.modules.linear.NonDynamicallyQuantizableLinear


def test_a_weight_that_cannot_be_quantized_replaces_no_layer() -> None:
    model = blocks()
    with torch.no_grad():
        model["head"].weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinite"):
        quantize_linears(model, ["q_proj", "head"])  # the q_proj layers come first and quantize fine
    assert not any(isinstance(m, Linear4bit) for m in model.modules())


def test_meta_tensors_have_no_values_to_quantize() -> None:
    with torch.device("meta"):
        model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 8))
    with pytest.raises(ValueError, match=r"\['0'\] are on the meta device: a meta tensor has a shape but no values"):
        quantize_linears(model, "0")
    assert type(model[0]) is nn.Linear
    with pytest.raises(ValueError, match="linear's weight is on the meta device"):
        Linear4bit.from_linear(model[2])
    with pytest.raises(ValueError, match="weight is on the meta device"):
        quantize_nf4(model[0].weight)
    with pytest.raises(ValueError, match="Linear4bit cannot be built on the meta device"), torch.device("meta"):
        Linear4bit(64, 8)


def trained_adapters(model: nn.Module, std: float = 0.5) -> None:
    """Random B in every adapter, as training would leave it (B = 0 would make merging trivially right)."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, LoRALinear):
                module.lora_B.weight.normal_(0.0, std)


@pytest.mark.numerics
@pytest.mark.parametrize("architecture", ["sequential", "llama"])
def test_merge_lora_on_a_bfloat16_4bit_base_runs_and_matches_the_unmerged_model(architecture: str) -> None:
    """merge_lora builds the merged weight in the adapter's float32: it used to build it in the base's bfloat16
    compute dtype, and the next float32 product failed ("expected m1 and m2 to have the same dtype")."""
    torch.manual_seed(0)
    if architecture == "sequential":
        model: nn.Module = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 8))
        quantize_linears(model, ["0", "2"], compute_dtype=torch.bfloat16)
        names = apply_lora(model, ["0", "2"], r=2, lora_alpha=4)
        x, depth = torch.randn(16, 64), 2  # two quantized layers
    else:
        model = Llama(LlamaConfig.tiny())
        quantize_linears(model, "blocks.*", compute_dtype=torch.bfloat16)  # every linear layer of the blocks
        names = apply_lora(model, ["q_proj", "v_proj", "down_proj"], r=2, lora_alpha=4)
        x, depth = torch.randint(0, 64, (2, 6)), LlamaConfig.tiny().n_layers
    assert all(isinstance(model.get_submodule(n).base_layer, Linear4bit) for n in names)
    model.eval()
    with torch.no_grad():
        base_only = model(x)
        trained_adapters(model)
        unmerged = model(x)
        merge_lora(model)
        merged = model(x)
    for name in names:
        layer = model.get_submodule(name)
        assert type(layer) is nn.Linear and layer.weight.dtype == torch.float32 and not layer.weight.requires_grad
    assert merged.dtype == unmerged.dtype == torch.float32
    # The unmerged base computes in bfloat16 (x and W_0 x rounded to it): bfloat16's budget, per quantized layer.
    assert_close(merged.bfloat16(), unmerged.bfloat16(), depth=depth)
    with pytest.raises(AssertionError):  # the budget still sees the update: dropping it would fail the check
        assert_close(base_only.bfloat16(), unmerged.bfloat16(), depth=depth)


QUANTIZED = ["*proj", "fc1", "fc2"]  # the chapter's QLoRA recipe: every linear layer of the encoder
ADAPTED = ["q_proj", "v_proj"]


def qlora_bert() -> tuple[nn.Module, Tensor, Tensor]:
    """The chapter's recipe on a tiny BERT in float64 (an equivalence proof): quantize the encoder's linear layers,
    adapt q and v, train B; with the input ids and the adapted model's logits."""
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig.tiny(), n_classes=2).double().eval()
    quantize_linears(model.bert.layers, QUANTIZED, compute_dtype=torch.float64)
    apply_lora(model, ADAPTED, r=4, lora_alpha=8, modules_to_save=["classifier"])
    model.double()  # the float32 adapters too
    trained_adapters(model)
    ids = torch.randint(0, 64, (2, 6), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return model, ids, model(ids)


def linear_kinds(model: nn.Module) -> dict[str, str]:
    """The type of every linear layer of the first block, by its short name."""
    layer = model.bert.layers[0]
    return {
        name.rpartition(".")[2]: type(m).__name__
        for name, m in layer.named_modules()
        if name.endswith(("proj", "fc1", "fc2"))
    }


@pytest.mark.numerics
def test_merge_lora_on_the_qlora_recipe_merges_the_adapted_layers_and_keeps_the_others_4bit() -> None:
    """merge_lora(model): the adapted 4-bit layers become nn.Linear (dequantized W + update), the others stay
    Linear4bit, so the state dict loads into a model quantized the same way, not into a fresh float one."""
    model, ids, adapted = qlora_bert()
    merge_lora(model)
    assert linear_kinds(model) == {
        "q_proj": "Linear",
        "k_proj": "Linear4bit",
        "v_proj": "Linear",
        "out_proj": "Linear4bit",
        "fc1": "Linear4bit",
        "fc2": "Linear4bit",
    }
    with torch.no_grad():
        assert_equivalent(model(ids), adapted, depth=BertConfig.tiny().n_layers)
    fresh = BertForSequenceClassification(BertConfig.tiny(), n_classes=2).double().eval()
    with pytest.raises(RuntimeError, match=r"Unexpected key.*weight_codes"):  # 4-bit buffers a float model lacks
        fresh.load_state_dict(model.state_dict())
    quantize_linears(fresh.bert.layers, ["k_proj", "out_proj", "fc1", "fc2"], compute_dtype=torch.float64)
    fresh.load_state_dict(model.state_dict())  # strictly: the un-adapted layers quantized as in the merged model
    with torch.no_grad():
        assert_equivalent(fresh(ids), adapted, depth=BertConfig.tiny().n_layers)


@pytest.mark.numerics
def test_merge_lora_with_dequantize_gives_a_plain_model_a_fresh_one_loads() -> None:
    """merge_lora(model, dequantize=True): every 4-bit layer becomes a float nn.Linear; the state dict loads strictly
    into a fresh, unquantized model, which computes the adapted model's outputs."""
    model, ids, adapted = qlora_bert()
    merge_lora(model, dequantize=True)
    assert set(linear_kinds(model).values()) == {"Linear"} and not any(
        isinstance(m, Linear4bit) for m in model.modules()
    )
    assert all(p.dtype == torch.float64 for p in model.parameters())  # the dtype of the (cast) model
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["classifier.weight", "classifier.bias"]
    fresh = BertForSequenceClassification(BertConfig.tiny(), n_classes=2).double().eval()
    fresh.load_state_dict(model.state_dict())  # strictly
    with torch.no_grad():
        assert_equivalent(fresh(ids), adapted, depth=BertConfig.tiny().n_layers)


def test_merge_lora_dequantizes_in_the_layers_dtype_and_without_adapters_too() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 8, bias=False))
    quantize_linears(model, ["0", "2"], compute_dtype=torch.bfloat16)
    expected = [model[0].dequantize().float(), model[2].dequantize().float()]
    with pytest.raises(ValueError, match=r"no LoRA adapters to merge$"):  # a quantized model, nothing adapted
        merge_lora(model)
    assert merge_lora(model, dequantize=True) is model  # dequantize alone is allowed: nothing to merge, 4-bit to float
    assert [type(m).__name__ for m in model] == ["Linear", "ReLU", "Linear"] and model[2].bias is None
    for layer, weight in zip((model[0], model[2]), expected, strict=True):
        assert layer.weight.dtype == torch.float32 and torch.equal(layer.weight, weight)  # float32, the bias's dtype
        assert not layer.weight.requires_grad
    single = Linear4bit.from_linear(nn.Linear(64, 4))
    dense = merge_lora(single, dequantize=True)  # a lone quantized layer: its float twin
    assert type(dense) is nn.Linear and torch.equal(dense.weight, single.dequantize())
