"""Copy weights between our [ViT][llmdocs.models.vit.ViT] and Hugging Face's ``ViTModel`` /
``ViTForImageClassification``.

This is the only place where Hugging Face's ViT parameter names appear: ``HF_VIT_NAMES`` for ``transformers`` 5
(``layers.{i}.attention.q_proj``, ``mlp.fc1``) and ``HF_VIT_LEGACY_NAMES`` for the names of ``transformers`` 4 and
of the checkpoint files on the Hub (``encoder.layer.{i}.attention.attention.query``, ``intermediate.dense``). The
layouts agree one to one: ``nn.Linear`` everywhere, the patch embedding a ``Conv2d`` in both, the [CLS] token and
the position table (1, 1 + P, D) parameters in both. Two conversions:

- [ViT][llmdocs.models.vit.ViT] <-> ``ViTForImageClassification`` (encoder under ``vit.``, head ``classifier``):
  the same logits; only ``pool="cls"`` has a Hugging Face counterpart.
- the encoder of a [ViT][llmdocs.models.vit.ViT] <-> ``ViTModel``: the same ``last_hidden_state``
  (``to_hf(model, head=False)``). Hugging Face's optional pooler (dense + tanh on [CLS], which its classifier does
  not use) has no counterpart and is left out.

Hugging Face's ViT uses the exact GELU (``hidden_act="gelu"``) and ``layer_norm_eps=1e-12``, the defaults of
[ViTConfig][llmdocs.models.vit.ViTConfig]; other values are carried over by ``config_to_hf``/``config_from_hf``.
``transformers`` is imported only inside the functions that build Hugging Face objects. Nothing here downloads.

Examples:
    >>> import torch
    >>> from llmdocs.models.vit import ViT, ViTConfig
    >>> from llmdocs.testing import assert_equivalent
    >>> _ = torch.manual_seed(0)
    >>> ours = ViT(ViTConfig.tiny()).eval().double()  # an equivalence proof runs in float64
    >>> theirs = to_hf(ours)
    >>> images = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    >>> assert_equivalent(ours(images), theirs(images).logits, depth=2)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from torch import Tensor

from llmdocs.models.vit import ViT, ViTConfig

if TYPE_CHECKING:
    from transformers import PreTrainedModel
    from transformers import ViTConfig as HFViTConfig

__all__ = [
    "HF_VIT_LEGACY_NAMES",
    "HF_VIT_NAMES",
    "config_from_hf",
    "config_to_hf",
    "from_hf",
    "state_dict_from_hf",
    "state_dict_to_hf",
    "to_hf",
]

_SHARED_NAMES: dict[str, str] = {
    "embeddings.cls_token": "embeddings.cls_token",  # x_class (1, 1, D)
    "embeddings.pos_embed": "embeddings.position_embeddings",  # E_pos (1, 1 + P, D)
    "embeddings.patch_embed.proj": "embeddings.patch_embeddings.projection",  # E as a Conv2d (D, C, p, p)
}

HF_VIT_NAMES: dict[str, str] = {
    **_SHARED_NAMES,
    "layers.{i}.self_attn.q_proj": "layers.{i}.attention.q_proj",
    "layers.{i}.self_attn.k_proj": "layers.{i}.attention.k_proj",
    "layers.{i}.self_attn.v_proj": "layers.{i}.attention.v_proj",
    "layers.{i}.self_attn.out_proj": "layers.{i}.attention.o_proj",
    "layers.{i}.norm1": "layers.{i}.layernorm_before",  # Pre-LN before attention
    "layers.{i}.ff.fc1": "layers.{i}.mlp.fc1",  # D -> F
    "layers.{i}.ff.fc2": "layers.{i}.mlp.fc2",  # F -> D
    "layers.{i}.norm2": "layers.{i}.layernorm_after",  # Pre-LN before the MLP
    "norm": "layernorm",  # the final LN (eq. 4)
}
"""Our parameter/module paths -> Hugging Face ``ViTModel``'s in ``transformers`` 5 (``{i}`` = layer)."""

