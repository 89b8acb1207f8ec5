"""Input checks shared by the plotting helpers: numbers in, a finite numpy array out, labels that fit.

A tensor that still requires grad, a list with a string in it or an empty array fails deep inside matplotlib
with an error about something else; these checks fail first, naming the argument (`weights is empty`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def to_numpy(values: Any, argname: str) -> np.ndarray:
    """Convert a tensor or array-like to a non-empty, finite float numpy array (detached, on CPU).

    Examples:
        >>> import torch
        >>> to_numpy(torch.ones(2, 3, requires_grad=True), "weights").shape
        (2, 3)
        >>> to_numpy([], "weights")
        Traceback (most recent call last):
        ...
        ValueError: weights is empty (shape (0,)): there is nothing to draw
    """
    if hasattr(values, "detach"):  # a torch.Tensor, without importing torch here
        values = values.detach().to("cpu").float().numpy()
    expected = f"{argname} must be numbers (a tensor, an array or a sequence)"
    if values is None or isinstance(values, str | bytes | Mapping):
        raise TypeError(f"{expected}, got {type(values).__name__}")
    try:
        array = np.asarray(values)
    except ValueError as error:  # ragged nested lists
        raise TypeError(f"{expected}: {error}") from None
    if array.dtype.kind == "O":  # Python objects numpy did not turn into numbers: None, a generator, ...
        if any(value is None for value in array.flat):
            raise TypeError(f"{expected}, got None among them")
        try:
            array = array.astype(float)
        except (TypeError, ValueError) as error:
            raise TypeError(f"{expected}: {error}") from None
    if array.dtype.kind not in "biuf":  # strings, dates, complex numbers
        raise TypeError(f"{expected}, got an array of {array.dtype}")
    array = array.astype(float)
    if array.size == 0:
        raise ValueError(f"{argname} is empty (shape {array.shape}): there is nothing to draw")
    if not np.isfinite(array).all():
        raise ValueError(f"{argname} contains NaN or infinite values")
    return array


def check_labels(
    labels: Sequence[str] | None, size: int, argname: str, axis: str, of: str = "the weights have"
) -> None:
    """Raise a readable error unless `labels` is None or a sequence of one label per row or column (`size`).

    A bare string is rejected rather than read as one label per character; `of` says what has the `size` `axis`.

    Examples:
        >>> check_labels(["a", "b"], 3, "x_labels", "key columns")
        Traceback (most recent call last):
        ...
        ValueError: x_labels has 2 labels but the weights have 3 key columns
    """
    if labels is None:
        return
    if isinstance(labels, str | bytes) or not hasattr(labels, "__len__"):
        raise TypeError(f"{argname} must be a sequence of {size} labels (a list of strings), got {labels!r:.60}")
    if len(labels) != size:
        raise ValueError(f"{argname} has {len(labels)} labels but {of} {size} {axis}")
