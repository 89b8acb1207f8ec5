"""Equivalence with Hugging Face's GPT2LMHeadModel after copying weights (eval mode).

minGPT's test, for several small random configs: same logits both ways (in float64, where the tolerance of
llmdocs.testing is ~1e-13), same greedy, sampled and beam-search generations as ``GPT2LMHeadModel.generate``
(float32, as they run), lossless round trips, and checkpoints read from disk offline.
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # before transformers is imported: never touch the network

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file

pytest.importorskip("transformers")
from transformers import GPT2Config, GPT2LMHeadModel
from weights import perturb

from llmdocs.generation.decoder_only import generate, left_pad
from llmdocs.generation.decoder_only_beam import beam_search
from llmdocs.interop import hf
from llmdocs.models.gpt import GPT, GPTConfig
from llmdocs.profiling import count_parameters
from llmdocs.testing import assert_close, assert_equivalent

pytestmark = pytest.mark.numerics  # every test compares numbers with Hugging Face's

CONFIGS = {
    "3 layers, 6 heads": GPTConfig.tiny(97, n_layers=3, d_model=48, n_heads=6, context_length=40),
    "1 layer, 2 heads, d_ff=80": GPTConfig.tiny(50, n_layers=1, d_model=32, n_heads=2, d_ff=80, context_length=24),
    "untied head": GPTConfig.tiny(128, n_layers=2, d_model=64, n_heads=8, context_length=64, tie_embeddings=False),
    "1 head, eps 1e-6": GPTConfig.tiny(31, n_layers=4, d_model=16, n_heads=1, layer_norm_eps=1e-6),
    "exact GELU (nanoGPT)": GPTConfig.tiny(65, n_layers=2, d_model=32, n_heads=4, activation="gelu"),
    "ReLU": GPTConfig.tiny(40, n_layers=1, d_model=24, n_heads=3, activation="relu"),
}


@pytest.fixture(autouse=True)
def _seed_and_no_grad() -> Iterator[None]:
    torch.manual_seed(0)
    with torch.no_grad():
        yield


def pair(config: GPTConfig) -> tuple[GPT, GPT2LMHeadModel]:
    ours = perturb(GPT(config))
    return ours, hf.to_hf(ours).eval()


# ---- mapping ----------------------------------------------------------------------------------------------------


def test_state_dict_names_match_gpt2_and_round_trip() -> None:
    ours = perturb(GPT(CONFIGS["untied head"]))
    there = hf.state_dict_to_hf(ours.state_dict())
    theirs = GPT2LMHeadModel(hf.config_to_hf(ours.config)).state_dict()
    assert set(there) == set(theirs)
    assert all(there[k].shape == theirs[k].shape for k in there)
    back = hf.state_dict_from_hf(there, tie_embeddings=False)
    assert set(back) == set(ours.state_dict())
    assert all(torch.equal(back[k], v) for k, v in ours.state_dict().items())


def test_c_attn_packs_q_k_v_transposed() -> None:
    ours = perturb(GPT(GPTConfig.tiny(20, n_layers=1)))
    attn = ours.blocks[0].self_attn
    c_attn = hf.state_dict_to_hf(ours.state_dict())["transformer.h.0.attn.c_attn.weight"]  # (D, 3D)
    assert torch.equal(c_attn[:, :32], attn.q_proj.weight.t())
    assert torch.equal(c_attn[:, 32:64], attn.k_proj.weight.t())
    assert torch.equal(c_attn[:, 64:], attn.v_proj.weight.t())


def test_config_round_trip() -> None:
    for config in CONFIGS.values():
        assert hf.config_from_hf(hf.config_to_hf(config)) == config
    assert hf.config_from_hf(GPT2Config()) == GPTConfig.gpt2_small()


def test_gpt2_small_parameter_count_matches_hf() -> None:
    with torch.device("meta"):  # shapes only: no 124M-parameter initialisation
        ours = GPT(GPTConfig.gpt2_small())
        theirs = GPT2LMHeadModel(GPT2Config())
    assert count_parameters(ours) == count_parameters(theirs) == 124_439_808


# ---- equivalence ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CONFIGS))
def test_logits_equal_both_directions(name: str) -> None:
    config = CONFIGS[name]
    ours, theirs = (model.double() for model in pair(config))  # an equivalence proof runs in float64
    ids = torch.randint(0, config.vocab_size, (3, config.context_length))
    assert_equivalent(ours(ids), theirs(ids).logits, depth=config.n_layers)
    theirs = perturb(theirs)  # new HF weights, copied the other way
    back = hf.from_hf(theirs)
    assert not back.training and back.lm_head.weight.dtype == torch.float64
    assert_equivalent(back(ids), theirs(ids).logits, depth=config.n_layers)


def test_float64_catches_a_bug_that_float32_hides() -> None:
    """A single weight off by 1e-6 (a mapping slip, a wrong epsilon) passes a float32 comparison, not float64."""
    config = CONFIGS["3 layers, 6 heads"]
    ours, theirs = pair(config)
    theirs.transformer.h[1].mlp.c_fc.weight[5, 7] += 1e-6
    ids = torch.randint(0, config.vocab_size, (3, config.context_length))
    assert_close(ours(ids), theirs(ids).logits, depth=config.n_layers)  # float32: hidden in the rounding
    ours, theirs = ours.double(), theirs.double()
    with pytest.raises(AssertionError, match="Tensor-likes are not close"):
        assert_equivalent(ours(ids), theirs(ids).logits, depth=config.n_layers)
    theirs.transformer.h[1].mlp.c_fc.weight[5, 7] = ours.blocks[1].ff.fc1.weight[7, 5]  # fixed (Conv1D: W^T)
    assert_equivalent(ours(ids), theirs(ids).logits, depth=config.n_layers)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_greedy_generation_equals_hf_generate(name: str) -> None:
    config = CONFIGS[name]
    ours, theirs = pair(config)
    ids = torch.randint(0, config.vocab_size, (3, 5))
    n = config.context_length - 5
    expected = theirs.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, do_sample=False)
    assert generate(ours, ids, n, do_sample=False) == expected[:, 5:].tolist()
    assert len(set(expected[:, 5:].flatten().tolist())) > 3  # not a degenerate repetition


def test_left_padded_greedy_batch_equals_hf_generate() -> None:
    config = CONFIGS["3 layers, 6 heads"]
    ours, theirs = pair(config)
    prompts = [[5, 6, 7, 8, 9], [10, 11], [12, 13, 14]]
    ids, mask = left_pad(prompts)
    expected = theirs.generate(ids, attention_mask=mask.long(), max_new_tokens=12, do_sample=False, pad_token_id=0)
    assert generate(ours, prompts, 12) == expected[:, 5:].tolist()


def test_sampling_equals_hf_generate_with_same_seed() -> None:
    config = CONFIGS["3 layers, 6 heads"]
    ours, theirs = pair(config)
    ids = torch.randint(0, config.vocab_size, (2, 6))
    settings: dict[str, Any] = dict(temperature=0.7, top_k=20, top_p=0.9, repetition_penalty=1.2)
    torch.manual_seed(123)  # HF samples from the global generator; ours from its own, seeded alike
    expected = theirs.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=12, do_sample=True, **settings)
    assert generate(ours, ids, 12, seed=123, **settings) == expected[:, 6:].tolist()


def test_greedy_with_repetition_penalty_equals_hf() -> None:
    config = CONFIGS["1 layer, 2 heads, d_ff=80"]
    ours, theirs = pair(config)
    ids = torch.randint(0, config.vocab_size, (2, 4))
    expected = theirs.generate(
        ids, attention_mask=torch.ones_like(ids), max_new_tokens=16, do_sample=False, repetition_penalty=1.5
    )
    assert generate(ours, ids, 16, repetition_penalty=1.5) == expected[:, 4:].tolist()


def test_beam_search_equals_hf_beam_search() -> None:
    config = CONFIGS["3 layers, 6 heads"]
    ours, theirs = pair(config)
    ids = torch.randint(0, config.vocab_size, (2, 6))
    expected = theirs.generate(
        ids, attention_mask=torch.ones_like(ids), max_new_tokens=10, do_sample=False, num_beams=4
    )  # no EOS: every beam runs to the end, the best sum of log-probabilities wins
    assert beam_search(ours, ids, 10, beam_size=4) == expected[:, 6:].tolist()


def test_round_trips_are_lossless() -> None:
    config = CONFIGS["untied head"]
    theirs = perturb(GPT2LMHeadModel(hf.config_to_hf(config)))
    again = hf.to_hf(hf.from_hf(theirs))
    for (k1, v1), (k2, v2) in zip(theirs.state_dict().items(), again.state_dict().items(), strict=True):
        assert k1 == k2 and torch.equal(v1, v2), k1
    ours = perturb(GPT(config))
    for k, v in hf.from_hf(hf.to_hf(ours)).state_dict().items():
        assert torch.equal(v, ours.state_dict()[k]), k


def test_unsupported_configs_raise() -> None:
    with pytest.raises(ValueError, match="only bias=True configs convert"):
        hf.to_hf(GPT(GPTConfig.tiny(bias=False)))
    with pytest.raises(ValueError, match="activation_function='silu'"):
        hf.config_from_hf(GPT2Config(activation_function="silu"))
    with pytest.raises(ValueError, match="attention scaling"):
        hf.config_from_hf(GPT2Config(scale_attn_by_inverse_layer_idx=True))
    with pytest.raises(ValueError, match="not a GPT-2 config"):
        hf.config_from_hf({"model_type": "llama"})


# ---- checkpoints on disk ----------------------------------------------------------------------------------------


def saved_hf_model(tmp_path: Path) -> tuple[GPT2LMHeadModel, Path]:
    theirs = perturb(GPT2LMHeadModel(hf.config_to_hf(CONFIGS["3 layers, 6 heads"])))
    theirs.save_pretrained(tmp_path / "saved")
    return theirs, tmp_path / "saved"


def assert_same_logits(ours: GPT, theirs: GPT2LMHeadModel) -> None:
    ids = torch.randint(0, ours.config.vocab_size, (2, 9))
    ours, theirs = ours.double(), theirs.double()  # the weights were read in float32: widened exactly
    assert_equivalent(ours(ids), theirs(ids).logits, depth=ours.config.n_layers)


def test_load_save_pretrained_folder(tmp_path: Path) -> None:
    theirs, folder = saved_hf_model(tmp_path)
    assert "lm_head.weight" not in load_file(str(folder / "model.safetensors"))  # tied: stored once
    ours = hf.load_gpt2_checkpoint(folder)
    assert not ours.training and ours.lm_head.weight is ours.tok_embed.weight
    assert_same_logits(ours, theirs)


def test_load_from_hub_cache_layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    theirs, folder = saved_hf_model(tmp_path)
    repo = tmp_path / "hub" / "models--someone--tiny-gpt2"
    snapshot = repo / "snapshots" / "0123abcd"
    shutil.copytree(folder, snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd", encoding="utf-8")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    for where in (repo, snapshot, "someone/tiny-gpt2"):
        assert_same_logits(hf.load_gpt2_checkpoint(where), theirs)


def test_load_bare_gpt2model_names_and_old_buffers(tmp_path: Path) -> None:
    theirs, folder = saved_hf_model(tmp_path)
    state = load_file(str(folder / "model.safetensors"))
    old = {k.removeprefix("transformer."): v for k, v in state.items()}  # the original "gpt2" file layout
    old["h.0.attn.bias"] = torch.ones(1, 1, 40, 40).tril()  # causal-mask buffers of early checkpoints
    old["h.0.attn.masked_bias"] = torch.tensor(-1e4)
    save_file(old, str(folder / "model.safetensors"))
    assert_same_logits(hf.load_gpt2_checkpoint(folder), theirs)


def test_missing_checkpoints_raise_file_not_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    with pytest.raises(FileNotFoundError, match="never downloads"):
        hf.load_gpt2_checkpoint(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="never downloads"):
        hf.load_gpt2_checkpoint("openai-community/gpt2")  # not in this (empty) cache: no download attempted
    pickle_only = tmp_path / "bin"
    pickle_only.mkdir()
    (pickle_only / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_layer": 1}), encoding="utf-8")
    (pickle_only / "pytorch_model.bin").write_bytes(b"not read")
    with pytest.raises(FileNotFoundError, match=r"no model\.safetensors"):
        hf.load_gpt2_checkpoint(pickle_only)
