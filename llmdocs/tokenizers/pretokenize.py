"""Pre-tokenization: split text into chunks with a regular expression before BPE sees it.

BPE never merges across a chunk boundary, so the split decides which tokens can exist at all. GPT-2's pattern
keeps a word together with the one space before it (`" world"`), splits off English contractions (`'s`, `'ll`),
keeps runs of letters, of digits and of other symbols apart, and leaves a run of spaces before a word as its own
chunk minus the last space (which joins the word). Without it, BPE would learn tokens such as `"dog."`, `"dog!"`
and `"dog?"`, wasting the vocabulary on combinations.

The pattern needs the `regex` package: `\\p{L}` (any letter) and `\\p{N}` (any number) are not supported by
Python's `re`.

References:
    Radford et al., "Language Models are Unsupervised Multitask Learners" (2019), section 2.2;
    the pattern `pat` in openai/gpt-2 `src/encoder.py`.
"""

from __future__ import annotations

from collections.abc import Iterable

import regex

__all__ = ["GPT2_SPLIT_PATTERN", "GPT4_SPLIT_PATTERN", "pretokenize", "split_special"]

GPT2_SPLIT_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
"""GPT-2's split pattern, exactly as in openai/gpt-2 `src/encoder.py` (and tiktoken's `gpt2` encoding)."""

GPT4_SPLIT_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|"""
    r"""\s+(?!\S)|\s"""
)
"""The pattern of tiktoken's `cl100k_base` (GPT-3.5/GPT-4): case-insensitive contractions, numbers of at most
three digits, newlines kept apart."""


def pretokenize(text: str, pattern: str = GPT2_SPLIT_PATTERN) -> list[str]:
    """Split `text` into the chunks that BPE encodes separately.

    Every character of `text` lands in exactly one chunk: `"".join(pretokenize(text)) == text`.

    Args:
        text: Any string.
        pattern: A `regex` pattern; GPT-2's by default.

    Returns:
        The chunks, in order.

    Examples:
        >>> pretokenize("Hello world's 2024 dogs!!   ok")
        ['Hello', ' world', "'s", ' 2024', ' dogs', '!!', '  ', ' ok']
    """
    return regex.findall(pattern, text)


def split_special(text: str, special_tokens: Iterable[str]) -> list[str]:
    """Cut `text` around occurrences of special tokens, keeping them as separate items.

    Longer special tokens win where two overlap (so `<|endoftext|>` is not cut by a shorter `<|end`).

    Args:
        text: Any string.
        special_tokens: The special token strings to cut at.

    Returns:
        Alternating ordinary text and special tokens; even indices are ordinary text (possibly empty), odd
        indices are special tokens. Without special tokens: `[text]`.

    Examples:
        >>> split_special("a<|endoftext|>b", ["<|endoftext|>"])
        ['a', '<|endoftext|>', 'b']
    """
    specials = sorted(set(special_tokens), key=len, reverse=True)
    if not specials:
        return [text]
    return regex.split("(" + "|".join(regex.escape(s) for s in specials) + ")", text)
