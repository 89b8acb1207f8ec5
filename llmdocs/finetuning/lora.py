"""LoRA: fine-tune a frozen linear layer through a trainable low-rank update.

    h = W_0 x + (alpha / R) B A x,     A (R, D_in),  B (D_out, R),  R << min(D_in, D_out)

The pretrained weight W_0 (D_out, D_in) stays frozen; only A and B train, R (D_in + D_out) numbers per adapted
matrix instead of D_in D_out. A starts random and B at zero, so a new adapter changes nothing: the model starts
exactly where pretraining left it (Hu et al., 2021, section 4.1). The factor ``scaling = alpha / R`` keeps the
size of the update roughly independent of R, so a learning rate tuned at one rank works at another.

After training, ``merge()`` adds ``scaling * B A`` into W_0: the adapted model then costs exactly what the base
costs, with no extra latency (section 4.1), and ``unmerge()`` subtracts it again. The names follow Hugging Face
peft's ``LoraLayer`` (``base_layer``, ``lora_A``, ``lora_B``, ``lora_dropout``, ``r``, ``lora_alpha``,
``scaling``, ``merged``), and the same A and B give the same outputs as peft's (tests/test_peft_lora.py).

The base may also be a quantized linear layer (QLoRA's 4-bit base): any module with ``in_features``,
``out_features``, ``bias``, ``forward(x)`` and ``dequantize() -> (D_out, D_in)``. Its adapter is float32;
``merge()`` refuses it (adding the update into 4-bit codes would re-quantize the weight and lose it), and
[merge_lora][llmdocs.finetuning.lora.merge_lora] replaces it with a plain ``nn.Linear`` instead
(``dequantize=True`` also turns the quantized layers without an adapter into ``nn.Linear``).

References:
    Hu et al., "LoRA: Low-Rank Adaptation of Large Language Models", ICLR 2022, section 4.1 (the update, its
    initialisation and scaling, merging) and section 7.1 (which weight matrices to adapt).
    Hugging Face peft, ``peft.tuners.lora.layer.Linear``.

Examples:
    >>> import torch
    >>> from torch import nn
    >>> _ = torch.manual_seed(0)
    >>> model = nn.Sequential(nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 4))
    >>> x = torch.randn(3, 16)
    >>> before = model(x)
    >>> from llmdocs.finetuning.freezing import trainable_parameters_summary
    >>> apply_lora(model, targets=["0"], r=2, lora_alpha=4)
    ['0']
    >>> torch.equal(model(x), before)  # B = 0: a new adapter changes nothing
    True
    >>> print(trainable_parameters_summary(model))  # 2 * (16 + 16) adapter weights
    trainable params: 64 || all params: 404 || trainable%: 15.8416
"""

from __future__ import annotations

import contextlib
import fnmatch
import math
import numbers
import statistics
import warnings
from collections.abc import Iterable, Iterator, Mapping
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from llmdocs.finetuning.freezing import freeze
from llmdocs.profiling import interleaved_times

__all__ = [
    "INITS",
    "ORDERS",
    "LoRAFlops",
    "LoRALinear",
    "LoRATimes",
    "apply_lora",
    "count_lora_parameters",
    "disable_adapters",
    "load_lora_state_dict",
    "lora_delta",
    "lora_flops",
    "lora_num_parameters",
    "lora_state_dict",
    "merge_lora",
    "module_name_matches",
    "target_module_names",
    "time_lora_orders",
]

Order = Literal["factored", "dense"]
ORDERS: tuple[str, ...] = ("factored", "dense")
"""The two ways to compute the update B A x: ``"factored"`` is B (A x), ``"dense"`` is (B A) x."""

INITS: tuple[str, ...] = ("kaiming", "gaussian")
"""Initialisations of A (B is always zero): peft's default, and the paper's Gaussian."""


def _is_quantized(layer: nn.Module) -> bool:
    """A quantized linear layer: it can ``dequantize()`` its weight (the duck type of QLoRA's 4-bit base)."""
    return all(hasattr(layer, name) for name in ("in_features", "out_features", "bias")) and callable(
        getattr(layer, "dequantize", None)
    )


def _is_linear(layer: nn.Module) -> bool:
    """A layer LoRA can adapt: an ``nn.Linear`` or a quantized linear layer."""
    return isinstance(layer, nn.Linear) or _is_quantized(layer)


def _check_positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= 1, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def _check_sizes(**sizes: object) -> list[int]:
    """Each keyword argument as an int >= 1, in order (errors name the argument)."""
    return [_check_positive_int(name, value) for name, value in sizes.items()]


def _check_settings(r: object, lora_alpha: object, lora_dropout: object, init: object) -> None:
    """The four hyper-parameters of an adapter, with errors that name the argument."""
    _check_positive_int("r", r)
    if isinstance(lora_alpha, bool) or not isinstance(lora_alpha, numbers.Real):
        raise TypeError(f"lora_alpha must be a number > 0, got {type(lora_alpha).__name__} {lora_alpha!r}")
    if not (math.isfinite(lora_alpha) and lora_alpha > 0):
        raise ValueError(f"lora_alpha must be a finite number > 0 (scaling = lora_alpha / r), got {lora_alpha!r}")
    if isinstance(lora_dropout, bool) or not isinstance(lora_dropout, numbers.Real):
        raise TypeError(f"lora_dropout must be a probability in [0, 1), got {type(lora_dropout).__name__}")
    if not 0 <= lora_dropout < 1:
        raise ValueError(f"lora_dropout must be a probability in [0, 1), got {lora_dropout!r}")
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")


def _check_rank(r: int, layer: nn.Module, name: str) -> None:
    """Refuse a rank R above min(D_in, D_out) of ``layer``; ``name`` says which layer in the message.

    B A is a product through R dimensions of a (D_out, D_in) matrix: its rank is at most min(D_in, D_out), so a
    larger R cannot raise it, and its R (D_in + D_out) weights outnumber the D_in D_out of the matrix itself.
    """
    d_in, d_out = layer.in_features, layer.out_features
    largest = min(d_in, d_out)
    if r > largest:
        raise ValueError(
            f"r={r} exceeds min(in_features, out_features) = {largest} of {name}, a {type(layer).__name__} with "
            f"weight (D_out, D_in) = ({d_out}, {d_in}): B A has rank at most {largest}, so a larger R cannot raise "
            f"the update's rank, and its R (D_in + D_out) = {r * (d_in + d_out)} adapter weights outnumber the "
            f"matrix's {d_in * d_out}; use r <= {largest}"
        )


def _autocast_enabled(device_type: str) -> bool:
    """Whether autocast is on for ``device_type`` (which casts inside each product, so mixed dtypes are fine)."""
    try:
        return torch.is_autocast_enabled(device_type)
    except RuntimeError:  # a device type autocast does not know, e.g. meta
        return False


