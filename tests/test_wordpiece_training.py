"""WordPiece training: equal to a naive trainer and to the `tokenizers` library; the vocab tokenizes its corpus."""

from __future__ import annotations

import random
import warnings

import pytest

from llmdocs.tokenizers import BERT_SPECIAL_TOKENS, WordPieceTokenizer, basic_tokenize, train_wordpiece
from llmdocs.tokenizers.bpe_training import merge_pair, pair_counts
from llmdocs.tokenizers.wordpiece_training import count_words
from scripts import load_script

TINY = "hug " * 10 + "pug " * 5 + "pun " * 12 + "bun " * 4 + "hugs " * 5


def naive_train_wordpiece(text: str, vocab_size: int, min_frequency: int = 2) -> list[str]:
    """The textbook trainer: recount every pair before each merge; same alphabet, ids and tie-break (BERT specials)."""
    counts = count_words(text)
    chars = sorted({c for w in counts for c in w})
    vocab = [*BERT_SPECIAL_TOKENS, *chars, *("##" + c for c in sorted({c for w in counts for c in w[1:]}))]
    words = [([vocab.index(w[0])] + [vocab.index("##" + c) for c in w[1:]], n) for w, n in counts.items()]
    while len(vocab) < vocab_size:
        pairs: dict[tuple[int, int], int] = {}
        for word, n in words:
            pair_counts(word, pairs, n)
        if not pairs:
            break
        pair, count = min(pairs.items(), key=lambda item: (-item[1], item[0]))
        if count < min_frequency:
            break
        token = vocab[pair[0]] + vocab[pair[1]].removeprefix("##")
        if token not in vocab:
            vocab.append(token)
        words = [(merge_pair(word, pair, vocab.index(token)), n) for word, n in words]
    return vocab


def train_theirs(text: str, vocab_size: int, min_frequency: int = 2, special_tokens: list[str] | None = None) -> dict:
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = list(BERT_SPECIAL_TOKENS) if special_tokens is None else special_tokens
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=specials, show_progress=False
    )
    tokenizer.train_from_iterator([text], trainer=trainer)
    return tokenizer.get_vocab()


def shakespeare(chars: int) -> str:
    from llmdocs.data.shakespeare import load_shakespeare

    return load_shakespeare(["hamlet"])[:chars]


def test_tiny_corpus_by_hand() -> None:
    vocab = train_wordpiece(TINY, vocab_size=18, special_tokens=["[UNK]"])
    # alphabet: the 7 letters, and the 4 that occur inside a word with ##; then the merges by hand:
    # ##u ##g 20 times (hug, pug, hugs), ##u ##n 16 (pun, bun), h ##ug 15, p ##un 12, then a tie at 5 between
    # p ##ug and hug ##s, won by the smaller ids (p=5 < hug=14)
    assert vocab == [
        *["[UNK]", "b", "g", "h", "n", "p", "s", "u"],
        *["##g", "##n", "##s", "##u"],
        *["##ug", "##un", "hug", "pun", "pug", "hugs"],
    ]
    assert set(vocab) == set(train_theirs(TINY, 18, special_tokens=["[UNK]"]))
    tok = WordPieceTokenizer([*BERT_SPECIAL_TOKENS, *vocab[1:]])
    assert tok.tokenize("Hugs bun hub") == ["hugs", "b", "##un", "[UNK]"]  # "bun" was not learnt; there is no "##b"


@pytest.mark.parametrize("seed", range(8))
def test_incremental_trainer_equals_naive_trainer(seed: int) -> None:
    rng = random.Random(seed)
    words = ["".join(rng.choice("abcdé") for _ in range(rng.randint(1, 8))) for _ in range(rng.randint(5, 200))]
    text = " ".join(words) + " ab, ab!"
    vocab_size = len(BERT_SPECIAL_TOKENS) + rng.randint(15, 60)
    min_frequency = rng.choice([1, 2, 3])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        vocab = train_wordpiece(text, vocab_size, min_frequency=min_frequency)
    assert vocab == naive_train_wordpiece(text, vocab_size, min_frequency)
    assert len(set(vocab)) == len(vocab) <= vocab_size
    assert len(caught) == (len(vocab) < vocab_size)  # a warning exactly when training stopped short


def test_trained_vocab_tokenizes_its_corpus_without_unk_and_round_trips() -> None:
    text = shakespeare(30_000)
    vocab = train_wordpiece(text, vocab_size=500)
    assert vocab[: len(BERT_SPECIAL_TOKENS)] == list(BERT_SPECIAL_TOKENS) and len(vocab) == 500
    tok = WordPieceTokenizer(vocab)
    tokens = tok.tokenize(text)
    assert "[UNK]" not in tokens
    words = basic_tokenize(text)
    assert " ".join(tokens).replace(" ##", "") == " ".join(words)  # the pieces spell the lower-cased words
    assert len(tokens) < 1.7 * len(words)  # 500 tokens: 1.57 pieces per word of Hamlet
    ids = tok.encode(text[:2000])["input_ids"]
    assert tok.decode(ids, clean_up_tokenization_spaces=False) == " ".join(basic_tokenize(text[:2000]))


