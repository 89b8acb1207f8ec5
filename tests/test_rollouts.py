"""Tests for llmdocs.finetuning.rollouts: G sampled completions per prompt as one right-padded batch.

- Layout: the G rows of a prompt are consecutive; each row is the prompt's generation-prompt tokens, then the
  completion; labels are -100 on the prompt and padding; a completion that stopped ends with the end-of-turn id,
  one cut at ``max_new_tokens`` does not (``truncated``).
- The same seed gives the same rollouts; the rows are what ``generate`` samples; the per-token log-probabilities of
  ``token_log_probs`` cover exactly the completion tokens.
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from llmdocs.finetuning.chat import CHAT_SPECIAL_TOKENS, END_OF_TURN
from llmdocs.finetuning.logprobs import token_log_probs
from llmdocs.finetuning.rollouts import Rollouts, sample_rollouts, score_rollouts
from llmdocs.finetuning.sft import generation_prompt
from llmdocs.generation.decoder_only import generate
from llmdocs.models.llama import Llama, LlamaConfig
from llmdocs.tokenizers.bpe import BPETokenizer

PROMPTS = [
    [{"role": "user", "content": "hi"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}],
]


class StopsOften(Llama):
    """A tiny Llama whose end-of-turn logit is raised: some samples stop early, others run to the limit."""

    eos = 259

    def forward(self, *args: object, **kwargs: object) -> Tensor:
        logits = super().forward(*args, **kwargs)  # type: ignore[arg-type]
        bias = torch.zeros(logits.size(-1), dtype=logits.dtype)
        bias[self.eos] = 4.5
        return logits + bias


@pytest.fixture(scope="module")
def tokenizer() -> BPETokenizer:
    tok = BPETokenizer.train("", vocab_size=260, special_tokens=CHAT_SPECIAL_TOKENS)
    assert tok.special_tokens[END_OF_TURN] == StopsOften.eos
    return tok


def model() -> Llama:
    torch.manual_seed(0)
    return StopsOften(LlamaConfig.tiny(260, n_layers=2, context_length=64))


def test_layout_groups_labels_and_stops(tokenizer: BPETokenizer) -> None:
    out = sample_rollouts(model(), tokenizer, PROMPTS, num_generations=4, max_new_tokens=6, seed=0)
    N, T = out.input_ids.shape
    assert N == 8 and out.prompt_index == [0] * 4 + [1] * 4 and out.num_generations == 4
    assert out.labels.shape == out.attention_mask.shape == (N, T)
    assert any(out.truncated) and not all(out.truncated)  # both kinds of row, so both branches are checked
    for row in range(N):
        prompt = generation_prompt(PROMPTS[out.prompt_index[row]], tokenizer)
        length = int(out.attention_mask[row].sum())
        ids, labels = out.input_ids[row, :length].tolist(), out.labels[row].tolist()
        assert ids[: len(prompt)] == prompt and set(labels[: len(prompt)]) == {-100}
        completion = ids[len(prompt) :]
        assert labels[len(prompt) : length] == completion and set(labels[length:]) <= {-100}
        assert out.attention_mask[row, length:].sum() == 0
        assert len(completion) == int(out.completion_lengths[row])
        if out.truncated[row]:
            assert len(completion) == 6 and StopsOften.eos not in completion
        else:
            assert completion[-1] == StopsOften.eos and StopsOften.eos not in completion[:-1]
        assert out.completions[row] == tokenizer.decode(completion[:-1] if not out.truncated[row] else completion)
    log_probs, mask = token_log_probs(model()(out.input_ids, attention_mask=out.attention_mask), out.labels)
    assert torch.equal(mask.sum(dim=1).long(), out.completion_lengths)
    assert bool((log_probs[mask.bool()] < 0).all())
    assert out.batch().keys() == {"input_ids", "labels", "attention_mask"}


def test_seeded_rollouts_repeat_and_are_what_generate_samples(tokenizer: BPETokenizer) -> None:
    policy = model()
    first = sample_rollouts(policy, tokenizer, PROMPTS, 3, max_new_tokens=5, seed=7, temperature=0.9)
    again = sample_rollouts(policy, tokenizer, PROMPTS, 3, max_new_tokens=5, seed=7, temperature=0.9)
    assert torch.equal(first.input_ids, again.input_ids) and first.completions == again.completions
    other = sample_rollouts(policy, tokenizer, PROMPTS, 3, max_new_tokens=5, seed=8, temperature=0.9)
    assert not torch.equal(other.input_ids, first.input_ids)
    prompts = [generation_prompt(p, tokenizer) for p in PROMPTS for _ in range(3)]
    expected = generate(policy, prompts, 5, temperature=0.9, do_sample=True, stop_tokens=[StopsOften.eos], seed=7)
    for row, tokens in enumerate(expected):
        got = first.labels[row][first.labels[row] != -100].tolist()
        assert got == (tokens if first.truncated[row] else [*tokens, StopsOften.eos])
    chunked = sample_rollouts(policy, tokenizer, PROMPTS, 3, max_new_tokens=5, seed=7, temperature=0.9, batch_size=4)
    assert chunked.labels.shape[0] == 6  # in batches of 4 sequences: the same prompts, one generator throughout
    groups = sample_rollouts(policy, tokenizer, PROMPTS, 3, max_new_tokens=5, seed=7, temperature=0.9, batch_size=3)
    generator = torch.Generator().manual_seed(7)  # one group per batch: each prompt runs once for its 3 samples
    for i, prompt in enumerate(PROMPTS):
        tokens = generate(policy, [generation_prompt(prompt, tokenizer)], 5, temperature=0.9, do_sample=True,
                          stop_tokens=[StopsOften.eos], generator=generator, num_return_sequences=3)  # fmt: skip
        assert groups.completions[3 * i : 3 * i + 3] == [tokenizer.decode(t) for t in tokens]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (dict(num_generations=0), ValueError, "num_generations must be a positive int, got 0"),
        (dict(num_generations=2.0), TypeError, "num_generations must be a positive int"),
        (dict(max_new_tokens=0), ValueError, "max_new_tokens must be a positive int"),
        (dict(batch_size=0), ValueError, "batch_size must be a positive int"),
        (dict(seed="0"), TypeError, "seed must be an int or None"),
        (dict(prompts=[]), ValueError, "prompts is empty"),
        (dict(prompts=PROMPTS[0]), TypeError, "prompts"),
        (dict(prompts=[[{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]]), ValueError, "user"),
        (dict(max_new_tokens=60), ValueError, r"does not fit the model's context_length=64"),
        (dict(temperature=0.0), ValueError, "temperature"),
    ],
)
def test_bad_arguments(
    tokenizer: BPETokenizer, kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    arguments: dict[str, object] = dict(prompts=PROMPTS, num_generations=2, max_new_tokens=4, seed=0)
    with pytest.raises(error, match=message):
        sample_rollouts(model(), tokenizer, **{**arguments, **kwargs})  # type: ignore[arg-type]


def test_score_rollouts_scores_each_completion_against_its_prompts_reference() -> None:
    ids = torch.zeros(4, 2, dtype=torch.long)
    rollouts = Rollouts(ids, ids + 1, ids, ["4", "5", "x", "y"], [0, 0, 1, 1], [False] * 4, num_generations=2)
    exact = lambda c, r: [float(a == b) for a, b in zip(c, r, strict=True)]  # noqa: E731
    assert score_rollouts(exact, rollouts, ["4", "y"]).tolist() == [1.0, 0.0, 0.0, 1.0]
    with pytest.raises(TypeError, match="reward_fn must be callable"):
        score_rollouts("exact", rollouts, ["4", "y"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"one answer per prompt \(2\)"):
        score_rollouts(exact, rollouts, ["4"])
    with pytest.raises(ValueError, match=r"one number per completion \(4\), got 3"):
        score_rollouts(lambda c, r: [1.0] * 3, rollouts, ["4", "y"])
    with pytest.raises(ValueError, match="non-finite reward"):
        score_rollouts(lambda c, r: [float("inf")] * 4, rollouts, ["4", "y"])