def lora_delta(x: Tensor, A: Tensor, B: Tensor, scaling: float, order: Order = "factored") -> Tensor:
    """The low-rank update ``scaling * B A x``, in one of its two evaluation orders.

        factored:  B (A x)   -- 2 N R (D_in + D_out) FLOPs, never forms a D_out x D_in matrix
        dense:     (B A) x   -- 2 R D_in D_out to form B A, then 2 N D_in D_out to apply it

    Both are the same function; see [lora_flops][llmdocs.finetuning.lora.lora_flops] for when each is cheaper.

    Args:
        x: inputs (..., D_in).
        A: the down-projection (R, D_in).
        B: the up-projection (D_out, R).
        scaling: alpha / R.
        order: ``"factored"`` or ``"dense"``.

    Returns:
        The update (..., D_out).

    Raises:
        ValueError: an unknown ``order``, or shapes that do not chain (A's columns vs x, B's columns vs A's rows).

    Examples:
        >>> _ = torch.manual_seed(0)
        >>> x, A, B = torch.randn(5, 8, dtype=torch.float64), torch.randn(2, 8).double(), torch.randn(6, 2).double()
        >>> from llmdocs.testing import assert_equivalent
        >>> assert_equivalent(lora_delta(x, A, B, 0.5), lora_delta(x, A, B, 0.5, order="dense"))
        >>> lora_delta(x, A, B, 0.5).shape
        torch.Size([5, 6])
    """
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS} (B(Ax) or (BA)x), got {order!r}")
    if A.dim() != 2 or B.dim() != 2 or A.shape[1] != x.shape[-1] or B.shape[1] != A.shape[0]:
        raise ValueError(
            f"shapes do not chain: x (..., {x.shape[-1]}), A {tuple(A.shape)} must be (R, D_in), "
            f"B {tuple(B.shape)} must be (D_out, R)"
        )
    if order == "factored":
        return F.linear(F.linear(x, A), B) * scaling  # (..., R) then (..., D_out)
    return F.linear(x, (B @ A) * scaling)  # B A: (D_out, D_in), then (..., D_out)


class LoRAFlops(NamedTuple):
    """Floating-point operations (2 per multiply-add) of the update for N tokens, and of the base product.

    Attributes:
        factored: B (A x): 2 N R (D_in + D_out).
        dense: (B A) x: 2 R D_in D_out + 2 N D_in D_out.
        base: W_0 x: 2 N D_in D_out, for scale.
    """

    factored: int
    dense: int
    base: int


def lora_flops(n_tokens: int, d_in: int, d_out: int, r: int) -> LoRAFlops:
    """FLOPs of the two evaluation orders of the LoRA update over ``n_tokens`` inputs (matrix products only).

    Counting a multiply-add as 2 FLOPs, a product of an (m, k) by a (k, n) matrix costs 2 m k n:

    - B (A x): A x is (N, D_in) by (D_in, R): 2 N D_in R; then (N, R) by (R, D_out): 2 N R D_out.
      Together **2 N R (D_in + D_out)**.
    - (B A) x: B A is (D_out, R) by (R, D_in): 2 R D_in D_out; applying it is (N, D_in) by (D_in, D_out):
      2 N D_in D_out. Together **2 D_in D_out (R + N)**, at least as much as the base product W_0 x itself.

    Dividing both counts by 2 N R D_in D_out, the dense order is cheaper only when
    1/D_in + 1/D_out > 1/R + 1/N: with R below min(D_in, D_out) / 2, as every LoRA rank is, never. For a square
    D x D matrix the factored update costs 2R/D of the base product (1/48 at D = 768, R = 8), the dense one more
    than the base product itself. The dense order pays off only when B A is formed once and reused for every
    token, i.e. merged into W_0 (``LoRALinear.merge``), after which the update costs nothing per token.

    Args:
        n_tokens: N, the number of input vectors (batch times sequence length).
        d_in: D_in of the adapted matrix.
        d_out: D_out.
        r: the rank R.

    Returns:
        ``LoRAFlops(factored, dense, base)``.

    Raises:
        TypeError, ValueError: an argument that is not an integer >= 1.

    Examples:
        >>> lora_flops(n_tokens=512, d_in=768, d_out=768, r=8)
        LoRAFlops(factored=12582912, dense=613416960, base=603979776)
        >>> costs = lora_flops(512, 768, 768, 8)
        >>> round(costs.base / costs.factored), round(costs.dense / costs.factored)  # D / 2R, (R + N) D / 2 N R
        (48, 49)
    """
    N, d_in, d_out, r = _check_sizes(n_tokens=n_tokens, d_in=d_in, d_out=d_out, r=r)
    return LoRAFlops(
        factored=2 * N * r * (d_in + d_out),
        dense=2 * r * d_in * d_out + 2 * N * d_in * d_out,
        base=2 * N * d_in * d_out,
    )


class LoRATimes(NamedTuple):
    """Median seconds of one call: the update in both orders, and the base product W_0 x."""

    factored: float
    dense: float
    base: float


def time_lora_orders(n_tokens: int, d_in: int, d_out: int, r: int, repeats: int = 5) -> LoRATimes:
    """Time the two evaluation orders of the update, and the base product, on random float32 tensors.

    The three calls are interleaved ([interleaved_times][llmdocs.profiling.interleaved_times]) so that a change
    of machine load affects all of them alike. Compare with [lora_flops][llmdocs.finetuning.lora.lora_flops]: a
    small product is dominated by per-call overhead, so the measured ratio approaches the FLOP ratio only at
    realistic sizes (N in the hundreds, D in the hundreds).

    Args:
        n_tokens: N.
        d_in: D_in.
        d_out: D_out.
        r: the rank R.
        repeats: timed rounds (the median is returned).

    Returns:
        ``LoRATimes(factored, dense, base)`` in seconds.

    Examples:
        >>> times = time_lora_orders(n_tokens=8, d_in=16, d_out=16, r=2, repeats=1)
        >>> all(t > 0 for t in times)
        True
    """
    N, d_in, d_out, r = _check_sizes(n_tokens=n_tokens, d_in=d_in, d_out=d_out, r=r)
    generator = torch.Generator().manual_seed(0)  # the global random state is left alone
    x = torch.randn(N, d_in, generator=generator)  # (N, D_in)
    A = torch.randn(r, d_in, generator=generator)  # (R, D_in)
    B = torch.randn(d_out, r, generator=generator)  # (D_out, R)
    W0 = torch.randn(d_out, d_in, generator=generator)  # (D_out, D_in)
    calls = {
        "factored": lambda: lora_delta(x, A, B, 1.0, "factored"),
        "dense": lambda: lora_delta(x, A, B, 1.0, "dense"),
        "base": lambda: F.linear(x, W0),
    }
    with torch.no_grad():
        times, _ = interleaved_times(calls, repeats)
    return LoRATimes(*(statistics.median(times[name]) for name in LoRATimes._fields))


