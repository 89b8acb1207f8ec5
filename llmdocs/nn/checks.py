"""Input checks that every model shares: token ids of the right type, shape and range.

An embedding lookup with an id out of range fails deep inside ``nn.Embedding`` with an index error; these
checks fail first, in the reader's terms (``ids contains id 3 but vocab_size=3``).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["check_token_ids"]


def check_token_ids(ids: Tensor, vocab_size: int, name: str = "ids") -> None:
    """Raise a readable error unless ``ids`` is an integer (B, T) tensor with values in [0, V).

    Examples:
        >>> import torch
        >>> check_token_ids(torch.tensor([[1, 2]]), vocab_size=3)
        >>> check_token_ids(torch.tensor([[1, 3]]), vocab_size=3)
        Traceback (most recent call last):
        ...
        ValueError: ids contains id 3 but vocab_size=3 (valid ids are 0..2)
    """
    if not isinstance(ids, Tensor) or ids.dtype.is_floating_point or ids.dtype == torch.bool:
        kind = ids.dtype if isinstance(ids, Tensor) else type(ids).__name__
        raise TypeError(f"{name} must be an integer tensor of token ids, got {kind}")
    if ids.dim() != 2:
        raise ValueError(f"{name} must have shape (B, T), got {tuple(ids.shape)}")
    if ids.numel() == 0:
        raise ValueError(f"{name} is empty: shape {tuple(ids.shape)}")
    low, high = int(ids.min()), int(ids.max())
    if low < 0:
        raise ValueError(f"{name} contains negative id {low}")
    if high >= vocab_size:
        raise ValueError(f"{name} contains id {high} but vocab_size={vocab_size} (valid ids are 0..{vocab_size - 1})")
