"""Tests for llmdocs.nn.positional: the sinusoidal table and the two positional modules."""

from __future__ import annotations

import math

import pytest
import torch

from llmdocs.nn.positional import (
    LearnedPositionalEmbedding,
    SinusoidalPositionalEncoding,
    sinusoidal_table,
)
from llmdocs.testing import assert_close


def test_table_matches_the_paper_formula() -> None:
    pe = sinusoidal_table(max_len=10, d_model=6)
    for pos in (0, 1, 7):
        for i in range(3):
            angle = pos / 10000 ** (2 * i / 6)
            assert pe[pos, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-6)
            assert pe[pos, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-6)


def test_table_odd_width_and_range() -> None:
    pe = sinusoidal_table(max_len=100, d_model=7)
    assert pe.shape == (100, 7)
    assert pe.abs().max() <= 1.0
    positions = torch.arange(100.0)
    assert_close(pe[:, 6], torch.sin(positions / 10000 ** (6 / 7)))  # last is a sine


def test_table_dot_product_depends_only_on_offset() -> None:
    # Each (sin, cos) pair rotates with position, so <PE(p), PE(p + k)> = sum_i cos(k w_i).
    pe = sinusoidal_table(max_len=64, d_model=16)  # float32
    dots = torch.stack([pe[p] @ pe[p + 5] for p in range(50)])
    assert_close(dots, dots[0].expand(50))


def test_table_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError, match="max_len and d_model must be >= 1"):
        sinusoidal_table(0, 8)


@pytest.mark.parametrize("cls", [SinusoidalPositionalEncoding, LearnedPositionalEmbedding])
def test_module_adds_positions_and_supports_offsets(cls: type) -> None:
    torch.manual_seed(0)
    pos = cls(d_model=8, max_len=12)
    x = torch.randn(2, 6, 8)
    out = pos(x)
    assert out.shape == (2, 6, 8)
    assert_close(pos(x[:, 4:], offset=4), out[:, 4:])  # incremental decoding
    assert_close(out[0] - x[0], out[1] - x[1], scale=out.abs().max())  # same positions for every sentence
    assert pos(torch.zeros(1, 1, 8)).shape == (1, 1, 8)  # T = 1


@pytest.mark.parametrize("cls", [SinusoidalPositionalEncoding, LearnedPositionalEmbedding])
def test_module_rejects_sequences_longer_than_the_table(cls: type) -> None:
    pos = cls(d_model=8, max_len=12)
    with pytest.raises(ValueError, match=r"sequence length 13 .* exceeds max_len=12"):
        pos(torch.zeros(1, 13, 8))
    with pytest.raises(ValueError, match=r"offset=10 \+ T=3\) exceeds max_len=12"):
        pos(torch.zeros(1, 3, 8), offset=10)
    with pytest.raises(ValueError, match="offset must be >= 0"):
        pos(torch.zeros(1, 3, 8), offset=-1)


def test_sinusoidal_table_is_a_buffer_not_a_parameter() -> None:
    pos = SinusoidalPositionalEncoding(d_model=8, max_len=12)
    assert list(pos.parameters()) == []
    assert "table" not in pos.state_dict()  # recomputed, not checkpointed


def test_learned_embedding_gets_gradients_only_where_used() -> None:
    pos = LearnedPositionalEmbedding(d_model=8, max_len=12)
    pos(torch.zeros(2, 4, 8)).sum().backward()
    grad = pos.embedding.weight.grad
    assert grad is not None
    assert grad[:4].abs().sum() > 0 and grad[4:].abs().sum() == 0
