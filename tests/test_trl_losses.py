"""Equivalence with Hugging Face TRL (written against TRL 1.16): our DPO and GRPO losses against TRL's own code.

TRL computes these losses inside trainer methods, not in free functions, so the tests call those methods unbound
on a ``types.SimpleNamespace`` standing in for the trainer: it carries only the attributes the method reads (the
settings, an ``accelerator`` whose gather and reduce are the identity of a single process, the metric dicts). The
model is a fake whose forward returns given per-token log-probabilities in the ``log_probs`` field, as TRL 1.16's
fused LM head (``model(..., labels=labels, fused_lm_head=True)``) does: every line of TRL's loss code runs on the
same float64 inputs as ours, and the gradients with respect to those log-probabilities are compared too.

- DPO: ``DPOTrainer._compute_loss`` with precomputed reference log-probabilities. TRL's ``"ipo"`` divides each
  log-ratio by the completion's length, so ours gets per-token mean log-probabilities there. TRL 1.16's
  ``"sigmoid"`` ignores ``label_smoothing`` (its ``"robust"`` loss is a different, unbiased estimator); the
  conservative-DPO formula -(1 - eps) log sigmoid(beta h) - eps log sigmoid(-beta h) appears in TRL only inside
  ``"aot"``, which first sorts the policy's and the reference's log-ratio differences over the batch. Inputs whose
  differences are already in ascending order make that sort the identity, so ``"aot"`` is cDPO pair by pair there
  (the test asserts the order).
- GRPO: ``GRPOTrainer._compute_loss`` (with TRL's ``_get_per_token_logps_and_entropies`` running on the fake model)
  for the loss, its gradient and the logged ``kl`` and ``clip_ratio`` metrics; the advantages are computed inline
  in ``GRPOTrainer._generate_and_score_completions``, driven with ``_generate`` returning fixed token ids and
  ``_calculate_rewards`` returning given rewards (one reward function).
"""

from __future__ import annotations

import contextlib
import types
from collections import defaultdict
from typing import Any

import pytest
import torch

from llmdocs.finetuning.dpo import dpo_loss
from llmdocs.finetuning.grpo import group_relative_advantages, grpo_loss
from llmdocs.testing import assert_equivalent

F64 = torch.float64


def _accelerator() -> types.SimpleNamespace:
    """One process on the CPU: gathering and reducing change nothing."""
    return types.SimpleNamespace(
        device=torch.device("cpu"),
        autocast=contextlib.nullcontext,
        gather=lambda x: x,
        gather_for_metrics=lambda x: x,
        reduce=lambda x, reduction: x,
        num_processes=1,
        process_index=0,
        is_main_process=True,
    )


def _metrics() -> defaultdict[str, defaultdict[str, list[float]]]:
    return defaultdict(lambda: defaultdict(list))


class _FakeModel:
    """Returns fixed per-token log-probabilities (and zero side outputs) whatever the inputs, as the fused head."""

    training = True
    is_gradient_checkpointing = False

    def __init__(self, log_probs: torch.Tensor) -> None:
        self.log_probs = log_probs

    def __call__(self, **kwargs: Any) -> types.SimpleNamespace:
        zeros = torch.zeros_like(self.log_probs)
        return types.SimpleNamespace(log_probs=self.log_probs, entropy=zeros, mean_logits=zeros, is_top1=zeros.bool())


# ---- DPO --------------------------------------------------------------------------------------------------------


def _trl_dpo(per_token: torch.Tensor, completion_mask: torch.Tensor, ref_chosen, ref_rejected, **settings):
    """TRL's DPO loss of the 2B rows [chosen; rejected]: ``per_token`` (2B, T - 1) log-probabilities (0 outside the
    completion), ``completion_mask`` (2B, T)."""
    from trl.trainer.dpo_trainer import DPOTrainer

    trainer = types.SimpleNamespace(
        model=_FakeModel(per_token),
        accelerator=_accelerator(),
        aux_loss_enabled=False,
        ld_alpha=None,
        precompute_ref_logps=True,
        f_divergence_type="reverse_kl",
        loss_types=[settings["loss_type"]],
        loss_weights=[1.0],
        beta=settings["beta"],
        label_smoothing=settings.get("label_smoothing", 0.0),
        use_weighting=False,
        _metrics=_metrics(),
        _total_train_tokens=0,
        _tp_size=1,
    )
    inputs = {
        "input_ids": torch.ones_like(completion_mask),
        "attention_mask": torch.ones_like(completion_mask),
        "completion_mask": completion_mask,
        "ref_chosen_logps": ref_chosen,
        "ref_rejected_logps": ref_rejected,
    }
    loss = DPOTrainer._compute_loss(trainer, trainer.model, inputs, return_outputs=False)
    return loss, trainer._metrics["train"]


