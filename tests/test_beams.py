"""Tests for llmdocs.generation.beams, the bookkeeping both beam searches share, on hand-made log-probabilities."""

from __future__ import annotations

import itertools
import math
from functools import partial

import pytest
import torch
from torch import Tensor

from llmdocs.generation.beams import (
    BeamHypotheses,
    BeamSearchScorer,
    expand_to_beams,
    gnmt_length_penalty,
    power_length_penalty,
)
from llmdocs.testing import assert_close

INF = float("-inf")
mean = partial(power_length_penalty, alpha=1.0)  # lp(|Y|) = |Y|: the mean log-probability per token
raw = partial(power_length_penalty, alpha=0.0)  # lp = 1: the raw sum


def log(*probs: float) -> list[float]:
    return [math.log(p) for p in probs]


# ---- length penalties and layout ----------------------------------------------------------------------------------


def test_length_penalties_by_hand() -> None:
    assert gnmt_length_penalty(1, 0.6) == 1.0  # ((5 + 1) / 6) ** alpha
    assert gnmt_length_penalty(7, 1.0) == 2.0
    assert gnmt_length_penalty(13, 0.5) == pytest.approx(math.sqrt(3.0))
    assert gnmt_length_penalty(10, 0.0) == power_length_penalty(10, 0.0) == 1.0
    assert power_length_penalty(9, 0.5) == 3.0 and power_length_penalty(3, 2.0) == 9.0


def test_expand_to_beams_puts_the_beams_of_an_input_next_to_each_other() -> None:
    x = torch.arange(6).view(2, 3)  # (B, S)
    expanded = expand_to_beams(x, 3)  # (B*K, S)
    assert expanded.shape == (6, 3)
    assert torch.equal(expanded.view(2, 3, 3)[1, 2], x[1])  # row b * K + k is input b


# ---- the finished set ---------------------------------------------------------------------------------------------


def test_hypotheses_keep_the_k_best_normalised_best_first() -> None:
    finished = BeamHypotheses(2, mean)
    finished.add([1, 2], -3.0, length=3)  # -1.0
    assert finished.hypotheses == [(-1.0, [1, 2])] and not finished.is_done(-5.0)  # fewer than K: never done
    finished.add([4], -1.0, length=2)  # -0.5
    finished.add([5, 5, 5], -8.0, length=4)  # -2.0: worse than both, dropped
    finished.add([6], -0.8)  # no end token: |Y| = len(tokens) = 1, -0.8
    assert finished.hypotheses == [(-0.5, [4]), (-0.8, [6])]
    assert len(finished) == 2
    assert finished.is_done(-0.8) and finished.is_done(-3.0) and not finished.is_done(-0.7)


def test_hypotheses_ties_keep_the_earlier_one() -> None:
    finished = BeamHypotheses(2, raw)
    for tokens in ([1], [2], [3]):
        finished.add(tokens, -1.0)
    assert finished.hypotheses == [(-1.0, [1]), (-1.0, [2])]


# ---- one step ----------------------------------------------------------------------------------------------------


def test_first_step_expands_beam_zero_only() -> None:
    beams = BeamSearchScorer(1, 3, raw, end_ids=[])
    assert beams.beam_scores.tolist() == [[0.0, INF, INF]]
    rows, tokens = beams.step(torch.tensor([log(0.1, 0.2, 0.3, 0.4)] * 3))  # every row the same distribution
    assert rows.tolist() == [0, 0, 0] and tokens.tolist() == [3, 2, 1]  # three different tokens, not 3 copies
    assert_close(beams.beam_scores, torch.tensor([log(0.4, 0.3, 0.2)]))


def test_second_step_by_hand_finishes_two_and_stops() -> None:
    """One input, K = 2, V = 3, token 2 ends. Worked out on paper:

    step 1: P(0) = 0.5, P(1) = 0.3 are the beams (the end token, 0.2, ranks third: not in the top K).
    step 2: candidates 0.5 * 0.8 = 0.4 (beam 0 ends), 0.3 * 0.6 = 0.18 (beam 1 ends), 0.3 * 0.25 = 0.075,
    0.5 * 0.12 = 0.06, ... Both endings rank in the top 2 and finish, scored log(0.4) / 2 and log(0.18) / 2; the
    live beams are [1, 0] and [0, 0], and the best of them, log(0.075) / 2, cannot beat log(0.18) / 2: done.
    """
    beams = BeamSearchScorer(1, 2, mean, end_ids=[2])
    rows, tokens = beams.step(torch.tensor([log(0.5, 0.3, 0.2), log(0.4, 0.4, 0.2)]))
    assert (rows.tolist(), tokens.tolist(), len(beams.finished[0])) == ([0, 0], [0, 1], 0)
    rows, tokens = beams.step(torch.tensor([log(0.12, 0.08, 0.8), log(0.25, 0.15, 0.6)]))
    assert rows.tolist() == [1, 0] and tokens.tolist() == [0, 0]
    assert beams.sequences.tolist() == [[1, 0], [0, 0]]
    scores = [score for score, _ in beams.finished[0].hypotheses]
    assert [ids for _, ids in beams.finished[0].hypotheses] == [[0], [1]]  # end token excluded
    assert scores == pytest.approx([math.log(0.4) / 2, math.log(0.18) / 2], abs=1e-6)
    assert beams.done == [True] and beams.is_done
    assert beams.finalize() == [[0]]


