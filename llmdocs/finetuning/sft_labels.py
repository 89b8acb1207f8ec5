"""Prompt-masked labels and the SFT loss: train on the assistant's tokens only, averaged over tokens.

Supervised fine-tuning (SFT) is next-token prediction on conversations, with one change: the prompt (system and
user messages, the template's markers) is read but not learnt. The labels are the input ids where the assistant
mask is 1 and ``IGNORE_INDEX`` (-100, the ``ignore_index`` of ``F.cross_entropy``) elsewhere:

    input_ids       <|user|>   2    +    2    ?   <|end|> <|assistant|>  4   <|end|>
    assistant_mask      0      0    0    0    0      0          0        1      1
    labels           -100   -100 -100 -100 -100   -100       -100       4   <|end|>

Labels are aligned with the inputs, not shifted: the **loss** shifts, as in ``transformers``' causal-LM loss.
The logits at position t predict the token at t + 1, so ``logits[:, :-1]`` are scored against ``labels[:, 1:]``:
above, the logits at ``<|assistant|>`` learn to predict ``4`` and those at ``4`` to predict ``<|end|>``. The label
of position 0 is never a target.

With m_{b,t} = 1 where ``labels[b, t + 1]`` is trained and l_{b,t} = -log p(labels[b, t + 1] | ids[b, :t + 1]), the
loss is normalised in one of two ways:

    "tokens"    (default):  L = sum_{b,t} m_{b,t} l_{b,t} / sum_{b,t} m_{b,t}
    "sequences":            L = 1/B' sum_b ( sum_t m_{b,t} l_{b,t} / sum_t m_{b,t} )   (B' rows with a target)

"tokens" is the mean over every trained token of the batch, what ``F.cross_entropy(ignore_index=-100)``, TRL's
``SFTTrainer`` and ``transformers``' ``Trainer`` compute: each token weighs the same. "sequences" averages each
answer first, so a one-token answer weighs as much as a hundred-token one: its token counts a hundred times more,
and the loss depends on how examples happen to be grouped into batches. Under gradient accumulation "tokens" needs
the token count of the whole accumulated batch (``num_items_in_batch``, as in ``transformers``): the mean of
micro-batch means is again a mean of means.

References:
    Ouyang et al., "Training language models to follow instructions with human feedback", NeurIPS 2022, section
    3.5; Hugging Face transformers ``loss_utils.ForCausalLMLoss`` (the shift, ``num_items_in_batch``) and TRL
    ``SFTTrainer`` (``assistant_only_loss``, ``completion_only_loss``).
"""

from __future__ import annotations

import contextlib
import operator
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from llmdocs.training.masked_lm import IGNORE_INDEX

__all__ = ["IGNORE_INDEX", "NORMALIZATIONS", "count_trained_tokens", "sft_labels", "sft_loss"]

Normalization = Literal["tokens", "sequences"]
NORMALIZATIONS: tuple[str, ...] = ("tokens", "sequences")
"""The two ways [sft_loss][llmdocs.finetuning.sft_labels.sft_loss] averages the per-token losses."""


def _as_tensor(name: str, values: Tensor | Sequence[int] | Sequence[Sequence[int]]) -> Tensor:
    if isinstance(values, Tensor):
        tensor = values
    elif isinstance(values, Sequence) and not isinstance(values, str | bytes):
        try:
            tensor = torch.as_tensor(values)
        except (TypeError, ValueError, RuntimeError) as error:
            raise TypeError(f"{name} must be a tensor or a (nested) list of ints: {error}") from None
    else:
        raise TypeError(f"{name} must be a tensor or a list of ints, got {type(values).__name__}")
    if tensor.numel() == 0:  # checked first: torch.as_tensor([]) is float32
        raise ValueError(f"{name} is empty: it must hold at least one token, got shape {tuple(tensor.shape)}")
    if tensor.is_floating_point() or tensor.is_complex():
        raise TypeError(f"{name} must hold integers, got {tensor.dtype}")
    if tensor.dim() not in (1, 2):
        raise ValueError(f"{name} must be (T,) or (B, T), got shape {tuple(tensor.shape)}")
    return tensor


