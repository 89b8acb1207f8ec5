"""Tests for LlamaConfig, Llama and its Hugging Face mapping (interop.hf_llama).

- The config: presets (SmolLM2-135M's numbers, LLaMA-7B's), validation, parameter counts equal to Hugging Face's.
- The model: shapes and backward, tied and untied heads, causality, the KV cache (incremental == full pass, only the
  KV heads stored), left padding, explicit positions, attention weights, readable errors.
- Equivalence with ``LlamaForCausalLM`` (minGPT's test), in float64 on the tolerance policy, both directions, on
  grouped-query, multi-query and multi-head configs, tied and untied, RoPE with linear scaling: logits, a left-padded
  batch, greedy, sampled and beam-search generations.
- The package's generation (greedy, sampling, streaming, beam search, cropping, the cache benchmark) on it unchanged.
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # before transformers is imported: never touch the network

import dataclasses
import math
from collections.abc import Iterator
from typing import Any

import pytest
import torch
from torch import Tensor, nn

pytest.importorskip("transformers")
from transformers import LlamaConfig as HFLlamaConfig
from transformers import LlamaForCausalLM
from weights import perturb

from llmdocs.generation.benchmark import kv_cache_speedup
from llmdocs.generation.decoder_only import generate, left_pad, stream_generate
from llmdocs.generation.decoder_only_beam import beam_search
from llmdocs.interop import hf_llama
from llmdocs.models.gpt import GPT, GPTConfig
from llmdocs.models.llama import Llama, LlamaCache, LlamaConfig
from llmdocs.profiling import count_parameters
from llmdocs.testing import assert_close, assert_equivalent

V = 37

# Grouped-query, multi-query and multi-head attention; tied and untied heads; SmolLM2's 9/3 heads; linear RoPE scaling.
CONFIGS = {
    "gqa 4/2, tied": LlamaConfig.tiny(97, n_layers=3, d_model=48, n_heads=4, n_kv_heads=2, d_ff=80, rope_theta=500.0),
    "mqa 6/1, untied": LlamaConfig.tiny(61, d_model=48, n_heads=6, n_kv_heads=1, tie_embeddings=False),
    "mha 4/4, untied, eps 1e-5": LlamaConfig.tiny(50, n_kv_heads=4, tie_embeddings=False, rms_norm_eps=1e-5),
    "gqa 9/3, tied, theta 1e5": LlamaConfig.tiny(40, d_model=72, n_heads=9, n_kv_heads=3, d_ff=64, rope_theta=1e5),
    "mqa 2/1, linear RoPE x4": LlamaConfig.tiny(
        45, n_layers=1, n_heads=2, n_kv_heads=1, rope_scaling="linear", rope_scaling_factor=4.0
    ),
}


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def tiny_model(**overrides: Any) -> Llama:
    return perturb(Llama(LlamaConfig.tiny(V, **overrides)))


def pair(config: LlamaConfig) -> tuple[Llama, LlamaForCausalLM]:
    """Our model with random weights and Hugging Face's copy, both in float64 (where equivalence is proven)."""
    ours = perturb(Llama(config)).double()
    return ours, hf_llama.to_hf(ours).eval()


def padded_prompts(vocab_size: int) -> list[list[int]]:
    return [torch.randint(0, vocab_size, (n,)).tolist() for n in (7, 3, 5)]


# ---- config -----------------------------------------------------------------------------------------------------


