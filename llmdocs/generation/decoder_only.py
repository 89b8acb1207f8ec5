"""Text generation for decoder-only language models: greedy, sampling, streaming and beam search.

A language model gives next-token logits z (one score per vocabulary entry). Generation repeats three steps:
*process* the logits (repetition penalty, temperature, top-k, top-p: the pure functions of
[sampling][llmdocs.generation.sampling], in Hugging Face's order), *choose* a token (argmax, or a draw from softmax(z)),
and *append* it to the sequence. With a key/value cache each step feeds only the new token, O(T) attention work
instead of re-running the O(T^2) forward on the whole sequence.

Prompts of different lengths are batched with **left** padding, so every row's next token sits in the last
column; the attention mask hides the padding and positions count real tokens only, which makes a padded batch
generate exactly what each prompt generates alone. A sequence longer than ``context_length`` is cropped to its
last ``context_length`` tokens (learned absolute positions then shift, so the cache is rebuilt).

Any model works that has ``config.vocab_size``, ``config.context_length``, ``new_cache()`` and
``model(ids, cache=..., attention_mask=...) -> logits``, such as [GPT][llmdocs.models.gpt.GPT].
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from typing import Any, Protocol

import torch
from torch import Tensor

from llmdocs.generation.sampling import apply_repetition_penalty, process_logits
from llmdocs.nn.checks import check_token_ids
from llmdocs.profiling import seconds_per_call

Prompt = Tensor | Sequence[int] | Sequence[Sequence[int]]
"""One prompt (a 1-D tensor or list of ids) or a batch ((B, T) tensor or list of lists, ragged allowed)."""


class LanguageModel(Protocol):
    """What generation needs from a model: a config, a cache factory, and a forward with cache and mask."""

    config: Any  # has vocab_size and context_length
    training: bool

    def __call__(self, ids: Tensor, cache: Any = None, attention_mask: Tensor | None = None) -> Tensor:
        """Logits (B, T, V) for ids (B, T), the attention mask covering cached and new tokens."""
        ...

    def new_cache(self) -> Any:
        """An empty cache with ``len()`` and ``reorder(index)``."""
        ...

    def train(self, mode: bool = True) -> Any:
        """Set training mode (generation runs in eval mode and restores it)."""
        ...


# ---- prompts ----------------------------------------------------------------------------------------------------


def left_pad(prompts: Sequence[Sequence[int]], pad_id: int = 0) -> tuple[Tensor, Tensor]:
    """Batch prompts of different lengths, padding on the left.

    Args:
        prompts: B lists of token ids.
        pad_id: id written into the padding (any valid id: the mask hides it).

    Returns:
        ``(ids, attention_mask)``: ids (B, T_max) long, mask (B, T_max) bool, True at real tokens.

    Examples:
        >>> ids, mask = left_pad([[5, 6, 7], [8]])
        >>> ids.tolist(), mask.int().tolist()
        ([[5, 6, 7], [0, 0, 8]], [[1, 1, 1], [0, 0, 1]])
    """
    T = max((len(p) for p in prompts), default=0)
    ids = torch.full((len(prompts), T), pad_id, dtype=torch.long)  # (B, T_max)
    mask = torch.zeros((len(prompts), T), dtype=torch.bool)  # (B, T_max)
    for row, prompt in enumerate(prompts):
        if len(prompt) > 0:
            ids[row, T - len(prompt) :] = torch.as_tensor(list(prompt), dtype=torch.long)
            mask[row, T - len(prompt) :] = True
    return ids, mask


def _prepare_prompt(
    model: LanguageModel, prompt_ids: Prompt, attention_mask: Tensor | None
) -> tuple[Tensor, Tensor | None]:
    """Prompt -> ids (B, T) long and a left-padding mask (B, T) bool, or None when there is no padding."""
    if isinstance(prompt_ids, Tensor):
        ids = prompt_ids[None] if prompt_ids.dim() == 1 else prompt_ids  # (B, T)
    elif len(prompt_ids) > 0 and all(isinstance(p, Sequence | Tensor) for p in prompt_ids):
        rows = [list(p) for p in prompt_ids]  # type: ignore[arg-type]
        if any(len(r) == 0 for r in rows):
            raise ValueError("empty prompt: every prompt needs at least one token")
        ids, padded = left_pad(rows)  # (B, T_max) each
        if attention_mask is None and not bool(padded.all()):
            attention_mask = padded
    else:
        ids = torch.as_tensor(list(prompt_ids), dtype=torch.long)[None]  # type: ignore[arg-type]  # (1, T)
    if ids.numel() == 0:
        raise ValueError(f"empty prompt: shape {tuple(ids.shape)}; generation needs at least one token")
    check_token_ids(ids, model.config.vocab_size, "prompt_ids")
    if attention_mask is None:
        return ids, None
    mask = attention_mask.to(ids.device).bool()  # (B, T)
    if mask.shape != ids.shape:
        raise ValueError(f"attention_mask shape {tuple(mask.shape)} != prompt shape {tuple(ids.shape)}")
    if not bool(mask[:, -1].all()) or not bool((mask[:, 1:] >= mask[:, :-1]).all()):
        raise ValueError("attention_mask must describe LEFT padding (0s then 1s in every row, last column 1)")
    return ids, (None if bool(mask.all()) else mask)


def _check_settings(
    max_new_tokens: int, temperature: float, top_k: int | None, top_p: float | None, penalty: float, sample: bool
) -> None:
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if sample and not temperature > 0.0:
        raise ValueError(f"temperature must be > 0 for sampling, got {temperature}; for greedy pass do_sample=False")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    if not penalty > 0.0:
        raise ValueError(f"repetition_penalty must be > 0, got {penalty}")


def _check_limits(model: LanguageModel, T: int, max_new_tokens: int, crop: bool, stop_tokens: Collection[int]) -> None:
    V, C = model.config.vocab_size, model.config.context_length
    bad = [t for t in stop_tokens if not 0 <= t < V]
    if bad:
        raise ValueError(f"stop_tokens {bad} are not valid ids (0..{V - 1})")
    if not crop and T + max_new_tokens > C:
        raise ValueError(
            f"prompt length {T} + max_new_tokens {max_new_tokens} exceeds context_length={C}; "
            "pass crop=True to condition on the last context_length tokens only"
        )


class _Stepper:
    """Next-token logits for a growing sequence: feeds only new tokens to the cache, crops to the context."""

    def __init__(self, model: LanguageModel, use_cache: bool) -> None:
        self.model = model
        self.use_cache = use_cache
        self.cache: Any = model.new_cache() if use_cache else None
        self.cache_start = 0  # column of the sequence where the cached window begins

    def logits(self, ids: Tensor, mask: Tensor | None) -> Tensor:
        """Logits (N, V) of the token after ``ids`` (N, L), given its left-padding mask (N, L) or None."""
        start = max(0, ids.size(1) - self.model.config.context_length)  # the window: last context_length tokens
        if self.cache is not None and start != self.cache_start:
            # The window slid: every absolute position shifts by one, so the cached keys are stale.
            self.cache, self.cache_start = self.model.new_cache(), start
        fed = self.cache_start + len(self.cache) if self.cache is not None else start
        window_mask = mask[:, start:] if mask is not None else None  # (N, len(cache) + L - fed)
        return self.model(ids[:, fed:], cache=self.cache, attention_mask=window_mask)[:, -1]  # (N, V)

    def reorder(self, index: Tensor) -> None:
        if self.cache is not None:
            self.cache.reorder(index)


@torch.no_grad()
def _generate_steps(
    model: LanguageModel,
    ids: Tensor,
    mask: Tensor | None,
    max_new_tokens: int,
    settings: dict[str, Any],
    do_sample: bool,
    generator: torch.Generator | None,
    stop_tokens: Collection[int],
    use_cache: bool,
) -> Iterator[tuple[Tensor, Tensor]]:
    """Yield ``(token, alive)`` per step: next tokens (B,) and which rows had not stopped before it (B,)."""
    was_training = model.training
    model.train(False)
    try:
        stepper = _Stepper(model, use_cache)
        stops = torch.tensor(sorted(set(stop_tokens)), dtype=torch.long, device=ids.device)  # (S,)
        alive = torch.ones(ids.size(0), dtype=torch.bool, device=ids.device)  # (B,)
        for _ in range(max_new_tokens):
            logits = stepper.logits(ids, mask).float()  # (B, V)
            if do_sample:
                logits = process_logits(logits, ids, mask=mask, **settings)
                probs = logits.softmax(dim=-1)  # (B, V)
                token = torch.multinomial(probs, num_samples=1, generator=generator)[:, 0]  # (B,)
            else:  # temperature, top-k and top-p never change the argmax
                penalty = settings["repetition_penalty"]
                if penalty != 1.0:
                    logits = apply_repetition_penalty(logits, ids, penalty, mask)
                token = logits.argmax(dim=-1)  # (B,)
            yield token, alive
            alive = alive & ~torch.isin(token, stops)
            if not bool(alive.any()):
                return
            ids = torch.cat([ids, token[:, None]], dim=1)  # (B, L + 1)
            if mask is not None:
                mask = torch.cat([mask, mask.new_ones(mask.size(0), 1)], dim=1)  # (B, L + 1)
    finally:
        model.train(was_training)


def _resolve(
    device: torch.device,
    generator: torch.Generator | None,
    seed: int | None,
    do_sample: bool | None,
    temperature: float,
    top_k: int | None,
    top_p: float | None,
) -> tuple[torch.Generator | None, bool]:
    if seed is not None and generator is not None:
        raise ValueError("pass either seed or generator, not both")
    if seed is not None:
        generator = torch.Generator(device).manual_seed(seed)
    if do_sample is None:  # sample as soon as a sampling setting is given, else greedy
        do_sample = temperature != 1.0 or top_k is not None or top_p is not None
    return generator, do_sample


def stream_generate(
    model: LanguageModel,
    prompt_ids: Prompt,
    max_new_tokens: int,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    repetition_penalty: float = 1.0,
    do_sample: bool | None = None,
    stop_tokens: Collection[int] = (),
    seed: int | None = None,
    generator: torch.Generator | None = None,
    use_cache: bool = True,
    crop: bool = True,
) -> Iterator[int]:
    """Generate for ONE prompt, yielding each new token as soon as it is chosen (to print text as it comes).

    Arguments are those of [generate][llmdocs.generation.decoder_only.generate]; the stop token itself is not yielded.

    Examples:
        >>> from llmdocs.models.gpt import GPT, GPTConfig
        >>> model = GPT(GPTConfig.tiny())
        >>> tokens = list(stream_generate(model, [1, 2, 3], max_new_tokens=4, top_k=5, seed=0))
        >>> tokens == generate(model, [1, 2, 3], max_new_tokens=4, top_k=5, seed=0)[0]
        True
    """
    ids, mask = _prepare_prompt(model, prompt_ids, None)
    if ids.size(0) != 1:
        raise ValueError(f"stream_generate streams one prompt, got a batch of {ids.size(0)}; use generate")
    generator, sample = _resolve(ids.device, generator, seed, do_sample, temperature, top_k, top_p)
    _check_settings(max_new_tokens, temperature, top_k, top_p, repetition_penalty, sample)
    _check_limits(model, ids.size(1), max_new_tokens, crop, stop_tokens)
    settings = dict(temperature=temperature, top_k=top_k, top_p=top_p, repetition_penalty=repetition_penalty)
    steps = _generate_steps(model, ids, mask, max_new_tokens, settings, sample, generator, stop_tokens, use_cache)
    for token, _ in steps:
        if int(token[0]) in stop_tokens:
            return
        yield int(token[0])


def generate(
    model: LanguageModel,
    prompt_ids: Prompt,
    max_new_tokens: int,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    repetition_penalty: float = 1.0,
    do_sample: bool | None = None,
    stop_tokens: Collection[int] = (),
    seed: int | None = None,
    generator: torch.Generator | None = None,
    attention_mask: Tensor | None = None,
    use_cache: bool = True,
    crop: bool = True,
) -> list[list[int]]:
    """Continue one prompt or a batch of prompts, token by token.

    x_{t+1} = argmax z (greedy) or x_{t+1} ~ softmax(process(z) / tau) (sampling), z = model(x_{<=t})[-1].

    Args:
        model: a causal language model such as [GPT][llmdocs.models.gpt.GPT] (run in eval mode, then restored).
        prompt_ids: one prompt (list of ids or 1-D tensor) or a batch ((B, T) tensor or ragged list of lists,
            left-padded here).
        max_new_tokens: most tokens generated per prompt.
        temperature: tau > 0 for sampling (ignored when greedy).
        top_k: keep the k most likely tokens ([top_k_filter][llmdocs.generation.sampling.top_k_filter]) when sampling.
        top_p: nucleus mass p in (0, 1] ([top_p_filter][llmdocs.generation.sampling.top_p_filter]) when sampling.
        repetition_penalty: CTRL penalty > 0 on tokens already present (also applied when greedy).
        do_sample: sample (True) or take the argmax (False); None samples as soon as ``temperature``,
            ``top_k`` or ``top_p`` is set, and is greedy otherwise.
        stop_tokens: ids that end a prompt's generation (not included in the output).
        seed: seed of a fresh ``torch.Generator`` for sampling (reproducible without touching global RNG).
        generator: a ``torch.Generator`` to sample from instead of ``seed``.
        attention_mask: (B, T) left-padding mask of a padded (B, T) tensor prompt, 1/True at real tokens.
        use_cache: decode incrementally with the model's key/value cache (False re-runs the whole window each
            step: same tokens, quadratic cost; kept for teaching and tests).
        crop: condition on the last ``context_length`` tokens when the sequence grows longer; False raises
            ``ValueError`` if prompt + new tokens would not fit.

    Returns:
        For each prompt, the generated ids (prompt and stop token excluded).

    Examples:
        >>> from llmdocs.models.gpt import GPT, GPTConfig
        >>> model = GPT(GPTConfig.tiny())
        >>> out = generate(model, [[1, 2, 3], [4]], max_new_tokens=5)  # greedy, left-padded batch
        >>> [len(row) for row in out]
        [5, 5]
        >>> out[1] == generate(model, [4], max_new_tokens=5)[0]  # padding changes nothing
        True
        >>> sampled = generate(model, [1, 2, 3], max_new_tokens=5, temperature=0.8, top_p=0.9, seed=0)
        >>> sampled == generate(model, [1, 2, 3], max_new_tokens=5, temperature=0.8, top_p=0.9, seed=0)
        True
    """
    ids, mask = _prepare_prompt(model, prompt_ids, attention_mask)
    generator, sample = _resolve(ids.device, generator, seed, do_sample, temperature, top_k, top_p)
    _check_settings(max_new_tokens, temperature, top_k, top_p, repetition_penalty, sample)
    _check_limits(model, ids.size(1), max_new_tokens, crop, stop_tokens)
    settings = dict(temperature=temperature, top_k=top_k, top_p=top_p, repetition_penalty=repetition_penalty)
    out: list[list[int]] = [[] for _ in range(ids.size(0))]
    stops = set(stop_tokens)
    steps = _generate_steps(model, ids, mask, max_new_tokens, settings, sample, generator, stops, use_cache)
    for token, alive in steps:
        for row, (t, a) in enumerate(zip(token.tolist(), alive.tolist(), strict=True)):
            if a and t not in stops:
                out[row].append(t)
    return out


# ---- beam search ------------------------------------------------------------------------------------------------


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

    score(Y) = log P(Y | prompt) / |Y| ** length_penalty  (Hugging Face's normalisation; |Y| counts generated
    tokens, stop token included). Each step extends every beam by every token and keeps the 2K best candidates:
    those ending in a stop token and ranked in the top K finish, the K best others continue. A prompt is done
    when it has K finished hypotheses and its best live beam cannot beat the worst of them; after
    ``max_new_tokens`` steps the live beams compete too. ``beam_size=1`` is greedy decoding.

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

    References:
        Graves, "Sequence Transduction with Recurrent Neural Networks", 2012; Wu et al., "Google's Neural Machine
        Translation System", 2016, section 7.

    Examples:
        >>> from llmdocs.models.gpt import GPT, GPTConfig
        >>> model = GPT(GPTConfig.tiny())
        >>> beam_search(model, [1, 2, 3], max_new_tokens=4, beam_size=1) == generate(model, [1, 2, 3], 4)
        True
        >>> [len(row) for row in beam_search(model, [[1, 2, 3], [4]], max_new_tokens=4, beam_size=3)]
        [4, 4]
    """
    ids, mask = _prepare_prompt(model, prompt_ids, attention_mask)
    _check_settings(max_new_tokens, 1.0, None, None, 1.0, False)
    _check_limits(model, ids.size(1), max_new_tokens, crop, stop_tokens)
    if beam_size < 1:
        raise ValueError(f"beam_size must be >= 1, got {beam_size}")
    was_training = model.training
    model.train(False)
    try:
        return _beam_search(model, ids, mask, max_new_tokens, beam_size, length_penalty, set(stop_tokens), use_cache)
    finally:
        model.train(was_training)


