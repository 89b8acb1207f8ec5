"""Our LoRA against Hugging Face peft: the same layer outputs, and adapters that cross over in both directions.

Every comparison runs in float64 (an equivalence proof, see the Conventions page): our model, its Hugging Face twin
built by the family's interop module, and peft's adapters on it.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

os.environ["HF_HUB_OFFLINE"] = "1"

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from llmdocs.finetuning.freezing import trainable_parameters_summary
from llmdocs.finetuning.lora import LoRALinear, apply_lora, merge_lora
from llmdocs.interop import hf, hf_bert, hf_llama, hf_vit
from llmdocs.interop.peft_lora import (
    ADAPTER_CONFIG_NAME,
    ADAPTER_WEIGHTS_NAME,
    load_peft_adapter,
    peft_config,
    save_peft_adapter,
)
from llmdocs.models.bert import BertConfig, BertForSequenceClassification
from llmdocs.models.gpt import GPT, GPTConfig
from llmdocs.models.llama import Llama, LlamaConfig
from llmdocs.models.vit import ViT, ViTConfig
from llmdocs.testing import assert_equivalent

peft = pytest.importorskip("peft")
pytestmark = [
    pytest.mark.numerics,
    pytest.mark.filterwarnings("ignore::UserWarning"),  # peft's notes (fan_in_fan_out, merging)
    pytest.mark.filterwarnings("ignore::FutureWarning"),  # transformers 5 deprecations inside peft
]

# family -> (tiny model, interop module, our targets, our modules_to_save, peft's targets and modules_to_save)
FAMILIES: dict[str, tuple[Callable[[], nn.Module], ModuleType, list[str], list[str], dict]] = {
    "bert": (
        lambda: BertForSequenceClassification(BertConfig.tiny(), n_classes=3),
        hf_bert,
        ["q_proj", "v_proj"],
        ["classifier"],
        {"target_modules": ["query", "value"], "task_type": "SEQ_CLS"},  # SEQ_CLS saves the classifier
    ),
    "llama": (
        lambda: Llama(LlamaConfig.tiny()),
        hf_llama,
        ["q_proj", "v_proj", "out_proj", "down_proj"],
        [],
        {"target_modules": ["q_proj", "v_proj", "o_proj", "down_proj"], "task_type": "CAUSAL_LM"},
    ),
    "vit": (
        lambda: ViT(ViTConfig.tiny()),
        hf_vit,
        ["q_proj", "v_proj", "fc1"],
        ["head"],
        {"target_modules": ["q_proj", "v_proj", "fc1"], "modules_to_save": ["classifier"]},
    ),
    "gpt": (
        lambda: GPT(GPTConfig.tiny()),
        hf,
        ["q_proj", "v_proj", "out_proj", "ff.fc2"],
        [],
        {"target_modules": ["c_attn", "attn.c_proj"], "task_type": "CAUSAL_LM", "fan_in_fan_out": True},
    ),
}


def inputs(family: str) -> Tensor:
    generator = torch.Generator().manual_seed(1)
    if family == "vit":
        return torch.rand(2, 3, 8, 8, generator=generator, dtype=torch.float64)
    return torch.randint(0, 64, (2, 6), generator=generator)


def outputs(model: nn.Module, family: str, x: Tensor) -> Tensor:
    """Logits of our model, or of a (peft-wrapped) Hugging Face twin."""
    if isinstance(model, peft.PeftModel) or type(model).__module__.startswith("transformers"):
        return (model(pixel_values=x) if family == "vit" else model(x)).logits
    return model(x)


def as_if_trained(model: nn.Module, names: tuple[str, ...] = ("lora_B",)) -> None:
    """Random values in every tensor whose name holds one of ``names`` (B = 0 would hide the adapters)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if any(n in name for n in names):
                p.normal_(0.0, 0.2)


def twins(family: str) -> tuple[nn.Module, nn.Module]:
    """Our tiny model of the family in float64 eval mode, and its Hugging Face twin with the same weights."""
    torch.manual_seed(0)
    build, interop, *_ = FAMILIES[family]
    ours = build().double().eval()
    return ours, interop.to_hf(ours).eval()


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(12, 7)

    def forward(self, x: Tensor) -> Tensor:
        return self.lin(x)


