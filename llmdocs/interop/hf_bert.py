"""Copy weights between our [BERT][llmdocs.models.bert] models and Hugging Face's ``BertModel`` family.

This is the only place where Hugging Face's BERT parameter names appear (the tables ``HF_BERT_NAMES`` and
``HF_BERT_HEAD_NAMES``). The layouts agree one to one: both use ``nn.Linear`` (no transposes, no packed q/k/v).
Three classes convert each way:

- [BertModel][llmdocs.models.bert.BertModel] <-> ``BertModel``;
- [BertForPreTraining][llmdocs.models.bert.BertForPreTraining] <-> ``BertForPreTraining`` (encoder under
  ``bert.``, heads under ``cls.``);
- [BertForSequenceClassification][llmdocs.models.bert.BertForSequenceClassification] <->
  ``BertForSequenceClassification``.

``transformers`` is imported only inside the functions that build Hugging Face objects. Nothing here downloads.

Examples:
    >>> import torch
    >>> from llmdocs.models.bert import BertConfig, BertModel
    >>> from llmdocs.testing import assert_equivalent
    >>> _ = torch.manual_seed(0)
    >>> ours = BertModel(BertConfig.tiny()).eval().double()  # an equivalence proof runs in float64
    >>> theirs = to_hf(ours)
    >>> ids = torch.randint(0, 64, (2, 5))
    >>> out = theirs(ids)
    >>> assert_equivalent(ours(ids)[0], out.last_hidden_state, depth=2)
    >>> assert_equivalent(ours(ids)[1], out.pooler_output, depth=2)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from torch import Tensor

from llmdocs.models.bert import BertConfig, BertForPreTraining, BertForSequenceClassification, BertModel

if TYPE_CHECKING:
    from transformers import BertConfig as HFBertConfig
    from transformers import PreTrainedModel

__all__ = [
    "HF_BERT_HEAD_NAMES",
    "HF_BERT_NAMES",
    "config_from_hf",
    "config_to_hf",
    "from_hf",
    "state_dict_from_hf",
    "state_dict_to_hf",
    "to_hf",
]

HF_BERT_NAMES: dict[str, str] = {
    "embeddings.tok_embed": "embeddings.word_embeddings",  # E_tok (V, D)
    "embeddings.pos_embed": "embeddings.position_embeddings",  # E_pos (T_max, D)
    "embeddings.type_embed": "embeddings.token_type_embeddings",  # E_seg (type_vocab_size, D)
    "embeddings.norm": "embeddings.LayerNorm",
    "layers.{i}.self_attn.q_proj": "encoder.layer.{i}.attention.self.query",
    "layers.{i}.self_attn.k_proj": "encoder.layer.{i}.attention.self.key",
    "layers.{i}.self_attn.v_proj": "encoder.layer.{i}.attention.self.value",
    "layers.{i}.self_attn.out_proj": "encoder.layer.{i}.attention.output.dense",
    "layers.{i}.norm1": "encoder.layer.{i}.attention.output.LayerNorm",  # Post-LN after attention
    "layers.{i}.ff.fc1": "encoder.layer.{i}.intermediate.dense",  # D -> F
    "layers.{i}.ff.fc2": "encoder.layer.{i}.output.dense",  # F -> D
    "layers.{i}.norm2": "encoder.layer.{i}.output.LayerNorm",  # Post-LN after the FFN
    "pooler": "pooler.dense",  # tanh(W_p h[CLS] + b_p)
}
"""Module paths of our [BertModel][llmdocs.models.bert.BertModel] -> Hugging Face's ``BertModel`` (``{i}`` = layer)."""

HF_BERT_HEAD_NAMES: dict[str, str] = {
    "mlm_transform": "cls.predictions.transform.dense",
    "mlm_norm": "cls.predictions.transform.LayerNorm",
    "mlm_decoder": "cls.predictions.decoder",  # weight tied to the token embedding; bias also as cls.predictions.bias
    "nsp_head": "cls.seq_relationship",
    "classifier": "classifier",
}
"""Head modules of our ``BertForPreTraining`` / ``BertForSequenceClassification`` -> Hugging Face's.
The encoder sits under ``bert.`` in both (``bert.`` + a name of ``HF_BERT_NAMES``)."""