def _beam_search(
    model: LanguageModel,
    ids: Tensor,
    mask: Tensor | None,
    max_new_tokens: int,
    K: int,
    alpha: float,
    stops: set[int],
    use_cache: bool,
) -> list[list[int]]:
    B, T0, device = ids.size(0), ids.size(1), ids.device
    ids = ids.repeat_interleave(K, dim=0)  # (B*K, T0)
    mask = mask.repeat_interleave(K, dim=0) if mask is not None else None  # (B*K, T0)
    stepper = _Stepper(model, use_cache)
    # All K beams start identical: only the first is live, or the top K would be K copies.
    beam_scores = torch.full((B, K), float("-inf"), device=device)  # (B, K) sum of log-probs
    beam_scores[:, 0] = 0.0
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(B)]  # (score, generated ids)
    done = [False] * B
    batch_offset = torch.arange(B, device=device)[:, None] * K  # (B, 1)
    is_stop_token = torch.zeros(model.config.vocab_size, dtype=torch.bool, device=device)  # (V,)
    is_stop_token[sorted(stops)] = True

    for step in range(1, max_new_tokens + 1):
        log_probs = stepper.logits(ids, mask).float().log_softmax(dim=-1)  # (B*K, V)
        V = log_probs.size(-1)
        candidates = beam_scores[:, :, None] + log_probs.view(B, K, V)  # (B, K, V)
        top_scores, top_index = candidates.view(B, K * V).topk(min(2 * K, K * V), dim=-1)  # (B, 2K)
        top_beam, top_token = top_index // V, top_index % V  # (B, 2K) each

        # 1) Candidates ending in a stop token and ranked in the top K finish, normalised by their length.
        ends = is_stop_token[top_token]  # (B, 2K)
        rank = torch.arange(top_token.size(1), device=device)  # (2K,)
        for b, j in (ends & (rank < K) & torch.isfinite(top_scores)).nonzero().tolist():
            if not done[b]:
                generated = ids[b * K + int(top_beam[b, j]), T0:].tolist()
                score = float(top_scores[b, j]) / step**alpha
                finished[b] = sorted([*finished[b], (score, generated)], key=lambda h: -h[0])[:K]

        # 2) The K best candidates that do not end in a stop token become the next beams.
        live_scores, order = top_scores.masked_fill(ends, float("-inf")).topk(K, dim=-1)  # (B, K)
        rows = (batch_offset + top_beam.gather(1, order)).view(-1)  # (B*K,) parent rows
        ids = torch.cat([ids.index_select(0, rows), top_token.gather(1, order).view(-1, 1)], dim=1)  # (B*K, L + 1)
        if mask is not None:
            mask = torch.cat([mask.index_select(0, rows), mask.new_ones(B * K, 1)], dim=1)  # (B*K, L + 1)
        stepper.reorder(rows)
        beam_scores = live_scores

        # 3) Done: K finished and the best live beam, normalised now, cannot beat the worst finished one.
        best_live = (beam_scores[:, 0] / step**alpha).tolist()  # (B,)
        for b in range(B):
            if not done[b] and len(finished[b]) >= K and best_live[b] <= finished[b][-1][0]:
                done[b] = True
        if all(done):
            break

    results = []
    for b in range(B):
        hypotheses = list(finished[b])
        if not done[b]:  # out of steps: live beams compete with the finished ones
            for k in range(K):
                if float(beam_scores[b, k]) > float("-inf"):
                    generated = ids[b * K + k, T0:].tolist()
                    hypotheses.append((float(beam_scores[b, k]) / len(generated) ** alpha, generated))
        results.append(max(hypotheses, key=lambda h: h[0])[1])
    return results