def test_config_defaults_and_presets() -> None:
    smol = LlamaConfig.smollm2_135m()
    assert (smol.n_layers, smol.d_model, smol.d_ff, smol.n_heads, smol.n_kv_heads) == (30, 576, 1536, 9, 3)
    assert (smol.vocab_size, smol.context_length, smol.rope_theta, smol.rms_norm_eps) == (49152, 8192, 1e5, 1e-5)
    assert smol.tie_embeddings and smol.d_head == 64 and smol.n_groups == 3 and smol.rope_scaling is None
    seven = LlamaConfig.llama_7b()
    assert (seven.vocab_size, seven.d_model, seven.n_heads, seven.n_layers) == (32000, 4096, 32, 32)
    assert seven.n_kv_heads == 32  # LLaMA 1 has no grouped-query attention
    assert seven.d_ff == 11008 and not seven.tie_embeddings  # swiglu_hidden_dim(4096): 2/3 * 4D rounded up to 256
    assert LlamaConfig.tiny(n_kv_heads=None).n_kv_heads == 4  # None -> multi-head attention
    assert LlamaConfig(vocab_size=10, d_model=48, n_heads=4).d_ff == 256  # int(2 * 192 / 3) = 128 -> 256
    with pytest.raises(dataclasses.FrozenInstanceError):
        smol.d_model = 10  # type: ignore[misc]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(d_model=10, n_heads=3), "d_model=10 is not divisible by n_heads=3"),
        (dict(n_heads=4, n_kv_heads=3), "n_heads=4 is not divisible by n_kv_heads=3"),
        (dict(d_model=12, n_heads=4), "d_head = d_model / n_heads = 3 is odd"),
        (dict(vocab_size=0), "vocab_size must be an integer >= 1"),
        (dict(n_layers=0), "n_layers must be an integer >= 1"),
        (dict(n_kv_heads=0), "n_kv_heads must be an integer >= 1"),
        (dict(d_ff=2.5), "d_ff must be an integer >= 1"),
        (dict(context_length=True), "context_length must be an integer >= 1"),
        (dict(rope_theta=0.0), "rope_theta must be a finite number > 0"),
        (dict(rope_scaling="yarn"), r"rope_scaling must be None or one of \('linear', 'ntk'\)"),
        (dict(rope_scaling_factor=-1.0), "rope_scaling_factor must be a finite number > 0"),
        (dict(rms_norm_eps=0.0), "rms_norm_eps must be a finite number > 0"),
        (dict(dropout=1.0), r"dropout must be in \[0, 1\)"),
    ],
)
def test_config_validation(overrides: dict[str, Any], message: str) -> None:
    fields: dict[str, Any] = dict(vocab_size=10, d_model=16, n_heads=2)
    with pytest.raises(ValueError, match=message):
        LlamaConfig(**{**fields, **overrides})


def test_parameter_counts_equal_hugging_faces() -> None:
    with torch.device("meta"):  # shapes only: no initialisation of millions (or billions) of parameters
        counts = {
            name: (count_parameters(Llama(config)), count_parameters(LlamaForCausalLM(hf_llama.config_to_hf(config))))
            for name, config in [("smollm2", LlamaConfig.smollm2_135m()), ("7b", LlamaConfig.llama_7b())]
        }
    assert counts["smollm2"] == (134_515_008, 134_515_008)  # SmolLM2-135M: the tied head is counted once
    assert counts["7b"] == (6_738_415_616, 6_738_415_616)  # LLaMA-7B


# ---- model ------------------------------------------------------------------------------------------------------


def test_forward_shape_and_backward_reaches_every_parameter() -> None:
    model = Llama(LlamaConfig.tiny(V, tie_embeddings=False, dropout=0.1)).train()
    ids = torch.randint(0, V, (3, 11))
    logits = model(ids)
    assert logits.shape == (3, 11, V)
    loss = nn.functional.cross_entropy(logits[:, :-1].reshape(-1, V), ids[:, 1:].reshape(-1))
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_no_biases_and_the_parts_of_a_block() -> None:
    model = Llama(LlamaConfig.tiny(V))
    assert not [name for name, _ in model.named_parameters() if name.endswith("bias")]
    block = model.blocks[0]
    assert block.self_attn.k_proj.weight.shape == (2 * 8, 32)  # 2 KV heads of width 8
    assert block.ff.gate_proj.weight.shape == (96, 32) and block.ff.down_proj.weight.shape == (32, 96)
    assert block.norm1.compute_dtype == torch.float32  # Llama normalizes in float32, as Meta's and HF's code


def test_output_head_is_tied_to_token_embedding_unless_disabled() -> None:
    tied = Llama(LlamaConfig.tiny(V))
    assert tied.lm_head.weight is tied.tok_embed.weight
    untied = Llama(LlamaConfig.tiny(V, tie_embeddings=False))
    assert untied.lm_head.weight is not untied.tok_embed.weight
    assert count_parameters(untied) - count_parameters(tied) == V * 32


def test_initialisation() -> None:
    config = LlamaConfig.tiny(V, d_model=256, n_heads=4, n_layers=4, d_ff=512)
    residual_std = 0.02 / math.sqrt(2 * config.n_layers)
    for name, p in Llama(config).named_parameters():
        if "norm" in name:
            assert torch.equal(p, torch.ones_like(p)), name
        elif name.endswith(("self_attn.out_proj.weight", "ff.down_proj.weight")):
            assert p.std().item() == pytest.approx(residual_std, rel=0.05), name
        else:
            assert p.std().item() == pytest.approx(0.02, rel=0.05), name


