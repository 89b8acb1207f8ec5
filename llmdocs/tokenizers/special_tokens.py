"""Special tokens: ids that no ordinary text encodes to, such as GPT-2's `<|endoftext|>`.

A special token marks structure (the end of a document, a chat turn) and gets its id after the merges. Two things
make it special when encoding:

- the text is cut around its occurrences before pre-tokenization (`split_special`), so no merge ever spans it;
- whether its *text* in a string becomes its id is a security question: a user who types `<|endoftext|>` into a
  chat should not end the document for the model. `encodable_specials` applies tiktoken's rules: by default every
  special token's text is an error; tokens explicitly allowed become their ids; tokens neither allowed nor
  disallowed are ordinary text.

References:
    openai/tiktoken `core.py` (`Encoding.encode`, `allowed_special` and `disallowed_special`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Literal

import regex

__all__ = ["ENDOFTEXT", "check_special_tokens", "encodable_specials", "split_special"]

ENDOFTEXT = "<|endoftext|>"
"""GPT-2's only special token, id 50256: it separates documents in the training data."""


def check_special_tokens(special_tokens: Iterable[str], name: str = "special_tokens") -> list[str]:
    """The special tokens as a list, or a clear error for a bare string, a non-string or an empty string.

    Args:
        special_tokens: A collection of special token strings.
        name: The argument's name, for the error message.

    Returns:
        The special tokens, in order.

    Raises:
        TypeError: If `special_tokens` is a single string (it would be read as its characters) or holds a non-string.
        ValueError: If a special token is the empty string.

    Examples:
        >>> check_special_tokens(("<|endoftext|>",))
        ['<|endoftext|>']
        >>> check_special_tokens("<|endoftext|>")
        Traceback (most recent call last):
        ...
        TypeError: special_tokens must be a collection of strings, got the string '<|endoftext|>'; ...
    """
    if isinstance(special_tokens, str | bytes):
        raise TypeError(
            f"{name} must be a collection of strings, got the string {special_tokens!r}; "
            f"write [{special_tokens!r}] for one token"
        )
    tokens = list(special_tokens)
    for token in tokens:
        if not isinstance(token, str):
            raise TypeError(f"{name} must hold strings, got {type(token).__name__}: {token!r}")
        if not token:
            raise ValueError(f"{name} contains the empty string; a special token needs at least one character")
    return tokens


def split_special(text: str, special_tokens: Iterable[str]) -> list[str]:
    """Cut `text` around occurrences of special tokens, keeping them as separate items.

    Longer special tokens win where two overlap (so `<|endoftext|>` is not cut by a shorter `<|end`).

    Args:
        text: Any string.
        special_tokens: The special token strings to cut at (non-empty).

    Returns:
        Alternating ordinary text and special tokens; even indices are ordinary text (possibly empty), odd
        indices are special tokens. Without special tokens: `[text]`.

    Raises:
        TypeError: If `text` is not a string, or `special_tokens` is a string or holds a non-string.
        ValueError: If a special token is empty.

    Examples:
        >>> split_special("a<|endoftext|>b", ["<|endoftext|>"])
        ['a', '<|endoftext|>', 'b']
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be str, got {type(text).__name__}")
    specials = sorted(set(check_special_tokens(special_tokens)), key=len, reverse=True)
    if not specials:
        return [text]
    return regex.split("(" + "|".join(regex.escape(s) for s in specials) + ")", text)


def encodable_specials(
    text: str,
    special_tokens: Collection[str],
    allowed_special: Literal["all"] | Collection[str] = frozenset(),
    disallowed_special: Literal["all"] | Collection[str] = "all",
) -> set[str]:
    """tiktoken's rules: the special tokens whose text in `text` becomes their id; an error for disallowed ones.

    Args:
        text: The text to encode.
        special_tokens: All special tokens of the tokenizer.
        allowed_special: Special tokens to turn into their ids, or `"all"`.
        disallowed_special: Special tokens whose text raises an error, or `"all"` (every special token that is
            not allowed). A token neither allowed nor disallowed is ordinary text.

    Returns:
        The allowed special tokens, to cut `text` at with `split_special`.

    Raises:
        ValueError: If `text` contains a disallowed special token, or an argument names an unknown special token.
        TypeError: If `text` is not a string, or `allowed_special` or `disallowed_special` is a string other than
            `"all"`.

    Examples:
        >>> encodable_specials("hi<|endoftext|>", ["<|endoftext|>"], allowed_special="all")
        {'<|endoftext|>'}
        >>> encodable_specials("hi<|endoftext|>", ["<|endoftext|>"], disallowed_special=())  # ordinary text
        set()
        >>> encodable_specials("hi<|endoftext|>", ["<|endoftext|>"])
        Traceback (most recent call last):
        ...
        ValueError: text contains the special token '<|endoftext|>' that is not allowed; ...
    """
    for name, value in (("allowed_special", allowed_special), ("disallowed_special", disallowed_special)):
        if isinstance(value, str) and value != "all":
            raise TypeError(f'{name} must be "all" or a collection of special tokens, got the string {value!r}')
    allowed = set(special_tokens) if allowed_special == "all" else set(allowed_special)
    disallowed = set(special_tokens) - allowed if disallowed_special == "all" else set(disallowed_special)
    unknown = (allowed | disallowed) - set(special_tokens)
    if unknown:
        raise ValueError(f"unknown special tokens {sorted(unknown)}; this tokenizer has {list(special_tokens)}")
    if not isinstance(text, str):
        raise TypeError(f"encode expects str, got {type(text).__name__} (decode bytes to text first)")
    found = [special for special in disallowed if special in text]
    if found:
        special = min(found, key=text.index)  # report the first one in the text
        raise ValueError(
            f"text contains the special token {special!r} that is not allowed; pass "
            f"allowed_special={{{special!r}}} to encode it as one token, or disallowed_special=() to "
            "encode it as ordinary text"
        )
    return allowed
