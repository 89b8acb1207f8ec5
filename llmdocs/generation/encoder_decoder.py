"""Greedy decoding and beam search for the encoder-decoder [Transformer][llmdocs.models.transformer.Transformer].

Both are batched over source sentences and, by default, decode incrementally: the source is
encoded once, and each step feeds only the newest target token through the decoder, whose
[DecoderCache][llmdocs.models.transformer.DecoderCache] holds the keys and values of all earlier tokens.
A step then costs O(T) attention work instead of re-running the O(T^2) full forward.

Beam search ranks finished hypotheses by the length-normalised log-probability of GNMT
(Wu et al., 2016, section 7):

    score(Y) = log P(Y | X) / lp(Y),   lp(Y) = ((5 + |Y|) / 6) ** alpha

where |Y| counts the generated tokens including EOS and alpha is ``length_penalty``. Its bookkeeping (scores,
finished hypotheses, stopping) is [BeamSearchScorer][llmdocs.generation.beams.BeamSearchScorer], shared with the
[decoder-only beam search][llmdocs.generation.decoder_only_beam.beam_search]; what is specific here is the source,
encoded once and repeated for the K beams of each sentence.
"""

from __future__ import annotations

import math
from functools import partial

import torch
from torch import Tensor

from llmdocs.generation.beams import BeamSearchScorer, expand_to_beams, gnmt_length_penalty
from llmdocs.generation.checks import check_int, check_model, check_number
from llmdocs.models.transformer import DecoderCache, Transformer
from llmdocs.nn.attention import padding_mask
from llmdocs.nn.checks import check_token_ids

_MODEL_NEEDS = (("encode", "decode", "new_cache", "train"), ("src_vocab_size", "tgt_vocab_size", "pad_id", "max_len"))
"""What decoding uses of a model: its methods, and the fields of its config."""


def _check_args(model: Transformer, src: Tensor, bos_id: int, eos_id: int, max_new_tokens: int) -> None:
    check_model(model, *_MODEL_NEEDS, "an encoder-decoder model such as Transformer")
    if not isinstance(src, Tensor):
        raise TypeError(f"src must be a (B, S) tensor of token ids, got {type(src).__name__}")
    if src.dim() != 2:
        raise ValueError(f"src must have shape (B, S), got {tuple(src.shape)}; a single sentence is src[None]")
    check_token_ids(src, model.config.src_vocab_size, "src")
    pad_id = model.config.pad_id
    blank = (src == pad_id).all(dim=1).nonzero().flatten().tolist()  # rows whose every token is padding
    if blank:
        # the padding mask would hide every key: cross-attention has nothing to attend to in that row
        others = f"; all-padding rows: {blank[:10]}" if len(blank) > 1 else ""
        raise ValueError(
            f"src row {blank[0]} is all padding (pad_id={pad_id}): every source sentence needs at least one "
            f"non-pad token{others}"
        )
    V = model.config.tgt_vocab_size
    for name, value in (("bos_id", bos_id), ("eos_id", eos_id), ("max_new_tokens", max_new_tokens)):
        check_int(value, name)
    for name, value in (("bos_id", bos_id), ("eos_id", eos_id)):
        if not 0 <= value < V:
            raise ValueError(f"{name}={value} is not in [0, tgt_vocab_size={V})")
    if not 1 <= max_new_tokens <= model.config.max_len:
        raise ValueError(f"max_new_tokens={max_new_tokens} must be in [1, max_len={model.config.max_len}]")


def _cut_at_eos(ids: list[int], eos_id: int) -> list[int]:
    return ids[: ids.index(eos_id)] if eos_id in ids else ids


@torch.no_grad()
def greedy_decode(
    model: Transformer,
    src: Tensor,
    bos_id: int,
    eos_id: int,
    max_new_tokens: int = 64,
    use_cache: bool = True,
) -> list[list[int]]:
    """Translate a batch by always choosing the most probable next token.

    y_t = argmax_v P(v | y_<t, X); stops at EOS or after ``max_new_tokens`` tokens.

    Args:
        model: an encoder-decoder Transformer (run in eval mode here, then restored).
        src: source ids (B, S), padded with ``model.config.pad_id``.
        bos_id: token that starts every target.
        eos_id: token that ends a target.
        max_new_tokens: most tokens generated per sentence (at most ``config.max_len``).
        use_cache: decode incrementally with a key/value cache (False re-runs the full decoder
            each step: same result, quadratic cost; kept for teaching and tests).

    Returns:
        One list of generated ids per sentence, without BOS and EOS.

    Raises:
        TypeError: If ``model`` is not an encoder-decoder model, ``src`` is not an integer tensor, or ``bos_id``,
            ``eos_id`` or ``max_new_tokens`` is not an int.
        ValueError: If ``src`` is empty or not (B, S) ids, a token id is out of range, a row of ``src`` is all
            padding, or ``max_new_tokens`` is not in [1, max_len].

    Examples:
        >>> import torch
        >>> from llmdocs.models.transformer import Transformer, TransformerConfig
        >>> _ = torch.manual_seed(0)
        >>> model = Transformer(TransformerConfig.tiny(src_vocab_size=20, tgt_vocab_size=20))
        >>> out = greedy_decode(model, torch.randint(3, 20, (2, 6)), bos_id=1, eos_id=2, max_new_tokens=5)
        >>> len(out), all(len(ids) <= 5 for ids in out)
        (2, True)
    """
    _check_args(model, src, bos_id, eos_id, max_new_tokens)
    was_training = model.training
    model.eval()
    try:
        B = src.size(0)
        src_mask = padding_mask(src, model.config.pad_id)  # (B, 1, 1, S)
        memory = model.encode(src, src_mask)  # (B, S, D)
        tokens = torch.full((B, 1), bos_id, dtype=torch.long, device=src.device)  # (B, 1)
        finished = torch.zeros(B, dtype=torch.bool, device=src.device)  # (B,)
        cache = model.new_cache() if use_cache else None
        for _ in range(max_new_tokens):
            inputs = tokens[:, -1:] if cache is not None else tokens  # (B, 1) or (B, t)
            logits = model.decode(inputs, memory, src_mask, cache)[:, -1]  # (B, V)
            next_token = logits.argmax(dim=-1)  # (B,)
            tokens = torch.cat([tokens, next_token[:, None]], dim=1)  # (B, t + 1)
            finished |= next_token == eos_id
            if bool(finished.all()):
                break
    finally:
        model.train(was_training)
    return [_cut_at_eos(row, eos_id) for row in tokens[:, 1:].tolist()]


