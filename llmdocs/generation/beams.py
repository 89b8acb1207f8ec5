"""Beam-search bookkeeping, shared by the decoder-only and the encoder-decoder beam searches.

A beam search keeps, for each of B inputs, the K most probable partial outputs, its *beams*. Their tensors are
flat: row ``b * K + k`` of a (B*K, ...) tensor is beam k of input b
([expand_to_beams][llmdocs.generation.beams.expand_to_beams]). Each step of a search:

1. the model gives next-token log-probabilities for every beam, (B*K, V);
2. [BeamSearchScorer.step][llmdocs.generation.beams.BeamSearchScorer.step] adds them to each beam's running sum
   log P(y_<=t), keeps the 2K best of the K*V candidates of each input, moves the candidates that end in an end
   token (when they rank in the top K) to the input's finished set,
   [BeamHypotheses][llmdocs.generation.beams.BeamHypotheses], and continues with the K best others;
3. the caller reorders its own per-beam state (token ids, masks, key/value cache) with the parent rows that the
   step returns.

A finished hypothesis Y is ranked by its length-normalised log-probability

    score(Y) = log P(Y | X) / lp(|Y|)

where |Y| counts the generated tokens, end token included, and lp is a length penalty:
[gnmt_length_penalty][llmdocs.generation.beams.gnmt_length_penalty] ((5 + |Y|) / 6) ** alpha of Wu et al. (2016)
or [power_length_penalty][llmdocs.generation.beams.power_length_penalty] |Y| ** alpha of Hugging Face. Without it
(alpha = 0) a search prefers short outputs: every token multiplies P(Y) by a number below one.

An input is done when it has K finished hypotheses and its best live beam, normalised at the current length,
cannot beat the worst of them; [finalize][llmdocs.generation.beams.BeamSearchScorer.finalize] then lets the live
beams of the inputs that are not done compete with the finished ones, and returns the best of each input. These
are the rules of Hugging Face's ``BeamSearchScorer`` with ``early_stopping=False``.

References:
    Wu et al., "Google's Neural Machine Translation System: Bridging the Gap between Human and Machine
    Translation", 2016, section 7 (length normalisation). Hugging Face ``transformers``,
    ``generation/beam_search.py`` (``BeamHypotheses``, ``BeamSearchScorer``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterable
from numbers import Integral

import torch
from torch import Tensor

from llmdocs.generation.checks import check_int

__all__ = ["BeamHypotheses", "BeamSearchScorer", "expand_to_beams", "gnmt_length_penalty", "power_length_penalty"]

LengthPenalty = Callable[[int], float]
"""lp(|Y|): the number a hypothesis's summed log-probability is divided by, given its length |Y| >= 1."""


def _check_length_penalty(length_penalty: object) -> None:
    if not callable(length_penalty):
        raise TypeError(
            "length_penalty must be a callable lp(length) -> float, e.g. "
            f"functools.partial(gnmt_length_penalty, alpha=0.6), got {type(length_penalty).__name__}"
        )


def _as_end_ids(end_ids: int | Collection[int] | Tensor) -> list[int]:
    """One id or a collection of ids -> sorted unique ids; TypeError for text or non-integers, ValueError if < 0."""
    if isinstance(end_ids, Tensor):
        if end_ids.is_floating_point() or end_ids.dtype == torch.bool:
            raise TypeError(f"end_ids must hold integer token ids, got a tensor of dtype {end_ids.dtype}")
        end_ids = end_ids.flatten().tolist()
    if isinstance(end_ids, Integral) and not isinstance(end_ids, bool):
        end_ids = [end_ids]  # a bare id: the one end token
    if isinstance(end_ids, str | bytes) or not isinstance(end_ids, Iterable):
        raise TypeError(f"end_ids must be a token id or a collection of token ids, got {type(end_ids).__name__}")
    ids = list(end_ids)
    not_ints = [t for t in ids if isinstance(t, bool) or not isinstance(t, Integral)]
    if not_ints:
        raise TypeError(f"end_ids must hold int token ids, got {not_ints[0]!r} ({type(not_ints[0]).__name__})")
    negative = [t for t in ids if t < 0]
    if negative:
        raise ValueError(f"end_ids must be token ids >= 0, got {negative}")
    return sorted({int(t) for t in ids})


