"""Next-sentence prediction: pairs that are really consecutive or really from another document, and the loss.

The synthetic documents encode where every token comes from: token `d * 10_000 + s * 100 + k` is token k of
sentence s of document d, so a test can tell whether B follows A, which document it comes from, and whether a
pair is one contiguous piece of text.
"""

from __future__ import annotations

import math
import random

import pytest
import torch

from llmdocs.testing import assert_equivalent
from llmdocs.training.next_sentence import (
    IS_NEXT,
    NOT_NEXT,
    SentencePair,
    make_nsp_pairs,
    nsp_accuracy,
    nsp_loss,
)


def synthetic_documents(n_docs: int = 60, seed: int = 0, one_sentence_every: int = 7) -> list[list[list[int]]]:
    """Documents of 1-25 sentences of 1-30 tokens; every `one_sentence_every`-th document has a single sentence."""
    rng = random.Random(seed)
    docs = []
    for d in range(n_docs):
        n_sentences = 1 if d % one_sentence_every == 0 else rng.randint(2, 25)
        docs.append([[d * 10_000 + s * 100 + k for k in range(rng.randint(1, 30))] for s in range(n_sentences)])
    return docs


def stream(documents: list[list[list[int]]], d: int) -> list[int]:
    """All the tokens of document d, in order."""
    return [t for sentence in documents[d] for t in sentence]


def is_contiguous(tokens: list[int], documents: list[list[list[int]]]) -> bool:
    """Whether `tokens` is one unbroken run of one document's text."""
    text = stream(documents, tokens[0] // 10_000)
    start = text.index(tokens[0])
    return text[start : start + len(tokens)] == tokens


def document(token: int) -> int:
    return token // 10_000


def sentence(token: int) -> int:
    return token // 100 % 100


def test_pairs_fit_and_are_half_random_from_another_document() -> None:
    documents = synthetic_documents(n_docs=300)
    max_num_tokens = 60
    pairs = make_nsp_pairs(documents, max_num_tokens, random.Random(0))
    assert all(p.tokens_a and p.tokens_b for p in pairs)
    assert all(len(p.tokens_a) + len(p.tokens_b) <= max_num_tokens for p in pairs)
    n = len(pairs)
    assert n > 1000
    share = sum(p.is_random_next for p in pairs) / n
    assert abs(share - 0.5) <= 5 * math.sqrt(0.25 / n)  # not rounding: sampling error, 5 binomial sd
    for pair in pairs:
        assert is_contiguous(pair.tokens_a, documents) and is_contiguous(pair.tokens_b, documents)
        same = document(pair.tokens_a[0]) == document(pair.tokens_b[0])
        assert same != pair.is_random_next, "a random B must come from another document, a true B from the same"
        assert pair.label == (NOT_NEXT if pair.is_random_next else IS_NEXT)


def test_true_pairs_are_consecutive_text_cut_at_a_sentence_boundary() -> None:
    documents = synthetic_documents(n_docs=100, seed=1)
    for max_num_tokens in (30, 10_000):  # truncated, and never truncated
        pairs = make_nsp_pairs(documents, max_num_tokens, random.Random(1))
        true_pairs = [p for p in pairs if not p.is_random_next]
        assert true_pairs
        for pair in true_pairs:
            # A lies in sentences before the cut, B in sentences from the cut on
            assert sentence(pair.tokens_a[-1]) < sentence(pair.tokens_b[0])
            if max_num_tokens == 10_000:  # untruncated: B is exactly the text after A
                text = stream(documents, document(pair.tokens_a[0]))
                start = text.index(pair.tokens_a[0])
                assert text[start : start + len(pair.tokens_a) + len(pair.tokens_b)] == pair.tokens_a + pair.tokens_b
                assert pair.tokens_a[0] % 100 == 0 and pair.tokens_b[0] % 100 == 0  # whole sentences


def test_one_sentence_documents_are_only_random_b_sources_with_nsp() -> None:
    documents = synthetic_documents(n_docs=140, one_sentence_every=2)  # half the documents: one sentence
    pairs = make_nsp_pairs(documents, 50, random.Random(2))
    singles = {d for d in range(len(documents)) if len(documents[d]) == 1}
    assert not any(document(p.tokens_a[0]) in singles for p in pairs)
    assert any(document(p.tokens_b[0]) in singles for p in pairs if p.is_random_next)
    share = sum(p.is_random_next for p in pairs) / len(pairs)
    assert abs(share - 0.5) <= 5 * math.sqrt(0.25 / len(pairs))  # not rounding: sampling error


def test_without_nsp_chunks_are_contiguous_and_cover_every_document() -> None:
    # Sentences of 5 tokens and a target of 20: chunks end exactly at 20 tokens, so nothing is truncated and the
    # chunks of a document, in order, give back all its text.
    documents = [[[d * 10_000 + s * 100 + k for k in range(5)] for s in range(n)] for d, n in enumerate([1, 9, 4, 13])]
    pairs = make_nsp_pairs(documents, 20, random.Random(3), short_seq_prob=0.0, nsp=False)
    assert not any(p.is_random_next for p in pairs)
    assert [t for p in pairs for t in p.tokens_a + p.tokens_b] == [t for d in range(4) for t in stream(documents, d)]
    assert SentencePair(stream(documents, 0), [], False) in pairs  # a one-sentence document: B is empty
    for pair in pairs:
        assert is_contiguous(pair.tokens_a + pair.tokens_b, documents)
    assert all(p.tokens_b for p in pairs if len(p.tokens_a) + len(p.tokens_b) > 5)  # >= 2 sentences: cut in two


def test_short_seq_prob_makes_shorter_pairs_and_the_rng_decides_everything() -> None:
    documents = synthetic_documents(n_docs=80, seed=4)
    full = make_nsp_pairs(documents, 100, random.Random(4), short_seq_prob=0.0)
    short = make_nsp_pairs(documents, 100, random.Random(4), short_seq_prob=1.0)
    mean_length = lambda pairs: sum(len(p.tokens_a) + len(p.tokens_b) for p in pairs) / len(pairs)  # noqa: E731
    assert mean_length(short) < 0.7 * mean_length(full)
    assert make_nsp_pairs(documents, 100, random.Random(5)) == make_nsp_pairs(documents, 100, random.Random(5))
    assert make_nsp_pairs(documents, 100, random.Random(5)) != make_nsp_pairs(documents, 100, random.Random(6))


def test_empty_sentences_and_documents_are_skipped() -> None:
    pairs = make_nsp_pairs([[[], [1, 2]], [], [[3], [], [4]], [[5, 6]]], 10, random.Random(0), nsp=False)
    assert [(p.tokens_a, p.tokens_b) for p in pairs] == [([1, 2], []), ([3], [4]), ([5, 6], [])]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (dict(max_num_tokens=1), ValueError, "max_num_tokens must be >= 2"),
        (dict(max_num_tokens=5.0), TypeError, "max_num_tokens must be an int"),
        (dict(rng=0), TypeError, "rng must be a random.Random"),
        (dict(short_seq_prob=1.5), ValueError, r"short_seq_prob must be in \[0, 1\]"),
        (dict(documents=[[[1], [2]]]), ValueError, "nsp=True needs at least 2 non-empty documents"),
    ],
)
def test_bad_arguments_are_named(kwargs: dict, error: type, message: str) -> None:
    arguments = dict(documents=[[[1], [2]], [[3]]], max_num_tokens=8, rng=random.Random(0)) | kwargs
    documents, max_num_tokens, rng = arguments.pop("documents"), arguments.pop("max_num_tokens"), arguments.pop("rng")
    with pytest.raises(error, match=message):
        make_nsp_pairs(documents, max_num_tokens, rng, **arguments)