# --- one layer ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("lora_dropout", [0.0, 0.3])
def test_lora_linear_equals_peft_linear_unmerged_and_merged(lora_dropout: float) -> None:
    torch.manual_seed(0)
    module = Tiny().double()
    ours = LoRALinear(copy.deepcopy(module.lin), r=3, lora_alpha=6, lora_dropout=lora_dropout).eval()
    config = peft.LoraConfig(r=3, lora_alpha=6, lora_dropout=lora_dropout, target_modules=["lin"])
    theirs = peft.get_peft_model(module, config).eval()
    layer = theirs.base_model.model.lin
    assert isinstance(layer, peft.tuners.lora.Linear) and layer.scaling["default"] == ours.scaling == 2.0
    as_if_trained(ours)
    with torch.no_grad():
        layer.lora_A["default"].weight.copy_(ours.lora_A.weight)
        layer.lora_B["default"].weight.copy_(ours.lora_B.weight)  # B non-zero: the update is visible
    x = torch.randn(4, 5, 12, dtype=torch.float64)
    assert not torch.equal(ours(x), ours.base_layer(x))
    assert_equivalent(ours(x), theirs(x))
    ours.merge()
    layer.merge()
    assert_equivalent(ours.base_layer.weight, layer.base_layer.weight)
    assert_equivalent(ours(x), theirs(x))
    ours.unmerge()
    layer.unmerge()
    assert_equivalent(ours(x), theirs(x))


@pytest.mark.parametrize(("init", "init_lora_weights"), [("kaiming", True), ("gaussian", "gaussian")])
def test_initialisation_is_peft_s_bit_for_bit(init: str, init_lora_weights: bool | str) -> None:
    module = Tiny()
    base = copy.deepcopy(module.lin)
    torch.manual_seed(3)
    config = peft.LoraConfig(r=4, lora_alpha=4, target_modules=["lin"], init_lora_weights=init_lora_weights)
    theirs = peft.get_peft_model(module, config).base_model.model.lin
    torch.manual_seed(3)  # the same random stream: our A must be drawn exactly as peft draws it
    ours = LoRALinear(base, r=4, lora_alpha=4, init=init)
    assert torch.equal(ours.lora_A.weight, theirs.lora_A["default"].weight)
    assert torch.equal(ours.lora_B.weight, theirs.lora_B["default"].weight)  # zero


def test_trainable_parameters_equal_peft_s_count() -> None:
    ours, theirs = twins("bert")
    apply_lora(ours, ["q_proj", "v_proj"], r=4, lora_alpha=8, modules_to_save=["classifier"])
    theirs = peft.get_peft_model(theirs, peft.LoraConfig(r=4, lora_alpha=8, target_modules=["query", "value"]))
    trainable, _ = theirs.get_nb_trainable_parameters()
    assert trainable_parameters_summary(ours).trainable == trainable + 32 * 3 + 3  # + the classifier peft saves


# --- whole models, both directions ----------------------------------------------------------------------------


@pytest.mark.parametrize("family", list(FAMILIES))
def test_our_adapters_load_into_peft_with_the_same_outputs(family: str, tmp_path: Path) -> None:
    ours, theirs = twins(family)
    _, _, targets, to_save, _ = FAMILIES[family]
    apply_lora(ours, targets, r=4, lora_alpha=8, modules_to_save=to_save)
    as_if_trained(ours, ("lora_B", *(f"{name}." for name in to_save)))
    save_peft_adapter(ours, tmp_path, base_model_name_or_path=f"tiny-{family}")
    theirs = peft.PeftModel.from_pretrained(theirs, tmp_path).eval()
    x = inputs(family)
    depth = ours.config.n_layers
    adapted = outputs(ours, family, x)
    assert_equivalent(adapted, outputs(theirs, family, x), depth=depth)
    assert_equivalent(outputs(merge_lora(ours), family, x), outputs(theirs.merge_and_unload(), family, x), depth=depth)
    assert_equivalent(outputs(ours, family, x), adapted, depth=depth)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_peft_adapters_load_into_ours_with_the_same_outputs(family: str, tmp_path: Path) -> None:
    ours, theirs = twins(family)
    peft_settings = FAMILIES[family][4]
    theirs = peft.get_peft_model(theirs, peft.LoraConfig(r=4, lora_alpha=8, lora_dropout=0.1, **peft_settings))
    as_if_trained(theirs, ("lora_B", "modules_to_save"))
    theirs.save_pretrained(tmp_path)
    names = load_peft_adapter(ours, tmp_path)
    adapters = [m for m in ours.modules() if isinstance(m, LoRALinear)]
    assert len(adapters) == len(names) and all(m.lora_dropout.p == 0.1 for m in adapters)
    assert ours.modules_to_save == tuple(FAMILIES[family][3])  # peft's classifier is our classifier (ViT: head)
    saved = tuple(f"{name}." for name in ours.modules_to_save)
    for name, p in ours.named_parameters():
        assert p.requires_grad == (".lora_" in name or name.startswith(saved)), name
    x = inputs(family)
    assert_equivalent(outputs(ours.eval(), family, x), outputs(theirs.eval(), family, x), depth=ours.config.n_layers)