def gnmt_length_penalty(length: int, alpha: float) -> float:
    """GNMT's length penalty lp(Y) = ((5 + |Y|) / 6) ** alpha.

    It is 1 for a one-token output and grows sub-linearly; alpha = 0 ranks by raw log-probability, larger values
    favour longer outputs. The Transformer paper translates with alpha = 0.6.

    Args:
        length: |Y|, generated tokens including the end token.
        alpha: strength of the normalisation.

    Returns:
        lp(|Y|).

    References:
        Wu et al., "Google's Neural Machine Translation System", 2016, section 7, equation 14.

    Examples:
        >>> gnmt_length_penalty(1, 0.6), gnmt_length_penalty(7, 1.0)
        (1.0, 2.0)
    """
    return ((5.0 + length) / 6.0) ** alpha


def power_length_penalty(length: int, alpha: float) -> float:
    """Hugging Face's length penalty lp(Y) = |Y| ** alpha (``length_penalty`` of ``generate``, default 1).

    alpha = 1 ranks by the mean log-probability per token, alpha = 0 by the raw sum.

    Args:
        length: |Y|, generated tokens including the end token.
        alpha: exponent.

    Returns:
        lp(|Y|).

    Examples:
        >>> power_length_penalty(4, 1.0), power_length_penalty(4, 0.5), power_length_penalty(4, 0.0)
        (4.0, 2.0, 1.0)
    """
    return length**alpha


