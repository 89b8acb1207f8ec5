"""Next-sentence prediction (NSP), BERT's second pre-training task: does text B follow text A?

Question answering and natural-language inference are about the relation *between* two texts, which a language
model does not see. Devlin et al. (2019, section 3.1, "Task #2") therefore feed BERT pairs `[CLS] A [SEP] B [SEP]`
where half of the time B is the text that really follows A (`IsNext`) and half of the time a text from another
document (`NotNext`); a linear layer on the `[CLS]` vector classifies the pair:

    L_NSP = -(1 / B) sum_b log softmax(W_s pooled_b + b_s)[label_b]

**Making the pairs** follows Google's `create_pretraining_data.py` (`create_instances_from_document`), document
by document:

1. Add the document's sentences, in order, to a chunk until it holds `target` tokens (or the document ends).
   `target` is `max_num_tokens` (the context length minus 3, for `[CLS]`, `[SEP]`, `[SEP]`), except with
   probability `short_seq_prob` a random length in `[2, max_num_tokens]`, so that the model also sees short
   inputs, as fine-tuning tasks have. Here it is drawn again for every chunk, so that 10% of the *pairs* are
   short; Google draws it once per document.
2. Cut the chunk at a random sentence boundary: A is the sentences before the cut.
3. With probability 0.5, B is taken from another document, chosen uniformly: sentences from a random start until
   B has the `target - len(A)` tokens left. The sentences of the chunk after the cut were not used, so they go
   back and start the next chunk. Otherwise B is the rest of the chunk: the true continuation.
4. While `len(A) + len(B) > max_num_tokens`, remove one token from the longer side (B on a tie), from its front or
   its back with equal probability (so the model does not learn that a text always ends where a sentence ends).

**A needs a next sentence.** With `nsp=True` a chunk always holds at least two sentences, so that step 2 leaves
one for a true B: a chunk grows past `target` until it has two (step 4 cuts the excess), and takes the last
sentence of its document rather than leave it alone. A document of one sentence, or a single sentence left at
the end of a document after a random B, has no next sentence: it is never an A, only a source of random Bs.
Google's code makes every one-sentence chunk a `NotNext` pair instead; on a corpus of short documents that
tips the balance (64% `NotNext` on People's Daily's paragraphs). Here a pair is `NotNext` with probability
exactly 0.5.

**Without NSP** (`nsp=False`, RoBERTa's ablation: Liu et al., 2019, section 4.2, found that removing NSP does not
hurt), chunks are cut as in steps 1-2 and B is always the true continuation, empty when the chunk is a single
sentence (a one-sentence document, or a sentence longer than `target`); `is_random_next` is always `False`. The
inputs look the same, only the random Bs and the NSP loss are gone.

References:
    Devlin et al., "BERT: Pre-training of Deep Bidirectional Transformers for Language Understanding" (2019),
    section 3.1 "Task #2: Next Sentence Prediction" and appendix A.2; google-research/bert
    `create_pretraining_data.py`; Liu et al., "RoBERTa: A Robustly Optimized BERT Pretraining Approach" (2019),
    section 4.2.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["IS_NEXT", "NOT_NEXT", "SentencePair", "make_nsp_pairs", "nsp_accuracy", "nsp_loss"]

IS_NEXT, NOT_NEXT = 0, 1
"""NSP labels, Hugging Face's `next_sentence_label` convention: 0 = B follows A, 1 = B is a random text."""


@dataclass(frozen=True)
class SentencePair:
    """One pre-training example before masking: `[CLS] tokens_a [SEP] tokens_b [SEP]`.

    Attributes:
        tokens_a: Token ids of text A (no special tokens), never empty.
        tokens_b: Token ids of text B; empty only for a one-sentence chunk made with `nsp=False`.
        is_random_next: B comes from another document (label `NOT_NEXT`).
    """

    tokens_a: list[int]
    tokens_b: list[int]
    is_random_next: bool

    @property
    def label(self) -> int:
        """`NOT_NEXT` if B is random, else `IS_NEXT`."""
        return NOT_NEXT if self.is_random_next else IS_NEXT