def _module_to_hf(module: str) -> str:
    """Our module path -> Hugging Face's: ``bert.layers.3.ff.fc1`` -> ``bert.encoder.layer.3.intermediate.dense``."""
    prefix = ""
    if module.startswith("bert."):
        prefix, module = "bert.", module.removeprefix("bert.")
    elif module in HF_BERT_HEAD_NAMES:
        return HF_BERT_HEAD_NAMES[module]
    if module.startswith("layers."):
        _, i, rest = module.split(".", 2)
        return prefix + HF_BERT_NAMES[f"layers.{{i}}.{rest}"].replace("{i}", i)
    return prefix + HF_BERT_NAMES[module]


def _inverse_table() -> dict[str, str]:
    """Hugging Face module path (``{i}`` left in) -> ours, for the encoder and every head."""
    inverse = {v: k for k, v in HF_BERT_NAMES.items()}
    inverse.update({v: k for k, v in HF_BERT_HEAD_NAMES.items()})
    return inverse


def state_dict_to_hf(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Rename a state dict of one of our BERT models to Hugging Face's names (tensors are shared, not copied).

    Examples:
        >>> from llmdocs.models.bert import BertConfig, BertModel
        >>> hf = state_dict_to_hf(BertModel(BertConfig.tiny(n_layers=1)).state_dict())
        >>> [k for k in hf if ".attention.self." in k][:2]
        ['encoder.layer.0.attention.self.query.weight', 'encoder.layer.0.attention.self.query.bias']
    """
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        module, _, leaf = key.rpartition(".")
        out[f"{_module_to_hf(module)}.{leaf}"] = value
        if module == "mlm_decoder" and leaf == "bias":
            out["cls.predictions.bias"] = value  # the same parameter under a second name in Hugging Face's head
    return out


def state_dict_from_hf(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Rename a Hugging Face BERT state dict to our names; drops the ``position_ids``/``token_type_ids`` buffers.

    Examples:
        >>> import torch
        >>> from llmdocs.models.bert import BertConfig, BertForPreTraining
        >>> model = BertForPreTraining(BertConfig.tiny(n_layers=1))
        >>> back = state_dict_from_hf(state_dict_to_hf(model.state_dict()))
        >>> all(torch.equal(back[k], v) for k, v in model.state_dict().items())
        True
    """
    inverse = _inverse_table()
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        module, _, leaf = key.rpartition(".")
        if key == "cls.predictions.bias" or leaf in ("position_ids", "token_type_ids"):
            continue  # an alias of cls.predictions.decoder.bias; index buffers, not weights
        prefix = ""
        if module.startswith("bert."):
            prefix, module = "bert.", module.removeprefix("bert.")
        if module.startswith("encoder.layer."):
            _, _, i, rest = module.split(".", 3)
            ours = inverse[f"encoder.layer.{{i}}.{rest}"].replace("{i}", i)
        else:
            ours = inverse[module]
        out[f"{prefix}{ours}.{leaf}"] = value
    if "cls.predictions.bias" in state and "mlm_decoder.bias" not in out:
        out["mlm_decoder.bias"] = state["cls.predictions.bias"]
    return out


def config_to_hf(config: BertConfig, n_classes: int = 2) -> HFBertConfig:
    """The ``transformers.BertConfig`` of the same architecture (``n_classes`` labels for a classifier).

    Examples:
        >>> config_to_hf(BertConfig.minilm_l6()).intermediate_size
        1536
    """
    from transformers import BertConfig as HFBertConfig

    return HFBertConfig(
        vocab_size=config.vocab_size,
        hidden_size=config.d_model,
        num_hidden_layers=config.n_layers,
        num_attention_heads=config.n_heads,
        intermediate_size=config.d_ff,
        hidden_act=config.activation,
        hidden_dropout_prob=config.dropout,
        attention_probs_dropout_prob=config.dropout,
        max_position_embeddings=config.context_length,
        type_vocab_size=config.type_vocab_size,
        layer_norm_eps=config.layer_norm_eps,
        pad_token_id=config.pad_token_id,
        num_labels=n_classes,
    )


def config_from_hf(hf_config: HFBertConfig | Mapping[str, Any]) -> BertConfig:
    """The [BertConfig][llmdocs.models.bert.BertConfig] of a ``transformers.BertConfig`` (or its ``config.json``).

    Hugging Face has two dropout rates; ours is ``hidden_dropout_prob``. Variants our model does not implement
    (relative positions, a decoder, another activation) raise ``ValueError``.

    Examples:
        >>> config_from_hf({"model_type": "bert", "hidden_size": 384, "num_hidden_layers": 6,
        ...                 "intermediate_size": 1536}) == BertConfig.minilm_l6()
        True
    """
    d = dict(hf_config) if isinstance(hf_config, Mapping) else hf_config.to_dict()
    if d.get("model_type", "bert") != "bert":
        raise ValueError(f"not a BERT config: model_type={d.get('model_type')!r}")
    if d.get("position_embedding_type", "absolute") != "absolute":
        raise ValueError(f"position_embedding_type={d['position_embedding_type']!r}: only 'absolute' is supported")
    if d.get("is_decoder", False) or d.get("add_cross_attention", False):
        raise ValueError("a BERT decoder (is_decoder / add_cross_attention) is not supported")
    activation = d.get("hidden_act", "gelu")
    if activation not in ("gelu", "relu"):
        raise ValueError(f"hidden_act={activation!r} is not supported; choose 'gelu' or 'relu'")
    return BertConfig(
        vocab_size=d.get("vocab_size", 30522),
        context_length=d.get("max_position_embeddings", 512),
        type_vocab_size=d.get("type_vocab_size", 2),
        d_model=d.get("hidden_size", 768),
        n_heads=d.get("num_attention_heads", 12),
        n_layers=d.get("num_hidden_layers", 12),
        d_ff=d.get("intermediate_size", 3072),
        activation=activation,
        dropout=d.get("hidden_dropout_prob", 0.1),
        layer_norm_eps=d.get("layer_norm_eps", 1e-12),
        pad_token_id=d.get("pad_token_id") or 0,
    )


_OURS_TO_HF = {
    BertModel: "BertModel",
    BertForPreTraining: "BertForPreTraining",
    BertForSequenceClassification: "BertForSequenceClassification",
}


def from_hf(hf_model: PreTrainedModel) -> BertModel | BertForPreTraining | BertForSequenceClassification:
    """Our model with the weights of a Hugging Face ``BertModel``, ``BertForPreTraining`` or
    ``BertForSequenceClassification`` (same class of model, training/eval mode and dtype).

    Args:
        hf_model: the Hugging Face model, e.g. loaded with ``from_pretrained`` from a local folder.

    Returns:
        The matching model of [llmdocs.models.bert][llmdocs.models.bert], on the CPU.

    Raises:
        TypeError: ``hf_model`` is another class.

    Examples:
        >>> import torch
        >>> from transformers import BertConfig as HFBertConfig, BertForSequenceClassification as HFCls
        >>> from llmdocs.testing import assert_equivalent
        >>> hf_config = HFBertConfig(vocab_size=40, hidden_size=24, num_hidden_layers=2, num_attention_heads=3,
        ...                          intermediate_size=48, max_position_embeddings=16, num_labels=3)
        >>> theirs = HFCls(hf_config).eval().double()
        >>> ours = from_hf(theirs)
        >>> ids = torch.randint(0, 40, (2, 6))
        >>> assert_equivalent(ours(ids), theirs(ids).logits, depth=2)
    """
    name = type(hf_model).__name__
    if name not in _OURS_TO_HF.values():
        raise TypeError(f"from_hf converts {sorted(_OURS_TO_HF.values())}, got {name}")
    config = config_from_hf(hf_model.config)
    if name == "BertModel":
        model: Any = BertModel(config)
    elif name == "BertForPreTraining":
        model = BertForPreTraining(config)
    else:
        model = BertForSequenceClassification(config, n_classes=hf_model.config.num_labels)
    model = model.to(hf_model.dtype)
    model.load_state_dict(state_dict_from_hf(hf_model.state_dict()))
    return model.train(hf_model.training)


def to_hf(model: BertModel | BertForPreTraining | BertForSequenceClassification) -> PreTrainedModel:
    """The Hugging Face model of the same class with the weights of ``model`` (same mode and dtype).

    Args:
        model: our [BertModel][llmdocs.models.bert.BertModel], ``BertForPreTraining`` or
            ``BertForSequenceClassification``.

    Returns:
        ``transformers.BertModel`` (without ``add_pooling_layer=False``: the pooler is copied too),
        ``BertForPreTraining`` or ``BertForSequenceClassification``, built from a config: no download.

    Raises:
        TypeError: ``model`` is another class.
    """
    import transformers

    if type(model) not in _OURS_TO_HF:
        raise TypeError(f"to_hf converts {sorted(c.__name__ for c in _OURS_TO_HF)}, got {type(model).__name__}")
    n_classes = model.n_classes if isinstance(model, BertForSequenceClassification) else 2
    hf_class = getattr(transformers, _OURS_TO_HF[type(model)])
    hf_model = hf_class(config_to_hf(model.config, n_classes)).to(next(model.parameters()).dtype)
    hf_model.load_state_dict(state_dict_to_hf(model.state_dict()))  # strict: every name must match
    return hf_model.train(model.training)
