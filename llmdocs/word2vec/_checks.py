"""Input checks of `train_word2vec`: the corpus, the two (V,) tables and the sizes, each failing with its name.

Without them a bad noise table fails deep in `torch.multinomial` ("invalid multinomial distribution"), a list
given as `keep_prob` with an AttributeError, and `start_epoch=-1` silently trains an extra "epoch 0".
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Literal

import torch


def check_int(name: str, value: object, minimum: int) -> int:
    """`value` as an int >= `minimum` (numpy integers too, not bools), or an error naming `name`.

    Examples:
        >>> check_int("epochs", 3, minimum=1)
        3
        >>> check_int("batch_size", "8", minimum=1)
        Traceback (most recent call last):
        ...
        TypeError: batch_size must be an int >= 1, got str '8'
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int >= {minimum}, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def check_table(name: str, table: object, vocab_size: int, kind: Literal["probabilities", "weights", "unused"]) -> None:
    """Check a (V,) table: `keep_prob` holds `"probabilities"` in [0, 1]; `noise` holds `"weights"` >= 0 with a
    positive sum (they need not sum to 1), or is `"unused"` (the full softmax draws no noise words).

    Examples:
        >>> check_table("noise", torch.tensor([0.5, 0.5]), 2, "weights")
        >>> check_table("noise", torch.zeros(2), 2, "weights")
        Traceback (most recent call last):
        ...
        ValueError: noise must be finite weights >= 0 with a positive sum (noise_distribution gives them), ...
    """
    source = "keep_probabilities" if kind == "probabilities" else "noise_distribution"
    if not isinstance(table, torch.Tensor):
        raise TypeError(f"{name} must be a (V,) tensor ({source} gives it), got {type(table).__name__}")
    if tuple(table.shape) != (vocab_size,):
        raise ValueError(f"{name} must have shape (V,)=({vocab_size},), got {tuple(table.shape)}")
    if table.is_complex() or table.dtype == torch.bool:
        raise TypeError(f"{name} must hold real numbers ({source} gives them), got {table.dtype}")
    values = table.detach().double()  # (V,)
    if kind == "weights":
        if not (bool(torch.isfinite(values).all()) and bool((values >= 0).all()) and float(values.sum()) > 0):
            raise ValueError(
                f"{name} must be finite weights >= 0 with a positive sum ({source} gives them), "
                f"got min {float(values.min()):g}, max {float(values.max()):g}, sum {float(values.sum()):g}"
            )
    elif kind == "probabilities" and not bool(((values >= 0) & (values <= 1)).all()):  # NaN fails too
        raise ValueError(
            f"{name} must be probabilities in [0, 1] ({source} gives them), "
            f"got min {float(values.min()):g}, max {float(values.max()):g}"
        )


def check_sentences(sentences: Sequence[torch.Tensor], vocab_size: int) -> None:
    """Raise a readable error unless `sentences` is a corpus word2vec can learn from."""
    if isinstance(sentences, str):
        raise TypeError("sentences must be a list of 1-D id tensors (Vocabulary.encode gives them), got a str")
    if len(sentences) == 0:
        raise ValueError("sentences is empty: pass the corpus as 1-D id tensors (Vocabulary.encode gives them)")
    for i, sentence in enumerate(sentences):
        if not isinstance(sentence, torch.Tensor):
            raise TypeError(f"sentences[{i}] must be a tensor of word ids (Vocabulary.encode), got {type(sentence)}")
        if sentence.dim() != 1 or sentence.is_floating_point():
            got = f"shape {tuple(sentence.shape)}, {sentence.dtype}"
            raise TypeError(f"sentences[{i}] must be a 1-D tensor of integer word ids, got {got}")
    if max(len(s) for s in sentences) < 2:
        raise ValueError(
            "no sentence has 2 or more words: word2vec learns each word from the words around it in its sentence, "
            "so one-word sentences give no training example"
        )
    ids = torch.cat([s for s in sentences if len(s)])  # (N,)
    if int(ids.min()) < 0 or int(ids.max()) >= vocab_size:
        raise ValueError(f"word ids must be in [0, vocab_size={vocab_size}), got {int(ids.min())}..{int(ids.max())}")
