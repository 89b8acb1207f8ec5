"""Tests for llmdocs.finetuning.reward_model: the scalar head read at the last real token.

- Equivalence with Hugging Face's ``LlamaForSequenceClassification(num_labels=1)`` (TRL's reward model), weights
  copied, float64, on a right-padded batch (HF finds the last token by the pad id, we by the mask).
- The reward of a padded row equals the row alone (left and right padding), and a row's reward reads its whole
  answer (changing the last real token changes it; changing padding does not).
- Trained with the Bradley-Terry loss on a toy preference (answers containing a token), it ranks held-out pairs.
"""

from __future__ import annotations

import math

import pytest
import torch
from transformers import LlamaForSequenceClassification
from weights import perturb

from llmdocs.finetuning.bradley_terry import bradley_terry_loss, pairwise_accuracy
from llmdocs.finetuning.reward_model import RewardModel, last_token_index
from llmdocs.generation.decoder_only import left_pad
from llmdocs.interop import hf_llama
from llmdocs.models.llama import Llama, LlamaConfig
from llmdocs.testing import assert_close, assert_equivalent

V, PAD = 41, 0


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def reward_model(**overrides: object) -> RewardModel:
    return RewardModel(perturb(Llama(LlamaConfig.tiny(V, n_layers=2, **overrides))))  # type: ignore[arg-type]