def make_nsp_pairs(
    documents: Sequence[Sequence[Sequence[int]]],
    max_num_tokens: int,
    rng: random.Random,
    *,
    short_seq_prob: float = 0.1,
    nsp: bool = True,
) -> list[SentencePair]:
    """Cut tokenized documents into BERT's sentence pairs (the algorithm of the module docstring).

    Args:
        documents: Documents -> sentences -> token ids, without special tokens. Empty sentences and documents
            are skipped.
        max_num_tokens: The most tokens of A and B together: the context length minus 3. At least 2.
        rng: The source of randomness (the same state gives the same pairs).
        short_seq_prob: Probability that a chunk aims at a random shorter length (BERT: 0.1).
        nsp: Make `NotNext` pairs with a random B from another document half of the time; `False` makes only
            true continuations (RoBERTa's ablation without NSP).

    Returns:
        The pairs, document by document (shuffle them for training, e.g. with
        [`PretrainingBatches`][llmdocs.data.bert_pretraining.PretrainingBatches]). Every pair has
        `1 <= len(tokens_a)` and `len(tokens_a) + len(tokens_b) <= max_num_tokens`.

    Raises:
        TypeError: If `rng` is not a `random.Random` or `max_num_tokens` not an int.
        ValueError: If `max_num_tokens < 2`, `short_seq_prob` is outside [0, 1], or `nsp=True` gets fewer than
            two non-empty documents (a random B must come from another document).

    Examples:
        >>> documents = [[[1, 2], [3], [4, 5, 6]], [[7, 8], [9]]]  # 2 documents of token ids
        >>> pairs = make_nsp_pairs(documents, max_num_tokens=6, rng=random.Random(5))
        >>> [(p.tokens_a, p.tokens_b, p.is_random_next) for p in pairs]
        [([1, 2, 3], [4, 5, 6], False), ([7, 8], [9], False)]
        >>> pairs = make_nsp_pairs(documents, max_num_tokens=6, rng=random.Random(1))
        >>> [(p.tokens_a, p.tokens_b, p.is_random_next) for p in pairs]  # [3] was not used by pair 0: it goes back
        [([1, 2], [9], True), ([3], [4, 5, 6], False), ([7, 8], [4, 5, 6], True)]
    """
    if not isinstance(rng, random.Random):
        raise TypeError(f"rng must be a random.Random (e.g. random.Random(0)), got {type(rng).__name__}")
    if isinstance(max_num_tokens, bool) or not isinstance(max_num_tokens, int):
        raise TypeError(f"max_num_tokens must be an int, got {type(max_num_tokens).__name__}")
    if max_num_tokens < 2:
        raise ValueError(f"max_num_tokens must be >= 2 (one token of A and one of B), got {max_num_tokens}")
    if not 0.0 <= short_seq_prob <= 1.0:
        raise ValueError(f"short_seq_prob must be in [0, 1], got {short_seq_prob}")
    docs = [sentences for doc in documents if (sentences := [list(s) for s in doc if len(s)])]
    if nsp and len(docs) < 2:
        raise ValueError(
            f"nsp=True needs at least 2 non-empty documents (random Bs come from another), got {len(docs)}"
        )
    pairs: list[SentencePair] = []
    for doc_index in range(len(docs)):
        pairs += _pairs_of_document(docs, doc_index, max_num_tokens, rng, short_seq_prob, nsp)
    return pairs


def _pairs_of_document(
    docs: list[list[list[int]]],
    doc_index: int,
    max_num_tokens: int,
    rng: random.Random,
    short_seq_prob: float,
    nsp: bool,
) -> list[SentencePair]:
    """Steps 1-4 of the module docstring for one document."""
    doc = docs[doc_index]
    min_sentences = 2 if nsp else 1  # with NSP, A needs its next sentence in the chunk
    pairs = []
    start = 0  # the first sentence of the next chunk
    while len(doc) - start >= min_sentences:
        target = _target_length(max_num_tokens, rng, short_seq_prob)
        end, length = start + 1, len(doc[start])  # the chunk is doc[start:end]
        while end < len(doc) and (
            length < target or end - start < min_sentences or (nsp and len(doc) - end == 1)  # no lone leftover
        ):
            length += len(doc[end])
            end += 1
        chunk = doc[start:end]
        a_end = rng.randint(1, len(chunk) - 1) if len(chunk) >= 2 else 1  # A = chunk[:a_end]
        tokens_a = [t for sentence in chunk[:a_end] for t in sentence]
        is_random_next = nsp and rng.random() < 0.5
        if is_random_next:
            tokens_b = _random_b(docs, doc_index, target - len(tokens_a), rng)
            start += a_end  # the unused sentences of the chunk start the next one
        else:
            tokens_b = [t for sentence in chunk[a_end:] for t in sentence]
            start = end
        _truncate_pair(tokens_a, tokens_b, max_num_tokens, rng)
        pairs.append(SentencePair(tokens_a, tokens_b, is_random_next))
    return pairs


