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
- [lora][llmdocs.finetuning.lora]: low-rank adapters, W x + (alpha / R) B A x with A (R, D_in) and B (D_out, R),
  B = 0 at the start so that the adapted model equals the base; merged and unmerged forms give the same outputs
  (Hu et al., 2021), and the same outputs as peft's (adapters move both ways through
  [peft_lora][llmdocs.interop.peft_lora]);
- [lora_budget][llmdocs.finetuning.lora_budget]: what LoRA trains and saves, in parameters and AdamW memory, for
  real model shapes built on the ``meta`` device;
- [qlora][llmdocs.finetuning.qlora]: the 4-bit NormalFloat code book, block-wise quantisation with double
  quantisation of the scales, and a frozen 4-bit linear layer for LoRA to adapt (Dettmers et al., 2023);
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
from llmdocs.finetuning.lora import (
    LoRALinear,
    apply_lora,
    count_lora_parameters,
    lora_delta,
    lora_flops,
    lora_num_parameters,
    lora_state_dict,
    merge_lora,
    target_module_names,
)
from llmdocs.finetuning.lora_budget import budget_table, lora_budget
from llmdocs.finetuning.qlora import (
    Linear4bit,
    NF4Weight,
    dequantize_nf4,
    nf4_code_book,
    quantize_linears,
    quantize_nf4,
)

__all__ = [
    "Linear4bit",
    "LoRALinear",
    "NF4Weight",
    "TrainableSummary",
    "apply_lora",
    "budget_table",
    "count_lora_parameters",
    "dequantize_nf4",
    "freeze",
    "load_finetuned",
    "lora_budget",
    "lora_delta",
    "lora_flops",
    "lora_num_parameters",
    "lora_state_dict",
    "mark_trainable",
    "merge_lora",
    "nf4_code_book",
    "quantize_linears",
    "quantize_nf4",
    "save_finetuned",
    "target_module_names",
    "trainable_parameter_names",
    "trainable_parameters_summary",
    "unfreeze",
]
