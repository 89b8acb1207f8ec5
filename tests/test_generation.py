"""Tests for generation: logits processors (by hand and against transformers), generate, streaming, padding,
cropping, the cache, beam search and input validation."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from typing import Any

os.environ["HF_HUB_OFFLINE"] = "1"

import pytest
import torch
from torch import Tensor, nn
from weights import perturb

from llmdocs.generation.benchmark import kv_cache_speedup
from llmdocs.generation.decoder_only import generate, left_pad, stream_generate
from llmdocs.generation.decoder_only_beam import beam_search
from llmdocs.generation.sampling import (
    apply_repetition_penalty,
    apply_temperature,
    process_logits,
    top_k_filter,
    top_p_filter,
)
from llmdocs.models.gpt import GPT, GPTConfig
from llmdocs.testing import assert_close, assert_equivalent

V = 29
INF = float("-inf")


@pytest.fixture(autouse=True)
def _seed() -> Iterator[None]:
    torch.manual_seed(0)
    yield


@pytest.fixture
def model() -> GPT:
    return perturb(GPT(GPTConfig.tiny(V, context_length=16)))  # type: ignore[return-value]


# ---- processors, by hand ----------------------------------------------------------------------------------------


def test_temperature_by_hand() -> None:
    z = torch.tensor([[2.0, 0.0, -1.0]])
    assert_close(apply_temperature(z, 2.0), torch.tensor([[1.0, 0.0, -0.5]]))
    sharp, flat = apply_temperature(z, 0.5).softmax(-1), apply_temperature(z, 5.0).softmax(-1)
    assert sharp.max() > z.softmax(-1).max() > flat.max()


def test_top_k_by_hand() -> None:
    z = torch.tensor([[1.0, 4.0, 3.0, 2.0], [0.0, 1.0, 1.0, 0.5]])
    assert top_k_filter(z, 2).tolist() == [[INF, 4.0, 3.0, INF], [INF, 1.0, 1.0, INF]]
    assert top_k_filter(z, 1).tolist() == [[INF, 4.0, INF, INF], [INF, 1.0, 1.0, INF]]  # ties with the k-th stay
    assert torch.equal(top_k_filter(z, 10), z)  # k >= V keeps everything


def test_top_p_by_hand() -> None:
    probs = torch.tensor([[0.1, 0.6, 0.3]])
    z = probs.log()
    keep = lambda p: torch.isfinite(top_p_filter(z, p)).int().tolist()  # noqa: E731
    assert keep(0.5) == [[0, 1, 0]]  # 0.6 alone reaches 0.5
    assert keep(0.6) == [[0, 1, 0]]  # ... and exactly 0.6
    assert keep(0.7) == [[0, 1, 1]]  # 0.6 + 0.3
    assert keep(0.95) == [[1, 1, 1]]
    assert keep(0.01) == [[0, 1, 0]]  # the most likely token always stays
    assert torch.equal(top_p_filter(z, 1.0), z)


def test_repetition_penalty_by_hand() -> None:
    z = torch.tensor([[3.0, -2.0, 1.0, 0.5]])
    ids = torch.tensor([[0, 1, 1, 0]])  # tokens 0 and 1 occurred (twice): penalised once each
    assert_close(apply_repetition_penalty(z, ids, 2.0), torch.tensor([[1.5, -4.0, 1.0, 0.5]]))
    mask = torch.tensor([[False, True, True, True]])  # the first 0 is padding, but a later 0 is real
    assert_close(apply_repetition_penalty(z, ids, 2.0, mask), torch.tensor([[1.5, -4.0, 1.0, 0.5]]))
    only_pad = torch.tensor([[False, True, True, False]])
    assert_close(apply_repetition_penalty(z, ids, 2.0, only_pad), torch.tensor([[3.0, -4.0, 1.0, 0.5]]))


# ---- processors against transformers ----------------------------------------------------------------------------


def assert_same_filtered(ours: Tensor, theirs: Tensor) -> None:
    assert torch.equal(torch.isinf(ours), torch.isinf(theirs))
    assert_equivalent(ours[torch.isfinite(ours)], theirs[torch.isfinite(theirs)])


@pytest.mark.numerics
@pytest.mark.parametrize("trial", range(5))
def test_processors_agree_with_transformers(trial: int) -> None:
    tf = pytest.importorskip("transformers")
    g = torch.Generator().manual_seed(trial)
    logits = torch.randn(4, 50, generator=g, dtype=torch.float64) * (1 + trial)  # equivalence: in float64
    ids = torch.randint(0, 50, (4, 12), generator=g)
    for tau in (0.3, 0.7, 1.5):
        assert_same_filtered(apply_temperature(logits, tau), tf.TemperatureLogitsWarper(tau)(ids, logits.clone()))
    for k in (1, 5, 17, 50):
        assert_same_filtered(top_k_filter(logits, k), tf.TopKLogitsWarper(k)(ids, logits.clone()))
    for p in (0.05, 0.3, 0.75, 0.9, 0.99):
        assert_same_filtered(top_p_filter(logits, p), tf.TopPLogitsWarper(p)(ids, logits.clone()))
    for penalty in (0.8, 1.3, 2.0):
        expected = tf.RepetitionPenaltyLogitsProcessor(penalty)(ids, logits.clone())
        assert_same_filtered(apply_repetition_penalty(logits, ids, penalty), expected)
    chain = tf.LogitsProcessorList(
        [
            tf.RepetitionPenaltyLogitsProcessor(1.2),
            tf.TemperatureLogitsWarper(0.8),
            tf.TopKLogitsWarper(20),
            tf.TopPLogitsWarper(0.9),
        ]
    )
    ours = process_logits(logits, ids, temperature=0.8, top_k=20, top_p=0.9, repetition_penalty=1.2)
    assert_same_filtered(ours, chain(ids, logits.clone()))


# ---- generate ---------------------------------------------------------------------------------------------------


def test_greedy_equals_argmax_of_full_forward(model: GPT) -> None:
    prompt = torch.randint(0, V, (1, 4))
    ids = prompt
    with torch.no_grad():
        for _ in range(8):
            ids = torch.cat([ids, model(ids)[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert generate(model, prompt, 8) == ids[:, 4:].tolist()
    assert generate(model, prompt[0].tolist(), 8) == ids[:, 4:].tolist()  # a plain list works too


@pytest.mark.numerics
def test_cache_gives_same_tokens_as_no_cache(model: GPT) -> None:
    ids = torch.randint(0, V, (3, 5))
    for settings in (dict(), dict(top_p=0.9, seed=1), dict(repetition_penalty=1.4)):
        cached = generate(model, ids, 10, use_cache=True, **settings)  # type: ignore[arg-type]
        assert cached == generate(model, ids, 10, use_cache=False, **settings)  # type: ignore[arg-type]


def test_sampling_is_seeded_and_leaves_global_rng_alone(model: GPT) -> None:
    state = torch.get_rng_state()
    a = generate(model, [1, 2, 3], 10, temperature=1.5, seed=0)
    assert torch.equal(torch.get_rng_state(), state)
    assert a == generate(model, [1, 2, 3], 10, temperature=1.5, generator=torch.Generator().manual_seed(0))
    others = [generate(model, [1, 2, 3], 10, temperature=1.5, seed=s) for s in range(1, 4)]
    assert any(o != a for o in others)
    assert generate(model, [1, 2, 3], 10, top_k=1, seed=5) == generate(model, [1, 2, 3], 10)  # top-1 = greedy


def test_do_sample_default_follows_the_settings(model: GPT) -> None:
    greedy = generate(model, [1, 2], 10)
    assert generate(model, [1, 2], 10, do_sample=False, temperature=3.0, top_k=3) == greedy
    draws = {tuple(generate(model, [1, 2], 10, temperature=3.0, seed=s)[0]) for s in range(4)}
    assert len(draws) > 1


def test_stop_tokens_end_each_row(model: GPT) -> None:
    ids = torch.randint(0, V, (3, 4))
    full = generate(model, ids, 10)
    stop = full[0][3]  # the 4th token of row 0
    out = generate(model, ids, 10, stop_tokens=[stop])
    for row_full, row in zip(full, out, strict=True):
        cut = row_full.index(stop) if stop in row_full else len(row_full)
        assert row == row_full[:cut]
    assert list(stream_generate(model, ids[0], 10, stop_tokens=[stop])) == out[0]


def test_stream_yields_the_same_tokens(model: GPT) -> None:
    stream = stream_generate(model, [3, 4, 5], 6, top_p=0.8, seed=2)
    first = next(stream)
    assert isinstance(first, int)
    assert [first, *stream] == generate(model, [3, 4, 5], 6, top_p=0.8, seed=2)[0]
    with pytest.raises(ValueError, match="streams one prompt"):
        list(stream_generate(model, [[1, 2], [3, 4]], 3))


@pytest.mark.numerics
def test_left_padded_batch_equals_each_prompt_alone(model: GPT) -> None:
    prompts = [[5, 6, 7, 8, 9, 10], [11, 12], [13, 14, 15, 16]]
    for settings in (dict(), dict(repetition_penalty=1.5)):
        batched = generate(model, prompts, 8, **settings)  # type: ignore[arg-type]
        assert batched == [generate(model, p, 8, **settings)[0] for p in prompts]  # type: ignore[arg-type]
        ids, mask = left_pad(prompts, pad_id=3)  # any pad id: the mask hides it
        assert generate(model, ids, 8, attention_mask=mask, **settings) == batched  # type: ignore[arg-type]
    assert beam_search(model, prompts, 6, beam_size=3) == [beam_search(model, p, 6, beam_size=3)[0] for p in prompts]


@pytest.mark.numerics
def test_num_return_sequences_equals_the_prompts_repeated_and_runs_each_prompt_once(model: GPT) -> None:
    prompts, n = [[5, 6, 7, 8, 9, 10], [11, 12], [13, 14, 15, 16]], 4
    repeated = [p for p in prompts for _ in range(n)]  # the n samples of a prompt are consecutive
    for settings in (
        dict(do_sample=True, seed=0),
        dict(temperature=1.5, top_k=10, top_p=0.9, repetition_penalty=1.3, seed=1),
        dict(do_sample=True, seed=2, use_cache=False),
        dict(do_sample=True, seed=3, max_new_tokens=14),  # past the context of 16: the window slides
    ):
        kwargs = {"max_new_tokens": 8, **settings}
        group = generate(model, prompts, num_return_sequences=n, **kwargs)  # type: ignore[arg-type]
        assert len(group) == len(prompts) * n and group == generate(model, repeated, **kwargs)  # type: ignore[arg-type]
        assert len({tuple(row) for row in group[:n]}) > 1 or not settings.get("do_sample")  # n draws, not n copies
    greedy = generate(model, prompts, 8, num_return_sequences=3)
    assert greedy == [row for row in generate(model, prompts, 8) for _ in range(3)]

    fed: list[tuple[int, int]] = []  # (rows, tokens) of each forward call
    forward = model.forward
    model.forward = lambda ids, **kw: fed.append(tuple(ids.shape)) or forward(ids, **kw)  # type: ignore[method-assign]
    generate(model, prompts, 5, do_sample=True, seed=0, num_return_sequences=n)
    assert fed == [(3, 6)] + [(3 * n, 1)] * 4  # the prompts once, then one token per sample and step


@pytest.mark.parametrize(
    ("n", "error", "message"),
    [
        (0, ValueError, "num_return_sequences must be >= 1, got 0"),
        (2.0, TypeError, "num_return_sequences must be an int, got float 2.0"),
        (True, TypeError, "num_return_sequences must be an int, got bool True"),
    ],
)
def test_num_return_sequences_must_be_a_positive_int(model: GPT, n: Any, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        generate(model, [1, 2], 3, num_return_sequences=n)


def test_generation_restores_training_mode(model: GPT) -> None:
    model.train()
    generate(model, [1, 2], 3)
    beam_search(model, [1, 2], 3)
    assert model.training


# ---- context cropping -------------------------------------------------------------------------------------------


def test_crop_conditions_on_the_last_context_length_tokens(model: GPT) -> None:
    long_prompt = torch.randint(0, V, (2, 20))  # context_length is 16
    # the window is always the last 16 tokens, so the dropped prefix never matters
    assert generate(model, long_prompt, 3) == generate(model, long_prompt[:, -16:], 3)
    # generating past the context: the cache is rebuilt each step, and equals the uncached run
    ids = torch.randint(0, V, (2, 10))
    assert generate(model, ids, 12, use_cache=True) == generate(model, ids, 12, use_cache=False)
    assert beam_search(model, ids, 10, beam_size=2, use_cache=True) == beam_search(
        model, ids, 10, beam_size=2, use_cache=False
    )
    with pytest.raises(ValueError, match=r"prompt length 10 \+ max_new_tokens 12 exceeds context_length=16"):
        generate(model, ids, 12, crop=False)


# ---- beam search ------------------------------------------------------------------------------------------------


class BigramLM(nn.Module):
    """A toy model whose next-token logits depend on the last token only (a lookup table)."""

    def __init__(self, table: Tensor) -> None:
        super().__init__()
        self.table = table  # (V, V) log-probabilities
        self.config = GPTConfig.tiny(table.size(0), context_length=32)

    def new_cache(self) -> Any:
        raise AssertionError("used with use_cache=False")

    def forward(self, ids: Tensor, cache: Any = None, attention_mask: Tensor | None = None) -> Tensor:
        return self.table[ids]  # (B, T, V)


def test_beam_search_finds_what_greedy_misses() -> None:
    p = torch.full((4, 4), 1e-6)
    p[0, 1], p[0, 2] = 0.6, 0.4  # greedy takes 1 ...
    p[1, 0], p[1, 1], p[1, 3] = 0.34, 0.33, 0.33  # ... which has no likely continuation
    p[2, 3] = 0.9  # 2 -> 3 is likely: 0.4 * 0.9 = 0.36 > 0.6 * 0.34
    p[3, 3] = 1.0
    lm = BigramLM(p.log())
    assert generate(lm, [0], 2, use_cache=False) == [[1, 0]]  # type: ignore[arg-type]
    assert beam_search(lm, [0], 2, beam_size=2, use_cache=False) == [[2, 3]]  # type: ignore[arg-type]


def test_beam_search_with_all_beams_is_exhaustive() -> None:
    small = perturb(GPT(GPTConfig.tiny(5, context_length=8)))
    prompt = torch.tensor([[1, 2]])
    with torch.no_grad():
        best, best_score = None, float("-inf")
        for seq in itertools.product(range(5), repeat=3):
            ids = torch.cat([prompt, torch.tensor([seq])], dim=1)
            log_probs = small(ids)[0, 1:-1].log_softmax(-1)  # predictions for the 3 new tokens
            score = log_probs.gather(-1, torch.tensor(seq)[:, None]).sum().item()
            if score > best_score:
                best, best_score = list(seq), score
    assert beam_search(small, prompt, 3, beam_size=25) == [best]  # K >= V^2 keeps every prefix


def test_beam_search_stop_tokens_and_length_penalty() -> None:
    p = torch.full((4, 4), 1e-6)
    p[0, 3], p[0, 1] = 0.5, 0.5 - 2e-6  # from 0: stop at once, or a hair less likely token 1 ...
    p[1, 1] = 1.0 - 3e-6  # ... followed by near-certain 1s
    lm = BigramLM(p.log())

    def best(length_penalty: float) -> list[int]:
        out = beam_search(lm, [0], 4, beam_size=2, stop_tokens=[3], length_penalty=length_penalty, use_cache=False)  # type: ignore[arg-type]
        return out[0]

    assert best(0.0) == []  # raw log-probability: log 0.5 beats log(0.5 - 2e-6) + 3 log(1 - 3e-6)
    assert best(1.0) == [1, 1, 1, 1]  # normalised by length: about log(0.5) / 4 beats log(0.5) / 1


# ---- measuring the cache ----------------------------------------------------------------------------------------


def test_kv_cache_speedup_reports_both_timings(model: GPT) -> None:
    result = kv_cache_speedup(model, prompt_length=4, max_new_tokens=8, repeats=1)
    assert set(result) == {"cached_s", "uncached_s", "speedup"}
    assert result["cached_s"] > 0 and result["speedup"] == pytest.approx(result["uncached_s"] / result["cached_s"])
    with pytest.raises(ValueError, match="prompt_length \\+ max_new_tokens = 20 exceeds context_length=16"):
        kv_cache_speedup(model, prompt_length=4, max_new_tokens=16)


# ---- bad input --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prompt", "kwargs", "error", "message"),
    [
        ([], {}, ValueError, "empty prompt"),
        ([[1, 2], []], {}, ValueError, "empty prompt"),
        (torch.zeros(1, 0, dtype=torch.long), {}, ValueError, "empty prompt"),
        ([1, V], {}, ValueError, f"contains id {V} but vocab_size={V}"),
        ([1, -2], {}, ValueError, "negative id -2"),
        (torch.tensor([[1.0, 2.0]]), {}, TypeError, "integer tensor"),
        ([1, 2], dict(top_p=0.0), ValueError, r"top_p must be in \(0, 1\]"),
        ([1, 2], dict(top_p=1.5), ValueError, r"top_p must be in \(0, 1\]"),
        ([1, 2], dict(temperature=0.0), ValueError, "temperature must be > 0 for sampling"),
        ([1, 2], dict(temperature=-1.0, do_sample=True), ValueError, "temperature must be > 0 for sampling"),
        ([1, 2], dict(top_k=0), ValueError, "top_k must be >= 1"),
        ([1, 2], dict(repetition_penalty=0.0), ValueError, "repetition_penalty must be > 0"),
        ([1, 2], dict(max_new_tokens=0), ValueError, "max_new_tokens must be >= 1"),
        ([1, 2], dict(stop_tokens=[V]), ValueError, "stop_tokens"),
        ([1, 2], dict(seed=0, generator=torch.Generator()), ValueError, "either seed or generator"),
        (list(range(10)), dict(max_new_tokens=7, crop=False), ValueError, "exceeds context_length=16"),
        (list(range(17)), dict(crop=False), ValueError, "prompt length 17"),
    ],
)
def test_bad_input_raises(model: GPT, prompt: Any, kwargs: dict[str, Any], error: type, message: str) -> None:
    kwargs = {"max_new_tokens": 3, **kwargs}
    with pytest.raises(error, match=message):
        generate(model, prompt, **kwargs)


def test_bad_attention_mask_and_beam_size_raise(model: GPT) -> None:
    ids = torch.randint(0, V, (2, 4))
    right_padded = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    with pytest.raises(ValueError, match="LEFT padding"):
        generate(model, ids, 3, attention_mask=right_padded)
    with pytest.raises(ValueError, match="attention_mask shape"):
        generate(model, ids, 3, attention_mask=torch.ones(2, 5))
    with pytest.raises(ValueError, match="beam_size must be >= 1"):
        beam_search(model, ids, 3, beam_size=0)
    with pytest.raises(ValueError, match="empty prompt"):
        beam_search(model, [], 3)
    with pytest.raises(ValueError, match="top_p must be in"):
        top_p_filter(torch.zeros(1, 3), 0.0)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        apply_temperature(torch.zeros(1, 3), 0.0)


@pytest.mark.parametrize(
    ("prompt", "kwargs", "error", "message"),
    [
        ("hello", {}, TypeError, "encode the text with a tokenizer first"),
        (None, {}, TypeError, "prompt_ids must be a tensor, a list of ids or a list of lists of ids, got NoneType"),
        (7, {}, TypeError, "got int"),
        ([[[1, 2]]], {}, TypeError, r"prompts\[0\] must be a flat sequence of integer token ids, got shape \(1, 2\)"),
        ([1.5, 2.0], {}, TypeError, "integer token ids, got dtype torch.float32"),  # was truncated to [1, 2]
        ([[1.5], [2]], {}, TypeError, "integer token ids"),
        ([1, 2], dict(max_new_tokens=-1), ValueError, "max_new_tokens must be >= 1, got -1"),
        ([1, 2], dict(max_new_tokens=2.5), TypeError, "max_new_tokens must be an int, got float"),
        ([1, 2], dict(max_new_tokens=None), TypeError, "max_new_tokens must be an int, got NoneType"),
        ([1, 2], dict(top_k=2.5), TypeError, "top_k must be an int, got float"),
        ([1, 2], dict(top_p=float("nan")), ValueError, r"top_p must be in \(0, 1\]"),
        ([1, 2], dict(temperature=float("nan")), ValueError, "temperature must be > 0"),
        ([1, 2], dict(stop_tokens=3), TypeError, r"stop_tokens must be a collection of token ids, e\.g\. \[0\]"),
        ([1, 2], dict(stop_tokens=[1.0]), TypeError, "stop_tokens must hold int token ids"),
    ],
)
def test_degenerate_prompts_and_settings_raise(
    model: GPT, prompt: Any, kwargs: dict[str, Any], error: type, message: str
) -> None:
    kwargs = {"max_new_tokens": 3, **kwargs}
    with pytest.raises(error, match=message):
        generate(model, prompt, **kwargs)
    with pytest.raises(error, match=message):
        list(stream_generate(model, prompt, **kwargs))


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (dict(beam_size=2.0), TypeError, "beam_size must be an int, got float"),
        (dict(beam_size=True), TypeError, "beam_size must be an int, got bool"),
        (dict(beam_size=-1), ValueError, "beam_size must be >= 1, got -1"),
        (dict(max_new_tokens=0), ValueError, "max_new_tokens must be >= 1, got 0"),
        (dict(length_penalty=float("nan")), ValueError, "length_penalty must be a finite number"),
        (dict(stop_tokens=[V]), ValueError, "stop_tokens"),
    ],
)
def test_degenerate_beam_settings_raise(model: GPT, kwargs: dict[str, Any], error: type, message: str) -> None:
    kwargs = {"max_new_tokens": 3, **kwargs}
    with pytest.raises(error, match=message):
        beam_search(model, [1, 2], **kwargs)


def test_degenerate_helpers_raise(model: GPT) -> None:
    with pytest.raises(TypeError, match=r"prompts\[1\] must be a sequence of token ids, got str"):
        left_pad([[1], "ab"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match=r"logits must have shape \(B, V\), got \(3,\)"):
        top_k_filter(torch.zeros(3), 2)
    with pytest.raises(ValueError, match=r"logits must have shape \(B, V\)"):
        top_p_filter(torch.zeros(3), 0.5)
    with pytest.raises(ValueError, match=r"logits must have shape \(B, V\), got \(3,\)"):
        apply_temperature(torch.zeros(3), 2.0)
    with pytest.raises(TypeError, match="top_k must be an int"):
        top_k_filter(torch.zeros(1, 3), 1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"ids must have shape \(B, T\) with B=2"):
        apply_repetition_penalty(torch.zeros(2, 3), torch.zeros(1, 4, dtype=torch.long), 1.2)
    with pytest.raises(ValueError, match=r"repeats=0: .* must be >= 1"):
        kv_cache_speedup(model, prompt_length=4, max_new_tokens=4, repeats=0)
    with pytest.raises(ValueError, match="batch_size=0"):
        kv_cache_speedup(model, prompt_length=4, max_new_tokens=4, batch_size=0)


@pytest.mark.parametrize(
    "process",
    [
        lambda z: apply_temperature(z, 0.7),
        lambda z: top_k_filter(z, 2),
        lambda z: top_p_filter(z, 0.9),
        lambda z: top_p_filter(z, 1.0),  # the keep-everything shortcut checks too
        lambda z: apply_repetition_penalty(z, torch.zeros(2, 1, dtype=torch.long), 1.2),
    ],
)
def test_logits_processors_reject_an_empty_vocabulary(process) -> None:  # type: ignore[no-untyped-def]
    # (B, 0) logits used to pass through silently: there is no token to choose
    with pytest.raises(ValueError, match=r"logits have an empty vocabulary: shape \(2, 0\), expected \(B, V\)"):
        process(torch.zeros(2, 0))


def test_left_pad_rejects_no_prompts_and_empty_prompts() -> None:
    # these used to return empty tensors (or an all-padding row) that failed later, far from the cause
    with pytest.raises(ValueError, match="prompts is empty: left_pad needs at least one prompt"):
        left_pad([])
    with pytest.raises(ValueError, match=r"prompts\[0\] is empty: every prompt needs at least one token"):
        left_pad([[]])
    with pytest.raises(ValueError, match=r"prompts\[1\] is empty"):
        left_pad([[4, 5], []])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(temperature="hot"), "temperature must be a number, got str 'hot'"),  # was: '>' not supported
        (dict(top_p="0.9"), "top_p must be a number, got str '0.9'"),
        (dict(repetition_penalty=None), "repetition_penalty must be a number, got NoneType"),
        (dict(seed="0"), "seed must be an int, got str '0'"),  # was: manual_seed expected a long
        (dict(seed=1.5), "seed must be an int, got float 1.5"),
        (dict(generator=0), "generator must be a torch.Generator, got int"),
        (dict(do_sample="yes"), "do_sample must be True, False or None, got str 'yes'"),
    ],
)
def test_settings_of_the_wrong_type_raise_naming_the_argument(model: GPT, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(TypeError, match=message):
        generate(model, [1, 2], 3, **kwargs)
    with pytest.raises(TypeError, match=message):
        list(stream_generate(model, [1, 2], 3, **kwargs))


@pytest.mark.parametrize("not_a_model", ["model", None, GPTConfig.tiny(V), nn.Linear(2, 2)])
def test_a_model_that_is_not_a_language_model_raises(not_a_model: Any) -> None:
    message = r"model must be a language model such as GPT \(with new_cache\(\), train\(\), config.vocab_size"
    with pytest.raises(TypeError, match=message):  # "model" used to raise an AttributeError
        generate(not_a_model, [1, 2], 3)
    with pytest.raises(TypeError, match=message):
        list(stream_generate(not_a_model, [1, 2], 3))
    with pytest.raises(TypeError, match=message):
        beam_search(not_a_model, [1, 2], 3)


def test_attention_mask_must_be_a_tensor(model: GPT) -> None:
    with pytest.raises(TypeError, match=r"attention_mask must be a \(B, T\) tensor, got list"):
        generate(model, torch.tensor([[1, 2]]), 3, attention_mask=[[1, 1]])  # type: ignore[arg-type]


def test_beam_search_length_penalty_must_be_a_number(model: GPT) -> None:
    with pytest.raises(TypeError, match="length_penalty must be a number, got str '1'"):
        beam_search(model, [1, 2], 3, length_penalty="1")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="beam_size must be an int, got str '2'"):
        beam_search(model, [1, 2], 3, beam_size="2")  # type: ignore[arg-type]
