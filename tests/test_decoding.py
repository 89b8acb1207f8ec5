"""Tests for llmdocs.generation.encoder_decoder: greedy decoding and beam search, with and without the KV cache."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import Tensor, nn

from llmdocs.generation.encoder_decoder import beam_search, greedy_decode
from llmdocs.models.transformer import DecoderCache, Transformer, TransformerConfig

BOS, EOS, PAD = 1, 2, 0


@pytest.fixture
def model() -> Transformer:
    # Untied output: an untrained tied model just copies its last input token. Seed 2 gives varied
    # outputs, some ending in EOS, so the comparisons below are not trivially equal.
    torch.manual_seed(2)
    config = TransformerConfig.tiny(src_vocab_size=20, tgt_vocab_size=12, tie_output=False)
    return Transformer(config).eval()


@pytest.fixture
def src() -> Tensor:
    torch.manual_seed(1)
    src = torch.randint(3, 20, (4, 7))
    src[2, 4:] = PAD  # one padded sentence
    return src


@pytest.mark.numerics
def test_greedy_with_cache_equals_greedy_with_full_forward(model: Transformer, src: Tensor) -> None:
    cached = greedy_decode(model, src, BOS, EOS, max_new_tokens=12)
    full = greedy_decode(model, src, BOS, EOS, max_new_tokens=12, use_cache=False)
    assert cached == full
    assert len(cached) == 4 and all(EOS not in ids for ids in cached)
    assert min(map(len, cached)) < 12 and len({tuple(ids) for ids in cached}) == 4


def test_greedy_matches_step_by_step_argmax(model: Transformer, src: Tensor) -> None:
    out = greedy_decode(model, src[:1], BOS, EOS, max_new_tokens=6)[0]
    tgt = torch.tensor([[BOS]])
    for _ in range(len(out)):
        next_id = model(src[:1], tgt)[0, -1].argmax()
        tgt = torch.cat([tgt, next_id.view(1, 1)], dim=1)
    assert tgt[0, 1:].tolist() == out


def test_beam_size_one_equals_greedy(model: Transformer, src: Tensor) -> None:
    greedy = greedy_decode(model, src, BOS, EOS, max_new_tokens=10)
    assert beam_search(model, src, BOS, EOS, beam_size=1, max_new_tokens=10) == greedy


@pytest.mark.numerics
def test_beam_with_cache_equals_beam_without(model: Transformer, src: Tensor) -> None:
    kwargs = dict(beam_size=3, max_new_tokens=8, length_penalty=0.6)
    cached = beam_search(model, src, BOS, EOS, **kwargs)  # type: ignore[arg-type]
    full = beam_search(model, src, BOS, EOS, use_cache=False, **kwargs)  # type: ignore[arg-type]
    assert cached == full and len(cached) == 4


@pytest.mark.numerics
def test_batched_results_equal_one_sentence_at_a_time(model: Transformer, src: Tensor) -> None:
    together = beam_search(model, src, BOS, EOS, beam_size=3, max_new_tokens=8)
    alone = [beam_search(model, src[i : i + 1, :], BOS, EOS, 3, 8)[0] for i in range(4)]
    assert together[:2] == alone[:2] and together[3] == alone[3]
    # sentence 2 alone without its padding: padding must not change the translation
    unpadded = beam_search(model, src[2:3, :4], BOS, EOS, beam_size=3, max_new_tokens=8)[0]
    assert together[2] == alone[2] == unpadded


def test_decoding_restores_training_mode(model: Transformer, src: Tensor) -> None:
    model.train()
    greedy_decode(model, src, BOS, EOS, max_new_tokens=3)
    beam_search(model, src, BOS, EOS, beam_size=2, max_new_tokens=3)
    assert model.training


def test_decoding_errors(model: Transformer, src: Tensor) -> None:
    with pytest.raises(ValueError, match="beam_size must be >= 1"):
        beam_search(model, src, BOS, EOS, beam_size=0)
    with pytest.raises(ValueError, match=r"max_new_tokens=65 must be in \[1, max_len=64\]"):
        greedy_decode(model, src, BOS, EOS, max_new_tokens=65)
    with pytest.raises(ValueError, match="eos_id=12 is not in"):
        greedy_decode(model, src, BOS, 12)
    with pytest.raises(TypeError, match="src must be an integer tensor"):
        greedy_decode(model, src.float(), BOS, EOS)


# ---- beam search against brute force on a model with known probabilities ---------------------


class BigramModel(nn.Module):
    """A stand-in 'translator' whose next-token distribution depends only on the last token.

    Each source sentence id (src[:, 0], counted from 1: id 0 is padding) selects its own bigram table, carried
    through as 'memory', so exact sequence probabilities are known and every candidate can be enumerated.
    """

    def __init__(self, n_sentences: int, vocab_size: int, max_len: int = 16) -> None:
        super().__init__()
        self.V = vocab_size
        self.config = TransformerConfig.tiny(n_sentences + 1, vocab_size, max_len=max_len)  # + the pad id 0
        self.log_probs = torch.randn(n_sentences, vocab_size, vocab_size).mul(2).log_softmax(-1)

    def encode(self, src: Tensor, src_mask: Tensor | None = None) -> Tensor:
        return self.log_probs[src[:, 0] - 1].flatten(1)[:, None, :]  # (B, 1, V*V)

    def new_cache(self) -> DecoderCache:
        return DecoderCache(0)  # nothing to cache: only the last token matters

    def decode(self, tgt: Tensor, memory: Tensor, src_mask: Tensor | None, cache: object) -> Tensor:
        table = memory[:, 0].view(-1, self.V, self.V)  # (B, V, V)
        return table.gather(1, tgt[:, :, None].expand(-1, -1, self.V))  # (B, T, V)

    def sequence_log_prob(self, sentence: int, ids: list[int]) -> float:
        prev, total = BOS, 0.0
        for token in ids:
            total += float(self.log_probs[sentence, prev, token])
            prev = token
        return total


def brute_force_best(model: BigramModel, sentence: int, max_new: int, alpha: float) -> list[int]:
    """Best normalised score among all EOS-ended targets and all max-length unfinished ones."""
    lp = lambda n: ((5 + n) / 6) ** alpha  # noqa: E731
    best: tuple[float, list[int]] = (float("-inf"), [])
    for n in range(max_new + 1):
        for body in itertools.product([t for t in range(model.V) if t != EOS], repeat=n):
            ids = list(body)
            candidate = [*ids, EOS] if n < max_new else ids  # at max length: stop unfinished
            score = model.sequence_log_prob(sentence, candidate) / lp(len(candidate))
            if score > best[0]:
                best = (score, ids)
    return best[1]


@pytest.mark.parametrize("alpha", [0.0, 0.6, 2.0])
def test_wide_beam_finds_the_exact_best_hypothesis(alpha: float) -> None:
    torch.manual_seed(0)
    V, max_new = 4, 3
    bigram = BigramModel(n_sentences=6, vocab_size=V)
    src = torch.arange(1, 7)[:, None]  # sentence ids
    # K = 64 >= 3^3 prefixes x 4 tokens keeps every candidate, so beam search is exhaustive here
    found = beam_search(bigram, src, BOS, EOS, 64, max_new, length_penalty=alpha)  # type: ignore[arg-type]
    expected = [brute_force_best(bigram, i, max_new, alpha) for i in range(6)]
    assert found == expected
    assert len({tuple(ids) for ids in found}) > 1  # the sentences really differ


def test_beam_scores_at_least_greedy_on_the_bigram_model() -> None:
    torch.manual_seed(0)
    bigram = BigramModel(n_sentences=6, vocab_size=4)
    src = torch.arange(1, 7)[:, None]
    greedy = greedy_decode(bigram, src, BOS, EOS, max_new_tokens=3)  # type: ignore[arg-type]
    beam = beam_search(bigram, src, BOS, EOS, 3, 3, length_penalty=0.0)  # type: ignore[arg-type]
    for i in range(6):
        beam_log_p, greedy_log_p = (
            bigram.sequence_log_prob(i, [*ids, EOS] if len(ids) < 3 else ids) for ids in (beam[i], greedy[i])
        )
        assert beam_log_p >= greedy_log_p - 1e-6


def test_eos_first_gives_empty_output() -> None:
    bigram = BigramModel(n_sentences=1, vocab_size=4)
    bigram.log_probs[0, BOS] = torch.tensor([-9.0, -9.0, 0.0, -9.0])  # EOS right after BOS
    src = torch.ones(1, 1, dtype=torch.long)
    assert greedy_decode(bigram, src, BOS, EOS, max_new_tokens=5) == [[]]  # type: ignore[arg-type]
    assert beam_search(bigram, src, BOS, EOS, beam_size=2, max_new_tokens=5) == [[]]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda m, s: greedy_decode(m, s.tolist(), BOS, EOS), TypeError, "src must be a .B, S. tensor of token ids"),
        (lambda m, s: greedy_decode(m, s[0], BOS, EOS), ValueError, r"src must have shape \(B, S\), got \(7,\)"),
        (lambda m, s: greedy_decode(m, s[:, :0], BOS, EOS), ValueError, r"src is empty: shape \(4, 0\)"),
        (lambda m, s: greedy_decode(m, s, 1.0, EOS), TypeError, "bos_id must be an int, got float"),
        (lambda m, s: greedy_decode(m, s, BOS, EOS, max_new_tokens=2.5), TypeError, "max_new_tokens must be an int"),
        (lambda m, s: greedy_decode(m, s, BOS, EOS, max_new_tokens=0), ValueError, "max_new_tokens=0 must be in"),
        (lambda m, s: beam_search(m, s, BOS, EOS, beam_size=2.0), TypeError, "beam_size must be an int, got float"),
        (lambda m, s: beam_search(m, s, BOS, EOS, beam_size=-3), ValueError, "beam_size must be >= 1, got -3"),
        (lambda m, s: beam_search(m, s, BOS, EOS, length_penalty=float("nan")), ValueError, "length_penalty"),
        (lambda m, s: beam_search(m, s, BOS, -1), ValueError, "eos_id=-1 is not in"),
    ],
)
def test_degenerate_input_raises(model: Transformer, src: Tensor, call, error: type, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error, match=message):
        call(model, src)


@pytest.mark.parametrize("decode", [greedy_decode, beam_search])
def test_a_source_row_of_padding_only_raises(model: Transformer, src: Tensor, decode) -> None:  # type: ignore[no-untyped-def]
    # its padding mask hides every key, so the decoder's cross-attention has nothing to attend to
    src[1] = PAD
    with pytest.raises(ValueError, match=r"src row 1 is all padding \(pad_id=0\): every source sentence needs"):
        decode(model, src, BOS, EOS, max_new_tokens=3)
    src[3] = PAD
    with pytest.raises(ValueError, match=r"src row 1 is all padding .*; all-padding rows: \[1, 3\]"):
        decode(model, src, BOS, EOS, max_new_tokens=3)
    src[1, 0] = src[3, -1] = 5  # one real token is enough, wherever it sits
    assert len(decode(model, src, BOS, EOS, max_new_tokens=3)) == 4


@pytest.mark.parametrize("decode", [greedy_decode, beam_search])
def test_a_model_that_is_not_an_encoder_decoder_raises(src: Tensor, decode) -> None:  # type: ignore[no-untyped-def]
    from llmdocs.models.gpt import GPT, GPTConfig

    message = r"model must be an encoder-decoder model such as Transformer \(with encode\(\), decode\(\)"
    for not_a_model in ("model", None, GPT(GPTConfig.tiny(20))):  # "model" used to raise an AttributeError
        with pytest.raises(TypeError, match=message):
            decode(not_a_model, src, BOS, EOS, max_new_tokens=3)


def test_beam_search_length_penalty_must_be_a_number(model: Transformer, src: Tensor) -> None:
    with pytest.raises(TypeError, match="length_penalty must be a number, got NoneType"):
        beam_search(model, src, BOS, EOS, length_penalty=None)  # type: ignore[arg-type]
