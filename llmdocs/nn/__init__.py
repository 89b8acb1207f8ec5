"""Building blocks that every model of the course shares.

- [attention][llmdocs.nn.attention]: scaled dot-product attention, masks, multi-head attention, the key/value
  cache (chapter "Attention and the Transformer").
- [positional][llmdocs.nn.positional]: sinusoidal and learned positional encodings.
- [feedforward][llmdocs.nn.feedforward]: the position-wise feed-forward network and its activations.
- [transformer_layers][llmdocs.nn.transformer_layers]: encoder and decoder layers, Post-LN or Pre-LN.
- [checks][llmdocs.nn.checks]: input checks the models share (token ids in range).
- [patch_embedding][llmdocs.nn.patch_embedding]: images as sequences: patches, their embedding (a strided
  convolution), the [CLS] token, learned and 2-D sine-cosine positions and their interpolation (chapter "Vision
  Transformer").
- [image_checks][llmdocs.nn.image_checks]: input checks the image models share (float (B, C, H, W) batches).
- [rmsnorm][llmdocs.nn.rmsnorm], [rotary][llmdocs.nn.rotary], [swiglu][llmdocs.nn.swiglu],
  [grouped_query_attention][llmdocs.nn.grouped_query_attention]: the pieces of a Llama-style block: RMSNorm,
  rotary position embeddings (and their context extension), the SwiGLU feed-forward network and grouped-query
  attention with a KV cache of the key/value heads only (chapter "From GPT-2 to a modern LLM").

The models in [llmdocs.models][llmdocs.models] are assembled from these pieces.
"""

from llmdocs.nn.attention import KVCache, MultiHeadAttention, causal_mask, padding_mask, scaled_dot_product_attention
from llmdocs.nn.checks import check_token_ids
from llmdocs.nn.feedforward import PositionwiseFeedForward, get_activation
from llmdocs.nn.grouped_query_attention import GroupedQueryAttention, kv_cache_numbers_per_token, repeat_kv_heads
from llmdocs.nn.image_checks import check_images
from llmdocs.nn.patch_embedding import (
    ImageEmbedding,
    PatchEmbedding,
    interpolate_pos_embed,
    patchify,
    sincos_2d_table,
    unpatchify,
)
from llmdocs.nn.positional import LearnedPositionalEmbedding, SinusoidalPositionalEncoding, sinusoidal_table
from llmdocs.nn.rmsnorm import RMSNorm
from llmdocs.nn.rotary import (
    RotaryEmbedding,
    apply_rotary,
    apply_rotary_complex,
    permute_qk_rows,
    rope_angles,
    rope_cos_sin,
    rope_inv_freq,
    rope_permutation,
    rotate_half,
)
from llmdocs.nn.swiglu import SwiGLU, swiglu_hidden_dim
from llmdocs.nn.transformer_layers import DecoderLayer, EncoderLayer

__all__ = [
    "DecoderLayer",
    "EncoderLayer",
    "GroupedQueryAttention",
    "ImageEmbedding",
    "KVCache",
    "LearnedPositionalEmbedding",
    "MultiHeadAttention",
    "PatchEmbedding",
    "PositionwiseFeedForward",
    "RMSNorm",
    "RotaryEmbedding",
    "SinusoidalPositionalEncoding",
    "SwiGLU",
    "apply_rotary",
    "apply_rotary_complex",
    "causal_mask",
    "check_images",
    "check_token_ids",
    "get_activation",
    "interpolate_pos_embed",
    "kv_cache_numbers_per_token",
    "padding_mask",
    "patchify",
    "permute_qk_rows",
    "repeat_kv_heads",
    "rope_angles",
    "rope_cos_sin",
    "rope_inv_freq",
    "rope_permutation",
    "rotate_half",
    "scaled_dot_product_attention",
    "sincos_2d_table",
    "sinusoidal_table",
    "swiglu_hidden_dim",
    "unpatchify",
]
