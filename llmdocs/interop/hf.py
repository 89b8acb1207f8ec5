"""Copy weights between [GPT][llmdocs.models.gpt.GPT] and Hugging Face's ``GPT2LMHeadModel``; load GPT-2 checkpoints.

This is the only place where GPT-2's parameter names appear (the table ``HF_NAMES``). Two differences matter:

1. GPT-2 packs the three input projections into one layer, ``attn.c_attn``, whose output is
   ``[q; k; v]`` (3D features); ours are separate ``q_proj``, ``k_proj``, ``v_proj`` layers.
2. GPT-2's linear layers are ``Conv1D`` modules that store the *transposed* matrix: y = x W + b with
   W of shape (D_in, D_out), where ``nn.Linear`` stores (D_out, D_in) and computes y = x W^T + b.

``transformers`` is imported only inside the functions that build Hugging Face objects, so
``load_gpt2_checkpoint`` works without it. Nothing here downloads or runs remote code.

Examples:
    >>> import torch
    >>> from llmdocs.models.gpt import GPT, GPTConfig
    >>> from llmdocs.testing import assert_equivalent
    >>> _ = torch.manual_seed(0)
    >>> ours = GPT(GPTConfig.tiny()).eval().double()  # an equivalence proof runs in float64
    >>> theirs = to_hf(ours)  # float64 too
    >>> ids = torch.randint(0, 64, (2, 5))
    >>> assert_equivalent(ours(ids), theirs(ids).logits, depth=ours.config.n_layers)
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import load_file
from torch import Tensor

from llmdocs.models.gpt import GPT, GPTConfig

if TYPE_CHECKING:
    from transformers import GPT2Config, GPT2LMHeadModel

HF_NAMES: dict[str, str] = {
    "tok_embed": "transformer.wte",  # token embedding E_tok (V, D)
    "pos_embed": "transformer.wpe",  # position embedding E_pos (T_max, D)
    "blocks.{i}.norm1": "transformer.h.{i}.ln_1",
    "blocks.{i}.self_attn.{q,k,v}_proj": "transformer.h.{i}.attn.c_attn",  # packed [q; k; v], Conv1D
    "blocks.{i}.self_attn.out_proj": "transformer.h.{i}.attn.c_proj",  # Conv1D
    "blocks.{i}.norm2": "transformer.h.{i}.ln_2",
    "blocks.{i}.ff.fc1": "transformer.h.{i}.mlp.c_fc",  # Conv1D
    "blocks.{i}.ff.fc2": "transformer.h.{i}.mlp.c_proj",  # Conv1D
    "norm": "transformer.ln_f",
    "lm_head": "lm_head",  # tied to transformer.wte unless tie_embeddings=False
}
"""Our module path -> GPT-2's (``{i}`` is the block index). Conv1D weights are transposed when copied."""

_BLOCK_NAMES = {k.removeprefix("blocks.{i}."): v.removeprefix("transformer.h.{i}.") for k, v in HF_NAMES.items()}
_QKV = ("q_proj", "k_proj", "v_proj")  # packed in this order into c_attn
_CONV1D = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")
_GELU_TANH = ("gelu_new", "gelu_pytorch_tanh", "gelu_fast")  # the same tanh approximation (up to float rounding)
_ACTIVATION_TO_HF = {"gelu_tanh": "gelu_new", "gelu": "gelu", "relu": "relu"}  # GPTConfig.activation -> HF name


def _hf_key(key: str) -> str:
    """Our (non-q/k/v) parameter name -> GPT-2's: ``blocks.3.ff.fc1.weight`` -> ``transformer.h.3.mlp.c_fc.weight``."""
    module, _, leaf = key.rpartition(".")
    if module.startswith("blocks."):
        _, i, rest = module.split(".", 2)
        return f"transformer.h.{i}.{_BLOCK_NAMES[rest]}.{leaf}"
    return f"{HF_NAMES[module]}.{leaf}"