@pytest.mark.numerics
def test_nsp_loss_by_hand() -> None:
    logits = torch.tensor([[2.0, 0.0], [1.0, 3.0], [0.5, 0.5]], dtype=torch.float64)  # (B=3, 2)
    labels = torch.tensor([IS_NEXT, IS_NEXT, NOT_NEXT])
    expected = (math.log(1 + math.exp(-2)) + math.log(1 + math.exp(2)) + math.log(2)) / 3
    assert_equivalent(nsp_loss(logits, labels), torch.tensor(expected, dtype=torch.float64))


def test_nsp_loss_and_accuracy_refuse_bad_shapes_and_labels() -> None:
    with pytest.raises(ValueError, match=r"logits must be \(B, 2\)"):
        nsp_loss(torch.zeros(3, 3), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"labels \(B,\)"):
        nsp_loss(torch.zeros(3, 2), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="IS_NEXT=0 or NOT_NEXT=1"):
        nsp_loss(torch.zeros(2, 2), torch.tensor([0, 2]))
    with pytest.raises(ValueError, match="empty"):
        nsp_loss(torch.zeros(0, 2), torch.zeros(0, dtype=torch.long))
    assert nsp_accuracy(torch.tensor([[0.0, 1.0], [1.0, 0.0], [1.0, 0.0]]), torch.tensor([1, 0, 1])) == (2, 3)


def test_int32_labels_give_the_same_loss() -> None:
    logits = torch.randn(3, 2)
    labels = torch.tensor([0, 1, 0])
    assert torch.equal(nsp_loss(logits, labels.int()), nsp_loss(logits, labels))
