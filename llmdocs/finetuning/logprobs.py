"""Sequence log-probabilities: how likely a model finds a response, summed over the response's tokens.

Every method of learning from preferences scores whole responses. DPO compares log pi(y_w | x) and log pi(y_l | x)
under the policy and a frozen reference; PPO and GRPO weigh each sampled response's tokens by their log-probability
ratio to the policy that sampled them. All of them need, for a batch of prompt + response sequences,

    log pi(y | x) = sum_t m_t log softmax(logits_t)[labels_{t+1}]

where ``labels`` are the input ids on the response (``IGNORE_INDEX`` = -100 on the prompt and on padding) and
m_t = 1 where ``labels_{t+1}`` is a response token: the same shift and the same masking as the SFT loss
([sft_labels][llmdocs.finetuning.sft_labels.sft_labels]), summed per row instead of averaged over the batch.

[token_log_probs][llmdocs.finetuning.logprobs.token_log_probs] gives the per-token terms (B, T - 1), 0 where nothing
is scored; [sequence_log_probs][llmdocs.finetuning.logprobs.sequence_log_probs] sums (or averages) them per row;
[response_log_probs][llmdocs.finetuning.logprobs.response_log_probs] and
[response_token_log_probs][llmdocs.finetuning.logprobs.response_token_log_probs] run a model on a padded batch
first, asking a model that can (``logits_mask``) for the logits of the scored positions only. A row's
log-probability does not depend on the other rows of its batch or on its padding (tested against each row alone).

The log-probability of the label is computed as ``logit[label] - logsumexp(logits)``, which needs no (B, T, V)
log-softmax tensor; half-precision logits are scored in float32.

References:
    Rafailov et al., "Direct Preference Optimization: Your Language Model is Secretly a Reward Model", NeurIPS
    2023, section 4 (log pi(y | x) of whole responses); Hugging Face TRL ``DPOTrainer`` (``concatenated_forward``:
    per-token log-probabilities masked to the completion and summed).
"""

from __future__ import annotations

import inspect

import torch
from torch import Tensor, nn

from llmdocs.finetuning.sft_labels import (  # the SFT loss's checks
    IGNORE_INDEX,
    _check_integer_labels,
    _check_label_ids,
    _check_logits_and_labels,
)

__all__ = ["response_log_probs", "response_token_log_probs", "sequence_log_probs", "token_log_probs"]


