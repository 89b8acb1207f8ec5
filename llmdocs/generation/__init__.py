"""Turning a trained model into text: logits processors, decoder-only generation, beam search, encoder-decoder decoding.

- [sampling][llmdocs.generation.sampling]: temperature, top-k, top-p and the repetition penalty, as pure
  functions of the next-token logits;
- [decoder_only][llmdocs.generation.decoder_only]: greedy, sampled and streamed generation for a language model
  such as [GPT][llmdocs.models.gpt.GPT], with left-padded batches and a key/value cache;
- [beams][llmdocs.generation.beams]: the bookkeeping of beam search (length penalties, finished hypotheses, the
  step that picks the next beams), written once for both beam searches;
- [decoder_only_beam][llmdocs.generation.decoder_only_beam]: beam search for a language model;
- [encoder_decoder][llmdocs.generation.encoder_decoder]: greedy decoding and beam search for the
  [Transformer][llmdocs.models.transformer.Transformer];
- [fill_mask][llmdocs.generation.fill_mask]: what a masked-language model such as
  [BertForPreTraining][llmdocs.models.bert.BertForPreTraining] predicts for each `[MASK]` of a text;
- [benchmark][llmdocs.generation.benchmark]: what the key/value cache saves, timed;
- [checks][llmdocs.generation.checks]: the argument checks they share (readable errors that name the argument).

The two beam searches share a name and live in their own modules (`decoder_only_beam.beam_search`,
`encoder_decoder.beam_search`).
"""

from llmdocs.generation.beams import (
    BeamHypotheses,
    BeamSearchScorer,
    expand_to_beams,
    gnmt_length_penalty,
    power_length_penalty,
)
from llmdocs.generation.benchmark import kv_cache_speedup
from llmdocs.generation.decoder_only import generate, left_pad, stream_generate
from llmdocs.generation.encoder_decoder import greedy_decode
from llmdocs.generation.fill_mask import fill_mask
from llmdocs.generation.sampling import (
    apply_repetition_penalty,
    apply_temperature,
    process_logits,
    top_k_filter,
    top_p_filter,
)

__all__ = [
    "BeamHypotheses",
    "BeamSearchScorer",
    "apply_repetition_penalty",
    "apply_temperature",
    "expand_to_beams",
    "fill_mask",
    "generate",
    "gnmt_length_penalty",
    "greedy_decode",
    "kv_cache_speedup",
    "left_pad",
    "power_length_penalty",
    "process_logits",
    "stream_generate",
    "top_k_filter",
    "top_p_filter",
]
