"""Batches as the training loop sees them: moved to the model's device, checked, counted in tokens, averaged over.

A batch is whatever `get_batch(i)` returns and `loss_fn(model, batch)` accepts: a tensor, or a tuple, list or dict
of tensors (nested as deep as needed). The loop never looks inside except to move the tensors to the model's device
and, when `loss_fn` returns only the loss, to count tokens for the tokens/s figure (the elements of the first
tensor, by convention the input ids). `mean_loss` averages a loss over fixed batches, weighted by those counts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

__all__ = ["Batch", "LossFn", "mean_loss", "move_to_device"]

Batch = Any
"""Whatever `get_batch` returns and `loss_fn` accepts: a tensor, or a tuple/list/dict of tensors."""
LossFn = Callable[[nn.Module, Batch], "torch.Tensor | tuple[torch.Tensor, int]"]


def move_to_device(batch: Batch, device: torch.device) -> Batch:
    """Move every tensor of a (nested tuple/list/dict) batch to `device`.

    Args:
        batch: A tensor or a container of tensors (other values pass through).
        device: The target device.

    Returns:
        The same structure on `device`.

    Examples:
        >>> move_to_device({"x": torch.zeros(2), "n": 3}, torch.device("cpu"))["x"].device
        device(type='cpu')
    """
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: move_to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, tuple | list):
        return type(batch)(move_to_device(v, device) for v in batch)
    return batch


@torch.no_grad()
def mean_loss(model: nn.Module, batches: Iterable[Batch], loss_fn: LossFn) -> float:
    """Average loss over a fixed set of batches, in eval mode (dropout off), without gradients.

    Each batch is weighted by its token count (see `train` for how tokens are counted), so the result is
    a per-token average.

    Args:
        model: The model.
        batches: Evaluation batches (e.g. a list, so every evaluation sees the same data).
        loss_fn: `loss_fn(model, batch) -> loss` or `(loss, n_tokens)`.

    Returns:
        The mean loss.

    Raises:
        ValueError: If `batches` is empty or holds no token at all (an average over nothing).

    Examples:
        >>> model = nn.Linear(2, 1)
        >>> batches = [(torch.ones(4, 2), torch.zeros(4, 1))]
        >>> mse = lambda m, b: nn.functional.mse_loss(m(b[0]), b[1])
        >>> isinstance(mean_loss(model, batches, mse), float)
        True
        >>> mean_loss(model, [], mse)
        Traceback (most recent call last):
        ...
        ValueError: batches is empty: mean_loss needs at least one batch
    """
    was_training = model.training
    model.eval()
    device = _model_device(model)
    total, count, n_batches = 0.0, 0, 0
    try:
        for batch in batches:
            batch = move_to_device(batch, device)
            loss, n_tokens = _loss_and_tokens(loss_fn(model, batch), batch)
            total += loss.item() * n_tokens
            count += n_tokens
            n_batches += 1
    finally:
        model.train(was_training)
    if n_batches == 0:
        raise ValueError("batches is empty: mean_loss needs at least one batch")
    if count == 0:
        raise ValueError(
            f"the {n_batches} batches hold no token: every batch is empty, or holds no tensor to count "
            "(then return (loss, n_tokens) from loss_fn)"
        )
    return total / count


def _check_batch(batch: Batch, index: int) -> Batch:
    """Reject a missing or empty micro-batch with the index that produced it."""
    if batch is None:
        raise TypeError(f"get_batch({index}) returned None instead of a batch")
    first = _first_tensor(batch)
    if first is not None and first.numel() == 0:
        raise ValueError(f"get_batch({index}) returned an empty batch (a tensor of shape {tuple(first.shape)})")
    return batch


def _first_tensor(batch: Batch) -> torch.Tensor | None:
    """The first tensor of a (nested tuple/list/dict) batch, or None."""
    if isinstance(batch, torch.Tensor):
        return batch
    values = batch.values() if isinstance(batch, dict) else batch if isinstance(batch, tuple | list) else ()
    return next((t for t in map(_first_tensor, values) if t is not None), None)


def _loss_and_tokens(output: torch.Tensor | tuple[torch.Tensor, int], batch: Batch) -> tuple[torch.Tensor, int]:
    """Split `loss_fn`'s output into the loss (a 0-d tensor) and a token count, rejecting anything else.

    A per-example loss of shape (B,) would otherwise fail in `backward()` with autograd's "grad can be
    implicitly created only for scalar outputs", which names neither `loss_fn` nor the shape.
    """
    if isinstance(output, tuple):
        if len(output) != 2:
            raise TypeError(f"loss_fn must return loss or (loss, n_tokens), got a tuple of {len(output)} items")
        loss, n_tokens = output
        n_tokens = int(n_tokens)
    else:
        loss, n_tokens = output, _count_tokens(batch)
    if not isinstance(loss, torch.Tensor):
        raise TypeError(f"loss_fn must return the loss as a tensor (or (loss, n_tokens)), got {type(loss).__name__}")
    if loss.numel() != 1:
        raise ValueError(
            f"loss_fn must return a scalar loss (the mean over the batch's tokens), got a tensor of shape "
            f"{tuple(loss.shape)}: reduce it, e.g. with .mean()"
        )
    return loss.reshape(()), n_tokens  # ()


def _count_tokens(batch: Batch) -> int:
    """Elements of the first tensor found in the batch (the input ids, by convention)."""
    if isinstance(batch, torch.Tensor):
        return batch.numel()
    values = batch.values() if isinstance(batch, dict) else batch
    if isinstance(values, Iterable) and not isinstance(values, str):
        for value in values:
            n = _count_tokens(value)
            if n:
                return n
    return 0


def _model_device(model: nn.Module) -> torch.device:
    """Device of the model's first parameter (CPU for a model without parameters)."""
    first = next(model.parameters(), None)
    return first.device if first is not None else torch.device("cpu")
