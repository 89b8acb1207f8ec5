"""Batches of SFT examples: padded, or packed several to a row with attention that stays inside each example.

Examples differ in length. **Padding** puts one example per row and fills every row up to the longest with a
padding token that is computed and thrown away; with answers of 20 to 500 tokens most of a batch can be padding.
**Packing** concatenates several examples into each row of at most ``max_length`` tokens, so that almost every
position is a real token. Concatenating alone would change what the model computes, so a packed row carries:

- ``document_ids``: the example each token belongs to. Passed to the model
  ([Llama][llmdocs.models.llama.Llama] ``document_ids=``), it makes the causal mask block-diagonal: a token attends
  only to the earlier tokens of its own example.

      document_ids   0 0 0 1 1 2 2 2         mask (1 = may attend)   1 . . . . . . .
                                                                     1 1 . . . . . .
                                                                     1 1 1 . . . . .
                                                                     . . . 1 . . . .
                                                                     . . . 1 1 . . .
                                                                     . . . . . 1 . .
                                                                     . . . . . 1 1 .
                                                                     . . . . . 1 1 1

- ``position_ids`` restarting at 0 in each example, so that every example is rotated (RoPE) as if it were alone;
- ``labels`` with ``IGNORE_INDEX`` on the first token of every example: the loss shifts (the last token of one
  example would otherwise be trained to predict the first token of the next).

With these, the logits of a packed row equal those of each example run alone, and the "tokens" loss of a packed
batch equals the token-weighted loss of the unpacked examples (both tested). With a dense mask, as here, the
attention scores across examples are still computed, then masked: packing saves the work of the padding positions
(all of it in the linear layers, which dominate at these lengths), not the attention's quadratic part; kernels with
variable-length support (FlashAttention's ``cu_seqlens``) save that too.

Which examples share a row: ``strategy="bfd"`` (best-fit decreasing, TRL's default): the longest example first,
each into the row whose free space fits it most tightly, else into a new row; it comes close to the fewest rows.
``strategy="greedy"``: in the given order, a new row whenever the next example does not fit. An example is never
split across rows; one longer than ``max_length`` is refused, or cut to ``max_length`` with ``truncate=True``
(which, in SFT, cuts the end of the answer).

References:
    Krell et al., "Efficient Sequence Packing without Cross-contamination: Accelerating Large Language Models
    without Impacting Performance", 2021 (packing with block-diagonal attention, best-fit strategies); Hugging Face
    TRL ``pack_dataset`` (``strategy="bfd"``, ``seq_lengths``) and transformers ``DataCollatorWithFlattening``
    (``position_ids`` restarting per example).
"""

from __future__ import annotations

import bisect
import operator
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
from torch import Tensor

from llmdocs.training.masked_lm import IGNORE_INDEX

__all__ = ["PACKING_STRATEGIES", "balanced_row_length", "collate_padded", "pack_examples", "padding_fraction"]

INT64_MAX = 2**63 - 1  # the largest id an int64 tensor holds

PackingStrategy = Literal["bfd", "greedy"]
PACKING_STRATEGIES: tuple[str, ...] = ("bfd", "greedy")
"""How [pack_examples][llmdocs.finetuning.packing.pack_examples] fills rows: best-fit decreasing, or in order."""


def _token_list(name: str, values: object) -> list[int]:
    if isinstance(values, Tensor):
        if values.dim() != 1 or values.is_floating_point() or values.is_complex() or values.dtype == torch.bool:
            raise TypeError(
                f"{name} must be a 1-D integer tensor or a list of ints, got {values.dtype} {tuple(values.shape)}"
            )
        return [int(v) for v in values.tolist()]
    if not isinstance(values, Sequence) or isinstance(values, str | bytes):
        raise TypeError(f"{name} must be a list of ints or a 1-D integer tensor, got {type(values).__name__}")
    if not all(issubclass(t, int) and not issubclass(t, bool) for t in set(map(type, values))):  # per type, not token
        raise TypeError(f"{name} must hold ints only")
    return list(values)


