"""Tests for llmdocs.finetuning.freezing: freezing, choosing what trains, and counting it like peft."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"

import pytest
import torch
from torch import nn

from llmdocs.finetuning import (
    TrainableSummary,
    freeze,
    mark_trainable,
    trainable_parameter_names,
    trainable_parameters_summary,
    unfreeze,
)
from llmdocs.models.gpt import GPT, GPTConfig
from llmdocs.profiling import count_parameters


def mlp() -> nn.Sequential:
    return nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))  # 4*3 + 3 = 15 and 3*2 + 2 = 8 parameters


def test_freeze_and_unfreeze_flip_every_parameter_and_return_the_module() -> None:
    model = mlp()
    assert freeze(model) is model
    assert not any(p.requires_grad for p in model.parameters())
    assert unfreeze(model[2]) is model[2]
    assert trainable_parameter_names(model) == ["2.weight", "2.bias"]


def test_mark_trainable_by_pattern_patterns_and_predicate() -> None:
    model = mlp()
    assert mark_trainable(model, "0.*") == ["0.weight", "0.bias"]
    assert mark_trainable(model, ["0.weight", "2.bias"]) == ["0.weight", "2.bias"]  # the rest is frozen again
    assert mark_trainable(model, "*.bias") == ["0.bias", "2.bias"]
    assert mark_trainable(model, lambda name, p: p.shape == (2, 3)) == ["2.weight"]
    assert [p.requires_grad for p in model.parameters()] == [False, False, True, False]


def test_only_trainable_parameters_change_in_a_training_step() -> None:
    torch.manual_seed(0)
    model = mlp()
    mark_trainable(model, "2.*")
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    model(torch.randn(5, 4)).square().sum().backward()
    optimizer.step()
    assert model[0].weight.grad is None and model[0].bias.grad is None  # frozen: no gradient is even computed
    for name, p in model.named_parameters():
        assert torch.equal(p, before[name]) == name.startswith("0."), name


def test_tied_embeddings_are_one_tensor_counted_once() -> None:
    model = GPT(GPTConfig.tiny())  # lm_head.weight is tok_embed.weight
    V, D = model.config.vocab_size, model.config.d_model
    assert mark_trainable(model, "lm_head.*") == ["tok_embed.weight"]  # chosen through its second name
    summary = trainable_parameters_summary(model)
    assert summary.trainable == V * D  # once, not twice
    assert summary.total == count_parameters(model) == sum(p.numel() for p in model.parameters())


def test_summary_counts_and_the_printed_line_by_hand() -> None:
    model = mlp()
    mark_trainable(model, "2.*")
    summary = trainable_parameters_summary(model)
    assert summary == TrainableSummary(8, 23, 8 / 23)
    trainable, total, fraction = summary  # unpacks like a tuple
    assert (trainable, total) == (8, 23) and fraction == pytest.approx(0.347826, abs=1e-6)
    assert str(summary) == "trainable params: 8 || all params: 23 || trainable%: 34.7826"
    unfreeze(model)
    assert str(trainable_parameters_summary(model)) == "trainable params: 23 || all params: 23 || trainable%: 100.0000"
    big = TrainableSummary(12_288, 1_000_000, 0.012288)
    assert str(big) == "trainable params: 12,288 || all params: 1,000,000 || trainable%: 1.2288"


def test_a_model_without_parameters_has_a_summary_too() -> None:
    summary = trainable_parameters_summary(nn.ReLU())
    assert summary == (0, 0, 0.0) and str(summary).endswith("trainable%: 0.0000")


@pytest.mark.filterwarnings("ignore::FutureWarning")  # transformers' own deprecation, raised inside peft
def test_summary_equals_peft_on_a_lora_gpt2(capsys: pytest.CaptureFixture[str]) -> None:
    peft = pytest.importorskip("peft")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=100, n_positions=32, n_embd=48, n_layer=2, n_head=4)
    base = transformers.GPT2LMHeadModel(config)  # tied input/output embeddings, like GPT-2
    lora = peft.get_peft_model(base, peft.LoraConfig(r=4, lora_alpha=8, target_modules=["c_attn"], fan_in_fan_out=True))
    ours = trainable_parameters_summary(lora)
    assert (ours.trainable, ours.total) == lora.get_nb_trainable_parameters()
    assert ours.trainable == 2 * 4 * (48 + 3 * 48)  # per layer: A (R, D) and B (3D, R) for the fused q, k, v
    lora.print_trainable_parameters()
    assert capsys.readouterr().out.strip() == str(ours)
    assert trainable_parameter_names(lora) == [n for n, p in lora.named_parameters() if "lora_" in n]


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda m: freeze("model"), TypeError, "expected a torch.nn.Module, got str"),
        (lambda m: unfreeze(None), TypeError, "expected a torch.nn.Module, got NoneType"),
        (lambda m: trainable_parameters_summary([m]), TypeError, "expected a torch.nn.Module, got list"),
        (lambda m: mark_trainable(m, "lm_head*"), ValueError, r"no parameter matches 'lm_head\*'.*'0.weight'"),
        (lambda m: mark_trainable(m, []), ValueError, "at least one non-empty name pattern"),
        (lambda m: mark_trainable(m, ""), ValueError, "at least one non-empty name pattern"),
        (lambda m: mark_trainable(m, 3), TypeError, "which must be a name pattern"),
        (lambda m: mark_trainable(m, ["0.*", 2]), TypeError, "name patterns must be strings"),
        # a misspelt pattern among good ones is not silently ignored: every unmatched pattern is named
        (lambda m: mark_trainable(m, ["0.*", "nope", "3.*"]), ValueError, r"no parameter matches 'nope', '3\.\*';"),
        (lambda m: mark_trainable(m, lambda name, p: False), ValueError, "no parameter matches the predicate"),
    ],
)
def test_bad_input_raises(call, error: type, message: str) -> None:  # type: ignore[no-untyped-def]
    model = mlp()
    with pytest.raises(error, match=message):
        call(model)
    assert all(p.requires_grad for p in model.parameters())  # a failed call freezes nothing


def test_a_module_without_parameters_is_named_as_such() -> None:
    with pytest.raises(ValueError, match="ReLU has no parameters: there is nothing to mark trainable"):
        mark_trainable(nn.ReLU(), "*")


def test_a_predicate_with_the_wrong_arguments_is_named() -> None:
    model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    with pytest.raises(TypeError, match=r"which: a predicate must take \(name, parameter\)"):
        mark_trainable(model, lambda name: name.startswith("1."))  # type: ignore[arg-type]
