"""Weight copying between llmdocs modules and reference implementations.

Foreign parameter names live only in these modules: [torch_nn][llmdocs.interop.torch_nn] maps to
``torch.nn`` (``MultiheadAttention``, ``TransformerEncoderLayer``, ``TransformerDecoderLayer``,
``TransformerEncoder``, ``TransformerDecoder``, ``Transformer``).
"""

from llmdocs.interop.torch_nn import (
    TORCH_NAMES,
    copy_from_torch,
    copy_to_torch,
    decoder_from_torch,
    decoder_layer_from_torch,
    decoder_layer_to_torch,
    decoder_to_torch,
    encoder_from_torch,
    encoder_layer_from_torch,
    encoder_layer_to_torch,
    encoder_to_torch,
    mha_from_torch,
    mha_to_torch,
    state_dict_from_torch,
    state_dict_to_torch,
    transformer_from_torch,
    transformer_to_torch,
)

__all__ = [
    "TORCH_NAMES",
    "copy_from_torch",
    "copy_to_torch",
    "decoder_from_torch",
    "decoder_layer_from_torch",
    "decoder_layer_to_torch",
    "decoder_to_torch",
    "encoder_from_torch",
    "encoder_layer_from_torch",
    "encoder_layer_to_torch",
    "encoder_to_torch",
    "mha_from_torch",
    "mha_to_torch",
    "state_dict_from_torch",
    "state_dict_to_torch",
    "transformer_from_torch",
    "transformer_to_torch",
]