@pytest.mark.numerics
def test_causal_earlier_logits_ignore_later_tokens() -> None:
    model = tiny_model()
    ids = torch.randint(0, V, (2, 10))
    changed = ids.clone()
    changed[:, 6:] = (changed[:, 6:] + 1) % V
    before, after = model(ids), model(changed)
    assert_close(before[:, :6], after[:, :6], depth=model.config.n_layers)
    assert not torch.allclose(before[:, 6:], after[:, 6:])


@pytest.mark.numerics
def test_logits_to_keep_gives_the_last_positions() -> None:
    model = tiny_model()
    ids = torch.randint(0, V, (2, 9))
    assert_close(model(ids, logits_to_keep=3), model(ids)[:, -3:], depth=model.config.n_layers)


# ---- key/value cache, padding, positions --------------------------------------------------------------------------


@pytest.mark.numerics
@pytest.mark.parametrize("n_kv_heads", [1, 2, 4])
def test_cache_steps_equal_full_forward(n_kv_heads: int) -> None:
    model = tiny_model(n_kv_heads=n_kv_heads)
    ids = torch.randint(0, V, (2, 12))
    full = model(ids)
    cache = model.new_cache()
    chunks = [model(ids[:, :5], cache=cache), model(ids[:, 5:8], cache=cache)]  # a prompt, then a chunk of 3
    chunks += [model(ids[:, t : t + 1], cache=cache) for t in range(8, 12)]  # then one token at a time
    assert isinstance(cache, LlamaCache) and len(cache) == 12
    assert cache.layers[0].k is not None and cache.layers[0].k.shape == (2, n_kv_heads, 12, 8)  # only the KV heads
    assert_close(torch.cat(chunks, dim=1), full, depth=model.config.n_layers)  # float32, as generation runs


@pytest.mark.numerics
def test_cache_reorder_selects_rows() -> None:
    model = tiny_model()
    ids = torch.randint(0, V, (3, 6))
    cache = model.new_cache()
    model(ids[:, :5], cache=cache)
    cache.reorder(torch.tensor([2, 0]))
    assert_close(model(ids[[2, 0], 5:], cache=cache), model(ids[[2, 0]])[:, 5:], depth=model.config.n_layers)


@pytest.mark.numerics
def test_left_padded_batch_equals_each_prompt_alone() -> None:
    model = tiny_model()
    prompts = padded_prompts(V)
    ids, mask = left_pad(prompts)  # (3, 7) each
    batched = model(ids, attention_mask=mask)
    assert torch.isfinite(batched).all()  # padding queries see no key: zeros, not NaN
    for row, p in enumerate(prompts):
        assert_close(batched[row, 7 - len(p) :], model(torch.tensor([p]))[0], depth=model.config.n_layers)
    cache = model.new_cache()  # ... and incrementally: the mask grows by one column per new token
    model(ids, cache=cache, attention_mask=mask)
    nxt = torch.randint(0, V, (3, 1))
    step = model(nxt, cache=cache, attention_mask=torch.cat([mask, torch.ones(3, 1, dtype=torch.bool)], 1))
    for row, p in enumerate(prompts):
        alone = model(torch.cat([torch.tensor(p), nxt[row]])[None])[0, -1]
        assert_close(step[row, 0], alone, depth=model.config.n_layers)


@pytest.mark.numerics
def test_explicit_position_ids_equal_the_default_ones() -> None:
    model = tiny_model()
    ids = torch.randint(0, V, (2, 4))
    default = model(ids)
    assert torch.equal(model(ids, position_ids=torch.arange(4)[None]), default)  # (1, T): the same kernels
    assert_close(model(ids, position_ids=torch.arange(4).expand(2, 4)), default, depth=model.config.n_layers)
    shifted = model(ids, position_ids=torch.arange(3, 7)[None])  # RoPE: only relative positions count ...
    assert_close(shifted, default, depth=model.config.n_layers)  # ... so a shift of every position changes nothing


