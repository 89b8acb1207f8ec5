"""Benchmark: the key/value cache's memory per token with multi-head, grouped-query and multi-query attention.

At SmolLM2-135M's shape (N = 30 layers, D 576, 9 query heads of width Dh 64) with H_kv = 9 (MHA), 3 (GQA: SmolLM2's
own) and 1 (MQA) key/value heads, a decoder keeps, for every token of the context,

    bytes per token = 2 (a key and a value) * N * H_kv * Dh * bytes per number

(float32: 4 bytes, bfloat16: 2). This script computes it, and MEASURES it on randomly initialised models of that
shape (``LlamaConfig.smollm2_135m(n_kv_heads=...)``; the vocabulary cut to ``--vocab`` = 1,024 rows, since it never
enters the cache and a small one keeps the three models quick to build) after a prefill of ``--tokens`` (256)
tokens (batch 1):

- the bytes of the cache's tensors (``cache.layers[i].k`` and ``.v``, (B, H_kv, T, Dh) each): equal to the formula,
  exactly;
- the bytes those tensors' storage holds after one more decoded token: our ``KVCache`` appends into buffers whose
  capacity doubles when full (a step copies only its own token; ``torch.cat`` would copy the whole past every
  step), so it may hold up to twice what it uses;
- the bytes of Hugging Face's cache (``DynamicCache``) after the same prefill in ``to_hf`` of the same model;
- the process's resident memory (RSS, from ``psutil``): its growth over the prefill, and what the process gives back
  when the cache is deleted (reference counting frees its tensors at once). Each reading follows glibc's
  ``malloc_trim(0)``, which hands freed pages back to the system. Without it RSS does not follow the cache: glibc
  keeps the prefill's freed temporaries (a few MB per layer) for reuse, and a cache smaller than them lands in that
  memory without the RSS moving at all (tried here: 0 bytes of growth for the GQA and MQA caches, and 3.5 MiB less
  than the cache given back for MHA in bfloat16). With the trim, RSS follows the formula up to the allocator's
  slack: what the deletion gives back within ~0.3 MiB, the growth within ~2.5 MiB (it also holds heap the prefill
  left behind). Where there is no ``malloc_trim`` (not glibc), the RSS fields are null.

Then what a context of ``--contexts`` tokens (2,048 and 8,192, SmolLM2's longest) costs in each, from the formula
the measurements confirm, beside the weights of SmolLM2-135M itself.

Usage:
    python examples/benchmarks/kv_cache.py --threads 1 --no-progress --json llmdocs/records/llama_kv_cache.json
    python examples/benchmarks/kv_cache.py --tokens 1024          # a longer prefill: RSS closer to the formula
    python examples/benchmarks/kv_cache.py --smoke                # a tiny shape with the same 9 heads: seconds
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import dataclasses
import importlib.metadata
import os
import shlex
import sys
import time
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the peer is built from our model: never the network

import psutil
import torch
from tqdm import tqdm

from llmdocs.interop.hf_llama import to_hf
from llmdocs.models.llama import Llama, LlamaCache, LlamaConfig
from llmdocs.profiling import count_parameters, machine_description
from llmdocs.records import write_record

ATTENTIONS = {"MHA": 9, "GQA": 3, "MQA": 1}  # name -> key/value heads, at SmolLM2's 9 query heads
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tokens", type=int, default=256, help="prefill length T (default: %(default)s)")
    p.add_argument(
        "--contexts", type=int, nargs="+", default=[2048, 8192], help="context lengths costed (default: 2048 8192)"
    )
    p.add_argument("--vocab", type=int, default=1024, help="vocabulary of the measured models (default: %(default)s)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights and the prompt (default: %(default)s)")
    p.add_argument("--json", default=None, help="write the record to this JSON file")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    p.add_argument("--smoke", action="store_true", help="2 layers, D 72 (9 heads of 8), 16 tokens: seconds (tests)")
    args = p.parse_args(argv)
    if args.smoke:
        args.tokens, args.contexts, args.vocab = 16, [32, 64], 64
    for name in ("tokens", "vocab"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    if min(args.contexts) < 1:
        p.error(f"--contexts must be >= 1, got {args.contexts}")
    if args.threads is not None and args.threads < 1:
        p.error(f"--threads must be >= 1, got {args.threads}")
    return args


def model_config(args: argparse.Namespace, n_kv_heads: int) -> LlamaConfig:
    """SmolLM2-135M's shape with ``n_kv_heads`` key/value heads (under --smoke a tiny one, still 9 query heads)."""
    if args.smoke:
        return LlamaConfig.tiny(
            vocab_size=args.vocab, context_length=64, d_model=72, n_heads=9, n_kv_heads=n_kv_heads, d_ff=96
        )
    return LlamaConfig.smollm2_135m(vocab_size=args.vocab, n_kv_heads=n_kv_heads)