def _check_examples(examples: object) -> list[tuple[list[int], list[int]]]:
    """``(input_ids, labels)`` of each example; labels default to the input ids (every token trained)."""
    if not isinstance(examples, Sequence) or isinstance(examples, str | bytes | Mapping):
        raise TypeError(
            f"examples must be a list of {{'input_ids': ..., 'labels': ...}} dicts, got {type(examples).__name__}"
        )
    if not examples:
        raise ValueError("examples is empty: a batch needs at least one example")
    checked = []
    for i, example in enumerate(examples):
        if not isinstance(example, Mapping) or "input_ids" not in example:
            raise TypeError(f"examples[{i}] must be a dict with 'input_ids' (and optionally 'labels')")
        ids = _token_list(f"examples[{i}]['input_ids']", example["input_ids"])
        if not ids:
            raise ValueError(f"examples[{i}]['input_ids'] is empty")
        if min(ids) < 0:
            raise ValueError(f"examples[{i}]['input_ids'] holds a negative id")
        if max(ids) > INT64_MAX:
            raise ValueError(f"examples[{i}]['input_ids'] holds the id {max(ids)}, above the int64 maximum {INT64_MAX}")
        labels = _token_list(f"examples[{i}]['labels']", example["labels"]) if "labels" in example else list(ids)
        if len(labels) != len(ids):
            raise ValueError(f"examples[{i}] has {len(ids)} input_ids but {len(labels)} labels")
        if max(labels) > INT64_MAX:
            raise ValueError(f"examples[{i}]['labels'] holds the id {max(labels)}, above the int64 maximum {INT64_MAX}")
        if min(labels) < 0 and any(v < 0 and v != IGNORE_INDEX for v in set(map(int, labels))):
            raise ValueError(f"examples[{i}]['labels'] must be ids >= 0 or IGNORE_INDEX={IGNORE_INDEX}")
        checked.append((ids, labels))
    return checked


def _as_int(value: object) -> int | None:
    """``value`` as an int if it is a Python or numpy integer or a 0-d integer tensor (never a bool), else None."""
    if isinstance(value, bool) or (isinstance(value, Tensor) and (value.dim() != 0 or value.dtype == torch.bool)):
        return None
    try:
        return operator.index(value)  # refuses floats, strings and numpy bools
    except TypeError:
        return None


def _check_max_length(max_length: object) -> int:
    length = _as_int(max_length)
    if length is None:
        raise TypeError(f"max_length must be an int >= 1, got {max_length!r} ({type(max_length).__name__})")
    if length < 1:
        raise ValueError(f"max_length must be an int >= 1, got {length}")
    return length


def _check_pad_id(pad_id: object) -> int:
    if isinstance(pad_id, bool) or not isinstance(pad_id, int) or pad_id < 0:
        raise ValueError(f"pad_id must be a token id (an int >= 0), got {pad_id!r}")
    return pad_id


