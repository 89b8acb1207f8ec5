"""Rollouts: completions sampled from the policy, laid out for scoring and for the policy-gradient losses.

PPO and GRPO learn from the policy's own answers. A rollout step samples G completions of each of P prompts with
the package's [generation][llmdocs.generation.decoder_only.generate] (a left-padded batch with the key/value cache),
and lays the N = P G sequences out as one right-padded training batch:

    input_ids (N, T)   prompt + completion (+ the end-of-turn token if the model stopped), then padding
    labels    (N, T)   the completion's ids, IGNORE_INDEX on the prompt and on padding
    attention_mask     1 at real tokens

so that [token_log_probs][llmdocs.finetuning.logprobs.token_log_probs] gives each completion token's log pi and the
mask of completion tokens, (N, T - 1) each, the shape the [PPO][llmdocs.finetuning.ppo] and
[GRPO][llmdocs.finetuning.grpo] losses take. The G completions of a prompt are consecutive rows (GRPO's groups). A
completion that ends with the end-of-turn token keeps it, scored like any token: the policy learns when to stop;
one cut at ``max_new_tokens`` has none (``truncated``).

References:
    Ouyang et al., "Training language models to follow instructions with human feedback", NeurIPS 2022, section
    3.5; Shao et al., "DeepSeekMath", 2024, section 4.1 (G outputs per question); Huang et al., "The N+
    Implementation Details of RLHF with PPO: A Case Study on TL;DR Summarization", 2024.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from llmdocs.finetuning.chat import _end_of_turn_id
from llmdocs.finetuning.packing import collate_padded
from llmdocs.finetuning.sft import _check_conversations, generation_prompt
from llmdocs.finetuning.sft_labels import IGNORE_INDEX
from llmdocs.tokenizers.bpe import BPETokenizer

__all__ = ["Rollouts", "sample_rollouts", "score_rollouts"]


@dataclass(frozen=True)
class Rollouts:
    """N = P G sampled completions (G per prompt, consecutive), as a right-padded batch.

    Attributes:
        input_ids: (N, T) int64 prompt + completion, right-padded.
        attention_mask: (N, T) int64, 1 at real tokens.
        labels: (N, T) int64, the completion's ids (its end-of-turn token included), IGNORE_INDEX elsewhere.
        completions: N decoded completions (special tokens skipped).
        prompt_index: N ints, the prompt each row answers (``[0] * G + [1] * G + ...``).
        truncated: N bools, True where the completion hit ``max_new_tokens`` without ending its turn.
        num_generations: G.

    Examples:
        >>> ids = torch.tensor([[7, 8, 2, 0], [7, 9, 9, 2]])  # prompt 7, then two completions ending with 2
        >>> labels = torch.tensor([[-100, 8, 2, -100], [-100, 9, 9, 2]])
        >>> out = Rollouts(ids, (labels != -100) | (ids == 7), labels, ["a", "bb"], [0, 0], [False, False], 2)
        >>> out.completion_lengths.tolist()
        [2, 3]
    """

    input_ids: Tensor
    attention_mask: Tensor
    labels: Tensor
    completions: list[str]
    prompt_index: list[int]
    truncated: list[bool]
    num_generations: int

    @property
    def completion_lengths(self) -> Tensor:
        """(N,) tokens of each completion (its end-of-turn token included)."""
        return (self.labels != IGNORE_INDEX).sum(dim=1)

    def batch(self) -> dict[str, Tensor]:
        """``input_ids``, ``labels`` and ``attention_mask`` as a dict, the batch layout of the SFT and DPO losses."""
        return {"input_ids": self.input_ids, "labels": self.labels, "attention_mask": self.attention_mask}


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be a positive int, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive int, got {value}")
    return value


def _decode(tokenizer: Any, tokens: list[int]) -> str:
    """Text of sampled tokens without special tokens (a transformers tokenizer, or our BPE with its markers)."""
    if isinstance(tokenizer, BPETokenizer):
        special = set(tokenizer.special_tokens.values())
        return tokenizer.decode([t for t in tokens if t not in special])
    return tokenizer.decode(tokens, skip_special_tokens=True)


@torch.no_grad()
def sample_rollouts(
    model: nn.Module,
    tokenizer: Any,
    prompts: Sequence[Sequence[Mapping[str, str]]],
    num_generations: int,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int | None = None,
    batch_size: int | None = None,
) -> Rollouts:
    """Sample ``num_generations`` completions of each chat prompt from ``model``.

    The prompts are rendered with the tokenizer's chat template and its generation prompt
    ([generation_prompt][llmdocs.finetuning.sft.generation_prompt]); sampling runs in eval mode (no dropout) and
    stops a row at the tokenizer's ``eos_token_id`` (``<|im_end|>`` for SmolLM2-Instruct). Each prompt fills G
    consecutive rows of the generation batch, so one seeded generator draws all N completions: the same seed and
    ``batch_size`` give the same rollouts (another ``batch_size`` draws others). When a batch holds whole groups (the
    default, one batch), a prompt runs through the model once and its key/value cache is copied to its G rows
    (``num_return_sequences`` of [generate][llmdocs.generation.decoder_only.generate]): the same draws, for 1/G of
    the prompt's work.

    Args:
        model: A causal language model ([Llama][llmdocs.models.llama.Llama]).
        tokenizer: Its ``transformers`` tokenizer (chat template and ``eos_token_id``), or our BPE tokenizer with the
            chat markers.
        prompts: P conversations ending with a user turn.
        num_generations: G completions per prompt (GRPO's group size; 1 for PPO).
        max_new_tokens: Most tokens per completion, its end-of-turn token included.
        temperature: Sampling temperature > 0 (1.0: the policy's own distribution, which the losses assume).
        top_k: Optional top-k filter (changes the distribution sampled from: off by default).
        top_p: Optional nucleus filter (idem).
        seed: Seed of the sampling generator (None: torch's global one).
        batch_size: Sequences generated together (default all N at once).

    Returns:
        The [Rollouts][llmdocs.finetuning.rollouts.Rollouts].

    Raises:
        TypeError: If ``prompts`` is not a list of conversations, ``num_generations``, ``max_new_tokens`` or
            ``batch_size`` is not an int, or the tokenizer is neither kind (no chat template).
        ValueError: If a prompt is malformed or does not end with a user turn, ``prompts`` is empty, the tokenizer has
            no ``eos_token_id`` (a transformers one), a size is < 1, a prompt does not fit
            the model's context with ``max_new_tokens``, or a sampling setting is out of range.

    Examples:
        >>> from llmdocs.finetuning.chat import CHAT_SPECIAL_TOKENS
        >>> from llmdocs.models.llama import Llama, LlamaConfig
        >>> from llmdocs.tokenizers.bpe import BPETokenizer
        >>> tok = BPETokenizer.train("", vocab_size=260, special_tokens=CHAT_SPECIAL_TOKENS)
        >>> _ = torch.manual_seed(0)
        >>> model = Llama(LlamaConfig.tiny(260, context_length=64))
        >>> out = sample_rollouts(model, tok, [[{"role": "user", "content": "hi"}]], 3, max_new_tokens=4, seed=0)
        >>> out.input_ids.shape[0], out.prompt_index, out.completion_lengths.tolist()
        (3, [0, 0, 0], [4, 4, 4])
    """
    from llmdocs.generation import generate  # generation imports the models: keep this module light to import

    G = _positive_int("num_generations", num_generations)
    _positive_int("max_new_tokens", max_new_tokens)
    prompts = _check_conversations(prompts, "prompts", last_role="user")
    if not prompts:
        raise ValueError("prompts is empty: nothing to sample")
    encoded = [generation_prompt(p, tokenizer) for p in prompts]  # checks the tokenizer and the contents
    eos = _end_of_turn_id(tokenizer, None)  # SmolLM2's <|im_end|>, our <|end|>
    context = getattr(getattr(model, "config", None), "context_length", None)
    for i, ids in enumerate(encoded):
        if context is not None and len(ids) + max_new_tokens > context:
            raise ValueError(
                f"prompts[{i}] is {len(ids)} tokens: with max_new_tokens={max_new_tokens} it does not fit the model's "
                f"context_length={context}"
            )
    repeated = [ids for ids in encoded for _ in range(G)]  # (P G): the G samples of a prompt are consecutive
    size = len(repeated) if batch_size is None else _positive_int("batch_size", batch_size)
    device = next(model.parameters()).device
    generator = None
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int or None, got {seed!r}")
        generator = torch.Generator(device=device).manual_seed(seed)
    settings = dict(temperature=temperature, top_k=top_k, top_p=top_p, do_sample=True, stop_tokens=[eos], crop=False)
    sampled: list[list[int]] = []
    if size % G == 0:  # whole groups per batch: a prompt runs through the model once, its cache serves its G samples
        for start in range(0, len(encoded), size // G):
            chunk = encoded[start : start + size // G]
            sampled += generate(model, chunk, max_new_tokens, generator=generator, num_return_sequences=G, **settings)
    else:  # the same draws, each sample of a prompt running it again
        for start in range(0, len(repeated), size):
            sampled += generate(model, repeated[start : start + size], max_new_tokens, generator=generator, **settings)
    truncated = [len(tokens) == max_new_tokens for tokens in sampled]  # no room left for the end of turn
    completions = [tokens if cut else [*tokens, eos] for tokens, cut in zip(sampled, truncated, strict=True)]
    examples = [
        {"input_ids": prompt + completion, "labels": [IGNORE_INDEX] * len(prompt) + completion}
        for prompt, completion in zip(repeated, completions, strict=True)
    ]
    batch = collate_padded(examples, pad_id=eos)  # any id: padding is masked out of attention and scores
    return Rollouts(
        input_ids=batch["input_ids"].to(device),
        attention_mask=batch["attention_mask"].to(device),
        labels=batch["labels"].to(device),
        completions=[_decode(tokenizer, tokens) for tokens in sampled],
        prompt_index=[i for i in range(len(prompts)) for _ in range(G)],
        truncated=truncated,
        num_generations=G,
    )


def score_rollouts(
    reward_fn: Callable[[list[str], list[str]], Sequence[float]], rollouts: Rollouts, references: Sequence[str]
) -> Tensor:
    """The reward of each completion against its prompt's reference: (N,) float32.

    Args:
        reward_fn: ``reward_fn(completions, references) -> rewards``, one number per completion (the signature of
            [date_reward_fn][llmdocs.data.iso_date_preferences.date_reward_fn] and of TRL's reward functions).
        rollouts: The [Rollouts][llmdocs.finetuning.rollouts.Rollouts] to score.
        references: One reference answer per prompt of the rollouts.

    Returns:
        Rewards (N,), float32.

    Raises:
        TypeError: If ``reward_fn`` is not callable.
        ValueError: If ``references`` does not have one answer per prompt, or ``reward_fn`` does not return one
            finite number per completion.

    Examples:
        >>> ids = torch.zeros(2, 1, dtype=torch.long)
        >>> rollouts = Rollouts(ids, ids + 1, ids, completions=["4", "5"], prompt_index=[0, 0], truncated=[False] * 2,
        ...                     num_generations=2)
        >>> score_rollouts(lambda c, r: [float(x == y) for x, y in zip(c, r)], rollouts, ["4"])
        tensor([1., 0.])
    """
    if not callable(reward_fn):
        raise TypeError(f"reward_fn must be callable as reward_fn(completions, references), got {reward_fn!r}")
    n_prompts = max(rollouts.prompt_index) + 1 if rollouts.prompt_index else 0
    if isinstance(references, str) or not isinstance(references, Sequence) or len(references) != n_prompts:
        raise ValueError(f"references must hold one answer per prompt ({n_prompts})")
    answers = [references[i] for i in rollouts.prompt_index]
    scores = reward_fn(rollouts.completions, answers)
    if isinstance(scores, str | bytes) or not isinstance(scores, Sequence | Tensor) or len(scores) != len(answers):
        got = len(scores) if isinstance(scores, Sequence | Tensor) else type(scores).__name__
        raise ValueError(f"reward_fn must return one number per completion ({len(answers)}), got {got}")
    rewards = torch.as_tensor([float(x) for x in scores], dtype=torch.float32)
    if not bool(torch.isfinite(rewards).all()):
        raise ValueError("reward_fn returned a non-finite reward")
    return rewards
