"""Save our LoRA adapters in Hugging Face peft's format, and load peft's adapters into our models.

A peft LoRA adapter is a folder of two files: ``adapter_config.json`` (``peft_type: "LORA"``, ``r``,
``lora_alpha``, ``target_modules``, ``modules_to_save`` ...) and ``adapter_model.safetensors``, whose keys are the
Hugging Face module paths under ``base_model.model.`` followed by ``lora_A.weight`` (R, D_in) or
``lora_B.weight`` (D_out, R), plus the full weights of the ``modules_to_save``. The saved adapter loads with
``PeftModel.from_pretrained(hf_model, folder)`` into the Hugging Face twin of our model, and an adapter that peft
saved loads into ours: both give the same outputs (tests/test_peft_lora.py proves it in float64).

Module paths are translated by each interop module's own renaming ([hf_bert][llmdocs.interop.hf_bert],
[hf_llama][llmdocs.interop.hf_llama], [hf_vit][llmdocs.interop.hf_vit], [hf][llmdocs.interop.hf] for GPT-2):
no second name table lives here. ``target_modules`` is written as the shortest name suffixes that select exactly
the adapted layers of the twin (``["query", "value"]``), as people write them by hand.

**GPT-2 packs q, k and v into one layer**, ``attn.c_attn`` (a ``Conv1D`` with output [q; k; v], 3D features),
where ours has three. Adapters on a subset S of our q/k/v map *exactly* onto one adapter on ``c_attn``: stack the
A's, A = [A_q; A_k; A_v] (sum of R rows), and place each B in its own rows and columns of a block matrix
B (3D, sum of R), zero elsewhere; then B A x = [B_q A_q x; B_k A_k x; B_v A_v x], with a zero block for a
projection not in S. The stacked rank is |S| R, so alpha becomes |S| alpha to keep the scaling alpha / R; both go
into ``rank_pattern`` / ``alpha_pattern`` when other layers keep R. Loading reverses it: each projection takes its
rows of B and the columns they use; an adapter whose columns are shared by several projections (peft's own, once
trained) gives each projection the whole A and its rows of B, rank |S| R, which is the same function. peft handles
the ``Conv1D`` layout itself (``fan_in_fan_out=True``); A and B keep the ``nn.Linear`` layout.

Only plain LoRA converts: DoRA, rsLoRA, LoRA biases and embedding adapters raise ``ValueError``. Neither
function imports peft.

References:
    Hu et al., "LoRA: Low-Rank Adaptation of Large Language Models", ICLR 2022, section 4.1.
    Hugging Face peft, ``LoraConfig``, ``PeftModel.save_pretrained`` / ``from_pretrained``.

Examples:
    >>> import tempfile
    >>> import torch
    >>> from llmdocs.finetuning.lora import apply_lora
    >>> from llmdocs.models.bert import BertConfig, BertForSequenceClassification
    >>> model = BertForSequenceClassification(BertConfig.tiny(n_layers=1), n_classes=2)
    >>> _ = apply_lora(model, ["q_proj", "v_proj"], r=4, lora_alpha=8, modules_to_save=["classifier"])
    >>> folder = save_peft_adapter(model, tempfile.mkdtemp())
    >>> config = json.loads((folder / ADAPTER_CONFIG_NAME).read_text())
    >>> config["peft_type"], config["target_modules"], config["modules_to_save"], config["task_type"]
    ('LORA', ['query', 'value'], ['classifier'], 'SEQ_CLS')
    >>> fresh = BertForSequenceClassification(BertConfig.tiny(n_layers=1), n_classes=2)
    >>> load_peft_adapter(fresh, folder)
    ['bert.layers.0.self_attn.q_proj', 'bert.layers.0.self_attn.v_proj']
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from llmdocs.finetuning.lora import LoRALinear, _check_rank, apply_lora
from llmdocs.finetuning.lora_budget import model_family
from llmdocs.interop import hf, hf_bert, hf_llama, hf_vit
from llmdocs.models.bert import BertForPreTraining, BertForSequenceClassification, BertModel
from llmdocs.models.gpt import GPT
from llmdocs.models.llama import Llama

__all__ = [
    "ADAPTER_CONFIG_NAME",
    "ADAPTER_WEIGHTS_NAME",
    "PEFT_PREFIX",
    "load_peft_adapter",
    "peft_config",
    "save_peft_adapter",
]

ADAPTER_CONFIG_NAME = "adapter_config.json"
"""The adapter's settings, peft's ``CONFIG_NAME``."""
ADAPTER_WEIGHTS_NAME = "adapter_model.safetensors"
"""The adapter's tensors, peft's ``SAFETENSORS_WEIGHTS_NAME``."""
PEFT_PREFIX = "base_model.model."
"""What peft puts before every Hugging Face module path in the tensor names (PeftModel -> LoraModel -> model)."""

_QKV = ("q_proj", "k_proj", "v_proj")  # GPT-2 packs them in this order into c_attn
_UNSUPPORTED = {  # adapter_config.json fields whose non-default values change the function: not plain LoRA
    "use_dora": False,
    "use_rslora": False,
    "lora_bias": False,
    "bias": "none",
    "target_parameters": None,
    "layer_replication": None,
    "trainable_token_indices": None,
}
_TASK_TYPES: list[tuple[type[nn.Module], str | None]] = [
    (BertForSequenceClassification, "SEQ_CLS"),
    (BertModel, "FEATURE_EXTRACTION"),
    (BertForPreTraining, None),
    (GPT, "CAUSAL_LM"),
    (Llama, "CAUSAL_LM"),
]


def _state_to_hf(family: str, state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Our parameter names -> Hugging Face's, through the family's interop module."""
    if family == "bert":
        return hf_bert.state_dict_to_hf(state)
    if family == "llama":
        return hf_llama.state_dict_to_hf(state)
    if family == "vit":
        return hf_vit.state_dict_to_hf(state, head=True)  # ViTForImageClassification, what hf_vit.to_hf builds
    return hf.state_dict_to_hf(state)


