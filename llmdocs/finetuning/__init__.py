"""Adapting a pretrained model: which weights to train, and how (LoRA, QLoRA, instruction tuning, preferences).

Fine-tuning starts from a model that already works and changes as little of it as the task needs. This package
holds one module per method, in the order the chapters introduce them:

- [freezing][llmdocs.finetuning.freezing]: the common ground of every method: freeze the pretrained weights,
  choose the few that train, and count them (``trainable params: ... || all params: ... || trainable%: ...``,
  the line peft prints);
- [classification][llmdocs.finetuning.classification]: a classifier on a pretrained BERT, trained in three
  regimes (the head only, the last block, everything), with batches, loss, metrics and the loop around them;
- [deltas][llmdocs.finetuning.deltas]: a fine-tuned model saved as what fine-tuning changed (the trained tensors),
  applied on top of a named base at load time;
- ``lora`` (to come): low-rank adapters, W x + (alpha / R) B A x with A (R, D_in) and B (D_out, R), B = 0 at the
  start so that the adapted model equals the base; merged and unmerged forms give the same outputs (Hu et al.,
  2021);
- ``qlora`` (to come): LoRA on top of a 4-bit NormalFloat base with double quantisation (Dettmers et al., 2023);
- ``instruction`` (to come): supervised fine-tuning on prompt/response pairs, with the loss masked to the
  response tokens;
- ``preference`` (to come): learning from pairwise preferences: the Bradley-Terry reward model and Direct
  Preference Optimization (Rafailov et al., 2023), as pure loss functions tested against hand-computed values.
"""

from llmdocs.finetuning.deltas import load_finetuned, save_finetuned
from llmdocs.finetuning.freezing import (
    TrainableSummary,
    freeze,
    mark_trainable,
    trainable_parameter_names,
    trainable_parameters_summary,
    unfreeze,
)

__all__ = [
    "TrainableSummary",
    "freeze",
    "load_finetuned",
    "mark_trainable",
    "save_finetuned",
    "trainable_parameter_names",
    "trainable_parameters_summary",
    "unfreeze",
]
