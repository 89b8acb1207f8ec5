"""Benchmark: our GPT against Hugging Face's GPT2LMHeadModel, and our KV-cached generation against no cache.

(a) One training step (forward, cross-entropy, backward, AdamW step) of our ``GPT`` and of ``GPT2LMHeadModel``
    built from the same config with the same weights and batch (nanoGPT's CPU Shakespeare shape by default:
    4 layers, 4 heads, D=128, 64-token blocks, batch 12). Both models compute the loss the same way, from logits.
(b) Generating ``--new-tokens`` tokens greedily from a ``--prompt-length`` prompt: our ``generate`` with the KV
    cache, without it, and ``GPT2LMHeadModel.generate`` (which uses its own cache), for each ``--gen-shapes``
    model: the training shape above, nanoGPT's default character-level model (6 layers, 6 heads, D=384) and
    GPT-2 small's blocks (12 layers, 12 heads, D=768; with this small vocabulary, 85M parameters).
    The generation models have a longer context (``--gen-context``) so that the whole sequence fits uncropped.
    How much the cache saves grows with the model: at D=128 a cached step is a few dozen tiny matrix products
    whose fixed per-call cost (about 15 us each on a CPU) dominates, so recomputing the past is cheap too.

Times are medians over ``--repeats`` training steps and ``--gen-repeats`` generations after a warm-up, with the
variants interleaved so that a noisy neighbour slows all of them alike. Ratios are printed against the goals.

Usage:
    python examples/benchmarks/gpt.py                       # defaults below, about 5 minutes on 2 CPU cores
    python examples/benchmarks/gpt.py --smoke               # tiny, seconds (used by the tests)
    python examples/benchmarks/gpt.py --json llmdocs/records/gpt_benchmark.json   # the record the chapter reads
    python examples/benchmarks/gpt.py --batch 16 --block 128 --gen-shapes 4,4,128
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
from collections.abc import Callable
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # build models from configs only: never the network

import torch
import torch.nn.functional as F

from llmdocs.generation.decoder_only import generate
from llmdocs.interop.hf import to_hf
from llmdocs.models.gpt import GPT, GPTConfig
from llmdocs.profiling import interleaved_times
from llmdocs.training import resolve_device, seed_everything


def interleaved_medians(fns: dict[str, Callable[[], object]], repeats: int, device: torch.device) -> dict[str, float]:
    """Median seconds per call of each function, timing them in turn (round-robin) ``repeats`` times."""
    times, _ = interleaved_times(fns, repeats, device)
    return {name: statistics.median(values) for name, values in times.items()}


def training_step_times(args: argparse.Namespace, device: torch.device) -> dict[str, float]:
    """Seconds per AdamW training step of our GPT and of GPT2LMHeadModel with identical weights and batch."""
    config = GPTConfig(
        vocab_size=args.vocab,
        context_length=args.block,
        d_model=args.d_model,
        n_heads=args.heads,
        n_layers=args.layers,
        dropout=0.0,
    )
    ours = GPT(config).to(device).train()
    theirs = to_hf(ours).to(device).train()
    ids = torch.randint(0, args.vocab, (args.batch, args.block + 1), device=device)
    inputs, targets = ids[:, :-1], ids[:, 1:]  # (B, T) each

    def step_fn(model: torch.nn.Module, logits_of: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[], None]:
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

        def step() -> None:
            logits = logits_of(inputs)  # (B, T, V)
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        return step

    return interleaved_medians(
        {"ours": step_fn(ours, ours), "hf": step_fn(theirs, lambda x: theirs(x, use_cache=False).logits)},
        args.repeats,
        device,
    )


def generation_times(args: argparse.Namespace, device: torch.device, shape: tuple[int, int, int]) -> dict[str, float]:
    """Seconds to generate ``new_tokens`` greedily: ours cached, ours uncached, HF generate (shape = N, H, D)."""
    n_layers, n_heads, d_model = shape
    config = GPTConfig(
        vocab_size=args.vocab,
        context_length=args.gen_context,
        d_model=d_model,
        n_heads=n_heads,
        n_layers=n_layers,
    )
    if args.prompt_length + args.new_tokens > config.context_length:
        raise SystemExit("--prompt-length + --new-tokens must fit in --gen-context")
    ours = GPT(config).to(device).eval()
    theirs = to_hf(ours).to(device).eval()
    prompt = torch.randint(0, args.vocab, (1, args.prompt_length), device=device)
    n = args.new_tokens

    def hf_generate() -> object:
        with torch.no_grad():
            return theirs.generate(
                prompt,
                attention_mask=torch.ones_like(prompt),
                max_new_tokens=n,
                min_new_tokens=n,
                do_sample=False,
                pad_token_id=0,
            )

    expected = hf_generate()[:, args.prompt_length :].tolist()  # type: ignore[index]
    assert generate(ours, prompt, n) == expected, "our greedy tokens differ from HF's"
    return interleaved_medians(
        {
            "cached": lambda: generate(ours, prompt, n, use_cache=True),
            "uncached": lambda: generate(ours, prompt, n, use_cache=False),
            "hf": hf_generate,
        },
        args.gen_repeats,
        device,
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, default=4, help="blocks N (default: %(default)s)")
    parser.add_argument("--heads", type=int, default=4, help="attention heads H (default: %(default)s)")
    parser.add_argument("--d-model", type=int, default=128, help="model width D (default: %(default)s)")
    parser.add_argument("--vocab", type=int, default=65, help="vocabulary size V (default: %(default)s)")
    parser.add_argument("--block", type=int, default=64, help="training block length T (default: %(default)s)")
    parser.add_argument("--batch", type=int, default=12, help="training batch size B (default: %(default)s)")
    parser.add_argument("--new-tokens", type=int, default=256, help="tokens generated (default: %(default)s)")
    parser.add_argument("--prompt-length", type=int, default=16, help="prompt tokens (default: %(default)s)")
    parser.add_argument(
        "--gen-context", type=int, default=512, help="context of the generation model (default: %(default)s)"
    )
    parser.add_argument(
        "--gen-shapes",
        nargs="+",
        type=parse_shape,
        default=[(4, 4, 128), (6, 6, 384), (12, 12, 768)],
        help="generation models as N,H,D (default: 4,4,128 6,6,384 12,12,768)",
    )
    parser.add_argument("--repeats", type=int, default=20, help="timed training steps (default: %(default)s)")
    parser.add_argument("--gen-repeats", type=int, default=3, help="timed generations (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, mps or auto (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, a few seconds (for the tests)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.layers, args.heads, args.d_model, args.block, args.batch = 1, 2, 16, 8, 2
        args.new_tokens, args.prompt_length, args.gen_context, args.repeats, args.gen_repeats = 8, 4, 16, 2, 1
        args.gen_shapes = [(1, 2, 16)]
    return args


def parse_shape(text: str) -> tuple[int, int, int]:
    """``"6,6,384"`` -> (layers N, heads H, width D)."""
    try:
        n_layers, n_heads, d_model = (int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N,H,D such as 6,6,384, got {text!r}") from None
    return n_layers, n_heads, d_model


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    seed_everything(args.seed)
    device = resolve_device(args.device)
    print(
        f"GPT N={args.layers} H={args.heads} D={args.d_model} V={args.vocab} on {device}, "
        f"{torch.get_num_threads()} thread(s)"
    )

    train = training_step_times(args, device)
    train_ratio = train["ours"] / train["hf"]
    print(f"(a) training step, B={args.batch} T={args.block}, forward + backward + AdamW:")
    print(f"    ours {1e3 * train['ours']:8.2f} ms   HF {1e3 * train['hf']:8.2f} ms")
    print(f"    ours / HF time = {train_ratio:.2f}x   (goal <= 0.90x)")

    print(f"(b) greedy generation of {args.new_tokens} tokens from a {args.prompt_length}-token prompt:")
    generation = []
    for shape in args.gen_shapes:
        gen = generation_times(args, device, shape)
        speedup, vs_hf = gen["uncached"] / gen["cached"], gen["hf"] / gen["cached"]
        print(
            f"    N={shape[0]} H={shape[1]} D={shape[2]}: cached {1e3 * gen['cached']:8.1f} ms   "
            f"uncached {1e3 * gen['uncached']:8.1f} ms   HF generate {1e3 * gen['hf']:8.1f} ms"
        )
        print(f"      KV-cache speed-up (uncached / cached) = {speedup:.2f}x   (goal >= 5x)")
        print(f"      HF generate / ours cached = {vs_hf:.2f}x   (goal >= 1x)")
        generation.append(
            {
                "n_layers": shape[0],
                "n_heads": shape[1],
                "d_model": shape[2],
                "seconds": gen,
                "cache_speedup": speedup,
                "hf_over_ours": vs_hf,
            }
        )
    result = {
        "command": "python examples/benchmarks/gpt.py " + shlex.join(sys.argv[1:] if argv is None else argv),
        "threads": torch.get_num_threads(),
        "args": {**vars(args), "gen_shapes": [list(shape) for shape in args.gen_shapes]},
        "train_seconds": train,
        "train_ratio_ours_over_hf": train_ratio,
        "generation": generation,
    }
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()
