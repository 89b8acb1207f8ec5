"""A byte-level BPE tokenizer, compatible with GPT-2: train it, encode and decode any text, save and load it.

Encoding text takes four steps, each of them reversible:

1. cut out the special tokens that are allowed (`<|endoftext|>`), which map straight to their ids;
2. pre-tokenize the rest with GPT-2's regular expression (`llmdocs.tokenizers.pretokenize`);
3. turn each chunk into its UTF-8 bytes, i.e. into byte tokens;
4. apply the learnt merges to each chunk, always the one learnt earliest (lowest rank) first, until none applies.

Decoding concatenates the bytes of the tokens and decodes them as UTF-8. Since every string is a sequence of
bytes, every string can be encoded: there is no `<unk>` token. Loaded with GPT-2's `vocab.json` and `merges.txt`
(`BPETokenizer.from_gpt2_files`), the tokenizer gives exactly GPT-2's ids.

References:
    Radford et al., "Language Models are Unsupervised Multitask Learners" (2019), section 2.2;
    openai/gpt-2 `src/encoder.py`; Karpathy's minbpe.
"""

from __future__ import annotations

import heapq
import json
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from itertools import pairwise
from os import PathLike
from pathlib import Path
from typing import Literal

from llmdocs.tokenizers.bpe_training import Pair, merge_pair, train_bpe
from llmdocs.tokenizers.byte_unicode import token_bytes, token_str
from llmdocs.tokenizers.pretokenize import GPT2_SPLIT_PATTERN, pretokenize, split_special

__all__ = ["ENDOFTEXT", "BPETokenizer"]

ENDOFTEXT = "<|endoftext|>"
"""GPT-2's only special token, id 50256: it separates documents in the training data."""

