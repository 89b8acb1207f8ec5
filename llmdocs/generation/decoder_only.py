"""Text generation for decoder-only language models: greedy, sampled and streamed, one token at a time.

A language model gives next-token logits z (one score per vocabulary entry). Generation repeats three steps:
*process* the logits (repetition penalty, temperature, top-k, top-p: the pure functions of
[sampling][llmdocs.generation.sampling], in Hugging Face's order), *choose* a token (argmax, or a draw from softmax(z)),
and *append* it to the sequence. With a key/value cache each step feeds only the new token, O(T) attention work
instead of re-running the O(T^2) forward on the whole sequence.

Prompts of different lengths are batched with **left** padding, so every row's next token sits in the last
column; the attention mask hides the padding and positions count real tokens only, which makes a padded batch
generate exactly what each prompt generates alone. A sequence longer than ``context_length`` is cropped to its
last ``context_length`` tokens (learned absolute positions then shift, so the cache is rebuilt). Several samples of
one prompt (``num_return_sequences``, GRPO's group) share its forward pass: the prompt runs once and its cache is
copied to each sample, as the rows of a beam are.

Any model works that has ``config.vocab_size``, ``config.context_length``, ``new_cache()`` and
``model(ids, cache=..., attention_mask=...) -> logits``, such as [GPT][llmdocs.models.gpt.GPT]. Beam search over the
same prompts and cache is in [decoder_only_beam][llmdocs.generation.decoder_only_beam], the timing of the cache in
[benchmark][llmdocs.generation.benchmark].
"""

from __future__ import annotations

import inspect
from collections.abc import Collection, Iterator, Sequence
from numbers import Integral
from typing import Any, Protocol

import torch
from torch import Tensor

