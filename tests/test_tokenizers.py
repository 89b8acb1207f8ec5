"""Tokenizers: characters, GPT-2's byte map and split pattern, byte-level BPE round trips, special tokens, files."""

from __future__ import annotations

import json
import random
import re
from itertools import pairwise

import pytest

from llmdocs.tokenizers import (
    GPT2_SPLIT_PATTERN,
    BPETokenizer,
    CharTokenizer,
    bytes_to_unicode,
    pretokenize,
    split_special,
    token_bytes,
    token_str,
)

# Code points that stress a byte-level tokenizer: 1- to 4-byte UTF-8, whitespace of every kind, combining marks,
# joiners, contractions, digits, symbols, CJK and emoji (including ZWJ sequences and flags)
POOL = [
    *"abcXYZ019 ",
    "  ",
    "\t",
    "\n",
    "\r\n",
    "\u00a0",
    "\u3000",
    "'s",
    "'ll",
    "n't",
    "é",
    "e\u0301",
    "ß",
    "Ω",
    "你好",
    "中文",
    "。",
    "ー",
    "한",
    "ع",
    "😀",
    "👍🏽",
    "👨\u200d👩\u200d👧",
    "🇫🇷",
    "\u200b",
    "\ufeff",
    "\U0010fffd",
    "<|",
    "|>",
    "{}",
    "!!",
    "\x00",
    "\x7f",
]


def random_text(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(POOL) for _ in range(n))


@pytest.fixture(scope="module")
def tok() -> BPETokenizer:
    rng = random.Random(0)
    corpus = " ".join(random_text(rng, 40) for _ in range(200)) + " the cat sat on the mat, 你好世界" * 50
    return BPETokenizer.train(corpus, vocab_size=600, special_tokens=["<|endoftext|>", "<|pad|>"])


# ----------------------------------------------------------------------------------------------------- characters
def test_char_tokenizer_round_trip_and_unknown_characters() -> None:
    tok = CharTokenizer.train("hello world")
    assert tok.vocab_size == 8 and tok.decode(tok.encode("hello")) == "hello"
    with pytest.raises(ValueError, match="not in the vocabulary"):
        tok.encode("hello 😀")
    with_unk = CharTokenizer.train("hello world", unk_token="<unk>")
    assert with_unk.decode(with_unk.encode("hex")) == "he<unk>"
    with pytest.raises(ValueError, match="outside"):
        tok.decode([8])
    with pytest.raises(ValueError, match="single characters"):
        CharTokenizer(["ab"])


# ------------------------------------------------------------------------------------------- byte map and pattern
def test_bytes_to_unicode_is_gpt2s_bijection() -> None:
    table = bytes_to_unicode()
    assert sorted(table) == list(range(256)) and len(set(table.values())) == 256
    assert all(c.isprintable() and not c.isspace() for c in table.values())
    assert table[32] == "Ġ" and table[10] == "Ċ" and table[ord("A")] == "A" and table[0] == "Ā"
    every_byte = bytes(range(256))
    assert token_bytes(token_str(every_byte)) == every_byte
    with pytest.raises(ValueError, match="not a byte-level token"):
        token_bytes("中")


def test_gpt2_pattern_is_the_published_one_and_loses_nothing() -> None:
    published = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
    assert published == GPT2_SPLIT_PATTERN
    assert pretokenize("I'm   here\n\n") == ["I", "'m", "  ", " here", "\n\n"]
    rng = random.Random(1)
    for _ in range(200):
        text = random_text(rng, 30)
        assert "".join(pretokenize(text)) == text


def test_split_special_prefers_the_longest_token() -> None:
    assert split_special("a<|end|><|endoftext|>b", ["<|end|>", "<|endoftext|>"]) == [
        "a",
        "<|end|>",
        "",
        "<|endoftext|>",
        "b",
    ]
    assert split_special("abc", []) == ["abc"]


# ------------------------------------------------------------------------------------------------- round trips
def test_round_trip_on_random_unicode_text(tok: BPETokenizer) -> None:
    rng = random.Random(2)
    for _ in range(300):
        text = random_text(rng, rng.randint(0, 60))
        ids = tok.encode_ordinary(text)
        assert tok.decode(ids, errors="strict") == text
        assert tok.decode_bytes(ids) == text.encode("utf-8")
        assert all(0 <= i < tok.vocab_size for i in ids)


def test_round_trip_on_random_bytes(tok: BPETokenizer) -> None:
    """Any byte string, decoded the way a file reader would, survives encode -> decode."""
    rng = random.Random(3)
    for _ in range(300):
        raw = bytes(rng.randrange(256) for _ in range(rng.randint(0, 80)))
        for text in (raw.decode("utf-8", errors="replace"), raw.decode("latin-1")):
            assert tok.decode(tok.encode_ordinary(text), errors="strict") == text


