"""Freezing weights and counting what trains: the first step of every parameter-efficient method.

A parameter with ``requires_grad = False`` gets no gradient, so the optimizer never changes it, and no optimizer
state (Adam keeps two numbers per trained weight) is allocated for it. Fine-tuning a 7 B model in full needs
memory for 7 B gradients and 14 B Adam moments; LoRA freezes all of them and trains adapters with well under 1 %
of the parameters. The numbers that tell which regime you are in:

    trainable% = 100 * trainable / total

printed on one line in the format of peft's ``print_trainable_parameters``, so that the two can be compared
directly. Counts come from [count_parameters][llmdocs.profiling.count_parameters]: a tensor shared by two modules
(tied input and output embeddings) is counted once, as in peft and ``transformers``.

Freezing changes gradients only: dropout still follows ``model.train()`` / ``model.eval()``.

References:
    Hu et al., "LoRA: Low-Rank Adaptation of Large Language Models", ICLR 2022, section 4.2 (which weights to
    adapt); Hugging Face peft, ``PeftModel.get_nb_trainable_parameters`` and ``print_trainable_parameters``.
"""

from __future__ import annotations

import fnmatch
import inspect
from collections.abc import Callable, Iterable
from typing import NamedTuple

from torch import nn

from llmdocs.profiling import count_parameters

__all__ = [
    "TrainableSummary",
    "freeze",
    "mark_trainable",
    "trainable_parameter_names",
    "trainable_parameters_summary",
    "unfreeze",
]

ParameterFilter = str | Iterable[str] | Callable[[str, nn.Parameter], bool]
"""Which parameters: a glob pattern on the dotted name (``"blocks.*.self_attn.*"``), several patterns, or a
predicate ``(name, parameter) -> bool``."""


def _check_module(module: object) -> None:
    if not isinstance(module, nn.Module):
        raise TypeError(f"expected a torch.nn.Module, got {type(module).__name__}")


def freeze(module: nn.Module) -> nn.Module:
    """Stop every parameter of ``module`` from training (``requires_grad = False``).

    Args:
        module: A model or any part of it, e.g. ``model.tok_embed``.

    Returns:
        ``module`` itself, for chaining.

    Raises:
        TypeError: If ``module`` is not an ``nn.Module``.

    Examples:
        >>> from torch import nn
        >>> layer = freeze(nn.Linear(4, 3))
        >>> [p.requires_grad for p in layer.parameters()]
        [False, False]
    """
    _check_module(module)
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    return module


def unfreeze(module: nn.Module) -> nn.Module:
    """Let every parameter of ``module`` train again (``requires_grad = True``).

    Args:
        module: A model or any part of it.

    Returns:
        ``module`` itself, for chaining.

    Raises:
        TypeError: If ``module`` is not an ``nn.Module``.

    Examples:
        >>> from torch import nn
        >>> layer = unfreeze(freeze(nn.Linear(4, 3)))
        >>> [p.requires_grad for p in layer.parameters()]
        [True, True]
    """
    _check_module(module)
    for parameter in module.parameters():
        parameter.requires_grad_(True)
    return module


def _patterns(which: str | Iterable[str]) -> list[str]:
    """The glob patterns of ``which`` (one pattern or several), checked."""
    patterns = [which] if isinstance(which, str) else list(which)
    if not all(isinstance(p, str) for p in patterns):
        raise TypeError(f"name patterns must be strings, got {patterns!r}")
    if not patterns or not all(patterns):
        raise ValueError(f"which must hold at least one non-empty name pattern, got {which!r}")
    return patterns