@pytest.mark.numerics
def test_need_weights_keeps_causal_weights_and_the_same_logits() -> None:
    model = tiny_model()
    ids = torch.randint(0, V, (2, 9))
    assert_close(model(ids, need_weights=True), model(ids), depth=model.config.n_layers)
    model(ids, need_weights=True)
    for block in model.blocks:
        weights = block.last_self_weights
        assert weights is not None and weights.shape == (2, 4, 9, 9)
        assert_close(weights.sum(dim=-1), torch.ones(2, 4, 9))
        assert torch.all(weights.triu(diagonal=1) == 0)
    model(ids)
    assert all(block.last_self_weights is None for block in model.blocks)


# ---- errors -----------------------------------------------------------------------------------------------------


def test_bad_inputs_raise_readable_errors() -> None:
    model = Llama(LlamaConfig.tiny(V, context_length=8))
    with pytest.raises(ValueError, match=f"contains id {V} but vocab_size={V}"):
        model(torch.tensor([[1, V]]))
    with pytest.raises(TypeError, match="integer tensor"):
        model(torch.tensor([[1.0, 2.0]]))
    with pytest.raises(ValueError, match=r"shape \(B, T\)"):
        model(torch.tensor([1, 2]))
    with pytest.raises(ValueError, match=r"sequence length 9 .* exceeds context_length=8"):
        model(torch.zeros(1, 9, dtype=torch.long))
    cache = model.new_cache()
    model(torch.zeros(1, 8, dtype=torch.long), cache=cache)
    with pytest.raises(ValueError, match=r"cached 8 \+ new 1\) exceeds context_length=8"):
        model(torch.zeros(1, 1, dtype=torch.long), cache=cache)
    ids = torch.zeros(2, 3, dtype=torch.long)
    with pytest.raises(ValueError, match=r"attention_mask must be \(B, T_past \+ T\)=\(2, 3\)"):
        model(ids, attention_mask=torch.ones(2, 4, dtype=torch.long))
    with pytest.raises(TypeError, match="attention_mask must be a bool or integer 0/1 tensor"):
        model(ids, attention_mask=torch.ones(2, 3))  # an additive float mask would be inverted by .bool()
    with pytest.raises(ValueError, match=r"position_ids must be in \[0, context_length=8\)"):
        model(ids, position_ids=torch.tensor([[6, 7, 8]]))
    with pytest.raises(ValueError, match=r"position_ids must be \(B, T\)=\(2, 3\) or \(1, T\)"):
        model(ids, position_ids=torch.arange(3))
    with pytest.raises(ValueError, match=r"logits_to_keep must be None or an integer in 1..T=3, got 4"):
        model(ids, logits_to_keep=4)
    with pytest.raises(TypeError, match=r"cache must be a LlamaCache from model.new_cache\(\), got GPTCache"):
        model(ids, cache=GPT(GPTConfig.tiny(V)).new_cache())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("filled_with", "step_batch", "message"),
    [
        (dict(n_layers=1), 2, r"cache has 1 layers but n_layers=2: use model.new_cache\(\)"),
        (dict(n_kv_heads=4), 2, r"cache holds keys of n_heads=4, d_head=8, but this layer has n_heads=2, d_head=8"),
        ({}, 1, r"cache was filled with batch size 2, but this step has batch size 1"),
    ],
)
def test_a_cache_of_another_model_or_batch_size_raises(
    filled_with: dict[str, Any], step_batch: int, message: str
) -> None:
    model, other = tiny_model(), tiny_model(**filled_with)
    cache = other.new_cache()
    other(torch.randint(0, V, (2, 4)), cache=cache)
    with pytest.raises(ValueError, match=message):
        model(torch.randint(0, V, (step_batch, 1)), cache=cache)
    assert len(cache) == 4  # rejected before any layer stored a key


# ---- the Hugging Face mapping ------------------------------------------------------------------------------------


