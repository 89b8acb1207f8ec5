"""Tests for llmdocs.finetuning.grpo_training: one GRPO step wired from rollouts, rewards, advantages and the loss.

- The step's update equals the update computed by hand from the same seeded rollouts (float64, SGD): sample, score,
  standardise within groups, ``grpo_loss`` against the adapters-off reference, clip, step.
- At the start (LoRA B = 0) the policy is the reference: KL 0. Metrics are those of the samples.
- Ten steps on a toy verifiable reward (stop at once: the empty answer scores 1) make that answer likelier.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import Tensor

from llmdocs.finetuning.chat import CHAT_SPECIAL_TOKENS
from llmdocs.finetuning.grpo import group_relative_advantages, grpo_loss
from llmdocs.finetuning.grpo_training import GRPOConfig, grpo_step
from llmdocs.finetuning.logprobs import token_log_probs
from llmdocs.finetuning.lora import apply_lora, disable_adapters
from llmdocs.finetuning.rollouts import sample_rollouts
from llmdocs.finetuning.sft import generation_prompt
from llmdocs.models.llama import Llama, LlamaConfig
from llmdocs.testing import assert_equivalent
from llmdocs.tokenizers.bpe import BPETokenizer

PROMPTS = [[{"role": "user", "content": "hi"}], [{"role": "user", "content": "2+2?"}]]
REFERENCES = ["", "4"]
EOS = 259


class StopsOften(Llama):
    """A tiny Llama whose end-of-turn logit is raised, so that groups mix stopped and unstopped samples."""

    def forward(self, *args: object, **kwargs: object) -> Tensor:
        logits = super().forward(*args, **kwargs)  # type: ignore[arg-type]
        return logits + torch.nn.functional.one_hot(torch.tensor(EOS), logits.size(-1)).to(logits.dtype) * 4.5


def stops_at_once(completions: list[str], references: list[str]) -> list[float]:
    """1 for an empty answer (the model ended its turn at once), else 0: a verifiable toy reward."""
    return [float(c == "") for c in completions]


@pytest.fixture(scope="module")
def tokenizer() -> BPETokenizer:
    return BPETokenizer.train("", vocab_size=260, special_tokens=CHAT_SPECIAL_TOKENS)


def policy(dtype: torch.dtype = torch.float32) -> Llama:
    torch.manual_seed(0)
    model = StopsOften(LlamaConfig.tiny(260, n_layers=2, context_length=64)).to(dtype)
    apply_lora(model, ["q_proj", "v_proj", "up_proj", "down_proj"], r=4, lora_alpha=8)
    return model


@pytest.mark.numerics
def test_the_step_is_the_update_computed_by_hand(tokenizer: BPETokenizer) -> None:
    config = GRPOConfig(num_generations=4, max_completion_length=5, beta=0.1, num_iterations=2, loss_type="bnpo")
    model = policy(torch.float64)
    for name, p in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.1)  # as if trained: the policy differs from the reference
    by_hand = copy.deepcopy(model)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    metrics = grpo_step(model, optimizer, tokenizer, PROMPTS, REFERENCES, stops_at_once, config, seed=3)

    hand_optimizer = torch.optim.SGD([p for p in by_hand.parameters() if p.requires_grad], lr=0.5)
    rollouts = sample_rollouts(by_hand, tokenizer, PROMPTS, 4, 5, seed=3)
    rewards = torch.tensor(stops_at_once(rollouts.completions, []), dtype=torch.float32)
    advantages = group_relative_advantages(rewards, 4).double()
    ids, labels, mask = rollouts.input_ids, rollouts.labels, rollouts.attention_mask
    with torch.no_grad(), disable_adapters(by_hand):
        reference, _ = token_log_probs(by_hand(ids, attention_mask=mask), labels)
    old = None
    for _ in range(2):
        logprobs, token_mask = token_log_probs(by_hand(ids, attention_mask=mask), labels)
        old = logprobs.detach() if old is None else old
        loss = grpo_loss(logprobs, old, advantages, token_mask, ref_logprobs=reference, beta=0.1, loss_type="bnpo").loss
        hand_optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in by_hand.parameters() if p.requires_grad], 1.0)
        hand_optimizer.step()
    for (name, got), expected in zip(model.named_parameters(), by_hand.parameters(), strict=True):
        assert_equivalent(got.detach(), expected.detach(), depth=3, msg=name)
    assert metrics["reward"] == pytest.approx(float(rewards.mean()))
    assert metrics["completion_tokens"] == int(rollouts.completion_lengths.sum())
    assert metrics["kl"] > 0  # trained adapters: the policy is not the reference
    groups = rewards.view(2, 4)
    assert metrics["frac_reward_zero_std"] == pytest.approx(float((groups.std(dim=1) == 0).float().mean()))


def test_kl_is_zero_at_the_start_and_the_rewarded_answer_becomes_likelier(tokenizer: BPETokenizer) -> None:
    model = policy()

    def p_stop() -> list[float]:  # pi(end of turn | prompt): the probability of the rewarded (empty) answer
        with torch.no_grad():
            return [
                float(model(torch.tensor([generation_prompt(p, tokenizer)]))[0, -1].softmax(-1)[EOS]) for p in PROMPTS
            ]

    before = p_stop()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    config = GRPOConfig(num_generations=8, max_completion_length=3, beta=0.0)
    history = [
        grpo_step(model, optimizer, tokenizer, PROMPTS, REFERENCES, stops_at_once, config, seed=s) for s in range(10)
    ]
    assert history[0]["kl"] == 0.0 and history[0]["clip_ratio"] == 0.0  # B = 0; on-policy: nothing clipped
    after = p_stop()
    assert all(a > b + 0.1 for a, b in zip(after, before, strict=True)), (before, after)  # ~0.25 -> ~0.40
    assert {"loss", "reward_std", "grad_norm", "generation_seconds", "update_seconds", "truncated"} <= history[0].keys()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(num_generations=1), "num_generations must be >= 2"),
        (dict(max_completion_length=0), "max_completion_length must be a positive int"),
        (dict(temperature=0.0), "temperature must be a finite number > 0"),
        (dict(beta=-0.1), "beta must be a finite number >= 0"),
        (dict(epsilon=1.0), r"epsilon must be a finite number in \[0, 1\)"),
        (dict(epsilon_high=0.0), "epsilon_high must be None or a finite number > 0"),
        (dict(max_grad_norm=float("nan")), "max_grad_norm must be None or a finite number > 0"),
        (dict(loss_type="ppo"), "loss_type must be one of"),
        (dict(scale_rewards="rank"), "scale_rewards must be one of"),
    ],
)
def test_config_validation(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GRPOConfig(**overrides)  # type: ignore[arg-type]


def test_step_errors(tokenizer: BPETokenizer) -> None:
    model = policy()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    config = GRPOConfig(num_generations=2, max_completion_length=2)
    with pytest.raises(TypeError, match="config must be a GRPOConfig"):
        grpo_step(model, optimizer, tokenizer, PROMPTS, REFERENCES, stops_at_once, {"beta": 0.1})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="reward_fn must be callable"):
        grpo_step(model, optimizer, tokenizer, PROMPTS, REFERENCES, "exact", config)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"references must hold one answer per prompt \(2\)"):
        grpo_step(model, optimizer, tokenizer, PROMPTS, ["4"], stops_at_once, config)
    with pytest.raises(ValueError, match=r"one number per completion \(4\), got 1"):
        grpo_step(model, optimizer, tokenizer, PROMPTS, REFERENCES, lambda c, r: [1.0], config)
    with pytest.raises(ValueError, match="non-finite reward"):
        grpo_step(model, optimizer, tokenizer, PROMPTS, REFERENCES, lambda c, r: [float("nan")] * len(c), config)
    plain = StopsOften(LlamaConfig.tiny(260, n_layers=1, context_length=64))
    with pytest.raises(ValueError, match="has no LoRA adapters"):
        grpo_step(plain, optimizer, tokenizer, PROMPTS, REFERENCES, stops_at_once, config)
