"""Benchmark: multi-head attention, ours vs ``nn.MultiheadAttention`` vs ``F.scaled_dot_product_attention``.

For several sequence lengths this times one forward + backward pass of self-attention on a (B, T, D) input and
measures the peak memory it allocates, then prints every implementation's time and memory as a ratio to our
fused layer. Our ``MultiHeadAttention`` runs PyTorch's fused kernel when no attention weights are requested and the
explicit ``softmax(QK^T / sqrt(d_k)) V`` of the chapter when they are (``need_weights=True``): both are measured.

Usage:
    python examples/benchmarks/attention.py                  # T = 128 .. 1024, a few repeats
    python examples/benchmarks/attention.py --lengths 64 128 --repeats 2 --json out.json

Time and peak memory are measured with ``llmdocs.profiling`` (the same functions the chapter's figures use).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from llmdocs.interop.torch_nn import mha_to_torch
from llmdocs.nn.attention import MultiHeadAttention
from llmdocs.profiling import peak_memory_bytes, seconds_per_call
from llmdocs.training import resolve_device, seed_everything

Step = Callable[[], torch.Tensor]


def make_steps(batch: int, length: int, d_model: int, n_heads: int, device: torch.device) -> dict[str, Step]:
    """One closure per implementation, each running causal self-attention on the same input and weights."""
    ours = MultiHeadAttention(d_model, n_heads).to(device)
    theirs = nn.MultiheadAttention(d_model, n_heads, batch_first=True).to(device)
    mha_to_torch(ours, theirs)
    x = torch.randn(batch, length, d_model, device=device, requires_grad=True)  # (B, T, D)
    causal = torch.ones(length, length, dtype=torch.bool, device=device).tril()  # (T, T), True = may attend
    torch_mask = ~causal  # nn.MultiheadAttention: True = may NOT attend
    d_head = d_model // n_heads

    def sdpa() -> torch.Tensor:
        B, T, D = x.shape
        q, k, v = (
            proj(x).view(B, T, n_heads, d_head).transpose(1, 2)  # (B, H, T, Dh)
            for proj in (ours.q_proj, ours.k_proj, ours.v_proj)
        )
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, H, T, Dh)
        return ours.out_proj(out.transpose(1, 2).reshape(B, T, D)).sum()

    return {
        "ours (fused)": lambda: ours(x, mask=causal)[0].sum(),
        "ours (explicit, weights)": lambda: ours(x, mask=causal, need_weights=True)[0].sum(),
        "nn.MultiheadAttention": lambda: theirs(x, x, x, attn_mask=torch_mask, need_weights=False)[0].sum(),
        "F.scaled_dot_product_attention": sdpa,
    }


def main(argv: list[str] | None = None) -> list[dict[str, float | int | str]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", type=int, nargs="+", default=[128, 256, 512, 1024], help="sequence lengths")
    parser.add_argument("--batch", type=int, default=4, help="batch size (default: %(default)s)")
    parser.add_argument("--d-model", type=int, default=256, help="model width (default: %(default)s)")
    parser.add_argument("--n-heads", type=int, default=4, help="attention heads (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=5, help="timed passes per cell (default: %(default)s)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = parser.parse_args(argv)

    seed_everything(args.seed)
    device = resolve_device(args.device)
    rows: list[dict[str, float | int | str]] = []
    print(f"causal self-attention, forward + backward, B={args.batch} D={args.d_model} H={args.n_heads} on {device}")
    print(f"{'T':>6}  {'implementation':<32}{'ms':>9}{'time ratio':>12}{'peak MiB':>10}{'mem ratio':>11}")
    for length in args.lengths:
        steps = make_steps(args.batch, length, args.d_model, args.n_heads, device)
        cells = {
            name: (
                seconds_per_call(lambda step=step: step().backward(), args.repeats, device),
                peak_memory_bytes(lambda step=step: step().backward(), device),
            )
            for name, step in steps.items()
        }
        base_time, base_mem = cells["ours (fused)"]
        for name, (seconds, mem) in cells.items():
            row = {
                "length": length,
                "implementation": name,
                "ms": 1e3 * seconds,
                "time_ratio": seconds / base_time,
                "peak_mib": mem / 2**20,
                "memory_ratio": mem / max(base_mem, 1),
            }
            rows.append(row)
            print(
                f"{length:>6}  {name:<32}{row['ms']:>9.2f}{row['time_ratio']:>11.2f}x"
                f"{row['peak_mib']:>10.1f}{row['memory_ratio']:>10.2f}x"
            )
    print("ratios are relative to our fused layer (ours (fused) = 1.00x); lower is better")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=2)
    return rows


if __name__ == "__main__":
    main()