def collate_padded(examples: Sequence[Mapping[str, Any]], pad_id: int = 0) -> dict[str, Tensor]:
    """One example per row, right-padded to the longest: the unpacked batch.

    Args:
        examples: ``{"input_ids": [...], "labels": [...]}`` dicts (lists or 1-D tensors); without ``labels`` every
            token is trained (labels = input ids).
        pad_id: The id written at padding positions (any id: it is masked out of attention and loss).

    Returns:
        ``input_ids``, ``labels`` (``IGNORE_INDEX`` at padding) and ``attention_mask`` (1 at real tokens), each
        int64 (B, T_max).

    Raises:
        TypeError: If an example is not a dict with ``input_ids`` of ints.
        ValueError: If ``examples`` or an example is empty, the labels have another length, an id is negative or
            above the int64 maximum, or ``pad_id`` is not an id.

    Examples:
        >>> batch = collate_padded([{"input_ids": [5, 6, 7], "labels": [-100, 6, 7]}, {"input_ids": [8]}], pad_id=0)
        >>> batch["input_ids"].tolist(), batch["labels"].tolist(), batch["attention_mask"].tolist()
        ([[5, 6, 7], [8, 0, 0]], [[-100, 6, 7], [8, -100, -100]], [[1, 1, 1], [1, 0, 0]])
    """
    checked = _check_examples(examples)
    pad_id = _check_pad_id(pad_id)
    B, T = len(checked), max(len(ids) for ids, _ in checked)
    input_ids = torch.full((B, T), pad_id, dtype=torch.long)
    labels = torch.full((B, T), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros(B, T, dtype=torch.long)
    for b, (ids, example_labels) in enumerate(checked):
        input_ids[b, : len(ids)] = torch.tensor(ids)
        labels[b, : len(ids)] = torch.tensor(example_labels)
        attention_mask[b, : len(ids)] = 1
    return {"input_ids": input_ids, "labels": labels, "attention_mask": attention_mask}


def _fill_rows(lengths: list[int], max_length: int, strategy: str) -> list[list[int]]:
    """Example indices of each row; every row's lengths sum to at most ``max_length``."""
    rows: list[list[int]] = []
    if strategy == "greedy":
        free = 0
        for i, length in enumerate(lengths):
            if not rows or length > free:
                rows.append([])
                free = max_length
            rows[-1].append(i)
            free -= length
        return rows
    # Best-fit decreasing: longest first, into the row with the least free space that still fits it.
    free_rows: list[tuple[int, int]] = []  # (free space, row), sorted
    for i in sorted(range(len(lengths)), key=lambda j: (-lengths[j], j)):
        k = bisect.bisect_left(free_rows, (lengths[i], -1))  # the tightest row with free >= length
        if k == len(free_rows):
            rows.append([])
            free, row = max_length, len(rows) - 1
        else:
            free, row = free_rows.pop(k)
        rows[row].append(i)
        bisect.insort(free_rows, (free - lengths[i], row))
    return [sorted(row) for row in rows]  # examples in their given order within a row


def balanced_row_length(lengths: Sequence[int], max_length: int, strategy: PackingStrategy = "bfd") -> int:
    """The shortest row length (found by bisection) at which ``strategy`` packs examples of ``lengths`` into as few
    rows as at ``max_length``: the rows come out about equally full instead of full rows and a nearly empty last one.

    A packed batch is a (R, T) tensor with T its longest row, so a batch of 1,077 tokens packed into rows of 1,024
    computes 2 x 1,024 positions, half of them padding; at the balanced length, about 2 x 540. Packing a batch at
    this length gives the same number of rows with the least padding (what a fixed ``max_length`` leaves at the end
    of its last row is spread over all rows, and shrinks).

    Args:
        lengths: Tokens of each example (each >= 1 and <= ``max_length``).
        max_length: The longest row allowed.
        strategy: How rows are filled, as in [pack_examples][llmdocs.finetuning.packing.pack_examples].

    Returns:
        L, with max(lengths) <= L <= max_length.

    Raises:
        TypeError: If ``lengths`` is not a list (or 1-D tensor) of integers, or ``max_length`` is not an integer
            (Python and numpy integers are accepted, bools are not).
        ValueError: If ``lengths`` is empty, holds a length < 1 or above ``max_length``, ``max_length`` < 1, or
            ``strategy`` is unknown.

    Examples:
        >>> balanced_row_length([600, 300, 177], max_length=1024)  # rows [600 + 300], [177] -> [600], [300 + 177]
        600
        >>> pack_examples([{"input_ids": [1] * n} for n in (600, 300, 177)], 600)["input_ids"].shape
        torch.Size([2, 600])
    """
    if strategy not in PACKING_STRATEGIES:
        raise ValueError(f"strategy must be one of {PACKING_STRATEGIES}, got {strategy!r}")
    max_length = _check_max_length(max_length)
    try:
        values = list(lengths) if not isinstance(lengths, str | bytes | Mapping) else None
    except TypeError:  # not iterable, or a 0-d tensor / array
        values = None
    if values is None:
        raise TypeError(f"lengths must be a list of ints, got {type(lengths).__name__}")
    if not values:
        raise ValueError(f"lengths must be a non-empty list of ints in [1, max_length={max_length}], got no length")
    checked = []
    for i, value in enumerate(values):
        n = _as_int(value)
        if n is None:
            raise TypeError(f"lengths must hold ints, got lengths[{i}]={value!r} ({type(value).__name__})")
        if n < 1 or n > max_length:
            raise ValueError(
                f"lengths must be a non-empty list of ints in [1, max_length={max_length}], got lengths[{i}]={n}"
            )
        checked.append(n)
    lengths = checked
    n_rows = len(_fill_rows(lengths, max_length, strategy))
    low = max(max(lengths), -(-sum(lengths) // n_rows))  # no fewer rows can hold them: L >= total / rows
    high = max_length
    while low < high:  # bisection; high always packs into n_rows (a heuristic's row count is not always monotone in L)
        middle = (low + high) // 2
        if len(_fill_rows(lengths, middle, strategy)) <= n_rows:
            high = middle
        else:
            low = middle + 1
    return low


def pack_examples(
    examples: Sequence[Mapping[str, Any]],
    max_length: int,
    strategy: PackingStrategy = "bfd",
    truncate: bool = False,
    pad_id: int = 0,
) -> dict[str, Tensor]:
    """Pack tokenised examples into rows of at most ``max_length`` tokens, for block-diagonal causal attention.

    Args:
        examples: ``{"input_ids": [...], "labels": [...]}`` dicts (lists or 1-D tensors; labels aligned with the
            ids, ``IGNORE_INDEX`` on the prompt, see [sft_labels][llmdocs.finetuning.sft_labels.sft_labels]);
            without ``labels`` every token is trained.
        max_length: The longest row, in tokens.
        strategy: ``"bfd"`` (best-fit decreasing) or ``"greedy"`` (in order); see the module's description.
        truncate: Cut an example longer than ``max_length`` to its first ``max_length`` tokens instead of refusing it.
        pad_id: The id written at the padding that ends rows shorter than the longest row.

    Returns:
        int64 tensors (R, T), T the longest row (<= ``max_length``):

        - ``input_ids``: the examples of each row, concatenated, then ``pad_id``;
        - ``labels``: the examples' labels, ``IGNORE_INDEX`` on each example's first token and on padding;
        - ``position_ids``: 0, 1, ... restarting in every example; 0 on padding;
        - ``document_ids``: the index in ``examples`` of each token's example; -1 on padding;
        - ``attention_mask``: 1 on real tokens, 0 on padding.

        Run the model with ``model(input_ids, position_ids=..., document_ids=...)``.

    Raises:
        TypeError: If an example is not a dict with ``input_ids`` of ints, ``truncate`` is not a bool, or
            ``max_length`` is not an integer.
        ValueError: If ``examples`` or an example is empty, the labels have another length, an id is negative or
            above the int64 maximum, an example is longer than ``max_length`` (without ``truncate``),
            ``max_length`` < 1, ``strategy`` is unknown, or ``pad_id`` is not an id.

    Examples:
        >>> examples = [{"input_ids": [1, 2, 3], "labels": [-100, 2, 3]}, {"input_ids": [4, 5]}, {"input_ids": [6]}]
        >>> packed = pack_examples(examples, max_length=4)  # bfd: [3 tokens + 1 token], [2 tokens]
        >>> packed["input_ids"].tolist()
        [[1, 2, 3, 6], [4, 5, 0, 0]]
        >>> packed["labels"].tolist()  # -100 on each example's first token: no target across a boundary
        [[-100, 2, 3, -100], [-100, 5, -100, -100]]
        >>> packed["position_ids"].tolist(), packed["document_ids"].tolist()
        ([[0, 1, 2, 0], [0, 1, 0, 0]], [[0, 0, 0, 2], [1, 1, -1, -1]])
    """
    checked = _check_examples(examples)
    max_length = _check_max_length(max_length)
    if strategy not in PACKING_STRATEGIES:
        raise ValueError(f"strategy must be one of {PACKING_STRATEGIES}, got {strategy!r}")
    if not isinstance(truncate, bool):
        raise TypeError(f"truncate must be True or False, got {truncate!r}")
    pad_id = _check_pad_id(pad_id)
    too_long = [i for i, (ids, _) in enumerate(checked) if len(ids) > max_length]
    if too_long and not truncate:
        i = too_long[0]
        raise ValueError(
            f"examples[{i}] has {len(checked[i][0])} tokens, more than max_length={max_length} ({len(too_long)} "
            "examples are too long): raise max_length, drop them, or pass truncate=True to cut them"
        )
    checked = [(ids[:max_length], labels[:max_length]) for ids, labels in checked]
    rows = _fill_rows([len(ids) for ids, _ in checked], max_length, strategy)
    R, T = len(rows), max(sum(len(checked[i][0]) for i in row) for row in rows)
    input_ids = torch.full((R, T), pad_id, dtype=torch.long)
    labels = torch.full((R, T), IGNORE_INDEX, dtype=torch.long)
    position_ids = torch.zeros(R, T, dtype=torch.long)
    document_ids = torch.full((R, T), -1, dtype=torch.long)
    attention_mask = torch.zeros(R, T, dtype=torch.long)
    for r, row in enumerate(rows):
        start = 0
        for i in row:
            ids, example_labels = checked[i]
            end = start + len(ids)
            input_ids[r, start:end] = torch.tensor(ids)
            labels[r, start:end] = torch.tensor([IGNORE_INDEX, *example_labels[1:]])  # no target across the boundary
            position_ids[r, start:end] = torch.arange(len(ids))
            document_ids[r, start:end] = i
            attention_mask[r, start:end] = 1
            start = end
    return {
        "input_ids": input_ids,
        "labels": labels,
        "position_ids": position_ids,
        "document_ids": document_ids,
        "attention_mask": attention_mask,
    }


def padding_fraction(attention_mask: Tensor) -> float:
    """The fraction of a batch's positions that are padding: compute spent on no token.

        padding fraction = 1 - (real tokens) / (B * T)

    Compare ``collate_padded(examples)`` with ``pack_examples(examples, max_length)``: the first pays for each
    row's distance to the longest example, the second only for the free space left at the end of its rows.

    Args:
        attention_mask: 0/1 or bool (B, T), 1 at real tokens (both batch kinds return one).

    Returns:
        A number in [0, 1]: 1.0 for an all-padding mask.

    Raises:
        TypeError: If ``attention_mask`` is not a bool or integer tensor.
        ValueError: If it is not 2-D and non-empty, or holds values other than 0 and 1.

    Examples:
        >>> examples = [{"input_ids": [1] * n} for n in (8, 2, 3, 3)]  # 16 tokens
        >>> padding_fraction(collate_padded(examples)["attention_mask"])  # 4 rows x 8: 16 of 32 are padding
        0.5
        >>> padding_fraction(pack_examples(examples, max_length=8)["attention_mask"])  # [8], [2 + 3 + 3]
        0.0
    """
    if not isinstance(attention_mask, Tensor) or attention_mask.is_floating_point() or attention_mask.is_complex():
        got = attention_mask.dtype if isinstance(attention_mask, Tensor) else type(attention_mask).__name__
        raise TypeError(f"attention_mask must be a bool or integer 0/1 tensor (B, T), got {got}")
    if attention_mask.dim() != 2 or attention_mask.numel() == 0:
        raise ValueError(f"attention_mask must be a non-empty (B, T) tensor, got shape {tuple(attention_mask.shape)}")
    if attention_mask.dtype != torch.bool and ((attention_mask != 0) & (attention_mask != 1)).any():
        raise ValueError("attention_mask must hold 0 and 1 only")
    real = int(attention_mask.bool().sum())
    return 1.0 - real / attention_mask.numel()
