"""Measuring what the key/value cache saves: greedy generation timed with and without it.

Without a cache, step t re-runs the model on all t tokens of the window, so n new tokens cost O(n^2) position
computations; with it, each step feeds one token, O(n) in all (attention still reads every cached key). The
speed-up therefore grows with the number of tokens generated; the chapter on GPT prints it for the shipped model,
and ``examples/benchmarks/gpt.py`` measures it against Hugging Face's GPT-2.
"""

from __future__ import annotations

import torch

from llmdocs.generation.decoder_only import LanguageModel, generate
from llmdocs.profiling import seconds_per_call

__all__ = ["kv_cache_speedup"]


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
        ValueError: If a size is below 1, or the prompt and the new tokens do not fit in the model's context.

    Examples:
        >>> from llmdocs.models.gpt import GPT, GPTConfig
        >>> result = kv_cache_speedup(GPT(GPTConfig.tiny()), prompt_length=4, max_new_tokens=8, repeats=1)
        >>> sorted(result), result["speedup"] > 0
        (['cached_s', 'speedup', 'uncached_s'], True)
    """
    sizes = dict(prompt_length=prompt_length, max_new_tokens=max_new_tokens, batch_size=batch_size, repeats=repeats)
    too_small = [f"{name}={value}" for name, value in sizes.items() if value < 1]
    if too_small:
        raise ValueError(f"{', '.join(too_small)}: prompt_length, max_new_tokens, batch_size and repeats must be >= 1")
    if prompt_length + max_new_tokens > model.config.context_length:
        raise ValueError(
            f"prompt_length + max_new_tokens = {prompt_length + max_new_tokens} exceeds context_length="
            f"{model.config.context_length}: cropping would rebuild the cache at every step and time nothing useful"
        )
    device = next(iter(model.parameters())).device if hasattr(model, "parameters") else torch.device("cpu")
    g = torch.Generator().manual_seed(0)
    prompt = torch.randint(0, model.config.vocab_size, (batch_size, prompt_length), generator=g).to(device)  # (B, T)
    times = {
        f"{name}_s": seconds_per_call(
            lambda use_cache=use_cache: generate(model, prompt, max_new_tokens, do_sample=False, use_cache=use_cache),
            repeats,
            device,
        )
        for name, use_cache in (("cached", True), ("uncached", False))
    }
    return {**times, "speedup": times["uncached_s"] / times["cached_s"]}
