"""WordPiece, BERT's tokenizer: words are cut into the longest pieces found in the vocabulary.

Encoding text takes three steps:

1. cut out the special tokens written in the text (`[MASK]`, `[SEP]`, ...), which map straight to their ids;
2. cut the rest into words and punctuation marks with BERT's basic tokenizer (`llmdocs.tokenizers.bert_basic`:
   cleaning, CJK characters, lower-casing, accent stripping, punctuation);
3. cut each word into pieces, greedily, longest match first: the longest prefix of the word that is in the
   vocabulary is the first piece, then the longest vocabulary entry that continues it, written with a `##` prefix,
   and so on. `"unaffable"` -> `["un", "##aff", "##able"]`. A word that cannot be cut this way, or that is longer
   than `max_input_chars_per_word` characters, becomes the single token `[UNK]`.

Unlike byte-level BPE, WordPiece has an unknown token: a character that is in no vocabulary entry (an emoji, a
Chinese character in an English vocabulary) makes its whole word `[UNK]`. Training a WordPiece vocabulary is
another module; here the vocabulary is given, e.g. BERT's `vocab.txt` (one token per line, the id is the line
number). With the same `vocab.txt`, `WordPieceTokenizer` gives exactly the ids of Hugging Face's `BertTokenizer`.

References:
    Wu et al., "Google's Neural Machine Translation System: Bridging the Gap between Human and Machine
    Translation" (2016), section 4.1 (wordpieces); Devlin et al., "BERT: Pre-training of Deep Bidirectional
    Transformers for Language Understanding" (2019), section 3 (input representation); google-research/bert
    `tokenization.py` (`WordpieceTokenizer`).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Iterable, Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

from llmdocs.tokenizers.bert_basic import basic_tokenize
from llmdocs.tokenizers.truncation import truncate_longest_first

__all__ = ["BERT_SPECIAL_TOKENS", "WordPieceTokenizer", "wordpiece_split"]

BERT_SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
"""Padding, unknown word, start of input (its vector classifies), separator, masked token (the MLM objective)."""


def wordpiece_split(
    word: str, vocab: Mapping[str, int], unk_token: str = "[UNK]", max_input_chars_per_word: int = 100
) -> list[str]:
    """Cut one word into vocabulary pieces, greedily, longest match first; pieces after the first start with `##`.

    Greedy is not always the split with the fewest pieces, but it is what BERT does, so it is what its vocabulary
    was made for.

    Args:
        word: One word from the basic tokenizer (no whitespace).
        vocab: `token -> id`.
        unk_token: Returned alone if the word cannot be cut into vocabulary pieces.
        max_input_chars_per_word: Longer words (counted in characters) are `[unk_token]` at once.

    Returns:
        The pieces, or `[unk_token]`.

    Examples:
        >>> vocab = {"un": 0, "##aff": 1, "##able": 2, "a": 3, "##b": 4}
        >>> wordpiece_split("unaffable", vocab), wordpiece_split("unx", vocab)
        (['un', '##aff', '##able'], ['[UNK]'])
    """
    if len(word) > max_input_chars_per_word:
        return [unk_token]
    pieces = []
    start = 0
    while start < len(word):
        end = len(word)
        while end > start:  # the longest piece first
            piece = word[start:end] if start == 0 else "##" + word[start:end]
            if piece in vocab:
                break
            end -= 1
        else:  # not even one character matched: the whole word is unknown
            return [unk_token]
        pieces.append(piece)
        start = end
    return pieces


class WordPieceTokenizer:
    """BERT's tokenizer: basic tokenizer + greedy longest-match-first WordPiece, with BERT's special tokens.

    Named after the algorithm, like `BPETokenizer`: BERT is its best-known user, but DistilBERT, MiniLM and ELECTRA
    use the same tokenizer (Hugging Face calls it `BertTokenizer` and uses it for all of them).

    Args:
        vocab: The tokens in id order (the lines of `vocab.txt`), or `token -> id`.
        do_lower_case: Lower-case the text (uncased models); also strips accents unless `strip_accents` says.
        strip_accents: Strip accents; `None` follows `do_lower_case`.
        tokenize_chinese_chars: Make every CJK ideograph a word.
        max_input_chars_per_word: Longer words become `[UNK]`.

    Raises:
        ValueError: If `vocab` is empty or lacks one of `BERT_SPECIAL_TOKENS`.
        TypeError: If `vocab` is a bare string, or holds non-strings.

    Examples:
        >>> vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "play", "##ed", "##s", "."]
        >>> tok = WordPieceTokenizer(vocab)
        >>> tok.tokenize("The cat played.")
        ['the', 'cat', 'play', '##ed', '.']
        >>> enc = tok.encode("The cat", "plays!")
        >>> enc["input_ids"], enc["token_type_ids"]
        ([2, 5, 6, 3, 7, 9, 1, 3], [0, 0, 0, 0, 1, 1, 1, 1])
        >>> tok.decode(enc["input_ids"])
        'the cat plays'
    """

    pad_token, unk_token, cls_token, sep_token, mask_token = BERT_SPECIAL_TOKENS

    def __init__(
        self,
        vocab: Sequence[str] | Mapping[str, int],
        do_lower_case: bool = True,
        strip_accents: bool | None = None,
        tokenize_chinese_chars: bool = True,
        max_input_chars_per_word: int = 100,
    ) -> None:
        if isinstance(vocab, str | bytes):
            raise TypeError("vocab must be a list of tokens or a dict token -> id; for a file use from_vocab_file")
        pairs = vocab.items() if isinstance(vocab, Mapping) else ((t, i) for i, t in enumerate(vocab))
        self.vocab: dict[str, int] = {}
        for token, i in pairs:
            if not isinstance(token, str):
                raise TypeError(f"vocabulary tokens must be str, got {type(token).__name__} {token!r}")
            self.vocab[token] = operator.index(i)  # a repeated line keeps its last id, as in Hugging Face's load_vocab
        if not self.vocab:
            raise ValueError("the vocabulary is empty")
        missing = [t for t in BERT_SPECIAL_TOKENS if t not in self.vocab]
        if missing:
            raise ValueError(f"the vocabulary lacks the special tokens {missing} (BERT needs {BERT_SPECIAL_TOKENS})")
        self.ids_to_tokens: dict[int, str] = {i: t for t, i in self.vocab.items()}
        self.do_lower_case = do_lower_case
        self.strip_accents = strip_accents
        self.tokenize_chinese_chars = tokenize_chinese_chars
        self.max_input_chars_per_word = max_input_chars_per_word
        self.special_ids: set[int] = {self.vocab[t] for t in BERT_SPECIAL_TOKENS}
        # Longest first, so that a special token is never cut by a shorter one it contains.
        by_length = sorted(BERT_SPECIAL_TOKENS, key=len, reverse=True)
        self._special_pattern = re.compile("(" + "|".join(map(re.escape, by_length)) + ")")

    @classmethod
    def from_vocab_file(
        cls, path: str | PathLike[str], do_lower_case: bool = True, **kwargs: Any
    ) -> WordPieceTokenizer:
        """Load BERT's `vocab.txt`: one token per line, the id of a token is its line number (from 0).

        Args:
            path: The file.
            do_lower_case: `True` for uncased models (e.g. `bert-base-uncased`, all-MiniLM-L6-v2).
            **kwargs: The other arguments of the class.

        Returns:
            The tokenizer.

        Raises:
            FileNotFoundError: If the file does not exist.
            ValueError: As the class.
        """
        lines = Path(path).read_text(encoding="utf-8").split("\n")
        if lines and lines[-1] == "":
            lines.pop()  # the newline that ends the last line
        return cls(lines, do_lower_case=do_lower_case, **kwargs)

    @property
    def vocab_size(self) -> int:
        """Number of ids (V)."""
        return len(self.ids_to_tokens)

    def tokenize(self, text: str) -> list[str]:
        """Text -> WordPiece tokens (special tokens written in the text are kept whole).

        Raises:
            TypeError: If `text` is not a string.

        Examples:
            >>> tok = WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "##b", "!"])
            >>> tok.tokenize("AB [MASK] ab!! 😀")
            ['a', '##b', '[MASK]', 'a', '##b', '!', '!', '[UNK]']
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be str, got {type(text).__name__}")
        tokens: list[str] = []
        for i, part in enumerate(self._special_pattern.split(text)):
            if i % 2 == 1:  # a special token (re.split puts the captured separators at odd positions)
                tokens.append(part)
                continue
            words = basic_tokenize(part, self.do_lower_case, self.strip_accents, self.tokenize_chinese_chars)
            for word in words:
                tokens += wordpiece_split(word, self.vocab, self.unk_token, self.max_input_chars_per_word)
        return tokens

    def convert_tokens_to_ids(self, tokens: Iterable[str]) -> list[int]:
        """Ids of the tokens; a token not in the vocabulary gets the id of `[UNK]`."""
        unk_id = self.vocab[self.unk_token]
        return [self.vocab.get(t, unk_id) for t in tokens]

    def convert_ids_to_tokens(self, ids: Iterable[int]) -> list[str]:
        """Tokens of the ids.

        Raises:
            ValueError: If an id is not in the vocabulary.
            TypeError: If an id is not an integer.
        """
        if isinstance(ids, str | bytes) or not isinstance(ids, Iterable):
            raise TypeError(f"ids must be an iterable of token ids, got {type(ids).__name__}")
        tokens = []
        for i in ids:
            try:
                i = operator.index(i)  # int, NumPy integer or 0-d integer tensor
            except TypeError:
                raise TypeError(f"token ids must be integers, got {type(i).__name__} {i!r}") from None
            if i not in self.ids_to_tokens:
                raise ValueError(f"id {i} is not in the vocabulary (0..{self.vocab_size - 1})")
            tokens.append(self.ids_to_tokens[i])
        return tokens

    def encode(
        self,
        text: str,
        text_pair: str | None = None,
        add_special_tokens: bool = True,
        max_length: int | None = None,
        truncation: bool = False,
        padding: bool = False,
    ) -> dict[str, list[int]]:
        """Encode a text, or a pair of texts as `[CLS] A [SEP] B [SEP]` (BERT section 3).

        Args:
            text: The first (or only) text.
            text_pair: The second text, e.g. the answer passage, or the second sentence for next-sentence prediction.
            add_special_tokens: Add `[CLS]` and `[SEP]`.
            max_length: Length limit in tokens, special tokens included (used by `truncation` and `padding`).
            truncation: Cut to `max_length`, from the longer text first
                ([`truncate_longest_first`][llmdocs.tokenizers.truncation.truncate_longest_first]).
            padding: Pad with `[PAD]` up to `max_length` (Hugging Face's `padding="max_length"`).

        Returns:
            `input_ids`, `token_type_ids` (0 for `[CLS]`, A and its `[SEP]`; 1 for B and its `[SEP]`; 0 on padding)
            and `attention_mask` (1 on real tokens, 0 on padding), three lists of length T.

        Raises:
            TypeError: If a text is not a string.
            ValueError: If `truncation` or `padding` is asked without `max_length`, or `max_length` leaves no room
                for the special tokens.

        Examples:
            >>> tok = WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b"])
            >>> tok.encode("a a a a", "b b", max_length=7, truncation=True, padding=True)["input_ids"]
            [2, 5, 5, 3, 6, 6, 3]
            >>> tok.encode("a", max_length=5, padding=True)["attention_mask"]
            [1, 1, 1, 0, 0]
        """
        if text_pair is not None and not isinstance(text_pair, str):
            raise TypeError(f"text_pair must be str or None, got {type(text_pair).__name__}")
        n_special = (3 if text_pair is not None else 2) if add_special_tokens else 0
        if (truncation or padding) and max_length is None:
            raise ValueError("truncation=True and padding=True need max_length")
        if max_length is not None and max_length < n_special:
            raise ValueError(f"max_length={max_length} leaves no room for the {n_special} special tokens")
        ids = self.convert_tokens_to_ids(self.tokenize(text))
        pair_ids = self.convert_tokens_to_ids(self.tokenize(text_pair)) if text_pair is not None else None
        if truncation:
            assert max_length is not None
            ids, truncated_pair = truncate_longest_first(ids, pair_ids, max_length - n_special)
            pair_ids = truncated_pair if pair_ids is not None else None
        cls_id, sep_id = self.vocab[self.cls_token], self.vocab[self.sep_token]
        first = [cls_id, *ids, sep_id] if add_special_tokens else ids
        second = ([*pair_ids, sep_id] if add_special_tokens else pair_ids) if pair_ids is not None else []
        input_ids = first + second
        token_type_ids = [0] * len(first) + [1] * len(second)
        attention_mask = [1] * len(input_ids)
        if padding:
            assert max_length is not None
            n_pad = max(0, max_length - len(input_ids))  # a longer, untruncated input stays as it is
            input_ids += [self.vocab[self.pad_token]] * n_pad
            token_type_ids += [0] * n_pad
            attention_mask += [0] * n_pad
        return {"input_ids": input_ids, "token_type_ids": token_type_ids, "attention_mask": attention_mask}

    def encode_batch(
        self,
        texts: Sequence[str],
        text_pairs: Sequence[str] | None = None,
        add_special_tokens: bool = True,
        max_length: int | None = None,
        truncation: bool = False,
    ) -> dict[str, list[list[int]]]:
        """Encode several texts (or pairs), padded to the longest: ready for `torch.tensor`, shape (B, T).

        Args:
            texts: B texts.
            text_pairs: B second texts, or `None`.
            add_special_tokens: As in `encode`.
            max_length: As in `encode`.
            truncation: As in `encode`.

        Returns:
            `input_ids`, `token_type_ids`, `attention_mask`: B lists of the same length T.

        Raises:
            ValueError: If `text_pairs` does not have one text per text, or as in `encode`.
            TypeError: If `texts` is a bare string.

        Examples:
            >>> tok = WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b"])
            >>> tok.encode_batch(["a b a", "b"])["attention_mask"]
            [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]
        """
        if isinstance(texts, str) or isinstance(text_pairs, str):
            raise TypeError("texts and text_pairs must be sequences of strings; for one text use encode")
        if text_pairs is not None and len(text_pairs) != len(texts):
            raise ValueError(f"got {len(texts)} texts but {len(text_pairs)} text_pairs")
        pairs = text_pairs if text_pairs is not None else [None] * len(texts)
        encodings = [
            self.encode(a, b, add_special_tokens, max_length, truncation) for a, b in zip(texts, pairs, strict=True)
        ]
        longest = max((len(e["input_ids"]) for e in encodings), default=0)
        pad_id = self.vocab[self.pad_token]
        batch: dict[str, list[list[int]]] = {"input_ids": [], "token_type_ids": [], "attention_mask": []}
        for e in encodings:
            n_pad = longest - len(e["input_ids"])
            batch["input_ids"].append(e["input_ids"] + [pad_id] * n_pad)
            batch["token_type_ids"].append(e["token_type_ids"] + [0] * n_pad)
            batch["attention_mask"].append(e["attention_mask"] + [0] * n_pad)
        return batch

    def decode(
        self, ids: Iterable[int], skip_special_tokens: bool = True, clean_up_tokenization_spaces: bool = True
    ) -> str:
        """Ids -> text: tokens joined by spaces, `##` pieces glued to the token before them.

        Lower-casing, stripped accents and the spaces around punctuation are lost, so decoding gives back the
        normalised text, not the original one. `clean_up_tokenization_spaces` removes the space before `. , ! ?`
        and around English contractions, as Hugging Face's slow `BertTokenizer` does.

        Args:
            ids: Token ids (a list, or a 1-D tensor's `.tolist()`).
            skip_special_tokens: Drop `[PAD]`, `[CLS]`, `[SEP]`, `[UNK]` and `[MASK]`.
            clean_up_tokenization_spaces: See above.

        Returns:
            The text.

        Raises:
            ValueError: If an id is not in the vocabulary.
            TypeError: If `ids` is not an iterable of integers.

        Examples:
            >>> tok = WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hi", "##s", "!", "it"])
            >>> tok.decode([2, 8, 6, 5, 7, 3])
            'its hi!'
        """
        tokens = self.convert_ids_to_tokens(ids)
        if skip_special_tokens:
            tokens = [t for t in tokens if t not in BERT_SPECIAL_TOKENS]
        text = " ".join(tokens).replace(" ##", "").strip()
        if clean_up_tokenization_spaces:
            for before, after in _CLEAN_UP:
                text = text.replace(before, after)
        return text


# Hugging Face's `clean_up_tokenization`: undo the spaces that tokenization put before punctuation and contractions.
_CLEAN_UP = (
    (" .", "."),
    (" ?", "?"),
    (" !", "!"),
    (" ,", ","),
    (" ' ", "'"),
    (" n't", "n't"),
    (" 'm", "'m"),
    (" 's", "'s"),
    (" 've", "'ve"),
    (" 're", "'re"),
)
