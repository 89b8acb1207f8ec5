"""Fitting a sentence pair into a length budget: the "longest first" truncation of BERT and Hugging Face.

A pair encoding ``[CLS] A [SEP] B [SEP]`` must fit ``max_length``; when it does not, tokens are cut from the end of
the longer text first, so the shorter one keeps as much as it can (the rule of `truncate_longest_first`).
"""

from __future__ import annotations

__all__ = ["truncate_longest_first"]


def truncate_longest_first(ids: list[int], pair_ids: list[int] | None, budget: int) -> tuple[list[int], list[int]]:
    """Cut a pair of sequences to `budget` tokens in all, taking from the longer one first.

    The rule of Hugging Face's fast tokenizers (the `tokenizers` library): if the shorter sequence fits in half the
    budget, keep it whole and give the rest to the longer one; otherwise each gets half, the originally longer one
    (the second on a tie) taking the odd token. (HF's slow Python tokenizers remove one token at a time instead and
    give an odd token to the first sequence: the two disagree by one token when the budget is split evenly.)

    Args:
        ids: The first sequence.
        pair_ids: The second sequence, or `None` (then `ids` is simply cut to `budget`).
        budget: Tokens allowed in both together (special tokens not counted).

    Returns:
        The two cut sequences (the second is `[]` if `pair_ids` is `None`).

    Examples:
        >>> truncate_longest_first([1, 2, 3, 4, 5, 6, 7, 8], [9, 10], budget=6)
        ([1, 2, 3, 4], [9, 10])
        >>> truncate_longest_first([1, 2, 3, 4, 5], [6, 7, 8, 9, 10], budget=7)
        ([1, 2, 3], [6, 7, 8, 9])
    """
    pair = pair_ids or []
    if len(ids) + len(pair) <= budget:
        return ids, pair
    if not pair:
        return ids[:budget], pair
    swap = len(ids) > len(pair)
    n_short, n_long = (len(pair), len(ids)) if swap else (len(ids), len(pair))
    n_long = n_short if n_short > budget else max(n_short, budget - n_short)
    if n_short + n_long > budget:  # both must be cut: half each
        n_short, n_long = budget // 2, budget // 2 + budget % 2
    n_ids, n_pair = (n_long, n_short) if swap else (n_short, n_long)
    return ids[:n_ids], pair[:n_pair]
