"""Logits processors: how a next-token distribution is reshaped before a token is chosen.

Each is a pure function of next-token logits z (B, V), applied in Hugging Face's order by
[process_logits][llmdocs.generation.sampling.process_logits]:

- **repetition penalty** (Keskar et al., 2019, CTRL): the logit of every token already in the sequence is
  divided by the penalty when positive, multiplied by it when negative;
- **temperature**: z / tau, sharper below 1, flatter above;
- **top-k**: keep the k largest logits, set the rest to -inf;
- **top-p** (nucleus, Holtzman et al., 2020): keep the smallest set of most probable tokens whose probabilities
  add up to at least p.

[generation][llmdocs.generation.decoder_only] then takes the argmax or draws from softmax(z).
"""

from __future__ import annotations

from numbers import Integral

import torch
from torch import Tensor


def _check_logits(logits: Tensor) -> None:
    if logits.dim() != 2:
        raise ValueError(f"logits must have shape (B, V), got {tuple(logits.shape)}")
    if logits.size(-1) == 0:  # nothing to choose from: every filter would return an empty row
        raise ValueError(f"logits have an empty vocabulary: shape {tuple(logits.shape)}, expected (B, V) with V >= 1")


def apply_temperature(logits: Tensor, temperature: float) -> Tensor:
    """Divide the logits by the temperature: softmax(z / tau) is flatter for tau > 1, sharper for tau < 1.

    Args:
        logits: (B, V).
        temperature: tau > 0.

    Returns:
        Scaled logits (B, V).

    Raises:
        ValueError: If ``temperature`` is not > 0, or ``logits`` is not (B, V) with V >= 1.

    Examples:
        >>> import torch
        >>> apply_temperature(torch.tensor([[2.0, 1.0]]), 0.5)
        tensor([[4., 2.]])
    """
    if not temperature > 0.0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    _check_logits(logits)
    return logits / temperature


def top_k_filter(logits: Tensor, top_k: int) -> Tensor:
    """Keep the k largest logits of each row (ties with the k-th included); set the rest to -inf.

    Args:
        logits: (B, V).
        top_k: k >= 1 (k >= V keeps everything).

    Returns:
        Filtered logits (B, V).

    Raises:
        TypeError: If ``top_k`` is not an int.
        ValueError: If ``top_k`` < 1 or ``logits`` is not (B, V) with V >= 1.

    References:
        Fan et al., "Hierarchical Neural Story Generation", ACL 2018.

    Examples:
        >>> import torch
        >>> top_k_filter(torch.tensor([[1.0, 3.0, 2.0, 0.0]]), 2)
        tensor([[-inf, 3., 2., -inf]])
    """
    if isinstance(top_k, bool) or not isinstance(top_k, Integral):
        raise TypeError(f"top_k must be an int, got {type(top_k).__name__} {top_k!r}")
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    _check_logits(logits)
    k = min(top_k, logits.size(-1))
    kth_largest = logits.topk(k, dim=-1).values[:, -1:]  # (B, 1)
    return logits.masked_fill(logits < kth_largest, float("-inf"))


def top_p_filter(logits: Tensor, top_p: float) -> Tensor:
    """Nucleus filtering: keep the smallest set of most probable tokens whose probability sum reaches p.

    Sorted by probability, token i is dropped when the tokens before it already hold mass >= p; the most probable
    token always stays.

    Args:
        logits: (B, V).
        top_p: p in (0, 1]; 1 keeps everything.

    Returns:
        Filtered logits (B, V), -inf outside the nucleus.

    Raises:
        ValueError: If ``top_p`` is outside (0, 1] or ``logits`` is not (B, V) with V >= 1.

    References:
        Holtzman et al., "The Curious Case of Neural Text Degeneration", ICLR 2020, section 3.1.

    Examples:
        >>> import torch
        >>> probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])  # 0.5 + 0.3 = 0.8 reaches p = 0.75
        >>> top_p_filter(probs.log(), 0.75).exp()
        tensor([[0.5000, 0.3000, 0.0000, 0.0000]])
    """
    if not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    _check_logits(logits)
    if top_p == 1.0:
        return logits
    sorted_logits, order = logits.sort(dim=-1, descending=True)  # (B, V) each
    probs = sorted_logits.softmax(dim=-1)  # (B, V)
    mass_before = probs.cumsum(dim=-1) - probs  # (B, V) probability of the more likely tokens
    drop_sorted = mass_before >= top_p  # (B, V); position 0 has mass 0 < p: always kept
    drop = drop_sorted.scatter(-1, order, drop_sorted)  # back to vocabulary order
    return logits.masked_fill(drop, float("-inf"))


def apply_repetition_penalty(logits: Tensor, ids: Tensor, penalty: float, mask: Tensor | None = None) -> Tensor:
    """The CTRL repetition penalty (as in Hugging Face): make every token already in ``ids`` less likely.

    z_v <- z_v / penalty if z_v > 0 else z_v * penalty, for each v that occurs in the row (once, however often).

    Args:
        logits: (B, V).
        ids: tokens so far (B, T).
        penalty: > 0; 1 changes nothing, > 1 discourages repetition.
        mask: optional bool (B, T), False at padding that must not count.

    Returns:
        Penalised logits (B, V).

    Raises:
        ValueError: If ``penalty`` is not > 0, or ``logits`` and ``ids`` are not (B, V) (V >= 1) and (B, T).

    References:
        Keskar et al., "CTRL: A Conditional Transformer Language Model for Controllable Generation", 2019,
        section 4.1.

    Examples:
        >>> import torch
        >>> apply_repetition_penalty(torch.tensor([[2.0, -2.0, 1.0]]), torch.tensor([[0, 1, 1]]), 2.0)
        tensor([[ 1., -4.,  1.]])
    """
    if not penalty > 0.0:
        raise ValueError(f"repetition_penalty must be > 0, got {penalty}")
    _check_logits(logits)
    if ids.dim() != 2 or ids.size(0) != logits.size(0):
        raise ValueError(f"ids must have shape (B, T) with B={logits.size(0)} as the logits, got {tuple(ids.shape)}")
    counts = torch.zeros(logits.shape, dtype=torch.long, device=logits.device)  # (B, V)
    present = torch.ones_like(ids) if mask is None else mask.long()  # (B, T)
    seen = counts.scatter_add(-1, ids, present) > 0  # (B, V)
    penalised = torch.where(logits > 0, logits / penalty, logits * penalty)
    return torch.where(seen, penalised, logits)


def process_logits(
    logits: Tensor,
    ids: Tensor,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    repetition_penalty: float = 1.0,
    mask: Tensor | None = None,
) -> Tensor:
    """Repetition penalty, temperature, top-k, then top-p (Hugging Face's order) on next-token logits (B, V).

    Examples:
        >>> import torch
        >>> z = torch.tensor([[3.0, 2.0, 1.0, 0.0]])
        >>> process_logits(z, torch.tensor([[0]]), repetition_penalty=3.0, top_k=2)  # 3 -> 1: ties with 1
        tensor([[1., 2., 1., -inf]])
    """
    if repetition_penalty != 1.0:
        logits = apply_repetition_penalty(logits, ids, repetition_penalty, mask)
    if temperature != 1.0:
        logits = apply_temperature(logits, temperature)
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    return logits
