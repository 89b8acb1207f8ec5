"""BERT's pre-training batches: tokenized documents -> sentence pairs -> masked, padded tensors.

The pipeline of Devlin et al. (2019, section 3.1 and appendix A.2), in three steps:

1. `tokenize_documents`: documents of sentences -> token ids, without special tokens; the documents come e.g.
   from [`wikitext2_documents`][llmdocs.data.wikitext.wikitext2_documents];
2. [`make_nsp_pairs`][llmdocs.training.next_sentence.make_nsp_pairs]: ids -> `SentencePair`s (A, B, is B random?);
3. `PretrainingBatches`: batch `i` -> `[CLS] A [SEP] B [SEP]` rows, padded, with 15% of the tokens chosen and
   corrupted by [`mask_tokens`][llmdocs.training.masked_lm.mask_tokens].

Google's scripts mask once, offline, and copy the data `dupe_factor=10` times with different masks. Here the
masks are drawn when a batch is made, from a generator seeded by `(seed, index)`: every epoch sees new masks
(RoBERTa's "dynamic masking", Liu et al., 2019, section 4.1), and batch `i` is still a pure function of `i`, as
the training loop's resumption needs ([`train`][llmdocs.training.loop.train]).

References:
    Devlin et al., "BERT: Pre-training of Deep Bidirectional Transformers for Language Understanding" (2019),
    section 3.1 and appendix A; Liu et al., "RoBERTa: A Robustly Optimized BERT Pretraining Approach" (2019),
    section 4.1 (dynamic masking).
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Sequence
from typing import TypeVar

import numpy as np
import torch
from torch import Tensor

from llmdocs.tokenizers.bert_basic import _CJK_RANGES
from llmdocs.tokenizers.wordpiece import WordPieceTokenizer
from llmdocs.training.masked_lm import continuation_mask, mask_tokens
from llmdocs.training.next_sentence import SentencePair

__all__ = ["PretrainingBatches", "split_documents", "tokenize_documents"]

_Document = TypeVar("_Document")

# Cut points of the basic tokenizer that no special token ([MASK], ...) contains: a space, and every CJK ideograph
# when `tokenize_chinese_chars` is on (it becomes a word of its own; the captured group keeps it).
_SPLIT_SPACES = re.compile(" ")
_SPLIT_CJK = re.compile("([" + "".join(f"{chr(lo)}-{chr(hi)}" for lo, hi in _CJK_RANGES) + "])| ")


def tokenize_documents(documents: Sequence[Sequence[str]], tokenizer: WordPieceTokenizer) -> list[list[list[int]]]:
    """Token ids of every sentence of every document, without special tokens; empty ones are dropped.

    The ids equal `tokenizer.convert_tokens_to_ids(tokenizer.tokenize(sentence))`, computed faster: BERT's
    basic tokenizer cuts the text at spaces (and around every CJK ideograph, with `tokenize_chinese_chars`)
    before anything else and treats each part on its own, so each distinct part is tokenized once and its ids are
    cached. Running text repeats its words: with all-MiniLM-L6-v2's vocabulary, WikiText-2's training split
    (2.0 M words) takes 2.5 s instead of 15 s, People's Daily (1.8 M characters) 1 s instead of 7 s.

    Args:
        documents: Documents -> sentences (strings).
        tokenizer: A [`WordPieceTokenizer`][llmdocs.tokenizers.wordpiece.WordPieceTokenizer].

    Returns:
        Documents -> sentences -> ids; sentences without tokens and documents without sentences are left out.

    Raises:
        TypeError: If `tokenizer` is not a `WordPieceTokenizer`, or a sentence is not a string.

    Examples:
        >>> tok = WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "."])
        >>> tokenize_documents([["The cat sat.", "  "], [], ["Cat!"]], tok)
        [[[5, 6, 7, 8]], [[6, 1]]]
    """
    if not isinstance(tokenizer, WordPieceTokenizer):
        raise TypeError(f"tokenizer must be a WordPieceTokenizer, got {type(tokenizer).__name__}")
    splitter = _SPLIT_CJK if tokenizer.tokenize_chinese_chars else _SPLIT_SPACES
    cache: dict[str, list[int]] = {}
    result = []
    for document in documents:
        if isinstance(document, str):
            raise TypeError(
                "each document must be a list of sentences, got a str (wrap it: [[sentence, ...], ...], e.g. "
                f"[{document[:30]!r}])"
            )
        sentences = []
        for sentence in document:
            if not isinstance(sentence, str):
                raise TypeError(f"sentences must be strings, got {type(sentence).__name__} {sentence!r}")
            ids: list[int] = []
            for part in splitter.split(sentence):
                if not part:  # None (a space) or ""
                    continue
                if part not in cache:
                    cache[part] = tokenizer.convert_tokens_to_ids(tokenizer.tokenize(part))
                ids += cache[part]
            if ids:
                sentences.append(ids)
        if sentences:
            result.append(sentences)
    return result


def split_documents(
    documents: Sequence[_Document], held_out: float, seed: int | None = None
) -> tuple[list[_Document], list[_Document]]:
    """Split documents into a training and a held-out part, whole documents only.

    Two rules, both keeping the documents' order within each part:

    - `seed=None`: the *last* `ceil(held_out * N)` documents are held out. Use it when neighbouring documents are
      related, as People's Daily's paragraphs (documents) of one article: only the article cut at the boundary
      is on both sides.
    - `seed=k`: a random sample of documents (seeded) is held out, for independent documents (articles).

    Args:
        documents: The documents (any items).
        held_out: Fraction held out, in (0, 1).
        seed: `None` for the last documents, or the seed of a random sample.

    Returns:
        `(train, held)`, both non-empty.

    Raises:
        ValueError: If `held_out` is outside (0, 1) or leaves one part empty.

    Examples:
        >>> split_documents(list("abcdefghij"), 0.2)
        (['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'], ['i', 'j'])
        >>> split_documents(list("abcdefghij"), 0.2, seed=0)
        (['a', 'b', 'c', 'd', 'e', 'f', 'h', 'i'], ['g', 'j'])
    """
    if not 0.0 < held_out < 1.0:
        raise ValueError(f"held_out must be a fraction in (0, 1), got {held_out}")
    n = len(documents)
    n_held = math.ceil(held_out * n)
    if not 0 < n_held < n:
        raise ValueError(f"held_out={held_out} of {n} documents leaves a part empty ({n_held} held out)")
    held = set(range(n - n_held, n)) if seed is None else set(random.Random(seed).sample(range(n), n_held))
    train = [doc for i, doc in enumerate(documents) if i not in held]
    return train, [doc for i, doc in enumerate(documents) if i in held]


class PretrainingBatches:
    """Callable `index -> batch` of BERT pre-training examples, a pure function of the index.

    Batch `index` belongs to epoch `index // len(self)`; with `shuffle`, each epoch reads the pairs in the order
    of `torch.randperm` seeded with `seed + epoch` (as [`IndexedBatches`][llmdocs.data.batches.IndexedBatches]),
    and the masks are drawn from a `torch.Generator` seeded by `(seed, index)`, so every epoch gets new masks and
    a resumed run reads exactly the batches of the unbroken one.

    A row is `[CLS] A [SEP] B [SEP]` (just `[CLS] A [SEP]` when B is empty), with segment 0 on `[CLS] A [SEP]`
    and 1 on `B [SEP]`, padded with `[PAD]` (segment 0, attention 0) to the longest row of the batch. `[CLS]`,
    `[SEP]` and `[PAD]` are never chosen for prediction, so their label is `IGNORE_INDEX`.

    Args:
        pairs: The examples, from [`make_nsp_pairs`][llmdocs.training.next_sentence.make_nsp_pairs].
        batch_size: Rows per batch.
        tokenizer: Gives the special ids, the vocabulary size (random replacements) and, for `whole_word`, which
            tokens are `##` pieces.
        mlm_probability: Fraction of the tokens chosen for prediction (BERT: 0.15).
        whole_word: Choose whole words (a token and its `##` pieces together).
        seed: Seed of the epoch orders and of the masks.
        shuffle: Shuffle the pairs every epoch (and drop the last partial batch); `False` reads them in order and
            keeps the last, smaller batch (for evaluation).

    Raises:
        TypeError: If `tokenizer` is not a `WordPieceTokenizer` or `batch_size` not an int.
        ValueError: If `batch_size < 1`, `mlm_probability` is outside (0, 1), `seed` is negative, or there are
            fewer pairs than `batch_size` with `shuffle` (no pair at all without it).

    Examples:
        >>> tok = WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b", "c"])
        >>> pairs = [SentencePair([5, 6], [7], False), SentencePair([7], [5], True), SentencePair([6], [], False)]
        >>> batches = PretrainingBatches(pairs, batch_size=2, tokenizer=tok, shuffle=False)
        >>> len(batches)
        2
        >>> batch = batches(0)
        >>> batch["token_type_ids"], batch["attention_mask"], batch["next_sentence_label"]
        (tensor([[0, 0, 0, 0, 1, 1],
                [0, 0, 0, 1, 1, 0]]), tensor([[1, 1, 1, 1, 1, 1],
                [1, 1, 1, 1, 1, 0]]), tensor([0, 1]))
        >>> batch = batches(2)  # epoch 1 starts again with the first pairs, masked anew
        >>> batch["input_ids"], batch["labels"]  # 4 = [MASK]; at least one prediction per row
        (tensor([[2, 4, 6, 3, 7, 3],
                [2, 4, 3, 5, 3, 0]]), tensor([[-100,    5, -100, -100, -100, -100],
                [-100,    7, -100, -100, -100, -100]]))
    """

    def __init__(
        self,
        pairs: Sequence[SentencePair],
        *,
        batch_size: int,
        tokenizer: WordPieceTokenizer,
        mlm_probability: float = 0.15,
        whole_word: bool = False,
        seed: int = 0,
        shuffle: bool = True,
    ) -> None:
        if not isinstance(tokenizer, WordPieceTokenizer):
            raise TypeError(f"tokenizer must be a WordPieceTokenizer, got {type(tokenizer).__name__}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int):
            raise TypeError(f"batch_size must be an int, got {batch_size!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {seed!r}")
        if (shuffle and len(pairs) < batch_size) or not pairs:
            raise ValueError(f"{len(pairs)} pairs do not make one batch of batch_size={batch_size}")
        if not 0.0 < mlm_probability < 1.0:
            raise ValueError(f"mlm_probability must be in (0, 1) (BERT: 0.15), got {mlm_probability}")
        self.pairs = pairs
        self.batch_size = batch_size
        self.tokenizer = tokenizer
        self.mlm_probability = mlm_probability
        self.whole_word = whole_word
        self.seed = seed
        self.shuffle = shuffle
        self.is_continuation = continuation_mask(tokenizer.vocab) if whole_word else None
        vocab = tokenizer.vocab
        self.cls_id, self.sep_id = vocab[tokenizer.cls_token], vocab[tokenizer.sep_token]
        self.pad_id, self.mask_id = vocab[tokenizer.pad_token], vocab[tokenizer.mask_token]
        self._epoch = -1
        self._order = torch.arange(len(pairs))

    def __len__(self) -> int:
        """Batches per epoch: the last partial batch is dropped with `shuffle`, kept without."""
        n = len(self.pairs)
        return n // self.batch_size if self.shuffle else math.ceil(n / self.batch_size)

    def indices(self, index: int) -> list[int]:
        """The pairs of batch `index` (positions in `pairs`).

        Raises:
            ValueError: If `index` is negative.
        """
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise ValueError(f"index must be an int >= 0, got {index!r}")
        epoch, within = divmod(index, len(self))
        if self.shuffle and epoch != self._epoch:  # cache one permutation: consecutive indices share an epoch
            generator = torch.Generator().manual_seed(self.seed + epoch)
            self._order = torch.randperm(len(self.pairs), generator=generator)
            self._epoch = epoch
        return self._order[within * self.batch_size : (within + 1) * self.batch_size].tolist()

    def __call__(self, index: int) -> dict[str, Tensor]:
        """Batch `index`: `input_ids`, `token_type_ids`, `attention_mask`, `labels` (B, T), `next_sentence_label` (B,).

        Raises:
            ValueError: If `index` is negative.
        """
        rows = [self.pairs[i] for i in self.indices(index)]
        B = len(rows)
        T = max(len(p.tokens_a) + len(p.tokens_b) + (3 if p.tokens_b else 2) for p in rows)
        input_ids = torch.full((B, T), self.pad_id, dtype=torch.long)
        token_type_ids = torch.zeros(B, T, dtype=torch.long)
        attention_mask = torch.zeros(B, T, dtype=torch.long)
        special = torch.ones(B, T, dtype=torch.bool)  # [CLS], [SEP], [PAD]: never chosen
        for row, pair in enumerate(rows):
            a, b = len(pair.tokens_a), len(pair.tokens_b)
            ids = [self.cls_id, *pair.tokens_a, self.sep_id] + ([*pair.tokens_b, self.sep_id] if b else [])
            input_ids[row, : len(ids)] = torch.tensor(ids)
            attention_mask[row, : len(ids)] = 1
            token_type_ids[row, a + 2 : len(ids)] = 1  # B and its [SEP]
            special[row, 1 : a + 1] = False
            special[row, a + 2 : a + 2 + b] = False
        generator = torch.Generator().manual_seed(_mix_seed(self.seed, index))
        masked_ids, labels = mask_tokens(
            input_ids,
            vocab_size=self.tokenizer.vocab_size,
            mask_token_id=self.mask_id,
            special_tokens_mask=special,
            mlm_probability=self.mlm_probability,
            is_continuation=self.is_continuation,
            generator=generator,
        )
        return {
            "input_ids": masked_ids,
            "token_type_ids": token_type_ids,
            "attention_mask": attention_mask,
            "labels": labels,
            "next_sentence_label": torch.tensor([p.label for p in rows], dtype=torch.long),
        }


def _mix_seed(seed: int, index: int) -> int:
    """One 64-bit seed from `(seed, index)`, well mixed: `(0, 1)` and `(1, 0)` give unrelated streams."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1, dtype=np.uint64)[0])