def _state_from_hf(family: str, state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Hugging Face parameter names -> ours (untied: nothing is filled in from another tensor)."""
    if family == "bert":
        return hf_bert.state_dict_from_hf(state)
    if family == "vit":
        return hf_vit.state_dict_from_hf(state)
    if family == "gpt":
        return hf.state_dict_from_hf(state, tie_embeddings=False)
    placeholder = "lm_head.weight" not in state  # an untied Llama state dict must hold the head
    head = {"lm_head.weight": state.get("lm_head.weight", torch.zeros(1))}
    out = hf_llama.state_dict_from_hf({**state, **head}, tie_embeddings=False)
    if placeholder:
        del out["lm_head.weight"]
    return out


def _hf_module(family: str, module: str) -> str:
    """Our module path -> the Hugging Face twin's (GPT's q/k/v -> their block's ``attn.c_attn``).

    Raises:
        KeyError: the module has no counterpart.
    """
    if family == "gpt" and module.rpartition(".")[2] in _QKV:
        attn = module.rpartition(".")[0]
        state = {f"{attn}.{proj}.weight": torch.zeros(1, 1) for proj in _QKV}
    else:
        state = {f"{module}.weight": torch.zeros(1, 1)}
    keys = [key for key in _state_to_hf(family, state) if key.endswith(".weight")]
    return keys[0].removesuffix(".weight")


def _our_modules(family: str, hf_module: str) -> list[str]:
    """A Hugging Face module path -> ours (``c_attn`` -> q, k and v).

    Raises:
        KeyError: the module has no counterpart.
    """
    ours = _state_from_hf(family, {f"{hf_module}.weight": torch.zeros(3, 3)})  # 3 rows: c_attn splits in three
    return [key.removesuffix(".weight") for key in ours]


def _family(model: object) -> str:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a llmdocs model (torch.nn.Module), got {type(model).__name__}")
    try:
        return model_family(model)
    except TypeError:
        raise TypeError(
            "peft adapters convert for the models with a Hugging Face twin: BertModel, BertForPreTraining, "
            f"BertForSequenceClassification, GPT, ViT and Llama; got {type(model).__name__}"
        ) from None


def _hf_names(family: str, model: nn.Module, linear_only: bool) -> dict[str, list[str]]:
    """Hugging Face module path -> our module paths, for our linear layers (or every module with parameters)."""
    names: dict[str, list[str]] = {}
    adapters = [f"{name}." for name, m in model.named_modules() if isinstance(m, LoRALinear)]
    for name, module in model.named_modules():
        if not name or any(name.startswith(a) for a in adapters):
            continue  # the root, and the insides of an adapted layer
        is_linear = isinstance(module, nn.Linear | LoRALinear) or callable(getattr(module, "dequantize", None))
        if not (is_linear or (not linear_only and any(True for _ in module.parameters(recurse=False)))):
            continue
        try:
            names.setdefault(_hf_module(family, name), []).append(name)
        except KeyError:
            continue  # e.g. ViT's embeddings.cls_token: a parameter with no module of its own
    return names


def _shortest_suffixes(chosen: list[str], universe: list[str]) -> list[str]:
    """The shortest name suffixes that select exactly ``chosen`` among ``universe`` under peft's rule
    (``name == suffix`` or ``name.endswith("." + suffix)``): for each name, its last components, as few as
    select nothing outside ``chosen``."""

    def selects(suffix: str) -> set[str]:
        return {n for n in universe if n == suffix or n.endswith(f".{suffix}")}

    suffixes = set()
    for name in chosen:
        parts = name.split(".")
        suffix = next(
            (s for k in range(1, len(parts)) if selects(s := ".".join(parts[-k:])) <= set(chosen)),
            name,  # the full path selects itself
        )
        suffixes.add(suffix)
    return sorted(suffixes)


def _number(value: float) -> int | float:
    """An integral float as an int (``lora_alpha`` 16.0 -> 16), as people write it in a config."""
    return int(value) if float(value).is_integer() else float(value)


def _stack_qkv(members: list[tuple[str, LoRALinear]]) -> tuple[Tensor, Tensor, int, int | float]:
    """One c_attn adapter from adapters on some of q, k, v: A stacked, B block-diagonal in [q; k; v] rows."""
    scalings = {m.scaling for _, m in members}
    if len(scalings) > 1:
        raise ValueError(
            f"{[n for n, _ in members]} have different scalings alpha / R {sorted(scalings)}: GPT-2's c_attn packs "
            "them into one adapter with one scaling"
        )
    d = members[0][1].out_features
    r_stacked = sum(m.r for _, m in members)
    A = torch.cat([m.lora_A.weight.detach() for _, m in members])  # (sum R, D)
    first = members[0][1].lora_B.weight
    B = torch.zeros(3 * d, r_stacked, dtype=first.dtype, device=first.device)  # (3D, sum R)
    column = 0
    for name, m in members:
        row = _QKV.index(name.rpartition(".")[2]) * d
        B[row : row + d, column : column + m.r] = m.lora_B.weight.detach()
        column += m.r
    return A, B, r_stacked, _number(members[0][1].scaling * r_stacked)


def peft_config(model: nn.Module, base_model_name_or_path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The ``adapter_config.json`` of our adapted model, as a dict (see ``save_peft_adapter``).

    It reads only shapes and settings, so it works on the ``meta`` device too.

    Raises:
        TypeError: a model without a Hugging Face twin; ``base_model_name_or_path`` neither a str (or path) nor
            None.
        ValueError: the errors of ``save_peft_adapter`` about adapters peft cannot express.

    Examples:
        >>> from llmdocs.finetuning.lora import apply_lora
        >>> from llmdocs.models.gpt import GPT, GPTConfig
        >>> model = GPT(GPTConfig.tiny())
        >>> _ = apply_lora(model, ["q_proj", "v_proj", "out_proj"], r=4, lora_alpha=8)
        >>> config = peft_config(model)  # q and v stack into one c_attn adapter of rank 2 x 4
        >>> config["target_modules"], config["r"], config["rank_pattern"], config["alpha_pattern"]
        (['attn.c_proj', 'c_attn'], 4, {'c_attn': 8}, {'c_attn': 16})
    """
    return _export(model, base_model_name_or_path)[0]


def _check_base_name(base_model_name_or_path: object) -> str | None:
    """The base model's name as written to the config: a str (a PathLike as its str) or None."""
    if isinstance(base_model_name_or_path, os.PathLike):
        base_model_name_or_path = os.fspath(base_model_name_or_path)  # a folder, written as its str
    if base_model_name_or_path is None or isinstance(base_model_name_or_path, str):
        return base_model_name_or_path
    raise TypeError(
        "base_model_name_or_path must be a str (the base model's Hub name or folder) or None, got "
        f"{type(base_model_name_or_path).__name__} {base_model_name_or_path!r}"
    )


def _check_directory(directory: object) -> Path:
    """``directory`` as a Path: a non-empty str or os.PathLike."""
    if not isinstance(directory, str | os.PathLike):
        raise TypeError(
            f"directory must be a folder path (str or os.PathLike), got {type(directory).__name__} {directory!r}"
        )
    if not os.fspath(directory):
        raise ValueError("directory must be a folder path, got an empty string (write '.' for the current folder)")
    return Path(directory)


def _export(
    model: nn.Module, base_model_name_or_path: str | os.PathLike[str] | None
) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """The config and the tensors (peft's names, not copied) of an adapted model."""
    base_model_name_or_path = _check_base_name(base_model_name_or_path)
    family = _family(model)
    adapters = [(name, m) for name, m in model.named_modules() if isinstance(m, LoRALinear)]
    if not adapters:
        raise ValueError(f"{type(model).__name__} has no LoRA adapters: apply_lora(model, ...) first")
    dropouts = {m.lora_dropout.p if isinstance(m.lora_dropout, nn.Dropout) else 0.0 for _, m in adapters}
    if len(dropouts) > 1:
        raise ValueError(f"the adapters have different dropout probabilities {sorted(dropouts)}: peft has one")
    groups: dict[str, list[tuple[str, LoRALinear]]] = {}
    for name, adapter in adapters:
        groups.setdefault(_hf_module(family, name), []).append((name, adapter))
    tensors: dict[str, Tensor] = {}
    settings: dict[str, tuple[int, int | float]] = {}  # HF module -> (r, lora_alpha)
    for hf_name, members in groups.items():
        if len(members) > 1:  # GPT-2's c_attn
            A, B, r, alpha = _stack_qkv(members)
        else:
            adapter = members[0][1]
            A, B, r, alpha = adapter.lora_A.weight, adapter.lora_B.weight, adapter.r, _number(adapter.lora_alpha)
        tensors[f"{PEFT_PREFIX}{hf_name}.lora_A.weight"] = A  # (R, D_in)
        tensors[f"{PEFT_PREFIX}{hf_name}.lora_B.weight"] = B  # (D_out, R)
        settings[hf_name] = (r, alpha)
    counts = Counter(settings.values())
    r, alpha = min(counts, key=lambda value: (-counts[value], value[0]))  # the most common; on a tie the lowest rank
    rank_pattern: dict[str, int] = {}
    alpha_pattern: dict[str, int | float] = {}
    for other in sorted(set(settings.values()) - {(r, alpha)}, key=str):
        members = [name for name, value in settings.items() if value == other]
        for suffix in _shortest_suffixes(members, list(settings)):
            if other[0] != r:
                rank_pattern[suffix] = other[0]
            if other[1] != alpha:
                alpha_pattern[suffix] = other[1]
    saved_modules: list[str] = []
    for name in getattr(model, "modules_to_save", ()):
        if family == "gpt" and name.rpartition(".")[2] in _QKV:
            raise ValueError(f"{name} cannot be saved alone: GPT-2 packs q, k and v into one layer, c_attn")
        state = {f"{name}.{key}": t.detach() for key, t in model.get_submodule(name).state_dict().items()}
        hf_state = _state_to_hf(family, state)
        tensors.update({PEFT_PREFIX + key: t for key, t in hf_state.items()})
        saved_modules += sorted({key.rpartition(".")[0] for key in hf_state} - set(saved_modules))
    inits = {m.init for _, m in adapters}
    task_type = next((task for cls, task in _TASK_TYPES if isinstance(model, cls)), None)
    config: dict[str, Any] = {
        "peft_type": "LORA",
        "task_type": task_type,
        "base_model_name_or_path": base_model_name_or_path,
        "revision": None,
        "r": r,
        "lora_alpha": alpha,
        "lora_dropout": dropouts.pop(),
        "target_modules": _shortest_suffixes(list(groups), list(_hf_names(family, model, linear_only=False))),
        "modules_to_save": saved_modules or None,
        "rank_pattern": rank_pattern,
        "alpha_pattern": alpha_pattern,
        "fan_in_fan_out": family == "gpt",  # GPT-2's Conv1D stores W as (D_in, D_out)
        "bias": "none",
        "init_lora_weights": "gaussian" if inits == {"gaussian"} else True,
        "use_rslora": False,
        "use_dora": False,
        "lora_bias": False,
        "layers_to_transform": None,
        "layers_pattern": None,
        "inference_mode": True,
    }
    return config, tensors


def _replace_file(path: Path, write: Callable[[Path], None]) -> None:
    """Write ``path`` through a temporary file and one rename: a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)


def save_peft_adapter(
    model: nn.Module,
    directory: str | os.PathLike[str],
    base_model_name_or_path: str | os.PathLike[str] | None = None,
    dtype: torch.dtype | None = None,
) -> Path:
    """Write the adapters of our model as a peft LoRA adapter that ``PeftModel.from_pretrained`` loads.

    The Hugging Face twin is the model ``to_hf`` of the family's interop module builds: ``BertModel``,
    ``BertForPreTraining``, ``BertForSequenceClassification``, ``GPT2LMHeadModel``, ``ViTForImageClassification``,
    ``LlamaForCausalLM``. ``task_type`` follows the model (``SEQ_CLS`` for a classifier, ``CAUSAL_LM`` for GPT and
    Llama, ``FEATURE_EXTRACTION`` for a bare BERT, none for the others).

    Args:
        model: our model after [apply_lora][llmdocs.finetuning.lora.apply_lora] (and training).
        directory: the folder to write (created if needed); its other files are left alone, as peft does.
        base_model_name_or_path: the base model's Hub name or folder (a str, a path, or None), recorded in the
            config.
        dtype: store the floating tensors in this floating dtype (``torch.float16`` halves a float32 adapter's
            bytes; loading copies them into the model's dtype); None keeps the model's.

    Returns:
        The folder.

    Raises:
        TypeError: a model without a Hugging Face twin; ``directory`` not a path; ``base_model_name_or_path``
            neither a str nor None; ``dtype`` not a floating-point ``torch.dtype``.
        ValueError: no adapters; adapters that peft cannot express (several dropout probabilities; GPT q/k/v
            adapters of different scalings in one block, or a q/k/v projection in ``modules_to_save``); tensors on
            the ``meta`` device (they have no values to save) or holding NaN or inf (also after the cast to
            ``dtype``: a value beyond its range); an empty ``directory``. Nothing is written when an error is raised.

    Examples:
        >>> import tempfile
        >>> from llmdocs.finetuning.lora import apply_lora
        >>> from llmdocs.models.llama import Llama, LlamaConfig
        >>> model = Llama(LlamaConfig.tiny(n_layers=1))
        >>> _ = apply_lora(model, ["q_proj", "k_proj", "v_proj", "out_proj"], r=2, lora_alpha=4)
        >>> folder = save_peft_adapter(model, tempfile.mkdtemp(), base_model_name_or_path="tiny-llama")
        >>> from safetensors.torch import load_file
        >>> sorted(load_file(folder / ADAPTER_WEIGHTS_NAME))[:2]
        ['base_model.model.model.layers.0.self_attn.k_proj.lora_A.weight',
         'base_model.model.model.layers.0.self_attn.k_proj.lora_B.weight']
        >>> json.loads((folder / ADAPTER_CONFIG_NAME).read_text())["target_modules"]
        ['k_proj', 'o_proj', 'q_proj', 'v_proj']
    """
    if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise TypeError(f"dtype must be a floating-point torch.dtype (e.g. torch.float16) or None, got {dtype!r}")
    directory = _check_directory(directory)
    config, tensors = _export(model, base_model_name_or_path)
    if dtype is not None:
        tensors = {key: t.to(dtype) if t.is_floating_point() else t for key, t in tensors.items()}
    on_meta = [key for key, t in tensors.items() if t.is_meta]
    if on_meta:
        raise ValueError(
            f"{type(model).__name__}'s adapters are on the meta device ({on_meta[0]} ...): a meta tensor has a shape "
            "but no values to save; materialize the model first (model.to_empty(device='cpu') and load or train "
            "its weights), or call peft_config(model) for the config alone"
        )
    broken = [key for key, t in tensors.items() if t.is_floating_point() and not torch.isfinite(t).all()]
    if broken:
        raise ValueError(
            f"the tensor to save as {broken[0]!r} holds NaN or infinite values"
            + (f" in {dtype} (a value beyond its range?)" if dtype is not None else "")
            + f": the adapter of this {type(model).__name__} is broken (a diverged training run?) and would give "
            "NaN wherever it is loaded"
        )
    tensors = {key: t.detach().cpu().contiguous().clone() for key, t in tensors.items()}
    directory.mkdir(parents=True, exist_ok=True)
    _replace_file(directory / ADAPTER_WEIGHTS_NAME, lambda p: save_file(tensors, str(p), metadata={"format": "pt"}))
    text = json.dumps(config, indent=2, sort_keys=True)
    _replace_file(directory / ADAPTER_CONFIG_NAME, lambda p: p.write_text(text + "\n", encoding="utf-8"))
    return directory


def _is_str_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _read_config(path: Path) -> dict[str, Any]:
    """``adapter_config.json``, parsed and checked: a LoRA config whose fields have the types peft writes."""
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise ValueError(f"{path} is not UTF-8 text ({error.reason}): not a peft adapter config") from None
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{path} is not valid JSON ({error.msg} at line {error.lineno}, column {error.colno}): not a peft "
            "adapter config"
        ) from None
    if not isinstance(config, dict):
        raise ValueError(f"{path} must hold a JSON object of settings, got a {type(config).__name__}")
    if config.get("peft_type") != "LORA":
        raise ValueError(f"{path.parent} holds a {config.get('peft_type')!r} adapter, not peft_type 'LORA'")
    for key, default in _UNSUPPORTED.items():
        if config.get(key, default) not in (default, None, False, {}, []):
            raise ValueError(f"{key}={config[key]!r}: only plain LoRA converts (expected {default!r})")
    r = config.get("r")
    if isinstance(r, bool) or not isinstance(r, int) or r < 1:
        raise ValueError(f"r={r!r} in {ADAPTER_CONFIG_NAME} must be an integer >= 1")
    expected = {
        "target_modules": (
            lambda v: v is None or isinstance(v, str) or _is_str_list(v),
            "a str, a list of str or null",
        ),
        "modules_to_save": (lambda v: v is None or _is_str_list(v), "a list of str or null"),
        "rank_pattern": (lambda v: v is None or isinstance(v, dict), "an object {pattern: rank}"),
        "alpha_pattern": (lambda v: v is None or isinstance(v, dict), "an object {pattern: alpha}"),
        "lora_alpha": (lambda v: v is None or _is_number(v), "a number"),
        "lora_dropout": (lambda v: v is None or _is_number(v), "a number"),
    }
    for key, (fits, what) in expected.items():
        if not fits(config.get(key)):
            raise ValueError(f"{key}={config[key]!r} in {path} must be {what}")
    return config


def _read_adapter(directory: Path) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """The config and the tensors of a peft adapter folder, with errors that name the file and what is wrong."""
    for name in (ADAPTER_CONFIG_NAME, ADAPTER_WEIGHTS_NAME):
        if not (directory / name).is_file():
            raise FileNotFoundError(f"{directory} has no {name}: not a peft adapter folder (pickled .bin is not read)")
    config = _read_config(directory / ADAPTER_CONFIG_NAME)
    path = directory / ADAPTER_WEIGHTS_NAME
    try:
        state = load_file(str(path))
    except SafetensorError as error:
        raise ValueError(f"{path} is not a readable safetensors file ({error})") from None
    for key, tensor in state.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise ValueError(
                f"{key!r} in {path} holds NaN or infinite values: a broken adapter (a diverged training run?), "
                "whose outputs would be NaN"
            )
    return config, state


def _pattern_value(patterns: Mapping[str, Any], name: str, default: Any) -> Any:
    """peft's rank_pattern / alpha_pattern lookup: the first key that matches the end of the module path."""
    for key, value in patterns.items():
        if re.match(rf"(.*\.)?({key})$", name):
            return value
    return default


def _targeted(target_modules: Any, name: str) -> bool:
    """peft's target_modules rule (a list: equal or a ``.``-suffix; a string: a regex on the full path)."""
    if isinstance(target_modules, str):
        return re.fullmatch(target_modules, name) is not None
    return any(name == t or name.endswith(f".{t}") for t in target_modules or ())


def _split_qkv(
    names: list[str], A: Tensor, B: Tensor, alpha: float, model: nn.Module
) -> list[tuple[str, Tensor, Tensor, int, int | float]]:
    """c_attn's adapter (A (R, D), B (3D, R)) as adapters on q, k and v with the same outputs."""
    rows = B.split([model.get_submodule(name).out_features for name in names])  # (D, R) each
    used = torch.stack([block.ne(0).any(dim=0) for block in rows])  # (3, R): which columns feed which projection
    r = A.shape[0]
    if bool((used.sum(dim=0) == 1).all()):  # every column feeds one projection: the block layout we save
        return [
            (name, A[cols], block[:, cols], int(cols.sum()), _number(alpha * int(cols.sum()) / r))
            for name, block, cols in zip(names, rows, used, strict=True)
            if cols.any()
        ]
    return [(name, A, block, r, alpha) for name, block in zip(names, rows, strict=True)]  # shared columns


def load_peft_adapter(model: nn.Module, directory: str | os.PathLike[str]) -> list[str]:
    """Load a peft LoRA adapter (saved for our model's Hugging Face twin) into our model, in place.

    Like [apply_lora][llmdocs.finetuning.lora.apply_lora], the adapted layers become
    [LoRALinear][llmdocs.finetuning.lora.LoRALinear] (with the file's A and B), the ``modules_to_save`` get the
    file's weights, and only those train.

    Args:
        model: our model with the base weights (e.g. from the family's ``from_hf``), without adapters.
        directory: a folder with ``adapter_config.json`` and ``adapter_model.safetensors``.

    Returns:
        The names of our adapted modules.

    Raises:
        FileNotFoundError: a missing file.
        TypeError: a model without a Hugging Face twin; ``directory`` not a path.
        ValueError: a file that is not what it should be (a config that is not a JSON object, fields of the wrong
            type, a weights file that safetensors cannot read, that holds no LoRA tensors, or a tensor holding NaN
            or inf: the message names the key and the file); a config that does not fit: not ``peft_type`` LORA;
            DoRA, rsLoRA or LoRA biases; tensors whose rank is not the config's ``r`` (or its ``rank_pattern``);
            a rank above min(D_in, D_out) of the layer (peft accepts it,
            [LoRALinear][llmdocs.finetuning.lora.LoRALinear] does not); missing keys (a targeted layer without A
            or B, a module to save without its weights); tensors for modules our model lacks or of the wrong
            shape. Nothing changes in ``model`` when an error is raised.

    Examples:
        >>> import tempfile
        >>> from llmdocs.finetuning.lora import apply_lora
        >>> from llmdocs.models.vit import ViT, ViTConfig
        >>> model = ViT(ViTConfig.tiny(n_layers=1))
        >>> _ = apply_lora(model, ["q_proj", "v_proj"], r=2, lora_alpha=2, modules_to_save=["head"])
        >>> folder = save_peft_adapter(model, tempfile.mkdtemp())
        >>> json.loads((folder / ADAPTER_CONFIG_NAME).read_text())["modules_to_save"]  # ViT's head: "classifier"
        ['classifier']
        >>> fresh = ViT(ViTConfig.tiny(n_layers=1))
        >>> load_peft_adapter(fresh, folder), fresh.modules_to_save
        (['layers.0.self_attn.q_proj', 'layers.0.self_attn.v_proj'], ('head',))
    """
    family = _family(model)
    directory = _check_directory(directory)
    config, state = _read_adapter(directory)
    adapters: dict[str, dict[str, Tensor]] = {}  # HF module -> {"lora_A": ..., "lora_B": ...}
    saved: dict[str, Tensor] = {}  # HF parameter name -> tensor, of the modules to save
    for key, tensor in state.items():
        if not key.startswith(PEFT_PREFIX):
            raise ValueError(f"{key!r} does not start with {PEFT_PREFIX!r}: not a LoRA adapter peft saved")
        key = key.removeprefix(PEFT_PREFIX)
        module, _, part = key.removesuffix(".weight").rpartition(".")
        if part in ("lora_A", "lora_B") and key.endswith(".weight"):
            adapters.setdefault(module, {})[part] = tensor
        elif ".lora_" in key:
            raise ValueError(f"{key!r}: only plain LoRA on linear layers converts (no embeddings, biases or DoRA)")
        else:
            saved[key] = tensor
    if not adapters:
        raise ValueError(
            f"{directory / ADAPTER_WEIGHTS_NAME} holds no LoRA tensors (keys ending in lora_A.weight and "
            f"lora_B.weight): an adapter with nothing to load (its config targets {config.get('target_modules')!r})"
        )
    linear = _hf_names(family, model, linear_only=True)
    unknown = sorted(set(adapters) - set(linear))
    if unknown:
        raise ValueError(f"the adapter has layers {unknown[:3]} that {type(model).__name__} lacks (or not linear)")
    to_save = config.get("modules_to_save") or []
    checkable = config.get("target_modules") != "all-linear" and not config.get("layers_to_transform")
    targeted = {n for n in linear if checkable and _targeted(config.get("target_modules"), n)}
    targeted -= {n for n in targeted if any(n.endswith(m) for m in to_save)}  # peft: a module to save is not adapted
    missing = [
        f"{name}.{part}.weight"
        for name in sorted(targeted | set(adapters))
        for part in ("lora_A", "lora_B")
        if part not in adapters.get(name, {})
    ]
    every_module = _hf_names(family, model, linear_only=False)
    missing += [
        f"{name}.*"
        for name in every_module
        if any(name.endswith(m) for m in to_save) and not any(key.startswith(f"{name}.") for key in saved)
    ]
    if missing:
        raise ValueError(f"missing keys in {ADAPTER_WEIGHTS_NAME}: {missing[:4]} (the config asks for them)")
    plan: list[tuple[str, Tensor, Tensor, int, int | float]] = []  # our module, A, B, r, alpha
    for hf_name, parts in adapters.items():
        A, B = parts["lora_A"], parts["lora_B"]
        r = _pattern_value(config.get("rank_pattern") or {}, hf_name, config["r"])
        alpha = _pattern_value(config.get("alpha_pattern") or {}, hf_name, config.get("lora_alpha", 8))
        ours = linear[hf_name]
        d_in = model.get_submodule(ours[0]).in_features
        d_out = sum(model.get_submodule(name).out_features for name in ours)
        if A.dim() != 2 or B.dim() != 2 or A.shape[0] != r or B.shape[1] != r:
            raise ValueError(
                f"{hf_name}: lora_A {tuple(A.shape)} and lora_B {tuple(B.shape)} do not have rank r={r} of the config"
            )
        if A.shape[1] != d_in or B.shape[0] != d_out:
            raise ValueError(
                f"{hf_name}: lora_A {tuple(A.shape)} and lora_B {tuple(B.shape)} do not fit a layer of "
                f"{type(model).__name__} with D_in={d_in}, D_out={d_out}: (R, D_in) and (D_out, R) expected"
            )
        if len(ours) > 1:  # GPT-2's c_attn
            plan += _split_qkv(ours, A, B, alpha, model)
        else:
            plan.append((ours[0], A, B, r, alpha))
    for name, _, _, r, _ in plan:  # before apply_lora: a refused adapter leaves the model as it was
        _check_rank(r, model.get_submodule(name), name)
    our_saved = _saved_state(family, model, saved)
    dropout = config.get("lora_dropout", 0.0)
    init = "gaussian" if config.get("init_lora_weights") == "gaussian" else "kaiming"
    (r0, alpha0), _ = Counter((r, alpha) for _, _, _, r, alpha in plan).most_common(1)[0]
    names = apply_lora(model, [item[0] for item in plan], r0, alpha0, dropout, sorted(our_saved), init)
    with torch.no_grad():
        for name, A, B, r, alpha in plan:
            adapter = model.get_submodule(name)
            assert isinstance(adapter, LoRALinear)
            if (r, alpha) != (r0, alpha0):
                adapter = LoRALinear(adapter.base_layer, r, alpha, dropout, init)
                parent, _, child = name.rpartition(".")
                setattr(model.get_submodule(parent), child, adapter)
            adapter.lora_A.weight.copy_(A)
            adapter.lora_B.weight.copy_(B)
        for module, tensors in our_saved.items():
            for key, value in tensors.items():
                model.get_submodule(module).get_parameter(key).copy_(value)
    return names


def _saved_state(family: str, model: nn.Module, saved: Mapping[str, Tensor]) -> dict[str, dict[str, Tensor]]:
    """The modules_to_save tensors of the file as our module -> {parameter: tensor}, checked against the model."""
    if not saved:
        return {}
    try:
        ours = _state_from_hf(family, saved)
    except KeyError as error:
        raise ValueError(f"the adapter saves weights {error} that {type(model).__name__} lacks") from None
    by_module: dict[str, dict[str, Tensor]] = {}
    for key, tensor in ours.items():
        module, _, leaf = key.rpartition(".")
        by_module.setdefault(module, {})[leaf] = tensor
    for module, tensors in by_module.items():
        try:
            parameters = dict(model.get_submodule(module).named_parameters(recurse=False))
        except AttributeError:
            raise ValueError(f"the adapter saves {module}, which {type(model).__name__} lacks") from None
        if set(tensors) != set(parameters):
            raise ValueError(f"missing keys for the module to save {module}: {sorted(set(parameters) - set(tensors))}")
        for leaf, tensor in tensors.items():
            if tensor.shape != parameters[leaf].shape:
                raise ValueError(
                    f"{module}.{leaf}: the adapter's {tuple(tensor.shape)} differs from the model's "
                    f"{tuple(parameters[leaf].shape)}"
                )
    return by_module
