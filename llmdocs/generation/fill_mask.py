"""Fill-mask: what a masked-language model predicts for each `[MASK]` of a text.

    P(token at masked position i | the rest of the text) = softmax(mlm_logits[i])          (Devlin et al., 2019, 3.1)

Unlike a left-to-right language model, BERT reads the words on *both* sides of the gap: "the [MASK] of the river"
and "the [MASK] of the company" get different answers although everything before the gap is the same. This is the
pre-training task itself, so it is the most direct way to look at what a pre-trained encoder has learnt
(Hugging Face calls it the "fill-mask" pipeline).
"""

from __future__ import annotations

import inspect

import torch
from torch import nn

from llmdocs.models.bert import BertForSequenceClassification, BertModel
from llmdocs.tokenizers.wordpiece import WordPieceTokenizer

__all__ = ["fill_mask"]


@torch.no_grad()
def fill_mask(
    model: nn.Module, tokenizer: WordPieceTokenizer, text: str, top_k: int = 5
) -> list[list[tuple[str, float]]]:
    """The ``top_k`` most probable tokens, with their probabilities, for every ``[MASK]`` in ``text``.

    Args:
        model: A [BertForPreTraining][llmdocs.models.bert.BertForPreTraining] (anything called as
            ``model(input_ids, token_type_ids, attention_mask, masked_positions=...)`` that returns the MLM logits
            (M, V) of the M masked positions first). It is run in eval mode and left in the mode it was in.
        tokenizer: The model's [WordPieceTokenizer][llmdocs.tokenizers.WordPieceTokenizer].
        text: A text with one or more ``[MASK]`` tokens, e.g. ``"paris is the [MASK] of france ."``.
        top_k: How many candidates per gap.

    Returns:
        One list per ``[MASK]`` (in reading order) of ``(token, probability)`` pairs, most probable first; the
        probabilities are the softmax over the whole vocabulary (V), so each list sums to at most 1. Each gap is
        predicted on its own, from the same input (several gaps are not filled one after the other).

    Raises:
        TypeError: If ``model`` is not a masked-language model (``None``, or a ``BertModel`` or
            ``BertForSequenceClassification``, which have no MLM head), ``tokenizer`` is not a
            ``WordPieceTokenizer``, ``text`` is not a string or ``top_k`` not an integer.
        ValueError: If ``text`` has no ``[MASK]``, ``top_k`` is not in [1, V], the tokenizer's vocabulary is not
            the model's, or the text is longer than the model's context (the message comes from the model).

    References:
        Devlin et al., "BERT: Pre-training of Deep Bidirectional Transformers for Language Understanding",
        NAACL 2019, section 3.1, task 1 (masked LM).

    Examples:
        >>> from llmdocs.models.bert import BertConfig, BertForPreTraining
        >>> tok = WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat"])
        >>> _ = torch.manual_seed(0)
        >>> model = BertForPreTraining(BertConfig.tiny(tok.vocab_size))
        >>> gaps = fill_mask(model, tok, "the [MASK] [MASK]", top_k=3)  # untrained: any tokens, but the shape holds
        >>> len(gaps), len(gaps[0]), gaps[0][0][1] >= gaps[0][1][1] >= gaps[0][2][1]
        (2, 3, True)
    """
    _check_masked_lm(model)
    if not isinstance(tokenizer, WordPieceTokenizer):
        raise TypeError(f"tokenizer must be the model's WordPieceTokenizer, got {type(tokenizer).__name__}")
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    if isinstance(top_k, bool) or not isinstance(top_k, int):
        raise TypeError(f"top_k must be an int, got {type(top_k).__name__}")
    V = model.config.vocab_size if hasattr(model, "config") else tokenizer.vocab_size
    if tokenizer.vocab_size != V:
        raise ValueError(f"the tokenizer has {tokenizer.vocab_size} ids but the model's vocab_size is {V}")
    if not 1 <= top_k <= tokenizer.vocab_size:
        raise ValueError(f"top_k must be in [1, {tokenizer.vocab_size}] (the vocabulary size), got {top_k}")
    encoded = tokenizer.encode(text)
    input_ids = torch.tensor([encoded["input_ids"]])  # (1, T)
    mask_id = tokenizer.vocab[tokenizer.mask_token]
    masked = input_ids == mask_id  # (1, T)
    if not bool(masked.any()):
        raise ValueError(f"text has no {tokenizer.mask_token} token to fill: {text!r}")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        mlm_logits, _ = model(
            input_ids.to(device),
            torch.tensor([encoded["token_type_ids"]], device=device),
            torch.tensor([encoded["attention_mask"]], device=device),
            masked_positions=masked.to(device),
        )  # (M, V)
    finally:
        model.train(was_training)
    probs = mlm_logits.to(torch.promote_types(mlm_logits.dtype, torch.float32)).softmax(dim=-1)  # (M, V), >= fp32
    top_probs, top_ids = probs.topk(top_k, dim=-1)  # (M, k) each
    return [
        list(zip(tokenizer.convert_ids_to_tokens(ids.tolist()), p.tolist(), strict=True))
        for ids, p in zip(top_ids, top_probs, strict=True)
    ]


def _check_masked_lm(model: object) -> None:
    """``model`` must predict tokens: an ``nn.Module`` whose forward takes ``masked_positions`` (BertForPreTraining)."""
    if isinstance(model, BertModel | BertForSequenceClassification):
        raise TypeError(
            f"model is a {type(model).__name__}, which has no masked-LM head to predict tokens: fill_mask needs a "
            "BertForPreTraining (e.g. llmdocs.pretrained.load_bert(), or load_encoder on a folder of "
            "examples/pretrain_bert.py)"
        )
    parameters = inspect.signature(model.forward).parameters if isinstance(model, nn.Module) else {}
    takes_positions = "masked_positions" in parameters or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()
    )
    if not takes_positions:
        raise TypeError(
            "model must be a masked-language model such as BertForPreTraining (called with masked_positions=...), "
            f"got {type(model).__name__}"
        )