def test_an_ending_ranked_below_k_does_not_finish() -> None:
    beams = BeamSearchScorer(1, 1, raw, end_ids=[1])
    beams.step(torch.tensor([log(0.6, 0.4)]))  # the end token is second: K = 1 keeps token 0 only
    assert len(beams.finished[0]) == 0 and beams.sequences.tolist() == [[0]]


def test_beam_size_one_is_greedy() -> None:
    torch.manual_seed(0)
    steps = [torch.randn(1, 6).log_softmax(-1) for _ in range(5)]
    beams = BeamSearchScorer(1, 1, mean, end_ids=[])
    for log_probs in steps:
        beams.step(log_probs)
    assert beams.finalize() == [[int(lp.argmax()) for lp in steps]]


def test_finalize_lets_live_beams_compete_with_their_length() -> None:
    # finished at step 1 with log(0.3) / 1; the live beam has log(0.7 * 0.9) / 2, which is better
    beams = BeamSearchScorer(1, 2, mean, end_ids=[1])
    beams.step(torch.tensor([log(0.7, 0.3), log(0.5, 0.5)]))
    assert beams.finished[0].hypotheses == [(pytest.approx(math.log(0.3)), [])]
    beams.step(torch.tensor([log(0.9, 0.1), log(0.5, 0.5)]))
    assert not beams.is_done
    assert beams.finalize() == [[0, 0]]
    assert beams.finalize() == [[0, 0]]  # a second call changes nothing


def test_batched_inputs_are_independent() -> None:
    torch.manual_seed(1)
    V, K, T = 5, 3, 4
    tables = torch.randn(2, T, K, V).log_softmax(-1)  # (B, T, K, V) log-probs per input, step and beam
    together = BeamSearchScorer(2, K, mean, end_ids=[4])
    alone = [BeamSearchScorer(1, K, mean, end_ids=[4]) for _ in range(2)]
    for t in range(T):
        rows, tokens = together.step(tables[:, t].reshape(2 * K, V))  # (B*K, V)
        for b in range(2):
            rows_b, tokens_b = alone[b].step(tables[b, t])
            assert torch.equal(rows[b * K : (b + 1) * K] - b * K, rows_b) and torch.equal(tokens[b * K :][:K], tokens_b)
    assert together.finalize() == [alone[0].finalize()[0], alone[1].finalize()[0]]


def next_log_probs(prefix: tuple[int, ...], V: int) -> Tensor:
    """A made-up model: next-token log-probabilities (V,) that depend on the whole prefix."""
    generator = torch.Generator().manual_seed(hash(prefix) % 2**31)
    return (2 * torch.randn(V, generator=generator)).log_softmax(-1)


@pytest.mark.parametrize("alpha", [0.0, 1.0, 3.0])
def test_a_beam_as_wide_as_every_prefix_finds_the_exact_best(alpha: float) -> None:
    V, T, END = 3, 3, 2
    lp = partial(gnmt_length_penalty, alpha=alpha)
    best, best_score = None, INF  # brute force: every ended output shorter than T, every unended one of length T
    for n in range(1, T + 1):
        for seq in itertools.product(range(V), repeat=n):
            if END in seq[:-1] or (n < T and seq[-1] != END):
                continue
            total = sum(float(next_log_probs(seq[:i], V)[seq[i]]) for i in range(n))
            if total / lp(n) > best_score:
                best, best_score = list(seq[:-1] if seq[-1] == END else seq), total / lp(n)
    K = V**T  # keeps every candidate: the search is exhaustive
    beams = BeamSearchScorer(1, K, lp, end_ids=[END])
    for _ in range(T):
        prefixes = [tuple(row) for row in beams.sequences.tolist()]
        beams.step(torch.stack([next_log_probs(p, V) for p in prefixes]))  # (K, V)
        if beams.is_done:
            break
    assert beams.finalize() == [best]


# ---- bad input ---------------------------------------------------------------------------------------------------