def test_gpt2_q_and_v_stack_into_one_exact_c_attn_adapter_and_come_back(tmp_path: Path) -> None:
    ours, theirs = twins("gpt")
    apply_lora(ours, ["q_proj", "v_proj", "out_proj"], r=4, lora_alpha=8)
    as_if_trained(ours)
    save_peft_adapter(ours, tmp_path)
    config = json.loads((tmp_path / ADAPTER_CONFIG_NAME).read_text())
    assert config["target_modules"] == ["attn.c_proj", "c_attn"] and config["fan_in_fan_out"] is True
    assert (config["r"], config["lora_alpha"]) == (4, 8)
    assert (config["rank_pattern"], config["alpha_pattern"]) == ({"c_attn": 8}, {"c_attn": 16})  # 2R, 2 alpha
    tensors = load_file(tmp_path / ADAPTER_WEIGHTS_NAME)
    A = tensors["base_model.model.transformer.h.0.attn.c_attn.lora_A.weight"]
    B = tensors["base_model.model.transformer.h.0.attn.c_attn.lora_B.weight"]
    q, v = ours.blocks[0].self_attn.q_proj, ours.blocks[0].self_attn.v_proj
    assert A.shape == (8, 32) and B.shape == (3 * 32, 8)  # A (2R, D), B (3D, 2R)
    assert torch.equal(A, torch.cat([q.lora_A.weight, v.lora_A.weight]))
    assert torch.equal(B[:32, :4], q.lora_B.weight) and torch.equal(B[64:, 4:], v.lora_B.weight)
    assert torch.count_nonzero(B[32:64]) == 0 and torch.count_nonzero(B[:32, 4:]) == 0  # no k, no crosstalk
    fresh = twins("gpt")[0]
    names = load_peft_adapter(fresh, tmp_path)
    assert names == [n for n, m in ours.named_modules() if isinstance(m, LoRALinear)]  # q, v, out_proj: no k
    for name, theirs_state in fresh.state_dict().items():
        assert torch.equal(theirs_state, ours.state_dict()[name]), name  # the same ranks, the same tensors
    theirs = peft.PeftModel.from_pretrained(theirs, tmp_path).eval()
    x = inputs("gpt")
    assert_equivalent(fresh(x), outputs(theirs, "gpt", x), depth=2)


def test_peft_s_c_attn_adapter_gives_each_projection_its_rows(tmp_path: Path) -> None:
    ours, theirs = twins("gpt")
    theirs = peft.get_peft_model(theirs, peft.LoraConfig(r=4, lora_alpha=8, target_modules=["c_attn"]))
    as_if_trained(theirs)
    theirs.save_pretrained(tmp_path)
    names = load_peft_adapter(ours, tmp_path)
    assert [n.rpartition(".")[2] for n in names] == ["q_proj", "k_proj", "v_proj"] * 2
    layer = theirs.base_model.model.transformer.h[0].attn.c_attn
    for i, proj in enumerate([ours.blocks[0].self_attn.q_proj, ours.blocks[0].self_attn.k_proj]):
        assert torch.equal(proj.lora_A.weight, layer.lora_A["default"].weight)  # the shared A
        assert torch.equal(proj.lora_B.weight, layer.lora_B["default"].weight[32 * i : 32 * (i + 1)])


