"""Tests for llmdocs.finetuning.ppo_training: the value head and one PPO step wired from the pure pieces.

- ``CausalLMWithValueHead``: the logits are the policy's (bitwise), the values start at 0, gradients reach the
  value head and the adapters.
- At the start (LoRA B = 0) the policy is the reference: KL 0, no KL penalty; the first update is on-policy
  (nothing clipped, approx_kl 0). The scores are the reward function's or the reward model's.
- Ten steps on a toy verifiable reward (stop at once: the empty answer scores 1) make that answer likelier.
- An adaptive controller carried across steps moves beta toward its target.
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from llmdocs.finetuning.chat import CHAT_SPECIAL_TOKENS
from llmdocs.finetuning.kl import AdaptiveKLController
from llmdocs.finetuning.lora import apply_lora
from llmdocs.finetuning.ppo_training import CausalLMWithValueHead, PPOConfig, ppo_step
from llmdocs.finetuning.reward_model import RewardModel
from llmdocs.finetuning.rollouts import sample_rollouts
from llmdocs.finetuning.sft import generation_prompt
from llmdocs.models.llama import Llama, LlamaConfig
from llmdocs.tokenizers.bpe import BPETokenizer

PROMPTS = [[{"role": "user", "content": "hi"}], [{"role": "user", "content": "2+2?"}]] * 2
REFERENCES = ["", "4"] * 2
EOS = 259


class StopsOften(Llama):
    """A tiny Llama whose end-of-turn logit is raised, so that samples mix stopped and unstopped answers."""

    def forward(self, *args: object, **kwargs: object) -> Tensor:
        logits = super().forward(*args, **kwargs)  # type: ignore[arg-type]
        return logits + torch.nn.functional.one_hot(torch.tensor(EOS), logits.size(-1)).to(logits.dtype) * 4.5


class ValueHeadOnStopsOften(CausalLMWithValueHead):
    """The value head over StopsOften: the same eos bias on the logits of the training forward pass."""

    def forward(self, ids: Tensor, attention_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        logits, values = super().forward(ids, attention_mask)
        return logits + torch.nn.functional.one_hot(torch.tensor(EOS), logits.size(-1)).to(logits.dtype) * 4.5, values


def stops_at_once(completions: list[str], references: list[str]) -> list[float]:
    return [float(c == "") for c in completions]


@pytest.fixture(scope="module")
def tokenizer() -> BPETokenizer:
    return BPETokenizer.train("", vocab_size=260, special_tokens=CHAT_SPECIAL_TOKENS)


def model() -> ValueHeadOnStopsOften:
    torch.manual_seed(0)
    policy = StopsOften(LlamaConfig.tiny(260, n_layers=2, context_length=64))
    apply_lora(policy, ["q_proj", "v_proj", "up_proj", "down_proj"], r=4, lora_alpha=8)
    return ValueHeadOnStopsOften(policy)


def trainable(m: torch.nn.Module) -> list[torch.nn.Parameter]:
    for p in m.v_head.parameters():  # type: ignore[union-attr]
        p.requires_grad_(True)
    return [p for p in m.parameters() if p.requires_grad]


def test_value_head_reads_the_policys_hidden_states() -> None:
    torch.manual_seed(0)
    policy = Llama(LlamaConfig.tiny(50))
    wrapped = CausalLMWithValueHead(policy)
    ids = torch.randint(0, 50, (2, 5))
    logits, values = wrapped(ids)
    assert torch.equal(logits, policy(ids)) and values.shape == (2, 5) and not values.any()
    torch.nn.init.normal_(wrapped.v_head.weight)
    (logits.sum() * 0 + wrapped(ids)[1].sum()).backward()
    assert wrapped.v_head.weight.grad is not None and policy.tok_embed.weight.grad is not None
    with pytest.raises(TypeError, match="policy must be a llmdocs Llama"):
        CausalLMWithValueHead(torch.nn.Linear(2, 2))  # type: ignore[arg-type]


def test_first_step_is_on_policy_and_the_rewarded_answer_becomes_likelier(tokenizer: BPETokenizer) -> None:
    m = model()

    def p_stop() -> list[float]:
        with torch.no_grad():
            ids = [torch.tensor([generation_prompt(p, tokenizer)]) for p in PROMPTS[:2]]
            return [float(m(x)[0][0, -1].softmax(-1)[EOS]) for x in ids]

    before = p_stop()
    optimizer = torch.optim.Adam(trainable(m), lr=1e-2)
    config = PPOConfig(max_completion_length=3, num_ppo_epochs=2, num_mini_batches=2, kl_coef=0.05)
    history = [ppo_step(m, optimizer, tokenizer, PROMPTS, REFERENCES, stops_at_once, config=config, seed=s)
               for s in range(10)]  # fmt: skip
    assert history[0]["kl"] == 0.0 and history[0]["non_score_reward"] == 0.0  # B = 0: the policy is the reference
    assert history[0]["kl_coef"] == 0.05 and any(h["kl"] != 0 for h in history)  # once the adapters moved
    after = p_stop()
    assert all(a > b + 0.1 for a, b in zip(after, before, strict=True)), (before, after)
    one = ppo_step(model(), torch.optim.SGD(trainable(model()), lr=0.0), tokenizer, PROMPTS, REFERENCES, stops_at_once,
                   config=PPOConfig(max_completion_length=3, num_ppo_epochs=1), seed=0)  # fmt: skip
    assert one["clipfrac"] == 0.0 and one["approx_kl"] == 0.0  # one on-policy update: every ratio is 1


def test_reward_model_scores_and_adaptive_kl(tokenizer: BPETokenizer) -> None:
    m = model()
    for name, p in m.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.5)  # policy != reference
    reward_model = RewardModel(Llama(LlamaConfig.tiny(260, n_layers=1, context_length=64))).eval()
    controller = AdaptiveKLController(0.1, target=10.0, horizon=100)
    optimizer = torch.optim.SGD(trainable(m), lr=1e-3)
    config = PPOConfig(max_completion_length=3, num_ppo_epochs=1, kl_estimator="k3")
    rollouts = sample_rollouts(m.policy, tokenizer, PROMPTS, 1, 3, seed=0)  # what the step will sample
    with torch.no_grad():
        scores = reward_model(rollouts.input_ids, attention_mask=rollouts.attention_mask)
    metrics = ppo_step(m, optimizer, tokenizer, PROMPTS, reward_model=reward_model, config=config,
                       kl_controller=controller, seed=0)  # fmt: skip
    assert metrics["kl_coef"] == 0.1 and 0 < metrics["kl"] < 8  # k3 >= 0; far below the target of 10
    assert controller.value == pytest.approx(0.1 * (1 - 0.2 * 4 / 100))  # error clipped at -0.2, 4 samples
    assert metrics["score"] == pytest.approx(float(scores.mean()))  # the reward model's, on the same rollouts


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(max_completion_length=0), "max_completion_length must be a positive int"),
        (dict(num_mini_batches=0), "num_mini_batches must be a positive int"),
        (dict(kl_coef=-1.0), "kl_coef must be a number >= 0"),
        (dict(cliprange=0.0), "cliprange must be a number > 0"),
        (dict(gamma=1.5), r"gamma must be a number in \[0, 1\]"),
        (dict(kl_estimator="k4"), "kl_estimator must be one of"),
        (dict(target_kl=0.0), "target_kl must be None or a finite number > 0"),
        (dict(temperature=float("nan")), "temperature must be a number > 0"),
    ],
)
def test_config_validation(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PPOConfig(**overrides)  # type: ignore[arg-type]
    assert PPOConfig(cliprange_value=float("inf")).cliprange_value == float("inf")  # no value clipping


def test_step_errors(tokenizer: BPETokenizer) -> None:
    m = model()
    optimizer = torch.optim.SGD(trainable(m), lr=0.1)
    config = PPOConfig(max_completion_length=2)
    with pytest.raises(TypeError, match="model must be a CausalLMWithValueHead"):
        ppo_step(m.policy, optimizer, tokenizer, PROMPTS, REFERENCES, stops_at_once)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="exactly one of reward_fn"):
        ppo_step(m, optimizer, tokenizer, PROMPTS, REFERENCES, config=config)
    with pytest.raises(ValueError, match=r"one answer per prompt \(4\)"):
        ppo_step(m, optimizer, tokenizer, PROMPTS, ["4"], stops_at_once, config=config)
    with pytest.raises(ValueError, match="num_mini_batches=3 must divide the 4 prompts"):
        ppo_step(m, optimizer, tokenizer, PROMPTS, REFERENCES, stops_at_once, config=PPOConfig(num_mini_batches=3))
    with pytest.raises(TypeError, match="reward_model must be a RewardModel"):
        ppo_step(m, optimizer, tokenizer, PROMPTS, reward_model=m.policy, config=config)  # type: ignore[arg-type]
    plain = CausalLMWithValueHead(Llama(LlamaConfig.tiny(260, n_layers=1, context_length=64)))
    with pytest.raises(ValueError, match="has no LoRA adapters"):
        ppo_step(plain, optimizer, tokenizer, PROMPTS, REFERENCES, stops_at_once, config=config)
