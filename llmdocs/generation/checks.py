"""Argument checks shared by the generation functions: a readable error that names the argument.

Generation takes many knobs (a model, sizes, ids, numbers), and a wrong one would otherwise fail deep inside torch
(``'>' not supported between instances of 'str' and 'float'``, ``manual_seed expected a long``) or run with a
silent meaning (``beam_size=2.5``). These checks look at Python values only, once per call, never per token; the
checks of token-id tensors are [nn.checks][llmdocs.nn.checks].
"""

from __future__ import annotations

from numbers import Integral, Real

__all__ = ["check_int", "check_model", "check_number"]


def check_int(value: object, name: str, minimum: int | None = None) -> None:
    """Raise TypeError unless ``value`` is an int (a bool is not), ValueError if it is below ``minimum``.

    Examples:
        >>> check_int(4, "beam_size", minimum=1)
        >>> check_int(2.5, "beam_size")
        Traceback (most recent call last):
        ...
        TypeError: beam_size must be an int, got float 2.5
        >>> check_int(0, "beam_size", minimum=1)
        Traceback (most recent call last):
        ...
        ValueError: beam_size must be >= 1, got 0
    """
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


def check_number(value: object, name: str) -> None:
    """Raise TypeError unless ``value`` is a real number (int or float; a bool is not).

    Examples:
        >>> check_number(0.7, "temperature")
        >>> check_number("hot", "temperature")
        Traceback (most recent call last):
        ...
        TypeError: temperature must be a number, got str 'hot'
    """
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")


def check_model(model: object, methods: tuple[str, ...], config_fields: tuple[str, ...], expected: str) -> None:
    """Raise TypeError unless ``model`` has the ``methods`` and ``config.<config_fields>`` that decoding uses.

    Args:
        model: the object passed as ``model``.
        methods: attribute names it must have (``"__call__"`` for a callable).
        config_fields: names its ``config`` must have.
        expected: what a valid model is, for the message (``"a language model such as GPT"``).

    Examples:
        >>> check_model("gpt2", ("__call__", "new_cache"), ("vocab_size",), "a language model such as GPT")
        Traceback (most recent call last):
        ...
        TypeError: model must be a language model such as GPT (with new_cache(), config.vocab_size), got str
    """
    config = getattr(model, "config", None)
    missing = [m for m in methods if not hasattr(model, m)] + [f for f in config_fields if not hasattr(config, f)]
    if missing:
        needs = [f"{m}()" for m in methods if m != "__call__"] + [f"config.{f}" for f in config_fields]
        raise TypeError(f"model must be {expected} (with {', '.join(needs)}), got {type(model).__name__}")
