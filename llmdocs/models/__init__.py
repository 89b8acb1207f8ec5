"""One module per model of the course, each assembled from the blocks of [llmdocs.nn][llmdocs.nn].

- [transformer][llmdocs.models.transformer]: the encoder-decoder Transformer (chapter "Attention and the
  Transformer");
- [transformer_encoder][llmdocs.models.transformer_encoder]: its encoder on its own;
- [gpt][llmdocs.models.gpt]: GPT, the decoder-only language model (chapter "GPT").
"""

from llmdocs.models.gpt import GPT, GPTConfig
from llmdocs.models.transformer import Transformer, TransformerConfig
from llmdocs.models.transformer_encoder import TransformerEncoder

__all__ = ["GPT", "GPTConfig", "Transformer", "TransformerConfig", "TransformerEncoder"]