@pytest.mark.parametrize("tie", [True, False])
def test_state_dict_names_match_hugging_face_and_round_trip(tie: bool) -> None:
    ours = perturb(Llama(LlamaConfig.tiny(V, tie_embeddings=tie)))
    there = hf_llama.state_dict_to_hf(ours.state_dict())
    theirs = LlamaForCausalLM(hf_llama.config_to_hf(ours.config)).state_dict()
    assert set(there) == set(theirs) and all(there[k].shape == theirs[k].shape for k in there)
    stored_once = {k: v for k, v in there.items() if not (tie and k == "lm_head.weight")}  # save_pretrained, GGUF
    back = hf_llama.state_dict_from_hf(stored_once, tie_embeddings=tie)
    assert set(back) == set(ours.state_dict())
    assert all(torch.equal(back[k], v) for k, v in ours.state_dict().items())
    if tie:
        assert back["lm_head.weight"] is back["tok_embed.weight"]
    else:
        with pytest.raises(KeyError, match=r"an untied Llama state dict needs 'lm_head\.weight'"):
            hf_llama.state_dict_from_hf({k: v for k, v in there.items() if k != "lm_head.weight"}, False)
    with pytest.raises(KeyError, match=r"'model\.layers\.0\.mlp\.fc1\.weight' is not a Llama parameter"):
        hf_llama.state_dict_from_hf({"model.layers.0.mlp.fc1.weight": torch.zeros(1)}, tie_embeddings=True)


def test_config_round_trip_and_old_config_files() -> None:
    for config in [*CONFIGS.values(), LlamaConfig.smollm2_135m(), LlamaConfig.llama_7b()]:
        assert hf_llama.config_from_hf(hf_llama.config_to_hf(config)) == config
    assert hf_llama.config_from_hf(HFLlamaConfig()) == LlamaConfig.llama_7b()  # transformers' defaults
    legacy = {"model_type": "llama", "rope_theta": 5e5, "rope_scaling": {"type": "linear", "factor": 2.0}}
    config = hf_llama.config_from_hf(legacy)  # a config.json of transformers < 5
    assert (config.rope_theta, config.rope_scaling, config.rope_scaling_factor) == (5e5, "linear", 2.0)