class LoRALinear(nn.Module):
    """A frozen linear layer plus a trainable low-rank update: h = W_0 x + (alpha / R) B A dropout(x).

    A is initialised as nn.Linear's default (Kaiming-uniform with a = sqrt(5), peft's default) or, with
    ``init="gaussian"``, from N(0, 1/R^2) (the paper's Gaussian, with peft's standard deviation 1/R); B is zero, so
    a new adapter leaves the layer's outputs bit for bit unchanged. Dropout acts on the adapter's input only; the
    base path never sees it. The adapter's dtype and device follow the base weight (float32 for a quantized
    base).

    The rank may not exceed min(D_in, D_out). peft accepts any rank; we refuse a larger one because B A, a product
    through R dimensions, has rank at most min(D_in, D_out) whatever R is: the extra dimensions cannot raise the
    update's rank, and the R (D_in + D_out) adapter weights would outnumber the D_in D_out weights of the matrix
    (fine-tune the matrix itself instead).

    Args:
        base_layer: the pretrained layer: an ``nn.Linear`` or a quantized linear layer (``in_features``,
            ``out_features``, ``bias``, ``forward`` and ``dequantize()``). Its parameters are frozen.
        r: the rank R >= 1.
        lora_alpha: alpha > 0; the update is scaled by alpha / R.
        lora_dropout: dropout probability on the adapter's input, in [0, 1).
        init: ``"kaiming"`` or ``"gaussian"`` (A's initialisation).

    Attributes:
        base_layer: the wrapped layer W_0.
        lora_A: ``nn.Linear(D_in, R, bias=False)``, weight (R, D_in).
        lora_B: ``nn.Linear(R, D_out, bias=False)``, weight (D_out, R), zero at first.
        lora_dropout: ``nn.Dropout`` (``nn.Identity`` for probability 0, as in peft).
        scaling: alpha / R.
        merged: whether the update is currently added into the base weight.
        disabled: whether the forward skips the update (the base layer alone), set by
            [disable_adapters][llmdocs.finetuning.lora.disable_adapters].
        order: how the unmerged forward computes the update, ``"factored"`` (B(Ax), default) or ``"dense"``.

    Shape:
        x (..., D_in) -> (..., D_out).

    Raises:
        TypeError: ``base_layer`` is not a linear layer; a hyper-parameter of the wrong type; at the call, an ``x``
            that is not a floating-point tensor, or (on an ``nn.Linear`` base, outside autocast) whose dtype is not
            the base weight's.
        ValueError: ``r`` < 1 or above min(D_in, D_out), ``lora_alpha`` <= 0, ``lora_dropout`` outside [0, 1), an
            unknown ``init``; at the call, an ``x`` whose last dimension is not D_in.

    References:
        Hu et al., "LoRA: Low-Rank Adaptation of Large Language Models", ICLR 2022, section 4.1.

    Examples:
        >>> _ = torch.manual_seed(0)
        >>> layer = LoRALinear(nn.Linear(8, 6), r=2, lora_alpha=4)
        >>> layer.lora_A.weight.shape, layer.lora_B.weight.shape, layer.scaling  # (R, D_in), (D_out, R)
        (torch.Size([2, 8]), torch.Size([6, 2]), 2.0)
        >>> x = torch.randn(3, 8)
        >>> torch.equal(layer(x), layer.base_layer(x))  # B = 0
        True
        >>> _ = nn.init.normal_(layer.lora_B.weight)  # as if trained
        >>> unmerged = layer(x)
        >>> layer.merge()
        >>> from llmdocs.testing import assert_close
        >>> assert_close(layer(x), unmerged)  # W_0 + scaling B A: the same outputs, one product
    """

    def __init__(
        self,
        base_layer: nn.Module,
        r: int,
        lora_alpha: float,
        lora_dropout: float = 0.0,
        init: Literal["kaiming", "gaussian"] = "kaiming",
    ) -> None:
        super().__init__()
        if not isinstance(base_layer, nn.Module) or not _is_linear(base_layer):
            raise TypeError(
                "base_layer must be an nn.Linear or a quantized linear layer (in_features, out_features, bias, "
                f"dequantize()), got {type(base_layer).__name__}"
            )
        _check_settings(r, lora_alpha, lora_dropout, init)
        _check_rank(r, base_layer, "base_layer")
        self.base_layer = freeze(base_layer)
        self.in_features: int = base_layer.in_features
        self.out_features: int = base_layer.out_features
        self.r, self.lora_alpha, self.init = int(r), lora_alpha, init
        self.scaling = lora_alpha / r
        self.order: Order = "factored"
        self.merged = False
        self.disabled = False
        dtype, device = self._adapter_dtype_device()
        self.lora_dropout: nn.Module = nn.Dropout(lora_dropout) if lora_dropout > 0 else nn.Identity()
        self.lora_A = nn.Linear(self.in_features, self.r, bias=False, dtype=dtype, device=device)  # (R, D_in)
        self.lora_B = nn.Linear(self.r, self.out_features, bias=False, dtype=dtype, device=device)  # (D_out, R)
        self.reset_lora_parameters()

    @property
    def quantized(self) -> bool:
        """Whether the base is a quantized linear layer (it cannot be merged into in place)."""
        return not isinstance(self.base_layer, nn.Linear) or _is_quantized(self.base_layer)

    def _adapter_dtype_device(self) -> tuple[torch.dtype, torch.device]:
        tensors = [*self.base_layer.parameters(), *self.base_layer.buffers()]
        device = tensors[0].device if tensors else torch.device("cpu")
        if self.quantized:
            return torch.float32, device  # QLoRA: a 4-bit base, a float32 adapter
        return self.base_layer.weight.dtype, self.base_layer.weight.device

    def reset_lora_parameters(self) -> None:
        """Initialise A (Kaiming-uniform or Gaussian, per ``init``) and set B to zero (section 4.1)."""
        if self.init == "kaiming":
            nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))  # nn.Linear's default, peft's default
        else:
            nn.init.normal_(self.lora_A.weight, std=1 / self.r)  # peft's init_lora_weights="gaussian"
        nn.init.zeros_(self.lora_B.weight)

    def delta_weight(self) -> Tensor:
        """The update as a matrix, scaling * B A: (D_out, D_in), in the adapter's dtype (peft: get_delta_weight).

        Examples:
            >>> layer = LoRALinear(nn.Linear(5, 3), r=2, lora_alpha=2)
            >>> layer.delta_weight().shape, torch.count_nonzero(layer.delta_weight()).item()  # B = 0 at first
            (torch.Size([3, 5]), 0)
        """
        return (self.lora_B.weight @ self.lora_A.weight) * self.scaling  # (D_out, R) @ (R, D_in)

    def forward(self, x: Tensor) -> Tensor:
        """W_0 x + scaling * B A dropout(x) (only W_0 x when merged or disabled); x (..., D_in) -> (..., D_out).

        Raises:
            TypeError: ``x`` is not a floating-point tensor; on an ``nn.Linear`` base, ``x``'s dtype is not the
                weight's (a quantized base casts its input itself, and so does autocast).
            ValueError: ``x``'s last dimension is not ``in_features``.
        """
        if not isinstance(x, Tensor) or not x.is_floating_point():
            raise TypeError(f"x must be a floating-point tensor, got {getattr(x, 'dtype', type(x).__name__)}")
        if x.dim() == 0 or x.shape[-1] != self.in_features:
            raise ValueError(f"x must have shape (..., {self.in_features}), got {tuple(x.shape)}")
        if not self.quantized:
            dtype = self.base_layer.weight.dtype
            if x.dtype != dtype and not _autocast_enabled(x.device.type):
                raise TypeError(
                    f"x is {x.dtype} but the layer's weights are {dtype}: cast the input (x.to({dtype})) or the "
                    f"model (model.to({x.dtype}))"
                )
        result = self.base_layer(x)  # (..., D_out)
        if self.merged or self.disabled:  # merged: W_0 holds the update; disabled: W_0 alone (never both)
            return result
        adapter_input = self.lora_dropout(x.to(self.lora_A.weight.dtype))  # (..., D_in), dropped on this path only
        delta = lora_delta(adapter_input, self.lora_A.weight, self.lora_B.weight, self.scaling, self.order)
        return result + delta.to(result.dtype)  # (..., D_out)

    def merge(self) -> None:
        """Add scaling * B A into the base weight: W_0 <- W_0 + scaling B A (one product per token afterwards).

        Raises:
            ValueError: the base is quantized: merging into 4-bit codes would re-quantize the weight and lose the
                update; use [merge_lora][llmdocs.finetuning.lora.merge_lora], which replaces it with a plain
                ``nn.Linear``. A or B holds NaN or inf, or W_0 + scaling B A overflows the weight's dtype: the
                base weight is left untouched (merged, the damage would outlive the adapter).

        Examples:
            >>> layer = LoRALinear(nn.Linear(4, 2), r=1, lora_alpha=1)
            >>> layer.merge()
            >>> layer.merged, layer(torch.ones(1, 4)).shape  # now a single product per token
            (True, torch.Size([1, 2]))
        """
        if self.quantized:
            raise ValueError(
                f"cannot merge into a quantized base ({type(self.base_layer).__name__}): adding the update into its "
                "4-bit codes would re-quantize W_0 + BA and lose most of the update; merge_lora(model) replaces the "
                "layer with an nn.Linear holding the dequantized weight plus the update instead"
            )
        if self.merged:
            warnings.warn("the adapter is already merged: nothing to do", stacklevel=2)
            return
        if self.disabled:
            raise ValueError("cannot merge a disabled adapter (inside disable_adapters): leave the block first")
        merged = self._updated_weight(+1)  # checked before W_0 changes
        with torch.no_grad():
            self.base_layer.weight.copy_(merged)
        self.merged = True

    def unmerge(self) -> None:
        """Subtract the update again: W_0 <- W_0 - scaling B A (exact up to rounding).

        Raises:
            ValueError: A or B holds NaN or inf, or W_0 - scaling B A overflows (the base weight is left as it is).

        Examples:
            >>> layer = LoRALinear(nn.Linear(4, 4).double(), r=2, lora_alpha=2)
            >>> w0 = layer.base_layer.weight.detach().clone()
            >>> _ = nn.init.normal_(layer.lora_B.weight)
            >>> layer.merge(); layer.unmerge()
            >>> from llmdocs.testing import assert_equivalent
            >>> assert_equivalent(layer.base_layer.weight, w0)
        """
        if not self.merged:
            warnings.warn("the adapter is not merged: nothing to do", stacklevel=2)
            return
        unmerged = self._updated_weight(-1)
        with torch.no_grad():
            self.base_layer.weight.copy_(unmerged)
        self.merged = False

    def _updated_weight(self, sign: int, name: str = "") -> Tensor:
        """W_0 + sign * scaling B A, (D_out, D_in), refused if not finite: the base weight (the dequantized one,
        in the adapter's dtype, for a quantized base) with the update added or taken away. ``name``, the layer's
        path in its model, makes the messages name the adapter's tensors."""
        where = f"{name}." if name else ""
        for part in ("lora_A", "lora_B"):
            tensor = getattr(self, part).weight
            if not tensor.is_meta and not torch.isfinite(tensor).all():
                raise ValueError(
                    f"{where}{part}.weight holds NaN or infinite values: {'merging' if sign > 0 else 'unmerging'} "
                    "would write them into the base weight W_0 for good; the base was left untouched (retrain or "
                    "reload the adapter)"
                )
        with torch.no_grad():
            if self.quantized:  # in the adapter's dtype (the rest of the model's), not the base's compute dtype
                base = self.base_layer.dequantize().to(self.lora_A.weight.dtype)  # (D_out, D_in)
            else:
                base = self.base_layer.weight.detach()
            updated = base + sign * self.delta_weight().to(base.dtype)  # (D_out, D_in)
        if not updated.is_meta and not torch.isfinite(updated).all():
            raise ValueError(
                f"{name or 'this LoRALinear'}: W_0 {'+' if sign > 0 else '-'} scaling B A overflows "
                f"{updated.dtype} (|W_0| up to {base.abs().max().item():.3g}, |scaling B A| up to "
                f"{self.delta_weight().abs().max().item():.3g}); the base was left untouched"
            )
        return updated

    def extra_repr(self) -> str:
        return f"r={self.r}, lora_alpha={self.lora_alpha}, scaling={self.scaling:g}, merged={self.merged}"