from llmdocs.generation.checks import check_int, check_model, check_number
from llmdocs.generation.sampling import apply_repetition_penalty, process_logits
from llmdocs.nn.checks import check_token_ids

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

    Raises:
        TypeError: If a prompt is not a sequence of integer ids (e.g. a string, or a list of lists).
        ValueError: If there are no prompts, or a prompt is empty (an all-padding row has nothing to condition on).

    Examples:
        >>> ids, mask = left_pad([[5, 6, 7], [8]])
        >>> ids.tolist(), mask.int().tolist()
        ([[5, 6, 7], [0, 0, 8]], [[1, 1, 1], [0, 0, 1]])
    """
    rows = [_as_id_row(prompt, f"prompts[{i}]") for i, prompt in enumerate(prompts)]
    if not rows:
        raise ValueError("prompts is empty: left_pad needs at least one prompt")
    empty = [i for i, row in enumerate(rows) if len(row) == 0]
    if empty:
        raise ValueError(f"prompts[{empty[0]}] is empty: every prompt needs at least one token")
    T = max(len(r) for r in rows)
    ids = torch.full((len(rows), T), pad_id, dtype=torch.long)  # (B, T_max)
    mask = torch.zeros((len(rows), T), dtype=torch.bool)  # (B, T_max)
    for i, row in enumerate(rows):
        ids[i, T - len(row) :] = row
        mask[i, T - len(row) :] = True
    return ids, mask


def _as_id_row(prompt: Sequence[int] | Tensor, name: str) -> Tensor:
    """One prompt -> a 1-D long tensor (T,); TypeError for text, nested lists, floats or booleans."""
    if isinstance(prompt, str | bytes) or not hasattr(prompt, "__len__"):  # a list, tuple, tensor or array
        hint = "; encode the text with a tokenizer first" if isinstance(prompt, str | bytes) else ""
        raise TypeError(f"{name} must be a sequence of token ids, got {type(prompt).__name__}{hint}")
    row = prompt if isinstance(prompt, Tensor) else torch.as_tensor(list(prompt))  # (T,)
    if len(row) > 0 and (row.dim() != 1 or row.dtype.is_floating_point or row.dtype == torch.bool):
        kind = f"shape {tuple(row.shape)}" if row.dim() != 1 else f"dtype {row.dtype}"
        raise TypeError(f"{name} must be a flat sequence of integer token ids, got {kind}")
    return row.long()


def _prepare_prompt(
    model: LanguageModel, prompt_ids: Prompt, attention_mask: Tensor | None
) -> tuple[Tensor, Tensor | None]:
    """Prompt -> ids (B, T) long and a left-padding mask (B, T) bool, or None when there is no padding."""
    if isinstance(prompt_ids, Tensor):
        ids = prompt_ids[None] if prompt_ids.dim() == 1 else prompt_ids  # (B, T)
    elif isinstance(prompt_ids, str | bytes) or not hasattr(prompt_ids, "__len__"):
        hint = "; encode the text with a tokenizer first" if isinstance(prompt_ids, str | bytes) else ""
        raise TypeError(
            f"prompt_ids must be a tensor, a list of ids or a list of lists of ids, got {type(prompt_ids).__name__}"
            + hint
        )
    elif len(prompt_ids) > 0 and all(isinstance(p, Sequence | Tensor) for p in prompt_ids):
        if any(len(p) == 0 for p in prompt_ids):  # type: ignore[arg-type]
            raise ValueError("empty prompt: every prompt needs at least one token")
        ids, padded = left_pad(prompt_ids)  # type: ignore[arg-type]  # (B, T_max) each
        if attention_mask is None and not bool(padded.all()):
            attention_mask = padded
    else:
        ids = _as_id_row(prompt_ids, "prompt_ids")[None]  # type: ignore[arg-type]  # (1, T)
    if ids.numel() == 0:
        raise ValueError(f"empty prompt: shape {tuple(ids.shape)}; generation needs at least one token")
    check_token_ids(ids, model.config.vocab_size, "prompt_ids")
    if attention_mask is None:
        return ids, None
    if not isinstance(attention_mask, Tensor):
        raise TypeError(f"attention_mask must be a (B, T) tensor, got {type(attention_mask).__name__}")
    mask = attention_mask.to(ids.device).bool()  # (B, T)
    if mask.shape != ids.shape:
        raise ValueError(f"attention_mask shape {tuple(mask.shape)} != prompt shape {tuple(ids.shape)}")
    if not bool(mask[:, -1].all()) or not bool((mask[:, 1:] >= mask[:, :-1]).all()):
        raise ValueError("attention_mask must describe LEFT padding (0s then 1s in every row, last column 1)")
    return ids, (None if bool(mask.all()) else mask)


def _check_model(model: object) -> None:
    methods, fields = ("__call__", "new_cache", "train"), ("vocab_size", "context_length")
    check_model(model, methods, fields, "a language model such as GPT")


def _check_settings(
    max_new_tokens: int, temperature: float, top_k: int | None, top_p: float | None, penalty: float, sample: bool
) -> None:
    check_int(max_new_tokens, "max_new_tokens")
    if top_k is not None:
        check_int(top_k, "top_k")
    check_number(temperature, "temperature")
    check_number(penalty, "repetition_penalty")
    if top_p is not None:
        check_number(top_p, "top_p")
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
    if isinstance(stop_tokens, str | bytes) or not isinstance(stop_tokens, Collection):
        raise TypeError(f"stop_tokens must be a collection of token ids, e.g. [0], got {type(stop_tokens).__name__}")
    not_ints = [t for t in stop_tokens if isinstance(t, bool) or not isinstance(t, Integral)]
    if not_ints:
        raise TypeError(f"stop_tokens must hold int token ids, got {not_ints[0]!r} ({type(not_ints[0]).__name__})")
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
        # Only the last position's logits are needed: a model that can skip the others (Llama's logits_to_keep)
        # saves the vocabulary projection of every prompt token, most of a long prompt's work when V is large.
        takes_keep = "logits_to_keep" in inspect.signature(getattr(model, "forward", model)).parameters
        self.extra: dict[str, int] = {"logits_to_keep": 1} if takes_keep else {}

    def logits(self, ids: Tensor, mask: Tensor | None) -> Tensor:
        """Logits (N, V) of the token after ``ids`` (N, L), given its left-padding mask (N, L) or None."""
        start = max(0, ids.size(1) - self.model.config.context_length)  # the window: last context_length tokens
        if self.cache is not None and start != self.cache_start:
            # The window slid: every absolute position shifts by one, so the cached keys are stale.
            self.cache, self.cache_start = self.model.new_cache(), start
        fed = self.cache_start + len(self.cache) if self.cache is not None else start
        window_mask = mask[:, start:] if mask is not None else None  # (N, len(cache) + L - fed)
        return self.model(ids[:, fed:], cache=self.cache, attention_mask=window_mask, **self.extra)[:, -1]  # (N, V)

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
    repeats: int = 1,
) -> Iterator[tuple[Tensor, Tensor]]:
    """Yield ``(token, alive)`` per step: next tokens (B n,) and which rows had not stopped before it (B n,).

    Row ``i n + j`` is the j-th of the ``n = repeats`` continuations of prompt i: the prompts (B rows) run through
    the model once, then their logits, mask and cache are copied n times.
    """
    was_training = model.training
    model.train(False)
    try:
        stepper = _Stepper(model, use_cache)
        stops = torch.tensor(sorted(set(stop_tokens)), dtype=torch.long, device=ids.device)  # (S,)
        alive = torch.ones(ids.size(0) * repeats, dtype=torch.bool, device=ids.device)  # (B n,)
        for step in range(max_new_tokens):
            logits = stepper.logits(ids, mask).float()  # (B, V), then (B n, V)
            if step == 0 and repeats > 1:  # the prompts ran once: copy them and their cache to every sample
                rows = torch.arange(ids.size(0), device=ids.device).repeat_interleave(repeats)  # (B n,)
                logits, ids = logits[rows], ids[rows]  # (B n, V), (B n, L)
                mask = mask[rows] if mask is not None else None  # (B n, L)
                stepper.reorder(rows)
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
    if seed is not None:
        check_int(seed, "seed")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    if do_sample is not None and not isinstance(do_sample, bool):
        raise TypeError(f"do_sample must be True, False or None, got {type(do_sample).__name__} {do_sample!r}")
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

    Raises:
        ValueError: As [generate][llmdocs.generation.decoder_only.generate] does, or if ``prompt_ids`` is a batch.
        TypeError: As [generate][llmdocs.generation.decoder_only.generate] does.

    Examples:
        >>> from llmdocs.models.gpt import GPT, GPTConfig
        >>> model = GPT(GPTConfig.tiny())
        >>> tokens = list(stream_generate(model, [1, 2, 3], max_new_tokens=4, top_k=5, seed=0))
        >>> tokens == generate(model, [1, 2, 3], max_new_tokens=4, top_k=5, seed=0)[0]
        True
    """
    _check_model(model)
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
    num_return_sequences: int = 1,
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
        num_return_sequences: n continuations of each prompt (Hugging Face's name): the prompts run through the
            model once and their key/value cache is copied n times. Equal to generating each prompt repeated n
            times in the batch, the same draws from the same generator, without n times the prompt's work. Greedy
            decoding gives n equal continuations.

    Returns:
        For each prompt, the generated ids (prompt and stop token excluded); with ``num_return_sequences=n``, B n
        lists, the n continuations of prompt i at ``i n`` to ``i n + n - 1``.

    Raises:
        ValueError: If a prompt is empty or holds an id outside [0, V), ``max_new_tokens``, ``top_k`` or
            ``num_return_sequences`` is below 1, ``top_p`` is outside (0, 1], ``temperature`` is not > 0 while
            sampling, ``repetition_penalty`` is not > 0, a stop token is not an id, the attention mask is not a
            left-padding mask of the prompt's shape, or ``crop=False`` and the tokens would not fit in the context.
        TypeError: If ``model`` is not a language model, ``prompt_ids`` is not token ids (text, floats, nested
            lists), ``max_new_tokens``, ``top_k``, ``seed``, ``num_return_sequences`` or a stop token is not an
            int, ``temperature``, ``top_p`` or ``repetition_penalty`` is not a number, or ``generator`` is not a
            ``torch.Generator``.

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
        >>> group = generate(model, [[1, 2, 3], [4]], max_new_tokens=5, seed=0, do_sample=True, num_return_sequences=3)
        >>> repeated = generate(model, [[1, 2, 3]] * 3 + [[4]] * 3, max_new_tokens=5, seed=0, do_sample=True)
        >>> len(group), group == repeated  # three samples of each prompt, the prompts run once
        (6, True)
    """
    _check_model(model)
    check_int(num_return_sequences, "num_return_sequences", minimum=1)
    ids, mask = _prepare_prompt(model, prompt_ids, attention_mask)
    generator, sample = _resolve(ids.device, generator, seed, do_sample, temperature, top_k, top_p)
    _check_settings(max_new_tokens, temperature, top_k, top_p, repetition_penalty, sample)
    _check_limits(model, ids.size(1), max_new_tokens, crop, stop_tokens)
    settings = dict(temperature=temperature, top_k=top_k, top_p=top_p, repetition_penalty=repetition_penalty)
    out: list[list[int]] = [[] for _ in range(ids.size(0) * num_return_sequences)]
    stops = set(stop_tokens)
    steps = _generate_steps(
        model, ids, mask, max_new_tokens, settings, sample, generator, stops, use_cache, num_return_sequences
    )
    for token, alive in steps:
        for row, (t, a) in enumerate(zip(token.tolist(), alive.tolist(), strict=True)):
            if a and t not in stops:
                out[row].append(t)
    return out
