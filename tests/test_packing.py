"""Tests for llmdocs.finetuning.packing and the block-diagonal attention of Llama (``document_ids``).

- Layouts by hand: the padded batch, packed rows for best-fit decreasing and greedy (labels -100 on each example's
  first token, positions restarting, document ids, padding), truncation or refusal of a too-long example.
- Over random lengths: every example lands once, whole and in order, in a row of at most ``max_length``; best-fit
  decreasing never uses more rows than greedy.
- The model (a tiny random Llama, float64): the logits of packed rows equal those of each example run alone, in the
  fused and the explicit attention path; the "tokens" loss of the packed batch equals the token-weighted loss of the
  examples one by one, and the loss of the padded batch; attention weights are zero across examples.
- ``document_ids`` is refused with a cache, with a wrong shape or dtype; the padding fraction by hand.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from llmdocs.finetuning.chat import CHAT_SPECIAL_TOKENS, tokenize_conversation
from llmdocs.finetuning.packing import balanced_row_length, collate_padded, pack_examples, padding_fraction
from llmdocs.finetuning.sft_labels import IGNORE_INDEX, count_trained_tokens, sft_labels, sft_loss
from llmdocs.models.llama import Llama, LlamaConfig
from llmdocs.nn.grouped_query_attention import GroupedQueryAttention
from llmdocs.testing import assert_equivalent
from llmdocs.tokenizers.bpe import BPETokenizer

X = IGNORE_INDEX

# ---- layouts ----------------------------------------------------------------------------------------------------


def test_padded_batch_by_hand() -> None:
    batch = collate_padded([{"input_ids": [5, 6], "labels": [X, 6]}, {"input_ids": torch.tensor([7, 8, 9])}], pad_id=1)
    assert batch["input_ids"].tolist() == [[5, 6, 1], [7, 8, 9]]
    assert batch["labels"].tolist() == [[X, 6, X], [7, 8, 9]]
    assert batch["attention_mask"].tolist() == [[1, 1, 0], [1, 1, 1]]


EXAMPLES = [
    {"input_ids": [10, 11, 12], "labels": [X, X, 12]},  # 3 tokens, a prompt and a one-token answer
    {"input_ids": [20, 21, 22, 23, 24], "labels": [X, 21, 22, 23, 24]},  # 5
    {"input_ids": [30, 31]},  # 2, every token trained
    {"input_ids": [40, 41, 42, 43], "labels": [40, 41, 42, 43]},  # 4
]


def test_best_fit_decreasing_by_hand() -> None:
    packed = pack_examples(EXAMPLES, max_length=7)
    # Longest first: 5 -> row 0 (2 free), 4 -> row 1 (3 free), 3 -> row 1 (0 free), 2 -> row 0, the tightest fit.
    assert packed["input_ids"].tolist() == [[20, 21, 22, 23, 24, 30, 31], [10, 11, 12, 40, 41, 42, 43]]
    assert packed["labels"].tolist() == [[X, 21, 22, 23, 24, X, 31], [X, X, 12, X, 41, 42, 43]]
    assert packed["position_ids"].tolist() == [[0, 1, 2, 3, 4, 0, 1], [0, 1, 2, 0, 1, 2, 3]]
    assert packed["document_ids"].tolist() == [[1, 1, 1, 1, 1, 2, 2], [0, 0, 0, 3, 3, 3, 3]]
    assert packed["attention_mask"].tolist() == [[1] * 7, [1] * 7]


def test_greedy_by_hand_keeps_the_order_and_pads_short_rows() -> None:
    packed = pack_examples(EXAMPLES, max_length=7, strategy="greedy", pad_id=0)
    # 3 + 5 > 7: a new row; 5 + 2 = 7 fits; 4 starts a third row.
    assert packed["input_ids"].tolist() == [
        [10, 11, 12, 0, 0, 0, 0],
        [20, 21, 22, 23, 24, 30, 31],
        [40, 41, 42, 43, 0, 0, 0],
    ]
    assert packed["labels"].tolist() == [[X, X, 12, X, X, X, X], [X, 21, 22, 23, 24, X, 31], [X, 41, 42, 43, X, X, X]]
    assert packed["position_ids"].tolist() == [[0, 1, 2, 0, 0, 0, 0], [0, 1, 2, 3, 4, 0, 1], [0, 1, 2, 3, 0, 0, 0]]
    assert packed["document_ids"].tolist() == [
        [0, 0, 0, -1, -1, -1, -1],
        [1, 1, 1, 1, 1, 2, 2],
        [3, 3, 3, 3, -1, -1, -1],
    ]
    assert packed["attention_mask"].tolist() == [[1, 1, 1, 0, 0, 0, 0], [1] * 7, [1, 1, 1, 1, 0, 0, 0]]
    assert all(t.dtype == torch.long for t in packed.values())


def test_too_long_examples_are_refused_or_truncated() -> None:
    with pytest.raises(
        ValueError, match=r"examples\[1\] has 5 tokens, more than max_length=4 \(1 examples are too long\)"
    ):
        pack_examples(EXAMPLES, max_length=4)
    packed = pack_examples(EXAMPLES[1:2], max_length=4, truncate=True)
    assert packed["input_ids"].tolist() == [[20, 21, 22, 23]] and packed["labels"].tolist() == [[X, 21, 22, 23]]


@pytest.mark.parametrize("strategy", ["bfd", "greedy"])
def test_every_example_lands_once_whole_and_in_order(strategy: str) -> None:
    rng = random.Random(0)
    for _ in range(20):
        lengths = [rng.randint(1, 16) for _ in range(rng.randint(1, 30))]
        examples = [{"input_ids": [100 * i + t for t in range(n)]} for i, n in enumerate(lengths)]
        packed = pack_examples(examples, max_length=16, strategy=strategy)  # type: ignore[arg-type]
        ids, docs, positions = packed["input_ids"], packed["document_ids"], packed["position_ids"]
        assert ids.size(1) <= 16
        assert sorted(set(docs[docs >= 0].tolist())) == list(range(len(lengths)))
        for i, example in enumerate(examples):
            row, cols = (docs == i).nonzero(as_tuple=True)
            assert len(set(row.tolist())) == 1, "an example is split across rows"
            assert torch.equal(cols, torch.arange(cols[0], cols[0] + lengths[i])), "an example is not contiguous"
            assert ids[row, cols].tolist() == example["input_ids"] and positions[row, cols].tolist() == list(
                range(lengths[i])
            )
        if strategy == "greedy":
            assert [d for d in docs.flatten().tolist() if d >= 0] == sorted(
                d for d in docs.flatten().tolist() if d >= 0
            )
        else:
            greedy = pack_examples(examples, max_length=16, strategy="greedy")
            assert ids.size(0) <= greedy["input_ids"].size(0)


@pytest.mark.parametrize(
    ("examples", "kwargs", "error", "match"),
    [
        ([], {}, ValueError, "examples is empty"),
        ({"input_ids": [1]}, {}, TypeError, "examples must be a list of"),
        ([[1, 2]], {}, TypeError, r"examples\[0\] must be a dict with 'input_ids'"),
        ([{"input_ids": []}], {}, ValueError, r"examples\[0\]\['input_ids'\] is empty"),
        ([{"input_ids": [1.5]}], {}, TypeError, r"examples\[0\]\['input_ids'\] must hold ints only"),
        ([{"input_ids": torch.ones(2, 2, dtype=torch.long)}], {}, TypeError, "must be a 1-D integer tensor"),
        ([{"input_ids": [1, 2], "labels": [1]}], {}, ValueError, r"examples\[0\] has 2 input_ids but 1 labels"),
        ([{"input_ids": [1], "labels": [-5]}], {}, ValueError, "must be ids >= 0 or IGNORE_INDEX=-100"),
        ([{"input_ids": [-1]}], {}, ValueError, "holds a negative id"),
        ([{"input_ids": [1]}], {"max_length": 0}, ValueError, "max_length must be an int >= 1, got 0"),
        ([{"input_ids": [1]}], {"max_length": "8"}, TypeError, "max_length must be an int >= 1, got '8'"),
        ([{"input_ids": [2**70]}], {}, ValueError, r"examples\[0\]\['input_ids'\] holds the id 1180591620717411303424"),
        ([{"input_ids": [1], "labels": [2**64]}], {}, ValueError, r"examples\[0\]\['labels'\] holds the id .* int64"),
        ([{"input_ids": [1]}], {"strategy": "ffd"}, ValueError, r"strategy must be one of \('bfd', 'greedy'\)"),
        ([{"input_ids": [1]}], {"truncate": 1}, TypeError, "truncate must be True or False"),
        ([{"input_ids": [1]}], {"pad_id": -1}, ValueError, "pad_id must be a token id"),
    ],
)
def test_bad_packing_arguments_are_named(
    examples: object, kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        pack_examples(examples, **{"max_length": 8, **kwargs})  # type: ignore[arg-type]


# ---- the model on packed rows -----------------------------------------------------------------------------------

V = 53


def tiny_llama() -> Llama:
    torch.manual_seed(0)
    model = Llama(LlamaConfig.tiny(V, context_length=24, n_heads=4, n_kv_heads=2))
    for parameter in model.parameters():  # larger weights than the init: attention far from uniform
        parameter.data.normal_(0.0, 0.3)
    return model.double().eval()


def random_examples(n: int = 6, seed: int = 0) -> list[dict[str, list[int]]]:
    rng = random.Random(seed)
    examples = []
    for _ in range(n):
        length = rng.randint(2, 9)
        ids = [rng.randrange(V) for _ in range(length)]
        prompt = rng.randint(1, length - 1)
        examples.append({"input_ids": ids, "labels": [X] * prompt + ids[prompt:]})
    return examples


@pytest.mark.numerics
@pytest.mark.parametrize("need_weights", [False, True], ids=["fused", "explicit"])
def test_packed_logits_equal_each_example_alone(need_weights: bool) -> None:
    model = tiny_llama()
    examples = random_examples()
    packed = pack_examples(examples, max_length=16)
    assert packed["input_ids"].size(0) < len(examples)  # several examples share a row
    with torch.no_grad():
        logits = model(
            packed["input_ids"],
            position_ids=packed["position_ids"],
            document_ids=packed["document_ids"],
            need_weights=need_weights,
        )  # (R, T, V)
        for i, example in enumerate(examples):
            alone = model(torch.tensor([example["input_ids"]]))[0]  # (T_i, V)
            assert_equivalent(logits[packed["document_ids"] == i], alone, depth=model.config.n_layers)


@pytest.mark.numerics
def test_attention_weights_are_zero_across_examples() -> None:
    model = tiny_llama()
    document_ids = torch.tensor([[0, 0, 0, 1, 1, 2, 2, 2]])
    model(torch.randint(0, V, (1, 8)), document_ids=document_ids, need_weights=True)
    same = document_ids[0, :, None] == document_ids[0, None, :]  # (T, T)
    allowed = same & torch.ones(8, 8, dtype=torch.bool).tril()  # block-diagonal and causal
    for block in model.blocks:
        weights = block.last_self_weights
        assert weights is not None
        assert torch.equal(weights[..., ~allowed], torch.zeros_like(weights[..., ~allowed]))
        assert_equivalent(weights.sum(-1), torch.ones(1, 4, 8, dtype=torch.float64))


@pytest.mark.numerics
def test_packed_loss_equals_the_token_weighted_loss_of_the_examples_and_the_padded_loss() -> None:
    model = tiny_llama()
    examples = random_examples(n=7, seed=1)
    packed = pack_examples(examples, max_length=20, strategy="greedy")
    padded = collate_padded(examples, pad_id=0)
    with torch.no_grad():
        packed_logits = model(
            packed["input_ids"], position_ids=packed["position_ids"], document_ids=packed["document_ids"]
        )
        padded_logits = model(padded["input_ids"], attention_mask=padded["attention_mask"])
        sums, counts = [], []
        for example in examples:
            ids, labels = torch.tensor([example["input_ids"]]), torch.tensor([example["labels"]])
            n = count_trained_tokens(labels)
            sums.append(sft_loss(model(ids), labels) * n)
            counts.append(n)
    assert count_trained_tokens(packed["labels"]) == sum(counts) == count_trained_tokens(padded["labels"])
    token_weighted = torch.stack(sums).sum() / sum(counts)
    assert_equivalent(sft_loss(packed_logits, packed["labels"]), token_weighted, depth=model.config.n_layers)
    assert_equivalent(sft_loss(padded_logits, padded["labels"]), token_weighted, depth=model.config.n_layers)


@pytest.mark.numerics
def test_chat_examples_pack_and_train_only_on_answers() -> None:
    tok = BPETokenizer.train("", vocab_size=260, special_tokens=CHAT_SPECIAL_TOKENS)
    model = Llama(LlamaConfig.tiny(260, context_length=40)).double().eval()
    chats = [
        [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}],
        [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}],
    ]
    examples = []
    for chat in chats:
        out = tokenize_conversation(chat, tok)
        examples.append({"input_ids": out["input_ids"], "labels": sft_labels(out["input_ids"], out["assistant_mask"])})
    packed = pack_examples(examples, max_length=40)
    assert packed["input_ids"].shape == (1, 9 + 12)
    trained = packed["labels"][packed["labels"] != X].tolist()
    assert tok.decode(trained) == "4<|end|>Hello!<|end|>"
    with torch.no_grad():
        logits = model(packed["input_ids"], position_ids=packed["position_ids"], document_ids=packed["document_ids"])
        for i, example in enumerate(examples):
            alone = model(torch.tensor([example["input_ids"]]))[0]
            assert_equivalent(logits[packed["document_ids"] == i], alone, depth=model.config.n_layers)


# ---- document_ids errors, the attention layer, padding fraction -------------------------------------------------


def test_document_ids_are_refused_with_a_cache_or_a_wrong_shape_or_dtype() -> None:
    model = Llama(LlamaConfig.tiny(V))
    ids, documents = torch.zeros(1, 4, dtype=torch.long), torch.tensor([[0, 0, 1, 1]])
    cache = model.new_cache()
    with pytest.raises(ValueError, match=r"document_ids \(packed training rows\) cannot be combined with a cache"):
        model(ids, cache=cache, document_ids=documents)
    assert len(cache) == 0  # refused before anything was cached
    with pytest.raises(ValueError, match=r"document_ids must be \(B, T\)=\(1, 4\), got \(1, 3\)"):
        model(ids, document_ids=documents[:, :3])
    with pytest.raises(TypeError, match="document_ids must be an integer tensor"):
        model(ids, document_ids=documents.float())
    with pytest.raises(TypeError, match=r"document_ids must be an integer tensor .* got torch.bool"):
        model(ids, document_ids=documents.bool())
    attention = GroupedQueryAttention(d_model=16, n_heads=2)
    with pytest.raises(TypeError, match="document_ids must be an integer tensor"):
        attention(torch.zeros(1, 4, 16), document_ids=[[0, 0, 1, 1]])  # type: ignore[arg-type]


@pytest.mark.numerics
def test_one_document_per_row_is_the_plain_causal_model() -> None:
    model = tiny_llama()
    ids = torch.randint(0, V, (2, 9))
    with torch.no_grad():
        assert_equivalent(model(ids, document_ids=torch.zeros(2, 9, dtype=torch.long)), model(ids), depth=2)


def test_padding_fraction_by_hand() -> None:
    examples = [{"input_ids": [1] * n} for n in (6, 1, 2, 3)]  # 12 tokens
    assert padding_fraction(collate_padded(examples)["attention_mask"]) == 1 - 12 / 24  # 4 rows x 6
    assert padding_fraction(pack_examples(examples, max_length=6)["attention_mask"]) == 0.0  # [6], [1 + 2 + 3]
    assert padding_fraction(pack_examples(examples, max_length=7)["attention_mask"]) == 1 - 12 / 14  # [6 + 1], [2 + 3]
    assert padding_fraction(torch.tensor([[True, False]])) == 0.5
    with pytest.raises(TypeError, match="attention_mask must be a bool or integer 0/1 tensor"):
        padding_fraction(torch.ones(2, 2))
    with pytest.raises(ValueError, match="attention_mask must hold 0 and 1 only"):
        padding_fraction(torch.tensor([[1, 2]]))
    with pytest.raises(ValueError, match=r"non-empty \(B, T\)"):
        padding_fraction(torch.ones(3, dtype=torch.long))
    assert padding_fraction(torch.zeros(2, 3, dtype=torch.long)) == 1.0  # all padding: the closed end of [0, 1]


def test_balanced_row_length_keeps_the_fewest_rows_and_is_the_shortest_that_does() -> None:
    # 1,077 tokens at 1,024: bfd fills one row (1,020) and starts another -> balanced: two rows of about half each
    lengths = [78, 75, 72, 70, 69, 68, 67, 67, 66, 66, 65, 65, 64, 64, 64, 57]
    assert sum(lengths) == 1077
    row = balanced_row_length(lengths, max_length=1024)
    examples = [{"input_ids": [1] * n} for n in lengths]
    fixed, balanced = pack_examples(examples, 1024), pack_examples(examples, row)
    assert fixed["input_ids"].shape == (2, 1020) and balanced["input_ids"].shape == (2, row)  # 1,020 + 57 tokens
    assert 539 <= row <= 560 and padding_fraction(balanced["attention_mask"]) < 0.05
    rng = random.Random(0)
    for _ in range(300):
        lengths = [rng.randint(1, 300) for _ in range(rng.randint(1, 24))]
        max_length = rng.randint(max(lengths), 1200)
        row = balanced_row_length(lengths, max_length)
        n_rows = len(pack_examples([{"input_ids": [1] * n} for n in lengths], max_length)["input_ids"])
        assert max(lengths) <= row <= max_length
        assert len(pack_examples([{"input_ids": [1] * n} for n in lengths], row)["input_ids"]) == n_rows
        if row > max(lengths):  # one token shorter needs another row: the shortest length that keeps n_rows
            assert len(pack_examples([{"input_ids": [1] * n} for n in lengths], row - 1)["input_ids"]) > n_rows
    assert balanced_row_length([5, 4, 3], 12, strategy="greedy") == 12  # one row: all three, 12 tokens
    with pytest.raises(ValueError, match=r"lengths must be a non-empty list of ints in \[1, max_length=8\]"):
        balanced_row_length([9], 8)
    with pytest.raises(ValueError, match="lengths must be a non-empty list"):
        balanced_row_length([], 8)
    with pytest.raises(ValueError, match="strategy must be one of"):
        balanced_row_length([3], 8, strategy="ffd")  # type: ignore[arg-type]


def test_balanced_row_length_takes_numpy_and_tensor_lengths_and_names_a_bad_one() -> None:
    lengths = [600, 300, 177]
    for same in (np.array(lengths), torch.tensor(lengths), [np.int64(n) for n in lengths]):
        assert balanced_row_length(same, np.int64(1024)) == 600  # type: ignore[arg-type]
    many = [1] * 1999 + [50]
    with pytest.raises(ValueError, match=r"in \[1, max_length=20\], got lengths\[1999\]=50$"):  # not the whole list
        balanced_row_length(many, 20)
    with pytest.raises(TypeError, match=r"lengths must hold ints, got lengths\[1\]=True \(bool\)"):
        balanced_row_length([3, True], 8)
    with pytest.raises(TypeError, match=r"lengths must hold ints, got lengths\[0\]=2.0"):
        balanced_row_length([2.0], 8)
    with pytest.raises(TypeError, match="lengths must be a list of ints, got int"):
        balanced_row_length(5, 8)  # type: ignore[arg-type]
    for bad in ("10", None, True, 2.0):
        with pytest.raises(TypeError, match="max_length must be an int >= 1"):
            balanced_row_length([1], bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_length must be an int >= 1, got 0"):
        balanced_row_length([1], 0)


class UnhashableInt(int):
    """An int subclass with its own equality and therefore no hash, as some wrappers of ids are."""

    def __eq__(self, other: object) -> bool:
        return int(self) == other

    __hash__ = None  # type: ignore[assignment]


def test_int_subclasses_are_ids_even_unhashable_ones() -> None:
    labels = [UnhashableInt(IGNORE_INDEX), UnhashableInt(6)]
    assert collate_padded([{"input_ids": [5, 6], "labels": labels}])["labels"].tolist() == [[IGNORE_INDEX, 6]]
    with pytest.raises(ValueError, match="must be ids >= 0 or IGNORE_INDEX=-100"):
        collate_padded([{"input_ids": [5, 6], "labels": [UnhashableInt(-3), UnhashableInt(6)]}])
