"""Tokenizers written from scratch: characters, GPT-2's byte-level BPE (training, encoding, files), BERT's WordPiece.

- `llmdocs.tokenizers.char`: one token per character, the baseline.
- `llmdocs.tokenizers.byte_unicode`: GPT-2's printable spelling of the 256 bytes (`Ġ` is the space).
- `llmdocs.tokenizers.pretokenize`: GPT-2's regular expression that cuts text into chunks.
- `llmdocs.tokenizers.special_tokens`: `<|endoftext|>` and the like: cutting text around them, and tiktoken's
  rules for when their text becomes their id.
- `llmdocs.tokenizers.merge_loop`: the incremental merge loop that BPE and WordPiece training share.
- `llmdocs.tokenizers.bpe_training`: the BPE training algorithm, incremental and fast.
- `llmdocs.tokenizers.bpe_encoding`: encoding one chunk by applying the learnt merges in rank order.
- `llmdocs.tokenizers.bpe_files`: GPT-2's file formats, `vocab.json` and `merges.txt`.
- `llmdocs.tokenizers.bpe`: the tokenizer itself: train, encode, decode, save, load, GPT-2 files.
- `llmdocs.tokenizers.bert_basic`: BERT's basic tokenizer: cleaning, CJK characters, lower-casing, accents,
  punctuation.
- `llmdocs.tokenizers.truncation`: fitting a sentence pair into a length budget, longest text first.
- `llmdocs.tokenizers.wordpiece`: BERT's WordPiece tokenizer (greedy longest match, `##` pieces, `[CLS] A [SEP] B
  [SEP]`), loaded from a `vocab.txt`.
- `llmdocs.tokenizers.wordpiece_training`: training a WordPiece vocabulary (BPE merges with `##` pieces), as the
  `tokenizers` library's `WordPieceTrainer`.
"""

from llmdocs.tokenizers.bert_basic import basic_tokenize
from llmdocs.tokenizers.bpe import BPETokenizer
from llmdocs.tokenizers.bpe_training import MergeStep, merge_pair, pair_counts, train_bpe
from llmdocs.tokenizers.byte_unicode import bytes_to_unicode, token_bytes, token_str
from llmdocs.tokenizers.char import CharTokenizer
from llmdocs.tokenizers.pretokenize import GPT2_SPLIT_PATTERN, GPT4_SPLIT_PATTERN, pretokenize
from llmdocs.tokenizers.special_tokens import ENDOFTEXT, split_special
from llmdocs.tokenizers.truncation import truncate_longest_first
from llmdocs.tokenizers.wordpiece import BERT_SPECIAL_TOKENS, WordPieceTokenizer, wordpiece_split
from llmdocs.tokenizers.wordpiece_training import train_wordpiece

__all__ = [
    "BERT_SPECIAL_TOKENS",
    "ENDOFTEXT",
    "GPT2_SPLIT_PATTERN",
    "GPT4_SPLIT_PATTERN",
    "BPETokenizer",
    "CharTokenizer",
    "MergeStep",
    "WordPieceTokenizer",
    "basic_tokenize",
    "bytes_to_unicode",
    "merge_pair",
    "pair_counts",
    "pretokenize",
    "split_special",
    "token_bytes",
    "token_str",
    "train_bpe",
    "train_wordpiece",
    "truncate_longest_first",
    "wordpiece_split",
]
