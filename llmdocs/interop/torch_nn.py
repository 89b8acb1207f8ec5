"""Copy weights between llmdocs modules and their ``torch.nn`` counterparts.

This is the only place where ``torch.nn``'s parameter names appear. Two differences matter:

1. ``nn.MultiheadAttention`` packs the three input projections into one matrix,
   ``in_proj_weight = [W_q; W_k; W_v]`` of shape (3D, D); ours are separate ``q_proj``, ``k_proj``,
   ``v_proj`` layers.
2. Some sub-modules have other names (the table ``TORCH_NAMES``): ``cross_attn`` is
   ``multihead_attn``, the feed-forward layers ``ff.fc1``/``ff.fc2`` are ``linear1``/``linear2``.

``torch.nn`` modules built here use ``batch_first=True`` (like llmdocs) and, for encoders,
``enable_nested_tensor=False`` so padded positions are computed rather than zeroed. A module built here has
the dtype of the one it copies, so a float64 model gets a float64 twin (equivalence is proven in float64:
[llmdocs.testing][llmdocs.testing]).

Examples:
    >>> import torch
    >>> from llmdocs.nn.transformer_layers import EncoderLayer
    >>> from llmdocs.testing import assert_equivalent
    >>> _ = torch.manual_seed(0)
    >>> ours = EncoderLayer(d_model=8, n_heads=2, d_ff=16, dropout=0.0).eval().double()
    >>> theirs = encoder_layer_to_torch(ours).eval()  # float64 too
    >>> x = torch.randn(2, 5, 8, dtype=torch.float64)
    >>> assert_equivalent(ours(x), theirs(x))  # the same function, to float64 rounding
"""

from __future__ import annotations

import copy
import warnings

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from llmdocs.models.transformer import Decoder, Encoder, Transformer
from llmdocs.nn.attention import MultiHeadAttention
from llmdocs.nn.transformer_layers import DecoderLayer, EncoderLayer

TORCH_NAMES: dict[str, str] = {
    "cross_attn": "multihead_attn",  # DecoderLayer: attention over the encoder memory
    "ff.fc1": "linear1",  # PositionwiseFeedForward W_1, b_1
    "ff.fc2": "linear2",  # PositionwiseFeedForward W_2, b_2
}
"""Our dotted sub-module path -> ``torch.nn``'s (everything else has the same name)."""

_QKV = ("q_proj", "k_proj", "v_proj")  # packed in this order into in_proj_{weight,bias}


def _rename(key: str, table: dict[str, str]) -> str:
    dotted = f".{key}."
    for old, new in table.items():
        dotted = dotted.replace(f".{old}.", f".{new}.")
    return dotted[1:-1]