def token_log_probs(logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Per-token log-probabilities of the labels, shifted: position t scores ``labels[:, t + 1]``.

    Args:
        logits: (B, T, V) next-token logits, position t predicting token t + 1.
        labels: (B, T) token ids aligned with the inputs, ``IGNORE_INDEX`` where nothing is scored (prompt,
            padding).

    Returns:
        ``(log_probs, mask)``, both (B, T - 1): log p(labels[b, t + 1] | ...) where scored and 0 elsewhere, and the
        float mask of scored positions. Float32 at least (half-precision logits are scored in float32).

    Raises:
        TypeError: ``logits`` not a floating tensor, or ``labels`` not an integer tensor.
        ValueError: ``logits`` not (B, T, V) or ``labels`` not (B, T) with the same B and T, or a scored label is
            outside [0, V).

    Examples:
        >>> logits = torch.log(torch.tensor([[[0.5, 0.5], [0.9, 0.1], [0.5, 0.5]]]))  # (1, 3, 2)
        >>> log_probs, mask = token_log_probs(logits, torch.tensor([[-100, 1, 0]]))
        >>> log_probs.exp(), mask  # p(1) at position 0, p(0) at position 1
        (tensor([[0.5000, 0.9000]]), tensor([[1., 1.]]))
    """
    _check_logits_and_labels(logits, labels)
    targets = labels[:, 1:]  # (B, T - 1)
    scored = targets != IGNORE_INDEX  # (B, T - 1)
    safe = targets.masked_fill(~scored, 0)  # any valid id where nothing is scored
    log_probs = _label_log_probs(logits[:, :-1], safe)  # (B, T - 1); the last position predicts nothing here
    mask = scored.to(log_probs.dtype)
    return log_probs * mask, mask


def _label_log_probs(logits: Tensor, targets: Tensor) -> Tensor:
    """log softmax(logits)[target] (...,) of logits (..., V) and valid targets (...,), float32 at least."""
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    picked = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # (...,): the label's logit
    return picked - torch.logsumexp(logits, dim=-1)  # (...,): log softmax at the label


def sequence_log_probs(logits: Tensor, labels: Tensor, average: bool = False) -> Tensor:
    """log pi(y | x) of each row: the sum (or mean) of its scored tokens' log-probabilities.

        log pi(y | x) = sum_t m_t log softmax(logits_t)[labels_{t+1}]

    Args:
        logits: (B, T, V) next-token logits.
        labels: (B, T) token ids aligned with the inputs, ``IGNORE_INDEX`` outside the response.
        average: Divide each row's sum by its number of scored tokens (the per-token mean, as IPO and SimPO use;
            a row without scored tokens gives 0).

    Returns:
        (B,) log-probabilities (nats), float32 at least.

    Raises:
        TypeError: ``logits`` not a floating tensor, ``labels`` not an integer tensor, or ``average`` not a bool.
        ValueError: ``logits`` not (B, T, V) or ``labels`` not (B, T) with the same B and T, or a scored label is
            outside [0, V).

    Examples:
        >>> logits = torch.log(torch.tensor([[[0.5, 0.5], [0.9, 0.1], [0.5, 0.5]]]))  # (1, 3, 2)
        >>> sequence_log_probs(logits, torch.tensor([[-100, 1, 0]])).exp()  # p(y) = 0.5 * 0.9
        tensor([0.4500])
    """
    if not isinstance(average, bool):
        raise TypeError(f"average must be a bool, got {average!r}")
    return _row_log_probs(*token_log_probs(logits, labels), average)


def _row_log_probs(log_probs: Tensor, mask: Tensor, average: bool) -> Tensor:
    """(B,) sums (or means over the scored tokens) of per-token log-probabilities (B, T - 1) and their mask."""
    total = log_probs.sum(dim=-1)  # (B,)
    if average:
        return total / mask.sum(dim=-1).clamp(min=1)
    return total


def response_token_log_probs(
    model: nn.Module, input_ids: Tensor, labels: Tensor, attention_mask: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Run a causal language model on prompt + response rows and return the per-token log-probabilities of the
    responses: [token_log_probs][llmdocs.finetuning.logprobs.token_log_probs] of its logits.

    Only the positions whose next token is scored need logits. A model whose ``forward`` takes ``logits_mask``
    ([Llama][llmdocs.models.llama.Llama]) projects only those onto the vocabulary, as the SFT loss does
    ([sft_loss_fn][llmdocs.finetuning.sft.sft_loss_fn]): with V = 49,152 the head is a fifth of SmolLM2's work per
    token, and most of a small model's, and the prompt tokens are most of a date-task row. Other models project every
    position. Either way the result is ``token_log_probs(model(input_ids), labels)`` (tested; the projection of a
    position does not depend on the others, up to float rounding).

    Args:
        model: A causal LM returning (B, T, V) logits from ``model(input_ids, attention_mask=...)``, or (N, V) for
            the N True positions of ``logits_mask`` if its ``forward`` takes one.
        input_ids: (B, T) prompt and response ids, padded.
        labels: (B, T) the response's ids, ``IGNORE_INDEX`` on the prompt and on padding.
        attention_mask: (B, T) 1 at real tokens and 0 at padding; None when nothing is padded.

    Returns:
        ``(log_probs, mask)``, both (B, T - 1), as ``token_log_probs``: log p(labels[b, t + 1] | ...) where scored and
        0 elsewhere, and the float mask of scored positions; with gradients when the model has them.

    Raises:
        TypeError: ``input_ids`` not an integer (B, T) tensor, ``labels`` not an integer tensor, or the model does
            not return a logits tensor.
        ValueError: ``labels`` or ``attention_mask`` of another shape than ``input_ids``, a scored label out of the
            vocabulary, or logits of another shape than expected.

    Examples:
        >>> from llmdocs.models.llama import Llama, LlamaConfig
        >>> _ = torch.manual_seed(0)
        >>> model = Llama(LlamaConfig.tiny(50)).eval()
        >>> ids, labels = torch.tensor([[5, 6, 7, 8]]), torch.tensor([[-100, -100, 7, 8]])
        >>> log_probs, mask = response_token_log_probs(model, ids, labels)  # logits at positions 1 and 2 only
        >>> mask
        tensor([[0., 1., 1.]])
        >>> torch.allclose(log_probs, token_log_probs(model(ids), labels)[0])
        True
    """
    _check_model_inputs(input_ids, labels, attention_mask)
    masked = {} if attention_mask is None else {"attention_mask": attention_mask}
    if not _projects_selected_positions(model):
        return token_log_probs(_logits(model(input_ids, **masked)), labels)
    _check_integer_labels(labels)
    logits, targets, scored = _scored_logits(model, input_ids, labels, "scored", "labels", **masked)
    picked = _label_log_probs(logits, targets)  # (N,)
    log_probs = picked.new_zeros(scored.shape).masked_scatter(scored, picked)  # (B, T - 1), 0 where not scored
    return log_probs, scored.to(log_probs.dtype)


