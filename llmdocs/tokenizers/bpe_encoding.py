"""Encoding one chunk with learnt merges: apply the merge of lowest rank that occurs, until none does.

Ranks matter, not counts: a merge learnt early was frequent in the training data, and later merges were learnt on
text where the early ones had already been applied, so they must be applied in the same order. Starting from the
bytes of the chunk, `[h, e, l, l, o]` with the merges `(l, l) -> ll` (rank 0) and `(e, ll) -> ell` (rank 1)
becomes `[h, e, ll, o]`, then `[h, ell, o]`.

The plain loop rescans all n pairs after every merge: O(n^2), fine for the short chunks of most text. A long chunk
(a Chinese clause without punctuation, a run of spaces) goes through `merge_with_heap`, which gives the same ids in
O(n log n).

References:
    openai/gpt-2 `src/encoder.py` (`Encoder.bpe`); Karpathy's minbpe (`encode_chunk`).
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from itertools import pairwise

from llmdocs.tokenizers.bpe_training import Pair, merge_pair

__all__ = ["LONG_CHUNK", "Ranks", "apply_merges", "merge_ranks", "merge_with_heap"]

Ranks = Mapping[Pair, tuple[int, int]]
"""`pair -> (rank, merged_id)`: the rank of a merge is its position in the order the merges were learnt."""

LONG_CHUNK = 24
"""Chunks longer than this many tokens are merged with the heap (same result, O(n log n) instead of O(n^2))."""


def merge_ranks(vocab: Mapping[int, bytes], merges: Sequence[tuple[Pair, int]]) -> dict[Pair, tuple[int, int]]:
    """The lookup table of encoding, `pair -> (rank, merged_id)`, after checking that every merge spells its token.

    If two merges have the same pair, the first (lowest rank) wins.

    Args:
        vocab: `id -> bytes` of the ordinary tokens.
        merges: `((left_id, right_id), merged_id)` in rank order.

    Returns:
        The ranks.

    Raises:
        ValueError: If a merge uses an id that is not in `vocab`, or its two tokens do not spell the merged token.

    Examples:
        >>> merge_ranks({97: b"a", 98: b"b", 256: b"ab"}, [((97, 98), 256)])
        {(97, 98): (0, 256)}
    """
    ranks: dict[Pair, tuple[int, int]] = {}
    for rank, ((a, b), new_id) in enumerate(merges):
        if a not in vocab or b not in vocab or new_id not in vocab:
            raise ValueError(f"merge {rank} {(a, b)} -> {new_id} uses an id that is not in the vocabulary")
        if vocab[a] + vocab[b] != vocab[new_id]:
            raise ValueError(
                f"merge {rank}: {vocab[a]!r} + {vocab[b]!r} does not spell token {new_id} {vocab[new_id]!r}"
            )
        ranks.setdefault((a, b), (rank, new_id))
    return ranks


def apply_merges(ids: list[int], ranks: Ranks) -> list[int]:
    """BPE on one chunk: while some adjacent pair is a merge, merge every occurrence of the lowest-ranked one.

    Args:
        ids: The chunk's byte tokens (token ids of its UTF-8 bytes), length n.
        ranks: `pair -> (rank, merged_id)` of the tokenizer's merges.

    Returns:
        The chunk's token ids.

    Examples:
        >>> h, e, l, o, ll, ell = 104, 101, 108, 111, 256, 257
        >>> apply_merges([h, e, l, l, o], {(l, l): (0, ll), (e, ll): (1, ell)})
        [104, 257, 111]
    """
    if len(ids) > LONG_CHUNK:
        return merge_with_heap(ids, ranks)
    while len(ids) >= 2:
        best = min(pairwise(ids), key=lambda p: ranks.get(p, (len(ranks), 0)))  # lowest rank; non-merges last
        if best not in ranks:
            break
        ids = merge_pair(ids, best, ranks[best][1])
    return ids


def merge_with_heap(ids: list[int], ranks: Ranks) -> list[int]:
    """Apply the merges to one chunk: the same result as the loop of `apply_merges`, in O(n log n).

    The loop rescans all n pairs after every merge. Here the pairs that are merges sit in a heap keyed by
    (rank, position), and the tokens in a linked list. All occurrences of the lowest rank are merged left to right
    (overlaps skipped, like `merge_pair`) before the new pairs they form enter the heap, exactly as the loop does.
    Heap entries remember the two tokens they were made for; one whose tokens have changed since is skipped.

    Args:
        ids: The chunk's byte tokens, length n.
        ranks: `pair -> (rank, merged_id)` of the tokenizer's merges.

    Returns:
        The chunk's token ids.

    Examples:
        >>> a, aa, aaaa = 97, 256, 257
        >>> merge_with_heap([a] * 5, {(a, a): (0, aa), (aa, aa): (1, aaaa)})  # overlaps: merged from the left
        [257, 97]
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
