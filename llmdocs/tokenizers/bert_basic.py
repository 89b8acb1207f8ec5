"""BERT's basic tokenizer: clean the text, normalise it and cut it into words and punctuation marks.

WordPiece (`llmdocs.tokenizers.wordpiece`) splits *words* into pieces, so the text is first cut into words. BERT does
this with a handful of rules, applied in this order:

1. cleaning: drop NUL, U+FFFD (the replacement character) and control characters (Unicode category `C*`); turn
   every whitespace character (space, tab, newline, category `Zs`) into a plain space;
2. put spaces around every CJK ideograph, so that each Chinese character becomes a word of its own (Chinese is
   written without spaces);
3. split on whitespace;
4. lower-case each word and strip its accents (decompose with NFD, drop the combining marks, category `Mn`), if
   asked. Lower-casing is Python's `str.lower`, as in BERT's own code: a word-final `Σ` becomes `ς` (Hugging Face's
   fast tokenizer writes `σ`, its only difference from the slow one here);
5. split off every punctuation character as a word of its own: the Unicode `P*` categories plus all non-letter,
   non-digit ASCII (`$`, `^`, `` ` ``, `+` are symbols for Unicode but punctuation for BERT).

Example: `"Héllo,  Wörld!你好"` -> `['hello', ',', 'world', '!', '你', '好']`.

References:
    Devlin et al., "BERT: Pre-training of Deep Bidirectional Transformers for Language Understanding" (2019),
    section 3 and appendix A; google-research/bert `tokenization.py` (`BasicTokenizer`).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Collection

__all__ = ["basic_tokenize", "clean_text", "is_cjk_char", "is_punctuation", "remove_accents", "split_on_punctuation"]

# The CJK Unified Ideographs blocks and their extensions, as in BERT: Hangul, Hiragana and Katakana are not in them
# (those scripts separate words with spaces) and are treated like any other script.
_CJK_RANGES = (
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B820, 0x2CEAF),
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
)


def is_cjk_char(char: str) -> bool:
    """Whether `char` is a CJK ideograph (BERT's ranges), i.e. becomes a word of its own.

    Examples:
        >>> is_cjk_char("中"), is_cjk_char("の"), is_cjk_char("a")
        (True, False, False)
    """
    cp = ord(char)
    return cp >= _CJK_START and any(lo <= cp <= hi for lo, hi in _CJK_RANGES)  # most text stops at the first test


_CJK_START = min(lo for lo, _ in _CJK_RANGES)
"""The first code point of the CJK ranges (U+3400): nothing below it is an ideograph."""


def is_punctuation(char: str) -> bool:
    """Whether BERT splits `char` off as a word of its own: ASCII non-alphanumerics, or a Unicode `P*` character.

    Examples:
        >>> is_punctuation("$"), is_punctuation("“"), is_punctuation("€"), is_punctuation("a")
        (True, True, False, False)
    """
    cp = ord(char)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def _is_whitespace(char: str) -> bool:
    return char in " \t\n\r" or unicodedata.category(char) == "Zs"


def _is_control(char: str) -> bool:
    # Tab, newline and carriage return are control characters for Unicode but whitespace for BERT.
    return char not in "\t\n\r" and unicodedata.category(char).startswith("C")


def clean_text(text: str) -> str:
    """Drop NUL, U+FFFD and control characters; turn every whitespace character into a space.

    Raises:
        TypeError: If `text` is not a string.

    Examples:
        >>> clean_text("a\\tb\\u00a0c\\x00d\\ufffde\\u200bf")  # tab, no-break space, NUL, U+FFFD, zero-width space
        'a b cdef'
    """
    _check_str(text, "text")
    if text.isascii():  # the same rules, by table: ASCII's controls are 0-31 and 127, its whitespace " \t\n\r"
        return text.translate(_ASCII_CLEAN)
    return "".join(
        " " if _is_whitespace(c) else c for c in text if not (c == "\x00" or c == "\ufffd" or _is_control(c))
    )


_ASCII_CLEAN = {cp: (" " if chr(cp) in " \t\n\r" else None) for cp in [*range(32), 127]}
"""``clean_text`` of each ASCII control character (a space for whitespace, dropped otherwise): tested equal."""


def remove_accents(word: str) -> str:
    """Decompose with NFD and drop the combining marks (category `Mn`).

    Raises:
        TypeError: If `word` is not a string.

    Examples:
        >>> remove_accents("Zoë Ångström São Dvořák")
        'Zoe Angstrom Sao Dvorak'
    """
    _check_str(word, "word")
    if word.isascii():  # nothing to decompose, no combining mark
        return word
    return "".join(c for c in unicodedata.normalize("NFD", word) if unicodedata.category(c) != "Mn")


def split_on_punctuation(word: str) -> list[str]:
    """Cut `word` before and after every punctuation character.

    Raises:
        TypeError: If `word` is not a string.

    Examples:
        >>> split_on_punctuation("don't!!")
        ['don', "'", 't', '!', '!']
    """
    _check_str(word, "word")
    if word.isalnum():  # letters and digits only (categories L* and N*): no punctuation to split off
        return [word]
    pieces: list[str] = []
    start = 0  # where the current run of non-punctuation characters began
    for i, char in enumerate(word):
        if is_punctuation(char):
            if start < i:
                pieces.append(word[start:i])
            pieces.append(char)
            start = i + 1
    if start < len(word):
        pieces.append(word[start:])
    return pieces


def _check_str(value: object, name: str) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be str, got {type(value).__name__}")


def basic_tokenize(
    text: str,
    do_lower_case: bool = True,
    strip_accents: bool | None = None,
    tokenize_chinese_chars: bool = True,
    never_split: Collection[str] = (),
) -> list[str]:
    """Cut `text` into words and punctuation marks, the input of WordPiece (the five steps of the module).

    Args:
        text: Any string.
        do_lower_case: Lower-case the words (uncased BERT models).
        strip_accents: Strip accents; `None` (the default) strips them exactly when `do_lower_case` is true, as
            BERT and Hugging Face do.
        tokenize_chinese_chars: Make every CJK ideograph a word of its own.
        never_split: Words kept exactly as they are (no lower-casing, no punctuation split), e.g. `"[MASK]"`.

    Returns:
        The words, in order; none of them is empty or contains whitespace.

    Raises:
        TypeError: If `text` is not a string.

    Examples:
        >>> basic_tokenize("Héllo,  Wörld!你好")
        ['hello', ',', 'world', '!', '你', '好']
        >>> basic_tokenize("Héllo [MASK]", do_lower_case=False, never_split={"[MASK]"})
        ['Héllo', '[MASK]']
    """
    _check_str(text, "text")
    if strip_accents is None:
        strip_accents = do_lower_case
    text = clean_text(text)
    if tokenize_chinese_chars and not text.isascii():  # ideographs are not ASCII
        text = "".join(f" {c} " if is_cjk_char(c) else c for c in text)
    # NFC first, so that a precomposed "é" and "e" + U+0301 are the same word when accents are kept.
    words = []
    for word in unicodedata.normalize("NFC", text).split():
        if word in never_split:
            words.append(word)
            continue
        if do_lower_case:
            word = word.lower()
        if strip_accents:
            word = remove_accents(word)
        words.extend(split_on_punctuation(word))
    return " ".join(words).split()  # stripping accents can empty a word made only of combining marks
