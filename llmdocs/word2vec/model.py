"""Word2vec in PyTorch: CBOW and skip-gram, with a full softmax or negative sampling, trained with sparse updates.

CBOW predicts a word from the average of its context vectors; skip-gram predicts each context word from the
word. Both are one model here: an example is a set of *input* words (the context for CBOW, the centre word alone
for skip-gram) and one *target* word. The input words are averaged into a hidden vector $h$ (B, D), which is
scored against the *output* vectors $u_w$ of the targets:

- full softmax: $-\\log \\dfrac{\\exp(h \\cdot u_t)}{\\sum_{w=1}^{V} \\exp(h \\cdot u_w)}$, which reads all V rows;
- negative sampling: $-\\log \\sigma(h \\cdot u_t) - \\sum_{k=1}^{K} \\log \\sigma(-h \\cdot u_{n_k})$, with
  $n_k$ drawn from the noise distribution: it reads only $K + 1$ rows.

Both embedding tables are `nn.Embedding(sparse=True)`: a step produces gradients for the rows a batch touched only,
and `torch.optim.SparseAdam` (the default) or plain SGD (word2vec's optimiser) updates those rows only, with the
learning rate decaying linearly to zero as in word2vec.

References:
    Mikolov et al., "Efficient Estimation of Word Representations in Vector Space", 2013;
    Mikolov et al., "Distributed Representations of Words and Phrases and their Compositionality", 2013;
    Goldberg and Levy, "word2vec Explained", 2014 (the negative-sampling objective).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from llmdocs.word2vec._checks import check_int, check_sentences, check_table
from llmdocs.word2vec.data import context_windows

__all__ = [
    "Word2Vec",
    "Word2VecConfig",
    "build_optimizer",
    "full_softmax_loss",
    "make_examples",
    "negative_sampling_loss",
    "sample_negatives",
    "train_word2vec",
]


@dataclass(frozen=True)
class Word2VecConfig:
    """Size and kind of a word2vec model (gensim's names in brackets).

    Attributes:
        vocab_size: V, number of words.
        dim: D, width of a word vector (`vector_size`).
        architecture: `"cbow"` (`sg=0`) or `"skipgram"` (`sg=1`).
        objective: `"negative"` (negative sampling, `negative=K`) or `"softmax"` (the full softmax over V).
        negative: K, noise words per example for negative sampling.
        word2vec_update: CBOW only. `False` (default): the exact gradient of the mean, so each of the C context
            words receives 1/C of the hidden layer's error. `True`: each receives the full error, as in
            word2vec.c and gensim (`cbow_mean=1`); with SGD this reproduces their training.
    """

    vocab_size: int
    dim: int = 100
    architecture: Literal["cbow", "skipgram"] = "cbow"
    objective: Literal["negative", "softmax"] = "negative"
    negative: int = 5
    word2vec_update: bool = False

    def __post_init__(self) -> None:
        if self.vocab_size < 2 or self.dim < 1:
            raise ValueError(f"vocab_size={self.vocab_size} must be >= 2 and dim={self.dim} >= 1")
        if self.architecture not in ("cbow", "skipgram"):
            raise ValueError(f"architecture must be 'cbow' or 'skipgram', got {self.architecture!r}")
        if self.objective not in ("negative", "softmax"):
            raise ValueError(f"objective must be 'negative' or 'softmax', got {self.objective!r}")
        if self.objective == "negative" and self.negative < 1:
            raise ValueError(f"negative sampling needs negative >= 1, got {self.negative}")


def negative_sampling_loss(hidden: torch.Tensor, target_vec: torch.Tensor, negative_vecs: torch.Tensor) -> torch.Tensor:
    """Negative-sampling loss of each example: $-\\log\\sigma(h\\cdot u_t) - \\sum_k \\log\\sigma(-h\\cdot u_{n_k})$.

    Args:
        hidden: (B, D) averaged input vectors $h$.
        target_vec: (B, D) output vectors of the targets $u_t$.
        negative_vecs: (B, K, D) output vectors of the noise words $u_{n_k}$.

    Returns:
        (B,) losses.

    Examples:
        >>> h, u = torch.tensor([[1.0, 0.0]]), torch.tensor([[2.0, 0.0]])
        >>> loss = negative_sampling_loss(h, u, torch.zeros(1, 3, 2))  # h.u = 2, three noise scores of 0
        >>> round(loss.item(), 4)  # -log sigmoid(2) - 3 log sigmoid(0) = 0.1269 + 3 * 0.6931
        2.2064
    """
    positive = (hidden * target_vec).sum(-1)  # (B,)
    negative = (negative_vecs * hidden.unsqueeze(1)).sum(-1)  # (B, K)
    return -F.logsigmoid(positive) - F.logsigmoid(-negative).sum(-1)


def full_softmax_loss(hidden: torch.Tensor, output_weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Full-softmax loss of each example, $-\\log \\operatorname{softmax}(h U^\\top)_t$: cross-entropy over V words.

    Args:
        hidden: (B, D).
        output_weight: (V, D) all output vectors $U$.
        targets: (B,) target ids.

    Returns:
        (B,) losses.

    Examples:
        >>> loss = full_softmax_loss(torch.zeros(1, 2), torch.ones(4, 2), torch.tensor([0]))
        >>> round(loss.item(), 4)  # h = 0: uniform over V = 4 words, log 4
        1.3863
    """
    logits = hidden @ output_weight.T  # (B, V)
    return F.cross_entropy(logits, targets, reduction="none")


def sample_negatives(
    noise: torch.Tensor, shape: tuple[int, ...], generator: torch.Generator | None = None
) -> torch.Tensor:
    """Draw noise word ids from `noise` (V,) with replacement, e.g. shape (B, K).

    Examples:
        >>> sample_negatives(torch.tensor([0.0, 1.0]), (2, 3)).tolist()
        [[1, 1, 1], [1, 1, 1]]
    """
    n = 1
    for size in shape:
        n *= size
    return torch.multinomial(noise.float(), n, replacement=True, generator=generator).view(shape)


class Word2Vec(nn.Module):
    """CBOW or skip-gram: input vectors (word2vec's `syn0`) and output vectors (`syn1neg`, or `syn1` for softmax).

    As in word2vec, input vectors start uniform in $\\pm 0.5/D$ and output vectors at zero.

    Args:
        config: The model's size and kind.

    Examples:
        >>> model = Word2Vec(Word2VecConfig(vocab_size=10, dim=4))
        >>> inputs, mask = torch.tensor([[1, 2], [3, 0]]), torch.tensor([[True, True], [True, False]])
        >>> model.loss(inputs, mask, torch.tensor([5, 6]), negatives=torch.tensor([[7], [8]])).shape
        torch.Size([])
    """

    def __init__(self, config: Word2VecConfig) -> None:
        super().__init__()
        self.config = config
        V, D = config.vocab_size, config.dim
        self.input_embeddings = nn.Embedding(V, D, sparse=True)
        self.output_embeddings = nn.Embedding(V, D, sparse=True)
        with torch.no_grad():
            self.input_embeddings.weight.uniform_(-0.5 / D, 0.5 / D)
            self.output_embeddings.weight.zero_()

    @property
    def vectors(self) -> torch.Tensor:
        """(V, D) the word vectors (the input embeddings, as word2vec saves), detached."""
        return self.input_embeddings.weight.detach()

    def hidden(self, inputs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean of the input vectors of each example's real words: (B, C) ids, (B, C) mask -> (B, D).

        Only the masked-in ids are looked up, so the sparse gradient names exactly the words that were used.
        With `config.word2vec_update` the value is the same but the backward pass hands each word the full
        gradient of the mean (see [Word2VecConfig][llmdocs.word2vec.model.Word2VecConfig]).
        """
        if inputs.shape != mask.shape:
            raise ValueError(f"inputs {tuple(inputs.shape)} and mask {tuple(mask.shape)} must have the same shape")
        B, C = inputs.shape
        if B == 0 or C == 0:
            raise ValueError(f"inputs {tuple(inputs.shape)} is empty: a batch needs at least one example and word")
        counts = mask.sum(dim=1, keepdim=True)  # (B, 1)
        if bool((counts == 0).any()):
            raise ValueError("every example needs at least one input word (a row of mask is all False)")
        rows = torch.arange(B, device=inputs.device).unsqueeze(1).expand(B, C)[mask]  # (M,) example of each word
        vecs = self.input_embeddings(inputs[mask])  # (M, D)
        summed = torch.zeros(B, self.config.dim, device=vecs.device, dtype=vecs.dtype).index_add(0, rows, vecs)
        mean = summed / counts  # (B, D)
        if self.config.word2vec_update:
            # value of the mean, gradient of the sum: word2vec.c adds the whole error neu1e to every context word
            return mean.detach() + summed - summed.detach()  # (B, D)
        return mean

    def loss(
        self,
        inputs: torch.Tensor,
        mask: torch.Tensor,
        targets: torch.Tensor,
        negatives: torch.Tensor | None = None,
        reduction: Literal["mean", "sum"] = "mean",
    ) -> torch.Tensor:
        """Loss of a batch.

        Args:
            inputs: (B, C) input ids (context words for CBOW; C = 1, the centre word, for skip-gram).
            mask: (B, C) bool, `True` for real input words.
            targets: (B,) ids of the words to predict.
            negatives: (B, K) noise ids, required by negative sampling, ignored by the softmax.
            reduction: `"mean"` or `"sum"` over the batch (word2vec's SGD steps once per example: `"sum"`).

        Returns:
            The scalar loss.
        """
        hidden = self.hidden(inputs, mask)  # (B, D)
        if self.config.objective == "softmax":
            # look every row up (instead of reading .weight) so the gradient stays sparse: SparseAdam accepts it
            all_rows = self.output_embeddings(torch.arange(self.config.vocab_size, device=targets.device))  # (V, D)
            losses = full_softmax_loss(hidden, all_rows, targets)  # (B,)
        else:
            if negatives is None:
                raise ValueError("negative sampling needs negatives of shape (B, K)")
            losses = negative_sampling_loss(
                hidden, self.output_embeddings(targets), self.output_embeddings(negatives)
            )  # (B,)
        return losses.sum() if reduction == "sum" else losses.mean()


def make_examples(
    sentences: Sequence[torch.Tensor],
    architecture: Literal["cbow", "skipgram"],
    window: int,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One epoch of examples: `(inputs (N, C), mask (N, C), targets (N,))` with dynamic windows.

    CBOW: one example per position, inputs = its context (C = 2W). Skip-gram: one example per (centre, context)
    pair, inputs = the centre word (C = 1), target = the context word.

    Examples:
        >>> inputs, mask, targets = make_examples([torch.tensor([4, 5, 6])], "skipgram", window=1)
        >>> inputs.shape[1], sorted(zip(inputs[:, 0].tolist(), targets.tolist()))
        (1, [(4, 5), (5, 4), (5, 6), (6, 5)])
    """
    centres, contexts, mask = context_windows(sentences, window, generator)  # (N,), (N, 2W), (N, 2W)
    if architecture == "cbow":
        return contexts, mask, centres
    if architecture != "skipgram":
        raise ValueError(f"architecture must be 'cbow' or 'skipgram', got {architecture!r}")
    inputs = centres.unsqueeze(1).expand_as(contexts)[mask].unsqueeze(1)  # (P, 1), P pairs
    return inputs, torch.ones_like(inputs, dtype=torch.bool), contexts[mask]


def build_optimizer(
    model: Word2Vec, kind: Literal["sgd", "sparse_adam"] = "sparse_adam", lr: float | None = None
) -> torch.optim.Optimizer:
    """An optimiser for sparse gradients: both kinds move only the rows that a batch touched.

    `"sgd"` is word2vec's update (lr 0.025, word2vec's and gensim's `alpha`), used by `train_word2vec` on the loss
    summed over a batch. With batches of hundreds of examples, the summed steps of frequent words add up and all
    vectors drift towards one common direction. `"sparse_adam"` (lr 0.01, the default) normalises the step of every
    row and learns good neighbours in one epoch of batched training.

    Args:
        model: The model.
        kind: `"sgd"` or `"sparse_adam"`.
        lr: Starting learning rate (stored as `initial_lr` in every parameter group); default per kind.

    Returns:
        The optimiser.

    Examples:
        >>> model = Word2Vec(Word2VecConfig(vocab_size=10, dim=4))
        >>> build_optimizer(model, "sgd").param_groups[0]["initial_lr"]
        0.025
    """
    if kind not in ("sgd", "sparse_adam"):
        raise ValueError(f"optimizer kind must be 'sgd' or 'sparse_adam', got {kind!r}")
    lr = lr if lr is not None else (0.025 if kind == "sgd" else 0.01)
    if lr <= 0:
        raise ValueError(f"lr={lr} must be positive")
    params = list(model.parameters())
    optimizer = torch.optim.SGD(params, lr=lr) if kind == "sgd" else torch.optim.SparseAdam(params, lr=lr)
    for group in optimizer.param_groups:
        group["initial_lr"] = lr
    return optimizer


def train_word2vec(
    model: Word2Vec,
    sentences: Sequence[torch.Tensor],
    keep_prob: torch.Tensor,
    noise: torch.Tensor,
    *,
    window: int = 5,
    epochs: int = 5,
    batch_size: int = 256,
    optimizer: torch.optim.Optimizer | None = None,
    seed: int = 0,
    start_epoch: int = 0,
    stop_epoch: int | None = None,
    on_batch: Callable[[dict[str, float]], None] | None = None,
) -> list[dict[str, float]]:
    """Train on mini-batches with sparse updates, the learning rate decaying linearly to ~0 as in word2vec.

    With SGD the loss is *summed* over the batch (word2vec's update: each example takes its own step); with
    SparseAdam it is averaged. See `build_optimizer` for why SparseAdam is the default.

    Every epoch redraws the subsampling and the windows, shuffles the examples and takes one sparse step per batch.
    Epoch `e` uses a generator seeded with `seed + e`, so a run resumed at an epoch boundary equals an uninterrupted
    one (SGD has no state; SparseAdam's moments are restored from a checkpoint of the optimiser).

    Args:
        model: The model (trained in place).
        sentences: 1-D id tensors.
        keep_prob: (V,) subsampling keep probabilities (`keep_probabilities`).
        noise: (V,) noise distribution for negative sampling (`noise_distribution`).
        window: Largest context window W.
        epochs: Total epochs of the run.
        batch_size: Examples per SGD step.
        optimizer: From `build_optimizer` (its `initial_lr` is the starting learning rate); default
            `build_optimizer(model)`. Pass your own to keep SparseAdam's moments across a resume.
        seed: Seed of subsampling, windows, shuffling and noise.
        start_epoch: Skip the epochs before this one (resume).
        stop_epoch: Stop before this epoch (default `epochs`), e.g. to checkpoint after every epoch; the learning
            rate still decays over all `epochs`.
        on_batch: Called after each step with `{"loss", "words", "lr"}` (e.g. to move a progress bar).

    Returns:
        One row per epoch: `{"epoch", "loss", "seconds", "words_per_second"}` (words of the raw corpus); the
        loss is `nan` for an epoch whose subsampling left no example.

    Raises:
        TypeError: If a sentence is not a 1-D tensor of integer ids, `keep_prob` or `noise` is not a tensor, a
            size, `seed` or an epoch is not an int, or `on_batch` is not callable.
        ValueError: If `sentences` is empty, no sentence has two words (no context: nothing to learn), an id
            is outside the vocabulary, `keep_prob` or `noise` is not (V,), `keep_prob` is not probabilities,
            `noise` is not weights >= 0 with a positive sum (negative sampling), a size is not positive, or an
            epoch is negative or `start_epoch` is past `epochs`.
    """
    window, epochs = check_int("window", window, 1), check_int("epochs", epochs, 1)
    batch_size, seed = check_int("batch_size", batch_size, 1), check_int("seed", seed, 0)
    start_epoch = check_int("start_epoch", start_epoch, 0)
    stop_epoch = None if stop_epoch is None else check_int("stop_epoch", stop_epoch, 0)
    if start_epoch > epochs:
        raise ValueError(f"start_epoch={start_epoch} is past the run's last epoch (epochs={epochs})")
    if on_batch is not None and not callable(on_batch):
        raise TypeError(f"on_batch must be a function of the batch's figures, or None; got {type(on_batch).__name__}")
    config = model.config
    check_sentences(sentences, config.vocab_size)
    check_table("keep_prob", keep_prob, config.vocab_size, "probabilities")
    check_table("noise", noise, config.vocab_size, "weights" if config.objective == "negative" else "unused")
    device = model.input_embeddings.weight.device
    flat = torch.cat([s.long() for s in sentences])  # (N,) the corpus
    sentence_of = torch.repeat_interleave(torch.arange(len(sentences)), torch.tensor([len(s) for s in sentences]))
    raw_words = flat.numel()
    opt = optimizer if optimizer is not None else build_optimizer(model)
    reduction: Literal["mean", "sum"] = "sum" if isinstance(opt, torch.optim.SGD) else "mean"
    history = []
    for epoch in range(start_epoch, epochs if stop_epoch is None else min(stop_epoch, epochs)):
        generator = torch.Generator().manual_seed(seed + epoch)
        start = time.perf_counter()
        # subsample the whole corpus at once (one call per sentence would cost more than the training)
        keep = torch.rand(flat.shape, generator=generator, dtype=torch.float64) < keep_prob[flat]  # (N,)
        kept = torch.split(flat[keep], torch.bincount(sentence_of[keep], minlength=len(sentences)).tolist())
        inputs, mask, targets = make_examples(kept, config.architecture, window, generator)
        order = torch.randperm(len(targets), generator=generator)
        n_batches = max(1, -(-len(order) // batch_size))
        total, count = 0.0, 0
        for i in range(n_batches):
            index = order[i * batch_size : (i + 1) * batch_size]
            if index.numel() == 0:
                continue
            progress = (epoch * n_batches + i) / (epochs * n_batches)
            for group in opt.param_groups:  # word2vec: alpha decays linearly, floored at alpha * 1e-4
                group["lr"] = group["initial_lr"] * max(1.0 - progress, 1e-4)
            negatives = None
            if config.objective == "negative":
                negatives = sample_negatives(noise, (index.numel(), config.negative), generator).to(device)
            opt.zero_grad(set_to_none=True)
            loss = model.loss(inputs[index].to(device), mask[index].to(device), targets[index].to(device),
                              negatives, reduction)  # fmt: skip
            loss.backward()
            opt.step()
            batch_loss = loss.item() / (index.numel() if reduction == "sum" else 1)  # mean over the batch
            total += batch_loss * index.numel()
            count += index.numel()
            if on_batch is not None:
                on_batch({"loss": batch_loss, "words": raw_words / n_batches, "lr": opt.param_groups[0]["lr"]})
        seconds = time.perf_counter() - start
        history.append({"epoch": epoch + 1, "loss": total / count if count else math.nan, "seconds": seconds,
                        "words_per_second": raw_words / max(seconds, 1e-9)})  # fmt: skip
    return history