_CACHE_LIMIT = 100_000  # chunks remembered by `encode`; the cache is emptied when it is full
_LONG_CHUNK = 24  # bytes; longer chunks (e.g. a Chinese clause, a run of spaces) are merged with a heap


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
        self._ranks: dict[Pair, tuple[int, int]] = {}  # pair -> (rank, merged id)
        for rank, ((a, b), new_id) in enumerate(self.merges):
            if a not in self.vocab or b not in self.vocab or new_id not in self.vocab:
                raise ValueError(f"merge {rank} {(a, b)} -> {new_id} uses an id that is not in the vocabulary")
            if self.vocab[a] + self.vocab[b] != self.vocab[new_id]:
                raise ValueError(
                    f"merge {rank}: {self.vocab[a]!r} + {self.vocab[b]!r} does not spell token {new_id} "
                    f"{self.vocab[new_id]!r}"
                )
            self._ranks.setdefault((a, b), (rank, new_id))
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
        """Learn a tokenizer from a corpus (see `llmdocs.tokenizers.bpe_training.train_bpe` for the algorithm).

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
            ValueError: If `vocab_size` leaves no room for the 256 bytes and the special tokens.
            TypeError: If `text` holds something other than strings.

        Examples:
            >>> tok = BPETokenizer.train("ab ab cab", vocab_size=258, special_tokens=["<|endoftext|>"])
            >>> tok.vocab_size, tok.special_tokens, tok.token_bytes(256)
            (258, {'<|endoftext|>': 257}, b'ab')
        """
        documents = [text] if isinstance(text, str) else list(text)
        n_special = len(set(special_tokens))
        if vocab_size < 256 + n_special:
            raise ValueError(f"vocab_size={vocab_size} leaves no room for 256 bytes and {n_special} special tokens")
        word_counts: Counter[str] = Counter()
        for document in documents:
            if not isinstance(document, str):
                raise TypeError(f"training text must be str, got {type(document).__name__}")
            for piece in split_special(document, special_tokens)[::2]:  # odd items are special tokens
                word_counts.update(pretokenize(piece, pattern))
        encoded = {word.encode("utf-8"): count for word, count in word_counts.items()}
        steps, vocab = train_bpe(encoded, vocab_size - n_special, min_frequency=min_frequency)
        specials = {s: len(vocab) + i for i, s in enumerate(dict.fromkeys(special_tokens))}
        return cls(vocab, [(step.pair, step.new_id) for step in steps], specials, pattern)

    @classmethod
    def from_gpt2_files(
        cls,
        vocab_json: str | PathLike[str],
        merges_txt: str | PathLike[str],
        special_tokens: Sequence[str] = (ENDOFTEXT,),
        pattern: str = GPT2_SPLIT_PATTERN,
    ) -> BPETokenizer:
        """Load a tokenizer from GPT-2-format files: `vocab.json` (token -> id) and `merges.txt`.

        Tokens are written with GPT-2's printable byte characters (`Ġthe` is `b" the"`, see
        `llmdocs.tokenizers.byte_unicode`); `merges.txt` has a `#version` line, then one merge per line, `left
        right`, in rank order.

        Args:
            vocab_json: Path of `vocab.json`.
            merges_txt: Path of `merges.txt`.
            special_tokens: Entries of `vocab.json` that are special tokens, not byte strings.
            pattern: The pre-tokenization regular expression.

        Returns:
            The tokenizer; with GPT-2's files it encodes exactly like GPT-2.

        Raises:
            ValueError: If a special token is not in `vocab.json`, or a merge uses unknown tokens.
        """
        token_to_id: dict[str, int] = json.loads(Path(vocab_json).read_text(encoding="utf-8"))
        missing = [s for s in special_tokens if s not in token_to_id]
        if missing:
            raise ValueError(f"special tokens {missing} are not in {vocab_json}")
        specials = {s: token_to_id[s] for s in special_tokens}
        vocab = {i: token_bytes(token) for token, i in token_to_id.items() if token not in specials}
        merges: list[tuple[Pair, int]] = []
        for line_no, line in enumerate(Path(merges_txt).read_text(encoding="utf-8").splitlines(), start=1):
            if line.startswith("#version") or not line.strip():
                continue
            parts = line.split(" ")
            if len(parts) != 2 or any(p not in token_to_id for p in [*parts, "".join(parts)]):
                raise ValueError(f"{merges_txt}:{line_no}: {line!r} is not a merge of two tokens of {vocab_json}")
            left, right = parts
            merges.append(((token_to_id[left], token_to_id[right]), token_to_id[left + right]))
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
            >>> sorted(p.name for p in folder.iterdir())
            ['merges.txt', 'tokenizer_config.json', 'vocab.json']
            >>> print((folder / "merges.txt").read_text().splitlines()[1])
            e l
            >>> BPETokenizer.load(folder).encode("hello") == tok.encode("hello")
            True
        """
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        token_to_id = {token_str(token): i for i, token in sorted(self.vocab.items())}
        token_to_id.update(self.special_tokens)
        (folder / "vocab.json").write_text(json.dumps(token_to_id, ensure_ascii=False, indent=0), encoding="utf-8")
        lines = ["#version: 0.2"] + [
            f"{token_str(self.vocab[a])} {token_str(self.vocab[b])}" for (a, b), _ in self.merges
        ]
        (folder / "merges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        config = {"pattern": self.pattern, "special_tokens": list(self.special_tokens)}
        (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
        return folder

    @classmethod
    def load(cls, directory: str | PathLike[str]) -> BPETokenizer:
        """Read a tokenizer written by `save`.

        Args:
            directory: A folder with `vocab.json`, `merges.txt` and `tokenizer_config.json`.

        Returns:
            An identical tokenizer.

        Raises:
            FileNotFoundError: If a file is missing.
        """
        folder = Path(directory)
        config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
        return cls.from_gpt2_files(
            folder / "vocab.json", folder / "merges.txt", config["special_tokens"], config["pattern"]
        )

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

        Examples:
            >>> tok = BPETokenizer.train("low lower lowest " * 20, vocab_size=260)
            >>> small = tok.truncated(2)
            >>> trained = BPETokenizer.train("low lower lowest " * 20, vocab_size=258)
            >>> len(small.vocab), small.merges == trained.merges
            (258, True)
        """
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
        """
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

        Ranks matter, not counts: a merge learnt early was frequent in the training data, and later merges were
        learnt on text where the early ones had already been applied, so they must be applied in the same order.
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
        cached = self._cache.get(chunk)
        if cached is not None:
            return cached
        ranks = self._ranks
        ids = [self.byte_ids[b] for b in chunk.encode("utf-8")]
        if len(ids) > _LONG_CHUNK:  # same result, O(n log n) instead of O(n^2)
            ids = _merge_with_heap(ids, ranks)
        else:
            while len(ids) >= 2:
                best = min(pairwise(ids), key=lambda p: ranks.get(p, (len(ranks), 0)))
                if best not in ranks:
                    break
                ids = merge_pair(ids, best, ranks[best][1])
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
        if not isinstance(text, str):
            raise TypeError(f"encode expects str, got {type(text).__name__} (decode bytes to text first)")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as err:
            raise ValueError(f"text is not valid Unicode (cannot be encoded as UTF-8): {err}") from None
        ids: list[int] = []
        for chunk in pretokenize(text, self.pattern):
            ids.extend(self.encode_chunk(chunk))
        return ids

    def encode(
        self,
        text: str,
        allowed_special: Literal["all"] | Collection[str] = frozenset(),
        disallowed_special: Literal["all"] | Collection[str] = "all",
    ) -> list[int]:
        """Encode `text`, with tiktoken's rules for special tokens.

        Special tokens in user text are a security question (a user who types `<|endoftext|>` should not end the
        document for the model), so by default their text is an error. Allow them explicitly where the text is
        trusted; a special token that is neither allowed nor disallowed is encoded as ordinary text.

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
        allowed = set(self.special_tokens) if allowed_special == "all" else set(allowed_special)
        disallowed = set(self.special_tokens) - allowed if disallowed_special == "all" else set(disallowed_special)
        unknown = (allowed | disallowed) - set(self.special_tokens)
        if unknown:
            raise ValueError(
                f"unknown special tokens {sorted(unknown)}; this tokenizer has {list(self.special_tokens)}"
            )
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
        """
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
            ValueError: If an id is not in the vocabulary (or, with `errors="strict"`, the bytes are not UTF-8).

        Examples:
            >>> tok = BPETokenizer.train("", vocab_size=256)
            >>> ids = tok.encode("日本")  # 2 characters, 6 bytes, 6 byte tokens
            >>> tok.decode(ids), tok.decode(ids[:4])
            ('日本', '日�')
        """
        return self.decode_bytes(ids).decode("utf-8", errors=errors)

    def __repr__(self) -> str:
        return (
            f"BPETokenizer(vocab_size={self.vocab_size}, merges={len(self.merges)}, "
            f"special_tokens={list(self.special_tokens)})"
        )