def state_dict_to_torch(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Convert an llmdocs state dict to ``torch.nn`` names, packing q/k/v into ``in_proj``.

    Examples:
        >>> sorted(state_dict_to_torch(MultiHeadAttention(8, 2).state_dict()))
        ['in_proj_bias', 'in_proj_weight', 'out_proj.bias', 'out_proj.weight']
    """
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        prefix, _, leaf = key.rpartition(".")  # e.g. "layers.0.self_attn.q_proj", "weight"
        attn_prefix, _, proj = prefix.rpartition(".")
        if proj in _QKV:
            if proj != "q_proj":
                continue  # packed together with q_proj below
            packed = torch.cat([state[f"{attn_prefix}.{p}.{leaf}".lstrip(".")] for p in _QKV])
            out[_rename(f"{attn_prefix}.in_proj_{leaf}".lstrip("."), TORCH_NAMES)] = packed
        else:
            out[_rename(key, TORCH_NAMES)] = value
    return out


def state_dict_from_torch(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Convert a ``torch.nn`` state dict to llmdocs names, splitting ``in_proj`` into q/k/v."""
    inverse = {new: old for old, new in TORCH_NAMES.items()}
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        prefix, _, leaf = key.rpartition(".")
        if leaf in ("in_proj_weight", "in_proj_bias"):
            kind = leaf.removeprefix("in_proj_")  # "weight" or "bias"
            for proj, chunk in zip(_QKV, value.chunk(3, dim=0), strict=True):  # 3 x (D, ...)
                out[_rename(f"{prefix}.{proj}.{kind}".lstrip("."), inverse)] = chunk.clone()
        else:
            out[_rename(key, inverse)] = value
    return out


def copy_to_torch(ours: nn.Module, theirs: nn.Module) -> None:
    """Load the weights of an llmdocs module into its ``torch.nn`` twin (all names must match)."""
    theirs.load_state_dict(state_dict_to_torch(ours.state_dict()), strict=True)


def copy_from_torch(theirs: nn.Module, ours: nn.Module) -> None:
    """Load the weights of a ``torch.nn`` module into its llmdocs twin (all names must match)."""
    ours.load_state_dict(state_dict_from_torch(theirs.state_dict()), strict=True)


def _activation_name(layer: nn.TransformerEncoderLayer | nn.TransformerDecoderLayer) -> str:
    activation = layer.activation  # torch.nn keeps a function or a module
    if activation is F.relu or isinstance(activation, nn.ReLU):
        return "relu"
    if activation is F.gelu or isinstance(activation, nn.GELU):
        return "gelu"
    raise ValueError(f"only relu and gelu activations have an llmdocs counterpart, got {activation}")


def _dtype(module: nn.Module) -> torch.dtype:
    return next(module.parameters()).dtype


def _check_torch_mha(mha: nn.MultiheadAttention) -> None:
    if not mha._qkv_same_embed_dim or mha.in_proj_bias is None:
        raise ValueError("need nn.MultiheadAttention with kdim = vdim = embed_dim and bias=True")


# ---- builders: each X_to_torch / X_from_torch copies into the given twin, or builds one -------------
# Every builder returns the destination module, so `theirs = mha_to_torch(ours)` and
# `mha_to_torch(ours, theirs)` both work.


def mha_to_torch(ours: MultiHeadAttention, theirs: nn.MultiheadAttention | None = None) -> nn.MultiheadAttention:
    """Copy ``ours`` into ``theirs`` (default: a new batch-first ``nn.MultiheadAttention``) and return it."""
    if theirs is None:
        bias = ours.q_proj.bias is not None
        theirs = nn.MultiheadAttention(
            ours.d_model, ours.n_heads, ours.dropout, bias=bias, batch_first=True, dtype=_dtype(ours)
        )
    copy_to_torch(ours, theirs)
    return theirs


def mha_from_torch(theirs: nn.MultiheadAttention, ours: MultiHeadAttention | None = None) -> MultiHeadAttention:
    """Copy ``theirs`` into ``ours`` (default: a new [MultiHeadAttention][llmdocs.nn.attention.MultiHeadAttention])."""
    if not theirs._qkv_same_embed_dim:
        raise ValueError("need nn.MultiheadAttention with kdim = vdim = embed_dim")
    if ours is None:
        bias = theirs.in_proj_bias is not None
        ours = MultiHeadAttention(theirs.embed_dim, theirs.num_heads, theirs.dropout, bias=bias).to(_dtype(theirs))
    copy_from_torch(theirs, ours)
    return ours


def encoder_layer_to_torch(
    ours: EncoderLayer, theirs: nn.TransformerEncoderLayer | None = None
) -> nn.TransformerEncoderLayer:
    """Copy ``ours`` into ``theirs`` (default: a new batch-first ``nn.TransformerEncoderLayer``)."""
    if theirs is None:
        theirs = nn.TransformerEncoderLayer(
            ours.self_attn.d_model,
            ours.self_attn.n_heads,
            ours.ff.fc1.out_features,
            dropout=ours.dropout1.p,
            activation=ours.ff.activation_name,
            layer_norm_eps=ours.norm1.eps,
            batch_first=True,
            norm_first=ours.norm_first,
            dtype=_dtype(ours),
        )
    copy_to_torch(ours, theirs)
    return theirs


def encoder_layer_from_torch(theirs: nn.TransformerEncoderLayer, ours: EncoderLayer | None = None) -> EncoderLayer:
    """Copy ``theirs`` into ``ours`` (default: a new [EncoderLayer][llmdocs.nn.transformer_layers.EncoderLayer])."""
    _check_torch_mha(theirs.self_attn)
    if ours is None:
        ours = EncoderLayer(
            theirs.self_attn.embed_dim,
            theirs.self_attn.num_heads,
            theirs.linear1.out_features,
            dropout=theirs.dropout.p,
            norm_first=theirs.norm_first,
            activation=_activation_name(theirs),
            layer_norm_eps=theirs.norm1.eps,
        ).to(_dtype(theirs))
    copy_from_torch(theirs, ours)
    return ours


def decoder_layer_to_torch(
    ours: DecoderLayer, theirs: nn.TransformerDecoderLayer | None = None
) -> nn.TransformerDecoderLayer:
    """Copy ``ours`` into ``theirs`` (default: a new batch-first ``nn.TransformerDecoderLayer``)."""
    if theirs is None:
        theirs = nn.TransformerDecoderLayer(
            ours.self_attn.d_model,
            ours.self_attn.n_heads,
            ours.ff.fc1.out_features,
            dropout=ours.dropout1.p,
            activation=ours.ff.activation_name,
            layer_norm_eps=ours.norm1.eps,
            batch_first=True,
            norm_first=ours.norm_first,
            dtype=_dtype(ours),
        )
    copy_to_torch(ours, theirs)
    return theirs


def decoder_layer_from_torch(theirs: nn.TransformerDecoderLayer, ours: DecoderLayer | None = None) -> DecoderLayer:
    """Copy ``theirs`` into ``ours`` (default: a new [DecoderLayer][llmdocs.nn.transformer_layers.DecoderLayer])."""
    _check_torch_mha(theirs.self_attn)
    if ours is None:
        ours = DecoderLayer(
            theirs.self_attn.embed_dim,
            theirs.self_attn.num_heads,
            theirs.linear1.out_features,
            dropout=theirs.dropout.p,
            norm_first=theirs.norm_first,
            activation=_activation_name(theirs),
            layer_norm_eps=theirs.norm1.eps,
        ).to(_dtype(theirs))
    copy_from_torch(theirs, ours)
    return ours


def encoder_to_torch(ours: Encoder, theirs: nn.TransformerEncoder | None = None) -> nn.TransformerEncoder:
    """Copy ``ours`` into ``theirs`` (default: a new ``nn.TransformerEncoder``, final norm iff ours has one)."""
    if theirs is None:
        layer = encoder_layer_to_torch(ours.layers[0])  # type: ignore[arg-type]
        norm = copy.deepcopy(ours.norm) if ours.norm is not None else None
        theirs = nn.TransformerEncoder(layer, len(ours.layers), norm=norm, enable_nested_tensor=False)
    copy_to_torch(ours, theirs)
    return theirs


def encoder_from_torch(theirs: nn.TransformerEncoder, ours: Encoder | None = None) -> Encoder:
    """Copy ``theirs`` into ``ours`` (default: a new [Encoder][llmdocs.models.transformer.Encoder])."""
    if ours is None:
        first = encoder_layer_from_torch(theirs.layers[0])  # type: ignore[arg-type]
        ours = Encoder(
            first.self_attn.d_model,
            first.self_attn.n_heads,
            first.ff.fc1.out_features,
            len(theirs.layers),
            dropout=first.dropout1.p,
            norm_first=first.norm_first,
            activation=first.ff.activation_name,
            final_norm=theirs.norm is not None,
        ).to(_dtype(theirs))
        _set_layer_norm_eps(ours, first.norm1.eps)
    copy_from_torch(theirs, ours)
    return ours


def decoder_to_torch(ours: Decoder, theirs: nn.TransformerDecoder | None = None) -> nn.TransformerDecoder:
    """Copy ``ours`` into ``theirs`` (default: a new ``nn.TransformerDecoder``, final norm iff ours has one)."""
    if theirs is None:
        layer = decoder_layer_to_torch(ours.layers[0])  # type: ignore[arg-type]
        norm = copy.deepcopy(ours.norm) if ours.norm is not None else None
        theirs = nn.TransformerDecoder(layer, len(ours.layers), norm=norm)
    copy_to_torch(ours, theirs)
    return theirs


def decoder_from_torch(theirs: nn.TransformerDecoder, ours: Decoder | None = None) -> Decoder:
    """Copy ``theirs`` into ``ours`` (default: a new [Decoder][llmdocs.models.transformer.Decoder])."""
    if ours is None:
        first = decoder_layer_from_torch(theirs.layers[0])  # type: ignore[arg-type]
        ours = Decoder(
            first.self_attn.d_model,
            first.self_attn.n_heads,
            first.ff.fc1.out_features,
            len(theirs.layers),
            dropout=first.dropout1.p,
            norm_first=first.norm_first,
            activation=first.ff.activation_name,
            final_norm=theirs.norm is not None,
        ).to(_dtype(theirs))
        _set_layer_norm_eps(ours, first.norm1.eps)
    copy_from_torch(theirs, ours)
    return ours


def _set_layer_norm_eps(module: nn.Module, eps: float) -> None:
    for sub in module.modules():
        if isinstance(sub, nn.LayerNorm):
            sub.eps = eps


# ---- the whole encoder-decoder -----------------------------------------------------------------


def transformer_to_torch(ours: Transformer, theirs: nn.Transformer | None = None) -> nn.Transformer:
    """Copy the encoder and decoder of ``ours`` into ``theirs`` (default: a new ``nn.Transformer``).

    ``nn.Transformer`` has no embeddings, positional encoding or output layer: feed it the embedded
    inputs and compare hidden states. When ours has no final norms (Post-LN), they are removed from
    a new ``nn.Transformer`` too (it always creates them).
    """
    if theirs is None:
        c = ours.config
        with warnings.catch_warnings():  # nn.Transformer warns that Pre-LN disables nested tensors
            warnings.filterwarnings("ignore", message="enable_nested_tensor is True")
            theirs = nn.Transformer(
                c.d_model,
                c.n_heads,
                c.n_encoder_layers,
                c.n_decoder_layers,
                c.d_ff,
                dropout=c.dropout,
                activation=c.activation,
                batch_first=True,
                norm_first=c.norm_first,
                dtype=_dtype(ours),
            )
        theirs.encoder.enable_nested_tensor = theirs.encoder.use_nested_tensor = False
        if ours.encoder.norm is None:
            theirs.encoder.norm = None
        if ours.decoder.norm is None:
            theirs.decoder.norm = None
    copy_to_torch(ours.encoder, theirs.encoder)
    copy_to_torch(ours.decoder, theirs.decoder)
    return theirs


def transformer_from_torch(theirs: nn.Transformer, ours: Transformer) -> Transformer:
    """Copy the encoder and decoder weights of an ``nn.Transformer`` into ``ours`` and return it.

    ``ours`` is required (``nn.Transformer`` knows no vocabulary); its embeddings and output layer
    are left untouched. Raises ``ValueError`` when the
    final norms do not match: a Post-LN ``nn.Transformer`` still has them, ours does not.
    """
    for name in ("encoder", "decoder"):
        has_theirs = getattr(theirs, name).norm is not None
        has_ours = getattr(ours, name).norm is not None
        if has_theirs != has_ours:
            raise ValueError(
                f"final {name} norm: torch.nn has {'one' if has_theirs else 'none'}, "
                f"ours has {'one' if has_ours else 'none'}; set theirs.{name}.norm = None or "
                "copy the stacks into Encoder/Decoder(final_norm=True) with encoder_from_torch"
            )
    copy_from_torch(theirs.encoder, ours.encoder)
    copy_from_torch(theirs.decoder, ours.decoder)
    return ours