# ---- the formula and the measurements -------------------------------------------------------------------------------


def kv_bytes_per_token(config: LlamaConfig, bytes_per_number: int) -> int:
    """2 * N * H_kv * Dh * bytes: a key and a value of every KV head in every layer, for one token."""
    assert config.n_kv_heads is not None
    return 2 * config.n_layers * config.n_kv_heads * config.d_head * bytes_per_number


def tensor_bytes(cache: LlamaCache) -> int:
    """Bytes of the cached keys and values themselves: the elements of every layer's k and v."""
    return sum(t.numel() * t.element_size() for layer in cache.layers for t in (layer.k, layer.v) if t is not None)


def storage_bytes(cache: LlamaCache) -> int:
    """Bytes of the memory blocks behind the cached tensors (a view into a larger buffer counts the whole buffer)."""
    storages = {}
    for layer in cache.layers:
        for t in (layer.k, layer.v):
            if t is not None:
                storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
    return sum(storages.values())


def hf_cache_bytes(hf_cache: Any) -> int:
    """Bytes of the keys and values of a Hugging Face ``DynamicCache``."""
    return sum(t.numel() * t.element_size() for layer in hf_cache.layers for t in (layer.keys, layer.values))


def _malloc_trim() -> Any:
    """glibc's ``malloc_trim`` (hands freed heap pages back to the system), or None where libc has none."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):
        return None


MALLOC_TRIM = _malloc_trim()


def resident_bytes() -> int:
    """The process's resident memory after trimming the heap (see the module docstring)."""
    if MALLOC_TRIM is not None:
        MALLOC_TRIM(0)
    return psutil.Process().memory_info().rss


@torch.no_grad()
def prefill(model: Llama, ids: torch.Tensor) -> LlamaCache:
    """A cache filled with the keys and values of ``ids`` (B, T): the prompt's forward pass."""
    cache = model.new_cache()
    model(ids, cache=cache, logits_to_keep=1)  # (B, 1, V), dropped: only the cache stays
    return cache


@torch.no_grad()
def measure(config: LlamaConfig, dtype: torch.dtype, ids: torch.Tensor, seed: int) -> dict[str, Any]:
    """Everything measured for one attention variant and dtype: see the module docstring."""
    torch.manual_seed(seed)
    model = Llama(config).eval().to(dtype)
    T = ids.size(1)
    prefill(model, ids[:, :2])  # warm-up: the rotary table and first-call allocations are not the cache's

    before = resident_bytes()
    cache = prefill(model, ids)
    grown = resident_bytes()
    measured = tensor_bytes(cache)
    stored_after_prefill = storage_bytes(cache)
    del cache
    released = grown - resident_bytes()

    cache = prefill(model, ids)
    model(ids[:, -1:], cache=cache, logits_to_keep=1)  # one decoding step: the buffers get their first capacity
    stored_after_step, capacity = storage_bytes(cache), cache.layers[0]._buffers
    capacity_tokens = capacity[0].size(2) if capacity is not None else len(cache)
    del cache

    theirs = to_hf(model).eval()
    hf_bytes = hf_cache_bytes(theirs(ids, use_cache=True, logits_to_keep=1).cache)
    del theirs, model
    has_rss = MALLOC_TRIM is not None
    return {
        "tokens": T,
        "tensor_bytes": measured,
        "tensor_bytes_per_token": measured / (ids.size(0) * T),
        "storage_bytes_after_prefill": stored_after_prefill,
        "storage_bytes_after_one_step": stored_after_step,
        "capacity_tokens_after_one_step": capacity_tokens,
        "hf_cache_bytes": hf_bytes,
        "rss_growth_bytes": grown - before if has_rss else None,
        "rss_released_bytes": released if has_rss else None,
    }


