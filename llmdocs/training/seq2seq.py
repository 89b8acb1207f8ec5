"""Training an encoder-decoder on sentence pairs: subwords, length-bucketed batches, label smoothing, BLEU.

The pieces a translation run needs around the model itself, each small enough to read and test on its own:

1. a joint subword vocabulary for source and target (BPE, trained with the ``tokenizers`` library; the
   from-scratch BPE of the tokenization chapter teaches the same algorithm),
2. batches that group sentences of similar length so that little compute is spent on padding,
3. the teacher-forcing layout: source ``ids + <eos>``, decoder input ``<bos> + ids``, target ``ids + <eos>``,
4. label-smoothed cross-entropy (Szegedy et al., 2016; used by Vaswani et al., 2017, with epsilon 0.1),
5. corpus BLEU with ``sacrebleu``, the score every machine-translation paper reports.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from torch import Tensor

SPECIAL_TOKENS: tuple[str, ...] = ("<pad>", "<bos>", "<eos>", "<unk>")
"""Special tokens, in id order: ids 0, 1, 2, 3."""
PAD_ID, BOS_ID, EOS_ID, UNK_ID = 0, 1, 2, 3


def train_subword_tokenizer(texts: Iterable[str], vocab_size: int = 8000, min_frequency: int = 2) -> Tokenizer:
    """Train a BPE vocabulary shared by source and target languages.

    Text is NFKC-normalised and split on spaces that are kept as the marker ``▁`` (the SentencePiece convention),
    so decoding restores the original spacing exactly. One joint vocabulary lets the model tie its source
    embeddings, target embeddings and output projection (Press & Wolf, 2017).

    Args:
        texts: Training sentences of both languages.
        vocab_size: Size of the vocabulary, special tokens included.
        min_frequency: A pair must occur this often to be merged.

    Returns:
        A ``tokenizers.Tokenizer`` whose ids 0-3 are ``<pad> <bos> <eos> <unk>``.

    Raises:
        TypeError: If ``texts`` is a single str, or holds something other than strings.
        ValueError: If ``vocab_size`` leaves no room beside the special tokens, or ``texts`` has no text.

    Examples:
        >>> tok = train_subword_tokenizer(["the cat sat", "el gato se sentó"] * 50, vocab_size=60)
        >>> tok.token_to_id("<eos>"), tok.decode(tok.encode("the gato").ids)
        (2, 'the gato')
    """
    if vocab_size <= len(SPECIAL_TOKENS):
        raise ValueError(f"vocab_size={vocab_size} must exceed the {len(SPECIAL_TOKENS)} special tokens")
    if isinstance(texts, str):
        raise TypeError("texts must be an iterable of sentences, got a single str (write [text])")
    texts = list(texts)
    if not all(isinstance(text, str) for text in texts):
        raise TypeError("texts must hold strings (sentences of both languages)")
    if not any(text.strip() for text in texts):
        raise ValueError("texts has no text to learn a vocabulary from (it is empty or blank)")
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return tokenizer


def encode_pairs(
    tokenizer: Tokenizer, pairs: Sequence[tuple[str, str]], max_len: int | None = None
) -> list[tuple[list[int], list[int]]]:
    """Turn sentence pairs into id lists, truncating each side to ``max_len - 1`` ids (room for ``<eos>``).

    Args:
        tokenizer: A tokenizer from :func:`train_subword_tokenizer`.
        pairs: ``(source, target)`` sentences.
        max_len: Longest sequence the model accepts, special token included; ``None`` keeps everything.

    Returns:
        ``(source_ids, target_ids)`` per pair, without special tokens.

    Raises:
        TypeError: If a pair is not two strings.
        ValueError: If ``pairs`` is empty or ``max_len < 2``.

    Examples:
        >>> tok = train_subword_tokenizer(["a b c d"] * 10, vocab_size=20)
        >>> [len(s) for s, _ in encode_pairs(tok, [("a b c d", "a")], max_len=3)]
        [2]
    """
    if max_len is not None and max_len < 2:
        raise ValueError(f"max_len={max_len} must be at least 2 (one token plus <eos>)")
    _check_pairs(pairs)
    sources = tokenizer.encode_batch([s for s, _ in pairs])
    targets = tokenizer.encode_batch([t for _, t in pairs])
    limit = None if max_len is None else max_len - 1
    return [(s.ids[:limit], t.ids[:limit]) for s, t in zip(sources, targets, strict=True)]


def _check_pairs(pairs: Sequence[tuple[str, str]]) -> None:
    """Raise a readable error unless ``pairs`` is a non-empty sequence of (source, target) strings."""
    if isinstance(pairs, str):
        raise TypeError("pairs must be a list of (source, target) pairs, got a str")
    if len(pairs) == 0:
        raise ValueError("pairs is empty: pass at least one (source, target) pair")
    for i, pair in enumerate(pairs):
        if not isinstance(pair, tuple | list) or len(pair) != 2 or not all(isinstance(t, str) for t in pair):
            raise TypeError(f"pairs[{i}] must be a (source, target) pair of strings, got {pair!r}")


def length_bucketed_batches(lengths: Sequence[int], max_tokens: int, seed: int, epoch: int = 0) -> list[list[int]]:
    """Group example indices into batches of similar length, each holding at most ``max_tokens`` padded tokens.

    Examples are shuffled, then sorted by length (a stable sort, so equal lengths stay shuffled), cut into
    batches whose ``len(batch) * longest`` stays within ``max_tokens``, and the batch order is shuffled. The
    result depends only on ``(seed, epoch)``, so a resumed run can rebuild the same batches and skip the ones
    it has already seen.

    Args:
        lengths: Padded cost of each example (e.g. the longer side of a sentence pair).
        max_tokens: Budget of padded tokens per batch.
        seed: Seed of the run.
        epoch: Epoch number: every epoch gets a different order.

    Returns:
        Lists of example indices.

    Raises:
        ValueError: If ``lengths`` is empty or has a length below 1, or ``max_tokens`` is below the longest.

    Examples:
        >>> batches = length_bucketed_batches([3, 9, 4, 8, 3], max_tokens=18, seed=0)
        >>> sorted(sorted(b) for b in batches)
        [[0, 2, 4], [1, 3]]
    """
    if len(lengths) == 0:
        raise ValueError("lengths is empty: there is no example to batch")
    if min(lengths) < 1:
        # a batch of zero-cost examples would never reach max_tokens and grow without bound
        raise ValueError(f"every length must be >= 1 (padded tokens of an example), got {min(lengths)}")
    if max_tokens < max(lengths):
        raise ValueError(f"max_tokens={max_tokens} is smaller than the longest example ({max(lengths)})")
    rng = random.Random(seed * 1_000_003 + epoch)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    order.sort(key=lambda i: lengths[i])
    batches: list[list[int]] = []
    batch: list[int] = []
    for i in order:
        # lengths are ascending, so lengths[i] is the longest of batch + [i]
        if batch and (len(batch) + 1) * lengths[i] > max_tokens:
            batches.append(batch)
            batch = []
        batch.append(i)
    if batch:
        batches.append(batch)
    rng.shuffle(batches)
    return batches


def collate_pairs(
    examples: Sequence[tuple[Sequence[int], Sequence[int]]],
    pad_id: int = PAD_ID,
    bos_id: int = BOS_ID,
    eos_id: int = EOS_ID,
) -> tuple[Tensor, Tensor, Tensor]:
    """Pad a batch into the teacher-forcing layout.

    Source ``x1 .. xS <eos>``; decoder input ``<bos> y1 .. yT``; target ``y1 .. yT <eos>``: position ``t`` of
    the decoder sees ``<bos> y1 .. y(t-1)`` and must predict ``yt``.

    Args:
        examples: ``(source_ids, target_ids)`` without special tokens.
        pad_id: Padding id.
        bos_id: Beginning-of-sequence id.
        eos_id: End-of-sequence id.

    Returns:
        ``src`` (B, S), ``tgt_in`` (B, T) and ``tgt_out`` (B, T), int64, right-padded with ``pad_id``.

    Raises:
        TypeError: If an example is not a ``(source_ids, target_ids)`` pair.
        ValueError: If ``examples`` is empty.

    Examples:
        >>> src, tgt_in, tgt_out = collate_pairs([([5, 6], [7]), ([5], [8, 9])])
        >>> src.tolist(), tgt_in.tolist(), tgt_out.tolist()
        ([[5, 6, 2], [5, 2, 0]], [[1, 7, 0], [1, 8, 9]], [[7, 2, 0], [8, 9, 2]])
    """
    if not examples:
        raise ValueError("examples is empty: a batch needs at least one sentence pair")
    for i, example in enumerate(examples):
        if not isinstance(example, tuple | list) or len(example) != 2:
            raise TypeError(f"examples[{i}] must be a (source_ids, target_ids) pair, got {example!r}")
    B = len(examples)
    S = max(len(s) for s, _ in examples) + 1
    T = max(len(t) for _, t in examples) + 1
    src = torch.full((B, S), pad_id, dtype=torch.long)
    tgt_in = torch.full((B, T), pad_id, dtype=torch.long)
    tgt_out = torch.full((B, T), pad_id, dtype=torch.long)
    for b, (s, t) in enumerate(examples):
        src[b, : len(s) + 1] = torch.tensor([*s, eos_id])
        tgt_in[b, : len(t) + 1] = torch.tensor([bos_id, *t])
        tgt_out[b, : len(t) + 1] = torch.tensor([*t, eos_id])
    return src, tgt_in, tgt_out


def label_smoothed_cross_entropy(
    logits: Tensor, target: Tensor, smoothing: float = 0.1, ignore_index: int = PAD_ID
) -> Tensor:
    """Cross-entropy against a smoothed target distribution, averaged over non-ignored positions.

    The target puts ``1 - eps`` on the right token and spreads ``eps`` uniformly over all ``V`` tokens:

    $$\\mathcal{L} = (1 - \\varepsilon)\\,(-\\log p_y) + \\varepsilon \\cdot \\frac{1}{V} \\sum_{v=1}^{V} (-\\log p_v)$$

    This hurts perplexity but improves accuracy and BLEU (Vaswani et al., 2017, section 5.4), because the model
    stops pushing its logits towards infinity. Equal to ``F.cross_entropy(..., label_smoothing=eps)``.

    Args:
        logits: Unnormalised scores (..., V).
        target: Token ids (...), same leading shape as ``logits``.
        smoothing: ``eps`` in [0, 1).
        ignore_index: Target id that contributes nothing (padding).

    Returns:
        The mean loss, a scalar.

    Shape:
        logits (B, T, V), target (B, T) -> ().

    References:
        Szegedy et al., "Rethinking the Inception Architecture for Computer Vision", 2016, section 7.

    Examples:
        >>> logits = torch.log(torch.tensor([[0.25, 0.5, 0.25], [0.25, 0.5, 0.25]]))
        >>> target = torch.tensor([1, PAD_ID])  # the padded position is ignored
        >>> round(label_smoothed_cross_entropy(logits, target, smoothing=0.0).item(), 4)  # -log 0.5
        0.6931
        >>> round(label_smoothed_cross_entropy(logits, target, smoothing=0.1).item(), 4)  # 0.9 * 0.6931 + 0.1 * 1.1552
        0.7394
    """
    if not 0.0 <= smoothing < 1.0:
        raise ValueError(f"smoothing={smoothing} must be in [0, 1)")
    if logits.shape[:-1] != target.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and target {tuple(target.shape)} must share leading dimensions")
    # half-precision logits are normalised in float32; float64 stays float64
    log_probs = F.log_softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=-1)  # (..., V)
    nll = -log_probs.gather(-1, target.clamp_min(0).unsqueeze(-1)).squeeze(-1)  # (...)
    uniform = -log_probs.mean(dim=-1)  # (...): cross-entropy against the uniform distribution
    loss = (1.0 - smoothing) * nll + smoothing * uniform  # (...)
    keep = target != ignore_index  # (...)
    return loss[keep].sum() / keep.sum().clamp_min(1)


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[str] | Sequence[Sequence[str]]) -> float:
    """Corpus BLEU (Papineni et al., 2002) with sacrebleu's standard settings (13a tokenisation, cased).

    Args:
        hypotheses: One detokenised system output per sentence.
        references: One reference per sentence, or for several references a list of reference *streams*
            (``references[k][i]`` is the k-th reference of sentence ``i``), as sacrebleu takes them.

    Returns:
        BLEU in [0, 100].

    Raises:
        TypeError: If ``hypotheses`` or ``references`` is a single str, or a hypothesis is not a str.
        ValueError: If either is empty, or a reference stream's length differs from the hypotheses'.

    Examples:
        >>> round(corpus_bleu(["the cat sat on the mat"], ["the cat sat on the mat"]), 1)
        100.0
    """
    import sacrebleu

    if isinstance(hypotheses, str) or isinstance(references, str):
        raise TypeError("hypotheses and references must be lists of sentences, got a single str")
    if not hypotheses:
        raise ValueError("hypotheses is empty")
    if not all(isinstance(h, str) for h in hypotheses):
        raise TypeError("hypotheses must be strings (detokenised sentences)")
    if not references:
        raise ValueError("references is empty: pass one reference per hypothesis")
    streams = [list(references)] if isinstance(references[0], str) else [list(r) for r in references]
    for stream in streams:
        if len(stream) != len(hypotheses):
            raise ValueError(f"{len(hypotheses)} hypotheses but a reference stream has {len(stream)} sentences")
    return float(sacrebleu.corpus_bleu(list(hypotheses), streams).score)