# --- the files ------------------------------------------------------------------------------------------------


def adapted_bert(tmp_path: Path) -> Path:
    ours, _ = twins("bert")
    apply_lora(ours, ["q_proj", "v_proj"], r=4, lora_alpha=8, lora_dropout=0.05, modules_to_save=["classifier"])
    return save_peft_adapter(ours, tmp_path / "adapter", base_model_name_or_path="google-bert/bert-base-uncased")


def test_adapter_config_is_one_peft_reads_and_writes(tmp_path: Path) -> None:
    folder = adapted_bert(tmp_path)
    ours = json.loads((folder / ADAPTER_CONFIG_NAME).read_text())
    config = peft.LoraConfig.from_pretrained(folder)
    assert (config.peft_type, config.task_type, config.r, config.lora_alpha) == ("LORA", "SEQ_CLS", 4, 8)
    assert config.target_modules == {"query", "value"} and config.modules_to_save == ["classifier"]
    assert (config.lora_dropout, config.bias, config.base_model_name_or_path) == (
        0.05,
        "none",
        "google-bert/bert-base-uncased",
    )
    assert set(ours) <= set(config.to_dict())  # every field we write is one of peft's
    peft_folder = tmp_path / "peft"
    config.save_pretrained(peft_folder)  # peft's own file: the same values
    theirs = json.loads((peft_folder / ADAPTER_CONFIG_NAME).read_text())
    assert {k: theirs[k] for k in ours if k != "target_modules"} == {
        k: v for k, v in ours.items() if k != "target_modules"
    }
    assert sorted(theirs["target_modules"]) == ours["target_modules"]


def edit_config(folder: Path, **changes: object) -> None:
    config = json.loads((folder / ADAPTER_CONFIG_NAME).read_text())
    (folder / ADAPTER_CONFIG_NAME).write_text(json.dumps({**config, **changes}))


def drop_tensors(folder: Path, which: str) -> None:
    tensors = load_file(folder / ADAPTER_WEIGHTS_NAME)
    save_file({k: v for k, v in tensors.items() if which not in k}, folder / ADAPTER_WEIGHTS_NAME)


def poison(folder: Path, which: str, value: float) -> None:
    """Put ``value`` (NaN, inf) into the first tensor whose key holds ``which``, as a diverged training run would."""
    tensors = load_file(folder / ADAPTER_WEIGHTS_NAME)
    key = min(k for k in tensors if which in k)
    tensors[key] = tensors[key].clone()
    tensors[key].view(-1)[0] = value
    save_file(tensors, folder / ADAPTER_WEIGHTS_NAME)