# ---- measuring the cache ----------------------------------------------------------------------------------------


def kv_cache_speedup(
    model: LanguageModel, prompt_length: int = 16, max_new_tokens: int = 64, batch_size: int = 1, repeats: int = 3
) -> dict[str, float]:
    """Time greedy generation with and without the key/value cache on a random prompt.

    Args:
        model: the model to time (eval mode during the measurement).
        prompt_length: tokens in the prompt.
        max_new_tokens: tokens generated per timed call.
        batch_size: prompts per call.
        repeats: timed calls per variant (median reported, after one warm-up).

    Returns:
        ``{"cached_s": ..., "uncached_s": ..., "speedup": uncached_s / cached_s}``.

    Raises:
        ValueError: If the prompt and the new tokens do not fit in the model's context.

    Examples:
        >>> from llmdocs.models.gpt import GPT, GPTConfig
        >>> result = kv_cache_speedup(GPT(GPTConfig.tiny()), prompt_length=4, max_new_tokens=8, repeats=1)
        >>> sorted(result), result["speedup"] > 0
        (['cached_s', 'speedup', 'uncached_s'], True)
    """
    if prompt_length < 1 or max_new_tokens < 1:
        raise ValueError(f"prompt_length={prompt_length} and max_new_tokens={max_new_tokens} must be >= 1")
    if prompt_length + max_new_tokens > model.config.context_length:
        raise ValueError(
            f"prompt_length + max_new_tokens = {prompt_length + max_new_tokens} exceeds context_length="
            f"{model.config.context_length}: cropping would rebuild the cache at every step and time nothing useful"
        )
    device = next(iter(model.parameters())).device if hasattr(model, "parameters") else torch.device("cpu")
    g = torch.Generator().manual_seed(0)
    prompt = torch.randint(0, model.config.vocab_size, (batch_size, prompt_length), generator=g).to(device)
    times = {
        f"{name}_s": seconds_per_call(
            lambda use_cache=use_cache: generate(model, prompt, max_new_tokens, do_sample=False, use_cache=use_cache),
            repeats,
            device,
        )
        for name, use_cache in (("cached", True), ("uncached", False))
    }
    return {**times, "speedup": times["uncached_s"] / times["cached_s"]}
