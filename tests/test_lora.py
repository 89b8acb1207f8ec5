"""Tests for llmdocs.finetuning.lora and lora_budget: the invariants that define LoRA, and its parameter counts."""

from __future__ import annotations

import fnmatch
import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from llmdocs.finetuning.freezing import trainable_parameter_names, trainable_parameters_summary
from llmdocs.finetuning.lora import (
    LoRAFlops,
    LoRALinear,
    apply_lora,
    count_lora_parameters,
    disable_adapters,
    load_lora_state_dict,
    lora_delta,
    lora_flops,
    lora_num_parameters,
    lora_state_dict,
    merge_lora,
    module_name_matches,
    target_module_names,
    time_lora_orders,
)
from llmdocs.finetuning.lora_budget import (
    ADAMW_BYTES_PER_TRAINED,
    MODELS,
    TARGET_SETS,
    adapted_matrices,
    as_columns,
    budget_table,
    build_on_meta,
    lora_budget,
)
from llmdocs.models.bert import BertConfig, BertForSequenceClassification
from llmdocs.models.gpt import GPT, GPTConfig
from llmdocs.models.llama import Llama, LlamaConfig
from llmdocs.models.vit import ViT, ViTConfig
from llmdocs.testing import assert_close, assert_equivalent

FAMILIES = {
    "bert": lambda: BertForSequenceClassification(BertConfig.tiny(), n_classes=3),
    "gpt": lambda: GPT(GPTConfig.tiny()),
    "vit": lambda: ViT(ViTConfig.tiny()),
    "llama": lambda: Llama(LlamaConfig.tiny()),
}


def inputs(family: str, dtype: torch.dtype = torch.float32) -> Tensor:
    """A small batch for a tiny model of the family: token ids, or images for the ViT."""
    generator = torch.Generator().manual_seed(1)
    if family == "vit":
        return torch.rand(2, 3, 8, 8, generator=generator, dtype=dtype)
    return torch.randint(0, 64, (2, 6), generator=generator)