@pytest.mark.parametrize(
    ("spoil", "error", "match"),
    [
        (lambda f: edit_config(f, peft_type="IA3"), ValueError, "not peft_type 'LORA'"),
        (lambda f: edit_config(f, r=8), ValueError, "do not have rank r=8"),
        (lambda f: edit_config(f, r=0), ValueError, r"r=0 in adapter_config\.json must be an integer >= 1"),
        (lambda f: edit_config(f, use_dora=True), ValueError, "use_dora=True: only plain LoRA"),
        (lambda f: edit_config(f, target_modules=["query", "key", "value"]), ValueError, "missing keys.*key"),
        (lambda f: drop_tensors(f, "layer.1.attention.self.value.lora_B"), ValueError, "missing keys.*lora_B"),
        (lambda f: drop_tensors(f, "classifier"), ValueError, r"missing keys.*\['classifier\.\*'\]"),
        (lambda f: (f / ADAPTER_WEIGHTS_NAME).unlink(), FileNotFoundError, "has no adapter_model.safetensors"),
        (
            lambda f: poison(f, "value.lora_A", float("nan")),
            ValueError,
            r"'base_model\.model\.bert\.encoder\.layer\.0\.attention\.self\.value\.lora_A\.weight' in "
            r".*adapter/adapter_model\.safetensors holds NaN or infinite values",
        ),
        (
            lambda f: poison(f, "classifier", float("-inf")),
            ValueError,
            r"'base_model\.model\.classifier\.\w+' in .*adapter_model\.safetensors holds NaN or infinite",
        ),
        (
            lambda f: (f / ADAPTER_CONFIG_NAME).write_text('{"peft_type": "LORA",'),
            ValueError,
            r"adapter_config\.json is not valid JSON \(.* at line 1, column \d+\): not a peft adapter config",
        ),
        (
            lambda f: (f / ADAPTER_CONFIG_NAME).write_text("[1, 2]"),
            ValueError,
            r"adapter_config\.json must hold a JSON object of settings, got a list",
        ),
        (lambda f: (f / ADAPTER_CONFIG_NAME).write_bytes(b"\xff\xfe{"), ValueError, r"config\.json is not UTF-8"),
        (lambda f: edit_config(f, target_modules=5), ValueError, r"target_modules=5 in .*adapter_config\.json must be"),
        (lambda f: edit_config(f, lora_alpha="8"), ValueError, r"lora_alpha='8' in .*adapter_config\.json must be"),
        (
            lambda f: (f / ADAPTER_WEIGHTS_NAME).write_bytes(b"not a safetensors file"),
            ValueError,
            r"adapter_model\.safetensors is not a readable safetensors file",
        ),
        (
            lambda f: (save_file({}, f / ADAPTER_WEIGHTS_NAME), edit_config(f, target_modules=[])),
            ValueError,
            r"adapter_model\.safetensors holds no LoRA tensors .* nothing to load \(its config targets \[\]\)",
        ),
    ],
)
def test_adapters_that_do_not_fit_are_refused(spoil: Callable, error: type, match: str, tmp_path: Path) -> None:
    folder = adapted_bert(tmp_path)
    spoil(folder)
    model, _ = twins("bert")
    with pytest.raises(error, match=match):
        load_peft_adapter(model, folder)
    assert not any(isinstance(m, LoRALinear) for m in model.modules())  # a refused adapter changes nothing


def test_a_peft_adapter_of_a_rank_above_min_d_in_d_out_is_refused_naming_our_layer(tmp_path: Path) -> None:
    """peft accepts r=40 on BERT-tiny's (32, 32) projections; LoRALinear refuses a rank above min(D_in, D_out)."""
    ours, theirs = twins("bert")
    peft.get_peft_model(theirs, peft.LoraConfig(r=40, lora_alpha=40, target_modules=["query"])).save_pretrained(
        tmp_path
    )
    with pytest.raises(ValueError, match=r"r=40 exceeds min\(in_features, out_features\) = 32 of bert\.layers\.0\."):
        load_peft_adapter(ours, tmp_path)
    assert not any(isinstance(m, LoRALinear) for m in ours.modules())  # refused before anything changed
    assert all(p.requires_grad for p in ours.parameters())


def test_an_adapter_with_nan_is_not_saved(tmp_path: Path) -> None:
    model, _ = twins("bert")
    apply_lora(model, ["q_proj"], r=2, lora_alpha=4)
    with torch.no_grad():
        model.bert.layers[1].self_attn.q_proj.lora_B.weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"to save as '.*layer\.1\.attention\.self\.query\.lora_B\.weight' holds NaN"):
        save_peft_adapter(model, tmp_path / "nan")
    assert not (tmp_path / "nan").exists()  # nothing written


