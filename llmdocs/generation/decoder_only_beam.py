"""Beam search for decoder-only language models: the most probable continuation instead of one sampled path.

Greedy decoding commits to the most likely token at every step, and a likely first token can lead nowhere likely.
Beam search keeps the K most probable continuations of each prompt, extends each by every token, and keeps the K
best again; the bookkeeping (running scores, finished hypotheses, the stopping rule) is
[BeamSearchScorer][llmdocs.generation.beams.BeamSearchScorer], shared with the encoder-decoder search. Here it runs
with the prompts, left padding, context cropping and key/value cache of
[generate][llmdocs.generation.decoder_only.generate], and with Hugging Face's length normalisation, so that it
returns the same tokens as ``transformers``' ``generate(num_beams=K)``.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from functools import partial

import torch
from torch import Tensor

from llmdocs.generation.beams import BeamSearchScorer, expand_to_beams, power_length_penalty
from llmdocs.generation.checks import check_int, check_number
from llmdocs.generation.decoder_only import (
    LanguageModel,
    Prompt,
    _check_limits,
    _check_model,
    _check_settings,
    _prepare_prompt,
    _Stepper,
)

__all__ = ["beam_search"]


@torch.no_grad()
def beam_search(
    model: LanguageModel,
    prompt_ids: Prompt,
    max_new_tokens: int,
    *,
    beam_size: int = 4,
    length_penalty: float = 1.0,
    stop_tokens: Collection[int] = (),
    attention_mask: Tensor | None = None,
    use_cache: bool = True,
    crop: bool = True,
) -> list[list[int]]:
    """Keep the ``beam_size`` most probable continuations of each prompt; return the best one.

    score(Y) = log P(Y | prompt) / |Y| ** length_penalty  (Hugging Face's normalisation,
    [power_length_penalty][llmdocs.generation.beams.power_length_penalty]; |Y| counts generated tokens, stop
    token included). Each step extends every beam by every token and keeps the 2K best candidates: those ending
    in a stop token and ranked in the top K finish, the K best others continue. A prompt is done when it has K
    finished hypotheses and its best live beam cannot beat the worst of them; after ``max_new_tokens`` steps the
    live beams compete too. ``beam_size=1`` is greedy decoding.

    Args:
        model: a causal language model such as [GPT][llmdocs.models.gpt.GPT].
        prompt_ids: one prompt or a batch, as for [generate][llmdocs.generation.decoder_only.generate].
        max_new_tokens: most tokens generated per prompt.
        beam_size: beams per prompt K.
        length_penalty: exponent of the length normalisation; > 0 favours longer outputs.
        stop_tokens: ids that finish a hypothesis (not included in the output).
        attention_mask: (B, T) left-padding mask of a padded tensor prompt.
        use_cache: decode incrementally (the cache follows the surviving beams).
        crop: condition on the last ``context_length`` tokens when the sequence grows longer.

    Returns:
        The best continuation of each prompt (prompt and stop token excluded).

    Raises:
        ValueError: If a prompt is empty or holds invalid ids, ``max_new_tokens`` or ``beam_size`` is below 1,
            ``length_penalty`` is not finite, or a stop token is not an id.
        TypeError: If ``model`` is not a language model, ``beam_size`` or ``max_new_tokens`` is not an integer,
            ``length_penalty`` is not a number, or a prompt is not token ids.

    References:
        Graves, "Sequence Transduction with Recurrent Neural Networks", 2012; Wu et al., "Google's Neural Machine
        Translation System", 2016, section 7.

    Examples:
        >>> from llmdocs.generation.decoder_only import generate
        >>> from llmdocs.models.gpt import GPT, GPTConfig
        >>> model = GPT(GPTConfig.tiny())
        >>> beam_search(model, [1, 2, 3], max_new_tokens=4, beam_size=1) == generate(model, [1, 2, 3], 4)
        True
        >>> [len(row) for row in beam_search(model, [[1, 2, 3], [4]], max_new_tokens=4, beam_size=3)]
        [4, 4]
    """
    _check_model(model)
    ids, mask = _prepare_prompt(model, prompt_ids, attention_mask)
    _check_settings(max_new_tokens, 1.0, None, None, 1.0, False)
    _check_limits(model, ids.size(1), max_new_tokens, crop, stop_tokens)
    check_int(beam_size, "beam_size", minimum=1)
    check_number(length_penalty, "length_penalty")
    if not math.isfinite(length_penalty):
        raise ValueError(f"length_penalty must be a finite number, got {length_penalty}")
    was_training = model.training
    model.train(False)
    try:
        return _beam_search(model, ids, mask, max_new_tokens, beam_size, length_penalty, stop_tokens, use_cache)
    finally:
        model.train(was_training)


def _beam_search(
    model: LanguageModel,
    ids: Tensor,
    mask: Tensor | None,
    max_new_tokens: int,
    K: int,
    alpha: float,
    stop_tokens: Collection[int],
    use_cache: bool,
) -> list[list[int]]:
    B = ids.size(0)
    ids = expand_to_beams(ids, K)  # (B*K, T0)
    mask = expand_to_beams(mask, K) if mask is not None else None  # (B*K, T0)
    stepper = _Stepper(model, use_cache)
    beams = BeamSearchScorer(B, K, partial(power_length_penalty, alpha=alpha), stop_tokens, device=ids.device)
    for _ in range(max_new_tokens):
        log_probs = stepper.logits(ids, mask).float().log_softmax(dim=-1)  # (B*K, V)
        rows, next_tokens = beams.step(log_probs)  # (B*K,) each: parent row and new token of each beam
        ids = torch.cat([ids.index_select(0, rows), next_tokens[:, None]], dim=1)  # (B*K, L + 1)
        if mask is not None:
            mask = torch.cat([mask.index_select(0, rows), mask.new_ones(B * K, 1)], dim=1)  # (B*K, L + 1)
        stepper.reorder(rows)
        if beams.is_done:
            break
    return beams.finalize()