def mark_trainable(model: nn.Module, which: ParameterFilter) -> list[str]:
    """Make exactly the chosen parameters trainable and freeze all the others.

    A parameter is chosen when one of its names matches: a tensor shared by two modules (tied embeddings) has
    both names, and choosing either trains the one tensor.

    Args:
        model: The model.
        which: Glob pattern(s) on dotted parameter names, as ``model.named_parameters()`` gives them
            (``"lm_head.*"``, ``"*.bias"``, ``"blocks.11.*"``; ``*`` also matches dots), or a predicate
            ``(name, parameter) -> bool``.

    Returns:
        The names of the trainable parameters, in ``named_parameters()`` order.

    Raises:
        TypeError: If ``model`` is not an ``nn.Module`` or ``which`` is not a pattern, patterns or a predicate.
        ValueError: If a pattern matches no parameter (a misspelt pattern would otherwise freeze what it meant to
            train), the predicate matches none, a pattern is empty, or ``model`` has no parameters.

    Examples:
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
        >>> mark_trainable(model, "2.*")  # the last layer only
        ['2.weight', '2.bias']
        >>> mark_trainable(model, lambda name, parameter: parameter.dim() == 1)  # BitFit: the biases only
        ['0.bias', '2.bias']
    """
    _check_module(model)
    if not callable(which) and not isinstance(which, str | Iterable):
        raise TypeError(f"which must be a name pattern, patterns or a predicate (name, parameter), got {which!r}")
    if callable(which):
        try:
            inspect.signature(which).bind("name", None)
        except TypeError as error:
            raise TypeError(f"which: a predicate must take (name, parameter) and return a bool; {error}") from None
        except ValueError:  # a builtin without a signature: let the call decide
            pass
    patterns = None if callable(which) else _patterns(which)
    named = list(model.named_parameters(remove_duplicate=False))  # a tied tensor under each of its names
    if not named:
        raise ValueError(f"{type(model).__name__} has no parameters: there is nothing to mark trainable")
    if patterns is None:
        chosen = {id(p) for name, p in named if which(name, p)}
        unmatched = [] if chosen else ["the predicate"]
    else:
        # Every pattern must match: in ["blocks.0.*", "lm_haed.*"] the typo would otherwise go unnoticed.
        hits = {pattern: {id(p) for name, p in named if fnmatch.fnmatchcase(name, pattern)} for pattern in patterns}
        unmatched = [repr(pattern) for pattern, ids in hits.items() if not ids]
        chosen = set().union(*hits.values())
    if unmatched:
        names = [name for name, _ in model.named_parameters()]
        raise ValueError(f"no parameter matches {', '.join(unmatched)}; the parameters are named like {names[:4]}")
    for parameter in model.parameters():
        parameter.requires_grad_(id(parameter) in chosen)
    return trainable_parameter_names(model)


def trainable_parameter_names(model: nn.Module) -> list[str]:
    """The names of the parameters that will train, in ``named_parameters()`` order (shared tensors once).

    Examples:
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
        >>> _ = freeze(model[0])
        >>> trainable_parameter_names(model)
        ['1.weight', '1.bias']
    """
    _check_module(model)
    return [name for name, parameter in model.named_parameters() if parameter.requires_grad]


class TrainableSummary(NamedTuple):
    """Trainable and total parameter counts; ``str()`` gives peft's one-line summary.

    Attributes:
        trainable: Parameters with ``requires_grad``.
        total: All parameters, the frozen weights of quantized layers included (see
            [trainable_parameters_summary][llmdocs.finetuning.freezing.trainable_parameters_summary]).
        fraction: ``trainable / total`` in [0, 1] (0 for a model without parameters).
    """

    trainable: int
    total: int
    fraction: float

    def __str__(self) -> str:
        # peft's expression, 100 * t / a rather than 100 * fraction, so the rounding of the last digit agrees
        percent = 100 * self.trainable / self.total if self.total else 0.0
        return f"trainable params: {self.trainable:,d} || all params: {self.total:,d} || trainable%: {percent:.4f}"


def trainable_parameters_summary(model: nn.Module) -> TrainableSummary:
    """Count the trainable and the total parameters of ``model`` (each shared tensor once).

    A quantized linear layer (QLoRA's [Linear4bit][llmdocs.finetuning.qlora.Linear4bit]: ``in_features``,
    ``out_features`` and ``dequantize()``) stores its weight as buffers of packed codes, not as a parameter; its
    D_out x D_in weights count among the frozen ones all the same, as peft counts bitsandbytes' 4-bit weights.

    Args:
        model: Any module.

    Returns:
        ``(trainable, total, fraction)``; ``print()`` it for peft's line.

    Raises:
        TypeError: If ``model`` is not an ``nn.Module``.

    Examples:
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))  # 15 + 8 parameters
        >>> _ = mark_trainable(model, "2.*")
        >>> summary = trainable_parameters_summary(model)
        >>> summary.trainable, summary.total, round(summary.fraction, 4)
        (8, 23, 0.3478)
        >>> print(summary)
        trainable params: 8 || all params: 23 || trainable%: 34.7826
    """
    _check_module(model)
    trainable = count_parameters(model, trainable_only=True)
    quantized = sum(
        module.in_features * module.out_features
        for module in model.modules()
        if callable(getattr(module, "dequantize", None))
        and isinstance(getattr(module, "in_features", None), int)
        and isinstance(getattr(module, "out_features", None), int)
        and not isinstance(getattr(module, "weight", None), nn.Parameter)
    )
    total = count_parameters(model) + quantized
    return TrainableSummary(trainable, total, trainable / total if total else 0.0)
