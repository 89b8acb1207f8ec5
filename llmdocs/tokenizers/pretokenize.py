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

from collections import Counter
from collections.abc import Iterable

import regex

from llmdocs.tokenizers.special_tokens import split_special

__all__ = ["GPT2_SPLIT_PATTERN", "GPT4_SPLIT_PATTERN", "count_chunks", "pretokenize"]

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

    Raises:
        TypeError: If `text` is not a string.
        ValueError: If `text` is not valid Unicode (a lone surrogate cannot be encoded as UTF-8).

    Examples:
        >>> pretokenize("Hello world's 2024 dogs!!   ok")
        ['Hello', ' world', "'s", ' 2024', ' dogs', '!!', '  ', ' ok']
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be str, got {type(text).__name__} (decode bytes to text first)")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise ValueError(f"text is not valid Unicode (cannot be encoded as UTF-8): {err}") from None
    return regex.findall(pattern, text)


def count_chunks(
    text: str | Iterable[str], pattern: str = GPT2_SPLIT_PATTERN, special_tokens: Iterable[str] = ()
) -> dict[bytes, int]:
    """The table BPE trains on: every chunk of a corpus, UTF-8 encoded, with its number of occurrences.

    Special tokens are cut out first, so that no chunk (and no merge) contains them.

    Args:
        text: The corpus, one string or an iterable of documents.
        pattern: The pre-tokenization regular expression.
        special_tokens: Special token strings to remove.

    Returns:
        `chunk bytes -> count`, in order of first occurrence.

    Raises:
        TypeError: If `text` is not a string or an iterable of strings (bytes must be decoded first).

    Examples:
        >>> count_chunks(["the cat", "the dog<|endoftext|>"], special_tokens=["<|endoftext|>"])
        {b'the': 2, b' cat': 1, b' dog': 1}
    """
    if isinstance(text, bytes | bytearray) or not isinstance(text, str | Iterable):
        raise TypeError(f"text must be a str or an iterable of str, got {type(text).__name__} (decode bytes first)")
    counts: Counter[str] = Counter()
    for document in [text] if isinstance(text, str) else text:
        if not isinstance(document, str):
            raise TypeError(f"training text must be str, got {type(document).__name__}")
        for piece in split_special(document, special_tokens)[::2]:  # odd items are special tokens
            counts.update(pretokenize(piece, pattern))
    return {chunk.encode("utf-8"): count for chunk, count in counts.items()}