def _merge_with_heap(ids: list[int], ranks: Mapping[Pair, tuple[int, int]]) -> list[int]:
    """Apply the merges to one long chunk: the same result as the loop of `encode_chunk`, in O(n log n).

    The loop rescans all n pairs after every merge. Here the pairs that are merges sit in a heap keyed by
    (rank, position), and the tokens in a linked list. All occurrences of the lowest rank are merged left to right
    (overlaps skipped, like `merge_pair`) before the new pairs they form enter the heap, exactly as the loop does.
    Heap entries remember the two tokens they were made for; one whose tokens have changed since is skipped.
    """
    n = len(ids)
    tokens = list(ids)
    alive = [True] * n
    next_pos = list(range(1, n + 1))  # n = no next token
    prev_pos = list(range(-1, n - 1))  # -1 = no previous token
    heap = [(ranks[p][0], i, p) for i, p in enumerate(pairwise(ids)) if p in ranks]
    heapq.heapify(heap)
    while heap:
        rank = heap[0][0]
        merged: list[int] = []
        while heap and heap[0][0] == rank:  # every occurrence of this merge, left to right
            _, i, pair = heapq.heappop(heap)
            j = next_pos[i]
            if not alive[i] or j >= n or (tokens[i], tokens[j]) != pair:
                continue  # stale: i or j was merged since this entry was made
            tokens[i] = ranks[pair][1]
            alive[j] = False
            next_pos[i] = next_pos[j]
            if next_pos[j] < n:
                prev_pos[next_pos[j]] = i
            merged.append(i)
        for i in merged:  # the pairs the new tokens form with their neighbours
            if not alive[i]:
                continue
            for left in (prev_pos[i], i):
                right = next_pos[left] if left >= 0 else n
                if left >= 0 and right < n and (tokens[left], tokens[right]) in ranks:
                    pair = (tokens[left], tokens[right])
                    heapq.heappush(heap, (ranks[pair][0], left, pair))
    return [token for token, keep in zip(tokens, alive, strict=True) if keep]