def trained_b(model: nn.Module, std: float = 0.1) -> None:
    """Give every B random values, as training would (B = 0 makes every adapter invisible)."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, LoRALinear):
                module.lora_B.weight.normal_(0.0, std)


class FakeQuantizedLinear(nn.Module):
    """A quantized linear layer in the duck type LoRALinear supports: int8 codes, a scale per row, dequantize()."""

    def __init__(self, weight: Tensor, bias: Tensor | None) -> None:
        super().__init__()
        self.in_features, self.out_features = weight.shape[1], weight.shape[0]
        scale = weight.abs().amax(dim=1, keepdim=True) / 127  # (D_out, 1)
        self.register_buffer("codes", torch.round(weight / scale).to(torch.int8))  # (D_out, D_in)
        self.register_buffer("scale", scale)
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone(), requires_grad=False)

    def dequantize(self) -> Tensor:
        return self.codes.to(self.scale.dtype) * self.scale  # (D_out, D_in)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.dequantize().to(x.dtype), None if self.bias is None else self.bias.to(x.dtype))


# --- LoRALinear: the definition -------------------------------------------------------------------------------


@pytest.mark.parametrize("init", ["kaiming", "gaussian"])
def test_a_new_adapter_changes_nothing_bit_for_bit(init: str) -> None:
    torch.manual_seed(0)
    layer = LoRALinear(nn.Linear(12, 7), r=4, lora_alpha=8, init=init)
    assert torch.count_nonzero(layer.lora_A.weight) == 4 * 12 and torch.count_nonzero(layer.lora_B.weight) == 0
    x = torch.randn(3, 5, 12)
    assert torch.equal(layer(x), layer.base_layer(x))
    for family, build in FAMILIES.items():  # a whole model with every linear layer of its blocks adapted
        torch.manual_seed(0)
        model = build().eval()
        before = model(inputs(family))
        apply_lora(model, TARGET_SETS[family]["all linear"], r=2, lora_alpha=4, init=init)
        assert torch.equal(model(inputs(family)), before), family


def test_initialisations_follow_the_paper_and_peft() -> None:
    torch.manual_seed(0)
    r, d_in = 4, 4096
    kaiming = LoRALinear(nn.Linear(d_in, 8), r=r, lora_alpha=8).lora_A.weight
    gaussian = LoRALinear(nn.Linear(d_in, 8), r=r, lora_alpha=8, init="gaussian").lora_A.weight
    bound = 1 / math.sqrt(d_in)  # kaiming_uniform with a = sqrt(5): U(-1/sqrt(D_in), 1/sqrt(D_in))
    assert kaiming.abs().max() <= bound and kaiming.abs().max() > 0.99 * bound
    # not rounding: the sample std of 16,384 Gaussian draws is within 3% of sigma = 1/R (about 5 standard errors)
    assert abs(gaussian.std().item() - 1 / r) < 0.03 / r


def test_scaling_dtype_and_attributes() -> None:
    base = nn.Linear(6, 5, dtype=torch.float64)
    layer = LoRALinear(base, r=3, lora_alpha=12, lora_dropout=0.1)
    assert layer.base_layer is base and layer.scaling == 4.0 and not layer.merged
    assert layer.lora_A.weight.dtype == torch.float64 and layer.lora_A.bias is None and layer.lora_B.bias is None
    assert isinstance(layer.lora_dropout, nn.Dropout) and layer.lora_dropout.p == 0.1
    assert isinstance(LoRALinear(nn.Linear(6, 5), r=1, lora_alpha=1).lora_dropout, nn.Identity)  # peft: p = 0
    assert not any(p.requires_grad for p in base.parameters())  # the base is frozen
    assert [n for n, p in layer.named_parameters() if p.requires_grad] == ["lora_A.weight", "lora_B.weight"]


@pytest.mark.numerics
def test_after_a_training_step_merged_equals_unmerged_and_unmerge_restores_the_base() -> None:
    torch.manual_seed(0)
    layer = LoRALinear(nn.Linear(16, 10).double(), r=4, lora_alpha=8)
    w0 = layer.base_layer.weight.detach().clone()
    x = torch.randn(8, 16, dtype=torch.float64)
    optimizer = torch.optim.AdamW([p for p in layer.parameters() if p.requires_grad], lr=0.1)
    layer(x).square().sum().backward()  # A is random, so B gets a gradient and moves off zero
    optimizer.step()
    assert torch.count_nonzero(layer.lora_B.weight) > 0 and layer.base_layer.weight.grad is None
    unmerged = layer(x)
    layer.merge()
    assert layer.merged and not torch.equal(layer.base_layer.weight, w0)
    assert_equivalent(layer.base_layer.weight, w0 + layer.scaling * layer.lora_B.weight @ layer.lora_A.weight)
    assert_equivalent(layer(x), unmerged)
    layer.unmerge()
    assert not layer.merged
    assert_equivalent(layer.base_layer.weight, w0)
    assert_equivalent(layer(x), unmerged)


@pytest.mark.numerics
def test_merge_lora_returns_a_plain_model_with_the_same_outputs() -> None:
    torch.manual_seed(0)
    model = Llama(LlamaConfig.tiny()).double().eval()
    plain_names = set(model.state_dict())
    apply_lora(model, TARGET_SETS["llama"]["all linear"], r=2, lora_alpha=4)
    trained_b(model)
    ids = inputs("llama")
    adapted = model(ids)
    merged = merge_lora(model)
    assert merged is model and not any(isinstance(m, LoRALinear) for m in model.modules())
    assert set(model.state_dict()) == plain_names and not hasattr(model, "modules_to_save")
    assert_equivalent(model(ids), adapted, depth=model.config.n_layers)
    Llama(LlamaConfig.tiny()).double().load_state_dict(model.state_dict())  # the base architecture, strictly


def test_disable_adapters_gives_the_base_model_bit_for_bit_and_restores_them() -> None:
    torch.manual_seed(0)
    model = Llama(LlamaConfig.tiny()).eval()
    ids = inputs("llama")
    base = model(ids)
    apply_lora(model, TARGET_SETS["llama"]["all linear"], r=2, lora_alpha=4)
    trained_b(model)
    adapted = model(ids)
    assert not torch.allclose(adapted, base)
    with disable_adapters(model) as inside:
        assert inside is model and torch.equal(model(ids), base)
        with disable_adapters(model):  # nested: the outer block's state comes back, still disabled
            pass
        assert torch.equal(model(ids), base)
    assert torch.equal(model(ids), adapted)
    with pytest.raises(RuntimeError, match="boom"), disable_adapters(model):
        raise RuntimeError("boom")
    assert torch.equal(model(ids), adapted)  # restored after an exception too
    with disable_adapters(model), pytest.raises(ValueError, match="disabled adapter"):
        model.get_submodule("blocks.0.self_attn.q_proj").merge()
    model.get_submodule("blocks.0.self_attn.q_proj").merge()
    with pytest.raises(ValueError, match=r"1 adapter\(s\) are merged .*'blocks.0.self_attn.q_proj'.*unmerge"):
        disable_adapters(model).__enter__()
    assert_close(model(ids), adapted)  # the refused call changed nothing (one layer merged: rounding only)
    with pytest.raises(ValueError, match="Llama has no LoRA adapters"):
        disable_adapters(Llama(LlamaConfig.tiny())).__enter__()
    with pytest.raises(TypeError):
        disable_adapters("model").__enter__()  # type: ignore[arg-type]


def test_merge_warns_when_there_is_nothing_to_do() -> None:
    layer = LoRALinear(nn.Linear(4, 4), r=1, lora_alpha=1)
    with pytest.warns(UserWarning, match="not merged"):
        layer.unmerge()
    layer.merge()
    with pytest.warns(UserWarning, match="already merged"):
        layer.merge()


def test_a_rank_above_min_d_in_d_out_is_refused_naming_the_layer() -> None:
    """peft accepts r=100 on an (6, 8) matrix; B A has rank at most 6 whatever R is, so we refuse it."""
    message = (
        r"r=100 exceeds min\(in_features, out_features\) = 6 of base_layer, a Linear with weight \(D_out, D_in\) = "
        r"\(6, 8\): B A has rank at most 6, .* R \(D_in \+ D_out\) = 1400 adapter weights outnumber the matrix's 48"
    )
    with pytest.raises(ValueError, match=message):
        LoRALinear(nn.Linear(8, 6), r=100, lora_alpha=1)
    with pytest.raises(ValueError, match=r"r=4 exceeds .* = 3 of base_layer, a FakeQuantizedLinear"):
        LoRALinear(FakeQuantizedLinear(torch.ones(3, 8), None), r=4, lora_alpha=1)
    assert LoRALinear(nn.Linear(8, 6), r=6, lora_alpha=1).r == 6  # full rank min(D_in, D_out) is allowed
    model = nn.Sequential(nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 2))
    with pytest.raises(ValueError, match=r"r=3 exceeds min\(in_features, out_features\) = 2 of 2, a Linear with"):
        apply_lora(model, ["0", "2"], r=3, lora_alpha=1)  # the message names the module, "2"
    assert not any(isinstance(m, LoRALinear) for m in model.modules())  # refused before anything changed
    assert all(p.requires_grad for p in model.parameters())  # not even frozen


def test_merge_refuses_a_non_finite_adapter_before_touching_w0() -> None:
    torch.manual_seed(0)
    layer = LoRALinear(nn.Linear(8, 6), r=2, lora_alpha=4)
    w0 = layer.base_layer.weight.detach().clone()
    for part in ("lora_A", "lora_B"):
        for value in (float("nan"), float("inf")):
            trained_b(layer)
            with torch.no_grad():
                getattr(layer, part).weight[0, 0] = value
            with pytest.raises(ValueError, match=rf"^{part}\.weight holds NaN or infinite values: merging would"):
                layer.merge()
            assert not layer.merged and torch.equal(layer.base_layer.weight, w0)  # W_0 untouched
            nn.init.kaiming_uniform_(layer.lora_A.weight)
    trained_b(layer)
    with torch.no_grad():  # finite A and B whose update overflows float32 on top of W_0
        layer.base_layer.weight.fill_(3e38)
        layer.lora_A.weight.fill_(1e19)
        layer.lora_B.weight.fill_(1e19)
    w0 = layer.base_layer.weight.detach().clone()
    with pytest.raises(ValueError, match=r"this LoRALinear: W_0 \+ scaling B A overflows torch\.float32"):
        layer.merge()
    assert torch.equal(layer.base_layer.weight, w0)


def test_unmerge_refuses_an_adapter_that_became_non_finite_after_merging() -> None:
    torch.manual_seed(0)
    layer = LoRALinear(nn.Linear(8, 6), r=2, lora_alpha=4)
    trained_b(layer)
    layer.merge()
    merged_weight = layer.base_layer.weight.detach().clone()
    with torch.no_grad():
        layer.lora_B.weight[1, 1] = float("nan")
    with pytest.raises(ValueError, match=r"lora_B\.weight holds NaN"):
        layer.unmerge()
    assert layer.merged and torch.equal(layer.base_layer.weight, merged_weight)


def test_merge_lora_checks_every_adapter_before_it_changes_any_and_names_the_broken_one() -> None:
    torch.manual_seed(0)
    quantized = FakeQuantizedLinear(torch.randn(4, 8), torch.randn(4))  # a quantized base too
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 6), nn.Linear(6, 8), quantized)
    apply_lora(model, ["0", "2", "4"], r=2, lora_alpha=4)
    trained_b(model)
    state = {name: t.clone() for name, t in model.state_dict().items()}
    for broken in ("2", "4"):
        with torch.no_grad():
            model.get_submodule(broken).lora_A.weight[0, 0] = float("nan")
        with pytest.raises(ValueError, match=rf"^{broken}\.lora_A\.weight holds NaN or infinite values"):
            merge_lora(model)
        # the first adapter, which was fine, was not merged either: the model is as it was
        assert all(isinstance(model[i], LoRALinear) and not model[i].merged for i in (0, 2, 4))
        assert all(torch.equal(t, state[name]) for name, t in model.state_dict().items() if ".lora_A" not in name)
        model.get_submodule(broken).lora_A.weight.data.copy_(state[f"{broken}.lora_A.weight"])
    assert [type(m).__name__ for m in merge_lora(model)] == ["Linear", "ReLU", "Linear", "Linear", "Linear"]


def test_an_input_of_another_dtype_gets_the_layer_s_own_type_error() -> None:
    torch.manual_seed(0)
    layer = LoRALinear(nn.Linear(8, 6), r=2, lora_alpha=4)
    x = torch.randn(3, 8)
    for dtype in (torch.float64, torch.float16):
        with pytest.raises(TypeError, match=rf"x is {dtype} but the layer's weights are torch\.float32: cast"):
            layer(x.to(dtype))
    with torch.autocast("cpu", dtype=torch.bfloat16):  # autocast casts inside each product: mixed dtypes are fine
        assert layer(x.bfloat16()).shape == (3, 6)
    quantized = LoRALinear(FakeQuantizedLinear(torch.randn(6, 8), None), r=2, lora_alpha=4)
    assert quantized(x.double()).dtype == torch.float64  # a quantized base casts its input itself (as Linear4bit)


# --- evaluation order and its cost ---------------------------------------------------------------------------


@pytest.mark.numerics
def test_b_of_ax_equals_ba_of_x_and_the_layer_computes_either() -> None:
    torch.manual_seed(0)
    x, A, B = torch.randn(2, 7, 20).double(), torch.randn(3, 20).double(), torch.randn(9, 3).double()
    factored, dense = lora_delta(x, A, B, 0.25, "factored"), lora_delta(x, A, B, 0.25, "dense")
    assert factored.shape == (2, 7, 9)
    assert_equivalent(factored, dense)
    assert_equivalent(factored, 0.25 * torch.einsum("or,ri,bti->bto", B, A, x))
    layer = LoRALinear(nn.Linear(20, 9).double(), r=3, lora_alpha=0.75)
    trained_b(layer)
    out = layer(x)
    layer.order = "dense"
    assert_equivalent(layer(x), out)


def test_lora_flops_against_a_hand_count_and_torch_flop_counter() -> None:
    # N = 10 tokens, D_in = 6, D_out = 4, R = 2. A x: 10 * 6 * 2 = 120 multiply-adds; B (A x): 10 * 2 * 4 = 80.
    # B A: 4 * 2 * 6 = 48; (B A) x: 10 * 6 * 4 = 240. W_0 x: 240. FLOPs = 2 x multiply-adds.
    assert lora_flops(10, 6, 4, 2) == LoRAFlops(factored=2 * (120 + 80), dense=2 * (48 + 240), base=2 * 240)
    for n, d_in, d_out, r in [(10, 6, 4, 2), (33, 48, 80, 8)]:
        x, A, B = torch.randn(n, d_in), torch.randn(r, d_in), torch.randn(d_out, r)
        costs = lora_flops(n, d_in, d_out, r)
        for order in ("factored", "dense"):
            with FlopCounterMode(display=False) as counter:
                lora_delta(x, A, B, 1.0, order)
            assert counter.get_total_flops() == getattr(costs, order), order
    # dense is cheaper only if 1/D_in + 1/D_out > 1/R + 1/N: true for R near D, never at LoRA's ranks
    assert lora_flops(1000, 8, 8, 7).dense < lora_flops(1000, 8, 8, 7).factored
    assert lora_flops(1000, 768, 768, 64).dense > lora_flops(1000, 768, 768, 64).factored


def test_time_lora_orders_measures_all_three() -> None:
    times = time_lora_orders(n_tokens=4, d_in=8, d_out=8, r=2, repeats=2)
    assert times._fields == ("factored", "dense", "base") and all(t > 0 for t in times)


# --- dropout ------------------------------------------------------------------------------------------------


def test_dropout_acts_on_the_adapter_input_in_training_only() -> None:
    torch.manual_seed(0)
    layer = LoRALinear(nn.Linear(32, 8), r=4, lora_alpha=4, lora_dropout=0.5)
    x = torch.randn(64, 32)
    assert torch.equal(layer.train()(x), layer.base_layer(x))  # B = 0: the base path has no dropout
    trained_b(layer)
    torch.manual_seed(1)
    out = layer(x)
    torch.manual_seed(1)
    dropped = F.dropout(x, 0.5, training=True)  # the same mask
    assert (dropped == 0).any()
    expected = layer.base_layer(x) + layer.scaling * layer.lora_B(layer.lora_A(dropped))
    assert_close(out, expected, depth=2)
    assert not torch.equal(layer(x), layer(x))  # a new mask every call
    layer.eval()
    assert_close(layer(x), layer.base_layer(x) + layer.scaling * layer.lora_B(layer.lora_A(x)), depth=2)
    assert torch.equal(layer(x), layer(x))


# --- apply_lora: shapes, freezing, counting ------------------------------------------------------------------


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_adapter_has_the_shapes_that_make_lora_work(family: str) -> None:
    model = FAMILIES[family]()
    matrices = adapted_matrices(model, "all linear")
    names = apply_lora(model, TARGET_SETS[family]["all linear"], r=3, lora_alpha=6)
    assert names == [m.name for m in matrices] and len(names) == model_layers(model) * (6 + (family == "llama"))
    for matrix in matrices:
        adapter = model.get_submodule(matrix.name)
        assert isinstance(adapter, LoRALinear)
        base = adapter.base_layer.weight
        assert base.shape == (matrix.d_out, matrix.d_in)  # W_0 (D_out, D_in)
        assert adapter.lora_A.weight.shape == (3, matrix.d_in)  # A (R, D_in)
        assert adapter.lora_B.weight.shape == (matrix.d_out, 3)  # B (D_out, R)
        assert (adapter.lora_B.weight @ adapter.lora_A.weight).shape == base.shape  # B A has W_0's shape


def model_layers(model: nn.Module) -> int:
    return model.config.n_layers


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("target_set", ["q,v", "attention", "all linear"])
def test_trainable_count_equals_the_closed_form(family: str, target_set: str) -> None:
    model = FAMILIES[family]()
    closed_form = lora_budget(model, r=4, targets=target_set).lora_parameters
    apply_lora(model, TARGET_SETS[family][target_set], r=4, lora_alpha=8)
    assert trainable_parameters_summary(model).trainable == count_lora_parameters(model) == closed_form
    assert all(name.endswith(("lora_A.weight", "lora_B.weight")) for name in trainable_parameter_names(model))


def test_only_adapters_and_modules_to_save_train() -> None:
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig.tiny(), n_classes=3)
    names = apply_lora(model, ["q_proj", "v_proj"], r=4, lora_alpha=8, modules_to_save=["classifier"])
    assert names == [f"bert.layers.{i}.self_attn.{p}" for i in range(2) for p in ("q_proj", "v_proj")]
    classifier = 32 * 3 + 3
    assert trainable_parameters_summary(model).trainable == 4 * lora_num_parameters(32, 32, 4) + classifier
    trainable = set(trainable_parameter_names(model))
    assert trainable == {f"{n}.lora_{ab}.weight" for n in names for ab in "AB"} | {
        "classifier.weight",
        "classifier.bias",
    }
    F.cross_entropy(model(inputs("bert")), torch.tensor([0, 2])).backward()
    for name, p in model.named_parameters():
        assert (p.grad is not None) == (name in trainable), name


def test_targets_match_like_peft_target_modules() -> None:
    model = GPT(GPTConfig.tiny())
    q = ["blocks.0.self_attn.q_proj", "blocks.1.self_attn.q_proj"]
    assert target_module_names(model, "q_proj") == q  # a bare name matches the last component
    assert target_module_names(model, "self_attn.q_proj") == q  # or the last components
    assert target_module_names(model, "blocks.0.*_proj") == [
        f"blocks.0.self_attn.{p}" for p in ("q_proj", "k_proj", "v_proj", "out_proj")
    ]  # fnmatch on the full name
    assert target_module_names(model, ["blocks.1.ff.fc2", "q_proj"]) == [*q, "blocks.1.ff.fc2"]  # module order


def test_apply_lora_on_the_meta_device_counts_like_the_closed_form() -> None:
    model = build_on_meta("BERT-base")
    names = apply_lora(model, TARGET_SETS["bert"]["all linear"], r=8, lora_alpha=16)
    assert model.get_submodule(names[0]).lora_A.weight.device.type == "meta"
    assert count_lora_parameters(model) == lora_budget("BERT-base", 8, "all linear").lora_parameters
    # per layer: 4 attention matrices 8 (768 + 768) and the feed-forward pair 2 * 8 (768 + 3072)
    assert count_lora_parameters(model) == 12 * (4 * 8 * 1536 + 2 * 8 * 3840)


def test_lora_state_dict_holds_the_adapters_and_modules_to_save_and_loads_back() -> None:
    torch.manual_seed(0)
    model = ViT(ViTConfig.tiny()).eval()
    apply_lora(model, ["q_proj", "v_proj"], r=2, lora_alpha=2, modules_to_save=["head"])
    trained_b(model)
    state = lora_state_dict(model)
    adapters = [n for n in state if ".lora_" in n]
    assert len(adapters) == 2 * 2 * 2 and set(state) - set(adapters) == {"head.weight", "head.bias"}
    torch.manual_seed(0)
    fresh = ViT(ViTConfig.tiny()).eval()  # the same base weights (same seed)
    apply_lora(fresh, ["q_proj", "v_proj"], r=2, lora_alpha=2, modules_to_save=["head"])
    images = inputs("vit")
    assert not torch.equal(fresh(images), model(images))  # trained B and head: visible
    load_lora_state_dict(fresh, state)
    assert torch.equal(fresh(images), model(images))


def test_load_lora_state_dict_refuses_what_load_state_dict_with_strict_false_skips() -> None:
    """The documented reload used to be load_state_dict(state, strict=False), which loads nothing, silently, into a
    model adapted on other targets; load_lora_state_dict names what does not fit and loads nothing then."""

    def adapted(targets: list[str], r: int = 2, modules_to_save: tuple[str, ...] = ()) -> nn.Module:
        torch.manual_seed(0)
        model = GPT(GPTConfig.tiny())
        apply_lora(model, targets, r=r, lora_alpha=4, modules_to_save=modules_to_save)
        return model

    source = adapted(["q_proj", "v_proj"])
    trained_b(source)
    state = lora_state_dict(source)
    other = adapted(["k_proj"])
    before = {name: t.clone() for name, t in other.state_dict().items()}
    result = other.load_state_dict(state, strict=False)  # the trap: no error, nothing loaded
    assert sorted(result.unexpected_keys) == sorted(state)
    with pytest.raises(ValueError, match=r"state holds \['blocks\.0\.self_attn\.q_proj\.lora_A\.weight'.* lack "):
        load_lora_state_dict(other, state)
    with pytest.raises(ValueError, match=r"state lacks \['blocks\.0\.self_attn\.q_proj\.lora_A\.weight'"):
        load_lora_state_dict(adapted(["q_proj", "v_proj"]), {k: v for k, v in state.items() if ".q_proj." not in k})
    with pytest.raises(ValueError, match=r"state lacks \['blocks\.0\.ff\.fc1\.bias'"):  # its modules_to_save too
        load_lora_state_dict(adapted(["q_proj", "v_proj"], modules_to_save=("fc1",)), state)
    with pytest.raises(ValueError, match=r"lora_A\.weight: the state's shape \(2, 32\) differs .* \(4, 32\) .*rank"):
        load_lora_state_dict(adapted(["q_proj", "v_proj"], r=4), state)
    broken = dict(state)
    broken["blocks.1.self_attn.v_proj.lora_B.weight"] = torch.full((32, 2), float("nan"))
    with pytest.raises(ValueError, match=r"blocks\.1\.self_attn\.v_proj\.lora_B\.weight holds NaN or infinite"):
        load_lora_state_dict(adapted(["q_proj", "v_proj"]), broken)
    merged = adapted(["q_proj", "v_proj"])
    merged.blocks[0].self_attn.q_proj.merge()
    with pytest.raises(ValueError, match=r"\['blocks\.0\.self_attn\.q_proj'\] are merged: unmerge\(\) them first"):
        load_lora_state_dict(merged, state)
    with pytest.raises(TypeError, match="state must be a mapping of parameter names to tensors"):
        load_lora_state_dict(other, list(state.values()))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="has no LoRA adapters"):
        load_lora_state_dict(GPT(GPTConfig.tiny()), state)
    assert all(torch.equal(t, before[name]) for name, t in other.state_dict().items())  # nothing was loaded


# --- a quantized base -----------------------------------------------------------------------------------------


@pytest.mark.numerics
def test_a_quantized_base_adapts_refuses_merge_and_merge_lora_dequantizes() -> None:
    torch.manual_seed(0)
    dense = nn.Linear(16, 8)
    quantized = FakeQuantizedLinear(dense.weight, dense.bias)
    layer = LoRALinear(quantized, r=2, lora_alpha=4)
    assert layer.quantized and layer.lora_A.weight.dtype == torch.float32  # QLoRA: the adapter in float32
    x = torch.randn(5, 16)
    assert torch.equal(layer(x), quantized(x))
    with pytest.raises(ValueError, match="quantized base"):
        layer.merge()
    layer = layer.double()
    trained_b(layer)
    x = x.double()
    adapted = layer(x)
    model = nn.Sequential(layer)
    merged = merge_lora(model)[0]
    assert type(merged) is nn.Linear and merged.weight.dtype == torch.float64 and not merged.weight.requires_grad
    assert_equivalent(merged(x), adapted)
    without_bias = nn.Sequential(FakeQuantizedLinear(dense.weight, None))
    assert apply_lora(without_bias, "0", r=1, lora_alpha=1) == ["0"]  # apply_lora finds the duck type too
    assert merge_lora(without_bias)[0].bias is None


# --- bad input ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"r": 0}, ValueError, "r must be an integer >= 1"),
        ({"r": -2}, ValueError, "r must be an integer >= 1"),
        ({"r": 2.0}, TypeError, "r must be an integer"),
        ({"lora_alpha": 0}, ValueError, "lora_alpha must be a finite number > 0"),
        ({"lora_alpha": -1.0}, ValueError, "lora_alpha"),
        ({"lora_alpha": float("nan")}, ValueError, "lora_alpha"),
        ({"lora_alpha": "8"}, TypeError, "lora_alpha"),
        ({"lora_dropout": 1.0}, ValueError, r"lora_dropout must be a probability in \[0, 1\)"),
        ({"lora_dropout": -0.1}, ValueError, "lora_dropout"),
        ({"init": "xavier"}, ValueError, "init must be one of"),
    ],
)
def test_bad_hyperparameters_are_refused_by_name(kwargs: dict, error: type, match: str) -> None:
    settings = {"r": 2, "lora_alpha": 4, **kwargs}
    with pytest.raises(error, match=match):
        LoRALinear(nn.Linear(4, 4), **settings)
    with pytest.raises(error, match=match):
        apply_lora(nn.Sequential(nn.Linear(4, 4)), "0", **settings)


def test_bad_models_and_patterns_are_refused_clearly() -> None:
    with pytest.raises(TypeError, match=r"base_layer must be an nn\.Linear"):
        LoRALinear(nn.Conv1d(4, 4, 1), r=1, lora_alpha=1)
    with pytest.raises(TypeError, match=r"model must be a torch\.nn\.Module"):
        apply_lora("gpt2", "q_proj", r=1, lora_alpha=1)
    model = GPT(GPTConfig.tiny())
    with pytest.raises(ValueError, match=r"'query' matches no module .* linear layers are named like .*q_proj"):
        apply_lora(model, ["q_proj", "query"], r=1, lora_alpha=1)  # every pattern must match: a typo is caught
    with pytest.raises(ValueError, match=r"matches blocks\.0\.norm1, a LayerNorm"):
        apply_lora(model, "norm1", r=1, lora_alpha=1)
    with pytest.raises(ValueError, match=r"lm_head shares its weight with .*tok_embed"):
        apply_lora(model, "lm_head", r=1, lora_alpha=1)
    with pytest.raises(ValueError, match="modules_to_save 'classifier' matches no module"):
        apply_lora(model, "q_proj", r=1, lora_alpha=1, modules_to_save="classifier")
    with pytest.raises(ValueError, match="both targets and modules_to_save"):
        apply_lora(model, "q_proj", r=1, lora_alpha=1, modules_to_save="blocks.0.self_attn")
    with pytest.raises(TypeError, match="targets must be"):
        apply_lora(model, [3], r=1, lora_alpha=1)
    assert not any(isinstance(m, LoRALinear) for m in model.modules())  # the failed calls changed nothing
    apply_lora(model, "q_proj", r=1, lora_alpha=1)
    with pytest.raises(ValueError, match="already has LoRA adapters"):
        apply_lora(model, "v_proj", r=1, lora_alpha=1)
    with pytest.raises(ValueError, match="no LoRA adapters to merge"):
        merge_lora(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="no LoRA adapters to merge and no quantized layers to dequantize"):
        merge_lora(nn.Sequential(nn.Linear(2, 2)), dequantize=True)
    with pytest.raises(TypeError, match="dequantize must be a bool, got str 'yes'"):
        merge_lora(nn.Sequential(nn.Linear(2, 2)), dequantize="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="apply_lora"):
        lora_state_dict(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="order must be one of"):
        lora_delta(torch.ones(1, 2), torch.ones(1, 2), torch.ones(2, 1), 1.0, order="B(Ax)")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="shapes do not chain"):
        lora_delta(torch.ones(1, 3), torch.ones(1, 2), torch.ones(2, 1), 1.0)
    with pytest.raises(ValueError, match="n_tokens must be an integer >= 1"):
        lora_flops(0, 4, 4, 1)


def test_patterns_that_are_not_patterns_and_a_single_layer_are_refused_by_name() -> None:
    model = nn.Sequential(nn.Linear(4, 4))
    for targets in (None, 5, [b"0"]):
        with pytest.raises(TypeError, match=r"targets must be a module name pattern \(a str\) or a list of them"):
            apply_lora(model, targets, r=1, lora_alpha=1)  # type: ignore[arg-type]
    for targets in ("", ["0", ""]):
        with pytest.raises(ValueError, match="targets holds an empty pattern"):
            apply_lora(model, targets, r=1, lora_alpha=1)
    with pytest.raises(ValueError, match="targets must hold at least one module name pattern"):
        apply_lora(model, [], r=1, lora_alpha=1)
    with pytest.raises(ValueError, match="modules_to_save holds an empty pattern"):
        apply_lora(model, "0", r=1, lora_alpha=1, modules_to_save=[""])
    for layer in (nn.Linear(4, 4), FakeQuantizedLinear(torch.ones(4, 4), None)):
        with pytest.raises(ValueError, match=r"model is itself a linear layer .* wrap a single layer with LoRALinear"):
            apply_lora(layer, "*", r=1, lora_alpha=1)
    assert not any(isinstance(m, LoRALinear) for m in model.modules())


@pytest.mark.parametrize(
    ("build", "target", "parent"),
    [
        (lambda: nn.MultiheadAttention(16, 2), "out_proj", "MultiheadAttention"),
        (lambda: nn.TransformerEncoderLayer(16, 2, 32), "out_proj", "MultiheadAttention"),
        (lambda: nn.TransformerEncoderLayer(16, 2, 32, batch_first=True), "linear1", "TransformerEncoderLayer"),
    ],
)
def test_a_layer_whose_parent_reads_its_weight_directly_is_refused(build, target: str, parent: str) -> None:
    """nn.MultiheadAttention passes out_proj.weight to F.multi_head_attention_forward, and TransformerEncoderLayer's
    inference fast path passes linear1/linear2's: a LoRALinear there (no .weight) used to break the forward."""
    torch.manual_seed(0)
    module = build().eval()
    with pytest.raises(ValueError, match=rf"{target} cannot become a LoRALinear: its parent, a {parent}, reads"):
        apply_lora(module, target, r=2, lora_alpha=4)
    assert not any(isinstance(m, LoRALinear) for m in module.modules())  # refused before anything changed
    x = torch.randn(3, 2, 16)
    with torch.no_grad():
        module(x, x, x) if isinstance(module, nn.MultiheadAttention) else module(x)  # still runs
    if target == "linear1":  # why it is refused: in eval mode with batch_first, the fast path reads its weight
        module.linear1 = LoRALinear(module.linear1, r=2, lora_alpha=4)
        with torch.no_grad(), pytest.raises(AttributeError, match="no attribute 'weight'"):
            module(x)


