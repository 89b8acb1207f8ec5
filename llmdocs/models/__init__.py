"""One module per model of the course, each assembled from the blocks of [llmdocs.nn][llmdocs.nn].

- [transformer][llmdocs.models.transformer]: the encoder-decoder Transformer (chapter "Attention and the
  Transformer");
- [transformer_encoder][llmdocs.models.transformer_encoder]: its encoder on its own;
- [gpt][llmdocs.models.gpt]: GPT, the decoder-only language model (chapter "GPT");
- [bert][llmdocs.models.bert]: BERT, the bidirectional encoder with its pre-training and classification heads;
- [sentence_encoder][llmdocs.models.sentence_encoder]: a BERT turned into a sentence encoder (pooling and
  normalisation, as Sentence-BERT), semantic search (chapter "BERT");
- [vit][llmdocs.models.vit]: the Vision Transformer and attention rollout (chapter "Vision Transformer");
- [resnet][llmdocs.models.resnet]: a small residual network, the convolutional baseline of that chapter;
- [llama][llmdocs.models.llama]: the Llama-style decoder of today's open models (RMSNorm, rotary embeddings, SwiGLU,
  grouped-query attention);
- [ladder][llmdocs.models.ladder]: the ablation ladder between GPT-2 and Llama, one piece switched at a time;
- [smollm2][llmdocs.models.smollm2]: SmolLM2-135M-Instruct, a real chat model, loaded into that decoder (chapter
  "From GPT-2 to a modern LLM"; import it from its module: it reads GGUF files through ``llmdocs.interop``).
"""

from llmdocs.models.bert import (
    BertConfig,
    BertEmbeddings,
    BertForPreTraining,
    BertForSequenceClassification,
    BertModel,
)
from llmdocs.models.gpt import GPT, GPTConfig
from llmdocs.models.ladder import LADDER, LadderConfig, LadderDecoder
from llmdocs.models.llama import Llama, LlamaCache, LlamaConfig
from llmdocs.models.resnet import BasicBlock, ResNet, ResNetConfig
from llmdocs.models.sentence_encoder import SentenceEncoder
from llmdocs.models.transformer import Transformer, TransformerConfig
from llmdocs.models.transformer_encoder import TransformerEncoder
from llmdocs.models.vit import ViT, ViTConfig, attention_rollout

__all__ = [
    "GPT",
    "LADDER",
    "BasicBlock",
    "BertConfig",
    "BertEmbeddings",
    "BertForPreTraining",
    "BertForSequenceClassification",
    "BertModel",
    "GPTConfig",
    "LadderConfig",
    "LadderDecoder",
    "Llama",
    "LlamaCache",
    "LlamaConfig",
    "ResNet",
    "ResNetConfig",
    "SentenceEncoder",
    "Transformer",
    "TransformerConfig",
    "TransformerEncoder",
    "ViT",
    "ViTConfig",
    "attention_rollout",
]