@pytest.mark.parametrize(
    ("hf_fields", "message"),
    [
        (dict(model_type="gpt2"), "not a Llama config: model_type='gpt2'"),
        (dict(attention_bias=True), "our Llama has no biases"),
        (dict(hidden_act="gelu"), "hidden_act='gelu' is not supported"),
        (dict(head_dim=64), r"head_dim=64 != hidden_size / num_attention_heads = 128"),
        (dict(rope_parameters={"rope_type": "yarn", "factor": 4.0}), "rope_type='yarn' is not supported"),
    ],
)
def test_unsupported_hugging_face_configs_raise(hf_fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        hf_llama.config_from_hf({"model_type": "llama", **hf_fields})


def test_ntk_scaling_has_no_hugging_face_equivalent() -> None:
    with pytest.raises(ValueError, match="rope_scaling='ntk' has no Hugging Face equivalent"):
        hf_llama.to_hf(Llama(LlamaConfig.tiny(rope_scaling="ntk", rope_scaling_factor=2.0)))


# ---- equivalence with LlamaForCausalLM (float64) ------------------------------------------------------------------


@pytest.fixture
def _no_grad() -> Iterator[None]:
    with torch.no_grad():
        yield


@pytest.mark.numerics
@pytest.mark.usefixtures("_no_grad")
@pytest.mark.parametrize("name", list(CONFIGS))
def test_logits_equal_both_directions(name: str) -> None:
    config = CONFIGS[name]
    ours, theirs = pair(config)
    ids = torch.randint(0, config.vocab_size, (3, config.context_length))
    assert_equivalent(ours(ids), theirs(ids).logits, depth=config.n_layers)
    theirs = perturb(theirs)  # new Hugging Face weights, copied the other way
    back = hf_llama.from_hf(theirs)
    assert not back.training and back.lm_head.weight.dtype == torch.float64
    assert (back.lm_head.weight is back.tok_embed.weight) == config.tie_embeddings
    assert_equivalent(back(ids), theirs(ids).logits, depth=config.n_layers)


@pytest.mark.numerics
@pytest.mark.usefixtures("_no_grad")
def test_float64_catches_a_bug_that_float32_hides() -> None:
    """A single weight off by 1e-6 (a mapping slip) passes a float32 comparison, not a float64 one."""
    config = CONFIGS["gqa 4/2, tied"]
    ours = perturb(Llama(config))
    theirs = hf_llama.to_hf(ours)
    theirs.model.layers[1].mlp.up_proj.weight[5, 7] += 1e-6
    ids = torch.randint(0, config.vocab_size, (3, config.context_length))
    assert_close(ours(ids), theirs(ids).logits, depth=config.n_layers)  # float32: hidden in the rounding
    ours, theirs = ours.double(), theirs.double()
    with pytest.raises(AssertionError, match="Tensor-likes are not close"):
        assert_equivalent(ours(ids), theirs(ids).logits, depth=config.n_layers)


@pytest.mark.numerics
@pytest.mark.usefixtures("_no_grad")
@pytest.mark.parametrize("name", ["gqa 4/2, tied", "mqa 6/1, untied", "gqa 9/3, tied, theta 1e5"])
def test_padded_batch_logits_equal_hugging_faces(name: str) -> None:
    config = CONFIGS[name]
    ours, theirs = pair(config)
    ids, mask = left_pad(padded_prompts(config.vocab_size))
    position_ids = (mask.long().cumsum(-1) - 1).clamp(min=0)  # real tokens before each one, as HF's generate
    expected = theirs(ids, attention_mask=mask.long(), position_ids=position_ids).logits
    actual = ours(ids, attention_mask=mask)  # positions derived from the mask
    assert_equivalent(actual[mask], expected[mask], depth=config.n_layers)  # the real tokens


@pytest.mark.numerics
@pytest.mark.usefixtures("_no_grad")
def test_hidden_states_equal_hugging_faces_last_hidden_state() -> None:
    config = CONFIGS["gqa 4/2, tied"]
    ours, theirs = pair(config)
    ids, mask = left_pad(padded_prompts(config.vocab_size))
    position_ids = (mask.long().cumsum(-1) - 1).clamp(min=0)
    expected = theirs.model(ids, attention_mask=mask.long(), position_ids=position_ids).last_hidden_state
    actual = ours.hidden_states(ids, attention_mask=mask)  # (B, T, D), after the final norm as in HF
    assert actual.shape == (3, 7, config.d_model)
    assert_equivalent(actual[mask], expected[mask], depth=config.n_layers)
    assert torch.equal(ours.lm_head(actual), ours(ids, attention_mask=mask))  # forward = the LM head on them
    with pytest.raises(TypeError, match="cache must be a LlamaCache"):
        ours.hidden_states(ids, cache=object())  # type: ignore[arg-type]


def test_gradient_checkpointing_gives_the_same_gradients_and_recomputes_each_block() -> None:
    model = perturb(Llama(LlamaConfig.tiny(V, n_layers=3, dropout=0.1))).double().train()
    ids = torch.randint(0, V, (2, 9))
    calls = [0]
    for block in model.blocks:
        block.register_forward_pre_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))  # a recompute may stop early

    def gradients() -> tuple[Tensor, list[Tensor]]:
        model.zero_grad()
        torch.manual_seed(1)  # the same dropout masks in both runs
        loss = model(ids).logsumexp(-1).mean()
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in model.parameters()]

    loss, grads = gradients()
    assert calls[0] == 3  # one forward per block
    model.gradient_checkpointing_enable()
    calls[0] = 0
    loss_ckpt, grads_ckpt = gradients()
    assert calls[0] == 6  # each block ran again in the backward pass, with the dropout it drew the first time
    assert torch.equal(loss_ckpt, loss)
    for got, expected in zip(grads_ckpt, grads, strict=True):
        assert_equivalent(got, expected, depth=3)
    calls[0] = 0
    with torch.no_grad():
        model(ids)  # nothing to recompute without gradients
    model.eval()
    model(ids).sum().backward()  # nor in eval mode
    assert calls[0] == 2 * 3
    model.gradient_checkpointing_disable()
    assert not model.gradient_checkpointing


@pytest.mark.numerics
@pytest.mark.usefixtures("_no_grad")
@pytest.mark.parametrize("name", list(CONFIGS))
def test_greedy_generation_equals_hf_generate(name: str) -> None:
    config = CONFIGS[name]
    ours, theirs = pair(config)
    ids = torch.randint(0, config.vocab_size, (3, 5))
    n = config.context_length - 5
    expected = theirs.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, do_sample=False)
    assert generate(ours, ids, n, do_sample=False) == expected[:, 5:].tolist()
    assert len(set(expected[:, 5:].flatten().tolist())) > 3  # not a degenerate repetition