def _target_length(max_num_tokens: int, rng: random.Random, short_seq_prob: float) -> int:
    """`max_num_tokens`, or with probability `short_seq_prob` a random length in [2, max_num_tokens]."""
    return rng.randint(2, max_num_tokens) if rng.random() < short_seq_prob else max_num_tokens


def _random_b(docs: list[list[list[int]]], doc_index: int, target_b: int, rng: random.Random) -> list[int]:
    """Sentences of a uniformly chosen *other* document, from a random start, until `target_b` tokens (>= 1)."""
    other = rng.randrange(len(docs) - 1)
    other += other >= doc_index  # skip the document itself: uniform over the others
    random_doc = docs[other]
    tokens_b: list[int] = []
    for sentence in random_doc[rng.randrange(len(random_doc)) :]:
        tokens_b += sentence
        if len(tokens_b) >= target_b:
            break
    return tokens_b


def _truncate_pair(tokens_a: list[int], tokens_b: list[int], max_num_tokens: int, rng: random.Random) -> None:
    """Remove tokens from the longer side (B on a tie), from its front or back at random, until they fit."""
    while len(tokens_a) + len(tokens_b) > max_num_tokens:
        longer = tokens_a if len(tokens_a) > len(tokens_b) else tokens_b
        if rng.random() < 0.5:
            del longer[0]
        else:
            longer.pop()


def _check_classification(logits: Tensor, labels: Tensor) -> None:
    """Logits (B, 2) float and labels (B,) integer in {0, 1}."""
    if not isinstance(logits, Tensor) or not logits.dtype.is_floating_point:
        raise TypeError(f"logits must be a float tensor (B, 2), got {type(logits).__name__}")
    if not isinstance(labels, Tensor) or labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise TypeError(f"labels must be an integer tensor (B,) of IS_NEXT=0 / NOT_NEXT=1, got {labels!r}")
    if logits.dim() != 2 or logits.shape[1] != 2 or labels.shape != logits.shape[:1]:
        raise ValueError(
            f"nsp logits must be (B, 2) and labels (B,), got logits {tuple(logits.shape)} and labels "
            f"{tuple(labels.shape)}"
        )
    if labels.numel() and not bool(((labels == IS_NEXT) | (labels == NOT_NEXT)).all()):
        raise ValueError(f"labels must be IS_NEXT=0 or NOT_NEXT=1, got {labels.tolist()}")


def nsp_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean cross-entropy of the next-sentence classifier: L = -(1/B) sum_b log softmax(logits_b)[labels_b].

    The same number as Hugging Face's `BertForPreTraining` next-sentence loss (`CrossEntropyLoss()` on
    `seq_relationship_logits` and `next_sentence_label`).

    Args:
        logits: (B, 2) scores of (IsNext, NotNext).
        labels: (B,) `IS_NEXT` (0) or `NOT_NEXT` (1).

    Returns:
        The scalar loss.

    Raises:
        TypeError: If `logits` is not a float tensor or `labels` not an integer one.
        ValueError: If the shapes are not (B, 2) and (B,), the batch is empty, or a label is not 0 or 1.

    References:
        Devlin et al. (2019), section 3.1 "Task #2: Next Sentence Prediction".

    Examples:
        >>> logits = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
        >>> round(nsp_loss(logits, torch.tensor([IS_NEXT, NOT_NEXT])).item(), 4)  # (log(1 + e^-1) + log 2) / 2
        0.5032
    """
    _check_classification(logits, labels)
    if labels.numel() == 0:
        raise ValueError("the batch is empty: the mean NSP loss of no pair is undefined")
    return F.cross_entropy(logits, labels.long())


def nsp_accuracy(logits: Tensor, labels: Tensor) -> tuple[int, int]:
    """How many pairs the classifier gets right (argmax), and how many pairs there are.

    Args:
        logits: (B, 2) scores.
        labels: (B,) `IS_NEXT` or `NOT_NEXT`.

    Returns:
        `(correct, B)`.

    Raises:
        TypeError, ValueError: As [`nsp_loss`][llmdocs.training.next_sentence.nsp_loss] (an empty batch gives
            `(0, 0)`).

    Examples:
        >>> nsp_accuracy(torch.tensor([[2.0, 0.0], [2.0, 0.0]]), torch.tensor([IS_NEXT, NOT_NEXT]))
        (1, 2)
    """
    _check_classification(logits, labels)
    return int((logits.argmax(dim=-1) == labels).sum()), labels.numel()
