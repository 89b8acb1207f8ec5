"""Training a WordPiece vocabulary: BPE merges on words, where a piece that continues a word is written `##piece`.

`WordPieceTokenizer` needs a vocabulary; this module makes one from a corpus, the way the `tokenizers` library's
`WordPieceTrainer` (used to train BERT-style tokenizers today) does:

1. **Words.** Cut the corpus into words with BERT's basic tokenizer (`basic_tokenize`, the tokenizer's own first
   step) and count them: the corpus becomes a table `word -> frequency`.
2. **Alphabet.** Every character of the corpus is a token (`h`), and every character that occurs after the first
   position of a word is also a continuation token (`##h`). A word starts as its characters:
   `"hug" -> ["h", "##u", "##g"]`. With `limit_alphabet`, only the most frequent characters are kept, and words
   that use another character are left out (the tokenizer turns such a word into `[UNK]` anyway).
3. **Merges.** Repeatedly merge the most frequent pair of adjacent pieces into a new token, as in BPE; the new
   token is spelled by gluing the pieces and keeping only the first one's `##`: `"h" + "##u" -> "hu"`,
   `"##u" + "##g" -> "##ug"`. Stop at `vocab_size` tokens, or when no pair occurs `min_frequency` times.

The vocabulary is the special tokens, the alphabet and the merged tokens; the merges themselves are thrown away,
because WordPiece encodes greedily, longest match first, not by replaying merges.

**Why frequency, not likelihood.** The original WordPiece (Schuster and Nakajima, 2012) picks the pair that most
increases the likelihood of the corpus under a unigram model, i.e. the largest `count(ab) / (count(a) count(b))`.
That score favours pairs of rare pieces and, more awkwardly, the score of `(a, x)` *rises* when a merge makes `a`
rarer, so scores cannot be updated only where the merged pair occurred. BERT's own vocabulary tool was never
published; the `tokenizers` library, which most WordPiece vocabularies are trained with today, uses the frequency
of the pair (its `WordPieceTrainer` is its `BpeTrainer` with `continuing_subword_prefix="##"`). This trainer does
the same, so its vocabulary can be compared to the library's token for token; and it reuses the incremental pair
counts and lazy max-heap of `llmdocs.tokenizers.bpe_training`: a merge visits only the words that contain the pair.

Ties between equally frequent pairs go to the smallest pair of ids. Ids are: the special tokens, the characters in
code point order, the `##` characters in code point order, then the merged tokens in the order they were learnt. The
`tokenizers` library gives the `##` characters ids in an order that depends on its hash tables and changes from run
to run, so the two trainers can break a tie differently (and so can two runs of the library): on 1 MB of
Shakespeare, 8,190 of the 8,192 tokens agree. Everything else is the same rule. One deliberate difference: with
`limit_alphabet`, the library deletes the dropped characters from a word and merges across the gap; here the word is
left out of training.

References:
    Schuster and Nakajima, "Japanese and Korean Voice Search" (ICASSP 2012), section 3.1 (the WordPiece model);
    Wu et al., "Google's Neural Machine Translation System" (2016), section 4.1; Sennrich, Haddow and Birch,
    "Neural Machine Translation of Rare Words with Subword Units" (ACL 2016); Hugging Face `tokenizers`,
    `WordPieceTrainer` and `BpeTrainer`.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from numbers import Integral

from llmdocs.tokenizers.bert_basic import basic_tokenize
from llmdocs.tokenizers.merge_loop import Pair, merge_most_frequent
from llmdocs.tokenizers.wordpiece import BERT_SPECIAL_TOKENS

__all__ = ["count_words", "train_wordpiece"]


def count_words(texts: str | Iterable[str], do_lower_case: bool = True) -> Counter[str]:
    """Count the words of a corpus as BERT's basic tokenizer cuts them (punctuation marks are words too).

    Args:
        texts: The corpus, one string or an iterable of documents.
        do_lower_case: Lower-case and strip accents, as an uncased tokenizer does.

    Returns:
        `word -> frequency`.

    Raises:
        TypeError: If `texts` is bytes, or an item is not a string.

    Examples:
        >>> count_words(["Hug, hug!", "pug"])
        Counter({'hug': 2, ',': 1, '!': 1, 'pug': 1})
    """
    if isinstance(texts, bytes | bytearray):
        raise TypeError("texts must be str or an iterable of str, got bytes (decode bytes first)")
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, Iterable):
        raise TypeError(f"texts must be str or an iterable of str, got {type(texts).__name__}")
    # Natural text repeats its space-separated chunks ("the", "of the,"): cut each distinct chunk once. A space
    # separates words for the basic tokenizer too, so the counts (and their first-seen order) are the same.
    chunks: Counter[str] = Counter()
    for text in texts:
        if not isinstance(text, str):
            raise TypeError(f"texts must hold strings, got {type(text).__name__} {text!r}")
        chunks.update(text.split(" "))
    counts: Counter[str] = Counter()
    for chunk, n in chunks.items():
        for word in basic_tokenize(chunk, do_lower_case):
            counts[word] += n
    return counts


def train_wordpiece(
    texts: str | Iterable[str],
    vocab_size: int,
    *,
    min_frequency: int = 2,
    special_tokens: Sequence[str] = BERT_SPECIAL_TOKENS,
    do_lower_case: bool = True,
    continuing_subword_prefix: str = "##",
    limit_alphabet: int | None = None,
) -> list[str]:
    """Learn a WordPiece vocabulary from a corpus: the alphabet, then BPE merges of adjacent pieces (module doc).

    The result goes straight into `WordPieceTokenizer(vocab)` (which needs BERT's five special tokens), and every
    word of the training text is then cut into pieces without `[UNK]` (unless `limit_alphabet` dropped one of its
    characters).

    Args:
        texts: The corpus, one string or an iterable of documents.
        vocab_size: Stop when the vocabulary, special tokens included, has this many tokens.
        min_frequency: Stop earlier when the most frequent pair occurs fewer times than this.
        special_tokens: The first tokens (ids 0, 1, ...), never learnt from the text.
        do_lower_case: Lower-case and strip accents before counting (as the tokenizer that will use the vocab).
        continuing_subword_prefix: The mark of a piece that continues a word.
        limit_alphabet: Keep only this many characters, the most frequent ones (ties: smallest code point).

    Returns:
        The vocabulary in id order: special tokens, characters, `##` characters, merged tokens.

    Raises:
        ValueError: If the corpus has no word, `vocab_size` has no room for the special tokens and the alphabet
            (the message gives the minimum; `limit_alphabet` makes the alphabet smaller), `min_frequency < 1`,
            `limit_alphabet < 1`, a special token is repeated or empty, or the prefix is empty.
        TypeError: If `texts` is not text, or `vocab_size`, `min_frequency` or `limit_alphabet` is not an int.

    Warns:
        UserWarning: If training stops before `vocab_size` because no pair occurs `min_frequency` times (as
            `train_bpe`; the `tokenizers` library stops there too, silently).

    Examples:
        >>> corpus = "hug " * 10 + "pug " * 5 + "pun " * 12 + "bun " * 4 + "hugs " * 5
        >>> vocab = train_wordpiece(corpus, vocab_size=18, special_tokens=["[UNK]"])
        >>> vocab[:8], vocab[8:12]  # the characters, then those that continue a word
        (['[UNK]', 'b', 'g', 'h', 'n', 'p', 's', 'u'], ['##g', '##n', '##s', '##u'])
        >>> vocab[12:]  # ##u ##g: 20 times, ##u ##n: 16, h ##ug: 15, p ##un: 12, p ##ug and hug ##s: 5 (a tie)
        ['##ug', '##un', 'hug', 'pun', 'pug', 'hugs']
    """
    ints = {"vocab_size": vocab_size, "min_frequency": min_frequency}
    if limit_alphabet is not None:
        ints["limit_alphabet"] = limit_alphabet
    for name, value in ints.items():
        if isinstance(value, bool) or not isinstance(value, Integral):
            raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if min_frequency < 1:
        raise ValueError(f"min_frequency={min_frequency} must be at least 1")
    if limit_alphabet is not None and limit_alphabet < 1:
        raise ValueError(f"limit_alphabet={limit_alphabet} must be at least 1 (or None: every character)")
    if not continuing_subword_prefix:
        raise ValueError("continuing_subword_prefix must not be empty: it tells a word's start from its middle")
    specials = list(special_tokens)
    if isinstance(special_tokens, str) or any(not isinstance(t, str) or not t for t in specials):
        raise ValueError(f"special_tokens must be a list of non-empty strings, got {special_tokens!r}")
    if len(set(specials)) != len(specials):
        raise ValueError(f"special_tokens has a repeated token: {specials}")

    word_counts = count_words(texts, do_lower_case)
    if not word_counts:
        raise ValueError("the corpus is empty (no word after basic tokenization): nothing to learn a vocabulary from")
    vocab, words, freqs = _initial_pieces(word_counts, specials, continuing_subword_prefix, limit_alphabet)
    if vocab_size < len(vocab):
        raise ValueError(
            f"vocab_size={vocab_size} is smaller than the {len(specials)} special tokens + the "
            f"{len(vocab) - len(specials)} characters and {continuing_subword_prefix} characters of the corpus "
            f"({len(vocab)} tokens); raise vocab_size or set limit_alphabet"
        )
    n_start = len(vocab)
    _learn_merges(vocab, words, freqs, vocab_size, min_frequency, continuing_subword_prefix)
    if len(vocab) < vocab_size:
        n_merges = len(vocab) - n_start
        warnings.warn(
            f"WordPiece training learnt {n_merges} token{'s' * (n_merges != 1)} of the {vocab_size - n_start} that "
            f"vocab_size={vocab_size} asks for, and stopped at {len(vocab)} tokens: no remaining pair of adjacent "
            f"pieces occurs at least min_frequency={min_frequency} times. Train on more text or lower min_frequency "
            "for a bigger vocabulary.",
            stacklevel=2,
        )
    return vocab


def _initial_pieces(
    word_counts: Counter[str], specials: list[str], prefix: str, limit_alphabet: int | None
) -> tuple[list[str], list[list[int]], list[int]]:
    """The starting vocabulary (specials, characters, prefixed characters) and each word as a list of piece ids.

    Only words of two or more pieces are returned: a single piece has no pair to merge.
    """
    char_counts: Counter[str] = Counter()
    for word, freq in word_counts.items():
        for char in word:
            char_counts[char] += freq
    alphabet = sorted(char_counts, key=lambda c: (-char_counts[c], c))[:limit_alphabet]  # most frequent first
    alphabet_set = set(alphabet)
    kept = [w for w in word_counts if set(w) <= alphabet_set]  # a word with a dropped character can only be [UNK]
    continuing = sorted({c for w in kept for c in w[1:]})
    vocab = list(specials)
    vocab += [c for c in sorted(alphabet) if c not in vocab]
    vocab += [prefix + c for c in continuing if prefix + c not in vocab]
    id_of = {token: i for i, token in enumerate(vocab)}
    words, freqs = [], []
    for word in kept:
        if len(word) > 1:
            words.append([id_of[word[0]]] + [id_of[prefix + c] for c in word[1:]])
            freqs.append(word_counts[word])
    return vocab, words, freqs


def _learn_merges(
    vocab: list[str], words: list[list[int]], freqs: list[int], vocab_size: int, min_frequency: int, prefix: str
) -> None:
    """BPE on piece ids with [merge_most_frequent][llmdocs.tokenizers.merge_loop.merge_most_frequent].

    Appends the merged pieces to `vocab`.
    """
    id_of = {token: i for i, token in enumerate(vocab)}

    def merge(pair: Pair, count: int) -> int:
        # "h" + "##ug" -> "hug"; "##u" + "##g" -> "##ug"
        new_token = vocab[pair[0]] + vocab[pair[1]].removeprefix(prefix)
        if new_token not in id_of:  # two different merges can spell the same token ("hu" + "##g", "h" + "##ug")
            id_of[new_token] = len(vocab)
            vocab.append(new_token)
        return id_of[new_token]

    merge_most_frequent(words, freqs, min_frequency, merge, done=lambda: len(vocab) >= vocab_size)