def test_tokens_cut_inside_a_character_decode_exactly_as_bytes() -> None:
    tok = BPETokenizer.train("", vocab_size=256)  # bytes only: every token is one byte
    text = "é中😀"  # 2 + 3 + 4 bytes
    ids = tok.encode(text)
    assert len(ids) == 9 and tok.decode(ids) == text
    assert tok.decode(ids[:4]) == "é\ufffd"  # a character cut after 2 of its 3 bytes
    assert tok.decode_bytes(ids[:4]) == text.encode()[:4]  # the bytes themselves are exact
    with pytest.raises(UnicodeDecodeError):
        tok.decode(ids[:4], errors="strict")


def test_encode_is_deterministic_and_uses_its_cache(tok: BPETokenizer) -> None:
    text = "the cat sat on the mat, the cat"
    first = tok.encode(text)
    assert " cat" in tok._cache and tok.encode(text) == first
    fresh = BPETokenizer(tok.vocab, tok.merges, tok.special_tokens)
    assert fresh.encode(text) == first


# ----------------------------------------------------------------------------------------------- special tokens
def test_special_tokens_allowed_disallowed_and_ordinary(tok: BPETokenizer) -> None:
    eot, pad = tok.special_tokens["<|endoftext|>"], tok.special_tokens["<|pad|>"]
    text = "a<|endoftext|>b<|pad|>"
    ids = tok.encode(text, allowed_special="all")
    assert ids.count(eot) == 1 and ids.count(pad) == 1 and tok.decode(ids) == text
    only_eot = tok.encode("a<|endoftext|>b<|pad|>", allowed_special={"<|endoftext|>"}, disallowed_special=())
    assert eot in only_eot and pad not in only_eot and tok.decode(only_eot) == text
    as_text = tok.encode(text, disallowed_special=())
    assert eot not in as_text and as_text == tok.encode_ordinary(text)
    with pytest.raises(ValueError, match=re.escape("special token '<|endoftext|>' that is not allowed")):
        tok.encode(text)
    with pytest.raises(ValueError, match=re.escape("'<|pad|>'")):
        tok.encode(text, allowed_special={"<|endoftext|>"})  # <|pad|> is still disallowed
    with pytest.raises(ValueError, match="unknown special tokens"):
        tok.encode("x", allowed_special={"<|im_start|>"})
    assert tok.tokens([eot]) == ["<|endoftext|>"]


# ---------------------------------------------------------------------------------------------- files and errors
def test_save_load_identity(tok: BPETokenizer, tmp_path) -> None:
    folder = tok.save(tmp_path / "tok")
    loaded = BPETokenizer.load(folder)
    assert loaded.vocab == tok.vocab and loaded.merges == tok.merges
    assert loaded.special_tokens == tok.special_tokens and loaded.pattern == tok.pattern
    vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
    assert len(vocab) == tok.vocab_size and vocab["<|endoftext|>"] == tok.special_tokens["<|endoftext|>"]
    merges = (folder / "merges.txt").read_text(encoding="utf-8").splitlines()
    assert merges[0] == "#version: 0.2" and len(merges) == 1 + len(tok.merges)
    rng = random.Random(4)
    for _ in range(50):
        text = random_text(rng, 40)
        assert loaded.encode_ordinary(text) == tok.encode_ordinary(text)


