"""Train CBOW (or skip-gram) word vectors on Shakespeare or on People's Daily, and save them in word2vec format.

The vectors are written as ``vectors.txt`` in the word2vec text format (a ``V D`` header, then ``word v1 ... vD``),
which gensim reads with ``KeyedVectors.load_word2vec_format(path)``. The script prints the nearest neighbours of a
few probe words. English: ~860 k words, about a minute per epoch on one CPU thread; Chinese: ~1.1 M words.

Usage:
    python examples/train_cbow.py                                    # Shakespeare, CBOW + negative sampling
    python examples/train_cbow.py --corpus zh --out-dir runs/cbow-zh   # People's Daily (gold segmentation)
    python examples/train_cbow.py --architecture skipgram            # the contrasting variant
    python examples/train_cbow.py --objective softmax --max-sentences 20000   # full softmax over V
    python examples/train_cbow.py --out-dir runs/cbow --resume       # continue from the newest checkpoint
    python examples/train_cbow.py --smoke                            # seconds: the tests run this

Outputs in ``--out-dir``: ``vectors.txt``, ``results.json``, ``metrics.jsonl`` and ``checkpoints/`` (one per
epoch: the model, the optimiser state and the epoch; the vocabulary is rebuilt from the corpus, deterministically).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

from tqdm.auto import tqdm

from llmdocs.training import (
    append_jsonl,
    latest_checkpoint,
    load_checkpoint,
    resolve_device,
    save_checkpoint,
    seed_everything,
)
from llmdocs.word2vec.data import (
    Vocabulary,
    keep_probabilities,
    load_people_daily_words,
    load_shakespeare_words,
    noise_distribution,
)
from llmdocs.word2vec.model import Word2Vec, Word2VecConfig, build_optimizer, train_word2vec
from llmdocs.word2vec.vectors import WordVectors

PROBES = {"en": ["king", "love", "night", "he"], "zh": ["中国", "经济", "北京", "新年"]}


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Show the usage docstring as written and every flag's default."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--corpus", default="en", choices=["en", "zh"], help="Shakespeare or People's Daily")
    parser.add_argument("--max-sentences", type=int, default=None, help="use only the first sentences")
    parser.add_argument("--architecture", default="cbow", choices=["cbow", "skipgram"], help="model")
    parser.add_argument("--objective", default="negative", choices=["negative", "softmax"], help="output layer")
    parser.add_argument("--dim", type=int, default=100, help="vector size D")
    parser.add_argument("--window", type=int, default=5, help="largest context window on each side")
    parser.add_argument("--min-count", type=int, default=5, help="drop rarer words")
    parser.add_argument("--negative", type=int, default=5, help="noise words per example (negative sampling)")
    parser.add_argument("--sample", type=float, default=1e-3, help="subsampling threshold t (0: off)")
    parser.add_argument("--epochs", type=int, default=5, help="passes over the corpus")
    parser.add_argument("--batch-size", type=int, default=1024, help="examples per step")
    parser.add_argument("--optimizer", default="sparse_adam", choices=["sparse_adam", "sgd"], help="sparse update")
    parser.add_argument("--lr", type=float, default=None, help="starting lr (default: 0.01 Adam, 0.025 SGD)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    parser.add_argument("--seed", type=int, default=0, help="seed of initialisation, subsampling, windows, noise")
    parser.add_argument("--out-dir", default="runs/cbow", help="vectors, metrics, checkpoints, results")
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out-dir")
    parser.add_argument("--stop-after", type=int, default=None, help="stop after this epoch (to test --resume)")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    parser.add_argument("--smoke", action="store_true", help="a tiny run that takes seconds (used by the tests)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.max_sentences, args.dim, args.epochs, args.batch_size, args.min_count = 2_000, 16, 2, 256, 3
    return args


def load_sentences(corpus: str, max_sentences: int | None) -> list[list[str]]:
    if corpus == "en":
        return load_shakespeare_words(max_sentences)
    sentences = [s for s in load_people_daily_words() if len(s) >= 3]
    return sentences[:max_sentences] if max_sentences else sentences


def main(argv: list[str] | None = None) -> dict[str, object]:
    args = parse_args(argv)
    seed_everything(args.seed)
    device = resolve_device(args.device)
    out_dir = Path(args.out_dir)
    sentences = load_sentences(args.corpus, args.max_sentences)
    vocab = Vocabulary.build(sentences, min_count=args.min_count)
    ids = vocab.encode(sentences)
    config = Word2VecConfig(len(vocab), args.dim, args.architecture, args.objective, args.negative)
    model = Word2Vec(config).to(device)
    optimizer = build_optimizer(model, args.optimizer, args.lr)
    start_epoch = 0
    if args.resume and latest_checkpoint(out_dir / "checkpoints") is not None:
        info = load_checkpoint(out_dir / "checkpoints", model, optimizer)
        start_epoch = info["step"]
        print(f"resumed from {info['path']} (epoch {start_epoch} of {args.epochs})")

    words = sum(len(s) for s in ids)
    bar = tqdm(total=words * args.epochs, initial=words * start_epoch, unit="w", unit_scale=True,
               disable=args.no_progress, dynamic_ncols=True)  # fmt: skip
    started = time.perf_counter()

    def on_batch(row: dict[str, float]) -> None:
        bar.update(row["words"])
        bar.set_postfix(loss=f"{row['loss']:.3f}", lr=f"{row['lr']:.2g}")

    history = []
    train_args = (ids, keep_probabilities(vocab.counts, args.sample), noise_distribution(vocab.counts))
    last_epoch = args.epochs if args.stop_after is None else min(args.stop_after, args.epochs)
    for epoch in range(start_epoch, last_epoch):  # one call per epoch, so that every epoch ends in a checkpoint
        rows = train_word2vec(
            model, *train_args, window=args.window, epochs=args.epochs, batch_size=args.batch_size,
            optimizer=optimizer, seed=args.seed, start_epoch=epoch, stop_epoch=epoch + 1, on_batch=on_batch,
        )  # fmt: skip
        history += rows
        append_jsonl(out_dir / "metrics.jsonl", rows[-1])
        save_checkpoint(out_dir / "checkpoints", model, optimizer, step=epoch + 1, config=config, keep=2)
    bar.close()
    seconds = time.perf_counter() - started

    vectors = WordVectors(vocab.words, model.vectors.cpu())
    vectors.save_word2vec_format(out_dir / "vectors.txt")
    neighbours = {w: vectors.nearest(w, 5) for w in PROBES[args.corpus] if w in vectors}
    results = {
        "corpus": args.corpus,
        "words": words,
        "vocab_size": len(vocab),
        "epochs": args.epochs,
        "resumed_from_epoch": start_epoch,
        "final_loss": history[-1]["loss"] if history else None,
        "epochs_done": start_epoch + len(history),
        "words_per_second": round(words * len(history) / seconds) if history else None,
        "neighbours": neighbours,
        "command": shlex.join(["python", "examples/train_cbow.py", *(sys.argv[1:] if argv is None else argv)]),
    }
    (out_dir / "results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False), encoding="utf-8")
    print(f"{len(vocab):,} words x {args.dim} dims -> {out_dir / 'vectors.txt'}")
    for word, near in neighbours.items():
        print(f"  {word}: " + ", ".join(f"{w} ({s:.2f})" for w, s in near))
    return results


if __name__ == "__main__":
    main()