def state_dict_to_hf(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Convert a GPT state dict to GPT-2 names: pack q/k/v into ``c_attn``, transpose Conv1D weights.

    Examples:
        >>> from llmdocs.models.gpt import GPT, GPTConfig
        >>> hf = state_dict_to_hf(GPT(GPTConfig.tiny(n_layers=1)).state_dict())
        >>> [k.removeprefix("transformer.h.0.") for k in hf if ".attn." in k]
        ['attn.c_attn.weight', 'attn.c_attn.bias', 'attn.c_proj.weight', 'attn.c_proj.bias']
        >>> tuple(hf["transformer.h.0.attn.c_attn.weight"].shape)  # Conv1D: (D_in, 3 D)
        (32, 96)
    """
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        module, _, leaf = key.rpartition(".")
        attn, _, proj = module.rpartition(".")
        if proj in _QKV:
            if proj != "q_proj":
                continue  # packed together with q_proj below
            value = torch.cat([state[f"{attn}.{p}.{leaf}"] for p in _QKV])  # (3D, D) or (3D,)
            hf_key = f"transformer.h.{attn.split('.')[1]}.attn.c_attn.{leaf}"  # attn = "blocks.{i}.self_attn"
        else:
            hf_key = _hf_key(key)
        if leaf == "weight" and hf_key.removesuffix(".weight").endswith(_CONV1D):
            value = value.t()  # nn.Linear (D_out, D_in) -> Conv1D (D_in, D_out)
        out[hf_key] = value.contiguous()
    return out


def state_dict_from_hf(state: Mapping[str, Tensor], tie_embeddings: bool = True) -> dict[str, Tensor]:
    """Convert a GPT-2 state dict (``GPT2LMHeadModel`` or bare ``GPT2Model`` names) to GPT names.

    Splits ``c_attn`` into q/k/v, transposes Conv1D weights, drops the old ``attn.bias``/``attn.masked_bias``
    buffers of early checkpoints and fills ``lm_head.weight`` from ``wte`` when the file stores it once.

    Examples:
        >>> import torch
        >>> from llmdocs.models.gpt import GPT, GPTConfig
        >>> model = GPT(GPTConfig.tiny(n_layers=1))
        >>> back = state_dict_from_hf(state_dict_to_hf(model.state_dict()))
        >>> all(torch.equal(back[k], v) for k, v in model.state_dict().items())
        True
    """
    inverse = {v.removeprefix("transformer.h.{i}."): k.removeprefix("blocks.{i}.") for k, v in HF_NAMES.items()}
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        if not key.startswith(("transformer.", "lm_head.")):
            key = f"transformer.{key}"  # a bare GPT2Model checkpoint (e.g. the original "gpt2" files)
        module, _, leaf = key.rpartition(".")
        if module.endswith(".attn") and leaf in ("bias", "masked_bias"):
            continue  # causal-mask buffers of old checkpoints, not weights
        if leaf == "weight" and module.endswith(_CONV1D):
            value = value.t()  # Conv1D (D_in, D_out) -> nn.Linear (D_out, D_in)
        if module.startswith("transformer.h."):
            _, _, i, rest = module.split(".", 3)
            ours = f"blocks.{i}.{inverse[rest]}"
            if rest == "attn.c_attn":
                attn = ours.rpartition(".")[0]  # blocks.{i}.self_attn
                for proj, part in zip(_QKV, value.chunk(3, dim=0), strict=True):  # (D, D) or (D,) each
                    out[f"{attn}.{proj}.{leaf}"] = part.contiguous()
                continue
        else:
            ours = {v: k for k, v in HF_NAMES.items() if "{i}" not in k}[module]
        out[f"{ours}.{leaf}"] = value.contiguous()
    if tie_embeddings:
        out["lm_head.weight"] = out["tok_embed.weight"]
    return out


def config_to_hf(config: GPTConfig) -> GPT2Config:
    """The ``GPT2Config`` of the same architecture (needs ``bias=True``: GPT-2 always has biases).

    Examples:
        >>> config_to_hf(GPTConfig.tiny()).n_inner
        128
    """
    from transformers import GPT2Config

    if not config.bias:
        raise ValueError("GPT-2 has biases in every linear layer and LayerNorm: only bias=True configs convert")
    return GPT2Config(
        vocab_size=config.vocab_size,
        n_positions=config.context_length,
        n_embd=config.d_model,
        n_layer=config.n_layers,
        n_head=config.n_heads,
        n_inner=config.d_ff,
        activation_function=_ACTIVATION_TO_HF[config.activation],
        resid_pdrop=config.dropout,
        embd_pdrop=config.dropout,
        attn_pdrop=config.dropout,
        layer_norm_epsilon=config.layer_norm_eps,
        tie_word_embeddings=config.tie_embeddings,
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=None,
    )


def config_from_hf(hf_config: GPT2Config | Mapping[str, Any]) -> GPTConfig:
    """The [GPTConfig][llmdocs.models.gpt.GPTConfig] of a ``GPT2Config`` (or its ``config.json`` as a dict).

    GPT-2 has three dropout rates; ours is ``resid_pdrop``. Variants our model does not implement (another
    activation, attention scaled by layer index, cross-attention) raise ``ValueError``.

    Examples:
        >>> config = config_from_hf({"model_type": "gpt2", "n_embd": 768, "n_layer": 12, "n_head": 12})
        >>> config == GPTConfig.gpt2_small()
        True
    """
    d = dict(hf_config) if isinstance(hf_config, Mapping) else hf_config.to_dict()
    if d.get("model_type", "gpt2") != "gpt2":
        raise ValueError(f"not a GPT-2 config: model_type={d.get('model_type')!r}")
    hf_activation = d.get("activation_function", "gelu_new")
    activation = "gelu_tanh" if hf_activation in _GELU_TANH else hf_activation
    if activation not in _ACTIVATION_TO_HF:
        supported = sorted(set(_GELU_TANH) | set(_ACTIVATION_TO_HF.values()))
        raise ValueError(f"activation_function={hf_activation!r} is not supported; choose from {supported}")
    if d.get("scale_attn_by_inverse_layer_idx", False) or not d.get("scale_attn_weights", True):
        raise ValueError("only the standard 1/sqrt(d_head) attention scaling is supported")
    if d.get("add_cross_attention", False):
        raise ValueError("add_cross_attention=True (an encoder-decoder GPT-2) is not supported")
    n_embd = d.get("n_embd", 768)
    return GPTConfig(
        vocab_size=d.get("vocab_size", 50257),
        context_length=d.get("n_positions", 1024),
        d_model=n_embd,
        n_heads=d.get("n_head", 12),
        n_layers=d.get("n_layer", 12),
        d_ff=d.get("n_inner") or 4 * n_embd,
        activation=activation,
        dropout=d.get("resid_pdrop", 0.1),
        bias=True,
        layer_norm_eps=d.get("layer_norm_epsilon", 1e-5),
        tie_embeddings=d.get("tie_word_embeddings", True),
    )


def from_hf(hf_model: GPT2LMHeadModel) -> GPT:
    """A [GPT][llmdocs.models.gpt.GPT] with the weights of ``hf_model`` (same training/eval mode, same dtype).

    Args:
        hf_model: a ``transformers.GPT2LMHeadModel`` (any size, e.g. loaded with ``from_pretrained``).

    Returns:
        Our model, on the CPU; its logits equal ``hf_model(ids).logits`` to float precision.

    Examples:
        >>> import torch
        >>> from transformers import GPT2Config, GPT2LMHeadModel
        >>> from llmdocs.testing import assert_equivalent
        >>> theirs = GPT2LMHeadModel(GPT2Config(vocab_size=50, n_positions=16, n_embd=32, n_layer=2, n_head=4)).eval()
        >>> ours = from_hf(theirs.double())  # same dtype: float64, where equivalence is proven
        >>> ours.config.d_ff, ours.training, ours.lm_head.weight.dtype
        (128, False, torch.float64)
        >>> ids = torch.randint(0, 50, (2, 6))
        >>> assert_equivalent(ours(ids), theirs(ids).logits, depth=2)
    """
    model = GPT(config_from_hf(hf_model.config)).to(hf_model.dtype)
    model.load_state_dict(state_dict_from_hf(hf_model.state_dict(), model.config.tie_embeddings))
    return model.train(hf_model.training)


def to_hf(model: GPT) -> GPT2LMHeadModel:
    """A ``GPT2LMHeadModel`` with the weights of ``model`` (same training/eval mode, same dtype).

    Args:
        model: our [GPT][llmdocs.models.gpt.GPT]; it needs ``bias=True`` (GPT-2 has no bias-free variant).

    Returns:
        The Hugging Face model (see the module example), built from a config: no download.
    """
    from transformers import GPT2LMHeadModel

    hf_model = GPT2LMHeadModel(config_to_hf(model.config)).to(next(model.parameters()).dtype)
    hf_model.load_state_dict(state_dict_to_hf(model.state_dict()))
    return hf_model.train(model.training)


def _hub_cache_dir() -> Path:
    """The Hugging Face hub cache: $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    return Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "hub"


def _snapshot(repo_dir: Path) -> Path | None:
    """The snapshot of a hub cache entry ``models--org--name``: the one ``refs/main`` names, else the only one."""
    ref = repo_dir / "refs" / "main"
    if ref.is_file():
        snapshot = repo_dir / "snapshots" / ref.read_text(encoding="utf-8").strip()
        if snapshot.is_dir():
            return snapshot
    snapshots = sorted(p for p in (repo_dir / "snapshots").glob("*") if p.is_dir())
    return snapshots[0] if len(snapshots) == 1 else None


def _resolve_checkpoint_dir(path: str | os.PathLike[str]) -> Path:
    tried = []
    candidates = [Path(path)]
    if not Path(path).exists() and str(path).count("/") <= 1 and not str(path).startswith("."):
        candidates.append(_hub_cache_dir() / ("models--" + str(path).replace("/", "--")))  # a repo id
    for candidate in candidates:
        tried.append(str(candidate))
        if (candidate / "config.json").is_file():
            return candidate
        if (candidate / "snapshots").is_dir():
            snapshot = _snapshot(candidate)
            if snapshot is not None and (snapshot / "config.json").is_file():
                return snapshot
    raise FileNotFoundError(
        f"no GPT-2 checkpoint (config.json + model.safetensors) at {' or '.join(tried)}. Pass a folder written by "
        "save_pretrained, a hub cache entry (models--org--name or one of its snapshots), or the repo id of a model "
        "already in the local hub cache. llmdocs never downloads: fetch it yourself once, online."
    )


def load_gpt2_checkpoint(path: str | os.PathLike[str]) -> GPT:
    """Load a GPT-2 checkpoint from disk into a [GPT][llmdocs.models.gpt.GPT] (eval mode), offline.

    Reads ``config.json`` and ``model.safetensors`` only: no pickle, no remote code, no network.

    Args:
        path: a folder written by ``GPT2LMHeadModel.save_pretrained``; a hub cache entry such as
            ``~/.cache/huggingface/hub/models--openai-community--gpt2`` (or one of its ``snapshots/<hash>``
            folders); or a repo id like ``"openai-community/gpt2"`` that is already in the local hub cache.

    Returns:
        The model, in eval mode.

    Raises:
        FileNotFoundError: nothing usable at ``path`` (or only pickle ``.bin`` weights).
        ValueError: the config is not a GPT-2 variant our model implements.
    """
    directory = _resolve_checkpoint_dir(path)
    config = config_from_hf(json.loads((directory / "config.json").read_text(encoding="utf-8")))
    weights = directory / "model.safetensors"
    if not weights.is_file():
        raise FileNotFoundError(
            f"{directory} has no model.safetensors (sharded or pickle .bin weights are not read: no unpickling)"
        )
    model = GPT(config)
    model.load_state_dict(state_dict_from_hf(load_file(str(weights)), config.tie_embeddings))
    return model.eval()
