"""Masked-language modelling (MLM), BERT's first pre-training task: hide 15% of the tokens, predict them.

A left-to-right model predicts token t from tokens < t. BERT sees the whole sentence at once, so it would trivially
"predict" a token it can see. Devlin et al. (2019, section 3.1, "Task #1") instead *choose* 15% of the tokens at
random and corrupt them; the model must predict the original token at those positions only:

- 80% of the chosen tokens become `[MASK]`;
- 10% become a random token (so the model cannot trust any token it sees: each might be wrong);
- 10% stay unchanged (so it also learns a representation of the tokens as they are: `[MASK]` never occurs when
  the model is fine-tuned).

The loss is the cross-entropy at the chosen positions only, averaged over them:

    L_MLM = -(1 / |M|) sum_{i in M} log p(x_i | x_corrupted),   M = the chosen positions

Positions that are not chosen carry the label `IGNORE_INDEX` (-100), the `ignore_index` of PyTorch's
cross-entropy and the convention of Hugging Face's `labels`.

**Whole-word masking.** WordPiece cuts `"philammon"` into `phil ##am ##mon`; masking `##am` alone lets the
model fill it in from the other two pieces. Google's later BERT release (and Cui et al., 2019, for Chinese) chooses
whole words instead: a word-start token and the `##` pieces that follow it are chosen (or not) together. The
choice is still made with probability 15% per word, so 15% of the tokens are chosen on average; the 80/10/10
corruption is then drawn per token, as in Google's `create_pretraining_data.py`.

References:
    Devlin et al., "BERT: Pre-training of Deep Bidirectional Transformers for Language Understanding" (2019),
    section 3.1 and appendix A.1; google-research/bert `create_pretraining_data.py` (whole-word masking);
    Cui et al., "Pre-Training with Whole Word Masking for Chinese BERT" (2019).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Set

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["IGNORE_INDEX", "continuation_mask", "mask_tokens", "mlm_accuracy", "mlm_loss"]

IGNORE_INDEX = -100
"""Label of a position that is not predicted (PyTorch's `cross_entropy` default `ignore_index`)."""

MASK_FRACTION, RANDOM_FRACTION = 0.8, 0.1
"""Of the chosen tokens: 80% become `[MASK]`, 10% a random token, the other 10% stay (Devlin et al., 3.1)."""

MAX_VOCAB_ID = 2**24 - 1
"""The largest id `continuation_mask` accepts: 16.7M ids, 64 times the largest vocabularies in use (256k)."""


def continuation_mask(vocab: Sequence[str] | Mapping[str, int]) -> Tensor:
    """Which ids are WordPiece continuation pieces (`"##..."`): the pieces that continue a word.

    Args:
        vocab: The tokens in id order (the lines of `vocab.txt`), or `token -> id` (a tokenizer's `.vocab`;
            ids missing from it are not continuations).

    Returns:
        (V,) bool, `True` at the ids of tokens that start with `##` (V = the largest id + 1).

    Raises:
        TypeError: If `vocab` is a string, neither a sequence nor a mapping (a `set` has no order, so its tokens
            have no ids), or holds non-strings.
        ValueError: If `vocab` is empty, or a mapping's id is not an integer in `[0, MAX_VOCAB_ID]` (a huge id
            would make a (V,) mask of that many entries).

    Examples:
        >>> continuation_mask(["[PAD]", "play", "##ing", "#", "##"])
        tensor([False, False,  True, False,  True])
    """
    if isinstance(vocab, str | bytes):
        raise TypeError("vocab must be a list of tokens or a dict token -> id, not a string")
    if not isinstance(vocab, Sequence | Mapping):
        why = ": a set has no order, so its tokens have no ids" if isinstance(vocab, Set) else ""
        raise TypeError(
            "vocab must be the tokens in id order (a list) or a mapping token -> id (a tokenizer's .vocab), got "
            f"{type(vocab).__name__}{why}"
        )
    pairs = list(vocab.items()) if isinstance(vocab, Mapping) else [(t, i) for i, t in enumerate(vocab)]
    if not pairs:
        raise ValueError("vocab is empty")
    for token, i in pairs:
        if not isinstance(token, str):
            raise TypeError(f"vocabulary tokens must be str, got {type(token).__name__} {token!r}")
        if isinstance(i, bool) or not isinstance(i, int) or i < 0:
            raise ValueError(f"vocabulary ids must be integers >= 0, got {i!r} for token {token!r}")
        if i > MAX_VOCAB_ID:
            raise ValueError(
                f"vocabulary ids must be at most MAX_VOCAB_ID={MAX_VOCAB_ID:,}, got {i:,} for token {token!r}: the "
                "mask has one entry per id up to the largest"
            )
    is_continuation = torch.zeros(max(i for _, i in pairs) + 1, dtype=torch.bool)  # (V,)
    for token, i in pairs:
        is_continuation[i] = token.startswith("##")
    return is_continuation


def mask_tokens(
    input_ids: Tensor,
    *,
    vocab_size: int,
    mask_token_id: int,
    special_tokens_mask: Tensor,
    mlm_probability: float = 0.15,
    is_continuation: Tensor | None = None,
    generator: torch.Generator | None = None,
    at_least_one: bool = True,
) -> tuple[Tensor, Tensor]:
    """Choose tokens to predict and corrupt them 80/10/10 (BERT's MLM input), returning new tensors.

    Each maskable token (not in `special_tokens_mask`) is chosen with probability `mlm_probability`; with
    `is_continuation`, each *word* is (a word-start token and the `##` pieces right after it). Of the chosen
    tokens, each independently becomes `[MASK]` with probability 0.8, a token drawn uniformly from
    `[0, vocab_size)` with probability 0.1 (any id, as Hugging Face's `DataCollatorForLanguageModeling` and
    Google's code; it may happen to be the original token), and stays with probability 0.1.

    **Rows with nothing chosen.** With `at_least_one=True` (the default) a row that has maskable tokens but
    drew none gets exactly one: the token (or whole word) whose random draw was the smallest, i.e. one chosen
    uniformly at random. Google's `create_pretraining_data.py` also predicts at least one token per sequence
    (`max(1, round(n * 0.15))`), and a batch of short rows then never comes out with no prediction at all, which
    [`mlm_loss`][llmdocs.training.masked_lm.mlm_loss] refuses. It changes nothing in long rows (a row of 100
    tokens draws none with probability 0.85^100 = 9e-8). `at_least_one=False` is Hugging Face's rule: such a
    row has no label. A row without maskable tokens (only padding) never has a label.

    Args:
        input_ids: (B, T) token ids. Not modified.
        vocab_size: V, the number of ids random replacements are drawn from.
        mask_token_id: The id of `[MASK]`.
        special_tokens_mask: (B, T) bool, `True` at tokens never chosen: `[CLS]`, `[SEP]`, `[PAD]`.
        mlm_probability: Probability that a token (or word) is chosen, in (0, 1): 0.15 in BERT.
        is_continuation: (V',) bool, `True` at the ids of `##` pieces, for whole-word masking (see
            [`continuation_mask`][llmdocs.training.masked_lm.continuation_mask]); `None` chooses tokens
            independently. A `##` piece right after a special token or at the start of a row starts a word.
        generator: The source of randomness (same generator state -> same result); `None` uses torch's global
            generator.
        at_least_one: Give every row with maskable tokens at least one chosen token (see above).

    Returns:
        `(masked_input_ids, labels)`, both (B, T) long: the corrupted ids, and the original id at the chosen
        positions with `IGNORE_INDEX` everywhere else.

    Raises:
        TypeError: If `input_ids` is not an integer tensor, `special_tokens_mask` or `is_continuation` not bool.
        ValueError: If `input_ids` is not 2-D, `special_tokens_mask` has another shape, `mlm_probability` is
            outside (0, 1), `vocab_size` < 1, `mask_token_id` is not in `[0, vocab_size)`, or an id has no entry
            in `is_continuation`.

    Examples:
        >>> ids = torch.tensor([[2, 5, 6, 7, 8, 3, 0]])  # [CLS] w1 w2 w3 w4 [SEP] [PAD]
        >>> special = torch.tensor([[True, False, False, False, False, True, True]])
        >>> g = torch.Generator().manual_seed(0)
        >>> masked, labels = mask_tokens(ids, vocab_size=10, mask_token_id=4, special_tokens_mask=special,
        ...                              mlm_probability=0.5, generator=g)
        >>> masked, labels
        (tensor([[2, 5, 4, 4, 4, 3, 0]]), tensor([[-100, -100,    6,    7,    8, -100, -100]]))
        >>> is_continuation = torch.tensor([False] * 7 + [True] * 3)  # ids 7, 8, 9 are "##" pieces
        >>> g = torch.Generator().manual_seed(3)
        >>> mask_tokens(ids, vocab_size=10, mask_token_id=4, special_tokens_mask=special, mlm_probability=0.5,
        ...             is_continuation=is_continuation, generator=g)  # the word 6 ##7 ##8 whole; 6 -> random 5
        (tensor([[2, 4, 5, 4, 4, 3, 0]]), tensor([[-100,    5,    6,    7,    8, -100, -100]]))
    """
    _check_mask_arguments(input_ids, vocab_size, mask_token_id, special_tokens_mask, mlm_probability)
    input_ids = input_ids.long()  # int64 whatever came in: a narrow dtype cannot hold every random id of V
    B, T = input_ids.shape
    device = input_ids.device
    maskable = ~special_tokens_mask  # (B, T)
    draws = torch.rand(B, T, generator=generator, device=device)  # (B, T): token t is chosen if its draw < p
    if is_continuation is not None:
        _check_continuation(is_continuation, input_ids)
        # A maskable "##" piece right after a maskable token joins that token's word; any other maskable token
        # starts a word. Every token of a word then uses the draw of its word's first token.
        follows_maskable = torch.zeros_like(maskable)
        follows_maskable[:, 1:] = maskable[:, :-1]
        is_start = maskable & ~(is_continuation.to(device)[input_ids] & follows_maskable)  # (B, T)
        positions = torch.arange(T, device=device).expand(B, T)
        word_start = torch.where(is_start, positions, 0).cummax(dim=1).values  # (B, T): start of t's word
        draws = draws.gather(1, word_start)  # (B, T)
    else:
        is_start = maskable
    chosen = maskable & (draws < mlm_probability)  # (B, T)
    if at_least_one:
        # Rows with maskable tokens and nothing chosen: take the word start with the smallest draw (uniform).
        empty = is_start.any(dim=1) & ~chosen.any(dim=1)  # (B,)
        if empty.any():
            first = torch.where(is_start, draws, torch.inf).argmin(dim=1, keepdim=True)  # (B, 1)
            if is_continuation is not None:  # the whole word of that start
                pick = word_start == first
            else:
                pick = torch.zeros_like(chosen).scatter_(1, first, True)
            chosen |= pick & maskable & empty[:, None]

    labels = torch.where(chosen, input_ids.long(), IGNORE_INDEX)  # (B, T)
    corruption = torch.rand(B, T, generator=generator, device=device)  # (B, T): 80/10/10 per token
    random_ids = torch.randint(vocab_size, (B, T), generator=generator, device=device, dtype=input_ids.dtype)
    to_mask = chosen & (corruption < MASK_FRACTION)
    to_random = chosen & (corruption >= MASK_FRACTION) & (corruption < MASK_FRACTION + RANDOM_FRACTION)
    masked = torch.where(to_mask, mask_token_id, input_ids)  # a new tensor: input_ids is untouched
    masked = torch.where(to_random, random_ids, masked)
    return masked, labels


def _check_mask_arguments(
    input_ids: Tensor, vocab_size: int, mask_token_id: int, special_tokens_mask: Tensor, mlm_probability: float
) -> None:
    """Fail early, in the caller's terms, on arguments `mask_tokens` cannot use."""
    if not isinstance(input_ids, Tensor) or input_ids.dtype.is_floating_point or input_ids.dtype == torch.bool:
        raise TypeError(f"input_ids must be an integer tensor of token ids, got {_describe(input_ids)}")
    if input_ids.dim() != 2:
        raise ValueError(f"input_ids must have shape (B, T), got {tuple(input_ids.shape)}")
    if not isinstance(special_tokens_mask, Tensor) or special_tokens_mask.dtype != torch.bool:
        raise TypeError(f"special_tokens_mask must be a bool tensor, got {_describe(special_tokens_mask)}")
    if special_tokens_mask.shape != input_ids.shape:
        raise ValueError(
            f"special_tokens_mask must have the shape of input_ids {tuple(input_ids.shape)}, "
            f"got {tuple(special_tokens_mask.shape)}"
        )
    if isinstance(mlm_probability, bool) or not isinstance(mlm_probability, int | float):
        raise TypeError(f"mlm_probability must be a number, got {type(mlm_probability).__name__} {mlm_probability!r}")
    if not 0.0 < mlm_probability < 1.0:
        raise ValueError(f"mlm_probability must be in (0, 1) (BERT: 0.15), got {mlm_probability}")
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 1:
        raise ValueError(f"vocab_size must be a positive int, got {vocab_size!r}")
    if isinstance(mask_token_id, bool) or not isinstance(mask_token_id, int):
        raise TypeError(f"mask_token_id must be an int, got {type(mask_token_id).__name__} {mask_token_id!r}")
    if not 0 <= mask_token_id < vocab_size:
        raise ValueError(f"mask_token_id={mask_token_id} is not an id of the vocabulary [0, {vocab_size})")
    if input_ids.numel() and (int(input_ids.min()) < 0 or int(input_ids.max()) >= vocab_size):
        raise ValueError(
            f"input_ids must be ids in [0, vocab_size={vocab_size}), got values from {int(input_ids.min())} to "
            f"{int(input_ids.max())}"
        )


def _check_continuation(is_continuation: Tensor, input_ids: Tensor) -> None:
    """`is_continuation` must be a 1-D bool tensor with an entry for every id in `input_ids`."""
    if not isinstance(is_continuation, Tensor) or is_continuation.dtype != torch.bool or is_continuation.dim() != 1:
        raise TypeError(f"is_continuation must be a 1-D bool tensor (V,), got {_describe(is_continuation)}")
    if input_ids.numel() and not 0 <= int(input_ids.min()) <= int(input_ids.max()) < len(is_continuation):
        raise ValueError(
            f"input_ids holds ids outside is_continuation's {len(is_continuation)} entries "
            f"(min {int(input_ids.min())}, max {int(input_ids.max())})"
        )


def _describe(value: object) -> str:
    """`"a torch.float32 tensor of shape (2, 3)"` or the type name."""
    if isinstance(value, Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    return type(value).__name__


def _check_logits_labels(logits: Tensor, labels: Tensor) -> None:
    """Logits (..., V) float and labels (...) integer, with matching leading shapes."""
    if not isinstance(logits, Tensor) or not logits.dtype.is_floating_point:
        raise TypeError(f"logits must be a float tensor (..., V), got {_describe(logits)}")
    if not isinstance(labels, Tensor) or labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise TypeError(f"labels must be an integer tensor of token ids, got {_describe(labels)}")
    if logits.dim() == 0 or logits.shape[-1] == 0:
        raise ValueError(
            f"logits must have a last dimension of V >= 1 vocabulary scores, (..., V), got shape {tuple(logits.shape)}"
        )
    if labels.shape != logits.shape[:-1]:
        raise ValueError(
            f"labels must have the shape of logits without its last (vocabulary) dimension: logits "
            f"{tuple(logits.shape)} needs labels {tuple(logits.shape[:-1])}, got {tuple(labels.shape)}"
        )


def _check_label_range(targets: Tensor, V: int) -> None:
    """The labels of the predicted positions (M,) are token ids of a V-token vocabulary."""
    if targets.numel() and (int(targets.min()) < 0 or int(targets.max()) >= V):
        bad = targets[(targets < 0) | (targets >= V)].unique()[:5].tolist()
        raise ValueError(f"labels must be ids in [0, {V}) or IGNORE_INDEX={IGNORE_INDEX}, got {bad}")


def mlm_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean cross-entropy over the predicted positions: L = -(1/|M|) sum_{i in M} log softmax(logits_i)[labels_i].

    The same number as Hugging Face's `BertForPreTraining` masked-LM loss (`CrossEntropyLoss()` with its default
    `ignore_index=-100`, over the flattened positions): positions labelled `IGNORE_INDEX` are skipped, and the
    mean is over the predicted positions of the whole batch (a row with more of them weighs more).

    Args:
        logits: (B, T, V) scores at every position, or (M, V) at the predicted positions only (any (..., V)).
        labels: (B, T), or (M,): the original ids, `IGNORE_INDEX` where nothing is predicted.

    Returns:
        The scalar loss.

    Raises:
        TypeError: If `logits` is not a float tensor or `labels` not an integer one.
        ValueError: If `logits` has no vocabulary dimension V >= 1 (a 0-d tensor), the shapes do not match, a
            label is outside `[0, V)` (other than `IGNORE_INDEX`), or no position is predicted (the mean of nothing
            would be a silent NaN).

    References:
        Devlin et al. (2019), section 3.1 "Task #1: Masked LM".

    Examples:
        >>> logits = torch.tensor([[[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]]])  # (B=1, T=2, V=3)
        >>> round(mlm_loss(logits, torch.tensor([[0, IGNORE_INDEX]])).item(), 4)  # -log(e^2 / (e^2 + 2))
        0.2395
    """
    _check_logits_labels(logits, labels)
    V = logits.shape[-1]
    predicted = labels != IGNORE_INDEX  # (...)
    if not predicted.any():
        raise ValueError(
            f"no position is predicted: every label is IGNORE_INDEX={IGNORE_INDEX} (labels of shape "
            f"{tuple(labels.shape)}); mask at least one token per batch, e.g. mask_tokens(..., at_least_one=True)"
        )
    _check_label_range(labels[predicted], V)
    return F.cross_entropy(logits.reshape(-1, V), labels.reshape(-1).long(), ignore_index=IGNORE_INDEX)


def mlm_accuracy(logits: Tensor, labels: Tensor) -> tuple[int, int]:
    """How many predicted positions the model gets right (argmax), and how many there are.

    Return counts rather than a ratio, so that batches add up: accuracy = sum(correct) / sum(total).

    Args:
        logits: (..., V) scores, e.g. (B, T, V).
        labels: (...) ids, `IGNORE_INDEX` where nothing is predicted.

    Returns:
        `(correct, total)`: argmax hits at the predicted positions, and the number of predicted positions.

    Raises:
        TypeError, ValueError: As [`mlm_loss`][llmdocs.training.masked_lm.mlm_loss] for types, shapes and label
            ranges (a batch without predictions gives `(0, 0)`).

    Examples:
        >>> logits = torch.tensor([[[2.0, 0.0], [0.0, 1.0], [5.0, 0.0]]])  # (1, 3, 2)
        >>> mlm_accuracy(logits, torch.tensor([[0, 0, IGNORE_INDEX]]))
        (1, 2)
    """
    _check_logits_labels(logits, labels)
    predicted = labels != IGNORE_INDEX
    _check_label_range(labels[predicted], logits.shape[-1])
    correct = (logits.argmax(dim=-1) == labels) & predicted
    return int(correct.sum()), int(predicted.sum())
