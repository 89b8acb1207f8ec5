"""The incremental merge loop of BPE training, shared by byte-level BPE and WordPiece.

Training merges the most frequent adjacent pair of tokens, again and again. Recounting every pair after each merge
costs a pass over the corpus per merge; here the counts are updated only in the words the merge touched, found
through an index from each pair to the words that contain it (Sennrich et al., 2016, and the `tokenizers`
library do the same).
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Callable
from itertools import pairwise

__all__ = ["Pair", "merge_most_frequent"]

Pair = tuple[int, int]
"""Two adjacent token ids."""


def merge_most_frequent(
    words: list[list[int]],
    freqs: list[int],
    min_frequency: int,
    merge: Callable[[Pair, int], int],
    done: Callable[[], bool],
) -> None:
    """The incremental BPE loop that both BPE and WordPiece training run: merge the most frequent pair, repeat.

    Pair counts are kept up to date instead of recounted: an index from each pair to the words that contain it
    limits each merge's work to those words, and a lazy max-heap (stale entries are re-pushed when popped) finds
    the most frequent pair, ties going to the smallest pair, so training is deterministic.

    Args:
        words: Each distinct word as token ids, rewritten in place as merges apply.
        freqs: How often each word occurs (its weight in the counts).
        min_frequency: Stop when the most frequent pair occurs fewer times.
        merge: ``merge(pair, count) -> new_id``: records the merge and returns the id of the merged token
            (an existing id when two merges spell the same token).
        done: Checked before each merge: stop when it returns True (the vocabulary is full).

    Examples:
        >>> words, learnt = [[1, 2, 3], [1, 2]], []
        >>> merge_most_frequent(words, [2, 1], 1, lambda pair, count: learnt.append((pair, count)) or 10 + len(learnt),
        ...                     done=lambda: len(learnt) == 1)
        >>> learnt, words
        ([((1, 2), 3)], [[11, 3], [11]])
    """
    counts: dict[Pair, int] = defaultdict(int)  # weighted occurrences of each pair
    where: dict[Pair, set[int]] = defaultdict(set)  # indices of the words that contain it
    for index, (word, freq) in enumerate(zip(words, freqs, strict=True)):
        for pair in pairwise(word):
            counts[pair] += freq
            where[pair].add(index)
    heap = [(-count, pair) for pair, count in counts.items()]  # max-heap by count, then smallest pair
    heapq.heapify(heap)
    while not done() and heap:
        neg_count, pair = heapq.heappop(heap)
        count = counts.get(pair, 0)
        if -neg_count != count:  # stale entry: the count has dropped since it was pushed
            if count > 0:
                heapq.heappush(heap, (-count, pair))
            continue
        if count < min_frequency:
            break
        new_id = merge(pair, count)
        grown: set[Pair] = set()  # pairs whose count went up: they all contain new_id
        for index in where.pop(pair):
            word = words[index]
            starts = _occurrences(word, pair)
            if starts:  # else a stale index entry: the word lost the pair to an earlier merge
                words[index] = _update_word(word, starts, pair, new_id, freqs[index], counts, where, index, grown)
        counts.pop(pair, None)
        for p in grown:
            if counts.get(p, 0) > 0:
                heapq.heappush(heap, (-counts[p], p))


def _occurrences(word: list[int], pair: Pair) -> list[int]:
    """Start positions of the non-overlapping occurrences of `pair`, left to right (`list.index` scans in C)."""
    first, second = pair
    starts: list[int] = []
    i, last = 0, len(word) - 1
    while True:
        try:
            i = word.index(first, i)
        except ValueError:
            return starts
        if i < last and word[i + 1] == second:
            starts.append(i)
            i += 2
        else:
            i += 1


def _update_word(
    word: list[int],
    starts: list[int],
    pair: Pair,
    new_id: int,
    freq: int,
    counts: dict[Pair, int],
    where: dict[Pair, set[int]],
    index: int,
    grown: set[Pair],
) -> list[int]:
    """Merge `pair` at `starts` in one word, updating the pair counts around each merge only.

    At an occurrence `x a b y` the pairs `(x, a)` and `(b, y)` disappear and `(x, n)` and `(n, y)` appear.
    Adjacent occurrences share a neighbour (`a b a b -> n n` loses one `(b, a)` and gains one `(n, n)`), which
    must be counted once. The pair `(a, b)` itself is removed by the caller. Pairs that vanish from this word
    stay in `where` (a later visit finds nothing and skips the word); pairs whose count drops to zero are deleted.
    This is the innermost loop of training: it is written for speed (no helper calls).
    """
    first, second = pair
    n = len(word)
    new_word: list[int] = []
    begin = 0
    n_starts = len(starts)
    for k, i in enumerate(starts):
        follows_previous = k > 0 and starts[k - 1] == i - 2  # ... a b a b ...: the previous occurrence ends at i-1
        if i > 0 and not follows_previous:  # (x, a) disappears
            p = (word[i - 1], first)
            count = counts[p] - freq
            if count:
                counts[p] = count
            else:
                del counts[p]
                where.pop(p, None)
        followed = k + 1 < n_starts and starts[k + 1] == i + 2  # the next occurrence starts right after
        if i + 2 < n:  # (b, y) disappears
            p = (second, word[i + 2])
            count = counts[p] - freq
            if count:
                counts[p] = count
            else:
                del counts[p]
                where.pop(p, None)
        new_word += word[begin:i]
        if new_word:  # (x, n) appears; (n, n) when the left neighbour was merged too
            p = (new_word[-1], new_id)
            counts[p] = counts.get(p, 0) + freq
            where[p].add(index)
            grown.add(p)
        new_word.append(new_id)
        if i + 2 < n and not followed:  # (n, y) appears
            p = (new_id, word[i + 2])
            counts[p] = counts.get(p, 0) + freq
            where[p].add(index)
            grown.add(p)
        begin = i + 2
    new_word += word[begin:]
    return new_word
