"""The simplest tokenizer: one token per character.

Its vocabulary is the set of characters seen in training, so it is tiny for English (about 65 characters for
Shakespeare) but sequences are long, one token per character, and any character it has not seen (a Chinese
character, an emoji) cannot be encoded at all. Byte-level BPE fixes both problems; this class is the baseline it
is compared with.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable

__all__ = ["CharTokenizer"]


class CharTokenizer:
    """Map each character to an id, in sorted order of the characters.

    Args:
        chars: The characters of the vocabulary (duplicates are ignored).
        unk_token: If given, unknown characters become this token (the last id) instead of raising.

    Raises:
        ValueError: If `chars` is empty, or an item of `chars` is not a single character.
        TypeError: If `chars` is not an iterable of strings, or `unk_token` is not a string.

    Examples:
        >>> tok = CharTokenizer.train("hello world")
        >>> tok.vocab_size, tok.encode("hold")
        (8, [3, 5, 4, 1])
        >>> tok.decode([3, 5, 4, 1])
        'hold'
    """

    def __init__(self, chars: Iterable[str], unk_token: str | None = None) -> None:
        if not isinstance(chars, Iterable):
            raise TypeError(f"chars must be an iterable of characters (e.g. a str), got {type(chars).__name__}")
        self.chars: list[str] = sorted(set(chars))
        if not all(isinstance(c, str) for c in self.chars):
            raise TypeError("chars must be strings of one character")
        if any(len(c) != 1 for c in self.chars):
            raise ValueError("chars must be single characters")
        if not self.chars:
            raise ValueError("chars is empty: a character vocabulary needs at least one character")
        if unk_token is not None and not isinstance(unk_token, str):
            raise TypeError(f"unk_token must be a str or None, got {type(unk_token).__name__}")
        self.unk_token = unk_token
        self.stoi: dict[str, int] = {c: i for i, c in enumerate(self.chars)}
        self.itos: list[str] = [*self.chars, *([unk_token] if unk_token is not None else [])]

    @classmethod
    def train(cls, text: str, unk_token: str | None = None) -> CharTokenizer:
        """The vocabulary of every character in `text`.

        Args:
            text: The corpus.
            unk_token: See the class.

        Returns:
            The tokenizer.

        Raises:
            ValueError: If `text` is empty.
            TypeError: If `text` is not a string.
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be str, got {type(text).__name__}")
        return cls(text, unk_token=unk_token)

    @property
    def vocab_size(self) -> int:
        """Number of ids (the unknown token included)."""
        return len(self.itos)

    def encode(self, text: str) -> list[int]:
        """One id per character.

        Args:
            text: Any string.

        Returns:
            `len(text)` ids.

        Raises:
            ValueError: If a character is not in the vocabulary and there is no `unk_token`.
            TypeError: If `text` is not a string.

        Examples:
            >>> CharTokenizer.train("abc").encode("cab")
            [2, 0, 1]
            >>> CharTokenizer.train("abc", unk_token="<unk>").encode("a😀")
            [0, 3]
        """
        if not isinstance(text, str):
            raise TypeError(f"encode expects str, got {type(text).__name__}")
        if self.unk_token is not None:
            unk_id = len(self.chars)
            return [self.stoi.get(c, unk_id) for c in text]
        unknown = sorted({c for c in text if c not in self.stoi})
        if unknown:
            raise ValueError(f"{len(unknown)} characters are not in the vocabulary, e.g. {unknown[:5]}")
        return [self.stoi[c] for c in text]

    def decode(self, ids: Iterable[int]) -> str:
        """Concatenate the characters of `ids`.

        Raises:
            ValueError: If an id is out of range.
            TypeError: If `ids` is not an iterable of integers.
        """
        if isinstance(ids, str | bytes) or not isinstance(ids, Iterable):
            raise TypeError(f"ids must be an iterable of token ids, got {type(ids).__name__}")
        chars = []
        for i in ids:
            try:
                i = operator.index(i)  # int, NumPy integer or 0-d integer tensor
            except TypeError:
                raise TypeError(f"token ids must be integers, got {type(i).__name__} {i!r}") from None
            if not 0 <= i < len(self.itos):
                raise ValueError(f"id {i} is outside 0..{len(self.itos) - 1}")
            chars.append(self.itos[i])
        return "".join(chars)