def test_lora_linear_checks_its_input_like_linear4bit() -> None:
    for base in (nn.Linear(4, 3), FakeQuantizedLinear(torch.ones(3, 4), None)):
        layer = LoRALinear(base, r=2, lora_alpha=4)
        with pytest.raises(ValueError, match=r"x must have shape \(\.\.\., 4\), got \(2, 5\)"):
            layer(torch.randn(2, 5))
        with pytest.raises(ValueError, match=r"x must have shape \(\.\.\., 4\), got \(\)"):
            layer(torch.tensor(1.0))
        with pytest.raises(TypeError, match=r"x must be a floating-point tensor, got torch\.int64"):
            layer(torch.ones(2, 4, dtype=torch.long))
        with pytest.raises(TypeError, match="x must be a floating-point tensor, got list"):
            layer([[1.0] * 4])  # type: ignore[arg-type]
        assert layer(torch.randn(2, 7, 4)).shape == (2, 7, 3)


# --- the parameter-efficiency analysis -------------------------------------------------------------------------


def test_budget_memory_is_adamw_on_the_adapters_against_adamw_on_everything() -> None:
    row = lora_budget("MiniLM-L6", r=8, targets="attention")
    n, lora = row.model_parameters, row.lora_parameters
    assert n == 22_713_216 and row.n_matrices == 6 * 4 and lora == 24 * 8 * (384 + 384)
    assert ADAMW_BYTES_PER_TRAINED == 16  # weight, gradient, two moments, float32
    assert row.full_training_bytes == 16 * n and row.lora_training_bytes == 4 * n + 16 * lora
    assert row.full_optimizer_bytes == 8 * n and row.lora_optimizer_bytes == 8 * lora
    assert row.trainable_percent == 100 * lora / (n + lora)