def test_clear_errors(tok: BPETokenizer, tmp_path) -> None:
    with pytest.raises(TypeError, match="expects str, got bytes"):
        tok.encode(b"abc")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not valid Unicode"):
        tok.encode("lone surrogate \ud800")
    with pytest.raises(ValueError, match="not in the vocabulary"):
        tok.decode([tok.vocab_size + 5])
    with pytest.raises(ValueError, match="lacks 1 of the 256 single bytes"):
        BPETokenizer({i: bytes([i]) for i in range(255)}, [])
    with pytest.raises(ValueError, match="does not spell"):
        BPETokenizer({**{i: bytes([i]) for i in range(256)}, 256: b"xy"}, [((97, 98), 256)])
    with pytest.raises(ValueError, match="not ordinary ids"):
        BPETokenizer({i: bytes([i]) for i in range(256)}, [], {"<|endoftext|>": 5})
    folder = tok.save(tmp_path / "tok")
    with pytest.raises(ValueError, match="not in"):
        BPETokenizer.from_gpt2_files(folder / "vocab.json", folder / "merges.txt", special_tokens=["<|nope|>"])
    (folder / "merges.txt").write_text("#version: 0.2\nzz? q\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"merges.txt:2"):
        BPETokenizer.load(folder)


def test_long_chunks_merge_with_the_heap_exactly_like_the_loop(tok: BPETokenizer) -> None:
    """`encode_chunk` switches to a heap for long chunks; both paths must give the same ids."""
    from llmdocs.tokenizers.bpe_encoding import merge_with_heap as _merge_with_heap
    from llmdocs.tokenizers.bpe_training import merge_pair as merge

    def loop(ids: list[int]) -> list[int]:
        ranks = tok._ranks
        while len(ids) >= 2:
            best = min(pairwise(ids), key=lambda p: ranks.get(p, (len(ranks), 0)))
            if best not in ranks:
                return ids
            ids = merge(ids, best, ranks[best][1])
        return ids

    rng = random.Random(5)
    chunks = ["the cat sat on the mat, 你好世界" * 3, "a" * 100, "  " * 40, "你好" * 30, "aaab" * 20]
    chunks += [random_text(rng, rng.randint(1, 80)) for _ in range(300)]
    for chunk in chunks:
        ids = [tok.byte_ids[b] for b in chunk.encode("utf-8")]
        assert _merge_with_heap(ids, tok._ranks) == loop(ids), chunk


# ---------------------------------------------------------------------------------------------- degenerate input
def test_ids_may_be_any_integers_but_nothing_else(tok: BPETokenizer) -> None:
    import numpy as np
    import torch

    ids = tok.encode("hello")
    assert tok.decode(torch.tensor(ids)) == tok.decode(np.array(ids)) == "hello"  # 0-d tensors, NumPy ints
    assert CharTokenizer.train("ab").decode(torch.tensor([1, 0])) == "ba"


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda tok: tok.decode("abc"), TypeError, "ids must be an iterable of token ids, got str"),
        (lambda tok: tok.decode(None), TypeError, "ids must be an iterable of token ids, got NoneType"),
        (lambda tok: tok.decode([104.0]), TypeError, "token ids must be integers, got float"),
        (lambda tok: tok.token_bytes("a"), TypeError, "token ids must be integers, got str"),
        (lambda tok: tok.decode([104], errors="bogus"), ValueError, "errors='bogus' is not an error handler"),
        (lambda tok: tok.encode_chunk(b"ab"), TypeError, "chunk must be str, got bytes"),
        (lambda tok: tok.truncated(1.5), TypeError, "n_merges must be an int, got float"),
        (lambda tok: tok.encode("x", allowed_special="<|endoftext|>"), TypeError, 'must be "all" or a collection'),
        (lambda tok: tok.encode("x", disallowed_special="x"), TypeError, "disallowed_special must be"),
        (lambda tok: CharTokenizer.train(""), ValueError, "chars is empty"),
        (lambda tok: CharTokenizer.train(None), TypeError, "text must be str, got NoneType"),
        (lambda tok: CharTokenizer([1, 2]), TypeError, "chars must be strings"),
        (lambda tok: CharTokenizer("ab", unk_token=0), TypeError, "unk_token must be a str"),
        (lambda tok: CharTokenizer.train("ab").encode(None), TypeError, "encode expects str, got NoneType"),
        (lambda tok: CharTokenizer.train("ab").decode("ab"), TypeError, "ids must be an iterable of token ids"),
        (lambda tok: CharTokenizer.train("ab").decode([0.0]), TypeError, "token ids must be integers"),
        (lambda tok: pretokenize(None), TypeError, "text must be str, got NoneType"),
        (lambda tok: split_special("abc", [""]), ValueError, "contains the empty string"),
        (lambda tok: split_special("abc", "<|x|>"), TypeError, "got the string '<|x|>'"),
        (lambda tok: split_special(b"abc", ["x"]), TypeError, "text must be str, got bytes"),
        (lambda tok: token_str("abc"), TypeError, "token must be bytes, got str"),
        (lambda tok: token_bytes(b"abc"), TypeError, "text must be str"),
    ],
)
def test_degenerate_input_raises(tok: BPETokenizer, call, error: type, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error, match=message):
        call(tok)


def test_a_malformed_tokenizer_config_raises(tok: BPETokenizer, tmp_path) -> None:
    folder = tok.save(tmp_path / "tok")
    (folder / "tokenizer_config.json").write_text('{"pattern": "x"}', encoding="utf-8")
    with pytest.raises(ValueError, match="must hold 'special_tokens' and 'pattern'"):
        BPETokenizer.load(folder)


def test_train_tokenizer_tables_are_what_bpe_tokenizer_train_builds() -> None:
    """The training glue moved out of bpe.py (to keep it under 400 lines) still gives BPETokenizer.train its tables."""
    from llmdocs.tokenizers.bpe_training import train_tokenizer_tables

    text = "low lower lowest " * 20
    tok = BPETokenizer.train(text, vocab_size=262, special_tokens=["<|endoftext|>"])
    vocab, merges, specials = train_tokenizer_tables(text, 262, ["<|endoftext|>"])
    assert (vocab, merges, specials) == (tok.vocab, tok.merges, tok.special_tokens)
    with pytest.warns(UserWarning, match="learnt 0 merges") as caught:
        train_tokenizer_tables("a", 257)
    assert caught[0].filename == __file__  # stacklevel=1: the warning names the caller's line
    with pytest.raises(ValueError, match="leaves no room for 256 bytes and 1 special tokens"):
        train_tokenizer_tables("ab", 256, ["<s>"])