def _scored_logits(
    model: nn.Module, input_ids: Tensor, labels: Tensor, what: str, labels_name: str, **inputs: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """The logits (N, V) of the N positions whose next label is scored, asked of a model that takes ``logits_mask``
    (the others are never projected), the N labels they predict in the same row-major order, and the (B, T - 1)
    mask of those positions. ``what`` names the positions and ``labels_name`` the labels in errors; ``inputs`` go
    to the model (``attention_mask``, or the packed ``position_ids`` and ``document_ids``)."""
    scored = labels[:, 1:] != IGNORE_INDEX  # (B, T - 1): position t predicts the label t + 1
    logits_mask = torch.zeros_like(labels, dtype=torch.bool)  # (B, T): the last position predicts nothing here
    logits_mask[:, :-1] = scored
    logits = _logits(model(input_ids, logits_mask=logits_mask, **inputs))  # (N, V), row-major
    targets = labels[:, 1:][scored]  # (N,) in the same order
    N = targets.numel()
    if logits.dim() != 2 or logits.size(0) != N:
        raise ValueError(
            f"the model returned logits of shape {tuple(logits.shape)} for {N} {what} positions, expected ({N}, V): "
            "does it take logits_mask (and project only the masked positions)?"
        )
    _check_label_ids(labels, logits.size(-1), labels_name)
    return logits, targets, scored


def _projects_selected_positions(model: nn.Module) -> bool:
    """Whether ``model``'s forward takes ``logits_mask`` (projects only the positions it selects)."""
    forward = getattr(model, "forward", None)
    try:
        return forward is not None and "logits_mask" in inspect.signature(forward).parameters
    except (TypeError, ValueError):  # no signature to read (a builtin): project every position
        return False


def _logits(output: object) -> Tensor:
    if not isinstance(output, Tensor):
        raise TypeError(f"the model must return a logits tensor (B, T, V), got {type(output).__name__}")
    return output


def _check_model_inputs(input_ids: Tensor, labels: Tensor, attention_mask: Tensor | None) -> None:
    if not isinstance(input_ids, Tensor) or input_ids.is_floating_point() or input_ids.dim() != 2:
        got = (
            f"{input_ids.dtype} {tuple(input_ids.shape)}" if isinstance(input_ids, Tensor) else type(input_ids).__name__
        )
        raise TypeError(f"input_ids must be an integer tensor (B, T), got {got}")
    for name, other in (("labels", labels), ("attention_mask", attention_mask)):
        if other is not None and (not isinstance(other, Tensor) or other.shape != input_ids.shape):
            got = tuple(other.shape) if isinstance(other, Tensor) else type(other).__name__
            raise ValueError(f"{name} must have input_ids' shape {tuple(input_ids.shape)}, got {got}")


def response_log_probs(
    model: nn.Module, input_ids: Tensor, labels: Tensor, attention_mask: Tensor | None = None, average: bool = False
) -> Tensor:
    """Run a causal language model on prompt + response rows and return log pi(y | x) of each row.

    The sums of [response_token_log_probs][llmdocs.finetuning.logprobs.response_token_log_probs]: a model that takes
    ``logits_mask`` projects only the scored positions onto the vocabulary.

    Args:
        model: A causal LM returning (B, T, V) logits from ``model(input_ids, attention_mask=...)``, such as
            [Llama][llmdocs.models.llama.Llama] or [GPT][llmdocs.models.gpt.GPT].
        input_ids: (B, T) prompt and response ids, padded.
        labels: (B, T) the response's ids, ``IGNORE_INDEX`` on the prompt and on padding.
        attention_mask: (B, T) 1 at real tokens and 0 at padding; None when nothing is padded.
        average: Per-token mean instead of the sum (see
            [sequence_log_probs][llmdocs.finetuning.logprobs.sequence_log_probs]).

    Returns:
        (B,) log-probabilities, with gradients when the model has them.

    Raises:
        TypeError: ``input_ids`` not an integer (B, T) tensor, ``average`` not a bool, or the model does not
            return a tensor.
        ValueError: ``labels`` or ``attention_mask`` of another shape than ``input_ids``, or a scored label out of
            the vocabulary.

    Examples:
        >>> from llmdocs.models.llama import Llama, LlamaConfig
        >>> _ = torch.manual_seed(0)
        >>> model = Llama(LlamaConfig.tiny(50)).eval()
        >>> ids = torch.tensor([[5, 6, 7, 8], [9, 10, 11, 0]])  # prompt, then response; the second row padded
        >>> labels = torch.tensor([[-100, -100, 7, 8], [-100, 10, 11, -100]])  # the responses only
        >>> response_log_probs(model, ids, labels, attention_mask=torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])).shape
        torch.Size([2])
    """
    if not isinstance(average, bool):
        raise TypeError(f"average must be a bool, got {average!r}")
    return _row_log_probs(*response_token_log_probs(model, input_ids, labels, attention_mask), average)
