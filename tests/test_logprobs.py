"""Tests for llmdocs.finetuning.logprobs: sequence log-probabilities of responses.

- By hand: probabilities 0.5 and 0.9 on the response give log(0.45); the prompt and padding count for nothing.
- A batch gives each row what the row alone gives (float64, a tiny random Llama, right-padded rows of several
  lengths), so a row's score never depends on its neighbours or its padding; the per-token mean is the sum over the
  count; gradients reach the model; half-precision logits are scored in float32.
- A model that takes ``logits_mask`` (Llama) is asked for the scored positions' logits only, and the result equals
  ``token_log_probs`` of its full logits (float64); a model without it (GPT) projects every position.
"""

from __future__ import annotations

import math

import pytest
import torch

from llmdocs.finetuning.logprobs import (
    response_log_probs,
    response_token_log_probs,
    sequence_log_probs,
    token_log_probs,
)
from llmdocs.models.gpt import GPT, GPTConfig
from llmdocs.models.llama import Llama, LlamaConfig
from llmdocs.testing import assert_equivalent

IGNORE = -100


def test_sequence_log_probs_by_hand() -> None:
    probs = torch.tensor([[[0.5, 0.5], [0.9, 0.1], [0.3, 0.7], [0.5, 0.5]]])  # (1, 4, 2)
    labels = torch.tensor([[1, 1, 0, IGNORE]])  # the first label is never scored (nothing predicts it); padding last
    log_probs, mask = token_log_probs(probs.log(), labels)
    assert mask.tolist() == [[1.0, 1.0, 0.0]]
    assert log_probs.exp().mul(mask).tolist()[0][:2] == pytest.approx([0.5, 0.9])
    labels = torch.tensor([[IGNORE, 1, 0, IGNORE]])
    assert sequence_log_probs(probs.log(), labels).item() == pytest.approx(math.log(0.45))
    assert sequence_log_probs(probs.log(), labels, average=True).item() == pytest.approx(math.log(0.45) / 2)
    empty = torch.full((1, 4), IGNORE)
    assert sequence_log_probs(probs.log(), empty).item() == 0.0
    assert sequence_log_probs(probs.log(), empty, average=True).item() == 0.0


@pytest.mark.numerics
def test_a_batch_gives_each_row_what_the_row_alone_gives() -> None:
    torch.manual_seed(0)
    config = LlamaConfig.tiny(50)
    model = Llama(config).double().eval()
    rows = [(5, 3), (2, 6), (7, 1)]  # (prompt length, response length)
    T = max(p + r for p, r in rows)
    input_ids = torch.zeros(len(rows), T, dtype=torch.long)
    labels = torch.full((len(rows), T), IGNORE)
    attention_mask = torch.zeros(len(rows), T, dtype=torch.long)
    alone = []
    for b, (p, r) in enumerate(rows):
        ids = torch.randint(1, 50, (p + r,))
        input_ids[b, : p + r], attention_mask[b, : p + r] = ids, 1
        labels[b, p : p + r] = ids[p:]
        alone.append(response_log_probs(model, ids[None], labels[b : b + 1, : p + r])[0])
    batched = response_log_probs(model, input_ids, labels, attention_mask)
    assert_equivalent(batched, torch.stack(alone), depth=config.n_layers)
    by_hand = sum(
        model(input_ids[:1, :t]).log_softmax(-1)[0, -1, input_ids[0, t]] for t in range(rows[0][0], sum(rows[0]))
    )
    assert_equivalent(batched[0], by_hand, depth=config.n_layers)
    counts = torch.tensor([r for _, r in rows], dtype=torch.float64)
    averaged = response_log_probs(model, input_ids, labels, attention_mask, average=True)
    assert_equivalent(averaged, batched / counts, depth=config.n_layers)


def test_gradients_reach_the_model_and_half_precision_is_scored_in_float32() -> None:
    torch.manual_seed(0)
    model = Llama(LlamaConfig.tiny(50))
    ids = torch.randint(0, 50, (2, 6))
    labels = ids.masked_fill(torch.arange(6) < 3, IGNORE)
    response_log_probs(model, ids, labels).sum().backward()
    assert model.lm_head.weight.grad is not None and model.lm_head.weight.grad.abs().sum() > 0
    logits = torch.randn(2, 6, 50)
    half = sequence_log_probs(logits.to(torch.bfloat16), labels)
    assert half.dtype == torch.float32
    torch.testing.assert_close(half, sequence_log_probs(logits.to(torch.bfloat16).float(), labels))