def right_pad(rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    T = max(map(len, rows))
    ids = torch.tensor([row + [PAD] * (T - len(row)) for row in rows])
    mask = torch.tensor([[True] * len(row) + [False] * (T - len(row)) for row in rows])
    return ids, mask


def rows(*lengths: int) -> list[list[int]]:
    return [torch.randint(1, V, (n,)).tolist() for n in lengths]  # no PAD inside: HF finds the end by the pad id


@pytest.mark.numerics
@pytest.mark.parametrize("tie", [True, False])
def test_rewards_equal_hugging_faces_sequence_classifier(tie: bool) -> None:
    ours = reward_model(n_kv_heads=2, tie_embeddings=tie).double().eval()
    hf_config = hf_llama.config_to_hf(ours.backbone.config)
    hf_config.num_labels, hf_config.pad_token_id = 1, PAD
    theirs = LlamaForSequenceClassification(hf_config).double().eval()
    state = {k: v for k, v in hf_llama.state_dict_to_hf(ours.backbone.state_dict()).items() if k != "lm_head.weight"}
    theirs.load_state_dict({**state, "score.weight": ours.score.weight.detach()}, strict=True)
    ids, mask = right_pad(rows(6, 3, 5, 1))
    with torch.no_grad():
        expected = theirs(ids, attention_mask=mask.long()).logits.squeeze(-1)  # (B,)
        actual = ours(ids, attention_mask=mask)
    assert actual.shape == (4,)
    assert_equivalent(actual, expected, depth=3)


@pytest.mark.numerics
def test_a_padded_row_scores_as_the_row_alone_left_or_right() -> None:
    model = reward_model().double().eval()
    prompts = rows(7, 2, 4)
    with torch.no_grad():
        alone = torch.cat([model(torch.tensor([p])) for p in prompts])  # (3,)
        assert_equivalent(model(*right_pad(prompts)), alone, depth=3)
        ids, mask = left_pad(prompts, pad_id=PAD)
        assert_equivalent(model(ids, attention_mask=mask), alone, depth=3)
        ids, mask = right_pad(prompts)
        changed_padding = ids.masked_fill(~mask, 5)
        assert torch.equal(model(changed_padding, attention_mask=mask), model(ids, attention_mask=mask))
        last = last_token_index(mask)
        changed_last = ids.clone()
        changed_last[torch.arange(3), last] = (ids[torch.arange(3), last] % (V - 1)) + 1  # another real token
        assert not torch.isclose(model(changed_last, attention_mask=mask), model(ids, attention_mask=mask)).any()


def test_token_scores_are_per_position_and_gradients_reach_head_and_backbone() -> None:
    model = reward_model()
    ids, mask = right_pad(rows(5, 3))
    scores = model.token_scores(ids, attention_mask=mask)
    assert scores.shape == (2, 5) and scores.dtype == torch.float32
    assert_close(model(ids, attention_mask=mask), scores[torch.arange(2), torch.tensor([4, 2])], depth=1)
    model(ids, attention_mask=mask).sum().backward()
    assert model.score.weight.grad is not None and model.score.weight.grad.abs().sum() > 0
    assert model.backbone.tok_embed.weight.grad is not None and model.backbone.lm_head.weight is not None


def test_head_shape_dtype_and_initial_scale() -> None:
    D = 576
    model = RewardModel(Llama(LlamaConfig.tiny(V, d_model=D, n_heads=8, n_kv_heads=2)).to(torch.float64))
    assert model.score.weight.shape == (1, D) and model.score.bias is None
    assert model.score.weight.dtype == torch.float64  # the backbone's dtype
    # N(0, 1 / (D + 1)): the sample std of 576 draws is within 10% of 1 / sqrt(577) with near certainty
    assert model.score.weight.std().item() == pytest.approx(1 / math.sqrt(D + 1), rel=0.1)


def test_last_token_index() -> None:
    mask = torch.tensor([[1, 1, 1, 0, 0], [0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [1, 0, 1, 0, 0]])
    assert last_token_index(mask).tolist() == [2, 4, 4, 2]
    assert last_token_index(mask.bool()).tolist() == [2, 4, 4, 2]


@pytest.mark.parametrize(
    ("mask", "error", "message"),
    [
        ([[1, 0]], TypeError, "attention_mask must be a bool or integer tensor"),
        (torch.tensor([[1.0, 0.0]]), TypeError, "attention_mask must be a bool or integer tensor"),
        (torch.tensor([1, 0]), ValueError, r"attention_mask must be \(B, T\)"),
        (torch.ones(2, 0, dtype=torch.long), ValueError, r"attention_mask must be \(B, T\) with T >= 1"),
        (torch.tensor([[1, 2]]), ValueError, "only 0 and 1"),
        (torch.tensor([[1, 1], [0, 0]]), ValueError, r"rows without a real token: \[1\]"),
    ],
)
def test_last_token_index_errors(mask: object, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        last_token_index(mask)  # type: ignore[arg-type]


def test_bad_backbone_and_inputs() -> None:
    with pytest.raises(TypeError, match="backbone must be a llmdocs Llama, got Linear"):
        RewardModel(torch.nn.Linear(2, 2))  # type: ignore[arg-type]
    model = reward_model()
    with pytest.raises(ValueError, match="rows without a real token"):
        model(torch.ones(2, 3, dtype=torch.long), attention_mask=torch.tensor([[1, 1, 0], [0, 0, 0]]))
    with pytest.raises(TypeError, match="ids"):
        model(torch.ones(2, 3))


def test_bradley_terry_training_learns_a_toy_preference() -> None:
    """Chosen answers contain token 7, rejected ones do not: a few steps of Adam rank held-out pairs right."""

    def pairs(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        rejected = torch.randint(8, V, (n, 6))
        chosen = rejected.clone()
        chosen[torch.arange(n), torch.randint(0, 6, (n,))] = 7
        return chosen, rejected

    model = reward_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    test_chosen, test_rejected = pairs(64)
    with torch.no_grad():
        before = pairwise_accuracy(model(test_chosen), model(test_rejected))
    for _ in range(60):
        chosen, rejected = pairs(16)
        rewards = model(torch.cat([chosen, rejected]))  # (2B,): one forward pass for both halves
        loss = bradley_terry_loss(rewards[:16], rewards[16:])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        after = pairwise_accuracy(model(test_chosen), model(test_rejected))
    assert before < 0.8 and after >= 0.95, (before, after)