def lora_num_parameters(d_in: int, d_out: int, r: int) -> int:
    """The closed form: one adapter on a (D_out, D_in) matrix has R (D_in + D_out) parameters (A and B).

    Examples:
        >>> lora_num_parameters(768, 768, 8), 768 * 768  # adapter vs full matrix
        (12288, 589824)
    """
    d_in, d_out, r = _check_sizes(d_in=d_in, d_out=d_out, r=r)
    return r * (d_in + d_out)


def _check_model(model: object) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")


def _as_patterns(name: str, patterns: str | Iterable[str], allow_empty: bool = False) -> list[str]:
    """``patterns`` as a list of module name patterns; errors name the argument ``name``."""
    items = [patterns] if isinstance(patterns, str) else list(patterns) if isinstance(patterns, Iterable) else None
    if items is None or not all(isinstance(p, str) for p in items):
        raise TypeError(f"{name} must be a module name pattern (a str) or a list of them, got {patterns!r}")
    if not items and not allow_empty:
        raise ValueError(f"{name} must hold at least one module name pattern, got {patterns!r}")
    if not all(items):
        raise ValueError(f"{name} holds an empty pattern in {patterns!r}: a pattern names modules, e.g. 'q_proj'")
    return items


def module_name_matches(name: str, pattern: str) -> bool:
    """Whether a module's dotted name matches a target pattern, by peft's rule for ``target_modules``.

    The full name matches the ``fnmatch`` pattern (where ``*`` also matches dots), or its last components do:
    ``"q_proj"`` and ``"self_attn.q_proj"`` both select ``"layers.0.self_attn.q_proj"``.

    Examples:
        >>> module_name_matches("layers.0.self_attn.q_proj", "q_proj"), module_name_matches("layers.0.ff.fc1", "fc*")
        (True, True)
        >>> module_name_matches("layers.0.self_attn.q_proj", "self_attn"), module_name_matches("q_proj_x", "q_proj")
        (False, False)
    """
    if not _GLOB_CHARACTERS.intersection(pattern):  # a plain name: the same test, without compiling a glob
        return name == pattern or name.endswith("." + pattern)
    return fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(name, "*." + pattern)


