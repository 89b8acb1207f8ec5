"""Preference pairs for training: tokenized, batched as chosen rows then rejected rows, and the two pair losses.

A preference pair is a prompt x with a chosen answer y_w and a rejected one y_l
([PreferencePair][llmdocs.data.llamafactory.PreferencePair]). Both answers are tokenized as SFT examples of the
same conversation ([tokenize_sft_examples][llmdocs.finetuning.sft.tokenize_sft_examples]: the chat template, labels
-100 outside the answer), so the prompt tokens are identical and only the answers are scored. A batch of B pairs is
one padded tensor of 2B rows, the B chosen rows first and then the B rejected rows, so that one forward pass scores
both halves (TRL's ``concatenated_forward``):

    input_ids (2B, T) = [chosen_1 .. chosen_B, rejected_1 .. rejected_B]

Two losses read such a batch:

- [reward_loss_fn][llmdocs.finetuning.preferences.reward_loss_fn]: a reward model scores the 2B rows
  ([sequence_rewards][llmdocs.finetuning.preferences.sequence_rewards]), and the
  [Bradley-Terry loss][llmdocs.finetuning.bradley_terry] compares the halves;
- [dpo_loss_fn][llmdocs.finetuning.preferences.dpo_loss_fn]: the policy's and the reference's log-probabilities
  of each answer ([response_log_probs][llmdocs.finetuning.logprobs.response_log_probs]) go into the
  [DPO loss][llmdocs.finetuning.dpo]. The reference is the policy with its LoRA adapters switched off
  ([disable_adapters][llmdocs.finetuning.lora.disable_adapters]) unless another model is given: one model in
  memory serves as both, as peft + TRL do (``ref_model=None`` with a PEFT model).

Both follow the training loop's ``loss_fn(model, batch) -> (loss, n_tokens)`` convention
([train][llmdocs.training.loop.train]).

A reward model can also be an encoder: a BERT classifier with one output read on [CLS] instead of a decoder read
at its last token (Hugging Face's ``BertForSequenceClassification(num_labels=1)``, a model TRL's ``RewardTrainer``
can train). Its pairs are encoded as sentence pairs ``[CLS] prompt [SEP] answer
[SEP]`` ([encode_preference_pairs][llmdocs.finetuning.preferences.encode_preference_pairs]) and batched by the same
``PreferenceBatches``: the labelled tokens (the answer and its [SEP]) are segment B.

References:
    Ouyang et al., "Training language models to follow instructions with human feedback", NeurIPS 2022, section
    3.5 (all pairs of a prompt in one batch, one forward pass each); Rafailov et al., "Direct Preference
    Optimization", NeurIPS 2023; Hugging Face TRL ``DPOTrainer.concatenated_forward``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from llmdocs.data.batches import IndexedBatches
from llmdocs.data.llamafactory import PreferencePair
from llmdocs.finetuning.bradley_terry import bradley_terry_loss
from llmdocs.finetuning.chat import _Prefixes, check_messages
from llmdocs.finetuning.dpo import DPOLoss, check_dpo_settings, dpo_loss
from llmdocs.finetuning.logprobs import response_log_probs
from llmdocs.finetuning.lora import disable_adapters
from llmdocs.finetuning.packing import _check_examples, _check_pad_id, collate_padded
from llmdocs.finetuning.reward_model import RewardModel, last_token_index
from llmdocs.finetuning.sft import _check_max_length, _tokenize_sft_example
from llmdocs.finetuning.sft_labels import IGNORE_INDEX
from llmdocs.models.bert import BertForSequenceClassification
from llmdocs.tokenizers.truncation import truncate_longest_first
from llmdocs.tokenizers.wordpiece import WordPieceTokenizer
from llmdocs.training.distributed import unwrap_model

__all__ = [
    "PreferenceBatches",
    "dpo_loss_fn",
    "encode_preference_pairs",
    "reward_loss_fn",
    "sequence_rewards",
    "tokenize_preference_pairs",
]

Example = dict[str, list[int]]


def tokenize_preference_pairs(
    pairs: Sequence[PreferencePair], tokenizer: Any, max_length: int | None = None
) -> list[dict[str, Example]]:
    """Tokenize each pair's two conversations: ``{"chosen": {"input_ids", "labels"}, "rejected": {...}}``.

    Each side ends at its answer's end-of-turn token, as a completion sampled from the policy does (generation stops
    there): what the chat template writes after it (SmolLM2's ``"\\n"`` after ``<|im_end|>``) is cut. A reward
    model reads its score at a row's last token, so it is trained at the very position where PPO will read it on
    the policy's samples; the log-probabilities of DPO do not change (the cut tokens are after every scored one).

    Args:
        pairs: [PreferencePair][llmdocs.data.llamafactory.PreferencePair]s (LLaMA-Factory's demo sets, or the date
            task's pairs).
        tokenizer: A ``transformers`` tokenizer with a chat template, or our BPE tokenizer with
            ``CHAT_SPECIAL_TOKENS`` (as ``tokenize_sft_examples``).
        max_length: Refuse a pair whose longer conversation exceeds this many tokens (None: no limit).

    Returns:
        One dict per pair; each side's ``labels`` are -100 except on the answer and its end-of-turn token, the last
        token of the side.

    Raises:
        TypeError: If ``pairs`` is not a sequence of PreferencePair.
        ValueError: If a conversation is malformed or too long, or the two answers are identical.

    Examples:
        >>> from llmdocs.finetuning.chat import CHAT_SPECIAL_TOKENS
        >>> from llmdocs.tokenizers.bpe import BPETokenizer
        >>> tok = BPETokenizer.train("", vocab_size=260, special_tokens=CHAT_SPECIAL_TOKENS)
        >>> pair = PreferencePair(({"role": "user", "content": "2+2?"},), chosen="4", rejected="5")
        >>> example = tokenize_preference_pairs([pair], tok)[0]
        >>> [tok.decode([t]) for t, y in zip(example["chosen"]["input_ids"], example["chosen"]["labels"]) if y >= 0]
        ['4', '<|end|>']
    """
    _check_pairs(pairs)
    _check_max_length(max_length)
    examples = []
    for i, pair in enumerate(pairs):
        prefixes: _Prefixes = {}  # the sides share every turn before the answer: each is encoded once
        chosen, rejected = (
            _tokenize_sft_example(messages, tokenizer, True, max_length, f"conversations[{i}]", prefixes)
            for messages in (pair.chosen_messages(), pair.rejected_messages())
        )
        examples.append({"chosen": _end_at_answer(chosen), "rejected": _end_at_answer(rejected)})
    return examples


def _end_at_answer(example: Example) -> Example:
    """An SFT example cut after its last labelled token (the answer's end-of-turn token)."""
    labels = example["labels"]
    end = len(labels) - next(i for i, label in enumerate(reversed(labels)) if label != IGNORE_INDEX)  # never empty
    return {"input_ids": example["input_ids"][:end], "labels": labels[:end]}


def encode_preference_pairs(
    pairs: Sequence[PreferencePair], tokenizer: WordPieceTokenizer, max_length: int = 512
) -> list[dict[str, Example]]:
    """Encode each pair for a BERT reward model: ``[CLS] prompt [SEP] answer [SEP]`` per side, at most ``max_length``.

    The prompt is its turns as ``"role: content"`` lines (segment A), the answer is segment B (BERT's sentence-pair
    input, Devlin et al., 2019, section 3). A pair too long is cut longest first
    ([truncate_longest_first][llmdocs.tokenizers.truncation.truncate_longest_first]) for its longer answer, the
    prompt from its *start* (the latest turns, which the answer replies to, stay; the first piece kept may be a
    ``##`` continuation, as in Hugging Face's left truncation) and the answer from its end. Both sides keep the same
    prompt tokens, so that only their answers differ (the shorter answer is then cut only if it must be). An answer
    with no token (blank) leaves segment B as its ``[SEP]`` alone, as Hugging Face's tokenizers encode it.

    Args:
        pairs: [PreferencePair][llmdocs.data.llamafactory.PreferencePair]s.
        tokenizer: The encoder's [WordPieceTokenizer][llmdocs.tokenizers.wordpiece.WordPieceTokenizer].
        max_length: Tokens per side, special tokens included (BERT's position table has 512; a longer row is
            refused by the model, not here).

    Returns:
        One ``{"chosen": {"input_ids", "labels"}, "rejected": {...}}`` dict per pair, as ``tokenize_preference_pairs``;
        ``labels`` are -100 on ``[CLS] prompt [SEP]`` and the ids on ``answer [SEP]``, so that
        [sequence_rewards][llmdocs.finetuning.preferences.sequence_rewards] reads them as BERT's segments.

    Raises:
        TypeError: If ``pairs`` is not a sequence of PreferencePair, ``tokenizer`` is not a WordPieceTokenizer or
            ``max_length`` is not an integer.
        ValueError: If ``max_length`` is below 5 (no room for a prompt and an answer token), a conversation is
            malformed, or the two answers of a pair are identical, as text or once encoded (lower-cased, unknown
            characters as ``[UNK]``, cut to ``max_length``).

    Examples:
        >>> tok = WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "user", ":", "a", "b", "yes", "no"])
        >>> pair = PreferencePair(({"role": "user", "content": "a b a b"},), chosen="yes yes yes", rejected="no")
        >>> chosen = encode_preference_pairs([pair], tok, max_length=8)[0]["chosen"]
        >>> tok.convert_ids_to_tokens(chosen["input_ids"])  # 6 + 3 into 5: the prompt's start, the answer's end cut
        ['[CLS]', 'b', 'a', 'b', '[SEP]', 'yes', 'yes', '[SEP]']
        >>> chosen["labels"][:5]  # segment A; the answer and its [SEP] are labelled (segment B)
        [-100, -100, -100, -100, -100]
    """
    if not isinstance(tokenizer, WordPieceTokenizer):
        raise TypeError(f"tokenizer must be a WordPieceTokenizer (the encoder's), got {type(tokenizer).__name__}")
    if isinstance(max_length, bool) or not isinstance(max_length, int):
        raise TypeError(f"max_length must be an integer, got {type(max_length).__name__}")
    if max_length < 5:
        raise ValueError(f"max_length must be >= 5 ([CLS], two [SEP], a prompt and an answer token), got {max_length}")
    _check_pairs(pairs)
    cls_id, sep_id = tokenizer.convert_tokens_to_ids([tokenizer.cls_token, tokenizer.sep_token])
    budget = max_length - 3  # [CLS] and two [SEP]

    def ids_of(text: str) -> list[int]:
        return tokenizer.convert_tokens_to_ids(tokenizer.tokenize(text))

    out = []
    for i, pair in enumerate(pairs):
        prompt = "\n".join(f"{turn['role']}: {turn['content']}" for turn in pair.prompt)
        prompt_ids, answers = ids_of(prompt), (ids_of(pair.chosen), ids_of(pair.rejected))
        longer = max(answers, key=len)
        kept, _ = truncate_longest_first(prompt_ids[::-1], longer, budget)  # the prompt's share beside it
        segment_a = [cls_id, *kept[::-1], sep_id]
        sides = []
        for answer in answers:
            segment_b = [*answer[: budget - len(kept)], sep_id]
            sides.append({"input_ids": segment_a + segment_b, "labels": [IGNORE_INDEX] * len(segment_a) + segment_b})
        if sides[0]["input_ids"] == sides[1]["input_ids"]:
            raise ValueError(
                f"pairs[{i}]: the chosen and rejected answers encode to the same ids (lower-cased, [UNK], cut to "
                f"max_length={max_length}): no preference is left"
            )
        out.append({"chosen": sides[0], "rejected": sides[1]})
    return out


def _check_pairs(pairs: object) -> None:
    """A sequence of PreferencePair, each a well-formed conversation with two different answers."""
    if isinstance(pairs, str | bytes) or not isinstance(pairs, Sequence):
        raise TypeError(f"pairs must be a list of PreferencePair, got {type(pairs).__name__}")
    for i, pair in enumerate(pairs):
        if not isinstance(pair, PreferencePair):
            raise TypeError(f"pairs[{i}] must be a PreferencePair, got {type(pair).__name__}")
        check_messages(pair.chosen_messages(), f"pairs[{i}] (chosen)")
        check_messages(pair.rejected_messages(), f"pairs[{i}] (rejected)")
        if pair.chosen == pair.rejected:
            raise ValueError(f"pairs[{i}] has the same chosen and rejected answer: it states no preference")


class PreferenceBatches:
    """Callable ``i -> batch``: B pairs as 2B padded rows, chosen first (``input_ids``, ``labels``,
    ``attention_mask``, each int64 (2B, T)).

    The pairs of batch ``i`` are a per-epoch permutation of ``seed + epoch``, as
    [IndexedBatches][llmdocs.data.batches.IndexedBatches] (the same pairs on every run, rank-sharded under DDP).

    Args:
        examples: ``tokenize_preference_pairs``' or ``encode_preference_pairs``' output.
        batch_size: Pairs per batch (the batch has twice as many rows), per rank.
        seed: Seed of the per-epoch shuffles.
        pad_id: The id written at padding (masked out of attention and of the scores).
        rank: This process's rank (DDP).
        world_size: Number of data-parallel processes.
        shuffle: Shuffle each epoch (False: in order).

    Raises:
        TypeError: If ``examples`` is not a non-empty list of ``{"chosen", "rejected"}`` dicts.
        ValueError: If there are fewer pairs than ``batch_size * world_size``, or an example or ``pad_id`` is bad
            (as [collate_padded][llmdocs.finetuning.packing.collate_padded]).

    Examples:
        >>> examples = [{"chosen": {"input_ids": [5, 6, 7], "labels": [-100, 6, 7]},
        ...              "rejected": {"input_ids": [5, 8], "labels": [-100, 8]}}]
        >>> batch = PreferenceBatches(examples, batch_size=1, shuffle=False)(0)
        >>> batch["input_ids"].tolist(), batch["labels"].tolist()
        ([[5, 6, 7], [5, 8, 0]], [[-100, 6, 7], [-100, 8, -100]])
    """

    def __init__(
        self,
        examples: Sequence[Mapping[str, Mapping[str, Sequence[int]]]],
        batch_size: int,
        seed: int = 0,
        pad_id: int = 0,
        rank: int = 0,
        world_size: int = 1,
        shuffle: bool = True,
    ) -> None:
        if isinstance(examples, str | bytes) or not isinstance(examples, Sequence) or not examples:
            raise TypeError("examples must be a non-empty list of {'chosen', 'rejected'} dicts")
        for i, example in enumerate(examples):
            if not isinstance(example, Mapping) or not {"chosen", "rejected"} <= example.keys():
                raise TypeError(
                    f"examples[{i}] must be a dict with 'chosen' and 'rejected' (tokenize_preference_pairs)"
                )
        _check_examples([side for e in examples for side in (e["chosen"], e["rejected"])])  # ids, labels, lengths
        self.examples = list(examples)
        self.pad_id = _check_pad_id(pad_id)
        index = torch.arange(len(self.examples))[:, None]  # (N, 1): IndexedBatches picks the rows
        self._order = IndexedBatches(
            index, batch_size=batch_size, seed=seed, rank=rank, world_size=world_size, shuffle=shuffle
        )

    def __len__(self) -> int:
        """Batches per epoch."""
        return len(self._order)

    def __call__(self, index: int) -> dict[str, Tensor]:
        """Batch ``index``: rows 0..B-1 the chosen answers, rows B..2B-1 the rejected ones of the same pairs."""
        pairs = [self.examples[int(i)] for i in self._order.indices(index)]
        return collate_padded([p["chosen"] for p in pairs] + [p["rejected"] for p in pairs], pad_id=self.pad_id)


def _check_pair_batch(batch: object) -> int:
    """A preference batch: a dict of integer (2B, T) tensors ``input_ids``, ``labels``, ``attention_mask``. -> B."""
    if not isinstance(batch, Mapping):
        raise TypeError(f"batch must be a dict of tensors (PreferenceBatches), got {type(batch).__name__}")
    for key in ("input_ids", "labels", "attention_mask"):
        value = batch.get(key)
        if not isinstance(value, Tensor) or value.is_floating_point() or value.dim() != 2:
            raise TypeError(f"batch[{key!r}] must be an integer (2B, T) tensor")
        if value.shape != batch["input_ids"].shape:
            raise ValueError(f"batch[{key!r}] is {tuple(value.shape)}, input_ids {tuple(batch['input_ids'].shape)}")
    rows = batch["input_ids"].size(0)
    if rows == 0 or rows % 2:
        raise ValueError(f"a preference batch has 2B rows (B chosen, then B rejected), got {rows}")
    return rows // 2


def sequence_rewards(model: nn.Module, batch: Mapping[str, Tensor]) -> Tensor:
    """A reward model's rewards of a preference batch's rows: (2B, T) batch -> (2B,).

    A [RewardModel][llmdocs.finetuning.reward_model.RewardModel] (a decoder) reads its score at each row's last
    real token; a ``BertForSequenceClassification`` with one output reads its [CLS] (its pooled vector), with the
    labelled tokens as segment B (``encode_preference_pairs``' rows).

    Args:
        model: A ``RewardModel`` or a [BertForSequenceClassification][llmdocs.models.bert.BertForSequenceClassification]
            with ``n_classes == 1``.
        batch: A [PreferenceBatches][llmdocs.finetuning.preferences.PreferenceBatches] batch (2B rows).

    Returns:
        Rewards (2B,): the B chosen rows, then the B rejected rows.

    Raises:
        TypeError: If ``model`` is neither, or the batch is not a dict of integer (2B, T) tensors.
        ValueError: If the BERT classifier has more than one output, the batch's rows are odd or its shapes differ,
            the attention mask is not 0/1 with a real token in every row, or a row has no answer (labelled tokens).

    Examples:
        >>> from llmdocs.models.bert import BertConfig
        >>> _ = torch.manual_seed(0)
        >>> encoder_rm = BertForSequenceClassification(BertConfig.tiny(), n_classes=1).eval()
        >>> examples = [{"chosen": {"input_ids": [2, 5, 3, 6, 3], "labels": [-100, -100, -100, 6, 3]},
        ...              "rejected": {"input_ids": [2, 5, 3, 7, 3], "labels": [-100, -100, -100, 7, 3]}}]
        >>> sequence_rewards(encoder_rm, PreferenceBatches(examples, batch_size=1)(0)).shape
        torch.Size([2])
    """
    _check_pair_batch(batch)
    ids, mask = batch["input_ids"], batch["attention_mask"]
    inner = unwrap_model(model)  # under DDP the type is the wrapped model's; the call still goes through DDP
    if isinstance(inner, RewardModel):
        return model(ids, attention_mask=mask)  # (2B,)
    if isinstance(inner, BertForSequenceClassification):
        if inner.n_classes != 1:
            raise ValueError(f"a BERT reward model has n_classes=1 (one score), got {inner.n_classes}")
        last_token_index(mask)  # the checks a decoder's reading makes: 0/1 values, a real token in every row
        segments = (batch["labels"] != IGNORE_INDEX).long()  # (2B, T): 1 on answer [SEP], 0 on prompt and padding
        if not bool(segments.any(dim=1).all()):
            raise ValueError("every row needs an answer: labelled tokens (segment B), as encode_preference_pairs makes")
        return model(ids, token_type_ids=segments, attention_mask=mask).squeeze(-1)  # (2B,)
    raise TypeError(f"model must be a RewardModel or a BertForSequenceClassification, got {type(inner).__name__}")


def reward_loss_fn(
    model: nn.Module, batch: Mapping[str, Tensor], center_rewards_coefficient: float = 0.0
) -> tuple[Tensor, int]:
    """The loop's ``loss_fn`` for a reward model: Bradley-Terry on the rewards of the chosen and rejected rows.

    Args:
        model: A [RewardModel][llmdocs.finetuning.reward_model.RewardModel], or a BERT classifier with one output
            (as [sequence_rewards][llmdocs.finetuning.preferences.sequence_rewards]).
        batch: A [PreferenceBatches][llmdocs.finetuning.preferences.PreferenceBatches] batch (2B rows).
        center_rewards_coefficient: As [bradley_terry_loss][llmdocs.finetuning.bradley_terry.bradley_terry_loss].

    Returns:
        The loss (0-d) and the number of real tokens in the batch.

    Raises:
        TypeError: If ``model`` is not a reward model or the batch is not a dict of integer (2B, T) tensors.
        ValueError: If the batch does not have an even, non-zero number of rows, its shapes differ, or a BERT
            reward model has more than one output.

    Examples:
        >>> from llmdocs.models.llama import Llama, LlamaConfig
        >>> _ = torch.manual_seed(0)
        >>> reward_model = RewardModel(Llama(LlamaConfig.tiny()))
        >>> examples = [{"chosen": {"input_ids": [5, 6, 7], "labels": [-100, 6, 7]},
        ...              "rejected": {"input_ids": [5, 8], "labels": [-100, 8]}}]
        >>> loss, n_tokens = reward_loss_fn(reward_model, PreferenceBatches(examples, batch_size=1)(0))
        >>> loss.shape, n_tokens  # -log sigmoid(r_w - r_l), over 3 + 2 real tokens
        (torch.Size([]), 5)
    """
    rewards = sequence_rewards(model, batch)  # (2B,)
    B = rewards.size(0) // 2
    loss = bradley_terry_loss(rewards[:B], rewards[B:], center_rewards_coefficient=center_rewards_coefficient)
    return loss, int(batch["attention_mask"].sum())


def dpo_loss_fn(
    model: nn.Module,
    batch: Mapping[str, Tensor],
    beta: float = 0.1,
    loss_type: str = "sigmoid",
    label_smoothing: float = 0.0,
    reference_model: nn.Module | None = None,
    rpo_alpha: float | None = None,
) -> tuple[DPOLoss, int]:
    """DPO on a preference batch: the policy's and the reference's log pi(y | x) of the 2B answers, then ``dpo_loss``.

    The reference's log-probabilities are computed without gradients: by ``reference_model`` if given, else by
    ``model`` itself with its LoRA adapters switched off (the frozen model the adapters started from). Wrap it
    for the training loop with ``lambda m, b: (lambda out, n: (out.loss, n))(*dpo_loss_fn(m, b))``, or use the
    returned [DPOLoss][llmdocs.finetuning.dpo.DPOLoss]'s metrics (reward accuracy, margins) directly.

    Args:
        model: The policy, a causal LM ([Llama][llmdocs.models.llama.Llama]), with LoRA adapters when
            ``reference_model`` is None.
        batch: A [PreferenceBatches][llmdocs.finetuning.preferences.PreferenceBatches] batch (2B rows).
        beta: DPO's beta (see [dpo_loss][llmdocs.finetuning.dpo.dpo_loss]).
        loss_type: ``"sigmoid"`` (DPO) or ``"ipo"``; IPO uses per-token mean log-probabilities, as TRL.
        label_smoothing: Conservative DPO's epsilon.
        reference_model: A frozen reference policy; None = ``model`` with its adapters off.
        rpo_alpha: If given (>= 0), add ``rpo_alpha`` times the negative log-likelihood of the chosen answers,
            per token (the mean over every chosen token of the batch): RPO (Pang et al., 2024, "Iterative
            Reasoning Preference Optimization", section 2, alpha = 1); Llama 3 adds it with 0.2 (Dubey et al.,
            2024, section 4.1.4); TRL's ``loss_type=["sigmoid", "sft"]`` with ``loss_weights=[1, rpo_alpha]``.
            It keeps the chosen answers likely while the margin grows. The term is returned as ``nll``.

    Returns:
        The [DPOLoss][llmdocs.finetuning.dpo.DPOLoss] (loss, per-pair losses, implicit rewards) and the number of
        real tokens in the batch.

    Raises:
        TypeError: If the batch is not a dict of integer (2B, T) tensors.
        ValueError: If the batch's rows are odd or its shapes differ, ``model`` has no adapters and no
            ``reference_model`` is given, or a DPO setting is out of range.

    Examples:
        >>> from llmdocs.finetuning.lora import apply_lora
        >>> from llmdocs.models.llama import Llama, LlamaConfig
        >>> policy = Llama(LlamaConfig.tiny())
        >>> _ = apply_lora(policy, ["q_proj", "v_proj"], r=2, lora_alpha=4)
        >>> examples = [{"chosen": {"input_ids": [5, 6, 7], "labels": [-100, 6, 7]},
        ...              "rejected": {"input_ids": [5, 8], "labels": [-100, 8]}}]
        >>> out, _ = dpo_loss_fn(policy, PreferenceBatches(examples, batch_size=1)(0), beta=0.1)
        >>> round(out.loss.item(), 6), out.accuracy  # LoRA's B = 0: the policy is its reference, log 2
        (0.693147, 0.0)
    """
    B = _check_pair_batch(batch)
    check_dpo_settings(beta, loss_type, label_smoothing)  # before the forward passes
    if rpo_alpha is not None and (
        isinstance(rpo_alpha, bool) or not isinstance(rpo_alpha, int | float) or not 0 <= rpo_alpha < math.inf
    ):
        raise ValueError(f"rpo_alpha must be None or a finite number >= 0, got {rpo_alpha!r}")
    average = loss_type == "ipo"
    ids, labels, mask = batch["input_ids"], batch["labels"], batch["attention_mask"]
    with torch.no_grad():
        if reference_model is not None:
            reference = response_log_probs(reference_model, ids, labels, mask, average=average)  # (2B,)
        else:
            with disable_adapters(model):
                reference = response_log_probs(model, ids, labels, mask, average=average)  # (2B,)
    policy = response_log_probs(model, ids, labels, mask, average=average)  # (2B,)
    out = dpo_loss(
        policy[:B],
        policy[B:],
        reference[:B],
        reference[B:],
        beta=beta,
        loss_type=loss_type,  # type: ignore[arg-type]
        label_smoothing=label_smoothing,
    )
    if rpo_alpha is not None:
        counts = (labels[:B, 1:] != IGNORE_INDEX).sum(dim=1)  # (B,) chosen tokens predicted (labels shift by one)
        chosen_sums = policy[:B] * counts if average else policy[:B]  # (B,) log pi(y_w | x)
        nll = -chosen_sums.sum() / counts.sum().clamp(min=1)
        out = dataclasses.replace(out, loss=out.loss + rpo_alpha * nll, nll=nll.detach())
    return out, int(mask.sum())
