"""Tests for llmdocs.finetuning.sft_labels: prompt-masked labels and the SFT loss's normalisation.

- Labels, token by token, on a conversation of our template: -100 on the system and user turns and the markers, the
  ids on the answer and its end token; batched and bool masks; errors.
- The loss on hand-computed values (written out below): per token over the batch vs the mean of per-sequence means,
  where a one-token answer weighs as much as a three-token one.
- "tokens" equals ``F.cross_entropy(ignore_index=-100)`` on the shifted logits, does not depend on how the examples
  are grouped into micro-batches (with ``num_items_in_batch``), and gives the prompt no gradient; half-precision
  logits are scored in float32.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from llmdocs.finetuning.chat import CHAT_SPECIAL_TOKENS, tokenize_conversation
from llmdocs.finetuning.sft_labels import IGNORE_INDEX, count_trained_tokens, sft_labels, sft_loss
from llmdocs.testing import assert_equivalent
from llmdocs.tokenizers.bpe import BPETokenizer

# ---- labels -----------------------------------------------------------------------------------------------------


def test_labels_of_a_conversation_token_by_token() -> None:
    tok = BPETokenizer.train("", vocab_size=260, special_tokens=CHAT_SPECIAL_TOKENS)  # bytes only: one per char
    chat = [
        {"role": "system", "content": "Hi"},
        {"role": "user", "content": "1+1"},
        {"role": "assistant", "content": "2"},
    ]
    out = tokenize_conversation(chat, tok)
    labels = sft_labels(out["input_ids"], out["assistant_mask"])
    S, U, A, E = 256, 257, 258, 259  # <|system|> <|user|> <|assistant|> <|end|>
    assert out["input_ids"] == [S, ord("H"), ord("i"), E, U, ord("1"), ord("+"), ord("1"), E, A, ord("2"), E]
    assert labels.tolist() == [-100, -100, -100, -100, -100, -100, -100, -100, -100, -100, ord("2"), E]
    assert labels.dtype == torch.long


def test_labels_batched_with_a_bool_mask_and_tensors() -> None:
    ids = torch.tensor([[5, 6, 7], [8, 9, 3]])
    mask = torch.tensor([[False, True, True], [False, False, True]])
    assert sft_labels(ids, mask).tolist() == [[-100, 6, 7], [-100, -100, 3]]
    assert torch.equal(sft_labels(ids, mask.long()), sft_labels(ids, mask))
    assert sft_labels([4, 4], [0, 0]).tolist() == [IGNORE_INDEX, IGNORE_INDEX]


@pytest.mark.parametrize(
    ("ids", "mask", "error", "match"),
    [
        ([1, 2], [1], ValueError, r"assistant_mask must have the shape of input_ids \(2,\), got \(1,\)"),
        ([1, 2], [0, 2], ValueError, r"assistant_mask must hold 0 and 1 only, got the values \[0, 2\]"),
        ([1.0, 2.0], [0, 1], TypeError, "input_ids must hold integers, got torch.float32"),
        ([[[1]]], [[[1]]], ValueError, r"input_ids must be \(T,\) or \(B, T\), got shape \(1, 1, 1\)"),
        ("ab", [0, 1], TypeError, "input_ids must be a tensor or a list of ints, got str"),
        ([-1, 2], [0, 1], ValueError, "input_ids must be token ids >= 0"),
        ([], [], ValueError, r"input_ids is empty"),
        ([[]], [[]], ValueError, r"input_ids is empty"),
        ([1], torch.zeros(0, dtype=torch.long), ValueError, r"assistant_mask is empty"),
    ],
)
def test_bad_labels_arguments_are_named(ids: object, mask: object, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        sft_labels(ids, mask)  # type: ignore[arg-type]


# ---- the loss on hand values ------------------------------------------------------------------------------------


def two_way_logits() -> tuple[torch.Tensor, torch.Tensor]:
    """V = 2 and logits (0, ln 3) everywhere: p(1) = 3/4, p(0) = 1/4, so a target 1 costs ln(4/3), a 0 costs ln 4.

    Row 0 trains one token (a 0), row 1 three tokens (all 1s); the rest is -100 (the label at t = 0 is never a target).
    """
    logits = torch.tensor([0.0, math.log(3.0)], dtype=torch.float64).expand(2, 4, 2).clone()  # (B, T, V)
    labels = torch.tensor([[-100, -100, -100, 0], [-100, 1, 1, 1]])
    return logits, labels


def test_token_and_sequence_normalisation_on_hand_values() -> None:
    logits, labels = two_way_logits()
    ln4, ln4_3 = math.log(4.0), math.log(4.0 / 3.0)  # 1.3862944, 0.2876821
    # per token over the batch: (ln 4 + 3 ln(4/3)) / 4 = (1.3862944 + 0.8630462) / 4 = 0.5623351
    assert_equivalent(sft_loss(logits, labels), torch.tensor((ln4 + 3 * ln4_3) / 4, dtype=torch.float64))
    # mean of per-sequence means: (ln 4 / 1 + 3 ln(4/3) / 3) / 2 = (1.3862944 + 0.2876821) / 2 = 0.8369882
    per_sequence = sft_loss(logits, labels, normalization="sequences")
    assert_equivalent(per_sequence, torch.tensor((ln4 + ln4_3) / 2, dtype=torch.float64))
    # The one-token answer holds 1/4 of the trained tokens but half the weight per sequence.
    assert count_trained_tokens(labels) == 4


def test_a_row_without_targets_does_not_count_as_a_sequence() -> None:
    logits, labels = two_way_logits()
    labels = torch.cat([labels, torch.full((1, 4), IGNORE_INDEX)])  # a third row, all prompt
    logits = torch.cat([logits, logits[:1]])
    assert_equivalent(
        sft_loss(logits, labels, "sequences"),
        torch.tensor((math.log(4.0) + math.log(4.0 / 3.0)) / 2, dtype=torch.float64),
    )


def random_batch(seed: int = 0, B: int = 3, T: int = 7, V: int = 11) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(B, T, V, generator=generator, dtype=torch.float64)
    labels = torch.randint(0, V, (B, T), generator=generator)
    labels[torch.rand(B, T, generator=generator) < 0.4] = IGNORE_INDEX
    labels[:, 2] = 1  # at least one target per row
    return logits, labels


def test_tokens_equals_cross_entropy_with_ignore_index() -> None:
    logits, labels = random_batch()
    V = logits.size(-1)
    expected = F.cross_entropy(logits[:, :-1].reshape(-1, V), labels[:, 1:].reshape(-1), ignore_index=-100)
    assert_equivalent(sft_loss(logits, labels, "tokens"), expected)


def test_tokens_does_not_depend_on_the_grouping_into_micro_batches() -> None:
    logits, labels = random_batch(B=4)
    whole = sft_loss(logits, labels)
    total = count_trained_tokens(labels)
    accumulated = sum(
        sft_loss(logits[rows], labels[rows], num_items_in_batch=total) for rows in (slice(0, 1), slice(1, 4))
    )
    assert_equivalent(accumulated, whole)
    # Without the step's count, the mean of the two micro-batch means is a mean of means: another number.
    means = (sft_loss(logits[:1], labels[:1]) + sft_loss(logits[1:], labels[1:])) / 2
    with pytest.raises(AssertionError):
        assert_equivalent(means, whole)


def test_the_prompt_gets_no_gradient() -> None:
    logits, labels = random_batch()
    logits.requires_grad_(True)
    sft_loss(logits, labels).backward()
    assert logits.grad is not None
    untrained = torch.cat([labels[:, 1:] == IGNORE_INDEX, torch.ones(3, 1, dtype=torch.bool)], dim=1)  # (B, T)
    assert torch.equal(logits.grad[untrained], torch.zeros_like(logits.grad[untrained]))  # exactly zero
    assert (logits.grad[~untrained].abs().sum(-1) > 0).all()


def test_half_precision_logits_are_scored_in_float32() -> None:
    logits, labels = random_batch()
    half = logits.to(torch.bfloat16)
    loss = sft_loss(half, labels)
    assert loss.dtype == torch.float32
    assert torch.equal(loss, sft_loss(half.float(), labels))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(normalization="mean"), ValueError, r"normalization must be one of \('tokens', 'sequences'\)"),
        (dict(num_items_in_batch=0), ValueError, "num_items_in_batch must be >= 1"),
        (dict(num_items_in_batch=2.0), TypeError, "num_items_in_batch must be an int or a 0-d integer tensor"),
        (dict(num_items_in_batch=True), TypeError, "num_items_in_batch must be an int"),
        (dict(num_items_in_batch=np.bool_(True)), TypeError, "num_items_in_batch must be an int"),
        (dict(num_items_in_batch=torch.tensor(3.0)), TypeError, "num_items_in_batch must be an int"),
        (dict(num_items_in_batch=torch.tensor(True)), TypeError, "num_items_in_batch must be an int"),
        (dict(num_items_in_batch=torch.tensor([30])), TypeError, "num_items_in_batch must be an int"),
        (dict(num_items_in_batch=torch.tensor(0)), ValueError, "num_items_in_batch must be >= 1, got 0"),
        (dict(normalization="sequences", num_items_in_batch=3), ValueError, 'applies to normalization="tokens" only'),
    ],
)
def test_bad_loss_options_are_named(kwargs: dict[str, object], error: type[Exception], match: str) -> None:
    logits, labels = random_batch()
    with pytest.raises(error, match=match):
        sft_loss(logits, labels, **kwargs)  # type: ignore[arg-type]


def test_num_items_in_batch_takes_ints_numpy_ints_and_0d_tensors_and_counts_this_batch() -> None:
    logits = torch.zeros(2, 3, 4)  # every trained token costs ln 4
    labels = torch.tensor([[-100, 1, 2], [-100, -100, 3]])  # 3 trained tokens
    expected = sft_loss(logits, labels, num_items_in_batch=6)
    assert math.isclose(expected.item(), 3 * math.log(4) / 6, rel_tol=1e-6)
    for count in (np.int64(6), torch.tensor(6), torch.tensor(6, dtype=torch.int32)):  # SFTBatches passes a tensor
        assert torch.equal(sft_loss(logits, labels, num_items_in_batch=count), expected)  # type: ignore[arg-type]
    assert torch.equal(sft_loss(logits, labels, num_items_in_batch=3), sft_loss(logits, labels))
    with pytest.raises(ValueError, match=r"num_items_in_batch=1 is smaller than this batch's own 3 trained tokens"):
        sft_loss(logits, labels, num_items_in_batch=1)
    with pytest.raises(ValueError, match=r"num_items_in_batch=2 is smaller"):
        sft_loss(logits, labels, num_items_in_batch=torch.tensor(2))


def test_bad_logits_and_labels_are_named() -> None:
    logits, labels = random_batch()
    with pytest.raises(ValueError, match=r"logits must be \(B, T, V\) and labels \(B, T\)"):
        sft_loss(logits, labels[:, :-1])
    with pytest.raises(TypeError, match="labels must be an integer tensor"):
        sft_loss(logits, labels.double())
    with pytest.raises(TypeError, match="logits must be a floating tensor"):
        sft_loss(labels[..., None], labels)
    with pytest.raises(ValueError, match=r"labels must be ids in \[0, V=11\) or IGNORE_INDEX=-100, got 11"):
        sft_loss(logits, torch.full_like(labels, 11))
    nothing = torch.full_like(labels, IGNORE_INDEX)
    nothing[:, 0] = 3  # position 0 is never a target
    for normalization in ("tokens", "sequences"):
        with pytest.raises(ValueError, match="no token is trained"):
            sft_loss(logits, nothing, normalization)  # type: ignore[arg-type]
    assert sft_loss(logits, nothing, num_items_in_batch=5).item() == 0.0  # a micro-batch of prompts: adds nothing
    with pytest.raises(ValueError, match=r"labels must be \(B, T\)"):
        count_trained_tokens(labels[0])