def _dpo_batch(B: int = 4, T: int = 6, seed: int = 0):
    """Per-token log-probabilities (2B, T - 1) of B chosen then B rejected completions of different lengths."""
    generator = torch.Generator().manual_seed(seed)
    completion_mask = torch.zeros(2 * B, T, dtype=torch.long)
    for row in range(2 * B):
        start = int(torch.randint(1, 3, (), generator=generator))  # a prompt of 1 or 2 tokens
        end = int(torch.randint(start + 1, T + 1, (), generator=generator))  # then 1+ completion tokens, padding
        completion_mask[row, start:end] = 1
    shift_mask = completion_mask[:, 1:].to(F64)  # position t scores token t + 1
    per_token = -torch.rand(2 * B, T - 1, generator=generator, dtype=F64) * 2 * shift_mask
    ref = -torch.rand(2 * B, generator=generator, dtype=F64) * 2 * shift_mask.sum(1)
    return per_token, completion_mask, ref[:B], ref[B:]


@pytest.mark.parametrize("beta", [0.1, 0.5])
def test_dpo_sigmoid_and_ipo_match_trl(beta: float) -> None:
    pytest.importorskip("trl")
    for loss_type in ("sigmoid", "ipo"):
        per_token, completion_mask, ref_chosen, ref_rejected = _dpo_batch(seed=int(beta * 10))
        per_token.requires_grad_()
        expected, metrics = _trl_dpo(
            per_token, completion_mask, ref_chosen, ref_rejected, loss_type=loss_type, beta=beta
        )
        (expected_grad,) = torch.autograd.grad(expected, per_token)

        B = ref_chosen.size(0)
        logps = per_token.sum(1)  # (2B,) sequence log-probabilities
        refs = torch.cat([ref_chosen, ref_rejected])
        if loss_type == "ipo":  # TRL's IPO: per-token means
            lengths = completion_mask.sum(1).to(F64)
            logps, refs = logps / lengths, refs / lengths
        ours = dpo_loss(logps[:B], logps[B:], refs[:B], refs[B:], beta=beta, loss_type=loss_type)
        assert_equivalent(ours.loss, expected.detach(), msg=loss_type)
        assert_equivalent(torch.autograd.grad(ours.loss, per_token)[0], expected_grad, msg=f"{loss_type} gradient")
        if loss_type == "sigmoid":  # TRL's logged implicit rewards are the same beta log-ratios
            assert ours.chosen_rewards.mean().item() == pytest.approx(metrics["rewards/chosen"][0], rel=1e-12)
            assert ours.margins.mean().item() == pytest.approx(metrics["rewards/margins"][0], rel=1e-12)
            assert ours.accuracy == metrics["rewards/accuracies"][0]


def test_dpo_label_smoothing_matches_trls_cdpo_formula() -> None:
    pytest.importorskip("trl")
    per_token, completion_mask, ref_chosen, _ = _dpo_batch(B=5, seed=3)
    B = ref_chosen.size(0)
    logps = per_token.sum(1)
    order = torch.argsort(logps[:B] - logps[B:])  # reorder the pairs: the policy's differences ascend
    per_token = torch.cat([per_token[:B][order], per_token[B:][order]]).requires_grad_()
    completion_mask = torch.cat([completion_mask[:B][order], completion_mask[B:][order]])
    ref_chosen = ref_chosen[order]
    ref_rejected = ref_chosen - torch.linspace(-1.0, 1.0, B, dtype=F64)  # the reference's differences ascend too
    logps = per_token.sum(1)
    for differences in (logps[:B] - logps[B:], ref_chosen - ref_rejected):
        assert torch.equal(torch.sort(differences).indices, torch.arange(B))  # so "aot"'s sorts change nothing

    expected, _ = _trl_dpo(per_token, completion_mask, ref_chosen, ref_rejected, loss_type="aot", beta=0.2,
                           label_smoothing=0.1)  # fmt: skip
    ours = dpo_loss(logps[:B], logps[B:], ref_chosen, ref_rejected, beta=0.2, label_smoothing=0.1)
    assert_equivalent(ours.loss, expected.detach())
    assert_equivalent(torch.autograd.grad(ours.loss, per_token)[0], torch.autograd.grad(expected, per_token)[0])
    # TRL 1.16's "sigmoid" takes no label smoothing: it is our plain DPO loss whatever label_smoothing says
    plain, _ = _trl_dpo(per_token, completion_mask, ref_chosen, ref_rejected, loss_type="sigmoid", beta=0.2,
                        label_smoothing=0.1)  # fmt: skip
    assert_equivalent(dpo_loss(logps[:B], logps[B:], ref_chosen, ref_rejected, beta=0.2).loss, plain.detach())