def test_budget_table_covers_the_four_models_and_grows_linearly_with_rank() -> None:
    rows = budget_table(ranks=[4, 8])
    assert len(rows) == len(MODELS) * 3 * 2
    columns = as_columns(rows)
    assert set(columns["model"]) == set(MODELS) and set(columns["target_set"]) == {"q,v", "attention", "all linear"}
    for low, high in zip(rows[::2], rows[1::2], strict=True):
        assert (low.model, low.target_set, low.r, high.r) == (high.model, high.target_set, 4, 8)
        assert high.lora_parameters == 2 * low.lora_parameters  # R (D_in + D_out): linear in R
    by_key = {(row.model, row.target_set, row.r): row for row in rows}
    assert by_key["GPT-2 small", "q,v", 8].model_parameters == 124_439_808  # tied embeddings counted once
    assert by_key["SmolLM2-135M", "q,v", 8].lora_parameters == 30 * 8 * ((576 + 576) + (576 + 192))  # v: 3 KV heads
    for model in MODELS:  # q,v < attention < all linear
        counts = [by_key[model, target_set, 8].lora_parameters for target_set in ("q,v", "attention", "all linear")]
        assert counts == sorted(counts) and counts[0] < counts[1] < counts[2]


def test_budget_refuses_unknown_names() -> None:
    with pytest.raises(ValueError, match="unknown model 'gpt-5'"):
        lora_budget("gpt-5", r=8)
    with pytest.raises(ValueError, match="is not a target set"):
        lora_budget("MiniLM-L6", r=8, targets="qv")
    with pytest.raises(ValueError, match="r must be an integer >= 1"):
        lora_budget("MiniLM-L6", r=0)
    with pytest.raises(TypeError, match="pass module name patterns instead"):
        adapted_matrices(nn.Sequential(nn.Linear(2, 2)), "q,v")
    assert adapted_matrices(nn.Sequential(nn.Linear(2, 3)), ["0"])[0] == ("0", 2, 3)  # patterns: any model