def test_a_float16_adapter_loads_into_the_model_s_dtype_rounded_once_and_peft_reads_it(tmp_path: Path) -> None:
    model, hf_model = twins("llama")
    apply_lora(model, ["q_proj", "v_proj"], r=2, lora_alpha=4)
    as_if_trained(model, ("lora_A", "lora_B"))
    folder = save_peft_adapter(model, tmp_path / "half", base_model_name_or_path="tiny", dtype=torch.float16)
    stored = load_file(folder / ADAPTER_WEIGHTS_NAME)
    assert {t.dtype for t in stored.values()} == {torch.float16}
    fresh = twins("llama")[0]
    load_peft_adapter(fresh, folder)
    for name, adapter in model.named_modules():
        if isinstance(adapter, LoRALinear):
            loaded = fresh.get_submodule(name)
            assert loaded.lora_A.weight.dtype == torch.float64  # the twins are float64
            assert torch.equal(loaded.lora_A.weight, adapter.lora_A.weight.half().double())  # rounded once
            assert torch.equal(loaded.lora_B.weight, adapter.lora_B.weight.half().double())
    peft = pytest.importorskip("peft")
    peft_model = peft.PeftModel.from_pretrained(hf_model, str(folder))
    x = inputs("llama")
    assert_equivalent(outputs(peft_model, "llama", x), outputs(fresh, "llama", x), depth=2)
    with torch.no_grad():
        model.get_submodule("blocks.0.self_attn.q_proj").lora_B.weight[0, 0] = 1e6  # beyond float16's 65504
    with pytest.raises(ValueError, match=r"holds NaN or infinite values in torch.float16 \(a value beyond its range"):
        save_peft_adapter(model, tmp_path / "overflow", dtype=torch.float16)
    with pytest.raises(TypeError, match=r"dtype must be a floating-point torch\.dtype"):
        save_peft_adapter(model, tmp_path / "int", dtype=torch.int8)
    assert not (tmp_path / "overflow").exists() and not (tmp_path / "int").exists()


def test_adapters_of_another_model_and_models_without_a_twin_are_refused(tmp_path: Path) -> None:
    folder = adapted_bert(tmp_path)
    wider = BertForSequenceClassification(BertConfig.tiny(d_model=48), n_classes=3)
    with pytest.raises(ValueError, match=r"do not fit a layer .* D_in=48, D_out=48"):
        load_peft_adapter(wider, folder)
    shallower = BertForSequenceClassification(BertConfig.tiny(n_layers=1), n_classes=3)
    with pytest.raises(ValueError, match=r"has layers \['bert\.encoder\.layer\.1\..*lacks"):
        load_peft_adapter(shallower, folder)
    with pytest.raises(TypeError, match="models with a Hugging Face twin"):
        load_peft_adapter(nn.Sequential(nn.Linear(2, 2)), folder)
    with pytest.raises(ValueError, match="has no LoRA adapters"):
        save_peft_adapter(twins("llama")[0], tmp_path / "nothing")
    model = GPT(GPTConfig.tiny())
    apply_lora(model, ["v_proj"], r=2, lora_alpha=2, modules_to_save=["blocks.0.self_attn.q_proj"])
    with pytest.raises(ValueError, match="GPT-2 packs q, k and v"):
        peft_config(model)


def test_folders_and_base_names_that_are_not_paths_or_names_are_refused(tmp_path: Path) -> None:
    model, _ = twins("bert")
    apply_lora(model, ["q_proj"], r=2, lora_alpha=4)
    for directory in (None, 5):
        with pytest.raises(TypeError, match="directory must be a folder path"):
            save_peft_adapter(model, directory)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="directory must be a folder path"):
            load_peft_adapter(twins("bert")[0], directory)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="directory must be a folder path, got an empty string"):
        save_peft_adapter(model, "")
    with pytest.raises(TypeError, match=r"base_model_name_or_path must be a str .* or None, got int 5"):
        save_peft_adapter(model, tmp_path / "five", base_model_name_or_path=5)  # type: ignore[arg-type]
    assert not (tmp_path / "five").exists()  # refused before anything was written
    folder = save_peft_adapter(model, tmp_path / "path", base_model_name_or_path=tmp_path / "base")
    assert json.loads((folder / ADAPTER_CONFIG_NAME).read_text())["base_model_name_or_path"] == str(tmp_path / "base")


def test_adapters_on_the_meta_device_have_no_values_to_save_but_a_config(tmp_path: Path) -> None:
    with torch.device("meta"):
        model = Llama(LlamaConfig.tiny(n_layers=1))
    apply_lora(model, ["q_proj", "v_proj"], r=2, lora_alpha=4)
    with pytest.raises(ValueError, match=r"adapters are on the meta device .* no values to save"):
        save_peft_adapter(model, tmp_path / "meta")
    assert not (tmp_path / "meta").exists()
    assert peft_config(model)["target_modules"] == ["q_proj", "v_proj"]  # shapes and settings are all it needs
