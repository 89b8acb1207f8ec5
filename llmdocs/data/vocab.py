"""A character-level vocabulary: the smallest tokenizer, enough for the generated tasks.

Ids `0..3` are the special tokens `<pad>`, `<bos>`, `<eos>`, `<unk>` (pad is 0, matching
`TransformerConfig.pad_id`); then one id per character seen when the vocabulary was built, in sorted order
so that the same texts always give the same ids.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch

__all__ = ["SPECIAL_TOKENS", "CharVocab", "encode_pairs"]

SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>", "<unk>")
"""Padding, start and end of a sequence, unknown character: ids 0 to 3 of every
[CharVocab][llmdocs.data.vocab.CharVocab]."""


class CharVocab:
    """Map characters to ids and back.

    Args:
        chars: The ordinary characters (no duplicates); ids start after the special tokens.

    Raises:
        TypeError: If a char is not a str.
        ValueError: If `chars` is empty, has duplicates or strings longer than one character.

    Examples:
        >>> vocab = CharVocab.build(["März", "Mai"])
        >>> len(vocab), vocab.pad_id, vocab.bos_id, vocab.eos_id
        (10, 0, 1, 2)
        >>> ids = vocab.encode("Mai", add_bos=True, add_eos=True)
        >>> ids
        [1, 4, 5, 6, 2]
        >>> vocab.decode(ids)
        'Mai'
        >>> vocab.decode(vocab.encode("Mx"))  # 'x' is unknown
        'M<unk>'
    """

    def __init__(self, chars: Sequence[str]) -> None:
        for i, c in enumerate(chars):
            if not isinstance(c, str):
                raise TypeError(f"chars[{i}] must be a str (one character), got {type(c).__name__}")
        if len(chars) == 0:  # as CharVocab.build([]): a vocabulary of special tokens only encodes everything as <unk>
            raise ValueError("chars is empty: a vocabulary needs at least one ordinary character")
        if len(set(chars)) != len(chars) or any(len(c) != 1 for c in chars):
            raise ValueError("chars must be distinct single characters")
        self.chars = list(chars)
        self.itos: list[str] = [*SPECIAL_TOKENS, *self.chars]
        self.stoi: dict[str, int] = {c: i for i, c in enumerate(self.chars, start=len(SPECIAL_TOKENS))}

    pad_id = 0
    bos_id = 1
    eos_id = 2
    unk_id = 3

    @classmethod
    def build(cls, texts: Iterable[str]) -> CharVocab:
        """Vocabulary of every character in `texts`, sorted.

        Args:
            texts: The corpus (strings).

        Returns:
            The vocabulary.

        Raises:
            TypeError: If a text is not a str.
            ValueError: If the texts hold no character at all.
        """
        chars: set[str] = set()
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"texts[{i}] must be a str, got {type(text).__name__}")
            chars.update(text)
        if not chars:
            raise ValueError("texts hold no character: a vocabulary needs a non-empty corpus")
        return cls(sorted(chars))

    def __len__(self) -> int:
        """Vocabulary size `V`, special tokens included."""
        return len(self.itos)

    def encode(self, text: str, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        """Ids of the characters of `text` (unknown characters -> `unk_id`).

        Args:
            text: The string.
            add_bos: Prepend `bos_id`.
            add_eos: Append `eos_id`.

        Returns:
            The ids.

        Raises:
            TypeError: If `text` is not a str.
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        ids = [self.stoi.get(c, self.unk_id) for c in text]
        return [self.bos_id] * add_bos + ids + [self.eos_id] * add_eos

    def decode(self, ids: Iterable[int]) -> str:
        """Text of `ids`: stops at the first `eos_id`, skips `pad_id` and `bos_id`.

        Args:
            ids: Token ids (a list or a 1-D tensor).

        Returns:
            The string.

        Raises:
            ValueError: If an id is not in `[0, len(self))`.
        """
        out = []
        for i in ids:
            i = int(i)
            if not 0 <= i < len(self.itos):
                raise ValueError(f"id {i} is not in the vocabulary (ids 0..{len(self.itos) - 1})")
            if i == self.eos_id:
                break
            if i not in (self.pad_id, self.bos_id):
                out.append(self.itos[i])
        return "".join(out)

    def encode_batch(self, texts: Sequence[str], add_bos: bool = False, add_eos: bool = False) -> torch.Tensor:
        """Encode and right-pad with `pad_id` to the longest text.

        Args:
            texts: `B` strings.
            add_bos: Prepend `bos_id` to each.
            add_eos: Append `eos_id` to each.

        Returns:
            `(B, L)` int64 ids, `L` the longest encoding.

        Raises:
            TypeError: If `texts` is a single str instead of a list of them.
            ValueError: If `texts` is empty.

        Examples:
            >>> CharVocab.build(["ab"]).encode_batch(["ab", "a"], add_eos=True)
            tensor([[4, 5, 2],
                    [4, 2, 0]])
        """
        if isinstance(texts, str):
            raise TypeError(f"texts must be a list of strings, got a str (write [{texts[:20]!r}] for one text)")
        if len(texts) == 0:
            raise ValueError("texts is empty: a batch needs at least one text")
        encoded = [self.encode(t, add_bos, add_eos) for t in texts]
        out = torch.full((len(encoded), max(map(len, encoded), default=0)), self.pad_id)  # (B, L)
        for row, ids in enumerate(encoded):
            out[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (store it beside a checkpoint)."""
        return {"type": "char", "chars": self.chars}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CharVocab:
        """Inverse of `to_dict`.

        Args:
            data: The dict from `to_dict`.

        Returns:
            The vocabulary.
        """
        return cls(data["chars"])


def encode_pairs(
    pairs: Sequence[tuple[str, str]], src_vocab: CharVocab, tgt_vocab: CharVocab
) -> tuple[torch.Tensor, torch.Tensor]:
    """Tensors for a sequence-to-sequence task: padded sources and `<bos> ... <eos>` targets.

    Args:
        pairs: `N` `(source, target)` strings.
        src_vocab: Vocabulary of the sources.
        tgt_vocab: Vocabulary of the targets.

    Returns:
        `src` `(N, S)` and `tgt` `(N, T)` int64 ids, right-padded with 0; `tgt[:, :-1]` is the decoder
        input and `tgt[:, 1:]` the labels (teacher forcing).

    Raises:
        TypeError: If a pair is not two strings.
        ValueError: If `pairs` is empty.

    Examples:
        >>> v = CharVocab.build(["ab"])
        >>> src, tgt = encode_pairs([("ab", "ba"), ("a", "b")], v, v)
        >>> src.shape, tgt.shape
        (torch.Size([2, 2]), torch.Size([2, 4]))
    """
    if len(pairs) == 0:
        raise ValueError("pairs is empty: pass at least one (source, target) pair")
    for i, pair in enumerate(pairs):
        if not isinstance(pair, tuple | list) or len(pair) != 2 or not all(isinstance(t, str) for t in pair):
            raise TypeError(f"pairs[{i}] must be a (source, target) pair of strings, got {pair!r}")
    src = src_vocab.encode_batch([s for s, _ in pairs])  # (N, S)
    tgt = tgt_vocab.encode_batch([t for _, t in pairs], add_bos=True, add_eos=True)  # (N, T)
    return src, tgt