@pytest.mark.numerics
@pytest.mark.usefixtures("_no_grad")
def test_left_padded_greedy_batch_equals_hf_generate() -> None:
    config = CONFIGS["gqa 9/3, tied, theta 1e5"]
    ours, theirs = pair(config)
    prompts = padded_prompts(config.vocab_size)
    ids, mask = left_pad(prompts)
    expected = theirs.generate(ids, attention_mask=mask.long(), max_new_tokens=12, do_sample=False, pad_token_id=0)
    assert generate(ours, prompts, 12) == expected[:, ids.size(1) :].tolist()


@pytest.mark.numerics
@pytest.mark.usefixtures("_no_grad")
def test_sampling_equals_hf_generate_with_same_seed() -> None:
    config = CONFIGS["mqa 6/1, untied"]
    ours, theirs = pair(config)
    ids = torch.randint(0, config.vocab_size, (2, 6))
    settings: dict[str, Any] = dict(temperature=0.7, top_k=20, top_p=0.9, repetition_penalty=1.2)
    torch.manual_seed(123)  # Hugging Face samples from the global generator; ours from its own, seeded alike
    expected = theirs.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=12, do_sample=True, **settings)
    assert generate(ours, ids, 12, seed=123, **settings) == expected[:, 6:].tolist()


@pytest.mark.numerics
@pytest.mark.usefixtures("_no_grad")
def test_beam_search_equals_hf_beam_search() -> None:
    config = CONFIGS["gqa 4/2, tied"]
    ours, theirs = pair(config)
    ids = torch.randint(0, config.vocab_size, (2, 6))
    expected = theirs.generate(
        ids, attention_mask=torch.ones_like(ids), max_new_tokens=10, do_sample=False, num_beams=4
    )  # no EOS: every beam runs to the end, the best sum of log-probabilities wins
    assert beam_search(ours, ids, 10, beam_size=4) == expected[:, 6:].tolist()


def test_round_trips_are_lossless() -> None:
    config = CONFIGS["mqa 6/1, untied"]
    theirs = perturb(LlamaForCausalLM(hf_llama.config_to_hf(config)))
    again = hf_llama.to_hf(hf_llama.from_hf(theirs))
    for (k1, v1), (k2, v2) in zip(theirs.state_dict().items(), again.state_dict().items(), strict=True):
        assert k1 == k2 and torch.equal(v1, v2), k1
    ours = perturb(Llama(config))
    for k, v in hf_llama.from_hf(hf_llama.to_hf(ours)).state_dict().items():
        assert torch.equal(v, ours.state_dict()[k]), k


# ---- the package's generation, unchanged ------------------------------------------------------------------------


def test_generation_utilities_run_on_llama() -> None:
    model = tiny_model(context_length=16)
    prompts = padded_prompts(V)
    greedy = generate(model, prompts, 6)
    assert [len(row) for row in greedy] == [6, 6, 6]
    assert greedy[1] == generate(model, prompts[1], 6)[0]  # left padding changes nothing
    sampled = generate(model, prompts[0], 8, temperature=0.8, top_p=0.9, seed=0)
    assert sampled == generate(model, prompts[0], 8, temperature=0.8, top_p=0.9, seed=0)
    assert list(stream_generate(model, prompts[0], 8, temperature=0.8, top_p=0.9, seed=0)) == sampled[0]
    assert beam_search(model, prompts, 6, beam_size=1) == greedy  # one beam is greedy decoding
    assert [len(row) for row in beam_search(model, prompts, 6, beam_size=3)] == [6, 6, 6]
    stop = greedy[0][2]
    assert generate(model, prompts[0], 6, stop_tokens=[stop])[0] == greedy[0][: greedy[0].index(stop)]
    result = kv_cache_speedup(model, prompt_length=4, max_new_tokens=8, repeats=1)
    assert result["speedup"] > 0


@pytest.mark.numerics
def test_generation_past_the_context_crops_the_same_with_and_without_cache() -> None:
    model = tiny_model(context_length=8)  # 5 + 10 tokens: the window slides 7 times, the cache is rebuilt
    prompt = torch.randint(0, V, (5,)).tolist()
    cached = generate(model, prompt, 10, use_cache=True)
    assert cached == generate(model, prompt, 10, use_cache=False)
    with pytest.raises(ValueError, match="exceeds context_length=8"):
        generate(model, prompt, 10, crop=False)


def test_serialization_imports_first_in_a_fresh_interpreter() -> None:
    """No circular import: serialization -> models -> smollm2 -> interop.gguf -> serialization broke once."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", "import llmdocs.serialization"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
