"""QLoRA's frozen base: 4-bit NormalFloat (NF4) weights, block-wise absmax scales and double quantization.

QLoRA fine-tunes a model whose pretrained weights are stored in 4 bits and trains LoRA adapters in full precision
on top; gradients flow through the dequantized base weights into the adapters, never into the 4-bit codes. Each
block of ``block_size`` consecutive weights is scaled into [-1, 1] by its absolute maximum and every number is
replaced by the index of the nearest of 16 levels:

    code_i = argmin_j |w_i / absmax_b - q_j|,        w_hat_i = q[code_i] * absmax_b

NF4's levels ``q_j`` are quantiles of the standard normal distribution rescaled to [-1, 1]: pretrained weights are
close to normal, so each level is used about equally often, which a grid of 16 evenly spaced levels (the plain
4-bit contrast here) is not. Double quantization then stores the float32 block scales themselves in 8 bits
(blocks of 256, their mean subtracted), saving 0.37 bits per parameter at block size 64:

    bits/param = 4 + 32 / 64 = 4.5       ->       4 + 8 / 64 + 32 / (64 * 256) ~= 4.127

Our packed codes, float32 scales and dequantized values equal bitsandbytes' (``quantize_4bit(..., quant_type=
"nf4")``) bit for bit, nibble order included (the first weight in the high nibble). With double quantization the
mean and second-level scales are equal too, and our 8-bit scale codes are the nearest levels, where the CPU search
of bitsandbytes 0.50 picks a level a few 1e-5 farther for about 0.2 % of the scales. The contrasts for the
chapter: block-wise absmax int8 (`quantize_int8_absmax`) and the uniform 4-bit grid, compared with
`round_trip_errors` and `bytes_per_parameter`. [Linear4bit][llmdocs.finetuning.qlora.Linear4bit] is the frozen
4-bit linear layer a LoRA adapter wraps; `quantize_linears` swaps it in for chosen ``nn.Linear`` layers.

References:
    Dettmers, Pagnoni, Holtzman, Zettlemoyer, "QLoRA: Efficient Finetuning of Quantized LLMs", NeurIPS 2023,
    section 3 (4-bit NormalFloat, double quantization) and appendix E (the NF4 values); Dettmers, Lewis,
    Shleifer, Zettlemoyer, "8-bit Optimizers via Block-wise Quantization", ICLR 2022, section 2 (block-wise
    quantization, the dynamic 8-bit data type); bitsandbytes ``functional.quantize_4bit`` / ``dequantize_4bit``.

Examples:
    >>> w = torch.randn(8, 128)
    >>> q = quantize_nf4(w, block_size=64, double_quant=True)
    >>> q.codes.shape, q.absmax.dtype, q.bits_per_parameter  # 512 bytes of codes, 16 8-bit scales, 2 floats
    (torch.Size([512]), torch.uint8, 4.1875)
    >>> dequantize_nf4(q).shape
    torch.Size([8, 128])
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from llmdocs.finetuning.lora import (
    LoRALinear,
    _adapter_internals,
    _as_patterns,
    _check_model,
    _check_not_a_single_layer,
    _check_replaceable,
    module_name_matches,
)

__all__ = [
    "NF4_OFFSET",
    "SCHEMES",
    "Int8Weight",
    "Linear4bit",
    "NF4Weight",
    "RoundTripError",
    "bytes_per_parameter",
    "dequantize_int8_absmax",
    "dequantize_nf4",
    "dynamic_code_book",
    "nf4_code_book",
    "quantize_int8_absmax",
    "quantize_linears",
    "quantize_nf4",
    "round_trip",
    "round_trip_errors",
    "uniform4_code_book",
]

NF4_OFFSET = 0.9677083
"""The outermost probability of NF4's quantiles, 1 - (1/30 + 1/32) / 2 rounded as bitsandbytes writes it: the
quantiles at 0 and 1 are infinite, so the code book stops halfway between the last of 15 and of 16 equal bins."""

SCHEMES = ("int8", "nf4", "nf4-dq", "uniform4")
"""The round-trip schemes compared: block-wise absmax int8, NF4, NF4 with double quantization, uniform 4-bit."""

_TINY = torch.finfo(torch.float32).tiny  # an all-zero block divides by this instead of 0 (its codes mean 0)
_META = (
    "a meta tensor has a shape but no values, and quantization needs the values (each block's absmax, the nearest "
    "levels); load the weights first, e.g. model.to_empty(device='cpu') then model.load_state_dict(...)"
)


def nf4_code_book() -> Tensor:
    """The 16 levels of 4-bit NormalFloat: normal quantiles, 7 negative, an exact zero and 8 positive, in [-1, 1].

    q_+ = Phi^-1(linspace(offset, 1/2, 9)[:8]),   q_- = -Phi^-1(linspace(offset, 1/2, 8)[:7]),
    q = sort(q_-, 0, q_+) / max(q_+)

    with Phi^-1 the normal quantile function (``torch.special.ndtri``) and offset = 0.9677083. Two halves built
    separately make the code book asymmetric but give it an exact zero (zero-padded and zero-valued weights stay
    zero); the eighth positive level is the one a symmetric 4-bit grid would waste on a second zero. The
    probabilities are float32 (``torch.linspace``) as in bitsandbytes, so the table equals its hard-coded one.

    Returns:
        The sorted levels, shape (16,), float32; the first is -1 and the last 1.

    References:
        Dettmers et al., "QLoRA", 2023, section 3 ("4-bit NormalFloat Quantization") and appendix E.

    Examples:
        >>> q = nf4_code_book()
        >>> q.shape, q[0].item(), q[7].item(), q[15].item()
        (torch.Size([16]), -1.0, 0.0, 1.0)
        >>> [round(v, 4) for v in q[8:11].tolist()]
        [0.0796, 0.1609, 0.2461]
    """
    positive = torch.special.ndtri(torch.linspace(NF4_OFFSET, 0.5, 9)[:-1].double())  # (8,) quantiles > 0
    negative = -torch.special.ndtri(torch.linspace(NF4_OFFSET, 0.5, 8)[:-1].double())  # (7,) quantiles < 0
    levels = torch.cat([negative, torch.zeros(1, dtype=torch.float64), positive]).float().sort().values  # (16,)
    return levels / levels.max()


def uniform4_code_book() -> Tensor:
    """The plain 4-bit contrast to NF4: 16 evenly spaced levels -1 + 2 j / 15 in [-1, 1] (no exact zero).

    Returns:
        The levels, shape (16,), float32.

    Examples:
        >>> [round(v, 3) for v in uniform4_code_book()[6:10].tolist()]
        [-0.2, -0.067, 0.067, 0.2]
    """
    return torch.linspace(-1.0, 1.0, 16)


def dynamic_code_book() -> Tensor:
    """The 256 levels of bitsandbytes' signed dynamic 8-bit type, which double quantization stores scales in.

    A byte is a sign, then e zeros that set the decade 10^-e, a 1 that ends them, and 6 - e bits of linear fraction
    in [0.1, 1]: 2^(6-e) evenly spread values per decade, 127 positive values from 5.5e-7 to 0.993 (dense near
    zero, where a relative error of 1 % still needs fine steps), their negatives, 0 and 1.

    Returns:
        The sorted levels, shape (256,), float32.

    References:
        Dettmers, "8-Bit Approximations for Parallelism in Deep Learning", ICLR 2016 (dynamic tree quantization);
        Dettmers et al., "8-bit Optimizers via Block-wise Quantization", ICLR 2022, section 2.

    Examples:
        >>> levels = dynamic_code_book()
        >>> levels.shape, levels[-1].item(), round(levels[-2].item(), 4), levels[127].item(), levels[128].item()
        (torch.Size([256]), 1.0, 0.993, 0.0, 5.500000384017767e-07)
    """
    levels = [torch.tensor([0.0, 1.0])]
    for e in range(7):  # decade 10^-e holds 2^(6-e) fractions: the midpoints of linspace(0.1, 1, 2^(6-e) + 1)
        edges = torch.linspace(0.1, 1.0, 2 ** (6 - e) + 1)
        fractions = (edges[:-1] + edges[1:]) / 2 * 10.0**-e  # float32 products, as bitsandbytes rounds them
        levels += [fractions, -fractions]
    return torch.cat(levels).sort().values  # (256,)


@functools.cache
def _code_book(name: str, device: torch.device) -> Tensor:
    """The levels of ``"nf4"``, ``"dynamic"`` or ``"uniform4"`` on ``device``, built once; only read, never changed."""
    builders = {"nf4": nf4_code_book, "dynamic": dynamic_code_book, "uniform4": uniform4_code_book}
    return builders[name]().to(device)


def _check_weight(weight: object, name: str = "weight") -> Tensor:
    if not isinstance(weight, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(weight).__name__}")
    if not weight.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor (float32, bfloat16, ...), got {weight.dtype}")
    if weight.dim() == 0 or weight.numel() == 0:
        raise ValueError(f"{name} must have at least one dimension and one element, got shape {tuple(weight.shape)}")
    if weight.is_meta:
        raise ValueError(f"{name} is on the meta device: {_META}")
    if not torch.isfinite(weight).all():
        raise ValueError(f"{name} holds NaN or infinite values: their block's scale would be meaningless")
    return weight


def _check_block_size(block_size: object, name: str = "block_size") -> int:
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
        raise ValueError(f"{name} must be a positive integer (numbers per scale, e.g. 64), got {block_size!r}")
    return block_size


def _quantize_blocks(flat: Tensor, code_book: Tensor, block_size: int) -> tuple[Tensor, Tensor]:
    """Block-wise absmax quantization of ``flat`` (n,) to the indices (n,) of the nearest levels, and the scales.

    Multiplying by 1 / absmax and cutting at the midpoints between levels (a tie goes to the lower level) is how
    bitsandbytes rounds to 4 bits, so those indices agree with its own bit for bit.
    """
    n = flat.numel()
    n_blocks = -(-n // block_size)
    blocks = F.pad(flat.float(), (0, n_blocks * block_size - n)).view(n_blocks, block_size)  # (N, block_size)
    absmax = blocks.abs().amax(dim=1)  # (N,); padding zeros never raise it
    scaled = (blocks * (1.0 / absmax.clamp(min=_TINY)).unsqueeze(1)).clamp(-1.0, 1.0)  # (N, block_size) in [-1, 1]
    midpoints = (code_book[:-1] + code_book[1:]) / 2  # (L - 1,) decision boundaries
    codes = torch.bucketize(scaled.reshape(-1)[:n], midpoints).to(torch.uint8)  # (n,)
    return codes, absmax


def _dequantize_blocks(codes: Tensor, absmax: Tensor, code_book: Tensor, block_size: int) -> Tensor:
    """w_hat_i = code_book[codes_i] * absmax_b, (n,) float32."""
    n = codes.numel()
    values = F.pad(code_book[codes.long()], (0, absmax.numel() * block_size - n))  # (N * block_size,)
    return (values.view(-1, block_size) * absmax.float().unsqueeze(1)).reshape(-1)[:n]  # (n,)


@dataclass(frozen=True)
class NF4Weight:
    """A weight tensor stored as NF4: packed 4-bit codes and one scale per block (itself in 8 bits if double).

    Attributes:
        codes: uint8, shape (ceil(n / 2),): two codes per byte, weight 2i in the high nibble and 2i + 1 in the low
            one (an odd last byte is padded with the code of 0); n = the weight's number of elements.
        absmax: the scale of each block of ``block_size`` flattened weights, shape (ceil(n / block_size),):
            float32, or with double quantization uint8 indices into `dynamic_code_book`.
        shape: the weight's shape.
        block_size: weights per scale.
        dtype: the weight's dtype, which `dequantize_nf4` returns by default.
        absmax_scale: with double quantization, the float32 absmax of each block of ``absmax_block_size`` centred
            scales, shape (ceil(N / absmax_block_size),); otherwise None.
        absmax_offset: with double quantization, the mean of the float32 scales (float32, shape ()), added back.
        absmax_block_size: scales per second-level scale (bitsandbytes: 256).
    """

    codes: Tensor
    absmax: Tensor
    shape: torch.Size
    block_size: int
    dtype: torch.dtype = torch.float32
    absmax_scale: Tensor | None = None
    absmax_offset: Tensor | None = None
    absmax_block_size: int = 256

    def __post_init__(self) -> None:
        _check_block_size(self.block_size)
        _check_block_size(self.absmax_block_size, "absmax_block_size")
        n = math.prod(self.shape)
        n_blocks = -(-n // self.block_size)
        if self.codes.dtype != torch.uint8 or self.codes.shape != (-(-n // 2),):
            raise ValueError(
                f"codes must be uint8 of shape ({-(-n // 2)},), got {self.codes.dtype} {tuple(self.codes.shape)}"
            )
        if (self.absmax_scale is None) != (self.absmax_offset is None):
            raise ValueError("absmax_scale and absmax_offset come together (double quantization) or not at all")
        absmax_dtype = torch.uint8 if self.double_quant else torch.float32
        if self.absmax.dtype != absmax_dtype or self.absmax.shape != (n_blocks,):
            got = f"{self.absmax.dtype} {tuple(self.absmax.shape)}"
            raise ValueError(f"absmax must be {absmax_dtype} of shape ({n_blocks},), got {got}")

    @property
    def double_quant(self) -> bool:
        """Whether the block scales are stored in 8 bits."""
        return self.absmax_scale is not None

    @property
    def numel(self) -> int:
        """The number of weights."""
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        """Bytes of the stored tensors (codes, scales and second-level scales; the constant code books excluded)."""
        stored = [self.codes, self.absmax, self.absmax_scale, self.absmax_offset]
        return sum(t.nbytes for t in stored if t is not None)

    @property
    def bits_per_parameter(self) -> float:
        """8 * nbytes / numel: 4.5 at block size 64, about 4.127 with double quantization."""
        return 8 * self.nbytes / self.numel


def quantize_nf4(
    weight: Tensor, block_size: int = 64, double_quant: bool = False, absmax_block_size: int = 256
) -> NF4Weight:
    """Quantize ``weight`` to 4-bit NormalFloat in blocks of ``block_size`` numbers (row-major order).

    code_i = argmin_j |w_i / absmax_b - q_j|   with   absmax_b = max_{i in b} |w_i|,  q = nf4_code_book()

    With ``double_quant`` the float32 scales are centred on their mean c and stored as 8-bit codes of the
    dynamic type in blocks of ``absmax_block_size``, each block with its own float32 absmax (QLoRA's c_2 in FP8
    and c_1 in FP32): absmax_b ~= dynamic[a_b] * s_{b // 256} + c. The 4-bit codes are computed with the exact
    scales, as in bitsandbytes (``compress_statistics=True``). The mean is a float32 sum, as in bitsandbytes, so
    weights near float32's largest value (3.4e38) can overflow it, or the dequantized scales c + dynamic[a] s:
    such a weight is refused, rather than dequantized to inf and NaN (without ``double_quant`` every finite weight
    round-trips to finite values).

    Args:
        weight: any floating tensor of at least one element (quantized in float32, flattened row by row).
        block_size: numbers per scale (bitsandbytes accepts 32, 64, ..., 4096; QLoRA uses 64).
        double_quant: also quantize the scales (QLoRA's double quantization).
        absmax_block_size: scales per second-level scale (256 in QLoRA and bitsandbytes).

    Returns:
        The [NF4Weight][llmdocs.finetuning.qlora.NF4Weight].

    Raises:
        TypeError: ``weight`` is not a floating tensor, or ``double_quant`` not a bool.
        ValueError: ``weight`` is empty, 0-dimensional or not finite; a block size is not a positive integer;
            with ``double_quant``, block scales so large that their mean or their dequantized values overflow
            float32.

    References:
        Dettmers et al., "QLoRA", 2023, section 3 ("Block-wise k-bit Quantization", "Double Quantization").

    Examples:
        >>> w = torch.tensor([[0.5, -1.0, 0.25, 0.0]])
        >>> q = quantize_nf4(w, block_size=4)
        >>> q.codes.tolist(), q.absmax.tolist()  # codes 12, 0, 10, 7 in nibbles: 0xC0, 0xA7
        ([192, 167], [1.0])
        >>> [round(v, 4) for v in dequantize_nf4(q)[0].tolist()]
        [0.4407, -1.0, 0.2461, 0.0]
    """
    weight = _check_weight(weight)
    block_size = _check_block_size(block_size)
    absmax_block_size = _check_block_size(absmax_block_size, "absmax_block_size")
    if not isinstance(double_quant, bool):
        raise TypeError(f"double_quant must be a bool, got {type(double_quant).__name__} {double_quant!r}")
    flat = weight.detach().reshape(-1)  # (n,) row-major, as bitsandbytes flattens
    codes, absmax = _quantize_blocks(flat, _code_book("nf4", flat.device), block_size)  # (n,), (N,)
    codes = F.pad(codes, (0, codes.numel() % 2), value=7)  # (2 * ceil(n/2),): 7 is the code of 0
    packed = codes[0::2] << 4 | codes[1::2]  # (ceil(n / 2),) first weight in the high nibble
    if not double_quant:
        return NF4Weight(packed, absmax, weight.shape, block_size, weight.dtype)
    offset = absmax.mean()  # () centring the scales uses the 8 bits' sign; a float32 sum, as in bitsandbytes

    def overflow(what: str) -> ValueError:
        return ValueError(
            f"weight's block scales overflow float32 under double quantization: {what} (the largest |weight| is "
            f"{absmax.max().item():.4g}, float32's largest value {torch.finfo(torch.float32).max:.4g}); quantize "
            "with double_quant=False (float32 scales hold any finite weight) or rescale the weight"
        )

    if not torch.isfinite(offset):
        raise overflow("their float32 mean is not finite")
    absmax_codes, absmax_scale = _quantize_blocks(
        absmax - offset, _code_book("dynamic", flat.device), absmax_block_size
    )
    q = NF4Weight(packed, absmax_codes, weight.shape, block_size, weight.dtype, absmax_scale, offset, absmax_block_size)
    if not torch.isfinite(_absmax_of(q)).all():  # (N,): c + dynamic[a] s can round past float32's largest value
        raise overflow("a dequantized scale (mean + 8-bit level x second-level scale) is not finite")
    return q


def _absmax_of(q: NF4Weight) -> Tensor:
    """The float32 block scales of ``q``, (N,): stored, or dequantized from 8 bits and shifted back by the mean."""
    if not q.double_quant:
        return q.absmax.float()
    dynamic = _code_book("dynamic", q.absmax.device)
    return _dequantize_blocks(q.absmax, q.absmax_scale, dynamic, q.absmax_block_size) + q.absmax_offset.float()


def dequantize_nf4(q: NF4Weight, dtype: torch.dtype | None = None) -> Tensor:
    """The weight an [NF4Weight][llmdocs.finetuning.qlora.NF4Weight] stands for: w_hat_i = q[code_i] * absmax_b.

    Computed in float32 (each value is one product, as in bitsandbytes, so the results are equal bit for bit),
    then cast.

    Args:
        q: the quantized weight.
        dtype: the floating dtype to return; default ``q.dtype``, the dtype of the weight that was quantized.

    Returns:
        The dequantized weight, shape ``q.shape``.

    Raises:
        TypeError: ``q`` is not an ``NF4Weight`` or ``dtype`` not a floating dtype.

    Examples:
        >>> w = torch.randn(4, 64)
        >>> w_hat = dequantize_nf4(quantize_nf4(w))
        >>> w_hat.shape, bool(w_hat.abs().amax() == w.abs().amax())  # the largest |w| of a block is kept exactly
        (torch.Size([4, 64]), True)
    """
    if not isinstance(q, NF4Weight):
        raise TypeError(f"q must be an NF4Weight (from quantize_nf4), got {type(q).__name__}")
    dtype = q.dtype if dtype is None else dtype
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")
    codes = torch.stack([q.codes >> 4, q.codes & 0xF], dim=1).reshape(-1)[: q.numel]  # (n,) high nibble first
    flat = _dequantize_blocks(codes, _absmax_of(q), _code_book("nf4", codes.device), q.block_size)  # (n,)
    return flat.view(q.shape).to(dtype)


@dataclass(frozen=True)
class Int8Weight:
    """A weight stored as block-wise absmax int8: w_hat_i = codes_i * absmax_b / 127.

    Attributes:
        codes: int8 in [-127, 127], shape (n,).
        absmax: float32, one per block of ``block_size`` flattened weights, shape (ceil(n / block_size),).
        shape: the weight's shape.
        block_size: weights per scale.
        dtype: the weight's dtype, which `dequantize_int8_absmax` returns.
    """

    codes: Tensor
    absmax: Tensor
    shape: torch.Size
    block_size: int
    dtype: torch.dtype = torch.float32

    @property
    def nbytes(self) -> int:
        """Bytes of the stored tensors: 1 per weight and 4 per block."""
        return self.codes.nbytes + self.absmax.nbytes

    @property
    def bits_per_parameter(self) -> float:
        """8 * nbytes / numel: 8.5 at block size 64."""
        return 8 * self.nbytes / self.codes.numel()


def quantize_int8_absmax(weight: Tensor, block_size: int = 64) -> Int8Weight:
    """Block-wise absmax int8, the 8-bit contrast: codes_i = round(127 * w_i / absmax_b).

    Args:
        weight: any floating tensor of at least one element.
        block_size: numbers per scale.

    Returns:
        The [Int8Weight][llmdocs.finetuning.qlora.Int8Weight].

    Raises:
        TypeError: ``weight`` is not a floating tensor.
        ValueError: ``weight`` is empty, 0-dimensional or not finite, or ``block_size`` not a positive integer.

    References:
        Dettmers et al., "LLM.int8(): 8-bit Matrix Multiplication for Transformers at Scale", NeurIPS 2022,
        section 2 (absmax quantization).

    Examples:
        >>> q = quantize_int8_absmax(torch.tensor([0.5, -1.0, 0.25, 0.0]), block_size=4)
        >>> q.codes.tolist(), dequantize_int8_absmax(q).tolist()[:2]
        ([64, -127, 32, 0], [0.5039370059967041, -1.0])
    """
    weight = _check_weight(weight)
    block_size = _check_block_size(block_size)
    n = weight.numel()
    n_blocks = -(-n // block_size)
    blocks = F.pad(weight.detach().reshape(-1).float(), (0, n_blocks * block_size - n)).view(n_blocks, block_size)
    absmax = blocks.abs().amax(dim=1)  # (N,)
    codes = torch.round(blocks / absmax.clamp(min=_TINY).unsqueeze(1) * 127).to(torch.int8)  # (N, block_size)
    return Int8Weight(codes.reshape(-1)[:n], absmax, weight.shape, block_size, weight.dtype)


def dequantize_int8_absmax(q: Int8Weight) -> Tensor:
    """The weight an [Int8Weight][llmdocs.finetuning.qlora.Int8Weight] stands for, in its original dtype.

    Raises:
        TypeError: ``q`` is not an ``Int8Weight``.

    Examples:
        >>> w_hat = dequantize_int8_absmax(quantize_int8_absmax(torch.randn(3, 8, dtype=torch.bfloat16)))
        >>> w_hat.shape, w_hat.dtype
        (torch.Size([3, 8]), torch.bfloat16)
    """
    if not isinstance(q, Int8Weight):
        raise TypeError(f"q must be an Int8Weight (from quantize_int8_absmax), got {type(q).__name__}")
    n = q.codes.numel()
    values = F.pad(q.codes.float(), (0, q.absmax.numel() * q.block_size - n)).view(-1, q.block_size)  # (N, bs)
    return (values * (q.absmax / 127).unsqueeze(1)).reshape(-1)[:n].view(q.shape).to(q.dtype)


def round_trip(weight: Tensor, scheme: str, block_size: int = 64) -> Tensor:
    """``weight`` quantized with ``scheme`` and dequantized: what the model computes with, in ``weight``'s dtype.

    Args:
        weight: any floating tensor of at least one element.
        scheme: one of `SCHEMES`: ``"int8"`` (block-wise absmax), ``"nf4"``, ``"nf4-dq"`` (double quantization)
            or ``"uniform4"`` (16 evenly spaced levels with the same block absmax).
        block_size: numbers per scale, the same for every scheme.

    Returns:
        The dequantized weight, shape and dtype of ``weight``.

    Raises:
        ValueError: an unknown ``scheme``, or the errors of `quantize_nf4`.

    Examples:
        >>> w = torch.tensor([0.5, -1.0, 0.25, 0.0])
        >>> [round(v, 3) for v in round_trip(w, "uniform4", block_size=4).tolist()]  # no level for 0
        [0.467, -1.0, 0.2, -0.067]
    """
    if scheme == "int8":
        return dequantize_int8_absmax(quantize_int8_absmax(weight, block_size))
    if scheme in ("nf4", "nf4-dq"):
        return dequantize_nf4(quantize_nf4(weight, block_size, double_quant=scheme == "nf4-dq"))
    if scheme == "uniform4":
        weight = _check_weight(weight)
        levels = _code_book("uniform4", weight.device)
        codes, absmax = _quantize_blocks(weight.detach().reshape(-1), levels, _check_block_size(block_size))
        return _dequantize_blocks(codes, absmax, levels, block_size).view(weight.shape).to(weight.dtype)
    raise ValueError(f"scheme must be one of {SCHEMES}, got {scheme!r}")


class RoundTripError(NamedTuple):
    """How far a quantization round trip moves the weights.

    Attributes:
        mean_abs: mean |w - w_hat|.
        rmse: sqrt(mean (w - w_hat)^2).
        max_abs: max |w - w_hat|.
    """

    mean_abs: float
    rmse: float
    max_abs: float


def round_trip_errors(weight: Tensor, block_size: int = 64) -> dict[str, RoundTripError]:
    """The round-trip error of ``weight`` under each of `SCHEMES`, in float64 sums: the chapter's table.

    On normally distributed weights int8 < NF4 < uniform 4-bit: NF4 spends its 16 levels where normal weights
    are dense (on uniformly distributed weights the evenly spaced grid wins). NF4 with double quantization stays
    within a fraction of a percent of NF4: its 8-bit scales move by about 1 % at most. NF4's largest error is the
    larger one (its outermost gap, 0.72 to 1, is wide): the tails are rare, so it pays there and wins on average.

    Args:
        weight: any floating tensor of at least one element.
        block_size: numbers per scale, the same for every scheme.

    Returns:
        ``{scheme: RoundTripError(mean_abs, rmse, max_abs)}`` in the order of `SCHEMES`.

    Examples:
        >>> errors = round_trip_errors(torch.randn(64, 256))
        >>> errors["int8"].rmse < errors["nf4"].rmse < errors["uniform4"].rmse
        True
    """
    weight = _check_weight(weight)
    reference = weight.detach().double()
    errors = {}
    for scheme in SCHEMES:
        difference = (reference - round_trip(weight, scheme, block_size).double()).abs()
        errors[scheme] = RoundTripError(
            difference.mean().item(), difference.square().mean().sqrt().item(), difference.max().item()
        )
    return errors


def bytes_per_parameter(weight: Tensor, block_size: int = 64) -> dict[str, float]:
    """Bytes per parameter of ``weight`` stored as fp32, bf16, int8, NF4 and NF4 with double quantization.

    Measured from the stored tensors' ``nbytes``; for n parameters in whole blocks of 64 the closed forms are
    4, 2, 1 + 4/64, 1/2 + 4/64 = 0.5625 and 1/2 + 1/64 + 4/(64 * 256) + 4/n ~= 0.5158 (the last term: the
    mean of the scales).

    Args:
        weight: any floating tensor of at least one element.
        block_size: numbers per scale for int8 and NF4.

    Returns:
        ``{"fp32": ..., "bf16": ..., "int8": ..., "nf4": ..., "nf4-dq": ...}``.

    Examples:
        >>> {k: round(v, 4) for k, v in bytes_per_parameter(torch.randn(256, 256)).items()}
        {'fp32': 4.0, 'bf16': 2.0, 'int8': 1.0625, 'nf4': 0.5625, 'nf4-dq': 0.5159}
    """
    weight = _check_weight(weight).detach()
    n = weight.numel()
    stored = {
        "fp32": weight.float().nbytes,
        "bf16": weight.bfloat16().nbytes,
        "int8": quantize_int8_absmax(weight, block_size).nbytes,
        "nf4": quantize_nf4(weight, block_size).nbytes,
        "nf4-dq": quantize_nf4(weight, block_size, double_quant=True).nbytes,
    }
    return {scheme: nbytes / n for scheme, nbytes in stored.items()}


class Linear4bit(nn.Module):
    """A frozen linear layer whose weight is stored as NF4: y = x W_hat^T + b, W_hat dequantized at each call.

    The 4-bit codes and scales are buffers (``state_dict``, ``.to(device)`` and safetensors work; nothing is
    pickled) and the bias a frozen parameter: the layer has nothing to train. Gradients still flow through it to
    its input, which is all a LoRA adapter around it needs (QLoRA, section 3: gradients reach the adapters through
    the dequantized weights). `from_linear` quantizes a trained ``nn.Linear``; a layer built directly holds zeros,
    to load a ``state_dict`` into.

    Args:
        in_features: D_in.
        out_features: D_out.
        bias: whether the layer has a bias.
        block_size: weights per NF4 scale.
        double_quant: store the scales in 8 bits.
        compute_dtype: the dtype the weight is dequantized to and the product computed in; the output is cast
            back to the input's dtype, as bitsandbytes does.

    Shape:
        x (..., D_in) -> (..., D_out).

    Raises:
        TypeError: ``compute_dtype`` is not a floating dtype or ``double_quant`` not a bool.
        ValueError: a size or ``block_size`` is not a positive integer; the default device is ``meta`` (the
            4-bit buffers are quantized values, which a meta tensor does not have).

    References:
        Dettmers et al., "QLoRA", 2023, section 3 (eq. 5-6); bitsandbytes ``nn.Linear4bit``.

    Examples:
        >>> layer = Linear4bit.from_linear(nn.Linear(128, 16))
        >>> layer(torch.randn(2, 5, 128)).shape, sum(p.requires_grad for p in layer.parameters())
        (torch.Size([2, 5, 16]), 0)
        >>> sorted(layer.state_dict())
        ['bias', 'weight_absmax', 'weight_absmax_offset', 'weight_absmax_scale', 'weight_codes']
    """

    weight_codes: Tensor
    weight_absmax: Tensor

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        block_size: int = 64,
        double_quant: bool = True,
        compute_dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        for name, size in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(size, bool) or not isinstance(size, int) or size < 1:
                raise ValueError(f"{name} must be a positive integer, got {size!r}")
        if not isinstance(compute_dtype, torch.dtype) or not compute_dtype.is_floating_point:
            raise TypeError(
                f"compute_dtype must be a floating torch.dtype such as torch.float32, got {compute_dtype!r}"
            )
        self.in_features = in_features
        self.out_features = out_features
        self.block_size = _check_block_size(block_size)
        self.double_quant = double_quant
        self.compute_dtype = compute_dtype
        # zeros, not a random initialization: a frozen layer is only useful with trained weights loaded into it
        self.bias = nn.Parameter(torch.zeros(out_features), requires_grad=False) if bias else None
        zeros = torch.zeros(out_features, in_features)  # (D_out, D_in), on the default device
        if zeros.is_meta:
            raise ValueError(
                f"Linear4bit cannot be built on the meta device: its buffers are quantized values; {_META}"
            )
        self._store(zeros)

    def _store(self, weight: Tensor) -> None:
        """Quantize ``weight`` (D_out, D_in) into the buffers."""
        q = quantize_nf4(weight, self.block_size, double_quant=self.double_quant)
        self.register_buffer("weight_codes", q.codes)  # (D_out * D_in / 2,) uint8
        self.register_buffer("weight_absmax", q.absmax)  # (N,) float32, or uint8 with double quantization
        if q.double_quant:
            self.register_buffer("weight_absmax_scale", q.absmax_scale)  # (ceil(N / 256),) float32
            self.register_buffer("weight_absmax_offset", q.absmax_offset)  # () float32

    @classmethod
    def from_linear(
        cls,
        linear: nn.Linear,
        block_size: int = 64,
        double_quant: bool = True,
        compute_dtype: torch.dtype = torch.float32,
    ) -> Linear4bit:
        """Quantize a trained ``nn.Linear`` (its weight to NF4; its bias copied, frozen) on its device.

        Args:
            linear: the layer to quantize (left unchanged).
            block_size: weights per NF4 scale.
            double_quant: store the scales in 8 bits.
            compute_dtype: the dtype of the dequantized weight and of the product.

        Returns:
            The frozen ``Linear4bit``.

        Raises:
            TypeError: ``linear`` is not an ``nn.Linear``.
            ValueError: ``linear``'s weight is on the ``meta`` device (it has no values to quantize); its weight
                or bias holds NaN or inf (or the weight overflows double quantization, see `quantize_nf4`).

        Examples:
            >>> linear = nn.Linear(64, 4)
            >>> layer = Linear4bit.from_linear(linear, double_quant=False)
            >>> layer.dequantize().shape, layer.weight_absmax.shape  # one scale per 64 weights
            (torch.Size([4, 64]), torch.Size([4]))
        """
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"linear must be a torch.nn.Linear, got {type(linear).__name__}")
        if linear.weight.is_meta:
            raise ValueError(f"linear's weight is on the meta device: {_META}")
        if linear.bias is not None and not linear.bias.is_meta and not torch.isfinite(linear.bias).all():
            raise ValueError("linear's bias holds NaN or infinite values: the frozen layer would output them for good")
        layer = cls(
            linear.in_features,
            linear.out_features,
            bias=linear.bias is not None,
            block_size=block_size,
            double_quant=double_quant,
            compute_dtype=compute_dtype,
        )
        layer._store(linear.weight.detach())
        if linear.bias is not None:
            layer.bias = nn.Parameter(linear.bias.detach().clone(), requires_grad=False)
        return layer.to(linear.weight.device)

    @property
    def quantized_weight(self) -> NF4Weight:
        """The stored weight as an [NF4Weight][llmdocs.finetuning.qlora.NF4Weight] (views of the buffers)."""
        scale = getattr(self, "weight_absmax_scale", None)
        offset = getattr(self, "weight_absmax_offset", None)
        absmax = self.weight_absmax if self.double_quant else self.weight_absmax.float()  # float after .double()
        shape = torch.Size((self.out_features, self.in_features))
        return NF4Weight(self.weight_codes, absmax, shape, self.block_size, self.compute_dtype, scale, offset)

    def dequantize(self) -> Tensor:
        """The weight W_hat, (D_out, D_in), in ``compute_dtype``.

        Examples:
            >>> Linear4bit(8, 3, compute_dtype=torch.bfloat16).dequantize().dtype
            torch.bfloat16
        """
        return dequantize_nf4(self.quantized_weight, self.compute_dtype)

    def forward(self, x: Tensor) -> Tensor:
        """y = x W_hat^T + b in ``compute_dtype``, cast back to ``x``'s dtype: (..., D_in) -> (..., D_out)."""
        if not isinstance(x, Tensor) or not x.is_floating_point():
            raise TypeError(f"x must be a floating-point tensor, got {getattr(x, 'dtype', type(x).__name__)}")
        if x.dim() == 0 or x.shape[-1] != self.in_features:
            raise ValueError(f"x must have shape (..., {self.in_features}), got {tuple(x.shape)}")
        bias = None if self.bias is None else self.bias.to(self.compute_dtype)
        return F.linear(x.to(self.compute_dtype), self.dequantize(), bias).to(x.dtype)  # (..., D_out)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, "
            f"block_size={self.block_size}, double_quant={self.double_quant}, compute_dtype={self.compute_dtype}"
        )


def quantize_linears(
    model: nn.Module,
    targets: str | Iterable[str],
    block_size: int = 64,
    double_quant: bool = True,
    compute_dtype: torch.dtype = torch.float32,
) -> list[str]:
    """Replace the chosen ``nn.Linear`` layers of ``model`` by frozen [Linear4bit][llmdocs.finetuning.qlora.Linear4bit]
    layers, in place: QLoRA's first step, before the adapters are added.

    The order matters: quantize the base, then [apply_lora][llmdocs.finetuning.lora.apply_lora] adds float32
    adapters on top. A pattern that selects a LoRA adapter or its insides (``lora_A``, ``lora_B``, ``base_layer``)
    is refused: quantizing the adapters would leave nothing to train. Layers the swap would break are refused as
    [apply_lora][llmdocs.finetuning.lora.apply_lora] refuses them: a weight tied to another module's (an output
    head sharing the token embedding: the two would silently become different tensors), and a layer whose parent
    reads its ``weight`` directly (``nn.MultiheadAttention``'s ``out_proj``).

    Args:
        model: the model (its weights loaded: a model on the ``meta`` device has no values to quantize).
        targets: glob pattern(s) on dotted module names (``"blocks.*.attn.q_proj"``), which also match the last
            components alone (``"q_proj"``, ``"*_proj"``), as peft's ``target_modules`` do
            ([module_name_matches][llmdocs.finetuning.lora.module_name_matches]). Modules that are not
            ``nn.Linear`` are skipped, but every pattern must select at least one ``nn.Linear`` (a pattern that
            selects only ``Linear4bit`` layers is refused as already quantized).
        block_size: weights per NF4 scale.
        double_quant: store the scales in 8 bits.
        compute_dtype: the dtype of the dequantized weights and of the product.

    Returns:
        The names of the replaced layers, in ``named_modules()`` order.

    Raises:
        TypeError: ``model`` is not an ``nn.Module``; ``targets`` not a pattern (str) or a list of them.
        ValueError: no pattern given, an empty pattern, or a pattern that matches no ``nn.Linear`` (a typo would
            otherwise leave a layer in full precision) or only layers that are already ``Linear4bit``; a selected
            layer whose weight or bias is not finite; ``model`` itself a linear layer (use
            ``Linear4bit.from_linear``); a pattern that selects LoRA adapters (quantize before ``apply_lora``); a
            tied weight or a layer whose parent reads its weight; a selected layer on the ``meta`` device. Nothing
            is replaced when an error is raised.

    Examples:
        >>> model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 2))
        >>> quantize_linears(model, "0")
        ['0']
        >>> type(model[0]).__name__, type(model[2]).__name__
        ('Linear4bit', 'Linear')
    """
    _check_model(model)
    patterns = _as_patterns("targets", targets)
    _check_not_a_single_layer(
        model,
        "quantize_linears replaces the linear submodules of a model, selected by name; quantize a single layer with "
        "Linear4bit.from_linear(layer)",
    )
    inside = _adapter_internals(model)
    modules = [(name, m) for name, m in model.named_modules() if name]
    for pattern in patterns:
        adapters = [
            n for n, m in modules if module_name_matches(n, pattern) and (n in inside or isinstance(m, LoRALinear))
        ]
        if adapters:
            raise ValueError(
                f"targets {pattern!r} selects LoRA adapters or their insides ({adapters[:3]}): quantize_linears "
                "before apply_lora, QLoRA's order (quantize the frozen base, then add float32 adapters on top; "
                "quantized adapters would leave nothing to train)"
            )
    linears = [(name, m) for name, m in modules if isinstance(m, nn.Linear)]
    chosen = [(name, m) for name, m in linears if any(module_name_matches(name, p) for p in patterns)]
    unmatched = [p for p in patterns if not any(module_name_matches(name, p) for name, _ in linears)]
    for pattern in unmatched:
        done = [name for name, m in modules if isinstance(m, Linear4bit) and module_name_matches(name, pattern)]
        if done:
            raise ValueError(
                f"targets {pattern!r} matches only layers that are already Linear4bit ({done[:3]}): they are "
                "quantized; leave the pattern out (or target the nn.Linear layers still in full precision)"
            )
    if unmatched:
        names = [name for name, _ in linears][:6]
        raise ValueError(f"no nn.Linear matches {unmatched}; the linear layers are named like {names}")
    on_meta = [name for name, linear in chosen if linear.weight.is_meta]
    if on_meta:
        raise ValueError(f"{on_meta[:3]} are on the meta device: {_META}")
    _check_replaceable(
        model,
        [name for name, _ in chosen],
        "Linear4bit",
        "quantizing it would untie them (a 4-bit copy in one module, the float weight in the other)",
    )
    quantized = [Linear4bit.from_linear(linear, block_size, double_quant, compute_dtype) for _, linear in chosen]
    for (name, _), layer in zip(chosen, quantized, strict=True):  # all quantized first: an error replaces nothing
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child, layer)
    return [name for name, _ in chosen]