def sft_labels(
    input_ids: Tensor | Sequence[int] | Sequence[Sequence[int]],
    assistant_mask: Tensor | Sequence[int] | Sequence[Sequence[int]],
) -> Tensor:
    """Prompt-masked labels: ``input_ids`` where ``assistant_mask`` is 1, ``IGNORE_INDEX`` (-100) elsewhere.

    The labels stay aligned with the inputs; [sft_loss][llmdocs.finetuning.sft_labels.sft_loss] shifts them.

    Args:
        input_ids: Token ids (T,) or (B, T), a tensor or lists (as
            [tokenize_conversation][llmdocs.finetuning.chat.tokenize_conversation] returns them).
        assistant_mask: 0/1 or bool, the same shape: 1 on the tokens to train on.

    Returns:
        int64 labels, the shape of ``input_ids``.

    Raises:
        TypeError: If an argument is not a tensor or list of integers (bools allowed for the mask).
        ValueError: If an argument is empty, the shapes differ, an argument is not 1-D or 2-D, the mask holds values
            other than 0 and 1, or an id is negative.

    Examples:
        >>> ids = [257, 50, 43, 50, 63, 259, 258, 52, 259]  # <|user|>2+2?<|end|><|assistant|>4<|end|>
        >>> mask = [0, 0, 0, 0, 0, 0, 0, 1, 1]
        >>> sft_labels(ids, mask).tolist()
        [-100, -100, -100, -100, -100, -100, -100, 52, 259]
    """
    ids = _as_tensor("input_ids", input_ids)
    mask = _as_tensor("assistant_mask", assistant_mask)
    if mask.shape != ids.shape:
        raise ValueError(f"assistant_mask must have the shape of input_ids {tuple(ids.shape)}, got {tuple(mask.shape)}")
    if mask.dtype != torch.bool:
        if ((mask != 0) & (mask != 1)).any():
            raise ValueError(f"assistant_mask must hold 0 and 1 only, got the values {mask.unique().tolist()}")
        mask = mask.bool()
    if ids.dtype == torch.bool or (ids < 0).any():
        raise ValueError("input_ids must be token ids >= 0")
    return torch.where(mask.to(ids.device), ids.long(), IGNORE_INDEX)  # (T,) or (B, T)


def _check_integer_labels(labels: object) -> None:
    if (
        not isinstance(labels, Tensor)
        or labels.is_floating_point()
        or labels.is_complex()
        or labels.dtype == torch.bool
    ):
        got = labels.dtype if isinstance(labels, Tensor) else type(labels).__name__
        raise TypeError(f"labels must be an integer tensor (B, T), got {got}")


def _check_logits_and_labels(logits: Tensor, labels: Tensor) -> None:
    if not isinstance(logits, Tensor) or not logits.is_floating_point():
        got = logits.dtype if isinstance(logits, Tensor) else type(logits).__name__
        raise TypeError(f"logits must be a floating tensor (B, T, V), got {got}")
    _check_integer_labels(labels)
    if logits.dim() != 3 or labels.shape != logits.shape[:2]:
        raise ValueError(
            f"logits must be (B, T, V) and labels (B, T) with the same B and T, got {tuple(logits.shape)} and "
            f"{tuple(labels.shape)}"
        )
    _check_label_ids(labels, logits.size(-1))


def _check_label_ids(labels: Tensor, V: int, name: str = "labels") -> None:
    """Refuse a scored label (not ``IGNORE_INDEX``) outside the vocabulary [0, V); ``name`` in the error."""
    bad = labels[(labels != IGNORE_INDEX) & ((labels < 0) | (labels >= V))]
    if bad.numel():
        raise ValueError(f"{name} must be ids in [0, V={V}) or IGNORE_INDEX={IGNORE_INDEX}, got {bad[0].item()}")


def _check_count(value: object, name: str = "num_items_in_batch") -> int:
    """A count as an int >= 1: a Python or numpy integer, or a 0-d integer tensor (as ``SFTBatches`` and
    ``transformers`` pass ``num_items_in_batch``); never a bool."""
    count: int | None = None
    if isinstance(value, Tensor):
        if value.dim() == 0 and not (value.is_floating_point() or value.is_complex() or value.dtype == torch.bool):
            count = int(value.item())
    elif not isinstance(value, bool):
        with contextlib.suppress(TypeError):  # operator.index takes ints and numpy integers, not floats or np.bool_
            count = operator.index(value)
    if count is None:
        raise TypeError(f"{name} must be an int or a 0-d integer tensor, got {value!r}")
    if count < 1:
        raise ValueError(f"{name} must be >= 1, got {count}")
    return count


def count_trained_tokens(labels: Tensor) -> int:
    """The number of next-token targets that are trained: labels ``[:, 1:]`` other than ``IGNORE_INDEX``.

    The denominator of the "tokens" loss; summed over the micro-batches of a step, it is the
    ``num_items_in_batch`` of [sft_loss][llmdocs.finetuning.sft_labels.sft_loss].

    Args:
        labels: (B, T) labels, aligned with the inputs.

    Returns:
        The count (the label of each row's first position is never a target).

    Raises:
        TypeError: If ``labels`` is not an integer tensor.
        ValueError: If it is not (B, T).

    Examples:
        >>> import torch
        >>> count_trained_tokens(torch.tensor([[7, -100, 5, 6], [-100, -100, -100, 9]]))  # the first 7 is no target
        3
    """
    _check_integer_labels(labels)
    if labels.dim() != 2:
        raise ValueError(f"labels must be (B, T), got shape {tuple(labels.shape)}")
    return int((labels[:, 1:] != IGNORE_INDEX).sum())