@torch.no_grad()
def beam_search(
    model: Transformer,
    src: Tensor,
    bos_id: int,
    eos_id: int,
    beam_size: int = 4,
    max_new_tokens: int = 64,
    length_penalty: float = 0.6,
    use_cache: bool = True,
) -> list[list[int]]:
    """Translate a batch keeping the ``beam_size`` most probable partial targets per sentence.

    Each step extends every live beam by every token, keeps the 2K best candidates of each
    sentence, moves those ending in EOS (if among the top K) to the sentence's finished list with
    score log P / lp ([gnmt_length_penalty][llmdocs.generation.beams.gnmt_length_penalty]), and
    continues with the K best that do not end in EOS. A sentence is done when it has K finished
    hypotheses and its best live beam, normalised at the current length, cannot beat the worst of
    them (the usual heuristic); after ``max_new_tokens`` steps the live beams of unfinished
    sentences compete too. ``beam_size=1`` reproduces greedy decoding.

    Args:
        model: an encoder-decoder Transformer (run in eval mode here, then restored).
        src: source ids (B, S), padded with ``model.config.pad_id``.
        bos_id: token that starts every target.
        eos_id: token that ends a target.
        beam_size: beams per sentence K.
        max_new_tokens: most tokens generated per sentence (at most ``config.max_len``).
        length_penalty: alpha of the GNMT length penalty; 0 ranks by raw log-probability, larger
            values favour longer outputs.
        use_cache: decode incrementally with a key/value cache.

    Returns:
        The best hypothesis of each sentence, as ids without BOS and EOS.

    Raises:
        TypeError: As for [greedy_decode][llmdocs.generation.encoder_decoder.greedy_decode], or if ``beam_size`` is
            not an int or ``length_penalty`` not a number.
        ValueError: As for [greedy_decode][llmdocs.generation.encoder_decoder.greedy_decode], or if ``beam_size`` is
            below 1 or ``length_penalty`` is not finite.

    References:
        Wu et al., "Google's Neural Machine Translation System", 2016, section 7.
        Vaswani et al., "Attention Is All You Need", NeurIPS 2017, section 6.1 (K=4, alpha=0.6).

    Examples:
        >>> import torch
        >>> from llmdocs.models.transformer import Transformer, TransformerConfig
        >>> _ = torch.manual_seed(0)
        >>> model = Transformer(TransformerConfig.tiny(src_vocab_size=20, tgt_vocab_size=20))
        >>> src = torch.randint(3, 20, (2, 6))
        >>> out = beam_search(model, src, bos_id=1, eos_id=2, beam_size=3, max_new_tokens=5)
        >>> len(out), all(len(ids) <= 5 for ids in out)
        (2, True)
    """
    _check_args(model, src, bos_id, eos_id, max_new_tokens)
    check_int(beam_size, "beam_size", minimum=1)
    check_number(length_penalty, "length_penalty")
    if not math.isfinite(length_penalty):
        raise ValueError(f"length_penalty must be a finite number, got {length_penalty}")
    was_training = model.training
    model.eval()
    try:
        return _beam_search(model, src, bos_id, eos_id, beam_size, max_new_tokens, length_penalty, use_cache)
    finally:
        model.train(was_training)


def _beam_search(
    model: Transformer,
    src: Tensor,
    bos_id: int,
    eos_id: int,
    K: int,
    max_new_tokens: int,
    alpha: float,
    use_cache: bool,
) -> list[list[int]]:
    B = src.size(0)
    src_mask = padding_mask(src, model.config.pad_id)  # (B, 1, 1, S)
    memory = expand_to_beams(model.encode(src, src_mask), K)  # (B*K, S, D)
    src_mask = expand_to_beams(src_mask, K)  # (B*K, 1, 1, S)
    tokens = torch.full((B * K, 1), bos_id, dtype=torch.long, device=src.device)  # (B*K, 1)
    cache: DecoderCache | None = model.new_cache() if use_cache else None
    beams = BeamSearchScorer(B, K, partial(gnmt_length_penalty, alpha=alpha), [eos_id], device=src.device)
    for _ in range(max_new_tokens):
        inputs = tokens[:, -1:] if cache is not None else tokens  # (B*K, 1) or (B*K, t)
        logits = model.decode(inputs, memory, src_mask, cache)[:, -1]  # (B*K, V)
        rows, next_tokens = beams.step(logits.float().log_softmax(dim=-1))  # (B*K,) each
        tokens = torch.cat([tokens.index_select(0, rows), next_tokens[:, None]], dim=1)  # (B*K, t + 1)
        if cache is not None:
            cache.reorder(rows, cross_attn=False)  # beams of a sentence share its memory
        if beams.is_done:
            break
    return beams.finalize()