HF_VIT_LEGACY_NAMES: dict[str, str] = {
    **_SHARED_NAMES,
    "layers.{i}.self_attn.q_proj": "encoder.layer.{i}.attention.attention.query",
    "layers.{i}.self_attn.k_proj": "encoder.layer.{i}.attention.attention.key",
    "layers.{i}.self_attn.v_proj": "encoder.layer.{i}.attention.attention.value",
    "layers.{i}.self_attn.out_proj": "encoder.layer.{i}.attention.output.dense",
    "layers.{i}.norm1": "encoder.layer.{i}.layernorm_before",
    "layers.{i}.ff.fc1": "encoder.layer.{i}.intermediate.dense",
    "layers.{i}.ff.fc2": "encoder.layer.{i}.output.dense",
    "layers.{i}.norm2": "encoder.layer.{i}.layernorm_after",
    "norm": "layernorm",
}
"""The same table with the names of ``transformers`` 4 and of ViT checkpoint files (``google/vit-base-patch16-224``)."""

_HEAD, _HF_HEAD, _HF_PREFIX = "head", "classifier", "vit."
_SKIPPED = ("pooler.", "embeddings.mask_token")  # Hugging Face's pooler, and the mask token of masked image modelling

_ACTIVATIONS_TO_HF = {"gelu": "gelu", "relu": "relu", "gelu_tanh": "gelu_pytorch_tanh"}
_ACTIVATIONS_FROM_HF = {"gelu": "gelu", "relu": "relu", "gelu_pytorch_tanh": "gelu_tanh", "gelu_new": "gelu_tanh"}


def _compile(table: Mapping[str, str]) -> list[tuple[re.Pattern[str], str]]:
    """One regex per entry: the path, ``{i}`` a layer number, then nothing or ``.<rest>``."""
    compiled = []
    for source, target in table.items():
        pattern = re.escape(source).replace(r"\{i\}", r"(?P<i>\d+)")
        compiled.append((re.compile(f"^{pattern}(?P<rest>\\..+)?$"), target))
    return compiled


_TO_HF = {False: _compile(HF_VIT_NAMES), True: _compile(HF_VIT_LEGACY_NAMES)}
_FROM_HF = [
    *_compile({v: k for k, v in HF_VIT_NAMES.items()}),
    *_compile({v: k for k, v in HF_VIT_LEGACY_NAMES.items()}),
]


def _rename(key: str, rules: list[tuple[re.Pattern[str], str]]) -> str | None:
    """``key`` renamed by the first rule that matches it, or None."""
    for pattern, target in rules:
        match = pattern.match(key)
        if match:
            layer = match.groupdict().get("i")
            return (target if layer is None else target.replace("{i}", layer)) + (match["rest"] or "")
    return None


def state_dict_to_hf(state: Mapping[str, Tensor], head: bool = True, legacy: bool = False) -> dict[str, Tensor]:
    """Rename a state dict of our [ViT][llmdocs.models.vit.ViT] to Hugging Face's names (tensors shared, not copied).

    Args:
        state: ``ViT.state_dict()`` (for ``pos_embedding="sincos"``, add the table as ``embeddings.pos_embed``:
            it is a non-persistent buffer, see ``to_hf``).
        head: True for ``ViTForImageClassification`` (encoder under ``vit.``, head as ``classifier``), False for
            ``ViTModel`` (the head is left out).
        legacy: use the names of ``transformers`` 4 (``HF_VIT_LEGACY_NAMES``).

    Raises:
        KeyError: a key has no Hugging Face name (not a ViT state dict).

    Examples:
        >>> from llmdocs.models.vit import ViT, ViTConfig
        >>> hf = state_dict_to_hf(ViT(ViTConfig.tiny(n_layers=1)).state_dict())
        >>> [k for k in hf if "attention" in k][:2]
        ['vit.layers.0.attention.q_proj.weight', 'vit.layers.0.attention.q_proj.bias']
        >>> list(state_dict_to_hf(ViT(ViTConfig.tiny()).state_dict(), head=False, legacy=True))[4]
        'encoder.layer.0.attention.attention.query.weight'
    """
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        if key.startswith(_HEAD + "."):
            if head:
                out[_HF_HEAD + key.removeprefix(_HEAD)] = value
            continue
        name = _rename(key, _TO_HF[legacy])
        if name is None:
            raise KeyError(f"{key!r} has no Hugging Face ViT name: not a state dict of llmdocs.models.vit.ViT")
        out[(_HF_PREFIX if head else "") + name] = value
    return out


