"""Rotary position embeddings (RoPE): positions as rotations of the queries and keys.

Split a head vector of width Dh into Dh/2 pairs and rotate pair ``i`` of the token at position ``m`` by the angle
``m * theta_i``, where ``theta_i = rope_theta^(-2i / Dh)`` (Su et al., 2021, eq. 15). Since a rotation by ``a``
followed by the inverse of a rotation by ``b`` is a rotation by ``a - b``, the attention score of a rotated query
and a rotated key depends on their positions only through ``m - n``:

    <R(m) q, R(n) k> = <q, R(n - m) k>        (section 3.4.2, eq. 16)

Nothing is added to the token embeddings: positions enter every layer's attention, and only as offsets.

Which coordinates form a pair is a convention, and both are in use:

- **interleaved** (the paper, Meta's reference code, GGUF files): pairs ``(x0, x1), (x2, x3), ...``; the rotation
  is a complex multiplication, ``(x_{2i} + j x_{2i+1}) e^{j m theta_i}``
  ([apply_rotary_complex][llmdocs.nn.rotary.apply_rotary_complex]);
- **halves** (Hugging Face, GPT-NeoX): pairs ``(x_i, x_{i + Dh/2})``; the rotation is
  ``x cos + rotate_half(x) sin`` on real tensors ([apply_rotary][llmdocs.nn.rotary.apply_rotary]).

The two are the same function up to a fixed permutation of the head dimension
([rope_permutation][llmdocs.nn.rotary.rope_permutation]); applied to the rows of the query and key projections
([permute_qk_rows][llmdocs.nn.rotary.permute_qk_rows]) it converts a checkpoint from one convention to the
other, which is what Hugging Face's Llama conversion script does to Meta's weights.

Longer contexts than the model was trained on: **linear position interpolation** (Chen et al., 2023) divides the
positions by a factor ``s`` so that they stay inside the trained range; **NTK-aware scaling** (bloc97, 2023;
Peng et al., 2023, section 3.2) raises the base instead, ``rope_theta * s^(Dh / (Dh - 2))``, which stretches the
slow (low-frequency) pairs by ``s`` and leaves the fast ones almost untouched.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor, nn

from llmdocs.nn.checks import check_size

__all__ = [
    "ROPE_SCALINGS",
    "RopeScaling",
    "RotaryEmbedding",
    "apply_rotary",
    "apply_rotary_complex",
    "permute_qk_rows",
    "rope_angles",
    "rope_cos_sin",
    "rope_inv_freq",
    "rope_permutation",
    "rotate_half",
]

RopeScaling = Literal["linear", "ntk"]
"""The type of ``rope_scaling``: ``"linear"`` or ``"ntk"`` (None for plain RoPE)."""

ROPE_SCALINGS: tuple[str, ...] = ("linear", "ntk")
"""Context-extension variants: ``"linear"`` position interpolation, ``"ntk"``-aware base scaling."""


def _check_d_head(d_head: object) -> int:
    if isinstance(d_head, bool) or not isinstance(d_head, int) or d_head < 2 or d_head % 2:
        raise ValueError(f"d_head must be an even integer >= 2 (RoPE rotates pairs of coordinates), got {d_head!r}")
    return d_head


def _check_positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value < math.inf:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def rope_inv_freq(
    d_head: int, rope_theta: float = 10000.0, rope_scaling: RopeScaling | None = None, scaling_factor: float = 1.0
) -> Tensor:
    """The rotation frequencies ``theta_i = rope_theta^(-2i / Dh)``, i = 0 .. Dh/2 - 1, in radians per position.

    Pair 0 turns by one radian per position, the last pair by about ``1 / rope_theta``: wavelengths from 2 pi to
    about 2 pi rope_theta tokens. Computed in float32 as ``1 / rope_theta^(2i / Dh)``, the way Meta's and Hugging
    Face's Llama compute it, so that a model loaded from their weights rotates by exactly the same angles.

    Args:
        d_head: head width Dh, even.
        rope_theta: the base (10,000 in the paper and Llama 1-2, 500,000 in Llama 3, 100,000 in SmolLM2).
        rope_scaling: None, ``"linear"`` (positions divided by ``scaling_factor``; equivalently every frequency) or
            ``"ntk"`` (the base becomes ``rope_theta * scaling_factor^(Dh / (Dh - 2))``).
        scaling_factor: s, the context extension factor (a model trained on 2,048 tokens with s = 4 is meant for
            8,192); ignored without ``rope_scaling``.

    Returns:
        float32 tensor (Dh/2,), decreasing from ``1 / s`` (linear) or 1.

    Raises:
        ValueError: ``d_head`` odd or < 2 (``"ntk"`` needs >= 4), ``rope_theta`` or ``scaling_factor`` not a finite
            number > 0, an unknown ``rope_scaling``.

    References:
        Su et al., "RoFormer: Enhanced Transformer with Rotary Position Embedding", 2021, section 3.4.2 (eq. 15).
        Chen et al., "Extending Context Window of Large Language Models via Positional Interpolation", 2023, eq. 4.
        Peng et al., "YaRN: Efficient Context Window Extension of Large Language Models", 2023, section 3.2
        ("NTK-aware" interpolation, after bloc97's 2023 post).

    Examples:
        >>> [round(f, 6) for f in rope_inv_freq(8).tolist()]  # radians per position of the 4 pairs
        [1.0, 0.1, 0.01, 0.001]
        >>> [round(f, 6) for f in rope_inv_freq(8, rope_scaling="linear", scaling_factor=2.0).tolist()]
        [0.5, 0.05, 0.005, 0.0005]
        >>> ntk = rope_inv_freq(8, rope_scaling="ntk", scaling_factor=2.0)
        >>> [round(f, 4) for f in (ntk / rope_inv_freq(8)).tolist()]  # the fastest pair kept, the slowest halved
        [1.0, 0.7937, 0.63, 0.5]
    """
    _check_d_head(d_head)
    base = _check_positive("rope_theta", rope_theta)
    factor = _check_positive("scaling_factor", scaling_factor)
    if rope_scaling is not None and rope_scaling not in ROPE_SCALINGS:
        raise ValueError(f"rope_scaling must be None or one of {ROPE_SCALINGS}, got {rope_scaling!r}")
    if rope_scaling == "ntk":
        if d_head < 4:
            raise ValueError(f"rope_scaling='ntk' needs d_head >= 4 (its exponent is Dh / (Dh - 2)), got {d_head}")
        # The slowest pair, theta^(-(Dh-2)/Dh), is divided by exactly s; the fastest (i = 0) is unchanged.
        base = base * factor ** (d_head / (d_head - 2))
    exponents = torch.arange(0, d_head, 2, dtype=torch.float32) / d_head  # (Dh/2,): 2i / Dh
    inv_freq = 1.0 / (base**exponents)  # (Dh/2,)
    if rope_scaling == "linear":
        inv_freq = inv_freq / factor  # m theta_i / s: the positions are interpolated, m -> m / s
    return inv_freq


def rope_angles(position_ids: Tensor, inv_freq: Tensor) -> Tensor:
    """The rotation angles ``m * theta_i`` of every position ``m`` and pair ``i``, in ``inv_freq``'s dtype.

    Args:
        position_ids: integer positions, any shape (...,), e.g. (T,) or (B, T).
        inv_freq: frequencies (Dh/2,) from [rope_inv_freq][llmdocs.nn.rotary.rope_inv_freq].

    Returns:
        Angles in radians (..., Dh/2).

    Examples:
        >>> import torch
        >>> rope_angles(torch.arange(3), torch.tensor([1.0, 0.5]))
        tensor([[0.0000, 0.0000],
                [1.0000, 0.5000],
                [2.0000, 1.0000]])
    """
    return position_ids[..., None].to(inv_freq.dtype) * inv_freq  # (..., Dh/2)


def rope_cos_sin(position_ids: Tensor, inv_freq: Tensor) -> tuple[Tensor, Tensor]:
    """Cosines and sines of the angles, laid out for the halves form, [apply_rotary][llmdocs.nn.rotary.apply_rotary].

    Column ``i`` and column ``i + Dh/2`` both hold angle ``i``: the two coordinates of a pair turn together.

    Args:
        position_ids: integer positions (...,).
        inv_freq: frequencies (Dh/2,), whose dtype the result has.

    Returns:
        ``(cos, sin)``, each (..., Dh).

    Examples:
        >>> import torch
        >>> cos, sin = rope_cos_sin(torch.arange(4), rope_inv_freq(6))
        >>> cos.shape
        torch.Size([4, 6])
        >>> torch.equal(cos[:, :3], cos[:, 3:])
        True
    """
    angles = rope_angles(position_ids, inv_freq)  # (..., Dh/2)
    angles = torch.cat((angles, angles), dim=-1)  # (..., Dh): pair i is (i, i + Dh/2)
    return angles.cos(), angles.sin()


def rotate_half(x: Tensor) -> Tensor:
    """Map each pair ``(a, b) = (x_i, x_{i + Dh/2})`` to ``(-b, a)``: a quarter turn of every pair.

    Examples:
        >>> import torch
        >>> rotate_half(torch.tensor([1.0, 2.0, 3.0, 4.0]))
        tensor([-3., -4.,  1.,  2.])
    """
    first, second = x.chunk(2, dim=-1)  # (..., Dh/2) each
    return torch.cat((-second, first), dim=-1)  # (..., Dh)


def apply_rotary(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate every pair ``(x_i, x_{i + Dh/2})`` of ``x`` by its angle: the real "rotate-half" form.

    out = x * cos + rotate_half(x) * sin, i.e. per pair (a, b) -> (a cos - b sin, b cos + a sin): the 2-D rotation
    matrix of the paper's eq. 13, written without building it.

    Args:
        x: queries or keys (..., T, Dh), e.g. (B, H, T, Dh).
        cos: cosines (T, Dh) or any shape that broadcasts to ``x`` (for (B, T, Dh) and x (B, H, T, Dh), pass
            ``cos[:, None]``), from [rope_cos_sin][llmdocs.nn.rotary.rope_cos_sin] or
            [RotaryEmbedding][llmdocs.nn.rotary.RotaryEmbedding].
        sin: sines, same shape as ``cos``.

    Returns:
        Rotated tensor, shape and dtype of ``x`` (when ``cos`` and ``sin`` have x's dtype).

    Raises:
        ValueError: If ``x``'s last dimension is odd or differs from ``cos``'s.

    References:
        Su et al., "RoFormer", 2021, section 3.4.2 (eq. 34, the efficient form).

    Examples:
        >>> import torch
        >>> x = torch.tensor([[1.0, 0.0]])  # one position, one pair (1, 0)
        >>> cos, sin = rope_cos_sin(torch.tensor([2]), torch.tensor([torch.pi / 6]))  # position 2: a turn of pi/3
        >>> apply_rotary(x, cos, sin).round(decimals=4)
        tensor([[0.5000, 0.8660]])
    """
    if x.size(-1) % 2 or cos.size(-1) != x.size(-1) or sin.shape != cos.shape:
        raise ValueError(
            f"x (..., Dh) needs an even Dh and cos, sin of width Dh, got x {tuple(x.shape)}, "
            f"cos {tuple(cos.shape)}, sin {tuple(sin.shape)}"
        )
    return x * cos + rotate_half(x) * sin  # (..., T, Dh)


def apply_rotary_complex(x: Tensor, angles: Tensor) -> Tensor:
    """Rotate every pair ``(x_{2i}, x_{2i+1})`` of ``x`` as the complex product ``(x_{2i} + j x_{2i+1}) e^{j angle_i}``.

    The form of the paper (eq. 12) and of Meta's reference Llama, on interleaved pairs. bfloat16 and float16
    inputs are rotated in float32 (complex64) and rounded back; float64 in complex128.

    Args:
        x: queries or keys (..., T, Dh), interleaved pairs.
        angles: (T, Dh/2) or anything that broadcasts to (..., T, Dh/2), from
            [rope_angles][llmdocs.nn.rotary.rope_angles].

    Returns:
        Rotated tensor, shape and dtype of ``x``.

    Raises:
        ValueError: If ``x``'s last dimension is odd or is not twice ``angles``'s.

    References:
        Su et al., "RoFormer", 2021, section 3.4.1 (eq. 12); Touvron et al., "LLaMA", 2023 (reference code).

    Examples:
        >>> import torch
        >>> x = torch.tensor([[1.0, 0.0, 0.0, 1.0]])  # one position, pairs (1, 0) and (0, 1)
        >>> apply_rotary_complex(x, torch.tensor([[torch.pi / 3, torch.pi / 6]])).round(decimals=4)
        tensor([[ 0.5000,  0.8660, -0.5000,  0.8660]])
    """
    if x.size(-1) % 2 or x.size(-1) != 2 * angles.size(-1):
        raise ValueError(
            f"x (..., Dh) needs an even Dh and angles of width Dh/2, got x {tuple(x.shape)}, "
            f"angles {tuple(angles.shape)}"
        )
    work = torch.float64 if x.dtype == torch.float64 else torch.float32  # view_as_complex: float32 or float64 only
    pairs = x.to(work).contiguous().view(*x.shape[:-1], -1, 2)  # (..., T, Dh/2, 2)
    z = torch.view_as_complex(pairs)  # (..., T, Dh/2): x_{2i} + j x_{2i+1}
    angles = angles.to(work)
    rotation = torch.polar(torch.ones_like(angles), angles)  # (..., T, Dh/2): e^{j m theta_i}, on the unit circle
    return torch.view_as_real(z * rotation).flatten(-2).to(x.dtype)  # (..., T, Dh)


def rope_permutation(d_head: int) -> Tensor:
    """The permutation of a head's coordinates from the interleaved layout to the halves layout.

    ``x[..., perm]`` moves the even coordinates to the first half and the odd ones to the second, so the
    interleaved pair ``(x_{2i}, x_{2i+1})`` becomes the halves pair ``(y_i, y_{i + Dh/2})``:

        apply_rotary_complex(x, angles)[..., perm] == apply_rotary(x[..., perm], cos, sin)

    ``perm.argsort()`` is the inverse (halves -> interleaved).

    Args:
        d_head: head width Dh, even.

    Returns:
        int64 tensor (Dh,): ``[0, 2, 4, ..., 1, 3, 5, ...]``.

    Raises:
        ValueError: If ``d_head`` is odd or < 2.

    Examples:
        >>> rope_permutation(8)
        tensor([0, 2, 4, 6, 1, 3, 5, 7])
    """
    _check_d_head(d_head)
    return torch.arange(d_head).view(d_head // 2, 2).t().reshape(d_head)  # (Dh,): evens, then odds


def permute_qk_rows(weight: Tensor, n_heads: int, inverse: bool = False) -> Tensor:
    """Permute the output rows of a query or key projection, head by head, from interleaved to halves RoPE.

    A projection ``W`` (H * Dh, D) whose heads are rotated in interleaved pairs and ``permute_qk_rows(W, H)``
    rotated in halves give the same attention scores and outputs: q and k of every head are permuted by the same
    [rope_permutation][llmdocs.nn.rotary.rope_permutation], and a dot product does not depend on the order of
    coordinates. ``inverse=True`` goes back (halves -> interleaved): a GGUF writer applies it to Hugging Face
    weights (GGUF keeps Meta's interleaved layout), and a GGUF reader undoes it with the default direction.

    Args:
        weight: (H * Dh, ...) weight (or bias (H * Dh,)) of ``q_proj`` or ``k_proj``; for keys H is the number of
            key/value heads.
        n_heads: H, the number of heads the rows are split into.
        inverse: permute from halves to interleaved instead.

    Returns:
        A new tensor, same shape, rows permuted within each head.

    Raises:
        ValueError: If the rows do not split into ``n_heads`` heads of even width.

    Examples:
        >>> import torch
        >>> rows = torch.arange(8.0)[:, None]  # 2 heads of width 4
        >>> permute_qk_rows(rows, n_heads=2).flatten().tolist()
        [0.0, 2.0, 1.0, 3.0, 4.0, 6.0, 5.0, 7.0]
        >>> torch.equal(permute_qk_rows(permute_qk_rows(rows, 2), 2, inverse=True), rows)
        True
    """
    check_size("n_heads", n_heads)
    if weight.dim() == 0 or weight.size(0) % n_heads or (weight.size(0) // n_heads) % 2:
        raise ValueError(
            f"weight of shape {tuple(weight.shape)} does not split into n_heads={n_heads} heads of an even width "
            "along its first dimension"
        )
    d_head = weight.size(0) // n_heads
    perm = rope_permutation(d_head).to(weight.device)  # (Dh,)
    if inverse:
        perm = perm.argsort()
    per_head = weight.reshape(n_heads, d_head, *weight.shape[1:])  # (H, Dh, ...)
    return per_head[:, perm].reshape(weight.shape)  # (H * Dh, ...)


class RotaryEmbedding(nn.Module):
    """The cosines and sines of every position, computed once and looked up: the RoPE table of a model.

    The table is computed in float32 for positions ``0 .. max_position_embeddings - 1`` on first use and grows
    (doubling) when a longer position comes; a lookup returns rows in the dtype of ``x``. The angles are float32
    whatever the module's dtype, as in Meta's and Hugging Face's Llama: a float64 copy of a model then rotates by
    exactly the angles of the float32 original (a float64 angle table would be more precise, and different).

    Args:
        d_head: head width Dh, even.
        rope_theta: the base of the frequencies (see [rope_inv_freq][llmdocs.nn.rotary.rope_inv_freq]).
        rope_scaling: None, ``"linear"`` (position interpolation) or ``"ntk"`` (NTK-aware base scaling).
        scaling_factor: the context extension factor s of ``rope_scaling``.
        max_position_embeddings: positions covered by the first table (more are added on demand).

    Shape:
        x (..., T, C) (only its dtype, device and T are used), ``position_ids`` (T,) or (B, T) ->
        ``(cos, sin)``, each (T, Dh) or (B, T, Dh).

    References:
        Su et al., "RoFormer", 2021, section 3.4.

    Examples:
        >>> import torch
        >>> rope = RotaryEmbedding(d_head=8, rope_theta=10000.0)
        >>> x = torch.zeros(2, 5, 8)  # (B, T, Dh)
        >>> cos, sin = rope(x)  # positions 0 .. 4
        >>> cos.shape
        torch.Size([5, 8])
        >>> step_cos, _ = rope(x[:, :1], offset=5)  # the next token while decoding with a KV cache
        >>> torch.equal(step_cos[0], rope(torch.zeros(1, 6, 8))[0][5])
        True
        >>> rope(x, position_ids=torch.tensor([[0, 1, 2, 3, 4], [0, 0, 0, 1, 2]]))[0].shape  # left-padded row
        torch.Size([2, 5, 8])
    """

    def __init__(
        self,
        d_head: int,
        rope_theta: float = 10000.0,
        rope_scaling: RopeScaling | None = None,
        scaling_factor: float = 1.0,
        max_position_embeddings: int = 2048,
    ) -> None:
        super().__init__()
        check_size("max_position_embeddings", max_position_embeddings)
        self.d_head = d_head
        self.rope_theta = rope_theta
        self.rope_scaling = rope_scaling
        self.scaling_factor = scaling_factor
        self.max_position_embeddings = max_position_embeddings
        # float32 frequencies (Dh/2,), a plain attribute like the tables below: model.to(torch.bfloat16) must not
        # round them (at position 3,000 a bfloat16 frequency turns a pair by a visibly different angle).
        self.inv_freq: Tensor = rope_inv_freq(d_head, rope_theta, rope_scaling, scaling_factor)
        # float32 tables (positions, Dh), plain attributes: .double() must not touch them, and they are rebuilt
        # on another device rather than moved.
        self._cos: Tensor | None = None
        self._sin: Tensor | None = None

    def _table(self, n_positions: int, device: torch.device) -> tuple[Tensor, Tensor]:
        """The float32 (cos, sin) rows of positions 0 .. >= n_positions - 1, built or grown as needed."""
        stale = (
            self._cos is None
            or self._sin is None
            or self._cos.size(0) < n_positions
            or self._cos.device != device
            # built under torch.inference_mode(): autograd could not save it for a backward pass
            or (self._cos.is_inference() and not torch.is_inference_mode_enabled())
        )
        if stale:
            length = self.max_position_embeddings
            while length < n_positions:
                length *= 2
            inv_freq = self.inv_freq.to(device=device, dtype=torch.float32)  # float32 even in a .double() model
            positions = torch.arange(length, device=device)  # (L,)
            self._cos, self._sin = rope_cos_sin(positions, inv_freq)  # (L, Dh) each
        return self._cos, self._sin

    def forward(self, x: Tensor, position_ids: Tensor | None = None, offset: int = 0) -> tuple[Tensor, Tensor]:
        """Look up the cosines and sines of the positions of ``x``.

        Args:
            x: the tensor the positions belong to, (..., T, C): the result gets its dtype and device, and its T
                positions ``offset .. offset + T - 1`` when ``position_ids`` is None.
            position_ids: explicit integer positions (T,) or (B, T), >= 0 (e.g. counted from each row's first real
                token in a left-padded batch).
            offset: the first position when ``position_ids`` is None: the number of tokens already in the KV cache.

        Returns:
            ``(cos, sin)``, each (T, Dh), or (B, T, Dh) for (B, T) ``position_ids``, in ``x``'s dtype.

        Raises:
            ValueError: ``x`` with fewer than 2 dimensions, ``offset < 0``, both ``position_ids`` and a nonzero
                ``offset``, negative positions, or ``position_ids`` that are not (T,) or (B, T).
            TypeError: ``position_ids`` that is not an integer tensor.
        """
        if not isinstance(x, Tensor) or x.dim() < 2:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"x must be a tensor of shape (..., T, C), got {got}")
        if position_ids is None:
            if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
                raise ValueError(f"offset must be an integer >= 0 (tokens already cached), got {offset!r}")
            T = x.size(-2)
            cos, sin = self._table(offset + T, x.device)
            return cos[offset : offset + T].to(x.dtype), sin[offset : offset + T].to(x.dtype)  # (T, Dh)
        if offset != 0:
            raise ValueError(f"pass position_ids or offset, not both (got offset={offset} and position_ids)")
        if not isinstance(position_ids, Tensor) or position_ids.is_floating_point() or position_ids.is_complex():
            kind = position_ids.dtype if isinstance(position_ids, Tensor) else type(position_ids).__name__
            raise TypeError(f"position_ids must be an integer tensor, got {kind}")
        if position_ids.dim() not in (1, 2) or position_ids.numel() == 0:
            raise ValueError(f"position_ids must have shape (T,) or (B, T), got {tuple(position_ids.shape)}")
        low, high = int(position_ids.min()), int(position_ids.max())
        if low < 0:
            raise ValueError(f"position_ids must be >= 0, got {low}")
        cos, sin = self._table(high + 1, x.device)
        index = position_ids.to(device=x.device, dtype=torch.long)
        return cos[index].to(x.dtype), sin[index].to(x.dtype)  # (T, Dh) or (B, T, Dh)

    def extra_repr(self) -> str:
        """The settings in the module's printout."""
        scaling = f", rope_scaling={self.rope_scaling!r}, scaling_factor={self.scaling_factor}"
        return f"d_head={self.d_head}, rope_theta={self.rope_theta}" + (scaling if self.rope_scaling else "")