def test_log_probs_refuse_bad_input() -> None:
    logits, labels = torch.randn(2, 4, 5), torch.tensor([[IGNORE, 1, 2, 3], [IGNORE, IGNORE, 4, 0]])
    for bad_logits, bad_labels, error, match in (
        (logits, labels.float(), TypeError, "labels must be an integer tensor"),
        (logits, labels.bool(), TypeError, "torch.bool"),
        (logits, labels[0], ValueError, r"logits must be \(B, T, V\) and labels \(B, T\)"),
        (logits[0], labels, ValueError, r"logits must be \(B, T, V\) and labels \(B, T\)"),
        (logits, labels[:, :3], ValueError, "with the same B and T"),
        (logits, labels.masked_fill(labels == 4, 5), ValueError, r"labels must be ids in \[0, V=5\)"),
    ):
        with pytest.raises(error, match=match):
            sequence_log_probs(bad_logits, bad_labels)
    with pytest.raises(TypeError, match="average must be a bool"):
        sequence_log_probs(logits, labels, average=1)
    model = Llama(LlamaConfig.tiny(50))
    with pytest.raises(TypeError, match="input_ids must be an integer tensor"):
        response_log_probs(model, torch.zeros(2, 4), labels)
    with pytest.raises(ValueError, match="attention_mask must have input_ids' shape"):
        response_log_probs(model, labels.clamp(min=0), labels, torch.ones(2, 3))
    with pytest.raises(TypeError, match="the model must return a logits tensor"):
        response_log_probs(lambda ids: (ids,), labels.clamp(min=0), labels)


@pytest.mark.numerics
@pytest.mark.parametrize("kind", ["llama", "gpt"])
def test_response_token_log_probs_equal_token_log_probs_of_the_full_logits(kind: str) -> None:
    torch.manual_seed(0)
    model = Llama(LlamaConfig.tiny(50)) if kind == "llama" else GPT(GPTConfig.tiny(vocab_size=50))
    model = model.double().eval()
    ids = torch.randint(1, 50, (3, 9))
    attention_mask = torch.ones_like(ids)
    attention_mask[2, 7:] = 0  # the last row right-padded
    labels = ids.masked_fill(torch.arange(9) < torch.tensor([[4], [2], [6]]), IGNORE).masked_fill(
        attention_mask == 0, IGNORE
    )
    head_rows: list[int] = []
    head = model.lm_head
    hook = head.register_forward_hook(
        lambda module, args, out: head_rows.append(args[0].reshape(-1, args[0].size(-1)).size(0))
    )
    try:
        log_probs, mask = response_token_log_probs(model, ids, labels, attention_mask)
    finally:
        hook.remove()
    expected, expected_mask = token_log_probs(model(ids, attention_mask=attention_mask), labels)
    assert torch.equal(mask, expected_mask) and log_probs.shape == (3, 8)
    assert_equivalent(log_probs, expected, depth=2)
    assert log_probs[mask == 0].abs().sum() == 0  # 0 where nothing is scored
    scored = int((labels[:, 1:] != IGNORE).sum())
    assert head_rows == ([scored] if kind == "llama" else [3 * 9])  # Llama projects the scored positions only
    assert_equivalent(response_log_probs(model, ids, labels, attention_mask), expected.sum(dim=1), depth=2)


def test_response_token_log_probs_refuse_bad_labels_and_a_model_that_ignores_logits_mask() -> None:
    torch.manual_seed(0)
    model = Llama(LlamaConfig.tiny(50))
    ids = torch.randint(0, 50, (2, 6))
    labels = ids.masked_fill(torch.arange(6) < 3, IGNORE)
    with pytest.raises(ValueError, match=r"labels must be ids in \[0, V=50\) or IGNORE_INDEX=-100, got 77"):
        response_token_log_probs(model, ids, labels.masked_fill(labels == labels[0, 4], 77))
    with pytest.raises(TypeError, match="labels must be an integer tensor"):
        response_token_log_probs(model, ids, labels.float())

    class IgnoresTheMask(torch.nn.Module):
        def forward(self, ids: torch.Tensor, logits_mask: torch.Tensor | None = None) -> torch.Tensor:
            return model(ids)  # (B, T, V): every position

    with pytest.raises(ValueError, match=r"logits of shape \(2, 6, 50\) for 6 scored positions, expected \(6, V\)"):
        response_token_log_probs(IgnoresTheMask(), ids, labels)


@pytest.mark.parametrize("kind", ["llama", "gpt"])
def test_a_single_token_row_scores_nothing(kind: str) -> None:
    torch.manual_seed(0)
    model = Llama(LlamaConfig.tiny(50)) if kind == "llama" else GPT(GPTConfig.tiny(vocab_size=50))
    ids = torch.tensor([[5], [6]])  # T = 1: no position predicts a next token
    log_probs, mask = response_token_log_probs(model, ids, ids.clone())
    assert log_probs.shape == mask.shape == (2, 0)
    assert response_log_probs(model, ids, ids.clone()).tolist() == [0.0, 0.0]
