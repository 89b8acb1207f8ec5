"""Benchmark: training byte-level BPE, llmdocs (pure Python) vs the ``tokenizers`` library (Rust).

Both trainers get the same text (the first ``--chars`` characters of Shakespeare, or of Chinese news with
``--corpus people-daily``), the same GPT-2 pre-tokenization,
the same vocabulary size and the same ``min_frequency``; the script prints the training times and their ratio, how
many of the learnt merges agree, and the encoding throughput of both tokenizers on the same text.

Usage:
    python examples/benchmarks/bpe_training.py                      # 1 MB, vocabulary of 8,192 (writes the record)
    python examples/benchmarks/bpe_training.py --vocab-size 4096 --rayon-threads 2
    python examples/benchmarks/bpe_training.py --corpus people-daily --chars 200000 --vocab-size 4096
    python examples/benchmarks/bpe_training.py --smoke              # seconds, for the tests

``tokenizers`` parallelises with Rayon; by default it gets one thread (``--rayon-threads 1``), like our
single-threaded trainer. Times are wall-clock: on a shared machine, run it niced and read ratios, not seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

from llmdocs.data.people_daily import load_people_daily
from llmdocs.data.shakespeare import load_shakespeare
from llmdocs.tokenizers import BPETokenizer

RECORD = Path(__file__).resolve().parents[2] / "llmdocs" / "records" / "bpe_training.json"


def train_theirs(text: str, vocab_size: int, min_frequency: int):  # -> tokenizers.Tokenizer
    """The `tokenizers` library's byte-level BPE, set up like GPT-2 (same regex, no prefix space)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator([text], trainer=trainer)
    return tokenizer


def timed(fn, *args, **kwargs):  # -> tuple[result, seconds]
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict[str, float | int]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", choices=["shakespeare", "people-daily"], default="shakespeare", help="text")
    parser.add_argument("--chars", type=int, default=1_000_000, help="characters of text (default: %(default)s)")
    parser.add_argument("--vocab-size", type=int, default=8192, help="vocabulary size (default: %(default)s)")
    parser.add_argument("--min-frequency", type=int, default=2, help="rarest pair merged (default: %(default)s)")
    parser.add_argument("--rayon-threads", type=int, default=1, help="threads of `tokenizers` (default: %(default)s)")
    parser.add_argument("--smoke", action="store_true", help="20,000 characters, vocabulary of 400: seconds")
    parser.add_argument("--json", default=str(RECORD), help="where to write the results (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.chars, args.vocab_size = 20_000, 400
        if args.json == str(RECORD):
            args.json = None  # a smoke run never overwrites the chapter's record
    os.environ["RAYON_NUM_THREADS"] = str(args.rayon_threads)  # read when `tokenizers` starts its thread pool

    text = (load_shakespeare() if args.corpus == "shakespeare" else load_people_daily())[: args.chars]
    print(f"training byte-level BPE on {len(text):,} characters of {args.corpus}, vocab_size={args.vocab_size:,}")
    ours, ours_s = timed(BPETokenizer.train, text, args.vocab_size, min_frequency=args.min_frequency)
    theirs, theirs_s = timed(train_theirs, text, args.vocab_size, args.min_frequency)
    print(f"  llmdocs (Python):       {ours_s:7.2f} s   {ours.vocab_size:,} tokens")
    print(f"  tokenizers (Rust, {args.rayon_threads} thr): {theirs_s:7.2f} s   {theirs.get_vocab_size():,} tokens")
    print(f"  ratio llmdocs / tokenizers: {ours_s / theirs_s:.1f}x")

    # Do the two trainers learn the same merges? (Ties between equally frequent pairs may be broken differently.)
    their_merges = json.loads(theirs.to_str())["model"]["merges"]
    from llmdocs.tokenizers import token_str

    our_merges = [[token_str(ours.token_bytes(a)), token_str(ours.token_bytes(b))] for (a, b), _ in ours.merges]
    their_merges = [m if isinstance(m, list) else m.split(" ") for m in their_merges]
    same_prefix = next(
        (i for i, (x, y) in enumerate(zip(our_merges, their_merges, strict=False)) if x != y), len(our_merges)
    )
    shared = len({tuple(m) for m in our_merges} & {tuple(m) for m in their_merges})
    print(f"  identical merges in the same order: first {same_prefix:,}; same set: {shared:,} of {len(our_merges):,}")

    ours_cold, ours_enc_s = timed(ours.encode_ordinary, text)
    _, ours_warm_s = timed(ours.encode_ordinary, text)  # every chunk is now in the cache
    theirs_enc, theirs_enc_s = timed(theirs.encode, text)
    assert ours.decode(ours_cold) == text
    mb = len(text.encode("utf-8")) / 1e6
    print(f"encoding the same {mb:.2f} MB:")
    print(f"  llmdocs: {mb / ours_enc_s:6.2f} MB/s (cold cache), {mb / ours_warm_s:6.2f} MB/s (warm)")
    print(f"  tokenizers: {mb / theirs_enc_s:6.2f} MB/s")
    print(f"  tokens: llmdocs {len(ours_cold):,}, tokenizers {len(theirs_enc.ids):,}")
    command = ["python", "examples/benchmarks/bpe_training.py", *(sys.argv[1:] if argv is None else argv)]
    results = {
        "command": shlex.join(command),
        "corpus": args.corpus,
        "rayon_threads": args.rayon_threads,
        "chars": len(text),
        "vocab_size": args.vocab_size,
        "ours_train_s": ours_s,
        "theirs_train_s": theirs_s,
        "ratio": ours_s / theirs_s,
        "same_merge_prefix": same_prefix,
        "shared_merges": shared,
        "ours_encode_mb_s": mb / ours_enc_s,
        "ours_encode_warm_mb_s": mb / ours_warm_s,
        "theirs_encode_mb_s": mb / theirs_enc_s,
    }
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return results


if __name__ == "__main__":
    main()