# ---- GRPO -------------------------------------------------------------------------------------------------------


def _trl_grpo(logprobs, old, ref, advantages, mask, **settings):
    """TRL's GRPO loss and logged metrics for completions with per-token ``logprobs`` (B, C) after 2-token prompts."""
    from trl.trainer.grpo_trainer import GRPOTrainer

    B, C = logprobs.shape
    beta = settings.get("beta", 0.0)
    epsilon = settings.get("epsilon", 0.2)
    epsilon_high = settings.get("epsilon_high")
    model = _FakeModel(torch.cat([torch.zeros(B, 2, dtype=F64), logprobs], dim=1))  # (B, 2 + C): the prompt first
    trainer = types.SimpleNamespace(
        model=model,
        accelerator=_accelerator(),
        args=types.SimpleNamespace(
            use_bias_correction_kl=settings.get("use_bias_correction_kl", True), delta=None, steps_per_generation=1
        ),
        top_entropy_quantile=1.0,
        aux_loss_enabled=False,
        off_policy_mask_threshold=None,
        importance_sampling_level="token",
        beta=beta,
        loss_type=settings["loss_type"],
        epsilon_low=epsilon,
        epsilon_high=epsilon if epsilon_high is None else epsilon_high,
        use_vllm=False,
        vllm_importance_sampling_correction=False,
        current_gradient_accumulation_steps=1,
        max_completion_length=settings.get("max_completion_length"),
        _entropy_bonus_enabled=False,
        _metrics=_metrics(),
    )
    trainer._get_per_token_logps_and_entropies = types.MethodType(
        GRPOTrainer._get_per_token_logps_and_entropies, trainer
    )
    inputs = {
        "prompt_ids": torch.ones(B, 2, dtype=torch.long),
        "prompt_mask": torch.ones(B, 2, dtype=torch.long),
        "completion_ids": torch.ones(B, C, dtype=torch.long),
        "completion_mask": mask,
        "advantages": advantages,
        "old_per_token_logps": old,
        "num_items_in_batch": torch.as_tensor(settings.get("num_items_in_batch", mask.sum())),
    }
    if beta != 0.0:
        inputs["ref_per_token_logps"] = ref
    loss = GRPOTrainer._compute_loss(trainer, model, inputs)
    return loss, trainer._metrics["train"]


GRPO_SETTINGS = [
    {"loss_type": "grpo"},
    {"loss_type": "bnpo", "beta": 0.04},
    {"loss_type": "dr_grpo", "beta": 0.04, "max_completion_length": 8},
    {"loss_type": "dapo"},  # TRL's default
    {"loss_type": "dapo", "beta": 0.04, "epsilon_high": 0.28, "num_items_in_batch": 40},
    {"loss_type": "grpo", "beta": 0.1, "use_bias_correction_kl": False, "epsilon": 0.1},
    {"loss_type": "bnpo", "beta": 0.1, "epsilon_high": 0.28, "use_bias_correction_kl": False},
]


