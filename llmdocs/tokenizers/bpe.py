"""A byte-level BPE tokenizer, compatible with GPT-2: train it, encode and decode any text, save and load it.

Encoding text takes four steps, each of them reversible:

1. cut out the special tokens that are allowed (`<|endoftext|>`), which map straight to their ids;
2. pre-tokenize the rest with GPT-2's regular expression (`llmdocs.tokenizers.pretokenize`);
3. turn each chunk into its UTF-8 bytes, i.e. into byte tokens;
4. apply the learnt merges to each chunk, always the one learnt earliest (lowest rank) first, until none applies.

Decoding concatenates the bytes of the tokens and decodes them as UTF-8. Since every string is a sequence of
bytes, every string can be encoded: there is no `<unk>` token. Loaded with GPT-2's `vocab.json` and `merges.txt`
(`BPETokenizer.from_gpt2_files`), the tokenizer gives exactly GPT-2's ids.

Step 4 is `llmdocs.tokenizers.bpe_encoding`, the training behind `BPETokenizer.train` is
`llmdocs.tokenizers.bpe_training`, and the files are read and written by `llmdocs.tokenizers.bpe_files`.

References:
    Radford et al., "Language Models are Unsupervised Multitask Learners" (2019), section 2.2;
    openai/gpt-2 `src/encoder.py`; Karpathy's minbpe.
"""

from __future__ import annotations

import codecs
import operator
from collections.abc import Collection, Iterable, Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Literal

from llmdocs.tokenizers.bpe_encoding import apply_merges, merge_ranks
from llmdocs.tokenizers.bpe_files import read_gpt2_files, read_tokenizer_config, write_tokenizer_files
from llmdocs.tokenizers.bpe_training import Pair, train_tokenizer_tables
from llmdocs.tokenizers.pretokenize import GPT2_SPLIT_PATTERN, pretokenize
from llmdocs.tokenizers.special_tokens import ENDOFTEXT, encodable_specials, split_special

__all__ = ["ENDOFTEXT", "BPETokenizer"]

_CACHE_LIMIT = 100_000  # chunks remembered by `encode`; the cache is emptied when it is full