def weights_bytes(config: LlamaConfig) -> dict[str, int]:
    """Bytes of a model's weights in each dtype (built on the meta device: no memory, no time)."""
    with torch.device("meta"):
        params = count_parameters(Llama(config))  # a tied head is counted once
    return {name: params * torch.empty((), dtype=dtype).element_size() for name, dtype in DTYPES.items()}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    command = "python examples/benchmarks/kv_cache.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    shape = model_config(args, n_kv_heads=1)
    ids = torch.randint(0, args.vocab, (1, args.tokens), generator=torch.Generator().manual_seed(args.seed))

    variants = []
    runs = [(name, n_kv, dtype) for name, n_kv in ATTENTIONS.items() for dtype in DTYPES]
    for name, n_kv, dtype_name in tqdm(runs, desc="prefill", disable=args.no_progress):
        config = model_config(args, n_kv)
        dtype = DTYPES[dtype_name]
        per_token = kv_bytes_per_token(config, torch.empty((), dtype=dtype).element_size())
        row = {
            "attention": name,
            "n_kv_heads": n_kv,
            "dtype": dtype_name,
            "bytes_per_number": torch.empty((), dtype=dtype).element_size(),
            "computed_bytes_per_token": per_token,
            "computed_bytes": per_token * args.tokens,
            **measure(config, dtype, ids, args.seed),
            "context_bytes": {str(T): per_token * T for T in args.contexts},
        }
        variants.append(row)

    full_shape = shape if args.smoke else LlamaConfig.smollm2_135m()
    record: dict[str, Any] = {
        "command": command,
        "machine": machine_description(),
        "threads": torch.get_num_threads(),
        "versions": {
            "torch": torch.__version__,
            "transformers": importlib.metadata.version("transformers"),
            "psutil": psutil.__version__,
        },
        "started": started,
        "smoke": args.smoke,
        "shape": {
            "n_layers": shape.n_layers,
            "d_model": shape.d_model,
            "n_heads": shape.n_heads,
            "d_head": shape.d_head,
            "d_ff": shape.d_ff,
            "vocab_size": args.vocab,
        },
        "formula": "bytes per token = 2 * n_layers * n_kv_heads * d_head * bytes per number",
        "batch_size": 1,
        "prefill_tokens": args.tokens,
        "contexts": args.contexts,
        "rss_method": (
            "psutil RSS, each reading after glibc malloc_trim(0)"
            if MALLOC_TRIM is not None
            else "not measured: no malloc_trim (not glibc), and RSS without it does not follow the cache"
        ),
        "model_weights": {"model": "SmolLM2-135M" if not args.smoke else "the smoke shape"}
        | {"config": dataclasses.asdict(full_shape), "bytes": weights_bytes(full_shape)},
        "variants": variants,
    }
    mib = 2**20
    print(f"KV cache at N={shape.n_layers} D={shape.d_model} H={shape.n_heads} Dh={shape.d_head}, T={args.tokens}:")
    print(f"{'':12} {'B/token':>8} {'computed':>10} {'tensors':>10} {'after step':>10} {'HF':>10} {'RSS grew':>9} "
          f"{'RSS freed':>9} " + " ".join(f"{f'{T:,} tok':>10}" for T in args.contexts))  # fmt: skip
    for row in variants:
        rss = [row[k] for k in ("rss_growth_bytes", "rss_released_bytes")]
        rss_text = " ".join(f"{x / mib:9.2f}" if x is not None else f"{'-':>9}" for x in rss)
        contexts = " ".join(f"{row['context_bytes'][str(T)] / mib:10.1f}" for T in args.contexts)
        print(f"{row['attention']} {row['dtype']:8} {row['computed_bytes_per_token']:8,} "
              f"{row['computed_bytes'] / mib:10.2f} {row['tensor_bytes'] / mib:10.2f} "
              f"{row['storage_bytes_after_one_step'] / mib:10.2f} {row['hf_cache_bytes'] / mib:10.2f} {rss_text} "
              f"{contexts}")  # fmt: skip
    print("(MiB; 'after step': the storage our cache holds after one more token, capacity-doubling buffers)")
    weights = record["model_weights"]["bytes"]
    print(f"the model's weights: {weights['float32'] / mib:.1f} MiB float32, {weights['bfloat16'] / mib:.1f} bfloat16")
    if args.json:
        write_record(args.json, record)  # atomically
    return record


if __name__ == "__main__":
    main()