def expand_to_beams(x: Tensor, beam_size: int) -> Tensor:
    """Repeat each row K times: (B, ...) -> (B*K, ...), row ``b * K + k`` is beam k of input b.

    Raises:
        TypeError: If ``x`` is not a tensor or ``beam_size`` is not an int.
        ValueError: If ``beam_size`` < 1 or ``x`` is 0-dimensional.

    Examples:
        >>> import torch
        >>> expand_to_beams(torch.tensor([[1, 2], [3, 4]]), 2).tolist()
        [[1, 2], [1, 2], [3, 4], [3, 4]]
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a (B, ...) tensor, got {type(x).__name__}")
    if x.dim() == 0:
        raise ValueError("x must have a batch dimension (B, ...), got a 0-dimensional tensor")
    check_int(beam_size, "beam_size", minimum=1)
    return x.repeat_interleave(beam_size, dim=0)  # (B*K, ...)


class BeamHypotheses:
    """The best finished hypotheses of one input: at most K, best first, scored log P / lp(|Y|).

    Args:
        beam_size: K, how many hypotheses to keep.
        length_penalty: lp(|Y|), e.g. ``functools.partial(gnmt_length_penalty, alpha=0.6)``.

    Examples:
        >>> from functools import partial
        >>> finished = BeamHypotheses(2, partial(power_length_penalty, alpha=1.0))
        >>> finished.add([4], -2.0, length=2)  # -2.0 / 2 = -1.0
        >>> finished.add([7], -0.9, length=1)  # -0.9 / 1 = -0.9, the new best
        >>> finished.add([1, 2], -6.0, length=3)  # -6.0 / 3 = -2.0: worse than both, dropped
        >>> finished.hypotheses
        [(-0.9, [7]), (-1.0, [4])]
        >>> finished.is_done(best_live_score=-1.2), finished.is_done(best_live_score=-0.95)
        (True, False)
    """

    def __init__(self, beam_size: int, length_penalty: LengthPenalty) -> None:
        check_int(beam_size, "beam_size", minimum=1)
        _check_length_penalty(length_penalty)
        self.beam_size = beam_size
        self.length_penalty = length_penalty
        self.hypotheses: list[tuple[float, list[int]]] = []  # (score, tokens), best first

    def __len__(self) -> int:
        return len(self.hypotheses)

    def add(self, tokens: list[int], sum_log_probs: float, length: int | None = None) -> None:
        """Add a hypothesis with score ``sum_log_probs / lp(length)``; keep the K best (ties: the earlier one).

        Args:
            tokens: the generated ids (without the end token).
            sum_log_probs: log P(Y | X), the sum of the log-probabilities of its tokens, end token included.
            length: |Y| for the length penalty; defaults to ``len(tokens)`` (a hypothesis cut at the length limit,
                with no end token).
        """
        score = sum_log_probs / self.length_penalty(len(tokens) if length is None else length)
        self.hypotheses.append((score, tokens))
        self.hypotheses.sort(key=lambda h: -h[0])  # stable: among equal scores, the earlier stays first
        del self.hypotheses[self.beam_size :]

    def is_done(self, best_live_score: float) -> bool:
        """True when K hypotheses are finished and none is worse than ``best_live_score``.

        Args:
            best_live_score: the normalised score of the input's best live beam. The heuristic assumes the beam
                cannot improve by growing, which holds for lp = 1 (log-probabilities only decrease), not always
                with a length penalty, as in Hugging Face's ``early_stopping=False``.
        """
        return len(self.hypotheses) >= self.beam_size and best_live_score <= self.hypotheses[-1][0]


class BeamSearchScorer:
    """The state of a batched beam search: live beams, their summed log-probabilities, finished hypotheses.

    The caller owns the model and its per-beam state; each step it passes the next-token log-probabilities of
    every beam, and gets back which row each new beam extends and with which token.

    Args:
        batch_size: B, inputs searched together.
        beam_size: K, beams per input (K = 1 is greedy decoding).
        length_penalty: lp(|Y|) that finished scores are divided by, e.g.
            ``functools.partial(gnmt_length_penalty, alpha=0.6)``.
        end_ids: tokens that finish a hypothesis (EOS, stop tokens): one id or a collection, possibly empty.
        device: where the beams' tensors live (that of the log-probabilities).

    Attributes:
        beam_scores: (B, K) summed log-probability of each live beam; all beams of an input start identical, so
            only beam 0 starts live (0) and the others at -inf, or the first step would keep K copies of one token.
        sequences: (B*K, t) the tokens generated so far by each live beam.
        finished: one [BeamHypotheses][llmdocs.generation.beams.BeamHypotheses] per input.
        done: per input, whether its search is over.

    Examples:
        One input, K = 2 beams, V = 3 tokens, token 2 is the end token, lp(|Y|) = |Y|:

        >>> import torch
        >>> from functools import partial
        >>> beams = BeamSearchScorer(1, 2, partial(power_length_penalty, alpha=1.0), end_ids=[2])
        >>> rows, tokens = beams.step(torch.tensor([[0.5, 0.3, 0.2], [0.4, 0.4, 0.2]]).log())  # (B*K, V)
        >>> rows.tolist(), tokens.tolist()  # both beams extend beam 0 (the other starts at -inf)
        ([0, 0], [0, 1])

        Beam 0 (P = 0.5) ends with probability 0.8, beam 1 (P = 0.3) with 0.6: both rank in the top K and finish,
        scored log(0.5 * 0.8) / 2 and log(0.3 * 0.6) / 2; the best live candidate, 0.3 * 0.25 = 0.075, cannot beat
        them, so the input is done:

        >>> rows, tokens = beams.step(torch.tensor([[0.12, 0.08, 0.8], [0.25, 0.15, 0.6]]).log())
        >>> rows.tolist(), tokens.tolist(), beams.sequences.tolist()
        ([1, 0], [0, 0], [[1, 0], [0, 0]])
        >>> [(round(score, 3), ids) for score, ids in beams.finished[0].hypotheses]
        [(-0.458, [0]), (-0.857, [1])]
        >>> beams.is_done, beams.finalize()
        (True, [[0]])
    """

    def __init__(
        self,
        batch_size: int,
        beam_size: int,
        length_penalty: LengthPenalty,
        end_ids: int | Collection[int] = (),
        device: torch.device | str | None = None,
    ) -> None:
        check_int(beam_size, "beam_size", minimum=1)
        check_int(batch_size, "batch_size", minimum=0)
        _check_length_penalty(length_penalty)
        end_list = _as_end_ids(end_ids)
        B, K = batch_size, beam_size
        self.batch_size, self.beam_size, self.length_penalty = B, K, length_penalty
        self.end_ids = torch.tensor(end_list, dtype=torch.long, device=device)  # (E,)
        self._max_end_id = max(end_list, default=-1)  # checked against V at each step
        self.beam_scores = torch.full((B, K), float("-inf"), device=device)  # (B, K) summed log-probabilities
        self.beam_scores[:, 0] = 0.0
        self.sequences = torch.zeros((B * K, 0), dtype=torch.long, device=device)  # (B*K, t)
        self.finished = [BeamHypotheses(K, length_penalty) for _ in range(B)]
        self.done = [False] * B
        self._row_offset = torch.arange(B, device=device)[:, None] * K  # (B, 1) first row of each input

    @property
    def is_done(self) -> bool:
        """Whether every input's search is over (the caller can stop stepping)."""
        return all(self.done)

    def step(self, log_probs: Tensor) -> tuple[Tensor, Tensor]:
        """Extend every live beam by every token and keep the K best continuations of each input.

        Of the 2K best candidates (enough to keep K live ones even if K of them end), those ending in an end
        token finish if they rank in the top K; the K best others become the new beams.

        Args:
            log_probs: (B*K, V) next-token log-probabilities of every beam, in the row order of ``sequences``.

        Returns:
            ``(parent_rows, next_tokens)``, (B*K,) each: new beam ``r`` is old row ``parent_rows[r]`` followed by
            ``next_tokens[r]``. Reorder every per-beam tensor and cache with ``parent_rows``.

        Raises:
            TypeError: If ``log_probs`` is not a floating-point tensor.
            ValueError: If ``log_probs`` is not (B*K, V) with V >= 1, holds NaN or a value > 0 (probabilities
                instead of log-probabilities), an end id is not below V, or every candidate of an input is -inf.
        """
        B, K = self.batch_size, self.beam_size
        if not isinstance(log_probs, Tensor) or not log_probs.is_floating_point():
            kind = f"dtype {log_probs.dtype}" if isinstance(log_probs, Tensor) else type(log_probs).__name__
            raise TypeError(f"log_probs must be a floating-point tensor of log-probabilities, got {kind}")
        if log_probs.dim() != 2 or log_probs.size(0) != B * K:
            raise ValueError(f"log_probs must have shape (B*K, V) = ({B * K}, V), got {tuple(log_probs.shape)}")
        V = log_probs.size(-1)
        if V == 0:
            raise ValueError(f"log_probs has an empty vocabulary: shape {tuple(log_probs.shape)}, expected V >= 1")
        if self._max_end_id >= V:
            raise ValueError(
                f"end_ids {self.end_ids.tolist()} are not all token ids of a vocabulary of V={V} (0..{V - 1})"
            )
        if log_probs.numel() > 0:
            top = float(log_probs.max())  # one sync; NaN propagates through max
            if math.isnan(top):
                raise ValueError("log_probs contains NaN")
            if top > 0.0:
                raise ValueError(
                    f"log_probs must be log-probabilities (<= 0), got a value {top:g} > 0; "
                    "pass the logits through log_softmax, not softmax"
                )
        length = self.sequences.size(1) + 1  # |Y| of a hypothesis that ends with this step's token
        candidates = self.beam_scores[:, :, None] + log_probs.view(B, K, V)  # (B, K, V)
        top_scores, top_index = candidates.view(B, K * V).topk(min(2 * K, K * V), dim=-1)  # (B, 2K)
        top_beam, top_token = top_index // V, top_index % V  # (B, 2K) each

        # 1) Candidates ending in an end token and ranked in the top K finish.
        ends = torch.isin(top_token, self.end_ids)  # (B, 2K)
        rank = torch.arange(top_token.size(1), device=top_token.device)  # (2K,)
        for b, j in (ends & (rank < K) & torch.isfinite(top_scores)).nonzero().tolist():
            if not self.done[b]:
                tokens = self.sequences[b * K + int(top_beam[b, j])].tolist()
                self.finished[b].add(tokens, float(top_scores[b, j]), length)

        # 2) The K best candidates that do not end become the next beams.
        live_scores, order = top_scores.masked_fill(ends, float("-inf")).topk(K, dim=-1)  # (B, K)
        parent_rows = (self._row_offset + top_beam.gather(1, order)).view(-1)  # (B*K,)
        next_tokens = top_token.gather(1, order).view(-1)  # (B*K,)
        self.sequences = torch.cat([self.sequences.index_select(0, parent_rows), next_tokens[:, None]], dim=1)
        self.beam_scores = live_scores  # (B, K)

        # 3) Done: K finished, and the best live beam, normalised now, cannot beat the worst of them.
        best_live = (live_scores[:, 0] / self.length_penalty(length)).tolist()  # (B,)
        for b in range(B):
            if not self.done[b] and best_live[b] == float("-inf") and len(self.finished[b]) == 0:
                raise ValueError(f"every candidate of input {b} has log-probability -inf: there is no token to choose")
            if not self.done[b] and self.finished[b].is_done(best_live[b]):
                self.done[b] = True
        return parent_rows, next_tokens

    def finalize(self) -> list[list[int]]:
        """The best hypothesis of each input; live beams of inputs that are not done compete too.

        A live beam was cut by the length limit: it has no end token, and |Y| is its number of tokens.

        Returns:
            B lists of generated ids (end token excluded); empty lists before the first step.
        """
        K = self.beam_size
        if self.sequences.size(1) == 0:  # no step yet: the empty output is all there is (and lp(0) may be 0)
            self.done = [True] * self.batch_size
            return [[] for _ in range(self.batch_size)]
        for b, finished in enumerate(self.finished):
            if not self.done[b]:
                for k in range(K):
                    score = float(self.beam_scores[b, k])
                    if score > float("-inf"):
                        finished.add(self.sequences[b * K + k].tolist(), score)
                self.done[b] = True  # the live beams are in: a second call returns the same
        return [finished.hypotheses[0][1] for finished in self.finished]