class BPETokenizer:
    """Byte-level BPE: ordinary tokens are byte strings built by merges, plus optional special tokens.

    Build one with `train`, `load` or `from_gpt2_files` rather than by hand.

    Args:
        vocab: `id -> bytes` of the ordinary tokens; must contain the 256 single bytes.
        merges: `((left_id, right_id), merged_id)` in rank order (the order they were learnt).
        special_tokens: `text -> id` of the special tokens; their ids must not be ordinary ids.
        pattern: The pre-tokenization regular expression.

    Raises:
        ValueError: If a single byte is missing from `vocab`, a merge does not spell its token's bytes, or ids
            collide.

    Examples:
        >>> tok = BPETokenizer.train("low lower lowest " * 20, vocab_size=260)
        >>> [tok.token_bytes(i) for i in range(256, 260)]
        [b'lo', b'low', b' low', b' lowe']
        >>> ids = tok.encode("lowest slow")
        >>> ids, tok.decode(ids)
        ([257, 101, 115, 116, 32, 115, 257], 'lowest slow')
    """

    def __init__(
        self,
        vocab: Mapping[int, bytes],
        merges: Sequence[tuple[Pair, int]],
        special_tokens: Mapping[str, int] | None = None,
        pattern: str = GPT2_SPLIT_PATTERN,
    ) -> None:
        self.vocab: dict[int, bytes] = dict(vocab)
        self.merges: list[tuple[Pair, int]] = [((int(a), int(b)), int(new)) for (a, b), new in merges]
        self.special_tokens: dict[str, int] = dict(special_tokens or {})
        self.pattern = pattern
        id_of = {token: i for i, token in self.vocab.items()}
        missing = [b for b in range(256) if bytes([b]) not in id_of]
        if missing:
            raise ValueError(f"the vocabulary lacks {len(missing)} of the 256 single bytes, e.g. byte {missing[0]}")
        self.byte_ids: list[int] = [id_of[bytes([b])] for b in range(256)]  # byte value -> token id
        self._ranks = merge_ranks(self.vocab, self.merges)  # pair -> (rank, merged id)
        clashes = {text: i for text, i in self.special_tokens.items() if i in self.vocab}
        if clashes or len(set(self.special_tokens.values())) != len(self.special_tokens):
            raise ValueError(f"special token ids must be distinct and not ordinary ids, got {self.special_tokens}")
        self._special_ids = {i: text for text, i in self.special_tokens.items()}
        self._cache: dict[str, list[int]] = {}

    # ----------------------------------------------------------------------------------------------- building
    @classmethod
    def train(
        cls,
        text: str | Iterable[str],
        vocab_size: int,
        special_tokens: Sequence[str] = (),
        pattern: str = GPT2_SPLIT_PATTERN,
        min_frequency: int = 2,
    ) -> BPETokenizer:
        """Learn a tokenizer from a corpus (the algorithm: `llmdocs.tokenizers.bpe_training.train_bpe`).

        The tables come from [train_tokenizer_tables][llmdocs.tokenizers.bpe_training.train_tokenizer_tables].

        Args:
            text: The corpus, one string or an iterable of documents.
            vocab_size: Total size, special tokens included (GPT-2: 50,257 = 256 bytes + 50,000 merges + 1).
            special_tokens: Special token strings, given the last ids. Their occurrences in `text` are cut out
                before training, so no merge learns them.
            pattern: The pre-tokenization regular expression.
            min_frequency: Stop early when the best pair is rarer than this (the vocabulary is then smaller).

        Returns:
            The trained tokenizer.

        Raises:
            ValueError: If `vocab_size` leaves no room for the 256 bytes and the special tokens, `min_frequency` is
                below 1, a special token is empty, or `text` is empty and `vocab_size` asks for merges.
            TypeError: If `text` is not a string or strings, `vocab_size` is not an int, or `special_tokens` is a
                bare string.

        Warns:
            UserWarning: If the corpus runs out of pairs that occur `min_frequency` times before the vocabulary
                reaches `vocab_size`; the tokenizer is then smaller, and the warning says by how much.

        Examples:
            >>> tok = BPETokenizer.train("ab ab cab", vocab_size=258, special_tokens=["<|endoftext|>"])
            >>> tok.vocab_size, tok.special_tokens, tok.token_bytes(256)
            (258, {'<|endoftext|>': 257}, b'ab')
        """
        tables = train_tokenizer_tables(text, vocab_size, special_tokens, pattern, min_frequency, stacklevel=2)
        vocab, merges, specials = tables
        return cls(vocab, merges, specials, pattern)

    @classmethod
    def from_gpt2_files(
        cls,
        vocab_json: str | PathLike[str],
        merges_txt: str | PathLike[str],
        special_tokens: Sequence[str] = (ENDOFTEXT,),
        pattern: str = GPT2_SPLIT_PATTERN,
    ) -> BPETokenizer:
        """Load a tokenizer from GPT-2-format files, `vocab.json` and `merges.txt` (`llmdocs.tokenizers.bpe_files`).

        Args:
            vocab_json: Path of `vocab.json`.
            merges_txt: Path of `merges.txt`.
            special_tokens: Entries of `vocab.json` that are special tokens, not byte strings.
            pattern: The pre-tokenization regular expression.

        Returns:
            The tokenizer; with GPT-2's files it encodes exactly like GPT-2.

        Raises:
            ValueError: If a special token is not in `vocab.json`, or a merge uses unknown tokens.
            FileNotFoundError: If a file is missing.
        """
        vocab, merges, specials = read_gpt2_files(vocab_json, merges_txt, special_tokens)
        return cls(vocab, merges, specials, pattern)

    def save(self, directory: str | PathLike[str]) -> Path:
        """Write `vocab.json`, `merges.txt` (GPT-2's formats) and `tokenizer_config.json` to `directory`.

        Args:
            directory: Created if needed.

        Returns:
            The directory.

        Examples:
            >>> tok = BPETokenizer.train("hello hello help", vocab_size=260, special_tokens=["<|endoftext|>"])
            >>> folder = tok.save("my-tokenizer")
            >>> print((folder / "merges.txt").read_text().splitlines()[1])  # the first merge
            e l
            >>> BPETokenizer.load(folder).encode("hello") == tok.encode("hello")
            True
        """
        return write_tokenizer_files(directory, self.vocab, self.merges, self.special_tokens, self.pattern)

    @classmethod
    def load(cls, directory: str | PathLike[str]) -> BPETokenizer:
        """Read a tokenizer written by `save`.

        Args:
            directory: A folder with `vocab.json`, `merges.txt` and `tokenizer_config.json`.

        Returns:
            An identical tokenizer.

        Raises:
            FileNotFoundError: If a file is missing.
            ValueError: If a file is malformed.
        """
        special_tokens, pattern = read_tokenizer_config(directory)
        folder = Path(directory)
        return cls.from_gpt2_files(folder / "vocab.json", folder / "merges.txt", special_tokens, pattern)

    def truncated(self, n_merges: int) -> BPETokenizer:
        """The tokenizer made of the first `n_merges` merges only.

        Training stops when the vocabulary is full, so this is exactly the tokenizer that training with a
        smaller vocabulary would have produced: one training run gives every smaller size. Special tokens keep
        their ids.

        Args:
            n_merges: How many merges to keep, `0 <= n_merges <= len(self.merges)`.

        Returns:
            A new tokenizer with `256 + n_merges` ordinary tokens (fewer if merges reuse a token).

        Raises:
            ValueError: If `n_merges` is out of range.
            TypeError: If `n_merges` is not an int.

        Examples:
            >>> tok = BPETokenizer.train("low lower lowest " * 20, vocab_size=260)
            >>> small = tok.truncated(2)
            >>> trained = BPETokenizer.train("low lower lowest " * 20, vocab_size=258)
            >>> len(small.vocab), small.merges == trained.merges
            (258, True)
        """
        if isinstance(n_merges, bool) or not isinstance(n_merges, int):
            raise TypeError(f"n_merges must be an int, got {type(n_merges).__name__} {n_merges!r}")
        if not 0 <= n_merges <= len(self.merges):
            raise ValueError(f"n_merges={n_merges} is outside 0..{len(self.merges)}")
        merges = self.merges[:n_merges]
        keep = set(self.byte_ids) | {new_id for _, new_id in merges}
        vocab = {i: token for i, token in self.vocab.items() if i in keep}
        return BPETokenizer(vocab, merges, self.special_tokens, self.pattern)

    # ------------------------------------------------------------------------------------------------ queries
    @property
    def vocab_size(self) -> int:
        """Number of ids, i.e. the largest id + 1 (the size of a model's embedding table)."""
        return max([*self.vocab, *self.special_tokens.values()]) + 1

    def token_bytes(self, token_id: int) -> bytes:
        """The bytes of one token (a special token gives its UTF-8 text).

        Raises:
            ValueError: If `token_id` is not an id of this tokenizer.
            TypeError: If `token_id` is not an integer (an int, a NumPy integer or a 0-d integer tensor).
        """
        try:
            token_id = operator.index(token_id)
        except TypeError:
            raise TypeError(f"token ids must be integers, got {type(token_id).__name__} {token_id!r}") from None
        if token_id in self.vocab:
            return self.vocab[token_id]
        if token_id in self._special_ids:
            return self._special_ids[token_id].encode("utf-8")
        raise ValueError(f"token id {token_id} is not in the vocabulary (size {self.vocab_size})")

    def tokens(self, ids: Iterable[int]) -> list[str]:
        """Each token as text, for display (a token that ends inside a character shows `�`).

        Examples:
            >>> tok = BPETokenizer.train("ab ab", vocab_size=257)
            >>> tok.tokens(tok.encode("ab é"))
            ['ab', ' ', '�', '�']
        """
        return [self.token_bytes(i).decode("utf-8", errors="replace") for i in ids]

    # ------------------------------------------------------------------------------------------------ encoding
    def encode_chunk(self, chunk: str) -> list[int]:
        """BPE on one pre-tokenized chunk: apply the merge of lowest rank that occurs, until none does.

        The merging is [apply_merges][llmdocs.tokenizers.bpe_encoding.apply_merges], on the chunk's UTF-8 bytes.
        Results are cached per chunk: real text repeats its words, so most chunks are looked up, not merged.

        Args:
            chunk: One chunk from `pretokenize` (any string works, but then it is not split first).

        Returns:
            Token ids of the chunk.

        Examples:
            >>> tok = BPETokenizer.train("low lower lowest " * 20, vocab_size=260)
            >>> tok.encode_chunk(" lowest"), tok.tokens(tok.encode_chunk(" lowest"))
            ([259, 115, 116], [' lowe', 's', 't'])
        """
        if not isinstance(chunk, str):
            raise TypeError(f"chunk must be str, got {type(chunk).__name__}")
        cached = self._cache.get(chunk)
        if cached is not None:
            return cached
        ids = apply_merges([self.byte_ids[b] for b in chunk.encode("utf-8")], self._ranks)
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[chunk] = ids
        return ids

    def encode_ordinary(self, text: str) -> list[int]:
        """Encode `text` with no special tokens at all: `<|endoftext|>` is just 13 characters of text.

        Args:
            text: Any string that is valid Unicode (no lone surrogates).

        Returns:
            Token ids.

        Raises:
            TypeError: If `text` is not a `str`.
            ValueError: If `text` cannot be encoded as UTF-8.
        """
        ids: list[int] = []
        for chunk in pretokenize(text, self.pattern):  # which checks that text is a valid str
            ids.extend(self.encode_chunk(chunk))
        return ids

    def encode(
        self,
        text: str,
        allowed_special: Literal["all"] | Collection[str] = frozenset(),
        disallowed_special: Literal["all"] | Collection[str] = "all",
    ) -> list[int]:
        """Encode `text`, with tiktoken's rules for special tokens.

        By default the text of a special token is an error (a user who types `<|endoftext|>` must not end the
        document); allow it where the text is trusted (the rules:
        [encodable_specials][llmdocs.tokenizers.special_tokens.encodable_specials]).

        Args:
            text: Any valid Unicode string.
            allowed_special: Special tokens to turn into their ids, or `"all"`.
            disallowed_special: Special tokens whose text raises an error, or `"all"` (every special token that is
                not allowed).

        Returns:
            Token ids.

        Raises:
            ValueError: If `text` contains a disallowed special token, or an argument names an unknown special
                token.
            TypeError: If `text` is not a `str`.

        Examples:
            >>> tok = BPETokenizer.train("hi there", vocab_size=257, special_tokens=["<|endoftext|>"])
            >>> tok.encode("hi<|endoftext|>", allowed_special="all")
            [104, 105, 256]
            >>> len(tok.encode("hi<|endoftext|>", disallowed_special=()))  # 2 + 13 ordinary bytes
            15
            >>> tok.encode("hi<|endoftext|>")
            Traceback (most recent call last):
            ...
            ValueError: text contains the special token '<|endoftext|>' ...
        """
        allowed = encodable_specials(text, self.special_tokens, allowed_special, disallowed_special)
        if not allowed:
            return self.encode_ordinary(text)
        ids: list[int] = []
        for i, piece in enumerate(split_special(text, allowed)):
            ids.extend([self.special_tokens[piece]] if i % 2 else self.encode_ordinary(piece))
        return ids

    # ------------------------------------------------------------------------------------------------ decoding
    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """The exact bytes of a token sequence, even when it stops in the middle of a character.

        Raises:
            ValueError: If an id is not in the vocabulary.
            TypeError: If `ids` is not an iterable of integers.
        """
        if isinstance(ids, str | bytes) or not isinstance(ids, Iterable):
            raise TypeError(f"ids must be an iterable of token ids, got {type(ids).__name__}")
        return b"".join(self.token_bytes(i) for i in ids)

    def decode(self, ids: Iterable[int], errors: str = "replace") -> str:
        """Turn ids back into text: `decode(encode(text)) == text` for every valid string.

        Args:
            ids: Token ids.
            errors: How to decode bytes that are not valid UTF-8 (a sequence cut inside a character):
                `"replace"` gives `�` like GPT-2, `"strict"` raises.

        Returns:
            The text.

        Raises:
            ValueError: If an id is not in the vocabulary, `errors` is not an error handler (or, with
                `errors="strict"`, the bytes are not UTF-8).
            TypeError: If `ids` is not an iterable of integers.

        Examples:
            >>> tok = BPETokenizer.train("", vocab_size=256)
            >>> ids = tok.encode("日本")  # 2 characters, 6 bytes, 6 byte tokens
            >>> tok.decode(ids), tok.decode(ids[:4])
            ('日本', '日�')
        """
        try:
            codecs.lookup_error(errors)
        except LookupError:
            raise ValueError(f"errors={errors!r} is not an error handler, e.g. 'replace' or 'strict'") from None
        return self.decode_bytes(ids).decode("utf-8", errors=errors)

    def __repr__(self) -> str:
        return (
            f"BPETokenizer(vocab_size={self.vocab_size}, merges={len(self.merges)}, "
            f"special_tokens={list(self.special_tokens)})"
        )
