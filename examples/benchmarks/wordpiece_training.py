"""Benchmark: training a WordPiece vocabulary, llmdocs (pure Python) vs the ``tokenizers`` library (Rust).

Both trainers get the same text (the first 90% of ``--chars`` characters of Shakespeare), the same pre-tokenization
(BERT's basic tokenizer; ``BertNormalizer(lowercase=True)`` + ``BertPreTokenizer`` for the library), the same
special tokens, vocabulary size and ``min_frequency``. The script prints the training times, how many tokens the two
vocabularies share, and the tokens per word of each vocabulary on the held-out last 10% of the text. Both
vocabularies are used by the same encoder, our ``WordPieceTokenizer``, so only the vocabulary differs.

Usage:
    python examples/benchmarks/wordpiece_training.py --json llmdocs/records/wordpiece_training.json  # 1 MB, 8,192
    python examples/benchmarks/wordpiece_training.py --vocab-size 4096 --chars 300000
    python examples/benchmarks/wordpiece_training.py --smoke              # seconds, for the tests

``tokenizers`` parallelises with Rayon; it gets one thread (``RAYON_NUM_THREADS=1``, set before it is imported),
like our single-threaded trainer. Our time includes the basic tokenizer (pure Python, about half of it). Times are
wall-clock: on a shared machine, read ratios, not seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

os.environ["RAYON_NUM_THREADS"] = "1"  # read when `tokenizers` starts its thread pool: before the import

from llmdocs.data.shakespeare import load_shakespeare
from llmdocs.profiling import machine_description
from llmdocs.tokenizers import BERT_SPECIAL_TOKENS, WordPieceTokenizer, basic_tokenize, train_wordpiece


def train_theirs(text: str, vocab_size: int, min_frequency: int) -> list[str]:
    """The `tokenizers` library's `WordPieceTrainer`, set up like BERT uncased; the vocabulary in id order."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(BERT_SPECIAL_TOKENS),
        show_progress=False,
    )
    tokenizer.train_from_iterator([text], trainer=trainer)
    vocab = tokenizer.get_vocab()
    return sorted(vocab, key=vocab.__getitem__)


def timed(fn, *args, **kwargs):  # -> tuple[result, seconds]
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def tokens_per_word(vocab: list[str], text: str) -> tuple[float, float]:
    """Tokens per word of `text` with our encoder and `vocab`, and the fraction of words that become `[UNK]`."""
    tokenizer = WordPieceTokenizer(vocab)
    words = basic_tokenize(text)
    tokens = tokenizer.tokenize(text)
    return len(tokens) / len(words), tokens.count("[UNK]") / len(words)


def main(argv: list[str] | None = None) -> dict[str, float | int | str]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chars", type=int, default=1_000_000, help="characters of text (default: %(default)s)")
    parser.add_argument("--vocab-size", type=int, default=8192, help="vocabulary size (default: %(default)s)")
    parser.add_argument("--min-frequency", type=int, default=2, help="rarest pair merged (default: %(default)s)")
    parser.add_argument("--smoke", action="store_true", help="30,000 characters, vocabulary of 400: seconds")
    parser.add_argument("--json", default=None, help="where to write the results (default: nowhere)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.chars, args.vocab_size = 30_000, 400

    text = load_shakespeare()[: args.chars]
    cut = text.rfind(" ", 0, int(0.9 * len(text)))  # the last 10% is held out, cut between words
    train_text, held_out = text[:cut], text[cut:]
    print(f"training WordPiece on {len(train_text):,} characters of Shakespeare, vocab_size={args.vocab_size:,}")
    ours, ours_s = timed(train_wordpiece, train_text, args.vocab_size, min_frequency=args.min_frequency)
    theirs, theirs_s = timed(train_theirs, train_text, args.vocab_size, args.min_frequency)
    shared = len(set(ours) & set(theirs))
    ours_tpw, ours_unk = tokens_per_word(ours, held_out)
    theirs_tpw, theirs_unk = tokens_per_word(theirs, held_out)
    n_words = len(basic_tokenize(held_out))

    print(f"{'':22} {'train (s)':>10} {'tokens':>8} {'tokens/word':>12} {'[UNK] words':>12}")
    print(f"{'llmdocs (Python)':22} {ours_s:10.2f} {len(ours):8,} {ours_tpw:12.4f} {ours_unk:12.2%}")
    print(f"{'tokenizers (Rust, 1)':22} {theirs_s:10.2f} {len(theirs):8,} {theirs_tpw:12.4f} {theirs_unk:12.2%}")
    print(f"ratio llmdocs / tokenizers: {ours_s / theirs_s:.1f}x; shared tokens: {shared:,} of {len(ours):,}")
    print(f"(tokens per word on the held-out {len(held_out):,} characters, {n_words:,} words, same encoder)")

    command = ["python", "examples/benchmarks/wordpiece_training.py", *(sys.argv[1:] if argv is None else argv)]
    results: dict[str, float | int | str] = {
        "command": shlex.join(command),
        "machine": machine_description(),
        "corpus": "shakespeare",
        "rayon_threads": 1,
        "train_chars": len(train_text),
        "held_out_chars": len(held_out),
        "held_out_words": n_words,
        "vocab_size": args.vocab_size,
        "min_frequency": args.min_frequency,
        "ours_train_s": ours_s,
        "theirs_train_s": theirs_s,
        "ratio": ours_s / theirs_s,
        "ours_tokens": len(ours),
        "theirs_tokens": len(theirs),
        "shared_tokens": shared,
        "ours_tokens_per_word": ours_tpw,
        "theirs_tokens_per_word": theirs_tpw,
        "ours_unk_rate": ours_unk,
        "theirs_unk_rate": theirs_unk,
    }
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return results


if __name__ == "__main__":
    main()
