"""Supervised fine-tuning (SFT): conversations -> trained examples -> batches -> loss, and the exact-match evaluation.

The pieces of the SFT chapter, joined so that the package's [training loop][llmdocs.training.loop.train] can run
them:

1. [tokenize_sft_examples][llmdocs.finetuning.sft.tokenize_sft_examples]: each conversation through the tokenizer's
   chat template ([tokenize_conversation][llmdocs.finetuning.chat.tokenize_conversation]) into ``input_ids`` and
   ``labels``: the assistant's tokens only (prompt-masked, [sft_labels][llmdocs.finetuning.sft_labels.sft_labels]),
   or every token with ``mask_prompt=False`` (the contrast: training on the prompt too).
2. [SFTBatches][llmdocs.finetuning.sft.SFTBatches]: micro-batch ``i`` as a pure function of ``i`` (shuffled per
   epoch, sharded per rank), so a resumed run reads exactly the batches of the unbroken one. The same examples go
   into micro-batch ``i`` padded or packed ([packing][llmdocs.finetuning.packing]): packing changes the work done,
   not what is learnt.
3. [sft_loss_fn][llmdocs.finetuning.sft.sft_loss_fn]: ``loss_fn(model, batch)`` for the loop: the model on a padded
   or packed batch, the mean cross-entropy over the batch's trained tokens, as
   [sft_loss][llmdocs.finetuning.sft_labels.sft_loss] computes it, with logits for the trained positions only.
4. [generate_answers][llmdocs.finetuning.sft.generate_answers] and
   [exact_match_rate][llmdocs.finetuning.sft.exact_match_rate]: greedy answers to held-out prompts, scored by
   exact match; [few_shot_messages][llmdocs.finetuning.sft.few_shot_messages] builds the few-shot baseline prompt.

References:
    Ouyang et al., "Training language models to follow instructions with human feedback", 2022, section 3.5
    (supervised fine-tuning on demonstrations); Hugging Face TRL ``SFTTrainer`` (``assistant_only_loss``,
    ``packing``), whose defaults these follow.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from llmdocs.data.batches import IndexedBatches
from llmdocs.finetuning.chat import _Prefixes, _tokenize_conversation, check_messages, encode_chat
from llmdocs.finetuning.logprobs import _scored_logits
from llmdocs.finetuning.packing import balanced_row_length, collate_padded, pack_examples
from llmdocs.finetuning.sft_labels import IGNORE_INDEX, _check_count, sft_labels

__all__ = [
    "SFTBatches",
    "exact_match_rate",
    "few_shot_messages",
    "generate_answers",
    "generation_prompt",
    "sft_loss_fn",
    "tokenize_sft_examples",
]


def tokenize_sft_examples(
    conversations: Sequence[Sequence[Mapping[str, str]]],
    tokenizer: Any,
    mask_prompt: bool = True,
    max_length: int | None = None,
) -> list[dict[str, list[int]]]:
    """Tokenize conversations into SFT examples: ``input_ids`` and ``labels`` (-100 where nothing is trained).

    Args:
        conversations: Each a list of ``{"role", "content"}`` messages with at least one assistant turn.
        tokenizer: A ``transformers`` tokenizer with a chat template, or our BPE tokenizer with
            ``CHAT_SPECIAL_TOKENS`` (see [chat][llmdocs.finetuning.chat]).
        mask_prompt: Train on the assistant's tokens only (True, the SFT default), or on every token (False:
            the system and user turns and the template's markers too, the contrast of the chapter).
        max_length: Refuse a conversation longer than this many tokens (None: no limit).

    Returns:
        One ``{"input_ids": [...], "labels": [...]}`` per conversation, lists of ints of the same length.

    Raises:
        TypeError: If ``conversations`` is not a list of conversations or ``mask_prompt`` not a bool.
        ValueError: If a conversation is malformed (see ``check_messages``), or longer than ``max_length``.

    Examples:
        >>> from llmdocs.finetuning.chat import CHAT_SPECIAL_TOKENS
        >>> from llmdocs.tokenizers.bpe import BPETokenizer
        >>> tok = BPETokenizer.train("", vocab_size=260, special_tokens=CHAT_SPECIAL_TOKENS)  # bytes + 4 specials
        >>> chat = [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]
        >>> example = tokenize_sft_examples([chat], tok)[0]
        >>> [tok.decode([t]) for t, label in zip(example["input_ids"], example["labels"]) if label != -100]
        ['4', '<|end|>']
    """
    if isinstance(conversations, str | bytes) or not isinstance(conversations, Sequence):
        raise TypeError(f"conversations must be a list of conversations, got {type(conversations).__name__}")
    if not isinstance(mask_prompt, bool):
        raise TypeError(f"mask_prompt must be a bool, got {type(mask_prompt).__name__}")
    _check_max_length(max_length)
    return [
        _tokenize_sft_example(messages, tokenizer, mask_prompt, max_length, f"conversations[{i}]")
        for i, messages in enumerate(conversations)
    ]


def _check_max_length(max_length: int | None) -> None:
    if max_length is not None and (isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 2):
        raise ValueError(f"max_length must be None or an int >= 2, got {max_length!r}")


def _tokenize_sft_example(
    messages: Sequence[Mapping[str, str]],
    tokenizer: Any,
    mask_prompt: bool,
    max_length: int | None,
    name: str,
    prefixes: _Prefixes | None = None,
) -> dict[str, list[int]]:
    """One example of ``tokenize_sft_examples`` (arguments checked), ``name`` in errors; ``prefixes`` as in
    ``_tokenize_conversation``."""
    tokens = _tokenize_conversation(check_messages(messages, name=name), tokenizer, prefixes=prefixes)
    ids = tokens["input_ids"]
    if max_length is not None and len(ids) > max_length:
        raise ValueError(f"{name} is {len(ids)} tokens, longer than max_length={max_length}")
    labels = sft_labels(ids, tokens["assistant_mask"]).tolist() if mask_prompt else list(ids)
    return {"input_ids": list(ids), "labels": labels}


class SFTBatches:
    """Callable ``i -> batch``: micro-batch ``i`` of SFT examples, padded (one per row) or packed.

    The examples of micro-batch ``i`` are the same either way (a per-epoch permutation of ``seed + epoch``, as
    [IndexedBatches][llmdocs.data.batches.IndexedBatches]); with ``packing`` they are packed into rows of at most
    ``max_length`` tokens (best-fit decreasing; as few rows as ``max_length`` allows, balanced to the shortest row
    length that keeps that number: [balanced_row_length][llmdocs.finetuning.packing.balanced_row_length]) instead of
    padded to the longest. The loss of a packed batch equals
    that of the padded one (tested), so the two runs learn the same thing and differ only in the work done.

    With ``grad_accum`` = k, an optimizer step is k micro-batches (the loop's ``TrainConfig.grad_accum``), and each
    micro-batch also carries ``num_items_in_batch``: the trained tokens of all k micro-batches of its step (0-d
    int64), and ``grad_accum`` (0-d int64). [sft_loss_fn][llmdocs.finetuning.sft.sft_loss_fn] then divides by the
    step's count instead of the micro-batch's own, so the step's update is that of one batch of k micro-batches'
    examples, token-weighted (tested), not a mean of micro-batch means. (Under DDP each rank normalises by its own
    step's tokens and DDP averages the ranks, as without accumulation.) The activations saved for the backward pass
    grow with a micro-batch's tokens (a few MB per token for SmolLM2-135M in float32, over its 30 layers), so this
    is how a step of long conversations fits in memory: same update, a fraction of the memory.

    Args:
        examples: ``{"input_ids", "labels"}`` dicts (``tokenize_sft_examples``).
        batch_size: Examples per micro-batch, per rank.
        seed: Seed of the per-epoch shuffles.
        packing: Pack the micro-batch's examples into rows (True) or pad one example per row (False).
        max_length: The longest packed row (packing only); default the longest example.
        pad_id: The id written at padding (masked out of attention and loss).
        rank: This process's rank (DDP).
        world_size: Number of data-parallel processes.
        shuffle: Shuffle the examples each epoch (False: in order, for tests and inspection).
        grad_accum: Micro-batches per optimizer step (equal to the loop's ``TrainConfig.grad_accum``).

    Raises:
        TypeError: If an argument has the wrong type: ``examples`` not a list of dicts with ``input_ids`` and
            ``labels`` (lists or 1-D tensors), ``packing`` or ``shuffle`` not a bool, ``seed`` not an int.
        ValueError: If there are fewer examples than ``batch_size * world_size``, an example is empty, its
            ``input_ids`` and ``labels`` differ in length or it is longer than ``max_length``, ``pad_id`` is not a
            non-negative int, or ``grad_accum`` is not a positive int.

    Examples:
        >>> examples = [{"input_ids": [5, 6, 7], "labels": [-100, 6, 7]}, {"input_ids": [8, 9], "labels": [-100, 9]}]
        >>> padded = SFTBatches(examples, batch_size=2, shuffle=False)(0)
        >>> padded["input_ids"].tolist()
        [[5, 6, 7], [8, 9, 0]]
        >>> packed = SFTBatches(examples, batch_size=2, packing=True, max_length=8, shuffle=False)(0)
        >>> packed["input_ids"].tolist(), packed["position_ids"].tolist()
        ([[5, 6, 7, 8, 9]], [[0, 1, 2, 0, 1]])
    """

    def __init__(
        self,
        examples: Sequence[Mapping[str, Sequence[int]]],
        batch_size: int,
        seed: int = 0,
        packing: bool = False,
        max_length: int | None = None,
        pad_id: int = 0,
        rank: int = 0,
        world_size: int = 1,
        shuffle: bool = True,
        grad_accum: int = 1,
    ) -> None:
        if isinstance(examples, str | bytes) or not isinstance(examples, Sequence) or not examples:
            raise TypeError("examples must be a non-empty list of {'input_ids', 'labels'} dicts")
        if not isinstance(packing, bool):
            raise TypeError(f"packing must be a bool, got {type(packing).__name__}")
        if not isinstance(shuffle, bool):
            raise TypeError(f"shuffle must be a bool, got {type(shuffle).__name__}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int, got {seed!r}")
        if isinstance(pad_id, bool) or not isinstance(pad_id, int) or pad_id < 0:
            raise ValueError(f"pad_id must be a non-negative int (a token id), got {pad_id!r}")
        if isinstance(grad_accum, bool) or not isinstance(grad_accum, int) or grad_accum < 1:
            raise ValueError(f"grad_accum must be a positive int (micro-batches per step), got {grad_accum!r}")
        longest = max(_example_length(e, f"examples[{i}]") for i, e in enumerate(examples))
        if max_length is None:
            max_length = longest
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
            raise ValueError(f"max_length must be a positive int, got {max_length!r}")
        if longest > max_length:
            raise ValueError(f"an example is {longest} tokens, longer than max_length={max_length}")
        self.examples = list(examples)
        self.packing = packing
        self.max_length = max_length
        self.pad_id = pad_id
        self.grad_accum = grad_accum
        # the next-token targets each example trains (its first token is never one, padded or packed)
        self._n_targets = [sum(label != IGNORE_INDEX for label in e["labels"][1:]) for e in self.examples]
        index = torch.arange(len(self.examples))[:, None]  # (N, 1): IndexedBatches picks the rows
        self._order = IndexedBatches(
            index, batch_size=batch_size, seed=seed, rank=rank, world_size=world_size, shuffle=shuffle
        )

    def __len__(self) -> int:
        """Micro-batches per epoch."""
        return len(self._order)

    def __call__(self, index: int) -> dict[str, Tensor]:
        """Micro-batch ``index``: ``input_ids``, ``labels``, ``attention_mask`` and, packed, ``position_ids`` and
        ``document_ids``, each int64 (rows, T); with ``grad_accum`` > 1 also ``num_items_in_batch`` and ``grad_accum``
        (0-d int64)."""
        chosen = [self.examples[int(i)] for i in self._order.indices(index)]
        if self.packing:  # as few rows as max_length allows, each as short as that number of rows allows
            row_length = balanced_row_length([len(e["input_ids"]) for e in chosen], self.max_length)
            batch = pack_examples(chosen, row_length, pad_id=self.pad_id)
        else:
            batch = collate_padded(chosen, pad_id=self.pad_id)
        if self.grad_accum > 1:  # the step's trained tokens, over its grad_accum micro-batches
            first = index - index % self.grad_accum
            step = [int(i) for j in range(first, first + self.grad_accum) for i in self._order.indices(j)]
            batch["num_items_in_batch"] = torch.tensor(sum(self._n_targets[i] for i in step))
            batch["grad_accum"] = torch.tensor(self.grad_accum)
        return batch


def _example_length(example: object, name: str) -> int:
    """The length of an SFT example after a cheap check of its form (the ids themselves are checked when batched)."""
    if not isinstance(example, Mapping) or "input_ids" not in example or "labels" not in example:
        got = f"a dict with keys {sorted(example, key=str)}" if isinstance(example, Mapping) else type(example).__name__
        raise TypeError(f"{name} must be a dict with 'input_ids' and 'labels' (tokenize_sft_examples), got {got}")
    lengths = []
    for key in ("input_ids", "labels"):
        values = example[key]
        if isinstance(values, Tensor) and values.dim() == 1:
            pass
        elif isinstance(values, Tensor) or not isinstance(values, Sequence) or isinstance(values, str | bytes):
            got = f"shape {tuple(values.shape)}" if isinstance(values, Tensor) else type(values).__name__
            raise TypeError(f"{name}[{key!r}] must be a list of ints or a 1-D tensor, got {got}")
        lengths.append(len(values))
    if lengths[0] == 0:
        raise ValueError(f"{name} is empty: its input_ids hold no token")
    if lengths[0] != lengths[1]:
        raise ValueError(f"{name} has {lengths[0]} input_ids but {lengths[1]} labels: they must align")
    return lengths[0]


def _check_sft_batch(batch: Mapping[str, Tensor]) -> None:
    """Refuse a batch that is not SFTBatches' kind: integer (B, T) tensors, ``position_ids`` when packed."""
    if not isinstance(batch, Mapping):
        raise TypeError(f"batch must be a dict of tensors (an SFTBatches micro-batch), got {type(batch).__name__}")
    keys = ["input_ids", "labels", "attention_mask"] + (["position_ids"] if "document_ids" in batch else [])
    missing = [key for key in keys if key not in batch]
    if missing:
        raise ValueError(f"the batch lacks {missing}: an SFTBatches micro-batch has {keys}")
    shape = None
    for key in [*keys, *(["document_ids"] if "document_ids" in batch else [])]:
        value = batch[key]
        if not isinstance(value, Tensor) or value.is_floating_point() or value.is_complex() or value.dim() != 2:
            got = f"{value.dtype} {tuple(value.shape)}" if isinstance(value, Tensor) else type(value).__name__
            raise TypeError(f"batch[{key!r}] must be an integer tensor (B, T), got {got}")
        if shape is not None and value.shape != shape:
            raise ValueError(f"batch[{key!r}] is {tuple(value.shape)}, but batch['input_ids'] is {tuple(shape)}")
        shape = value.shape


def sft_loss_fn(model: nn.Module, batch: Mapping[str, Tensor]) -> tuple[Tensor, int]:
    """The loop's ``loss_fn``: the model on a padded or packed SFT batch, scored on its trained tokens.

    Only the positions whose next token is trained need logits, so the model projects only those
    (``logits_mask``): the loss equals [sft_loss][llmdocs.finetuning.sft_labels.sft_loss] of the full logits
    (tested), for a fraction of the head's work when the answers are short.

    Args:
        model: A causal language model taking ``attention_mask`` (padded) or ``position_ids`` and
            ``document_ids`` (packed), and ``logits_mask``, such as [Llama][llmdocs.models.llama.Llama].
        batch: An [SFTBatches][llmdocs.finetuning.sft.SFTBatches] micro-batch.

    With ``num_items_in_batch`` and ``grad_accum`` in the batch (``SFTBatches(grad_accum=k)``), it returns the sum
    of the micro-batch's token losses times k over the step's trained tokens: the loop divides each micro-batch's
    loss by k and sums the gradients, so the step minimises the mean over all its trained tokens, as one big batch
    would (``num_items_in_batch`` of [sft_loss][llmdocs.finetuning.sft_labels.sft_loss], ``transformers``' name).

    Returns:
        The mean cross-entropy over the batch's trained tokens (0-d; scaled as above under gradient accumulation)
        and the number of real tokens in the batch (for the loop's tokens/s).

    Raises:
        TypeError: If ``batch`` is not a dict of integer (B, T) tensors, or ``num_items_in_batch`` or
            ``grad_accum`` is not an int or a 0-d integer tensor.
        ValueError: If the batch lacks ``input_ids``, ``labels``, ``attention_mask`` (or, packed, ``position_ids``),
            their shapes differ, no token of the batch is trained, a trained label is outside [0, V),
            ``num_items_in_batch`` comes without ``grad_accum``, either is < 1, ``num_items_in_batch`` is smaller
            than this micro-batch's own trained tokens, or the model returns logits of another shape than
            (N trained positions, V) (it ignores ``logits_mask``).
    """
    _check_sft_batch(batch)
    labels = batch["labels"]  # (B, T), aligned with the inputs
    trained = labels[:, 1:] != IGNORE_INDEX  # (B, T - 1): position t predicts the trained token t + 1
    if not trained.any():
        raise ValueError("no token of this batch is trained (every label is -100): nothing to learn from")
    if "num_items_in_batch" in batch:  # checked before the forward pass: a bad count would waste it
        if "grad_accum" not in batch:
            raise ValueError(
                "the batch has num_items_in_batch but no grad_accum: SFTBatches(grad_accum=k) writes both (the "
                "loss is scaled by grad_accum / num_items_in_batch)"
            )
        grad_accum = _check_count(batch["grad_accum"], "batch['grad_accum']")
        num_items = _check_count(batch["num_items_in_batch"], "batch['num_items_in_batch']")
        own = int(trained.sum())
        if num_items < own:
            raise ValueError(
                f"batch['num_items_in_batch']={num_items} is smaller than this micro-batch's own {own} trained "
                "tokens: it must count the trained tokens of the whole step, this micro-batch's included"
            )
    if "document_ids" in batch:  # packed: attention stays inside each example, positions restart per example
        inputs = {"position_ids": batch["position_ids"], "document_ids": batch["document_ids"]}
    else:
        inputs = {"attention_mask": batch["attention_mask"]}
    # the logits of the trained positions only: (N, V), and their N targets
    logits, targets, _ = _scored_logits(model, batch["input_ids"], labels, "trained", "batch['labels']", **inputs)
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()  # score half-precision logits in float32, as sft_loss does
    if "num_items_in_batch" in batch:  # one of grad_accum micro-batches: normalise by the whole step's tokens
        total = F.cross_entropy(logits, targets, reduction="sum")  # (N, V) -> sum over the N trained tokens
        loss = total * grad_accum / num_items
    else:
        loss = F.cross_entropy(logits, targets)  # (N, V) -> mean over the N trained tokens
    return loss, int(batch["attention_mask"].sum())


def few_shot_messages(
    shots: Sequence[Sequence[Mapping[str, str]]], query: Sequence[Mapping[str, str]]
) -> list[dict[str, str]]:
    """A few-shot chat prompt: each shot's user and assistant turns, then the query's turns.

    The system message, if any, is the query's (shots' own system messages are dropped).

    Args:
        shots: Solved conversations (user, assistant), shown as earlier turns: a list of conversations, each
            ending with its assistant turn (``[]``: zero-shot).
        query: The conversation to answer: optional system message, then the user turn (no answer).

    Returns:
        The messages, to render with ``add_generation_prompt=True``.

    Raises:
        TypeError: If ``shots`` is not a list of conversations (e.g. one conversation), or a message is malformed
            (see [check_messages][llmdocs.finetuning.chat.check_messages]).
        ValueError: If a conversation is malformed (roles, order), a shot does not end with an assistant turn, or
            the query does not end with a user turn.

    Examples:
        >>> shot = [{"role": "user", "content": "1+1?"}, {"role": "assistant", "content": "2"}]
        >>> [m["content"] for m in few_shot_messages([shot], [{"role": "user", "content": "2+2?"}])]
        ['1+1?', '2', '2+2?']
    """
    shots = _check_conversations(shots, "shots", last_role="assistant")
    query = _check_ends_with(query, "query", last_role="user")
    system = [m for m in query if m["role"] == "system"]
    turns = [m for shot in shots for m in shot if m["role"] != "system"]
    return [*system, *turns, *(m for m in query if m["role"] != "system")]


def _check_ends_with(messages: object, name: str, last_role: str) -> list[dict[str, str]]:
    """``check_messages``, and the last turn must be ``last_role``'s: a solved shot, or a prompt still to answer."""
    checked = check_messages(messages, name=name)
    if checked[-1]["role"] != last_role:
        why = "a shot is solved: it ends with its answer" if last_role == "assistant" else "the model answers it"
        raise ValueError(f"{name}'s last turn is {checked[-1]['role']!r}, expected {last_role!r} ({why})")
    return checked


def _check_conversations(conversations: object, name: str, last_role: str) -> list[list[dict[str, str]]]:
    """A list of conversations, each checked by ``_check_ends_with`` and named ``name[i]`` in errors."""
    if isinstance(conversations, str | bytes) or not isinstance(conversations, list | tuple):
        raise TypeError(f"{name} must be a list of conversations, got {type(conversations).__name__}")
    if conversations and isinstance(conversations[0], Mapping):
        raise TypeError(
            f"{name} must be a list of conversations (lists of messages), got a list of dicts: to pass one "
            "conversation, wrap it in a list"
        )
    return [_check_ends_with(messages, f"{name}[{i}]", last_role) for i, messages in enumerate(conversations)]


def generation_prompt(messages: Sequence[Mapping[str, str]], tokenizer: Any) -> list[int]:
    """The token ids that ask the model for the next assistant turn (the chat template's generation prompt).

    Args:
        messages: The conversation so far, ending with a user turn.
        tokenizer: A ``transformers`` tokenizer with a chat template (or our ``BPETokenizer`` with the chat markers).

    Returns:
        The prompt's ids.

    Raises:
        TypeError: If ``tokenizer`` has no chat template, or a message is malformed.
        ValueError: If the conversation breaks [check_messages][llmdocs.finetuning.chat.check_messages]' rules, does
            not end with a user turn, or a content holds one of the tokenizer's special tokens (it would fake a turn).
    """
    checked = _check_ends_with(messages, "messages", last_role="user")
    return encode_chat(checked, tokenizer, add_generation_prompt=True)  # checks the tokenizer and the contents


@torch.no_grad()
def generate_answers(
    model: nn.Module,
    tokenizer: Any,
    prompts: Sequence[Sequence[Mapping[str, str]]],
    max_new_tokens: int = 16,
    batch_size: int = 16,
    progress: Callable[[int], None] | None = None,
) -> list[str]:
    """Greedy answers of a chat model to each prompt, decoded and stripped of the end-of-turn token.

    Args:
        model: A causal language model ([Llama][llmdocs.models.llama.Llama]).
        tokenizer: Its ``transformers`` tokenizer (chat template, ``eos_token_id`` ends an answer).
        prompts: Conversations ending with a user turn.
        max_new_tokens: Most tokens per answer.
        batch_size: Prompts generated together (left-padded).
        progress: Called with the number of prompts done after each batch.

    Returns:
        One answer per prompt (``skip_special_tokens`` decoding).

    Raises:
        TypeError: If ``prompts`` is not a list of conversations (e.g. one conversation), a message is malformed,
            ``tokenizer`` has no chat template, ``max_new_tokens`` or ``batch_size`` is not an int, or ``progress``
            is not callable.
        ValueError: If a prompt is malformed (see [check_messages][llmdocs.finetuning.chat.check_messages]), does
            not end with a user turn, holds a special token in a content, or does not fit the model's context with
            ``max_new_tokens`` (it is never cropped), or ``max_new_tokens`` or ``batch_size`` is < 1.
    """
    from llmdocs.generation import generate  # generation imports the models: keep this module light to import

    for arg, value in (("max_new_tokens", max_new_tokens), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{arg} must be a positive int, got {value!r}")
        if value < 1:
            raise ValueError(f"{arg} must be a positive int, got {value}")
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be None or a callable, got {type(progress).__name__}")
    prompts = _check_conversations(prompts, "prompts", last_role="user")  # all checked before generating any
    encoded = [generation_prompt(p, tokenizer) for p in prompts]  # checks the tokenizer and the contents too
    context = getattr(getattr(model, "config", None), "context_length", None)
    for i, ids in enumerate(encoded):
        if context is not None and len(ids) + max_new_tokens > context:  # never crop away the instruction
            raise ValueError(
                f"prompts[{i}] is {len(ids)} tokens: with max_new_tokens={max_new_tokens} it does not fit the model's "
                f"context_length={context}"
            )
    answers: list[str] = []
    for start in range(0, len(prompts), batch_size):
        ids = encoded[start : start + batch_size]
        out = generate(model, ids, max_new_tokens=max_new_tokens, do_sample=False, stop_tokens=[tokenizer.eos_token_id],
                       crop=False)  # fmt: skip
        answers += [tokenizer.decode(row, skip_special_tokens=True) for row in out]
        if progress is not None:
            progress(len(answers))
    return answers


def exact_match_rate(
    predictions: Sequence[str], references: Sequence[str], match: Callable[[str, str], bool] | None = None
) -> float:
    """The fraction of predictions that match their reference (default: equal after stripping whitespace).

    Args:
        predictions: The model's answers.
        references: The reference answers, as many.
        match: ``match(prediction, reference) -> bool``, e.g. ``llmdocs.data.iso_dates.exact_match``.

    Returns:
        A fraction in [0, 1].

    Raises:
        TypeError: If ``predictions`` or ``references`` is not a list or tuple of strings (a single string is
            refused: it would be scored character by character).
        ValueError: If the lengths differ or there are no predictions.

    Examples:
        >>> exact_match_rate(["2024-03-05 ", "2024-03-06"], ["2024-03-05", "2024-03-05"])
        0.5
    """
    for name, values in (("predictions", predictions), ("references", references)):
        if not isinstance(values, list | tuple):
            raise TypeError(
                f"{name} must be a list or tuple of strings (not a str: one answer goes in a list), "
                f"got {type(values).__name__}"
            )
        for i, value in enumerate(values):
            if not isinstance(value, str):
                raise TypeError(f"{name} must be a list or tuple of strings, {name}[{i}] is {type(value).__name__}")
    if len(predictions) != len(references):
        raise ValueError(f"predictions ({len(predictions)}) and references ({len(references)}) must pair up")
    if not predictions:
        raise ValueError("exact_match_rate of no predictions is undefined")
    match = match or (lambda p, r: p.strip() == r.strip())
    return sum(bool(match(p, r)) for p, r in zip(predictions, references, strict=True)) / len(predictions)
