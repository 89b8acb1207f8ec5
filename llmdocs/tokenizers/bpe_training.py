"""Training byte-pair encoding: repeatedly merge the most frequent adjacent pair of tokens into a new token.

Start from the 256 byte values as tokens. Count every adjacent pair of tokens in the corpus, merge the most
frequent pair everywhere into a new token, and repeat until the vocabulary has the wanted size. The list of
merges, in the order they were learnt, *is* the tokenizer (Sennrich et al., 2016, for words; GPT-2 on bytes).

Done naively, every merge recounts every pair of the whole corpus: O(corpus) per merge, hours for a real
vocabulary. `train_bpe` is incremental, the way production trainers work:

1. **Words, not text.** Pre-tokenization cuts the corpus into chunks ("words") and BPE never merges across a
   chunk boundary, so the corpus is a table `word -> frequency`. A word that occurs 10,000 times is processed once,
   with weight 10,000.
2. **Pair counts and an index.** `counts[pair]` is the weighted number of occurrences of `pair`;
   `where[pair]` is the set of words that contain it. A merge of `(a, b)` visits only `where[(a, b)]`, and in each
   such word only the neighbours of each occurrence change: in `x a b y`, the pairs `(x, a)` and `(b, y)` lose
   one occurrence and `(x, ab)` and `(ab, y)` gain one.
3. **A heap with lazy updates.** The most frequent pair is popped from a max-heap. A count that drops leaves its
   old, too-large entry in the heap; when such a stale entry comes out on top, it is pushed back with its true count
   instead of being used. A count can only grow for pairs that contain the new token, and those get a fresh entry.

Ties between equally frequent pairs go to the smallest pair `(a, b)`, so training is deterministic.

References:
    Sennrich, Haddow and Birch, "Neural Machine Translation of Rare Words with Subword Units" (ACL 2016);
    Radford et al., "Language Models are Unsupervised Multitask Learners" (2019), section 2.2.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from itertools import pairwise
from numbers import Integral
from typing import NamedTuple

from llmdocs.tokenizers.merge_loop import Pair, merge_most_frequent
from llmdocs.tokenizers.pretokenize import GPT2_SPLIT_PATTERN, count_chunks
from llmdocs.tokenizers.special_tokens import check_special_tokens

__all__ = ["MergeStep", "Pair", "merge_pair", "pair_counts", "train_bpe", "train_tokenizer_tables"]


class MergeStep(NamedTuple):
    """One merge learnt by `train_bpe`.

    Attributes:
        pair: The two token ids that were merged.
        new_id: The id of the merged token (an existing id if the same bytes were already a token).
        count: How often the pair occurred in the corpus when it was chosen.
    """

    pair: Pair
    new_id: int
    count: int


def pair_counts(ids: Sequence[int], counts: dict[Pair, int] | None = None, weight: int = 1) -> dict[Pair, int]:
    """Count the adjacent pairs of a token sequence.

    Args:
        ids: Token ids, length T.
        counts: A dict to add to (updated in place); a new one if `None`.
        weight: How much each occurrence counts (the frequency of the word `ids`).

    Returns:
        `counts`, with `weight` added per occurrence; T - 1 occurrences in all.

    Examples:
        >>> pair_counts([1, 2, 3, 1, 2])
        {(1, 2): 2, (2, 3): 1, (3, 1): 1}
        >>> pair_counts([1, 2], {(1, 2): 5}, weight=10)
        {(1, 2): 15}
    """
    counts = {} if counts is None else counts
    for pair in pairwise(ids):
        counts[pair] = counts.get(pair, 0) + weight
    return counts


def merge_pair(ids: Sequence[int], pair: Pair, new_id: int) -> list[int]:
    """Replace every occurrence of `pair` in `ids` by `new_id`, scanning left to right.

    Overlapping occurrences are merged from the left: `[5, 5, 5]` with pair `(5, 5)` gives `[new, 5]`.

    Args:
        ids: Token ids, length T.
        pair: The two ids to merge.
        new_id: The id of the merged token.

    Returns:
        The merged sequence, length T minus the number of merges.

    Examples:
        >>> merge_pair([1, 2, 3, 1, 2], (1, 2), 4)
        [4, 3, 4]
        >>> merge_pair([5, 5, 5], (5, 5), 6)
        [6, 5]
    """
    first, second = pair
    merged: list[int] = []
    i, n = 0, len(ids)
    while i < n:
        if i < n - 1 and ids[i] == first and ids[i + 1] == second:
            merged.append(new_id)
            i += 2
        else:
            merged.append(ids[i])
            i += 1
    return merged


def train_bpe(
    word_counts: Mapping[bytes, int] | Iterable[tuple[bytes, int]],
    vocab_size: int,
    min_frequency: int = 2,
) -> tuple[list[MergeStep], dict[int, bytes]]:
    """Learn byte-level BPE merges from a table of pre-tokenized words and their frequencies.

    Tokens `0..255` are the bytes; each new token gets the next id, unless its bytes are already a token (two
    different merges can spell the same bytes; like the `tokenizers` library, the existing id is reused).

    Args:
        word_counts: `word bytes -> frequency` (e.g. a `Counter` of the UTF-8 encoded pre-tokenized chunks), or
            `(word, frequency)` pairs.
        vocab_size: Stop when the vocabulary (bytes included) has this many tokens; at least 256.
        min_frequency: Stop earlier when the most frequent pair occurs fewer times than this.

    Returns:
        The merges in the order they were learnt, and the vocabulary `id -> bytes`.

    Raises:
        ValueError: If `vocab_size < 256`, `min_frequency < 1`, a frequency is negative, or the corpus is empty
            while merges are asked for.
        TypeError: If `word_counts` is not a mapping or an iterable of `(word, frequency)` pairs (e.g. a string:
            pre-tokenize and count it first, or call `BPETokenizer.train`), `vocab_size` is not an int, a word is
            not `bytes`, or a frequency or `min_frequency` is not an int.

    Warns:
        UserWarning: If training stops before the vocabulary reaches `vocab_size` because no remaining pair of
            adjacent tokens occurs at least `min_frequency` times. The smaller result is correct (the `tokenizers`
            library stops there too, silently); the warning names how many merges were learnt and were asked for.

    Examples:
        >>> merges, vocab = train_bpe({b"low": 5, b"lower": 2, b"newest": 6, b"widest": 3}, vocab_size=259)
        >>> [(vocab[a] + vocab[b], count) for (a, b), new_id, count in merges]
        [(b'es', 9), (b'est', 9), (b'lo', 7)]
        >>> vocab[256], vocab[257], vocab[258]
        (b'es', b'est', b'lo')
    """
    merges, vocab = _train_bpe(word_counts, vocab_size, min_frequency)
    if len(vocab) < vocab_size:
        warnings.warn(_stopped_early(len(merges), len(vocab), vocab_size, min_frequency), stacklevel=2)
    return merges, vocab


def train_tokenizer_tables(
    text: str | Iterable[str],
    vocab_size: int,
    special_tokens: Sequence[str] = (),
    pattern: str = GPT2_SPLIT_PATTERN,
    min_frequency: int = 2,
    *,
    stacklevel: int = 1,
) -> tuple[dict[int, bytes], list[tuple[Pair, int]], dict[str, int]]:
    """The tables `BPETokenizer.train` builds a tokenizer from: vocabulary, merges and special token ids.

    Counts the chunks of `text` (special tokens cut out), learns the merges with `train_bpe`, and gives the special
    tokens the ids after the last ordinary one. The errors and the warning are those of `BPETokenizer.train`.

    Args:
        text: The corpus, one string or an iterable of documents.
        vocab_size: Total size, special tokens included.
        special_tokens: Special token strings.
        pattern: The pre-tokenization regular expression.
        min_frequency: Stop early when the best pair is rarer than this.
        stacklevel: Whose line the warning names: 1 the caller of this function, 2 its caller, and so on.

    Returns:
        The vocabulary `id -> bytes`, the merges `((left_id, right_id), merged_id)` in rank order, and the special
        tokens `text -> id`.

    Examples:
        >>> vocab, merges, specials = train_tokenizer_tables("ab ab cab", 258, ["<|endoftext|>"])
        >>> vocab[256], merges, specials
        (b'ab', [((97, 98), 256)], {'<|endoftext|>': 257})
    """
    special_tokens = check_special_tokens(special_tokens)
    n_special = len(set(special_tokens))
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int):
        raise TypeError(f"vocab_size must be an int, got {type(vocab_size).__name__} {vocab_size!r}")
    if vocab_size < 256 + n_special:
        raise ValueError(f"vocab_size={vocab_size} leaves no room for 256 bytes and {n_special} special tokens")
    steps, vocab = _train_bpe(count_chunks(text, pattern, special_tokens), vocab_size - n_special, min_frequency)
    if len(vocab) + n_special < vocab_size:  # warn in terms of vocab_size with the special tokens, at the caller
        message = _stopped_early(len(steps), len(vocab) + n_special, vocab_size, min_frequency)
        warnings.warn(message, stacklevel=stacklevel + 1)
    specials = {s: len(vocab) + i for i, s in enumerate(dict.fromkeys(special_tokens))}
    return vocab, [(step.pair, step.new_id) for step in steps], specials


def _train_bpe(
    word_counts: Mapping[bytes, int] | Iterable[tuple[bytes, int]], vocab_size: int, min_frequency: int
) -> tuple[list[MergeStep], dict[int, bytes]]:
    """`train_bpe` without its warning (`BPETokenizer.train` warns in terms of its own `vocab_size`)."""
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, Integral):
        raise TypeError(f"vocab_size must be an int, got {type(vocab_size).__name__} {vocab_size!r}")
    if vocab_size < 256:
        raise ValueError(f"vocab_size={vocab_size} is smaller than the 256 byte tokens")
    if isinstance(min_frequency, bool) or not isinstance(min_frequency, Integral):
        raise TypeError(f"min_frequency must be an int, got {type(min_frequency).__name__} {min_frequency!r}")
    if min_frequency < 1:
        raise ValueError(f"min_frequency={min_frequency} must be at least 1")
    words: list[list[int]] = []
    freqs: list[int] = []
    corpus_is_empty = True
    for word, freq in _word_count_items(word_counts):
        if not isinstance(word, bytes | bytearray):
            raise TypeError(f"words must be bytes (UTF-8 encoded chunks), got {type(word).__name__}: {word!r}")
        if isinstance(freq, bool) or not isinstance(freq, Integral):
            raise TypeError(f"frequencies must be ints, got {type(freq).__name__} {freq!r} for {word!r}")
        if freq < 0:
            raise ValueError(f"the frequency of {word!r} is {freq}; frequencies must be >= 0")
        corpus_is_empty = corpus_is_empty and (freq == 0 or len(word) == 0)
        if freq > 0 and len(word) > 1:  # a single byte has no pair: it can never be merged
            words.append(list(word))
            freqs.append(freq)
    if corpus_is_empty and vocab_size > 256:
        raise ValueError(
            f"the corpus is empty, so none of the {vocab_size - 256} merges asked for can be learnt "
            "(a vocabulary of the 256 bytes alone needs no training text: vocab_size=256)"
        )

    vocab = {i: bytes([i]) for i in range(256)}
    id_of = {token: i for i, token in vocab.items()}
    merges: list[MergeStep] = []

    def merge(pair: Pair, count: int) -> int:
        new_bytes = vocab[pair[0]] + vocab[pair[1]]
        new_id = id_of.get(new_bytes)
        if new_id is None:
            new_id = len(vocab)
            vocab[new_id] = new_bytes
            id_of[new_bytes] = new_id
        merges.append(MergeStep(pair, new_id, count))
        return new_id

    merge_most_frequent(words, freqs, min_frequency, merge, done=lambda: len(vocab) >= vocab_size)
    return merges, vocab


def _word_count_items(word_counts: object) -> Iterable[tuple[bytes, int]]:
    """The `(word, frequency)` pairs of `word_counts`; TypeError for text or anything else that is not a table."""
    expected = "a mapping of word bytes to frequencies (e.g. pretokenize.count_chunks(text)) or (word, frequency) pairs"
    if isinstance(word_counts, str | bytes | bytearray):
        raise TypeError(
            f"word_counts must be {expected}, got {type(word_counts).__name__} {word_counts[:20]!r}; "
            "to train on text, call BPETokenizer.train(text, vocab_size)"
        )
    if isinstance(word_counts, Mapping):
        return word_counts.items()
    if not isinstance(word_counts, Iterable):
        raise TypeError(f"word_counts must be {expected}, got {type(word_counts).__name__}")
    return (_as_word_count(item, expected) for item in word_counts)


def _as_word_count(item: object, expected: str) -> tuple[bytes, int]:
    if isinstance(item, str | bytes | bytearray) or not isinstance(item, Sequence) or len(item) != 2:
        raise TypeError(f"word_counts must be {expected}; an item is {type(item).__name__} {item!r}")
    return item[0], item[1]


def _stopped_early(n_merges: int, n_tokens: int, vocab_size: int, min_frequency: int) -> str:
    """The warning of a training run that ran out of frequent pairs before reaching `vocab_size` tokens."""
    n_asked = n_merges + vocab_size - n_tokens  # one merge per missing token
    return (
        f"BPE training learnt {n_merges} merge{'s' * (n_merges != 1)} of the {n_asked} that vocab_size={vocab_size} "
        f"asks for, and stopped at {n_tokens} tokens: no remaining pair of adjacent tokens occurs at least "
        f"min_frequency={min_frequency} times. Train on more text or lower min_frequency for a bigger vocabulary."
    )
