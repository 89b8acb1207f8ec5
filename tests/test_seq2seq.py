"""Tests of the sequence-to-sequence training pieces: tokenizer, batching, teacher forcing, label smoothing, BLEU."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from llmdocs.testing import assert_equivalent
from llmdocs.training.seq2seq import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    collate_pairs,
    corpus_bleu,
    encode_pairs,
    label_smoothed_cross_entropy,
    length_bucketed_batches,
    train_subword_tokenizer,
)

SENTENCES = [
    "The cat sleeps on the mat.",
    "El gato duerme en la alfombra.",
    "¿Dónde está la estación?",
    "Where is the station?",
    "Ñandú, pingüino y corazón: ¡qué día!",
] * 20


@pytest.fixture(scope="module")
def tokenizer():
    return train_subword_tokenizer(SENTENCES, vocab_size=120)


def test_tokenizer_round_trip_and_special_ids(tokenizer):
    for i, token in enumerate(["<pad>", "<bos>", "<eos>", "<unk>"]):
        assert tokenizer.token_to_id(token) == i
    for sentence in set(SENTENCES):
        assert tokenizer.decode(tokenizer.encode(sentence).ids) == sentence
    assert tokenizer.get_vocab_size() <= 120


def test_tokenizer_rejects_tiny_vocab():
    with pytest.raises(ValueError, match="vocab_size=4"):
        train_subword_tokenizer(SENTENCES, vocab_size=4)


def test_encode_pairs_truncates_to_max_len(tokenizer):
    pairs = [(SENTENCES[0], SENTENCES[1]), ("Where is the station?", "¿Dónde?")]
    full = encode_pairs(tokenizer, pairs)
    cut = encode_pairs(tokenizer, pairs, max_len=4)
    assert all(len(s) <= 3 and len(t) <= 3 for s, t in cut)
    assert cut[0][0] == full[0][0][:3]
    with pytest.raises(ValueError, match="max_len=1"):
        encode_pairs(tokenizer, pairs, max_len=1)


def test_bucketed_batches_cover_every_example_once_within_budget():
    rng = torch.Generator().manual_seed(0)
    lengths = torch.randint(1, 40, (1000,), generator=rng).tolist()
    batches = length_bucketed_batches(lengths, max_tokens=200, seed=3, epoch=1)
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(1000))
    assert all(len(b) * max(lengths[i] for i in b) <= 200 for b in batches)
    # same (seed, epoch) -> same batches; another epoch -> another order
    assert batches == length_bucketed_batches(lengths, max_tokens=200, seed=3, epoch=1)
    assert batches != length_bucketed_batches(lengths, max_tokens=200, seed=3, epoch=2)
    # bucketing keeps padding small: padded tokens are at most ~10% above the real ones here
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    assert padded < 1.1 * sum(lengths)


def test_bucketed_batches_reject_budget_below_longest():
    with pytest.raises(ValueError, match="max_tokens=5"):
        length_bucketed_batches([3, 9], max_tokens=5, seed=0)


def test_collate_teacher_forcing_layout():
    src, tgt_in, tgt_out = collate_pairs([([10, 11, 12], [20]), ([13], [21, 22, 23])])
    assert src.tolist() == [[10, 11, 12, EOS_ID], [13, EOS_ID, PAD_ID, PAD_ID]]
    assert tgt_in.tolist() == [[BOS_ID, 20, PAD_ID, PAD_ID], [BOS_ID, 21, 22, 23]]
    assert tgt_out.tolist() == [[20, EOS_ID, PAD_ID, PAD_ID], [21, 22, 23, EOS_ID]]
    # the decoder input is the target shifted right by one position
    real = tgt_in[:, 1:] != PAD_ID
    assert torch.equal(tgt_in[:, 1:][real], tgt_out[:, :-1][real])
    with pytest.raises(ValueError, match="examples is empty"):
        collate_pairs([])


def test_label_smoothing_hand_computed():
    # p = (0.25, 0.5, 0.25), target 1: (1 - eps) * -log 0.5 + eps * mean(-log p)
    logits = torch.log(torch.tensor([[0.25, 0.5, 0.25]]))
    eps = 0.2
    expected = (1 - eps) * math.log(2) + eps * (2 * math.log(4) + math.log(2)) / 3
    got = label_smoothed_cross_entropy(logits, torch.tensor([1]), smoothing=eps, ignore_index=-100)
    assert got.item() == pytest.approx(expected, abs=1e-6)


@pytest.mark.numerics
@pytest.mark.parametrize("eps", [0.0, 0.1, 0.3])
def test_label_smoothing_equals_torch(eps):
    torch.manual_seed(0)
    logits = torch.randn(3, 7, 50, dtype=torch.float64)  # an equivalence proof runs in float64
    target = torch.randint(0, 50, (3, 7))
    target[0, 4:] = PAD_ID
    ours = label_smoothed_cross_entropy(logits, target, smoothing=eps, ignore_index=PAD_ID)
    ref = F.cross_entropy(logits.view(-1, 50), target.view(-1), ignore_index=PAD_ID, label_smoothing=eps)
    assert_equivalent(ours, ref)


def test_label_smoothing_ignores_padding_content():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 11, requires_grad=True)
    target = torch.tensor([[3, 4, 5, PAD_ID, PAD_ID], [6, 7, 8, 9, 10]])
    loss = label_smoothed_cross_entropy(logits, target)
    loss.backward()
    assert torch.all(logits.grad[0, 3:] == 0)


def test_label_smoothing_bad_input():
    with pytest.raises(ValueError, match=r"smoothing=1\.0"):
        label_smoothed_cross_entropy(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), smoothing=1.0)
    with pytest.raises(ValueError, match="leading dimensions"):
        label_smoothed_cross_entropy(torch.zeros(2, 3), torch.zeros(3, dtype=torch.long))


def test_bleu_single_and_multi_reference():
    hyps = ["el gato duerme en la alfombra", "dónde está la estación"]
    assert corpus_bleu(hyps, hyps) == pytest.approx(100.0)
    single = corpus_bleu(hyps, ["el gato duerme sobre la alfombra", "dónde queda la estación"])
    multi = corpus_bleu(
        hyps,
        [["el gato duerme sobre la alfombra", "dónde queda la estación"], ["el gato duerme en la alfombra", "x"]],
    )
    assert 0 < single < multi <= 100
    with pytest.raises(ValueError, match="2 hypotheses"):
        corpus_bleu(hyps, ["only one"])


def test_bad_input_is_named_in_the_error() -> None:
    with pytest.raises(ValueError, match="texts has no text"):
        train_subword_tokenizer([], vocab_size=20)  # used to train a vocabulary of special tokens only
    with pytest.raises(ValueError, match="texts has no text"):
        train_subword_tokenizer(["", "  "], vocab_size=20)
    with pytest.raises(TypeError, match="got a single str"):
        train_subword_tokenizer("the cat sat", vocab_size=20)
    tokenizer = train_subword_tokenizer(["a b c d"] * 10, vocab_size=20)
    with pytest.raises(ValueError, match="pairs is empty"):
        encode_pairs(tokenizer, [])
    with pytest.raises(TypeError, match=r"pairs\[0\] must be a \(source, target\) pair of strings"):
        encode_pairs(tokenizer, ["a b"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="lengths is empty"):
        length_bucketed_batches([], max_tokens=10, seed=0)
    with pytest.raises(ValueError, match="every length must be >= 1"):
        length_bucketed_batches([0, 0, 3], max_tokens=10, seed=0)  # zero-cost examples: an unbounded batch
    with pytest.raises(TypeError, match=r"examples\[0\] must be a \(source_ids, target_ids\) pair"):
        collate_pairs([[5, 6, 7]])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="references is empty"):
        corpus_bleu(["a b"], [])  # used to fail with an IndexError
    with pytest.raises(TypeError, match="got a single str"):
        corpus_bleu("the cat", "the cat")  # type: ignore[arg-type]
