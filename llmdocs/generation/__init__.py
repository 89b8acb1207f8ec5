"""Turning a trained model into text: logits processors, decoder-only generation, encoder-decoder decoding.

- [sampling][llmdocs.generation.sampling]: temperature, top-k, top-p and the repetition penalty, as pure
  functions of the next-token logits;
- [decoder_only][llmdocs.generation.decoder_only]: greedy, sampled, streamed and beam-search generation for
  a language model such as [GPT][llmdocs.models.gpt.GPT], with a key/value cache;
- [encoder_decoder][llmdocs.generation.encoder_decoder]: greedy decoding and beam search for the
  [Transformer][llmdocs.models.transformer.Transformer].

Both beam searches are in their own modules (`decoder_only.beam_search`, `encoder_decoder.beam_search`).
"""

from llmdocs.generation.decoder_only import generate, kv_cache_speedup, left_pad, stream_generate
from llmdocs.generation.encoder_decoder import greedy_decode
from llmdocs.generation.sampling import (
    apply_repetition_penalty,
    apply_temperature,
    process_logits,
    top_k_filter,
    top_p_filter,
)

__all__ = [
    "apply_repetition_penalty",
    "apply_temperature",
    "generate",
    "greedy_decode",
    "kv_cache_speedup",
    "left_pad",
    "process_logits",
    "stream_generate",
    "top_k_filter",
    "top_p_filter",
]
