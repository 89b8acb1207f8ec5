"""The ablation ladder: its ends are GPT and Llama (weights copied, float64), every step is a working decoder."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from llmdocs.generation.decoder_only import generate, left_pad
from llmdocs.models.gpt import GPT, GPTConfig
from llmdocs.models.ladder import LADDER, LadderConfig, LadderDecoder
from llmdocs.models.llama import Llama, LlamaConfig
from llmdocs.testing import assert_close, assert_equivalent

SMALL: dict[str, Any] = dict(context_length=16, d_model=32, n_heads=4, n_layers=2)


def small(name: str, **overrides: Any) -> LadderDecoder:
    torch.manual_seed(0)
    return LadderDecoder(LadderConfig.step(name, vocab_size=40, **{**SMALL, **overrides})).eval()


@pytest.mark.numerics
def test_the_first_step_is_gpt() -> None:
    ours = small("GPT-2").double()
    config = GPTConfig(40, context_length=16, d_model=32, n_heads=4, n_layers=2, d_ff=128, activation="gelu",
                       dropout=0.0, bias=False, tie_embeddings=True)  # fmt: skip
    gpt = GPT(config).double().eval()
    gpt.load_state_dict(ours.state_dict())  # strict: the same modules under the same names
    ids = torch.randint(0, 40, (3, 16))
    assert_equivalent(ours(ids), gpt(ids), depth=2)


@pytest.mark.numerics
def test_the_last_step_is_llama_with_as_many_kv_heads_as_heads() -> None:
    ours = small("all three").double()
    config = LlamaConfig(40, context_length=16, d_model=32, n_heads=4, n_kv_heads=4, n_layers=2, d_ff=85,
                         rms_norm_eps=1e-5, tie_embeddings=True)  # fmt: skip
    llama = Llama(config).double().eval()
    llama.load_state_dict(ours.state_dict())
    ids = torch.randint(0, 40, (3, 16))
    assert_equivalent(ours(ids), llama(ids), depth=2)


def test_each_step_changes_only_its_switches() -> None:
    names = {name: LadderConfig.step(name, vocab_size=83).name for name in LADDER}
    assert names == {name: name for name in LADDER}
    gpt2 = LadderConfig(83)
    assert (gpt2.norm, gpt2.positions, gpt2.feed_forward, gpt2.d_ff) == ("layernorm", "learned", "gelu", 512)
    assert LadderConfig.step("+ SwiGLU", 83).d_ff == 341  # 3 * 341 ~ 2 * 512: the same parameters
    assert gpt2.with_switches(feed_forward="swiglu") == LadderConfig.step("+ SwiGLU", 83)
    assert LadderConfig(83, norm="rmsnorm", feed_forward="swiglu").name == "rmsnorm + swiglu"


def test_parameter_counts_stay_within_two_percent_of_gpt2() -> None:
    counts = {name: sum(p.numel() for p in LadderDecoder(LadderConfig.step(name, 83)).parameters()) for name in LADDER}
    assert counts["GPT-2"] == 814_592  # the GPT chapter's model
    for count in counts.values():
        assert abs(count / counts["GPT-2"] - 1) < 0.021  # rotary positions drop the (128, 128) position table


@pytest.mark.parametrize("name", list(LADDER))
def test_cache_steps_equal_the_full_forward(name: str) -> None:
    model = small(name)
    ids = torch.randint(0, 40, (2, 9))
    cache = model.new_cache()
    steps = [model(ids[:, :5], cache=cache)] + [model(ids[:, t : t + 1], cache=cache) for t in range(5, 9)]
    assert_close(torch.cat(steps, dim=1), model(ids), depth=2)


@pytest.mark.parametrize("name", list(LADDER))
def test_left_padded_batch_equals_each_prompt_alone_and_generation_runs(name: str) -> None:
    model = small(name)
    prompts = [[1, 2, 3, 4, 5], [6, 7]]
    ids, mask = left_pad(prompts)
    batched = model(ids, attention_mask=mask)[:, -1]  # (B, V)
    for row, prompt in enumerate(prompts):
        assert_close(batched[row], model(torch.tensor([prompt]))[0, -1], depth=2)
    assert generate(model, prompts, 4) == [generate(model, [p], 4)[0] for p in prompts]


@pytest.mark.parametrize("name", list(LADDER))
def test_causal_and_trainable(name: str) -> None:
    model = small(name).train()
    ids = torch.randint(0, 40, (2, 10))
    logits = model(ids)
    assert_close(model(ids[:, :6]), logits[:, :6], depth=2)
    logits.logsumexp(-1).mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"norm": "batchnorm"}, "norm must be one of"),
        ({"positions": "alibi"}, "positions must be one of"),
        ({"feed_forward": "relu"}, "feed_forward must be one of"),
        ({"d_model": 30, "n_heads": 6, "positions": "rope"}, "d_head = 5 is odd"),
        ({"d_model": 30, "n_heads": 4}, "not divisible by n_heads=4"),
        ({"n_layers": 0}, "n_layers must be an integer >= 1"),
        ({"rope_theta": 0}, "rope_theta must be a finite number > 0"),
        ({"dropout": 1.0}, "dropout must be in"),
    ],
)
def test_config_errors_name_the_argument(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LadderConfig(40, **overrides)
    with pytest.raises(ValueError, match="name must be one of"):
        LadderConfig.step("GPT-3", 40)


def test_bad_calls_raise_readable_errors() -> None:
    model = small("+ RoPE")
    with pytest.raises(ValueError, match="exceeds context_length=16"):
        model(torch.zeros(1, 17, dtype=torch.long))
    with pytest.raises(TypeError, match="cache must be a GPTCache"):
        model(torch.zeros(1, 3, dtype=torch.long), cache=[])
    with pytest.raises(ValueError, match="vocab_size=40"):
        model(torch.full((1, 3), 40))
    with pytest.raises(TypeError, match="int64 or int32"):  # an embedding takes no other integers
        model(torch.ones(1, 3, dtype=torch.uint8))
    from llmdocs.interop.hf_llama import to_hf

    with pytest.raises(TypeError, match="model must be a llmdocs Llama, got LadderDecoder"):
        to_hf(small("all three"))
    with pytest.raises(TypeError, match="tie_embeddings must be True or False"):
        LlamaConfig.tiny(tie_embeddings="no")