def test_training_is_deterministic_whatever_the_document_order() -> None:
    docs = shakespeare(20_000).split("\n\n")
    first = train_wordpiece(docs, vocab_size=400)
    assert train_wordpiece(docs, vocab_size=400) == first
    random.Random(0).shuffle(docs)
    assert train_wordpiece(docs, vocab_size=400) == first  # ids depend on the text, not on the order of its words


@pytest.mark.parametrize(("chars", "vocab_size"), [(20_000, 300), (50_000, 1000)])
def test_same_vocabulary_as_the_tokenizers_library(chars: int, vocab_size: int) -> None:
    text = shakespeare(chars)
    ours = train_wordpiece(text, vocab_size)
    runs = [train_theirs(text, vocab_size) for _ in range(3)]
    assert len(ours) == len(runs[0]) == vocab_size
    # the same rule; only ties between equally frequent pairs may go differently: the library numbers the ## characters
    # in the order of its hash tables, which changes from run to run, so two of its own runs differ as much (measured:
    # 0 to 14 tokens out of 300, 0 to 20 out of 1000; ours vs the library: 2 to 10, 10 to 28; on 1 MB, 4 of 8,192)
    assert min(len(set(ours) ^ set(theirs)) for theirs in runs) <= 0.05 * vocab_size


def test_limit_alphabet_keeps_the_most_frequent_characters_and_drops_their_words() -> None:
    text = "aab " * 5 + "abc " * 3 + "xyz"
    vocab = train_wordpiece(text, vocab_size=7, special_tokens=["[UNK]"], limit_alphabet=2, min_frequency=1)
    assert vocab[:5] == ["[UNK]", "a", "b", "##a", "##b"]  # a (13) and b (8) are kept; abc and xyz are left out
    assert vocab[5:] == ["aa", "aab"]  # only "aab" is left to merge: a ##a and ##a ##b tie, (a, ##a) has smaller ids
    with pytest.warns(UserWarning, match="stopped at 18 tokens"):  # without a limit, xyz is learnt too
        assert "xyz" in train_wordpiece(text, 50, special_tokens=["[UNK]"], min_frequency=1)


def test_training_that_stops_short_warns_at_the_caller() -> None:
    with pytest.warns(UserWarning, match="learnt 7 tokens of the 18 that vocab_size=30 asks for") as caught:
        vocab = train_wordpiece(TINY, vocab_size=30, special_tokens=["[UNK]"])
    assert len(vocab) == 19 and caught[0].filename == __file__
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(train_wordpiece(TINY, vocab_size=18, special_tokens=["[UNK]"])) == 18


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"texts": ""}, ValueError, "the corpus is empty"),
        ({"texts": [" \n", "\t"]}, ValueError, "the corpus is empty"),
        ({"vocab_size": 10}, ValueError, r"vocab_size=10 is smaller than the 5 special tokens .* \(16 tokens\)"),
        ({"min_frequency": 0}, ValueError, "min_frequency=0 must be at least 1"),
        ({"limit_alphabet": 0}, ValueError, "limit_alphabet=0"),
        ({"special_tokens": ["[UNK]", "[UNK]"]}, ValueError, "repeated"),
        ({"special_tokens": "[UNK]"}, ValueError, "list of non-empty strings"),
        ({"continuing_subword_prefix": ""}, ValueError, "must not be empty"),
        ({"vocab_size": 100.0}, TypeError, "vocab_size must be an int, got float"),
        ({"texts": b"hug"}, TypeError, "decode bytes first"),
        ({"texts": ["hug", 3]}, TypeError, "must hold strings, got int"),
    ],
)
def test_bad_input_raises(kwargs: dict, error: type, message: str) -> None:
    args = {"texts": TINY, "vocab_size": 100} | kwargs
    with pytest.raises(error, match=message):
        train_wordpiece(args.pop("texts"), args.pop("vocab_size"), **args)


def test_benchmark_script_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    results = load_script("benchmarks/wordpiece_training.py").main(["--smoke"])
    assert results["ours_tokens"] == results["theirs_tokens"] == 400 and results["shared_tokens"] >= 396
    assert 1.0 < results["ours_tokens_per_word"] < 3.0
    assert abs(results["ours_tokens_per_word"] - results["theirs_tokens_per_word"]) < 0.05
    assert "ratio llmdocs / tokenizers" in capsys.readouterr().out


def test_count_words_equals_counting_every_word_of_the_basic_tokenizer() -> None:
    """count_words cuts each distinct space-separated chunk once; the counts and their order must not change."""
    from collections import Counter

    texts = [
        "The cat, the cat!\tand\nthe DOG\x1cdog  ran.",
        "中文字符 的 中文,  naïve\u00a0Café\u3000x\x00y",
        "a-b a-b (x) (x) ...",
    ]
    for lower in (True, False):
        expected: Counter[str] = Counter()
        for text in texts:
            expected.update(basic_tokenize(text, lower))
        counted = count_words(texts, do_lower_case=lower)
        assert list(counted.items()) == list(expected.items())