_GLOB_CHARACTERS = frozenset("*?[")
"""The characters with a meaning in an ``fnmatch`` pattern; a pattern without them matches only itself."""


def _adapter_internals(model: nn.Module) -> set[str]:
    """The names of the modules inside LoRALinear layers (``base_layer``, ``lora_A``, ``lora_B``, ...)."""
    prefixes = tuple(f"{name}." if name else "" for name, m in model.named_modules() if isinstance(m, LoRALinear))
    return {n for n, _ in model.named_modules() if n and prefixes and n.startswith(prefixes)}


def _outside_adapters(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The named modules of ``model`` except the root and the insides of LoRALinear layers."""
    inside = _adapter_internals(model)
    return [(n, m) for n, m in model.named_modules() if n and n not in inside]


def _check_not_a_single_layer(model: nn.Module, advice: str) -> None:
    """Refuse a ``model`` that is itself a linear layer (it has no linear submodules to select by name)."""
    if _is_linear(model):
        raise ValueError(f"model is itself a linear layer ({type(model).__name__}), with no submodules: {advice}")


def target_module_names(model: nn.Module, targets: str | Iterable[str]) -> list[str]:
    """The names of the linear layers that the patterns ``targets`` select, in module order.

    A pattern matches a module when it matches the full dotted name (``fnmatch``: ``"blocks.*.self_attn.q_proj"``,
    where ``*`` also matches dots) or its last components (``"q_proj"``, ``"self_attn.q_proj"``), as peft's
    ``target_modules`` do.

    Args:
        model: the model.
        targets: one pattern or several.

    Returns:
        The selected module names.

    Raises:
        TypeError: ``model`` is not a module, ``targets`` not a pattern or patterns.
        ValueError: no pattern or an empty one; ``model`` itself a linear layer (it has no linear submodules:
            wrap it with ``LoRALinear``); a pattern matches nothing (the message lists linear layers to choose
            from), or matches a module that is not a linear layer.

    Examples:
        >>> from llmdocs.models.gpt import GPT, GPTConfig
        >>> target_module_names(GPT(GPTConfig.tiny()), ["q_proj", "v_proj"])
        ['blocks.0.self_attn.q_proj', 'blocks.0.self_attn.v_proj',
         'blocks.1.self_attn.q_proj', 'blocks.1.self_attn.v_proj']
        >>> target_module_names(GPT(GPTConfig.tiny()), "blocks.1.ff.fc*")  # a glob on the full name
        ['blocks.1.ff.fc1', 'blocks.1.ff.fc2']
    """
    _check_model(model)
    patterns = _as_patterns("targets", targets)
    _check_not_a_single_layer(
        model,
        "LoRA adapts the linear submodules of a model, selected by name; wrap a single layer with "
        "LoRALinear(layer, r, lora_alpha)",
    )
    modules = _outside_adapters(model)
    chosen: dict[str, None] = {}
    for pattern in patterns:
        hits = [(name, module) for name, module in modules if module_name_matches(name, pattern)]
        if not hits:
            linear = [name for name, module in modules if _is_linear(module) or isinstance(module, LoRALinear)]
            raise ValueError(
                f"target {pattern!r} matches no module of {type(model).__name__}; its linear layers are named like "
                f"{linear[:6]}"
            )
        for name, module in hits:
            if isinstance(module, LoRALinear):
                raise ValueError(f"{name} already has a LoRA adapter: merge_lora(model) first, or target another layer")
            if not _is_linear(module):
                raise ValueError(
                    f"target {pattern!r} matches {name}, a {type(module).__name__}: LoRA adapts linear layers "
                    "(nn.Linear or a quantized linear); make the pattern select only those"
                )
            chosen[name] = None
    order = {name: i for i, (name, _) in enumerate(modules)}
    return sorted(chosen, key=order.__getitem__)


def _set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name), child, module)


def _shared_elsewhere(model: nn.Module, name: str, names_of: dict[int, list[str]]) -> list[str]:
    """Other parameter names of the tensors of module ``name`` (tied weights, e.g. lm_head and tok_embed);
    ``names_of`` maps ``id(parameter)`` to its names in ``model``, all of them (``_parameter_names``)."""
    module = model.get_submodule(name)
    return [n for p in module.parameters() for n in names_of[id(p)] if not n.startswith(f"{name}.")]


def _parameter_names(model: nn.Module) -> dict[int, list[str]]:
    """``id(parameter) -> its names in model``, in ``named_parameters`` order (a tied tensor has several)."""
    names_of: dict[int, list[str]] = {}
    for n, p in model.named_parameters(remove_duplicate=False):
        names_of.setdefault(id(p), []).append(n)
    return names_of


_READ_DIRECTLY: tuple[tuple[type[nn.Module], tuple[str, ...]], ...] = (
    (nn.MultiheadAttention, ("out_proj",)),  # F.multi_head_attention_forward(..., out_proj.weight, out_proj.bias)
    (nn.TransformerEncoderLayer, ("linear1", "linear2")),  # its inference fast path passes their weights on
)
"""Modules whose forward reads a child linear layer's ``weight`` and ``bias`` instead of calling the child."""


def _check_replaceable(model: nn.Module, names: Iterable[str], replacement: str, untying: str) -> None:
    """Refuse linear layers that cannot be swapped for ``replacement`` (a LoRALinear, a Linear4bit) by name:
    one whose parent reads its ``weight`` directly, or one whose weight is tied to another module's (``untying``
    says what swapping it would do to the other module)."""
    names_of = _parameter_names(model)
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        if any(isinstance(parent, cls) and child in children for cls, children in _READ_DIRECTLY):
            raise ValueError(
                f"{name} cannot become a {replacement}: its parent, a {type(parent).__name__}, reads "
                f"{child}.weight directly instead of calling the layer, and a {replacement} has no .weight; leave it "
                "out of targets (or use an attention module that calls its projections, as llmdocs.models' do)"
            )
        tied = _shared_elsewhere(model, name, names_of)
        if tied:
            raise ValueError(
                f"{name} shares its weight with {tied[:2]} (tied embeddings): {untying}; leave it out of targets"
            )


def apply_lora(
    model: nn.Module,
    targets: str | Iterable[str],
    r: int,
    lora_alpha: float,
    lora_dropout: float = 0.0,
    modules_to_save: str | Iterable[str] = (),
    init: Literal["kaiming", "gaussian"] = "kaiming",
) -> list[str]:
    """Wrap the targeted linear layers of ``model`` in [LoRALinear][llmdocs.finetuning.lora.LoRALinear], in place,
    and freeze everything else except ``modules_to_save``.

    After the call only the adapters (A and B of every adapted layer) and the ``modules_to_save`` (trained in full,
    e.g. a new classifier head that has no pretrained weights to keep) have ``requires_grad``. The names of the
    modules to save are kept on the model as ``model.modules_to_save`` (peft's attribute), for
    [lora_state_dict][llmdocs.finetuning.lora.lora_state_dict] and the peft exporter.

    Args:
        model: any model, e.g. a [BertForSequenceClassification][llmdocs.models.bert.BertForSequenceClassification]
            or a [Llama][llmdocs.models.llama.Llama]; it may live on the ``meta`` device.
        targets: module name patterns (see [target_module_names][llmdocs.finetuning.lora.target_module_names]):
            ``["q_proj", "v_proj"]`` (the paper's choice, section 7.1), ``"blocks.*.ff.*"``...
        r: the rank R.
        lora_alpha: alpha; the update is scaled by alpha / R.
        lora_dropout: dropout probability on every adapter's input.
        modules_to_save: module name patterns (same rules) of modules that train fully; none by default.
        init: A's initialisation, ``"kaiming"`` (peft's default) or ``"gaussian"`` (the paper's).

    Returns:
        The names of the adapted modules, in module order.

    Raises:
        TypeError: ``model`` is not a module; patterns that are not strings; hyper-parameters of the wrong type.
        ValueError: a target pattern that is empty, matches nothing or a non-linear module; ``model`` itself a
            linear layer (wrap it with ``LoRALinear``); a layer whose weight is tied to another module's (an output
            head sharing the token embedding: merging would change the embedding too); a layer whose parent reads
            its weight directly (``nn.MultiheadAttention``'s ``out_proj``, ``nn.TransformerEncoderLayer``'s
            ``linear1`` and ``linear2``); a module both adapted and saved; a bad ``r``, ``lora_alpha``,
            ``lora_dropout`` or ``init``; an ``r`` above min(D_in, D_out) of a targeted layer (the message names
            it; see [LoRALinear][llmdocs.finetuning.lora.LoRALinear] for why); a model that already has adapters.
            Nothing changes when an error is raised.

    Examples:
        >>> from llmdocs.models.bert import BertConfig, BertForSequenceClassification
        >>> model = BertForSequenceClassification(BertConfig.tiny(n_layers=1), n_classes=3)
        >>> apply_lora(model, ["q_proj", "v_proj"], r=4, lora_alpha=8, modules_to_save=["classifier"])
        ['bert.layers.0.self_attn.q_proj', 'bert.layers.0.self_attn.v_proj']
        >>> [n for n, p in model.named_parameters() if p.requires_grad]
        ['bert.layers.0.self_attn.q_proj.lora_A.weight', 'bert.layers.0.self_attn.q_proj.lora_B.weight',
         'bert.layers.0.self_attn.v_proj.lora_A.weight', 'bert.layers.0.self_attn.v_proj.lora_B.weight',
         'classifier.weight', 'classifier.bias']
        >>> count_lora_parameters(model), model.modules_to_save  # 2 * 4 * (32 + 32)
        (512, ('classifier',))
    """
    _check_model(model)
    _check_settings(r, lora_alpha, lora_dropout, init)
    if any(isinstance(m, LoRALinear) for m in model.modules()):
        raise ValueError(
            f"{type(model).__name__} already has LoRA adapters: merge_lora(model) first (one adapter set per model)"
        )
    names = target_module_names(model, targets)
    save_patterns = _as_patterns("modules_to_save", modules_to_save, allow_empty=True)
    saved: list[str] = []
    for pattern in save_patterns:
        hits = [name for name, _ in _outside_adapters(model) if module_name_matches(name, pattern)]
        if not hits:
            children = [name for name, _ in model.named_children()]
            raise ValueError(f"modules_to_save {pattern!r} matches no module; the top-level modules are {children}")
        saved += hits
    # a module inside another saved module is saved with it
    saved = [s for i, s in enumerate(saved) if s not in saved[:i] and not any(s.startswith(f"{t}.") for t in saved)]
    both = [n for n in names if any(n == s or n.startswith(f"{s}.") for s in saved)]
    if both:
        raise ValueError(f"{both[:3]} are both targets and modules_to_save: a module is adapted or trained fully")
    _check_replaceable(model, names, "LoRALinear", "an adapter on it would, once merged, change that module too")
    for name in names:
        _check_rank(r, model.get_submodule(name), name)
    freeze(model)
    for name in names:
        _set_submodule(model, name, LoRALinear(model.get_submodule(name), r, lora_alpha, lora_dropout, init))
    for name in saved:
        model.get_submodule(name).requires_grad_(True)
    model.modules_to_save = tuple(saved)
    return names


def _adapters(model: nn.Module) -> list[tuple[str, LoRALinear]]:
    return [(name, m) for name, m in model.named_modules() if isinstance(m, LoRALinear)]


@contextlib.contextmanager
def disable_adapters(model: nn.Module) -> Iterator[nn.Module]:
    """Run the base model without its LoRA updates inside a ``with`` block: every adapted layer computes W_0 x.

    The adapters are kept, and come back when the block ends (even on an exception): the frozen base is the
    model before fine-tuning, so one model in memory serves both as the fine-tuned model and as the reference it
    started from (the before/after of the SFT chapter, the frozen reference policy of DPO and PPO). The result
    inside the block is the base's, bit for bit. peft's ``with peft_model.disable_adapter():`` does the same.

    Args:
        model: A model with [LoRALinear][llmdocs.finetuning.lora.LoRALinear] layers, none of them merged.

    Yields:
        ``model``, with its adapters switched off.

    Raises:
        TypeError: ``model`` is not a module.
        ValueError: ``model`` has no adapters, or some are merged into their base (W_0 then holds the update:
            unmerge them, or keep an unmerged copy as the reference).

    Examples:
        >>> _ = torch.manual_seed(0)
        >>> model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
        >>> x = torch.randn(3, 4)
        >>> before = model(x)
        >>> _ = apply_lora(model, ["0", "1"], r=2, lora_alpha=2)
        >>> _ = nn.init.normal_(model[0].lora_B.weight)  # as if trained
        >>> with disable_adapters(model):
        ...     torch.equal(model(x), before)  # the base model, bit for bit
        True
        >>> torch.equal(model(x), before)  # the adapters are back
        False
    """
    _check_model(model)
    adapters = _adapters(model)
    if not adapters:
        raise ValueError(
            f"{type(model).__name__} has no LoRA adapters: nothing to disable (apply_lora adds them; merge_lora folds "
            "them into plain layers that hold the update, whose base is gone)"
        )
    merged = [name for name, adapter in adapters if adapter.merged]
    if merged:
        raise ValueError(
            f"{len(merged)} adapter(s) are merged into their base weights (e.g. {merged[0]!r}): W_0 holds the update, "
            "so disabling the adapter would not give the base model; unmerge() them first"
        )
    previous = [adapter.disabled for _, adapter in adapters]  # nested blocks restore what they found
    for _, adapter in adapters:
        adapter.disabled = True
    try:
        yield model
    finally:
        for (_, adapter), state in zip(adapters, previous, strict=True):
            adapter.disabled = state


def count_lora_parameters(model: nn.Module) -> int:
    """The number of adapter parameters (A and B of every LoRALinear), whether or not they train.

    Examples:
        >>> model = nn.Sequential(nn.Linear(10, 6), nn.Linear(6, 2))
        >>> _ = apply_lora(model, ["0", "1"], r=2, lora_alpha=2)
        >>> count_lora_parameters(model) == lora_num_parameters(10, 6, 2) + lora_num_parameters(6, 2, 2)
        True
    """
    _check_model(model)
    return sum(m.lora_A.weight.numel() + m.lora_B.weight.numel() for _, m in _adapters(model))


def lora_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """The tensors that fine-tuning with LoRA produced: every A and B, and the ``modules_to_save`` in full.

    This is what a LoRA checkpoint stores: a few megabytes next to a base model of gigabytes. Load it back with
    [load_lora_state_dict][llmdocs.finetuning.lora.load_lora_state_dict] into a model adapted with the same
    settings, which refuses keys and shapes that do not fit; ``model.load_state_dict(state, strict=False)``
    would skip them silently.

    Returns:
        Our parameter names (``blocks.0.self_attn.q_proj.lora_A.weight``, ``classifier.weight``) -> tensors.

    Raises:
        TypeError: ``model`` is not a module.
        ValueError: ``model`` has no adapters.

    Examples:
        >>> model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
        >>> _ = apply_lora(model, "0", r=2, lora_alpha=2, modules_to_save="1")
        >>> {name: tuple(t.shape) for name, t in lora_state_dict(model).items()}
        {'0.lora_A.weight': (2, 4), '0.lora_B.weight': (4, 2), '1.weight': (2, 4), '1.bias': (2,)}
    """
    _check_model(model)
    adapters = _adapters(model)
    if not adapters:
        raise ValueError(f"{type(model).__name__} has no LoRA adapters: apply_lora(model, ...) first")
    state: dict[str, Tensor] = {}
    for name, adapter in adapters:
        state[f"{name}.lora_A.weight"] = adapter.lora_A.weight.detach()
        state[f"{name}.lora_B.weight"] = adapter.lora_B.weight.detach()
    for name in getattr(model, "modules_to_save", ()):
        state.update({f"{name}.{key}": t for key, t in model.get_submodule(name).state_dict().items()})
    return state


def merge_lora(model: nn.Module, *, dequantize: bool = False) -> nn.Module:
    """Merge every adapter into its base and replace each LoRALinear by a plain ``nn.Linear``, in place.

    The result has the outputs of the adapted model, and the layers that had adapters are ``nn.Linear`` holding
    W_0 + scaling B A. On a float base, that is the architecture of the base model: its ``state_dict`` loads into
    a fresh one. On a quantized base (QLoRA), what becomes of the 4-bit layers depends on ``dequantize``:

    - ``dequantize=False`` (the default): each *adapted* 4-bit layer becomes an ``nn.Linear`` holding its
      dequantized weight plus the update, in the adapter's dtype (4-bit codes could not hold the update: see
      ``LoRALinear.merge``); the layers without an adapter stay ``Linear4bit``, so the ``state_dict`` loads only into
      a model whose other layers are quantized the same way. peft's ``merge_and_unload`` on a bitsandbytes 4-bit
      base also leaves those layers 4-bit (and re-quantizes the merged ones, losing part of the update).
    - ``dequantize=True``: in addition, every remaining quantized layer becomes an ``nn.Linear`` holding its
      dequantized weight, in the dtype of the layer's float tensors (its bias and scales: float32 unless the model
      was cast). The result is a plain full-precision model whose ``state_dict`` loads strictly into a fresh,
      unquantized one; its weights are the 4-bit ones (plus the updates), not the weights before quantization.
      This is how a QLoRA model is usually deployed: the adapters merged into the dequantized base.

    The new layers are frozen, like the bases they replace. Every adapter is checked before any layer changes.

    Args:
        model: a model with adapters (from [apply_lora][llmdocs.finetuning.lora.apply_lora]) or, with
            ``dequantize=True``, with quantized layers; or a single LoRALinear.
        dequantize: also replace the quantized layers without an adapter by float ``nn.Linear`` layers.

    Returns:
        The plain model (``model`` itself, or for a LoRALinear the merged ``nn.Linear``).

    Raises:
        TypeError: ``model`` is not a module, ``dequantize`` not a bool.
        ValueError: nothing to do (no adapters, and with ``dequantize=True`` no quantized layers either); an
            adapter whose A or B holds NaN or inf, or whose merged weight overflows (named; no layer is changed).

    Examples:
        >>> _ = torch.manual_seed(0)
        >>> model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
        >>> _ = apply_lora(model, ["0"], r=2, lora_alpha=2)
        >>> _ = nn.init.normal_(model[0].lora_B.weight)  # as if trained
        >>> x = torch.randn(3, 4)
        >>> adapted = model(x)
        >>> merged = merge_lora(model)
        >>> type(merged[0]).__name__
        'Linear'
        >>> from llmdocs.testing import assert_close
        >>> assert_close(merged(x), adapted, depth=2)

        QLoRA: the adapted 4-bit layer merges either way; ``dequantize=True`` also turns the other one to float.

        >>> from llmdocs.finetuning.qlora import quantize_linears
        >>> model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 2))
        >>> _ = quantize_linears(model, ["0", "2"])
        >>> _ = apply_lora(model, ["0"], r=2, lora_alpha=2)
        >>> [type(m).__name__ for m in merge_lora(model)]
        ['Linear', 'ReLU', 'Linear4bit']
        >>> [type(m).__name__ for m in merge_lora(model, dequantize=True)]
        ['Linear', 'ReLU', 'Linear']
    """
    _check_model(model)
    if not isinstance(dequantize, bool):
        raise TypeError(f"dequantize must be a bool, got {type(dequantize).__name__} {dequantize!r}")
    if isinstance(model, LoRALinear):
        return _merged_linear(model, "")
    if dequantize and _is_quantized(model) and not isinstance(model, nn.Linear):
        return _dequantized_linear(model)
    adapters = _adapters(model)
    quantized = [(n, m) for n, m in _outside_adapters(model) if dequantize and _is_quantized(m)]
    if not adapters and not quantized:
        extra = " and no quantized layers to dequantize" if dequantize else ""
        raise ValueError(f"{type(model).__name__} has no LoRA adapters to merge{extra}")
    for name, adapter in adapters:  # every check first: an error leaves the whole model as it was
        if not adapter.merged:
            adapter._updated_weight(+1, name)
    for name, adapter in adapters:
        _set_submodule(model, name, _merged_linear(adapter, name))
    for name, layer in quantized:
        _set_submodule(model, name, _dequantized_linear(layer))
    if "modules_to_save" in vars(model):
        del model.modules_to_save
    return model


def _frozen_linear(weight: Tensor, bias: Tensor | None) -> nn.Linear:
    """A frozen ``nn.Linear`` holding ``weight`` (D_out, D_in) and a copy of ``bias`` in the weight's dtype."""
    D_out, D_in = weight.shape
    linear = nn.Linear(D_in, D_out, bias=bias is not None, device=weight.device, dtype=weight.dtype)
    linear.weight = nn.Parameter(weight, requires_grad=False)
    if bias is not None:
        linear.bias = nn.Parameter(bias.detach().clone().to(weight.dtype), requires_grad=False)
    return linear


def _merged_linear(adapter: LoRALinear, name: str) -> nn.Linear:
    """The plain layer W_0 + scaling B A of one adapter (``name``: its path, for the error messages)."""
    if not adapter.quantized:
        if not adapter.merged:
            adapter.merge()
        return adapter.base_layer  # type: ignore[return-value]
    return _frozen_linear(adapter._updated_weight(+1, name), adapter.base_layer.bias)


def _dequantized_linear(layer: nn.Module) -> nn.Linear:
    """A quantized layer without an adapter as a float ``nn.Linear``, in the dtype of its float tensors."""
    floats = [t for t in (*layer.parameters(), *layer.buffers()) if t.is_floating_point()]
    dtype = floats[0].dtype if floats else torch.float32
    with torch.no_grad():
        weight = layer.dequantize().to(dtype)  # (D_out, D_in)
    return _frozen_linear(weight, layer.bias)


def load_lora_state_dict(model: nn.Module, state: Mapping[str, Tensor]) -> None:
    """Load a [lora_state_dict][llmdocs.finetuning.lora.lora_state_dict] into a model adapted the same way, in place.

    ``model.load_state_dict(state, strict=False)`` would also load it, but silently: on a model adapted on other
    targets every key is unexpected, nothing loads, and no error says so. Here the keys must be exactly the model's
    adapter tensors (every A and B) and the tensors of its ``modules_to_save``, with the same shapes.

    Args:
        model: the model, adapted by [apply_lora][llmdocs.finetuning.lora.apply_lora] with the same targets, rank
            and ``modules_to_save`` as the model the state came from; its adapters unmerged.
        state: parameter name -> tensor, as ``lora_state_dict`` returns it (or read back from safetensors).

    Raises:
        TypeError: ``model`` is not a module; ``state`` not a mapping of names to tensors.
        ValueError: ``model`` has no adapters, or merged ones (loading a new B A would not change W_0); keys of
            ``state`` the model lacks, or keys it expects that ``state`` lacks; a shape that differs (another
            rank); a tensor holding NaN or inf. Nothing is loaded when an error is raised.

    Examples:
        >>> model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
        >>> _ = apply_lora(model, "0", r=2, lora_alpha=2)
        >>> state = lora_state_dict(model)
        >>> same = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
        >>> _ = apply_lora(same, "0", r=2, lora_alpha=2)
        >>> load_lora_state_dict(same, state)
        >>> torch.equal(same[0].lora_A.weight, model[0].lora_A.weight)
        True
        >>> other = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
        >>> _ = apply_lora(other, "1", r=2, lora_alpha=2)  # adapted on another layer
        >>> other.load_state_dict(state, strict=False).unexpected_keys  # loads nothing, raises nothing
        ['0.lora_A.weight', '0.lora_B.weight']
        >>> load_lora_state_dict(other, state)
        Traceback (most recent call last):
        ...
        ValueError: state holds ['0.lora_A.weight', '0.lora_B.weight'], which Sequential's adapters and
        modules_to_save lack (adapted on other targets?); it expects ['1.lora_A.weight', '1.lora_B.weight']
    """
    _check_model(model)
    if not isinstance(state, Mapping) or not all(
        isinstance(k, str) and isinstance(t, Tensor) for k, t in state.items()
    ):
        raise TypeError(
            f"state must be a mapping of parameter names to tensors (from lora_state_dict), got {type(state).__name__}"
        )
    expected = lora_state_dict(model)  # raises if there are no adapters
    merged = [name for name, adapter in _adapters(model) if adapter.merged]
    if merged:
        raise ValueError(f"{merged[:3]} are merged: unmerge() them first (a new B A would not reach W_0)")
    unexpected = sorted(set(state) - set(expected))
    if unexpected:
        raise ValueError(
            f"state holds {unexpected[:4]}, which {type(model).__name__}'s adapters and modules_to_save lack "
            f"(adapted on other targets?); it expects {sorted(expected)[:4]}"
        )
    missing = sorted(set(expected) - set(state))
    if missing:
        raise ValueError(f"state lacks {missing[:4]}, which {type(model).__name__}'s adapters or modules_to_save hold")
    for key, tensor in state.items():
        if tensor.shape != expected[key].shape:
            raise ValueError(
                f"{key}: the state's shape {tuple(tensor.shape)} differs from the model's "
                f"{tuple(expected[key].shape)} (adapted with another rank r?)"
            )
        if tensor.is_floating_point() and not tensor.is_meta and not torch.isfinite(tensor).all():
            raise ValueError(f"{key} holds NaN or infinite values: loading it would break the model's outputs")
    model.load_state_dict(dict(state), strict=False)