def test_budget_table_takes_one_value_for_each_argument_and_refuses_empty_ones() -> None:
    one = budget_table(models="MiniLM-L6", ranks=8, target_sets="q,v")  # a single name is one model, not letters
    assert one == budget_table(models=["MiniLM-L6"], ranks=[8], target_sets=["q,v"])
    assert [(row.model, row.r, row.target_set) for row in one] == [("MiniLM-L6", 8, "q,v")]
    for argument in ("models", "ranks", "target_sets"):
        with pytest.raises(ValueError, match=f"{argument} must not be empty"):
            budget_table(**{argument: []})
    with pytest.raises(TypeError, match="ranks must be a rank R"):
        budget_table(ranks=8.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="r must be an integer"):
        budget_table(models="MiniLM-L6", ranks=[True])
    with pytest.raises(ValueError, match="r must be an integer >= 1"):
        budget_table(models="MiniLM-L6", ranks=[8, 0])


def test_module_name_matches_is_peft_s_glob_rule_for_plain_names_and_globs() -> None:
    names = ["q_proj", "layers.0.self_attn.q_proj", "layers.10.self_attn.q_proj", "xq_proj", "q_proj.lora_A",
             "layers.0.mlp.up_proj", ".q_proj", "a[1].q_proj"]  # fmt: skip
    patterns = ["q_proj", "self_attn.q_proj", "0.self_attn.q_proj", "layers.1*.q_proj", "*proj", "q_pro?",
                "mlp", "a[1].q_proj", "[ab][1].q_proj", "", "layers.0.mlp.up_proj"]  # fmt: skip
    for name, pattern in itertools.product(names, patterns):
        expected = fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(name, "*." + pattern)
        assert module_name_matches(name, pattern) == expected, (name, pattern)