def sft_loss(
    logits: Tensor,
    labels: Tensor,
    normalization: Normalization = "tokens",
    num_items_in_batch: int | Tensor | None = None,
) -> Tensor:
    """Next-token cross-entropy on the trained labels, shifted here, averaged over tokens or over sequences.

        "tokens":    L = sum_{b,t} m_{b,t} l_{b,t} / sum_{b,t} m_{b,t}
        "sequences": L = mean over rows b with a target of ( sum_t m_{b,t} l_{b,t} / sum_t m_{b,t} )

    where ``l_{b,t} = -log softmax(logits[b, t])[labels[b, t + 1]]`` and ``m_{b,t} = labels[b, t + 1] != -100``.
    "tokens" equals ``F.cross_entropy(logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten(), ignore_index=-100)``.
    Half-precision logits are scored in float32 (as ``transformers`` does).

    Args:
        logits: (B, T, V) next-token logits, position t predicting token t + 1.
        labels: (B, T) labels aligned with the inputs (not shifted), ``IGNORE_INDEX`` where nothing is trained
            ([sft_labels][llmdocs.finetuning.sft_labels.sft_labels]).
        normalization: ``"tokens"`` (the field's default) or ``"sequences"`` (the mean of per-row means).
        num_items_in_batch: ``"tokens"`` only: divide the sum by this count instead of this batch's own, the
            [count_trained_tokens][llmdocs.finetuning.sft_labels.count_trained_tokens] of all the micro-batches of
            a gradient-accumulation step, so that their summed losses are the token mean of the whole step. An
            int, a numpy integer or a 0-d integer tensor.

    Returns:
        The scalar loss (0-d), float32 or the logits' dtype if wider.

    Raises:
        TypeError: If ``logits`` is not floating, ``labels`` not integer, or ``num_items_in_batch`` neither an
            integer nor a 0-d integer tensor (bools and floats are refused).
        ValueError: If the shapes disagree, a label is outside [0, V) and not -100, ``normalization`` is unknown,
            ``num_items_in_batch`` is < 1, smaller than this batch's own trained tokens (the step's count includes
            them) or given with "sequences", or no target is trained (the mean of nothing) without
            ``num_items_in_batch``.

    Examples:
        >>> import math, torch
        >>> logits = torch.zeros(2, 3, 4)  # uniform over V = 4: every trained token costs ln 4
        >>> labels = torch.tensor([[-100, 1, 2], [-100, -100, 3]])
        >>> round(sft_loss(logits, labels).item(), 4), round(math.log(4), 4)
        (1.3863, 1.3863)
        >>> logits[1, 1, 3] = math.log(3)  # row 1's only target now has p = 1/2
        >>> round(sft_loss(logits, labels).item(), 4)  # (2 ln 4 + ln 2) / 3 tokens
        1.1552
        >>> round(sft_loss(logits, labels, "sequences").item(), 4)  # (ln 4 + ln 2) / 2 rows
        1.0397
    """
    _check_logits_and_labels(logits, labels)
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
    step_count = None if num_items_in_batch is None else _check_count(num_items_in_batch)
    if step_count is not None and normalization != "tokens":
        raise ValueError('num_items_in_batch is a token count: it applies to normalization="tokens" only')
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    B, T, V = logits.shape
    shift_logits = logits[:, :-1]  # (B, T - 1, V): position t predicts token t + 1
    shift_labels = labels[:, 1:].long().to(logits.device)  # (B, T - 1)
    trained = shift_labels != IGNORE_INDEX  # (B, T - 1)
    token_losses = F.cross_entropy(
        shift_logits.reshape(-1, V), shift_labels.reshape(-1), ignore_index=IGNORE_INDEX, reduction="none"
    ).view(B, T - 1)  # (B, T - 1), 0 where not trained
    if normalization == "tokens":
        own = int(trained.sum())
        if step_count is not None and step_count < own:
            raise ValueError(
                f"num_items_in_batch={step_count} is smaller than this batch's own {own} trained tokens: it "
                "must count the trained tokens of the whole step, this batch's included"
            )
        count = step_count if step_count is not None else own
        if count == 0:
            raise ValueError("no token is trained: every label[:, 1:] is IGNORE_INDEX (a mean over nothing)")
        return token_losses.sum() / count
    per_row_count = trained.sum(dim=1)  # (B,)
    has_target = per_row_count > 0  # (B,)
    if not has_target.any():
        raise ValueError("no token is trained: every label[:, 1:] is IGNORE_INDEX (a mean over nothing)")
    per_row_mean = token_losses.sum(dim=1)[has_target] / per_row_count[has_target]  # (B',)
    return per_row_mean.mean()