@pytest.mark.parametrize("settings", GRPO_SETTINGS, ids=lambda s: "-".join(f"{k}={v}" for k, v in s.items()))
def test_grpo_loss_gradient_and_metrics_match_trl(settings: dict[str, Any]) -> None:
    pytest.importorskip("trl")
    torch.manual_seed(0)
    B, C = 6, 5
    mask = torch.ones(B, C, dtype=torch.long)
    for row, length in enumerate([5, 3, 1, 4, 2, 5]):  # right padding
        mask[row, length:] = 0
    logprobs = (-torch.rand(B, C, dtype=F64) * 3).requires_grad_()
    old = logprobs.detach() + 0.3 * torch.randn(B, C, dtype=F64)  # off-policy: ratios 0.5-2, some clipped
    ref = logprobs.detach() + 0.5 * torch.randn(B, C, dtype=F64)
    advantages = group_relative_advantages(torch.rand(B, dtype=F64), group_size=3)

    expected, metrics = _trl_grpo(logprobs, old, ref, advantages, mask, **settings)
    (expected_grad,) = torch.autograd.grad(expected, logprobs)
    ours = grpo_loss(
        logprobs,
        old,
        advantages,
        mask,
        ref_logprobs=ref if settings.get("beta") else None,
        beta=settings.get("beta", 0.0),
        epsilon=settings.get("epsilon", 0.2),
        epsilon_high=settings.get("epsilon_high"),
        loss_type=settings["loss_type"],
        max_completion_length=settings.get("max_completion_length"),
        num_items_in_batch=settings.get("num_items_in_batch"),
        importance_weighted_kl=settings.get("use_bias_correction_kl", True),
    )
    assert_equivalent(ours.loss, expected.detach())
    assert_equivalent(torch.autograd.grad(ours.loss, logprobs)[0], expected_grad)
    assert ours.clip_ratio.item() > 0  # the comparison covers clipping
    for name, fraction in (("low", ours.clip_ratio_low), ("high", ours.clip_ratio_high), ("region", ours.clip_ratio)):
        # TRL averages the clip indicators as float32 (.float()): equal fractions, float32's rounding
        assert fraction.item() == pytest.approx(metrics[f"clip_ratio/{name}_mean"][0], rel=1e-6), name
    if settings.get("beta"):
        assert ours.kl is not None and ours.kl.item() == pytest.approx(metrics["kl"][0], rel=1e-12)


def _trl_advantages(rewards: torch.Tensor, group_size: int, scale_rewards: str) -> torch.Tensor:
    """TRL's advantages of ``rewards`` (B,), from ``_generate_and_score_completions`` with one reward function."""
    from trl.trainer.grpo_trainer import GRPOTrainer

    B = rewards.size(0)
    trainer = types.SimpleNamespace(
        model=_FakeModel(torch.zeros(1)),
        accelerator=_accelerator(),
        args=types.SimpleNamespace(
            per_device_train_batch_size=B,
            steps_per_generation=1,
            gradient_accumulation_steps=1,
            gradient_checkpointing_kwargs=None,
        ),
        environment_factories=None,
        environments=None,
        tools=None,
        _tokenizer=types.SimpleNamespace(pad_token_id=0),
        pad_to_multiple_of=None,
        mask_truncated_completions=False,
        num_iterations=1,
        use_vllm=False,
        beta=0.0,
        num_generations=group_size,
        multi_objective_aggregation="sum_then_normalize",
        reward_weights=torch.ones(1, dtype=F64),
        reward_func_names=["reward"],
        scale_rewards=scale_rewards,
        _metrics=_metrics(),
        _logs={
            "prompt": [],
            "completion": [],
            "rewards": defaultdict(list),
            "advantages": [],
            "extra": defaultdict(list),
        },
        _pending_extra_logs={},
        _pending_metrics={},
    )
    prompt_ids, completion_ids = [[5, 6]] * B, [[7, 8, 9]] * B
    trainer._generate = lambda prompts: (prompt_ids, completion_ids, None, ["text"] * B, None, {}, None, None)
    trainer._calculate_rewards = lambda inputs, prompts, completions, ids: rewards[:, None]  # (B, 1 function)
    default = torch.get_default_dtype()
    torch.set_default_dtype(F64)  # TRL's Bessel factor count / (count - 1) divides integer tensors: default dtype
    try:
        output = GRPOTrainer._generate_and_score_completions(trainer, [{"prompt": "question"}] * B)
    finally:
        torch.set_default_dtype(default)
    return output["advantages"]


@pytest.mark.parametrize("scale_rewards", ["group", "batch", "none"])
def test_group_relative_advantages_match_trl(scale_rewards: str) -> None:
    pytest.importorskip("trl")
    torch.manual_seed(0)
    rewards = torch.randn(12, dtype=F64)
    rewards[4:8] = 0.5  # a group whose completions all scored the same
    for group_size in (2, 4):
        expected = _trl_advantages(rewards, group_size, scale_rewards)
        ours = group_relative_advantages(rewards, group_size, scale_rewards=scale_rewards)  # type: ignore[arg-type]
        assert_equivalent(ours, expected, msg=f"group_size={group_size}")