def state_dict_from_hf(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Rename a Hugging Face ViT state dict (``ViTModel`` or ``ViTForImageClassification``, names of
    ``transformers`` 5 or 4) to ours; drops the pooler and the mask token, which our model does not have.

    Raises:
        KeyError: a key has no counterpart in our ViT.

    Examples:
        >>> import torch
        >>> from llmdocs.models.vit import ViT, ViTConfig
        >>> model = ViT(ViTConfig.tiny())
        >>> for legacy in (False, True):
        ...     back = state_dict_from_hf(state_dict_to_hf(model.state_dict(), legacy=legacy))
        ...     print(all(torch.equal(back[k], v) for k, v in model.state_dict().items()))
        True
        True
    """
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        if key.startswith(_HF_HEAD + "."):
            out[_HEAD + key.removeprefix(_HF_HEAD)] = value
            continue
        key = key.removeprefix(_HF_PREFIX)
        if key.startswith(_SKIPPED):
            continue
        name = _rename(key, _FROM_HF)
        if name is None:
            raise KeyError(f"{key!r} has no counterpart in llmdocs.models.vit.ViT")
        out[name] = value
    return out


def config_to_hf(config: ViTConfig) -> HFViTConfig:
    """The ``transformers.ViTConfig`` of the same architecture (``num_labels = n_classes``).

    ``pool`` and ``pos_embedding`` have no Hugging Face field: its classifier reads [CLS], and its position table
    is a parameter (``to_hf`` copies a sine-cosine table into it).

    Examples:
        >>> config_to_hf(ViTConfig.fashion_mnist()).num_channels
        1
    """
    from transformers import ViTConfig as HFViTConfig

    assert config.d_ff is not None
    return HFViTConfig(
        hidden_size=config.d_model,
        num_hidden_layers=config.n_layers,
        num_attention_heads=config.n_heads,
        intermediate_size=config.d_ff,
        hidden_act=_ACTIVATIONS_TO_HF[config.activation],
        hidden_dropout_prob=config.dropout,
        attention_probs_dropout_prob=config.dropout,
        layer_norm_eps=config.layer_norm_eps,
        image_size=config.image_size,
        patch_size=config.patch_size,
        num_channels=config.n_channels,
        qkv_bias=True,
        num_labels=config.n_classes,
    )


def _square(value: Any, name: str) -> int:
    """An int, or a pair of two equal ints (our ViT is square): the int."""
    if isinstance(value, list | tuple):
        if len(value) != 2 or value[0] != value[1]:
            raise ValueError(f"{name}={value!r}: only square images and patches are supported")
        value = value[0]
    return int(value)


def config_from_hf(hf_config: HFViTConfig | Mapping[str, Any]) -> ViTConfig:
    """The [ViTConfig][llmdocs.models.vit.ViTConfig] of a ``transformers.ViTConfig`` (or its ``config.json``).

    Hugging Face has two dropout rates; ours is ``hidden_dropout_prob``. ``n_classes`` is ``num_labels`` (the
    length of ``id2label`` in a ``config.json``). Variants our model does not implement (no q/k/v bias, another
    activation, rectangular images or patches) raise ``ValueError``.

    Examples:
        >>> config_from_hf({"model_type": "vit", "id2label": {str(i): str(i) for i in range(1000)}}) == ViTConfig()
        True
    """
    if isinstance(hf_config, Mapping):
        d = dict(hf_config)
        n_classes = d.get("num_labels") or len(d.get("id2label") or {}) or 2
    else:
        d = hf_config.to_dict()
        n_classes = hf_config.num_labels
    if d.get("model_type", "vit") != "vit":
        raise ValueError(f"not a ViT config: model_type={d.get('model_type')!r}")
    if not d.get("qkv_bias", True):
        raise ValueError("qkv_bias=False is not supported: our attention projections all have a bias")
    activation = d.get("hidden_act", "gelu")
    if activation not in _ACTIVATIONS_FROM_HF:
        raise ValueError(f"hidden_act={activation!r} is not supported; choose one of {sorted(_ACTIVATIONS_FROM_HF)}")
    return ViTConfig(
        image_size=_square(d.get("image_size", 224), "image_size"),
        patch_size=_square(d.get("patch_size", 16), "patch_size"),
        n_channels=d.get("num_channels", 3),
        n_classes=n_classes,
        d_model=d.get("hidden_size", 768),
        n_heads=d.get("num_attention_heads", 12),
        n_layers=d.get("num_hidden_layers", 12),
        d_ff=d.get("intermediate_size", 3072),
        activation=_ACTIVATIONS_FROM_HF[activation],
        dropout=d.get("hidden_dropout_prob", 0.0),
        layer_norm_eps=d.get("layer_norm_eps", 1e-12),
    )


_HF_CLASSES = ("ViTModel", "ViTForImageClassification")


def from_hf(hf_model: PreTrainedModel) -> ViT:
    """Our [ViT][llmdocs.models.vit.ViT] with the weights of a Hugging Face ``ViTModel`` or
    ``ViTForImageClassification`` (same training/eval mode and dtype, on the CPU).

    A ``ViTModel`` has no classifier: the head of the returned model keeps its fresh initialisation
    (``n_classes = num_labels`` of the config), as when a pre-trained encoder is fine-tuned on a new task.

    Args:
        hf_model: the Hugging Face model, e.g. loaded with ``from_pretrained`` from a local folder.

    Raises:
        TypeError: ``hf_model`` is another class.

    Examples:
        >>> import torch
        >>> from transformers import ViTConfig as HFViTConfig, ViTForImageClassification
        >>> from llmdocs.testing import assert_equivalent
        >>> hf_config = HFViTConfig(hidden_size=24, num_hidden_layers=2, num_attention_heads=3, intermediate_size=48,
        ...                         image_size=12, patch_size=4, num_channels=1, num_labels=10)
        >>> theirs = ViTForImageClassification(hf_config).eval().double()
        >>> ours = from_hf(theirs)
        >>> images = torch.rand(2, 1, 12, 12, dtype=torch.float64)
        >>> assert_equivalent(ours(images), theirs(images).logits, depth=2)
    """
    name = type(hf_model).__name__
    if name not in _HF_CLASSES:
        raise TypeError(f"from_hf converts {list(_HF_CLASSES)}, got {name}")
    model = ViT(config_from_hf(hf_model.config)).to(hf_model.dtype)
    missing, unexpected = model.load_state_dict(state_dict_from_hf(hf_model.state_dict()), strict=False)
    expected_missing = [] if name == "ViTForImageClassification" else [f"{_HEAD}.bias", f"{_HEAD}.weight"]
    if sorted(missing) != expected_missing or unexpected:
        raise ValueError(f"{name}'s weights do not fit our ViT: missing {missing}, unexpected {unexpected}")
    return model.train(hf_model.training)


def to_hf(model: ViT, head: bool = True) -> PreTrainedModel:
    """The Hugging Face model with the weights of ``model`` (same mode and dtype), built from a config: no download.

    Args:
        model: our [ViT][llmdocs.models.vit.ViT].
        head: True: ``ViTForImageClassification`` (the same logits); False: ``ViTModel`` without its pooler (the
            same ``last_hidden_state`` as ``model.encode``).

    Raises:
        TypeError: ``model`` is not a ViT.
        ValueError: ``head=True`` for a model with ``pool="mean"``: Hugging Face's classifier reads [CLS].
    """
    import transformers

    if not isinstance(model, ViT):
        raise TypeError(f"to_hf converts a llmdocs.models.vit.ViT, got {type(model).__name__}")
    if head and model.config.pool != "cls":
        raise ValueError(
            f"pool={model.config.pool!r} has no Hugging Face counterpart (ViTForImageClassification reads [CLS]): "
            "convert the encoder alone with head=False"
        )
    hf_config = config_to_hf(model.config)
    if head:
        hf_model = transformers.ViTForImageClassification(hf_config)
    else:
        hf_model = transformers.ViTModel(hf_config, add_pooling_layer=False)
    hf_model = hf_model.to(next(model.parameters()).dtype)
    legacy = any(".attention.attention.query." in key for key in hf_model.state_dict())  # transformers 4
    state = dict(model.state_dict())
    state["embeddings.pos_embed"] = model.embeddings.pos_embed  # a sine-cosine table is a non-persistent buffer
    hf_model.load_state_dict(state_dict_to_hf(state, head=head, legacy=legacy))  # strict: every name must match
    return hf_model.train(model.training)
