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
- [chat][llmdocs.finetuning.chat]: conversations (system / user / assistant messages) rendered with a
  tokenizer's chat template or our minimal one, tokenised with a mask of the tokens the assistant wrote;
- [sft_labels][llmdocs.finetuning.sft_labels]: supervised fine-tuning's prompt-masked labels (-100 outside the
  answers) and its loss, averaged over the batch's trained tokens (or, to show what goes wrong, over sequences);
- [packing][llmdocs.finetuning.packing]: padded batches, and packed rows of several examples with positions
  restarting and attention kept inside each example (``document_ids``), equal to running them one by one;
- [sft][llmdocs.finetuning.sft]: those joined for the training loop: conversations to examples, batches that are a
  pure function of their index (padded or packed), the loss on the trained positions only, and the evaluation by
  greedy answers and exact match (with a few-shot baseline);
- learning from preferences: [logprobs][llmdocs.finetuning.logprobs] (log pi(y | x) of a response, summed over its
  tokens), [bradley_terry][llmdocs.finetuning.bradley_terry] (the preference model and its loss),
  [reward_model][llmdocs.finetuning.reward_model] (a scalar head on the decoder's last token),
  [dpo][llmdocs.finetuning.dpo] (Direct Preference Optimization, Rafailov et al., 2023),
  [preferences][llmdocs.finetuning.preferences] (pairs tokenized and batched, and the reward-model and DPO losses
  on them); and the reinforcement-learning side: [rollouts][llmdocs.finetuning.rollouts] (completions sampled from
  the policy, as a batch), [masked][llmdocs.finetuning.masked] (means and whitening over response tokens),
  [kl][llmdocs.finetuning.kl] (per-token KL estimators and the KL controllers), [ppo][llmdocs.finetuning.ppo]
  (KL-penalised rewards, GAE, the clipped policy and value losses), [grpo][llmdocs.finetuning.grpo]
  (group-relative advantages and the GRPO loss), [grpo_training][llmdocs.finetuning.grpo_training] (one GRPO
  step: sample, score, update) and [ppo_training][llmdocs.finetuning.ppo_training] (the value head and one PPO
  step: roll out, score, penalise KL, GAE, clipped epochs); each loss a pure function tested against
  hand-computed values, and against TRL's own code where TRL has it.
"""

from llmdocs.finetuning.bradley_terry import bradley_terry_loss, pairwise_accuracy
from llmdocs.finetuning.chat import (
    CHAT_SPECIAL_TOKENS,
    check_messages,
    encode_chat,
    render_chat,
    tokenize_conversation,
)
from llmdocs.finetuning.deltas import load_finetuned, save_finetuned
from llmdocs.finetuning.dpo import DPOLoss, dpo_loss
from llmdocs.finetuning.freezing import (
    TrainableSummary,
    freeze,
    mark_trainable,
    trainable_parameter_names,
    trainable_parameters_summary,
    unfreeze,
)
from llmdocs.finetuning.grpo import GRPOLoss, group_relative_advantages, grpo_loss
from llmdocs.finetuning.grpo_training import GRPOConfig, grpo_step
from llmdocs.finetuning.kl import AdaptiveKLController, FixedKLController, kl_penalty
from llmdocs.finetuning.logprobs import (
    response_log_probs,
    response_token_log_probs,
    sequence_log_probs,
    token_log_probs,
)
from llmdocs.finetuning.lora import (
    LoRALinear,
    apply_lora,
    count_lora_parameters,
    load_lora_state_dict,
    lora_delta,
    lora_flops,
    lora_num_parameters,
    lora_state_dict,
    merge_lora,
    target_module_names,
)
from llmdocs.finetuning.lora_budget import budget_table, lora_budget
from llmdocs.finetuning.masked import masked_mean, masked_whiten
from llmdocs.finetuning.packing import collate_padded, pack_examples, padding_fraction
from llmdocs.finetuning.ppo import (
    PPOPolicyLoss,
    PPOValueLoss,
    entropy_from_logits,
    gae_advantages,
    kl_penalized_rewards,
    ppo_policy_loss,
    ppo_value_loss,
)
from llmdocs.finetuning.ppo_training import CausalLMWithValueHead, PPOConfig, ppo_step
from llmdocs.finetuning.preferences import (
    PreferenceBatches,
    dpo_loss_fn,
    encode_preference_pairs,
    reward_loss_fn,
    sequence_rewards,
    tokenize_preference_pairs,
)
from llmdocs.finetuning.qlora import (
    Linear4bit,
    NF4Weight,
    dequantize_nf4,
    nf4_code_book,
    quantize_linears,
    quantize_nf4,
)
from llmdocs.finetuning.reward_model import RewardModel, last_token_index
from llmdocs.finetuning.rollouts import Rollouts, sample_rollouts, score_rollouts
from llmdocs.finetuning.sft import (
    SFTBatches,
    exact_match_rate,
    few_shot_messages,
    generate_answers,
    sft_loss_fn,
    tokenize_sft_examples,
)
from llmdocs.finetuning.sft_labels import IGNORE_INDEX, count_trained_tokens, sft_labels, sft_loss

__all__ = [
    "CHAT_SPECIAL_TOKENS",
    "IGNORE_INDEX",
    "AdaptiveKLController",
    "CausalLMWithValueHead",
    "DPOLoss",
    "FixedKLController",
    "GRPOConfig",
    "GRPOLoss",
    "Linear4bit",
    "LoRALinear",
    "NF4Weight",
    "PPOConfig",
    "PPOPolicyLoss",
    "PPOValueLoss",
    "PreferenceBatches",
    "RewardModel",
    "Rollouts",
    "SFTBatches",
    "TrainableSummary",
    "apply_lora",
    "bradley_terry_loss",
    "budget_table",
    "check_messages",
    "collate_padded",
    "count_lora_parameters",
    "count_trained_tokens",
    "dequantize_nf4",
    "dpo_loss",
    "dpo_loss_fn",
    "encode_chat",
    "encode_preference_pairs",
    "entropy_from_logits",
    "exact_match_rate",
    "few_shot_messages",
    "freeze",
    "gae_advantages",
    "generate_answers",
    "group_relative_advantages",
    "grpo_loss",
    "grpo_step",
    "kl_penalized_rewards",
    "kl_penalty",
    "last_token_index",
    "load_finetuned",
    "load_lora_state_dict",
    "lora_budget",
    "lora_delta",
    "lora_flops",
    "lora_num_parameters",
    "lora_state_dict",
    "mark_trainable",
    "masked_mean",
    "masked_whiten",
    "merge_lora",
    "nf4_code_book",
    "pack_examples",
    "padding_fraction",
    "pairwise_accuracy",
    "ppo_policy_loss",
    "ppo_step",
    "ppo_value_loss",
    "quantize_linears",
    "quantize_nf4",
    "render_chat",
    "response_log_probs",
    "response_token_log_probs",
    "reward_loss_fn",
    "sample_rollouts",
    "save_finetuned",
    "score_rollouts",
    "sequence_log_probs",
    "sequence_rewards",
    "sft_labels",
    "sft_loss",
    "sft_loss_fn",
    "target_module_names",
    "token_log_probs",
    "tokenize_conversation",
    "tokenize_preference_pairs",
    "tokenize_sft_examples",
    "trainable_parameter_names",
    "trainable_parameters_summary",
    "unfreeze",
]