def test_bad_input_raises() -> None:
    with pytest.raises(ValueError, match="beam_size must be >= 1, got 0"):
        BeamSearchScorer(2, 0, raw)
    with pytest.raises(ValueError, match="batch_size must be >= 0"):
        BeamSearchScorer(-1, 2, raw)
    with pytest.raises(ValueError, match="beam_size must be >= 1"):
        BeamHypotheses(0, raw)
    with pytest.raises(ValueError, match=r"log_probs must have shape \(B\*K, V\) = \(6, V\), got \(3, 5\)"):
        BeamSearchScorer(2, 3, raw).step(torch.zeros(3, 5))


def test_finalize_before_any_step_returns_empty_outputs() -> None:
    beams = BeamSearchScorer(2, 3, mean)  # lp(0) = 0 ** 1 = 0: used to raise ZeroDivisionError
    assert beams.finalize() == [[], []]
    assert beams.is_done


@pytest.mark.parametrize(
    ("log_probs", "error", "message"),
    [
        (torch.zeros(6, 0), ValueError, r"log_probs has an empty vocabulary: shape \(6, 0\)"),  # was a topk error
        (torch.full((6, 4), math.nan), ValueError, "log_probs contains NaN"),
        (torch.tensor([[-1.0, math.nan, -2.0, -3.0]] * 6), ValueError, "log_probs contains NaN"),
        (torch.full((6, 4), 0.25), ValueError, r"log-probabilities \(<= 0\), got a value 0.25 > 0; .*log_softmax"),
        (torch.zeros(6, 4, dtype=torch.long), TypeError, "log_probs must be a floating-point tensor .*torch.int64"),
        ([[0.0] * 4] * 6, TypeError, "log_probs must be a floating-point tensor .*got list"),
        (torch.full((6, 4), INF), ValueError, "every candidate of input 0 has log-probability -inf"),
    ],
)
def test_step_rejects_what_is_not_log_probabilities(log_probs: Tensor, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        BeamSearchScorer(2, 3, mean).step(log_probs)


def test_end_ids_are_checked() -> None:
    assert BeamSearchScorer(1, 2, mean, end_ids=2).end_ids.tolist() == [2]  # a bare id is one end token
    assert BeamSearchScorer(1, 2, mean, end_ids=torch.tensor([3, 1, 3])).end_ids.tolist() == [1, 3]
    with pytest.raises(ValueError, match=r"end_ids must be token ids >= 0, got \[-1\]"):
        BeamSearchScorer(1, 2, mean, end_ids=[0, -1])
    with pytest.raises(TypeError, match="end_ids must be a token id or a collection of token ids, got str"):
        BeamSearchScorer(1, 2, mean, end_ids="2")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"end_ids must hold int token ids, got 2.0 \(float\)"):
        BeamSearchScorer(1, 2, mean, end_ids=[2.0])  # type: ignore[list-item]
    with pytest.raises(TypeError, match=r"end_ids must hold integer token ids, got a tensor of dtype torch.float32"):
        BeamSearchScorer(1, 2, mean, end_ids=torch.tensor([2.0]))
    beams = BeamSearchScorer(1, 2, mean, end_ids=[1, 4])
    with pytest.raises(ValueError, match=r"end_ids \[1, 4\] are not all token ids of a vocabulary of V=4 \(0..3\)"):
        beams.step(torch.full((2, 4), -1.0))


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: BeamSearchScorer(2, 2.5, mean), TypeError, "beam_size must be an int, got float 2.5"),  # type: ignore[arg-type]
        (lambda: BeamSearchScorer(2, "2", mean), TypeError, "beam_size must be an int, got str '2'"),  # type: ignore[arg-type]
        (lambda: BeamSearchScorer(2.0, 2, mean), TypeError, "batch_size must be an int, got float"),  # type: ignore[arg-type]
        (lambda: BeamSearchScorer(2, 2, None), TypeError, "length_penalty must be a callable lp"),  # type: ignore[arg-type]
        (lambda: BeamHypotheses(2, 0.6), TypeError, "length_penalty must be a callable lp"),  # type: ignore[arg-type]
        (lambda: BeamHypotheses(True, mean), TypeError, "beam_size must be an int, got bool"),
        (lambda: expand_to_beams(torch.zeros(2, 3), -1), ValueError, "beam_size must be >= 1, got -1"),
        (lambda: expand_to_beams(torch.zeros(2, 3), 2.0), TypeError, "beam_size must be an int, got float"),  # type: ignore[arg-type]
        (lambda: expand_to_beams([1, 2], 2), TypeError, r"x must be a \(B, ...\) tensor, got list"),  # type: ignore[arg-type]
        (lambda: expand_to_beams(torch.tensor(1.0), 2), ValueError, "x must have a batch dimension"),
    ],
)
def test_bad_settings_raise_naming_the_argument(call, error: type, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error, match=message):
        call()
