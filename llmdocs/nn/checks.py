"""Input checks that every model shares: token ids of the right type, shape and range.

An embedding lookup with an id out of range fails deep inside ``nn.Embedding`` with an index error; these
checks fail first, in the reader's terms (``ids contains id 3 but vocab_size=3``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from llmdocs.nn.feedforward import ACTIVATIONS

__all__ = ["check_model_config", "check_position_ids", "check_size", "check_token_ids"]


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
    if not isinstance(ids, Tensor) or ids.dtype not in (torch.int64, torch.int32):
        kind = ids.dtype if isinstance(ids, Tensor) else type(ids).__name__
        raise TypeError(f"{name} must be an integer tensor of token ids (int64 or int32: embeddings), got {kind}")
    if ids.dim() != 2:
        raise ValueError(f"{name} must have shape (B, T), got {tuple(ids.shape)}")
    if ids.numel() == 0:
        raise ValueError(f"{name} is empty: shape {tuple(ids.shape)}")
    low, high = int(ids.min()), int(ids.max())
    if low < 0:
        raise ValueError(f"{name} contains negative id {low}")
    if high >= vocab_size:
        raise ValueError(f"{name} contains id {high} but vocab_size={vocab_size} (valid ids are 0..{vocab_size - 1})")


def check_size(name: str, value: object) -> int:
    """Return ``value`` if it is an integer >= 1 (a count or a width; bools are not sizes), else raise ValueError.

    Examples:
        >>> check_size("n_layers", 0)
        Traceback (most recent call last):
        ...
        ValueError: n_layers must be an integer >= 1, got 0
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return value


def check_position_ids(position_ids: Tensor, B: int, T: int, context_length: int) -> None:
    """Raise a readable error unless ``position_ids`` is an integer (B, T) or (1, T) tensor in [0, context_length).

    Examples:
        >>> import torch
        >>> check_position_ids(torch.tensor([[0, 1, 9]]), B=2, T=3, context_length=8)
        Traceback (most recent call last):
        ...
        ValueError: position_ids must be in [0, context_length=8), got values 0..9
    """
    if not isinstance(position_ids, Tensor) or position_ids.is_floating_point() or position_ids.dtype == torch.bool:
        raise TypeError(f"position_ids must be an integer tensor, got {getattr(position_ids, 'dtype', position_ids)!r}")
    if position_ids.shape not in ((B, T), (1, T)):
        raise ValueError(f"position_ids must be (B, T)={(B, T)} or (1, T), got {tuple(position_ids.shape)}")
    low, high = torch.stack(torch.aminmax(position_ids)).tolist()  # one sync, and only for explicit positions
    if low < 0 or high >= context_length:
        raise ValueError(f"position_ids must be in [0, context_length={context_length}), got values {low}..{high}")


def check_model_config(config: Any, sizes: Iterable[str]) -> None:
    """Raise a readable error unless a Transformer config's shared fields are valid.

    Every model config of the course (GPT, BERT, ...) has ``d_model``, ``n_heads``, ``dropout``, ``activation``
    and ``layer_norm_eps``; this checks those, plus the size fields it is given, so each config's
    ``__post_init__`` only checks what is its own.

    Args:
        config: The config dataclass.
        sizes: Names of the fields that must be integers >= 1 (``"vocab_size"``, ``"n_layers"``, ...).

    Raises:
        ValueError: A size that is not an integer >= 1 (bools are not sizes), ``d_model`` not divisible by
            ``n_heads``, ``dropout`` outside [0, 1), an unknown ``activation`` or ``layer_norm_eps <= 0``.

    Examples:
        >>> from types import SimpleNamespace
        >>> cfg = SimpleNamespace(d_model=10, n_heads=3, dropout=0.0, activation="gelu", layer_norm_eps=1e-5)
        >>> check_model_config(cfg, ["d_model", "n_heads"])
        Traceback (most recent call last):
        ...
        ValueError: d_model=10 is not divisible by n_heads=3
    """
    for name in sizes:
        check_size(name, getattr(config, name))
    if config.d_model % config.n_heads != 0:
        raise ValueError(f"d_model={config.d_model} is not divisible by n_heads={config.n_heads}")
    if not 0.0 <= config.dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {config.dropout}")
    if config.activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {config.activation!r}")
    if not config.layer_norm_eps > 0.0:
        raise ValueError(f"layer_norm_eps must be > 0, got {config.layer_norm_eps}")
